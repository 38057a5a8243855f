//! Tocsin's agent: collects host metrics and error logs on a production
//! server and forwards them over OTLP to a collector.

pub mod config;
pub mod export;
pub mod run;
pub mod self_metrics;
pub mod sources;
pub mod spool;
