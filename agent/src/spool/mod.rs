//! The spool: a bounded, versioned on-disk queue of encoded OTLP batches
//! (logs and metrics) that could not be delivered yet, kept across restarts.
//!
//! Layout: one directory of segment files, each holding batches of one
//! signal (`<seq>-logs.seg`, `<seq>-metrics.seg`) behind a header carrying
//! the format version, plus a `removed` file holding the low-water mark of
//! acknowledged ids. Each record is `len u32 | crc32 u32 | body`, the body
//! carrying the batch id, its creation time, the tailer batch it came from
//! and the encoded request, whose timestamps are the original ones.
//!
//! Invariants: batches come out in id order (oldest first), across both
//! signals; a batch leaves only through [`Spool::remove`] (acknowledged or
//! permanently rejected by the collector) or eviction; removals happen in
//! increasing id order, so one low-water mark records them all; the bytes
//! of all segment files never exceed `max_bytes` after an append returns;
//! when room is needed the oldest *metrics* segment goes first and logs only
//! when no metrics are left, every evicted batch counted and logged; a torn
//! or corrupt tail (a crash mid-write) is cut at the last good record on
//! open, counted, never fatal.
//!
//! Fsync policy: with [`SpoolOptions::fsync`] (the default) every append is
//! fsync'd before it returns, so a batch the exporter considers spooled
//! survives a power loss; batches are large and few (about one a second), so
//! this costs little. The `removed` mark is replaced by rename without
//! fsync: losing its last update only re-sends acknowledged batches, which
//! the collector deduplicates (at-least-once). An exclusive lock on the
//! `lock` file keeps a second process out of the directory.

mod segment;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use segment::{RecordHeader, Segment};

/// Version of the segment format written by this agent.
pub const FORMAT_VERSION: u32 = 1;

/// Default bound on the spool's bytes on disk.
pub const DEFAULT_MAX_BYTES: u64 = 256 << 20;

/// Which OTLP signal a batch carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Logs,
    Metrics,
}

impl Signal {
    fn code(self) -> u8 {
        match self {
            Signal::Logs => 1,
            Signal::Metrics => 2,
        }
    }

    fn from_code(code: u8) -> Option<Signal> {
        match code {
            1 => Some(Signal::Logs),
            2 => Some(Signal::Metrics),
            _ => None,
        }
    }

    /// Lower-case name, for logs and file names.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
}

/// The tailer batch whose records a log request holds. `run` names the
/// agent process that produced it: tailer batch ids restart with the
/// process, so an acknowledgement is only reported for the current run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub run: u64,
    pub batch: u64,
}

/// One batch: an encoded `ExportLogsServiceRequest` or
/// `ExportMetricsServiceRequest` with what the exporter needs to settle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolBatch {
    /// Position in the global order: smaller is older.
    pub id: u64,
    pub signal: Signal,
    /// When the batch was built (its records keep their own timestamps).
    pub created: SystemTime,
    pub origin: Option<Origin>,
    /// The encoded request.
    pub payload: Vec<u8>,
}

/// Settings of a spool.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// Bound on the bytes of all segment files.
    pub max_bytes: u64,
    /// fsync every append (see the module docs).
    pub fsync: bool,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            max_bytes: DEFAULT_MAX_BYTES,
            fsync: true,
        }
    }
}

/// Counters since the spool was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpoolCounters {
    pub appended: u64,
    pub removed: u64,
    /// Metrics batches evicted to make room.
    pub evicted_metrics: u64,
    /// Log batches evicted to make room (no metrics were left).
    pub evicted_logs: u64,
    /// Batches refused because one alone is larger than the spool.
    pub refused_too_large: u64,
    /// Records cut from torn or corrupt segment tails on open.
    pub corrupt_tails: u64,
    /// Bytes cut from torn or corrupt segment tails on open.
    pub corrupt_bytes: u64,
}

/// Failures of the spool. Each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "spool segment {path} has format version {found}; this agent reads version {FORMAT_VERSION} (move the directory aside to start an empty spool)"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("spool segment {path} is not a spool segment (bad magic)")]
    NotASegment { path: PathBuf },
    #[error("batch {id} of {size} bytes is larger than the whole spool ({max} bytes); dropped")]
    TooLarge { id: u64, size: u64, max: u64 },
    #[error(
        "spool {path} is in use by another process (another agent with the same data directory?)"
    )]
    Locked { path: PathBuf },
    #[error("batch id {id} is below the spool's removed mark {mark}")]
    StaleId { id: u64, mark: u64 },
}

