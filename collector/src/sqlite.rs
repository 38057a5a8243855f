//! The SQLite files under the data directory (the ruler's alert state, the
//! agent inventory, the error groups) are opened one way: a busy timeout,
//! the WAL journal with `synchronous=NORMAL` (a committed row survives a
//! killed process), and a versioned schema. A `schema_version` table with
//! one `version` row holds the version; [`Schema::migrations`] bring an
//! older file up to date in one transaction, and a file written by a newer
//! Tocsin is refused rather than misread.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

/// One database's schema: what messages call it, the version this build
/// writes and how to get there.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// How messages name the database, e.g. `"agent database"`.
    pub what: &'static str,
    /// The schema version this build writes.
    pub version: i64,
    /// Statements that bring the schema from version `i` to `i + 1`.
    pub migrations: &'static [&'static str],
}

/// Why a database could not be opened or brought to [`Schema::version`].
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{what} {path}: {source}")]
    Sql {
        what: &'static str,
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{what} {path} has schema version {found}, newer than this Tocsin's {supported}")]
    TooNew {
        what: &'static str,
        path: String,
        found: i64,
        supported: i64,
    },
}

impl Schema {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(&self, path: &Path) -> Result<Connection, OpenError> {
        let shown = path.display().to_string();
        let conn = Connection::open(path).map_err(|source| self.sql(&shown, source))?;
        self.init(conn, &shown)
    }

    /// An in-memory database (tests, or running without persistence),
    /// named `:memory:` in messages.
    pub fn open_in_memory(&self) -> Result<Connection, OpenError> {
        let conn = Connection::open_in_memory().map_err(|source| self.sql(":memory:", source))?;
        self.init(conn, ":memory:")
    }

    fn sql(&self, path: &str, source: rusqlite::Error) -> OpenError {
        OpenError::Sql {
            what: self.what,
            path: path.to_string(),
            source,
        }
    }

    fn init(&self, mut conn: Connection, shown: &str) -> Result<Connection, OpenError> {
        let sql = |source| self.sql(shown, source);
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        // `journal_mode` answers with the mode in effect: read it as a row.
        let _mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(sql)?;
        conn.execute_batch("PRAGMA synchronous=NORMAL")
            .map_err(sql)?;
        self.migrate(&mut conn, shown)?;
        Ok(conn)
    }

    fn migrate(&self, conn: &mut Connection, shown: &str) -> Result<(), OpenError> {
        let sql = |source| self.sql(shown, source);
        let tx = conn.transaction().map_err(sql)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(sql)?;
        let current: Option<i64> = tx
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        let current = match current {
            Some(v) => v,
            None => {
                tx.execute("INSERT INTO schema_version (version) VALUES (0)", [])
                    .map_err(sql)?;
                0
            }
        };
        if current > self.version {
            return Err(OpenError::TooNew {
                what: self.what,
                path: shown.to_string(),
                found: current,
                supported: self.version,
            });
        }
        for (i, step) in self.migrations.iter().enumerate() {
            let to = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
            if to > current {
                tx.execute_batch(step).map_err(sql)?;
            }
        }
        tx.execute("UPDATE schema_version SET version = ?1", [self.version])
            .map_err(sql)?;
        tx.commit().map_err(sql)
    }
}

/// The schema version of an open database.
pub fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT version FROM schema_version", [], |r| r.get(0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    const SCHEMA: Schema = Schema {
        what: "test database",
        version: 2,
        migrations: &[
            "CREATE TABLE a (x INTEGER NOT NULL)",
            "CREATE TABLE b (y INTEGER NOT NULL)",
        ],
    };

    #[test]
    fn an_older_file_is_migrated_and_a_newer_one_refused_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL);
             INSERT INTO schema_version VALUES (1);
             CREATE TABLE a (x INTEGER NOT NULL);",
        )
        .unwrap();
        drop(conn);
        let conn = SCHEMA.open(&path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), 2);
        conn.execute("INSERT INTO b (y) VALUES (1)", []).unwrap();
        conn.execute("UPDATE schema_version SET version = 3", [])
            .unwrap();
        drop(conn);
        match SCHEMA.open(&path) {
            Err(e @ OpenError::TooNew { found: 3, .. }) => assert_eq!(
                e.to_string(),
                format!(
                    "test database {} has schema version 3, newer than this Tocsin's 2",
                    path.display()
                )
            ),
            other => panic!("{other:?}"),
        }
    }
}
