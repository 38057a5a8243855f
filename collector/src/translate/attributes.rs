//! OTLP attribute values as text, and the labels a resource contributes to
//! every series and log record it sends.
//!
//! Label rules follow Prometheus' OTLP receiver: `job` is
//! `service.namespace/service.name` (or `service.name`), `instance` is
//! `service.instance.id`, a fixed list of resource attributes is promoted
//! to labels under their translated names, and `job`/`instance` override
//! any data-point attribute of the same name while promoted attributes
//! yield to one.

use std::collections::{BTreeMap, HashMap};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::names::label_name;

/// Resource attributes promoted to labels (DESIGN.md, "Fixed interfaces").
pub const PROMOTED_RESOURCE_ATTRIBUTES: [&str; 5] = [
    "host.name",
    "service.name",
    "service.version",
    "deployment.environment.name",
    "tocsin.track",
];

/// The resource attribute that identifies a Tocsin agent.
pub const AGENT_ID_ATTRIBUTE: &str = "tocsin.agent.id";
/// The agent's own version.
pub const AGENT_VERSION_ATTRIBUTE: &str = "tocsin.agent.version";
/// How often the agent reports, in seconds.
pub const AGENT_INTERVAL_ATTRIBUTE: &str = "tocsin.agent.interval";
/// The report interval assumed when an agent does not give a valid one.
pub const DEFAULT_AGENT_INTERVAL_MS: i64 = 10_000;
/// The longest report interval an agent may declare (one day).
pub const MAX_AGENT_INTERVAL_MS: i64 = 86_400_000;

/// What a Tocsin agent says about itself in its resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentResource {
    /// `tocsin.agent.id`, never empty.
    pub id: String,
    /// `tocsin.agent.version`; empty when absent.
    pub version: String,
    /// `tocsin.agent.interval` in ms, when given and valid (users of it
    /// assume [`DEFAULT_AGENT_INTERVAL_MS`] otherwise).
    pub interval_ms: Option<i64>,
    /// Why the declared interval was not used, when it was invalid.
    pub interval_error: Option<String>,
    /// `host.name`; empty when absent.
    pub host_name: String,
    /// `service.name`; empty when absent.
    pub service_name: String,
}

/// Reads `tocsin.agent.interval`: seconds as an int, a double or a
/// numeric string, greater than 0 and at most a day. `Ok(None)` when
/// absent; the error says what was found and what is valid.
pub fn agent_interval_ms(v: Option<&AnyValue>) -> Result<Option<i64>, String> {
    let Some(value) = v.and_then(|v| v.value.as_ref()) else {
        return Ok(None);
    };
    let seconds = match value {
        Value::IntValue(i) => Some(*i as f64),
        Value::DoubleValue(d) => Some(*d),
        Value::StringValue(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let max_s = MAX_AGENT_INTERVAL_MS / 1000;
    match seconds {
        Some(s) if s.is_finite() && s > 0.0 && s <= max_s as f64 => {
            // At least 1 ms, so that a tiny interval still means something.
            Ok(Some(((s * 1000.0).round() as i64).max(1)))
        }
        _ => Err(format!(
            "{AGENT_INTERVAL_ATTRIBUTE} = {} is not valid: want a number of seconds greater than 0 and at most {max_s} (an int, a double or a numeric string)",
            json_value(Some(value))
        )),
    }
}

impl AgentResource {
    /// The agent a resource describes; `None` without a non-empty
    /// `tocsin.agent.id`. An invalid interval falls back to the default
    /// and says why in `interval_error`.
    pub fn from_attributes(attrs: &[KeyValue]) -> Option<AgentResource> {
        let text = |key: &str| find(attrs, key).map_or_else(String::new, |v| value_text(Some(v)));
        let id = text(AGENT_ID_ATTRIBUTE);
        if id.is_empty() {
            return None;
        }
        let (interval_ms, interval_error) =
            match agent_interval_ms(find(attrs, AGENT_INTERVAL_ATTRIBUTE)) {
                Ok(ms) => (ms, None),
                Err(e) => (None, Some(e)),
            };
        Some(AgentResource {
            id,
            version: text(AGENT_VERSION_ATTRIBUTE),
            interval_ms,
            interval_error,
            host_name: text("host.name"),
            service_name: text("service.name"),
        })
    }
}

/// An attribute value as Prometheus' OTLP receiver renders it in a label
/// (pdata's `Value.AsString`): strings as they are, scalars in their
/// shortest decimal form, bytes in base64, arrays and maps as JSON.
pub fn value_text(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        // A string-table reference only means something inside a profiles
        // dictionary, which metrics and logs do not carry.
        Some(Value::StringValueStrindex(_)) => String::new(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => float_text(*d),
        Some(Value::BytesValue(b)) => base64(b),
        Some(other @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            json_value(Some(other)).to_string()
        }
    }
}

/// [`value_text`] of a value the caller gives up: a string is moved, not
/// copied.
pub fn value_text_owned(v: Option<AnyValue>) -> String {
    match v {
        Some(AnyValue {
            value: Some(Value::StringValue(s)),
        }) => s,
        other => value_text(other.as_ref()),
    }
}

/// A float the way Go's `strconv.FormatFloat(v, 'f', -1, 64)` writes it,
/// which is what Prometheus uses for `le` and `quantile` labels.
pub fn float_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{v}")
    }
}

