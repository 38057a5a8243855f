//! OTLP metrics to Prometheus samples, the way Prometheus' own OTLP
//! receiver does it: gauges and sums become one series per data point
//! (monotonic sums gain `_total`), classic histograms become `_bucket{le}`
//! (cumulative counts, `+Inf` = the count), `_sum` and `_count`, summaries
//! become `{quantile}`, `_sum` and `_count`. Exponential histograms are
//! refused (no native histograms in the store yet).
//!
//! Delta temporality is converted to cumulative by a per-series running
//! total. Invariants of that table: it holds at most `max_delta_series`
//! entries (a new series beyond that is refused and counted, after idle
//! entries are evicted); a delta point not newer than the last one applied
//! to its series is never added twice — an equal timestamp (an at-least-once
//! retry) re-emits the same cumulative value, which the store treats as a
//! duplicate, and an older one is refused. Totals live in memory: after a
//! restart a delta series starts again from its next point, which PromQL's
//! `rate` reads as a counter reset.
//!
//! Like Prometheus, each resource with a `job` or `instance` and other
//! attributes also gets a `target_info` series (value 1, labels: `job`,
//! `instance` and the remaining resource attributes) over the span of its
//! accepted samples, one sample every [`TARGET_INFO_STEP_MS`] (half the
//! lookback delta) and at the newest, at most [`TARGET_INFO_MAX_SAMPLES`].
//!
//! Values: NaN and ±Inf pass through as Prometheus stores them (NaN is
//! normalised to the ordinary NaN so that no sender can write a staleness
//! marker by accident); OTLP's `NoRecordedValue` flag becomes the staleness
//! marker. Timestamps go from nanoseconds to milliseconds.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, NumberDataPoint, metric::Data, number_data_point,
};
use tocsin_rules::promql::value::{Label, Labels, METRIC_NAME, stale_nan};

use super::attributes::{
    AgentResource, AgentsSeen, ResourceLabels, float_text, target_info_labels,
};
use super::cache::{Cached, LabelCache, push_len, push_str};
use super::names::{MetricKind, metric_name};

/// One sample as the store takes it: labels, milliseconds, value.
pub type Sample = (Labels, i64, f64);

/// Spacing of `target_info` samples: half of PromQL's 5m lookback delta,
/// so an instant query anywhere in the span finds one.
pub const TARGET_INFO_STEP_MS: i64 = 150_000;
/// At most this many `target_info` samples per resource and request, so a
/// request whose points span years cannot multiply itself.
pub const TARGET_INFO_MAX_SAMPLES: i64 = 100;

/// OTLP's `DataPointFlags.FLAG_NO_RECORDED_VALUE`.
const FLAG_NO_RECORDED_VALUE: u32 = 1;

/// Limits and windows of the translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Points stamped further than this ahead of their arrival are refused.
    pub max_future_ms: i64,
    /// Points with a label name or value longer than this are refused.
    pub max_label_value_bytes: usize,
    /// Points whose series would have more labels (name included) are refused.
    pub max_labels: usize,
    /// Delta series whose running totals are kept at most.
    pub max_delta_series: usize,
    /// A delta series unchanged this long may be evicted to make room.
    pub delta_idle_ms: i64,
    /// Label sets of gauge and sum series kept ready to reuse, so that a
    /// known series' labels are not built again for each point (0: none).
    pub max_cached_label_sets: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            max_future_ms: 10 * 60 * 1000,
            max_label_value_bytes: 2048,
            max_labels: 64,
            max_delta_series: 100_000,
            delta_idle_ms: 60 * 60 * 1000,
            max_cached_label_sets: 100_000,
        }
    }
}

/// Data points refused by the translation, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MetricRefusals {
    pub exponential_histogram: usize,
    pub future_timestamp: usize,
    pub missing_timestamp: usize,
    pub invalid_name: usize,
    /// No value, bucket counts not matching the bounds, or an unspecified
    /// temporality.
    pub invalid_point: usize,
    /// Too many labels or a label value too long.
    pub label_limits: usize,
    pub delta_state_full: usize,
    pub delta_out_of_order: usize,
}

impl MetricRefusals {
    pub fn total(&self) -> usize {
        self.reasons().iter().map(|(n, _)| n).sum()
    }

