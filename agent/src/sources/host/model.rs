//! The plain data model of one host-metrics collection, independent of any
//! wire format: the exporter turns it into OTLP `Metric`s, the collector
//! translates the names to Prometheus (`system.cpu.time` in seconds, a
//! monotonic sum, becomes `system_cpu_time_seconds_total`).
//!
//! Invariants the scrapers keep: a metric's name, unit and kind come from
//! one [`Descriptor`] constant that mirrors the OpenTelemetry Collector's
//! hostmetrics receiver; every point of a sum carries a start time (boot
//! time for system counters, process start for process counters) and no
//! point of a gauge does; within one metric, no two points share an
//! attribute set; a metric with no points is not emitted.

use std::sync::Arc;
use std::time::SystemTime;

/// How a metric's points aggregate, as OTLP names the cases. All sums are
/// cumulative: the agent reports totals since the start time, never deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value sampled at the timestamp (load, utilization, uptime).
    Gauge,
    /// A cumulative counter that only goes up (cpu time, bytes transferred).
    MonotonicSum,
    /// A cumulative sum that may go down (bytes of memory in a state).
    NonMonotonicSum,
}

impl MetricKind {
    /// True for both kinds of sum: their points carry a start time.
    pub fn is_sum(self) -> bool {
        !matches!(self, MetricKind::Gauge)
    }
}

/// Name, description, unit and kind of a metric, fixed at compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// OpenTelemetry semantic-convention name, e.g. `system.cpu.time`.
    pub name: &'static str,
    /// One-line description, as the hostmetrics receiver words it.
    pub description: &'static str,
    /// UCUM unit: `s`, `By`, `1`, or an annotation such as `{packets}`.
    pub unit: &'static str,
    /// Gauge or kind of sum.
    pub kind: MetricKind,
}

/// A metric and its points from one collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// What the metric is.
    pub descriptor: Descriptor,
    /// Its points, one per attribute set.
    pub points: Vec<DataPoint>,
}

impl Metric {
    /// The semantic-convention name.
    pub fn name(&self) -> &'static str {
        self.descriptor.name
    }
}

/// One value of a metric for one attribute set.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    /// Point attributes, in a fixed order per metric.
    pub attributes: Vec<Attribute>,
    /// Start of the cumulative interval: `Some` for sums, `None` for gauges.
    pub start_time: Option<SystemTime>,
    /// When the value was read.
    pub time: SystemTime,
    /// The value.
    pub value: Value,
}

impl DataPoint {
    /// The value of the attribute `key`, if the point has one.
    pub fn attribute(&self, key: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| &a.value)
    }
}

/// A numeric value: OTLP keeps integer and double points apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Counts and bytes.
    Int(i64),
    /// Seconds, ratios, load.
    Double(f64),
}

impl Value {
    /// The value as a float, for checks and for consumers that do not care.
    pub fn as_f64(self) -> f64 {
        match self {
            // Precision loss above 2^53 is irrelevant for the checks this serves.
            Value::Int(v) => v as f64,
            Value::Double(v) => v,
        }
    }
}

/// A key and its value. Keys are the semantic-convention attribute names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name, e.g. `device`, `state`, `process.pid`.
    pub key: &'static str,
    /// Attribute value.
    pub value: AttributeValue,
}

impl Attribute {
    /// An attribute whose value is a fixed word (`state`, `direction`).
    pub fn fixed(key: &'static str, value: &'static str) -> Self {
        Attribute {
            key,
            value: AttributeValue::Static(value),
        }
    }

    /// An attribute whose value was read from the host (a device name).
    /// The `Arc` is shared with the scraper's cache, so repeating a device
    /// in every collection costs a reference count, not an allocation.
    pub fn shared(key: &'static str, value: &Arc<str>) -> Self {
        Attribute {
            key,
            value: AttributeValue::Shared(Arc::clone(value)),
        }
    }

