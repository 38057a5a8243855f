//! PromQL functions, called by the evaluator once per evaluation step with
//! their arguments already evaluated.
//!
//! CONTRACT between the evaluator (`eval`) and this module:
//! - The evaluator handles itself the functions that need the expression
//!   tree or raw sample timestamps: `absent`, `absent_over_time`,
//!   `timestamp`, `time`, `pi`, `scalar`, `vector`, `info`, and the
//!   feature-flagged ones.
//! - Every other Prometheus 3 function is dispatched through [`call`]:
//!   range-vector functions receive each series' float samples inside the
//!   window (left-open `(window_start, window_end]`, staleness markers
//!   removed, oldest first); instant-vector functions receive the vector.
//! - [`call`] returns the output vector with labels as Prometheus builds
//!   them (most functions drop `__name__`; `last_over_time`, `first_over_time`,
//!   `sort*`, `label_*` keep it), timestamps set to `ctx.eval_ts`, and adds
//!   Prometheus' warnings and infos (same wording) to `ctx.annotations`.
//!
//! Annotations carry Prometheus' text without the `(line:col)` position
//! suffix: the evaluator does not pass expression positions down.
//!
//! Two functions the parser knows are refused with an error: `integral`
//! (an upstream proposal that Prometheus has not merged) and
//! `start_timestamp` (it reads sample start times, which the store does not
//! keep).
//!
//! The submodules follow Prometheus' families: [`range`] (the `*_over_time`
//! and rate family), [`math`] (element-wise float functions), [`time`]
//! (calendar functions, UTC), [`labels`] (`label_replace`, `label_join`),
//! [`sort`] and [`histogram`] (classic `le` bucket histograms).

mod histogram;
mod labels;
mod math;
mod range;
mod sort;
mod stats;
mod time;

use std::collections::HashSet;

use super::Annotations;
use super::eval::EvalError;
use super::value::{InstantSample, Labels, METRIC_NAME, Matrix, Series, Vector};

/// One evaluated argument.
#[derive(Debug, Clone)]
pub enum FnArg {
    Scalar(f64),
    String(String),
    Vector(Vector),
    Matrix(Matrix),
}

/// Where and when a call is evaluated.
#[derive(Debug)]
pub struct FnCtx<'a> {
    /// The evaluation time of this step (ms).
    pub eval_ts: i64,
    /// For a range-vector argument: the exclusive start and inclusive end of
    /// its window (ms), after `offset` and `@` were applied.
    pub window_start: i64,
    pub window_end: i64,
    /// Where warnings and infos go.
    pub annotations: &'a mut Annotations,
}

/// Calls the function `name` (as promql-parser names it) on `args`.
pub fn call(name: &str, args: Vec<FnArg>, ctx: &mut FnCtx<'_>) -> Result<Vector, EvalError> {
    let mut args = Args::new(name, args);
    let mut out = match name {
        // Range-vector functions.
        "rate"
        | "increase"
        | "delta"
        | "irate"
        | "idelta"
        | "deriv"
        | "predict_linear"
        | "changes"
        | "resets"
        | "avg_over_time"
        | "min_over_time"
        | "max_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "quantile_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "mad_over_time"
        | "ts_of_first_over_time"
        | "ts_of_last_over_time"
        | "ts_of_max_over_time"
        | "ts_of_min_over_time"
        | "double_exponential_smoothing" => range::call(name, &mut args, ctx)?,
        "abs" | "ceil" | "floor" | "exp" | "sqrt" | "ln" | "log2" | "log10" | "sin" | "cos"
        | "tan" | "asin" | "acos" | "atan" | "sinh" | "cosh" | "tanh" | "asinh" | "acosh"
        | "atanh" | "rad" | "deg" | "sgn" | "round" | "clamp" | "clamp_min" | "clamp_max" => {
            math::call(name, &mut args, ctx)?
        }
        "year" | "month" | "day_of_month" | "day_of_year" | "day_of_week" | "days_in_month"
        | "hour" | "minute" => time::call(name, &mut args, ctx)?,
        "label_replace" => labels::label_replace(&mut args, ctx)?,
        "label_join" => labels::label_join(&mut args, ctx)?,
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
            sort::call(name, &mut args)?
        }
        "histogram_quantile"
        | "histogram_quantiles"
        | "histogram_fraction"
        | "histogram_count"
        | "histogram_sum"
        | "histogram_avg"
        | "histogram_stddev"
        | "histogram_stdvar" => histogram::call(name, &mut args, ctx)?,
        _ => {
            return Err(EvalError::Eval(format!(
                "function {name:?} is not supported"
            )));
        }
    };
    check_unique_labelsets(&out)?;
    // Functions that pass elements through (`sort`) keep the input's
    // timestamps; the contract is that every result carries the step's.
    for s in &mut out {
        s.t = ctx.eval_ts;
    }
    Ok(out)
}

