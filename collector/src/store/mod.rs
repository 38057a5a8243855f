//! The collector's series store: an in-memory head of compressed chunks
//! with an inverted label index, behind a write-ahead log with group
//! commit, and periodic snapshots of the head that let the log be cut.
//!
//! Invariants: [`SeriesStore::append`] returns Ok only once every sample it
//! stored (and every series it created) is fsync'd in the log, so an
//! acknowledged sample survives `kill -9`; on open, the newest readable
//! snapshot is loaded and the log segments from the one it covers are
//! replayed into the head before anything else is served. A log segment is
//! deleted only once two durable snapshots cover it, each of which read
//! back whole with the reader's checks after it was written, so a damaged
//! newest snapshot still leaves an older one and every segment after it.
//! What retention dropped stays dropped across a restart: open restores
//! nothing older than [`HeadOptions::restore_min_time_ms`].

pub mod chunk;
pub mod commit;
pub mod encoding;
pub mod head;
pub mod snapshot;
pub mod wal;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tocsin_rules::promql::storage::{Matcher, Queryable, StorageError};
use tocsin_rules::promql::value::{Labels, Series};

use commit::{CommitError, GroupCommit};
use encoding::{
    KIND_SAMPLES, KIND_SERIES, decode_samples, decode_series, encode_samples, encode_series,
};
use head::{Appended, Head, HeadOptions, Refusal, SeriesRef};
use snapshot::SnapshotError;
use wal::{Wal, WalError, WalOptions, frame};

/// Snapshots kept: the newest, and one older to fall back to when the
/// newest cannot be read (with every log segment written since).
const SNAPSHOTS_KEPT: usize = 2;
/// The format version of the series store's log segments: 2, because
/// segments a snapshot covers are deleted (see [`wal`]).
pub const WAL_FORMAT_VERSION: u32 = 2;

/// Why the store could not open or persist.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// A snapshot just written did not read back: it was removed and the
    /// log it would have let go was kept.
    #[error("head snapshot removed, it failed its read-back check (the log is kept): {0}")]
    SnapshotUnverified(#[source] SnapshotError),
}

/// What opening the store found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// The snapshot loaded: the first log segment it does not cover.
    pub snapshot_segment: Option<u64>,
    pub snapshot_series: u64,
    pub snapshot_samples: u64,
    /// Damaged snapshots set aside (deleted), newest first, with why.
    pub snapshots_skipped: Vec<String>,
    pub wal_records: usize,
    /// Log segments older than the snapshot, not read.
    pub wal_segments_skipped: usize,
    /// Log segments that should have been replayed but are missing
    /// (deleted behind a snapshot that could not be read): what they held
    /// is lost, and said in a warning.
    pub wal_segments_missing: u64,
    pub series: usize,
    pub samples_applied: u64,
    /// Logged samples the head refused on replay (older than the
    /// out-of-order window behind newer replayed data).
    pub samples_refused: u64,
    /// Logged samples whose series record is missing.
    pub samples_of_unknown_series: u64,
    /// Logged samples of a ref whose series record named a label set that
    /// another series already holds under that ref: whose they are is
    /// unknown, so they are dropped (and said in a warning).
    pub samples_of_conflicting_refs: u64,
    /// Samples in the snapshot or the log older than the retention cutoff
    /// ([`HeadOptions::restore_min_time_ms`]): not restored.
    pub samples_past_retention: u64,
    /// Series left without samples once the log was replayed (a crash
    /// between a series record and its samples, or all of them past
    /// retention): removed.
    pub empty_series_removed: usize,
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

/// What [`SeriesStore::snapshot`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotReport {
    /// None when nothing was logged since the last snapshot (no file
    /// written).
    pub written: Option<snapshot::Written>,
    /// The first log segment the newest snapshot does not cover.
    pub segment: u64,
    pub wal_segments_removed: usize,
    pub snapshots_removed: usize,
    pub duration: Duration,
}

/// Counters of the store's persistence, for its self metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    pub wal_segments: usize,
    pub wal_bytes: u64,
    pub snapshots_total: u64,
    pub snapshot_failures_total: u64,
    pub last_snapshot_duration_seconds: f64,
    pub last_snapshot_bytes: u64,
}