    fn reasons(&self) -> [(usize, &'static str); 8] {
        [
            (
                self.exponential_histogram,
                "exponential histograms are not supported",
            ),
            (
                self.future_timestamp,
                "timestamp too far in the future (check the sender's clock)",
            ),
            (self.missing_timestamp, "timestamp missing"),
            (
                self.invalid_name,
                "metric name translates to no valid Prometheus name",
            ),
            (
                self.invalid_point,
                "invalid data point (no value, bucket counts not matching bounds, or unspecified temporality)",
            ),
            (
                self.label_limits,
                "too many labels or a label value too long",
            ),
            (
                self.delta_state_full,
                "too many delta series to convert to cumulative",
            ),
            (
                self.delta_out_of_order,
                "delta point older than one already applied",
            ),
        ]
    }

    /// A human-readable summary for OTLP partial success, e.g.
    /// `2 exponential histograms are not supported; 1 timestamp missing`.
    pub fn describe(&self) -> String {
        self.reasons()
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, why)| format!("{n} {why}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The result of translating one request.
#[derive(Debug, Default)]
pub struct MetricsBatch {
    pub samples: Vec<Sample>,
    /// OTLP data points in the request.
    pub data_points: usize,
    pub refused: MetricRefusals,
    /// Attributes whose names translate to nothing (the point is kept).
    pub dropped_attributes: usize,
    /// `target_info` series not emitted because their labels exceed the
    /// label limits.
    pub target_info_dropped: usize,
    /// For each Tocsin agent in the request (`tocsin.agent.id`), its newest
    /// point's timestamp in ms, refused points included (clock skew).
    pub newest_by_agent: Vec<(String, i64)>,
    /// Every Tocsin agent whose resource is in the request, data points
    /// or not (liveness and the agent inventory).
    pub agents: Vec<AgentResource>,
}

/// Translates OTLP metrics, keeping the delta-to-cumulative state.
#[derive(Debug)]
pub struct MetricsTranslator {
    opts: MetricsOptions,
    delta: Mutex<DeltaTable>,
    labels: LabelCache,
}

impl MetricsTranslator {
    pub fn new(opts: MetricsOptions) -> Self {
        MetricsTranslator {
            delta: Mutex::new(DeltaTable::default()),
            labels: LabelCache::new(opts.max_cached_label_sets),
            opts,
        }
    }

    /// The cache of finished label sets (sizes and counters).
    pub fn label_cache(&self) -> &LabelCache {
        &self.labels
    }

    pub fn options(&self) -> &MetricsOptions {
        &self.opts
    }

    /// Delta series whose running totals are kept.
    pub fn delta_series(&self) -> usize {
        self.delta.lock().map_or(0, |t| t.entries.len())
    }

    /// Translates a request received at `received_ms`.
    pub fn translate(&self, req: &ExportMetricsServiceRequest, received_ms: i64) -> MetricsBatch {
        let mut out = MetricsBatch::default();
        let mut newest: HashMap<String, i64> = HashMap::new();
        let mut agents = AgentsSeen::default();
        let mut key = Vec::new();
        for rm in &req.resource_metrics {
            let resource = ResourceLabels::from_resource(rm.resource.as_ref());
            if let Some(a) = &resource.agent {
                agents.note(a);
            }
            let first_sample = out.samples.len();
            resource_key(&resource, &mut key);
            let mut cx = PointContext {
                opts: &self.opts,
                resource: &resource,
                received_ms,
                newest: 0,
                out: &mut out,
                delta: &self.delta,
                cache: &self.labels,
                resource_key_len: key.len(),
                key: &mut key,
            };
            for sm in &rm.scope_metrics {
                for metric in &sm.metrics {
                    cx.metric(&metric.name, &metric.unit, metric.data.as_ref());
                }
            }
            if let Some(agent) = resource.agent_id()
                && cx.newest > 0
            {
                let e = newest.entry(agent.to_string()).or_insert(i64::MIN);
                *e = (*e).max(cx.newest);
            }
            self.target_info(rm.resource.as_ref(), &resource, first_sample, &mut out);
        }
        out.newest_by_agent = newest.into_iter().collect();
        out.newest_by_agent.sort();
        out.agents = agents.into_vec();
        out
    }
}

impl MetricsTranslator {
    /// Adds the resource's `target_info` over the span of the samples it
    /// contributed (`out.samples[first_sample..]`).
    fn target_info(
        &self,
        resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>,
        rl: &ResourceLabels,
        first_sample: usize,
        out: &mut MetricsBatch,
    ) {
        let added = &out.samples[first_sample..];
        let (Some(earliest), Some(latest)) = (
            added.iter().map(|s| s.1).min(),
            added.iter().map(|s| s.1).max(),
        ) else {
            return;
        };
        let Some((base, dropped)) = target_info_labels(resource, rl) else {
            return;
        };
        out.dropped_attributes += dropped;
        if base.len() + 1 > self.opts.max_labels
            || exceeds_label_bytes(&base, self.opts.max_label_value_bytes)
        {
            out.target_info_dropped += 1;
            return;
        }
        let labels = labels_with(&base, "target_info", None);
        let start = latest
            .saturating_sub(TARGET_INFO_STEP_MS.saturating_mul(TARGET_INFO_MAX_SAMPLES - 1))
            .max(earliest);
        let mut info = Vec::new();
        let mut t = start;
        while t < latest {
            info.push((labels.clone(), t, 1.0));
            t = t.saturating_add(TARGET_INFO_STEP_MS);
        }
        info.push((labels, latest, 1.0));
        // Ahead of the resource's own samples, so that a sender at its
        // series limit keeps the series describing it.
        out.samples.splice(first_sample..first_sample, info);
    }
}

/// A histogram point reduced to what the translation needs, so that delta
/// accumulation and emission share one shape.
#[derive(Debug, Clone, PartialEq)]
struct HistPoint {
    count: u64,
    sum: Option<f64>,
    bounds: Vec<f64>,
    /// Per-bucket (not cumulative) counts; empty or `bounds.len() + 1`.
    buckets: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
enum DeltaState {
    Sum(f64),
    Histogram(HistPoint),
}

#[derive(Debug)]
struct DeltaEntry {
    last_ns: u64,
    touched_ms: i64,
    state: DeltaState,
}

#[derive(Debug, Default)]
struct DeltaTable {
    entries: HashMap<Labels, DeltaEntry>,
}

enum DeltaRefusal {
    Full,
    OutOfOrder,
}

impl DeltaTable {
    /// Applies a delta point and returns the cumulative state to emit.
    fn apply(
        &mut self,
        key: &Labels,
        time_ns: u64,
        delta: DeltaState,
        now_ms: i64,
        opts: &MetricsOptions,
    ) -> Result<DeltaState, DeltaRefusal> {
        if let Some(e) = self.entries.get_mut(key) {
            if time_ns == e.last_ns {
                return Ok(e.state.clone());
            }
            if time_ns < e.last_ns {
                return Err(DeltaRefusal::OutOfOrder);
            }
            e.last_ns = time_ns;
            e.touched_ms = now_ms;
            e.state = match (&e.state, delta) {
                (DeltaState::Sum(total), DeltaState::Sum(d)) => {
                    // A non-finite delta is passed on as is but not added,
                    // so one bad point does not poison the series forever.
                    if d.is_finite() {
                        DeltaState::Sum(total + d)
                    } else {
                        return Ok(DeltaState::Sum(d));
                    }
                }
                (DeltaState::Histogram(acc), DeltaState::Histogram(d))
                    if acc.bounds == d.bounds && acc.buckets.len() == d.buckets.len() =>
                {
                    DeltaState::Histogram(HistPoint {
                        count: acc.count.saturating_add(d.count),
                        sum: match (acc.sum, d.sum) {
                            (Some(a), Some(b)) => Some(a + b),
                            _ => None,
                        },
                        bounds: d.bounds,
                        buckets: acc
                            .buckets
                            .iter()
                            .zip(&d.buckets)
                            .map(|(a, b)| a.saturating_add(*b))
                            .collect(),
                    })
                }
                // Changed bucket layout or kind: start over from this point,
                // which PromQL sees as a reset.
                (_, d) => d,
            };
            return Ok(e.state.clone());
        }
        if self.entries.len() >= opts.max_delta_series {
            let cutoff = now_ms.saturating_sub(opts.delta_idle_ms);
            self.entries.retain(|_, e| e.touched_ms >= cutoff);
            if self.entries.len() >= opts.max_delta_series {
                return Err(DeltaRefusal::Full);
            }
        }
        self.entries.insert(
            key.clone(),
            DeltaEntry {
                last_ns: time_ns,
                touched_ms: now_ms,
                state: delta.clone(),
            },
        );
        Ok(delta)
    }
}

/// Per-resource state while translating one request.
struct PointContext<'a> {
    opts: &'a MetricsOptions,
    resource: &'a ResourceLabels,
    received_ms: i64,
    /// Newest point timestamp (ms) under this resource.
    newest: i64,
    out: &'a mut MetricsBatch,
    /// Locked per delta point only, so cumulative traffic (most of it)
    /// never serialises on it.
    delta: &'a Mutex<DeltaTable>,
    cache: &'a LabelCache,
    /// A point's cache key: the resource's part (the first
    /// `resource_key_len` bytes), then the metric name and the attributes.
    key: &'a mut Vec<u8>,
    resource_key_len: usize,
}

/// Starts a cache key with what the resource contributes to every label
/// set under it.
fn resource_key(resource: &ResourceLabels, key: &mut Vec<u8>) {
    key.clear();
    for part in [&resource.promoted, &resource.identity] {
        push_len(key, part.len());
        for (name, value) in part {
            push_str(key, name);
            push_str(key, value);
        }
    }
}

/// Appends a point's attributes to its cache key, exactly as given; false
/// for values the key does not encode (bytes, arrays, maps: rare in
/// series, built without the cache).
fn attributes_key(attrs: &[KeyValue], key: &mut Vec<u8>) -> bool {
    push_len(key, attrs.len());
    for kv in attrs {
        push_str(key, &kv.key);
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            None => key.push(0),
            Some(Value::StringValue(s)) => {
                key.push(1);
                push_str(key, s);
            }
            Some(Value::BoolValue(b)) => key.extend_from_slice(&[2, u8::from(*b)]),
            Some(Value::IntValue(i)) => {
                key.push(3);
                key.extend_from_slice(&i.to_le_bytes());
            }
            Some(Value::DoubleValue(d)) => {
                key.push(4);
                key.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            Some(Value::StringValueStrindex(i)) => {
                key.push(5);
                key.extend_from_slice(&i.to_le_bytes());
            }
            Some(Value::BytesValue(_) | Value::ArrayValue(_) | Value::KvlistValue(_)) => {
                return false;
            }
        }
    }
    true
}

fn is_delta(temporality: i32) -> Option<bool> {
    if temporality == AggregationTemporality::Delta as i32 {
        Some(true)
    } else if temporality == AggregationTemporality::Cumulative as i32 {
        Some(false)
    } else {
        None
    }
}

fn labels_with(
    base: &BTreeMap<String, String>,
    name: &str,
    extra: Option<(&str, String)>,
) -> Labels {
    let mut v: Vec<Label> = Vec::with_capacity(base.len() + 2);
    v.extend(base.iter().map(|(n, v)| Label {
        name: n.clone(),
        value: v.clone(),
    }));
    v.push(Label {
        name: METRIC_NAME.to_string(),
        value: name.to_string(),
    });
    if let Some((n, val)) = extra {
        v.push(Label {
            name: n.to_string(),
            value: val,
        });
    }
    Labels::from_vec(v)
}

/// [`labels_with`] for a point that makes one series: the label strings
/// move instead of being copied (one allocation per string less, on the
/// path every gauge and sum point takes).
fn labels_into(base: BTreeMap<String, String>, name: &str) -> Labels {
    let mut v: Vec<Label> = Vec::with_capacity(base.len() + 1);
    v.extend(base.into_iter().map(|(name, value)| Label { name, value }));
    // Last, so that it wins over an attribute that translates to `__name__`.
    v.push(Label {
        name: METRIC_NAME.to_string(),
        value: name.to_string(),
    });
    Labels::from_vec(v)
}

/// Whether a label name or value is longer than `max`: a huge attribute
/// key would make as huge a label name as a huge value.
fn exceeds_label_bytes(labels: &BTreeMap<String, String>, max: usize) -> bool {
    labels.iter().any(|(n, v)| n.len() > max || v.len() > max)
}

fn value_of(v: f64, flags: u32) -> f64 {
    if flags & FLAG_NO_RECORDED_VALUE != 0 {
        stale_nan()
    } else if v.is_nan() {
        f64::NAN
    } else {
        v
    }
}

impl PointContext<'_> {
    fn apply_delta(
        &self,
        key: &Labels,
        time_ns: u64,
        d: DeltaState,
    ) -> Result<DeltaState, DeltaRefusal> {
        // A poisoned lock only means another request panicked mid-update;
        // every update leaves the table structurally sound, so keep going.
        let mut table = match self.delta.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        table.apply(key, time_ns, d, self.received_ms, self.opts)
    }

    fn metric(&mut self, name: &str, unit: &str, data: Option<&Data>) {
        let Some(data) = data else { return };
        let (points, kind) = match data {
            Data::Gauge(g) => (g.data_points.len(), MetricKind::Gauge),
            Data::Sum(s) if s.is_monotonic => (s.data_points.len(), MetricKind::MonotonicCounter),
            Data::Sum(s) => (s.data_points.len(), MetricKind::NonMonotonicSum),
            Data::Histogram(h) => (h.data_points.len(), MetricKind::Histogram),
            Data::Summary(s) => (s.data_points.len(), MetricKind::Summary),
            Data::ExponentialHistogram(e) => {
                self.out.data_points += e.data_points.len();
                self.out.refused.exponential_histogram += e.data_points.len();
                for p in &e.data_points {
                    self.see_time(p.time_unix_nano);
                }
                return;
            }
        };
        self.out.data_points += points;
        let Ok(prom_name) = metric_name(name, unit, kind) else {
            self.out.refused.invalid_name += points;
            return;
        };
        match data {
            Data::Gauge(g) => {
                for p in &g.data_points {
                    self.number(&prom_name, p, Some(false));
                }
            }
            Data::Sum(s) => {
                let delta = is_delta(s.aggregation_temporality);
                for p in &s.data_points {
                    self.number(&prom_name, p, delta);
                }
            }
            Data::Histogram(h) => {
                let delta = is_delta(h.aggregation_temporality);
                for p in &h.data_points {
                    self.histogram(&prom_name, p, delta);
                }
            }
            Data::Summary(s) => {
                for p in &s.data_points {
                    let Some((t, base)) = self.point_labels(p.time_unix_nano, &p.attributes, 1)
                    else {
                        continue;
                    };
                    for q in &p.quantile_values {
                        self.out.samples.push((
                            labels_with(
                                &base,
                                &prom_name,
                                Some(("quantile", float_text(q.quantile))),
                            ),
                            t,
                            value_of(q.value, p.flags),
                        ));
                    }
                    self.out.samples.push((
                        labels_with(&base, &format!("{prom_name}_sum"), None),
                        t,
                        value_of(p.sum, p.flags),
                    ));
                    self.out.samples.push((
                        labels_with(&base, &format!("{prom_name}_count"), None),
                        t,
                        value_of(p.count as f64, p.flags),
                    ));
                }
            }
            Data::ExponentialHistogram(_) => {}
        }
    }

    fn see_time(&mut self, ns: u64) {
        if ns > 0 {
            self.newest = self.newest.max(ns_to_ms(ns));
        }
    }

    /// Checks a point's time and labels; `None` when refused (counted).
    /// `extra_labels` is how many labels the emitted series add beyond the
    /// attributes and the name (`le`, `quantile`).
    fn point_labels(
        &mut self,
        time_ns: u64,
        attrs: &[KeyValue],
        extra_labels: usize,
    ) -> Option<(i64, BTreeMap<String, String>)> {
        let t = self.point_time(time_ns)?;
        let base = self.base_labels(attrs, extra_labels)?;
        Some((t, base))
    }

    /// Checks a point's time; `None` when refused (counted).
    fn point_time(&mut self, time_ns: u64) -> Option<i64> {
        if time_ns == 0 {
            self.out.refused.missing_timestamp += 1;
            return None;
        }
        self.see_time(time_ns);
        let t = ns_to_ms(time_ns);
        if t > self.received_ms.saturating_add(self.opts.max_future_ms) {
            self.out.refused.future_timestamp += 1;
            return None;
        }
        Some(t)
    }

    /// A point's labels without the name; `None` when over the label
    /// limits (counted).
    fn base_labels(
        &mut self,
        attrs: &[KeyValue],
        extra_labels: usize,
    ) -> Option<BTreeMap<String, String>> {
        let (base, dropped) = self.resource.labels_for(attrs);
        self.out.dropped_attributes += dropped;
        if base.len() + 1 + extra_labels > self.opts.max_labels
            || exceeds_label_bytes(&base, self.opts.max_label_value_bytes)
        {
            self.out.refused.label_limits += 1;
            return None;
        }
        Some(base)
    }

    /// The labels of a point that makes one series named `name`, from the
    /// cache when the same resource, name and attributes were seen before;
    /// `None` when over the label limits (counted, never cached).
    fn series_labels(&mut self, name: &str, attrs: &[KeyValue]) -> Option<Labels> {
        let cacheable = self.cache.enabled() && {
            self.key.truncate(self.resource_key_len);
            push_str(self.key, name);
            attributes_key(attrs, self.key)
        };
        if cacheable && let Some(hit) = self.cache.get(self.key) {
            self.out.dropped_attributes += hit.dropped;
            return Some(hit.labels);
        }
        let dropped_before = self.out.dropped_attributes;
        let base = self.base_labels(attrs, 0)?;
        let labels = labels_into(base, name);
        if cacheable {
            self.cache.insert(
                self.key,
                Cached {
                    labels: labels.clone(),
                    dropped: self.out.dropped_attributes - dropped_before,
                },
            );
        }
        Some(labels)
    }

    fn number(&mut self, name: &str, p: &NumberDataPoint, delta: Option<bool>) {
        let Some(delta) = delta else {
            self.out.refused.invalid_point += 1;
            return;
        };
        let v = match p.value {
            Some(number_data_point::Value::AsDouble(d)) => d,
            Some(number_data_point::Value::AsInt(i)) => i as f64,
            None if p.flags & FLAG_NO_RECORDED_VALUE != 0 => 0.0,
            None => {
                self.out.refused.invalid_point += 1;
                return;
            }
        };
        let Some(t) = self.point_time(p.time_unix_nano) else {
            return;
        };
        let Some(labels) = self.series_labels(name, &p.attributes) else {
            return;
        };
        let v = value_of(v, p.flags);
        let v = if delta && !rules_is_stale(v) {
            match self.apply_delta(&labels, p.time_unix_nano, DeltaState::Sum(v)) {
                Ok(DeltaState::Sum(total)) => total,
                Ok(DeltaState::Histogram(_)) => {
                    self.out.refused.invalid_point += 1;
                    return;
                }
                Err(r) => return self.refuse_delta(r),
            }
        } else {
            v
        };
        self.out.samples.push((labels, t, v));
    }

    fn refuse_delta(&mut self, r: DeltaRefusal) {
        match r {
            DeltaRefusal::Full => self.out.refused.delta_state_full += 1,
            DeltaRefusal::OutOfOrder => self.out.refused.delta_out_of_order += 1,
        }
    }

    fn histogram(&mut self, name: &str, p: &HistogramDataPoint, delta: Option<bool>) {
        let Some(delta) = delta else {
            self.out.refused.invalid_point += 1;
            return;
        };
        if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            self.out.refused.invalid_point += 1;
            return;
        }
        let Some((t, base)) = self.point_labels(p.time_unix_nano, &p.attributes, 1) else {
            return;
        };
        let stale = p.flags & FLAG_NO_RECORDED_VALUE != 0;
        let mut point = HistPoint {
            count: p.count,
            sum: p.sum,
            bounds: p.explicit_bounds.clone(),
            buckets: p.bucket_counts.clone(),
        };
        if delta && !stale {
            // The series identity of a histogram is its labels without
            // `le`, under the base name.
            let key = labels_with(&base, name, None);
            match self.apply_delta(&key, p.time_unix_nano, DeltaState::Histogram(point)) {
                Ok(DeltaState::Histogram(acc)) => point = acc,
                Ok(DeltaState::Sum(_)) => {
                    self.out.refused.invalid_point += 1;
                    return;
                }
                Err(r) => return self.refuse_delta(r),
            }
        }
        let value = |v: f64| if stale { stale_nan() } else { value_of(v, 0) };
        let bucket_name = format!("{name}_bucket");
        if !point.buckets.is_empty() {
            let mut cumulative: u64 = 0;
            for (bound, n) in point.bounds.iter().zip(&point.buckets) {
                cumulative = cumulative.saturating_add(*n);
                self.out.samples.push((
                    labels_with(&base, &bucket_name, Some(("le", float_text(*bound)))),
                    t,
                    value(cumulative as f64),
                ));
            }
        }
        self.out.samples.push((
            labels_with(&base, &bucket_name, Some(("le", "+Inf".to_string()))),
            t,
            value(point.count as f64),
        ));
        if let Some(sum) = point.sum {
            self.out.samples.push((
                labels_with(&base, &format!("{name}_sum"), None),
                t,
                value(sum),
            ));
        }
        self.out.samples.push((
            labels_with(&base, &format!("{name}_count"), None),
            t,
            value(point.count as f64),
        ));
    }
}

fn rules_is_stale(v: f64) -> bool {
    tocsin_rules::promql::value::is_stale(v)
}

fn ns_to_ms(ns: u64) -> i64 {
    // u64::MAX ns is about 1.8e13 ms, well inside i64.
    i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::float_cmp)]
mod tests;
