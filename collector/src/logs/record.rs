//! The collector's log record: what an accepted OTLP log record becomes
//! after translation, before it is stored, counted and grouped.
//!
//! Invariants: `labels` are the record's promoted resource attributes
//! (`job`, `instance`, `host_name`, `service_name`, …, as for metrics) plus
//! `severity`, the normalised word; `time_ms` is the record's own time
//! (observed time when the record has none).

use std::sync::Arc;

use tocsin_rules::promql::Labels;

/// OTLP severity, normalised as DESIGN.md "Log records on the wire" says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Unknown,
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Severity {
    /// From the OTLP severity number: 1–4 trace, 5–8 debug, 9–12 info,
    /// 13–16 warn, 17–20 error, 21–24 fatal; anything else unknown.
    pub fn from_number(n: i32) -> Severity {
        match n {
            1..=4 => Severity::Trace,
            5..=8 => Severity::Debug,
            9..=12 => Severity::Info,
            13..=16 => Severity::Warn,
            17..=20 => Severity::Error,
            21..=24 => Severity::Fatal,
            _ => Severity::Unknown,
        }
    }

    /// The word used as the `severity` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Unknown => "unknown",
            Severity::Trace => "trace",
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
            Severity::Fatal => "fatal",
        }
    }

    /// Parses a severity word as written in configs and queries.
    pub fn parse(word: &str) -> Option<Severity> {
        Some(match word {
            "unknown" => Severity::Unknown,
            "trace" => Severity::Trace,
            "debug" => Severity::Debug,
            "info" => Severity::Info,
            "warn" => Severity::Warn,
            "error" => Severity::Error,
            "fatal" => Severity::Fatal,
            _ => return None,
        })
    }
}

/// Where an agent read a record: the identity the collector de-duplicates
/// on (DESIGN.md: same agent, file incarnation and byte offset = same
/// record). The ids are shared: a request's records from one agent and
/// file refer to one copy of each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordOrigin {
    /// `tocsin.agent.id`
    pub agent_id: Arc<str>,
    /// `tocsin.file.id`
    pub file_id: Arc<str>,
    /// `tocsin.file.offset`
    pub offset: u64,
}

/// A record attribute's value: text, or an integer as the sender sent
/// it (the agent's `tocsin.file.offset`, different on every record, costs
/// no string this way). Either reads as its text: an integer is its
/// decimal digits, and compares, orders and prints as them.
#[derive(Debug, Clone)]
pub enum AttrValue {
    Text(Arc<str>),
    Int(i64),
}

impl AttrValue {
    /// Calls `f` with the value as text, without allocating.
    pub fn with_text<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            AttrValue::Text(t) => f(t),
            AttrValue::Int(i) => f(itoa::Buffer::new().format(*i)),
        }
    }

    /// The shared text, for a text value.
    pub fn as_shared(&self) -> Option<&Arc<str>> {
        match self {
            AttrValue::Text(t) => Some(t),
            AttrValue::Int(_) => None,
        }
    }
}

impl std::fmt::Display for AttrValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.with_text(|t| f.write_str(t))
    }
}

impl PartialEq for AttrValue {
    fn eq(&self, other: &AttrValue) -> bool {
        match (self, other) {
            (AttrValue::Int(a), AttrValue::Int(b)) => a == b,
            _ => self.with_text(|a| other.with_text(|b| a == b)),
        }
    }
}

impl Eq for AttrValue {}

impl PartialOrd for AttrValue {
    fn partial_cmp(&self, other: &AttrValue) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AttrValue {
    fn cmp(&self, other: &AttrValue) -> std::cmp::Ordering {
        self.with_text(|a| other.with_text(|b| a.cmp(b)))
    }
}

impl PartialEq<&str> for AttrValue {
    fn eq(&self, other: &&str) -> bool {
        self.with_text(|t| t == *other)
    }
}

impl From<Arc<str>> for AttrValue {
    fn from(t: Arc<str>) -> AttrValue {
        AttrValue::Text(t)
    }
}

impl From<&str> for AttrValue {
    fn from(t: &str) -> AttrValue {
        AttrValue::Text(Arc::from(t))
    }
}

impl From<String> for AttrValue {
    fn from(t: String) -> AttrValue {
        AttrValue::Text(Arc::from(t))
    }
}

impl From<i64> for AttrValue {
    fn from(i: i64) -> AttrValue {
        AttrValue::Int(i)
    }
}

/// The name of the agent's byte-offset attribute, shared by every record
/// that keeps it apart ([`Attributes`]).
static OFFSET_NAME: std::sync::LazyLock<Arc<str>> =
    std::sync::LazyLock::new(|| Arc::from(crate::translate::logs::FILE_OFFSET_ATTRIBUTE));

/// A record's attributes, name-sorted. Records read from one file in a
/// request differ only in their `tocsin.file.offset`, so the rest is a
/// list a run of records shares, and an integer offset is kept apart with
/// its place in the order. Reads (iterates, compares) as the whole sorted
/// list however it is held.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    shared: Arc<[(Arc<str>, AttrValue)]>,
    /// The `tocsin.file.offset` attribute left out of `shared`: its index
    /// in the whole list and its value (an [`AttrValue::Int`]).
    offset: Option<(usize, AttrValue)>,
}

