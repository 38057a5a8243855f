//! The log store: every accepted log record, durable in its own
//! write-ahead log, kept in memory blocks with retention by age and size,
//! de-duplicated on the agent's (agent id, file id, offset), queryable by
//! selector, severity, time and text, and counted into counter series.
//!
//! The log has its own directory rather than sharing the series store's:
//! its segments are deleted by log retention (24h / 1 GiB) while the series
//! store's are cut by head snapshots, and the series store would otherwise
//! read up to a gigabyte of log records on every open only to skip them.
//! Each segment the store starts opens with a snapshot of the counters
//! (kind 4); each batch (kind 3) carries its records together with the
//! counter increments they caused, in one checksummed frame, so counters and
//! records become durable atomically and replay restores both exactly.
//!
//! Invariants:
//! - [`LogStore::append`] returns Ok only once the accepted records and their
//!   counter increments are fsync'd (group commit); a failed write takes the
//!   increments and de-duplication keys back, so a retry is accepted.
//! - A duplicate is answered as delivered only once its original is
//!   durable: a request repeating records another request is still writing
//!   (a sender that timed out and resent) waits for that write, and fails
//!   if it failed, so the sender sends them again rather than count them
//!   delivered when they were never stored.
//! - A record with an origin is stored at most once per retention window:
//!   the de-duplication index holds exactly the origins of retained and
//!   in-flight records, and is rebuilt from the log on open.
//! - A WAL segment is deleted only when no retained or in-flight record can
//!   lie in it and a newer segment starts with a durable counter snapshot.
//! - Memory and disk are bounded by the size retention: blocks are evicted
//!   oldest first until both the accounted memory and the blocks' share of
//!   the log fit (disk exceeds it by at most the segments not yet freed).
//! - Age retention goes by arrival time (the collector's clock), in steps
//!   of a block (at most 1/24 of the window); queries filter on the
//!   records' own time.
//!
//! Each record is encoded once: the bytes a WAL batch holds for it are
//! what the memory block keeps, next to the batch's dictionary (a block is
//! a run of such parts). Only a batch too small to be worth its own
//! dictionary is encoded again into the block's dictionary. Replay keeps
//! the batches it reads the same way and evicts by the same rules, but it
//! starts at the oldest segment still on disk, so its block boundaries,
//! and with them which records size retention keeps, can differ from the
//! live store's by up to a block (records the live store had evicted may
//! come back, or a few it kept may go): retention is exact in amount, not
//! in which records.

use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};

// Hashed per record on the append path: foldhash is several times
// faster than SipHash on short keys and still seeded per process.
use foldhash::{HashMap, HashMapExt};

use tocsin_rules::file::LogMetric;
use tocsin_rules::promql::storage::{MatchOp, Matcher, Queryable};
use tocsin_rules::promql::value::Labels;

use super::claims::FileOffsets;
use super::codec::{
    Batch, CounterDelta, Dict, KIND_COUNTER_SNAPSHOT, KIND_LOG_BATCH, StoredBatch,
    decode_batch_stored, decode_snapshot, decode_stored, encode_batch_into, encode_snapshot,
    encode_stored, stored_body, stored_origin,
};
use super::counters::{
    CounterLimits, Counters, LogMetrics, LogMetricsError, RECORDS_TOTAL, cut, groups_match,
    records_total_labels,
};
use super::query::LogQuery;
use super::record::{LogRecord, RecordOrigin, Severity};
use crate::store::SeriesStore;
use crate::store::commit::{CommitError, GroupCommit};
use crate::store::wal::{Wal, WalError, WalOptions, begin_frame, finish_frame, frame};

/// The log's format version: unchanged since the first (the series
/// store's version 2 says nothing about this log), so older builds read it.
const WAL_FORMAT_VERSION: u32 = 1;
/// Memory accounted per record beyond its encoding: the index entry and
/// its share of the de-duplication set.
const ENTRY_OVERHEAD: u64 = 48;
/// Record offsets within a block are `u32`: a block is sealed well before.
const MAX_BLOCK_BYTES: usize = 1 << 30;
/// A batch is split into WAL frames of about this size (one frame is
/// atomic, so each carries its own records' counter increments).
const FRAME_TARGET_BYTES: usize = 4 << 20;
/// A new head block reserves its byte buffer once, for `block_bytes` (up
/// to this much) plus the record that may cross it, instead of growing
/// it by doubling (each step a copy into memory the kernel zeroes anew).
const HEAD_RESERVE_MAX: usize = 64 << 20;
/// A batch's records keep its dictionary when the dictionary is at most
/// this fraction (1/n) of their bytes; smaller batches are encoded into
/// the block's own dictionary instead, which they mostly share with the
/// records around them, so memory per record stays what one dictionary
/// per block costs.
const BATCH_DICT_MAX_SHARE: usize = 8;
/// Encoding buffers kept for the next appends (one per append in
/// flight), and the largest kept: larger ones are freed.
const SCRATCH_KEPT: usize = 4;
const SCRATCH_MAX_BYTES: usize = 16 << 20;

/// Settings of the log store.
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// Records received longer ago than this are dropped (ms).
    pub max_age_ms: i64,
    /// The records kept at most, in bytes of memory and of write-ahead
    /// log alike (whichever is larger counts).
    pub max_bytes: u64,
    /// A memory block is sealed past this many bytes of records.
    pub block_bytes: usize,
    /// A WAL segment is closed past this many bytes; 0 means
    /// `max_bytes / 16` clamped to 1–64 MiB.
    pub segment_bytes: u64,
    /// A record's body is cut to this many bytes (counted).
    pub max_body_bytes: usize,
    pub counters: CounterLimits,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        LogStoreOptions {
            max_age_ms: 24 * 60 * 60 * 1000,
            max_bytes: 1 << 30,
            block_bytes: 1 << 20,
            segment_bytes: 0,
            max_body_bytes: 64 << 10,
            counters: CounterLimits::default(),
        }
    }
}

impl LogStoreOptions {
    fn segment_limit(&self) -> u64 {
        if self.segment_bytes > 0 {
            self.segment_bytes
        } else {
            (self.max_bytes / 16).clamp(1 << 20, 64 << 20)
        }
    }

    /// A memory block or WAL segment spans at most this long, so age
    /// retention frees memory and disk in steps of ~1/24 of the window.
    fn span_limit_ms(&self) -> i64 {
        (self.max_age_ms / 24).max(1)
    }
}

/// Why the log store could not open, persist or count.
#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("log store: {0}")]
    Wal(#[from] WalError),
    #[error("log store: {0}")]
    Commit(#[from] CommitError),
    #[error("log store: writing counter samples: {0}")]
    Series(#[from] crate::store::StoreError),
    #[error("log store: reading counter series: {0}")]
    Query(#[from] tocsin_rules::promql::StorageError),
    #[error(transparent)]
    Metrics(#[from] LogMetricsError),
    #[error(
        "log store: {records} records repeat ones another request was writing, and that write failed; send them again"
    )]
    RepeatedWriteFailed { records: usize },
}

/// What opening the store found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogOpenReport {
    pub wal_records: usize,
    pub records_restored: u64,
    /// Logged records already past the age retention.
    pub records_expired: u64,
    pub counter_series: usize,
    /// Frames that passed their checksum but did not decode.
    pub undecodable_records: usize,
    pub truncated_tail_bytes: u64,
}

/// What one append did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendOutcome {
    pub accepted: usize,
    /// Dropped: the same agent, file and offset was already accepted.
    pub duplicates: usize,
    /// Accepted with the body cut to the size limit.
    pub truncated: usize,
    /// Counter increments refused by a cardinality cap.
    pub series_refused: usize,
}

/// Counts for self metrics; `_total` fields are since the process started.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LogStoreStats {
    pub records: u64,
    /// Memory the records take, as accounted for the size budget.
    pub bytes: u64,
    /// The records' share of the write-ahead log on disk.
    pub wal_bytes: u64,
    pub blocks: usize,
    pub counter_series: usize,
    pub accepted_total: u64,
    pub duplicates_total: u64,
    pub truncated_total: u64,
    pub evicted_age_total: u64,
    pub evicted_size_total: u64,
    pub wal_failures_total: u64,
    pub series_refused_total: BTreeMap<String, u64>,
}

/// What a counter flush wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    pub samples: usize,
    pub zero_starts: usize,
    pub expired_series: usize,
}

/// The answer to a query.
#[derive(Debug, Default, Clone)]
pub struct LogQueryResult {
    /// Newest first (by record time, then by arrival).
    pub records: Vec<LogRecord>,
    /// Records examined after the block-level filters.
    pub scanned: u64,
    /// The limit was reached and further candidates (records passing
    /// the selector, severity and time filters) were left out: asking
    /// again with an earlier end may find more.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    time_ms: i64,
    offset: u32,
    lset: u32,
}

/// A run of a block's entries whose records refer to one dictionary.
#[derive(Debug, Clone)]
struct Part {
    /// The run's first entry.
    first: u32,
    /// The dictionary of the WAL batch the records were encoded in (shared
    /// with the neighbouring block when the batch crosses a seal), or None
    /// for the block's own.
    dict: Option<Arc<Dict>>,
}

/// Records in arrival order, encoded back to back. Immutable once sealed;
/// queries hold `Arc`s so they scan without the store's lock.
#[derive(Debug, Clone, Default)]
struct Block {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    /// Runs of entries by dictionary, in entry order; the first run starts
    /// at entry 0 (none while the block is empty).
    parts: Vec<Part>,
    /// Bytes of the batch dictionaries in `parts`: each counts fully in
    /// every block that refers to it.
    shared_dict_bytes: usize,
    min_time: i64,
    max_time: i64,
    first_received: i64,
    last_received: i64,
    min_tag: u64,
    /// This block's share of the write-ahead log on disk.
    wal_bytes: u64,
    /// Label-set ids present, sorted.
    lsets: Vec<u32>,
    dict: Dict,
}

impl Block {
    fn accounted(&self) -> u64 {
        (self.bytes.len()
            + self.dict.accounted()
            + self.shared_dict_bytes
            + self.parts.len() * std::mem::size_of::<Part>()) as u64
            + self.entries.len() as u64 * ENTRY_OVERHEAD
    }

    /// The dictionary entry `i`'s record refers to.
    fn dict_of(&self, i: usize) -> &Dict {
        let p = self.parts.partition_point(|p| p.first as usize <= i);
        match p.checked_sub(1).and_then(|p| self.parts.get(p)) {
            Some(Part {
                dict: Some(dict), ..
            }) => dict,
            _ => &self.dict,
        }
    }

    fn record_bytes(&self, i: usize) -> &[u8] {
        let start = self.entries[i].offset as usize;
        let end = self
            .entries
            .get(i + 1)
            .map_or(self.bytes.len(), |e| e.offset as usize);
        &self.bytes[start..end]
    }
}

