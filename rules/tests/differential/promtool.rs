//! Talking to promtool 2.42: writing a rule unit-test file whose
//! `promql_expr_test` entries expect Tocsin's results, running
//! `promtool test rules` on it, and reading back, for each entry promtool
//! disagreed with, the values (or the error) promtool got.
//!
//! promtool has no command that prints the value of an arbitrary
//! expression; a failing `promql_expr_test` is the only way it shows its
//! own result. Its failure report, on stderr, is one block per entry:
//!
//! ```text
//!     expr: "sum(foo)", time: 1m1s,
//!         exp: {} 1.2E+01
//!         got: {} 1E+01
//!     expr: "foo +", time: 1m1s, err: 1:6: parse error: unexpected end of input
//! ```
//!
//! The expression is quoted as Go's `%q` does, the time is a Prometheus
//! duration, a sample is its label set and the value in Go's `%E` with
//! shortest precision, samples are separated by `, `, and `nil` is the
//! empty vector. promtool compares with `reflect.DeepEqual`, so NaN never
//! equals NaN and the last bit of a float matters: the caller compares what
//! promtool got with its own tolerance.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::generate::{GenSeries, Point, Query};

/// A sample as both sides report it: sorted `(name, value)` labels and a value.
pub type Sample = (Vec<(String, String)>, f64);

/// What a test entry expects from promtool.
#[derive(Debug, Clone)]
pub enum Expected {
    Samples(Vec<Sample>),
    /// Tocsin failed: the entry expects a sample promtool can never return,
    /// so promtool always reports what it got (or its own error).
    Error,
}

/// The label set of the sample an entry expects when Tocsin failed.
const ERROR_SENTINEL: &str = r#"{__tocsin_evaluation_failed__="1"}"#;

/// promtool's outcome for one entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// promtool got exactly the expected samples.
    Passed,
    /// promtool got these samples, which differ from the expected ones.
    Got(Vec<Sample>),
    /// promtool failed to evaluate the expression.
    Error(String),
}

/// Where promtool is, if on `PATH`.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
}

/// Renders a float the way YAML (and Go's `strconv.ParseFloat`) reads it
/// back exactly.
fn yaml_float(v: f64) -> String {
    if v.is_nan() {
        ".nan".to_string()
    } else if v == f64::INFINITY {
        ".inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-.inf".to_string()
    } else {
        // Shortest round-trip digits.
        format!("{v:e}")
    }
}

/// A value in promtool's series notation.
fn series_value(p: Point) -> String {
    match p {
        Point::Stale => "stale".to_string(),
        Point::Value(v) if v.is_nan() => "NaN".to_string(),
        Point::Value(v) if v == f64::INFINITY => "Inf".to_string(),
        Point::Value(v) if v == f64::NEG_INFINITY => "-Inf".to_string(),
        Point::Value(v) => format!("{v}"),
    }
}

/// The series' points in promtool's expanding notation at a 1 s interval:
/// `_xN` is N missing samples.
fn series_values(points: &[(i64, Point)]) -> String {
    let mut out = String::new();
    let mut next = 0;
    for &(t, p) in points {
        let missing = t - next;
        if missing > 0 {
            let _ = write!(out, "_x{missing} ");
        }
        out.push_str(&series_value(p));
        out.push(' ');
        next = t + 1;
    }
    out.trim_end().to_string()
}

/// Quotes a string as Go's `strconv.Quote` does for the ASCII text the
/// generator produces.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A label set in the series notation promtool parses (`name{a="b"}`).
fn metric(labels: &[(String, String)]) -> String {
    let name = labels
        .iter()
        .find(|(n, _)| n == "__name__")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let rest: Vec<String> = labels
        .iter()
        .filter(|(n, _)| n != "__name__")
        .map(|(n, v)| format!("{n}={}", go_quote(v)))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

/// YAML single-quoted scalar.
fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Prometheus' duration format (`model.Duration.String`) for whole seconds.
pub fn prom_duration(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = rest / size;
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
            rest -= n * size;
        }
    }
    out
}

/// The key promtool's report identifies an entry by.
pub fn report_key(q: &Query) -> String {
    format!(
        "expr: {}, time: {},",
        go_quote(&q.expr),
        prom_duration(q.eval_secs)
    )
}

/// The expression and time of the entry that makes promtool load all
/// samples (see [`test_file`]).
pub const LOADER_EXPR: &str = "vector(1)";
pub const LOADER_SECS: i64 = 1800;

