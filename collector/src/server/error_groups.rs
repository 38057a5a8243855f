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
//! [`MAX_SAMPLE_BYTES`]. The groups live in memory: a restart starts them
//! afresh (the warm-up covers that).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use tocsin_rules::promql::Labels;

use crate::logs::counters::cut;
use crate::logs::{LogRecord, RecordObserver, Severity};
use crate::patterns::{GroupId, Miner, MinerConfig};

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
}

#[derive(Debug)]
struct Inner {
    miner: Miner,
    meta: HashMap<GroupId, Meta>,
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
    policy: NewGroupPolicy,
    started_ms: i64,
}

impl ErrorGroups {
    pub fn new(config: MinerConfig, policy: NewGroupPolicy, started_ms: i64) -> Self {
        ErrorGroups {
            inner: Mutex::new(Inner {
                miner: Miner::new(config),
                meta: HashMap::new(),
            }),
            policy,
            started_ms,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain bookkeeping: still consistent enough after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mines one record (from warn up; others are ignored).
    pub fn observe(&self, rec: &LogRecord) {
        if rec.severity < Severity::Warn {
            return;
        }
        let mut inner = self.lock();
        let id = inner.miner.observe(&rec.body);
        let at = rec.received_ms;
        let m = inner.meta.entry(id).or_insert_with(|| Meta {
            first_seen_ms: at,
            ..Meta::default()
        });
        m.last_seen_ms = m.last_seen_ms.max(at);
        let host = rec.labels.get("host_name");
        if !host.is_empty() && m.hosts.len() < MAX_HOSTS {
            m.hosts.insert(host.to_string());
        }
        if m.samples.len() == MAX_SAMPLES {
            m.samples.pop_back();
        }
        m.samples
            .push_front(cut(&rec.body, MAX_SAMPLE_BYTES).to_string());
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
        let warm = self.started_ms.saturating_add(self.policy.warm_up_ms);
        let mut out = Vec::new();
        for g in inner.miner.groups() {
            if g.id() == GroupId::OVERFLOW {
                continue;
            }
            let Some(m) = inner.meta.get(&g.id()) else {
                continue;
            };
            if m.first_seen_ms >= warm
                && now_ms.saturating_sub(m.first_seen_ms) < self.policy.new_for_ms
            {
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
        for r in records {
            self.observe(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(body: &str, host: &str, severity: Severity, at: i64) -> LogRecord {
        LogRecord {
            time_ms: at,
            received_ms: at,
            severity,
            severity_text: String::new(),
            labels: Labels::from_pairs([("host_name", host)]),
            body: body.into(),
            attributes: Vec::new(),
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
}
