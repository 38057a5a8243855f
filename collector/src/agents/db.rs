//! The agent inventory's database: one row per known agent (id, host and
//! service name, version, interval, address, first and last seen, last
//! clock-skew estimate), in SQLite under the data directory
//! (`agents.sqlite`), so that a restarted collector still knows which
//! agents should be reporting.
//!
//! The file is opened as [`crate::sqlite`] opens every one: the schema is
//! versioned ([`MIGRATIONS`] brings an older file up to date, a file
//! written by a newer Tocsin is refused rather than misread). Writes use the WAL journal with
//! `synchronous=NORMAL`: a committed row survives a killed process.

use std::path::Path;

use rusqlite::{Connection, params};

use crate::sqlite::{self, OpenError, Schema};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Statements that bring the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["CREATE TABLE agent (
        id TEXT PRIMARY KEY NOT NULL,
        host_name TEXT NOT NULL,
        service_name TEXT NOT NULL,
        version TEXT NOT NULL,
        interval_ms INTEGER NOT NULL,
        address TEXT NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL,
        clock_skew_seconds REAL
    )"];

const SCHEMA: Schema = Schema {
    what: "agent database",
    version: SCHEMA_VERSION,
    migrations: MIGRATIONS,
};

/// Why the agent database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AgentDbError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("agent database {path}: {source}")]
    Sql {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
}

/// Skipped rows logged one by one at most; the rest are only counted.
const MAX_SKIPPED_LOGGED: usize = 10;

/// What [`AgentDb::load`] read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadedAgents {
    /// Most recently seen first.
    pub agents: Vec<StoredAgent>,
    /// Rows that could not be used (logged, left in the file).
    pub skipped: usize,
}

/// One row from column 1 on (column 0 is the rowid).
fn read_agent(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAgent> {
    Ok(StoredAgent {
        id: r.get(1)?,
        host_name: r.get(2)?,
        service_name: r.get(3)?,
        version: r.get(4)?,
        interval_ms: r.get(5)?,
        address: r.get(6)?,
        first_seen_ms: r.get(7)?,
        last_seen_ms: r.get(8)?,
        clock_skew_seconds: r.get(9)?,
    })
}

/// One agent as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAgent {
    pub id: String,
    /// Empty when the agent did not say.
    pub host_name: String,
    pub service_name: String,
    pub version: String,
    pub interval_ms: i64,
    /// The IP address its last accepted request came from; empty when
    /// unknown.
    pub address: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Positive: the agent's clock is ahead.
    pub clock_skew_seconds: Option<f64>,
}

/// The agent database.
#[derive(Debug)]
pub struct AgentDb {
    conn: Connection,
    path: String,
}

impl AgentDb {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<AgentDb, AgentDbError> {
        Ok(AgentDb {
            conn: SCHEMA.open(path)?,
            path: path.display().to_string(),
        })
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<AgentDb, AgentDbError> {
        Ok(AgentDb {
            conn: SCHEMA.open_in_memory()?,
            path: ":memory:".into(),
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> AgentDbError + '_ {
        |source| AgentDbError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// The file it was opened from (`:memory:` for tests).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, AgentDbError> {
        sqlite::schema_version(&self.conn).map_err(self.sql())
    }

    /// Every stored agent, most recently seen first. A row that cannot be
    /// used (a value of the wrong type, an interval out of range) is
    /// skipped, counted and logged with its rowid and id: it stays in the
    /// file (a later write of the same agent replaces it) and the rest
    /// load. Only a failure to read the table at all is an error.
    pub fn load(&self) -> Result<LoadedAgents, AgentDbError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT rowid, id, host_name, service_name, version, interval_ms, address,
                        first_seen_ms, last_seen_ms, clock_skew_seconds
                 FROM agent ORDER BY last_seen_ms DESC, id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                // A conversion error belongs to this row only; an error
                // here (the rowid) is a failure of the table.
                let rowid: i64 = r.get(0)?;
                Ok((rowid, r.get::<_, String>(1).ok(), read_agent(r)))
            })
            .map_err(self.sql())?;
        let mut out = LoadedAgents::default();
        for row in rows {
            let (rowid, id, agent) = row.map_err(self.sql())?;
            let checked = agent.map_err(|e| e.to_string()).and_then(|a| {
                if a.interval_ms > 0 {
                    Ok(a)
                } else {
                    Err(format!(
                        "interval_ms {} is not valid (want a positive number)",
                        a.interval_ms
                    ))
                }
            });
            match checked {
                Ok(a) => out.agents.push(a),
                Err(why) => {
                    out.skipped += 1;
                    if out.skipped <= MAX_SKIPPED_LOGGED {
                        tracing::warn!(
                            file = %self.path,
                            rowid,
                            agent = id.as_deref().unwrap_or("(unreadable)"),
                            "agent database row skipped: {why}"
                        );
                    }
                }
            }
        }
        if out.skipped > MAX_SKIPPED_LOGGED {
            tracing::warn!(
                file = %self.path,
                skipped = out.skipped,
                "agent database rows skipped; only the first {MAX_SKIPPED_LOGGED} logged"
            );
        }
        Ok(out)
    }

