//! The ruler's self metrics, as series for `/metrics` and for the
//! collector's own store ([`RulerMetrics::samples`]):
//!
//! - `tocsin_rules_last_reload_successful` (1 or 0) and
//!   `tocsin_rules_last_reload_success_timestamp_seconds`;
//! - `tocsin_rules_reloads_total` and `tocsin_rules_reload_failures_total`;
//! - per group (`rule_group="<file>;<name>"`, as Prometheus labels it):
//!   `tocsin_rules_group_evaluations_total`,
//!   `tocsin_rules_group_evaluation_failures_total` (rules that failed),
//!   `tocsin_rules_group_iterations_missed_total`,
//!   `tocsin_rules_group_last_duration_seconds`,
//!   `tocsin_rules_group_last_evaluation_timestamp_seconds`,
//!   `tocsin_rules_group_duration_seconds_sum` / `_count`,
//!   `tocsin_rules_group_samples_refused_total` (results the store
//!   refused), `tocsin_rules_group_rules`;
//! - `tocsin_rules_state_save_failures_total`,
//!   `tocsin_rules_state_restore_failures_total`.
//!
//! A group's series disappear when a reload removes the group.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tocsin_rules::promql::Labels;

/// Counters of one group.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct GroupCounters {
    pub evaluations: u64,
    pub rule_failures: u64,
    pub iterations_missed: u64,
    pub samples_refused: u64,
    pub last_duration_s: f64,
    pub duration_sum_s: f64,
    pub last_evaluation_ms: Option<i64>,
    pub rules: usize,
}

/// The ruler's counters; shared by its tasks.
#[derive(Debug, Default)]
pub struct RulerMetrics {
    /// -1 before the first load, then 0 or 1.
    last_reload_ok: AtomicI64,
    last_reload_success_ms: AtomicI64,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    state_save_failures: AtomicU64,
    state_restore_failures: AtomicU64,
    groups: Mutex<BTreeMap<String, GroupCounters>>,
}

/// The `rule_group` label value of a group.
pub fn group_label(file: &str, group: &str) -> String {
    format!("{file};{group}")
}

impl RulerMetrics {
    pub fn new() -> Self {
        RulerMetrics {
            last_reload_ok: AtomicI64::new(-1),
            ..RulerMetrics::default()
        }
    }