impl SpoolError {
    fn io(path: &Path, source: io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where a batch lives.
#[derive(Debug, Clone, Copy)]
struct Entry {
    signal: Signal,
    segment: u64,
    offset: u64,
    len: u32,
}

/// The spool. Not thread-safe: the exporter owns it behind its lock.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    options: SpoolOptions,
    segment_target: u64,
    /// All segments by sequence number.
    segments: BTreeMap<u64, Segment>,
    /// The segment appends go to, per signal.
    active: [Option<u64>; 2],
    next_segment: u64,
    /// Live batches by id.
    index: BTreeMap<u64, Entry>,
    /// Every id below this has been removed.
    removed_mark: u64,
    next_id: u64,
    disk_bytes: u64,
    counters: SpoolCounters,
    /// Held open with an exclusive lock for the spool's lifetime, so two
    /// processes never interleave appends and removals in one directory.
    _lock: fs::File,
}

const REMOVED_FILE: &str = "removed";
const LOCK_FILE: &str = "lock";

impl Spool {
    /// Opens (or creates) the spool in `dir`, cutting torn tails.
    pub fn open(dir: &Path, options: SpoolOptions) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(|e| SpoolError::io(dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SpoolError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(SpoolError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(SpoolError::io(&lock_path, e)),
        }
        let removed_mark = read_mark(&dir.join(REMOVED_FILE))?;
        // Segments much smaller than the bound let eviction free space in
        // small steps; a floor keeps file counts sane for tiny spools.
        let segment_target = (options.max_bytes / 16).clamp(4096, 16 << 20);
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            options,
            segment_target,
            segments: BTreeMap::new(),
            active: [None, None],
            next_segment: 0,
            index: BTreeMap::new(),
            removed_mark,
            next_id: removed_mark,
            disk_bytes: 0,
            counters: SpoolCounters::default(),
            _lock: lock,
        };
        spool.load()?;
        Ok(spool)
    }

