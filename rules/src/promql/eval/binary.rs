//! Binary operators: arithmetic, comparison (filtering or `bool`), and the
//! set operators `and`, `or`, `unless`, between scalars and instant
//! vectors, with one-to-one and `group_left`/`group_right` vector matching
//! (`on`, `ignoring`) and the `fill*` modifiers.
//!
//! Matching follows Prometheus' `VectorBinop`: the match signature of a
//! series is its `on` labels, or all labels but the `ignoring` ones and
//! `__name__`; the "one" side must be unique per signature, and errors use
//! Prometheus' wording.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::{
    Ev, EvalError, SeriesBuilder, StepCursor, StepSeries, Val, drop_name, eval_err,
    go_labels_string, merge_same_labelset,
};
use crate::promql::value::{Label, Labels, METRIC_NAME};

/// The operators, resolved once per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    And,
    Or,
    Unless,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "+" => Op::Add,
            "-" => Op::Sub,
            "*" => Op::Mul,
            "/" => Op::Div,
            "%" => Op::Mod,
            "^" => Op::Pow,
            "atan2" => Op::Atan2,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            "<" => Op::Lt,
            ">=" => Op::Ge,
            "<=" => Op::Le,
            "and" => Op::And,
            "or" => Op::Or,
            "unless" => Op::Unless,
            _ => return None,
        })
    }

    fn is_comparison(self) -> bool {
        matches!(self, Op::Eq | Op::Ne | Op::Gt | Op::Lt | Op::Ge | Op::Le)
    }

    /// Arithmetic changes what the value means, so the name goes.
    fn changes_schema(self) -> bool {
        matches!(
            self,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::Mod | Op::Atan2
        )
    }
}

/// `(value, keep)` of one element pair: arithmetic always keeps; a
/// comparison keeps the left value when it holds.
fn elem_binop(op: Op, l: f64, r: f64) -> (f64, bool) {
    match op {
        Op::Add => (l + r, true),
        Op::Sub => (l - r, true),
        Op::Mul => (l * r, true),
        Op::Div => (l / r, true),
        Op::Mod => (l % r, true),
        Op::Pow => (l.powf(r), true),
        Op::Atan2 => (l.atan2(r), true),
        Op::Eq => (l, l == r),
        Op::Ne => (l, l != r),
        Op::Gt => (l, l > r),
        Op::Lt => (l, l < r),
        Op::Ge => (l, l >= r),
        Op::Le => (l, l <= r),
        Op::And | Op::Or | Op::Unless => (l, false),
    }
}

fn scalar_binop(op: Op, l: f64, r: f64) -> f64 {
    let (v, keep) = elem_binop(op, l, r);
    if op.is_comparison() {
        if keep { 1.0 } else { 0.0 }
    } else {
        v
    }
}

/// How two vectors are matched.
struct Matching {
    on: bool,
    names: Vec<String>,
    card: VectorMatchCardinality,
    include: Vec<String>,
    fill_lhs: Option<f64>,
    fill_rhs: Option<f64>,
}