impl StoreStats {
    /// As `tocsin_store_*` series (name, value).
    pub fn series(&self) -> [(&'static str, f64); 6] {
        [
            ("tocsin_store_wal_segments", self.wal_segments as f64),
            ("tocsin_store_wal_bytes", self.wal_bytes as f64),
            ("tocsin_store_snapshots_total", self.snapshots_total as f64),
            (
                "tocsin_store_snapshot_failures_total",
                self.snapshot_failures_total as f64,
            ),
            (
                "tocsin_store_snapshot_duration_seconds",
                self.last_snapshot_duration_seconds,
            ),
            (
                "tocsin_store_snapshot_bytes",
                self.last_snapshot_bytes as f64,
            ),
        ]
    }
}

#[derive(Debug)]
struct SnapshotState {
    /// When the last snapshot was attempted (or the store opened).
    last_attempt: Instant,
    /// The first segment the newest snapshot on disk does not cover.
    newest: Option<u64>,
}

/// The durable series store.
#[derive(Debug)]
pub struct SeriesStore {
    dir: PathBuf,
    head: Head,
    log: GroupCommit,
    snapshot_interval: Duration,
    /// Held for the whole of a snapshot: one at a time.
    snapshot_state: Mutex<SnapshotState>,
    /// Held briefly: readable while a snapshot runs.
    stats: Mutex<StoreStats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both guarded values are updated field by field with no invariant
    // between fields, so a panic in another holder leaves them usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Loads the newest snapshot that reads back whole. Damaged ones are
/// deleted with a warning (an older one and the log after it hold their
/// data); unfinished temporary files are deleted.
fn load_snapshot(
    dir: &Path,
    head_opts: &HeadOptions,
    report: &mut OpenReport,
) -> Result<Option<snapshot::Loaded>, StoreError> {
    std::fs::create_dir_all(dir).map_err(|source| WalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let listing = snapshot::list(dir)?;
    for path in listing.unfinished {
        tracing::info!(path = %path.display(), "removing an unfinished head snapshot");
        std::fs::remove_file(&path).map_err(|source| SnapshotError::Io { path, source })?;
    }
    for (_, path) in listing.snapshots {
        match snapshot::read(&path, head_opts.clone()) {
            Ok(loaded) => return Ok(Some(loaded)),
            Err(e) if e.is_corrupt() => {
                tracing::warn!(
                    error = %e,
                    "head snapshot unreadable; falling back to an older snapshot or the log"
                );
                report.snapshots_skipped.push(e.to_string());
                std::fs::remove_file(&path).map_err(|source| SnapshotError::Io { path, source })?;
            }
            // An I/O error or a newer format: refuse to open rather than
            // replay a log whose beginning may only be in this snapshot.
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

impl SeriesStore {
    /// Opens the store in `dir`: loads the newest readable head snapshot,
    /// then replays the log segments it does not cover.
    pub fn open(
        dir: &Path,
        head_opts: HeadOptions,
        wal_opts: WalOptions,
    ) -> Result<(SeriesStore, OpenReport), StoreError> {
        let mut report = OpenReport::default();
        let snapshot_interval = head_opts.snapshot_interval;
        let cutoff = head_opts.restore_min_time_ms;
        // The series store's own format, whatever the caller set.
        let wal_opts = WalOptions {
            format_version: WAL_FORMAT_VERSION,
            ..wal_opts
        };
        let (head, first) = match load_snapshot(dir, &head_opts, &mut report)? {
            Some(loaded) => {
                tracing::info!(
                    dir = %dir.display(),
                    covers_below_segment = loaded.segment,
                    series = loaded.series,
                    samples = loaded.samples,
                    "head snapshot loaded"
                );
                report.snapshot_segment = Some(loaded.segment);
                report.snapshot_series = loaded.series;
                report.snapshot_samples = loaded.samples;
                report.samples_past_retention = loaded.samples_past_retention;
                (loaded.head, loaded.segment)
            }
            None => (Head::new(head_opts), 0),
        };
        // Log refs that name a label set the head already holds under
        // another ref (a series dropped by retention and created again).
        let mut aliases: HashMap<SeriesRef, SeriesRef> = HashMap::new();
        // Log refs whose series record named another label set than the
        // one the head holds under them: their samples from then on are
        // dropped.
        let mut conflicts: HashSet<SeriesRef> = HashSet::new();
        let (wal, opened) = Wal::open_from(dir, wal_opts, first, |rec| {
            report.wal_records += 1;
            match rec.kind {
                KIND_SERIES => match decode_series(&rec.payload) {
                    Ok(series) => {
                        for (r, labels) in series {
                            match head.replay_series(r, &labels) {
                                Some(held) if held != r => {
                                    aliases.insert(r, held);
                                }
                                Some(_) => {}
                                None => {
                                    tracing::warn!(
                                        dir = %dir.display(),
                                        series_ref = r,
                                        labels = %labels,
                                        "write-ahead log names a series ref held by another label set; the ref's samples that follow are dropped"
                                    );
                                    aliases.remove(&r);
                                    conflicts.insert(r);
                                }
                            }
                        }
                    }
                    Err(_) => report.undecodable_records += 1,
                },
                KIND_SAMPLES => match decode_samples(&rec.payload) {
                    Ok(mut samples) => {
                        let before = samples.len() as u64;
                        if !conflicts.is_empty() {
                            samples.retain(|s| !conflicts.contains(&s.sref));
                            report.samples_of_conflicting_refs += before - samples.len() as u64;
                        }
                        let kept = samples.len() as u64;
                        samples.retain(|s| s.t >= cutoff);
                        report.samples_past_retention += kept - samples.len() as u64;
                        if !aliases.is_empty() {
                            for s in &mut samples {
                                if let Some(&r) = aliases.get(&s.sref) {
                                    s.sref = r;
                                }
                            }
                        }
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
        if report.samples_of_conflicting_refs > 0 {
            tracing::warn!(
                dir = %dir.display(),
                samples = report.samples_of_conflicting_refs,
                "samples of series refs that name two label sets were dropped on replay"
            );
        }
        // Series with nothing left must not linger: a snapshot would hold
        // them, and new samples would go to a ref whose series record only
        // old segments hold. Their samples arriving later create the series
        // again under a new, logged ref. With the retention cutoff this
        // also drops whole chunks as retention would.
        report.empty_series_removed = head.truncate_before(cutoff);
        report.truncated_tail_bytes = opened.truncated_tail_bytes;
        report.wal_segments_skipped = opened.skipped_segments;
        // Segments expected from `first` (from 1 without a snapshot) up to
        // the first one found, and holes between those found.
        let expected_first = first.max(1);
        let leading_gap = opened
            .first_replayed
            .map_or(0, |n| n.saturating_sub(expected_first));
        report.wal_segments_missing = leading_gap + opened.missing_segments;
        if report.wal_segments_missing > 0 {
            tracing::warn!(
                dir = %dir.display(),
                missing = report.wal_segments_missing,
                from_segment = expected_first,
                "write-ahead log segments missing behind the snapshot loaded (or with no snapshot): the samples they held are lost"
            );
        }
        report.series = head.stats().series;
        let store = SeriesStore {
            dir: dir.to_path_buf(),
            head,
            log: GroupCommit::new(wal),
            snapshot_interval,
            snapshot_state: Mutex::new(SnapshotState {
                last_attempt: Instant::now(),
                newest: report.snapshot_segment,
            }),
            stats: Mutex::new(StoreStats::default()),
        };
        Ok((store, report))
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

    /// Installs the observer of this store's log writes (self metrics);
    /// false when one is installed already.
    pub fn observe_wal_writes(&self, f: impl Fn(Duration, usize) + Send + Sync + 'static) -> bool {
        self.log.observe_writes(f)
    }

    /// Writes a snapshot of the head, then deletes the log segments and
    /// snapshots no longer needed. Appends continue meanwhile: the log is
    /// cut first, so whatever is appended after the cut is in the segments
    /// the next open replays, whether or not the snapshot caught it too
    /// (replaying a sample the head holds is a no-op).
    pub fn snapshot(&self) -> Result<SnapshotReport, StoreError> {
        let mut state = lock(&self.snapshot_state);
        let started = Instant::now();
        state.last_attempt = started;
        let result = self.snapshot_locked(&mut state, started);
        {
            let mut stats = lock(&self.stats);
            match &result {
                Ok(r) => {
                    if let Some(w) = &r.written {
                        tracing::info!(
                            path = %w.path.display(),
                            bytes = w.bytes,
                            series = w.series,
                            samples = w.samples,
                            elapsed_ms = r.duration.as_millis() as u64,
                            wal_segments_removed = r.wal_segments_removed,
                            "head snapshot written"
                        );
                        stats.snapshots_total += 1;
                        stats.last_snapshot_bytes = w.bytes;
                        stats.last_snapshot_duration_seconds = r.duration.as_secs_f64();
                    }
                }
                Err(_) => stats.snapshot_failures_total += 1,
            }
        }
        result
    }

    /// [`SeriesStore::snapshot`] when the snapshot interval has passed
    /// since the last attempt (or the open); None otherwise.
    pub fn snapshot_if_due(&self) -> Result<Option<SnapshotReport>, StoreError> {
        if self.snapshot_interval.is_zero()
            || lock(&self.snapshot_state).last_attempt.elapsed() < self.snapshot_interval
        {
            return Ok(None);
        }
        self.snapshot().map(Some)
    }

    fn snapshot_locked(
        &self,
        state: &mut SnapshotState,
        started: Instant,
    ) -> Result<SnapshotReport, StoreError> {
        // Every record in the segments below the cut was applied to the
        // head before it was queued, so a copy of the head taken after the
        // cut holds it.
        let segment = self.log.with_wal(|w| {
            if w.segment_is_empty() {
                Ok(w.segment())
            } else {
                w.start_new_segment()
            }
        })?;
        let written = if state.newest == Some(segment) {
            None
        } else {
            let w = snapshot::write(&self.dir, segment, &self.head)?;
            #[cfg(test)]
            tests::damage_if_asked(&w.path);
            // Read back with the reader's checks before anything it
            // covers is deleted: a snapshot the next open would refuse
            // must not be the reason the log goes.
            if let Err(e) = snapshot::verify(&w.path) {
                tracing::error!(
                    path = %w.path.display(),
                    error = %e,
                    "head snapshot failed its read-back check; removed, no log segment deleted"
                );
                std::fs::remove_file(&w.path).map_err(|source| SnapshotError::Io {
                    path: w.path.clone(),
                    source,
                })?;
                return Err(StoreError::SnapshotUnverified(e));
            }
            state.newest = Some(segment);
            Some(w)
        };
        let snapshots = snapshot::list(&self.dir)?.snapshots;
        let mut snapshots_removed = 0;
        for (_, path) in snapshots.iter().skip(SNAPSHOTS_KEPT) {
            std::fs::remove_file(path).map_err(|source| SnapshotError::Io {
                path: path.clone(),
                source,
            })?;
            snapshots_removed += 1;
        }
        // Only segments covered by the older kept snapshot go: the newest
        // and everything after the older one stay readable.
        let wal_segments_removed = match snapshots.get(SNAPSHOTS_KEPT - 1) {
            Some(&(older, _)) => self.log.with_wal(|w| w.truncate_before(older))?,
            None => 0,
        };
        Ok(SnapshotReport {
            written,
            segment,
            wal_segments_removed,
            snapshots_removed,
            duration: started.elapsed(),
        })
    }

    /// Log size and snapshot counters.
    pub fn stats(&self) -> StoreStats {
        let mut stats = lock(&self.stats).clone();
        // The log's size is read now: it waits for at most one fsync.
        let sizes = self.log.with_wal(|w| {
            let n = wal::list_segments(&self.dir)?.len();
            Ok((n, w.disk_bytes()?))
        });
        match sizes {
            Ok((segments, bytes)) => {
                stats.wal_segments = segments;
                stats.wal_bytes = bytes;
            }
            Err(e) => tracing::warn!(error = %e, "write-ahead log size unreadable"),
        }
        stats
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

    fn open(dir: &Path) -> (SeriesStore, OpenReport) {
        SeriesStore::open(dir, HeadOptions::default(), WalOptions::default()).unwrap()
    }

    fn series(i: usize) -> Labels {
        Labels::from_pairs([("__name__", "m"), ("i", i.to_string().as_str())])
    }

    /// Appends `rounds` timestamps for `n` series starting at round `from`.
    fn fill(store: &SeriesStore, n: usize, from: i64, rounds: i64) {
        for t in from..from + rounds {
            let batch: Vec<(Labels, i64, f64)> = (0..n)
                .map(|i| (series(i), t * 10_000, (t as f64) * 1.5 + i as f64))
                .collect();
            assert_eq!(store.append(&batch).unwrap().stored, n);
        }
    }

    fn files(dir: &Path, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| {
                if prefix.is_empty() {
                    n.parse::<u64>().is_ok()
                } else {
                    n.starts_with(prefix)
                }
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn restart_after_a_snapshot_and_more_appends_recovers_everything() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let (store, _) = open(dir.path());
            fill(&store, 20, 0, 300);
            let report = store.snapshot().unwrap();
            let written = report.written.clone().unwrap();
            assert_eq!(written.series, 20);
            assert_eq!(written.samples, 20 * 300);
            assert_eq!(report.wal_segments_removed, 0);
            // More in order, a new series, an out-of-order sample.
            fill(&store, 25, 300, 10);
            store.append(&[(series(0), 5, 0.25)]).unwrap();
            all(&store)
        };
        let (store, report) = open(dir.path());
        assert_eq!(report.snapshot_segment, Some(2));
        assert_eq!(report.snapshot_samples, 20 * 300);
        assert_eq!(report.wal_segments_skipped, 1);
        // Only what came after the snapshot was replayed.
        assert_eq!(report.samples_applied, 25 * 10 + 1);
        assert_eq!(report.samples_of_unknown_series, 0);
        assert_eq!(report.wal_segments_missing, 0);
        assert_eq!(report.series, 25);
        assert_eq!(all(&store), before);
        // Series created after the restart do not reuse a ref.
        store
            .append(&[(Labels::from_pairs([("__name__", "later")]), 1, 1.0)])
            .unwrap();
        drop(store);
        let (store, _) = open(dir.path());
        assert_eq!(all(&store).len(), 26);
    }

    #[test]
    fn a_corrupt_snapshot_falls_back_to_the_older_one_and_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let (store, _) = open(dir.path());
            fill(&store, 10, 0, 100);
            store.snapshot().unwrap();
            fill(&store, 12, 100, 100);
            let second = store.snapshot().unwrap();
            // Two snapshots: the log before the older one can go.
            assert_eq!(second.wal_segments_removed, 1);
            fill(&store, 12, 200, 5);
            all(&store)
        };
        assert_eq!(
            files(dir.path(), "snapshot."),
            ["snapshot.00000002", "snapshot.00000003"]
        );
        let newest = dir.path().join("snapshot.00000003");
        let mut bytes = std::fs::read(&newest).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&newest, bytes).unwrap();
        let (store, report) = open(dir.path());
        assert_eq!(report.snapshot_segment, Some(2));
        assert_eq!(report.snapshots_skipped.len(), 1);
        assert!(
            report.snapshots_skipped[0].contains("snapshot.00000003"),
            "{:?}",
            report.snapshots_skipped
        );
        assert_eq!(report.wal_segments_missing, 0);
        assert_eq!(all(&store), before);
        // The damaged file is gone, so it is never the older one kept.
        assert_eq!(files(dir.path(), "snapshot."), ["snapshot.00000002"]);
    }

    #[test]
    fn with_no_readable_snapshot_the_whole_log_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let (store, _) = open(dir.path());
            fill(&store, 5, 0, 50);
            store.snapshot().unwrap();
            fill(&store, 5, 50, 50);
            all(&store)
        };
        let snap = dir.path().join("snapshot.00000002");
        let len = std::fs::metadata(&snap).unwrap().len();
        // Torn: as if the rename had reached the disk before the data.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&snap)
            .unwrap()
            .set_len(len / 3)
            .unwrap();
        let (store, report) = open(dir.path());
        assert_eq!(report.snapshot_segment, None);
        assert_eq!(report.snapshots_skipped.len(), 1);
        assert_eq!(report.samples_applied, 5 * 100);
        assert_eq!(all(&store), before);
    }

    #[test]
    fn a_crash_between_snapshot_and_segment_deletion_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let saved = tempfile::tempdir().unwrap();
        let before = {
            let (store, _) = open(dir.path());
            fill(&store, 8, 0, 60);
            store.snapshot().unwrap();
            fill(&store, 8, 60, 60);
            // Keep the segments the next snapshot will delete.
            for name in files(dir.path(), "") {
                std::fs::copy(dir.path().join(&name), saved.path().join(&name)).unwrap();
            }
            assert_eq!(store.snapshot().unwrap().wal_segments_removed, 1);
            fill(&store, 8, 120, 3);
            all(&store)
        };
        // Put the deleted segment back: the disk as a crash right after
        // the new snapshot's rename would have left it.
        for name in files(saved.path(), "") {
            let to = dir.path().join(&name);
            if !to.exists() {
                std::fs::copy(saved.path().join(&name), to).unwrap();
            }
        }
        assert_eq!(
            files(dir.path(), "").first().map(String::as_str),
            Some("00000001")
        );
        // And an unfinished next snapshot.
        std::fs::write(dir.path().join("snapshot.00000009.tmp"), b"TOCSINSN").unwrap();
        let (store, report) = open(dir.path());
        assert_eq!(report.snapshot_segment, Some(3));
        assert_eq!(report.wal_segments_skipped, 2);
        assert_eq!(all(&store), before);
        assert!(!dir.path().join("snapshot.00000009.tmp").exists());
        // The next snapshot deletes what the crash left behind.
        let report = store.snapshot().unwrap();
        assert_eq!(report.wal_segments_removed, 2);
        assert_eq!(files(dir.path(), ""), ["00000003", "00000004"]);
    }

    #[test]
    fn log_disk_usage_stays_bounded_over_many_snapshot_cycles() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path());
        let mut after_each = Vec::new();
        for cycle in 0..40 {
            fill(&store, 10, cycle * 20, 20);
            store.snapshot().unwrap();
            let stats = store.stats();
            assert_eq!(stats.snapshots_total, cycle as u64 + 1);
            after_each.push((stats.wal_segments, stats.wal_bytes));
            assert!(files(dir.path(), "snapshot.").len() <= SNAPSHOTS_KEPT);
        }
        // One cycle's log is ~20 batches of 10 samples; from the second
        // cycle on, at most two cycles' segments and the empty current one.
        let one_cycle = after_each[0].1;
        for &(segments, bytes) in &after_each[1..] {
            assert!(segments <= 3, "{after_each:?}");
            assert!(bytes <= 2 * one_cycle + 16, "{after_each:?}");
        }
        let before = all(&store);
        assert_eq!(before[0].1.len(), 800);
        drop(store);
        let (store, report) = open(dir.path());
        assert_eq!(report.samples_applied, 0);
        assert_eq!(all(&store), before);
    }

    #[test]
    fn a_snapshot_with_nothing_new_logged_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path());
        fill(&store, 3, 0, 3);
        let first = store.snapshot().unwrap();
        assert!(first.written.is_some());
        let again = store.snapshot().unwrap();
        assert_eq!(again.written, None);
        assert_eq!(again.segment, first.segment);
        drop(store);
        // Also after a restart that loaded the snapshot.
        let (store, _) = open(dir.path());
        assert_eq!(store.snapshot().unwrap().written, None);
    }

    #[test]
    fn appends_racing_snapshots_all_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let (store, _) = open(dir.path());
            let store = std::sync::Arc::new(store);
            let writers: Vec<_> = (0..3)
                .map(|w| {
                    let store = store.clone();
                    std::thread::spawn(move || {
                        for t in 0..400i64 {
                            let l = Labels::from_pairs([
                                ("__name__", "race"),
                                ("w", w.to_string().as_str()),
                                ("s", (t % 7).to_string().as_str()),
                            ]);
                            store.append(&[(l, t, t as f64)]).unwrap();
                        }
                    })
                })
                .collect();
            let mut snapshots = 0;
            while !writers.iter().all(|w| w.is_finished()) {
                if store.snapshot().unwrap().written.is_some() {
                    snapshots += 1;
                }
            }
            for w in writers {
                w.join().unwrap();
            }
            assert!(snapshots > 0);
            all(&store)
        };
        assert_eq!(before.len(), 21);
        assert_eq!(before.iter().map(|s| s.1.len()).sum::<usize>(), 1200);
        let (store, report) = open(dir.path());
        assert_eq!(report.samples_of_unknown_series, 0);
        assert_eq!(all(&store), before);
    }

