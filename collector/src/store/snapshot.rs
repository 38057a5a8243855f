//! Head snapshots: the whole head (every series' labels and ref, its chunks'
//! bytes as they are, its out-of-order buffer) in one file that records the
//! write-ahead log segment it covers, so that opening the store loads the
//! snapshot and replays only the segments from that one on.
//!
//! Layout of `snapshot.<segment:08>`: a 16-byte header (magic `TOCSINSN`,
//! format version u32 LE, zero padding), then records framed as in the WAL
//! (`len | crc32 | kind | payload`): one `meta` record (covered segment,
//! next series ref), `series` records of about 1 MiB holding entries, and
//! one `end` record with the totals. A series entry (tag 0: ref, labels,
//! out-of-order samples) is followed by chunk entries (tag 1: ref, then per
//! chunk its sample count, first and last timestamps, and bytes), split
//! across records when a series is large.
//!
//! Invariants: a snapshot file under its final name is complete and
//! durable (written as `….tmp`, fsync'd, renamed, directory fsync'd); a
//! file without its `end` record, with a bad checksum or with totals that
//! do not match is refused as a whole, never half-loaded. A series with
//! no samples is never written (and skipped when an older file holds
//! one); [`verify`] makes every check [`read`] makes, so a file that
//! verifies also loads.

use std::collections::HashSet;
use std::fs::{self, File};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::chunk::{Chunk, MAX_SAMPLES};
use super::encoding::{DecodeError, Reader, put_labels, put_uvarint, put_varint};
use super::head::{Head, HeadOptions, SeriesData, SeriesRef};
use super::wal::{MAX_RECORD_BYTES, frame};

/// Magic bytes at the start of every snapshot.
pub const MAGIC: &[u8; 8] = b"TOCSINSN";
/// The snapshot format version written and read by this code.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
const FRAME_LEN: usize = 9;

const KIND_META: u8 = 1;
const KIND_SERIES: u8 = 2;
const KIND_END: u8 = 3;
const ENTRY_SERIES: u8 = 0;
const ENTRY_CHUNKS: u8 = 1;

/// A `series` record is closed past this many payload bytes.
const RECORD_TARGET_BYTES: usize = 1 << 20;
/// Series copied under one read lock of the head.
const COPY_BATCH: usize = 256;

const PREFIX: &str = "snapshot.";
const TMP_SUFFIX: &str = ".tmp";

/// Why a snapshot could not be written or read, with its file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a Tocsin head snapshot (bad magic)")]
    BadMagic { path: PathBuf },
    #[error(
        "{path}: head snapshot format version {found} is not supported (this build reads version {FORMAT_VERSION})"
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error("{path}: corrupt head snapshot at byte {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error(
        "{path}: a snapshot record of {len} bytes would exceed the limit of {MAX_RECORD_BYTES} bytes"
    )]
    RecordTooLarge { path: PathBuf, len: usize },
}

impl SnapshotError {
    /// The file is damaged (torn, flipped bits, wrong totals): it can be
    /// set aside and an older snapshot used. An I/O error or an unknown
    /// version says nothing about the file's contents.
    pub fn is_corrupt(&self) -> bool {
        matches!(
            self,
            SnapshotError::BadMagic { .. } | SnapshotError::Corrupt { .. }
        )
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The file name of the snapshot covering the segments below `segment`.
pub fn file_name(segment: u64) -> String {
    format!("{PREFIX}{segment:08}")
}

/// The snapshot files of a directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Newest (highest covered segment) first.
    pub snapshots: Vec<(u64, PathBuf)>,
    /// Temporary files of snapshots that were never finished.
    pub unfinished: Vec<PathBuf>,
}

/// The snapshots in `dir`.
pub fn list(dir: &Path) -> Result<Listing, SnapshotError> {
    let mut done = Vec::new();
    let mut unfinished = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        if rest.ends_with(TMP_SUFFIX) {
            unfinished.push(entry.path());
        } else if let Ok(segment) = rest.parse::<u64>() {
            done.push((segment, entry.path()));
        }
    }
    done.sort_unstable_by_key(|&(segment, _)| std::cmp::Reverse(segment));
    Ok(Listing {
        snapshots: done,
        unfinished,
    })
}

