//! Logs in the collector: the record model, storage with retention and
//! de-duplication, queries, and the counters logs become.

pub mod record;