#[derive(Debug)]
struct LabelSet {
    labels: Labels,
    records: u64,
}

#[derive(Debug, Default)]
struct State {
    sealed: VecDeque<Arc<Block>>,
    head: Arc<Block>,
    bytes: u64,
    wal_bytes: u64,
    records: u64,
    lset_ids: HashMap<Labels, u32>,
    lsets: HashMap<u32, LabelSet>,
    next_lset: u32,
    /// The label set interned last (its id may be released since).
    last_lset: u32,
    /// agent id → file id → the file's number in `offsets`; a file is
    /// known exactly while it has claimed offsets.
    files: HashMap<String, HashMap<String, u64>>,
    /// Numbers are never reused, so a stale [`LastFile`] cannot name
    /// another file.
    next_file: u64,
    /// The de-duplication index: per file, the offsets of its retained and
    /// in-flight records, never empty. Per file rather than in one big
    /// hash table: a file's offsets are claimed mostly in increasing order
    /// and evicted oldest first, which [`FileOffsets`] makes pushes and
    /// pops at the ends of a deque.
    offsets: HashMap<u64, FileOffsets>,
    /// Appends whose records are claimed but not yet durable, oldest
    /// first: a request repeating one of their records must not be
    /// answered before that record is durable (or its write failed).
    in_flight: Vec<InFlight>,
    /// The file looked up last: a request's records come in runs of one
    /// file, so comparing with it spares two string-keyed lookups.
    last_file: Option<LastFile>,
    /// Encoding buffers for appends, reused (see [`SCRATCH_KEPT`]).
    scratch: Vec<Scratch>,
    /// The byte buffer of the block evicted last, when no query held it:
    /// the next head block takes it rather than memory the kernel has to
    /// fault in and zero again.
    spare: Option<Vec<u8>>,
    counters: Counters,
    /// The WAL segment believed current: batches logged now lie in it or a
    /// later one.
    tag: u64,
    segment_written: u64,
    segment_opened_ms: i64,
    /// Tags of batches enqueued but not yet settled.
    pending_tags: BTreeMap<u64, usize>,
    /// The newest segment that starts with a durable counter snapshot.
    snapshot_tag: u64,
    snapshot_needed: bool,
    truncated_below: u64,
    stats: LogStoreStats,
    refused_since_flush: BTreeMap<String, u64>,
}

/// An append between claiming its records' origins and settling its
/// write.
#[derive(Debug)]
struct InFlight {
    /// Per run of one file's records: (file number, lowest offset,
    /// highest offset). A range may span offsets the append does not
    /// hold, so a repeat found in it may wait needlessly, and fail
    /// needlessly when that write fails (its sender then sends it again):
    /// never is a record answered as delivered before it is durable.
    runs: Vec<(u64, u64, u64)>,
    /// Set once the write settled: true when durable.
    durable: Arc<OnceLock<bool>>,
}

impl InFlight {
    fn holds(&self, number: u64, offset: u64) -> bool {
        self.runs
            .iter()
            .any(|&(n, lo, hi)| n == number && (lo..=hi).contains(&offset))
    }
}

#[derive(Debug)]
struct LastFile {
    agent: Arc<str>,
    file: Arc<str>,
    number: u64,
}

/// Whether two strings are equal: by address first (a request's records
/// share their origin's ids, a block's records refer to one dictionary
/// entry for a repeated string), then by content.
fn same_str(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// Whether two origins are of the same file.
fn same_file(a: &RecordOrigin, b: &RecordOrigin) -> bool {
    same_str(&a.agent_id, &b.agent_id) && same_str(&a.file_id, &b.file_id)
}

/// An append's encoding buffers.
#[derive(Debug, Default)]
struct Scratch {
    /// The framed WAL records, which the accepted records' bytes are
    /// copied from into the head block once durable.
    frames: Vec<u8>,
    /// A batch's records while its dictionary is built.
    body: Vec<u8>,
}

/// Where the bytes of a record inserted into the head block come from.
enum Stored<'a> {
    /// Encoded for the block's own dictionary.
    Encode,
    /// Its stored form as its WAL batch holds it, referring to the
    /// batch's dictionary.
    Encoded {
        bytes: &'a [u8],
        dict: &'a Arc<Dict>,
    },
}

/// One chunk of an append, framed.
struct Framed {
    /// Its end in the append's accepted records.
    end: usize,
    /// The batch dictionary its records keep, or None when they are to be
    /// encoded into the block's own.
    dict: Option<Arc<Dict>>,
    /// Per record: where its stored form lies in the frames.
    spans: Vec<std::ops::Range<usize>>,
}

