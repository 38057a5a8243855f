//! Error groups of the running collector: every stored log record from
//! warn up is mined into a group ([`Miner`]); each group keeps its first
//! and last time seen, a count, the hosts it came from and its newest
//! lines. `tocsin_error_group_new{group, template}` is 1 for `new_for`
//! after a group first appears, once the warm-up after start has passed
//! (so a restart does not announce every known kind of error as new).
//!
//! Invariants: bounded everywhere: the miner caps the groups (further
//! lines go to the counted overflow group), each group keeps at most
//! [`MAX_HOSTS`] hosts and [`MAX_SAMPLES`] lines of at most
//! [`MAX_SAMPLE_BYTES`].
//!
//! Persistence: with a database ([`ErrorGroupDb`], `error_groups.sqlite`
//! in the data directory) the groups are loaded at start, re-seeding the
//! miner with their templates in founding order so that the same lines
//! land in the same group ids, and counts and first-seen times continue;
//! [`ErrorGroups::persist`] writes the groups changed since its last call
//! in one transaction (the collector calls it every evaluation interval
//! and at shutdown). Whether a group is announced as new is decided once,
//! when it is founded (after the warm-up or not), and stored with it: a
//! group known before a restart is never announced again, and one still
//! inside its `new_for` window stays announced without a gap.

mod db;

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Mutex;

// Looked up for every mined record, by group id: foldhash is far cheaper
// than SipHash, and the number of groups is capped.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use tocsin_rules::promql::Labels;

use crate::logs::counters::cut;
use crate::logs::{LogRecord, RecordObserver, Severity};
use crate::patterns::{GroupId, Miner, MinerConfig};

pub use db::{ErrorGroupDb, ErrorGroupDbError, LoadedGroups, SCHEMA_VERSION, StoredGroup};

/// Hosts remembered per group.
pub const MAX_HOSTS: usize = 16;
/// Newest lines remembered per group.
pub const MAX_SAMPLES: usize = 5;
/// A remembered line is cut to this many bytes.
pub const MAX_SAMPLE_BYTES: usize = 2048;
/// The `template` label of `tocsin_error_group_new` is cut to this.
const MAX_TEMPLATE_LABEL_BYTES: usize = 256;

/// When a group counts as new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewGroupPolicy {
    /// Groups first seen this soon after start are not new (ms).
    pub warm_up_ms: i64,
    /// A new group stays new this long (ms).
    pub new_for_ms: i64,
}

#[derive(Debug, Clone, Default)]
struct Meta {
    first_seen_ms: i64,
    last_seen_ms: i64,
    hosts: BTreeSet<String>,
    samples: VecDeque<String>,
    /// Founded after the warm-up (decided once, kept across restarts).
    announce: bool,
}

#[derive(Debug)]
struct Inner {
    miner: Miner,
    meta: HashMap<GroupId, Meta>,
    /// Groups changed since the last [`ErrorGroups::persist`]; at most
    /// one entry per group, so bounded by the group cap.
    dirty: HashSet<GroupId>,
}

/// What [`ErrorGroups::open`] brought back from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Groups restored.
    pub restored: usize,
    /// Stored groups not restored: rows that could not be read, and
    /// groups the miner refused (a lowered `max_groups`, say); they stay
    /// in the database.
    pub skipped: usize,
    /// Why the first skipped group was refused.
    pub first_skip_reason: Option<String>,
}

/// One group as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorGroupView {
    pub id: String,
    pub template: String,
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub hosts: Vec<String>,
    /// Newest first.
    pub samples: Vec<String>,
}

/// The error groups; a [`RecordObserver`] of the log store.
#[derive(Debug)]
pub struct ErrorGroups {
    inner: Mutex<Inner>,
    /// Where [`ErrorGroups::persist`] writes; locked before `inner` when
    /// both are needed, so batches are written in the order they were taken.
    db: Option<Mutex<ErrorGroupDb>>,
    policy: NewGroupPolicy,
    started_ms: i64,
}

impl ErrorGroups {
    /// Groups kept in memory only.
    pub fn new(config: MinerConfig, policy: NewGroupPolicy, started_ms: i64) -> Self {
        ErrorGroups {
            inner: Mutex::new(Inner {
                miner: Miner::new(config),
                meta: HashMap::new(),
                dirty: HashSet::new(),
            }),
            db: None,
            policy,
            started_ms,
        }
    }