impl Matching {
    fn from_expr(b: &BinaryExpr) -> Matching {
        let Some(m) = &b.modifier else {
            return Matching {
                on: false,
                names: Vec::new(),
                card: VectorMatchCardinality::OneToOne,
                include: Vec::new(),
                fill_lhs: None,
                fill_rhs: None,
            };
        };
        let (on, names) = match &m.matching {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
        let include = m
            .card
            .labels()
            .map(|l| l.labels.clone())
            .unwrap_or_default();
        Matching {
            on,
            names,
            card: m.card.clone(),
            include,
            fill_lhs: m.fill_values.lhs,
            fill_rhs: m.fill_values.rhs,
        }
    }

    fn signature(&self, labels: &Labels) -> Labels {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        if self.on {
            labels.keep_only(&names)
        } else {
            let mut n = names;
            n.push(METRIC_NAME);
            labels.without(&n)
        }
    }

    fn one_to_many(&self) -> bool {
        matches!(self.card, VectorMatchCardinality::OneToMany(_))
    }

    fn one_to_one(&self) -> bool {
        matches!(self.card, VectorMatchCardinality::OneToOne)
    }
}

/// One vector element in a step: which series, its value.
#[derive(Clone, Copy)]
struct Elem {
    /// Index into the side's series; `usize::MAX` for a fill element.
    series: usize,
    v: f64,
    sig: usize,
}

impl Ev<'_, '_> {
    pub(super) fn eval_binary(&self, b: &BinaryExpr) -> Result<Val, EvalError> {
        let op_str = b.op.to_string();
        let op = Op::parse(&op_str)
            .ok_or_else(|| eval_err(format!("operator {op_str:?} not allowed")))?;
        let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
        let lhs = self.eval(&b.lhs)?;
        let rhs = self.eval(&b.rhs)?;
        let used = lhs.sample_count() + rhs.sample_count();
        let out = match (lhs, rhs) {
            (Val::Scalar(l), Val::Scalar(r)) => Val::Scalar(
                l.iter()
                    .zip(r.iter())
                    .map(|(&a, &b)| scalar_binop(op, a, b))
                    .collect(),
            ),
            (Val::Vector(l), Val::Scalar(r)) => {
                Val::Vector(self.vector_scalar(op, l, &r, false, return_bool)?)
            }
            (Val::Scalar(l), Val::Vector(r)) => {
                Val::Vector(self.vector_scalar(op, r, &l, true, return_bool)?)
            }
            (Val::Vector(l), Val::Vector(r)) => {
                let m = Matching::from_expr(b);
                Val::Vector(self.vector_vector(op, &l, &r, &m, return_bool)?)
            }
            _ => return Err(eval_err("binary operator on a string or range vector")),
        };
        self.ctx.charge(out.sample_count())?;
        self.ctx.release(used);
        Ok(out)
    }

    fn vector_scalar(
        &self,
        op: Op,
        series: Vec<StepSeries>,
        scalar: &[f64],
        swap: bool,
        return_bool: bool,
    ) -> Result<Vec<StepSeries>, EvalError> {
        if !(op.is_comparison() || op.changes_schema()) {
            return Err(eval_err(format!(
                "set operator {op:?} not allowed in binary scalar expression"
            )));
        }
        let delayed = self.ctx.delayed;
        let drops = op.changes_schema() || return_bool;
        let mut out = Vec::with_capacity(series.len());
        for s in series {
            let mut points = Vec::with_capacity(s.points.len());
            for p in &s.points {
                let sv = scalar[self.r.index(p.t)];
                let (l, r) = if swap { (sv, p.v) } else { (p.v, sv) };
                let (mut v, mut keep) = elem_binop(op, l, r);
                // A comparison keeps the vector's value even when the scalar
                // is on the left.
                if op.is_comparison() && swap {
                    v = p.v;
                }
                if return_bool {
                    v = if keep { 1.0 } else { 0.0 };
                    keep = true;
                }
                if keep {
                    points.push(crate::promql::value::Sample { t: p.t, v });
                }
            }
            if points.is_empty() {
                continue;
            }
            let (labels, drop_name_flag) = if drops {
                if delayed {
                    (s.labels, true)
                } else {
                    (drop_name(&s.labels), false)
                }
            } else {
                (s.labels, s.drop_name)
            };
            out.push(StepSeries {
                labels,
                drop_name: drop_name_flag,
                points,
            });
        }
        if drops && !delayed {
            merge_same_labelset(out)
        } else {
            Ok(out)
        }
    }

    fn vector_vector(
        &self,
        op: Op,
        lhs: &[StepSeries],
        rhs: &[StepSeries],
        m: &Matching,
        return_bool: bool,
    ) -> Result<Vec<StepSeries>, EvalError> {
        // Signature ordinals, computed once per series.
        let mut sig_index: HashMap<Labels, usize> = HashMap::new();
        let mut sig_of = |labels: &Labels| -> usize {
            let sig = m.signature(labels);
            let n = sig_index.len();
            *sig_index.entry(sig).or_insert(n)
        };
        let lsig: Vec<usize> = lhs.iter().map(|s| sig_of(&s.labels)).collect();
        let rsig: Vec<usize> = rhs.iter().map(|s| sig_of(&s.labels)).collect();
        let mut lcur = StepCursor::new(lhs);
        let mut rcur = StepCursor::new(rhs);
        let mut builder = SeriesBuilder::new(self);
        let mut cache: HashMap<(usize, usize), Labels> = HashMap::new();
        for i in 0..self.steps() {
            let ts = self.r.ts(i);
            let l: Vec<Elem> = lcur
                .at(lhs, ts)
                .into_iter()
                .map(|(s, v)| Elem {
                    series: s,
                    v,
                    sig: lsig[s],
                })
                .collect();
            let r: Vec<Elem> = rcur
                .at(rhs, ts)
                .into_iter()
                .map(|(s, v)| Elem {
                    series: s,
                    v,
                    sig: rsig[s],
                })
                .collect();
            match op {
                Op::And | Op::Or | Op::Unless => {
                    for (side, e) in set_op(op, &l, &r) {
                        let s = if side { &rhs[e.series] } else { &lhs[e.series] };
                        builder.add(s.labels.clone(), s.drop_name, ts, e.v)?;
                    }
                }
                _ => {
                    let out = self.binop_step(op, lhs, rhs, &l, &r, m, return_bool, &mut cache)?;
                    for (labels, drop, v) in out {
                        builder.add(labels, drop, ts, v)?;
                    }
                }
            }
        }
        Ok(builder.finish())
    }

