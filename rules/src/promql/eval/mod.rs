//! The PromQL evaluator: instant and range queries over a [`Queryable`],
//! with Prometheus 3 semantics.
//!
//! Like Prometheus, every node is evaluated once for the whole query range:
//! a node's value is a set of series with one point per evaluation step
//! (or a scalar per step), so each selector reads the store once for the
//! whole range and steps are walked with cursors, never with one store call
//! per step. An instant query is a range query with a single step.
//!
//! Invariants: points of an intermediate series are in step order and at
//! step timestamps; staleness markers never leave a selector; the
//! evaluator does no I/O of its own and never reads the clock (the
//! evaluation times are arguments).
//!
//! Metric names are dropped as Prometheus 3 does by default (arithmetic,
//! `bool` comparisons, most functions); with
//! [`EngineOptions::delayed_name_removal`] they are only marked and dropped
//! at the end, as Prometheus' `promql-delayed-name-removal` feature (and its
//! own test engine) does. Annotations from functions and aggregations get
//! Prometheus' ` (line:col)` suffix, located in the query as promql-parser
//! renders it (the same text when the query was written canonically).
//!
//! Submodules: `selector` (vector and matrix selectors, subqueries,
//! `timestamp()` over a selector), `binary` (operators and vector
//! matching), `call` (function calls and aggregations), `info` (the
//! experimental `info()` function).

mod binary;
mod call;
mod info;
mod selector;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr, Offset};

use super::Annotations;
use super::storage::{Queryable, StorageError};
use super::value::{InstantSample, Labels, METRIC_NAME, Sample, Series, Value};

/// Evaluation settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (ms); zero means
    /// the default of 5 minutes, as in Prometheus.
    pub lookback_delta_ms: i64,
    /// Upper bound on samples held in memory by one query; exceeding it is
    /// an error, as Prometheus' `query.max-samples`.
    pub max_samples: usize,
    /// Prometheus' `promql-delayed-name-removal` feature: `__name__` is
    /// kept (marked for removal) until the end of the evaluation, so
    /// `label_replace` can still read it and series that differ only by
    /// name do not collide midway. Off by default, as in Prometheus 3;
    /// Prometheus' own PromQL test suite (promqltest) runs with it on.
    pub delayed_name_removal: bool,
    /// Step of a subquery written without one (`x[1h:]`), in ms: the global
    /// evaluation interval in Prometheus (1m by default, and in promqltest).
    pub no_step_subquery_interval_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
            delayed_name_removal: false,
            no_step_subquery_interval_ms: 60 * 1000,
        }
    }
}

/// Why a query could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Any evaluation-time error, with Prometheus' wording where one exists
    /// (e.g. "vector cannot contain metrics with the same labelset").
    #[error("{0}")]
    Eval(String),
    #[error("query processing would load too many samples into memory")]
    TooManySamples,
}

/// A query's value and the annotations it produced.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub annotations: Annotations,
}

/// The PromQL evaluator.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    pub options: EngineOptions,
}

const DUPLICATE_LABELSET: &str = "vector cannot contain metrics with the same labelset";

pub(crate) fn eval_err(msg: impl Into<String>) -> EvalError {
    EvalError::Eval(msg.into())
}

impl Engine {
    pub fn new(options: EngineOptions) -> Self {
        Engine { options }
    }

