//! The direct decoder held to prost: for any bytes — well-formed requests
//! of every shape the wire allows (fields in any order, repeated, absent,
//! unknown of every wire type, oneofs set twice, deep nesting) and the
//! same bytes corrupted — [`decode_logs`] gives exactly the batch that
//! prost's decoding and the translation as it was before the shared
//! builder give, or exactly prost's error.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use proptest::prelude::*;
use prost::encoding::{MAX_TAG, WireType, encode_key, encode_varint};
use tocsin_rules::promql::value::{Label, Labels};

use super::*;
use crate::logs::record::{AttrValue, LogRecord, RecordOrigin, Severity};
use crate::translate::attributes::{AgentsSeen, ResourceLabels, find, json_value, value_text};
use crate::translate::logs::{FILE_ID_ATTRIBUTE, FILE_OFFSET_ATTRIBUTE, translate_logs};

const NOW_MS: i64 = 1_700_000_000_000;
const NOW_NS: u64 = 1_700_000_000_000_000_000;

fn ns_to_ms_before(ns: u64) -> i64 {
    i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX)
}

fn hex_before(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `translate_logs` as it was before [`BatchBuilder`], verbatim: the
/// oracle both decoders are held to.
fn translate_logs_before(
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
                    ns_to_ms_before(r.time_unix_nano)
                } else if r.observed_time_unix_nano > 0 {
                    ns_to_ms_before(r.observed_time_unix_nano)
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
                            agent_id: agent_id.into(),
                            file_id: file_id.into(),
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
                    severity_text: r.severity_text.into(),
                    labels,
                    body,
                    attributes: attributes
                        .into_iter()
                        .map(|(k, v)| (k.into(), v.into()))
                        .collect::<Vec<_>>()
                        .into(),
                    origin,
                    trace_id: hex_before(&r.trace_id),
                    span_id: hex_before(&r.span_id),
                });
            }
        }
    }
    out.newest_by_agent = newest.into_iter().collect();
    out.newest_by_agent.sort();
    out.agents = agents.into_vec();
    out
}

/// One protobuf field value, any shape the wire allows.
#[derive(Debug, Clone)]
enum W {
    Varint(u64),
    I64(u64),
    I32(u32),
    Len(Vec<u8>),
    Msg(Vec<(u32, W)>),
    Group(Vec<(u32, W)>),
}