/// What writing a snapshot produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    /// Segments below this one are covered.
    pub segment: u64,
    pub bytes: u64,
    pub series: u64,
    pub chunks: u64,
    pub samples: u64,
}

/// What reading a snapshot restored.
#[derive(Debug)]
pub struct Loaded {
    pub head: Head,
    /// Segments below this one are covered.
    pub segment: u64,
    pub series: u64,
    pub chunks: u64,
    pub samples: u64,
    /// Samples in the file older than the head's restore cutoff: not
    /// restored.
    pub samples_past_retention: u64,
}

/// What [`verify`] found in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Segments below this one are covered.
    pub segment: u64,
    pub series: u64,
    pub chunks: u64,
    pub samples: u64,
}

#[derive(Debug, Default)]
struct Totals {
    series: u64,
    chunks: u64,
    samples: u64,
    records: u64,
}

struct RecordWriter<'a> {
    out: BufWriter<File>,
    path: &'a Path,
    payload: Vec<u8>,
    framed: Vec<u8>,
    bytes: u64,
    records: u64,
}

impl RecordWriter<'_> {
    fn write(&mut self, kind: u8, payload: &[u8]) -> Result<(), SnapshotError> {
        self.framed.clear();
        frame(kind, payload, &mut self.framed).map_err(|_| SnapshotError::RecordTooLarge {
            path: self.path.to_path_buf(),
            len: payload.len(),
        })?;
        self.out
            .write_all(&self.framed)
            .map_err(io_err(self.path))?;
        self.bytes += self.framed.len() as u64;
        Ok(())
    }

    /// Closes the `series` record being filled, if it holds anything.
    fn flush_series(&mut self) -> Result<(), SnapshotError> {
        if self.payload.is_empty() {
            return Ok(());
        }
        let payload = std::mem::take(&mut self.payload);
        let result = self.write(KIND_SERIES, &payload);
        self.payload = payload;
        self.payload.clear();
        self.records += 1;
        result
    }

    fn put_series(&mut self, s: &SeriesData, totals: &mut Totals) -> Result<(), SnapshotError> {
        let p = &mut self.payload;
        p.push(ENTRY_SERIES);
        put_uvarint(p, s.sref);
        put_labels(p, &s.labels);
        put_uvarint(p, s.out_of_order.len() as u64);
        for &(t, v) in &s.out_of_order {
            put_varint(p, t);
            p.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        totals.series += 1;
        totals.samples += s.out_of_order.len() as u64;
        let mut rest = s.chunks.as_slice();
        while !rest.is_empty() {
            if self.payload.len() >= RECORD_TARGET_BYTES {
                self.flush_series()?;
            }
            let p = &mut self.payload;
            p.push(ENTRY_CHUNKS);
            put_uvarint(p, s.sref);
            // Whole entries stay near the record target: count first, so
            // the reader knows how many follow.
            let mut n = 0;
            let mut size = p.len();
            for c in rest {
                size += c.byte_len() + 24;
                n += 1;
                if size >= RECORD_TARGET_BYTES {
                    break;
                }
            }
            put_uvarint(p, n as u64);
            for c in &rest[..n] {
                put_uvarint(p, c.len() as u64);
                put_varint(p, c.min_time());
                put_varint(p, c.max_time());
                put_uvarint(p, c.byte_len() as u64);
                p.extend_from_slice(c.bytes());
                totals.chunks += 1;
                totals.samples += c.len() as u64;
            }
            rest = &rest[n..];
        }
        if self.payload.len() >= RECORD_TARGET_BYTES {
            self.flush_series()?;
        }
        Ok(())
    }
}

