//! The values PromQL computes with: label sets, float samples, series, and
//! the four expression result types (scalar, string, instant vector, range
//! vector / matrix).
//!
//! Invariants: a [`Labels`] is sorted by label name, holds no duplicate
//! names and no empty values (an empty value means "label absent", as in
//! Prometheus). Timestamps are milliseconds since the Unix epoch. A
//! staleness marker is a NaN with the bit pattern [`STALE_NAN_BITS`] and is
//! never returned by the evaluator as a value.

use std::fmt;
use std::sync::Arc;

/// The metric name label.
pub const METRIC_NAME: &str = "__name__";

/// Bit pattern of Prometheus' staleness marker (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (not merely any NaN).
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One label: a name and a non-empty value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// A sorted, de-duplicated set of labels. Cloning is cheap (shared), and
/// the set's hash is computed once when it is built: label sets are hashed
/// and compared far more often than they are made (matching, grouping,
/// de-duplication at every evaluation step).
#[derive(Clone)]
pub struct Labels {
    hash: u64,
    labels: Arc<[Label]>,
}

impl PartialEq for Labels {
    fn eq(&self, other: &Labels) -> bool {
        self.hash == other.hash
            && (Arc::ptr_eq(&self.labels, &other.labels) || self.labels == other.labels)
    }
}

impl Eq for Labels {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Labels) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Labels) -> std::cmp::Ordering {
        self.labels.cmp(&other.labels)
    }
}

impl std::hash::Hash for Labels {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Default for Labels {
    fn default() -> Self {
        Labels::empty()
    }
}

/// One step of FxHash's multiply-rotate mixing (shared with the store's
/// hasher).
pub(crate) fn fx_mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

/// FxHash-style mixing over the names and values, with separators so that
/// `{a="bc"}` and `{ab="c"}` differ.
fn hash_labels(labels: &[Label]) -> u64 {
    let mut h: u64 = 0;
    let mut mix = |bytes: &[u8]| {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h = fx_mix(h, u64::from_le_bytes(word));
        }
        h = fx_mix(h, 0xff);
    };
    for l in labels {
        mix(l.name.as_bytes());
        mix(l.value.as_bytes());
    }
    h
}

impl Labels {
    fn from_sorted(labels: Arc<[Label]>) -> Labels {
        Labels {
            hash: hash_labels(&labels),
            labels,
        }
    }

    /// The empty label set.
    pub fn empty() -> Self {
        Labels::from_sorted(Arc::from(Vec::new()))
    }