fn encode(fields: &[(u32, W)], out: &mut Vec<u8>) {
    for (tag, w) in fields {
        let tag = *tag;
        match w {
            W::Varint(v) => {
                encode_key(tag, WireType::Varint, out);
                encode_varint(*v, out);
            }
            W::I64(v) => {
                encode_key(tag, WireType::SixtyFourBit, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            W::I32(v) => {
                encode_key(tag, WireType::ThirtyTwoBit, out);
                out.extend_from_slice(&v.to_le_bytes());
            }
            W::Len(b) => {
                encode_key(tag, WireType::LengthDelimited, out);
                encode_varint(b.len() as u64, out);
                out.extend_from_slice(b);
            }
            W::Msg(inner) => {
                let mut b = Vec::new();
                encode(inner, &mut b);
                encode_key(tag, WireType::LengthDelimited, out);
                encode_varint(b.len() as u64, out);
                out.extend_from_slice(&b);
            }
            W::Group(inner) => {
                encode_key(tag, WireType::StartGroup, out);
                encode(inner, out);
                encode_key(tag, WireType::EndGroup, out);
            }
        }
    }
}

fn bytes_of(fields: &[(u32, W)]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(fields, &mut out);
    out
}

fn s(text: &str) -> W {
    W::Len(text.as_bytes().to_vec())
}

/// Text for string fields: mostly short and valid, sometimes any
/// Unicode, rarely not UTF-8 at all.
fn text_bytes(hostile: bool) -> BoxedStrategy<Vec<u8>> {
    let valid = prop_oneof![
        6 => "[a-z0-9./_-]{0,12}".prop_map(String::into_bytes),
        2 => "[0-9]{1,6}".prop_map(String::into_bytes),
        2 => any::<String>().prop_map(String::into_bytes),
    ];
    if hostile {
        prop_oneof![30 => valid, 1 => proptest::collection::vec(128u8.., 1..4)].boxed()
    } else {
        valid.boxed()
    }
}

/// A field a message does not have, of any wire type.
fn unknown() -> impl Strategy<Value = (u32, W)> {
    let leaf = prop_oneof![
        any::<u64>().prop_map(W::Varint),
        any::<u64>().prop_map(W::I64),
        any::<u32>().prop_map(W::I32),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(W::Len),
    ];
    let value = leaf.prop_recursive(2, 6, 3, |inner| {
        proptest::collection::vec((1u32..40, inner), 0..3).prop_map(W::Group)
    });
    (prop_oneof![13u32..40, 1000u32..1100, Just(MAX_TAG)], value)
}

/// When `hostile`, a known field with a value of any wire type (mostly
/// the wrong one); otherwise an unknown field.
fn misfit(hostile: bool, tags: std::ops::RangeInclusive<u32>) -> BoxedStrategy<(u32, W)> {
    if !hostile {
        return unknown().boxed();
    }
    let value = prop_oneof![
        any::<u64>().prop_map(W::Varint),
        any::<u64>().prop_map(W::I64),
        any::<u32>().prop_map(W::I32),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(W::Len),
        Just(W::Group(Vec::new())),
    ];
    (tags, value).boxed()
}

fn time() -> impl Strategy<Value = u64> {
    prop_oneof![
        1 => Just(0),
        4 => (0u64..1_200_000_000_000).prop_map(|d| NOW_NS - 600_000_000_000 + d),
        1 => any::<u64>(),
    ]
}

fn int() -> impl Strategy<Value = u64> {
    prop_oneof![
        (0u64..100_000),
        (-5i64..0).prop_map(|i| i as u64),
        any::<u64>(),
    ]
}

/// `AnyValue` fields: usually one member of the oneof, sometimes none or
/// several (later ones win or merge, as prost merges).
fn any_value(hostile: bool) -> impl Strategy<Value = Vec<(u32, W)>> {
    let leaf = prop_oneof![
        6 => text_bytes(hostile).prop_map(|b| (1, W::Len(b))),
        1 => (0u64..3).prop_map(|b| (2, W::Varint(b))),
        3 => int().prop_map(|i| (3, W::Varint(i))),
        1 => prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(0.25),
            Just(-0.0)
        ]
        .prop_map(|d| (4, W::I64(d.to_bits()))),
        1 => proptest::collection::vec(any::<u8>(), 0..5).prop_map(|b| (7, W::Len(b))),
        1 => (0u64..5).prop_map(|i| (8, W::Varint(i))),
        1 => unknown(),
    ];
    let one = leaf.clone().prop_map(|f| vec![f]);
    let fields = prop_oneof![
        8 => one,
        1 => Just(Vec::new()),
        1 => proptest::collection::vec(leaf, 2..4),
    ];
    fields.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            // ArrayValue { values = 1 }
            proptest::collection::vec(inner.clone(), 0..3)
                .prop_map(|vs| vec![(5, W::Msg(vs.into_iter().map(|v| (1, W::Msg(v))).collect()))]),
            // KeyValueList { values = 1: KeyValue }
            proptest::collection::vec(("[a-c]{1,2}", inner.clone()), 0..3).prop_map(|kvs| vec![(
                6,
                W::Msg(
                    kvs.into_iter()
                        .map(|(k, v)| (1, W::Msg(vec![(1, s(&k)), (2, W::Msg(v))])))
                        .collect()
                )
            )]),
            // Two messages of the oneof: merged, or replaced.
            (inner.clone(), inner).prop_map(|(a, b)| a.into_iter().chain(b).collect()),
        ]
    })
}

type Field = (u32, W);

/// A message's fields: usually the `typical` ones in their usual order;
/// sometimes those plus a few `odd` ones (repeats, unknown fields,
/// known fields of the wrong wire type), shuffled or not; sometimes any
/// `odd` ones at all.
fn shaped(
    typical: BoxedStrategy<Vec<Field>>,
    odd: BoxedStrategy<Field>,
) -> BoxedStrategy<Vec<Field>> {
    let extended = (
        typical.clone(),
        proptest::collection::vec(odd.clone(), 1..3),
        any::<bool>(),
    )
        .prop_flat_map(|(typical, extra, shuffle)| {
            let fields: Vec<Field> = typical.into_iter().chain(extra).collect();
            if shuffle {
                Just(fields).prop_shuffle().boxed()
            } else {
                Just(fields).boxed()
            }
        });
    prop_oneof![
        6 => typical,
        2 => extended,
        1 => proptest::collection::vec(odd, 0..5),
    ]
    .boxed()
}

