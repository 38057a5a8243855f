//! `tocsinctl agents list` and `tocsinctl agents forget ID`: the agent
//! inventory of a running collector (`GET /api/v1/agents`, role read) as
//! a table or the API's JSON, and forgetting one agent
//! (`DELETE /api/v1/agents/{id}`, role admin).

use std::io::Write;

use serde_json::Value;

use super::client::{Client, CtlError};
use super::{ExitCode, Output, SUCCESS, print_answer, table};

pub fn list(
    client: &Client,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CtlError> {
    let answer = client.get("api/v1/agents", &[])?;
    print_answer(&answer, output, format_agents, out, err)
}

pub fn forget(client: &Client, id: &str, out: &mut dyn Write) -> Result<ExitCode, CtlError> {
    if id.is_empty() {
        return Err(CtlError::Usage(
            "agents forget: the agent id must not be empty (see `tocsinctl agents list`)".into(),
        ));
    }
    let answer = client.delete("api/v1/agents", id)?;
    let forgotten = answer.data["forgotten"].as_str().unwrap_or(id);
    writeln!(out, "forgotten: {forgotten}")?;
    Ok(SUCCESS)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

/// One row per agent under a header.
pub fn format_agents(data: &Value) -> String {
    let mut rows = vec![
        [
            "ID",
            "HOST",
            "VERSION",
            "INTERVAL",
            "ADDRESS",
            "LAST SEEN",
            "UP",
            "SKEW",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for a in data.as_array().into_iter().flatten() {
        rows.push(vec![
            text(&a["id"]),
            text(&a["host_name"]),
            text(&a["version"]),
            match a["interval_seconds"].as_f64() {
                Some(s) => format!("{s}s"),
                None => text(&a["interval_seconds"]),
            },
            text(&a["address"]),
            text(&a["last_seen"]),
            text(&a["up"]),
            match a["clock_skew_seconds"].as_f64() {
                Some(s) => format!("{s:+.3}s"),
                None => text(&a["clock_skew_seconds"]),
            },
        ]);
    }
    table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agents_print_as_an_aligned_table() {
        let data = json!([
            {"id": "a1", "host_name": "web-1", "version": "0.1.0", "interval_seconds": 10,
             "address": "10.0.0.5", "first_seen": "2026-01-01T00:00:00Z",
             "last_seen": "2026-01-01T00:01:00Z", "up": true, "clock_skew_seconds": 0.25},
            {"id": "agent-two", "host_name": "", "version": "0.1.0", "interval_seconds": 30,
             "address": null, "first_seen": "2026-01-01T00:00:00Z",
             "last_seen": "2026-01-01T00:00:00Z", "up": false, "clock_skew_seconds": null},
        ]);
        assert_eq!(
            format_agents(&data),
            "ID         HOST   VERSION  INTERVAL  ADDRESS   LAST SEEN             UP   SKEW\n\
             a1         web-1  0.1.0    10s       10.0.0.5  2026-01-01T00:01:00Z  yes  +0.250s\n\
             agent-two  -      0.1.0    30s       -         2026-01-01T00:00:00Z  no   -\n"
        );
    }
}
