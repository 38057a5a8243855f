//! Translation from OTLP data to what the collector stores: Prometheus
//! names and labels, samples per metric kind (with delta-to-cumulative
//! state), log records, and the per-agent clock skew seen on the way.
//!
//! Translation does no I/O and reads no clock: the arrival time is a
//! parameter, so every refusal rule is testable.

pub mod attributes;
pub mod cache;
pub mod logs;
pub mod logs_wire;
pub mod metrics;
pub mod names;
pub mod skew;
