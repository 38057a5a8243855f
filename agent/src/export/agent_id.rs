//! The agent's identity (`tocsin.agent.id`): generated once, kept in the
//! data directory, so the collector's deduplication by (agent, file id,
//! offset) and its list of known agents survive restarts.
//!
//! Invariants: the file is written atomically (temp file, fsync, rename,
//! fsync of the directory) and versioned (`v1 <id>`); an existing id is
//! never replaced: an unreadable or malformed file is an error that names
//! it, because a silently new id would defeat the collector's dedup.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use xxhash_rust::xxh64::xxh64;

const FILE: &str = "agent-id";

#[derive(Debug, thiserror::Error)]
pub enum AgentIdError {
    #[error("agent id file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "agent id file {path} is malformed (expected `v1 <32 hex digits>`); fix or remove it (removing makes this host a new agent)"
    )]
    Malformed { path: PathBuf },
}

/// The id stored in `data_dir`, created on first use.
pub fn load_or_create(data_dir: &Path) -> Result<String, AgentIdError> {
    let path = data_dir.join(FILE);
    let io_err = |path: &Path, source| AgentIdError::Io {
        path: path.to_path_buf(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().strip_prefix("v1 ").unwrap_or_default();
            if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(id.to_string())
            } else {
                Err(AgentIdError::Malformed { path })
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(data_dir).map_err(|e| io_err(data_dir, e))?;
            let id = generate();
            let tmp = data_dir.join(format!("{FILE}.tmp"));
            let mut f = fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
            f.write_all(format!("v1 {id}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io_err(&tmp, e))?;
            fs::rename(&tmp, &path).map_err(|e| io_err(&path, e))?;
            fs::File::open(data_dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err(data_dir, e))?;
            tracing::info!(agent_id = %id, path = %path.display(), "generated a new agent id");
            Ok(id)
        }
        Err(e) => Err(io_err(&path, e)),
    }
}

/// 128 bits from the clock, the process, the hostname and the address of
/// a stack variable, mixed by two seeded hashes. Unique enough for an id;
/// it is not a secret.
fn generate() -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let host = fs::read_to_string("/etc/hostname").unwrap_or_default();
    let marker = 0u8;
    let mut input = Vec::new();
    input.extend_from_slice(&now.to_le_bytes());
    input.extend_from_slice(&std::process::id().to_le_bytes());
    input.extend_from_slice(host.as_bytes());
    input.extend_from_slice(&(std::ptr::addr_of!(marker) as usize).to_le_bytes());
    format!("{:016x}{:016x}", xxh64(&input, 1), xxh64(&input, 2))
}

/// A number naming this process run, for telling this run's tailer batch
/// ids from a previous run's in the spool.
pub fn run_id() -> u64 {
    let id = generate();
    u64::from_str_radix(&id[..16], 16).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_created_once_and_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = load_or_create(&data).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(load_or_create(&data).unwrap(), first);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap(), first);
    }

    #[test]
    fn a_malformed_file_is_an_error_not_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), "garbage").unwrap();
        let err = load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, AgentIdError::Malformed { .. }));
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "garbage"
        );
    }
}
