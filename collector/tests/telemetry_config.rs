//! `tocsin-collector check-config` and the `telemetry:` section: a valid
//! one passes; a bad key, a bad protocol and invalid values are reported
//! with file:line:col and the field, and the exit status is 1.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test that cannot run the binary or write its files must fail"
)]

use std::path::Path;
use std::process::Command;

/// (exit code, stdout lines) of check-config on `yaml`.
fn check(dir: &Path, yaml: &str) -> (Option<i32>, Vec<String>, String) {
    let file = dir.join("collector.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin-collector"))
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .expect("run tocsin-collector");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        out.status.code(),
        stdout.lines().map(String::from).collect(),
        file.display().to_string(),
    )
}

#[test]
fn a_valid_telemetry_section_passes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("otlp.token"), "t0ken\n").unwrap();
    let (code, lines, _) = check(
        dir.path(),
        "data_dir: data\ntelemetry:\n  log: { format: json, level: \"info,tocsin_collector::ruler=debug\" }\n  otlp:\n    endpoint: http://127.0.0.1:4318\n    protocol: http\n    headers: { x-scope-orgid: ops }\n    token_file: otlp.token\n    interval: 30s\n",
    );
    assert_eq!(code, Some(0), "{lines:?}");
    assert_eq!(lines, ["OK"]);
}

#[test]
fn an_unknown_key_is_an_error_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let (code, lines, f) = check(
        dir.path(),
        "data_dir: data\ntelemetry:\n  otlp:\n    endpoint: http://127.0.0.1:4317\n    endpont: x\n",
    );
    assert_eq!(code, Some(1));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with(&format!("{f}:5:5: ")), "{lines:?}");
    assert!(lines[0].contains("unknown field `endpont`"), "{lines:?}");
}

#[test]
fn a_bad_protocol_names_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (code, lines, f) = check(
        dir.path(),
        "telemetry:\n  otlp:\n    endpoint: http://127.0.0.1:4317\n    protocol: carrier-pigeon\n",
    );
    assert_eq!(code, Some(1));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with(&format!("{f}:4:15: ")), "{lines:?}");
    assert!(
        lines[0].contains("`carrier-pigeon`, expected one of grpc, http"),
        "{lines:?}"
    );
}

#[test]
fn every_invalid_value_is_reported_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let (code, lines, f) = check(
        dir.path(),
        "telemetry:\n  log:\n    level: \"info,[\"\n  otlp:\n    endpoint: ftp://x\n    interval: 100ms\n    token_file: missing.token\n",
    );
    assert_eq!(code, Some(1));
    let want = [
        (3, "telemetry.log.level: "),
        (5, "telemetry.otlp.endpoint: "),
        (6, "telemetry.otlp.interval: "),
        (7, "telemetry.otlp.token_file: cannot read "),
    ];
    assert_eq!(lines.len(), want.len(), "{lines:?}");
    for (line, (n, field)) in lines.iter().zip(want) {
        assert!(
            line.starts_with(&format!("{f}:{n}:5: {field}")),
            "{line} / {lines:?}"
        );
    }
}