/// A rule unit-test file with one test group: the data set and one
/// `promql_expr_test` per query.
pub fn test_file(series: &[GenSeries], entries: &[(Query, Expected)]) -> String {
    let mut y = String::new();
    // No rules: the file only evaluates expressions. The evaluation
    // interval is 1 s because promtool loads input samples only up to the
    // last multiple of it at or before the latest `eval_time`.
    y.push_str("rule_files: []\nevaluation_interval: 1s\ntests:\n  - interval: 1s\n");
    y.push_str("    input_series:\n");
    for s in series {
        let mut labels = s.labels.clone();
        labels.sort();
        let _ = writeln!(y, "      - series: {}", yaml_str(&metric(&labels)));
        let _ = writeln!(y, "        values: {}", yaml_str(&series_values(&s.points)));
    }
    y.push_str("    promql_expr_test:\n");
    // promtool loads samples only up to the latest `eval_time`, but `@`
    // and negative offsets look past a query's own time: this entry, at a
    // time after every sample, `@` and offset, makes it load them all.
    let _ = writeln!(
        y,
        "      - expr: {}\n        eval_time: {LOADER_SECS}s\n        exp_samples: [{{labels: '{{}}', value: 1}}]",
        yaml_str(LOADER_EXPR)
    );
    for (q, expected) in entries {
        let _ = writeln!(y, "      - expr: {}", yaml_str(&q.expr));
        let _ = writeln!(y, "        eval_time: {}s", q.eval_secs);
        match expected {
            Expected::Samples(samples) if samples.is_empty() => {
                y.push_str("        exp_samples: []\n");
            }
            Expected::Samples(samples) => {
                y.push_str("        exp_samples:\n");
                for (labels, v) in samples {
                    let _ = writeln!(y, "          - labels: {}", yaml_str(&metric(labels)));
                    let _ = writeln!(y, "            value: {}", yaml_float(*v));
                }
            }
            Expected::Error => {
                y.push_str("        exp_samples:\n");
                let _ = writeln!(y, "          - labels: {}", yaml_str(ERROR_SENTINEL));
                y.push_str("            value: 0\n");
            }
        }
    }
    y
}

/// Why a promtool run could not be read.
#[derive(Debug)]
pub struct RunError(pub String);

/// Runs `promtool test rules` on `file` and returns the outcome of every
/// entry promtool reported, by [`report_key`]; entries it did not report
/// passed. Anything in its output that is not an entry report is an error.
pub fn run(promtool: &Path, file: &Path) -> Result<HashMap<String, Outcome>, RunError> {
    let out = Command::new(promtool)
        .arg("test")
        .arg("rules")
        .arg(file)
        .output()
        .map_err(|e| RunError(format!("cannot run {}: {e}", promtool.display())))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) if stdout.contains("SUCCESS") => Ok(HashMap::new()),
        Some(1) if stderr.trim_start().starts_with("FAILED:") => parse_report(&stderr),
        _ => Err(RunError(format!(
            "promtool exited with {}:\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        ))),
    }
}

/// Parses promtool's failure report (see the module comment).
pub fn parse_report(report: &str) -> Result<HashMap<String, Outcome>, RunError> {
    let mut outcomes = HashMap::new();
    let mut lines = report.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("FAILED:") {
        return Err(RunError(format!("unexpected promtool report:\n{report}")));
    }
    let mut pending: Option<String> = None;
    for line in lines {
        if let Some(rest) = line.strip_prefix("expr: ") {
            if let Some(key) = pending.take() {
                return Err(RunError(format!("no result reported for {key}")));
            }
            // The key ends after the time and its comma; an error follows
            // on the same line.
            let (key, err) = split_entry_line(rest)
                .ok_or_else(|| RunError(format!("unreadable entry line: {line}")))?;
            match err {
                Some(err) => {
                    outcomes.insert(key, Outcome::Error(err));
                }
                None => pending = Some(key),
            }
        } else if line.starts_with("exp: ") {
            continue;
        } else if let Some(got) = line.strip_prefix("got: ") {
            let key = pending
                .take()
                .ok_or_else(|| RunError(format!("`got` without an entry: {line}")))?;
            let samples = parse_samples(got)
                .map_err(|e| RunError(format!("unreadable samples ({e}): {line}")))?;
            outcomes.insert(key, Outcome::Got(samples));
        } else {
            return Err(RunError(format!(
                "unexpected line in promtool's report: {line}\n{report}"
            )));
        }
    }
    match pending {
        Some(key) => Err(RunError(format!("no result reported for {key}"))),
        None => Ok(outcomes),
    }
}

/// Splits `"<quoted expr>", time: <dur>,[ err: <msg>]` into the report key
/// and the error message.
fn split_entry_line(rest: &str) -> Option<(String, Option<String>)> {
    let quoted_len = go_quoted_len(rest)?;
    let after = rest.get(quoted_len..)?.strip_prefix(", time: ")?;
    let comma = after.find(',')?;
    let key = format!("expr: {}, time: {},", &rest[..quoted_len], &after[..comma]);
    let tail = after[comma + 1..].trim();
    let err = tail.strip_prefix("err: ").map(str::to_string);
    if err.is_none() && !tail.is_empty() {
        return None;
    }
    Some((key, err))
}

/// Length of the Go-quoted string at the start of `s`.
fn go_quoted_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Reads a Go-quoted string at the start of `s`: its value and length.
fn go_unquote(s: &str) -> Result<(String, usize), String> {
    let len = go_quoted_len(s).ok_or("unterminated string")?;
    let inner = &s[1..len - 1];
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let b = u8::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                out.push(char::from(b));
            }
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let n = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                out.push(char::from_u32(n).ok_or("bad \\u escape")?);
            }
            Some(c) => out.push(c),
            None => return Err("dangling backslash".to_string()),
        }
    }
    Ok((out, len))
}

