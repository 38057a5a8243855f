//! The agent inventory and liveness: every Tocsin agent the collector has
//! accepted a request from (resource attribute `tocsin.agent.id`), with
//! its host and service name, version, report interval
//! (`tocsin.agent.interval`, 10 s when absent or invalid), the IP address
//! its last accepted request came from (a forwarding proxy's, when the
//! agent sends through one), first and last seen (arrival
//! times), and its clock skew (the receivers' estimate, see
//! [`crate::translate::skew`]).
//!
//! Series, written into the collector's own store every evaluation
//! interval and served on `/metrics`:
//! - `tocsin_agent_up{host_name, tocsin_agent_id}`: 1 while the agent's
//!   last report is at most [`DOWN_AFTER_INTERVALS`] × its interval old,
//!   else 0. Agents loaded from the database at start are 0 until they
//!   report again. `host_name` is left out when the agent sent none.
//! - `tocsin_agent_clock_skew_seconds{host_name, tocsin_agent_id}` while
//!   the agent is up and has an estimate.
//! - `tocsin_agents_known`, and the counters `tocsin_agents_evicted_total`,
//!   `tocsin_agents_expired_total`, `tocsin_agents_forgotten_total`,
//!   `tocsin_agents_refused_total` (ids longer than [`MAX_FIELD_BYTES`];
//!   logged at most once per [`REFUSED_LOG_EVERY_MS`] with the count since
//!   the last line), `tocsin_agents_invalid_interval_total` (reports whose
//!   interval was invalid), `tocsin_agents_db_failures_total` and
//!   `tocsin_agents_db_rows_skipped_total` (stored rows that could not be
//!   read at start; logged, the rest load).
//!
//! When an agent is forgotten, expires, is evicted or changes its host
//! name, its old series get a staleness marker at the next write, so
//! `tocsin_agent_up == 0` stops matching at once instead of after the
//! lookback. So does its clock-skew series when the agent goes down.
//!
//! Invariants: at most `max_agents` agents (default [`MAX_AGENTS`]); a new
//! agent beyond that evicts the one seen least recently (counted, logged).
//! An agent not seen for `expire_after_ms` (default 7 days) is deleted
//! (counted, logged). An index ordered by (last seen, id) is kept in step
//! with the table, so eviction and expiry never scan the table.
//!
//! Persistence ([`AgentDb`], `agents.sqlite` in the data directory): an
//! agent seen for the first time is written at once, on the request's
//! thread, after the in-memory table is released (requests from known
//! agents never wait for SQLite); later changes (last seen, address,
//! skew…) are written in batches by [`AgentRegistry::maintain`], which the
//! collector calls every evaluation interval and at shutdown, so a
//! `kill -9` loses at most one interval of "last seen". The database is
//! locked before the in-memory table whenever both are needed, so a
//! forgotten agent cannot be written back by a batch taken before. A
//! stored row that cannot be read is skipped at start (counted, logged
//! with its rowid and id); the rest load.
//!
//! HTTP API (JSON, Prometheus' envelope; `tocsinctl agents` uses it):
//! - `GET /api/v1/agents` (role `read`):
//!   `{"status":"success","data":[{"id":"…","host_name":"…","service_name":"…",
//!   "version":"…","interval_seconds":10,"address":"10.0.0.5"|null,
//!   "first_seen":"RFC 3339","last_seen":"RFC 3339","up":true,
//!   "clock_skew_seconds":0.25|null}, …]}`, sorted by `host_name`, then
//!   `id`. Empty strings where the agent did not say; `address` is null
//!   when unknown; `clock_skew_seconds` is the last estimate (positive: the
//!   agent's clock is ahead), null before the first one.
//! - `DELETE /api/v1/agents/{id}` (role `admin`): forgets the agent (its
//!   row, its series) and answers `{"status":"success","data":{"forgotten":"<id>"}}`;
//!   an unknown id is 404 with `{"status":"error","errorType":"not_found",
//!   "error":"…"}`. An agent that is still running comes back as new with
//!   its next report.