/// Whether a batch's records keep the batch dictionary rather than being
/// encoded again (see [`BATCH_DICT_MAX_SHARE`]).
fn keeps_batch_dict(dict: &Dict, record_bytes: usize) -> bool {
    dict.accounted().saturating_mul(BATCH_DICT_MAX_SHARE) <= record_bytes
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update of the state is completed before anything that could
    // panic, so a poisoned lock still guards consistent data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    fn intern_lset(&mut self, labels: &Labels) -> u32 {
        // Records arrive in runs sharing their labels: comparing with the
        // previous record's set spares hashing the labels each time.
        if let Some(ls) = self.lsets.get_mut(&self.last_lset)
            && ls.labels == *labels
        {
            ls.records += 1;
            return self.last_lset;
        }
        let id = self.intern_lset_slow(labels);
        self.last_lset = id;
        id
    }

    fn intern_lset_slow(&mut self, labels: &Labels) -> u32 {
        if let Some(&id) = self.lset_ids.get(labels) {
            if let Some(ls) = self.lsets.get_mut(&id) {
                ls.records += 1;
            }
            return id;
        }
        // Ids are never reused, so a query holding an old block can never
        // read another label set's id.
        let id = self.next_lset;
        self.next_lset = self.next_lset.wrapping_add(1);
        self.lset_ids.insert(labels.clone(), id);
        self.lsets.insert(
            id,
            LabelSet {
                labels: labels.clone(),
                records: 1,
            },
        );
        id
    }

    fn release_lset(&mut self, id: u32) {
        if let Some(ls) = self.lsets.get_mut(&id) {
            ls.records = ls.records.saturating_sub(1);
            if ls.records == 0
                && let Some(ls) = self.lsets.remove(&id)
            {
                self.lset_ids.remove(&ls.labels);
            }
        }
    }

    /// The number of a known file. The file looked up is remembered (as
    /// `ids` when given, so that records sharing them compare by address).
    fn known_file(
        &mut self,
        agent: &str,
        file: &str,
        ids: Option<(&Arc<str>, &Arc<str>)>,
    ) -> Option<u64> {
        if let Some(last) = &mut self.last_file
            && same_str(&last.agent, agent)
            && same_str(&last.file, file)
        {
            if let Some((a, f)) = ids {
                last.agent = Arc::clone(a);
                last.file = Arc::clone(f);
            }
            return Some(last.number);
        }
        // Looked up by &str: a known file allocates nothing but the cache.
        let number = *self.files.get(agent)?.get(file)?;
        let (agent, file) = match ids {
            Some((a, f)) => (Arc::clone(a), Arc::clone(f)),
            None => (Arc::from(agent), Arc::from(file)),
        };
        self.last_file = Some(LastFile {
            agent,
            file,
            number,
        });
        Some(number)
    }

    /// Claims a record's origin; false when it is already claimed.
    fn claim(&mut self, o: &RecordOrigin) -> bool {
        self.claim_numbered(o).1
    }

    /// Claims a record's origin: the file's number, and false when the
    /// origin is already claimed.
    fn claim_numbered(&mut self, o: &RecordOrigin) -> (u64, bool) {
        let number = self.file_number(o);
        (number, self.claim_in(number, o.offset))
    }

    /// The number of the origin's file, a new one when it is not known.
    /// A new file must have an offset claimed before the lock is let go
    /// (a file is known exactly while it has claimed offsets).
    fn file_number(&mut self, o: &RecordOrigin) -> u64 {
        let (agent, file) = (&*o.agent_id, &*o.file_id);
        if let Some(n) = self.known_file(agent, file, Some((&o.agent_id, &o.file_id))) {
            return n;
        }
        let n = self.next_file;
        self.next_file += 1;
        self.files
            .entry(agent.to_string())
            .or_default()
            .insert(file.to_string(), n);
        n
    }

    /// Claims an offset of file `number`; false when already claimed.
    fn claim_in(&mut self, number: u64, offset: u64) -> bool {
        self.offsets.entry(number).or_default().claim(offset)
    }

    /// The settlement of the in-flight append that may hold an origin.
    fn in_flight_holding(&self, number: u64, offset: u64) -> Option<&Arc<OnceLock<bool>>> {
        self.in_flight
            .iter()
            .find(|f| f.holds(number, offset))
            .map(|f| &f.durable)
    }

    /// Ends an append's in-flight entry and tells who waits on it.
    fn settle(&mut self, durable: &Arc<OnceLock<bool>>, ok: bool, settled: &Condvar) {
        self.in_flight.retain(|f| !Arc::ptr_eq(&f.durable, durable));
        let _ = durable.set(ok);
        settled.notify_all();
    }

    fn unclaim(&mut self, agent: &str, file: &str, offset: u64) {
        self.unclaim_run(agent, file, &[offset]);
    }

    /// Releases offsets of one file, increasing (a run a block holds):
    /// at once when they lie side by side, one by one otherwise.
    fn unclaim_run(&mut self, agent: &str, file: &str, run: &[u64]) {
        let Some(number) = self.known_file(agent, file, None) else {
            return;
        };
        let Some(offsets) = self.offsets.get_mut(&number) else {
            return;
        };
        if !offsets.release_run(run) {
            for &offset in run {
                offsets.release(offset);
            }
        }
        if offsets.is_empty() {
            self.offsets.remove(&number);
            if let Some(files) = self.files.get_mut(agent) {
                files.remove(file);
                if files.is_empty() {
                    self.files.remove(agent);
                }
            }
            if self.last_file.as_ref().is_some_and(|l| l.number == number) {
                self.last_file = None;
            }
        }
    }

    /// An append's encoding buffers: kept ones when there are.
    fn take_scratch(&mut self) -> Scratch {
        self.scratch.pop().unwrap_or_default()
    }

    fn put_scratch(&mut self, mut s: Scratch) {
        if self.scratch.len() < SCRATCH_KEPT
            && s.frames.capacity() <= SCRATCH_MAX_BYTES
            && s.body.capacity() <= SCRATCH_MAX_BYTES
        {
            s.frames.clear();
            s.body.clear();
            self.scratch.push(s);
        }
    }

    /// Adds a durable record; `wal_bytes` is its share of the log on disk.
    fn insert(
        &mut self,
        rec: &LogRecord,
        stored: Stored<'_>,
        tag: u64,
        wal_bytes: u64,
        opts: &LogStoreOptions,
    ) {
        let seal = !self.head.entries.is_empty()
            && (self.head.bytes.len() >= opts.block_bytes.min(MAX_BLOCK_BYTES)
                || rec.received_ms.saturating_sub(self.head.first_received)
                    >= opts.span_limit_ms());
        if seal {
            let mut full = std::mem::take(&mut self.head);
            let b = Arc::make_mut(&mut full);
            // A full block keeps its buffer as reserved (what it does not
            // use is the room kept for the record that crosses the limit),
            // so that once evicted it can serve as a new head's; one
            // sealed early gives back what it did not use.
            if b.bytes.capacity() - b.bytes.len() > b.bytes.len() / 8 {
                b.bytes.shrink_to_fit();
            }
            b.entries.shrink_to_fit();
            b.parts.shrink_to_fit();
            let before = b.accounted();
            b.dict.freeze();
            self.bytes = self.bytes.saturating_sub(before - b.accounted());
            self.sealed.push_back(full);
        }
        let lset = self.intern_lset(&rec.labels);
        let b = Arc::make_mut(&mut self.head);
        let before = b.accounted();
        if b.entries.is_empty() {
            b.min_time = rec.time_ms;
            b.max_time = rec.time_ms;
            b.first_received = rec.received_ms;
            b.last_received = rec.received_ms;
            b.min_tag = tag;
            if b.bytes.capacity() == 0 {
                let reserve = opts.block_bytes.min(MAX_BLOCK_BYTES).min(HEAD_RESERVE_MAX)
                    + opts.max_body_bytes.min(1 << 20)
                    + 4096;
                match self.spare.take() {
                    Some(spare) if spare.capacity() >= reserve => b.bytes = spare,
                    _ => b.bytes.reserve_exact(reserve),
                }
                b.entries.reserve_exact(reserve / 128);
            }
        }
        let offset = b.bytes.len() as u32;
        let first = b.entries.len() as u32;
        match stored {
            Stored::Encode => {
                if b.parts.last().is_none_or(|p| p.dict.is_some()) {
                    b.parts.push(Part { first, dict: None });
                }
                encode_stored(rec, &mut b.dict, &mut b.bytes);
            }
            Stored::Encoded { bytes, dict } => {
                let same = b
                    .parts
                    .last()
                    .and_then(|p| p.dict.as_ref())
                    .is_some_and(|d| Arc::ptr_eq(d, dict));
                if !same {
                    b.parts.push(Part {
                        first,
                        dict: Some(Arc::clone(dict)),
                    });
                    b.shared_dict_bytes += dict.accounted();
                }
                b.bytes.extend_from_slice(bytes);
            }
        }
        b.entries.push(Entry {
            time_ms: rec.time_ms,
            offset,
            lset,
        });
        b.min_time = b.min_time.min(rec.time_ms);
        b.max_time = b.max_time.max(rec.time_ms);
        b.first_received = b.first_received.min(rec.received_ms);
        b.last_received = b.last_received.max(rec.received_ms);
        b.min_tag = b.min_tag.min(tag);
        if let Err(pos) = b.lsets.binary_search(&lset) {
            b.lsets.insert(pos, lset);
        }
        b.wal_bytes += wal_bytes;
        self.bytes += b.accounted() - before;
        self.wal_bytes += wal_bytes;
        self.records += 1;
    }

    /// Drops a block's records from the indexes.
    fn forget(&mut self, block: &Block) {
        // Released by runs of one file's records, as they were claimed.
        let mut run: Option<(&str, &str)> = None;
        let mut offsets: Vec<u64> = Vec::new();
        for (i, e) in block.entries.iter().enumerate() {
            if let Ok(Some((agent, file, offset))) =
                stored_origin(block.record_bytes(i), block.dict_of(i))
            {
                let last = offsets.last().copied();
                match run {
                    Some((a, f))
                        if same_str(a, agent)
                            && same_str(f, file)
                            && last.is_some_and(|l| offset > l) => {}
                    _ => {
                        if let Some((a, f)) = run {
                            self.unclaim_run(a, f, &offsets);
                        }
                        run = Some((agent, file));
                        offsets.clear();
                    }
                }
                offsets.push(offset);
            }
            self.release_lset(e.lset);
        }
        if let Some((a, f)) = run {
            self.unclaim_run(a, f, &offsets);
        }
        self.bytes = self.bytes.saturating_sub(block.accounted());
        self.wal_bytes = self.wal_bytes.saturating_sub(block.wal_bytes);
        self.records = self.records.saturating_sub(block.entries.len() as u64);
    }

    /// Evicts blocks past the age or over the size budget; returns
    /// (records evicted by age, by size).
    fn evict(&mut self, now_ms: i64, opts: &LogStoreOptions) -> (u64, u64) {
        let cutoff = now_ms.saturating_sub(opts.max_age_ms);
        let (mut by_age, mut by_size) = (0, 0);
        loop {
            let too_old = |b: &Block| !b.entries.is_empty() && b.last_received < cutoff;
            // The budget bounds memory and disk alike (the log's encoding
            // is self-contained, so usually the larger).
            let over = self.bytes.max(self.wal_bytes) > opts.max_bytes;
            let front = self.sealed.front().map(|b| too_old(b) || over);
            let block = match front {
                Some(true) => self.sealed.pop_front(),
                Some(false) => None,
                None if too_old(&self.head) || (over && !self.head.entries.is_empty()) => {
                    Some(std::mem::take(&mut self.head))
                }
                None => None,
            };
            let Some(block) = block else { break };
            let n = block.entries.len() as u64;
            if too_old(&block) {
                by_age += n;
            } else {
                by_size += n;
            }
            self.forget(&block);
            if let Ok(Block { mut bytes, .. }) = Arc::try_unwrap(block) {
                bytes.clear();
                self.spare = Some(bytes);
            }
        }
        self.stats.evicted_age_total += by_age;
        self.stats.evicted_size_total += by_size;
        (by_age, by_size)
    }

    /// The lowest segment a retained or in-flight record may lie in.
    fn needed_segment(&self) -> u64 {
        let mut low = self.snapshot_tag;
        // Every sealed block, not only the oldest: concurrent appends are
        // inserted in the order they retake the lock, not in WAL order, so
        // a later block can hold records of an older segment.
        if let Some(t) = self.sealed.iter().map(|b| b.min_tag).min() {
            low = low.min(t);
        }
        if !self.head.entries.is_empty() {
            low = low.min(self.head.min_tag);
        }
        if let Some((&t, _)) = self.pending_tags.first_key_value() {
            low = low.min(t);
        }
        low
    }

    fn snapshot_frame(&self, out: &mut Vec<u8>) -> Result<(), WalError> {
        let mut payload = Vec::new();
        encode_snapshot(&self.counters.snapshot(), &mut payload);
        frame(KIND_COUNTER_SNAPSHOT, &payload, out)
    }
}

/// Sees stored records after their append is durable, outside the store's
/// lock, on the appending thread: keep it quick (hand off to a bounded
/// queue for slow work).
pub trait RecordObserver: Send + Sync {
    fn accepted(&self, records: &[&LogRecord]);
}