/// `KeyValue` fields: usually key then value.
fn key_value(hostile: bool, keys: BoxedStrategy<String>) -> BoxedStrategy<W> {
    let typical = (keys.clone(), any_value(hostile))
        .prop_map(|(k, v)| vec![(1, s(&k)), (2, W::Msg(v))])
        .boxed();
    let odd = prop_oneof![
        3 => keys.prop_map(|k| (1, s(&k))),
        1 => text_bytes(hostile).prop_map(|b| (1, W::Len(b))),
        3 => any_value(hostile).prop_map(|v| (2, W::Msg(v))),
        1 => int().prop_map(|i| (3, W::Varint(i))),
        1 => unknown(),
        1 => misfit(hostile, 1..=3),
    ]
    .boxed();
    shaped(typical, odd).prop_map(W::Msg).boxed()
}

fn record_key() -> BoxedStrategy<String> {
    prop_oneof![
        Just(FILE_ID_ATTRIBUTE.to_string()),
        Just(FILE_OFFSET_ATTRIBUTE.to_string()),
        Just("log.file.path".to_string()),
        Just("log.file.name".to_string()),
        "[a-z.]{1,8}",
    ]
    .boxed()
}

fn resource_key() -> BoxedStrategy<String> {
    prop_oneof![
        Just("tocsin.agent.id".to_string()),
        Just("tocsin.agent.version".to_string()),
        Just("tocsin.agent.interval".to_string()),
        Just("service.name".to_string()),
        Just("service.namespace".to_string()),
        Just("service.instance.id".to_string()),
        Just("host.name".to_string()),
        Just("tocsin.track".to_string()),
        "[a-z.]{1,8}",
    ]
    .boxed()
}

fn string_any(v: &str) -> W {
    W::Msg(vec![(1, s(v))])
}

fn string_kv(key: &str, value: &str) -> W {
    W::Msg(vec![(1, s(key)), (2, string_any(value))])
}

fn resource(hostile: bool) -> BoxedStrategy<W> {
    // An agent's resource: its id (from a few, so that resources share
    // agents), names, and an interval; values sometimes over the label
    // limit the options may set.
    let typical = (
        prop_oneof!["agent-[12]", Just(String::new())],
        prop_oneof!["[a-z]{1,3}", Just("h".repeat(40))],
        prop_oneof![
            Just(W::Varint(10)),
            Just(W::I64(2.5f64.to_bits())),
            Just(s("x"))
        ],
        proptest::collection::vec(key_value(hostile, resource_key()), 0..3),
    )
        .prop_map(|(agent, host, interval, more)| {
            let mut f = vec![
                (1, string_kv("service.name", "api")),
                (1, string_kv("host.name", &host)),
                (1, string_kv("tocsin.agent.id", &agent)),
                (
                    1,
                    W::Msg(vec![
                        (1, s("tocsin.agent.interval")),
                        (
                            2,
                            W::Msg(vec![(
                                if matches!(interval, W::I64(_)) {
                                    4
                                } else if matches!(interval, W::Varint(_)) {
                                    3
                                } else {
                                    1
                                },
                                interval,
                            )]),
                        ),
                    ]),
                ),
            ];
            f.extend(more.into_iter().map(|kv| (1, kv)));
            f
        })
        .boxed();
    let odd = prop_oneof![
        4 => key_value(hostile, resource_key()).prop_map(|kv| (1, kv)),
        1 => int().prop_map(|i| (2, W::Varint(i))),
        // EntityRef { schema_url = 1, type = 2, id_keys = 3, description_keys = 4 }
        1 => proptest::collection::vec((1u32..=4, text_bytes(hostile).prop_map(W::Len)), 0..3)
            .prop_map(|f| (3, W::Msg(f))),
        1 => unknown(),
        1 => misfit(hostile, 1..=3),
    ]
    .boxed();
    shaped(typical, odd).prop_map(W::Msg).boxed()
}

