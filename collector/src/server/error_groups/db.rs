//! The error groups' database: one row per group (id, founding order,
//! template, count, first and last seen, hosts, newest lines, whether it
//! is announced as new), in SQLite under the data directory, so that a
//! restarted collector continues every group's count, first-seen time and
//! id instead of starting afresh.
//!
//! The file is opened as [`crate::sqlite`] opens every one: the schema is
//! versioned ([`MIGRATIONS`] brings an older file up to date, a file
//! written by a newer Tocsin is refused rather than misread). Groups are written in batches (only those changed
//! since the last batch, in one transaction) with the WAL journal and
//! `synchronous=NORMAL`: a killed process loses at most the changes since
//! the last batch.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::patterns::GroupId;
use crate::sqlite::{self, OpenError, Schema};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Statements that bring the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["CREATE TABLE error_group (
        id TEXT PRIMARY KEY NOT NULL,
        seq INTEGER NOT NULL,
        template TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        hosts TEXT NOT NULL,
        samples TEXT NOT NULL,
        announce INTEGER NOT NULL
    )"];

const SCHEMA: Schema = Schema {
    what: "error-group database",
    version: SCHEMA_VERSION,
    migrations: MIGRATIONS,
};

/// Why the error-group database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ErrorGroupDbError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("error-group database {path}: {source}")]
    Sql {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// Skipped rows logged one by one at most; the rest are only counted.
const MAX_SKIPPED_LOGGED: usize = 10;

/// What [`ErrorGroupDb::load`] read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedGroups {
    /// In founding order.
    pub groups: Vec<StoredGroup>,
    /// Rows that could not be read (logged, left in the file).
    pub skipped: usize,
    /// Why the first of them could not.
    pub first_skip_reason: Option<String>,
}

/// One row from column 1 on (column 0 is the rowid), or why it cannot be
/// used.
fn read_group(r: &rusqlite::Row<'_>) -> Result<StoredGroup, String> {
    let id: String = r.get(1).map_err(|e| e.to_string())?;
    let seq: i64 = r.get(2).map_err(|e| e.to_string())?;
    let template: String = r.get(3).map_err(|e| e.to_string())?;
    let count: i64 = r.get(4).map_err(|e| e.to_string())?;
    let first_seen_ms: i64 = r.get(5).map_err(|e| e.to_string())?;
    let last_seen_ms: i64 = r.get(6).map_err(|e| e.to_string())?;
    let hosts: String = r.get(7).map_err(|e| e.to_string())?;
    let samples: String = r.get(8).map_err(|e| e.to_string())?;
    let announce: bool = r.get(9).map_err(|e| e.to_string())?;
    let gid: GroupId = id.parse().map_err(|e| format!("{e}"))?;
    if gid == GroupId::OVERFLOW {
        return Err("the overflow group is never stored".into());
    }
    let list = |field: &str, json: &str| {
        serde_json::from_str::<Vec<String>>(json)
            .map_err(|e| format!("{field}: {e} (want a JSON array of strings)"))
    };
    Ok(StoredGroup {
        id: gid,
        seq: u64::try_from(seq).map_err(|_| format!("seq {seq} is negative"))?,
        template,
        count: u64::try_from(count).map_err(|_| format!("count {count} is negative"))?,
        first_seen_ms,
        last_seen_ms,
        hosts: list("hosts", &hosts)?,
        samples: list("samples", &samples)?,
        announce,
    })
}

/// One group as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    pub id: GroupId,
    /// Founding order: groups are restored into the miner in this order,
    /// so that ties between equally similar groups resolve as before.
    pub seq: u64,
    pub template: String,
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub hosts: Vec<String>,
    /// Newest first.
    pub samples: Vec<String>,
    /// Founded after the warm-up: `tocsin_error_group_new` shows it for
    /// `new_for` after its first-seen time.
    pub announce: bool,
}

/// The error-group database.
#[derive(Debug)]
pub struct ErrorGroupDb {
    conn: Connection,
    path: String,
}

impl ErrorGroupDb {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<ErrorGroupDb, ErrorGroupDbError> {
        Ok(ErrorGroupDb {
            conn: SCHEMA.open(path)?,
            path: path.display().to_string(),
        })
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<ErrorGroupDb, ErrorGroupDbError> {
        Ok(ErrorGroupDb {
            conn: SCHEMA.open_in_memory()?,
            path: ":memory:".into(),
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> ErrorGroupDbError + '_ {
        |source| ErrorGroupDbError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// The file it was opened from (`:memory:` for tests).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, ErrorGroupDbError> {
        sqlite::schema_version(&self.conn).map_err(self.sql())
    }

    /// Every stored group in founding order. A row that cannot be read (a
    /// value of the wrong type, an invalid id or list) is skipped, counted
    /// and logged with its rowid and id: it stays in the file (a later
    /// write of the same group replaces it) and the rest load. Only a
    /// failure to read the table at all is an error.
    pub fn load(&self) -> Result<LoadedGroups, ErrorGroupDbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT rowid, id, seq, template, count, first_seen_ms, last_seen_ms, hosts,
                        samples, announce
                 FROM error_group ORDER BY seq, id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                // A conversion error belongs to this row only; an error
                // here (the rowid) is a failure of the table.
                let rowid: i64 = r.get(0)?;
                Ok((rowid, r.get::<_, String>(1).ok(), read_group(r)))
            })
            .map_err(self.sql())?;
        let mut out = LoadedGroups::default();
        for row in rows {
            let (rowid, id, group) = row.map_err(self.sql())?;
            match group {
                Ok(g) => out.groups.push(g),
                Err(why) => {
                    out.skipped += 1;
                    if out.skipped <= MAX_SKIPPED_LOGGED {
                        tracing::warn!(
                            file = %self.path,
                            rowid,
                            group = id.as_deref().unwrap_or("(unreadable)"),
                            "error-group database row skipped: {why}"
                        );
                    }
                    out.first_skip_reason.get_or_insert_with(|| {
                        format!(
                            "row {rowid} ({}): {why}",
                            id.as_deref().unwrap_or("unreadable id")
                        )
                    });
                }
            }
        }
        if out.skipped > MAX_SKIPPED_LOGGED {
            tracing::warn!(
                file = %self.path,
                skipped = out.skipped,
                "error-group database rows skipped; only the first {MAX_SKIPPED_LOGGED} logged"
            );
        }
        Ok(out)
    }

