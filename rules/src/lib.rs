//! Tocsin's rule engine: Prometheus rule files and their validation, PromQL
//! evaluation over a [`promql::Queryable`] store, the alert state machine,
//! Prometheus' template dialect, and the promtool-format rule unit-test
//! runner.
//!
//! Nothing here reads the clock or does network I/O; time is always an
//! argument. Files are read only by the loaders at the edges.

pub mod alert;
pub mod file;
pub mod group;
pub mod promql;
pub mod template;
pub mod unittest;
pub mod validate;
