//! The in-memory head: every live series with its samples in compressed
//! chunks, an inverted label index for selection, an out-of-order buffer,
//! and retention by age.
//!
//! Invariants: a series' closed chunks and head chunk are in time order and
//! do not overlap; the out-of-order buffer only holds samples older than
//! the newest in-order sample and no older than the out-of-order window
//! behind it; every posting list is sorted and names only live series; a
//! sample is either stored, or refused with a reason the caller counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use tocsin_rules::promql::storage::{MatchOp, Matcher, Queryable, StorageError};
use tocsin_rules::promql::value::{Labels, Sample, Series};

use super::chunk::Chunk;
use super::encoding::RefSample;

/// Settings of the head.
#[derive(Debug, Clone)]
pub struct HeadOptions {
    /// How far behind a series' newest sample an older sample is still
    /// accepted (ms). Prometheus' `out_of_order_time_window`.
    pub out_of_order_window_ms: i64,
    /// Out-of-order samples buffered per series before they are merged into
    /// the series' chunks.
    pub out_of_order_merge_at: usize,
    /// How often the store writes a snapshot of the head so that a restart
    /// replays only the log written since (zero: only when asked, e.g. at
    /// shutdown). Prometheus snapshots its head chunks at shutdown
    /// (`EnableMemorySnapshotOnShutdown`) and checkpoints its WAL every
    /// head compaction (about 2h); Tocsin keeps no blocks, so a shorter
    /// period bounds both the log on disk and the replay after a crash.
    pub snapshot_interval: Duration,
    /// Samples older than this (ms since the epoch) are not brought back
    /// when the store opens, neither from a snapshot nor from the log: the
    /// retention cutoff at the open (now − retention), so that what
    /// retention dropped before a restart stays dropped. As with
    /// retention, a chunk goes only when all of it is older. `i64::MIN`
    /// restores everything.
    pub restore_min_time_ms: i64,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions {
            out_of_order_window_ms: 60 * 60 * 1000,
            out_of_order_merge_at: 120,
            snapshot_interval: Duration::from_secs(15 * 60),
            restore_min_time_ms: i64::MIN,
        }
    }
}

/// Why one sample was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("sample is older than the out-of-order window behind the series' newest sample")]
    TooOld,
    #[error("a different value already exists for this timestamp")]
    DuplicateTimestamp,
}

/// What became of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored in time order.
    InOrder,
    /// Stored in the out-of-order buffer.
    OutOfOrder,
    /// Identical to a stored sample: nothing changed (a replay).
    Duplicate,
}

/// A series' id: assigned once, never reused (it names the series in the
/// write-ahead log).
pub type SeriesRef = u64;

#[derive(Debug)]
struct MemSeries {
    labels: Labels,
    closed: Vec<Chunk>,
    head: Chunk,
    ooo: BTreeMap<i64, f64>,
}

impl MemSeries {
    fn new(labels: Labels) -> Self {
        MemSeries {
            labels,
            closed: Vec::new(),
            head: Chunk::new(),
            ooo: BTreeMap::new(),
        }
    }

    fn newest(&self) -> Option<i64> {
        if !self.head.is_empty() {
            Some(self.head.max_time())
        } else {
            self.closed.last().map(Chunk::max_time)
        }
    }