/// The durable log store. Safe to share between threads.
pub struct LogStore {
    state: Mutex<State>,
    /// Signalled under `state` whenever an in-flight append settles.
    settled: Condvar,
    log: GroupCommit,
    metrics: RwLock<Arc<LogMetrics>>,
    observer: RwLock<Option<Arc<dyn RecordObserver>>>,
    opts: LogStoreOptions,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens the store whose log lives in `dir` (its own directory),
    /// replaying it; `now_ms` decides what has already expired.
    pub fn open(
        dir: &Path,
        opts: LogStoreOptions,
        now_ms: i64,
    ) -> Result<(LogStore, LogOpenReport), LogStoreError> {
        // The store cuts segments itself (it must know which segment each
        // batch lies in), so the log never cuts on its own.
        let mut report = LogOpenReport::default();
        let mut st = State::default();
        let cutoff = now_ms.saturating_sub(opts.max_age_ms);
        // Records are visited as they are read: replay holds one record at
        // a time, not the whole log.
        let (wal, truncated_tail_bytes) = Wal::open_with(
            dir,
            WalOptions {
                segment_bytes: u64::MAX,
                format_version: WAL_FORMAT_VERSION,
            },
            |rec| {
                report.wal_records += 1;
                match rec.kind {
                    KIND_LOG_BATCH => match decode_batch_stored(&rec.payload) {
                        Ok(StoredBatch {
                            batch:
                                Batch {
                                    tag,
                                    at_ms,
                                    records,
                                    deltas,
                                },
                            dict,
                            spans,
                        }) => {
                            let share = rec.payload.len() as u64 / records.len().max(1) as u64;
                            // The same choice the live store made for this
                            // batch, so the blocks come out the same.
                            let stored_bytes = spans.iter().map(|s| s.len()).sum();
                            let dict =
                                keeps_batch_dict(&dict, stored_bytes).then(|| Arc::new(dict));
                            for (r, span) in records.iter().zip(&spans) {
                                if r.received_ms < cutoff {
                                    report.records_expired += 1;
                                    continue;
                                }
                                // Duplicates are never logged, so a claimed
                                // origin here means a retry that was logged
                                // twice after a failed write: keep one.
                                if let Some(o) = &r.origin
                                    && !st.claim(o)
                                {
                                    continue;
                                }
                                let stored = match (&dict, rec.payload.get(span.clone())) {
                                    (Some(dict), Some(bytes)) => Stored::Encoded { bytes, dict },
                                    _ => Stored::Encode,
                                };
                                st.insert(r, stored, tag, share, &opts);
                                report.records_restored += 1;
                            }
                            st.counters.replay(&deltas, at_ms);
                            // Evicting by the live store's rules keeps
                            // replay's memory bounded; the blocks start where
                            // the oldest kept segment does, so the records
                            // kept can differ from the live store's by up to
                            // a block (module docs).
                            st.evict(now_ms, &opts);
                        }
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "log WAL: undecodable batch skipped");
                            report.undecodable_records += 1;
                        }
                    },
                    KIND_COUNTER_SNAPSHOT => match decode_snapshot(&rec.payload) {
                        Ok(s) => st.counters.restore(s),
                        Err(e) => {
                            tracing::warn!(dir = %dir.display(), error = %e, "log WAL: undecodable counter snapshot skipped");
                            report.undecodable_records += 1;
                        }
                    },
                    kind => {
                        tracing::warn!(dir = %dir.display(), kind, "log WAL: record of unknown kind skipped");
                        report.undecodable_records += 1;
                    }
                }
            },
        )?;
        report.truncated_tail_bytes = truncated_tail_bytes;
        st.evict(now_ms, &opts);
        report.counter_series = st.counters.len();
        let log = GroupCommit::new(wal);
        let store = LogStore {
            state: Mutex::new(st),
            settled: Condvar::new(),
            log,
            metrics: RwLock::new(Arc::new(LogMetrics::default())),
            observer: RwLock::new(None),
            opts,
        };
        {
            let mut st = lock(&store.state);
            store.cut_segment(&mut st, now_ms)?;
            store.truncate_segments(&mut st)?;
        }
        Ok((store, report))
    }

    /// Installs the observer of this store's WAL writes (self metrics);
    /// false when one is installed already.
    pub fn observe_wal_writes(
        &self,
        f: impl Fn(std::time::Duration, usize) + Send + Sync + 'static,
    ) -> bool {
        self.log.observe_writes(f)
    }

    /// Starts a new WAL segment that opens with a counter snapshot, and
    /// waits for the snapshot to be durable.
    fn cut_segment(
        &self,
        st: &mut MutexGuard<'_, State>,
        now_ms: i64,
    ) -> Result<(), LogStoreError> {
        let tag = self.log.with_wal(|w| w.start_new_segment())?;
        st.tag = tag;
        st.segment_written = 0;
        st.segment_opened_ms = now_ms;
        let mut frames = Vec::new();
        st.snapshot_frame(&mut frames)?;
        let ticket = self.log.enqueue(&frames);
        // Held under the state lock: a cut is rare, and appends must not
        // log into the new segment ahead of its snapshot.
        match self.log.wait(ticket) {
            Ok(()) => {
                st.snapshot_tag = tag;
                st.snapshot_needed = false;
                Ok(())
            }
            Err(e) => {
                st.snapshot_needed = true;
                st.stats.wal_failures_total += 1;
                Err(e.into())
            }
        }
    }

    fn truncate_segments(&self, st: &mut MutexGuard<'_, State>) -> Result<(), LogStoreError> {
        let low = st.needed_segment();
        if low > st.truncated_below {
            let removed = self.log.with_wal(|w| w.truncate_before(low))?;
            if removed > 0 {
                tracing::debug!(
                    segments = removed,
                    below = low,
                    "log WAL: segments past retention deleted"
                );
            }
            st.truncated_below = low;
        }
        Ok(())
    }

    /// Replaces the log metrics (on rule-file reload). Series of metrics
    /// no longer defined stop being counted and written.
    pub fn set_log_metrics(&self, metrics: &[LogMetric]) -> Result<(), LogStoreError> {
        let compiled = Arc::new(LogMetrics::compile(metrics)?);
        let mut st = lock(&self.state);
        let dropped = st.counters.retain_metrics(&compiled);
        if dropped > 0 {
            tracing::info!(
                series = dropped,
                "log metrics reloaded: series of removed metrics dropped"
            );
        }
        *self.metrics.write().unwrap_or_else(|e| e.into_inner()) = compiled;
        Ok(())
    }

    /// Stores records and returns once the accepted ones are durable.
    /// Records whose origin was already accepted are dropped and counted.
    pub fn append(&self, mut records: Vec<LogRecord>) -> Result<LogAppendOutcome, LogStoreError> {
        let mut out = LogAppendOutcome::default();
        if records.is_empty() {
            return Ok(out);
        }
        // The label set and severity checked last: records come in runs
        // sharing both (labels compare by address first).
        let mut checked: Option<(Labels, Severity)> = None;
        for rec in &mut records {
            // The severity label is the normalised word, whatever the
            // sender's labels said.
            if checked
                .as_ref()
                .is_none_or(|(l, s)| *s != rec.severity || *l != rec.labels)
            {
                if rec.labels.get("severity") != rec.severity.as_str() {
                    rec.labels = rec.labels.with("severity", rec.severity.as_str());
                }
                checked = Some((rec.labels.clone(), rec.severity));
            }
            if rec.body.len() > self.opts.max_body_bytes {
                rec.body = cut(&rec.body, self.opts.max_body_bytes).to_string();
                out.truncated += 1;
            }
        }
        let now_ms = records.iter().map(|r| r.received_ms).max().unwrap_or(0);
        let metrics = Arc::clone(&self.metrics.read().unwrap_or_else(|e| e.into_inner()));

        let mut st = lock(&self.state);
        let rotate = st.segment_written >= self.opts.segment_limit()
            || (st.segment_written > 0
                && now_ms.saturating_sub(st.segment_opened_ms) >= self.opts.span_limit_ms());
        if rotate {
            self.cut_segment(&mut st, now_ms)?;
            // Failing to delete an old segment only delays reclaiming
            // disk: it must not refuse the records.
            if let Err(e) = self.truncate_segments(&mut st) {
                tracing::warn!(error = %e, "log WAL: deleting segments past retention failed");
            }
        }
        let mut scratch = st.take_scratch();
        let with_snapshot = st.snapshot_needed;
        if with_snapshot {
            st.snapshot_frame(&mut scratch.frames)?;
        }

        let mut accepted: Vec<usize> = Vec::with_capacity(records.len());
        // This append's claims by file, and the in-flight appends holding
        // the records it repeats: it answers only once those are settled.
        let mut runs: Vec<(u64, u64, u64)> = Vec::new();
        let mut repeats: Vec<(Arc<OnceLock<bool>>, usize)> = Vec::new();
        let mut offsets: Vec<u64> = Vec::new();
        let mut start = 0;
        while start < records.len() {
            let Some(o) = &records[start].origin else {
                accepted.push(start);
                start += 1;
                continue;
            };
            // The run of records from o's file at increasing offsets:
            // claimed at once when none is claimed yet, one by one
            // otherwise.
            offsets.clear();
            offsets.push(o.offset);
            let mut end = start + 1;
            while let Some(p) = records.get(end).and_then(|r| r.origin.as_ref())
                && same_file(p, o)
                && offsets.last().is_some_and(|&last| p.offset > last)
            {
                offsets.push(p.offset);
                end += 1;
            }
            let number = st.file_number(o);
            let claimed = st.offsets.entry(number).or_default().claim_run(&offsets);
            for (i, rec) in records.iter().enumerate().take(end).skip(start) {
                let Some(o) = &rec.origin else { continue };
                if claimed || st.claim_in(number, o.offset) {
                    accepted.push(i);
                    match runs.last_mut() {
                        Some((n, lo, hi)) if *n == number => {
                            *lo = (*lo).min(o.offset);
                            *hi = (*hi).max(o.offset);
                        }
                        _ => runs.push((number, o.offset, o.offset)),
                    }
                    continue;
                }
                out.duplicates += 1;
                if let Some(durable) = st.in_flight_holding(number, o.offset) {
                    match repeats.iter_mut().find(|(d, _)| Arc::ptr_eq(d, durable)) {
                        Some((_, n)) => *n += 1,
                        None => repeats.push((Arc::clone(durable), 1)),
                    }
                }
            }
            start = end;
        }

        // Count and frame in chunks: one frame is atomic, so each carries
        // the increments of its own records. Each chunk is encoded once,
        // straight into its frame; the head block takes the bytes from
        // there once they are durable.
        let mut all_deltas: Vec<CounterDelta> = Vec::new();
        let mut chunks: Vec<Framed> = Vec::new();
        let mut start = 0;
        while start < accepted.len() {
            let mut end = start;
            let mut size = 0;
            while end < accepted.len() && (end == start || size < FRAME_TARGET_BYTES) {
                size += records[accepted[end]].body.len() + 256;
                end += 1;
            }
            let chunk: Vec<&LogRecord> =
                accepted[start..end].iter().map(|&i| &records[i]).collect();
            let deltas = self.count(&mut st, &metrics, &chunk, now_ms, &mut out);
            let Scratch { frames, body } = &mut scratch;
            let at = begin_frame(frames);
            let encoded = encode_batch_into(st.tag, now_ms, &chunk, &deltas, body, frames);
            all_deltas.extend(deltas);
            if let Err(e) = finish_frame(KIND_LOG_BATCH, frames, at) {
                for &i in &accepted {
                    if let Some(o) = &records[i].origin {
                        st.unclaim(&o.agent_id, &o.file_id, o.offset);
                    }
                }
                st.counters.subtract(&all_deltas);
                return Err(e.into());
            }
            let stored_bytes = encoded.spans.iter().map(|s| s.len()).sum();
            let dict =
                keeps_batch_dict(&encoded.dict, stored_bytes).then(|| Arc::new(encoded.dict));
            chunks.push(Framed {
                end,
                dict,
                spans: encoded.spans,
            });
            start = end;
        }
        if scratch.frames.is_empty() {
            st.stats.duplicates_total += out.duplicates as u64;
            st.put_scratch(scratch);
            let st = self.await_repeats(st, &repeats)?;
            drop(st);
            self.log_outcome(&out);
            return Ok(out);
        }
        let tag = st.tag;
        let ticket = self.log.enqueue(&scratch.frames);
        st.segment_written += scratch.frames.len() as u64;
        *st.pending_tags.entry(tag).or_insert(0) += 1;
        let durable = Arc::new(OnceLock::new());
        if !runs.is_empty() {
            st.in_flight.push(InFlight {
                runs,
                durable: Arc::clone(&durable),
            });
        }
        drop(st);

        let result = self.log.wait(ticket);

        let mut st = lock(&self.state);
        if let Some(n) = st.pending_tags.get_mut(&tag) {
            *n -= 1;
            if *n == 0 {
                st.pending_tags.remove(&tag);
            }
        }
        if let Err(e) = result {
            for &i in &accepted {
                if let Some(o) = &records[i].origin {
                    st.unclaim(&o.agent_id, &o.file_id, o.offset);
                }
            }
            st.settle(&durable, false, &self.settled);
            st.counters.subtract(&all_deltas);
            // A snapshot logged after these increments were applied may
            // hold them: the next append logs a fresh one that replaces it.
            st.snapshot_needed = true;
            st.stats.wal_failures_total += 1;
            tracing::error!(error = %e, records = accepted.len(), "log WAL write failed; records refused");
            return Err(e.into());
        }
        if with_snapshot {
            st.snapshot_needed = false;
        }
        st.settle(&durable, true, &self.settled);
        let share = scratch.frames.len() as u64 / accepted.len().max(1) as u64;
        let mut start = 0;
        for chunk in &chunks {
            for (k, &i) in accepted[start..chunk.end].iter().enumerate() {
                let bytes = chunk
                    .spans
                    .get(k)
                    .and_then(|s| scratch.frames.get(s.clone()));
                let stored = match (&chunk.dict, bytes) {
                    (Some(dict), Some(bytes)) => Stored::Encoded { bytes, dict },
                    _ => Stored::Encode,
                };
                st.insert(&records[i], stored, tag, share, &self.opts);
            }
            start = chunk.end;
        }
        drop(chunks);
        st.put_scratch(scratch);
        out.accepted = accepted.len();
        st.stats.accepted_total += out.accepted as u64;
        st.stats.duplicates_total += out.duplicates as u64;
        st.stats.truncated_total += out.truncated as u64;
        let (_, by_size) = st.evict(now_ms, &self.opts);
        if by_size > 0 {
            tracing::info!(
                records = by_size,
                max_bytes = self.opts.max_bytes,
                "log store over its size budget: oldest records dropped"
            );
        }
        // Size eviction may free segments; a failure to delete one only
        // delays reclaiming disk, so it must not fail the append.
        if let Err(e) = self.truncate_segments(&mut st) {
            tracing::warn!(error = %e, "log WAL: deleting segments past retention failed");
        }
        // This append's own records are stored whatever the appends it
        // repeats come to, so the observer sees them either way.
        let repeated = self.await_repeats(st, &repeats).map(drop);
        self.log_outcome(&out);
        let observer = self
            .observer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(observer) = observer {
            let stored: Vec<&LogRecord> = accepted.iter().map(|&i| &records[i]).collect();
            observer.accepted(&stored);
        }
        repeated.map(|()| out)
    }

    /// Waits until the in-flight appends whose records this one repeats
    /// have settled. A repeat is answered as delivered only once the
    /// record is durable: when such a write failed (and took its claims
    /// back), the sender must send the records again, so the append
    /// fails. Appends only wait on appends that claimed before them, so
    /// waits cannot form a cycle.
    fn await_repeats<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        repeats: &[(Arc<OnceLock<bool>>, usize)],
    ) -> Result<MutexGuard<'a, State>, LogStoreError> {
        let mut lost = 0;
        for (durable, records) in repeats {
            let ok = loop {
                if let Some(&ok) = durable.get() {
                    break ok;
                }
                st = self.settled.wait(st).unwrap_or_else(|e| e.into_inner());
            };
            if !ok {
                lost += records;
            }
        }
        if lost > 0 {
            tracing::warn!(
                records = lost,
                "log records repeated from a request whose write failed; asking the sender to send them again"
            );
            return Err(LogStoreError::RepeatedWriteFailed { records: lost });
        }
        Ok(st)
    }

    /// Registers what sees every record once it is stored (durable, not a
    /// duplicate), such as the error-group miner; replaces any earlier one.
    pub fn set_observer(&self, observer: Arc<dyn RecordObserver>) {
        *self.observer.write().unwrap_or_else(|e| e.into_inner()) = Some(observer);
    }

    fn log_outcome(&self, out: &LogAppendOutcome) {
        if out.duplicates > 0 {
            tracing::debug!(
                duplicates = out.duplicates,
                "log records already accepted dropped"
            );
        }
        if out.truncated > 0 {
            tracing::debug!(
                records = out.truncated,
                max_body_bytes = self.opts.max_body_bytes,
                "log record bodies cut to the size limit"
            );
        }
    }

    /// Applies a chunk's increments under the caps; returns the accepted
    /// increments to log.
    fn count(
        &self,
        st: &mut State,
        metrics: &LogMetrics,
        chunk: &[&LogRecord],
        now_ms: i64,
        out: &mut LogAppendOutcome,
    ) -> Vec<CounterDelta> {
        // First-seen order, so which new series a cap refuses follows the
        // records' order rather than hash order.
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut incs: Vec<(Labels, u64)> = Vec::new();
        let mut bump = |labels: Labels| match index.get(&labels) {
            Some(&i) => incs[i].1 += 1,
            None => {
                index.insert(labels.clone(), incs.len());
                incs.push((labels, 1));
            }
        };
        // Records of one request mostly share their labels: build the
        // built-in series once per label set.
        let mut builtin: HashMap<&Labels, Labels> = HashMap::new();
        for rec in chunk {
            let total = builtin
                .entry(&rec.labels)
                .or_insert_with(|| records_total_labels(rec))
                .clone();
            bump(total);
            metrics.matches(rec, |_, labels| bump(labels));
        }
        let mut deltas = Vec::with_capacity(incs.len());
        for (labels, n) in incs {
            if st.counters.add(&labels, n, now_ms, &self.opts.counters) {
                deltas.push(CounterDelta { labels, delta: n });
            } else {
                out.series_refused += 1;
                let name = labels.metric_name().to_string();
                *st.stats
                    .series_refused_total
                    .entry(name.clone())
                    .or_insert(0) += n;
                *st.refused_since_flush.entry(name).or_insert(0) += n;
            }
        }
        deltas
    }

    /// Applies age retention and closes an old WAL segment; call
    /// periodically (the append path applies size retention itself).
    pub fn enforce_retention(&self, now_ms: i64) -> Result<(u64, u64), LogStoreError> {
        let mut st = lock(&self.state);
        let evicted = st.evict(now_ms, &self.opts);
        if evicted != (0, 0) {
            tracing::debug!(
                by_age = evicted.0,
                by_size = evicted.1,
                "log records past retention dropped"
            );
        }
        if st.snapshot_needed
            || (st.segment_written > 0
                && now_ms.saturating_sub(st.segment_opened_ms) >= self.opts.span_limit_ms())
        {
            self.cut_segment(&mut st, now_ms)?;
        }
        self.truncate_segments(&mut st)?;
        Ok(evicted)
    }

    /// The records matching `q`, newest first.
    pub fn query(&self, q: &LogQuery) -> LogQueryResult {
        let (blocks, lsets) = {
            let st = lock(&self.state);
            let lsets: HashMap<u32, Labels> = st
                .lsets
                .iter()
                .filter(|(_, ls)| {
                    q.min_severity.is_none_or(|min| {
                        super::record::Severity::parse(ls.labels.get("severity"))
                            .is_some_and(|s| s >= min)
                    }) && groups_match(&q.selector, &ls.labels)
                })
                .map(|(&id, ls)| (id, ls.labels.clone()))
                .collect();
            let mut blocks: Vec<Arc<Block>> = st.sealed.iter().cloned().collect();
            blocks.push(Arc::clone(&st.head));
            (blocks, lsets)
        };
        let mut result = LogQueryResult::default();
        if lsets.is_empty() || q.limit == 0 {
            return result;
        }
        // Min-heap of the best `limit` (time, arrival order) keys seen.
        let mut heap: BinaryHeap<std::cmp::Reverse<(i64, usize, usize)>> = BinaryHeap::new();
        for (bi, b) in blocks.iter().enumerate().rev() {
            if b.entries.is_empty()
                || b.max_time < q.start_ms
                || b.min_time > q.end_ms
                || !b.lsets.iter().any(|id| lsets.contains_key(id))
            {
                continue;
            }
            if heap.len() == q.limit && heap.peek().is_some_and(|w| b.max_time <= w.0.0) {
                // Every record here is older than the worst kept one; the
                // block may still hold matches, so the result is partial.
                result.truncated = true;
                continue;
            }
            for (i, e) in b.entries.iter().enumerate().rev() {
                if e.time_ms < q.start_ms || e.time_ms > q.end_ms || !lsets.contains_key(&e.lset) {
                    continue;
                }
                let key = (e.time_ms, bi, i);
                if heap.len() == q.limit && heap.peek().is_some_and(|w| key <= w.0) {
                    result.truncated = true;
                    continue;
                }
                result.scanned += 1;
                if let Some(text) = &q.text {
                    let Ok(body) = stored_body(b.record_bytes(i), b.dict_of(i)) else {
                        continue;
                    };
                    if !text.is_match(body) {
                        continue;
                    }
                }
                heap.push(std::cmp::Reverse(key));
                if heap.len() > q.limit {
                    heap.pop();
                    result.truncated = true;
                }
            }
        }
        let mut keys: Vec<(i64, usize, usize)> = heap.into_iter().map(|r| r.0).collect();
        keys.sort_unstable_by(|a, b| b.cmp(a));
        for (_, bi, i) in keys {
            let b = &blocks[bi];
            let labels = lsets.get(&b.entries[i].lset).cloned().unwrap_or_default();
            match decode_stored(b.record_bytes(i), b.dict_of(i), labels) {
                Ok(r) => result.records.push(r),
                Err(e) => tracing::error!(error = %e, "log store: stored record does not decode"),
            }
        }
        result
    }

    /// Writes every counter series' value into the series store at
    /// `now_ms`, preceded by a 0 sample just before the first increment of
    /// a series that has none there yet, and the store's own series
    /// (`tocsin_logs_*`, `tocsin_log_metric_series_refused_total`);
    /// forgets idle series. Call at the evaluation interval: every series
    /// gets a sample each time, so a quiet counter stays visible to
    /// `increase()` instead of going stale.
    pub fn flush_counters(
        &self,
        now_ms: i64,
        series: &SeriesStore,
    ) -> Result<FlushReport, LogStoreError> {
        let mut report = FlushReport::default();
        let (values, refused) = {
            let mut st = lock(&self.state);
            report.expired_series = st
                .counters
                .expire(now_ms.saturating_sub(self.opts.counters.idle_ms));
            let values: Vec<(Labels, u64, i64, bool)> = st
                .counters
                .series
                .iter()
                .map(|(l, c)| (l.clone(), c.value, c.created_ms, c.started))
                .collect();
            (values, std::mem::take(&mut st.refused_since_flush))
        };
        let stats = self.stats();
        for (metric, n) in &refused {
            let cap = if metric == RECORDS_TOTAL {
                self.opts.counters.max_records_total_series
            } else {
                self.opts.counters.max_series_per_metric
            };
            tracing::warn!(metric = %metric, increments = n, max_series = cap, "log metric at its series cap: increments of new series refused");
        }
        let mut batch: Vec<(Labels, i64, f64)> = Vec::with_capacity(values.len() + 8);
        let mut started = Vec::new();
        for (labels, value, created_ms, is_started) in values {
            if !is_started {
                let matchers: Vec<Matcher> = labels
                    .iter()
                    .map(|l| Matcher::new(MatchOp::Equal, &l.name, &l.value))
                    .collect();
                // A series restored after a restart already has samples:
                // a second 0 would read as a counter reset.
                let known = series
                    .select(&matchers, i64::MIN, i64::MAX)?
                    .iter()
                    .any(|s| s.labels == labels && !s.samples.is_empty());
                if !known {
                    let t0 = created_ms.min(now_ms).saturating_sub(1);
                    batch.push((labels.clone(), t0, 0.0));
                    report.zero_starts += 1;
                }
                started.push(labels.clone());
            }
            batch.push((labels, now_ms, value as f64));
        }
        batch.extend(self_series(&stats, now_ms));
        report.samples = batch.len();
        if !batch.is_empty() {
            series.append(&batch)?;
        }
        let mut st = lock(&self.state);
        for l in started {
            if let Some(c) = st.counters.series.get_mut(&l) {
                c.started = true;
            }
        }
        Ok(report)
    }

    /// The value of one counter series.
    pub fn counter_value(&self, labels: &Labels) -> Option<u64> {
        lock(&self.state).counters.value(labels)
    }

    pub fn stats(&self) -> LogStoreStats {
        let st = lock(&self.state);
        let mut s = st.stats.clone();
        s.records = st.records;
        s.bytes = st.bytes;
        s.wal_bytes = st.wal_bytes;
        s.blocks = st.sealed.len() + usize::from(!st.head.entries.is_empty());
        s.counter_series = st.counters.len();
        s
    }
}

