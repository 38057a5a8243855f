//! The write-ahead log: every accepted sample and log record is framed,
//! checksummed and fsync'd here before its request is acknowledged, so a
//! crash loses nothing that was acknowledged.
//!
//! Layout: a directory of numbered segment files (`00000001`, …), each
//! starting with a 16-byte header (magic `TOCSINWL`, format version, zero
//! padding) and then records framed as `len: u32 LE | crc32: u32 LE |
//! kind: u8 | payload` where the CRC covers kind and payload. Segments are
//! cut at a size limit; [`Wal::truncate_before`] deletes whole segments
//! once a snapshot covers them.
//!
//! Versions: the framing is the same in every version; the version says
//! what a store's directory means, so each store that keeps a log here
//! names the version it writes ([`WalOptions::format_version`]). Every
//! supported version is read, whichever one is written. The series store
//! writes 2: its older segments may have been deleted because a head
//! snapshot holds their contents, and a build that knows only version 1
//! refuses such segments instead of replaying a log whose beginning lives
//! in a snapshot it cannot read. The log store's format has not changed
//! and it still writes 1.
//!
//! Invariants: records are replayed in the order they were appended; a torn
//! or corrupt tail (a crash mid-write) ends replay of the newest segment and
//! is truncated away before new appends; corruption in an older segment is
//! an error, never silently skipped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Magic bytes at the start of every segment.
pub const MAGIC: &[u8; 8] = b"TOCSINWL";
/// The newest format version this code reads (and may write).
pub const MAX_FORMAT_VERSION: u32 = 2;
/// The oldest format version this code still reads (and may write).
pub const MIN_FORMAT_VERSION: u32 = 1;
const HEADER_LEN: u64 = 16;
const FRAME_LEN: usize = 9;
/// Largest record accepted (a bound on what one request can write and on
/// what replay will allocate).
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// Settings of the write-ahead log.
#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// The format version written into the header of new segments: the
    /// owning store's (see the module docs), from [`MIN_FORMAT_VERSION`]
    /// to [`MAX_FORMAT_VERSION`]. Segments of any of those are read.
    pub format_version: u32,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 128 << 20,
            format_version: MIN_FORMAT_VERSION,
        }
    }
}

/// A failure of the write-ahead log, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: not a Tocsin WAL segment (bad magic)")]
    BadMagic { path: PathBuf },
    #[error(
        "{path}: WAL format version {found} is not supported (this build reads versions {MIN_FORMAT_VERSION} to {MAX_FORMAT_VERSION})"
    )]
    UnsupportedVersion { path: PathBuf, found: u32 },
    #[error("{path}: corrupt record at byte {offset} in a closed segment: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: &'static str,
    },
    #[error("record of {len} bytes exceeds the limit of {MAX_RECORD_BYTES} bytes")]
    RecordTooLarge { len: usize },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One replayed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What the payload holds; the store defines the kinds.
    pub kind: u8,
    pub payload: Vec<u8>,
}

/// Frames one record (`len | crc32 | kind | payload`) onto `out`.
pub fn frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) -> Result<(), WalError> {
    if payload.len() > MAX_RECORD_BYTES {
        return Err(WalError::RecordTooLarge { len: payload.len() });
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    Ok(())
}

/// Starts a record framed in place: reserves its frame header at the end
/// of `out` and returns where the frame starts. Write the payload after it
/// and close the frame with [`finish_frame`]; the bytes are then exactly
/// what [`frame`] would have written, without copying the payload.
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_LEN]);
    start
}

/// Closes a frame begun at `start` by [`begin_frame`]: the payload is
/// everything written after its header. A payload over the limit is an
/// error and is removed again, leaving `out` as it was before the frame.
pub fn finish_frame(kind: u8, out: &mut Vec<u8>, start: usize) -> Result<(), WalError> {
    let Some(payload) = out.get(start + FRAME_LEN..) else {
        out.truncate(start);
        return Err(WalError::RecordTooLarge { len: 0 });
    };
    let len = payload.len();
    if len > MAX_RECORD_BYTES {
        out.truncate(start);
        return Err(WalError::RecordTooLarge { len });
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    let crc = h.finalize();
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out[start + 8] = kind;
    Ok(())
}

/// What [`Wal::open`] found on disk.
#[derive(Debug, Default)]
pub struct Replay {
    pub records: Vec<Record>,
    /// Bytes of torn or corrupt tail dropped from the newest segment.
    pub truncated_tail_bytes: u64,
}

/// What [`Wal::open_from`] found on disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Bytes of torn or corrupt tail dropped from the newest segment.
    pub truncated_tail_bytes: u64,
    /// Segments below the first one asked for, not read.
    pub skipped_segments: usize,
    /// The oldest segment replayed.
    pub first_replayed: Option<u64>,
    /// Numbers missing between replayed segments (deleted by hand, or
    /// lost): their records are not in the replay.
    pub missing_segments: u64,
}

