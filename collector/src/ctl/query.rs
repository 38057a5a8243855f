//! `tocsinctl query EXPR [--time T]` and `tocsinctl query range EXPR
//! --start S --end E --step D`: PromQL against a running collector's
//! `/api/v1/query` and `/api/v1/query_range`, printed as `promtool query`
//! prints them (`{labels} => value @[timestamp]`), or the API's JSON
//! unchanged with `-o json`.

use std::io::Write;

use serde_json::Value;

use super::client::{Answer, Client, CtlError};
use super::{ExitCode, Output, SUCCESS, print_warnings};

/// `query EXPR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstantQuery {
    pub expr: String,
    /// RFC 3339 or Unix seconds; the collector's now when absent.
    pub time: Option<String>,
}

/// `query range EXPR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeQuery {
    pub expr: String,
    pub start: String,
    pub end: String,
    /// A Prometheus duration or seconds.
    pub step: String,
}

pub fn instant(
    client: &Client,
    q: &InstantQuery,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CtlError> {
    let mut params = vec![("query", q.expr.clone())];
    if let Some(t) = &q.time {
        params.push(("time", t.clone()));
    }
    let answer = client.get("api/v1/query", &params)?;
    print(&answer, output, out, err)
}

pub fn range(
    client: &Client,
    q: &RangeQuery,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CtlError> {
    let params = [
        ("query", q.expr.clone()),
        ("start", q.start.clone()),
        ("end", q.end.clone()),
        ("step", q.step.clone()),
    ];
    let answer = client.get("api/v1/query_range", &params)?;
    print(&answer, output, out, err)
}

fn print(
    answer: &Answer,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CtlError> {
    print_warnings(&answer.warnings, err)?;
    match output {
        Output::Json => writeln!(out, "{}", answer.raw.trim_end())?,
        Output::Table => out.write_all(format_result(&answer.data).as_bytes())?,
    }
    Ok(SUCCESS)
}

/// The `data` of a query answer as promtool prints it: one line per
/// sample of a vector, `metric =>` then one `value @[t]` line per point
/// of a matrix, `scalar: v @[t]`, `string: s @[t]`.
pub fn format_result(data: &Value) -> String {
    let mut s = String::new();
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("vector") => {
            for sample in result.as_array().into_iter().flatten() {
                s.push_str(&format!(
                    "{} => {}\n",
                    format_metric(&sample["metric"]),
                    format_point(&sample["value"])
                ));
            }
        }
        Some("matrix") => {
            for series in result.as_array().into_iter().flatten() {
                s.push_str(&format!("{} =>\n", format_metric(&series["metric"])));
                for p in series["values"].as_array().into_iter().flatten() {
                    s.push_str(&format!("{}\n", format_point(p)));
                }
            }
        }
        Some("scalar") => s.push_str(&format!("scalar: {}\n", format_point(result))),
        Some("string") => s.push_str(&format!("string: {}\n", format_point(result))),
        _ => s.push_str(&format!("{data}\n")),
    }
    s
}

/// `name{a="b", c="d"}` (labels in name order, values escaped as Go's
/// `%q`), as Prometheus prints a metric.
pub fn format_metric(metric: &Value) -> String {
    let Some(m) = metric.as_object() else {
        return "{}".into();
    };
    let name = m.get("__name__").and_then(Value::as_str).unwrap_or("");
    let mut pairs: Vec<(&String, &Value)> = m.iter().filter(|(k, _)| *k != "__name__").collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let labels: Vec<String> = pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", quote(v.as_str().unwrap_or_default())))
        .collect();
    if labels.is_empty() && !name.is_empty() {
        return name.to_string();
    }
    format!("{name}{{{}}}", labels.join(", "))
}

/// A label value quoted as Go's `%q` does for printable text.
pub fn quote(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if c.is_control() => s.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// `[t, "v"]` as `v @[t]`, the time in seconds with at most three
/// decimals.
fn format_point(p: &Value) -> String {
    let t = p[0].as_f64().map(format_seconds).unwrap_or_default();
    let v = match &p[1] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("{v} @[{t}]")
}

fn format_seconds(t: f64) -> String {
    let ms = (t * 1000.0).round() as i64;
    let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    if frac == 0 {
        format!("{secs}")
    } else {
        let f = format!("{frac:03}");
        format!("{secs}.{}", f.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vectors_print_as_promtool_does() {
        let data = json!({
            "resultType": "vector",
            "result": [
                {"metric": {"__name__": "up", "job": "a\"b", "instance": "h:1"},
                 "value": [1700000000.5, "1"]},
                {"metric": {}, "value": [1700000000, "NaN"]},
            ]
        });
        assert_eq!(
            format_result(&data),
            "up{instance=\"h:1\", job=\"a\\\"b\"} => 1 @[1700000000.5]\n{} => NaN @[1700000000]\n"
        );
    }

    #[test]
    fn matrices_scalars_and_strings_print_as_promtool_does() {
        let data = json!({
            "resultType": "matrix",
            "result": [{"metric": {"__name__": "x"},
                        "values": [[10.125, "1"], [20, "2"]]}]
        });
        assert_eq!(format_result(&data), "x =>\n1 @[10.125]\n2 @[20]\n");
        let data = json!({"resultType": "scalar", "result": [3.25, "42"]});
        assert_eq!(format_result(&data), "scalar: 42 @[3.25]\n");
        let data = json!({"resultType": "string", "result": [3, "hi"]});
        assert_eq!(format_result(&data), "string: hi @[3]\n");
    }
}
