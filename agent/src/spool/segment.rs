//! One segment file: a header (magic, format version, signal) followed by
//! checksummed records. Appends go to the end; a scan on open keeps the
//! records up to the first one that is short or fails its checksum and
//! truncates the file there, so a crash mid-append costs only that append.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{FORMAT_VERSION, Origin, Signal, SpoolError, from_unix_nanos, unix_nanos};

const MAGIC: &[u8; 8] = b"TOCSPOOL";
/// Magic, version u32, signal u8, three bytes reserved.
pub(super) const HEADER_LEN: u64 = 16;
/// len u32 and crc32 u32 before each body.
const FRAME_LEN: u64 = 8;
/// signal u8, flags u8, id u64, created u64, origin run u64, origin batch u64.
const BODY_META_LEN: usize = 34;
/// A record body larger than this is corruption, not data.
const MAX_BODY: u32 = 1 << 30;

/// Bytes a record with a payload of `payload_len` takes on disk.
pub(super) fn record_size(payload_len: usize) -> u64 {
    FRAME_LEN + BODY_META_LEN as u64 + payload_len as u64
}

pub(super) fn file_name(seq: u64, signal: Signal) -> String {
    format!("{seq:020}-{}.seg", signal.name())
}

pub(super) fn parse_name(name: &str) -> Option<(u64, Signal)> {
    let stem = name.strip_suffix(".seg")?;
    let (seq, signal) = stem.split_once('-')?;
    let signal = match signal {
        "logs" => Signal::Logs,
        "metrics" => Signal::Metrics,
        _ => return None,
    };
    Some((seq.parse().ok()?, signal))
}

/// What a record says about its batch, besides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecordHeader {
    pub id: u64,
    pub signal: Signal,
    pub created: SystemTime,
    pub origin: Option<Origin>,
}

/// A record found by a scan.
pub(super) struct Found {
    pub id: u64,
    pub offset: u64,
    pub len: u32,
}

pub(super) struct Scan {
    pub segment: Segment,
    pub records: Vec<Found>,
    pub cut_records: u64,
    pub cut_bytes: u64,
}

#[derive(Debug)]
pub(super) struct Segment {
    pub path: PathBuf,
    pub signal: Signal,
    /// Bytes in the file.
    pub size: u64,
    /// Batches in the file not yet removed.
    pub live: u64,
}

