//! promtool's way of printing what a failed test expected and got: Go's
//! `labels.Labels.String()` (`{__name__="up", job="a"}`), Go's `%q`
//! quoting, `strconv.FormatFloat(v, 'E', -1, 64)` values, and the indented
//! `[ 0: Labels:… Annotations:… ]` alert lists.

use std::collections::BTreeMap;
use std::fmt;

use crate::promql::Labels;
use crate::promql::value::is_legacy_label_name;

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `labels.Labels.String()` over sorted pairs.
pub fn labels_string(pairs: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_legacy_label_name(n) {
            out.push_str(n);
        } else {
            out.push_str(&go_quote(n));
        }
        out.push('=');
        out.push_str(&go_quote(v));
    }
    out.push('}');
    out
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: `1E+00`, `2.5E-03`, `+Inf`.
pub fn format_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = format!("{v:E}");
    let (mant, exp) = s.split_once('E').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}E{sign}{:02}", exp.unsigned_abs())
}

/// `labels value, labels value` or `nil`, as promtool prints samples.
pub fn samples_string(samples: &[(Pairs, f64)]) -> String {
    if samples.is_empty() {
        return "nil".into();
    }
    samples
        .iter()
        .map(|(l, v)| format!("{} {}", labels_string(l), format_float_e(*v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// promtool's `indentLines`: every line but the first gets `indent`.
pub fn indent_lines(lines: &str, indent: &str) -> String {
    lines
        .split('\n')
        .enumerate()
        .map(|(i, l)| {
            if i > 0 {
                format!("{indent}{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A list of alerts as label and annotation sets, compared and printed as
/// promtool's `labelsAndAnnotations`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertSet(Vec<(Pairs, Pairs)>);

/// Label or annotation pairs, sorted by name.
pub type Pairs = Vec<(String, String)>;

impl AlertSet {
    pub fn push_alert(&mut self, labels: &Labels, annotations: &[(String, String)]) {
        let l = labels
            .iter()
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        let mut a: Vec<(String, String)> = annotations.to_vec();
        a.sort();
        self.0.push((l, a));
    }

    pub fn push_maps(
        &mut self,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    ) {
        self.0.push((
            labels.into_iter().collect(),
            annotations.into_iter().collect(),
        ));
    }

    pub fn sort(&mut self) {
        self.0.sort();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for AlertSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("[]");
        }
        f.write_str("[")?;
        for (i, (l, a)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let body = format!(
                "\nLabels:{}\nAnnotations:{}",
                labels_string(l),
                labels_string(a)
            );
            write!(f, "\n{i}:{}", indent_lines(&body, "  "))?;
        }
        f.write_str("\n]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_go_e_format() {
        assert_eq!(format_float_e(1.0), "1E+00");
        assert_eq!(format_float_e(0.0), "0E+00");
        assert_eq!(format_float_e(60.0), "6E+01");
        assert_eq!(format_float_e(2.9999999999999996), "2.9999999999999996E+00");
        assert_eq!(format_float_e(1_704_067_200.0), "1.7040672E+09");
        assert_eq!(format_float_e(0.0025), "2.5E-03");
        assert_eq!(format_float_e(1e100), "1E+100");
        assert_eq!(format_float_e(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn labels_print_like_go() {
        let l = vec![
            ("__name__".to_string(), "test".to_string()),
            ("a.b".to_string(), "x\"y".to_string()),
        ];
        assert_eq!(labels_string(&l), r#"{__name__="test", "a.b"="x\"y"}"#);
        assert_eq!(labels_string(&[]), "{}");
    }

    #[test]
    fn alert_sets_print_like_promtool() {
        let mut s = AlertSet::default();
        s.push_maps(
            [("alertname".to_string(), "Test".to_string())].into(),
            BTreeMap::new(),
        );
        assert_eq!(
            indent_lines(&s.to_string(), "            "),
            "[\n            0:\n              Labels:{alertname=\"Test\"}\n              Annotations:{}\n            ]"
        );
        assert_eq!(AlertSet::default().to_string(), "[]");
    }
}

/// A JSON value as promtool's `--diff` sees an alert list (objects keep
/// their keys sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    Str(String),
    Obj(Vec<(String, Json)>),
    Arr(Vec<Json>),
}

impl AlertSet {
    /// The list as promtool marshals it: `[{"Labels": {…}, "Annotations":
    /// {…}}, …]`; an empty list becomes one empty alert, as promtool pads it.
    pub fn to_json(&self) -> Json {
        let obj = |p: &Pairs| {
            let mut v: Vec<(String, Json)> = p
                .iter()
                .map(|(k, v)| (k.clone(), Json::Str(v.clone())))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Obj(v)
        };
        let mut items: Vec<Json> = self
            .0
            .iter()
            .map(|(l, a)| {
                Json::Obj(vec![
                    ("Annotations".to_string(), obj(a)),
                    ("Labels".to_string(), obj(l)),
                ])
            })
            .collect();
        if items.is_empty() {
            items.push(Json::Obj(vec![
                ("Annotations".to_string(), Json::Obj(Vec::new())),
                ("Labels".to_string(), Json::Obj(Vec::new())),
            ]));
        }
        Json::Arr(items)
    }
}

/// How two JSON values compare (nsf/jsondiff's result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonMatch {
    Full,
    /// The first value has everything the second has, and more.
    Superset,
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Normal,
    Added,
    Removed,
    Changed,
}

impl Tag {
    fn begin(self) -> &'static str {
        match self {
            Tag::Normal => "",
            Tag::Added => "\u{1b}[0;32m",
            Tag::Removed => "\u{1b}[0;31m",
            Tag::Changed => "\u{1b}[0;33m",
        }
    }

    fn end(self) -> &'static str {
        match self {
            Tag::Normal => "",
            _ => "\u{1b}[0m",
        }
    }
}

struct DiffCtx {
    buf: String,
    level: usize,
    last: Option<Tag>,
    result: Option<JsonMatch>,
}

impl DiffCtx {
    fn newline(&mut self, s: &str) {
        self.buf.push_str(s);
        if let Some(t) = self.last {
            self.buf.push_str(t.end());
        }
        self.buf.push('\n');
        for _ in 0..self.level {
            self.buf.push_str("    ");
        }
        if let Some(t) = self.last {
            self.buf.push_str(t.begin());
        }
    }

    fn tag(&mut self, t: Tag) {
        if self.last == Some(t) {
            return;
        }
        if let Some(l) = self.last {
            self.buf.push_str(l.end());
        }
        self.buf.push_str(t.begin());
        self.last = Some(t);
    }

    fn record(&mut self, d: JsonMatch) {
        self.result = Some(match (d, self.result) {
            (JsonMatch::No, _) | (_, Some(JsonMatch::No)) => JsonMatch::No,
            (JsonMatch::Superset, _) | (_, Some(JsonMatch::Superset)) => JsonMatch::Superset,
            _ => JsonMatch::Full,
        });
    }

    fn key(&mut self, k: &str) {
        self.buf.push_str(&go_quote(k));
        self.buf.push_str(": ");
    }

    fn write_value(&mut self, v: &Json, full: bool) {
        match v {
            Json::Str(s) => self.buf.push_str(&go_quote(s)),
            Json::Arr(items) if full => {
                if items.is_empty() {
                    self.buf.push('[');
                } else {
                    self.level += 1;
                    self.newline("[");
                }
                for (i, item) in items.iter().enumerate() {
                    self.write_value(item, true);
                    if i + 1 != items.len() {
                        self.newline(",");
                    } else {
                        self.level -= 1;
                        self.newline("");
                    }
                }
                self.buf.push(']');
            }
            Json::Obj(fields) if full => {
                if fields.is_empty() {
                    self.buf.push('{');
                } else {
                    self.level += 1;
                    self.newline("{");
                }
                for (i, (k, item)) in fields.iter().enumerate() {
                    self.key(k);
                    self.write_value(item, true);
                    if i + 1 != fields.len() {
                        self.newline(",");
                    } else {
                        self.level -= 1;
                        self.newline("");
                    }
                }
                self.buf.push('}');
            }
            Json::Arr(_) => self.buf.push_str("[]"),
            Json::Obj(_) => self.buf.push_str("{}"),
        }
    }

    fn mismatch(&mut self, a: &Json, b: &Json) {
        self.tag(Tag::Changed);
        self.write_value(a, false);
        self.buf.push_str(" => ");
        self.write_value(b, false);
        self.record(JsonMatch::No);
    }

    fn diff(&mut self, a: &Json, b: &Json) {
        match (a, b) {
            (Json::Str(x), Json::Str(y)) if x != y => self.mismatch(a, b),
            (Json::Arr(xs), Json::Arr(ys)) => {
                let max = xs.len().max(ys.len());
                self.tag(Tag::Normal);
                if max == 0 {
                    self.buf.push('[');
                } else {
                    self.level += 1;
                    self.newline("[");
                }
                for i in 0..max {
                    match (xs.get(i), ys.get(i)) {
                        (Some(x), Some(y)) => self.diff(x, y),
                        (Some(x), None) => {
                            self.tag(Tag::Removed);
                            self.write_value(x, true);
                            self.record(JsonMatch::Superset);
                        }
                        (None, Some(y)) => {
                            self.tag(Tag::Added);
                            self.write_value(y, true);
                            self.record(JsonMatch::No);
                        }
                        (None, None) => {}
                    }
                    self.tag(Tag::Normal);
                    if i + 1 != max {
                        self.newline(",");
                    } else {
                        self.level -= 1;
                        self.newline("");
                    }
                }
                self.buf.push(']');
            }
            (Json::Obj(xs), Json::Obj(ys)) => {
                let mut keys: Vec<&str> = xs
                    .iter()
                    .chain(ys.iter())
                    .map(|(k, _)| k.as_str())
                    .collect();
                keys.sort_unstable();
                keys.dedup();
                self.tag(Tag::Normal);
                if keys.is_empty() {
                    self.buf.push('{');
                } else {
                    self.level += 1;
                    self.newline("{");
                }
                let get = |fields: &[(String, Json)], k: &str| {
                    fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
                };
                for (i, k) in keys.iter().enumerate() {
                    match (get(xs, k), get(ys, k)) {
                        (Some(x), Some(y)) => {
                            self.key(k);
                            self.diff(&x, &y);
                        }
                        (Some(x), None) => {
                            self.tag(Tag::Removed);
                            self.key(k);
                            self.write_value(&x, true);
                            self.record(JsonMatch::Superset);
                        }
                        (None, Some(y)) => {
                            self.tag(Tag::Added);
                            self.key(k);
                            self.write_value(&y, true);
                            self.record(JsonMatch::No);
                        }
                        (None, None) => {}
                    }
                    self.tag(Tag::Normal);
                    if i + 1 != keys.len() {
                        self.newline(",");
                    } else {
                        self.level -= 1;
                        self.newline("");
                    }
                }
                self.buf.push('}');
            }
            (Json::Str(_), Json::Str(_)) => {
                self.tag(Tag::Normal);
                self.write_value(a, true);
                self.record(JsonMatch::Full);
            }
            _ => self.mismatch(a, b),
        }
    }
}

/// Compares `expected` with `got` and renders the difference with
/// terminal colours, as nsf/jsondiff's console output that promtool's
/// `--diff` prints (added in green, removed in red, changed in yellow).
pub fn json_diff(expected: &Json, got: &Json) -> (JsonMatch, String) {
    let mut ctx = DiffCtx {
        buf: String::new(),
        level: 0,
        last: None,
        result: None,
    };
    ctx.diff(expected, got);
    if let Some(t) = ctx.last {
        ctx.buf.push_str(t.end());
    }
    (ctx.result.unwrap_or(JsonMatch::Full), ctx.buf)
}

#[cfg(test)]
mod diff_tests {
    use super::*;

    fn set(labels: &[(&str, &str)]) -> AlertSet {
        let mut s = AlertSet::default();
        s.push_maps(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            BTreeMap::new(),
        );
        s
    }

    #[test]
    fn equal_lists_fully_match() {
        let a = set(&[("alertname", "A")]);
        let (m, _) = json_diff(&a.to_json(), &a.to_json());
        assert_eq!(m, JsonMatch::Full);
    }

    #[test]
    fn changed_values_are_marked() {
        let exp = set(&[("alertname", "A"), ("severity", "page")]);
        let got = set(&[("alertname", "A"), ("severity", "ticket")]);
        let (m, text) = json_diff(&exp.to_json(), &got.to_json());
        assert_eq!(m, JsonMatch::No);
        assert!(
            text.contains("\"severity\": \u{1b}[0;33m\"page\" => \"ticket\"\u{1b}[0m"),
            "{text:?}"
        );
    }

    #[test]
    fn missing_alerts_are_a_superset_and_extra_ones_no_match() {
        let one = set(&[("alertname", "A")]);
        let (m, text) = json_diff(&one.to_json(), &AlertSet::default().to_json());
        assert_eq!(m, JsonMatch::Superset);
        assert!(
            text.contains("\u{1b}[0;31m\"alertname\": \"A\""),
            "{text:?}"
        );
        let (m, _) = json_diff(&AlertSet::default().to_json(), &one.to_json());
        assert_eq!(m, JsonMatch::No);
    }
}
