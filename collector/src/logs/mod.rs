//! Logs in the collector: the record model ([`record`]), the durable store
//! with retention, de-duplication and queries ([`store`], [`query`]), the
//! counters logs become ([`counters`]), persisted through the store's own
//! write-ahead log ([`codec`] holds its payload formats), and the `logs:`
//! configuration section ([`config`]).
//!
//! How the collector drives it: [`LogStore::open`] on its own directory
//! (e.g. `<data_dir>/logs`) at start; [`LogStore::set_log_metrics`] with
//! the rule files' `log_metrics` at every successful rule load; the
//! receivers append through the [`LogSink`](crate::receivers::LogSink)
//! implementation in [`sink`]; every evaluation interval,
//! [`LogStore::enforce_retention`] and [`LogStore::flush_counters`] into the
//! series store; `/api/v1/logs` and `tocsinctl logs query` build a
//! [`LogQuery`] with [`LogQuery::from_params`] and call [`LogStore::query`].
//!
//! Invariant: a record is counted exactly when it is stored: the counter
//! increments it causes are logged in the same frame as the record.

mod claims;
pub mod codec;
pub mod config;
pub mod counters;
pub mod query;
pub mod record;
pub mod sink;
pub mod store;

pub use config::{LogsConfig, LogsConfigError};
pub use counters::{CounterLimits, LogMetrics, LogMetricsError, RECORDS_TOTAL};
pub use query::{LogQuery, LogQueryError, TextFilter};
pub use record::{AttrValue, Attributes, LogRecord, RecordOrigin, Severity};
pub use store::{
    FlushReport, LogAppendOutcome, LogOpenReport, LogQueryResult, LogStore, LogStoreError,
    LogStoreOptions, LogStoreStats, RecordObserver,
};
