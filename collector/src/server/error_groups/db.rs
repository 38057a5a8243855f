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
    #[error("error-group database {path}: row {id:?}: {what}")]
    Row {
        path: String,
        id: String,
        what: String,
    },
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

    /// Every stored group in founding order. A row that cannot be read
    /// (an invalid id or list) is an error naming it.
    pub fn load(&self) -> Result<Vec<StoredGroup>, ErrorGroupDbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, seq, template, count, first_seen_ms, last_seen_ms, hosts, samples, announce
                 FROM error_group ORDER BY seq, id",
            )
            .map_err(self.sql())?;
        type Row = (String, i64, String, i64, i64, i64, String, String, bool);
        let rows = stmt
            .query_map([], |r| {
                Ok::<Row, _>((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, seq, template, count, first, last, hosts, samples, announce) =
                row.map_err(self.sql())?;
            let bad = |what: String| ErrorGroupDbError::Row {
                path: self.path.clone(),
                id: id.clone(),
                what,
            };
            let gid: GroupId = id.parse().map_err(|e| bad(format!("{e}")))?;
            if gid == GroupId::OVERFLOW {
                return Err(bad("the overflow group is never stored".into()));
            }
            let list = |field: &str, json: &str| {
                serde_json::from_str::<Vec<String>>(json)
                    .map_err(|e| bad(format!("{field}: {e} (want a JSON array of strings)")))
            };
            out.push(StoredGroup {
                id: gid,
                seq: u64::try_from(seq).map_err(|_| bad(format!("seq {seq} is negative")))?,
                template,
                count: u64::try_from(count)
                    .map_err(|_| bad(format!("count {count} is negative")))?,
                first_seen_ms: first,
                last_seen_ms: last,
                hosts: list("hosts", &hosts)?,
                samples: list("samples", &samples)?,
                announce,
            });
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
            db.load().unwrap(),
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
    fn an_unreadable_row_is_an_error_naming_it() {
        let db = ErrorGroupDb::in_memory().unwrap();
        db.conn
            .execute(
                "INSERT INTO error_group VALUES ('nothex', 0, 't', 1, 0, 0, '[]', '[]', 0)",
                [],
            )
            .unwrap();
        let e = db.load().unwrap_err().to_string();
        assert!(
            e.contains("\"nothex\"") && e.contains("16 hex digits"),
            "{e}"
        );
    }
}