impl Attributes {
    /// `shared` (sorted) and, when given, an integer offset attribute
    /// placed where it sorts among them.
    pub fn new(shared: Arc<[(Arc<str>, AttrValue)]>, offset: Option<i64>) -> Attributes {
        let offset = offset.map(|o| {
            let value = AttrValue::Int(o);
            let at = shared.partition_point(|(k, v)| (&**k, v) < (&**OFFSET_NAME, &value));
            (at, value)
        });
        Attributes { shared, offset }
    }

    /// The list a run of records shares (all but a kept-apart offset).
    pub fn shared(&self) -> &Arc<[(Arc<str>, AttrValue)]> {
        &self.shared
    }

    pub fn len(&self) -> usize {
        self.shared.len() + usize::from(self.offset.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th attribute in name order.
    pub fn get(&self, i: usize) -> Option<(&Arc<str>, &AttrValue)> {
        match &self.offset {
            Some((at, v)) if i == *at => Some((&OFFSET_NAME, v)),
            Some((at, _)) if i > *at => self.shared.get(i - 1).map(|(k, v)| (k, v)),
            _ => self.shared.get(i).map(|(k, v)| (k, v)),
        }
    }

    /// The attributes in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &AttrValue)> {
        let at = self
            .offset
            .as_ref()
            .map_or(self.shared.len(), |(at, _)| *at);
        let (before, after) = self.shared.split_at(at.min(self.shared.len()));
        before
            .iter()
            .map(|(k, v)| (k, v))
            .chain(self.offset.as_ref().map(|(_, v)| (&*OFFSET_NAME, v)))
            .chain(after.iter().map(|(k, v)| (k, v)))
    }
}

impl PartialEq for Attributes {
    fn eq(&self, other: &Attributes) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// A list as given (its order kept).
impl From<Vec<(Arc<str>, AttrValue)>> for Attributes {
    fn from(list: Vec<(Arc<str>, AttrValue)>) -> Attributes {
        Attributes {
            shared: list.into(),
            offset: None,
        }
    }
}

/// One accepted log record.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// When the collector received it (ms), for retention and skew.
    pub received_ms: i64,
    pub severity: Severity,
    /// The original severity text, empty if the sender set none. Shared:
    /// records decoded from one request that repeat a text (the previous
    /// record's) refer to one copy.
    pub severity_text: Arc<str>,
    pub labels: Labels,
    /// The body as text (non-string OTLP bodies rendered as JSON).
    pub body: String,
    /// Record attributes (e.g. `log.file.path`), name-sorted, values as
    /// text or integers. Shared like the severity text: records whose
    /// attributes but the offset equal the previous record's share its
    /// list, and a name or text equal to the one at its place in the
    /// previous record refers to the same copy.
    pub attributes: Attributes,
    /// Set for records that carry the agent's file identity.
    pub origin: Option<RecordOrigin>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_numbers_map_to_ranges() {
        let words: Vec<&str> = (0..=25)
            .map(|n| Severity::from_number(n).as_str())
            .collect();
        assert_eq!(words[0], "unknown");
        assert_eq!(&words[1..5], ["trace"; 4]);
        assert_eq!(&words[5..9], ["debug"; 4]);
        assert_eq!(&words[9..13], ["info"; 4]);
        assert_eq!(&words[13..17], ["warn"; 4]);
        assert_eq!(&words[17..21], ["error"; 4]);
        assert_eq!(&words[21..25], ["fatal"; 4]);
        assert_eq!(words[25], "unknown");
        for w in [
            "trace", "debug", "info", "warn", "error", "fatal", "unknown",
        ] {
            assert_eq!(Severity::parse(w).map(Severity::as_str), Some(w));
        }
    }
}
