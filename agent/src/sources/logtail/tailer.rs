//! `Tailer`: the state of every file incarnation (open handle, reader,
//! multiline assembler, acknowledgements), discovery by reconcile, the
//! bounded record queue the exporter drains with `next_batch`, and the
//! checkpoints that `ack` moves.
//!
//! A reconcile first settles the files it already follows (renamed,
//! truncated, gone), then files whose device+inode a checkpoint names, and
//! only then files it has never seen, which may be copies of a known
//! incarnation (continued from where that one was, so a copytruncate
//! repeats nothing) or new files (read from the beginning). An incarnation
//! id is written to the checkpoints before any of its records can leave, so
//! a crash never re-sends lines under a second id.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::checkpoint::{
    AckTracker, CheckpointError, CheckpointFile, FORMAT_VERSION, FileCheckpoint,
};
use super::config::{LogInput, ReadFrom};
use super::discovery::{self, DirWatcher, Found};
use super::identity::{FINGERPRINT_BYTES, Fingerprint, file_id, read_prefix, read_range};
use super::reader::{Assembler, Line, LineSplitter, RawRecord};
use super::severity::{self, severity_word};

/// Source of the current time; tests drive a `ManualClock`.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Limits and periods of a tailer.
#[derive(Debug, Clone)]
pub struct TailerOptions {
    /// Scan the globs at least this often, events or not.
    pub reconcile_interval: Duration,
    /// A file renamed away or deleted is closed once read to its end and
    /// unchanged for this long (the writer may still append before it
    /// reopens its log).
    pub rotate_wait: Duration,
    /// Checkpoints of files not seen for this long are forgotten.
    pub forget_after: Duration,
    /// Write checkpoints after acknowledgements at most this often.
    pub checkpoint_interval: Duration,
    /// Records waiting for `next_batch`.
    pub max_queue_records: usize,
    pub max_queue_bytes: usize,
    /// Records handed out and not yet acknowledged, queue included; at the
    /// limit reading pauses.
    pub max_unacked_records: usize,
    /// Bytes read from one file per poll, so one busy file cannot starve
    /// the others.
    pub max_read_per_poll: u64,
    /// Files held open at once; more wait for a later reconcile.
    pub max_open_files: usize,
    /// Checkpoints kept for files no longer open.
    pub max_retired: usize,
    /// Watch directories with notify (scans on the interval either way).
    pub watch: bool,
}

impl Default for TailerOptions {
    fn default() -> Self {
        TailerOptions {
            reconcile_interval: Duration::from_secs(10),
            rotate_wait: Duration::from_secs(5),
            forget_after: Duration::from_secs(24 * 3600),
            checkpoint_interval: Duration::from_secs(1),
            max_queue_records: 10_000,
            max_queue_bytes: 16 << 20,
            max_unacked_records: 100_000,
            max_read_per_poll: 4 << 20,
            max_open_files: 1024,
            max_retired: 4096,
            watch: true,
        }
    }
}

/// One record for the exporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Text, redacted; lines of a multiline record joined by `\n`.
    pub body: String,
    /// `log.file.path`
    pub path: Arc<Path>,
    /// `tocsin.file.id`
    pub file_id: Arc<str>,
    /// `tocsin.file.offset`: offset of the record's first line.
    pub offset: u64,
    /// Offset just past the record: the checkpoint once acknowledged.
    pub end_offset: u64,
    /// OTLP severity number, 0 when unknown.
    pub severity_number: u8,
    /// The level as written, or the error marker that set it.
    pub severity_text: Option<String>,
    /// A line of the record was cut at the input's `max_line_bytes`, or
    /// lines past `max_lines` were dropped.
    pub truncated: bool,
    pub observed_unix_nanos: u64,
    /// Index of the input in the configuration.
    pub input: usize,
    /// The input's attributes (`service.name`, …).
    pub attributes: Arc<BTreeMap<String, String>>,
}

impl LogRecord {
    /// The normalised `severity` label.
    pub fn severity(&self) -> &'static str {
        severity_word(self.severity_number)
    }
}

/// Records handed out together; acknowledged or dropped as a whole.
#[derive(Debug, Clone)]
pub struct Batch {
    pub id: u64,
    pub records: Vec<LogRecord>,
}

