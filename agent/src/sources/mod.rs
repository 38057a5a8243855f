//! Sources: what the agent collects on the host it runs on. Each source
//! produces data for the exporter and owns no network I/O.

pub mod host;
pub mod logtail;
