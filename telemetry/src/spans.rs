//! The bound on finished spans waiting for export, with its drops counted.
//!
//! The SDK's batch processor has a bounded queue, but it only logs its
//! drops (the first one, and the total at shutdown). In front of it,
//! [`BoundedProcessor`] admits a span only while fewer than
//! `max_queued_spans` admitted spans have not yet been handed to the
//! exporter ([`CountingExporter`] counts those), and counts the others as
//! dropped: `tocsin_telemetry_spans_dropped_total`, and a warning log line
//! at most once a minute while spans are dropped, and at shutdown. (The
//! line is written from the export thread: a span ends inside the tracing
//! subscriber, where a log event would be swallowed.) The processor's own
//! queue is a little larger than the bound, so that the few spans that
//! race past the check never make it drop one uncounted.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor};

use crate::SelfMetrics;

/// Room in the batch processor's queue beyond the bound, for spans that
/// pass the check at the same moment on different threads.
pub(crate) const QUEUE_SLACK: usize = 256;
/// Least time between two warnings about dropped spans.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Counters shared by the processor, the exporter and the instruments.
#[derive(Debug)]
pub(crate) struct SpanCounts {
    max: u64,
    /// Spans handed to the batch processor.
    admitted: AtomicU64,
    /// Spans handed to the exporter.
    exported: AtomicU64,
    /// Of those, in exports that failed.
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Drops already said in a log line, and when.
    reported: Mutex<(u64, Option<Instant>)>,
}

impl SpanCounts {
    pub(crate) fn new(max_queued_spans: usize) -> Arc<SpanCounts> {
        Arc::new(SpanCounts {
            max: max_queued_spans as u64,
            admitted: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reported: Mutex::new((0, None)),
        })
    }

    /// Logs the drops not said yet, at most once per [`WARN_EVERY`] unless
    /// `now_or_never` (shutdown).
    fn warn_dropped(&self, now_or_never: bool) {
        let dropped = self.dropped.load(Ordering::Relaxed);
        let mut r = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let due = r.1.is_none_or(|at| at.elapsed() >= WARN_EVERY);
        if dropped > r.0 && (due || now_or_never) {
            tracing::warn!(
                dropped = dropped - r.0,
                dropped_total = dropped,
                max_queued_spans = self.max,
                "telemetry: spans dropped, the OTLP exporter is behind (tocsin_telemetry_spans_dropped_total)"
            );
            *r = (dropped, Some(Instant::now()));
        }
    }

    /// Registers the span counters with `metrics`.
    pub(crate) fn register(self: &Arc<Self>, metrics: &SelfMetrics) {
        let c = self.clone();
        metrics.counter(
            "tocsin_telemetry_spans_dropped_total",
            "Finished spans dropped because max_queued_spans were waiting for export.",
            move |o| o.observe(c.dropped.load(Ordering::Relaxed), &[]),
        );
        let c = self.clone();
        metrics.counter(
            "tocsin_telemetry_spans_exported_total",
            "Spans handed to the OTLP exporter, by the outcome of their request.",
            move |o| {
                let failed = c.failed.load(Ordering::Relaxed);
                let all = c.exported.load(Ordering::Relaxed);
                o.observe(all.saturating_sub(failed), &[("outcome", "ok")]);
                o.observe(failed, &[("outcome", "failed")]);
            },
        );
    }
}

/// The batch processor behind the bound.
#[derive(Debug)]
pub(crate) struct BoundedProcessor {
    pub(crate) inner: BatchSpanProcessor,
    pub(crate) counts: Arc<SpanCounts>,
}

impl SpanProcessor for BoundedProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let c = &self.counts;
        let waiting = c
            .admitted
            .load(Ordering::Acquire)
            .saturating_sub(c.exported.load(Ordering::Acquire));
        if waiting >= c.max {
            c.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        c.admitted.fetch_add(1, Ordering::AcqRel);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let result = self.inner.shutdown_with_timeout(timeout);
        self.counts.warn_dropped(true);
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting what it is handed.
#[derive(Debug)]
pub(crate) struct CountingExporter<E> {
    pub(crate) inner: E,
    pub(crate) counts: Arc<SpanCounts>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let n = batch.len() as u64;
        self.counts.exported.fetch_add(n, Ordering::AcqRel);
        self.counts.warn_dropped(false);
        let counts = self.counts.clone();
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            if result.is_err() {
                counts.failed.fetch_add(n, Ordering::Relaxed);
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