/// Self-metric counters (monotonic since the tailer started).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes_read: u64,
    pub lines_read: u64,
    pub lines_truncated: u64,
    pub records_read: u64,
    pub records_queued: u64,
    /// Below the input's `min_severity`: read and checkpointed past.
    pub records_filtered: u64,
    pub records_acked: u64,
    /// Read again after a restart but acknowledged before it: not sent.
    pub records_already_acked: u64,
    /// In batches the exporter gave up on (`drop_batch`).
    pub records_dropped: u64,
    pub redactions: u64,
    pub files_opened: u64,
    pub files_resumed: u64,
    pub files_closed: u64,
    pub files_rotated: u64,
    pub files_truncated: u64,
    /// Copies recognised by fingerprint and continued.
    pub files_copied: u64,
    /// Copies holding nothing new, never read.
    pub copies_ignored: u64,
    /// Files found but not opened because `max_open_files` was reached.
    pub files_deferred: u64,
    pub files_forgotten: u64,
    pub read_errors: u64,
    pub scan_errors: u64,
    pub watch_failures: u64,
    pub checkpoint_writes: u64,
    pub checkpoint_errors: u64,
    pub acks_unknown: u64,
}

/// Failures of the tailer's public operations.
#[derive(Debug, thiserror::Error)]
pub enum TailerError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "batch {0} is not outstanding (already acknowledged, dropped, or from before a restart)"
    )]
    UnknownBatch(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Named by a glob now.
    Live,
    /// No glob names it any more (renamed away or deleted): read to the
    /// end, then closed after `rotate_wait`.
    Rotated { since: SystemTime },
    /// No open file: truncated, closed, or known only from a checkpoint.
    Retired,
}

/// One file incarnation.
#[derive(Debug)]
struct Inc {
    id: Arc<str>,
    input: usize,
    path: Arc<Path>,
    dev: u64,
    ino: u64,
    fp: Fingerprint,
    file: Option<File>,
    /// Size at the last look, to notice growth and truncation.
    size: u64,
    splitter: LineSplitter,
    assembler: Assembler,
    acks: AckTracker,
    state: State,
    last_seen: SystemTime,
    last_growth: SystemTime,
}

// The exporter runs the tailer on a blocking thread of its own.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Tailer>();
    assert_send::<Batch>();
};

/// Where records go: split from the incarnations so both can be borrowed.
#[derive(Debug, Default)]
struct Output {
    queue: VecDeque<LogRecord>,
    queue_bytes: usize,
    /// Queued plus handed out, not yet acknowledged or dropped.
    in_flight: usize,
    counters: Counters,
}

struct InputRt {
    input: LogInput,
    attributes: Arc<BTreeMap<String, String>>,
}

/// Follows the files of a set of log inputs.
pub struct Tailer {
    inputs: Vec<InputRt>,
    data_dir: PathBuf,
    clock: Arc<dyn Clock>,
    options: TailerOptions,
    incs: BTreeMap<Arc<str>, Inc>,
    generation: u64,
    /// Unknown files held back as possible copies, since when.
    held: HashMap<(u64, u64), SystemTime>,
    /// Copies recognised as holding nothing unread.
    ignored: HashSet<(u64, u64)>,
    /// Files that could not be opened, warned about once.
    unopenable: HashSet<PathBuf>,
    out: Output,
    outstanding: HashMap<u64, Vec<(Arc<str>, u64)>>,
    next_batch_id: u64,
    watcher: Option<DirWatcher>,
    /// Per input, during the scan in `new`: the checkpoints do not know
    /// it yet (first start, or an input added since), so its files present
    /// now start at their end when it reads `from: end`.
    first_scan: Vec<bool>,
    next_reconcile: SystemTime,
    next_checkpoint: SystemTime,
    ids_dirty: bool,
    acks_dirty: bool,
}

impl std::fmt::Debug for Tailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tailer")
            .field("data_dir", &self.data_dir)
            .field("files", &self.incs.len())
            .field("queued", &self.out.queue.len())
            .finish_non_exhaustive()
    }
}

/// How soon a file held as a possible copy in progress is looked at again.
const HELD_RECHECK: Duration = Duration::from_millis(250);

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn since(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or(Duration::ZERO)
}