    fn open_retaining_from(dir: &Path, cutoff: i64) -> (SeriesStore, OpenReport) {
        let opts = HeadOptions {
            restore_min_time_ms: cutoff,
            ..HeadOptions::default()
        };
        SeriesStore::open(dir, opts, WalOptions::default()).unwrap()
    }

    #[test]
    fn a_series_dropped_by_retention_and_created_again_keeps_its_samples() {
        let dir = tempfile::tempdir().unwrap();
        let a = series(1);
        let before = {
            let (store, _) = open(dir.path());
            store.append(&[(a.clone(), 1_000, 1.0)]).unwrap();
            assert_eq!(store.head().truncate_before(2_000), 1);
            // Created again under a new ref.
            store.append(&[(a.clone(), 5_000, 5.0)]).unwrap();
            all(&store)
        };
        assert_eq!(before[0].1, vec![(5_000, 5.0)]);
        // The log still holds the dropped sample: the open's retention
        // cutoff keeps it dropped.
        let (store, report) = open_retaining_from(dir.path(), 2_000);
        assert_eq!(report.samples_of_unknown_series, 0);
        assert_eq!(report.samples_past_retention, 1);
        assert_eq!(all(&store), before);
    }

    #[test]
    fn what_retention_dropped_stays_dropped_after_a_restart_from_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (old, kept) = (series(1), series(2));
        {
            let (store, _) = open(dir.path());
            store
                .append(&[(old.clone(), 1_000, 1.0), (kept.clone(), 1_000, 1.0)])
                .unwrap();
            store.append(&[(kept.clone(), 9_000, 9.0)]).unwrap();
            store.snapshot().unwrap();
            // After the snapshot: replayed from the log.
            store.append(&[(kept.clone(), 1_500, 1.5)]).unwrap();
            store.append(&[(kept.clone(), 10_000, 10.0)]).unwrap();
        }
        let (store, report) = open_retaining_from(dir.path(), 5_000);
        // `old`'s only chunk is wholly past the cutoff; `kept`'s chunk
        // reaches past it and stays whole, as retention leaves it.
        assert_eq!(report.snapshot_samples, 3);
        assert_eq!(report.samples_past_retention, 2);
        assert_eq!(report.empty_series_removed, 0);
        assert_eq!(
            all(&store),
            vec![(
                kept.to_string(),
                vec![(1_000, 1.0), (9_000, 9.0), (10_000, 10.0)]
            )]
        );
        // Without a cutoff everything comes back.
        drop(store);
        let (store, report) = open(dir.path());
        assert_eq!(report.samples_past_retention, 0);
        assert_eq!(all(&store).len(), 2);
    }

