//! Tocsin's collector.

pub mod store;
pub mod translate;
