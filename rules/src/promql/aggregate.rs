//! PromQL aggregation operators (`sum`, `avg`, `min`, `max`, `count`,
//! `group`, `stddev`, `stdvar`, `topk`, `bottomk`, `quantile`,
//! `count_values`, `limitk`, `limit_ratio`) over one step's instant vector.
//!
//! CONTRACT between the evaluator and this module: the evaluator evaluates
//! the operand and the parameter for the step and calls [`aggregate`].

use promql_parser::parser::LabelModifier;

use super::eval::EvalError;
use super::value::Vector;
use super::Annotations;

/// The evaluated parameter of `topk`, `bottomk`, `quantile`, `limitk`,
/// `limit_ratio` (a scalar) or `count_values` (a string).
#[derive(Debug, Clone)]
pub enum AggParam {
    Scalar(f64),
    String(String),
}

/// Aggregates `input` with the operator named `op` (as promql-parser's
/// token display names it, e.g. "sum", "count_values"), grouping by the
/// `by`/`without` modifier. Output samples carry `eval_ts`. Warnings and
/// infos use Prometheus' wording.
pub fn aggregate(
    op: &str,
    param: Option<AggParam>,
    modifier: Option<&LabelModifier>,
    input: Vector,
    eval_ts: i64,
    annotations: &mut Annotations,
) -> Result<Vector, EvalError> {
    let _ = (param, modifier, input, eval_ts, annotations);
    Err(EvalError::Eval(format!("aggregation {op} not built yet")))
}