mod api;
mod db;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use tocsin_rules::promql::Labels;

use crate::translate::attributes::{AgentResource, DEFAULT_AGENT_INTERVAL_MS};

pub use api::routes;
pub use db::{AgentDb, AgentDbError, LoadedAgents, SCHEMA_VERSION, StoredAgent};

/// Agents remembered at most, unless configured otherwise.
pub const MAX_AGENTS: usize = 100_000;
/// An agent not seen this long is forgotten (7 days).
pub const EXPIRE_AFTER_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// An agent is down once its last report is older than this many of its
/// intervals.
pub const DOWN_AFTER_INTERVALS: i64 = 3;
/// Agent ids longer than this are refused; host and service names and
/// versions are cut to it (they become labels and database rows).
pub const MAX_FIELD_BYTES: usize = 256;
/// Series waiting for a staleness marker, at most; more are dropped
/// (they go stale after the lookback instead).
const MAX_RETIRED: usize = 10_000;
/// Refused agent ids are logged at most once this often (ms, request
/// arrival time), with the count since the last line.
pub const REFUSED_LOG_EVERY_MS: i64 = 60_000;

/// The registry's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentRegistryOptions {
    pub max_agents: usize,
    pub expire_after_ms: i64,
}

impl Default for AgentRegistryOptions {
    fn default() -> Self {
        AgentRegistryOptions {
            max_agents: MAX_AGENTS,
            expire_after_ms: EXPIRE_AFTER_MS,
        }
    }
}

/// What one accepted request says about one agent.
#[derive(Debug, Clone, Copy)]
pub struct AgentReport<'a> {
    pub agent: &'a AgentResource,
    /// The peer the request came from, when the transport knows it.
    pub address: Option<IpAddr>,
    /// When the request arrived (ms).
    pub received_ms: i64,
    /// The receivers' current skew estimate for the agent.
    pub clock_skew_seconds: Option<f64>,
}

/// One agent as the inventory shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentView {
    pub id: String,
    pub host_name: String,
    pub service_name: String,
    pub version: String,
    pub interval_ms: i64,
    pub address: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub up: bool,
    pub clock_skew_seconds: Option<f64>,
}

/// What [`AgentRegistry::open`] brought back from the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub restored: usize,
    /// Stored agents beyond `max_agents` (the least recently seen),
    /// deleted at the next write.
    pub evicted: usize,
    /// Stored rows that could not be read (logged; left in the file).
    pub skipped: usize,
}

/// What one [`AgentRegistry::maintain`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintainReport {
    pub expired: usize,
    /// Rows written (changed agents) and deleted.
    pub written: usize,
    pub deleted: usize,
}

#[derive(Debug, Clone)]
struct Entry {
    stored: StoredAgent,
    /// Reported since this process started: agents loaded from the
    /// database are down until they report again.
    reported: bool,
    /// The invalid interval it last declared, so it is logged once per
    /// change rather than per request.
    interval_error: Option<String>,
    /// The last [`AgentRegistry::series`] gave its clock-skew series a
    /// value, so the series needs a staleness marker when it stops.
    skew_written: bool,
    /// Its clock-skew series got a staleness marker when the agent went
    /// down, and has had no value since.
    skew_ended: bool,
}

impl Entry {
    fn new(stored: StoredAgent, reported: bool) -> Self {
        Entry {
            stored,
            reported,
            interval_error: None,
            skew_written: false,
            skew_ended: false,
        }
    }

    fn up(&self, now_ms: i64) -> bool {
        self.reported
            && now_ms.saturating_sub(self.stored.last_seen_ms)
                <= self.stored.interval_ms.saturating_mul(DOWN_AFTER_INTERVALS)
    }
}