impl Tailer {
    /// Loads the checkpoints in `data_dir` (created if missing), scans the
    /// inputs once and writes the checkpoints, so that a restart tells
    /// files present now from files that appear later.
    pub fn new(
        inputs: Vec<LogInput>,
        data_dir: &Path,
        clock: Arc<dyn Clock>,
        options: TailerOptions,
    ) -> Result<Tailer, TailerError> {
        std::fs::create_dir_all(data_dir).map_err(|source| TailerError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let now = clock.now();
        let loaded = CheckpointFile::load(data_dir)?;
        let inputs: Vec<InputRt> = inputs
            .into_iter()
            .map(|input| InputRt {
                attributes: Arc::new(input.attributes.clone()),
                input,
            })
            .collect();
        let mut tailer = Tailer {
            data_dir: data_dir.to_path_buf(),
            generation: unix_nanos(now),
            first_scan: Vec::new(),
            incs: BTreeMap::new(),
            held: HashMap::new(),
            ignored: HashSet::new(),
            unopenable: HashSet::new(),
            out: Output::default(),
            outstanding: HashMap::new(),
            next_batch_id: 1,
            watcher: None,
            next_reconcile: now,
            next_checkpoint: now,
            ids_dirty: false,
            acks_dirty: false,
            inputs,
            clock,
            options,
        };
        // Inputs never scanned before (first start, or added since).
        let known: HashSet<&str> = loaded
            .as_ref()
            .map(|f| f.inputs.iter().map(String::as_str).collect())
            .unwrap_or_default();
        tailer.first_scan = tailer
            .inputs
            .iter()
            .map(|i| !known.contains(i.input.name.as_str()))
            .collect();
        if let Some(file) = loaded {
            tailer.generation = tailer.generation.max(file.generation);
            for c in file.files {
                tailer.load_checkpoint(c);
            }
        }
        if tailer.options.watch {
            let inputs: Vec<LogInput> = tailer.inputs.iter().map(|i| i.input.clone()).collect();
            match DirWatcher::start(&inputs) {
                Ok(w) => {
                    for (dir, reason) in &w.failed {
                        tracing::warn!(dir = %dir.display(), %reason, "cannot watch log directory; scanning it every reconcile interval");
                        tailer.out.counters.watch_failures += 1;
                    }
                    tailer.watcher = Some(w);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "file notifications unavailable; discovering log files by polling");
                    tailer.out.counters.watch_failures += 1;
                }
            }
        }
        tailer.reconcile();
        tailer.first_scan.clear();
        tailer.checkpoint_now()?;
        Ok(tailer)
    }

    fn load_checkpoint(&mut self, c: FileCheckpoint) {
        let Some(fp) = Fingerprint::parse(c.fp_len, &c.fp_hash) else {
            tracing::warn!(id = %c.id, "checkpoint with an unreadable fingerprint ignored");
            return;
        };
        let input = self
            .inputs
            .iter()
            .position(|i| {
                i.input
                    .include
                    .iter()
                    .any(|p| glob::Pattern::new(p).is_ok_and(|p| p.matches_path(&c.path)))
            })
            .unwrap_or(0);
        let (max_line, multiline) = self
            .inputs
            .get(input)
            .map_or((super::config::DEFAULT_LINE_BYTES, None), |i| {
                (i.input.max_line_bytes, i.input.multiline.clone())
            });
        let id: Arc<str> = c.id.into();
        let seen = UNIX_EPOCH + Duration::from_secs(c.last_seen);
        self.incs.insert(
            Arc::clone(&id),
            Inc {
                id,
                input,
                path: c.path.into(),
                dev: c.dev,
                ino: c.ino,
                fp,
                file: None,
                size: c.offset,
                splitter: LineSplitter::new(max_line, c.offset),
                assembler: Assembler::new(multiline, max_line),
                acks: AckTracker::restore(c.offset, &c.acked_after),
                state: State::Retired,
                last_seen: seen,
                last_growth: seen,
            },
        );
    }

    /// Counters for self metrics.
    pub fn counters(&self) -> &Counters {
        &self.out.counters
    }

    /// Files held open now.
    pub fn open_files(&self) -> usize {
        self.incs.values().filter(|i| i.file.is_some()).count()
    }

    /// Records waiting for `next_batch`.
    pub fn queued(&self) -> usize {
        self.out.queue.len()
    }

    /// Records handed out in batches not yet acknowledged or dropped.
    pub fn unacked(&self) -> usize {
        self.out.in_flight - self.out.queue.len()
    }

    fn queue_full(&self) -> bool {
        self.out.queue.len() >= self.options.max_queue_records
            || self.out.queue_bytes >= self.options.max_queue_bytes
            || self.out.in_flight >= self.options.max_unacked_records
    }

    /// One step: rescan when an event came or the interval passed, read
    /// what the files gained (files renamed away first, so a rotated file
    /// is finished before its successor), ship multiline records whose
    /// flush timeout passed, close finished rotated files, and write the
    /// checkpoints when due.
    pub fn poll(&mut self) -> Result<(), TailerError> {
        let now = self.clock.now();
        let event = self.watcher.as_ref().is_some_and(DirWatcher::take_dirty);
        if event || now >= self.next_reconcile {
            self.reconcile();
        }
        let mut order: Vec<(bool, Arc<str>)> = self
            .incs
            .values()
            .filter(|i| i.file.is_some())
            .map(|i| (i.state == State::Live, Arc::clone(&i.id)))
            .collect();
        order.sort();
        for (_, id) in order {
            if self.queue_full() {
                break;
            }
            self.read(&id, now);
        }
        for inc in self.incs.values_mut() {
            if let Some(raw) = inc.assembler.flush_due(now)
                && let Some(input) = self.inputs.get(inc.input)
            {
                emit(&mut self.out, input, inc, raw, now);
            }
        }
        self.close_finished(now);
        if self.ids_dirty || (self.acks_dirty && now >= self.next_checkpoint) {
            self.checkpoint_now()?;
        }
        Ok(())
    }

