//! PromQL evaluation with Prometheus 3 semantics over any [`Queryable`]
//! store. Parsing is `promql-parser`'s; this module owns evaluation.
//!
//! The evaluator does no I/O of its own and never reads the clock: the
//! evaluation time is an argument, and all data comes from the store.

pub mod aggregate;
pub mod eval;
pub mod functions;
pub mod storage;
pub mod value;

pub use eval::{Engine, EngineOptions, EvalError, QueryResult};
pub use storage::{MatchOp, Matcher, MemStorage, Queryable, StorageError};
pub use value::{InstantSample, Label, Labels, Matrix, Sample, Series, Value, Vector};

/// Non-fatal notes a query produced: Prometheus' `warnings` (e.g. a
/// quantile outside [0, 1]) and `infos` (e.g. `rate()` on a series whose
/// name does not look like a counter). Kept de-duplicated, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Annotations {
    pub fn warn(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub fn info(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    pub fn merge(&mut self, other: Annotations) {
        for w in other.warnings {
            self.warn(w);
        }
        for i in other.infos {
            self.info(i);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.infos.is_empty()
    }
}

/// Parses a PromQL expression (a thin wrapper so callers need not depend on
/// `promql-parser` directly).
pub fn parse(expr: &str) -> Result<promql_parser::parser::Expr, String> {
    promql_parser::parser::parse(expr)
}
