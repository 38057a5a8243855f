//! The ruler across an abrupt stop: the first life runs on its own tokio
//! runtime, which is dropped without any shutdown (as close to `kill -9`
//! as a test process gets: no task runs another line); the second life
//! reopens the series store from its write-ahead log and the alert state
//! from SQLite, and must carry on where the first stopped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tocsin_collector::ruler::{
    self, ManualClock, RulerHandle, RulerOptions, RulerSettings, schedule,
};
use tocsin_collector::store::SeriesStore;
use tocsin_collector::store::head::HeadOptions;
use tocsin_collector::store::wal::WalOptions;
use tocsin_rules::alert::AlertState;
use tocsin_rules::promql::storage::{MatchOp, Matcher, Queryable};
use tocsin_rules::promql::{Labels, Sample};
use tokio_util::sync::CancellationToken;

const T0: i64 = 1_700_000_001_000;
const SEC: i64 = 1000;

const RULES: &str = "groups:
- name: g
  interval: 10s
  rules:
  - record: up:x2
    expr: up * 2
  - alert: Down
    expr: up == 0
    for: 1m
";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open_store(dir: &Path) -> Arc<SeriesStore> {
    let (s, _) = SeriesStore::open(
        &dir.join("wal"),
        HeadOptions::default(),
        WalOptions::default(),
    )
    .unwrap();
    Arc::new(s)
}

fn settings(dir: &Path) -> RulerSettings {
    let mut s = RulerSettings::new(
        vec![format!("{}/rules/*.yaml", dir.display())],
        dir.join("ruler.sqlite"),
    );
    s.watch_files = false;
    // No grace period: the restored `for` arithmetic is checked exactly.
    s.for_grace_period_ms = 0;
    s
}

async fn start(dir: &Path, store: Arc<SeriesStore>, clock: Arc<ManualClock>) -> RulerHandle {
    let (handle, _task, initial) = ruler::start(
        settings(dir),
        store,
        RulerOptions {
            clock,
            ..RulerOptions::default()
        },
        CancellationToken::new(),
    )
    .await
    .unwrap();
    initial.unwrap();
    handle
}

async fn eval_at(h: &RulerHandle, clock: &ManualClock, t: i64) {
    let mut evals = h.evaluations();
    let before = *evals.borrow_and_update();
    clock.set(t);
    tokio::time::timeout(Duration::from_secs(20), evals.wait_for(|n| *n > before))
        .await
        .expect("evaluation within the deadline")
        .unwrap();
}

fn down_alert(h: &RulerHandle) -> (AlertState, Vec<i64>) {
    let g = &h.groups()[0];
    let a = g.rules[1].alerting.clone().unwrap();
    (a.state, a.alerts.iter().map(|a| a.active_at).collect())
}

fn series(store: &SeriesStore, name: &str) -> Vec<Sample> {
    store
        .select(
            &[Matcher::new(MatchOp::Equal, "__name__", name)],
            i64::MIN,
            i64::MAX,
        )
        .unwrap()
        .into_iter()
        .flat_map(|s| s.samples)
        .collect()
}

#[test]
fn an_abrupt_stop_keeps_recorded_series_and_for_progress() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    let file = dir.path().join("rules/a.yaml");
    std::fs::write(&file, RULES).unwrap();
    let file = file.display().to_string();
    let slot = schedule::first_slot(T0, 10 * SEC, schedule::offset_ms(&file, "g", 10 * SEC));
    let clock = Arc::new(ManualClock::new(T0));

    // First life: the alert is pending for 10s, then the process dies.
    let rt = runtime();
    rt.block_on(async {
        let store = open_store(dir.path());
        let up = Labels::from_pairs([("__name__", "up"), ("instance", "h1")]);
        let batch: Vec<_> = (0..30)
            .map(|i| (up.clone(), T0 + i * 10 * SEC, 0.0))
            .collect();
        store.append(&batch).unwrap();
        let h = start(dir.path(), store, clock.clone()).await;
        eval_at(&h, &clock, slot).await;
        eval_at(&h, &clock, slot + 10 * SEC).await;
        assert_eq!(down_alert(&h), (AlertState::Pending, vec![slot]));
    });
    drop(rt);

    // Second life, 30s later.
    let rt = runtime();
    rt.block_on(async {
        let store = open_store(dir.path());
        assert_eq!(
            series(&store, "up:x2"),
            vec![
                Sample { t: slot, v: 0.0 },
                Sample {
                    t: slot + 10 * SEC,
                    v: 0.0
                }
            ],
            "recorded samples are durable"
        );
        assert_eq!(series(&store, "ALERTS").len(), 2);
        clock.set(slot + 40 * SEC);
        let h = start(dir.path(), store.clone(), clock.clone()).await;
        // 10s of progress kept; the 30s down do not count.
        assert_eq!(down_alert(&h), (AlertState::Pending, vec![slot + 30 * SEC]));
        eval_at(&h, &clock, slot + 80 * SEC).await;
        assert_eq!(down_alert(&h).0, AlertState::Pending);
        eval_at(&h, &clock, slot + 90 * SEC).await;
        assert_eq!(down_alert(&h).0, AlertState::Firing);
        let firing: Vec<Sample> = store
            .select(
                &[
                    Matcher::new(MatchOp::Equal, "__name__", "ALERTS"),
                    Matcher::new(MatchOp::Equal, "alertstate", "firing"),
                ],
                i64::MIN,
                i64::MAX,
            )
            .unwrap()
            .into_iter()
            .flat_map(|s| s.samples)
            .collect();
        assert_eq!(
            firing,
            vec![Sample {
                t: slot + 90 * SEC,
                v: 1.0
            }]
        );
    });
}
