//! The log store as the receivers' [`LogSink`]: a request is acknowledged
//! once its accepted records are durable; records already accepted from
//! the same agent, file and offset come back as duplicates, not refusals,
//! so the sender treats them as delivered.

use crate::receivers::{LogAppendOutcome, LogSink, SinkError};

use super::record::LogRecord;
use super::store::LogStore;

impl LogSink for LogStore {
    fn append(&self, records: Vec<LogRecord>) -> Result<LogAppendOutcome, SinkError> {
        let out = LogStore::append(self, records).map_err(|e| SinkError::Storage(Box::new(e)))?;
        Ok(LogAppendOutcome {
            stored: out.accepted,
            duplicates: out.duplicates,
            // The store refuses nothing for what it is: bodies over the
            // limit are cut (and counted), not refused.
            refused: 0,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::logs::codec::tests::record;
    use crate::logs::store::LogStoreOptions;

    #[test]
    fn duplicates_are_reported_as_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = LogStore::open(dir.path(), LogStoreOptions::default(), 0).unwrap();
        let sink: &dyn LogSink = &store;
        let out = sink.append(vec![record("a"), record("a")]).unwrap();
        assert_eq!(
            out,
            LogAppendOutcome {
                stored: 1,
                duplicates: 1,
                refused: 0
            }
        );
    }
}