    /// Groups kept in the database at `path` (created if missing): the
    /// stored ones are restored before anything is observed.
    pub fn open(
        config: MinerConfig,
        policy: NewGroupPolicy,
        started_ms: i64,
        path: &Path,
    ) -> Result<(Self, RestoreReport), ErrorGroupDbError> {
        Self::with_db(config, policy, started_ms, ErrorGroupDb::open(path)?)
    }

    /// [`ErrorGroups::open`] over an open database.
    pub fn with_db(
        config: MinerConfig,
        policy: NewGroupPolicy,
        started_ms: i64,
        db: ErrorGroupDb,
    ) -> Result<(Self, RestoreReport), ErrorGroupDbError> {
        let loaded = db.load()?;
        let mut groups = Self::new(config, policy, started_ms);
        let mut report = groups.restore(loaded.groups);
        // Unreadable rows were logged one by one as they were read; the
        // report counts them with the groups the miner refused.
        report.skipped += loaded.skipped;
        if let Some(why) = loaded.first_skip_reason {
            report.first_skip_reason.get_or_insert(why);
        }
        groups.db = Some(Mutex::new(db));
        Ok((groups, report))
    }

    fn restore(&self, stored: Vec<StoredGroup>) -> RestoreReport {
        let mut report = RestoreReport::default();
        let mut inner = self.lock();
        for g in stored {
            if let Err(e) = inner.miner.restore_group(g.id, &g.template, g.count) {
                report.skipped += 1;
                report
                    .first_skip_reason
                    .get_or_insert_with(|| format!("group {}: {e}", g.id));
                continue;
            }
            report.restored += 1;
            inner.meta.insert(
                g.id,
                Meta {
                    first_seen_ms: g.first_seen_ms,
                    last_seen_ms: g.last_seen_ms,
                    hosts: g.hosts.into_iter().take(MAX_HOSTS).collect(),
                    samples: g
                        .samples
                        .into_iter()
                        .take(MAX_SAMPLES)
                        .map(|s| cut(&s, MAX_SAMPLE_BYTES).to_string())
                        .collect(),
                    announce: g.announce,
                },
            );
        }
        report
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain bookkeeping: still consistent enough after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the groups changed since the last call to the database, in
    /// one transaction; returns how many. Without a database, does
    /// nothing. On failure the groups stay marked, so the next call
    /// writes them.
    pub fn persist(&self) -> Result<usize, ErrorGroupDbError> {
        let Some(db) = &self.db else {
            return Ok(0);
        };
        let mut db = db.lock().unwrap_or_else(|e| e.into_inner());
        let rows: Vec<StoredGroup> = {
            let mut inner = self.lock();
            if inner.dirty.is_empty() {
                return Ok(0);
            }
            let inner = &mut *inner;
            let rows = inner
                .miner
                .groups()
                .iter()
                .enumerate()
                .filter(|(_, g)| inner.dirty.contains(&g.id()))
                .filter_map(|(seq, g)| {
                    let m = inner.meta.get(&g.id())?;
                    Some(StoredGroup {
                        id: g.id(),
                        seq: seq as u64,
                        template: g.template(),
                        count: g.count(),
                        first_seen_ms: m.first_seen_ms,
                        last_seen_ms: m.last_seen_ms,
                        hosts: m.hosts.iter().cloned().collect(),
                        samples: m.samples.iter().cloned().collect(),
                        announce: m.announce,
                    })
                })
                .collect();
            inner.dirty.clear();
            rows
        };
        match db.save(&rows) {
            Ok(()) => Ok(rows.len()),
            Err(e) => {
                self.lock().dirty.extend(rows.iter().map(|r| r.id));
                Err(e)
            }
        }
    }

    /// Mines one record (from warn up; others are ignored).
    pub fn observe(&self, rec: &LogRecord) {
        if rec.severity < Severity::Warn {
            return;
        }
        self.observe_locked(&mut self.lock(), rec);
    }

    /// [`ErrorGroups::observe`] with the lock held; allocates nothing for
    /// a record of a known group from a known host once its samples are
    /// full (the oldest sample's buffer takes the newest line).
    fn observe_locked(&self, inner: &mut Inner, rec: &LogRecord) {
        let warm = self.started_ms.saturating_add(self.policy.warm_up_ms);
        let id = inner.miner.observe(&rec.body);
        if id != GroupId::OVERFLOW && self.db.is_some() {
            inner.dirty.insert(id);
        }
        let at = rec.received_ms;
        let m = inner.meta.entry(id).or_insert_with(|| Meta {
            first_seen_ms: at,
            announce: at >= warm,
            ..Meta::default()
        });
        m.last_seen_ms = m.last_seen_ms.max(at);
        let host = rec.labels.get("host_name");
        if !host.is_empty() && m.hosts.len() < MAX_HOSTS && !m.hosts.contains(host) {
            m.hosts.insert(host.to_string());
        }
        let mut sample = if m.samples.len() >= MAX_SAMPLES {
            m.samples.pop_back().unwrap_or_default()
        } else {
            String::new()
        };
        let body = cut(&rec.body, MAX_SAMPLE_BYTES);
        sample.clear();
        // Exact, so that a kept buffer is never larger than a kept line.
        sample.reserve_exact(body.len());
        sample.push_str(body);
        m.samples.push_front(sample);
    }

    /// Every group, most recently seen first.
    pub fn groups(&self) -> Vec<ErrorGroupView> {
        let inner = self.lock();
        let mut out: Vec<ErrorGroupView> = inner
            .miner
            .groups()
            .iter()
            .filter_map(|g| {
                let m = inner.meta.get(&g.id())?;
                Some(ErrorGroupView {
                    id: g.id().to_string(),
                    template: g.template(),
                    count: g.count(),
                    first_seen_ms: m.first_seen_ms,
                    last_seen_ms: m.last_seen_ms,
                    hosts: m.hosts.iter().cloned().collect(),
                    samples: m.samples.iter().cloned().collect(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.last_seen_ms
                .cmp(&a.last_seen_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// The groups' series at `now_ms`: `tocsin_error_group_new` for the
    /// new ones, the number of groups and the overflow count.
    pub fn series(&self, now_ms: i64) -> Vec<(Labels, f64)> {
        let inner = self.lock();
        let mut out = Vec::new();
        for g in inner.miner.groups() {
            if g.id() == GroupId::OVERFLOW {
                continue;
            }
            let Some(m) = inner.meta.get(&g.id()) else {
                continue;
            };
            if m.announce && now_ms.saturating_sub(m.first_seen_ms) < self.policy.new_for_ms {
                let template = g.template();
                out.push((
                    Labels::from_pairs([
                        ("__name__", "tocsin_error_group_new"),
                        ("group", g.id().to_string().as_str()),
                        ("template", cut(&template, MAX_TEMPLATE_LABEL_BYTES)),
                    ]),
                    1.0,
                ));
            }
        }
        let stats = inner.miner.stats();
        out.push((
            Labels::from_pairs([("__name__", "tocsin_error_groups")]),
            inner.miner.groups().len() as f64,
        ));
        out.push((
            Labels::from_pairs([("__name__", "tocsin_error_group_lines_total")]),
            stats.lines as f64,
        ));
        out.push((
            Labels::from_pairs([("__name__", "tocsin_error_group_overflow_lines_total")]),
            stats.overflow_lines as f64,
        ));
        out
    }
}

impl RecordObserver for ErrorGroups {
    fn accepted(&self, records: &[&LogRecord]) {
        // One lock per batch, taken only when the batch holds a record to
        // mine (the store calls this for every batch it makes durable).
        let mut mined = records.iter().filter(|r| r.severity >= Severity::Warn);
        let Some(first) = mined.next() else {
            return;
        };
        let mut inner = self.lock();
        self.observe_locked(&mut inner, first);
        for r in mined {
            self.observe_locked(&mut inner, r);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn rec(body: &str, host: &str, severity: Severity, at: i64) -> LogRecord {
        LogRecord {
            time_ms: at,
            received_ms: at,
            severity,
            severity_text: "".into(),
            labels: Labels::from_pairs([("host_name", host)]),
            body: body.into(),
            attributes: Default::default(),
            origin: None,
            trace_id: None,
            span_id: None,
        }
    }

    #[test]
    fn lines_group_by_template_and_new_groups_show_after_the_warm_up() {
        let policy = NewGroupPolicy {
            warm_up_ms: 1_000,
            new_for_ms: 10_000,
        };
        let g = ErrorGroups::new(MinerConfig::default(), policy, 0);
        // Before the warm-up ends: grouped, but not new.
        g.observe(&rec(
            "timeout after 30 ms talking to 10.0.0.1",
            "a",
            Severity::Error,
            500,
        ));
        g.observe(&rec("all good", "a", Severity::Info, 600));
        g.observe(&rec(
            "timeout after 45 ms talking to 10.0.0.2",
            "b",
            Severity::Warn,
            2_000,
        ));
        g.observe(&rec("disk full on /var", "b", Severity::Error, 3_000));
        let groups = g.groups();
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].samples, vec!["disk full on /var".to_string()]);
        let timeouts = &groups[1];
        assert_eq!(timeouts.count, 2);
        assert_eq!(timeouts.hosts, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(timeouts.first_seen_ms, 500);

        let new_at = |now| {
            g.series(now)
                .into_iter()
                .filter(|(l, _)| l.metric_name() == "tocsin_error_group_new")
                .map(|(l, _)| l.get("template").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(new_at(4_000), vec![groups[0].template.clone()]);
        assert!(new_at(13_000).is_empty());
    }

    #[test]
    fn a_batch_keeps_the_newest_samples_newest_first_and_each_host_once() {
        let g = ErrorGroups::new(MinerConfig::default(), restart_policy(), 0);
        let records: Vec<LogRecord> = (0..2 * MAX_SAMPLES + 1)
            .map(|i| {
                let host = format!("h{}", i % 3);
                let severity = if i == 1 {
                    Severity::Info
                } else {
                    Severity::Error
                };
                rec(&format!("disk {i} failed"), &host, severity, i as i64)
            })
            .collect();
        g.accepted(&records.iter().collect::<Vec<_>>());
        let groups = g.groups();
        assert_eq!(groups.len(), 1, "{groups:?}");
        // The info record is not mined.
        assert_eq!(groups[0].count, 2 * MAX_SAMPLES as u64);
        assert_eq!(groups[0].hosts, ["h0", "h1", "h2"]);
        let newest: Vec<String> = (MAX_SAMPLES + 1..=2 * MAX_SAMPLES)
            .rev()
            .map(|i| format!("disk {i} failed"))
            .collect();
        assert_eq!(groups[0].samples, newest);
    }

    fn restart_policy() -> NewGroupPolicy {
        NewGroupPolicy {
            warm_up_ms: 1_000,
            new_for_ms: 10_000,
        }
    }

    fn new_templates(g: &ErrorGroups, now: i64) -> Vec<String> {
        g.series(now)
            .into_iter()
            .filter(|(l, _)| l.metric_name() == "tocsin_error_group_new")
            .map(|(l, _)| l.get("template").to_string())
            .collect()
    }

    #[test]
    fn groups_continue_after_a_restart_with_their_ids_counts_and_first_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error_groups.sqlite");
        let (first, report) =
            ErrorGroups::open(MinerConfig::default(), restart_policy(), 0, &path).unwrap();
        assert_eq!(report, RestoreReport::default());
        // In the warm-up: never announced.
        first.observe(&rec("user alice logged out", "a", Severity::Error, 500));
        // After it: announced until 13_000.
        first.observe(&rec("disk full on /var", "b", Severity::Error, 3_000));
        // Generalises the first group's template to `user <*> logged out`.
        first.observe(&rec("user bob logged out", "b", Severity::Warn, 4_000));
        assert_eq!(first.persist().unwrap(), 2);
        assert_eq!(first.persist().unwrap(), 0, "nothing changed since");
        let before = first.groups();
        let disk = before
            .iter()
            .find(|g| g.samples == ["disk full on /var"])
            .unwrap()
            .template
            .clone();
        assert_eq!(new_templates(&first, 5_000), vec![disk.clone()]);
        drop(first);

        // Restarted inside the disk group's `new_for` and inside the new
        // run's warm-up: it stays announced, the other one still is not.
        let (second, report) =
            ErrorGroups::open(MinerConfig::default(), restart_policy(), 6_000, &path).unwrap();
        assert_eq!(report.restored, 2);
        assert_eq!(second.groups(), before);
        assert_eq!(new_templates(&second, 6_500), vec![disk]);
        drop(second);

        // Restarted long after: nothing known is new again; the same kind
        // of line joins the same group (its id was fixed by its founding
        // line, which a fresh miner would not know) and the count goes on.
        let (third, _) =
            ErrorGroups::open(MinerConfig::default(), restart_policy(), 100_000, &path).unwrap();
        assert!(new_templates(&third, 100_500).is_empty());
        third.observe(&rec("user carol logged out", "c", Severity::Error, 100_200));
        third.observe(&rec("fan 3 stopped", "c", Severity::Error, 200_000));
        let after = third.groups();
        let users = after
            .iter()
            .find(|g| g.template == "user <*> logged out")
            .unwrap();
        let users_before = before
            .iter()
            .find(|g| g.template == "user <*> logged out")
            .unwrap();
        assert_eq!(users.id, users_before.id);
        assert_eq!(users.count, 3);
        assert_eq!(users.first_seen_ms, 500);
        assert_eq!(users.last_seen_ms, 100_200);
        assert_eq!(users.hosts, vec!["a", "b", "c"]);
        assert_eq!(
            users.samples,
            vec![
                "user carol logged out",
                "user bob logged out",
                "user alice logged out"
            ]
        );
        assert_eq!(after.len(), 3);
        // A kind first seen after this run's warm-up is new.
        assert_eq!(new_templates(&third, 200_001), vec!["fan <*> stopped"]);
        assert_eq!(third.persist().unwrap(), 2);
        drop(third);
        let (fourth, _) =
            ErrorGroups::open(MinerConfig::default(), restart_policy(), 300_000, &path).unwrap();
        assert_eq!(fourth.groups(), after);
    }

    #[test]
    fn stored_groups_over_a_lowered_cap_are_skipped_and_reported() {
        let mut db = ErrorGroupDb::in_memory().unwrap();
        let stored = |id: &str, seq: u64, template: &str| StoredGroup {
            id: id.parse().unwrap(),
            seq,
            template: template.into(),
            count: 4,
            first_seen_ms: 1,
            last_seen_ms: 2,
            hosts: Vec::new(),
            samples: Vec::new(),
            announce: false,
        };
        db.save(&[
            stored("00000000000000a1", 0, "disk <*> failed"),
            stored("00000000000000a2", 1, "fan <*> stopped"),
        ])
        .unwrap();
        let config = MinerConfig {
            max_groups: 1,
            ..MinerConfig::default()
        };
        let (g, report) = ErrorGroups::with_db(config, restart_policy(), 0, db).unwrap();
        assert_eq!(report.restored, 1);
        assert_eq!(report.skipped, 1);
        let reason = report.first_skip_reason.unwrap_or_default();
        assert!(reason.contains("00000000000000a2"), "{reason}");
        let groups = g.groups();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].id, "00000000000000a1");
        assert_eq!(groups[0].count, 4);
    }

    #[test]
    fn an_unreadable_stored_row_is_skipped_and_reported_and_the_rest_restore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("error_groups.sqlite");
        {
            let (g, _) =
                ErrorGroups::open(MinerConfig::default(), restart_policy(), 0, &path).unwrap();
            g.observe(&rec("disk 3 failed on /var", "a", Severity::Error, 500));
            g.observe(&rec("fan stopped in rack", "b", Severity::Error, 600));
            assert_eq!(g.persist().unwrap(), 2);
        }
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE error_group SET count = 'lots' WHERE seq = (SELECT MIN(seq) FROM error_group)",
            [],
        )
        .unwrap();
        drop(conn);
        let (g, report) =
            ErrorGroups::open(MinerConfig::default(), restart_policy(), 1_000, &path).unwrap();
        assert_eq!((report.restored, report.skipped), (1, 1));
        let reason = report.first_skip_reason.unwrap_or_default();
        assert!(reason.contains("count"), "{reason}");
        let groups = g.groups();
        assert_eq!(groups.len(), 1);
        assert!(groups[0].template.starts_with("fan"), "{groups:?}");
    }
}