/// Prometheus refuses a function result holding one label set twice (e.g.
/// `changes({__name__=~"a|b"}[5m])` once the names are dropped).
fn check_unique_labelsets(out: &Vector) -> Result<(), EvalError> {
    if out.len() < 2 {
        return Ok(());
    }
    let mut seen: HashSet<&Labels> = HashSet::with_capacity(out.len());
    for s in out {
        if !seen.insert(&s.labels) {
            return Err(EvalError::Eval(
                "vector cannot contain metrics with the same labelset".to_string(),
            ));
        }
    }
    Ok(())
}

/// The labels Prometheus removes from a function's result when it changes
/// the meaning of the value (`schema.IsMetadataLabel`): the name, and the
/// type and unit labels of the type-and-unit feature.
const METADATA_LABELS: [&str; 3] = [METRIC_NAME, "__type__", "__unit__"];

/// `labels` without the metric name and metadata labels.
pub(crate) fn drop_metadata(labels: &Labels) -> Labels {
    labels.without(&METADATA_LABELS)
}

/// The evaluated arguments of one call, taken out by position with the
/// type the parser guarantees; a mismatch is reported as an error rather
/// than a panic, since the evaluator is another crate-internal party.
pub(crate) struct Args<'n> {
    name: &'n str,
    items: Vec<Option<FnArg>>,
}