    /// Writes `groups` (inserting or replacing by id) in one transaction.
    pub fn save(&mut self, groups: &[StoredGroup]) -> Result<(), ErrorGroupDbError> {
        let path = self.path.clone();
        let sql = |source| ErrorGroupDbError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO error_group
                       (id, seq, template, count, first_seen_ms, last_seen_ms, hosts, samples, announce)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (id) DO UPDATE SET
                       seq = excluded.seq, template = excluded.template, count = excluded.count,
                       first_seen_ms = excluded.first_seen_ms, last_seen_ms = excluded.last_seen_ms,
                       hosts = excluded.hosts, samples = excluded.samples, announce = excluded.announce",
                )
                .map_err(sql)?;
            for g in groups {
                // A list of strings always serialises.
                let hosts = serde_json::Value::from(g.hosts.clone()).to_string();
                let samples = serde_json::Value::from(g.samples.clone()).to_string();
                stmt.execute(params![
                    g.id.to_string(),
                    i64::try_from(g.seq).unwrap_or(i64::MAX),
                    g.template,
                    i64::try_from(g.count).unwrap_or(i64::MAX),
                    g.first_seen_ms,
                    g.last_seen_ms,
                    hosts,
                    samples,
                    g.announce,
                ])
                .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn group(id: &str, seq: u64, count: u64) -> StoredGroup {
        StoredGroup {
            id: id.parse().unwrap(),
            seq,
            template: format!("disk <*> failed {seq}"),
            count,
            first_seen_ms: 10,
            last_seen_ms: 20 + count as i64,
            hosts: vec!["a".into(), "b \"q\"".into()],
            samples: vec!["disk 3 failed".into(), "disk 2 failed é".into()],
            announce: seq.is_multiple_of(2),
        }
    }

    #[test]
    fn groups_survive_reopen_in_founding_order_and_are_replaced_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error_groups.sqlite");
        {
            let mut db = ErrorGroupDb::open(&path).unwrap();
            db.save(&[
                group("00000000000000b2", 1, 1),
                group("00000000000000a1", 0, 5),
            ])
            .unwrap();
            db.save(&[group("00000000000000b2", 1, 7)]).unwrap();
        }
        let db = ErrorGroupDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(
            db.load().unwrap().groups,
            vec![
                group("00000000000000a1", 0, 5),
                group("00000000000000b2", 1, 7)
            ]
        );
    }

    #[test]
    fn a_newer_schema_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error_groups.sqlite");
        drop(ErrorGroupDb::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        drop(conn);
        match ErrorGroupDb::open(&path) {
            Err(e @ ErrorGroupDbError::Open(OpenError::TooNew { found: 99, .. })) => {
                assert!(e.to_string().contains("error_groups.sqlite"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unreadable_rows_are_skipped_and_counted_and_the_rest_load() {
        let mut db = ErrorGroupDb::in_memory().unwrap();
        db.save(&[
            group("00000000000000a1", 0, 5),
            group("00000000000000b2", 3, 7),
        ])
        .unwrap();
        for bad in [
            "('nothex', 1, 't', 1, 0, 0, '[]', '[]', 0)",
            "('00000000000000c3', 2, 't', 'many', 0, 0, '[]', '[]', 0)",
            "('00000000000000d4', 4, 't', 1, 0, 0, '{not json', '[]', 0)",
            "(x'00ff', 5, 't', 1, 0, 0, '[]', '[]', 0)",
        ] {
            db.conn
                .execute(&format!("INSERT INTO error_group VALUES {bad}"), [])
                .unwrap();
        }
        let got = db.load().unwrap();
        assert_eq!(
            got.groups,
            [
                group("00000000000000a1", 0, 5),
                group("00000000000000b2", 3, 7)
            ]
        );
        assert_eq!(got.skipped, 4);
        let first = got.first_skip_reason.unwrap();
        assert!(
            first.contains("nothex") && first.contains("16 hex digits"),
            "{first}"
        );
        // A later write of the same group replaces the bad row.
        db.save(&[group("00000000000000c3", 2, 1)]).unwrap();
        assert_eq!(db.load().unwrap().skipped, 3);
    }
}
