//! The collector's own metrics for OTLP export (`telemetry.otlp`): the
//! receivers' counters, the ruler's and the log store's series (the same
//! names and labels `/metrics` shows) as observable instruments read at
//! each export, and both write-ahead logs' commit latency as a histogram
//! (`wal="series"` or `"logs"`).
//!
//! Invariant: with a disabled [`SelfMetrics`] (no `telemetry.otlp`)
//! nothing is registered and nothing is read or recorded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tocsin_rules::promql::Labels;
use tocsin_telemetry::{Observer, SelfMetrics};

use crate::logs::LogStore;
use crate::logs::store::self_series;
use crate::receivers::Ingest;
use crate::ruler::RulerHandle;
use crate::store::SeriesStore;

/// The ruler's series handed over (the per-group ones carry `rule_group`
/// and `file` as `/metrics` does).
const RULER_SERIES: [&str; 11] = [
    "tocsin_rules_group_evaluations_total",
    "tocsin_rules_group_evaluation_failures_total",
    "tocsin_rules_group_iterations_missed_total",
    "tocsin_rules_group_samples_refused_total",
    "tocsin_rules_group_last_duration_seconds",
    "tocsin_rules_group_rules",
    "tocsin_rules_last_reload_successful",
    "tocsin_rules_reloads_total",
    "tocsin_rules_reload_failures_total",
    "tocsin_rules_state_save_failures_total",
    "tocsin_rules_alerts_dropped_total",
];

/// The write-ahead logs' `wal` attribute values.
const WALS: [&str; 2] = ["series", "logs"];

/// Upper bounds of the WAL commit latency buckets, in seconds: a local
/// SSD's fsync is well under a millisecond, a busy disk's tens of them.
const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Registers the collector's own metrics with `metrics`.
pub fn register(
    metrics: &SelfMetrics,
    ingest: &Arc<Ingest>,
    ruler: &RulerHandle,
    series: &SeriesStore,
    logs: &Arc<LogStore>,
) {
    if !metrics.is_enabled() {
        return;
    }
    // Receivers: accepted and refused samples and log records, requests.
    let mut names: Vec<&'static str> = ingest
        .counters()
        .snapshot()
        .into_iter()
        .map(|(name, ..)| name)
        .collect();
    names.dedup();
    for name in names {
        let counters = ingest.counters().clone();
        metrics.counter(name, "OTLP receivers (see /metrics).", move |o| {
            for (n, labels, v) in counters.snapshot() {
                if n == name {
                    o.observe(v, &labels);
                }
            }
        });
    }

    let ruler = ruler.clone();
    let names = RULER_SERIES.iter().map(|n| n.to_string()).collect();
    bridge(
        metrics,
        names,
        "Rule evaluation (see /metrics).",
        move || ruler.self_metrics(),
    );

    let store = logs.clone();
    let log_series = |s: &LogStore| {
        self_series(&s.stats(), 0)
            .into_iter()
            .map(|(l, _, v)| (l, v))
            .collect::<Vec<_>>()
    };
    let mut names: Vec<String> = log_series(logs)
        .iter()
        .map(|(l, _)| l.metric_name().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    bridge(metrics, names, "Log store (see /metrics).", move || {
        log_series(&store)
    });

    // Both write-ahead logs: every group commit's write and fsync, told
    // apart by `wal`.
    let latency = metrics.histogram(
        "tocsin_store_wal_commit_seconds",
        "Time of one write-ahead log group commit (write and fsync), by log (wal=series|logs).",
        "s",
        &COMMIT_BUCKETS,
    );
    let written: Arc<[AtomicU64; 2]> = Arc::new(Default::default());
    let observer = |i: usize| {
        let (latency, bytes) = (latency.clone(), written.clone());
        move |took: std::time::Duration, len: usize| {
            latency.record_with(took.as_secs_f64(), &[("wal", WALS[i])]);
            bytes[i].fetch_add(len as u64, Ordering::Relaxed);
        }
    };
    // Non-short-circuiting: each log gets its observer.
    let installed = series.observe_wal_writes(observer(0)) | logs.observe_wal_writes(observer(1));
    if installed {
        metrics.counter(
            "tocsin_store_wal_written_bytes_total",
            "Bytes written to a write-ahead log by group commits, by log (wal=series|logs).",
            move |o| {
                for (i, wal) in WALS.into_iter().enumerate() {
                    o.observe(written[i].load(Ordering::Relaxed), &[("wal", wal)]);
                }
            },
        );
    }
}

/// Hands the series named `names` that `read` returns over: `_total`
/// names as counters, the others as gauges; labels become attributes.
fn bridge<F>(metrics: &SelfMetrics, names: Vec<String>, description: &'static str, read: F)
where
    F: Fn() -> Vec<(Labels, f64)> + Send + Sync + 'static,
{
    let read = Arc::new(read);
    for name in names {
        let read = read.clone();
        if name.ends_with("_total") {
            metrics.counter(name.clone(), description, move |o| {
                observe(o, &name, &read(), |v| v.max(0.0) as u64)
            });
        } else {
            metrics.gauge(name.clone(), description, "", move |o| {
                observe(o, &name, &read(), |v| v)
            });
        }
    }
}

fn observe<T>(o: &mut Observer<'_, T>, name: &str, series: &[(Labels, f64)], value: fn(f64) -> T) {
    for (labels, v) in series.iter().filter(|(l, _)| l.metric_name() == name) {
        let attributes: Vec<(&str, &str)> = labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        o.observe(value(*v), &attributes);
    }
}
