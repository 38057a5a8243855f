//! OTLP log records to the collector's [`LogRecord`]s.
//!
//! A record's labels are its resource's (`job`, `instance`, the promoted
//! attributes, as for metrics) plus `severity`, the word normalised from
//! the OTLP severity number; the severity text, the record attributes (under
//! their OTLP names) and the body (as text; structured bodies as JSON) are
//! kept. A record stamped more than `max_future_ms` after its arrival is
//! refused and counted; its time still feeds the sender's clock skew. A
//! record whose labels would carry a value longer than
//! `max_label_value_bytes` is refused too: those labels become series
//! (`tocsin_log_records_total`, log metrics), bounded as metrics' are.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tocsin_rules::promql::value::{Label, Labels};

use super::attributes::{AgentResource, AgentsSeen, ResourceLabels, find, json_value, value_text};
use crate::logs::record::{LogRecord, RecordOrigin, Severity};

/// Record attribute: the agent's file incarnation id.
pub const FILE_ID_ATTRIBUTE: &str = "tocsin.file.id";
/// Record attribute: byte offset of the record's first line.
pub const FILE_OFFSET_ATTRIBUTE: &str = "tocsin.file.offset";

/// Windows of the log translation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogsOptions {
    /// Records stamped further than this ahead of their arrival are refused.
    pub max_future_ms: i64,
    /// Records whose labels would hold a longer value are refused.
    pub max_label_value_bytes: usize,
}

impl Default for LogsOptions {
    fn default() -> Self {
        LogsOptions {
            max_future_ms: 10 * 60 * 1000,
            max_label_value_bytes: 2048,
        }
    }
}

/// The result of translating one request.
#[derive(Debug, Default)]
pub struct LogsBatch {
    pub records: Vec<LogRecord>,
    /// Log records in the request.
    pub total: usize,
    pub refused_future: usize,
    /// Refused for a label value longer than `max_label_value_bytes`.
    pub refused_label_limits: usize,
    /// For each Tocsin agent in the request, its newest record time (ms).
    pub newest_by_agent: Vec<(String, i64)>,
    /// Every Tocsin agent whose resource is in the request, records or
    /// not (liveness and the agent inventory).
    pub agents: Vec<AgentResource>,
}

fn ns_to_ms(ns: u64) -> i64 {
    i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
}

