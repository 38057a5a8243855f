//! Builds OTLP requests from the sources' data: `ExportLogsServiceRequest`
//! from tailer records, `ExportMetricsServiceRequest` from a host-metrics
//! collection. Pure functions: no I/O, no clock (every timestamp comes from
//! the data), so a request built now and one rebuilt from the spool after an
//! outage carry the same, original times.
//!
//! Invariants: every resource carries the agent's attributes (DESIGN.md,
//! "Log records on the wire"); log records are grouped into one resource per
//! distinct input attribute set (an input's `service.name` overrides the
//! agent's), keeping their order within each group; sums are cumulative
//! with their start time, gauges have none.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use prost::Message;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric as OtlpMetric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::sources::host::{AttributeValue, Metric, MetricKind, Value};
use crate::sources::logtail::LogRecord;
use crate::spool::unix_nanos;

/// The instrumentation scope named in every request.
pub const SCOPE_NAME: &str = "tocsin-agent";

/// The agent's resource attributes, validated by the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// `host.name`
    pub host_name: String,
    /// `service.name`: the agent's default; a log input may override it.
    pub service_name: String,
    /// `deployment.environment.name`
    pub environment: Option<String>,
    /// `service.version`
    pub service_version: Option<String>,
    /// `tocsin.track` (canary, baseline, …)
    pub track: Option<String>,
    /// `tocsin.agent.id`, persisted in the data directory.
    pub agent_id: String,
    /// `tocsin.agent.version`
    pub agent_version: String,
    /// `tocsin.agent.interval`: the metric interval in seconds.
    pub interval_secs: u64,
}

impl ResourceInfo {
    /// The resource, with `overrides` (an input's attributes) applied on
    /// top of the agent's own.
    fn resource(&self, overrides: &BTreeMap<String, String>) -> Resource {
        let mut attrs: BTreeMap<&str, AnyValue> = BTreeMap::new();
        attrs.insert("host.name", string(&self.host_name));
        attrs.insert("service.name", string(&self.service_name));
        if let Some(v) = &self.environment {
            attrs.insert("deployment.environment.name", string(v));
        }
        if let Some(v) = &self.service_version {
            attrs.insert("service.version", string(v));
        }
        if let Some(v) = &self.track {
            attrs.insert("tocsin.track", string(v));
        }
        for (k, v) in overrides {
            attrs.insert(k, string(v));
        }
        // The agent's identity is not something an input may change.
        attrs.insert("tocsin.agent.id", string(&self.agent_id));
        attrs.insert("tocsin.agent.version", string(&self.agent_version));
        attrs.insert(
            "tocsin.agent.interval",
            int(i64::try_from(self.interval_secs).unwrap_or(i64::MAX)),
        );
        Resource {
            attributes: attrs
                .into_iter()
                .map(|(key, value)| kv(key, value))
                .collect(),
            ..Default::default()
        }
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Default::default()
    }
}

fn string(s: &str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_string())),
    }
}

fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(i)),
    }
}

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(value),
        ..Default::default()
    }
}

/// One OTLP log record from a tailer record. The tailer knows when it read
/// a line, not when the application wrote it, so both timestamps are the
/// observed time.
fn log_record(r: &LogRecord) -> OtlpLogRecord {
    let mut attributes = vec![
        kv("log.file.path", string(&r.path.to_string_lossy())),
        kv("tocsin.file.id", string(&r.file_id)),
        kv(
            "tocsin.file.offset",
            int(i64::try_from(r.offset).unwrap_or(i64::MAX)),
        ),
    ];
    if r.truncated {
        attributes.push(kv(
            "tocsin.log.truncated",
            AnyValue {
                value: Some(any_value::Value::BoolValue(true)),
            },
        ));
    }
    OtlpLogRecord {
        time_unix_nano: r.observed_unix_nanos,
        observed_time_unix_nano: r.observed_unix_nanos,
        severity_number: i32::from(r.severity_number),
        severity_text: r.severity_text.clone().unwrap_or_default(),
        body: Some(string(&r.body)),
        attributes,
        ..Default::default()
    }
}

/// An input's attributes, shared by its records.
type InputAttributes = Arc<BTreeMap<String, String>>;

