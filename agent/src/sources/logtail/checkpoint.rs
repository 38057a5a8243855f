//! Checkpoints: per file incarnation, the offset up to which every record
//! was acknowledged by the collector (or filtered out, which needs no
//! acknowledgement). `AckTracker` keeps the records handed out in file order
//! and moves the offset only over a contiguous acknowledged prefix, so an
//! acknowledgement that arrives out of order never skips an unacknowledged
//! record. `CheckpointFile` is the versioned on-disk form, written
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
    /// `(end offset, acknowledged)`; consecutive acknowledged entries are
    /// merged, so filtered runs cost one entry.
    pending: VecDeque<(u64, bool)>,
}

impl AckTracker {
    pub fn new(offset: u64) -> Self {
        AckTracker {
            acked: offset,
            pending: VecDeque::new(),
        }
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
            files: vec![FileCheckpoint {
                id: "1-2-3".into(),
                path: "/var/log/a.log".into(),
                dev: 1,
                ino: 2,
                fp_len: 10,
                fp_hash: "ab".into(),
                offset: 42,
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