    fn ctx<'a>(
        &self,
        store: &'a dyn Queryable,
        expr: &Expr,
        (start, end, step): (i64, i64, i64),
    ) -> Ctx<'a> {
        Ctx {
            store,
            // As Prometheus: a zero (or negative) lookback means the default.
            lookback: if self.options.lookback_delta_ms > 0 {
                self.options.lookback_delta_ms
            } else {
                EngineOptions::default().lookback_delta_ms
            },
            max_samples: self.options.max_samples,
            samples: Cell::new(0),
            delayed: self.options.delayed_name_removal,
            no_step_subquery_interval: self.options.no_step_subquery_interval_ms.max(1),
            query_start: start,
            query_end: end,
            query_step: step,
            root_text: expr.to_string(),
            annotations: RefCell::new(Annotations::default()),
        }
    }

    /// Evaluates `expr` at `t_ms`.
    pub fn instant_query(
        &self,
        store: &dyn Queryable,
        expr: &Expr,
        t_ms: i64,
    ) -> Result<QueryResult, EvalError> {
        let ctx = self.ctx(store, expr, (t_ms, t_ms, 0));
        let ev = Ev {
            ctx: &ctx,
            r: StepRange {
                start: t_ms,
                end: t_ms,
                interval: 1,
            },
        };
        let val = ev.eval(expr)?;
        let value = match val {
            Val::Scalar(v) => Value::Scalar {
                t: t_ms,
                v: v.first().copied().unwrap_or(f64::NAN),
            },
            Val::Str(s) => Value::String { t: t_ms, v: s },
            Val::Vector(series) => {
                let mut out = Vec::with_capacity(series.len());
                for s in series {
                    let labels = if s.drop_name {
                        drop_name(&s.labels)
                    } else {
                        s.labels
                    };
                    if let Some(p) = s.points.first() {
                        out.push(InstantSample {
                            labels,
                            t: t_ms,
                            v: p.v,
                        });
                    }
                }
                if ctx.delayed && contains_same_labelset(out.iter().map(|s| &s.labels)) {
                    return Err(eval_err(DUPLICATE_LABELSET));
                }
                Value::Vector(out)
            }
            Val::Matrix(mut m) => {
                m.sort_by(|a, b| a.labels.cmp(&b.labels));
                Value::Matrix(m)
            }
        };
        Ok(QueryResult {
            value,
            annotations: ctx.annotations.into_inner(),
        })
    }

    /// Evaluates `expr` at every step from `start_ms` to `end_ms` inclusive.
    pub fn range_query(
        &self,
        store: &dyn Queryable,
        expr: &Expr,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult, EvalError> {
        if step_ms <= 0 {
            return Err(eval_err(
                "zero or negative query resolution step widths are not accepted. Try a positive integer",
            ));
        }
        if end_ms < start_ms {
            return Err(eval_err("end timestamp must not be before start time"));
        }
        match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => {}
            other => {
                return Err(eval_err(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    documented_type(other)
                )));
            }
        }
        // A scalar alone holds one sample per step: refuse a step count
        // that could never fit before allocating for it.
        let steps = (end_ms.saturating_sub(start_ms) / step_ms).saturating_add(1);
        if usize::try_from(steps).map_or(true, |n| n > self.options.max_samples) {
            return Err(EvalError::TooManySamples);
        }
        let ctx = self.ctx(store, expr, (start_ms, end_ms, step_ms));
        let ev = Ev {
            ctx: &ctx,
            r: StepRange {
                start: start_ms,
                end: end_ms,
                interval: step_ms,
            },
        };
        let val = ev.eval(expr)?;
        let mut matrix = match val {
            Val::Scalar(v) => {
                let samples = v
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| Sample { t: ev.r.ts(i), v })
                    .collect();
                vec![Series {
                    labels: Labels::empty(),
                    samples,
                }]
            }
            Val::Vector(series) => {
                let series = if ctx.delayed {
                    let dropped = series
                        .into_iter()
                        .map(|mut s| {
                            if s.drop_name {
                                s.labels = drop_name(&s.labels);
                                s.drop_name = false;
                            }
                            s
                        })
                        .collect();
                    merge_same_labelset(dropped)?
                } else {
                    series
                };
                series
                    .into_iter()
                    .map(|s| Series {
                        labels: s.labels,
                        samples: s.points,
                    })
                    .collect()
            }
            Val::Str(_) | Val::Matrix(_) => {
                return Err(eval_err("range query over a non-vector expression"));
            }
        };
        matrix.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(QueryResult {
            value: Value::Matrix(matrix),
            annotations: ctx.annotations.into_inner(),
        })
    }
}

/// Prometheus' user-facing names of value types.
fn documented_type(t: ValueType) -> &'static str {
    match t {
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
    }
}

/// State shared by every (sub-)evaluator of one query.
pub(crate) struct Ctx<'a> {
    store: &'a dyn Queryable,
    lookback: i64,
    max_samples: usize,
    /// Samples currently held by the query (Prometheus' `currentSamples`).
    samples: Cell<usize>,
    delayed: bool,
    no_step_subquery_interval: i64,
    /// The query's own start and end, for `@ start()` and `@ end()`.
    query_start: i64,
    query_end: i64,
    /// The query's step (0 for an instant query), for `step()`.
    query_step: i64,
    /// The query as promql-parser renders it: annotations name a position
    /// in it, as Prometheus' do in the query text.
    root_text: String,
    annotations: RefCell<Annotations>,
}