    /// An integer attribute (`process.pid`).
    pub fn int(key: &'static str, value: i64) -> Self {
        Attribute {
            key,
            value: AttributeValue::Int(value),
        }
    }
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// A word fixed at compile time.
    Static(&'static str),
    /// A string read from the host, shared across collections.
    Shared(Arc<str>),
    /// An integer.
    Int(i64),
}

impl AttributeValue {
    /// The value as text, `None` for integers.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttributeValue::Static(s) => Some(s),
            AttributeValue::Shared(s) => Some(s),
            AttributeValue::Int(_) => None,
        }
    }
}

/// Builds one metric's points with a shared timestamp and start time, so a
/// scraper cannot give a gauge a start time or forget one on a sum.
pub(crate) struct MetricBuilder {
    metric: Metric,
    time: SystemTime,
    start_time: Option<SystemTime>,
}

impl MetricBuilder {
    pub(crate) fn new(descriptor: Descriptor, time: SystemTime, start: SystemTime) -> Self {
        MetricBuilder {
            metric: Metric {
                descriptor,
                points: Vec::new(),
            },
            time,
            start_time: descriptor.kind.is_sum().then_some(start),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.metric.descriptor.name
    }

    /// Adds a point whose sum starts at `start` instead of the builder's
    /// default: process counters start with their process.
    pub(crate) fn push_with_start(
        &mut self,
        start: SystemTime,
        value: Value,
        attributes: Vec<Attribute>,
    ) {
        let start_time = self.start_time.map(|_| start);
        self.metric.points.push(DataPoint {
            attributes,
            start_time,
            time: self.time,
            value,
        });
    }

    pub(crate) fn push(&mut self, value: Value, attributes: Vec<Attribute>) {
        self.metric.points.push(DataPoint {
            attributes,
            start_time: self.start_time,
            time: self.time,
            value,
        });
    }

    pub(crate) fn int(&mut self, value: u64, attributes: Vec<Attribute>) {
        // Kernel counters are u64; OTLP int points are i64. Saturate rather
        // than wrap: a counter near 2^63 is already meaningless.
        self.push(
            Value::Int(i64::try_from(value).unwrap_or(i64::MAX)),
            attributes,
        );
    }

    pub(crate) fn double(&mut self, value: f64, attributes: Vec<Attribute>) {
        self.push(Value::Double(value), attributes);
    }

    /// Appends the metric to `out` unless it has no points.
    pub(crate) fn finish(self, out: &mut Vec<Metric>) {
        if !self.metric.points.is_empty() {
            out.push(self.metric);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GAUGE: Descriptor = Descriptor {
        name: "g",
        description: "",
        unit: "1",
        kind: MetricKind::Gauge,
    };
    const SUM: Descriptor = Descriptor {
        name: "s",
        description: "",
        unit: "s",
        kind: MetricKind::MonotonicSum,
    };

    #[test]
    fn gauges_have_no_start_time_and_sums_do() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let now = start + Duration::from_secs(5);
        let mut out = Vec::new();
        let mut g = MetricBuilder::new(GAUGE, now, start);
        g.double(0.5, vec![]);
        g.finish(&mut out);
        let mut s = MetricBuilder::new(SUM, now, start);
        s.int(7, vec![Attribute::fixed("state", "user")]);
        s.finish(&mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].points[0].start_time, None);
        assert_eq!(out[1].points[0].start_time, Some(start));
        assert_eq!(out[1].points[0].time, now);
    }

    #[test]
    fn empty_metrics_are_dropped_and_huge_counters_saturate() {
        let now = SystemTime::UNIX_EPOCH;
        let mut out = Vec::new();
        MetricBuilder::new(SUM, now, now).finish(&mut out);
        assert!(out.is_empty());
        let mut s = MetricBuilder::new(SUM, now, now);
        s.int(u64::MAX, vec![]);
        s.finish(&mut out);
        assert_eq!(out[0].points[0].value, Value::Int(i64::MAX));
    }
}
