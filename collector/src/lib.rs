//! Tocsin's collector.