impl Segment {
    pub(super) fn create(
        path: &Path,
        _seq: u64,
        signal: Signal,
        fsync: bool,
    ) -> Result<Segment, SpoolError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| SpoolError::io(path, e))?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[12] = signal.code();
        file.write_all(&header)
            .map_err(|e| SpoolError::io(path, e))?;
        if fsync {
            file.sync_all().map_err(|e| SpoolError::io(path, e))?;
            // The new name must survive a crash too.
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| SpoolError::io(dir, e))?;
            }
        }
        Ok(Segment {
            path: path.to_path_buf(),
            signal,
            size: HEADER_LEN,
            live: 0,
        })
    }

    /// Reads every good record and cuts the file after the last one.
    pub(super) fn scan(path: &Path, _seq: u64, signal: Signal) -> Result<Scan, SpoolError> {
        let mut data = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut data))
            .map_err(|e| SpoolError::io(path, e))?;
        let mut records = Vec::new();
        if data.len() < HEADER_LEN as usize {
            // Created but the header never reached the disk: nothing in it.
            let cut = data.len() as u64;
            truncate(path, 0)?;
            let mut segment = Segment::rewrite_header(path, signal)?;
            segment.size = HEADER_LEN;
            return Ok(Scan {
                segment,
                records,
                cut_records: 0,
                cut_bytes: cut,
            });
        }
        if &data[..8] != MAGIC {
            return Err(SpoolError::NotASegment {
                path: path.to_path_buf(),
            });
        }
        let version = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
        if version != FORMAT_VERSION {
            return Err(SpoolError::Version {
                path: path.to_path_buf(),
                found: version,
            });
        }
        let mut pos = HEADER_LEN as usize;
        let mut cut_records = 0;
        while pos < data.len() {
            match parse_record(&data[pos..]) {
                Some((header, body_len)) if header.signal == signal => {
                    records.push(Found {
                        id: header.id,
                        offset: pos as u64,
                        len: body_len,
                    });
                    pos += FRAME_LEN as usize + body_len as usize;
                }
                _ => {
                    cut_records = 1;
                    break;
                }
            }
        }
        let cut_bytes = (data.len() - pos) as u64;
        if cut_bytes > 0 {
            truncate(path, pos as u64)?;
        }
        Ok(Scan {
            segment: Segment {
                path: path.to_path_buf(),
                signal,
                size: pos as u64,
                live: 0,
            },
            records,
            cut_records,
            cut_bytes,
        })
    }

    fn rewrite_header(path: &Path, signal: Signal) -> Result<Segment, SpoolError> {
        let _ = std::fs::remove_file(path);
        Segment::create(path, 0, signal, true)
    }

    /// Appends a record; returns its offset and body length.
    pub(super) fn append(
        &mut self,
        header: &RecordHeader,
        payload: &[u8],
        fsync: bool,
    ) -> Result<(u64, u32), SpoolError> {
        let mut body = Vec::with_capacity(BODY_META_LEN + payload.len());
        body.push(header.signal.code());
        body.push(u8::from(header.origin.is_some()));
        body.extend_from_slice(&header.id.to_le_bytes());
        body.extend_from_slice(&unix_nanos(header.created).to_le_bytes());
        let origin = header.origin.unwrap_or(Origin { run: 0, batch: 0 });
        body.extend_from_slice(&origin.run.to_le_bytes());
        body.extend_from_slice(&origin.batch.to_le_bytes());
        body.extend_from_slice(payload);
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| *l <= MAX_BODY)
            .ok_or_else(|| {
                SpoolError::io(
                    &self.path,
                    io::Error::new(io::ErrorKind::InvalidInput, "record larger than 1 GiB"),
                )
            })?;
        let mut frame = Vec::with_capacity(FRAME_LEN as usize + body.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        frame.extend_from_slice(&body);
        let mut file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| SpoolError::io(&self.path, e))?;
        let offset = self.size;
        if let Err(e) = file.write_all(&frame) {
            // Leave no partial record behind for the next append to follow.
            let _ = file.set_len(offset);
            return Err(SpoolError::io(&self.path, e));
        }
        if fsync {
            file.sync_data()
                .map_err(|e| SpoolError::io(&self.path, e))?;
        }
        self.size += frame.len() as u64;
        Ok((offset, len))
    }

    /// Reads the record at `offset`; `None` if it no longer checks out.
    pub(super) fn read(
        &self,
        offset: u64,
        len: u32,
    ) -> Result<Option<(RecordHeader, Vec<u8>)>, SpoolError> {
        let mut file = File::open(&self.path).map_err(|e| SpoolError::io(&self.path, e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| SpoolError::io(&self.path, e))?;
        let mut buf = vec![0u8; FRAME_LEN as usize + len as usize];
        match file.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(SpoolError::io(&self.path, e)),
        }
        Ok(parse_record(&buf).map(|(header, body_len)| {
            let start = FRAME_LEN as usize + BODY_META_LEN;
            let end = FRAME_LEN as usize + body_len as usize;
            (header, buf[start..end].to_vec())
        }))
    }
}

/// Parses one framed record at the start of `data`: its header and body
/// length, or `None` if it is short, too long or fails its checksum.
fn parse_record(data: &[u8]) -> Option<(RecordHeader, u32)> {
    let len = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?);
    let crc = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?);
    if len > MAX_BODY || (len as usize) < BODY_META_LEN {
        return None;
    }
    let body = data.get(FRAME_LEN as usize..FRAME_LEN as usize + len as usize)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?))
    };
    let signal = Signal::from_code(body[0])?;
    let has_origin = body[1] != 0;
    let id = u64_at(2)?;
    let created = from_unix_nanos(u64_at(10)?);
    let origin = has_origin.then_some(Origin {
        run: u64_at(18)?,
        batch: u64_at(26)?,
    });
    Some((
        RecordHeader {
            id,
            signal,
            created,
            origin,
        },
        len,
    ))
}

fn truncate(path: &Path, len: u64) -> Result<(), SpoolError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| {
            f.set_len(len)?;
            f.sync_all()
        })
        .map_err(|e| SpoolError::io(path, e))
}
