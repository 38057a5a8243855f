//! The PromQL evaluator: instant and range queries over a [`Queryable`].
//!
//! CONTRACT (fixed; the implementation is being written):
//! - `Engine::new(EngineOptions)`; `EngineOptions::default()` has a 5 minute
//!   lookback delta.
//! - `Engine::instant_query(&self, store, expr, t_ms)` evaluates `expr` at
//!   one time and returns the value (scalar, string, vector, or matrix for a
//!   bare range selector) and the annotations.
//! - `Engine::range_query(&self, store, expr, start_ms, end_ms, step_ms)`
//!   returns a matrix (one series per label set, samples at the steps where
//!   it has a value), or a scalar expression as a matrix with empty labels.

use promql_parser::parser::Expr;

use super::Annotations;
use super::storage::{Queryable, StorageError};
use super::value::Value;

/// Evaluation settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (ms).
    pub lookback_delta_ms: i64,
    /// Upper bound on samples held in memory by one query; exceeding it is
    /// an error, as Prometheus' `query.max-samples`.
    pub max_samples: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60 * 1000,
            max_samples: 50_000_000,
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

impl Engine {
    pub fn new(options: EngineOptions) -> Self {
        Engine { options }
    }

    /// Evaluates `expr` at `t_ms`.
    pub fn instant_query(
        &self,
        store: &dyn Queryable,
        expr: &Expr,
        t_ms: i64,
    ) -> Result<QueryResult, EvalError> {
        let _ = (store, expr, t_ms);
        Err(EvalError::Eval("evaluator not built yet".into()))
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
        let _ = (store, expr, start_ms, end_ms, step_ms);
        Err(EvalError::Eval("evaluator not built yet".into()))
    }
}
