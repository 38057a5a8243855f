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