#[derive(Debug, Default)]
struct Inner {
    agents: HashMap<String, Entry>,
    /// `(last_seen_ms, id)` of every agent in `agents`, least recently
    /// seen first: the eviction and expiry order.
    by_seen: BTreeSet<(i64, String)>,
    /// Agents changed since the last write; at most one entry per agent.
    dirty: HashSet<String>,
    /// Agents removed from memory whose rows are still to be deleted;
    /// bounded by `max_agents`.
    deletes: HashSet<String>,
    /// Series to end with a staleness marker at the next store write.
    retired: Vec<Labels>,
    retired_dropped: u64,
}

impl Inner {
    fn insert(&mut self, e: Entry) {
        let id = e.stored.id.clone();
        self.remove(&id);
        self.by_seen.insert((e.stored.last_seen_ms, id.clone()));
        self.agents.insert(id, e);
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.agents.remove(id)?;
        self.by_seen
            .remove(&(e.stored.last_seen_ms, e.stored.id.clone()));
        Some(e)
    }

    /// Applies a report to a known agent, keeping the index in step; the
    /// entry as it was before, when the report changes its host name.
    /// `None` when the agent is not known.
    fn update(&mut self, r: &AgentReport<'_>) -> Option<Option<Entry>> {
        let e = self.agents.get_mut(&r.agent.id)?;
        let host = cut(&r.agent.host_name);
        let relabelled = !host.is_empty() && host != e.stored.host_name;
        let old = relabelled.then(|| e.clone());
        let before = e.stored.last_seen_ms;
        apply(e, r);
        if relabelled {
            // Its skew series under the new labels has not been written.
            e.skew_written = false;
            e.skew_ended = false;
        }
        let after = e.stored.last_seen_ms;
        if after != before
            && let Some((_, id)) = self.by_seen.take(&(before, r.agent.id.clone()))
        {
            self.by_seen.insert((after, id));
        }
        Some(old)
    }

    fn retire(&mut self, e: &Entry) {
        // The skew series was only written when there was an estimate.
        let skew = e.stored.clock_skew_seconds.map(|_| skew_labels(&e.stored));
        for l in std::iter::once(up_labels(&e.stored)).chain(skew) {
            self.push_retired(l);
        }
    }

    fn push_retired(&mut self, l: Labels) {
        if self.retired.len() < MAX_RETIRED {
            self.retired.push(l);
        } else {
            self.retired_dropped += 1;
        }
    }

    fn schedule_delete(&mut self, id: String, max: usize) {
        self.dirty.remove(&id);
        if self.deletes.len() < max {
            self.deletes.insert(id);
        } else {
            // Only while the database keeps failing: the row stays and is
            // evicted or expired again after the next start.
            tracing::warn!(agent = %id, "agent database deletions backlog full; its row stays until the next start");
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    evicted: AtomicU64,
    expired: AtomicU64,
    forgotten: AtomicU64,
    refused: AtomicU64,
    invalid_interval: AtomicU64,
    db_failures: AtomicU64,
    db_rows_skipped: AtomicU64,
}

/// Refused agent ids not yet logged: one line per
/// [`REFUSED_LOG_EVERY_MS`] however often a sender repeats one.
#[derive(Debug, Default)]
struct RefusedLog {
    /// When the last line was written (request arrival time).
    last_ms: Option<i64>,
    /// Refused since that line.
    pending: u64,
    /// The longest refused id since that line (bytes).
    longest: usize,
}

impl RefusedLog {
    /// Writes the line when there is something to say and the last one is
    /// old enough (or from the future: a clock set back); whether it did.
    fn flush_if_due(&mut self, now_ms: i64) -> bool {
        let due = self
            .last_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= REFUSED_LOG_EVERY_MS || now_ms < t);
        if self.pending == 0 || !due {
            return false;
        }
        tracing::warn!(
            refused = self.pending,
            longest_id_bytes = self.longest,
            max = MAX_FIELD_BYTES,
            "agents not added to the inventory since the last such line: their tocsin.agent.id is too long"
        );
        self.last_ms = Some(now_ms);
        self.pending = 0;
        self.longest = 0;
        true
    }
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The known agents; shared by the receivers (which report), the periodic
/// task (series, expiry, batched writes) and the API.
#[derive(Debug)]
pub struct AgentRegistry {
    inner: Mutex<Inner>,
    /// Locked before `inner` when both are needed.
    db: Option<Mutex<AgentDb>>,
    opts: AgentRegistryOptions,
    counters: Counters,
    refused_log: Mutex<RefusedLog>,
}

impl Default for AgentRegistry {
    fn default() -> Self {
        Self::new(AgentRegistryOptions::default())
    }
}

fn cut(s: &str) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s.to_string();
    }
    let mut end = MAX_FIELD_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn labels(name: &str, a: &StoredAgent) -> Labels {
    let mut pairs = vec![("__name__", name), ("tocsin_agent_id", a.id.as_str())];
    if !a.host_name.is_empty() {
        pairs.push(("host_name", a.host_name.as_str()));
    }
    Labels::from_pairs(pairs)
}

fn up_labels(a: &StoredAgent) -> Labels {
    labels("tocsin_agent_up", a)
}

fn skew_labels(a: &StoredAgent) -> Labels {
    labels("tocsin_agent_clock_skew_seconds", a)
}

impl AgentRegistry {
    /// Agents kept in memory only.
    pub fn new(opts: AgentRegistryOptions) -> Self {
        AgentRegistry {
            inner: Mutex::new(Inner::default()),
            db: None,
            opts: AgentRegistryOptions {
                max_agents: opts.max_agents.max(1),
                expire_after_ms: opts.expire_after_ms.max(1),
            },
            counters: Counters::default(),
            refused_log: Mutex::new(RefusedLog::default()),
        }
    }