/// The store's own series (DESIGN.md, "The collector's own series"); the
/// `_total` ones count since the process started.
pub fn self_series(s: &LogStoreStats, now_ms: i64) -> Vec<(Labels, i64, f64)> {
    let one = |name: &str, v: u64| (Labels::from_pairs([("__name__", name)]), now_ms, v as f64);
    let mut out = vec![
        one("tocsin_logs_stored_records", s.records),
        one("tocsin_logs_stored_bytes", s.bytes),
        one("tocsin_logs_wal_bytes", s.wal_bytes),
        one("tocsin_logs_duplicates_total", s.duplicates_total),
        one("tocsin_logs_truncated_total", s.truncated_total),
        one("tocsin_logs_wal_failures_total", s.wal_failures_total),
        one("tocsin_logs_counter_series", s.counter_series as u64),
    ];
    for (reason, v) in [("age", s.evicted_age_total), ("size", s.evicted_size_total)] {
        out.push((
            Labels::from_pairs([
                ("__name__", "tocsin_logs_evicted_total"),
                ("reason", reason),
            ]),
            now_ms,
            v as f64,
        ));
    }
    for (metric, v) in &s.series_refused_total {
        out.push((
            Labels::from_pairs([
                ("__name__", "tocsin_log_metric_series_refused_total"),
                ("metric", metric.as_str()),
            ]),
            now_ms,
            *v as f64,
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Concurrent appends are inserted in the order they retake the lock:
    /// a block after the oldest can hold records of an older segment, and
    /// that segment must stay.
    #[test]
    fn the_needed_segment_is_the_oldest_of_every_sealed_block() {
        let mut st = State {
            snapshot_tag: 10,
            ..State::default()
        };
        for min_tag in [7, 3, 9] {
            st.sealed.push_back(Arc::new(Block {
                min_tag,
                ..Block::default()
            }));
        }
        assert_eq!(st.needed_segment(), 3);
    }
    use crate::logs::counters::tests::metric;
    use crate::logs::query::TextFilter;
    use crate::logs::record::{RecordOrigin, Severity};
    use crate::store::head::HeadOptions;

    const T0: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn rec(host: &str, sev: Severity, t: i64, body: &str, offset: Option<u64>) -> LogRecord {
        LogRecord {
            time_ms: t,
            received_ms: t,
            severity: sev,
            severity_text: "".into(),
            labels: Labels::from_pairs([("host_name", host), ("service_name", "api")]),
            body: body.into(),
            attributes: Default::default(),
            origin: offset.map(|offset| RecordOrigin {
                agent_id: format!("agent-{host}").into(),
                file_id: "file-1".into(),
                offset,
            }),
            trace_id: None,
            span_id: None,
        }
    }

    fn open(dir: &Path, opts: &LogStoreOptions, now: i64) -> LogStore {
        LogStore::open(dir, opts.clone(), now).unwrap().0
    }

    fn bodies(r: &LogQueryResult) -> Vec<&str> {
        r.records.iter().map(|r| r.body.as_str()).collect()
    }

    fn all() -> LogQuery {
        LogQuery {
            limit: crate::logs::query::MAX_LIMIT,
            ..LogQuery::default()
        }
    }

    #[test]
    fn duplicates_are_dropped_across_reopen_until_retention_forgets_them() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogStoreOptions::default();
        {
            let s = open(dir.path(), &opts, T0);
            let out = s
                .append(vec![
                    rec("a", Severity::Error, T0, "one", Some(0)),
                    rec("a", Severity::Error, T0, "one again", Some(0)),
                    rec("a", Severity::Error, T0, "two", Some(10)),
                    rec("a", Severity::Info, T0, "no origin", None),
                    rec("a", Severity::Info, T0, "no origin", None),
                ])
                .unwrap();
            assert_eq!((out.accepted, out.duplicates), (4, 1));
        }
        let s = open(dir.path(), &opts, T0 + 1);
        let out = s
            .append(vec![
                rec("a", Severity::Error, T0 + 1, "one", Some(0)),
                rec("b", Severity::Error, T0 + 1, "other agent", Some(0)),
            ])
            .unwrap();
        assert_eq!((out.accepted, out.duplicates), (1, 1));
        assert_eq!(s.stats().duplicates_total, 1);
        assert_eq!(s.query(&all()).records.len(), 5);
        // Past the age window the records and their keys are gone, also
        // after a reopen: a re-send is stored again.
        let later = T0 + 25 * HOUR;
        s.enforce_retention(later).unwrap();
        assert!(s.query(&all()).records.is_empty());
        drop(s);
        let (s, report) = LogStore::open(dir.path(), opts, later).unwrap();
        assert_eq!(report.records_restored, 0);
        let out = s
            .append(vec![rec("a", Severity::Error, later, "one", Some(0))])
            .unwrap();
        assert_eq!((out.accepted, out.duplicates), (1, 0));
    }

    #[test]
    fn age_retention_drops_old_blocks_and_deletes_their_segments() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogStoreOptions {
            max_age_ms: 24 * HOUR,
            ..LogStoreOptions::default()
        };
        let s = open(dir.path(), &opts, T0);
        for h in 0..30 {
            let t = T0 + h * HOUR;
            s.append(vec![rec(
                "a",
                Severity::Warn,
                t,
                &format!("hour {h}"),
                Some(h as u64),
            )])
            .unwrap();
            s.enforce_retention(t).unwrap();
        }
        let kept = s.query(&all());
        // Hours 5..=29 are within 24h of hour 29 (one block per hour: the
        // span limit is 1/24 of the age).
        assert_eq!(kept.records.len(), 25, "{:?}", bodies(&kept));
        assert_eq!(kept.records[0].body, "hour 29");
        assert_eq!(kept.records[24].body, "hour 5");
        assert_eq!(s.stats().evicted_age_total, 5);
        let segments = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(segments <= 26, "{segments} segments left");
        // The counter survives the deletion of the segments that built it.
        drop(s);
        let s = open(dir.path(), &opts, T0 + 29 * HOUR);
        assert_eq!(s.query(&all()).records.len(), 25);
        let total = Labels::from_pairs([
            ("__name__", RECORDS_TOTAL),
            ("host_name", "a"),
            ("service_name", "api"),
            ("severity", "warn"),
        ]);
        assert_eq!(s.counter_value(&total), Some(30));
    }

    #[test]
    fn size_retention_keeps_the_newest_within_budget() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogStoreOptions {
            max_bytes: 64 << 10,
            block_bytes: 4 << 10,
            segment_bytes: 8 << 10,
            ..LogStoreOptions::default()
        };
        let s = open(dir.path(), &opts, T0);
        let body = "x".repeat(200);
        for i in 0..2000i64 {
            s.append(vec![rec(
                "a",
                Severity::Info,
                T0 + i,
                &format!("{i} {body}"),
                Some(i as u64),
            )])
            .unwrap();
        }
        let st = s.stats();
        assert!(st.bytes <= opts.max_bytes, "{st:?}");
        assert!(st.wal_bytes <= opts.max_bytes, "{st:?}");
        assert!(st.evicted_size_total > 1000, "{st:?}");
        assert_eq!(st.records + st.evicted_size_total, 2000);
        // On disk: the budget plus at most the open segment and the
        // partly evicted oldest one.
        let disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(
            disk <= opts.max_bytes + 3 * opts.segment_bytes,
            "{disk} bytes on disk"
        );
        let newest = s.query(&LogQuery { limit: 1, ..all() });
        assert!(newest.records[0].body.starts_with("1999 "));
        // What was evicted by size is forgotten by the dedup index too.
        let out = s
            .append(vec![rec(
                "a",
                Severity::Info,
                T0 + 5000,
                "0 again",
                Some(0),
            )])
            .unwrap();
        assert_eq!(out.accepted, 1);
        drop(s);
        let s = open(dir.path(), &opts, T0 + 5000);
        assert!(s.stats().bytes <= opts.max_bytes);
        assert_eq!(
            s.query(&LogQuery { limit: 1, ..all() }).records[0].body,
            "0 again"
        );
    }

    #[test]
    fn queries_filter_by_selector_severity_time_and_text_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), &LogStoreOptions::default(), T0);
        s.append(vec![
            rec(
                "web-1",
                Severity::Error,
                T0 + 3,
                "timeout talking to db",
                None,
            ),
            rec("web-1", Severity::Info, T0 + 1, "request ok", None),
            rec(
                "web-2",
                Severity::Warn,
                T0 + 2,
                "slow: deadline exceeded",
                None,
            ),
            rec(
                "web-2",
                Severity::Fatal,
                T0 + 5,
                "panicked at main.rs",
                None,
            ),
            rec("db-1", Severity::Error, T0 + 4, "timeout on disk", None),
        ])
        .unwrap();
        let q = |sel: &str, sev: Option<&str>, re: Option<&str>, limit: Option<usize>| {
            let q = LogQuery::from_params(Some(sel), sev, None, None, None, re, limit).unwrap();
            bodies(&s.query(&q))
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(r#"{host_name=~"web-.*"}"#, None, None, None),
            [
                "panicked at main.rs",
                "timeout talking to db",
                "slow: deadline exceeded",
                "request ok"
            ]
        );
        assert_eq!(
            q(r#"{host_name=~"web-.*"}"#, Some("warn"), None, None),
            [
                "panicked at main.rs",
                "timeout talking to db",
                "slow: deadline exceeded"
            ]
        );
        assert_eq!(
            q(r#"{severity="error"}"#, None, None, None),
            ["timeout on disk", "timeout talking to db"]
        );
        assert_eq!(
            q("", None, Some("timeout|deadline"), None),
            [
                "timeout on disk",
                "timeout talking to db",
                "slow: deadline exceeded"
            ]
        );
        assert_eq!(
            q("{}", None, Some("timeout|deadline"), Some(2)),
            ["timeout on disk", "timeout talking to db"]
        );
        let limited = s.query(&LogQuery { limit: 2, ..all() });
        assert!(limited.truncated);
        assert!(!s.query(&all()).truncated);
        let range = s.query(&LogQuery {
            start_ms: T0 + 2,
            end_ms: T0 + 3,
            text: Some(TextFilter::Contains("d".into())),
            ..all()
        });
        assert_eq!(
            bodies(&range),
            ["timeout talking to db", "slow: deadline exceeded"]
        );
        assert_eq!(range.records[0].labels.get("severity"), "error");
        assert!(q(r#"{host_name="none"}"#, None, None, None).is_empty());
    }

    #[test]
    fn counters_start_at_zero_survive_reopen_and_respect_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let sdir = tempfile::tempdir().unwrap();
        let opts = LogStoreOptions {
            counters: CounterLimits {
                max_series_per_metric: 2,
                ..CounterLimits::default()
            },
            ..LogStoreOptions::default()
        };
        let metrics = [metric(
            "api_timeouts_total",
            r#"{service_name="api"}"#,
            Some("warn"),
            Some(r"timeout talking to (?P<peer>\w+)"),
            &[("team", "core")],
        )];
        let series = |path: &Path| {
            SeriesStore::open(path, HeadOptions::default(), WalOptions::default())
                .unwrap()
                .0
        };
        let timeouts = |peer: &str| {
            Labels::from_pairs([
                ("__name__", "api_timeouts_total"),
                ("host_name", "web-1"),
                ("service_name", "api"),
                ("severity", "error"),
                ("peer", peer),
                ("team", "core"),
            ])
        };
        let samples = |ss: &SeriesStore, l: &Labels| -> Vec<(i64, f64)> {
            let m: Vec<Matcher> = l
                .iter()
                .map(|l| Matcher::new(MatchOp::Equal, &l.name, &l.value))
                .collect();
            ss.select(&m, i64::MIN, i64::MAX)
                .unwrap()
                .into_iter()
                .flat_map(|s| s.samples.into_iter().map(|x| (x.t, x.v)))
                .collect()
        };
        {
            let s = open(dir.path(), &opts, T0);
            let ss = series(sdir.path());
            s.set_log_metrics(&metrics).unwrap();
            let out = s
                .append(vec![
                    rec(
                        "web-1",
                        Severity::Error,
                        T0 + 100,
                        "timeout talking to db",
                        None,
                    ),
                    rec(
                        "web-1",
                        Severity::Error,
                        T0 + 100,
                        "timeout talking to db",
                        None,
                    ),
                    rec(
                        "web-1",
                        Severity::Info,
                        T0 + 100,
                        "timeout talking to db",
                        None,
                    ),
                    rec(
                        "web-1",
                        Severity::Error,
                        T0 + 100,
                        "timeout talking to cache",
                        None,
                    ),
                    rec(
                        "web-1",
                        Severity::Error,
                        T0 + 100,
                        "timeout talking to auth",
                        None,
                    ),
                ])
                .unwrap();
            // db and cache (or auth) fit under the cap of 2; one is refused.
            assert_eq!(out.series_refused, 1);
            assert_eq!(
                s.stats().series_refused_total.get("api_timeouts_total"),
                Some(&1)
            );
            assert_eq!(s.counter_value(&timeouts("db")), Some(2));
            let report = s.flush_counters(T0 + 1000, &ss).unwrap();
            // db and cache, and the built-in error and info series.
            assert_eq!(report.zero_starts, 4, "{report:?}");
            let refused = Labels::from_pairs([
                ("__name__", "tocsin_log_metric_series_refused_total"),
                ("metric", "api_timeouts_total"),
            ]);
            assert_eq!(samples(&ss, &refused), [(T0 + 1000, 1.0)]);
            assert_eq!(
                samples(&ss, &timeouts("db")),
                [(T0 + 99, 0.0), (T0 + 1000, 2.0)]
            );
            s.append(vec![rec(
                "web-1",
                Severity::Error,
                T0 + 1500,
                "timeout talking to db",
                None,
            )])
            .unwrap();
            let report = s.flush_counters(T0 + 2000, &ss).unwrap();
            assert_eq!(report.zero_starts, 0);
            assert_eq!(
                samples(&ss, &timeouts("db")),
                [(T0 + 99, 0.0), (T0 + 1000, 2.0), (T0 + 2000, 3.0)]
            );
        }
        // After a restart the value continues from the log, with no new 0.
        let s = open(dir.path(), &opts, T0 + 3000);
        let ss = series(sdir.path());
        s.set_log_metrics(&metrics).unwrap();
        assert_eq!(s.counter_value(&timeouts("db")), Some(3));
        s.append(vec![rec(
            "web-1",
            Severity::Error,
            T0 + 3500,
            "timeout talking to db",
            None,
        )])
        .unwrap();
        let report = s.flush_counters(T0 + 4000, &ss).unwrap();
        assert_eq!(report.zero_starts, 0);
        assert_eq!(
            samples(&ss, &timeouts("db")).last(),
            Some(&(T0 + 4000, 4.0))
        );
        // Reloading without the metric stops counting it.
        s.set_log_metrics(&[]).unwrap();
        assert_eq!(s.counter_value(&timeouts("db")), None);
        s.append(vec![rec(
            "web-1",
            Severity::Error,
            T0 + 4500,
            "timeout talking to db",
            None,
        )])
        .unwrap();
        assert_eq!(s.counter_value(&timeouts("db")), None);
    }

    #[test]
    fn the_observer_sees_stored_records_once() {
        struct Seen(Mutex<Vec<String>>);
        impl RecordObserver for Seen {
            fn accepted(&self, records: &[&LogRecord]) {
                lock(&self.0).extend(records.iter().map(|r| r.body.clone()));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path(), &LogStoreOptions::default(), T0);
        let seen = Arc::new(Seen(Mutex::new(Vec::new())));
        s.set_observer(seen.clone());
        s.append(vec![
            rec("a", Severity::Error, T0, "one", Some(1)),
            rec("a", Severity::Error, T0, "one dup", Some(1)),
        ])
        .unwrap();
        s.append(vec![rec("a", Severity::Error, T0, "one again", Some(1))])
            .unwrap();
        assert_eq!(*lock(&seen.0), ["one"]);
    }

    #[test]
    fn a_torn_tail_loses_records_and_their_counts_together() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogStoreOptions::default();
        {
            let s = open(dir.path(), &opts, T0);
            for b in 0..3u64 {
                let batch = (0..4)
                    .map(|i| {
                        rec(
                            "a",
                            Severity::Error,
                            T0,
                            &format!("{b}/{i}"),
                            Some(b * 10 + i),
                        )
                    })
                    .collect();
                s.append(batch).unwrap();
            }
        }
        // A crash in the middle of writing the last batch.
        let mut segments: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segments.sort();
        let last = segments.last().unwrap();
        let len = std::fs::metadata(last).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(last)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let (s, report) = LogStore::open(dir.path(), opts, T0).unwrap();
        assert!(report.truncated_tail_bytes > 0);
        assert_eq!(report.records_restored, 8);
        let total = Labels::from_pairs([
            ("__name__", RECORDS_TOTAL),
            ("host_name", "a"),
            ("service_name", "api"),
            ("severity", "error"),
        ]);
        assert_eq!(s.counter_value(&total), Some(8));
        // The sender was never acknowledged, re-sends, and is accepted.
        let out = s
            .append(vec![rec("a", Severity::Error, T0, "2/0", Some(20))])
            .unwrap();
        assert_eq!(out.accepted, 1);
        assert_eq!(s.counter_value(&total), Some(9));
    }

    /// A request as the agent sends it: `n` records of one file from
    /// `offset` on, with the file attributes.
    fn file_batch(agent: &str, first: u64, n: u64, t: i64) -> Vec<LogRecord> {
        (first..first + n)
            .map(|k| {
                let offset = k * 100;
                let mut r = rec(
                    agent,
                    if k % 3 == 0 {
                        Severity::Error
                    } else {
                        Severity::Info
                    },
                    t + k as i64,
                    &format!("line {k} of {agent}: some text that is typical of a log line"),
                    Some(offset),
                );
                r.severity_text = "INFO".into();
                r.attributes = vec![
                    ("log.file.name".into(), "app.log".into()),
                    ("log.file.path".into(), "/var/log/app.log".into()),
                    ("tocsin.file.id".into(), "file-1".into()),
                    ("tocsin.file.offset".into(), offset.to_string().into()),
                ]
                .into();
                r
            })
            .collect()
    }

    /// What a query gives back for an appended record.
    fn as_stored(mut r: LogRecord) -> LogRecord {
        r.labels = r.labels.with("severity", r.severity.as_str());
        r
    }

    fn all_records(s: &LogStore) -> Vec<LogRecord> {
        let mut got = s.query(&all()).records;
        got.sort_by_key(|r| (r.labels.get("host_name").to_string(), r.time_ms));
        got
    }

    /// Stalls the store's next WAL write until the returned sender says
    /// how it ends (`Ok` or an error message); later writes go through.
    /// The receiver hears when the stalled write has started.
    fn stall_next_write(
        s: &LogStore,
    ) -> (
        std::sync::mpsc::Sender<Result<(), String>>,
        std::sync::mpsc::Receiver<()>,
    ) {
        let (release, gate) = std::sync::mpsc::channel::<Result<(), String>>();
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let gate = Mutex::new(Some((gate, entered_tx)));
        s.log.inject_faults(move || match lock(&gate).take() {
            Some((gate, entered)) => {
                entered.send(()).unwrap();
                gate.recv().unwrap()
            }
            None => Ok(()),
        });
        (release, entered)
    }

    /// Runs an append on its own thread; its answer comes on the receiver.
    fn append_in_background(s: &Arc<LogStore>, records: Vec<LogRecord>) -> Answer {
        let (tx, rx) = std::sync::mpsc::channel();
        let s = Arc::clone(s);
        std::thread::spawn(move || tx.send(s.append(records)).unwrap());
        rx
    }

    type Answer = std::sync::mpsc::Receiver<Result<LogAppendOutcome, LogStoreError>>;

    /// Appends records 0..10 of a file with their WAL write stalled, then
    /// records `from..from + 10` again from another request (a sender that
    /// timed out and resent), and checks the repeat is not answered while
    /// the write it repeats is stalled. Returns how to end the stalled
    /// write and both answers.
    fn repeat_while_stalled(
        s: &Arc<LogStore>,
        from: u64,
    ) -> (std::sync::mpsc::Sender<Result<(), String>>, Answer, Answer) {
        let (release, entered) = stall_next_write(s);
        let first = append_in_background(s, file_batch("a", 0, 10, T0));
        entered.recv().unwrap();
        let repeat = append_in_background(s, file_batch("a", from, 10, T0));
        let early = repeat.recv_timeout(std::time::Duration::from_millis(300));
        assert!(
            early.is_err(),
            "answered before the repeated records were durable: {early:?}"
        );
        (release, first, repeat)
    }

    #[test]
    fn a_repeat_of_records_being_written_is_answered_once_they_are_durable() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(open(dir.path(), &LogStoreOptions::default(), T0));
        let (release, first, repeat) = repeat_while_stalled(&s, 0);
        release.send(Ok(())).unwrap();
        assert_eq!(first.recv().unwrap().unwrap().accepted, 10);
        let out = repeat.recv().unwrap().unwrap();
        assert_eq!((out.accepted, out.duplicates), (0, 10));
        assert_eq!(all_records(&s).len(), 10);
    }

    #[test]
    fn a_repeat_of_records_whose_write_fails_fails_and_the_resend_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(open(dir.path(), &LogStoreOptions::default(), T0));
        // Records 5..10 repeat the stalled write's, 10..15 are new.
        let (release, first, repeat) = repeat_while_stalled(&s, 5);
        release.send(Err("disk on fire".into())).unwrap();
        let err = first.recv().unwrap().unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
        // Its own records are stored, the repeated ones must come again.
        let err = repeat.recv().unwrap().unwrap_err();
        assert!(
            matches!(err, LogStoreError::RepeatedWriteFailed { records: 5 }),
            "{err}"
        );
        let offsets = |s: &LogStore| -> Vec<u64> {
            let mut o: Vec<u64> = all_records(s)
                .iter()
                .map(|r| r.origin.as_ref().unwrap().offset / 100)
                .collect();
            o.sort_unstable();
            o
        };
        assert_eq!(offsets(&s), (10..15).collect::<Vec<_>>());
        let out = s.append(file_batch("a", 5, 10, T0)).unwrap();
        assert_eq!((out.accepted, out.duplicates), (5, 5));
        let out = s.append(file_batch("a", 0, 10, T0)).unwrap();
        assert_eq!((out.accepted, out.duplicates), (5, 5));
        assert_eq!(offsets(&s), (0..15).collect::<Vec<_>>());
        assert_eq!(s.stats().wal_failures_total, 1);
    }

    #[test]
    fn batches_keep_their_encoding_and_replay_rebuilds_the_same_blocks() {
        let dir = tempfile::tempdir().unwrap();
        // Blocks of 16 KiB: batches of 300 records (~30 KiB) cross seals.
        let opts = LogStoreOptions {
            block_bytes: 16 << 10,
            ..LogStoreOptions::default()
        };
        let mut want = Vec::new();
        let (bytes, blocks) = {
            let s = open(dir.path(), &opts, T0);
            for b in 0..4 {
                let batch = file_batch("a", b * 300, 300, T0);
                want.extend(batch.iter().cloned().map(as_stored));
                assert_eq!(s.append(batch).unwrap().accepted, 300);
                // A record on its own is encoded into the block's
                // dictionary, between parts that keep their batch's.
                let single = file_batch("b", b, 1, T0);
                want.extend(single.iter().cloned().map(as_stored));
                assert_eq!(s.append(single).unwrap().accepted, 1);
            }
            {
                let st = lock(&s.state);
                let blocks: Vec<&Block> =
                    st.sealed.iter().map(|b| &**b).chain([&*st.head]).collect();
                assert!(blocks.len() > 4, "{} blocks", blocks.len());
                let parts: Vec<&Part> = blocks.iter().flat_map(|b| &b.parts).collect();
                assert!(parts.iter().any(|p| p.dict.is_some()));
                assert!(parts.iter().any(|p| p.dict.is_none()));
                // A batch that crosses a seal shares its dictionary.
                assert!(blocks.windows(2).any(|w| {
                    match (w[0].parts.last(), w[1].parts.first()) {
                        (Some(Part { dict: Some(a), .. }), Some(Part { dict: Some(b), .. })) => {
                            Arc::ptr_eq(a, b)
                        }
                        _ => false,
                    }
                }));
            }
            want.sort_by_key(|r| (r.labels.get("host_name").to_string(), r.time_ms));
            assert_eq!(all_records(&s), want);
            // A retry of any subset, across batches, is all duplicates.
            let mut retry = file_batch("a", 250, 100, T0);
            retry.extend(file_batch("b", 2, 1, T0));
            let out = s.append(retry).unwrap();
            assert_eq!((out.accepted, out.duplicates), (0, 101));
            let q = LogQuery::from_params(None, None, None, None, Some("line 777 "), None, None)
                .unwrap();
            assert_eq!(bodies(&s.query(&q)).len(), 1);
            let st = s.stats();
            (st.bytes, st.blocks)
        };
        let (s, report) = LogStore::open(dir.path(), opts, T0).unwrap();
        assert_eq!(report.records_restored, 1204);
        assert_eq!(s.stats().bytes, bytes);
        assert_eq!(s.stats().blocks, blocks);
        assert_eq!(all_records(&s), want);
        let out = s.append(file_batch("a", 1199, 2, T0)).unwrap();
        assert_eq!((out.accepted, out.duplicates), (1, 1));
    }

    #[test]
    fn evicting_batches_frees_their_origins_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogStoreOptions {
            max_bytes: 96 << 10,
            block_bytes: 8 << 10,
            segment_bytes: 32 << 10,
            ..LogStoreOptions::default()
        };
        let s = open(dir.path(), &opts, T0);
        // Requests of one file land out of order (several in flight).
        for b in [1u64, 0, 3, 2, 5, 4, 7, 6, 9, 8] {
            let out = s.append(file_batch("a", b * 200, 200, T0)).unwrap();
            assert_eq!(out.accepted, 200);
        }
        let st = s.stats();
        assert!(st.evicted_size_total > 0, "{st:?}");
        assert!(st.bytes <= opts.max_bytes, "{st:?}");
        assert_eq!(st.records + st.evicted_size_total, 2000);
        // Exactly the retained records are duplicates; the evicted ones
        // are stored again.
        let kept: std::collections::BTreeSet<u64> = s
            .query(&all())
            .records
            .iter()
            .map(|r| r.origin.as_ref().unwrap().offset)
            .collect();
        let out = s.append(file_batch("a", 0, 2000, T0)).unwrap();
        assert_eq!(out.duplicates, kept.len());
        assert_eq!(out.accepted, 2000 - kept.len());
    }

    proptest::proptest! {
        /// Claims answer as a set of (agent, file, offset) would, and the
        /// index forgets a file once it has no claimed offsets.
        #[test]
        fn claims_equal_a_set_of_origins(
            ops in proptest::collection::vec(
                (proptest::bool::ANY, 0u8..2, 0u8..3, 0u64..6, proptest::bool::ANY),
                0..200,
            ),
        ) {
            let mut st = State::default();
            let mut model = std::collections::HashSet::new();
            // Ids shared between claims (compared by address) or fresh
            // copies (compared by content).
            let mut shared: HashMap<(u8, u8), (Arc<str>, Arc<str>)> = HashMap::new();
            for (claim, agent, file, offset, share) in ops {
                let (a, f) = (format!("agent-{agent}"), format!("file-{file}"));
                if claim {
                    let (agent_id, file_id) = if share {
                        shared
                            .entry((agent, file))
                            .or_insert_with(|| (a.as_str().into(), f.as_str().into()))
                            .clone()
                    } else {
                        (a.as_str().into(), f.as_str().into())
                    };
                    let o = RecordOrigin { agent_id, file_id, offset };
                    proptest::prop_assert_eq!(
                        st.claim(&o),
                        model.insert((a.clone(), f.clone(), offset))
                    );
                } else {
                    st.unclaim(&a, &f, offset);
                    model.remove(&(a, f, offset));
                }
                let files: usize = st.files.values().map(|f| f.len()).sum();
                proptest::prop_assert_eq!(files, st.offsets.len());
                proptest::prop_assert!(st.offsets.values().all(|o| !o.is_empty()));
                let claimed: usize = st.offsets.values().map(|o| o.len()).sum();
                proptest::prop_assert_eq!(claimed, model.len());
            }
        }
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        const SEVERITIES: [Severity; 7] = [
            Severity::Unknown,
            Severity::Trace,
            Severity::Debug,
            Severity::Info,
            Severity::Warn,
            Severity::Error,
            Severity::Fatal,
        ];
        const WORDS: [&str; 4] = ["timeout", "refused", "ok", "panic"];

        fn entry() -> impl Strategy<Value = (u8, usize, i64, usize)> {
            (0u8..3, 0usize..7, 0i64..40, 0usize..4)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            /// A query returns exactly what filtering every record and
            /// keeping the newest `limit` would, across many blocks.
            #[test]
            fn query_equals_the_naive_filter(
                entries in proptest::collection::vec(entry(), 0..120),
                host in proptest::option::of(0u8..3),
                host_regex in any::<bool>(),
                min in proptest::option::of(0usize..7),
                range in (0i64..40, 0i64..40),
                word in proptest::option::of(0usize..4),
                limit in 1usize..12,
            ) {
                let dir = tempfile::tempdir().unwrap();
                let opts = LogStoreOptions { block_bytes: 256, ..LogStoreOptions::default() };
                let s = open(dir.path(), &opts, T0);
                let mut all_recs = Vec::new();
                for (seq, (h, sev, t, w)) in entries.iter().enumerate() {
                    let r = rec(
                        &format!("h{h}"),
                        SEVERITIES[*sev],
                        T0 + t,
                        &format!("{} #{seq}", WORDS[*w]),
                        None,
                    );
                    all_recs.push((seq, r.clone()));
                    s.append(vec![r]).unwrap();
                }
                let (start, end) = (T0 + range.0.min(range.1), T0 + range.0.max(range.1));
                let selector = match (host, host_regex) {
                    (None, _) => String::new(),
                    (Some(h), false) => format!(r#"{{host_name="h{h}"}}"#),
                    (Some(h), true) => format!(r#"{{host_name!~"h{h}"}}"#),
                };
                let q = LogQuery::from_params(
                    Some(&selector),
                    min.map(|m| SEVERITIES[m].as_str()),
                    Some(start),
                    Some(end),
                    word.map(|w| WORDS[w]),
                    None,
                    Some(limit),
                ).unwrap();
                let mut want: Vec<(i64, usize, String)> = all_recs
                    .iter()
                    .filter(|(_, r)| {
                        let h = r.labels.get("host_name");
                        let host_ok = match (host, host_regex) {
                            (None, _) => true,
                            (Some(x), false) => h == format!("h{x}"),
                            (Some(x), true) => h != format!("h{x}"),
                        };
                        host_ok
                            && min.is_none_or(|m| r.severity >= SEVERITIES[m])
                            && r.time_ms >= start
                            && r.time_ms <= end
                            && word.is_none_or(|w| r.body.contains(WORDS[w]))
                    })
                    .map(|(seq, r)| (r.time_ms, *seq, r.body.clone()))
                    .collect();
                want.sort_by_key(|w| std::cmp::Reverse((w.0, w.1)));
                let more = want.len() > limit;
                want.truncate(limit);
                let got = s.query(&q);
                let got_bodies: Vec<String> = got.records.iter().map(|r| r.body.clone()).collect();
                let want_bodies: Vec<String> = want.into_iter().map(|w| w.2).collect();
                prop_assert_eq!(got_bodies, want_bodies);
                if more {
                    prop_assert!(got.truncated);
                }
            }
        }
    }
}
