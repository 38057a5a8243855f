//! The ruler end to end over a real series store, driven by a manual
//! clock: tests move time slot by slot and wait (with a deadline) for the
//! evaluation counter, never for wall time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tocsin_rules::alert::AlertState;
use tocsin_rules::group::RuleHealth;
use tocsin_rules::promql::storage::{MatchOp, Matcher, Queryable};
use tocsin_rules::promql::value::is_stale;
use tocsin_rules::promql::{Labels, Sample};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::store::SeriesStore;
use crate::store::head::HeadOptions;
use crate::store::wal::WalOptions;

const SEC: i64 = 1000;
/// A start time well past the epoch, not aligned to anything.
const T0: i64 = 1_700_000_003_217;
/// Bound on how long a test waits for the ruler to react.
const DEADLINE: Duration = Duration::from_secs(20);

struct Fixture {
    dir: TempDir,
    store: Arc<SeriesStore>,
    clock: Arc<ManualClock>,
}

struct Running {
    handle: RulerHandle,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    alerts: mpsc::Receiver<Vec<OutgoingAlert>>,
    initial: Result<ReloadSummary, ReloadError>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SeriesStore::open(
            &dir.path().join("wal"),
            HeadOptions::default(),
            WalOptions::default(),
        )
        .unwrap();
        Fixture {
            dir,
            store: Arc::new(store),
            clock: Arc::new(ManualClock::new(T0)),
        }
    }

    fn rules_dir(&self) -> PathBuf {
        let d = self.dir.path().join("rules");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.rules_dir().join(name);
        // Write then rename, as configuration management does: a watcher
        // never sees half a file.
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        p.display().to_string()
    }

    fn settings(&self) -> RulerSettings {
        let mut s = RulerSettings::new(
            vec![format!("{}/*.yaml", self.rules_dir().display())],
            self.dir.path().join("ruler.sqlite"),
        );
        s.watch_files = false;
        s
    }

    async fn start(&self, settings: RulerSettings, sighup: bool) -> Running {
        let (sink, alerts) = ChannelSink::new(64);
        let shutdown = CancellationToken::new();
        let (handle, task, initial) = start(
            settings,
            self.store.clone(),
            RulerOptions {
                sink: Some(Arc::new(sink)),
                clock: self.clock.clone(),
                reload_on_sighup: sighup,
                ..RulerOptions::default()
            },
            shutdown.clone(),
        )
        .await
        .unwrap();
        Running {
            handle,
            task,
            shutdown,
            alerts,
            initial,
        }
    }

    fn add(&self, pairs: &[(&str, &str)], t: i64, v: f64) {
        self.store
            .append(&[(Labels::from_pairs(pairs.iter().copied()), t, v)])
            .unwrap();
    }

    fn samples(&self, name: &str) -> Vec<(Labels, Vec<Sample>)> {
        self.store
            .select(
                &[Matcher::new(MatchOp::Equal, "__name__", name)],
                i64::MIN,
                i64::MAX,
            )
            .unwrap()
            .into_iter()
            .map(|s| (s.labels, s.samples))
            .collect()
    }
}

impl Running {
    /// Moves the clock to `t` and waits until one more evaluation is done.
    async fn eval_at(&self, clock: &ManualClock, t: i64) {
        let mut evals = self.handle.evaluations();
        let before = *evals.borrow_and_update();
        clock.set(t);
        tokio::time::timeout(DEADLINE, evals.wait_for(|n| *n > before))
            .await
            .expect("evaluation within the deadline")
            .unwrap();
    }

    /// Waits (within the deadline) until `cond` holds, re-checking after
    /// every evaluation.
    async fn until(&self, cond: impl Fn(&RulerHandle) -> bool) {
        // Subscribed before the first check: an evaluation finishing in
        // between is still seen as a change.
        let mut evals = self.handle.evaluations();
        tokio::time::timeout(DEADLINE, async {
            while !cond(&self.handle) {
                evals.changed().await.unwrap();
            }
        })
        .await
        .expect("condition within the deadline");
    }

