//! The receivers' self metrics: every request, accepted item and refusal,
//! as monotonic counters that `/metrics` and the collector's own series
//! read through [`ReceiverCounters::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

use crate::translate::metrics::MetricRefusals;

/// Counters shared by both transports.
#[derive(Debug, Default)]
pub struct ReceiverCounters {
    pub metrics_requests: AtomicU64,
    pub logs_requests: AtomicU64,
    pub data_points_received: AtomicU64,
    pub samples_stored: AtomicU64,
    pub samples_duplicate: AtomicU64,
    pub log_records_received: AtomicU64,
    pub log_records_stored: AtomicU64,
    pub log_records_duplicate: AtomicU64,
    pub attributes_dropped: AtomicU64,
    /// `target_info` series left out for exceeding the label limits.
    pub target_info_dropped: AtomicU64,

    // Data points refused by the translation.
    pub refused_exponential_histogram: AtomicU64,
    pub refused_future_timestamp: AtomicU64,
    pub refused_missing_timestamp: AtomicU64,
    pub refused_invalid_name: AtomicU64,
    pub refused_invalid_point: AtomicU64,
    pub refused_label_limits: AtomicU64,
    pub refused_delta_state_full: AtomicU64,
    pub refused_delta_out_of_order: AtomicU64,
    // Samples refused after translation.
    pub refused_series_limit: AtomicU64,
    pub refused_too_old: AtomicU64,
    pub refused_duplicate_timestamp: AtomicU64,
    // Log records refused.
    pub log_records_refused_future: AtomicU64,
    pub log_records_refused_label_limits: AtomicU64,
    pub log_records_refused_by_store: AtomicU64,

    // Whole requests refused.
    pub requests_unauthenticated: AtomicU64,
    pub requests_too_large: AtomicU64,
    pub requests_malformed: AtomicU64,
    pub requests_unsupported: AtomicU64,
    pub requests_sink_failed: AtomicU64,
    pub requests_overloaded: AtomicU64,
    pub requests_timed_out: AtomicU64,
}

fn add(c: &AtomicU64, n: usize) {
    if n > 0 {
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// One counter value for exposition: name, labels, value.
pub type CounterValue = (&'static str, Vec<(&'static str, &'static str)>, u64);

impl ReceiverCounters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, n: usize) {
        add(c, n);
    }

    pub(crate) fn add_metric_refusals(&self, r: &MetricRefusals) {
        add(&self.refused_exponential_histogram, r.exponential_histogram);
        add(&self.refused_future_timestamp, r.future_timestamp);
        add(&self.refused_missing_timestamp, r.missing_timestamp);
        add(&self.refused_invalid_name, r.invalid_name);
        add(&self.refused_invalid_point, r.invalid_point);
        add(&self.refused_label_limits, r.label_limits);
        add(&self.refused_delta_state_full, r.delta_state_full);
        add(&self.refused_delta_out_of_order, r.delta_out_of_order);
    }

    /// All counters as Prometheus series
    /// (`tocsin_receiver_<thing>_total{labels}`).
    pub fn snapshot(&self) -> Vec<CounterValue> {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let refused = "tocsin_receiver_refused_total";
        let requests_refused = "tocsin_receiver_requests_refused_total";
        vec![
            (
                "tocsin_receiver_requests_total",
                vec![("signal", "metrics")],
                g(&self.metrics_requests),
            ),
            (
                "tocsin_receiver_requests_total",
                vec![("signal", "logs")],
                g(&self.logs_requests),
            ),
            (
                "tocsin_receiver_data_points_total",
                vec![],
                g(&self.data_points_received),
            ),
            (
                "tocsin_receiver_samples_stored_total",
                vec![],
                g(&self.samples_stored),
            ),
            (
                "tocsin_receiver_samples_duplicate_total",
                vec![],
                g(&self.samples_duplicate),
            ),
            (
                "tocsin_receiver_log_records_total",
                vec![],
                g(&self.log_records_received),
            ),
            (
                "tocsin_receiver_log_records_stored_total",
                vec![],
                g(&self.log_records_stored),
            ),
            (
                "tocsin_receiver_log_records_duplicate_total",
                vec![],
                g(&self.log_records_duplicate),
            ),
            (
                "tocsin_receiver_attributes_dropped_total",
                vec![],
                g(&self.attributes_dropped),
            ),
            (
                "tocsin_receiver_target_info_dropped_total",
                vec![],
                g(&self.target_info_dropped),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "exponential_histogram")],
                g(&self.refused_exponential_histogram),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "future_timestamp")],
                g(&self.refused_future_timestamp),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "missing_timestamp")],
                g(&self.refused_missing_timestamp),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "invalid_name")],
                g(&self.refused_invalid_name),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "invalid_point")],
                g(&self.refused_invalid_point),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "label_limits")],
                g(&self.refused_label_limits),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "delta_state_full")],
                g(&self.refused_delta_state_full),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "delta_out_of_order")],
                g(&self.refused_delta_out_of_order),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "series_limit")],
                g(&self.refused_series_limit),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "too_old")],
                g(&self.refused_too_old),
            ),
            (
                refused,
                vec![("signal", "metrics"), ("reason", "duplicate_timestamp")],
                g(&self.refused_duplicate_timestamp),
            ),
            (
                refused,
                vec![("signal", "logs"), ("reason", "future_timestamp")],
                g(&self.log_records_refused_future),
            ),
            (
                refused,
                vec![("signal", "logs"), ("reason", "label_limits")],
                g(&self.log_records_refused_label_limits),
            ),
            (
                refused,
                vec![("signal", "logs"), ("reason", "store")],
                g(&self.log_records_refused_by_store),
            ),
            (
                requests_refused,
                vec![("reason", "unauthenticated")],
                g(&self.requests_unauthenticated),
            ),
            (
                requests_refused,
                vec![("reason", "too_large")],
                g(&self.requests_too_large),
            ),
            (
                requests_refused,
                vec![("reason", "malformed")],
                g(&self.requests_malformed),
            ),
            (
                requests_refused,
                vec![("reason", "unsupported")],
                g(&self.requests_unsupported),
            ),
            (
                requests_refused,
                vec![("reason", "storage_failed")],
                g(&self.requests_sink_failed),
            ),
            (
                requests_refused,
                vec![("reason", "overloaded")],
                g(&self.requests_overloaded),
            ),
            (
                requests_refused,
                vec![("reason", "timed_out")],
                g(&self.requests_timed_out),
            ),
        ]
    }
}