    /// Appends raw records to the newest log segment, as a store would
    /// have written them.
    fn log_raw(dir: &Path, records: &[(u8, Vec<u8>)]) {
        let (mut wal, _) = Wal::open(dir, WalOptions::default()).unwrap();
        for (kind, payload) in records {
            wal.append(*kind, payload).unwrap();
        }
        wal.commit().unwrap();
    }

    fn series_record(r: SeriesRef, labels: &Labels) -> (u8, Vec<u8>) {
        let mut p = Vec::new();
        encode_series(&[(r, labels.clone())], &mut p);
        (KIND_SERIES, p)
    }

    fn samples_record(samples: &[encoding::RefSample]) -> (u8, Vec<u8>) {
        let mut p = Vec::new();
        encode_samples(samples, &mut p);
        (KIND_SAMPLES, p)
    }

    #[test]
    fn a_series_record_whose_samples_were_lost_does_not_cost_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let torn = Labels::from_pairs([("__name__", "torn")]);
        {
            let (store, _) = open(dir.path());
            fill(&store, 3, 0, 10);
        }
        // A crash between a new series' record and its samples' record
        // (written in one go, torn at the second).
        log_raw(dir.path(), &[series_record(3, &torn)]);
        let segment = dir.path().join(files(dir.path(), "").last().unwrap());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&segment)
            .unwrap();
        let mut torn_samples = Vec::new();
        let (kind, payload) = samples_record(&[encoding::RefSample {
            sref: 3,
            t: 50_000,
            v: 1.0,
        }]);
        frame(kind, &payload, &mut torn_samples).unwrap();
        std::io::Write::write_all(&mut f, &torn_samples[..torn_samples.len() - 2]).unwrap();
        drop(f);
        let before = {
            let (store, report) = open(dir.path());
            assert!(report.truncated_tail_bytes > 0);
            assert_eq!(report.empty_series_removed, 1);
            assert_eq!(report.series, 3);
            store.snapshot().unwrap();
            // Sent again after the crash: created anew, under a logged ref.
            store.append(&[(torn.clone(), 50_000, 1.0)]).unwrap();
            fill(&store, 3, 10, 5);
            // The log before the first snapshot goes with this one.
            assert_eq!(store.snapshot().unwrap().wal_segments_removed, 1);
            fill(&store, 3, 15, 5);
            all(&store)
        };
        let (store, report) = open(dir.path());
        assert!(report.snapshots_skipped.is_empty(), "{report:?}");
        assert_eq!(report.snapshot_segment, Some(3));
        assert_eq!(report.samples_of_unknown_series, 0);
        assert_eq!(report.wal_segments_missing, 0);
        assert_eq!(all(&store), before);
        assert_eq!(before.len(), 4);
    }

    thread_local! {
        static DAMAGE_NEXT_SNAPSHOT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// Flips a bit in the snapshot just written when the test on this
    /// thread asked for it.
    pub(super) fn damage_if_asked(path: &Path) {
        if DAMAGE_NEXT_SNAPSHOT.with(|d| d.replace(false)) {
            let mut bytes = std::fs::read(path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            std::fs::write(path, bytes).unwrap();
        }
    }

    #[test]
    fn a_snapshot_that_does_not_read_back_is_removed_and_the_log_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path());
        fill(&store, 4, 0, 20);
        store.snapshot().unwrap();
        fill(&store, 4, 20, 20);
        DAMAGE_NEXT_SNAPSHOT.with(|d| d.set(true));
        let err = store.snapshot().unwrap_err();
        assert!(matches!(err, StoreError::SnapshotUnverified(_)), "{err}");
        assert_eq!(store.stats().snapshot_failures_total, 1);
        assert_eq!(files(dir.path(), "snapshot."), ["snapshot.00000002"]);
        assert_eq!(files(dir.path(), ""), ["00000001", "00000002", "00000003"]);
        // The next one (covering the same, still empty, segment) is
        // checked and kept; only then does the log before the older
        // snapshot go.
        let report = store.snapshot().unwrap();
        assert_eq!(report.wal_segments_removed, 1);
        assert_eq!(
            files(dir.path(), "snapshot."),
            ["snapshot.00000002", "snapshot.00000003"]
        );
        let before = all(&store);
        drop(store);
        let (store, report) = open(dir.path());
        assert!(report.snapshots_skipped.is_empty());
        assert_eq!(all(&store), before);
    }

    #[test]
    fn samples_of_a_ref_logged_for_two_label_sets_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (series(1), series(2));
        {
            let (store, _) = open(dir.path());
            store.append(&[(a.clone(), 1_000, 1.0)]).unwrap();
        }
        // Ref 0 is `a`'s; a record naming it for `b` cannot say whose the
        // samples after it are.
        let sample = |t| encoding::RefSample {
            sref: 0,
            t,
            v: t as f64,
        };
        log_raw(
            dir.path(),
            &[
                series_record(0, &b),
                samples_record(&[sample(2_000), sample(3_000)]),
            ],
        );
        let (store, report) = open(dir.path());
        assert_eq!(report.samples_of_conflicting_refs, 2);
        assert_eq!(report.samples_applied, 1);
        assert_eq!(all(&store), vec![(a.to_string(), vec![(1_000, 1.0)])]);
    }

    #[test]
    fn a_snapshot_of_a_newer_format_stops_the_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = open(dir.path());
            fill(&store, 2, 0, 2);
            store.snapshot().unwrap();
        }
        let path = dir.path().join("snapshot.00000002");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
        std::fs::write(&path, bytes).unwrap();
        let err = SeriesStore::open(dir.path(), HeadOptions::default(), WalOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("format version 9"), "{err}");
        assert!(path.exists());
    }

    #[test]
    fn snapshots_are_due_after_the_interval_only() {
        let dir = tempfile::tempdir().unwrap();
        let opts = |interval| HeadOptions {
            snapshot_interval: interval,
            ..HeadOptions::default()
        };
        let (store, _) = SeriesStore::open(
            dir.path(),
            opts(Duration::from_secs(3600)),
            WalOptions::default(),
        )
        .unwrap();
        fill(&store, 1, 0, 1);
        assert_eq!(store.snapshot_if_due().unwrap(), None);
        drop(store);
        let (store, _) = SeriesStore::open(
            dir.path(),
            opts(Duration::from_nanos(1)),
            WalOptions::default(),
        )
        .unwrap();
        fill(&store, 1, 1, 1);
        assert!(store.snapshot_if_due().unwrap().is_some());
        drop(store);
        let (store, _) =
            SeriesStore::open(dir.path(), opts(Duration::ZERO), WalOptions::default()).unwrap();
        assert_eq!(store.snapshot_if_due().unwrap(), None);
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