fn scope(hostile: bool) -> BoxedStrategy<W> {
    let typical = Just(vec![(1, s("tocsin-agent")), (2, s("0.1.0"))]).boxed();
    let odd = prop_oneof![
        text_bytes(hostile).prop_map(|b| (1, W::Len(b))),
        text_bytes(hostile).prop_map(|b| (2, W::Len(b))),
        key_value(hostile, record_key()).prop_map(|kv| (3, kv)),
        int().prop_map(|i| (4, W::Varint(i))),
        unknown(),
        misfit(hostile, 1..=4),
    ]
    .boxed();
    shaped(typical, odd).prop_map(W::Msg).boxed()
}

/// A `LogRecord`: usually as the agent writes one, with a body of any
/// kind; its fields in any order, any of them repeated or absent.
fn record(hostile: bool) -> BoxedStrategy<W> {
    let id = prop_oneof![
        Just(Vec::new()),
        Just(vec![0u8; 16]),
        proptest::collection::vec(any::<u8>(), 0..17),
    ];
    let offset = prop_oneof![
        3 => int().prop_map(|i| vec![(3, W::Varint(i))]),
        1 => "[0-9]{1,4}".prop_map(|t| vec![(1, s(&t))]),
        1 => any_value(hostile),
    ];
    let typical = (
        time(),
        time(),
        0u64..25,
        prop_oneof![Just(String::new()), Just("INFO".to_string())],
        prop_oneof![3 => text_bytes(hostile).prop_map(|b| vec![(1, W::Len(b))]), 1 => any_value(hostile)],
        prop_oneof![Just(String::new()), "f-[0-9]"],
        offset,
        proptest::collection::vec(key_value(hostile, record_key()), 0..2),
    )
        .prop_map(|(time, observed, severity, text, body, file_id, offset, more)| {
            let mut f = vec![
                (1, W::I64(time)),
                (2, W::Varint(severity)),
                (3, s(&text)),
                (5, W::Msg(body)),
                (6, string_kv("log.file.path", "/var/log/app.log")),
                (6, string_kv(FILE_ID_ATTRIBUTE, &file_id)),
                (
                    6,
                    W::Msg(vec![(1, s(FILE_OFFSET_ATTRIBUTE)), (2, W::Msg(offset))]),
                ),
            ];
            f.extend(more.into_iter().map(|kv| (6, kv)));
            f.push((11, W::I64(observed)));
            f
        })
        .boxed();
    let odd = prop_oneof![
        2 => time().prop_map(|t| (1, W::I64(t))),
        2 => time().prop_map(|t| (11, W::I64(t))),
        2 => prop_oneof![0u64..30, any::<u64>()].prop_map(|n| (2, W::Varint(n))),
        2 => text_bytes(hostile).prop_map(|b| (3, W::Len(b))),
        3 => any_value(hostile).prop_map(|v| (5, W::Msg(v))),
        4 => key_value(hostile, record_key()).prop_map(|kv| (6, kv)),
        1 => int().prop_map(|i| (7, W::Varint(i))),
        1 => any::<u32>().prop_map(|f| (8, W::I32(f))),
        1 => id.clone().prop_map(|b| (9, W::Len(b))),
        1 => id.prop_map(|b| (10, W::Len(b))),
        1 => text_bytes(hostile).prop_map(|b| (12, W::Len(b))),
        1 => unknown(),
        1 => prop_oneof![misfit(hostile, 1..=3), misfit(hostile, 5..=12)],
    ]
    .boxed();
    shaped(typical, odd).prop_map(W::Msg).boxed()
}

fn scope_logs(hostile: bool) -> BoxedStrategy<W> {
    let typical = (
        scope(hostile),
        proptest::collection::vec(record(hostile), 0..6),
    )
        .prop_map(|(scope, records)| {
            std::iter::once((1, scope))
                .chain(records.into_iter().map(|r| (2, r)))
                .collect()
        })
        .boxed();
    let odd = prop_oneof![
        1 => scope(hostile).prop_map(|sc| (1, sc)),
        4 => record(hostile).prop_map(|r| (2, r)),
        1 => text_bytes(hostile).prop_map(|b| (3, W::Len(b))),
        1 => unknown(),
        1 => misfit(hostile, 1..=3),
    ]
    .boxed();
    shaped(typical, odd).prop_map(W::Msg).boxed()
}