    fn oldest(&self) -> Option<i64> {
        let chunk_min = self
            .closed
            .first()
            .map(Chunk::min_time)
            .or((!self.head.is_empty()).then(|| self.head.min_time()));
        let ooo_min = self.ooo.keys().next().copied();
        match (chunk_min, ooo_min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The value stored at `t` in the chunks, if any.
    fn chunk_value_at(&self, t: i64) -> Option<f64> {
        self.closed
            .iter()
            .chain(std::iter::once(&self.head))
            .filter(|c| !c.is_empty() && c.min_time() <= t && t <= c.max_time())
            .flat_map(Chunk::iter)
            .find(|s| s.t == t)
            .map(|s| s.v)
    }

    fn push_in_order(&mut self, t: i64, v: f64) {
        if self.head.is_full() {
            let mut full = std::mem::take(&mut self.head);
            full.shrink_to_fit();
            self.closed.push(full);
        }
        // Cannot fail: the chunk has room and `t` is newer than its samples.
        let _ = self.head.append(t, v);
    }

    fn append(&mut self, t: i64, v: f64, opts: &HeadOptions) -> Result<Appended, Refusal> {
        let Some(newest) = self.newest() else {
            self.push_in_order(t, v);
            return Ok(Appended::InOrder);
        };
        if t > newest {
            self.push_in_order(t, v);
            return Ok(Appended::InOrder);
        }
        if t < newest - opts.out_of_order_window_ms {
            return Err(Refusal::TooOld);
        }
        let existing = self.ooo.get(&t).copied().or_else(|| self.chunk_value_at(t));
        if let Some(old) = existing {
            return if old.to_bits() == v.to_bits() {
                Ok(Appended::Duplicate)
            } else {
                Err(Refusal::DuplicateTimestamp)
            };
        }
        self.ooo.insert(t, v);
        if self.ooo.len() >= opts.out_of_order_merge_at {
            self.merge_out_of_order();
        }
        Ok(Appended::OutOfOrder)
    }

    /// Re-encodes the chunks from the first one the buffer overlaps, with
    /// the buffered samples merged in.
    fn merge_out_of_order(&mut self) {
        let Some(&first_ooo) = self.ooo.keys().next() else {
            return;
        };
        let keep = self.closed.partition_point(|c| c.max_time() < first_ooo);
        let rewritten: Vec<Chunk> = self.closed.drain(keep..).collect();
        let mut merged: Vec<Sample> = rewritten
            .iter()
            .chain(std::iter::once(&self.head))
            .flat_map(Chunk::iter)
            .collect();
        merged.extend(self.ooo.iter().map(|(&t, &v)| Sample { t, v }));
        merged.sort_by_key(|s| s.t);
        self.ooo.clear();
        self.head = Chunk::new();
        for s in merged {
            self.push_in_order(s.t, s.v);
        }
    }

    /// Samples in `[mint, maxt]`, oldest first, buffered ones merged in.
    fn samples(&self, mint: i64, maxt: i64) -> Vec<Sample> {
        let mut out: Vec<Sample> = self
            .closed
            .iter()
            .chain(std::iter::once(&self.head))
            .filter(|c| !c.is_empty() && c.max_time() >= mint && c.min_time() <= maxt)
            .flat_map(Chunk::iter)
            .filter(|s| s.t >= mint && s.t <= maxt)
            .collect();
        if self.ooo.range(mint..=maxt).next().is_some() {
            out.extend(self.ooo.range(mint..=maxt).map(|(&t, &v)| Sample { t, v }));
            out.sort_by_key(|s| s.t);
        }
        out
    }

    /// Drops whole chunks and buffered samples older than `cutoff`; returns
    /// whether the series is now empty.
    fn truncate_before(&mut self, cutoff: i64) -> bool {
        self.closed.retain(|c| c.max_time() >= cutoff);
        if !self.head.is_empty() && self.head.max_time() < cutoff {
            self.head = Chunk::new();
        }
        self.ooo = self.ooo.split_off(&cutoff);
        self.closed.is_empty() && self.head.is_empty() && self.ooo.is_empty()
    }

    fn bytes(&self) -> usize {
        self.closed.iter().map(Chunk::byte_len).sum::<usize>()
            + self.head.byte_len()
            + self.ooo.len() * 16
    }
}

#[derive(Debug, Default)]
struct Inner {
    series: HashMap<SeriesRef, MemSeries>,
    by_labels: HashMap<Labels, SeriesRef>,
    /// label name → label value → sorted series refs.
    postings: BTreeMap<String, BTreeMap<String, Vec<SeriesRef>>>,
    next_ref: SeriesRef,
}

impl Inner {
    fn get_or_create(&mut self, labels: &Labels) -> SeriesRef {
        if let Some(&r) = self.by_labels.get(labels) {
            return r;
        }
        let r = self.next_ref;
        self.next_ref += 1;
        for l in labels.iter() {
            let list = self
                .postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default();
            // New refs are the largest, so this is a push; replay may
            // recreate refs in another order.
            match list.last() {
                Some(&last) if last > r => {
                    if let Err(i) = list.binary_search(&r) {
                        list.insert(i, r);
                    }
                }
                _ => list.push(r),
            }
        }
        self.by_labels.insert(labels.clone(), r);
        self.series.insert(r, MemSeries::new(labels.clone()));
        r
    }

    /// Adds a series under a ref given by the log or a snapshot. Returns
    /// the ref that holds `labels` afterwards: `r`, or the ref an identical
    /// label set already has; None when `r` already names another label
    /// set (nothing is added).
    fn insert_with_ref(&mut self, r: SeriesRef, labels: &Labels) -> Option<SeriesRef> {
        if let Some(&existing) = self.by_labels.get(labels) {
            self.next_ref = self.next_ref.max(r.saturating_add(1));
            return Some(existing);
        }
        if self.series.contains_key(&r) {
            // A ref names one label set for ever; a second set under it is
            // not ours to guess at.
            return None;
        }
        let saved = self.next_ref;
        self.next_ref = r;
        self.get_or_create(labels);
        self.next_ref = saved.max(r.saturating_add(1));
        Some(r)
    }

    fn remove(&mut self, r: SeriesRef) {
        let Some(s) = self.series.remove(&r) else {
            return;
        };
        self.by_labels.remove(&s.labels);
        for l in s.labels.iter() {
            if let Some(values) = self.postings.get_mut(&l.name) {
                if let Some(list) = values.get_mut(&l.value) {
                    if let Ok(i) = list.binary_search(&r) {
                        list.remove(i);
                    }
                    if list.is_empty() {
                        values.remove(&l.value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(&l.name);
                }
            }
        }
    }

    /// Refs of series whose label `name` satisfies `pred` (absent excluded).
    fn refs_where(&self, name: &str, pred: impl Fn(&str) -> bool) -> Vec<SeriesRef> {
        let mut out: Vec<SeriesRef> = self
            .postings
            .get(name)
            .into_iter()
            .flat_map(|values| values.iter())
            .filter(|(v, _)| pred(v))
            .flat_map(|(_, refs)| refs.iter().copied())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Series matching all matchers. Matchers that accept the empty value
    /// also accept series without the label, as in Prometheus.
    fn select_refs(&self, matchers: &[Matcher]) -> Vec<SeriesRef> {
        let mut current: Option<Vec<SeriesRef>> = None;
        let mut negative: Vec<&Matcher> = Vec::new();
        for m in matchers {
            if m.is_match("") {
                // Matches absent labels too: apply as a filter afterwards.
                negative.push(m);
                continue;
            }
            let refs = match &m.op {
                MatchOp::Equal => self
                    .postings
                    .get(&m.name)
                    .and_then(|values| values.get(&m.value))
                    .cloned()
                    .unwrap_or_default(),
                _ => self.refs_where(&m.name, |v| m.is_match(v)),
            };
            current = Some(match current {
                None => refs,
                Some(prev) => intersect(&prev, &refs),
            });
        }
        let base = match current {
            Some(refs) => refs,
            None => {
                let mut all: Vec<SeriesRef> = self.series.keys().copied().collect();
                all.sort_unstable();
                all
            }
        };
        base.into_iter()
            .filter(|r| {
                self.series
                    .get(r)
                    .is_some_and(|s| negative.iter().all(|m| m.is_match(s.labels.get(&m.name))))
            })
            .collect()
    }
}

fn intersect(a: &[SeriesRef], b: &[SeriesRef]) -> Vec<SeriesRef> {
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len().min(b.len())));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// What [`Head::append_batch_logged`] did.
#[derive(Debug, Default)]
pub struct LoggedBatch {
    /// One result per input sample, in order.
    pub results: Vec<Result<Appended, Refusal>>,
    pub new_series: Vec<(SeriesRef, Labels)>,
    pub to_log: Vec<RefSample>,
}

/// One series as a snapshot holds it: its chunks' bytes as they are (the
/// closed ones, then the head chunk) and its out-of-order buffer.
#[derive(Debug, Clone)]
pub struct SeriesData {
    pub sref: SeriesRef,
    pub labels: Labels,
    /// Oldest first; none empty.
    pub chunks: Vec<Chunk>,
    /// Sorted by time.
    pub out_of_order: Vec<(i64, f64)>,
}

impl SeriesData {
    /// Holds neither chunks nor out-of-order samples.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty() && self.out_of_order.is_empty()
    }

    /// What [`Head::restore_series`] checks of the series alone: its
    /// chunks are non-empty, in time order and do not overlap; its
    /// out-of-order samples are sorted.
    pub fn check(&self) -> Result<(), &'static str> {
        let ordered = self.chunks.iter().all(|c| !c.is_empty())
            && self
                .chunks
                .windows(2)
                .all(|w| w[0].max_time() < w[1].min_time());
        if !ordered {
            return Err("chunks overlap or are out of time order");
        }
        if !self.out_of_order.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err("out-of-order samples are not sorted by time");
        }
        Ok(())
    }

    /// Drops what retention would: chunks wholly older than `cutoff` and
    /// out-of-order samples older than it. Returns the samples dropped.
    pub fn truncate_before(&mut self, cutoff: i64) -> u64 {
        let before = self.samples();
        self.chunks.retain(|c| c.max_time() >= cutoff);
        self.out_of_order.retain(|&(t, _)| t >= cutoff);
        before - self.samples()
    }

    fn samples(&self) -> u64 {
        (self.chunks.iter().map(Chunk::len).sum::<usize>() + self.out_of_order.len()) as u64
    }
}

/// What replaying logged samples did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayCounts {
    pub applied: u64,
    pub refused: u64,
    pub unknown_series: u64,
}