impl Ctx<'_> {
    /// Accounts for `n` more samples in memory.
    fn charge(&self, n: usize) -> Result<(), EvalError> {
        let now = self.samples.get().saturating_add(n);
        if now > self.max_samples {
            return Err(EvalError::TooManySamples);
        }
        self.samples.set(now);
        Ok(())
    }

    /// Checks that `n` more samples would fit, without keeping them.
    fn check_transient(&self, n: usize) -> Result<(), EvalError> {
        if self.samples.get().saturating_add(n) > self.max_samples {
            return Err(EvalError::TooManySamples);
        }
        Ok(())
    }

    fn release(&self, n: usize) {
        self.samples.set(self.samples.get().saturating_sub(n));
    }
}

/// The evaluation steps of one (sub-)evaluator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StepRange {
    start: i64,
    end: i64,
    interval: i64,
}

impl StepRange {
    fn steps(&self) -> usize {
        if self.end < self.start {
            0
        } else {
            (self.end.saturating_sub(self.start) / self.interval).saturating_add(1) as usize
        }
    }

    fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.interval
    }

    /// The step index of `ts`, which must be a step timestamp.
    fn index(&self, ts: i64) -> usize {
        ((ts - self.start) / self.interval) as usize
    }
}

/// One series of an instant-vector node, evaluated at every step.
#[derive(Debug, Clone)]
pub(crate) struct StepSeries {
    labels: Labels,
    /// Delayed name removal: `__name__` is dropped at the end.
    drop_name: bool,
    /// Points at step timestamps, in step order.
    points: Vec<Sample>,
}

/// A node's value over all steps.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Vector(Vec<StepSeries>),
    /// One value per step.
    Scalar(Vec<f64>),
    Str(String),
    /// A range vector; only a bare matrix selector or subquery in an
    /// instant query produces one.
    Matrix(Vec<Series>),
}

impl Val {
    fn sample_count(&self) -> usize {
        match self {
            Val::Vector(s) => s.iter().map(|s| s.points.len()).sum(),
            Val::Scalar(v) => v.len(),
            Val::Str(_) => 0,
            Val::Matrix(m) => m.iter().map(|s| s.samples.len()).sum(),
        }
    }
}

/// An evaluator over one step range.
#[derive(Clone, Copy)]
pub(crate) struct Ev<'c, 'a> {
    ctx: &'c Ctx<'a>,
    r: StepRange,
}

impl<'c, 'a> Ev<'c, 'a> {
    fn with_range(&self, r: StepRange) -> Ev<'c, 'a> {
        Ev { ctx: self.ctx, r }
    }

    fn steps(&self) -> usize {
        self.r.steps()
    }

    /// Evaluates `expr` over this evaluator's steps. A step-invariant
    /// expression (every selector pinned with `@`, no time-dependent
    /// function) is evaluated once and repeated, as Prometheus does.
    pub(crate) fn eval(&self, expr: &Expr) -> Result<Val, EvalError> {
        if self.steps() > 1 && wrappable(expr) && step_invariant(expr) {
            let once = self.with_range(StepRange {
                start: self.r.start,
                end: self.r.start,
                interval: self.r.interval,
            });
            let v = once.eval_node(expr)?;
            return self.repeat(v);
        }
        self.eval_node(expr)
    }

    fn repeat(&self, v: Val) -> Result<Val, EvalError> {
        let n = self.steps();
        match v {
            Val::Scalar(s) => {
                let x = s.first().copied().unwrap_or(f64::NAN);
                self.ctx.charge(n.saturating_sub(1))?;
                Ok(Val::Scalar(vec![x; n]))
            }
            Val::Vector(series) => {
                let mut out = Vec::with_capacity(series.len());
                for s in series {
                    let Some(p) = s.points.first().copied() else {
                        continue;
                    };
                    self.ctx.charge(n.saturating_sub(1))?;
                    out.push(StepSeries {
                        labels: s.labels,
                        drop_name: s.drop_name,
                        points: (0..n)
                            .map(|i| Sample {
                                t: self.r.ts(i),
                                v: p.v,
                            })
                            .collect(),
                    });
                }
                Ok(Val::Vector(out))
            }
            other => Ok(other),
        }
    }

    fn eval_node(&self, expr: &Expr) -> Result<Val, EvalError> {
        match expr {
            Expr::Paren(p) => self.eval(&p.expr),
            Expr::NumberLiteral(n) => {
                let steps = self.steps();
                self.ctx.charge(steps)?;
                Ok(Val::Scalar(vec![n.val; steps]))
            }
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Unary(u) => self.eval_unary(&u.expr),
            Expr::Binary(b) => self.eval_binary(b),
            Expr::VectorSelector(vs) => self.eval_vector_selector(vs),
            Expr::MatrixSelector(ms) => self.eval_bare_matrix_selector(ms),
            Expr::Subquery(sq) => self.eval_bare_subquery(sq),
            Expr::Call(c) => self.eval_call(c),
            Expr::Aggregate(a) => self.eval_aggregate(a),
            Expr::Extension(_) => Err(eval_err("unsupported extension expression")),
        }
    }