    fn load(&mut self) -> Result<(), SpoolError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| SpoolError::io(&self.dir, e))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| SpoolError::io(&self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some((seq, signal)) = segment::parse_name(name) {
                found.push((seq, signal, entry.path()));
            } else if name.ends_with(".tmp") {
                // A `removed` update interrupted by a crash.
                let _ = fs::remove_file(entry.path());
            }
        }
        found.sort_by_key(|(seq, _, _)| *seq);
        for (seq, signal, path) in found {
            let scan = Segment::scan(&path, seq, signal)?;
            if scan.cut_records > 0 || scan.cut_bytes > 0 {
                self.counters.corrupt_tails += scan.cut_records.max(1);
                self.counters.corrupt_bytes += scan.cut_bytes;
                tracing::warn!(
                    path = %path.display(),
                    bytes = scan.cut_bytes,
                    "spool segment had a torn or corrupt tail; cut at the last good record"
                );
            }
            let mut segment = scan.segment;
            for rec in scan.records {
                self.next_id = self.next_id.max(rec.id + 1);
                if rec.id < self.removed_mark {
                    continue;
                }
                segment.live += 1;
                self.index.insert(
                    rec.id,
                    Entry {
                        signal,
                        segment: seq,
                        offset: rec.offset,
                        len: rec.len,
                    },
                );
            }
            self.next_segment = self.next_segment.max(seq + 1);
            if segment.live == 0 {
                remove_file(&path)?;
                continue;
            }
            self.disk_bytes += segment.size;
            self.segments.insert(seq, segment);
        }
        Ok(())
    }

    /// The id the next batch should carry: larger than every id the spool
    /// has seen, so ids stay ordered across restarts.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes of all segment files.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_bytes
    }

    pub fn counters(&self) -> &SpoolCounters {
        &self.counters
    }

    /// Live batch ids and signals, oldest first (tests, status).
    pub fn ids(&self) -> Vec<(u64, Signal)> {
        self.index.iter().map(|(id, e)| (*id, e.signal)).collect()
    }

    /// Stores `batch`, evicting older batches (metrics first) if the spool
    /// is full. Returns the batches evicted, so the exporter can settle
    /// their log origins; evicted metrics come back with id and signal
    /// only (no payload, no time).
    pub fn append(&mut self, batch: &SpoolBatch) -> Result<Vec<SpoolBatch>, SpoolError> {
        if batch.id < self.removed_mark {
            return Err(SpoolError::StaleId {
                id: batch.id,
                mark: self.removed_mark,
            });
        }
        let size = segment::record_size(batch.payload.len()) + segment::HEADER_LEN;
        if size > self.options.max_bytes {
            self.counters.refused_too_large += 1;
            tracing::error!(
                id = batch.id,
                signal = batch.signal.name(),
                bytes = size,
                max_bytes = self.options.max_bytes,
                "batch larger than the whole spool; dropped"
            );
            return Err(SpoolError::TooLarge {
                id: batch.id,
                size,
                max: self.options.max_bytes,
            });
        }
        let mut evicted = Vec::new();
        loop {
            if self.disk_bytes + self.bytes_needed(batch) <= self.options.max_bytes {
                break;
            }
            if !self.evict_one(&mut evicted)? {
                // Empty, and one batch alone fits (checked above).
                break;
            }
        }
        self.write(batch)?;
        self.next_id = self.next_id.max(batch.id + 1);
        self.counters.appended += 1;
        Ok(evicted)
    }

    /// Whether `batch` needs a new segment: none is active for its signal,
    /// or the active one is not empty and would pass its target size.
    fn needs_new_segment(&self, batch: &SpoolBatch) -> bool {
        let record_len = segment::record_size(batch.payload.len());
        match self.active[slot(batch.signal)].and_then(|seq| self.segments.get(&seq)) {
            Some(s) => s.size > segment::HEADER_LEN && s.size + record_len > self.segment_target,
            None => true,
        }
    }

    fn bytes_needed(&self, batch: &SpoolBatch) -> u64 {
        let record_len = segment::record_size(batch.payload.len());
        if self.needs_new_segment(batch) {
            record_len + segment::HEADER_LEN
        } else {
            record_len
        }
    }

    fn write(&mut self, batch: &SpoolBatch) -> Result<(), SpoolError> {
        let slot = slot(batch.signal);
        if self.needs_new_segment(batch) {
            let seq = self.next_segment;
            self.next_segment += 1;
            let path = self.dir.join(segment::file_name(seq, batch.signal));
            let seg = Segment::create(&path, seq, batch.signal, self.options.fsync)?;
            self.disk_bytes += seg.size;
            self.segments.insert(seq, seg);
            self.active[slot] = Some(seq);
        }
        let Some(seq) = self.active[slot] else {
            return Ok(());
        };
        let Some(seg) = self.segments.get_mut(&seq) else {
            return Ok(());
        };
        let header = RecordHeader {
            id: batch.id,
            signal: batch.signal,
            created: batch.created,
            origin: batch.origin,
        };
        let before = seg.size;
        let (offset, len) = seg.append(&header, &batch.payload, self.options.fsync)?;
        self.disk_bytes += seg.size - before;
        seg.live += 1;
        self.index.insert(
            batch.id,
            Entry {
                signal: batch.signal,
                segment: seq,
                offset,
                len,
            },
        );
        Ok(())
    }

    /// Evicts the oldest metrics segment, or the oldest logs segment when
    /// no metrics are spooled. False when the spool is empty.
    fn evict_one(&mut self, evicted: &mut Vec<SpoolBatch>) -> Result<bool, SpoolError> {
        let victim = self
            .segments
            .iter()
            .find(|(_, s)| s.signal == Signal::Metrics)
            .or_else(|| self.segments.iter().next())
            .map(|(seq, s)| (*seq, s.signal));
        let Some((seq, signal)) = victim else {
            return Ok(false);
        };
        let ids: Vec<u64> = self
            .index
            .iter()
            .filter(|(_, e)| e.segment == seq)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            // Read before deleting so the exporter can settle log origins
            // (metrics have none; their payload is not worth reading).
            if signal == Signal::Logs {
                if let Ok(Some(batch)) = self.read(*id) {
                    evicted.push(batch);
                }
            } else if let Some(e) = self.index.get(id) {
                evicted.push(SpoolBatch {
                    id: *id,
                    signal: e.signal,
                    created: SystemTime::UNIX_EPOCH,
                    origin: None,
                    payload: Vec::new(),
                });
            }
            self.index.remove(id);
        }
        let count = ids.len() as u64;
        match signal {
            Signal::Metrics => self.counters.evicted_metrics += count,
            Signal::Logs => self.counters.evicted_logs += count,
        }
        tracing::warn!(
            signal = signal.name(),
            batches = count,
            max_bytes = self.options.max_bytes,
            "spool full: evicted the oldest {} batches",
            signal.name()
        );
        self.drop_segment(seq)?;
        Ok(true)
    }

    fn drop_segment(&mut self, seq: u64) -> Result<(), SpoolError> {
        if let Some(seg) = self.segments.remove(&seq) {
            self.disk_bytes = self.disk_bytes.saturating_sub(seg.size);
            if self.active[slot(seg.signal)] == Some(seq) {
                self.active[slot(seg.signal)] = None;
            }
            remove_file(&seg.path)?;
        }
        Ok(())
    }

    /// The oldest batch, read from disk.
    pub fn front(&mut self) -> Result<Option<SpoolBatch>, SpoolError> {
        let Some(id) = self.index.keys().next().copied() else {
            return Ok(None);
        };
        self.read(id)
    }

    fn read(&mut self, id: u64) -> Result<Option<SpoolBatch>, SpoolError> {
        let Some(entry) = self.index.get(&id).copied() else {
            return Ok(None);
        };
        let Some(seg) = self.segments.get(&entry.segment) else {
            return Ok(None);
        };
        match seg.read(entry.offset, entry.len)? {
            Some((header, payload)) if header.id == id => Ok(Some(SpoolBatch {
                id,
                signal: header.signal,
                created: header.created,
                origin: header.origin,
                payload,
            })),
            _ => {
                // The file changed under us (disk error, outside edit):
                // the record is unusable, so it leaves the index.
                tracing::error!(id, path = %seg.path.display(), "spooled batch unreadable; dropped");
                self.counters.corrupt_tails += 1;
                self.forget(id)?;
                Ok(None)
            }
        }
    }

    /// Removes batch `id` (acknowledged, or permanently rejected). Ids must
    /// be removed oldest first; removing an unknown id (already evicted)
    /// only moves the mark.
    pub fn remove(&mut self, id: u64) -> Result<(), SpoolError> {
        if id < self.removed_mark {
            return Ok(());
        }
        // The mark below says every lower id is gone: one still stored
        // would be lost at the next open.
        debug_assert!(
            self.index.range(..id).next().is_none(),
            "spool batch {id} removed before older batch {:?}",
            self.index.keys().next()
        );
        if self.index.contains_key(&id) {
            self.counters.removed += 1;
        }
        self.forget(id)?;
        self.removed_mark = id + 1;
        write_mark(&self.dir, self.removed_mark)
    }

    fn forget(&mut self, id: u64) -> Result<(), SpoolError> {
        let Some(entry) = self.index.remove(&id) else {
            return Ok(());
        };
        let empty = match self.segments.get_mut(&entry.segment) {
            Some(seg) => {
                seg.live = seg.live.saturating_sub(1);
                seg.live == 0
            }
            None => false,
        };
        if empty {
            self.drop_segment(entry.segment)?;
        }
        Ok(())
    }
}

fn slot(signal: Signal) -> usize {
    match signal {
        Signal::Logs => 0,
        Signal::Metrics => 1,
    }
}

fn remove_file(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SpoolError::io(path, e)),
    }
}

fn read_mark(path: &Path) -> Result<u64, SpoolError> {
    match fs::read_to_string(path) {
        Ok(text) => {
            // A mark that does not parse is treated as 0: at worst batches
            // are sent again, which the collector deduplicates.
            let mark = text
                .trim()
                .strip_prefix("v1 ")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            Ok(mark)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(SpoolError::io(path, e)),
    }
}

fn write_mark(dir: &Path, mark: u64) -> Result<(), SpoolError> {
    let tmp = dir.join("removed.tmp");
    let path = dir.join(REMOVED_FILE);
    fs::write(&tmp, format!("v1 {mark}\n")).map_err(|e| SpoolError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| SpoolError::io(&path, e))
}

/// Unix nanoseconds of `t`, 0 before the epoch.
pub(crate) fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn from_unix_nanos(n: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(n)
}
