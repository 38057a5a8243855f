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
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tocsin_rules::promql::value::{Label, Labels};

use super::attributes::{AgentResource, AgentsSeen, ResourceLabels, json_value, value_text_owned};
use crate::logs::record::{AttrValue, Attributes, LogRecord, RecordOrigin, Severity};

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
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    if bytes.iter().all(|b| *b == 0) {
        return None;
    }
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    Some(out)
}

/// A record attribute's value as a decoder hands it over: text already
/// shared or checked, an integer, or any OTLP value (rendered by
/// [`value_text_owned`]).
#[derive(Debug)]
pub(super) enum AttributeValue {
    Text(Arc<str>),
    Int(i64),
    Other(Option<AnyValue>),
}

/// An attribute value in the plain encoding a decoder reads without
/// prost ([`super::logs_wire`]): the string's bytes (not yet checked as
/// UTF-8) or the integer.
#[derive(Debug, Clone, Copy)]
pub(super) enum PlainValue<'a> {
    Text(&'a [u8]),
    Int(i64),
}

/// The attribute list of the record before, which a record's attributes
/// repeat while they can.
pub(super) type SharedList = [(Arc<str>, AttrValue)];

/// A log record's attributes as they are decoded, in their order: each
/// rendered as text, the first integer `tocsin.file.offset` kept apart,
/// and the first `tocsin.file.id` and `tocsin.file.offset` read as the
/// record's origin. While the attributes repeat the previous record's
/// list (`previous` below: its [`Attributes::shared`]) in its order,
/// nothing is built: the record will share that list.
#[derive(Debug, Default)]
pub(super) struct RecordAttributes {
    /// The attributes read so far, once they stop repeating the previous
    /// record's list: its first `matched` entries, then the rest.
    list: Option<Vec<(Arc<str>, AttrValue)>>,
    /// How many leading attributes repeat the previous record's list.
    matched: usize,
    /// The first `tocsin.file.offset` attribute when it is an integer.
    apart: Option<i64>,
    /// Where the first `tocsin.file.id` attribute is among the attributes
    /// but the one kept apart (its value is the record's file id).
    file_id: Option<usize>,
    /// The first `tocsin.file.offset` attribute's value as an offset;
    /// `Some(None)` when that attribute has no usable one.
    offset: Option<Option<u64>>,
}

impl RecordAttributes {
    /// Attributes but the one kept apart read so far: the index of the
    /// next one in the record's (unsorted) list.
    fn next_index(&self) -> usize {
        self.list.as_ref().map_or(self.matched, Vec::len)
    }

