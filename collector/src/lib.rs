//! Tocsin's collector.

pub mod agents;
pub mod api;
pub mod config;
pub mod ctl;
pub mod demo;
pub mod logs;
pub mod patterns;
pub mod receivers;
pub mod ruler;
pub mod run;
pub mod self_metrics;
pub mod server;
pub mod sqlite;
pub mod store;
pub mod translate;