    /// Agents kept in the database at `path` (created if missing); the
    /// stored ones are loaded, down until they report.
    pub fn open(
        path: &Path,
        opts: AgentRegistryOptions,
    ) -> Result<(Self, RestoreReport), AgentDbError> {
        Self::with_db(AgentDb::open(path)?, opts)
    }

    /// [`AgentRegistry::open`] over an open database.
    pub fn with_db(
        db: AgentDb,
        opts: AgentRegistryOptions,
    ) -> Result<(Self, RestoreReport), AgentDbError> {
        let loaded = db.load()?;
        let mut reg = Self::new(opts);
        let mut report = RestoreReport {
            skipped: loaded.skipped,
            ..RestoreReport::default()
        };
        inc(&reg.counters.db_rows_skipped, loaded.skipped as u64);
        {
            let mut inner = reg.lock();
            // Most recently seen first: the ones over the cap are the
            // least recently seen.
            for a in loaded.agents {
                if inner.agents.len() >= reg.opts.max_agents {
                    report.evicted += 1;
                    let max = reg.opts.max_agents;
                    inner.schedule_delete(a.id, max);
                    continue;
                }
                report.restored += 1;
                inner.insert(Entry::new(a, false));
            }
        }
        if report.evicted > 0 {
            inc(&reg.counters.evicted, report.evicted as u64);
            tracing::warn!(
                evicted = report.evicted,
                max_agents = reg.opts.max_agents,
                "more stored agents than max_agents; the least recently seen are forgotten"
            );
        }
        reg.db = Some(Mutex::new(db));
        Ok((reg, report))
    }