    fn eval_unary(&self, inner: &Expr) -> Result<Val, EvalError> {
        match self.eval(inner)? {
            Val::Scalar(v) => Ok(Val::Scalar(v.into_iter().map(|x| -x).collect())),
            Val::Vector(series) => {
                let delayed = self.ctx.delayed;
                let out: Vec<StepSeries> = series
                    .into_iter()
                    .map(|mut s| {
                        for p in &mut s.points {
                            p.v = -p.v;
                        }
                        if delayed {
                            s.drop_name = true;
                        } else {
                            s.labels = drop_name(&s.labels);
                        }
                        s
                    })
                    .collect();
                if delayed {
                    Ok(Val::Vector(out))
                } else {
                    Ok(Val::Vector(merge_same_labelset(out)?))
                }
            }
            _ => Err(eval_err(
                "unary expression only allowed on expressions of type scalar or instant vector",
            )),
        }
    }

    /// The annotations' lengths, to find the ones a call adds.
    fn annotation_mark(&self) -> (usize, usize) {
        let a = self.ctx.annotations.borrow();
        (a.warnings.len(), a.infos.len())
    }

    /// Appends Prometheus' ` (line:col)` position to the annotations added
    /// since `mark`: `node_of` names, for a message, the rendered
    /// sub-expression it is about (Prometheus points at a specific
    /// argument per annotation).
    fn position_annotations(&self, mark: (usize, usize), node_of: impl Fn(&str) -> Option<String>) {
        let mut ann = self.ctx.annotations.borrow_mut();
        if ann.warnings.len() == mark.0 && ann.infos.len() == mark.1 {
            return;
        }
        let new_warnings = ann.warnings.split_off(mark.0);
        let new_infos = ann.infos.split_off(mark.1);
        let with_pos = |msg: String| match node_of(&msg).and_then(|n| self.position_of(&n)) {
            Some(pos) => format!("{msg} {pos}"),
            None => msg,
        };
        for w in new_warnings {
            ann.warn(with_pos(w));
        }
        for i in new_infos {
            ann.info(with_pos(i));
        }
    }

    /// `(line:col)` of the first occurrence of `needle` in the query.
    fn position_of(&self, needle: &str) -> Option<String> {
        let root = &self.ctx.root_text;
        let idx = root.find(needle)?;
        let before = &root[..idx];
        let line = before.matches('\n').count() + 1;
        let col = idx - before.rfind('\n').map_or(0, |p| p + 1) + 1;
        Some(format!("({line}:{col})"))
    }

    /// Resolves an `@` modifier to milliseconds.
    fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        match at {
            None => None,
            Some(AtModifier::Start) => Some(self.ctx.query_start),
            Some(AtModifier::End) => Some(self.ctx.query_end),
            Some(AtModifier::At(t)) => Some(system_time_ms(*t)),
        }
    }
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// Whether Prometheus would wrap `expr` in a step-invariant node.
fn wrappable(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::VectorSelector(_)
            | Expr::Call(_)
            | Expr::Aggregate(_)
            | Expr::Binary(_)
            | Expr::Unary(_)
    )
}

/// Functions whose result depends on the evaluation time even when their
/// arguments do not (Prometheus' `AtModifierUnsafeFunctions`).
fn at_modifier_unsafe(name: &str) -> bool {
    matches!(
        name,
        "days_in_month"
            | "day_of_month"
            | "day_of_week"
            | "day_of_year"
            | "hour"
            | "minute"
            | "month"
            | "year"
            | "predict_linear"
            | "time"
            | "timestamp"
    )
}

/// Whether `expr`'s value is the same at every step (Prometheus'
/// `preprocessExprHelper`).
fn step_invariant(expr: &Expr) -> bool {
    match expr {
        Expr::VectorSelector(vs) => vs.at.is_some(),
        Expr::MatrixSelector(ms) => ms.vs.at.is_some(),
        Expr::Subquery(sq) => sq.at.is_some(),
        // The parameter is not considered, as in Prometheus.
        Expr::Aggregate(a) => step_invariant(&a.expr),
        Expr::Binary(b) => step_invariant(&b.lhs) && step_invariant(&b.rhs),
        Expr::Call(c) => {
            !at_modifier_unsafe(c.func.name) && c.args.args.iter().all(|a| step_invariant(a))
        }
        Expr::Paren(p) => step_invariant(&p.expr),
        Expr::Unary(u) => step_invariant(&u.expr),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => true,
        Expr::Extension(_) => false,
    }
}

