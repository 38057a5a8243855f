//! Function calls and aggregations.
//!
//! Range-vector functions are called once per series and step with that
//! series' window (Prometheus does the same), so the evaluator owns their
//! output labels: the input series' labels, without `__name__` except for
//! `last_over_time` and `first_over_time`. Instant-vector functions and
//! aggregations are called once per step through
//! [`crate::promql::functions::call`] and
//! [`crate::promql::aggregate::aggregate`]. The functions that need the
//! expression tree or raw timestamps (`absent`, `absent_over_time`,
//! `timestamp`, `time`, `pi`, `scalar`, `vector`) are evaluated here, as
//! are the experimental query-property functions of Prometheus' duration
//! expressions (`step`, `range`, `start`, `end`, `min_of`, `max_of`).
//! `info()` is in the `info` submodule.
//!
//! With delayed name removal, names are kept and marked instead of dropped;
//! element-wise functions are then called one element at a time, so the
//! marked names can be restored on their output.

use std::collections::HashMap;

use promql_parser::label::{MatchOp, Matchers};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AggregateExpr, Call, Expr, LabelModifier};

use super::selector::{RangeInput, WindowCursor, vs_matchers_for_absent};
use super::{
    Ev, EvalError, SeriesBuilder, StepCursor, StepSeries, Val, contains_same_labelset, drop_name,
    eval_err, merge_same_labelset, unwrap_parens,
};
use crate::promql::aggregate::{AggParam, aggregate};
use crate::promql::functions::{FnArg, FnCtx, call};
use crate::promql::value::{InstantSample, Label, Labels, METRIC_NAME, Sample, Series};

/// Functions that map each element to at most one element with the same
/// labels minus the name.
fn elementwise(name: &str) -> bool {
    matches!(
        name,
        "abs"
            | "ceil"
            | "floor"
            | "exp"
            | "sqrt"
            | "ln"
            | "log2"
            | "log10"
            | "sin"
            | "cos"
            | "tan"
            | "asin"
            | "acos"
            | "atan"
            | "sinh"
            | "cosh"
            | "tanh"
            | "asinh"
            | "acosh"
            | "atanh"
            | "rad"
            | "deg"
            | "sgn"
            | "round"
            | "clamp"
            | "clamp_min"
            | "clamp_max"
            | "days_in_month"
            | "day_of_month"
            | "day_of_week"
            | "day_of_year"
            | "hour"
            | "minute"
            | "month"
            | "year"
            | "histogram_count"
            | "histogram_sum"
            | "histogram_avg"
            | "histogram_stddev"
            | "histogram_stdvar"
    )
}

/// Labels for `absent()`: the selector's equality matchers (a label matched
/// twice, or by another operator, is left out), never the name.
fn absent_labels(matchers: &Matchers) -> Labels {
    let mut has: HashMap<&str, bool> = HashMap::new();
    let mut set: Vec<(String, Option<String>)> = Vec::new();
    for m in &matchers.matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        let first = !has.get(m.name.as_str()).copied().unwrap_or(false);
        let value = if matches!(m.op, MatchOp::Equal) && first {
            has.insert(&m.name, true);
            Some(m.value.clone())
        } else {
            None
        };
        match set.iter_mut().find(|(n, _)| *n == m.name) {
            Some(e) => e.1 = value,
            None => set.push((m.name.clone(), value)),
        }
    }
    Labels::from_vec(
        set.into_iter()
            .filter_map(|(name, v)| v.map(|value| Label { name, value }))
            .collect(),
    )
}

impl Ev<'_, '_> {
    fn fn_ctx_call(
        &self,
        name: &str,
        args: Vec<FnArg>,
        eval_ts: i64,
        window: (i64, i64),
    ) -> Result<Vec<InstantSample>, EvalError> {
        let mut ann = self.ctx.annotations.borrow_mut();
        let mut ctx = FnCtx {
            eval_ts,
            window_start: window.0,
            window_end: window.1,
            annotations: &mut ann,
        };
        call(name, args, &mut ctx)
    }