/// The logs request for `records`: one resource per distinct input
/// attribute set, records in their original order within it.
pub fn logs_request(info: &ResourceInfo, records: &[LogRecord]) -> ExportLogsServiceRequest {
    let mut groups: Vec<(InputAttributes, Vec<OtlpLogRecord>)> = Vec::new();
    for r in records {
        // Inputs share one Arc per input, so pointer equality finds the
        // group almost always; equal maps from different inputs merge too.
        let group = groups
            .iter_mut()
            .find(|(attrs, _)| Arc::ptr_eq(attrs, &r.attributes) || **attrs == *r.attributes);
        match group {
            Some((_, out)) => out.push(log_record(r)),
            None => groups.push((Arc::clone(&r.attributes), vec![log_record(r)])),
        }
    }
    ExportLogsServiceRequest {
        resource_logs: groups
            .into_iter()
            .map(|(attrs, log_records)| ResourceLogs {
                resource: Some(info.resource(&attrs)),
                scope_logs: vec![ScopeLogs {
                    scope: Some(scope()),
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// The encoded [`logs_request`] for `records`, written directly: the same
/// message (a decoder cannot tell them apart) without building the OTLP
/// structs first, whose allocations and repeated length computations were
/// a quarter of the agent's CPU when every line ships. Resources and the
/// scope, once per group, still go through prost.
pub fn encode_logs_request(info: &ResourceInfo, records: &[LogRecord]) -> Vec<u8> {
    // A batch holds the lines of a few files, each path one shared Arc:
    // it is made text once per file, not once per record.
    let mut paths: Vec<(&Arc<Path>, Cow<'_, str>)> = Vec::new();
    let mut groups: Vec<(&InputAttributes, Vec<(&LogRecord, usize)>)> = Vec::new();
    for r in records {
        let path = match paths.iter().position(|(p, _)| Arc::ptr_eq(p, &r.path)) {
            Some(i) => i,
            None => {
                paths.push((&r.path, r.path.to_string_lossy()));
                paths.len() - 1
            }
        };
        let group = groups
            .iter_mut()
            .find(|(attrs, _)| Arc::ptr_eq(attrs, &r.attributes) || ***attrs == *r.attributes);
        match group {
            Some((_, out)) => out.push((r, path)),
            None => groups.push((&r.attributes, vec![(r, path)])),
        }
    }
    let scope = scope().encode_to_vec();
    let mut record_lens = Vec::with_capacity(records.len());
    let mut out = Vec::new();
    let mut parts = Vec::with_capacity(groups.len());
    let mut total = 0;
    for (attrs, group) in &groups {
        let resource = info.resource(attrs).encode_to_vec();
        let first = record_lens.len();
        record_lens.extend(
            group
                .iter()
                .map(|&(r, path)| wire::record_len(r, &paths[path].1)),
        );
        let scope_logs = wire::field_len(scope.len())
            + record_lens[first..]
                .iter()
                .map(|&n| wire::field_len(n))
                .sum::<usize>();
        let resource_logs = wire::field_len(resource.len()) + wire::field_len(scope_logs);
        total += wire::field_len(resource_logs);
        parts.push((resource, scope_logs, resource_logs));
    }
    out.reserve_exact(total);
    let mut lens = record_lens.iter();
    for ((_, group), (resource, scope_logs, resource_logs)) in groups.iter().zip(&parts) {
        // ExportLogsServiceRequest.resource_logs = 1
        wire::len_field(&mut out, 1, *resource_logs);
        // ResourceLogs.resource = 1, .scope_logs = 2
        wire::bytes_field(&mut out, 1, resource);
        wire::len_field(&mut out, 2, *scope_logs);
        // ScopeLogs.scope = 1, .log_records = 2
        wire::bytes_field(&mut out, 1, &scope);
        for &(r, path) in group {
            wire::len_field(&mut out, 2, lens.next().copied().unwrap_or(0));
            wire::record(&mut out, r, &paths[path].1);
        }
    }
    out
}

/// The protobuf encoding of one OTLP `LogRecord` as [`log_record`] builds
/// it, with prost's rules: scalar fields at their default are left out,
/// a oneof member and a present message are always written.
mod wire {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

    use crate::sources::logtail::LogRecord;

    /// Key of a field numbered below 16: one byte.
    const KEY: usize = 1;

    fn varint_len(n: usize) -> usize {
        encoded_len_varint(n as u64)
    }

    /// A length-delimited field of `len` bytes of content.
    pub(super) fn field_len(len: usize) -> usize {
        KEY + varint_len(len) + len
    }

    pub(super) fn len_field(out: &mut Vec<u8>, tag: u32, len: usize) {
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(len as u64, out);
    }

    pub(super) fn bytes_field(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
        len_field(out, tag, bytes.len());
        out.extend_from_slice(bytes);
    }

    fn string_any_len(s: &str) -> usize {
        // AnyValue.string_value = 1
        field_len(s.len())
    }

    fn int_any_len(i: i64) -> usize {
        // AnyValue.int_value = 3
        KEY + encoded_len_varint(i as u64)
    }

    /// KeyValue { key = 1, value = 2 } around an AnyValue of `any` bytes.
    fn kv_len(key: &str, any: usize) -> usize {
        field_len(key.len()) + field_len(any)
    }

    fn kv_head(out: &mut Vec<u8>, key: &str, any: usize) {
        // LogRecord.attributes = 6
        len_field(out, 6, kv_len(key, any));
        bytes_field(out, 1, key.as_bytes());
        len_field(out, 2, any);
    }

    fn kv_string(out: &mut Vec<u8>, key: &str, value: &str) {
        kv_head(out, key, string_any_len(value));
        bytes_field(out, 1, value.as_bytes());
    }

    fn offset(r: &LogRecord) -> i64 {
        i64::try_from(r.offset).unwrap_or(i64::MAX)
    }

    /// `path` is `r.path` as text.
    pub(super) fn record_len(r: &LogRecord, path: &str) -> usize {
        let severity_text = r.severity_text.as_deref().unwrap_or_default();
        let mut n = 0;
        if r.observed_unix_nanos != 0 {
            // time_unix_nano = 1 and observed_time_unix_nano = 11, fixed64
            n += 2 * (KEY + 8);
        }
        if r.severity_number != 0 {
            n += KEY + encoded_len_varint(u64::from(r.severity_number));
        }
        if !severity_text.is_empty() {
            n += field_len(severity_text.len());
        }
        n += field_len(string_any_len(&r.body));
        n += field_len(kv_len("log.file.path", string_any_len(path)));
        n += field_len(kv_len("tocsin.file.id", string_any_len(&r.file_id)));
        n += field_len(kv_len("tocsin.file.offset", int_any_len(offset(r))));
        if r.truncated {
            // AnyValue.bool_value = 2
            n += field_len(kv_len("tocsin.log.truncated", KEY + 1));
        }
        n
    }

    /// The fields in tag order, as prost writes them.
    pub(super) fn record(out: &mut Vec<u8>, r: &LogRecord, path: &str) {
        let severity_text = r.severity_text.as_deref().unwrap_or_default();
        if r.observed_unix_nanos != 0 {
            encode_key(1, WireType::SixtyFourBit, out);
            out.extend_from_slice(&r.observed_unix_nanos.to_le_bytes());
        }
        if r.severity_number != 0 {
            encode_key(2, WireType::Varint, out);
            encode_varint(u64::from(r.severity_number), out);
        }
        if !severity_text.is_empty() {
            bytes_field(out, 3, severity_text.as_bytes());
        }
        // body = 5: AnyValue { string_value = 1 }
        len_field(out, 5, string_any_len(&r.body));
        bytes_field(out, 1, r.body.as_bytes());
        kv_string(out, "log.file.path", path);
        kv_string(out, "tocsin.file.id", &r.file_id);
        let offset = offset(r);
        kv_head(out, "tocsin.file.offset", int_any_len(offset));
        encode_key(3, WireType::Varint, out);
        encode_varint(offset as u64, out);
        if r.truncated {
            kv_head(out, "tocsin.log.truncated", KEY + 1);
            encode_key(2, WireType::Varint, out);
            encode_varint(1, out);
        }
        if r.observed_unix_nanos != 0 {
            encode_key(11, WireType::SixtyFourBit, out);
            out.extend_from_slice(&r.observed_unix_nanos.to_le_bytes());
        }
    }
}

fn nanos(t: SystemTime) -> u64 {
    unix_nanos(t)
}

fn attribute_value(v: &AttributeValue) -> AnyValue {
    match v {
        AttributeValue::Static(s) => string(s),
        AttributeValue::Shared(s) => string(s),
        AttributeValue::Int(i) => int(*i),
    }
}

fn metric(m: &Metric) -> OtlpMetric {
    let data_points = m
        .points
        .iter()
        .map(|p| NumberDataPoint {
            attributes: p
                .attributes
                .iter()
                .map(|a| kv(a.key, attribute_value(&a.value)))
                .collect(),
            start_time_unix_nano: p.start_time.map(nanos).unwrap_or(0),
            time_unix_nano: nanos(p.time),
            value: Some(match p.value {
                Value::Int(i) => number_data_point::Value::AsInt(i),
                Value::Double(d) => number_data_point::Value::AsDouble(d),
            }),
            ..Default::default()
        })
        .collect();
    let data = match m.descriptor.kind {
        MetricKind::Gauge => metric::Data::Gauge(Gauge { data_points }),
        MetricKind::MonotonicSum | MetricKind::NonMonotonicSum => metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: m.descriptor.kind == MetricKind::MonotonicSum,
        }),
    };
    OtlpMetric {
        name: m.descriptor.name.to_string(),
        description: m.descriptor.description.to_string(),
        unit: m.descriptor.unit.to_string(),
        data: Some(data),
        ..Default::default()
    }
}

/// The metrics request for one collection.
pub fn metrics_request(info: &ResourceInfo, metrics: &[Metric]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(info.resource(&BTreeMap::new())),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics: metrics.iter().map(metric).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::host::{Attribute, DataPoint, Descriptor};
    use std::path::Path;
    use std::time::Duration;

    pub(crate) fn info() -> ResourceInfo {
        ResourceInfo {
            host_name: "web-1".into(),
            service_name: "host".into(),
            environment: Some("prod".into()),
            service_version: Some("1.2.3".into()),
            track: Some("canary".into()),
            agent_id: "agent-abc".into(),
            agent_version: "0.1.0".into(),
            interval_secs: 10,
        }
    }

    fn record(offset: u64, attrs: &Arc<BTreeMap<String, String>>) -> LogRecord {
        LogRecord {
            body: format!("ERROR at {offset}"),
            path: Arc::from(Path::new("/var/log/app.log")),
            file_id: Arc::from("f1"),
            offset,
            end_offset: offset + 10,
            severity_number: 17,
            severity_text: Some("ERROR".into()),
            truncated: offset == 20,
            observed_unix_nanos: 1_000 + offset,
            input: 0,
            attributes: Arc::clone(attrs),
        }
    }

    fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        attrs
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    #[test]
    fn the_direct_encoding_decodes_to_the_built_request() {
        let default = Arc::new(BTreeMap::new());
        let api = Arc::new(BTreeMap::from([(
            "service.name".to_string(),
            "api".to_string(),
        )]));
        let mut records = vec![record(0, &default), record(10, &api), record(20, &default)];
        // Defaults left out, a long body, a huge offset, a non-UTF-8 path.
        records.push(LogRecord {
            body: String::new(),
            severity_number: 0,
            severity_text: None,
            observed_unix_nanos: 0,
            ..record(30, &api)
        });
        records.push(LogRecord {
            body: "x".repeat(70_000),
            offset: u64::MAX,
            ..record(40, &default)
        });
        {
            use std::os::unix::ffi::OsStrExt;
            let path = Path::new(std::ffi::OsStr::from_bytes(b"/var/log/\xff.log"));
            records.push(LogRecord {
                path: Arc::from(path),
                ..record(50, &api)
            });
        }
        for n in 0..=records.len() {
            let bytes = encode_logs_request(&info(), &records[..n]);
            let decoded = ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap();
            assert_eq!(decoded, logs_request(&info(), &records[..n]), "{n} records");
            assert_eq!(bytes.len(), decoded.encoded_len(), "{n} records");
        }
    }

    #[test]
    fn log_records_carry_file_identity_and_a_resource_per_service() {
        let default = Arc::new(BTreeMap::new());
        let api = Arc::new(BTreeMap::from([(
            "service.name".to_string(),
            "api".to_string(),
        )]));
        let records = vec![record(0, &default), record(10, &api), record(20, &default)];
        let req = logs_request(&info(), &records);
        assert_eq!(req.resource_logs.len(), 2);
        let first = &req.resource_logs[0];
        let res = &first.resource.as_ref().unwrap().attributes;
        assert_eq!(attr(res, "service.name"), Some(&s("host")));
        assert_eq!(attr(res, "host.name"), Some(&s("web-1")));
        assert_eq!(attr(res, "deployment.environment.name"), Some(&s("prod")));
        assert_eq!(attr(res, "service.version"), Some(&s("1.2.3")));
        assert_eq!(attr(res, "tocsin.track"), Some(&s("canary")));
        assert_eq!(attr(res, "tocsin.agent.id"), Some(&s("agent-abc")));
        assert_eq!(attr(res, "tocsin.agent.version"), Some(&s("0.1.0")));
        assert_eq!(
            attr(res, "tocsin.agent.interval"),
            Some(&any_value::Value::IntValue(10))
        );
        let logs = &first.scope_logs[0].log_records;
        assert_eq!(logs.len(), 2);
        assert_eq!(logs[1].time_unix_nano, 1_020);
        assert_eq!(logs[1].observed_time_unix_nano, 1_020);
        assert_eq!(logs[0].severity_number, 17);
        assert_eq!(logs[0].severity_text, "ERROR");
        assert_eq!(logs[0].body.as_ref().unwrap().value, Some(s("ERROR at 0")));
        assert_eq!(
            attr(&logs[1].attributes, "log.file.path"),
            Some(&s("/var/log/app.log"))
        );
        assert_eq!(attr(&logs[1].attributes, "tocsin.file.id"), Some(&s("f1")));
        assert_eq!(
            attr(&logs[1].attributes, "tocsin.file.offset"),
            Some(&any_value::Value::IntValue(20))
        );
        assert_eq!(
            attr(&logs[1].attributes, "tocsin.log.truncated"),
            Some(&any_value::Value::BoolValue(true))
        );
        assert_eq!(attr(&logs[0].attributes, "tocsin.log.truncated"), None);
        let second = &req.resource_logs[1];
        let res = &second.resource.as_ref().unwrap().attributes;
        assert_eq!(attr(res, "service.name"), Some(&s("api")));
        assert_eq!(attr(res, "tocsin.agent.id"), Some(&s("agent-abc")));
        assert_eq!(second.scope_logs[0].log_records.len(), 1);
    }

    #[test]
    fn an_input_cannot_override_the_agent_identity() {
        let spoof = Arc::new(BTreeMap::from([(
            "tocsin.agent.id".to_string(),
            "other".to_string(),
        )]));
        let req = logs_request(&info(), &[record(0, &spoof)]);
        let res = &req.resource_logs[0].resource.as_ref().unwrap().attributes;
        assert_eq!(attr(res, "tocsin.agent.id"), Some(&s("agent-abc")));
    }

    #[test]
    fn metrics_keep_kind_unit_start_time_and_original_timestamps() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        let cpu = Metric {
            descriptor: Descriptor {
                name: "system.cpu.time",
                description: "cpu",
                unit: "s",
                kind: MetricKind::MonotonicSum,
            },
            points: vec![DataPoint {
                attributes: vec![Attribute::fixed("state", "user"), Attribute::int("cpu", 0)],
                start_time: Some(boot),
                time: t,
                value: Value::Double(12.5),
            }],
        };
        let mem = Metric {
            descriptor: Descriptor {
                name: "system.memory.usage",
                description: "mem",
                unit: "By",
                kind: MetricKind::NonMonotonicSum,
            },
            points: vec![DataPoint {
                attributes: vec![],
                start_time: Some(boot),
                time: t,
                value: Value::Int(42),
            }],
        };
        let load = Metric {
            descriptor: Descriptor {
                name: "system.cpu.load_average.1m",
                description: "load",
                unit: "{thread}",
                kind: MetricKind::Gauge,
            },
            points: vec![DataPoint {
                attributes: vec![],
                start_time: None,
                time: t,
                value: Value::Double(0.5),
            }],
        };
        let req = metrics_request(&info(), &[cpu, mem, load]);
        let rm = &req.resource_metrics[0];
        let res = &rm.resource.as_ref().unwrap().attributes;
        assert_eq!(attr(res, "service.name"), Some(&s("host")));
        let ms = &rm.scope_metrics[0].metrics;
        assert_eq!(ms[0].unit, "s");
        let Some(metric::Data::Sum(sum)) = &ms[0].data else {
            panic!("cpu time is a sum: {:?}", ms[0].data)
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        let p = &sum.data_points[0];
        assert_eq!(p.start_time_unix_nano, 1_600_000_000_000_000_000);
        assert_eq!(p.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(p.value, Some(number_data_point::Value::AsDouble(12.5)));
        assert_eq!(attr(&p.attributes, "state"), Some(&s("user")));
        assert_eq!(
            attr(&p.attributes, "cpu"),
            Some(&any_value::Value::IntValue(0))
        );
        let Some(metric::Data::Sum(sum)) = &ms[1].data else {
            panic!("memory usage is a sum")
        };
        assert!(!sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsInt(42))
        );
        let Some(metric::Data::Gauge(g)) = &ms[2].data else {
            panic!("load is a gauge")
        };
        assert_eq!(g.data_points[0].start_time_unix_nano, 0);
    }
}