    fn group(&self, name: &str) -> Arc<GroupSnapshot> {
        self.handle
            .groups()
            .into_iter()
            .find(|g| g.name == name)
            .unwrap_or_else(|| panic!("group {name} not loaded"))
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

fn first_slot_of(file: &str, group: &str, interval: i64, now: i64) -> i64 {
    schedule::first_slot(now, interval, schedule::offset_ms(file, group, interval))
}

const ALERT_RULES: &str = "groups:
- name: g
  interval: 10s
  rules:
  - record: up:doubled
    expr: up * 2
  - alert: Down
    expr: up == 0
    for: 20s
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.instance }} is down'
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_evaluate_at_their_aligned_slots_and_alerts_go_pending_then_firing() {
    let fx = Fixture::new();
    let file = fx.write("a.yaml", ALERT_RULES);
    fx.add(&[("__name__", "up"), ("instance", "h1")], T0, 0.0);
    let mut settings = fx.settings();
    settings.external_labels = Labels::from_pairs([("cluster", "eu1"), ("severity", "ignored")]);
    settings.external_url = "https://tocsin.example".into();
    let mut r = fx.start(settings, false).await;
    assert_eq!(
        r.initial.clone().unwrap(),
        ReloadSummary {
            files: 1,
            groups: 1,
            rules: 2
        }
    );
    assert_eq!(r.group("g").rules[0].health, RuleHealth::Unknown);
    let slot = first_slot_of(&file, "g", 10 * SEC, T0);
    assert!(slot > T0 && slot <= T0 + 10 * SEC);

    // Just before the slot nothing happens; at the slot the group runs.
    fx.clock.set(slot - 1);
    r.eval_at(&fx.clock, slot).await;
    let g = r.group("g");
    assert_eq!(g.last_evaluation_ms, Some(slot));
    assert!(g.rules.iter().all(|r| r.health == RuleHealth::Ok));
    let doubled = fx.samples("up:doubled");
    assert_eq!(doubled[0].1, vec![Sample { t: slot, v: 0.0 }]);
    let alerting = g.rules[1].alerting.clone().unwrap();
    assert_eq!(alerting.state, AlertState::Pending);
    assert_eq!(alerting.alerts[0].labels.get("severity"), "page");
    assert_eq!(alerting.alerts[0].annotations[0].1, "h1 is down");
    assert!(r.alerts.try_recv().is_err(), "pending alerts are not sent");
    let dropped = |r: &Running| {
        r.handle
            .self_metrics()
            .into_iter()
            .find(|(l, _)| l.metric_name() == "tocsin_rules_alerts_dropped_total")
            .map(|(_, v)| v)
    };
    assert_eq!(dropped(&r), Some(0.0));

    r.eval_at(&fx.clock, slot + 10 * SEC).await;
    r.eval_at(&fx.clock, slot + 20 * SEC).await;
    let alerting = r.group("g").rules[1].alerting.clone().unwrap();
    assert_eq!(alerting.state, AlertState::Firing);
    let sent = r.alerts.try_recv().unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].labels.get("alertname"), "Down");
    // External labels are added under the alert's own.
    assert_eq!(sent[0].labels.get("cluster"), "eu1");
    assert_eq!(sent[0].labels.get("severity"), "page");
    assert_eq!(
        sent[0].generator_url,
        "https://tocsin.example/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
    );
    assert_eq!(sent[0].starts_at_ms, slot + 20 * SEC);
    assert!(!sent[0].resolved);
    let firing: Vec<_> = fx
        .samples("ALERTS")
        .into_iter()
        .filter(|(l, _)| l.get("alertstate") == "firing")
        .collect();
    assert_eq!(
        firing[0].1.last(),
        Some(&Sample {
            t: slot + 20 * SEC,
            v: 1.0
        })
    );

    let m = r
        .handle
        .metrics()
        .group(&metrics::group_label(&file, "g"))
        .unwrap();
    assert_eq!(m.evaluations, 3);
    assert_eq!(m.last_evaluation_ms, Some(slot + 20 * SEC));

    // The instance comes back: the resolution is handed over at once.
    fx.add(
        &[("__name__", "up"), ("instance", "h1")],
        slot + 25 * SEC,
        1.0,
    );
    r.eval_at(&fx.clock, slot + 30 * SEC).await;
    let sent = r.alerts.try_recv().unwrap();
    assert!(sent[0].resolved);
    assert_eq!(sent[0].ends_at_ms, slot + 30 * SEC);
    assert!(
        r.group("g").rules[1]
            .alerting
            .clone()
            .unwrap()
            .alerts
            .is_empty()
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_wake_up_skips_to_the_latest_slot_and_counts_the_missed_ones() {
    let fx = Fixture::new();
    let file = fx.write("a.yaml", ALERT_RULES);
    let r = fx.start(fx.settings(), false).await;
    let slot = first_slot_of(&file, "g", 10 * SEC, T0);
    r.eval_at(&fx.clock, slot + 35 * SEC).await;
    assert_eq!(r.group("g").last_evaluation_ms, Some(slot + 30 * SEC));
    let m = r
        .handle
        .metrics()
        .group(&metrics::group_label(&file, "g"))
        .unwrap();
    assert_eq!(m.iterations_missed, 3);
    assert_eq!(m.evaluations, 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_keeps_the_old_rules_and_says_where() {
    let fx = Fixture::new();
    let file = fx.write("a.yaml", ALERT_RULES);
    let r = fx.start(fx.settings(), false).await;
    assert_eq!(r.handle.metrics().last_reload_successful(), Some(true));
    fx.write(
        "a.yaml",
        "groups:\n- name: g\n  rules:\n  - record: broken\n    expr: sum(up\n",
    );
    let err = r.handle.reload().await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with(&format!("{file}:5:")), "{text}");
    assert_eq!(r.handle.metrics().last_reload_successful(), Some(false));
    let reload_ok = r
        .handle
        .metrics()
        .samples()
        .into_iter()
        .find(|(l, _)| l.metric_name() == "tocsin_rules_last_reload_successful")
        .map(|(_, v)| v);
    assert_eq!(reload_ok, Some(0.0));
    // The old group still runs.
    let g = r.group("g");
    assert_eq!(g.rules.len(), 2);
    let slot = first_slot_of(&file, "g", 10 * SEC, T0);
    r.eval_at(&fx.clock, slot).await;
    assert_eq!(r.group("g").last_evaluation_ms, Some(slot));

    fx.write("a.yaml", ALERT_RULES);
    r.handle.reload().await.unwrap();
    assert_eq!(r.handle.metrics().last_reload_successful(), Some(true));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_carries_the_alert_state_of_unchanged_rules_over() {
    let fx = Fixture::new();
    let file = fx.write("a.yaml", ALERT_RULES);
    fx.add(&[("__name__", "up"), ("instance", "h1")], T0, 0.0);
    let r = fx.start(fx.settings(), false).await;
    let slot = first_slot_of(&file, "g", 10 * SEC, T0);
    r.eval_at(&fx.clock, slot).await;
    // Another rule added, `Down` unchanged.
    fx.write(
        "a.yaml",
        &format!("{ALERT_RULES}  - record: extra\n    expr: vector(1)\n"),
    );
    let s = r.handle.reload().await.unwrap();
    assert_eq!(s.rules, 3);
    let a = r.group("g").rules[1].alerting.clone().unwrap();
    assert_eq!(a.alerts[0].active_at, slot);
    assert_eq!(a.state, AlertState::Pending);
    // And it fires on the original schedule.
    r.eval_at(&fx.clock, slot + 10 * SEC).await;
    r.eval_at(&fx.clock, slot + 20 * SEC).await;
    let a = r.group("g").rules[1].alerting.clone().unwrap();
    assert_eq!(a.state, AlertState::Firing);
    r.stop().await;
}

const SLOW_ALERT: &str = "groups:
- name: g
  interval: 10s
  rules:
  - alert: Down
    expr: up == 0
    for: 1m
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_alert_keeps_its_for_progress_across_a_restart() {
    let fx = Fixture::new();
    let file = fx.write("a.yaml", SLOW_ALERT);
    for i in 0..20 {
        fx.add(
            &[("__name__", "up"), ("instance", "h1")],
            T0 + i * 10 * SEC,
            0.0,
        );
    }
    let mut settings = fx.settings();
    settings.for_grace_period_ms = 0;
    let r = fx.start(settings.clone(), false).await;
    let slot = first_slot_of(&file, "g", 10 * SEC, T0);
    r.eval_at(&fx.clock, slot).await;
    r.eval_at(&fx.clock, slot + 10 * SEC).await;
    r.stop().await;

    // Down for 30s; the 10s of progress made before is kept, the downtime
    // does not count (as Prometheus' `for` restoration).
    fx.clock.set(slot + 40 * SEC);
    let r = fx.start(settings, false).await;
    let a = r.group("g").rules[0].alerting.clone().unwrap();
    assert_eq!(a.state, AlertState::Pending);
    assert_eq!(a.alerts[0].active_at, slot + 30 * SEC);
    r.eval_at(&fx.clock, slot + 50 * SEC).await;
    assert_eq!(
        r.group("g").rules[0].alerting.clone().unwrap().state,
        AlertState::Pending
    );
    r.eval_at(&fx.clock, slot + 90 * SEC).await;
    assert_eq!(
        r.group("g").rules[0].alerting.clone().unwrap().state,
        AlertState::Firing,
        "fires after 60s of observed condition: 10s before the restart, 50s after"
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_older_than_the_outage_tolerance_is_not_restored() {
    let fx = Fixture::new();
    let file = fx.write("a.yaml", SLOW_ALERT);
    fx.add(&[("__name__", "up"), ("instance", "h1")], T0, 0.0);
    let r = fx.start(fx.settings(), false).await;
    let slot = first_slot_of(&file, "g", 10 * SEC, T0);
    r.eval_at(&fx.clock, slot).await;
    assert_eq!(
        r.group("g").rules[0].alerting.clone().unwrap().alerts.len(),
        1
    );
    r.stop().await;
    fx.clock.set(slot + 2 * 3600 * SEC);
    let r = fx.start(fx.settings(), false).await;
    assert!(
        r.group("g").rules[0]
            .alerting
            .clone()
            .unwrap()
            .alerts
            .is_empty()
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_group_marks_its_series_stale_and_forgets_its_state() {
    let fx = Fixture::new();
    let two = "groups:
- name: keep
  interval: 10s
  rules:
  - record: kept
    expr: vector(1)
- name: gone
  interval: 10s
  rules:
  - alert: Always
    expr: vector(1)
    for: 1m
";
    let file = fx.write("a.yaml", two);
    let r = fx.start(fx.settings(), false).await;
    let slot =
        first_slot_of(&file, "gone", 10 * SEC, T0).max(first_slot_of(&file, "keep", 10 * SEC, T0));
    fx.clock.set(slot);
    r.until(|h| h.groups().iter().all(|g| g.last_evaluation_ms.is_some()))
        .await;
    let db = StateDb::open(&fx.dir.path().join("ruler.sqlite")).unwrap();
    assert!(db.load(&file, "gone").unwrap().is_some());
    fx.write(
        "a.yaml",
        "groups:\n- name: keep\n  interval: 10s\n  rules:\n  - record: kept\n    expr: vector(1)\n",
    );
    fx.clock.set(slot + 5 * SEC);
    r.handle.reload().await.unwrap();
    assert!(db.load(&file, "gone").unwrap().is_none());
    let alerts = fx.samples("ALERTS");
    let last = alerts[0].1.last().copied().unwrap();
    assert_eq!(last.t, slot + 5 * SEC);
    assert!(is_stale(last.v));
    assert!(
        r.handle
            .metrics()
            .group(&metrics::group_label(&file, "gone"))
            .is_none()
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_metrics_are_published_and_a_file_change_reloads() {
    let fx = Fixture::new();
    fx.write(
        "a.yaml",
        "log_metrics:\n- name: api_timeouts_total\n  selector: '{service_name=\"api\"}'\n  pattern: timeout\n",
    );
    let mut settings = fx.settings();
    settings.watch_files = true;
    let r = fx.start(settings, false).await;
    let mut lm = r.handle.log_metrics();
    assert_eq!(lm.borrow_and_update()[0].name, "api_timeouts_total");
    fx.write(
        "b.yaml",
        "log_metrics:\n- name: db_errors_total\n  selector: '{service_name=\"db\"}'\n",
    );
    tokio::time::timeout(DEADLINE, lm.changed())
        .await
        .expect("reload after the file change")
        .unwrap();
    let names: Vec<String> = lm.borrow().iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, vec!["api_timeouts_total", "db_errors_total"]);
    r.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads() {
    let fx = Fixture::new();
    fx.write("a.yaml", ALERT_RULES);
    let r = fx.start(fx.settings(), true).await;
    let mut lm = r.handle.log_metrics();
    lm.borrow_and_update();
    fx.write(
        "b.yaml",
        "log_metrics:\n- name: hup_total\n  selector: '{service_name=\"x\"}'\n",
    );
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(DEADLINE, lm.changed())
        .await
        .expect("reload after SIGHUP")
        .unwrap();
    assert_eq!(lm.borrow()[0].name, "hup_total");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_at_start_leaves_an_empty_running_ruler() {
    let fx = Fixture::new();
    fx.write("a.yaml", "groups:\n- name: g\n  rules:\n  - record: r\n");
    let r = fx.start(fx.settings(), false).await;
    assert!(matches!(r.initial, Err(ReloadError::Invalid(_))));
    assert!(r.handle.groups().is_empty());
    fx.write("a.yaml", ALERT_RULES);
    assert_eq!(r.handle.reload().await.unwrap().groups, 1);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_reads_what_an_earlier_rule_recorded_in_the_same_evaluation() {
    let fx = Fixture::new();
    let file = fx.write(
        "a.yaml",
        "groups:
- name: g
  interval: 10s
  rules:
  - record: a
    expr: vector(1)
  - record: b
    expr: a + 1
  - record: a
    expr: vector(5)
",
    );
    let r = fx.start(fx.settings(), false).await;
    let slot = first_slot_of(&file, "g", 10 * SEC, T0);
    r.eval_at(&fx.clock, slot).await;
    assert_eq!(fx.samples("b")[0].1, vec![Sample { t: slot, v: 2.0 }]);
    // The third rule writes `a` again with another value: refused, and
    // the rule says why, as Prometheus.
    let g = r.group("g");
    assert_eq!(g.rules[2].health, RuleHealth::Err);
    assert_eq!(
        g.rules[2].last_error.as_deref(),
        Some("duplicate sample for timestamp")
    );
    assert_eq!(fx.samples("a")[0].1, vec![Sample { t: slot, v: 1.0 }]);
    r.stop().await;
}
