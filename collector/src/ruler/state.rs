//! The alert state kept across restarts: one row per rule group (file and
//! name) holding the group's [`GroupAlertState`] as JSON, written after
//! every evaluation and read when the group starts, so a pending alert
//! keeps its `for` progress and a firing one its `keep_firing_for`.
//!
//! The SQLite file is opened as [`crate::sqlite`] opens every one: its
//! schema versioned from the start ([`MIGRATIONS`] brings any older file up
//! to date, a file written by a newer Tocsin is refused rather than
//! misread), writes in the WAL journal with `synchronous=NORMAL`: a
//! committed row survives a killed process (the acceptance's `kill -9`);
//! after a power loss the newest evaluation's state may be lost, which
//! only delays an alert by one interval.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use tocsin_rules::group::GroupAlertState;

use crate::sqlite::{self, OpenError, Schema};

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Statements that bring the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["CREATE TABLE alert_state (
        file TEXT NOT NULL,
        group_name TEXT NOT NULL,
        saved_at_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (file, group_name)
    )"];

const SCHEMA: Schema = Schema {
    what: "alert state database",
    version: SCHEMA_VERSION,
    migrations: MIGRATIONS,
};

/// Why the state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("alert state database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("alert state of group {group:?} in {file}: {source}")]
    Decode {
        file: String,
        group: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot encode alert state: {0}")]
    Encode(#[source] serde_json::Error),
}

/// A saved group state with when it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedState {
    pub saved_at_ms: i64,
    pub state: GroupAlertState,
}

/// The alert state database.
#[derive(Debug)]
pub struct StateDb {
    conn: Connection,
}