    /// Inserts or replaces `upsert` and deletes the agents `delete`, in one
    /// transaction.
    pub fn save(&mut self, upsert: &[StoredAgent], delete: &[String]) -> Result<(), AgentDbError> {
        if upsert.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let sql = |source| AgentDbError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO agent (id, host_name, service_name, version, interval_ms, address,
                                        first_seen_ms, last_seen_ms, clock_skew_seconds)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (id) DO UPDATE SET
                        host_name = excluded.host_name,
                        service_name = excluded.service_name,
                        version = excluded.version,
                        interval_ms = excluded.interval_ms,
                        address = excluded.address,
                        first_seen_ms = excluded.first_seen_ms,
                        last_seen_ms = excluded.last_seen_ms,
                        clock_skew_seconds = excluded.clock_skew_seconds",
                )
                .map_err(sql)?;
            for a in upsert {
                put.execute(params![
                    a.id,
                    a.host_name,
                    a.service_name,
                    a.version,
                    a.interval_ms,
                    a.address,
                    a.first_seen_ms,
                    a.last_seen_ms,
                    a.clock_skew_seconds,
                ])
                .map_err(sql)?;
            }
            let mut del = tx
                .prepare_cached("DELETE FROM agent WHERE id = ?1")
                .map_err(sql)?;
            for id in delete {
                del.execute(params![id]).map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Deletes one agent; whether it was stored.
    pub fn delete(&mut self, id: &str) -> Result<bool, AgentDbError> {
        let n = self
            .conn
            .execute("DELETE FROM agent WHERE id = ?1", params![id])
            .map_err(self.sql())?;
        Ok(n > 0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn agent(id: &str, last: i64) -> StoredAgent {
        StoredAgent {
            id: id.into(),
            host_name: format!("host-{id}"),
            service_name: "host".into(),
            version: "0.1.0".into(),
            interval_ms: 10_000,
            address: "10.0.0.1".into(),
            first_seen_ms: 5,
            last_seen_ms: last,
            clock_skew_seconds: Some(-0.25),
        }
    }

    #[test]
    fn rows_survive_reopen_and_are_replaced_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents.sqlite");
        {
            let mut db = AgentDb::open(&path).unwrap();
            db.save(&[agent("a", 10), agent("b", 20)], &[]).unwrap();
            let mut a = agent("a", 30);
            a.clock_skew_seconds = None;
            a.version = "0.2.0".into();
            db.save(&[a, agent("c", 1)], &["b".to_string()]).unwrap();
        }
        let mut db = AgentDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        let got = db.load().unwrap().agents;
        let ids: Vec<&str> = got.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(got[0].version, "0.2.0");
        assert_eq!(got[0].clock_skew_seconds, None);
        assert_eq!(got[1], agent("c", 1));
        assert!(db.delete("c").unwrap());
        assert!(!db.delete("c").unwrap());
        assert_eq!(db.load().unwrap().agents.len(), 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents.sqlite");
        drop(AgentDb::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        drop(conn);
        let e = AgentDb::open(&path).unwrap_err();
        assert!(
            matches!(e, AgentDbError::Open(OpenError::TooNew { found: 99, .. })),
            "{e}"
        );
    }

    #[test]
    fn unusable_rows_are_skipped_and_counted_and_the_rest_load() {
        let mut db = AgentDb::in_memory().unwrap();
        let mut zero = agent("zero-interval", 3);
        zero.interval_ms = 0;
        db.save(&[agent("a", 1), zero, agent("b", 2)], &[]).unwrap();
        // Values of the wrong type, as a damaged or hand-edited file holds.
        db.conn
            .execute(
                "INSERT INTO agent VALUES ('text-interval', 'h', 's', 'v', 'soon', '', 0, 4, NULL)",
                [],
            )
            .unwrap();
        db.conn
            .execute(
                "INSERT INTO agent VALUES (x'00ff', 'h', 's', 'v', 10, '', 0, 5, 'skew')",
                [],
            )
            .unwrap();
        let got = db.load().unwrap();
        assert_eq!(got.skipped, 3);
        assert_eq!(got.agents, [agent("b", 2), agent("a", 1)]);
        // A later write of the agent replaces the bad row.
        db.save(&[agent("zero-interval", 6)], &[]).unwrap();
        let got = db.load().unwrap();
        assert_eq!((got.agents.len(), got.skipped), (3, 2));
    }
}
