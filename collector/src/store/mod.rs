//! The collector's series store: an in-memory head of compressed chunks
//! with an inverted label index, behind a write-ahead log with group
//! commit.
//!
//! Invariant: [`SeriesStore::append`] returns Ok only once every sample it
//! stored (and every series it created) is fsync'd in the log, so an
//! acknowledged sample survives `kill -9`; on open, the log is replayed
//! into the head before anything else is served.

pub mod chunk;
pub mod commit;
pub mod encoding;
pub mod head;
pub mod wal;

use std::path::Path;

use tocsin_rules::promql::storage::{Matcher, Queryable, StorageError};
use tocsin_rules::promql::value::{Labels, Series};

use commit::{CommitError, GroupCommit};
use encoding::{
    KIND_SAMPLES, KIND_SERIES, decode_samples, decode_series, encode_samples, encode_series,
};
use head::{Appended, Head, HeadOptions, Refusal};
use wal::{Wal, WalError, WalOptions, frame};

/// Why the store could not open or persist.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Commit(#[from] CommitError),
}

/// What opening the store found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    pub wal_records: usize,
    pub series: usize,
    pub samples_applied: u64,
    /// Logged samples the head refused on replay (older than the
    /// out-of-order window behind newer replayed data).
    pub samples_refused: u64,
    /// Logged samples whose series record is missing.
    pub samples_of_unknown_series: u64,
    /// Records that passed their checksum but did not decode.
    pub undecodable_records: usize,
    pub truncated_tail_bytes: u64,
}

/// What one append did, sample by sample, summed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    pub stored: usize,
    /// Identical to samples already stored (replays, retries).
    pub duplicates: usize,
    pub refused_too_old: usize,
    pub refused_duplicate_timestamp: usize,
}

/// The durable series store.
#[derive(Debug)]
pub struct SeriesStore {
    head: Head,
    log: GroupCommit,
}

impl SeriesStore {
    /// Opens the store whose log lives in `dir`, replaying it.
    pub fn open(
        dir: &Path,
        head_opts: HeadOptions,
        wal_opts: WalOptions,
    ) -> Result<(SeriesStore, OpenReport), StoreError> {
        let head = Head::new(head_opts);
        let mut report = OpenReport::default();
        let (wal, truncated_tail_bytes) = Wal::open_with(dir, wal_opts, |rec| {
            report.wal_records += 1;
            match rec.kind {
                KIND_SERIES => match decode_series(&rec.payload) {
                    Ok(series) => {
                        for (r, labels) in series {
                            head.replay_series(r, labels);
                        }
                    }
                    Err(_) => report.undecodable_records += 1,
                },
                KIND_SAMPLES => match decode_samples(&rec.payload) {
                    Ok(samples) => {
                        let c = head.replay_samples(&samples);
                        report.samples_applied += c.applied;
                        report.samples_refused += c.refused;
                        report.samples_of_unknown_series += c.unknown_series;
                    }
                    Err(_) => report.undecodable_records += 1,
                },
                // Kinds written by other parts of the collector share the
                // directory's format version but are not ours to replay.
                _ => {}
            }
        })?;
        report.truncated_tail_bytes = truncated_tail_bytes;
        report.series = head.stats().series;
        Ok((
            SeriesStore {
                head,
                log: GroupCommit::new(wal),
            },
            report,
        ))
    }