/// Parses `nil` or `{a="b", c="d"} 1.5E+00, {} NaN`.
pub fn parse_samples(s: &str) -> Result<Vec<Sample>, String> {
    let s = s.trim();
    if s == "nil" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        rest = rest.strip_prefix('{').ok_or("expected `{`")?;
        let mut labels = BTreeMap::new();
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
                continue;
            }
            let eq = rest.find('=').ok_or("expected `=`")?;
            let name = rest[..eq].trim().to_string();
            let (value, len) = go_unquote(&rest[eq + 1..])?;
            rest = &rest[eq + 1 + len..];
            labels.insert(name, value);
        }
        rest = rest.strip_prefix(' ').ok_or("expected a value")?;
        let end = rest.find(", {").unwrap_or(rest.len());
        let v = parse_go_float(&rest[..end])?;
        out.push((labels.into_iter().collect(), v));
        rest = rest[end..].strip_prefix(", ").unwrap_or(&rest[end..]);
    }
    Ok(out)
}

/// Parses Go's `%E` rendering of a float (`1.5E+00`, `NaN`, `+Inf`, `-Inf`).
pub fn parse_go_float(s: &str) -> Result<f64, String> {
    match s.trim() {
        "NaN" => Ok(f64::NAN),
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t.parse::<f64>().map_err(|e| format!("{t:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_parsed() {
        let report = r#"  FAILED:
    expr: "foo{a=\"x\"}", time: 1m1s,
        exp: {__name__="foo", a="x"} 6E+00
        got: {__name__="foo", a="x"} 5E+00, {__name__="foo", a="y, z"} NaN
    expr: "sum(foo)", time: 1h1s,
        exp: nil
        got: {} -Inf
    expr: "foo +", time: 7s, err: 1:6: parse error: unexpected end of input
"#;
        let got = parse_report(report).expect("parse");
        let q = |e: &str, t| {
            report_key(&Query {
                expr: e.to_string(),
                eval_secs: t,
            })
        };
        let foo = [("__name__".to_string(), "foo".to_string())];
        match &got[&q(r#"foo{a="x"}"#, 61)] {
            Outcome::Got(s) => {
                assert_eq!(s.len(), 2);
                assert_eq!(s[0].0, [foo[0].clone(), ("a".into(), "x".into())]);
                assert_eq!(s[0].1, 5.0);
                assert_eq!(s[1].0, [foo[0].clone(), ("a".into(), "y, z".into())]);
                assert!(s[1].1.is_nan());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            got[&q("sum(foo)", 3601)],
            Outcome::Got(vec![(vec![], f64::NEG_INFINITY)])
        );
        assert!(matches!(&got[&q("foo +", 7)], Outcome::Error(e) if e.contains("parse error")));
    }

    #[test]
    fn series_notation_skips_missing_seconds() {
        let pts = [
            (7, Point::Value(1.5)),
            (22, Point::Stale),
            (23, Point::Value(f64::NAN)),
        ];
        assert_eq!(series_values(&pts), "_x7 1.5 _x14 stale NaN");
    }
}
