//! Tocsin's collector.

pub mod ctl;
pub mod logs;
pub mod patterns;
pub mod receivers;
pub mod store;
pub mod translate;
