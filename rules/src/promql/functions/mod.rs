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

use super::eval::EvalError;
use super::value::{Matrix, Vector};
use super::Annotations;

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
    let _ = (args, ctx);
    Err(EvalError::Eval(format!("function {name} not built yet")))
}