/// Writes a snapshot of `head` covering the log segments below `segment`
/// into `dir`, durably, and returns what it holds. Series are copied a
/// few at a time under the head's read lock, so appends go on meanwhile;
/// what they add is in the segments from `segment` on as well.
pub fn write(dir: &Path, segment: u64, head: &Head) -> Result<Written, SnapshotError> {
    let path = dir.join(file_name(segment));
    let tmp = dir.join(format!("{}{TMP_SUFFIX}", file_name(segment)));
    let result = write_to(&tmp, segment, head).and_then(|(bytes, totals)| {
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
        Ok(Written {
            path: path.clone(),
            segment,
            bytes,
            series: totals.series,
            chunks: totals.chunks,
            samples: totals.samples,
        })
    });
    if result.is_err() {
        // Best effort: a leftover is also removed on the next open.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_to(tmp: &Path, segment: u64, head: &Head) -> Result<(u64, Totals), SnapshotError> {
    let file = File::create(tmp).map_err(io_err(tmp))?;
    let mut w = RecordWriter {
        out: BufWriter::with_capacity(1 << 20, file),
        path: tmp,
        payload: Vec::with_capacity(RECORD_TARGET_BYTES + (64 << 10)),
        framed: Vec::new(),
        bytes: HEADER_LEN,
        records: 0,
    };
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    w.out.write_all(&header).map_err(io_err(tmp))?;

    let (refs, next_ref) = head.refs();
    let mut meta = Vec::new();
    put_uvarint(&mut meta, segment);
    put_uvarint(&mut meta, next_ref);
    w.write(KIND_META, &meta)?;

    let mut totals = Totals::default();
    for batch in refs.chunks(COPY_BATCH) {
        // A series with no samples (its samples' log record was lost in a
        // crash) is not written: there is nothing of it to keep, and its
        // ref stays reserved by the meta record's next ref.
        for s in head.copy_series(batch).iter().filter(|s| !s.is_empty()) {
            w.put_series(s, &mut totals)?;
        }
    }
    w.flush_series()?;
    totals.records = w.records;
    let mut end = Vec::new();
    for v in [totals.series, totals.chunks, totals.samples, totals.records] {
        put_uvarint(&mut end, v);
    }
    w.write(KIND_END, &end)?;
    let bytes = w.bytes;
    let file = w.out.into_inner().map_err(|e| SnapshotError::Io {
        path: tmp.to_path_buf(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_err(tmp))?;
    Ok((bytes, totals))
}

/// Reads the snapshot at `path` into a new head with `opts`. The head is
/// returned only when the whole file checked out. Samples older than
/// `opts.restore_min_time_ms` are left out, as retention would (whole
/// chunks); a series left with none is not restored.
pub fn read(path: &Path, opts: HeadOptions) -> Result<Loaded, SnapshotError> {
    let cutoff = opts.restore_min_time_ms;
    let head = Head::new(opts);
    let mut past_retention = 0;
    let (segment, next_ref, totals) = parse(path, |mut s| {
        s.check()?;
        past_retention += s.truncate_before(cutoff);
        // Snapshots written before empty series were skipped may hold
        // some: nothing of them to restore.
        if s.is_empty() {
            return Ok(());
        }
        head.restore_series(s)
    })?;
    head.reserve_refs_below(next_ref);
    Ok(Loaded {
        head,
        segment,
        series: totals.series,
        chunks: totals.chunks,
        samples: totals.samples,
        samples_past_retention: past_retention,
    })
}

/// Reads the snapshot at `path` through with every check [`read`] makes,
/// without building a head (it holds one set of series refs and one of
/// label-set hashes): run on a new snapshot before the log it covers is
/// deleted. Returns what the file holds.
pub fn verify(path: &Path) -> Result<Verified, SnapshotError> {
    let hasher = RandomState::new();
    let mut refs = HashSet::new();
    let mut label_sets = HashSet::new();
    let (segment, _, totals) = parse(path, |s| {
        s.check()?;
        if s.is_empty() {
            return Ok(());
        }
        if !refs.insert(s.sref) || !label_sets.insert(hasher.hash_one(&s.labels)) {
            return Err("series ref or label set appears twice");
        }
        Ok(())
    })?;
    Ok(Verified {
        segment,
        series: totals.series,
        chunks: totals.chunks,
        samples: totals.samples,
    })
}

/// Reads the snapshot at `path` through, handing each series to `series`
/// once all its entries are read; an error from it makes the file
/// corrupt. Returns the covered segment, the next series ref and the
/// totals, which matched the end record's.
fn parse(
    path: &Path,
    mut series: impl FnMut(SeriesData) -> Result<(), &'static str>,
) -> Result<(u64, SeriesRef, Totals), SnapshotError> {
    let file = File::open(path).map_err(io_err(path))?;
    let total = file.metadata().map_err(io_err(path))?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let corrupt = |offset: u64, reason: String| SnapshotError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if total < HEADER_LEN {
        return Err(corrupt(0, "shorter than its header".into()));
    }
    let mut header = [0u8; HEADER_LEN as usize];
    r.read_exact(&mut header).map_err(io_err(path))?;
    if &header[..8] != MAGIC {
        return Err(SnapshotError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
        });
    }
    if header[12..] != [0u8; 4] {
        return Err(corrupt(12, "header padding is not zero".into()));
    }

    let mut offset = HEADER_LEN;
    let mut meta: Option<(u64, SeriesRef)> = None;
    let mut pending: Option<SeriesData> = None;
    let mut totals = Totals::default();
    let mut payload = Vec::new();
    let decode = |at: u64, e: DecodeError| corrupt(at, e.to_string());
    let mut done = |s: SeriesData, totals: &mut Totals| -> Result<(), String> {
        let r = s.sref;
        series(s).map_err(|reason| format!("series {r}: {reason}"))?;
        totals.series += 1;
        Ok(())
    };
    loop {
        if offset == total {
            return Err(corrupt(
                offset,
                "ends before its end record (an unfinished write)".into(),
            ));
        }
        if total - offset < FRAME_LEN as u64 {
            return Err(corrupt(offset, "torn record header".into()));
        }
        let mut fh = [0u8; FRAME_LEN];
        r.read_exact(&mut fh).map_err(io_err(path))?;
        let len = u32::from_le_bytes([fh[0], fh[1], fh[2], fh[3]]) as usize;
        let crc = u32::from_le_bytes([fh[4], fh[5], fh[6], fh[7]]);
        let kind = fh[8];
        if len > MAX_RECORD_BYTES || total - offset - (FRAME_LEN as u64) < len as u64 {
            return Err(corrupt(
                offset,
                "record length past the end of the file".into(),
            ));
        }
        payload.resize(len, 0);
        r.read_exact(&mut payload).map_err(io_err(path))?;
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(&payload);
        if h.finalize() != crc {
            return Err(corrupt(offset, "checksum mismatch".into()));
        }
        let at = offset;
        offset += (FRAME_LEN + len) as u64;
        match (kind, meta) {
            (KIND_META, None) => {
                let mut rd = Reader::new(&payload, "snapshot meta");
                let segment = rd.uvarint().map_err(|e| decode(at, e))?;
                let next_ref = rd.uvarint().map_err(|e| decode(at, e))?;
                rd.done().map_err(|e| decode(at, e))?;
                meta = Some((segment, next_ref));
            }
            (KIND_SERIES, Some(_)) => {
                totals.records += 1;
                read_entries(&payload, &mut pending, &mut totals, &mut done)
                    .map_err(|reason| corrupt(at, reason))?;
            }
            (KIND_END, Some((segment, next_ref))) => {
                if let Some(s) = pending.take() {
                    done(s, &mut totals).map_err(|reason| corrupt(at, reason))?;
                }
                let mut rd = Reader::new(&payload, "snapshot end");
                let mut want = [0u64; 4];
                for w in &mut want {
                    *w = rd.uvarint().map_err(|e| decode(at, e))?;
                }
                rd.done().map_err(|e| decode(at, e))?;
                let got = [totals.series, totals.chunks, totals.samples, totals.records];
                if got != want {
                    return Err(corrupt(
                        at,
                        format!(
                            "totals (series, chunks, samples, records) {got:?} differ from the end record's {want:?}"
                        ),
                    ));
                }
                if offset != total {
                    return Err(corrupt(offset, "bytes after the end record".into()));
                }
                return Ok((segment, next_ref, totals));
            }
            (k, _) => {
                return Err(corrupt(
                    at,
                    format!("record kind {k} out of place (meta, series…, end expected)"),
                ));
            }
        }
    }
}

fn read_entries(
    payload: &[u8],
    pending: &mut Option<SeriesData>,
    totals: &mut Totals,
    done: &mut impl FnMut(SeriesData, &mut Totals) -> Result<(), String>,
) -> Result<(), String> {
    let mut rd = Reader::new(payload, "snapshot series");
    let e = |e: DecodeError| e.to_string();
    while !rd.at_end() {
        let tag = rd.bytes(1).map_err(e)?[0];
        let sref = rd.uvarint().map_err(e)?;
        match tag {
            ENTRY_SERIES => {
                if let Some(s) = pending.take() {
                    done(s, totals)?;
                }
                let labels = rd.labels().map_err(e)?;
                let n = rd.count(9).map_err(e)?;
                let mut out_of_order = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = rd.varint().map_err(e)?;
                    let v = rd.f64().map_err(e)?;
                    out_of_order.push((t, v));
                }
                totals.samples += n as u64;
                *pending = Some(SeriesData {
                    sref,
                    labels,
                    chunks: Vec::new(),
                    out_of_order,
                });
            }
            ENTRY_CHUNKS => {
                let Some(s) = pending.as_mut().filter(|s| s.sref == sref) else {
                    return Err(format!("chunks of series {sref} without its series entry"));
                };
                let n = rd.count(4).map_err(e)?;
                for _ in 0..n {
                    let count = rd.uvarint().map_err(e)?;
                    let min_t = rd.varint().map_err(e)?;
                    let max_t = rd.varint().map_err(e)?;
                    let len = rd.count(1).map_err(e)?;
                    let bytes = rd.bytes(len).map_err(e)?;
                    let count = usize::try_from(count).unwrap_or(usize::MAX);
                    let chunk = if count == MAX_SAMPLES {
                        Chunk::sealed(bytes.to_vec(), count, min_t, max_t)
                    } else {
                        Chunk::from_bytes(bytes, count)
                            .filter(|c| c.min_time() == min_t && c.max_time() == max_t)
                    };
                    let Some(chunk) = chunk else {
                        return Err(format!(
                            "series {sref}: a chunk of {count} samples does not decode"
                        ));
                    };
                    totals.chunks += 1;
                    totals.samples += count as u64;
                    s.chunks.push(chunk);
                }
            }
            other => return Err(format!("unknown entry tag {other}")),
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tocsin_rules::promql::storage::{MatchOp, Matcher, Queryable};
    use tocsin_rules::promql::value::Labels;

    fn all(head: &Head) -> Vec<(String, Vec<(i64, u64)>)> {
        let m = Matcher::new(MatchOp::NotEqual, "__name__", "");
        let mut v: Vec<_> = head
            .select(&[m], i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.samples.iter().map(|x| (x.t, x.v.to_bits())).collect(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn filled() -> Head {
        let head = Head::new(HeadOptions {
            out_of_order_merge_at: 1000,
            ..HeadOptions::default()
        });
        for i in 0..50 {
            let l = Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())]);
            for t in 0..(i * 20) {
                head.append(&l, 1_000_000 + t * 15_000, (t * i) as f64 * 0.5)
                    .unwrap();
            }
        }
        // Out-of-order samples, buffered, not merged.
        let o = Labels::from_pairs([("__name__", "ooo")]);
        head.append(&o, 10_000, 1.0).unwrap();
        head.append(&o, 5_000, f64::NAN).unwrap();
        head
    }

    #[test]
    fn a_snapshot_restores_the_head_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let head = filled();
        let written = write(dir.path(), 7, &head).unwrap();
        assert_eq!(written.segment, 7);
        assert_eq!(written.series, 50);
        assert_eq!(
            written.bytes,
            fs::metadata(dir.path().join("snapshot.00000007"))
                .unwrap()
                .len()
        );
        let loaded = read(&written.path, HeadOptions::default()).unwrap();
        assert_eq!(loaded.segment, 7);
        assert_eq!(all(&loaded.head), all(&head));
        assert_eq!(loaded.head.stats(), head.stats());
        // Appending continues in the restored head chunks, and new series
        // get refs that were never used.
        let (_, next) = head.refs();
        let l = Labels::from_pairs([("__name__", "m"), ("i", "3")]);
        loaded.head.append(&l, 10_000_000_000, 1.0).unwrap();
        let fresh = Labels::from_pairs([("__name__", "new")]);
        loaded.head.append(&fresh, 1, 1.0).unwrap();
        let (refs, _) = loaded.head.refs();
        assert!(refs.iter().any(|&r| r >= next));
        let listing = list(dir.path()).unwrap();
        assert_eq!(listing.snapshots, vec![(7, written.path.clone())]);
        assert!(listing.unfinished.is_empty());
    }

    #[test]
    fn a_series_without_samples_is_not_written_and_the_file_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let head = filled();
        // As replay leaves a series whose samples' record was lost.
        let empty = Labels::from_pairs([("__name__", "empty")]);
        assert_eq!(head.replay_series(1_000, &empty), Some(1_000));
        let written = write(dir.path(), 2, &head).unwrap();
        assert_eq!(written.series, 50);
        let verified = verify(&written.path).unwrap();
        assert_eq!(
            (verified.segment, verified.series, verified.samples),
            (2, 50, written.samples)
        );
        let loaded = read(&written.path, HeadOptions::default()).unwrap();
        assert_eq!(all(&loaded.head), all(&head));
        // Its ref is not given out again.
        let fresh = Labels::from_pairs([("__name__", "fresh")]);
        loaded.head.append(&fresh, 1, 1.0).unwrap();
        assert!(loaded.head.refs().0.iter().all(|&r| r != 1_000));
    }

    #[test]
    fn large_series_are_split_across_records() {
        let dir = tempfile::tempdir().unwrap();
        let head = Head::default();
        let l = Labels::from_pairs([("__name__", "big")]);
        // Random-looking values so chunks are large: > 1 MiB in all.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for t in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            head.append(&l, t, f64::from_bits(x >> 2)).unwrap();
        }
        let written = write(dir.path(), 1, &head).unwrap();
        assert!(written.bytes > RECORD_TARGET_BYTES as u64 * 3 / 2);
        let loaded = read(&written.path, HeadOptions::default()).unwrap();
        assert_eq!(loaded.samples, 200_000);
        assert_eq!(all(&loaded.head), all(&head));
    }

    #[test]
    fn any_damage_is_refused_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let written = write(dir.path(), 3, &filled()).unwrap();
        let good = fs::read(&written.path).unwrap();
        // Every truncation point, and a flipped bit every few bytes.
        let mut damaged: Vec<Vec<u8>> = (HEADER_LEN as usize..good.len())
            .step_by(7)
            .map(|n| good[..n].to_vec())
            .collect();
        for i in (8..good.len()).step_by(11) {
            let mut b = good.clone();
            b[i] ^= 0x10;
            damaged.push(b);
        }
        let mut extra = good.clone();
        extra.extend_from_slice(b"x");
        damaged.push(extra);
        for (i, bytes) in damaged.iter().enumerate() {
            fs::write(&written.path, bytes).unwrap();
            match read(&written.path, HeadOptions::default()) {
                Err(e) => assert!(
                    e.is_corrupt() || matches!(e, SnapshotError::UnsupportedVersion { .. }),
                    "case {i}: {e}"
                ),
                Ok(_) => panic!("case {i}: damaged snapshot accepted"),
            }
            // The read-back check refuses whatever the reader refuses.
            assert!(verify(&written.path).is_err(), "case {i}: verified");
        }
        let err = read(&written.path, HeadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("snapshot.00000003"), "{err}");
    }
}