/// An open write-ahead log. Not shared: the owner serialises appends (the
/// group-commit task), which is what makes one fsync cover many requests.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    segment: u64,
    file: File,
    size: u64,
    buf: Vec<u8>,
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}"))
}

/// Segment numbers present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if let Some(n) = name.to_str().and_then(|s| s.parse::<u64>().ok()) {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn write_header(file: &mut File, path: &Path, version: u32) -> Result<(), WalError> {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    file.write_all(&h).map_err(io_err(path))?;
    file.sync_data().map_err(io_err(path))
}

/// Reads one segment's records, handing each to `visit`. Returns the offset
/// of the end of the last good record and the bytes of bad tail after it.
fn read_segment(
    path: &Path,
    is_last: bool,
    visit: &mut dyn FnMut(Record),
) -> Result<(u64, u64), WalError> {
    let file = File::open(path).map_err(io_err(path))?;
    let total = file.metadata().map_err(io_err(path))?.len();
    let mut r = BufReader::new(file);
    let mut header = [0u8; HEADER_LEN as usize];
    if total < HEADER_LEN {
        if is_last {
            // Crashed while creating the segment: nothing in it.
            return Ok((0, total));
        }
        return Err(WalError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    r.read_exact(&mut header).map_err(io_err(path))?;
    if &header[..8] != MAGIC {
        return Err(WalError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if !(MIN_FORMAT_VERSION..=MAX_FORMAT_VERSION).contains(&version) {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
        });
    }
    let mut offset = HEADER_LEN;
    loop {
        if offset == total {
            return Ok((offset, 0));
        }
        let bad = |reason: &'static str| -> Result<(u64, u64), WalError> {
            Err(WalError::Corrupt {
                path: path.to_path_buf(),
                offset,
                reason,
            })
        };
        let mut frame = [0u8; FRAME_LEN];
        if total - offset < FRAME_LEN as u64 {
            if is_last {
                return Ok((offset, total - offset));
            }
            return bad("truncated frame");
        }
        r.read_exact(&mut frame).map_err(io_err(path))?;
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let kind = frame[8];
        if len > MAX_RECORD_BYTES || (total - offset - FRAME_LEN as u64) < len as u64 {
            if is_last {
                return Ok((offset, total - offset));
            }
            return bad("record length past the end of the segment");
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).map_err(io_err(path))?;
        let mut h = crc32fast::Hasher::new();
        h.update(&[kind]);
        h.update(&payload);
        if h.finalize() != crc {
            if is_last {
                return Ok((offset, total - offset));
            }
            return bad("checksum mismatch");
        }
        visit(Record { kind, payload });
        offset += (FRAME_LEN + len) as u64;
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, replays every record,
    /// cuts off a torn tail, and positions for appending.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<(Wal, Replay), WalError> {
        let mut records = Vec::new();
        let (wal, truncated_tail_bytes) = Wal::open_with(dir, opts, |r| records.push(r))?;
        Ok((
            wal,
            Replay {
                records,
                truncated_tail_bytes,
            },
        ))
    }

    /// As [`Wal::open`], but hands each record to `visit` as it is read, so
    /// replay needs memory for one record at a time, not the whole log.
    /// Returns the log and the bytes of torn tail cut off.
    pub fn open_with(
        dir: &Path,
        opts: WalOptions,
        visit: impl FnMut(Record),
    ) -> Result<(Wal, u64), WalError> {
        let (wal, opened) = Wal::open_from(dir, opts, 0, visit)?;
        Ok((wal, opened.truncated_tail_bytes))
    }

    /// As [`Wal::open_with`], but replays only the segments numbered
    /// `first` and up (the older ones are covered by a snapshot and are
    /// left for [`Wal::truncate_before`]). Appends continue in the newest
    /// segment, or in segment `first` when none that new exists, so a
    /// record written after this is never numbered below `first`.
    pub fn open_from(
        dir: &Path,
        opts: WalOptions,
        first: u64,
        mut visit: impl FnMut(Record),
    ) -> Result<(Wal, Opened), WalError> {
        if !(MIN_FORMAT_VERSION..=MAX_FORMAT_VERSION).contains(&opts.format_version) {
            return Err(WalError::UnsupportedVersion {
                path: dir.to_path_buf(),
                found: opts.format_version,
            });
        }
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let all = list_segments(dir)?;
        let segments: Vec<u64> = all.iter().copied().filter(|&n| n >= first).collect();
        let mut opened = Opened {
            skipped_segments: all.len() - segments.len(),
            first_replayed: segments.first().copied(),
            ..Opened::default()
        };
        let mut last_end = 0;
        for (i, &n) in segments.iter().enumerate() {
            if i > 0 && n != segments[i - 1] + 1 {
                opened.missing_segments += n - segments[i - 1] - 1;
            }
            let is_last = i + 1 == segments.len();
            let path = segment_path(dir, n);
            let (end, dropped) = read_segment(&path, is_last, &mut visit)?;
            opened.truncated_tail_bytes += dropped;
            last_end = end;
        }
        let (segment, file, size) = match segments.last() {
            Some(&n) if last_end >= HEADER_LEN => {
                let path = segment_path(dir, n);
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                if opened.truncated_tail_bytes > 0 {
                    file.set_len(last_end).map_err(io_err(&path))?;
                    file.sync_all().map_err(io_err(&path))?;
                }
                file.seek(SeekFrom::Start(last_end))
                    .map_err(io_err(&path))?;
                (n, file, last_end)
            }
            last => {
                // No segment yet, or the newest one lost even its header.
                let n = last.copied().unwrap_or(first.max(1));
                let path = segment_path(dir, n);
                let mut file = File::create(&path).map_err(io_err(&path))?;
                write_header(&mut file, &path, opts.format_version)?;
                sync_dir(dir)?;
                (n, file, HEADER_LEN)
            }
        };
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                opts,
                segment,
                file,
                size,
                buf: Vec::new(),
            },
            opened,
        ))
    }

    /// The segment appends go to.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Whether the current segment holds no record yet.
    pub fn segment_is_empty(&self) -> bool {
        self.size <= HEADER_LEN
    }

    /// Buffers one record; it reaches the disk with the next [`Wal::commit`].
    pub fn append(&mut self, kind: u8, payload: &[u8]) -> Result<(), WalError> {
        frame(kind, payload, &mut self.buf)
    }

    /// Writes the buffered records and fsyncs: when this returns Ok, every
    /// record appended so far survives a crash. One call covers any number
    /// of appends (group commit).
    pub fn commit(&mut self) -> Result<(), WalError> {
        let buf = std::mem::take(&mut self.buf);
        let result = self.write_frames(&buf);
        self.buf = buf;
        self.buf.clear();
        result
    }

    /// Writes records already framed by [`frame`] and fsyncs. A batch is
    /// never split across segments, so replay sees whole records.
    pub fn write_frames(&mut self, frames: &[u8]) -> Result<(), WalError> {
        if frames.is_empty() {
            return Ok(());
        }
        if self.size > HEADER_LEN && self.size + frames.len() as u64 > self.opts.segment_bytes {
            self.cut_segment()?;
        }
        let path = segment_path(&self.dir, self.segment);
        if let Err(source) = self
            .file
            .write_all(frames)
            .and_then(|()| self.file.sync_data())
        {
            // A partial write would leave a torn record in the middle of
            // the segment: cut back to the last good end so later records
            // stay readable (replay would otherwise stop here).
            let _ = self.file.set_len(self.size);
            let _ = self.file.seek(SeekFrom::Start(self.size));
            return Err(WalError::Io { path, source });
        }
        self.size += frames.len() as u64;
        Ok(())
    }

    fn cut_segment(&mut self) -> Result<(), WalError> {
        let n = self.segment + 1;
        let path = segment_path(&self.dir, n);
        let mut file = File::create(&path).map_err(io_err(&path))?;
        write_header(&mut file, &path, self.opts.format_version)?;
        sync_dir(&self.dir)?;
        self.segment = n;
        self.file = file;
        self.size = HEADER_LEN;
        Ok(())
    }

    /// Closes the current segment and starts a new one; returns the new
    /// segment's number. A snapshot taken after this call covers every
    /// segment before the returned number.
    pub fn start_new_segment(&mut self) -> Result<u64, WalError> {
        self.commit()?;
        self.cut_segment()?;
        Ok(self.segment)
    }

    /// Deletes the segments numbered below `segment`.
    pub fn truncate_before(&mut self, segment: u64) -> Result<usize, WalError> {
        let mut removed = 0;
        for n in list_segments(&self.dir)? {
            if n < segment && n != self.segment {
                let path = segment_path(&self.dir, n);
                fs::remove_file(&path).map_err(io_err(&path))?;
                removed += 1;
            }
        }
        sync_dir(&self.dir)?;
        Ok(removed)
    }

    /// Total bytes of all segments on disk.
    pub fn disk_bytes(&self) -> Result<u64, WalError> {
        let mut total = 0;
        for n in list_segments(&self.dir)? {
            let path = segment_path(&self.dir, n);
            total += fs::metadata(&path).map_err(io_err(&path))?.len();
        }
        Ok(total)
    }
}