    fn groups(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, GroupCounters>> {
        // Counters stay meaningful after a panic elsewhere.
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn reload_succeeded(&self, now_ms: i64) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.last_reload_ok.store(1, Ordering::Relaxed);
        self.last_reload_success_ms.store(now_ms, Ordering::Relaxed);
    }

    pub fn reload_failed(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
        self.last_reload_ok.store(0, Ordering::Relaxed);
    }

    /// Whether the last reload succeeded (`None` before the first).
    pub fn last_reload_successful(&self) -> Option<bool> {
        match self.last_reload_ok.load(Ordering::Relaxed) {
            -1 => None,
            v => Some(v == 1),
        }
    }

    pub fn state_save_failed(&self) {
        self.state_save_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn state_restore_failed(&self) {
        self.state_restore_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps exactly the given groups (with their rule counts), dropping
    /// the series of removed ones.
    pub fn set_groups(&self, groups: &[(String, usize)]) {
        let mut g = self.groups();
        g.retain(|k, _| groups.iter().any(|(n, _)| n == k));
        for (name, rules) in groups {
            g.entry(name.clone()).or_default().rules = *rules;
        }
    }

    pub fn iterations_missed(&self, group: &str, n: u64) {
        if n > 0 {
            self.groups()
                .entry(group.to_string())
                .or_default()
                .iterations_missed += n;
        }
    }

    /// Records one evaluation.
    pub fn evaluated(
        &self,
        group: &str,
        t_ms: i64,
        duration_s: f64,
        rule_failures: usize,
        samples_refused: usize,
    ) {
        let mut g = self.groups();
        let c = g.entry(group.to_string()).or_default();
        c.evaluations += 1;
        c.rule_failures += rule_failures as u64;
        c.samples_refused += samples_refused as u64;
        c.last_duration_s = duration_s;
        c.duration_sum_s += duration_s;
        c.last_evaluation_ms = Some(t_ms);
    }

    pub fn group(&self, group: &str) -> Option<GroupCounters> {
        self.groups().get(group).cloned()
    }

    /// Every series, valued now.
    pub fn samples(&self) -> Vec<(Labels, f64)> {
        let one = |name: &str| Labels::from_pairs([("__name__", name)]);
        let mut out = Vec::new();
        if let Some(ok) = self.last_reload_successful() {
            out.push((
                one("tocsin_rules_last_reload_successful"),
                if ok { 1.0 } else { 0.0 },
            ));
        }
        let success_ms = self.last_reload_success_ms.load(Ordering::Relaxed);
        if success_ms != 0 {
            out.push((
                one("tocsin_rules_last_reload_success_timestamp_seconds"),
                success_ms as f64 / 1000.0,
            ));
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        out.push((one("tocsin_rules_reloads_total"), load(&self.reloads)));
        out.push((
            one("tocsin_rules_reload_failures_total"),
            load(&self.reload_failures),
        ));
        out.push((
            one("tocsin_rules_state_save_failures_total"),
            load(&self.state_save_failures),
        ));
        out.push((
            one("tocsin_rules_state_restore_failures_total"),
            load(&self.state_restore_failures),
        ));
        for (group, c) in self.groups().iter() {
            let l = |name: &str| Labels::from_pairs([("__name__", name), ("rule_group", group)]);
            out.push((
                l("tocsin_rules_group_evaluations_total"),
                c.evaluations as f64,
            ));
            out.push((
                l("tocsin_rules_group_evaluation_failures_total"),
                c.rule_failures as f64,
            ));
            out.push((
                l("tocsin_rules_group_iterations_missed_total"),
                c.iterations_missed as f64,
            ));
            out.push((
                l("tocsin_rules_group_samples_refused_total"),
                c.samples_refused as f64,
            ));
            out.push((
                l("tocsin_rules_group_last_duration_seconds"),
                c.last_duration_s,
            ));
            out.push((
                l("tocsin_rules_group_duration_seconds_sum"),
                c.duration_sum_s,
            ));
            out.push((
                l("tocsin_rules_group_duration_seconds_count"),
                c.evaluations as f64,
            ));
            if let Some(t) = c.last_evaluation_ms {
                out.push((
                    l("tocsin_rules_group_last_evaluation_timestamp_seconds"),
                    t as f64 / 1000.0,
                ));
            }
            out.push((l("tocsin_rules_group_rules"), c.rules as f64));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(m: &RulerMetrics, name: &str, group: Option<&str>) -> Option<f64> {
        m.samples()
            .into_iter()
            .find(|(l, _)| {
                l.metric_name() == name && group.is_none_or(|g| l.get("rule_group") == g)
            })
            .map(|(_, v)| v)
    }

    #[test]
    fn reload_and_group_series() {
        let m = RulerMetrics::new();
        assert_eq!(value(&m, "tocsin_rules_last_reload_successful", None), None);
        m.reload_succeeded(5_000);
        m.set_groups(&[("f;a".into(), 2), ("f;b".into(), 1)]);
        m.evaluated("f;a", 60_000, 0.5, 1, 0);
        m.evaluated("f;a", 120_000, 0.25, 0, 3);
        m.iterations_missed("f;a", 2);
        m.reload_failed();
        assert_eq!(
            value(&m, "tocsin_rules_last_reload_successful", None),
            Some(0.0)
        );
        assert_eq!(
            value(
                &m,
                "tocsin_rules_last_reload_success_timestamp_seconds",
                None
            ),
            Some(5.0)
        );
        let g = Some("f;a");
        assert_eq!(
            value(&m, "tocsin_rules_group_evaluations_total", g),
            Some(2.0)
        );
        assert_eq!(
            value(&m, "tocsin_rules_group_evaluation_failures_total", g),
            Some(1.0)
        );
        assert_eq!(
            value(&m, "tocsin_rules_group_iterations_missed_total", g),
            Some(2.0)
        );
        assert_eq!(
            value(&m, "tocsin_rules_group_samples_refused_total", g),
            Some(3.0)
        );
        assert_eq!(
            value(&m, "tocsin_rules_group_duration_seconds_sum", g),
            Some(0.75)
        );
        assert_eq!(
            value(
                &m,
                "tocsin_rules_group_last_evaluation_timestamp_seconds",
                g
            ),
            Some(120.0)
        );
        m.set_groups(&[("f;b".into(), 1)]);
        assert_eq!(value(&m, "tocsin_rules_group_evaluations_total", g), None);
        assert_eq!(
            value(&m, "tocsin_rules_group_rules", Some("f;b")),
            Some(1.0)
        );
    }
}
