//! Translation from OTLP data to Prometheus series: names, labels and,
//! later, sample values per metric kind.

pub mod names;