/// Counts describing the head, for self metrics and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeadStats {
    pub series: usize,
    pub chunk_bytes: usize,
    pub out_of_order_samples: usize,
    /// What the memory budget counts: chunk bytes, plus per series its
    /// label text, [`LABEL_OVERHEAD_BYTES`] per label and
    /// [`SERIES_OVERHEAD_BYTES`]. An estimate: the process's RSS runs
    /// higher (allocator, indexes' spare capacity).
    pub estimated_bytes: usize,
}

/// Bookkeeping per series the memory estimate counts (series entry, label
/// set header, head chunk, index entries).
pub const SERIES_OVERHEAD_BYTES: usize = 512;
/// Bookkeeping per label the memory estimate counts (string headers,
/// posting entry).
pub const LABEL_OVERHEAD_BYTES: usize = 64;
/// The memory budget never takes samples newer than this behind the
/// newest moment it is enforced at (ms): a head over budget with only its
/// last hour left needs a larger budget or fewer series, not an empty head.
pub const BUDGET_KEEPS_MS: i64 = 3_600_000;

/// What enforcing the memory budget did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetOutcome {
    /// Samples older than this left the head (ms).
    pub cutoff_ms: i64,
    pub series_removed: usize,
    pub bytes_before: usize,
    pub bytes_after: usize,
    /// Still over budget with only the last [`BUDGET_KEEPS_MS`] left.
    pub still_over: bool,
}

