//! `tocsinctl error-groups list`: the error groups of a running collector
//! (`/api/v1/error-groups`, most recently seen first) as a table of count,
//! id, last seen, hosts and template, or the API's JSON with `-o json`.

use std::io::Write;

use serde_json::Value;

use super::client::{Client, CtlError};
use super::{ExitCode, Output, print_answer, table};

pub fn list(
    client: &Client,
    output: Output,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<ExitCode, CtlError> {
    let answer = client.get("api/v1/error-groups", &[])?;
    print_answer(&answer, output, format_groups, out, err)
}

/// One row per group under a header; the template last, uncut.
pub fn format_groups(data: &Value) -> String {
    let mut rows = vec![
        [
            "COUNT",
            "ID",
            "FIRST SEEN",
            "LAST SEEN",
            "HOSTS",
            "TEMPLATE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for g in data.as_array().into_iter().flatten() {
        let hosts: Vec<&str> = g["hosts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
        rows.push(vec![
            s(&g["count"]),
            s(&g["id"]),
            s(&g["first_seen"]),
            s(&g["last_seen"]),
            if hosts.is_empty() {
                "-".into()
            } else {
                hosts.join(",")
            },
            s(&g["template"]),
        ]);
    }
    table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn groups_print_as_a_table() {
        let data = json!([{"id": "00000000000000a1", "template": "disk <*> failed",
            "count": 12, "first_seen": "2026-01-01T00:00:00Z",
            "last_seen": "2026-01-01T00:05:00Z", "hosts": ["a", "b"], "samples": []}]);
        assert_eq!(
            format_groups(&data),
            "COUNT  ID                FIRST SEEN            LAST SEEN             HOSTS  TEMPLATE\n\
             12     00000000000000a1  2026-01-01T00:00:00Z  2026-01-01T00:05:00Z  a,b    disk <*> failed\n"
        );
    }
}
