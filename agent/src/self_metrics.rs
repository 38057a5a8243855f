//! The agent's own metrics for OTLP export (`telemetry.otlp`): the
//! counters its run loop logs every minute (lines and bytes read, records
//! shipped and dropped, batches sent, spooled and given up, send failures,
//! spool evictions) and the batches waiting, as observable instruments.
//!
//! The pipeline publishes a copy of its counters as it works; the
//! instruments read the latest copy when the SDK collects. Invariants:
//! counters stay monotonic across configuration reloads (a stopped
//! pipeline's totals are kept as a base for the next one's); with a
//! disabled [`SelfMetrics`] nothing is registered and publishing is a
//! no-op.

use std::sync::{Arc, Mutex, MutexGuard};

use tocsin_telemetry::SelfMetrics;

use crate::export::ExportCounters;
use crate::sources::logtail::Counters as TailerCounters;
use crate::spool::SpoolCounters;

/// One pipeline's counters, as published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    pub export: ExportCounters,
    pub spool: SpoolCounters,
    pub tailer: TailerCounters,
    /// Batches waiting in memory and in the spool.
    pub memory_batches: usize,
    pub spool_batches: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Sums of the stopped pipelines' counters.
    base: Published,
    current: Published,
}

/// The monotonic counters exported, by name, with how each is read.
type Read = fn(&Published) -> u64;
const COUNTERS: [(&str, &str, Read); 13] = [
    (
        "tocsin_agent_log_lines_read_total",
        "Log lines read from the inputs.",
        |p| p.tailer.lines_read,
    ),
    (
        "tocsin_agent_log_read_bytes_total",
        "Bytes read from the log inputs.",
        |p| p.tailer.bytes_read,
    ),
    (
        "tocsin_agent_log_records_read_total",
        "Log records (multiline joined) read.",
        |p| p.tailer.records_read,
    ),
    (
        "tocsin_agent_log_records_shipped_total",
        "Log records the collector acknowledged.",
        |p| p.tailer.records_acked,
    ),
    (
        "tocsin_agent_log_records_filtered_total",
        "Log records below the input's minimum severity.",
        |p| p.tailer.records_filtered,
    ),
    (
        "tocsin_agent_log_records_dropped_total",
        "Log records in batches the exporter gave up on.",
        |p| p.tailer.records_dropped,
    ),
    (
        "tocsin_agent_export_batches_sent_total",
        "Batches the collector acknowledged.",
        |p| p.export.batches_sent,
    ),
    (
        "tocsin_agent_export_batches_spooled_total",
        "Batches written to the on-disk spool.",
        |p| p.export.batches_spooled,
    ),
    (
        "tocsin_agent_export_batches_rejected_total",
        "Batches the collector refused for good (dropped).",
        |p| p.export.batches_rejected,
    ),
    (
        "tocsin_agent_export_batches_unspoolable_total",
        "Batches dropped because the spool could not take them.",
        |p| p.export.batches_unspoolable,
    ),
    (
        "tocsin_agent_export_send_failures_total",
        "Sends that failed and are retried.",
        |p| p.export.send_failures,
    ),
    (
        "tocsin_agent_spool_evicted_metrics_total",
        "Metrics batches evicted from the full spool.",
        |p| p.spool.evicted_metrics,
    ),
    (
        "tocsin_agent_spool_evicted_logs_total",
        "Log batches evicted from the full spool.",
        |p| p.spool.evicted_logs,
    ),
];

/// Where the running pipeline publishes its counters; cheap to clone.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    state: Option<Arc<Mutex<State>>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every update is a whole-value assignment: a panicking holder cannot
    // leave it half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl AgentMetrics {
    /// Registers the agent's instruments with `metrics`.
    pub fn register(metrics: &SelfMetrics) -> AgentMetrics {
        if !metrics.is_enabled() {
            return AgentMetrics { state: None };
        }
        let state = Arc::new(Mutex::new(State::default()));
        for (name, description, read) in COUNTERS {
            let state = state.clone();
            metrics.counter(name, description, move |o| {
                let st = lock(&state);
                o.observe(read(&st.base) + read(&st.current), &[]);
            });
        }
        let s = state.clone();
        metrics.gauge(
            "tocsin_agent_export_pending_batches",
            "Batches waiting to be sent, by where they wait.",
            "",
            move |o| {
                let st = lock(&s);
                o.observe(st.current.memory_batches as f64, &[("queue", "memory")]);
                o.observe(st.current.spool_batches as f64, &[("queue", "spool")]);
            },
        );
        AgentMetrics { state: Some(state) }
    }

    /// Whether anything reads what is published.
    pub fn is_enabled(&self) -> bool {
        self.state.is_some()
    }

    /// The running pipeline's counters now.
    pub fn publish(&self, current: Published) {
        if let Some(state) = &self.state {
            lock(state).current = current;
        }
    }

    /// The running pipeline stopped: its totals become part of the base.
    pub fn retire(&self) {
        if let Some(state) = &self.state {
            let mut st = lock(state);
            let done = std::mem::take(&mut st.current);
            add(&mut st.base, &done);
        }
    }
}

/// Adds the counters of `done` to `base` (the gauges are not summed).
fn add(base: &mut Published, done: &Published) {
    let (b, d) = (&mut base.tailer, &done.tailer);
    b.lines_read += d.lines_read;
    b.bytes_read += d.bytes_read;
    b.records_read += d.records_read;
    b.records_acked += d.records_acked;
    b.records_filtered += d.records_filtered;
    b.records_dropped += d.records_dropped;
    let (b, d) = (&mut base.export, &done.export);
    b.batches_sent += d.batches_sent;
    b.batches_spooled += d.batches_spooled;
    b.batches_rejected += d.batches_rejected;
    b.batches_unspoolable += d.batches_unspoolable;
    b.send_failures += d.send_failures;
    let (b, d) = (&mut base.spool, &done.spool);
    b.evicted_metrics += d.evicted_metrics;
    b.evicted_logs += d.evicted_logs;
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

    /// The value of the u64 counter `name` in what `exporter` holds.
    fn exported(exporter: &InMemoryMetricExporter, name: &str) -> Option<u64> {
        let all = exporter.get_finished_metrics().unwrap();
        let last = all.last()?;
        last.scope_metrics()
            .flat_map(|s| s.metrics())
            .filter(|m| m.name() == name)
            .find_map(|m| match m.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    sum.data_points().next().map(|p| p.value())
                }
                _ => None,
            })
    }

    #[test]
    fn counters_are_exported_and_stay_monotonic_across_pipelines() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let m = AgentMetrics::register(&SelfMetrics::from_provider(&provider, "test"));
        let mut p = Published::default();
        p.tailer.lines_read = 10;
        p.export.batches_sent = 2;
        p.spool.evicted_metrics = 1;
        m.publish(p.clone());
        // A reload: the first pipeline stops, the next starts from zero.
        m.retire();
        p.tailer.lines_read = 3;
        m.publish(p);
        provider.force_flush().unwrap();
        assert_eq!(
            exported(&exporter, "tocsin_agent_log_lines_read_total"),
            Some(13)
        );
        assert_eq!(
            exported(&exporter, "tocsin_agent_export_batches_sent_total"),
            Some(4)
        );
        assert_eq!(
            exported(&exporter, "tocsin_agent_spool_evicted_metrics_total"),
            Some(2)
        );
        provider.shutdown().unwrap();
    }

    #[test]
    fn disabled_registers_nothing() {
        let m = AgentMetrics::register(&SelfMetrics::disabled());
        assert!(!m.is_enabled());
        m.publish(Published::default());
        m.retire();
    }
}