    fn lock_refused_log(&self) -> MutexGuard<'_, RefusedLog> {
        self.refused_log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a refused id; logs it unless a line was written less than
    /// [`REFUSED_LOG_EVERY_MS`] ago (the next one says how many since).
    /// Whether it logged.
    fn refuse(&self, id_bytes: usize, now_ms: i64) -> bool {
        inc(&self.counters.refused, 1);
        let mut log = self.lock_refused_log();
        log.pending += 1;
        log.longest = log.longest.max(id_bytes);
        log.flush_if_due(now_ms)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Plain bookkeeping: still consistent enough after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_db(&self) -> Option<MutexGuard<'_, AgentDb>> {
        self.db
            .as_ref()
            .map(|db| db.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records what accepted requests said about their agents. A new agent
    /// is written to the database before this returns (a failed write is
    /// logged and retried by the next [`AgentRegistry::maintain`]).
    pub fn observe(&self, reports: &[AgentReport<'_>]) {
        for r in reports {
            if r.agent.id.len() > MAX_FIELD_BYTES {
                self.refuse(r.agent.id.len(), r.received_ms);
                continue;
            }
            if r.agent.interval_error.is_some() {
                inc(&self.counters.invalid_interval, 1);
            }
            if !self.update_known(r) {
                self.add_new(r);
            }
        }
    }

    /// Updates an agent already known; false when it is not.
    fn update_known(&self, r: &AgentReport<'_>) -> bool {
        let mut inner = self.lock();
        let Some(old) = inner.update(r) else {
            return false;
        };
        if self.db.is_some() {
            inner.dirty.insert(r.agent.id.clone());
        }
        if let Some(old) = old {
            tracing::info!(agent = %r.agent.id, from = %old.stored.host_name, to = %cut(&r.agent.host_name), "agent reports a new host name");
            inner.retire(&old);
        }
        true
    }

    fn add_new(&self, r: &AgentReport<'_>) {
        let mut db = self.lock_db();
        let (row, deletes) = {
            let mut inner = self.lock();
            let inner = &mut *inner;
            // Another request may have added it since the caller looked.
            if let Some(old) = inner.update(r) {
                if db.is_some() {
                    inner.dirty.insert(r.agent.id.clone());
                }
                if let Some(old) = old {
                    inner.retire(&old);
                }
                return;
            }
            if inner.agents.len() >= self.opts.max_agents {
                let oldest = inner.by_seen.first().map(|(_, id)| id.clone());
                if let Some(id) = oldest
                    && let Some(gone) = inner.remove(&id)
                {
                    inc(&self.counters.evicted, 1);
                    tracing::warn!(
                        agent = %id,
                        host_name = %gone.stored.host_name,
                        max_agents = self.opts.max_agents,
                        "agent inventory full; forgot the agent seen least recently"
                    );
                    inner.retire(&gone);
                    if db.is_some() {
                        inner.schedule_delete(id, self.opts.max_agents);
                    }
                }
            }
            let mut e = Entry::new(
                StoredAgent {
                    id: r.agent.id.clone(),
                    host_name: String::new(),
                    service_name: String::new(),
                    version: String::new(),
                    interval_ms: DEFAULT_AGENT_INTERVAL_MS,
                    address: String::new(),
                    first_seen_ms: r.received_ms,
                    last_seen_ms: r.received_ms,
                    clock_skew_seconds: None,
                },
                true,
            );
            apply(&mut e, r);
            tracing::info!(
                agent = %r.agent.id,
                host_name = %e.stored.host_name,
                version = %e.stored.version,
                interval_ms = e.stored.interval_ms,
                address = %e.stored.address,
                "new agent"
            );
            let row = e.stored.clone();
            inner.insert(e);
            inner.deletes.remove(&r.agent.id);
            let deletes: Vec<String> = inner.deletes.drain().collect();
            (row, deletes)
        };
        let Some(db) = db.as_mut() else {
            return;
        };
        if let Err(e) = db.save(std::slice::from_ref(&row), &deletes) {
            inc(&self.counters.db_failures, 1);
            tracing::error!(agent = %row.id, error = %e, "new agent not written to the agent database; retried with the next batch");
            let mut inner = self.lock();
            if inner.agents.contains_key(&row.id) {
                inner.dirty.insert(row.id);
            }
            for id in deletes {
                if !inner.agents.contains_key(&id) {
                    inner.deletes.insert(id);
                }
            }
        }
    }

    /// Forgets an agent: its row, its series. `Ok(false)` when it is not
    /// known. On a database error nothing is forgotten.
    pub fn forget(&self, id: &str) -> Result<bool, AgentDbError> {
        let mut db = self.lock_db();
        if !self.lock().agents.contains_key(id) {
            return Ok(false);
        }
        if let Some(db) = db.as_mut()
            && let Err(e) = db.delete(id)
        {
            inc(&self.counters.db_failures, 1);
            return Err(e);
        }
        let mut inner = self.lock();
        inner.dirty.remove(id);
        inner.deletes.remove(id);
        if let Some(gone) = inner.remove(id) {
            inner.retire(&gone);
            inc(&self.counters.forgotten, 1);
            tracing::info!(agent = %id, host_name = %gone.stored.host_name, "agent forgotten");
        }
        Ok(true)
    }

    /// The periodic work: forgets the agents not seen for
    /// `expire_after_ms` before `now_ms`, then writes the changes since
    /// the last write in one transaction. On a write error the changes
    /// stay pending for the next call.
    pub fn maintain(&self, now_ms: i64) -> Result<MaintainReport, AgentDbError> {
        // Refusals counted since the last line, once it is due.
        self.lock_refused_log().flush_if_due(now_ms);
        let mut db = self.lock_db();
        let mut report = MaintainReport::default();
        let (rows, deletes) = {
            let mut inner = self.lock();
            let inner = &mut *inner;
            let cutoff = now_ms.saturating_sub(self.opts.expire_after_ms);
            let expired: Vec<String> = inner
                .by_seen
                .iter()
                .take_while(|(seen, _)| *seen < cutoff)
                .map(|(_, id)| id.clone())
                .collect();
            for id in expired {
                if let Some(gone) = inner.remove(&id) {
                    report.expired += 1;
                    tracing::info!(
                        agent = %id,
                        host_name = %gone.stored.host_name,
                        last_seen_ms = gone.stored.last_seen_ms,
                        "agent not seen for {} days; forgotten",
                        self.opts.expire_after_ms / (24 * 60 * 60 * 1000)
                    );
                    inner.retire(&gone);
                    if db.is_some() {
                        inner.schedule_delete(id, self.opts.max_agents);
                    }
                }
            }
            inc(&self.counters.expired, report.expired as u64);
            if db.is_none() {
                return Ok(report);
            }
            let rows: Vec<StoredAgent> = inner
                .dirty
                .drain()
                .filter_map(|id| inner.agents.get(&id).map(|e| e.stored.clone()))
                .collect();
            let deletes: Vec<String> = inner.deletes.drain().collect();
            (rows, deletes)
        };
        let Some(db) = db.as_mut() else {
            return Ok(report);
        };
        match db.save(&rows, &deletes) {
            Ok(()) => {
                report.written = rows.len();
                report.deleted = deletes.len();
                Ok(report)
            }
            Err(e) => {
                inc(&self.counters.db_failures, 1);
                let mut inner = self.lock();
                for r in rows {
                    if inner.agents.contains_key(&r.id) {
                        inner.dirty.insert(r.id);
                    }
                }
                for id in deletes {
                    if !inner.agents.contains_key(&id) {
                        inner.deletes.insert(id);
                    }
                }
                Err(e)
            }
        }
    }

    /// Every agent at `now_ms`, sorted by host name, then id.
    pub fn list(&self, now_ms: i64) -> Vec<AgentView> {
        let inner = self.lock();
        let mut out: Vec<AgentView> = inner
            .agents
            .values()
            .map(|e| AgentView {
                id: e.stored.id.clone(),
                host_name: e.stored.host_name.clone(),
                service_name: e.stored.service_name.clone(),
                version: e.stored.version.clone(),
                interval_ms: e.stored.interval_ms,
                address: (!e.stored.address.is_empty()).then(|| e.stored.address.clone()),
                first_seen_ms: e.stored.first_seen_ms,
                last_seen_ms: e.stored.last_seen_ms,
                up: e.up(now_ms),
                clock_skew_seconds: e.stored.clock_skew_seconds,
            })
            .collect();
        out.sort_by(|a, b| a.host_name.cmp(&b.host_name).then_with(|| a.id.cmp(&b.id)));
        out
    }

    /// The agents' series at `now_ms` (see the module doc). The skew
    /// series of an agent that went down since the last call is retired:
    /// the next [`AgentRegistry::take_retired`] gives it.
    pub fn series(&self, now_ms: i64) -> Vec<(Labels, f64)> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut out = Vec::with_capacity(inner.agents.len() + 9);
        let mut ended = Vec::new();
        for e in inner.agents.values_mut() {
            let up = e.up(now_ms);
            out.push((up_labels(&e.stored), if up { 1.0 } else { 0.0 }));
            let skew = e.stored.clock_skew_seconds.filter(|_| up);
            if let Some(s) = skew {
                out.push((skew_labels(&e.stored), s));
                e.skew_ended = false;
            } else if e.skew_written {
                ended.push(skew_labels(&e.stored));
                e.skew_ended = true;
            }
            e.skew_written = skew.is_some();
        }
        for l in ended {
            inner.push_retired(l);
        }
        let c = &self.counters;
        let n = |name: &str| Labels::from_pairs([("__name__", name)]);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        out.push((n("tocsin_agents_known"), inner.agents.len() as f64));
        out.push((n("tocsin_agents_evicted_total"), get(&c.evicted)));
        out.push((n("tocsin_agents_expired_total"), get(&c.expired)));
        out.push((n("tocsin_agents_forgotten_total"), get(&c.forgotten)));
        out.push((n("tocsin_agents_refused_total"), get(&c.refused)));
        out.push((
            n("tocsin_agents_invalid_interval_total"),
            get(&c.invalid_interval),
        ));
        out.push((n("tocsin_agents_db_failures_total"), get(&c.db_failures)));
        out.push((
            n("tocsin_agents_db_rows_skipped_total"),
            get(&c.db_rows_skipped),
        ));
        out
    }

    /// The series of agents gone or relabelled since the last call, to be
    /// written with a staleness marker; series that are live again are
    /// left out.
    pub fn take_retired(&self) -> Vec<Labels> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if inner.retired_dropped > 0 {
            tracing::warn!(
                dropped = inner.retired_dropped,
                "more agent series ended than staleness markers kept; the rest go stale after the lookback"
            );
            inner.retired_dropped = 0;
        }
        let agents = &inner.agents;
        // A series is live again when its agent is known under the same
        // labels (it came back before this write).
        let live = |l: &Labels| {
            agents.get(l.get("tocsin_agent_id")).is_some_and(|e| {
                *l == up_labels(&e.stored)
                    || (e.stored.clock_skew_seconds.is_some()
                        && !e.skew_ended
                        && *l == skew_labels(&e.stored))
            })
        };
        let mut out: Vec<Labels> = inner.retired.drain(..).filter(|l| !live(l)).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Agents known now.
    pub fn len(&self) -> usize {
        self.lock().agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Applies a report to an entry: non-empty fields replace the old ones,
/// the interval always does (the default when the agent gave none).
fn apply(e: &mut Entry, r: &AgentReport<'_>) {
    let a = r.agent;
    let s = &mut e.stored;
    for (to, from) in [
        (&mut s.host_name, &a.host_name),
        (&mut s.service_name, &a.service_name),
        (&mut s.version, &a.version),
    ] {
        if !from.is_empty() {
            *to = cut(from);
        }
    }
    s.interval_ms = a.interval_ms.unwrap_or(DEFAULT_AGENT_INTERVAL_MS);
    if let Some(ip) = r.address {
        s.address = ip.to_string();
    }
    s.last_seen_ms = s.last_seen_ms.max(r.received_ms);
    if r.clock_skew_seconds.is_some() {
        s.clock_skew_seconds = r.clock_skew_seconds;
    }
    e.reported = true;
    if a.interval_error != e.interval_error {
        if let Some(why) = &a.interval_error {
            tracing::warn!(agent = %a.id, "{why}; using the default {}s", DEFAULT_AGENT_INTERVAL_MS / 1000);
        }
        e.interval_error.clone_from(&a.interval_error);
    }
}