    /// Up to `max_records` queued records, and about `max_bytes` of bodies
    /// (at least one record), as a batch to acknowledge later.
    pub fn next_batch(&mut self, max_records: usize, max_bytes: usize) -> Option<Batch> {
        let mut records = Vec::new();
        let mut bytes = 0;
        while records.len() < max_records.max(1) {
            let Some(next) = self.out.queue.front() else {
                break;
            };
            if !records.is_empty() && bytes + next.body.len() > max_bytes {
                break;
            }
            let Some(record) = self.out.queue.pop_front() else {
                break;
            };
            bytes += record.body.len();
            self.out.queue_bytes -= record.body.len();
            records.push(record);
        }
        if records.is_empty() {
            return None;
        }
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        self.outstanding.insert(
            id,
            records
                .iter()
                .map(|r| (Arc::clone(&r.file_id), r.end_offset))
                .collect(),
        );
        Some(Batch { id, records })
    }

    /// The collector acknowledged batch `id`: its records' files may move
    /// their checkpoints past them (once every earlier record is
    /// acknowledged too).
    pub fn ack(&mut self, id: u64) -> Result<(), TailerError> {
        self.settle(id, false)
    }

    /// The exporter gave up on batch `id` (its spool dropped it): treated
    /// as delivered so the files move on, and counted as dropped.
    pub fn drop_batch(&mut self, id: u64) -> Result<(), TailerError> {
        self.settle(id, true)
    }

    fn settle(&mut self, id: u64, dropped: bool) -> Result<(), TailerError> {
        let entries = self
            .outstanding
            .remove(&id)
            .ok_or(TailerError::UnknownBatch(id))?;
        self.out.in_flight -= entries.len();
        for (file, end) in entries {
            let acked = self
                .incs
                .get_mut(&file)
                .is_some_and(|inc| inc.acks.ack(end));
            let c = &mut self.out.counters;
            match (acked, dropped) {
                (true, false) => c.records_acked += 1,
                (true, true) => c.records_dropped += 1,
                (false, _) => c.acks_unknown += 1,
            }
        }
        if dropped {
            tracing::warn!(
                batch = id,
                "log batch dropped by the exporter; its lines are skipped"
            );
        }
        self.acks_dirty = true;
        Ok(())
    }

    /// Writes the checkpoints now (shutdown, tests), forgetting files
    /// unseen for `forget_after`.
    pub fn checkpoint_now(&mut self) -> Result<(), TailerError> {
        let now = self.clock.now();
        self.prune(now);
        let files = self
            .incs
            .values()
            .map(|inc| FileCheckpoint {
                id: inc.id.to_string(),
                path: inc.path.to_path_buf(),
                dev: inc.dev,
                ino: inc.ino,
                fp_len: inc.fp.len,
                fp_hash: inc.fp.hash_hex(),
                offset: inc.acks.acked(),
                acked_after: inc.acks.acked_ranges(),
                retired: inc.file.is_none(),
                last_seen: inc
                    .last_seen
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            })
            .collect();
        let file = CheckpointFile {
            version: FORMAT_VERSION,
            generation: self.generation,
            inputs: self.inputs.iter().map(|i| i.input.name.clone()).collect(),
            files,
        };
        match file.store(&self.data_dir) {
            Ok(()) => {
                self.out.counters.checkpoint_writes += 1;
                self.ids_dirty = false;
                self.acks_dirty = false;
                self.next_checkpoint = now + self.options.checkpoint_interval;
                Ok(())
            }
            Err(e) => {
                self.out.counters.checkpoint_errors += 1;
                tracing::warn!(error = %e, "cannot write log checkpoints; lines may be sent again after a restart");
                Err(e.into())
            }
        }
    }

    fn prune(&mut self, now: SystemTime) {
        let forget_after = self.options.forget_after;
        let before = self.incs.len();
        self.incs.retain(|_, inc| {
            inc.file.is_some()
                || !inc.acks.is_settled()
                || inc.assembler.has_pending()
                || since(now, inc.last_seen) < forget_after
        });
        let mut retired: Vec<(SystemTime, Arc<str>)> = self
            .incs
            .values()
            .filter(|i| i.file.is_none() && i.acks.is_settled() && !i.assembler.has_pending())
            .map(|i| (i.last_seen, Arc::clone(&i.id)))
            .collect();
        if retired.len() > self.options.max_retired {
            retired.sort();
            let excess = retired.len() - self.options.max_retired;
            for (_, id) in retired.into_iter().take(excess) {
                self.incs.remove(&id);
            }
        }
        let forgotten = before - self.incs.len();
        if forgotten > 0 {
            self.out.counters.files_forgotten += forgotten as u64;
            self.ids_dirty = true;
        }
    }

