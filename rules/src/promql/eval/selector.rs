//! Selectors and subqueries: instant vector selectors with the lookback
//! window and staleness, range (matrix) selectors and subqueries as the
//! input of range-vector functions, and `timestamp()` over a selector.
//!
//! Each selector reads the store once for the whole step range
//! (`[first ref - window, last ref]`, with `@` and `offset` applied) and
//! then walks the steps with cursors. Windows are left-open:
//! `(ref - lookback, ref]` for instant selectors, `(ref - range, ref]` for
//! range selectors. Staleness markers end a series in an instant selector
//! and are skipped by range selectors.

use std::collections::HashMap;

use promql_parser::label::Matchers;
use promql_parser::parser::{MatrixSelector, SubqueryExpr, VectorSelector};

use super::{Ev, EvalError, StepRange, StepSeries, Val, eval_err, offset_ms};
use crate::promql::storage::{MatchOp, Matcher};
use crate::promql::value::{METRIC_NAME, Sample, Series, is_stale};

/// A range-vector argument, ready to be cut into per-step windows.
pub(crate) struct RangeInput {
    /// Series with staleness markers removed, samples in time order.
    pub(crate) series: Vec<Series>,
    pub(crate) range: i64,
    pub(crate) offset: i64,
    pub(crate) at: Option<i64>,
    /// The selector whose equality matchers label `absent_over_time()`'s
    /// output (`None` for a subquery).
    pub(crate) matchers: Option<Matchers>,
}

impl RangeInput {
    /// The inclusive end of the window evaluated at step `ts`.
    pub(crate) fn window_end(&self, ts: i64) -> i64 {
        self.at.unwrap_or(ts).saturating_sub(self.offset)
    }
}

/// The matcher groups of a selector: one group, or one per `or` branch,
/// each with the metric-name matcher when the selector names a metric.
fn matcher_groups(vs: &VectorSelector) -> Vec<Vec<Matcher>> {
    let m = &vs.matchers;
    let mut groups: Vec<Vec<Matcher>> = if m.or_matchers.is_empty() {
        vec![m.matchers.clone()]
    } else {
        let mut g = m.or_matchers.clone();
        if !m.matchers.is_empty() {
            g.push(m.matchers.clone());
        }
        g
    };
    if let Some(name) = &vs.name {
        for g in &mut groups {
            g.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
        }
    }
    groups
}