impl StateDb {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<StateDb, StateError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            // A missing data directory is created like the WAL's; an error
            // here surfaces as the open error below.
            let _ = std::fs::create_dir_all(parent);
        }
        let conn = SCHEMA.open(path)?;
        Ok(StateDb { conn })
    }

    /// An in-memory database (tests, or running without persistence).
    pub fn in_memory() -> Result<StateDb, StateError> {
        let conn = SCHEMA.open_in_memory()?;
        Ok(StateDb { conn })
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<i64, StateError> {
        Ok(sqlite::schema_version(&self.conn)?)
    }

    /// Writes a group's state, replacing the previous one.
    pub fn save(&self, file: &str, state: &GroupAlertState, now_ms: i64) -> Result<(), StateError> {
        let json = serde_json::to_string(state).map_err(StateError::Encode)?;
        self.conn.execute(
            "INSERT INTO alert_state (file, group_name, saved_at_ms, state) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (file, group_name) DO UPDATE SET saved_at_ms = excluded.saved_at_ms, state = excluded.state",
            params![file, state.group, now_ms, json],
        )?;
        Ok(())
    }

    /// The saved state of one group, if any.
    pub fn load(&self, file: &str, group: &str) -> Result<Option<SavedState>, StateError> {
        let row: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT saved_at_ms, state FROM alert_state WHERE file = ?1 AND group_name = ?2",
                params![file, group],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((saved_at_ms, json)) = row else {
            return Ok(None);
        };
        let state = serde_json::from_str(&json).map_err(|source| StateError::Decode {
            file: file.to_string(),
            group: group.to_string(),
            source,
        })?;
        Ok(Some(SavedState { saved_at_ms, state }))
    }

    /// Forgets a group (it was removed from the rule files).
    pub fn delete(&self, file: &str, group: &str) -> Result<(), StateError> {
        self.conn.execute(
            "DELETE FROM alert_state WHERE file = ?1 AND group_name = ?2",
            params![file, group],
        )?;
        Ok(())
    }

    /// Every group that has saved state, as (file, group).
    pub fn groups(&self) -> Result<Vec<(String, String)>, StateError> {
        let mut stmt = self
            .conn
            .prepare("SELECT file, group_name FROM alert_state ORDER BY file, group_name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_rules::alert::{AlertTrackerState, STATE_FORMAT_VERSION};
    use tocsin_rules::group::RuleAlertState;

    fn state(group: &str, last: i64) -> GroupAlertState {
        GroupAlertState {
            group: group.into(),
            rules: vec![RuleAlertState {
                name: "A".into(),
                labels: vec![("severity".into(), "page".into())],
                state: AlertTrackerState {
                    version: STATE_FORMAT_VERSION,
                    last_eval_at: Some(last),
                    alerts: Vec::new(),
                },
            }],
        }
    }

    #[test]
    fn state_survives_reopen_and_is_replaced_per_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ruler.sqlite");
        {
            let db = StateDb::open(&path).unwrap();
            db.save("a.yaml", &state("g", 1), 10).unwrap();
            db.save("a.yaml", &state("g", 2), 20).unwrap();
            db.save("b.yaml", &state("g", 3), 30).unwrap();
        }
        let db = StateDb::open(&path).unwrap();
        assert_eq!(db.schema_version().unwrap(), SCHEMA_VERSION);
        let got = db.load("a.yaml", "g").unwrap().unwrap();
        assert_eq!(got.saved_at_ms, 20);
        assert_eq!(got.state, state("g", 2));
        assert_eq!(db.groups().unwrap().len(), 2);
        db.delete("a.yaml", "g").unwrap();
        assert_eq!(db.load("a.yaml", "g").unwrap(), None);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ruler.sqlite");
        drop(StateDb::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        drop(conn);
        match StateDb::open(&path) {
            Err(StateError::Open(OpenError::TooNew { found: 99, .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_version_zero_file_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ruler.sqlite");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (0);",
        )
        .unwrap();
        drop(conn);
        let db = StateDb::open(&path).unwrap();
        db.save("f", &state("g", 1), 1).unwrap();
        assert_eq!(db.schema_version().unwrap(), 1);
    }

    proptest::proptest! {
        /// Whatever the alerts hold (infinite values, every timer set or
        /// not), what is saved is what is loaded.
        #[test]
        fn saved_state_loads_back_unchanged(
            alerts in proptest::collection::vec(
                (
                    0usize..3,
                    proptest::prop_oneof![
                        proptest::num::f64::NORMAL,
                        proptest::strategy::Just(f64::INFINITY),
                        proptest::strategy::Just(f64::NEG_INFINITY),
                    ],
                    -1_000_000i64..1_000_000_000_000,
                    proptest::option::of(0i64..1_000_000_000_000),
                    proptest::option::of(0i64..1_000_000_000_000),
                ),
                0..8,
            ),
        ) {
            use tocsin_rules::alert::{Alert, AlertState};
            use tocsin_rules::promql::Labels;
            let states = [AlertState::Inactive, AlertState::Pending, AlertState::Firing];
            let alerts: Vec<Alert> = alerts
                .into_iter()
                .enumerate()
                .map(|(i, (st, value, active_at, fired, keep))| Alert {
                    state: states[st],
                    labels: Labels::from_pairs([("alertname", "A"), ("i", &*i.to_string())]),
                    annotations: vec![("summary".into(), format!("\"{i}\" é"))],
                    value,
                    active_at,
                    fired_at: fired,
                    resolved_at: keep.map(|k| k + 1),
                    last_sent_at: fired,
                    valid_until: keep,
                    keep_firing_since: keep,
                })
                .collect();
            let mut st = state("g", 7);
            st.rules[0].state.alerts = alerts;
            let db = StateDb::in_memory().unwrap();
            db.save("f.yaml", &st, 1).unwrap();
            let got = db.load("f.yaml", "g").unwrap().unwrap();
            proptest::prop_assert_eq!(got.state, st);
        }
    }

    #[test]
    fn undecodable_state_names_its_group() {
        let db = StateDb::in_memory().unwrap();
        db.conn
            .execute(
                "INSERT INTO alert_state VALUES ('f', 'g', 0, 'not json')",
                [],
            )
            .unwrap();
        let e = db.load("f", "g").unwrap_err();
        assert!(e.to_string().contains("group \"g\" in f"), "{e}");
    }
}