fn hex(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Translates a request received at `received_ms`.
pub fn translate_logs(
    req: ExportLogsServiceRequest,
    received_ms: i64,
    opts: &LogsOptions,
) -> LogsBatch {
    let mut out = LogsBatch::default();
    let mut newest: HashMap<String, i64> = HashMap::new();
    let mut agents = AgentsSeen::default();
    for rl in req.resource_logs {
        let resource = ResourceLabels::from_resource(rl.resource.as_ref());
        if let Some(a) = &resource.agent {
            agents.note(a);
        }
        let (base, _) = resource.labels_for(&[]);
        let oversize = base.values().any(|v| v.len() > opts.max_label_value_bytes);
        // A resource's records of one severity share their labels: built
        // once and shared (cloning `Labels` only counts a reference), which
        // also lets the store compare them by pointer.
        let mut by_severity: [Option<Labels>; 7] = Default::default();
        for sl in rl.scope_logs {
            for r in sl.log_records {
                out.total += 1;
                let time_ms = if r.time_unix_nano > 0 {
                    ns_to_ms(r.time_unix_nano)
                } else if r.observed_time_unix_nano > 0 {
                    ns_to_ms(r.observed_time_unix_nano)
                } else {
                    received_ms
                };
                if let Some(agent) = resource.agent_id() {
                    match newest.get_mut(agent) {
                        Some(e) => *e = (*e).max(time_ms),
                        None => {
                            newest.insert(agent.to_string(), time_ms);
                        }
                    }
                }
                if time_ms > received_ms.saturating_add(opts.max_future_ms) {
                    out.refused_future += 1;
                    continue;
                }
                if oversize {
                    out.refused_label_limits += 1;
                    continue;
                }
                let severity = Severity::from_number(r.severity_number);
                let labels = by_severity[severity as usize]
                    .get_or_insert_with(|| {
                        let mut labels: Vec<Label> = base
                            .iter()
                            .map(|(n, v)| Label {
                                name: n.clone(),
                                value: v.clone(),
                            })
                            .collect();
                        labels.push(Label {
                            name: "severity".to_string(),
                            value: severity.as_str().to_string(),
                        });
                        Labels::from_vec(labels)
                    })
                    .clone();
                let origin = match (
                    resource.agent_id(),
                    find(&r.attributes, FILE_ID_ATTRIBUTE).map(|v| value_text(Some(v))),
                    find(&r.attributes, FILE_OFFSET_ATTRIBUTE).and_then(|v| match &v.value {
                        Some(Value::IntValue(i)) => u64::try_from(*i).ok(),
                        Some(Value::StringValue(s)) => s.parse().ok(),
                        _ => None,
                    }),
                ) {
                    (Some(agent_id), Some(file_id), Some(offset)) if !file_id.is_empty() => {
                        Some(RecordOrigin {
                            agent_id: agent_id.to_string(),
                            file_id,
                            offset,
                        })
                    }
                    _ => None,
                };
                let mut attributes: Vec<(String, String)> = r
                    .attributes
                    .into_iter()
                    .map(|kv| {
                        let value = value_text(kv.value.as_ref());
                        (kv.key, value)
                    })
                    .collect();
                attributes.sort();
                let body = match r.body.and_then(|b| b.value) {
                    None => String::new(),
                    Some(Value::StringValue(s)) => s,
                    Some(other) => json_value(Some(&other)).to_string(),
                };
                out.records.push(LogRecord {
                    time_ms,
                    received_ms,
                    severity,
                    severity_text: r.severity_text,
                    labels,
                    body,
                    attributes,
                    origin,
                    trace_id: hex(&r.trace_id),
                    span_id: hex(&r.span_id),
                });
            }
        }
    }
    out.newest_by_agent = newest.into_iter().collect();
    out.newest_by_agent.sort();
    out.agents = agents.into_vec();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    const NOW_MS: i64 = 1_700_000_000_000;
    const NOW_NS: u64 = 1_700_000_000_000_000_000;

    fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(v) }),
            ..KeyValue::default()
        }
    }

    fn s(v: &str) -> Value {
        Value::StringValue(v.to_string())
    }

    fn request(records: Vec<OtlpRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", s("api")),
                        kv("host.name", s("web-1")),
                        kv("tocsin.agent.id", s("agent-1")),
                    ],
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }],
        }
    }

    #[test]
    fn records_keep_severity_body_attributes_and_origin() {
        let rec = OtlpRecord {
            time_unix_nano: NOW_NS,
            severity_number: 17,
            severity_text: "ERR".to_string(),
            body: Some(AnyValue {
                value: Some(s("disk full")),
            }),
            attributes: vec![
                kv("tocsin.file.offset", Value::IntValue(4096)),
                kv("log.file.path", s("/var/log/app.log")),
                kv("tocsin.file.id", s("f-9")),
            ],
            trace_id: vec![0xab; 16],
            ..OtlpRecord::default()
        };
        let b = translate_logs(request(vec![rec]), NOW_MS + 3, &LogsOptions::default());
        assert_eq!(b.total, 1);
        let r = &b.records[0];
        assert_eq!(r.time_ms, NOW_MS);
        assert_eq!(r.received_ms, NOW_MS + 3);
        assert_eq!(r.severity, Severity::Error);
        assert_eq!(r.severity_text, "ERR");
        assert_eq!(r.body, "disk full");
        assert_eq!(
            r.labels.to_string(),
            r#"{host_name="web-1", job="api", service_name="api", severity="error"}"#
        );
        assert_eq!(
            r.attributes[0],
            ("log.file.path".into(), "/var/log/app.log".into())
        );
        assert_eq!(
            r.origin,
            Some(RecordOrigin {
                agent_id: "agent-1".into(),
                file_id: "f-9".into(),
                offset: 4096
            })
        );
        assert_eq!(
            r.trace_id.as_deref(),
            Some("abababababababababababababababab")
        );
        assert_eq!(r.span_id, None);
        assert_eq!(b.newest_by_agent, vec![("agent-1".to_string(), NOW_MS)]);
        assert_eq!(b.agents.len(), 1);
        assert_eq!(b.agents[0].id, "agent-1");
    }

    #[test]
    fn structured_bodies_become_json_and_missing_times_fall_back() {
        let rec = OtlpRecord {
            observed_time_unix_nano: NOW_NS - 1_000_000,
            body: Some(AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: vec![kv("code", Value::IntValue(7))],
                })),
            }),
            ..OtlpRecord::default()
        };
        let bare = OtlpRecord::default();
        let b = translate_logs(request(vec![rec, bare]), NOW_MS, &LogsOptions::default());
        assert_eq!(b.records[0].body, r#"{"code":7}"#);
        assert_eq!(b.records[0].time_ms, NOW_MS - 1);
        assert_eq!(b.records[0].severity, Severity::Unknown);
        assert_eq!(b.records[0].origin, None);
        assert_eq!(b.records[1].time_ms, NOW_MS);
    }

    #[test]
    fn huge_label_values_are_refused() {
        let mut req = request(vec![OtlpRecord::default(), OtlpRecord::default()]);
        if let Some(r) = req.resource_logs[0].resource.as_mut() {
            r.attributes.retain(|a| a.key != "host.name");
            r.attributes.push(kv("host.name", s(&"h".repeat(3000))));
        }
        let b = translate_logs(req, NOW_MS, &LogsOptions::default());
        assert_eq!(b.total, 2);
        assert_eq!(b.refused_label_limits, 2);
        assert!(b.records.is_empty());
    }

    #[test]
    fn future_records_are_refused_but_show_the_skew() {
        let ahead = OtlpRecord {
            time_unix_nano: NOW_NS + 11 * 60 * 1_000_000_000,
            ..OtlpRecord::default()
        };
        let fine = OtlpRecord {
            time_unix_nano: NOW_NS + 9 * 60 * 1_000_000_000,
            ..OtlpRecord::default()
        };
        let b = translate_logs(request(vec![ahead, fine]), NOW_MS, &LogsOptions::default());
        assert_eq!(b.total, 2);
        assert_eq!(b.refused_future, 1);
        assert_eq!(b.records.len(), 1);
        assert_eq!(b.newest_by_agent[0].1, NOW_MS + 11 * 60 * 1000);
    }
}