    /// Scans the globs and settles every file: renamed, truncated, gone,
    /// resumed from a checkpoint, a copy of a known one, or new.
    pub fn reconcile(&mut self) {
        let now = self.clock.now();
        self.next_reconcile = now + self.options.reconcile_interval;
        let scan = discovery::scan(self.inputs.iter().map(|i| &i.input));
        for (what, reason) in &scan.errors {
            self.out.counters.scan_errors += 1;
            tracing::warn!(path = %what, %reason, "cannot list log files");
        }
        let found: HashMap<(u64, u64), &Found> =
            scan.files.iter().map(|f| ((f.dev, f.ino), f)).collect();

        // Files already open.
        let open: Vec<Arc<str>> = self
            .incs
            .values()
            .filter(|i| i.file.is_some())
            .map(|i| Arc::clone(&i.id))
            .collect();
        for id in open {
            let Some(inc) = self.incs.get_mut(&id) else {
                continue;
            };
            match found.get(&(inc.dev, inc.ino)) {
                Some(f) => {
                    if *inc.path != *f.path {
                        inc.path = f.path.as_path().into();
                    }
                    inc.last_seen = now;
                    if matches!(inc.state, State::Rotated { .. }) {
                        inc.state = State::Live;
                    }
                    self.check_identity(&id, f.size, now);
                }
                None => {
                    if inc.state == State::Live {
                        tracing::info!(path = %inc.path.display(), id = %inc.id, "log file renamed away or deleted; reading it to its end");
                        inc.state = State::Rotated { since: now };
                        self.out.counters.files_rotated += 1;
                    }
                }
            }
        }

        let backed: HashSet<(u64, u64)> = self
            .incs
            .values()
            .filter(|i| i.file.is_some())
            .map(|i| (i.dev, i.ino))
            .collect();
        let mut unknown: Vec<&Found> = scan
            .files
            .iter()
            .filter(|f| {
                !backed.contains(&(f.dev, f.ino)) && !self.ignored.contains(&(f.dev, f.ino))
            })
            .collect();

        // Files a checkpoint (or a closed incarnation) names by inode.
        unknown.retain(|f| !self.resume(f, now));
        // Everything else: copies or new files.
        for f in unknown {
            if self.open_files() >= self.options.max_open_files {
                self.out.counters.files_deferred += 1;
                continue;
            }
            self.classify(f, now);
        }
        self.held.retain(|k, _| found.contains_key(k));
        let paths: HashSet<&Path> = scan.files.iter().map(|f| f.path.as_path()).collect();
        self.unopenable.retain(|p| paths.contains(p.as_path()));
        self.ignored.retain(|k| found.contains_key(k));
    }

    /// Opens `f` if a closed incarnation has its inode and fingerprint.
    fn resume(&mut self, f: &Found, now: SystemTime) -> bool {
        let key = (f.dev, f.ino);
        if !self
            .incs
            .values()
            .any(|i| i.file.is_none() && (i.dev, i.ino) == key)
        {
            return false;
        }
        let Some(file) = self.open(f) else {
            return true;
        };
        let size = file.metadata().map_or(0, |m| m.len());
        // Several incarnations may have had this inode (truncated in place,
        // or reused): the newest whose fingerprint still matches is it.
        let best = self
            .incs
            .values()
            .filter(|i| i.file.is_none() && (i.dev, i.ino) == key)
            .filter(|i| size >= i.splitter.pos() && i.fp.matches(&file, size).unwrap_or(false))
            .max_by_key(|i| (generation(&i.id), i.fp.len))
            .map(|i| Arc::clone(&i.id));
        // None: the inode now holds other content (reused, or truncated
        // while the agent was down); the old incarnations wait for a copy.
        let Some(id) = best else {
            return false;
        };
        let Some(inc) = self.incs.get_mut(&id) else {
            return false;
        };
        tracing::info!(path = %f.path.display(), id = %inc.id, offset = inc.splitter.pos(), "resuming log file from its checkpoint");
        inc.file = Some(file);
        inc.path = f.path.as_path().into();
        inc.state = State::Live;
        inc.last_seen = now;
        inc.size = size;
        self.out.counters.files_resumed += 1;
        self.out.counters.files_opened += 1;
        self.check_identity(&id, size, now);
        true
    }