    /// Stores a batch and returns once it is durable.
    pub fn append(&self, batch: &[(Labels, i64, f64)]) -> Result<AppendOutcome, StoreError> {
        let (logged, queued) = self.head.append_batch_logged(batch, |logged| {
            let mut frames = Vec::new();
            if !logged.new_series.is_empty() {
                let mut payload = Vec::new();
                encode_series(&logged.new_series, &mut payload);
                frame(KIND_SERIES, &payload, &mut frames)?;
            }
            if !logged.to_log.is_empty() {
                let mut payload = Vec::new();
                encode_samples(&logged.to_log, &mut payload);
                frame(KIND_SAMPLES, &payload, &mut frames)?;
            }
            Ok::<_, WalError>((!frames.is_empty()).then(|| self.log.enqueue(&frames)))
        });
        if let Some(ticket) = queued? {
            self.log.wait(ticket)?;
        }
        let mut out = AppendOutcome::default();
        for r in &logged.results {
            match r {
                Ok(Appended::InOrder | Appended::OutOfOrder) => out.stored += 1,
                Ok(Appended::Duplicate) => out.duplicates += 1,
                Err(Refusal::TooOld) => out.refused_too_old += 1,
                Err(Refusal::DuplicateTimestamp) => out.refused_duplicate_timestamp += 1,
            }
        }
        Ok(out)
    }

    pub fn head(&self) -> &Head {
        &self.head
    }
}

impl Queryable for SeriesStore {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        self.head.select(matchers, mint, maxt)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tocsin_rules::promql::storage::MatchOp;

    fn all(store: &SeriesStore) -> Vec<(String, Vec<(i64, f64)>)> {
        let m = Matcher::new(MatchOp::NotEqual, "__name__", "");
        let mut v: Vec<_> = store
            .select(&[m], i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.samples.iter().map(|x| (x.t, x.v)).collect(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn acknowledged_samples_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = Labels::from_pairs([("__name__", "up"), ("job", "a")]);
        let b = Labels::from_pairs([("__name__", "up"), ("job", "b")]);
        let before = {
            let (store, report) =
                SeriesStore::open(dir.path(), HeadOptions::default(), WalOptions::default())
                    .unwrap();
            assert_eq!(report.wal_records, 0);
            let out = store
                .append(&[(a.clone(), 1000, 1.0), (b.clone(), 1000, 2.0)])
                .unwrap();
            assert_eq!(out.stored, 2);
            let out = store
                .append(&[
                    (a.clone(), 2000, 3.0),
                    (a.clone(), 500, 0.5),
                    (a.clone(), 2000, 3.0),
                ])
                .unwrap();
            assert_eq!((out.stored, out.duplicates), (2, 1));
            all(&store)
        };
        let (store, report) =
            SeriesStore::open(dir.path(), HeadOptions::default(), WalOptions::default()).unwrap();
        assert_eq!(report.series, 2);
        assert_eq!(report.samples_of_unknown_series, 0);
        assert_eq!(report.undecodable_records, 0);
        assert_eq!(all(&store), before);
        assert_eq!(all(&store)[0].1, vec![(500, 0.5), (1000, 1.0), (2000, 3.0)]);
        // New series after replay get fresh refs that do not collide.
        let c = Labels::from_pairs([("__name__", "up"), ("job", "c")]);
        store.append(&[(c, 1000, 9.0)]).unwrap();
        drop(store);
        let (store, _) =
            SeriesStore::open(dir.path(), HeadOptions::default(), WalOptions::default()).unwrap();
        assert_eq!(all(&store).len(), 3);
    }

    #[test]
    fn refused_samples_are_counted_and_not_logged() {
        let dir = tempfile::tempdir().unwrap();
        let a = Labels::from_pairs([("__name__", "x")]);
        let (store, _) = SeriesStore::open(
            dir.path(),
            HeadOptions {
                out_of_order_window_ms: 1000,
                ..HeadOptions::default()
            },
            WalOptions::default(),
        )
        .unwrap();
        store.append(&[(a.clone(), 10_000, 1.0)]).unwrap();
        let out = store
            .append(&[(a.clone(), 1_000, 1.0), (a.clone(), 10_000, 2.0)])
            .unwrap();
        assert_eq!(out.refused_too_old, 1);
        assert_eq!(out.refused_duplicate_timestamp, 1);
        drop(store);
        let (_, report) =
            SeriesStore::open(dir.path(), HeadOptions::default(), WalOptions::default()).unwrap();
        assert_eq!(report.samples_applied, 1);
    }
}