/// The in-memory head. Safe to share between threads.
#[derive(Debug, Default)]
pub struct Head {
    opts: HeadOptions,
    inner: RwLock<Inner>,
}

impl Head {
    pub fn new(opts: HeadOptions) -> Self {
        Head {
            opts,
            inner: RwLock::new(Inner::default()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way readers could misread, so a poisoned lock is still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one sample.
    pub fn append(&self, labels: &Labels, t: i64, v: f64) -> Result<Appended, Refusal> {
        let mut inner = self.write();
        let r = inner.get_or_create(labels);
        let result = match inner.series.get_mut(&r) {
            Some(s) => s.append(t, v, &self.opts),
            None => Err(Refusal::TooOld),
        };
        if result.is_err() && inner.series.get(&r).is_some_and(|s| s.oldest().is_none()) {
            inner.remove(r);
        }
        result
    }

    /// Appends many samples under one lock; returns one result per sample.
    pub fn append_batch<'a>(
        &self,
        samples: impl IntoIterator<Item = (&'a Labels, i64, f64)>,
    ) -> Vec<Result<Appended, Refusal>> {
        let mut inner = self.write();
        samples
            .into_iter()
            .map(|(labels, t, v)| {
                let r = inner.get_or_create(labels);
                match inner.series.get_mut(&r) {
                    Some(s) => s.append(t, v, &self.opts),
                    None => Err(Refusal::TooOld),
                }
            })
            .collect()
    }

    /// Appends a batch under one lock and says what the write-ahead log
    /// must hold for it: the series created and the samples stored or found
    /// identical (a retried request's samples are logged again, so a retry
    /// after a failed log write still makes them durable).
    ///
    /// `enqueue` runs while the head is still locked, so the log receives
    /// batches in the order the head applied them (a series record always
    /// precedes the samples of later batches that use it).
    pub fn append_batch_logged<R>(
        &self,
        batch: &[(Labels, i64, f64)],
        enqueue: impl FnOnce(&LoggedBatch) -> R,
    ) -> (LoggedBatch, R) {
        let mut inner = self.write();
        let mut out = LoggedBatch {
            results: Vec::with_capacity(batch.len()),
            new_series: Vec::new(),
            to_log: Vec::with_capacity(batch.len()),
        };
        // All refs first, then all appends: the lookups of one pass do not
        // wait on each other, so their cache misses (most of the time
        // spent here with a large head) overlap instead of queueing behind
        // each sample's append.
        let mut refs = Vec::with_capacity(batch.len());
        for (labels, _, _) in batch {
            let known = inner.by_labels.get(labels).copied();
            refs.push(match known {
                Some(r) => r,
                None => {
                    let r = inner.get_or_create(labels);
                    out.new_series.push((r, labels.clone()));
                    r
                }
            });
        }
        for ((_, t, v), &r) in batch.iter().zip(&refs) {
            let result = match inner.series.get_mut(&r) {
                Some(s) => s.append(*t, *v, &self.opts),
                None => Err(Refusal::TooOld),
            };
            if result.is_ok() {
                out.to_log.push(RefSample {
                    sref: r,
                    t: *t,
                    v: *v,
                });
            }
            out.results.push(result);
        }
        // A series created only to have its first sample refused would be
        // an empty entry in the index: drop it (and do not log it).
        let refused_new: Vec<SeriesRef> = out
            .new_series
            .iter()
            .map(|(r, _)| *r)
            .filter(|r| inner.series.get(r).is_some_and(|s| s.oldest().is_none()))
            .collect();
        for r in &refused_new {
            inner.remove(*r);
        }
        out.new_series.retain(|(r, _)| !refused_new.contains(r));
        let queued = enqueue(&out);
        drop(inner);
        (out, queued)
    }

    /// Re-creates a series with the ref the write-ahead log gave it.
    /// Returns the ref that holds the labels now: a different one when the
    /// label set is already present under an older ref (the series was
    /// dropped by retention and created again, or a snapshot holds it), in
    /// which case the caller maps `r`'s samples to it. None when `r` is
    /// held by another label set: which series `r`'s samples belong to is
    /// then unknown.
    pub fn replay_series(&self, r: SeriesRef, labels: &Labels) -> Option<SeriesRef> {
        self.write().insert_with_ref(r, labels)
    }

    /// Every series' ref, ascending, and the next ref to be assigned (above
    /// all of them): what a snapshot walks.
    pub fn refs(&self) -> (Vec<SeriesRef>, SeriesRef) {
        let inner = self.read();
        let mut refs: Vec<SeriesRef> = inner.series.keys().copied().collect();
        refs.sort_unstable();
        (refs, inner.next_ref)
    }

    /// Copies the named series (those still present) under one read lock:
    /// appends wait for one short copy, not for a whole snapshot.
    pub fn copy_series(&self, refs: &[SeriesRef]) -> Vec<SeriesData> {
        let inner = self.read();
        refs.iter()
            .filter_map(|&r| {
                let s = inner.series.get(&r)?;
                let mut chunks = s.closed.clone();
                if !s.head.is_empty() {
                    chunks.push(s.head.clone());
                }
                Some(SeriesData {
                    sref: r,
                    labels: s.labels.clone(),
                    chunks,
                    out_of_order: s.ooo.iter().map(|(&t, &v)| (t, v)).collect(),
                })
            })
            .collect()
    }

    /// Puts back a series copied by [`Head::copy_series`] (from a
    /// snapshot). Refused, with the reason, when its chunks overlap or are
    /// out of order, or its ref or labels are already taken.
    pub fn restore_series(&self, data: SeriesData) -> Result<(), &'static str> {
        data.check()?;
        if data.is_empty() {
            return Err("series without samples");
        }
        let mut inner = self.write();
        if inner.series.contains_key(&data.sref) || inner.by_labels.contains_key(&data.labels) {
            return Err("series ref or label set appears twice");
        }
        inner.insert_with_ref(data.sref, &data.labels);
        let Some(s) = inner.series.get_mut(&data.sref) else {
            return Err("series ref or label set appears twice");
        };
        let mut chunks = data.chunks;
        s.head = chunks.pop().unwrap_or_default();
        s.closed = chunks;
        s.ooo = data.out_of_order.into_iter().collect();
        Ok(())
    }

    /// Makes sure refs below `next` are never assigned again (a snapshot's
    /// series may have had refs above the largest it still holds).
    pub fn reserve_refs_below(&self, next: SeriesRef) {
        let mut inner = self.write();
        inner.next_ref = inner.next_ref.max(next);
    }

    /// Re-applies logged samples; samples of unknown series are counted,
    /// not fatal (their series record was in a truncated segment).
    pub fn replay_samples(&self, samples: &[RefSample]) -> ReplayCounts {
        let mut inner = self.write();
        let mut counts = ReplayCounts::default();
        for s in samples {
            match inner.series.get_mut(&s.sref) {
                Some(series) => match series.append(s.t, s.v, &self.opts) {
                    Ok(_) => counts.applied += 1,
                    Err(_) => counts.refused += 1,
                },
                None => counts.unknown_series += 1,
            }
        }
        counts
    }

    /// Drops data older than `cutoff` (ms) and series left empty; returns
    /// how many series were removed.
    pub fn truncate_before(&self, cutoff: i64) -> usize {
        let mut inner = self.write();
        let empty: Vec<SeriesRef> = inner
            .series
            .iter_mut()
            .filter_map(|(&r, s)| s.truncate_before(cutoff).then_some(r))
            .collect();
        for &r in &empty {
            inner.remove(r);
        }
        empty.len()
    }

    pub fn stats(&self) -> HeadStats {
        let inner = self.read();
        let chunk_bytes: usize = inner.series.values().map(MemSeries::bytes).sum();
        let label_bytes: usize = inner
            .series
            .values()
            .map(|s| {
                s.labels
                    .iter()
                    .map(|l| l.name.len() + l.value.len() + LABEL_OVERHEAD_BYTES)
                    .sum::<usize>()
            })
            .sum();
        HeadStats {
            series: inner.series.len(),
            chunk_bytes,
            out_of_order_samples: inner.series.values().map(|s| s.ooo.len()).sum(),
            estimated_bytes: chunk_bytes + label_bytes + inner.series.len() * SERIES_OVERHEAD_BYTES,
        }
    }

    /// The oldest sample's time, if the head holds any.
    pub fn min_time(&self) -> Option<i64> {
        self.read()
            .series
            .values()
            .filter_map(MemSeries::oldest)
            .min()
    }

    /// Retention by memory: while the head's estimated bytes exceed
    /// `max_bytes`, the oldest samples leave it, the cutoff stepping
    /// forward by 1/64 of the time the head spans, but never past
    /// `now_ms - BUDGET_KEEPS_MS`. None when the head is within budget.
    pub fn enforce_memory_budget(&self, max_bytes: usize, now_ms: i64) -> Option<BudgetOutcome> {
        let bytes_before = self.stats().estimated_bytes;
        if bytes_before <= max_bytes {
            return None;
        }
        let oldest = self.min_time()?;
        let limit = now_ms.saturating_sub(BUDGET_KEEPS_MS);
        let step = (now_ms.saturating_sub(oldest) / 64).max(1000);
        let mut outcome = BudgetOutcome {
            cutoff_ms: oldest,
            series_removed: 0,
            bytes_before,
            bytes_after: bytes_before,
            still_over: true,
        };
        while outcome.cutoff_ms < limit {
            outcome.cutoff_ms = outcome.cutoff_ms.saturating_add(step).min(limit);
            outcome.series_removed += self.truncate_before(outcome.cutoff_ms);
            outcome.bytes_after = self.stats().estimated_bytes;
            if outcome.bytes_after <= max_bytes {
                outcome.still_over = false;
                break;
            }
        }
        Some(outcome)
    }

    /// Label names present on any series, sorted.
    pub fn label_names(&self) -> Vec<String> {
        self.read().postings.keys().cloned().collect()
    }

    /// Values of label `name` on any series, sorted.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.read()
            .postings
            .get(name)
            .map(|values| values.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Label sets of the series matching `matchers`.
    pub fn series_labels(&self, matchers: &[Matcher]) -> Vec<Labels> {
        let inner = self.read();
        inner
            .select_refs(matchers)
            .into_iter()
            .filter_map(|r| inner.series.get(&r).map(|s| s.labels.clone()))
            .collect()
    }
}

impl Queryable for Head {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        let inner = self.read();
        Ok(inner
            .select_refs(matchers)
            .into_iter()
            .filter_map(|r| inner.series.get(&r))
            .filter_map(|s| {
                let samples = s.samples(mint, maxt);
                (!samples.is_empty()).then(|| Series {
                    labels: s.labels.clone(),
                    samples,
                })
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn eq(name: &str, value: &str) -> Matcher {
        Matcher::new(MatchOp::Equal, name, value)
    }

    #[test]
    fn select_by_equality_regex_and_absent_labels() {
        let head = Head::default();
        let a = l(&[("__name__", "up"), ("job", "api"), ("zone", "eu")]);
        let b = l(&[("__name__", "up"), ("job", "db")]);
        let c = l(&[("__name__", "down"), ("job", "api")]);
        for (i, s) in [&a, &b, &c].into_iter().enumerate() {
            head.append(s, 1000, i as f64).unwrap();
        }
        let names = |ms: &[Matcher]| -> Vec<String> {
            let mut v: Vec<String> = head
                .select(ms, 0, 2000)
                .unwrap()
                .into_iter()
                .map(|s| s.labels.to_string())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&[eq("__name__", "up")]).len(), 2);
        assert_eq!(names(&[eq("job", "api")]).len(), 2);
        // zone="" selects series without the label.
        assert_eq!(
            names(&[eq("__name__", "up"), eq("zone", "")]),
            vec![b.to_string()]
        );
        let re = Matcher::new(
            MatchOp::Re(regex::Regex::new("^(?:a.*)$").unwrap()),
            "job",
            "a.*",
        );
        assert_eq!(names(&[re]), vec![c.to_string(), a.to_string()]);
        assert_eq!(head.label_values("job"), vec!["api", "db"]);
    }

    #[test]
    fn out_of_order_within_window_is_merged_and_older_refused() {
        let head = Head::new(HeadOptions {
            out_of_order_window_ms: 10_000,
            out_of_order_merge_at: 3,
            ..HeadOptions::default()
        });
        let s = l(&[("__name__", "x")]);
        head.append(&s, 20_000, 20.0).unwrap();
        assert_eq!(head.append(&s, 15_000, 15.0), Ok(Appended::OutOfOrder));
        assert_eq!(head.append(&s, 15_000, 15.0), Ok(Appended::Duplicate));
        assert_eq!(
            head.append(&s, 15_000, 16.0),
            Err(Refusal::DuplicateTimestamp)
        );
        assert_eq!(head.append(&s, 20_000, 20.0), Ok(Appended::Duplicate));
        assert_eq!(head.append(&s, 9_000, 9.0), Err(Refusal::TooOld));
        head.append(&s, 12_000, 12.0).unwrap();
        head.append(&s, 11_000, 11.0).unwrap(); // triggers a merge
        let got = head.select(&[eq("__name__", "x")], 0, 100_000).unwrap();
        let ts: Vec<i64> = got[0].samples.iter().map(|x| x.t).collect();
        assert_eq!(ts, vec![11_000, 12_000, 15_000, 20_000]);
        assert_eq!(head.stats().out_of_order_samples, 0);
    }

    #[test]
    fn retention_drops_old_chunks_and_empty_series() {
        let head = Head::default();
        let old = l(&[("__name__", "old")]);
        let live = l(&[("__name__", "live")]);
        for t in 0..300 {
            head.append(&old, t * 1000, 1.0).unwrap();
            head.append(&live, t * 1000 + 1_000_000, 1.0).unwrap();
        }
        assert_eq!(head.truncate_before(500_000), 1);
        assert_eq!(head.stats().series, 1);
        assert!(head.label_values("__name__") == vec!["live"]);
    }

    #[test]
    fn the_memory_budget_drops_the_oldest_samples_first_and_keeps_the_last_hour() {
        const HOUR: i64 = 3_600_000;
        let head = Head::default();
        let now = 10 * HOUR;
        // 50 series, a sample a minute for 10 hours.
        for i in 0..50 {
            let s = l(&[("__name__", "x"), ("i", &i.to_string())]);
            for t in (0..now).step_by(60_000) {
                head.append(&s, t, (t % 7) as f64).unwrap();
            }
        }
        let full = head.stats().estimated_bytes;
        assert!(head.enforce_memory_budget(full, now).is_none());

        // Half the budget: the oldest samples go, the newest stay.
        let out = head.enforce_memory_budget(full / 2, now).unwrap();
        assert!(!out.still_over, "{out:?}");
        assert!(
            out.bytes_after <= full / 2 && out.bytes_before == full,
            "{out:?}"
        );
        let oldest = head.min_time().unwrap();
        assert!(oldest > 0 && oldest < now - BUDGET_KEEPS_MS, "{oldest}");
        assert!(oldest <= out.cutoff_ms, "whole chunks go: {oldest} {out:?}");
        assert_eq!(head.stats().series, 50);
        let newest = head.select(&[eq("i", "7")], now - 60_000, now).unwrap();
        assert_eq!(newest[0].samples.len(), 1);

        // A budget nothing fits: only the last hour is kept, said so.
        let out = head.enforce_memory_budget(1, now).unwrap();
        assert!(out.still_over, "{out:?}");
        assert_eq!(out.cutoff_ms, now - BUDGET_KEEPS_MS);
        let oldest = head.min_time().unwrap();
        assert!(oldest >= now - BUDGET_KEEPS_MS - 120 * 60_000, "{oldest}");
        assert_eq!(head.stats().series, 50);
    }

    proptest! {
        /// Whatever the arrival order within the window, the stored series
        /// is the sorted set of accepted samples.
        #[test]
        fn arrival_order_does_not_change_what_is_stored(
            mut ts in prop::collection::btree_set(0i64..5_000, 1..400)
                .prop_map(|s| s.into_iter().collect::<Vec<_>>()),
            seed in any::<u64>(),
        ) {
            let sorted = ts.clone();
            // A deterministic shuffle from the seed.
            let mut x = seed | 1;
            for i in (1..ts.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                ts.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let head = Head::new(HeadOptions { out_of_order_window_ms: 10_000, out_of_order_merge_at: 50, ..HeadOptions::default() });
            let s = l(&[("__name__", "p")]);
            for &t in &ts {
                head.append(&s, t, t as f64).unwrap();
            }
            let got = head.select(&[eq("__name__", "p")], i64::MIN, i64::MAX).unwrap();
            let got_ts: Vec<i64> = got[0].samples.iter().map(|x| x.t).collect();
            prop_assert_eq!(got_ts, sorted);
            prop_assert!(got[0].samples.iter().all(|x| x.v == x.t as f64));
        }
    }
}