    /// The previous record's attribute at the next one's place, if any:
    /// the strings a decoder shares when they are equal.
    fn previous_entry<'p>(&self, previous: &'p SharedList) -> Option<&'p (Arc<str>, AttrValue)> {
        previous.get(self.next_index())
    }

    /// Keeps the first integer `tocsin.file.offset`, `i`, apart from the
    /// list (and as the origin's offset when it is the first offset).
    fn keep_apart(&mut self, i: i64) {
        if self.offset.is_none() {
            self.offset = Some(u64::try_from(i).ok());
        }
        self.apart = Some(i);
    }

    /// Notes the first file id among the attributes.
    fn note_file_id(&mut self, key: &str) {
        if self.file_id.is_none() && key == FILE_ID_ATTRIBUTE {
            self.file_id = Some(self.next_index());
        }
    }

    /// Adds the next attribute of the record, read in the plain encoding:
    /// None, with nothing added, when the key or the text is not UTF-8.
    pub(super) fn push_plain(
        &mut self,
        key: &[u8],
        value: PlainValue<'_>,
        previous: &SharedList,
    ) -> Option<()> {
        let is_offset = key == FILE_OFFSET_ATTRIBUTE.as_bytes();
        if is_offset
            && self.apart.is_none()
            && let PlainValue::Int(i) = value
        {
            self.keep_apart(i);
            return Some(());
        }
        let entry = self.previous_entry(previous);
        let repeat = self.list.is_none()
            && entry.is_some_and(|(k, v)| {
                k.as_bytes() == key
                    && match (v, value) {
                        (AttrValue::Text(a), PlainValue::Text(b)) => a.as_bytes() == b,
                        (AttrValue::Int(a), PlainValue::Int(b)) => *a == b,
                        _ => false,
                    }
            });
        if repeat && let Some((k, v)) = entry {
            self.note_file_id(k);
            if is_offset && self.offset.is_none() {
                self.offset = Some(match v {
                    AttrValue::Text(s) => s.parse().ok(),
                    AttrValue::Int(i) => u64::try_from(*i).ok(),
                });
            }
            self.matched += 1;
            return Some(());
        }
        let key = shared_text(key, entry.map(|(k, _)| k))?;
        let value = match value {
            PlainValue::Text(t) => {
                AttributeValue::Text(shared_text(t, entry.and_then(|(_, v)| v.as_shared()))?)
            }
            PlainValue::Int(i) => AttributeValue::Int(i),
        };
        self.push(key, value, previous);
        Some(())
    }

    /// Adds the next attribute of the record.
    pub(super) fn push(&mut self, key: Arc<str>, value: AttributeValue, previous: &SharedList) {
        if *key == *FILE_OFFSET_ATTRIBUTE
            && self.apart.is_none()
            && let AttributeValue::Int(i) = value
        {
            self.keep_apart(i);
            return;
        }
        self.note_file_id(&key);
        if self.offset.is_none() && *key == *FILE_OFFSET_ATTRIBUTE {
            self.offset = Some(match &value {
                AttributeValue::Text(s) => s.parse().ok(),
                AttributeValue::Int(i) => u64::try_from(*i).ok(),
                AttributeValue::Other(v) => v.as_ref().and_then(|v| match &v.value {
                    Some(Value::IntValue(i)) => u64::try_from(*i).ok(),
                    Some(Value::StringValue(s)) => s.parse().ok(),
                    _ => None,
                }),
            });
        }
        let value = match value {
            AttributeValue::Text(s) => AttrValue::Text(s),
            // Reads as `value_text` writes an integer.
            AttributeValue::Int(i) => AttrValue::Int(i),
            AttributeValue::Other(v) => AttrValue::Text(Arc::from(value_text_owned(v))),
        };
        let matched = self.matched;
        self.list
            .get_or_insert_with(|| {
                let mut list = Vec::with_capacity(previous.len().max(matched + 1));
                list.extend_from_slice(previous.get(..matched).unwrap_or_default());
                list
            })
            .push((key, value));
    }

    /// Adds the next attribute of the record, as prost decoded it.
    pub(super) fn push_otlp(&mut self, kv: KeyValue, previous: &SharedList) {
        self.push(Arc::from(kv.key), AttributeValue::Other(kv.value), previous);
    }
}

/// `bytes` as text: `previous` when they are its text, a new copy when
/// they are UTF-8, None otherwise.
fn shared_text(bytes: &[u8], previous: Option<&Arc<str>>) -> Option<Arc<str>> {
    match previous {
        Some(p) if p.as_bytes() == bytes => Some(Arc::clone(p)),
        _ => std::str::from_utf8(bytes).ok().map(Arc::from),
    }
}

/// One OTLP log record's fields, however it was decoded.
#[derive(Debug, Default)]
pub(super) struct RecordParts {
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub severity_number: i32,
    /// None when the record has none (the batch's shared empty text).
    pub severity_text: Option<Arc<str>>,
    pub body: Option<AnyValue>,
    pub attributes: RecordAttributes,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
}

/// Builds a [`LogsBatch`] from a request's resources and their records in
/// request order; shared by [`translate_logs`] and the direct protobuf
/// decoder ([`super::logs_wire`]), so the two cannot translate apart.
///
/// A resource is only known once all of it has been read (on the wire
/// `resource` may follow the records, or come twice and merge), so a
/// record is built when it is read, with a placeholder label set and an
/// origin without its agent, and [`BatchBuilder::end_resource`] completes
/// (or, over the label limits, refuses) the resource's records. Between
/// [`BatchBuilder::begin_resource`] and `end_resource`, the records of the
/// open resource are `out.records[start..]`.
#[derive(Debug)]
pub(super) struct BatchBuilder<'o> {
    out: LogsBatch,
    newest: HashMap<String, i64>,
    agents: AgentsSeen,
    received_ms: i64,
    opts: &'o LogsOptions,
    /// Stands in for the labels of the open resource's records.
    placeholder: Labels,
    start: usize,
    /// The newest record time of the open resource, refused records too.
    resource_newest: Option<i64>,
    /// Stands in for the agent of the open resource's origins.
    no_agent: Arc<str>,
    /// The file id of the last origin built: a request's records come in
    /// runs of one file, which share one copy of its id.
    last_file_id: Option<Arc<str>>,
    /// The severity text of records that have none.
    empty_text: Arc<str>,
    /// The severity texts read so far, for records to share.
    severity_texts: RecentTexts,
}