fn resource_logs(hostile: bool) -> BoxedStrategy<W> {
    let typical = (
        resource(hostile),
        proptest::collection::vec(scope_logs(hostile), 0..3),
    )
        .prop_map(|(resource, scopes)| {
            std::iter::once((1, resource))
                .chain(scopes.into_iter().map(|sl| (2, sl)))
                .collect()
        })
        .boxed();
    let odd = prop_oneof![
        2 => resource(hostile).prop_map(|r| (1, r)),
        2 => scope_logs(hostile).prop_map(|sl| (2, sl)),
        1 => text_bytes(hostile).prop_map(|b| (3, W::Len(b))),
        1 => unknown(),
        1 => misfit(hostile, 1..=3),
    ]
    .boxed();
    shaped(typical, odd).prop_map(W::Msg).boxed()
}

fn request(hostile: bool) -> BoxedStrategy<Vec<Field>> {
    let typical =
        proptest::collection::vec(resource_logs(hostile).prop_map(|rl| (1, rl)), 0..4).boxed();
    let odd = prop_oneof![
        4 => resource_logs(hostile).prop_map(|rl| (1, rl)),
        1 => unknown(),
        1 => misfit(hostile, 1..=1),
    ]
    .boxed();
    shaped(typical, odd)
}

/// One change to the encoded bytes.
#[derive(Debug, Clone)]
enum Corruption {
    Flip(prop::sample::Index, u8),
    Truncate(prop::sample::Index),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
}

fn corrupt(bytes: &mut Vec<u8>, c: &Corruption) {
    if bytes.is_empty() {
        return;
    }
    match c {
        Corruption::Flip(i, x) => {
            let i = i.index(bytes.len());
            bytes[i] ^= x.max(&1);
        }
        Corruption::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Corruption::Insert(i, b) => bytes.insert(i.index(bytes.len()), *b),
        Corruption::Remove(i) => {
            bytes.remove(i.index(bytes.len()));
        }
    }
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, x)| Corruption::Flip(i, x)),
        any::<prop::sample::Index>().prop_map(Corruption::Truncate),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Corruption::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Corruption::Remove),
    ]
}

fn options() -> impl Strategy<Value = LogsOptions> {
    (
        prop_oneof![Just(10 * 60 * 1000), 0i64..2000],
        prop_oneof![Just(2048), 1usize..12],
    )
        .prop_map(|(max_future_ms, max_label_value_bytes)| LogsOptions {
            max_future_ms,
            max_label_value_bytes,
        })
}

fn same_batch(a: &LogsBatch, b: &LogsBatch) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.records, &b.records);
    prop_assert_eq!(a.total, b.total);
    prop_assert_eq!(a.refused_future, b.refused_future);
    prop_assert_eq!(a.refused_label_limits, b.refused_label_limits);
    prop_assert_eq!(&a.newest_by_agent, &b.newest_by_agent);
    prop_assert_eq!(&a.agents, &b.agents);
    Ok(())
}

/// What happened to one input, for the tests that check both outcomes
/// are reached.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Decoded,
    Refused,
}