impl<'n> Args<'n> {
    fn new(name: &'n str, args: Vec<FnArg>) -> Self {
        Args {
            name,
            items: args.into_iter().map(Some).collect(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    fn missing(&self, i: usize, what: &str) -> EvalError {
        EvalError::Eval(format!(
            "function {}: expected a {what} as argument {}",
            self.name,
            i + 1
        ))
    }

    pub(crate) fn scalar(&self, i: usize) -> Result<f64, EvalError> {
        match self.items.get(i) {
            Some(Some(FnArg::Scalar(v))) => Ok(*v),
            _ => Err(self.missing(i, "scalar")),
        }
    }

    pub(crate) fn string(&self, i: usize) -> Result<&str, EvalError> {
        match self.items.get(i) {
            Some(Some(FnArg::String(s))) => Ok(s),
            _ => Err(self.missing(i, "string")),
        }
    }

    pub(crate) fn take_vector(&mut self, i: usize) -> Result<Vector, EvalError> {
        match self.items.get_mut(i).and_then(Option::take) {
            Some(FnArg::Vector(v)) => Ok(v),
            other => {
                // Put a wrongly typed argument back so a later error message
                // still sees the original arguments.
                if let (Some(slot), Some(arg)) = (self.items.get_mut(i), other) {
                    *slot = Some(arg);
                }
                Err(self.missing(i, "instant vector"))
            }
        }
    }

    pub(crate) fn take_matrix(&mut self, i: usize) -> Result<Matrix, EvalError> {
        match self.items.get_mut(i).and_then(Option::take) {
            Some(FnArg::Matrix(m)) => Ok(m),
            other => {
                if let (Some(slot), Some(arg)) = (self.items.get_mut(i), other) {
                    *slot = Some(arg);
                }
                Err(self.missing(i, "range vector"))
            }
        }
    }
}

/// An output sample at the evaluation time.
pub(crate) fn sample(labels: Labels, v: f64, ctx: &FnCtx<'_>) -> InstantSample {
    InstantSample {
        labels,
        t: ctx.eval_ts,
        v,
    }
}

/// The metric name of a series, for annotations.
pub(crate) fn metric_name(s: &Series) -> &str {
    s.labels.metric_name()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
pub(crate) mod testutil {
    //! Builders shared by the submodules' tests.

    use super::*;
    use crate::promql::value::Sample;

    pub fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    pub fn series(pairs: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
        Series {
            labels: labels(pairs),
            samples: points.iter().map(|&(t, v)| Sample { t, v }).collect(),
        }
    }

    pub fn vector(items: &[(&[(&str, &str)], f64)]) -> Vector {
        items
            .iter()
            .map(|(l, v)| InstantSample {
                labels: labels(l),
                t: 0,
                v: *v,
            })
            .collect()
    }

    /// Calls `name` at `eval_ts` with a window of `range_ms` ending there.
    pub fn run(
        name: &str,
        args: Vec<FnArg>,
        eval_ts: i64,
        range_ms: i64,
    ) -> (Result<Vector, EvalError>, Annotations) {
        let mut ann = Annotations::default();
        let mut ctx = FnCtx {
            eval_ts,
            window_start: eval_ts - range_ms,
            window_end: eval_ts,
            annotations: &mut ann,
        };
        let r = call(name, args, &mut ctx);
        (r, ann)
    }

    /// Like [`run`], expecting success; returns `(labels, value)` pairs.
    pub fn values(name: &str, args: Vec<FnArg>, eval_ts: i64, range_ms: i64) -> Vec<(String, f64)> {
        match run(name, args, eval_ts, range_ms).0 {
            Ok(v) => v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect(),
            Err(e) => panic!("{name} failed: {e}"),
        }
    }

    /// Asserts `a` and `b` are equal floats, both NaN, or within 1e-9
    /// relative error.
    pub fn assert_close(a: f64, b: f64) {
        if a.is_nan() && b.is_nan() {
            return;
        }
        if a == b {
            return;
        }
        let tol = 1e-9 * a.abs().max(b.abs());
        assert!((a - b).abs() <= tol, "{a} != {b}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn unknown_function_is_an_error() {
        let (r, _) = run("absent", vec![FnArg::Vector(vec![])], 0, 0);
        assert!(r.is_err());
    }

    #[test]
    fn wrong_argument_type_is_an_error_not_a_panic() {
        let (r, _) = run("abs", vec![FnArg::Scalar(1.0)], 0, 0);
        assert!(r.is_err());
        let (r, _) = run("rate", vec![], 0, 0);
        assert!(r.is_err());
    }

    #[test]
    fn duplicate_output_labelsets_are_refused() {
        let m = vec![
            series(
                &[("__name__", "a"), ("x", "1")],
                &[(1000, 1.0), (2000, 2.0)],
            ),
            series(
                &[("__name__", "b"), ("x", "1")],
                &[(1000, 1.0), (2000, 2.0)],
            ),
        ];
        let (r, _) = run("changes", vec![FnArg::Matrix(m)], 2000, 5000);
        match r {
            Err(e) => assert_eq!(
                e.to_string(),
                "vector cannot contain metrics with the same labelset"
            ),
            Ok(v) => panic!("expected an error, got {v:?}"),
        }
    }

    #[test]
    fn metadata_labels_are_dropped() {
        let l = labels(&[("__name__", "x"), ("__type__", "gauge"), ("a", "1")]);
        assert_eq!(drop_metadata(&l).to_string(), r#"{a="1"}"#);
    }
}