    /// One step of an arithmetic or comparison operation between vectors.
    #[expect(
        clippy::too_many_arguments,
        reason = "one step of VectorBinop needs both sides and their state"
    )]
    fn binop_step(
        &self,
        op: Op,
        lhs_series: &[StepSeries],
        rhs_series: &[StepSeries],
        lhs: &[Elem],
        rhs: &[Elem],
        m: &Matching,
        return_bool: bool,
        cache: &mut HashMap<(usize, usize), Labels>,
    ) -> Result<Vec<(Labels, bool, f64)>, EvalError> {
        let no_fill = m.fill_lhs.is_none() && m.fill_rhs.is_none();
        if (lhs.is_empty() && rhs.is_empty()) || ((lhs.is_empty() || rhs.is_empty()) && no_fill) {
            return Ok(Vec::new());
        }
        // For one-to-many, the right side is the "many" side: swap, and
        // swap back when computing values. The fill values are not swapped
        // (Prometheus applies `fill_right` to a missing "one" side and
        // `fill_left` to a missing "many" side after the swap).
        let swapped = m.one_to_many();
        let (many, one, many_series, one_series, many_fill, one_fill) = if swapped {
            (rhs, lhs, rhs_series, lhs_series, m.fill_lhs, m.fill_rhs)
        } else {
            (lhs, rhs, lhs_series, rhs_series, m.fill_lhs, m.fill_rhs)
        };
        let mut one_by_sig: HashMap<usize, Elem> = HashMap::new();
        let mut one_order: Vec<usize> = Vec::new();
        for e in one {
            if let Some(prev) = one_by_sig.get(&e.sig) {
                let side = if swapped { "left" } else { "right" };
                let a = &one_series[e.series].labels;
                let b = &one_series[prev.series].labels;
                let match_group = match_labels(a, m);
                let (first, second) = if a <= b { (a, b) } else { (b, a) };
                return Err(eval_err(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    go_labels_string(&match_group),
                    go_labels_string(first),
                    go_labels_string(second),
                )));
            }
            one_by_sig.insert(e.sig, *e);
            one_order.push(e.sig);
        }

        let mut matched: HashMap<usize, HashSet<Labels>> = HashMap::new();
        let mut out = Vec::new();
        let fill_labels =
            |e: &Elem, series: &[StepSeries]| match_labels(&series[e.series].labels, m);

        let delayed = self.ctx.delayed;
        let do_op = |many_e: Option<&Elem>,
                     many_labels: Labels,
                     one_e: Option<&Elem>,
                     one_labels: Labels,
                     (many_v, one_v): (f64, f64),
                     sig: usize,
                     matched: &mut HashMap<usize, HashSet<Labels>>,
                     cache: &mut HashMap<(usize, usize), Labels>,
                     out: &mut Vec<(Labels, bool, f64)>|
         -> Result<(), EvalError> {
            let (fl, fr) = if swapped {
                (one_v, many_v)
            } else {
                (many_v, one_v)
            };
            let (mut v, keep) = elem_binop(op, fl, fr);
            if return_bool {
                v = if keep { 1.0 } else { 0.0 };
            }
            let key = (
                many_e.map_or(usize::MAX, |e| e.series),
                one_e.map_or(usize::MAX, |e| e.series),
            );
            let mut metric = match (many_e.is_some() && one_e.is_some())
                .then(|| cache.get(&key))
                .flatten()
            {
                Some(l) => l.clone(),
                None => {
                    let l = result_metric(&many_labels, &one_labels, op, m);
                    if many_e.is_some() && one_e.is_some() {
                        cache.insert(key, l.clone());
                    }
                    l
                }
            };
            if !delayed && return_bool {
                metric = drop_name(&metric);
            }
            let seen = matched.entry(sig);
            if m.one_to_one() {
                if let std::collections::hash_map::Entry::Occupied(_) = seen {
                    return Err(eval_err(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    ));
                }
                seen.or_default();
            } else {
                let set = seen.or_default();
                if !set.insert(metric.clone()) {
                    return Err(eval_err(
                        "multiple matches for labels: grouping labels must ensure unique matches",
                    ));
                }
            }
            if !keep && !return_bool {
                return Ok(());
            }
            out.push((metric, return_bool, v));
            Ok(())
        };

        for e in many {
            let many_labels = many_series[e.series].labels.clone();
            match one_by_sig.get(&e.sig) {
                Some(o) => {
                    let one_labels = one_series[o.series].labels.clone();
                    do_op(
                        Some(e),
                        many_labels,
                        Some(o),
                        one_labels,
                        (e.v, o.v),
                        e.sig,
                        &mut matched,
                        cache,
                        &mut out,
                    )?;
                }
                None => {
                    if let Some(fill) = one_fill {
                        let one_labels = fill_labels(e, many_series);
                        do_op(
                            Some(e),
                            many_labels,
                            None,
                            one_labels,
                            (e.v, fill),
                            e.sig,
                            &mut matched,
                            cache,
                            &mut out,
                        )?;
                    }
                }
            }
        }
        if let Some(fill) = many_fill {
            for sig in one_order {
                if matched.contains_key(&sig) {
                    continue;
                }
                let Some(o) = one_by_sig.get(&sig) else {
                    continue;
                };
                let one_labels = one_series[o.series].labels.clone();
                let many_labels = fill_labels(o, one_series);
                do_op(
                    None,
                    many_labels,
                    Some(o),
                    one_labels,
                    (fill, o.v),
                    sig,
                    &mut matched,
                    cache,
                    &mut out,
                )?;
            }
        }
        Ok(out)
    }
}

