//! `tocsinctl logs query [SELECTOR]`: stored log records of a running
//! collector (`/api/v1/logs`) by label selector, minimum severity, time
//! range (`--since` or `--start`/`--end`), text or regex and limit;
//! printed newest first as `TIME SEVERITY {labels} body`, or the API's
//! JSON unchanged with `-o json`.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tocsin_rules::validate::parse_duration;

use super::client::{Client, CtlError};
use super::query::{format_metric, quote};
use super::{ExitCode, Output, SUCCESS, print_warnings};

/// `logs query`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsQuery {
    /// A series selector over the record labels (`{service_name="api"}`).
    pub selector: Option<String>,
    /// The minimum severity (`warn`, `error`, …).
    pub severity: Option<String>,
    /// Records of the last this long (a Prometheus duration).
    pub since: Option<String>,
    /// RFC 3339 or Unix seconds.
    pub start: Option<String>,
    pub end: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
    pub limit: Option<usize>,
}

impl LogsQuery {
    /// The API's parameters, `--since` resolved against `now`.
    pub fn params(&self, now: SystemTime) -> Result<Vec<(&'static str, String)>, CtlError> {
        let mut p = Vec::new();
        let mut push = |k: &'static str, v: &Option<String>| {
            if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
                p.push((k, v.clone()));
            }
        };
        push("query", &self.selector);
        push("severity", &self.severity);
        push("end", &self.end);
        push("contains", &self.contains);
        push("regex", &self.regex);
        match (&self.since, &self.start) {
            (Some(_), Some(_)) => {
                return Err(CtlError::Usage(
                    "--since and --start both set the start; give one".into(),
                ));
            }
            (Some(since), None) => {
                let d = parse_duration(since).map_err(|e| {
                    CtlError::Usage(format!(
                        "--since {since:?}: {e} (want a duration such as 30m or 1h)"
                    ))
                })?;
                let start = now
                    .checked_sub(d)
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .unwrap_or(Duration::ZERO);
                p.push(("start", format!("{:.3}", start.as_secs_f64())));
            }
            (None, Some(start)) => p.push(("start", start.clone())),
            (None, None) => {}
        }
        if let Some(l) = self.limit {
            p.push(("limit", l.to_string()));
        }
        Ok(p)
    }
}

pub fn query(
    client: &Client,
    q: &LogsQuery,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CtlError> {
    let params = q.params(SystemTime::now())?;
    let answer = client.get("api/v1/logs", &params)?;
    print_warnings(&answer.warnings, err)?;
    match output {
        Output::Json => writeln!(out, "{}", answer.raw.trim_end())?,
        Output::Table => {
            out.write_all(format_records(&answer.data).as_bytes())?;
            if answer.data["truncated"].as_bool() == Some(true) {
                writeln!(
                    err,
                    "more records match: raise --limit or narrow the query (--since, --severity, a selector)"
                )?;
            }
        }
    }
    Ok(SUCCESS)
}

/// One line per record: time, severity, labels, body (a body's further
/// lines indented).
pub fn format_records(data: &Value) -> String {
    let mut s = String::new();
    for r in data["records"].as_array().into_iter().flatten() {
        let body = match &r["body"] {
            Value::String(b) => b.replace('\n', "\n    "),
            other => other.to_string(),
        };
        s.push_str(&format!(
            "{} {:<5} {} {}\n",
            r["time"].as_str().unwrap_or("?"),
            r["severity"].as_str().unwrap_or("?").to_uppercase(),
            format_metric(&r["labels"]),
            body
        ));
        if let Some(attrs) = r["attributes"].as_object().filter(|a| !a.is_empty()) {
            let shown: Vec<String> = attrs
                .iter()
                .map(|(k, v)| format!("{k}={}", quote(v.as_str().unwrap_or_default())))
                .collect();
            s.push_str(&format!("    attributes: {}\n", shown.join(", ")));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_becomes_a_start_and_conflicts_with_start() {
        let now = UNIX_EPOCH + Duration::from_secs(10_000);
        let q = LogsQuery {
            selector: Some("{service_name=\"api\"}".into()),
            severity: Some("warn".into()),
            since: Some("1h".into()),
            contains: Some("".into()),
            limit: Some(5),
            ..LogsQuery::default()
        };
        assert_eq!(
            q.params(now).unwrap(),
            vec![
                ("query", "{service_name=\"api\"}".to_string()),
                ("severity", "warn".to_string()),
                ("start", "6400.000".to_string()),
                ("limit", "5".to_string()),
            ]
        );
        let both = LogsQuery {
            since: Some("1h".into()),
            start: Some("0".into()),
            ..LogsQuery::default()
        };
        assert!(
            both.params(now)
                .unwrap_err()
                .to_string()
                .contains("give one")
        );
        let bad = LogsQuery {
            since: Some("an hour".into()),
            ..LogsQuery::default()
        };
        let e = bad.params(now).unwrap_err().to_string();
        assert!(
            e.contains("--since \"an hour\"") && e.contains("30m"),
            "{e}"
        );
    }

    #[test]
    fn records_print_one_per_line() {
        let data = json!({"records": [
            {"time": "2026-01-01T00:00:00.5Z", "severity": "error",
             "labels": {"service_name": "api", "host_name": "h1"},
             "body": "disk failed\nsecond line", "attributes": {"code.line": "7"}},
            {"time": "2026-01-01T00:00:00Z", "severity": "info",
             "labels": {}, "body": "ok", "attributes": {}},
        ], "truncated": false});
        assert_eq!(
            format_records(&data),
            "2026-01-01T00:00:00.5Z ERROR {host_name=\"h1\", service_name=\"api\"} disk failed\n    second line\n    attributes: code.line=\"7\"\n2026-01-01T00:00:00Z INFO  {} ok\n"
        );
    }
}