/// The few distinct severity texts of a request's records (`INFO`,
/// `WARN`, …), each kept once so that records share its copy: records of
/// mixed severities alternate between them, so the previous record's text
/// alone would be copied again on most records.
#[derive(Debug, Default)]
pub(super) struct RecentTexts {
    texts: Vec<Arc<str>>,
}

impl RecentTexts {
    /// Distinct texts kept; a request with more copies the rest.
    const MAX: usize = 8;

    /// `bytes` as text, a kept copy when there is one; None when they are
    /// not UTF-8.
    pub(super) fn shared(&mut self, bytes: &[u8]) -> Option<Arc<str>> {
        if let Some(t) = self.texts.iter().find(|t| t.as_bytes() == bytes) {
            return Some(Arc::clone(t));
        }
        let text: Arc<str> = Arc::from(std::str::from_utf8(bytes).ok()?);
        if self.texts.len() < Self::MAX {
            self.texts.push(Arc::clone(&text));
        }
        Some(text)
    }
}

impl<'o> BatchBuilder<'o> {
    pub(super) fn new(received_ms: i64, opts: &'o LogsOptions) -> BatchBuilder<'o> {
        BatchBuilder {
            out: LogsBatch::default(),
            newest: HashMap::new(),
            agents: AgentsSeen::default(),
            received_ms,
            opts,
            placeholder: Labels::empty(),
            start: 0,
            resource_newest: None,
            no_agent: Arc::from(""),
            last_file_id: None,
            empty_text: Arc::from(""),
            severity_texts: RecentTexts::default(),
        }
    }

    /// `id` shared with the previous origin's when they are equal.
    fn shared_file_id(&mut self, id: &Arc<str>) -> Arc<str> {
        match &self.last_file_id {
            Some(last) if Arc::ptr_eq(last, id) || **last == **id => Arc::clone(last),
            _ => {
                self.last_file_id = Some(Arc::clone(id));
                Arc::clone(id)
            }
        }
    }

    /// The record added last, if any, and the severity texts read so far:
    /// the strings a decoder shares when the next record repeats them.
    pub(super) fn sharing(&mut self) -> (Option<&LogRecord>, &mut RecentTexts) {
        (self.out.records.last(), &mut self.severity_texts)
    }

    /// Makes room for `n` more records at once: a request's records
    /// vector grown by doubling is copied into fresh memory at each step
    /// (a tenth of the collector's CPU in page faults at 8192 records).
    pub(super) fn reserve(&mut self, n: usize) {
        self.out.records.reserve_exact(n);
    }

    /// Opens the next resource.
    pub(super) fn begin_resource(&mut self) {
        self.start = self.out.records.len();
        self.resource_newest = None;
    }

    /// Adds a record of the open resource.
    pub(super) fn record(&mut self, r: RecordParts) {
        self.out.total += 1;
        let time_ms = if r.time_unix_nano > 0 {
            ns_to_ms(r.time_unix_nano)
        } else if r.observed_time_unix_nano > 0 {
            ns_to_ms(r.observed_time_unix_nano)
        } else {
            self.received_ms
        };
        self.resource_newest = Some(self.resource_newest.map_or(time_ms, |t| t.max(time_ms)));
        if time_ms > self.received_ms.saturating_add(self.opts.max_future_ms) {
            self.out.refused_future += 1;
            return;
        }
        let RecordAttributes {
            list,
            matched,
            apart,
            file_id,
            offset,
        } = r.attributes;
        let previous = self.out.records.last().map(|p| p.attributes.shared());
        // The agent is filled in by `end_resource`.
        let file_id = file_id
            .and_then(|i| match &list {
                Some(list) => list.get(i),
                None => previous.and_then(|p| p.get(i)),
            })
            .map(|(_, v)| v.clone());
        let shared: Arc<SharedList> = match (list, previous) {
            (Some(mut list), _) => {
                list.sort();
                list.into()
            }
            (None, Some(previous)) if previous.len() == matched => Arc::clone(previous),
            (None, previous) => previous
                .and_then(|p| p.get(..matched))
                .unwrap_or_default()
                .into(),
        };
        let attributes = Attributes::new(shared, apart);
        let origin = match (file_id, offset.flatten()) {
            (Some(file_id), Some(offset)) if file_id != "" => Some(RecordOrigin {
                agent_id: Arc::clone(&self.no_agent),
                file_id: match &file_id {
                    AttrValue::Text(id) => self.shared_file_id(id),
                    AttrValue::Int(i) => Arc::from(itoa::Buffer::new().format(*i)),
                },
                offset,
            }),
            _ => None,
        };
        let body = match r.body.and_then(|b| b.value) {
            None => String::new(),
            Some(Value::StringValue(s)) => s,
            Some(other) => json_value(Some(&other)).to_string(),
        };
        self.out.records.push(LogRecord {
            time_ms,
            received_ms: self.received_ms,
            severity: Severity::from_number(r.severity_number),
            severity_text: r
                .severity_text
                .unwrap_or_else(|| Arc::clone(&self.empty_text)),
            labels: self.placeholder.clone(),
            body,
            attributes,
            origin,
            trace_id: hex(&r.trace_id),
            span_id: hex(&r.span_id),
        });
    }

    /// Closes the open resource, now that `resource` is complete: its
    /// agent, its records' labels and origins, or their refusal.
    pub(super) fn end_resource(&mut self, resource: Option<&Resource>) {
        let resource = ResourceLabels::from_resource(resource);
        if let Some(a) = &resource.agent {
            self.agents.note(a);
        }
        if let (Some(agent), Some(time_ms)) = (resource.agent_id(), self.resource_newest) {
            match self.newest.get_mut(agent) {
                Some(e) => *e = (*e).max(time_ms),
                None => {
                    self.newest.insert(agent.to_string(), time_ms);
                }
            }
        }
        let (base, _) = resource.labels_for(&[]);
        if base
            .values()
            .any(|v| v.len() > self.opts.max_label_value_bytes)
        {
            self.out.refused_label_limits += self.out.records.len() - self.start;
            self.out.records.truncate(self.start);
            return;
        }
        // A resource's records of one severity share their labels: built
        // once and shared (cloning `Labels` only counts a reference), which
        // also lets the store compare them by pointer.
        let mut by_severity: [Option<Labels>; 7] = Default::default();
        let agent: Option<Arc<str>> = resource.agent_id().map(Arc::from);
        for r in &mut self.out.records[self.start..] {
            let severity = r.severity;
            r.labels = by_severity[severity as usize]
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
            match &agent {
                Some(agent) => {
                    if let Some(origin) = &mut r.origin {
                        origin.agent_id = Arc::clone(agent);
                    }
                }
                None => r.origin = None,
            }
        }
    }

    pub(super) fn finish(self) -> LogsBatch {
        let mut out = self.out;
        out.newest_by_agent = self.newest.into_iter().collect();
        out.newest_by_agent.sort();
        out.agents = self.agents.into_vec();
        out
    }
}

/// Translates a request received at `received_ms`.
pub fn translate_logs(
    req: ExportLogsServiceRequest,
    received_ms: i64,
    opts: &LogsOptions,
) -> LogsBatch {
    let mut batch = BatchBuilder::new(received_ms, opts);
    for rl in req.resource_logs {
        batch.begin_resource();
        for sl in rl.scope_logs {
            for r in sl.log_records {
                let mut attributes = RecordAttributes::default();
                for kv in r.attributes {
                    attributes.push_otlp(kv, &[]);
                }
                batch.record(RecordParts {
                    time_unix_nano: r.time_unix_nano,
                    observed_time_unix_nano: r.observed_time_unix_nano,
                    severity_number: r.severity_number,
                    severity_text: (!r.severity_text.is_empty())
                        .then(|| Arc::from(r.severity_text)),
                    body: r.body,
                    attributes,
                    trace_id: r.trace_id,
                    span_id: r.span_id,
                });
            }
        }
        batch.end_resource(rl.resource.as_ref());
    }
    batch.finish()
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
        assert_eq!(&*r.severity_text, "ERR");
        assert_eq!(r.body, "disk full");
        assert_eq!(
            r.labels.to_string(),
            r#"{host_name="web-1", job="api", service_name="api", severity="error"}"#
        );
        assert_eq!(
            r.attributes.get(0),
            Some((&"log.file.path".into(), &"/var/log/app.log".into()))
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