    fn open(&mut self, f: &Found) -> Option<File> {
        match File::open(&f.path) {
            Ok(file) => match file.metadata() {
                Ok(m) if (m.dev(), m.ino()) == (f.dev, f.ino) => {
                    self.unopenable.remove(&f.path);
                    Some(file)
                }
                // Replaced between scan and open: the next scan sees it.
                Ok(_) => None,
                Err(e) => {
                    self.read_error(&f.path, &e);
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                // Said once per file, not once per reconcile: permissions
                // rarely fix themselves within seconds.
                if self.unopenable.insert(f.path.clone()) {
                    self.read_error(&f.path, &e);
                }
                None
            }
        }
    }

    fn read_error(&mut self, path: &Path, e: &std::io::Error) {
        self.out.counters.read_errors += 1;
        tracing::warn!(path = %path.display(), error = %e, "cannot read log file");
    }

    /// A file never seen: a copy of a known incarnation (continue it), a
    /// copy still being written (wait), or a new file.
    fn classify(&mut self, f: &Found, now: SystemTime) {
        let Some(file) = self.open(f) else {
            return;
        };
        let size = file.metadata().map_or(0, |m| m.len());
        let key = (f.dev, f.ino);
        let held_since = *self.held.get(&key).unwrap_or(&now);
        let waited = since(now, held_since) >= self.options.rotate_wait;

        // A copy of a closed incarnation (copytruncate's copy, after the
        // original was truncated): continue where that one was.
        let closed = self
            .incs
            .values()
            .filter(|i| {
                i.file.is_none()
                    && i.fp.len > 0
                    && i.fp.len >= i.splitter.pos().min(FINGERPRINT_BYTES)
            })
            .filter(|i| i.fp.matches(&file, size).unwrap_or(false))
            .max_by_key(|i| (i.fp.len, i.splitter.pos()))
            .map(|i| (Arc::clone(&i.id), i.splitter.pos()));
        if let Some((id, pos)) = closed {
            if size >= pos {
                if let Some(inc) = self.incs.get_mut(&id) {
                    tracing::info!(path = %f.path.display(), id = %inc.id, offset = pos, "log file is a copy of a truncated one; continuing it");
                    inc.file = Some(file);
                    inc.path = f.path.as_path().into();
                    (inc.dev, inc.ino) = key;
                    inc.size = size;
                    inc.state = State::Live;
                    inc.last_seen = now;
                    self.out.counters.files_copied += 1;
                    self.out.counters.files_opened += 1;
                    self.held.remove(&key);
                    self.ids_dirty = true;
                }
            } else if waited {
                tracing::info!(path = %f.path.display(), "log file is a copy of data already read; not reading it");
                self.ignored.insert(key);
                self.held.remove(&key);
                self.out.counters.copies_ignored += 1;
            } else {
                self.hold_briefly(key, held_since, now);
            }
            return;
        }

        // A copy of a file still open (copytruncate between copy and
        // truncate, or a backup copy): read neither twice; once the
        // original is truncated the copy continues it.
        let open: Vec<(u64, u64, Fingerprint)> = self
            .incs
            .values()
            .filter(|i| i.file.is_some() && i.fp.len > 0)
            .map(|i| (i.dev, i.ino, i.fp))
            .collect();
        for (dev, ino, fp) in open {
            if !fp.matches(&file, size).unwrap_or(false) {
                continue;
            }
            let Some(original) = self
                .incs
                .values()
                .find(|i| i.file.is_some() && (i.dev, i.ino) == (dev, ino))
                .and_then(|i| i.file.as_ref())
            else {
                continue;
            };
            if is_copy_of(&file, size, original) {
                self.held.insert(key, held_since);
                return;
            }
        }

        // Shorter than a fingerprint and equal to the start of an open
        // file: maybe a copy still being written. Wait a little.
        if !waited && size < FINGERPRINT_BYTES {
            let head = read_prefix(&file, size).unwrap_or_default();
            let partial = self
                .incs
                .values()
                .filter(|i| i.fp.len > size)
                .filter_map(|i| i.file.as_ref())
                .any(|original| read_prefix(original, size).is_ok_and(|h| h == head));
            if partial {
                self.hold_briefly(key, held_since, now);
                return;
            }
        }

        self.held.remove(&key);
        let from = match self.inputs.get(f.input).map(|i| i.input.read_from) {
            Some(ReadFrom::End) if self.first_scan.get(f.input) == Some(&true) => {
                last_line_end(&file, size)
            }
            _ => 0,
        };
        self.create(f.input, f.path.as_path(), key, file, size, from, now);
    }

    /// Holds an unknown file that may be a copy still being written, and
    /// looks at it again soon rather than a reconcile interval later: a
    /// new empty log after a rotation looks like one until its first line.
    fn hold_briefly(&mut self, key: (u64, u64), since: SystemTime, now: SystemTime) {
        self.held.insert(key, since);
        self.next_reconcile = self.next_reconcile.min(now + HELD_RECHECK);
    }

    #[allow(clippy::too_many_arguments)]
    fn create(
        &mut self,
        input: usize,
        path: &Path,
        (dev, ino): (u64, u64),
        file: File,
        size: u64,
        from: u64,
        now: SystemTime,
    ) -> Option<Arc<str>> {
        let fp = match Fingerprint::read(&file, size) {
            Ok((fp, _)) => fp,
            Err(e) => {
                self.read_error(path, &e);
                return None;
            }
        };
        let rt = self.inputs.get(input)?;
        self.generation += 1;
        let id: Arc<str> = file_id(dev, ino, self.generation).into();
        tracing::info!(path = %path.display(), id = %id, offset = from, "following log file");
        let max_line = rt.input.max_line_bytes;
        self.incs.insert(
            Arc::clone(&id),
            Inc {
                id: Arc::clone(&id),
                input,
                path: path.into(),
                dev,
                ino,
                fp,
                file: Some(file),
                size,
                splitter: LineSplitter::new(max_line, from),
                assembler: Assembler::new(rt.input.multiline.clone(), max_line),
                acks: AckTracker::new(from),
                state: State::Live,
                last_seen: now,
                last_growth: now,
            },
        );
        self.out.counters.files_opened += 1;
        self.ids_dirty = true;
        Some(id)
    }

    /// Checks that the open file of `id` is still the same incarnation
    /// (not truncated, same first bytes) and extends a short fingerprint.
    /// Returns the id of the incarnation that follows the file now: the
    /// same, or a new one when it was truncated.
    fn check_identity(&mut self, id: &Arc<str>, size: u64, now: SystemTime) -> Option<Arc<str>> {
        let inc = self.incs.get_mut(id)?;
        let file = inc.file.as_ref()?;
        let same = size >= inc.splitter.pos() && inc.fp.matches(file, size).unwrap_or(true);
        if same {
            if inc.fp.is_short()
                && size > inc.fp.len
                && let Ok((fp, _)) = Fingerprint::read(file, size)
            {
                inc.fp = fp;
                // The checkpoint must know the longer fingerprint before
                // records read past the old one leave: otherwise, after a
                // crash, a file truncated meanwhile would still match the
                // short one and its new lines reuse acknowledged offsets.
                self.ids_dirty = true;
            }
            inc.size = size;
            return Some(Arc::clone(id));
        }
        // Truncated in place (copytruncate) or rewritten: this
        // incarnation ends here; a copy of it may continue it.
        let file = inc.file.take()?;
        inc.state = State::Retired;
        inc.last_seen = now;
        let flushed = inc.assembler.flush();
        let (input, path, key) = (inc.input, Arc::clone(&inc.path), (inc.dev, inc.ino));
        tracing::info!(path = %path.display(), id = %inc.id, "log file truncated; starting a new incarnation from its beginning");
        if let (Some(raw), Some(rt)) = (flushed, self.inputs.get(input)) {
            emit(&mut self.out, rt, inc, raw, now);
        }
        self.out.counters.files_truncated += 1;
        let size = file.metadata().map_or(size, |m| m.len());
        self.create(input, &path, key, file, size, 0, now)
    }

    /// Reads what `id`'s file gained, within the poll budget and the queue
    /// bounds.
    fn read(&mut self, id: &Arc<str>, now: SystemTime) {
        let Some(inc) = self.incs.get(id) else {
            return;
        };
        let Some(file) = &inc.file else {
            return;
        };
        let size = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => {
                let path = Arc::clone(&inc.path);
                self.read_error(&path, &e);
                return;
            }
        };
        if size != inc.size {
            match self.check_identity(id, size, now) {
                Some(same) if same == *id => {}
                // Truncated: read the file's new incarnation instead.
                Some(new) => return self.read(&new, now),
                None => return,
            }
        }
        let mut budget = self.options.max_read_per_poll;
        let mut lines: Vec<Line> = Vec::new();
        let mut raws: Vec<RawRecord> = Vec::new();
        while budget > 0 && !self.queue_full() {
            let Some(inc) = self.incs.get_mut(id) else {
                return;
            };
            let Some(file) = &inc.file else {
                return;
            };
            let pos = inc.splitter.pos();
            if pos >= size {
                break;
            }
            let want = (size - pos).min(budget).min(64 * 1024);
            let bytes = match read_range(file, pos, want) {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => break,
                Err(e) => {
                    let path = Arc::clone(&inc.path);
                    self.read_error(&path, &e);
                    return;
                }
            };
            budget = budget.saturating_sub(bytes.len() as u64);
            self.out.counters.bytes_read += bytes.len() as u64;
            inc.last_growth = now;
            lines.clear();
            inc.splitter.feed(&bytes, &mut lines);
            raws.clear();
            for line in lines.drain(..) {
                self.out.counters.lines_read += 1;
                if line.truncated {
                    self.out.counters.lines_truncated += 1;
                }
                // Re-reading after a restart: keep the record boundaries
                // that were acknowledged, or a record extended by later
                // continuation lines would carry an acknowledged offset.
                if inc.acks.is_restored_boundary(line.start) {
                    raws.extend(inc.assembler.flush());
                }
                inc.assembler.push(line, now, &mut raws);
            }
            let Some(rt) = self.inputs.get(inc.input) else {
                return;
            };
            for raw in raws.drain(..) {
                emit(&mut self.out, rt, inc, raw, now);
            }
        }
    }