/// Strips parentheses (Prometheus removes them around function and
/// aggregation arguments before evaluating).
pub(crate) fn unwrap_parens(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

/// `labels` without `__name__` and the metadata labels `__type__` and
/// `__unit__` (Prometheus' `DropReserved(schema.IsMetadataLabel)`).
pub(crate) fn drop_name(labels: &Labels) -> Labels {
    labels.without(&[METRIC_NAME, "__type__", "__unit__"])
}

fn contains_same_labelset<'x>(labels: impl Iterator<Item = &'x Labels>) -> bool {
    let mut seen = std::collections::HashSet::new();
    for l in labels {
        if !seen.insert(l) {
            return true;
        }
    }
    false
}

/// Merges series that have the same labels (after a name was dropped),
/// failing when two of them have a point at the same step (Prometheus'
/// `mergeSeriesWithSameLabelset`). First-seen order is kept.
fn merge_same_labelset(series: Vec<StepSeries>) -> Result<Vec<StepSeries>, EvalError> {
    if !contains_same_labelset(series.iter().map(|s| &s.labels)) {
        return Ok(series);
    }
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<StepSeries> = Vec::new();
    for s in series {
        match index.get(&s.labels) {
            Some(&i) => {
                let base = &mut out[i];
                base.points.extend(s.points);
                base.points.sort_by_key(|p| p.t);
                if base.points.windows(2).any(|w| w[0].t == w[1].t) {
                    return Err(eval_err(DUPLICATE_LABELSET));
                }
            }
            None => {
                index.insert(s.labels.clone(), out.len());
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// Prints labels as Go's `labels.Labels.String()` does (used in error
/// messages that quote series): `{__name__="up", job="a"}`.
pub(crate) fn go_labels_string(labels: &Labels) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        if super::value::is_legacy_label_name(&l.name) {
            s.push_str(&l.name);
        } else {
            s.push_str(&format!("{:?}", l.name));
        }
        s.push('=');
        s.push_str(&format!("{:?}", l.value));
    }
    s.push('}');
    s
}

/// Collects the per-step output of a node into series. Within one step a
/// label set may appear only once ("vector cannot contain metrics with the
/// same labelset"), except in a single-step evaluation with delayed name
/// removal, where duplicates are only an error if they survive to the end.
pub(crate) struct SeriesBuilder {
    series: Vec<StepSeries>,
    index: HashMap<Labels, usize>,
    allow_duplicates: bool,
}

impl SeriesBuilder {
    pub(crate) fn new(ev: &Ev<'_, '_>) -> Self {
        SeriesBuilder {
            series: Vec::new(),
            index: HashMap::new(),
            allow_duplicates: ev.ctx.delayed && ev.steps() == 1,
        }
    }

    pub(crate) fn add(
        &mut self,
        labels: Labels,
        drop_name: bool,
        t: i64,
        v: f64,
    ) -> Result<(), EvalError> {
        if self.allow_duplicates {
            self.series.push(StepSeries {
                labels,
                drop_name,
                points: vec![Sample { t, v }],
            });
            return Ok(());
        }
        match self.index.get(&labels) {
            Some(&i) => {
                let s = &mut self.series[i];
                if s.points.last().is_some_and(|p| p.t == t) {
                    return Err(eval_err(DUPLICATE_LABELSET));
                }
                s.points.push(Sample { t, v });
            }
            None => {
                self.index.insert(labels.clone(), self.series.len());
                self.series.push(StepSeries {
                    labels,
                    drop_name,
                    points: vec![Sample { t, v }],
                });
            }
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> Vec<StepSeries> {
        self.series
    }
}

/// Reads the instant vector of each step from a node's series, in step
/// order, without rescanning earlier points.
pub(crate) struct StepCursor {
    pos: Vec<usize>,
}

impl StepCursor {
    pub(crate) fn new(series: &[StepSeries]) -> Self {
        StepCursor {
            pos: vec![0; series.len()],
        }
    }

    /// The indexes and values of the series that have a point at `t`.
    pub(crate) fn at(&mut self, series: &[StepSeries], t: i64) -> Vec<(usize, f64)> {
        let mut out = Vec::new();
        for (i, s) in series.iter().enumerate() {
            let p = &mut self.pos[i];
            while *p < s.points.len() && s.points[*p].t < t {
                *p += 1;
            }
            if let Some(pt) = s.points.get(*p)
                && pt.t == t
            {
                out.push((i, pt.v));
                *p += 1;
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
