//! Tocsin's collector.

pub mod patterns;
pub mod store;
pub mod translate;