    pub(super) fn eval_call(&self, c: &Call) -> Result<Val, EvalError> {
        let name = c.func.name;
        let args: Vec<&Expr> = c.args.args.iter().map(|a| unwrap_parens(a)).collect();
        match name {
            "time" => {
                let v = (0..self.steps())
                    .map(|i| self.r.ts(i) as f64 / 1000.0)
                    .collect();
                return Ok(Val::Scalar(v));
            }
            "pi" => return Ok(Val::Scalar(vec![std::f64::consts::PI; self.steps()])),
            // Duration-expression functions (experimental in Prometheus):
            // properties of the whole query, in seconds.
            "step" | "range" | "start" | "end" => {
                let c = self.ctx;
                let v = match name {
                    "step" => c.query_step,
                    "range" => c.query_end - c.query_start,
                    "start" => c.query_start,
                    _ => c.query_end,
                } as f64
                    / 1000.0;
                return Ok(Val::Scalar(vec![v; self.steps()]));
            }
            "min_of" | "max_of" => {
                let (Val::Scalar(a), Val::Scalar(b)) = (
                    self.eval(args_get(&args, 0)?)?,
                    self.eval(args_get(&args, 1)?)?,
                ) else {
                    return Err(eval_err(format!("{name}() expects scalars")));
                };
                let pick = if name == "min_of" { go_min } else { go_max };
                return Ok(Val::Scalar(
                    a.iter().zip(b.iter()).map(|(&x, &y)| pick(x, y)).collect(),
                ));
            }
            "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc"
                if self.r.start != self.r.end =>
            {
                let mark = self.annotation_mark();
                self.ctx.annotations.borrow_mut().warn(
                    "PromQL warning: sort is ineffective for range queries since results are always ordered by labels",
                );
                self.position_annotations(mark, |_| Some(c.to_string()));
            }
            "info" => return self.eval_info(&args),
            _ => {}
        }
        let matrix_arg = args
            .iter()
            .position(|a| matches!(a, Expr::MatrixSelector(_) | Expr::Subquery(_)));
        if let Some(idx) = matrix_arg {
            return self.eval_range_call(name, &args, idx);
        }
        match name {
            "timestamp" => self.eval_timestamp(&args),
            "absent" => self.eval_absent(&args),
            "scalar" => self.eval_scalar_fn(&args),
            "vector" => match self.eval(args_get(&args, 0)?)? {
                Val::Scalar(v) => {
                    let points: Vec<Sample> = v
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| Sample { t: self.r.ts(i), v })
                        .collect();
                    Ok(Val::Vector(vec![StepSeries {
                        labels: Labels::empty(),
                        drop_name: false,
                        points,
                    }]))
                }
                _ => Err(eval_err("vector() expects a scalar")),
            },
            _ => self.eval_instant_call(name, &args),
        }
    }

    fn eval_timestamp(&self, args: &[&Expr]) -> Result<Val, EvalError> {
        let delayed = self.ctx.delayed;
        let mark = |labels: Labels| {
            if delayed {
                (labels, true)
            } else {
                (drop_name(&labels), false)
            }
        };
        let arg = args_get(args, 0)?;
        let series: Vec<StepSeries> = if let Expr::VectorSelector(vs) = arg {
            self.eval_timestamp_of_selector(vs)?
                .into_iter()
                .map(|(labels, points)| {
                    let (labels, drop_name) = mark(labels);
                    StepSeries {
                        labels,
                        drop_name,
                        points,
                    }
                })
                .collect()
        } else {
            match self.eval(arg)? {
                Val::Vector(v) => v
                    .into_iter()
                    .map(|s| {
                        let (labels, drop_name) = mark(s.labels);
                        StepSeries {
                            labels,
                            drop_name,
                            points: s
                                .points
                                .into_iter()
                                .map(|p| Sample {
                                    t: p.t,
                                    v: p.t as f64 / 1000.0,
                                })
                                .collect(),
                        }
                    })
                    .collect(),
                _ => return Err(eval_err("timestamp() expects an instant vector")),
            }
        };
        if delayed {
            Ok(Val::Vector(series))
        } else {
            Ok(Val::Vector(merge_same_labelset(series)?))
        }
    }

    fn eval_absent(&self, args: &[&Expr]) -> Result<Val, EvalError> {
        let arg = args_get(args, 0)?;
        let labels = match arg {
            Expr::VectorSelector(vs) => absent_labels(&vs_matchers_for_absent(vs)),
            _ => Labels::empty(),
        };
        let Val::Vector(series) = self.eval(arg)? else {
            return Err(eval_err("absent() expects an instant vector"));
        };
        let mut present = vec![false; self.steps()];
        for s in &series {
            for p in &s.points {
                present[self.r.index(p.t)] = true;
            }
        }
        self.ctx
            .release(series.iter().map(|s| s.points.len()).sum());
        let points: Vec<Sample> = present
            .iter()
            .enumerate()
            .filter(|(_, p)| !**p)
            .map(|(i, _)| Sample {
                t: self.r.ts(i),
                v: 1.0,
            })
            .collect();
        if points.is_empty() {
            return Ok(Val::Vector(Vec::new()));
        }
        self.ctx.charge(points.len())?;
        Ok(Val::Vector(vec![StepSeries {
            labels,
            drop_name: false,
            points,
        }]))
    }

    fn eval_scalar_fn(&self, args: &[&Expr]) -> Result<Val, EvalError> {
        let Val::Vector(series) = self.eval(args_get(args, 0)?)? else {
            return Err(eval_err("scalar() expects an instant vector"));
        };
        let mut count = vec![0u32; self.steps()];
        let mut value = vec![f64::NAN; self.steps()];
        for s in &series {
            for p in &s.points {
                let i = self.r.index(p.t);
                count[i] += 1;
                value[i] = p.v;
            }
        }
        self.ctx
            .release(series.iter().map(|s| s.points.len()).sum());
        Ok(Val::Scalar(
            count
                .iter()
                .zip(value)
                .map(|(&c, v)| if c == 1 { v } else { f64::NAN })
                .collect(),
        ))
    }

    /// A function with a range-vector argument, called per series and step.
    fn eval_range_call(&self, name: &str, args: &[&Expr], idx: usize) -> Result<Val, EvalError> {
        let input: RangeInput = match args[idx] {
            Expr::MatrixSelector(ms) => self.range_from_selector(ms)?,
            Expr::Subquery(sq) => self.range_from_subquery(sq)?,
            _ => return Err(eval_err("expected a range vector argument")),
        };
        // The other arguments are scalars (or strings), one value per step.
        let mut others: Vec<Option<Val>> = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            if i == idx {
                others.push(None);
            } else {
                others.push(Some(self.eval(a)?));
            }
        }
        if name == "absent_over_time" {
            return self.absent_over_time(&input);
        }
        let keep_name = matches!(name, "last_over_time" | "first_over_time");
        let delayed = self.ctx.delayed;
        let mut out = Vec::with_capacity(input.series.len());
        for s in &input.series {
            let mut cursor = WindowCursor::new();
            let mut points = Vec::new();
            for i in 0..self.steps() {
                let ts = self.r.ts(i);
                let end = input.window_end(ts);
                let window = cursor.window(&s.samples, end, input.range);
                if window.is_empty() {
                    continue;
                }
                self.ctx.check_transient(window.len())?;
                let mut fn_args = Vec::with_capacity(args.len());
                for (j, o) in others.iter().enumerate() {
                    if j == idx {
                        fn_args.push(FnArg::Matrix(vec![Series {
                            labels: s.labels.clone(),
                            samples: window.to_vec(),
                        }]));
                    } else {
                        fn_args.push(match o {
                            Some(Val::Scalar(v)) => FnArg::Scalar(v[i]),
                            Some(Val::Str(x)) => FnArg::String(x.clone()),
                            _ => return Err(eval_err("unexpected argument type")),
                        });
                    }
                }
                let mark = self.annotation_mark();
                let res = self.fn_ctx_call(name, fn_args, ts, (end - input.range, end))?;
                self.position_annotations(mark, |msg| annotated_arg(msg, args, Some(idx)));
                if let Some(first) = res.first() {
                    points.push(Sample { t: ts, v: first.v });
                }
            }
            if points.is_empty() {
                continue;
            }
            self.ctx.charge(points.len())?;
            let (labels, drop_name_flag) = if keep_name {
                (s.labels.clone(), false)
            } else if delayed {
                (s.labels.clone(), true)
            } else {
                (drop_name(&s.labels), false)
            };
            out.push(StepSeries {
                labels,
                drop_name: drop_name_flag,
                points,
            });
        }
        if !delayed && contains_same_labelset(out.iter().map(|s| &s.labels)) {
            return Err(eval_err(super::DUPLICATE_LABELSET));
        }
        Ok(Val::Vector(out))
    }

    fn absent_over_time(&self, input: &RangeInput) -> Result<Val, EvalError> {
        let labels = input
            .matchers
            .as_ref()
            .map(absent_labels)
            .unwrap_or_else(Labels::empty);
        let mut present = vec![false; self.steps()];
        for s in &input.series {
            let mut cursor = WindowCursor::new();
            for (i, p) in present.iter_mut().enumerate() {
                let end = input.window_end(self.r.ts(i));
                if !cursor.window(&s.samples, end, input.range).is_empty() {
                    *p = true;
                }
            }
        }
        let points: Vec<Sample> = present
            .iter()
            .enumerate()
            .filter(|(_, p)| !**p)
            .map(|(i, _)| Sample {
                t: self.r.ts(i),
                v: 1.0,
            })
            .collect();
        if points.is_empty() {
            return Ok(Val::Vector(Vec::new()));
        }
        self.ctx.charge(points.len())?;
        Ok(Val::Vector(vec![StepSeries {
            labels,
            drop_name: self.ctx.delayed,
            points,
        }]))
    }

    /// A function over instant vectors and scalars, called once per step.
    fn eval_instant_call(&self, name: &str, args: &[&Expr]) -> Result<Val, EvalError> {
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.eval(a)?);
        }
        let used: usize = vals.iter().map(Val::sample_count).sum();
        let delayed = self.ctx.delayed;
        let mut cursors: Vec<Option<StepCursor>> = vals
            .iter()
            .map(|v| match v {
                Val::Vector(s) => Some(StepCursor::new(s)),
                _ => None,
            })
            .collect();
        // label_replace / label_join: the destination label.
        let label_dst = if matches!(name, "label_replace" | "label_join") {
            match vals.get(1) {
                Some(Val::Str(s)) => Some(s.clone()),
                _ => None,
            }
        } else {
            None
        };
        let mut builder = SeriesBuilder::new(self);
        for i in 0..self.steps() {
            let ts = self.r.ts(i);
            // The first vector argument's elements, to restore names.
            let mut first_vec: Option<(usize, Vec<(usize, f64)>)> = None;
            let mut fn_args = Vec::with_capacity(vals.len());
            for (j, v) in vals.iter().enumerate() {
                match (v, cursors[j].as_mut()) {
                    (Val::Vector(series), Some(cur)) => {
                        let elems = cur.at(series, ts);
                        let vector = elems
                            .iter()
                            .map(|&(s, v)| InstantSample {
                                labels: series[s].labels.clone(),
                                t: ts,
                                v,
                            })
                            .collect();
                        if first_vec.is_none() {
                            first_vec = Some((j, elems));
                        }
                        fn_args.push(FnArg::Vector(vector));
                    }
                    (Val::Scalar(s), _) => fn_args.push(FnArg::Scalar(s[i])),
                    (Val::Str(s), _) => fn_args.push(FnArg::String(s.clone())),
                    _ => return Err(eval_err("unexpected argument type")),
                }
            }
            if delayed
                && elementwise(name)
                && let Some((j, elems)) = &first_vec
            {
                let Val::Vector(series) = &vals[*j] else {
                    continue;
                };
                for &(s, v) in elems {
                    let mut one = fn_args.clone();
                    one[*j] = FnArg::Vector(vec![InstantSample {
                        labels: series[s].labels.clone(),
                        t: ts,
                        v,
                    }]);
                    let mark = self.annotation_mark();
                    let res = self.fn_ctx_call(name, one, ts, (ts, ts))?;
                    self.position_annotations(mark, |msg| annotated_arg(msg, args, None));
                    if let Some(r) = res.first() {
                        builder.add(series[s].labels.clone(), true, ts, r.v)?;
                    }
                }
                continue;
            }
            let mark = self.annotation_mark();
            let res = self.fn_ctx_call(name, fn_args, ts, (ts, ts))?;
            self.position_annotations(mark, |msg| annotated_arg(msg, args, None));
            let flags: Option<HashMap<Labels, bool>> = match (&first_vec, delayed) {
                (Some((j, elems)), true) => {
                    let Val::Vector(series) = &vals[*j] else {
                        continue;
                    };
                    let mut m = HashMap::new();
                    for &(s, _) in elems {
                        let key = match &label_dst {
                            Some(dst) => series[s].labels.without(&[dst.as_str()]),
                            None => series[s].labels.clone(),
                        };
                        m.insert(key, series[s].drop_name);
                    }
                    Some(m)
                }
                _ => None,
            };
            for r in res {
                let flag = match (&flags, &label_dst) {
                    (_, Some(dst)) if dst == METRIC_NAME => false,
                    (Some(m), Some(dst)) => m
                        .get(&r.labels.without(&[dst.as_str()]))
                        .copied()
                        .unwrap_or(false),
                    (Some(m), None) => m.get(&r.labels).copied().unwrap_or(false),
                    _ => false,
                };
                builder.add(r.labels, flag, ts, r.v)?;
            }
        }
        let out = builder.finish();
        self.ctx.charge(out.iter().map(|s| s.points.len()).sum())?;
        self.ctx.release(used);
        Ok(Val::Vector(out))
    }

    pub(super) fn eval_aggregate(&self, a: &AggregateExpr) -> Result<Val, EvalError> {
        let op = a.op.to_string();
        let param = match &a.param {
            Some(p) => Some(self.eval(unwrap_parens(p))?),
            None => None,
        };
        let Val::Vector(input) = self.eval(unwrap_parens(&a.expr))? else {
            return Err(eval_err("aggregation expects an instant vector"));
        };
        let used: usize = input.iter().map(|s| s.points.len()).sum();
        let delayed = self.ctx.delayed;
        let passes_samples = matches!(op.as_str(), "topk" | "bottomk" | "limitk" | "limit_ratio");
        let mut cursor = StepCursor::new(&input);
        let mut builder = SeriesBuilder::new(self);
        for i in 0..self.steps() {
            let ts = self.r.ts(i);
            let elems = cursor.at(&input, ts);
            let vector: Vec<InstantSample> = elems
                .iter()
                .map(|&(s, v)| InstantSample {
                    labels: input[s].labels.clone(),
                    t: ts,
                    v,
                })
                .collect();
            let p = match &param {
                None => None,
                Some(Val::Scalar(v)) => Some(AggParam::Scalar(v[i])),
                Some(Val::Str(s)) => Some(AggParam::String(s.clone())),
                Some(_) => {
                    return Err(eval_err("aggregation parameter must be a scalar or string"));
                }
            };
            let mark = self.annotation_mark();
            let res = {
                let mut ann = self.ctx.annotations.borrow_mut();
                aggregate(&op, p, a.modifier.as_ref(), vector, ts, &mut ann)?
            };
            // Parameter warnings point at the parameter, others at the
            // aggregated expression.
            self.position_annotations(mark, |msg| {
                let node = match &a.param {
                    Some(p) if msg.contains(" value should be between ") => p,
                    _ => &a.expr,
                };
                Some(unwrap_parens(node).to_string())
            });
            // Delayed name removal: an output drops its name if any of its
            // inputs would have.
            let flags: Option<HashMap<Labels, bool>> =
                if delayed && elems.iter().any(|&(s, _)| input[s].drop_name) {
                    let mut m: HashMap<Labels, bool> = HashMap::new();
                    for &(s, _) in &elems {
                        let key = if passes_samples {
                            input[s].labels.clone()
                        } else {
                            group_labels(&input[s].labels, a.modifier.as_ref())
                        };
                        let e = m.entry(key).or_insert(false);
                        *e |= input[s].drop_name;
                    }
                    Some(m)
                } else {
                    None
                };
            for r in res {
                let flag = if op == "count_values" {
                    false
                } else {
                    flags
                        .as_ref()
                        .and_then(|m| m.get(&r.labels).copied())
                        .unwrap_or(false)
                };
                builder.add(r.labels, flag, ts, r.v)?;
            }
        }
        let out = builder.finish();
        self.ctx.charge(out.iter().map(|s| s.points.len()).sum())?;
        self.ctx.release(used);
        Ok(Val::Vector(out))
    }
}