/// The set operators over one step; `true` marks an element of the right
/// side.
fn set_op(op: Op, l: &[Elem], r: &[Elem]) -> Vec<(bool, Elem)> {
    match op {
        Op::And => {
            if l.is_empty() || r.is_empty() {
                return Vec::new();
            }
            let right: HashSet<usize> = r.iter().map(|e| e.sig).collect();
            l.iter()
                .filter(|e| right.contains(&e.sig))
                .map(|e| (false, *e))
                .collect()
        }
        Op::Or => {
            let left: HashSet<usize> = l.iter().map(|e| e.sig).collect();
            let mut out: Vec<(bool, Elem)> = l.iter().map(|e| (false, *e)).collect();
            out.extend(
                r.iter()
                    .filter(|e| !left.contains(&e.sig))
                    .map(|e| (true, *e)),
            );
            out
        }
        Op::Unless => {
            let right: HashSet<usize> = r.iter().map(|e| e.sig).collect();
            l.iter()
                .filter(|e| !right.contains(&e.sig))
                .map(|e| (false, *e))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Prometheus' `Labels.MatchLabels`: the `on` labels, or all but the
/// `ignoring` labels and the name.
fn match_labels(labels: &Labels, m: &Matching) -> Labels {
    m.signature(labels)
}

/// The labels of a result element (Prometheus' `resultMetric`): the "many"
/// side's labels, without the name for arithmetic, reduced to the matching
/// labels for one-to-one matching, plus `group_x` labels from the "one"
/// side.
fn result_metric(many: &Labels, one: &Labels, op: Op, m: &Matching) -> Labels {
    let mut labels: Vec<Label> = many.iter().cloned().collect();
    if op.changes_schema() {
        labels.retain(|l| l.name != METRIC_NAME && l.name != "__type__" && l.name != "__unit__");
    }
    if m.one_to_one() {
        if m.on {
            labels.retain(|l| m.names.contains(&l.name));
        } else {
            labels.retain(|l| !m.names.contains(&l.name));
        }
    }
    for name in &m.include {
        labels.retain(|l| l.name != *name);
        let v = one.get(name);
        if !v.is_empty() {
            labels.push(Label {
                name: name.clone(),
                value: v.to_string(),
            });
        }
    }
    Labels::from_vec(labels)
}