    /// Closes files renamed away or deleted once read to their end and
    /// quiet for `rotate_wait`.
    fn close_finished(&mut self, now: SystemTime) {
        let wait = self.options.rotate_wait;
        for inc in self.incs.values_mut() {
            let State::Rotated { since: rotated } = inc.state else {
                continue;
            };
            let Some(file) = &inc.file else {
                continue;
            };
            let size = file.metadata().map_or(inc.size, |m| m.len());
            let quiet = since(now, rotated.max(inc.last_growth)) >= wait;
            if inc.splitter.pos() < size || !quiet {
                continue;
            }
            // The file is done: its last line needs no newline any more.
            let mut raws = Vec::new();
            if let Some(line) = inc.splitter.finish() {
                self.out.counters.lines_read += 1;
                inc.assembler.push(line, now, &mut raws);
            }
            raws.extend(inc.assembler.flush());
            if let Some(rt) = self.inputs.get(inc.input) {
                for raw in raws {
                    emit(&mut self.out, rt, inc, raw, now);
                }
            }
            tracing::info!(path = %inc.path.display(), id = %inc.id, "closing rotated log file");
            inc.file = None;
            inc.state = State::Retired;
            self.out.counters.files_closed += 1;
        }
    }
}

/// Turns an assembled record into a queued record (or a filtered one).
fn emit(out: &mut Output, rt: &InputRt, inc: &mut Inc, raw: RawRecord, now: SystemTime) {
    out.counters.records_read += 1;
    if inc.acks.was_acked(raw.start, raw.end) {
        inc.acks.push(raw.end, true);
        out.counters.records_already_acked += 1;
        return;
    }
    let severity = severity::detect(&raw.text);
    if !rt.input.min_severity.admits(severity.number) {
        inc.acks.push(raw.end, true);
        out.counters.records_filtered += 1;
        return;
    }
    let redacted = rt
        .input
        .redactor
        .as_ref()
        .and_then(|r| match r.redact(&raw.text) {
            (std::borrow::Cow::Owned(text), n) => Some((text, n)),
            (std::borrow::Cow::Borrowed(_), _) => None,
        });
    let body = match redacted {
        Some((text, n)) => {
            out.counters.redactions += n;
            text
        }
        None => raw.text,
    };
    inc.acks.push(raw.end, false);
    out.queue_bytes += body.len();
    out.in_flight += 1;
    out.counters.records_queued += 1;
    out.queue.push_back(LogRecord {
        body,
        path: Arc::clone(&inc.path),
        file_id: Arc::clone(&inc.id),
        offset: raw.start,
        end_offset: raw.end,
        severity_number: severity.number,
        severity_text: severity.text,
        truncated: raw.truncated,
        observed_unix_nanos: unix_nanos(now),
        input: inc.input,
        attributes: Arc::clone(&rt.attributes),
    });
}

/// The generation part of an incarnation id (`dev-ino-generation`).
fn generation(id: &str) -> u64 {
    id.rsplit('-')
        .next()
        .and_then(|g| u64::from_str_radix(g, 16).ok())
        .unwrap_or(0)
}

/// Is `copy` (of `size` bytes) a copy of the start of `original`? The
/// fingerprint already matched; the bytes just before `size` must too.
fn is_copy_of(copy: &File, size: u64, original: &File) -> bool {
    let original_size = original.metadata().map_or(0, |m| m.len());
    if size > original_size {
        return false;
    }
    let k = size.min(4096);
    match (
        read_range(copy, size - k, k),
        read_range(original, size - k, k),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Offset just past the last newline in the file's last 64 KiB (its size
/// when there is none): where `read_from: end` starts, so that a line being
/// written is not cut.
fn last_line_end(file: &File, size: u64) -> u64 {
    let window = size.min(64 * 1024);
    match read_range(file, size - window, window) {
        Ok(tail) => match memchr::memrchr(b'\n', &tail) {
            Some(i) => size - window + i as u64 + 1,
            None => size,
        },
        Err(_) => size,
    }
}