impl Ev<'_, '_> {
    /// Every series matching `vs` with its samples in `[mint, maxt]`, sorted
    /// by labels (the order Prometheus' storage returns).
    fn select(&self, vs: &VectorSelector, mint: i64, maxt: i64) -> Result<Vec<Series>, EvalError> {
        let groups = matcher_groups(vs);
        let mut out: Vec<Series> = Vec::new();
        if groups.len() == 1 {
            out = self.ctx.store.select(&groups[0], mint, maxt)?;
        } else {
            let mut seen: HashMap<crate::promql::value::Labels, ()> = HashMap::new();
            for g in &groups {
                for s in self.ctx.store.select(g, mint, maxt)? {
                    if seen.insert(s.labels.clone(), ()).is_none() {
                        out.push(s);
                    }
                }
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// The reference times (`@`/`offset` applied) of the first and last step.
    fn ref_bounds(&self, at: Option<i64>, offset: i64) -> (i64, i64) {
        match at {
            Some(a) => (a.saturating_sub(offset), a.saturating_sub(offset)),
            None => (
                self.r.start.saturating_sub(offset),
                self.r.end.saturating_sub(offset),
            ),
        }
    }

    pub(super) fn eval_vector_selector(&self, vs: &VectorSelector) -> Result<Val, EvalError> {
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let steps = self.steps();
        if steps == 0 {
            return Ok(Val::Vector(Vec::new()));
        }
        let (first, last) = self.ref_bounds(at, offset);
        let lookback = self.ctx.lookback;
        let selected = self.select(vs, first.saturating_sub(lookback).saturating_add(1), last)?;
        let mut out = Vec::with_capacity(selected.len());
        for s in selected {
            let mut points = Vec::new();
            let mut j = 0usize;
            for i in 0..steps {
                let ts = self.r.ts(i);
                let reft = at.unwrap_or(ts).saturating_sub(offset);
                while j < s.samples.len() && s.samples[j].t <= reft {
                    j += 1;
                }
                if j == 0 {
                    continue;
                }
                let smp = s.samples[j - 1];
                if smp.t <= reft.saturating_sub(lookback) || is_stale(smp.v) {
                    continue;
                }
                points.push(Sample { t: ts, v: smp.v });
            }
            if !points.is_empty() {
                self.ctx.charge(points.len())?;
                out.push(StepSeries {
                    labels: s.labels,
                    drop_name: false,
                    points,
                });
            }
        }
        Ok(Val::Vector(out))
    }

    /// `timestamp(selector)`: the timestamp of the sample each step uses,
    /// not the step time. With `@`, Prometheus looks at the `@` time and
    /// ignores the selector's offset; this is kept.
    pub(super) fn eval_timestamp_of_selector(
        &self,
        vs: &VectorSelector,
    ) -> Result<Vec<(crate::promql::value::Labels, Vec<Sample>)>, EvalError> {
        let at = self.at_ms(&vs.at);
        let offset = if at.is_some() {
            0
        } else {
            offset_ms(&vs.offset)
        };
        let steps = self.steps();
        if steps == 0 {
            return Ok(Vec::new());
        }
        let (first, last) = self.ref_bounds(at, offset);
        let lookback = self.ctx.lookback;
        let selected = self.select(vs, first.saturating_sub(lookback).saturating_add(1), last)?;
        let mut out = Vec::new();
        for s in selected {
            let mut points = Vec::new();
            let mut j = 0usize;
            for i in 0..steps {
                let ts = self.r.ts(i);
                let reft = at.unwrap_or(ts).saturating_sub(offset);
                while j < s.samples.len() && s.samples[j].t <= reft {
                    j += 1;
                }
                if j == 0 {
                    continue;
                }
                let smp = s.samples[j - 1];
                if smp.t <= reft.saturating_sub(lookback) || is_stale(smp.v) {
                    continue;
                }
                points.push(Sample {
                    t: ts,
                    v: smp.t as f64 / 1000.0,
                });
            }
            if !points.is_empty() {
                self.ctx.charge(points.len())?;
                out.push((s.labels, points));
            }
        }
        Ok(out)
    }

    /// A matrix selector as a range-vector argument.
    pub(super) fn range_from_selector(&self, ms: &MatrixSelector) -> Result<RangeInput, EvalError> {
        let vs = &ms.vs;
        let offset = offset_ms(&vs.offset);
        let at = self.at_ms(&vs.at);
        let range = ms.range.as_millis() as i64;
        let (first, last) = self.ref_bounds(at, offset);
        let mut series = if self.steps() == 0 {
            Vec::new()
        } else {
            self.select(vs, first.saturating_sub(range).saturating_add(1), last)?
        };
        for s in &mut series {
            s.samples.retain(|x| !is_stale(x.v));
        }
        series.retain(|s| !s.samples.is_empty());
        Ok(RangeInput {
            series,
            range,
            offset,
            at,
            matchers: Some(vs_matchers_for_absent(vs)),
        })
    }

    /// A subquery as a range-vector argument: the inner expression is
    /// evaluated once over the steps that cover every window, aligned to
    /// multiples of the subquery step from the epoch.
    pub(super) fn range_from_subquery(&self, sq: &SubqueryExpr) -> Result<RangeInput, EvalError> {
        let offset = offset_ms(&sq.offset);
        let at = self.at_ms(&sq.at);
        let range = sq.range.as_millis() as i64;
        let series = if self.steps() == 0 {
            Vec::new()
        } else {
            let inner = self.subquery_evaluator(sq, at, offset, range);
            // Every inner step may hold a sample: refuse before allocating.
            if inner.steps() > self.ctx.max_samples {
                return Err(EvalError::TooManySamples);
            }
            match inner.eval(&sq.expr)? {
                Val::Vector(v) => v
                    .into_iter()
                    .map(|s| Series {
                        labels: if s.drop_name {
                            super::drop_name(&s.labels)
                        } else {
                            s.labels
                        },
                        samples: s.points,
                    })
                    .collect(),
                _ => return Err(eval_err("subquery is only allowed on instant vector")),
            }
        };
        Ok(RangeInput {
            series,
            range,
            offset,
            at,
            matchers: None,
        })
    }

    fn subquery_evaluator(
        &self,
        sq: &SubqueryExpr,
        at: Option<i64>,
        offset: i64,
        range: i64,
    ) -> Ev<'_, '_> {
        let step = match sq.step {
            Some(d) if d.as_millis() > 0 => d.as_millis() as i64,
            _ => self.ctx.no_step_subquery_interval,
        };
        let base_start = at.unwrap_or(self.r.start);
        let base_end = at.unwrap_or(self.r.end);
        let lower = base_start.saturating_sub(offset).saturating_sub(range);
        // Go's integer division truncates towards zero, as Rust's does.
        let mut start = step.saturating_mul(lower / step);
        if start <= lower {
            start = start.saturating_add(step);
        }
        self.with_range(StepRange {
            start,
            end: base_end.saturating_sub(offset),
            interval: step,
        })
    }

    /// A bare matrix selector (only valid in an instant query): the
    /// samples in the window at the evaluation time.
    pub(super) fn eval_bare_matrix_selector(&self, ms: &MatrixSelector) -> Result<Val, EvalError> {
        if self.steps() > 1 {
            return Err(eval_err("cannot do range evaluation of matrix selector"));
        }
        let input = self.range_from_selector(ms)?;
        let end = input.window_end(self.r.start);
        let start = end - input.range;
        let mut out = Vec::new();
        for mut s in input.series {
            s.samples.retain(|x| x.t > start && x.t <= end);
            if !s.samples.is_empty() {
                self.ctx.charge(s.samples.len())?;
                out.push(s);
            }
        }
        Ok(Val::Matrix(out))
    }

    /// A bare subquery (only valid in an instant query): every point the
    /// inner evaluation produced.
    pub(super) fn eval_bare_subquery(&self, sq: &SubqueryExpr) -> Result<Val, EvalError> {
        if self.steps() > 1 {
            return Err(eval_err("cannot do range evaluation of subquery"));
        }
        let input = self.range_from_subquery(sq)?;
        Ok(Val::Matrix(
            input
                .series
                .into_iter()
                .filter(|s| !s.samples.is_empty())
                .collect(),
        ))
    }
}

/// The matchers of a selector as `absent()` reads them: `or` selectors
/// yield no labels.
pub(crate) fn vs_matchers_for_absent(vs: &VectorSelector) -> Matchers {
    if vs.matchers.or_matchers.is_empty() {
        vs.matchers.clone()
    } else {
        Matchers::empty()
    }
}

/// Iterates the windows of one series over the steps of an evaluator:
/// `(ref - range, ref]`, with cursors that only move forward.
pub(crate) struct WindowCursor {
    lo: usize,
    hi: usize,
}

impl WindowCursor {
    pub(crate) fn new() -> Self {
        WindowCursor { lo: 0, hi: 0 }
    }

    /// The samples in `(end - range, end]`; `end` must not decrease
    /// between calls.
    pub(crate) fn window<'s>(
        &mut self,
        samples: &'s [Sample],
        end: i64,
        range: i64,
    ) -> &'s [Sample] {
        while self.hi < samples.len() && samples[self.hi].t <= end {
            self.hi += 1;
        }
        if self.lo > self.hi {
            self.lo = self.hi;
        }
        while self.lo < self.hi && samples[self.lo].t <= end.saturating_sub(range) {
            self.lo += 1;
        }
        &samples[self.lo..self.hi]
    }
}
