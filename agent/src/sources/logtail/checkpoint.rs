//! Checkpoints: per file incarnation, the offset up to which every record
//! was acknowledged by the collector (or filtered out, which needs no
//! acknowledgement). `AckTracker` keeps the records handed out in file order
//! and moves the offset only over a contiguous acknowledged prefix, so an
//! acknowledgement that arrives out of order never skips an unacknowledged
//! record. Records acknowledged past the first unacknowledged one are kept
//! as ranges in the checkpoint too, so that after a restart they are read
//! again but not sent again. `CheckpointFile` is the versioned on-disk form, written
//! atomically: temporary file, fsync, rename, fsync of the directory.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Version of the checkpoint file format.
pub const FORMAT_VERSION: u32 = 1;
/// File name inside the data directory.
pub const FILE_NAME: &str = "logtail-checkpoints.json";

/// Records of one incarnation handed out but not yet acknowledged, in file
/// order.
#[derive(Debug, Clone)]
pub struct AckTracker {
    acked: u64,
    /// `(end offset, acknowledged)`; records tile the file, so an entry
    /// starts where the one before it ends (the first at `acked`).
    /// Consecutive acknowledged entries are merged, so filtered runs cost
    /// one entry.
    pending: VecDeque<(u64, bool)>,
    /// Ranges past `acked` acknowledged before a restart, sorted: records
    /// inside them are read again but not sent again.
    restored: Vec<(u64, u64)>,
}

/// Acknowledged ranges kept per file in the checkpoint; past this, records
/// are sent again after a restart (and deduplicated by the collector).
pub const MAX_ACKED_RANGES: usize = 256;

impl AckTracker {
    pub fn new(offset: u64) -> Self {
        AckTracker {
            acked: offset,
            pending: VecDeque::new(),
            restored: Vec::new(),
        }
    }

    /// A tracker resuming from a checkpoint.
    pub fn restore(offset: u64, ranges: &[[u64; 2]]) -> Self {
        let mut restored: Vec<(u64, u64)> = ranges
            .iter()
            .filter(|[start, end]| start < end && *end > offset)
            .map(|[start, end]| (*start, *end))
            .collect();
        restored.sort_unstable();
        AckTracker {
            acked: offset,
            pending: VecDeque::new(),
            restored,
        }
    }

    /// Was the record `[start, end)` acknowledged before a restart?
    pub fn was_acked(&self, start: u64, end: u64) -> bool {
        self.restored.iter().any(|&(s, e)| s <= start && end <= e)
    }

    /// Does an acknowledged range from before the restart start or end at
    /// `offset`?
    pub fn is_restored_boundary(&self, offset: u64) -> bool {
        self.restored
            .iter()
            .any(|&(s, e)| s == offset || e == offset)
    }

    /// End of the last record pushed.
    fn tail(&self) -> u64 {
        self.pending.back().map_or(self.acked, |(end, _)| *end)
    }

    /// Acknowledged (or filtered) ranges past `acked`, merged, at most
    /// `MAX_ACKED_RANGES`.
    pub fn acked_ranges(&self) -> Vec<[u64; 2]> {
        let mut out: Vec<[u64; 2]> = Vec::new();
        let mut add = |start: u64, end: u64| match out.last_mut() {
            Some(last) if last[1] >= start => last[1] = last[1].max(end),
            _ => out.push([start, end]),
        };
        let mut prev = self.acked;
        for &(end, done) in &self.pending {
            if done {
                add(prev, end);
            }
            prev = end;
        }
        let tail = self.tail();
        for &(start, end) in &self.restored {
            if end > tail {
                add(start.max(tail), end);
            }
        }
        out.truncate(MAX_ACKED_RANGES);
        out
    }

    /// The offset before which everything is acknowledged.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Records handed out and not yet acknowledged.
    #[cfg(test)]
    pub fn unacked(&self) -> usize {
        self.pending.iter().filter(|(_, a)| !a).count()
    }

    pub fn is_settled(&self) -> bool {
        self.pending.is_empty()
    }

    /// A record ending at `end` was handed out (`done` false) or needs no
    /// acknowledgement (`done` true: filtered).
    pub fn push(&mut self, end: u64, done: bool) {
        match self.pending.back_mut() {
            Some((last, true)) if done => *last = end,
            _ => self.pending.push_back((end, done)),
        }
        self.advance();
    }

    /// Acknowledges the record ending at `end`; false when no such record
    /// is outstanding (already acknowledged, or unknown).
    pub fn ack(&mut self, end: u64) -> bool {
        let Ok(i) = self.pending.binary_search_by_key(&end, |(e, _)| *e) else {
            return false;
        };
        let Some(entry) = self.pending.get_mut(i) else {
            return false;
        };
        if entry.1 {
            return false;
        }
        entry.1 = true;
        self.advance();
        true
    }

    fn advance(&mut self) {
        while let Some(&(end, true)) = self.pending.front() {
            self.acked = end;
            self.pending.pop_front();
        }
        let acked = self.acked;
        self.restored.retain(|&(_, end)| end > acked);
    }
}

/// One incarnation in the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCheckpoint {
    /// `tocsin.file.id` of the incarnation.
    pub id: String,
    /// Last path it was seen at.
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Length of the fingerprinted prefix.
    pub fp_len: u64,
    /// xxh64 of the prefix, hex.
    pub fp_hash: String,
    /// Acknowledged offset: reading resumes here.
    pub offset: u64,
    /// `[start, end)` ranges past `offset` already acknowledged (or
    /// filtered): read again after a restart, not sent again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acked_after: Vec<[u64; 2]>,
    /// The incarnation's file was truncated or deleted: it is kept only so
    /// that a copy of it can be recognised and continued.
    pub retired: bool,
    /// Unix seconds when a file of this incarnation was last seen.
    pub last_seen: u64,
}

