//! Tocsin's collector.

pub mod store;