/// [`decode_logs`] against prost plus [`translate_logs_before`], and
/// [`translate_logs`] against the same.
fn check(bytes: &[u8], opts: &LogsOptions) -> Result<Outcome, TestCaseError> {
    let direct = decode_logs(bytes, NOW_MS, opts);
    let decoded = <ExportLogsServiceRequest as Message>::decode(bytes);
    match (direct, decoded) {
        (Ok(direct), Ok(req)) => {
            let expected = translate_logs_before(req.clone(), NOW_MS, opts);
            same_batch(&direct, &expected)?;
            same_batch(&translate_logs(req, NOW_MS, opts), &expected)?;
            Ok(Outcome::Decoded)
        }
        (Err(direct), Err(prost)) => {
            prop_assert_eq!(direct.to_string(), prost.to_string());
            Ok(Outcome::Refused)
        }
        (direct, prost) => Err(TestCaseError::fail(format!(
            "direct decoding: {:?}, prost: {:?}",
            direct.map(|b| b.total),
            prost.map(|r| r.resource_logs.len())
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Requests of any shape, intact: well-formed ones, and hostile ones
    /// whose fields may have the wrong wire type or strings that are not
    /// UTF-8.
    #[test]
    fn any_request_decodes_as_prost_and_translates_as_before(
        req in any::<bool>().prop_flat_map(request),
        opts in options(),
    ) {
        check(&bytes_of(&req), &opts)?;
    }

    /// The same, with a few bytes changed, added, removed or cut off.
    #[test]
    fn corrupted_requests_fail_exactly_where_prost_fails(
        req in request(false),
        corruptions in proptest::collection::vec(corruption(), 1..4),
    ) {
        let mut bytes = bytes_of(&req);
        for c in &corruptions {
            corrupt(&mut bytes, c);
        }
        check(&bytes, &LogsOptions::default())?;
    }

    /// Arbitrary bytes.
    #[test]
    fn random_bytes_fail_exactly_where_prost_fails(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        check(&bytes, &LogsOptions::default())?;
    }
}

fn unwrap_check(bytes: &[u8]) -> Outcome {
    match check(bytes, &LogsOptions::default()) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// Wraps a `LogRecord`'s fields in a request with one resource.
fn one_record(resource: Vec<(u32, W)>, record: Vec<(u32, W)>) -> Vec<u8> {
    bytes_of(&[(
        1,
        W::Msg(vec![
            (1, W::Msg(resource)),
            (2, W::Msg(vec![(2, W::Msg(record))])),
        ]),
    )])
}

#[test]
fn the_recursion_limit_is_prosts() {
    // A body of arrays nested `n` deep; the limit falls inside the range.
    let mut outcomes = Vec::new();
    for n in 40..60 {
        let mut body = vec![(1, s("leaf"))];
        for _ in 0..n {
            body = vec![(5, W::Msg(vec![(1, W::Msg(body))]))];
        }
        outcomes.push(unwrap_check(&one_record(
            Vec::new(),
            vec![(5, W::Msg(body))],
        )));
    }
    assert!(outcomes.contains(&Outcome::Decoded));
    assert!(outcomes.contains(&Outcome::Refused));
    // Unknown groups nested deep inside a record are skipped up to the
    // same limit.
    let mut outcomes = Vec::new();
    for n in 90..105 {
        let mut group = vec![(20, W::Varint(1))];
        for _ in 0..n {
            group = vec![(20, W::Group(group))];
        }
        outcomes.push(unwrap_check(&one_record(Vec::new(), group)));
    }
    assert!(outcomes.contains(&Outcome::Decoded));
    assert!(outcomes.contains(&Outcome::Refused));
}

#[test]
fn a_resource_after_its_records_or_in_two_parts_applies_to_them() {
    let record = vec![
        (1, W::I64(NOW_NS)),
        (2, W::Varint(17)),
        (5, W::Msg(vec![(1, s("disk full"))])),
        (6, string_kv(FILE_ID_ATTRIBUTE, "f-1")),
        (
            6,
            W::Msg(vec![
                (1, s(FILE_OFFSET_ATTRIBUTE)),
                (2, W::Msg(vec![(3, W::Varint(42))])),
            ]),
        ),
    ];
    let bytes = bytes_of(&[(
        1,
        W::Msg(vec![
            (2, W::Msg(vec![(2, W::Msg(record))])),
            (1, W::Msg(vec![(1, string_kv("service.name", "api"))])),
            (
                1,
                W::Msg(vec![(1, string_kv("tocsin.agent.id", "agent-1"))]),
            ),
        ]),
    )]);
    assert_eq!(unwrap_check(&bytes), Outcome::Decoded);
    let b = decode_logs(&bytes, NOW_MS, &LogsOptions::default()).unwrap();
    assert_eq!(
        b.records[0].labels.to_string(),
        r#"{job="api", service_name="api", severity="error"}"#
    );
    assert_eq!(
        b.records[0].origin,
        Some(RecordOrigin {
            agent_id: "agent-1".into(),
            file_id: "f-1".into(),
            offset: 42
        })
    );
    assert_eq!(b.newest_by_agent, vec![("agent-1".to_string(), NOW_MS)]);
}

#[test]
fn a_repeated_body_merges_as_prost_merges_it() {
    let kvlist = |k: &str| (5, W::Msg(vec![(6, W::Msg(vec![(1, string_kv(k, "v"))]))]));
    let bytes = one_record(Vec::new(), vec![kvlist("a"), kvlist("b")]);
    assert_eq!(unwrap_check(&bytes), Outcome::Decoded);
    let b = decode_logs(&bytes, NOW_MS, &LogsOptions::default()).unwrap();
    assert_eq!(b.records[0].body, r#"{"a":"v","b":"v"}"#);
    // A string body after a structured one replaces it.
    let bytes = one_record(
        Vec::new(),
        vec![kvlist("a"), (5, W::Msg(vec![(1, s("plain"))]))],
    );
    assert_eq!(unwrap_check(&bytes), Outcome::Decoded);
    let b = decode_logs(&bytes, NOW_MS, &LogsOptions::default()).unwrap();
    assert_eq!(b.records[0].body, "plain");
}

#[test]
fn malformed_fields_are_prosts_errors() {
    let cases: Vec<Vec<u8>> = vec![
        // severity_text not UTF-8
        one_record(Vec::new(), vec![(3, W::Len(vec![0xff, 0xfe]))]),
        // time as a varint
        one_record(Vec::new(), vec![(1, W::Varint(5))]),
        // an attribute's key not UTF-8
        one_record(Vec::new(), vec![(6, W::Msg(vec![(1, W::Len(vec![0xc3]))]))]),
        // a resource attribute's value not UTF-8
        one_record(
            vec![(
                1,
                W::Msg(vec![
                    (1, s("host.name")),
                    (2, W::Msg(vec![(1, W::Len(vec![0x80]))])),
                ]),
            )],
            Vec::new(),
        ),
    ];
    for bytes in &cases {
        assert_eq!(unwrap_check(bytes), Outcome::Refused);
        // Truncated anywhere: refused, as prost refuses it.
        for cut in 1..bytes.len() {
            unwrap_check(&bytes[..cut]);
        }
    }
    let e = decode_logs(&cases[0], NOW_MS, &LogsOptions::default()).unwrap_err();
    assert!(e.to_string().contains("LogRecord.severity_text"), "{e}");
}

#[test]
fn an_agent_request_decodes_as_prost_and_translates_as_before() {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;
    use tocsin_agent::export::{ResourceInfo, encode_logs_request};
    use tocsin_agent::sources::logtail::LogRecord as AgentRecord;

    let info = ResourceInfo {
        host_name: "web-1".into(),
        service_name: "host".into(),
        environment: Some("prod".into()),
        service_version: Some("1.2.3".into()),
        track: Some("canary".into()),
        agent_id: "agent-7".into(),
        agent_version: "0.1.0".into(),
        interval_secs: 10,
    };
    let path: Arc<Path> = Arc::from(Path::new("/var/log/app.log"));
    let nginx = Arc::new(BTreeMap::from([(
        "service.name".to_string(),
        "nginx".to_string(),
    )]));
    let records: Vec<AgentRecord> = (0..50u64)
        .map(|i| AgentRecord {
            body: format!("line {i} ü"),
            path: Arc::clone(&path),
            file_id: Arc::from("803:1835021"),
            offset: i * 100,
            end_offset: i * 100 + 99,
            severity_number: [0, 9, 13, 17, 21][(i % 5) as usize],
            severity_text: (i % 3 == 0).then(|| "INFO".to_string()),
            truncated: i % 7 == 0,
            observed_unix_nanos: NOW_NS + i * 1_000_000,
            input: 0,
            attributes: if i % 2 == 0 {
                Arc::clone(&nginx)
            } else {
                Arc::new(BTreeMap::new())
            },
        })
        .collect();
    let bytes = encode_logs_request(&info, &records);
    assert_eq!(unwrap_check(&bytes), Outcome::Decoded);
    // The reservation is bounded by the request's size and a constant.
    assert_eq!(super::reserve_hint(bytes.len()), bytes.len() / 128);
    assert_eq!(super::reserve_hint(usize::MAX), super::MAX_RESERVED_RECORDS);
    let b = decode_logs(&bytes, NOW_MS + 1000, &LogsOptions::default()).unwrap();
    assert_eq!(b.total, 50);
    assert_eq!(b.records.len(), 50);
    let r = b.records.iter().find(|r| r.body == "line 7 ü").unwrap();
    assert_eq!(
        r.attributes,
        vec![
            ("log.file.path".into(), "/var/log/app.log".into()),
            ("tocsin.file.id".into(), "803:1835021".into()),
            ("tocsin.file.offset".into(), "700".into()),
            ("tocsin.log.truncated".into(), "true".into()),
        ]
        .into()
    );
    assert_eq!(
        r.origin,
        Some(RecordOrigin {
            agent_id: "agent-7".into(),
            file_id: "803:1835021".into(),
            offset: 700
        })
    );
    assert_eq!(b.agents.len(), 1);
}

#[test]
fn strings_repeated_from_the_previous_record_are_shared() {
    use std::path::Path;
    use std::sync::Arc;
    use tocsin_agent::export::{ResourceInfo, encode_logs_request};
    use tocsin_agent::sources::logtail::LogRecord as AgentRecord;

    let info = ResourceInfo {
        host_name: "web-1".into(),
        service_name: "host".into(),
        environment: None,
        service_version: None,
        track: None,
        agent_id: "agent-7".into(),
        agent_version: "0.1.0".into(),
        interval_secs: 10,
    };
    let path: Arc<Path> = Arc::from(Path::new("/var/log/app.log"));
    let records: Vec<AgentRecord> = (0..20u64)
        .map(|i| AgentRecord {
            body: format!("line {i}"),
            path: Arc::clone(&path),
            file_id: Arc::from(if i < 10 { "803:1" } else { "803:2" }),
            offset: i * 100,
            end_offset: i * 100 + 99,
            severity_number: 17,
            severity_text: Some(if i % 3 == 0 { "WARN" } else { "ERROR" }.to_string()),
            truncated: false,
            observed_unix_nanos: NOW_NS + i,
            input: 0,
            attributes: Arc::default(),
        })
        .collect();
    let bytes = encode_logs_request(&info, &records);
    assert_eq!(unwrap_check(&bytes), Outcome::Decoded);
    let b = decode_logs(&bytes, NOW_MS + 1000, &LogsOptions::default()).unwrap();
    assert_eq!(b.records.len(), 20);
    let first = &b.records[0];
    let names: Vec<&str> = first.attributes.iter().map(|(k, _)| &**k).collect();
    assert_eq!(
        names,
        ["log.file.path", FILE_ID_ATTRIBUTE, FILE_OFFSET_ATTRIBUTE]
    );
    let text = |v: &AttrValue| Arc::clone(v.as_shared().unwrap());
    for (i, r) in b.records.iter().enumerate() {
        // Severity texts alternate: each is shared with the first record
        // that had it, not only with the previous record.
        let same_text = if i % 3 == 0 { 0 } else { 1 };
        assert_eq!(&*r.severity_text, &*b.records[same_text].severity_text);
        assert!(
            Arc::ptr_eq(&r.severity_text, &b.records[same_text].severity_text),
            "{i}"
        );
        // A file's run of records shares one list of the attributes but
        // the offset, which each keeps as the integer it was sent as.
        let run_start = &b.records[i / 10 * 10];
        assert!(Arc::ptr_eq(
            r.attributes.shared(),
            run_start.attributes.shared()
        ));
        assert_eq!(r.attributes.shared().len(), 2);
        assert_eq!(r.attributes.len(), 3);
        let (key, offset) = r.attributes.get(2).unwrap();
        assert_eq!(&**key, FILE_OFFSET_ATTRIBUTE);
        assert!(matches!(offset, AttrValue::Int(o) if *o == i as i64 * 100));
        assert_eq!(offset.to_string(), (i as u64 * 100).to_string());
        // Names throughout, the path too; the file id within each run.
        for (k, (a, b)) in r.attributes.iter().zip(first.attributes.iter()).enumerate() {
            assert!(Arc::ptr_eq(a.0, b.0), "record {i} attribute {k}");
        }
        let (_, path) = r.attributes.get(0).unwrap();
        assert!(Arc::ptr_eq(
            &text(path),
            &text(first.attributes.get(0).unwrap().1)
        ));
        let (_, file_id) = r.attributes.get(1).unwrap();
        let origin = r.origin.as_ref().unwrap();
        assert!(Arc::ptr_eq(&origin.file_id, &text(file_id)), "{i}");
    }
    assert!(!Arc::ptr_eq(
        b.records[9].attributes.shared(),
        b.records[10].attributes.shared()
    ));
}