/// An OTLP value as JSON (log bodies that are not plain strings).
pub fn json_value(v: Option<&Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        None | Some(Value::StringValueStrindex(_)) => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or_else(|| J::String(float_text(*d)), J::Number)
        }
        Some(Value::BytesValue(b)) => J::String(base64(b)),
        Some(Value::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|x| json_value(x.value.as_ref()))
                .collect(),
        ),
        Some(Value::KvlistValue(kv)) => J::Object(
            kv.values
                .iter()
                .map(|x| {
                    (
                        x.key.clone(),
                        json_value(x.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

/// Standard base64 with padding (RFC 4648), as OTLP/JSON writes bytes.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The agents seen in one request: one entry per agent id, in order of
/// first appearance; a later resource's non-empty fields win (an agent
/// sends several resources, one per log input, that agree on its id).
#[derive(Debug, Default)]
pub struct AgentsSeen {
    index: HashMap<String, usize>,
    list: Vec<AgentResource>,
}

impl AgentsSeen {
    pub fn note(&mut self, a: &AgentResource) {
        let Some(&i) = self.index.get(&a.id) else {
            self.index.insert(a.id.clone(), self.list.len());
            self.list.push(a.clone());
            return;
        };
        let e = &mut self.list[i];
        for (to, from) in [
            (&mut e.version, &a.version),
            (&mut e.host_name, &a.host_name),
            (&mut e.service_name, &a.service_name),
        ] {
            if !from.is_empty() {
                to.clone_from(from);
            }
        }
        // A valid interval wins over none; an invalid one is reported
        // only when no resource of the agent gave a valid one.
        if a.interval_ms.is_some() {
            e.interval_ms = a.interval_ms;
            e.interval_error = None;
        } else if e.interval_ms.is_none() && a.interval_error.is_some() {
            e.interval_error.clone_from(&a.interval_error);
        }
    }

    pub fn into_vec(self) -> Vec<AgentResource> {
        self.list
    }
}

/// Finds an attribute by key.
pub fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs.iter().find(|kv| kv.key == key)?.value.as_ref()
}

/// What a resource contributes to labels, computed once per resource.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceLabels {
    /// Promoted attributes under their label names; yield to data-point
    /// attributes of the same name.
    pub promoted: Vec<(String, String)>,
    /// `job` and `instance`; override everything but the metric name.
    pub identity: Vec<(String, String)>,
    /// The Tocsin agent that sent the resource (`tocsin.agent.id` and the
    /// rest of its identity), when it is one.
    pub agent: Option<AgentResource>,
}

impl ResourceLabels {
    pub fn from_resource(resource: Option<&Resource>) -> ResourceLabels {
        let attrs: &[KeyValue] = resource.map_or(&[], |r| &r.attributes);
        let text = |key: &str| find(attrs, key).map(|v| value_text(Some(v)));
        let mut out = ResourceLabels::default();
        for key in PROMOTED_RESOURCE_ATTRIBUTES {
            if let (Some(v), Ok(name)) = (text(key), label_name(key))
                && !v.is_empty()
            {
                out.promoted.push((name, v));
            }
        }
        if let Some(service) = text("service.name").filter(|s| !s.is_empty()) {
            let job = match text("service.namespace").filter(|s| !s.is_empty()) {
                Some(ns) => format!("{ns}/{service}"),
                None => service,
            };
            out.identity.push(("job".to_string(), job));
        }
        if let Some(instance) = text("service.instance.id").filter(|s| !s.is_empty()) {
            out.identity.push(("instance".to_string(), instance));
        }
        out.agent = AgentResource::from_attributes(attrs);
        out
    }

    /// `tocsin.agent.id`, when the sender is a Tocsin agent.
    pub fn agent_id(&self) -> Option<&str> {
        self.agent.as_ref().map(|a| a.id.as_str())
    }

    /// The labels for data-point attributes under this resource, without
    /// the metric name. Data-point attribute names are translated; names
    /// that collide after translation are merged with `;` in the order of
    /// the original keys, as Prometheus does. Returns the number of
    /// attributes dropped because their name translates to nothing.
    pub fn labels_for(&self, attrs: &[KeyValue]) -> (BTreeMap<String, String>, usize) {
        let mut sorted: Vec<&KeyValue> = attrs.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        let mut dropped = 0;
        for kv in sorted {
            let Ok(name) = label_name(&kv.key) else {
                dropped += 1;
                continue;
            };
            let value = value_text(kv.value.as_ref());
            if value.is_empty() {
                continue;
            }
            match out.get_mut(&name) {
                Some(existing) => {
                    existing.push(';');
                    existing.push_str(&value);
                }
                None => {
                    out.insert(name, value);
                }
            }
        }
        for (name, value) in &self.promoted {
            out.entry(name.clone()).or_insert_with(|| value.clone());
        }
        for (name, value) in &self.identity {
            out.insert(name.clone(), value.clone());
        }
        (out, dropped)
    }
}

/// Resource attributes that make up `job` and `instance`, left out of
/// `target_info`.
const IDENTIFYING_ATTRIBUTES: [&str; 3] =
    ["service.namespace", "service.name", "service.instance.id"];

/// The labels of a resource's `target_info` series (without the name), as
/// Prometheus' OTLP receiver builds them: `job` and `instance` plus every
/// other resource attribute under its translated name. `None` when the
/// resource has neither `job` nor `instance`, or nothing beyond them.
/// Also returns the number of attributes dropped for untranslatable names.
pub fn target_info_labels(
    resource: Option<&Resource>,
    rl: &ResourceLabels,
) -> Option<(BTreeMap<String, String>, usize)> {
    if rl.identity.is_empty() {
        return None;
    }
    let attrs: Vec<KeyValue> = resource?
        .attributes
        .iter()
        .filter(|kv| !IDENTIFYING_ATTRIBUTES.contains(&kv.key.as_str()))
        .cloned()
        .collect();
    if attrs.is_empty() {
        return None;
    }
    let identity_only = ResourceLabels {
        promoted: Vec::new(),
        identity: rl.identity.clone(),
        agent: None,
    };
    Some(identity_only.labels_for(&attrs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    pub(crate) fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(v) }),
            ..KeyValue::default()
        }
    }

    fn s(v: &str) -> Value {
        Value::StringValue(v.to_string())
    }

    #[test]
    fn values_render_like_pdata() {
        assert_eq!(
            value_text(Some(&AnyValue {
                value: Some(s("x"))
            })),
            "x"
        );
        let t = |v| value_text(Some(&AnyValue { value: Some(v) }));
        assert_eq!(t(Value::IntValue(-3)), "-3");
        assert_eq!(t(Value::BoolValue(true)), "true");
        assert_eq!(t(Value::DoubleValue(0.25)), "0.25");
        assert_eq!(t(Value::BytesValue(b"hi!?".to_vec())), "aGkhPw==");
        assert_eq!(t(Value::BytesValue(b"abc".to_vec())), "YWJj");
        assert_eq!(
            t(Value::ArrayValue(ArrayValue {
                values: vec![AnyValue {
                    value: Some(Value::IntValue(1))
                }]
            })),
            "[1]"
        );
        assert_eq!(
            t(Value::KvlistValue(KeyValueList {
                values: vec![kv("a", s("b"))]
            })),
            r#"{"a":"b"}"#
        );
        assert_eq!(float_text(1.0), "1");
        assert_eq!(float_text(0.005), "0.005");
        assert_eq!(float_text(f64::INFINITY), "+Inf");
    }

    #[test]
    fn job_instance_and_promoted_attributes() {
        let r = Resource {
            attributes: vec![
                kv("service.name", s("api")),
                kv("service.namespace", s("shop")),
                kv("service.instance.id", s("i-1")),
                kv("host.name", s("web-1")),
                kv("tocsin.track", s("canary")),
                kv("tocsin.agent.id", s("agent-7")),
                kv("os.type", s("linux")),
            ],
            ..Resource::default()
        };
        let rl = ResourceLabels::from_resource(Some(&r));
        assert_eq!(rl.agent_id(), Some("agent-7"));
        let (labels, dropped) = rl.labels_for(&[kv("cpu", s("0"))]);
        assert_eq!(dropped, 0);
        let got: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("cpu", "0"),
                ("host_name", "web-1"),
                ("instance", "i-1"),
                ("job", "shop/api"),
                ("service_name", "api"),
                ("tocsin_track", "canary"),
            ]
        );
    }

    #[test]
    fn collisions_follow_prometheus() {
        let r = Resource {
            attributes: vec![
                kv("service.name", s("api")),
                kv("host.name", s("from-resource")),
            ],
            ..Resource::default()
        };
        let rl = ResourceLabels::from_resource(Some(&r));
        let (labels, dropped) = rl.labels_for(&[
            // A data-point attribute wins over a promoted resource one…
            kv("host.name", s("from-point")),
            // …but not over job.
            kv("job", s("spoofed")),
            // Names equal after translation merge in key order.
            kv("a.b", s("1")),
            kv("a_b", s("2")),
            kv("...", s("dropped")),
        ]);
        assert_eq!(dropped, 1);
        assert_eq!(labels["host_name"], "from-point");
        assert_eq!(labels["job"], "api");
        assert_eq!(labels["a_b"], "1;2");
    }

    #[test]
    fn target_info_carries_the_other_resource_attributes() {
        let r = Resource {
            attributes: vec![
                kv("service.name", s("api")),
                kv("service.instance.id", s("i-1")),
                kv("host.name", s("web-1")),
                kv("os.type", s("linux")),
            ],
            ..Resource::default()
        };
        let rl = ResourceLabels::from_resource(Some(&r));
        let (labels, _) = target_info_labels(Some(&r), &rl).unwrap();
        let got: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("host_name", "web-1"),
                ("instance", "i-1"),
                ("job", "api"),
                ("os_type", "linux"),
            ]
        );
        // Only identifying attributes, or no job/instance: no target_info.
        let bare = Resource {
            attributes: vec![kv("service.name", s("api"))],
            ..Resource::default()
        };
        let rl = ResourceLabels::from_resource(Some(&bare));
        assert!(target_info_labels(Some(&bare), &rl).is_none());
        let anonymous = Resource {
            attributes: vec![kv("host.name", s("web-1"))],
            ..Resource::default()
        };
        let rl = ResourceLabels::from_resource(Some(&anonymous));
        assert!(target_info_labels(Some(&anonymous), &rl).is_none());
    }

    #[test]
    fn agent_identity_and_interval() {
        let interval = |v: Value| agent_interval_ms(Some(&AnyValue { value: Some(v) }));
        assert_eq!(interval(Value::IntValue(10)), Ok(Some(10_000)));
        assert_eq!(interval(Value::DoubleValue(2.5)), Ok(Some(2_500)));
        assert_eq!(interval(s(" 15 ")), Ok(Some(15_000)));
        assert_eq!(interval(Value::DoubleValue(0.0001)), Ok(Some(1)));
        assert_eq!(interval(Value::IntValue(86_400)), Ok(Some(86_400_000)));
        assert_eq!(agent_interval_ms(None), Ok(None));
        for bad in [
            Value::IntValue(0),
            Value::IntValue(-5),
            Value::IntValue(86_401),
            Value::DoubleValue(f64::NAN),
            s("10s"),
            s("inf"),
            Value::BoolValue(true),
        ] {
            let e = interval(bad.clone()).unwrap_err();
            assert!(
                e.contains("tocsin.agent.interval") && e.contains("at most 86400"),
                "{bad:?}: {e}"
            );
        }

        let r = |attrs: Vec<KeyValue>| {
            ResourceLabels::from_resource(Some(&Resource {
                attributes: attrs,
                ..Resource::default()
            }))
            .agent
        };
        let a = r(vec![
            kv("tocsin.agent.id", s("agent-7")),
            kv("tocsin.agent.version", s("0.3.1")),
            kv("tocsin.agent.interval", Value::IntValue(30)),
            kv("host.name", s("web-1")),
            kv("service.name", s("host")),
        ])
        .unwrap();
        assert_eq!(
            a,
            AgentResource {
                id: "agent-7".into(),
                version: "0.3.1".into(),
                interval_ms: Some(30_000),
                interval_error: None,
                host_name: "web-1".into(),
                service_name: "host".into(),
            }
        );
        // Absent interval: none; invalid: none and why.
        let a = r(vec![kv("tocsin.agent.id", s("a"))]).unwrap();
        assert_eq!((a.interval_ms, a.interval_error), (None, None));
        let a = r(vec![
            kv("tocsin.agent.id", s("a")),
            kv("tocsin.agent.interval", s("soon")),
        ])
        .unwrap();
        assert_eq!(a.interval_ms, None);
        assert!(a.interval_error.unwrap().contains("\"soon\""));
        // No id (or an empty one): not an agent.
        assert!(r(vec![kv("host.name", s("web-1"))]).is_none());
        assert!(r(vec![kv("tocsin.agent.id", s(""))]).is_none());

        // One entry per agent in a request; later non-empty fields win.
        let mut seen = AgentsSeen::default();
        let mut first = r(vec![kv("tocsin.agent.id", s("a")), kv("host.name", s("h"))]).unwrap();
        seen.note(&first);
        let logs = r(vec![
            kv("tocsin.agent.id", s("a")),
            kv("tocsin.agent.interval", Value::IntValue(5)),
            kv("service.name", s("nginx")),
        ])
        .unwrap();
        seen.note(&logs);
        seen.note(&r(vec![kv("tocsin.agent.id", s("b"))]).unwrap());
        // A later invalid interval does not undo a valid one.
        let bad = r(vec![
            kv("tocsin.agent.id", s("a")),
            kv("tocsin.agent.interval", Value::IntValue(-1)),
        ])
        .unwrap();
        seen.note(&bad);
        // An agent whose only interval is invalid keeps the reason.
        seen.note(&r(vec![kv("tocsin.agent.id", s("c"))]).unwrap());
        seen.note(
            &r(vec![
                kv("tocsin.agent.id", s("c")),
                kv("tocsin.agent.interval", s("x")),
            ])
            .unwrap(),
        );
        let got = seen.into_vec();
        first.interval_ms = Some(5_000);
        first.service_name = "nginx".into();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], first);
        assert_eq!(got[1].id, "b");
        assert_eq!(got[2].interval_ms, None);
        assert!(got[2].interval_error.as_deref().unwrap().contains("\"x\""));
    }

    #[test]
    fn service_name_alone_is_the_job() {
        let r = Resource {
            attributes: vec![kv("service.name", s("api"))],
            ..Resource::default()
        };
        let rl = ResourceLabels::from_resource(Some(&r));
        assert_eq!(rl.identity, [("job".to_string(), "api".to_string())]);
        assert!(ResourceLabels::from_resource(None).identity.is_empty());
    }
}