    /// Builds a label set from pairs; sorts, drops empty values, and keeps
    /// the last value of a repeated name.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut v: Vec<Label> = pairs
            .into_iter()
            .map(|(n, v)| Label {
                name: n.into(),
                value: v.into(),
            })
            .collect();
        Self::from_vec(std::mem::take(&mut v))
    }

    /// Builds a label set from labels in any order (see [`Labels::from_pairs`]).
    pub fn from_vec(mut v: Vec<Label>) -> Self {
        // Stable sort keeps insertion order among equal names, so the last
        // one wins after dedup below.
        v.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out: Vec<Label> = Vec::with_capacity(v.len());
        for l in v {
            match out.last_mut() {
                Some(last) if last.name == l.name => *last = l,
                _ => out.push(l),
            }
        }
        out.retain(|l| !l.value.is_empty());
        Labels::from_sorted(Arc::from(out))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.labels.iter()
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.labels
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The value of `name`, or `""` when absent (Prometheus' convention).
    pub fn get(&self, name: &str) -> &str {
        match self.labels.binary_search_by(|l| l.name.as_str().cmp(name)) {
            Ok(i) => &self.labels[i].value,
            Err(_) => "",
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.labels
            .binary_search_by(|l| l.name.as_str().cmp(name))
            .is_ok()
    }

    /// The address of the shared storage: equal for clones of one label
    /// set (a cheap identity for caches, confirmed with
    /// [`Labels::same_storage`]).
    pub fn ptr_id(&self) -> usize {
        self.labels.as_ptr() as usize
    }

    /// Whether both are clones of one allocation (hence equal).
    pub fn same_storage(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.labels, &other.labels)
    }

    /// The metric name, or `""`.
    pub fn metric_name(&self) -> &str {
        self.get(METRIC_NAME)
    }

    /// A copy with `name` set to `value` (removed when `value` is empty).
    pub fn with(&self, name: &str, value: &str) -> Labels {
        let mut v: Vec<Label> = self
            .labels
            .iter()
            .filter(|l| l.name != name)
            .cloned()
            .collect();
        if !value.is_empty() {
            let pos = v.partition_point(|l| l.name.as_str() < name);
            v.insert(
                pos,
                Label {
                    name: name.to_string(),
                    value: value.to_string(),
                },
            );
        }
        Labels::from_sorted(Arc::from(v))
    }

    /// A copy without the labels named in `names`.
    pub fn without(&self, names: &[&str]) -> Labels {
        if !self.labels.iter().any(|l| names.contains(&l.name.as_str())) {
            return self.clone();
        }
        Labels::from_sorted(
            self.labels
                .iter()
                .filter(|l| !names.contains(&l.name.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// A copy with only the labels named in `names`.
    pub fn keep_only(&self, names: &[&str]) -> Labels {
        Labels::from_sorted(
            self.labels
                .iter()
                .filter(|l| names.contains(&l.name.as_str()))
                .cloned()
                .collect(),
        )
    }

    /// A copy without the metric name.
    pub fn drop_metric_name(&self) -> Labels {
        self.without(&[METRIC_NAME])
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Prints `name{a="b", c="d"}` as Prometheus does.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        let simple_name = !name.is_empty() && is_legacy_metric_name(name);
        if simple_name {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        if !name.is_empty() && !simple_name {
            write!(f, "{name:?}")?;
            first = false;
        }
        for l in self.labels.iter().filter(|l| l.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            if is_legacy_label_name(&l.name) {
                f.write_str(&l.name)?;
            } else {
                write!(f, "{:?}", l.name)?;
            }
            write!(f, "={:?}", l.value)?;
        }
        f.write_str("}")
    }
}

/// The character standing for the byte `b` (0x80..=0xFF) of a PromQL
/// string that is not valid UTF-8 (see [`crate::promql::parse`]). From the
/// end of Unicode's private use plane 16, so real text never holds it.
pub fn raw_byte_marker(b: u8) -> char {
    char::from_u32(0x10_FF00 | u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The byte a [`raw_byte_marker`] stands for.
pub fn marked_raw_byte(c: char) -> Option<u8> {
    let u = c as u32;
    (0x10_FF80..=0x10_FFFF)
        .contains(&u)
        .then_some((u & 0xff) as u8)
}

/// Whether `name` is a valid label name under Prometheus 3's rules: any
/// non-empty UTF-8 string (a string holding bytes that are not UTF-8 is
/// not).
pub fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| marked_raw_byte(c).is_some())
}

/// Quotes `s` as Go's `%q` does (the form Prometheus' messages use): raw
/// bytes as `\xHH`, quotes and backslashes escaped, control characters
/// escaped, printable text as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if let Some(b) = marked_raw_byte(c) {
            out.push_str(&format!("\\x{b:02x}"));
            continue;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_legacy_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_legacy_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One float sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    pub v: f64,
}

/// A series with its samples in time order (a range-vector element, or a
/// stored series as returned by a [`crate::promql::Queryable`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// One instant-vector element.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    /// Milliseconds since the Unix epoch (the evaluation time).
    pub t: i64,
    pub v: f64,
}

pub type Vector = Vec<InstantSample>;
pub type Matrix = Vec<Series>;

/// The result of evaluating an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vector),
    Matrix(Matrix),
}

impl Value {
    /// Prometheus' name for the type: `scalar`, `string`, `vector`, `matrix`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar { .. } => "scalar",
            Value::String { .. } => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// Formats a float the way Prometheus prints sample values (Go's
/// `strconv.FormatFloat(v, 'f', -1, 64)` for the API; `+Inf`, `-Inf`, `NaN`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's shortest round-trip formatting matches Go's 'f', -1.
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sorted_deduplicated_and_empty_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("b", "3"), ("c", "")]);
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
        assert_eq!(l.get("b"), "3");
        assert_eq!(l.get("c"), "");
    }

    #[test]
    fn labels_display_like_prometheus() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "api")]);
        assert_eq!(l.to_string(), r#"up{job="api"}"#);
        let u = Labels::from_pairs([("__name__", "my.metric"), ("host.name", "a")]);
        assert_eq!(u.to_string(), r#"{"my.metric", "host.name"="a"}"#);
    }

    #[test]
    fn with_and_without() {
        let l = Labels::from_pairs([("a", "1"), ("c", "3")]);
        assert_eq!(l.with("b", "2").to_string(), r#"{a="1", b="2", c="3"}"#);
        assert_eq!(l.with("a", "").to_string(), r#"{c="3"}"#);
        assert_eq!(l.without(&["a"]).to_string(), r#"{c="3"}"#);
        assert_eq!(l.keep_only(&["a"]).to_string(), r#"{a="1"}"#);
    }

    #[test]
    fn equal_sets_hash_alike_and_boundaries_matter() {
        use std::hash::{BuildHasher, RandomState};
        let rs = RandomState::new();
        let a = Labels::from_pairs([("a", "bc"), ("x", "1")]);
        let a2 = Labels::from_pairs([("x", "1"), ("a", "bc")]);
        let b = Labels::from_pairs([("ab", "c"), ("x", "1")]);
        assert_eq!(a, a2);
        assert_eq!(rs.hash_one(&a), rs.hash_one(&a2));
        assert_ne!(a, b);
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.with("y", "2").without(&["y"]), a);
        assert_eq!(Labels::empty(), Labels::default());
    }

    #[test]
    fn stale_marker_is_distinct_from_nan() {
        assert!(is_stale(stale_nan()));
        assert!(!is_stale(f64::NAN));
    }
}