/// The output labels of a grouping aggregation for one input series.
fn group_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        Some(LabelModifier::Include(l)) => {
            let names: Vec<&str> = l.labels.iter().map(String::as_str).collect();
            labels.keep_only(&names)
        }
        Some(LabelModifier::Exclude(l)) => {
            let mut names: Vec<&str> = l.labels.iter().map(String::as_str).collect();
            names.push(METRIC_NAME);
            labels.without(&names)
        }
        None => Labels::empty(),
    }
}

/// Go's `math.Min`: NaN wins, and -0 is less than +0.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else {
        a.min(b)
    }
}

/// Go's `math.Max`: NaN wins, and +0 is greater than -0.
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_positive() { a } else { b }
    } else {
        a.max(b)
    }
}

/// The argument of a call an annotation is about, rendered: Prometheus
/// points at the quantile for a bad quantile, at the range argument for
/// range-vector functions, and otherwise at the (first) instant-vector
/// argument.
fn annotated_arg(msg: &str, args: &[&Expr], matrix: Option<usize>) -> Option<String> {
    let typed = |t: ValueType| args.iter().find(|a| a.value_type() == t);
    let node = if msg.contains("quantile value should be between") {
        typed(ValueType::Scalar)
    } else if let Some(i) = matrix {
        args.get(i)
    } else {
        typed(ValueType::Vector).or(args.first())
    };
    node.map(|n| n.to_string())
}

fn args_get<'e>(args: &[&'e Expr], i: usize) -> Result<&'e Expr, EvalError> {
    args.get(i)
        .copied()
        .ok_or_else(|| eval_err("missing function argument"))
}