/// Makes a file creation or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(kind: u8, s: &str) -> Record {
        Record {
            kind,
            payload: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn committed_records_replay_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            segment_bytes: 64,
            ..WalOptions::default()
        };
        {
            let (mut wal, replay) = Wal::open(dir.path(), opts.clone()).unwrap();
            assert!(replay.records.is_empty());
            for i in 0..10 {
                wal.append(1, format!("record-{i}").as_bytes()).unwrap();
                wal.commit().unwrap();
            }
        }
        assert!(list_segments(dir.path()).unwrap().len() > 1);
        let (_, replay) = Wal::open(dir.path(), opts).unwrap();
        let want: Vec<Record> = (0..10).map(|i| rec(1, &format!("record-{i}"))).collect();
        assert_eq!(replay.records, want);
        assert_eq!(replay.truncated_tail_bytes, 0);
    }

    #[test]
    fn uncommitted_records_are_not_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
            wal.append(1, b"kept").unwrap();
            wal.commit().unwrap();
            wal.append(1, b"lost").unwrap();
        }
        let (_, replay) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(replay.records, vec![rec(1, "kept")]);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
            wal.append(1, b"one").unwrap();
            wal.append(2, b"two").unwrap();
            wal.commit().unwrap();
        }
        // Simulate a crash halfway through the second record.
        let path = segment_path(dir.path(), 1);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        {
            let (mut wal, replay) = Wal::open(dir.path(), WalOptions::default()).unwrap();
            assert_eq!(replay.records, vec![rec(1, "one")]);
            assert_eq!(replay.truncated_tail_bytes, (FRAME_LEN + 3 - 2) as u64);
            wal.append(3, b"three").unwrap();
            wal.commit().unwrap();
        }
        let (_, replay) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(replay.records, vec![rec(1, "one"), rec(3, "three")]);
    }

    #[test]
    fn corruption_in_a_closed_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions {
            segment_bytes: 40,
            ..WalOptions::default()
        };
        {
            let (mut wal, _) = Wal::open(dir.path(), opts.clone()).unwrap();
            for i in 0..4 {
                wal.append(1, format!("r{i}-abcdefgh").as_bytes()).unwrap();
                wal.commit().unwrap();
            }
        }
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).unwrap();
        let err = Wal::open(dir.path(), opts).unwrap_err();
        assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("00000001"), "{err}");
    }

    #[test]
    fn other_versions_are_refused_with_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        let mut h = vec![0u8; 16];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&7u32.to_le_bytes());
        fs::write(&path, h).unwrap();
        let err = Wal::open(dir.path(), WalOptions::default()).unwrap_err();
        assert!(err.to_string().contains("version 7"), "{err}");
    }

    #[test]
    fn every_supported_version_is_read_and_new_segments_get_the_store_s_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut v1 = vec![0u8; HEADER_LEN as usize];
        v1[..8].copy_from_slice(MAGIC);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        frame(1, b"from v1", &mut v1).unwrap();
        fs::write(segment_path(dir.path(), 1), &v1).unwrap();
        let version = |n| fs::read(segment_path(dir.path(), n)).unwrap()[8..12].to_vec();
        let v2 = WalOptions {
            format_version: 2,
            ..WalOptions::default()
        };
        {
            let (mut wal, replay) = Wal::open(dir.path(), v2.clone()).unwrap();
            assert_eq!(replay.records, vec![rec(1, "from v1")]);
            wal.append(1, b"appended").unwrap();
            assert_eq!(wal.start_new_segment().unwrap(), 2);
        }
        assert_eq!(version(2), 2u32.to_le_bytes());
        // A store that writes version 1 reads the version 2 segment too,
        // and its new segments stay at 1.
        {
            let (mut wal, replay) = Wal::open(dir.path(), WalOptions::default()).unwrap();
            assert_eq!(replay.records, vec![rec(1, "from v1"), rec(1, "appended")]);
            wal.append(1, b"again").unwrap();
            assert_eq!(wal.start_new_segment().unwrap(), 3);
        }
        assert_eq!(version(3), 1u32.to_le_bytes());
        let (_, replay) = Wal::open(dir.path(), v2).unwrap();
        assert_eq!(
            replay.records,
            vec![rec(1, "from v1"), rec(1, "appended"), rec(1, "again")]
        );
        // A version this build does not know is refused, not written.
        let bad = WalOptions {
            format_version: MAX_FORMAT_VERSION + 1,
            ..WalOptions::default()
        };
        assert!(matches!(
            Wal::open(dir.path(), bad),
            Err(WalError::UnsupportedVersion { .. })
        ));
    }

    #[test]
    fn open_from_skips_covered_segments_and_never_numbers_below_them() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
            for i in 0..3 {
                wal.append(1, format!("s{i}").as_bytes()).unwrap();
                wal.start_new_segment().unwrap();
            }
        }
        let mut seen = Vec::new();
        let (wal, opened) =
            Wal::open_from(dir.path(), WalOptions::default(), 2, |r| seen.push(r)).unwrap();
        assert_eq!(seen, vec![rec(1, "s1"), rec(1, "s2")]);
        assert_eq!(opened.skipped_segments, 1);
        assert_eq!(opened.first_replayed, Some(2));
        assert_eq!(opened.missing_segments, 0);
        assert_eq!(wal.segment(), 4);
        drop(wal);
        // Covered beyond what exists (the newer segments were lost): the
        // log continues at the covered number, not below it.
        let (mut wal, opened) =
            Wal::open_from(dir.path(), WalOptions::default(), 10, |_| {}).unwrap();
        assert_eq!(opened.skipped_segments, 4);
        assert_eq!(wal.segment(), 10);
        wal.append(1, b"after").unwrap();
        wal.commit().unwrap();
        drop(wal);
        fs::remove_file(segment_path(dir.path(), 3)).unwrap();
        let mut seen = Vec::new();
        let (_, opened) =
            Wal::open_from(dir.path(), WalOptions::default(), 2, |r| seen.push(r)).unwrap();
        assert_eq!(opened.missing_segments, 6);
        assert_eq!(seen, vec![rec(1, "s1"), rec(1, "after")]);
    }

    #[test]
    fn frames_built_in_place_equal_copied_ones() {
        let mut copied = b"before".to_vec();
        frame(3, b"payload", &mut copied).unwrap();
        let mut in_place = b"before".to_vec();
        let start = begin_frame(&mut in_place);
        in_place.extend_from_slice(b"payload");
        finish_frame(3, &mut in_place, start).unwrap();
        assert_eq!(in_place, copied);
        // An empty payload frames too.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        frame(1, b"", &mut a).unwrap();
        let start = begin_frame(&mut b);
        finish_frame(1, &mut b, start).unwrap();
        assert_eq!(a, b);
        // Over the limit: refused, and the buffer is as it was.
        let mut big = b"kept".to_vec();
        let start = begin_frame(&mut big);
        big.resize(start + FRAME_LEN + MAX_RECORD_BYTES + 1, 0);
        assert!(matches!(
            finish_frame(1, &mut big, start),
            Err(WalError::RecordTooLarge { .. })
        ));
        assert_eq!(big, b"kept");
    }

    #[test]
    fn truncation_removes_covered_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        wal.append(1, b"old").unwrap();
        let next = wal.start_new_segment().unwrap();
        wal.append(1, b"new").unwrap();
        wal.commit().unwrap();
        assert_eq!(wal.truncate_before(next).unwrap(), 1);
        drop(wal);
        let (_, replay) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(replay.records, vec![rec(1, "new")]);
    }
}
