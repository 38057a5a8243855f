//! Logs in the collector: the record model ([`record`]), the durable store
//! with retention, de-duplication and queries ([`store`], [`query`]), and
//! the counters logs become ([`counters`]), persisted through the store's
//! own write-ahead log ([`codec`] holds its payload formats).
//!
//! Invariant: a record is counted exactly when it is stored: the counter
//! increments it causes are logged in the same frame as the record.

pub mod codec;
pub mod counters;
pub mod query;
pub mod record;
pub mod sink;
pub mod store;

pub use counters::{CounterLimits, LogMetrics, LogMetricsError, RECORDS_TOTAL};
pub use query::{LogQuery, LogQueryError, TextFilter};
pub use record::{LogRecord, RecordOrigin, Severity};
pub use store::{
    FlushReport, LogAppendOutcome, LogOpenReport, LogQueryResult, LogStore, LogStoreError,
    LogStoreOptions, LogStoreStats,
};