/// The checkpoint file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointFile {
    pub version: u32,
    /// Highest incarnation generation handed out, so ids stay unique
    /// across restarts.
    pub generation: u64,
    /// Names of the inputs scanned at least once: the files an input finds
    /// at its first scan are old news (`read_from: end`), later ones new.
    #[serde(default)]
    pub inputs: Vec<String>,
    pub files: Vec<FileCheckpoint>,
}

/// Failure to read or write checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoints {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoints {path} are not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "checkpoints {path} have format version {found}; this agent reads version {FORMAT_VERSION}"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot write checkpoints {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CheckpointFile {
    /// Reads the checkpoints in `dir`; `None` when there are none yet (the
    /// agent's first start).
    pub fn load(dir: &Path) -> Result<Option<CheckpointFile>, CheckpointError> {
        let path = dir.join(FILE_NAME);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Read { path, source }),
        };
        #[derive(Deserialize)]
        struct Versioned {
            version: u32,
        }
        let version: Versioned =
            serde_json::from_slice(&bytes).map_err(|source| CheckpointError::Parse {
                path: path.clone(),
                source,
            })?;
        if version.version != FORMAT_VERSION {
            return Err(CheckpointError::Version {
                path,
                found: version.version,
            });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| CheckpointError::Parse { path, source })
    }

    /// Writes atomically: a reader (or a crash) sees the old file or the
    /// new one, never a mix.
    pub fn store(&self, dir: &Path) -> Result<(), CheckpointError> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let write = || -> std::io::Result<()> {
            let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &path)?;
            // The rename is durable only once the directory is synced.
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|source| CheckpointError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_moves_only_over_a_contiguous_prefix() {
        let mut t = AckTracker::new(0);
        t.push(10, false);
        t.push(20, false);
        t.push(30, true); // filtered
        t.push(40, false);
        assert_eq!(t.acked(), 0);
        assert!(t.ack(20));
        assert_eq!(t.acked(), 0, "record 10 is not acknowledged yet");
        assert!(t.ack(10));
        assert_eq!(t.acked(), 30, "filtered record is passed too");
        assert!(!t.ack(20), "twice");
        assert!(!t.ack(35), "unknown");
        assert_eq!(t.unacked(), 1);
        assert!(t.ack(40));
        assert_eq!(t.acked(), 40);
        assert!(t.is_settled());
    }

    #[test]
    fn acknowledged_ranges_past_a_gap_survive_a_restart() {
        let mut t = AckTracker::new(0);
        for end in [10, 20, 30, 40, 50] {
            t.push(end, false);
        }
        t.ack(20);
        t.ack(30);
        t.ack(50);
        assert_eq!(t.acked(), 0);
        let ranges = t.acked_ranges();
        assert_eq!(ranges, [[10, 30], [40, 50]]);
        let mut r = AckTracker::restore(t.acked(), &ranges);
        assert!(!r.was_acked(0, 10));
        assert!(r.was_acked(10, 20) && r.was_acked(20, 30) && r.was_acked(40, 50));
        assert!(!r.was_acked(30, 40));
        assert!(!r.was_acked(25, 35), "partly acknowledged is sent again");
        // Re-reading: the first record goes out, the next two are skipped.
        r.push(10, false);
        r.push(20, true);
        // Not yet re-read ranges stay in the checkpoint.
        assert_eq!(r.acked_ranges(), [[10, 30], [40, 50]]);
        r.ack(10);
        assert_eq!(r.acked(), 20);
        assert_eq!(r.acked_ranges(), [[20, 30], [40, 50]]);
    }

    #[test]
    fn filtered_runs_merge() {
        let mut t = AckTracker::new(5);
        t.push(10, false);
        for end in 11..1000 {
            t.push(end, true);
        }
        assert_eq!(t.pending.len(), 2);
        t.ack(10);
        assert_eq!(t.acked(), 999);
    }

    #[test]
    fn store_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CheckpointFile::load(dir.path()).unwrap(), None);
        let file = CheckpointFile {
            version: FORMAT_VERSION,
            generation: 7,
            inputs: vec!["api".into()],
            files: vec![FileCheckpoint {
                id: "1-2-3".into(),
                path: "/var/log/a.log".into(),
                dev: 1,
                ino: 2,
                fp_len: 10,
                fp_hash: "ab".into(),
                offset: 42,
                acked_after: vec![[50, 60]],
                retired: false,
                last_seen: 100,
            }],
        };
        file.store(dir.path()).unwrap();
        assert_eq!(
            CheckpointFile::load(dir.path()).unwrap(),
            Some(file.clone())
        );
        assert!(!dir.path().join(format!("{FILE_NAME}.tmp")).exists());
        let text = fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
    }

    #[test]
    fn other_versions_and_junk_are_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(FILE_NAME),
            r#"{"version": 2, "future": true}"#,
        )
        .unwrap();
        let err = CheckpointFile::load(dir.path()).unwrap_err();
        assert!(
            matches!(err, CheckpointError::Version { found: 2, .. }),
            "{err}"
        );
        fs::write(dir.path().join(FILE_NAME), "not json").unwrap();
        let err = CheckpointFile::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(FILE_NAME), "{err}");
    }
}
