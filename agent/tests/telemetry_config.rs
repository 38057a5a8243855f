//! `tocsin-agent check-config` and the `telemetry:` section: a valid one
//! passes; a bad key, a bad protocol and invalid values are reported with
//! file:line:col and the field, and the exit status is non-zero.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a test that cannot run the binary or write its files must fail"
)]

use std::path::Path;
use std::process::Command;

const COLLECTOR: &str = "collector:\n  endpoint: http://127.0.0.1:4317\n";

/// (success, stderr lines, file name) of check-config on `yaml` (after
/// the two lines of [`COLLECTOR`]).
fn check(dir: &Path, yaml: &str) -> (bool, Vec<String>, String) {
    let file = dir.join("agent.yaml");
    std::fs::write(&file, format!("{COLLECTOR}{yaml}")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin-agent"))
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .expect("run tocsin-agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    (
        out.status.success(),
        stderr.lines().map(String::from).collect(),
        file.display().to_string(),
    )
}

#[test]
fn a_valid_telemetry_section_passes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("otlp.token"), "t0ken\n").unwrap();
    let (ok, lines, _) = check(
        dir.path(),
        "telemetry:\n  log: { format: json, level: debug }\n  otlp:\n    endpoint: http://127.0.0.1:4317\n    protocol: grpc\n    token_file: otlp.token\n    timeout: 5s\n    max_queued_spans: 512\n",
    );
    assert!(ok, "{lines:?}");
}

#[test]
fn an_unknown_key_is_an_error_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, lines, f) = check(dir.path(), "telemetry:\n  log:\n    colour: true\n");
    assert!(!ok);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{f}:5:5: telemetry.log.colour: ")),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("expected one of format, level"),
        "{lines:?}"
    );
}

#[test]
fn a_bad_protocol_names_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, lines, f) = check(
        dir.path(),
        "telemetry:\n  otlp:\n    endpoint: http://127.0.0.1:4317\n    protocol: carrier-pigeon\n",
    );
    assert!(!ok);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{f}:6:15: telemetry.otlp.protocol: ")),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("`carrier-pigeon`, expected one of grpc, http"),
        "{lines:?}"
    );
}

#[test]
fn every_invalid_value_is_reported_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, lines, f) = check(
        dir.path(),
        "telemetry:\n  log:\n    level: \"info,[\"\n  otlp:\n    endpoint: ftp://x\n    interval: 100ms\n    token_file: missing.token\n",
    );
    assert!(!ok);
    let want = [
        "5:12: telemetry.log.level: ",
        "7:15: telemetry.otlp.endpoint: ",
        "8:15: telemetry.otlp.interval: ",
        "9:17: telemetry.otlp.token_file: cannot read ",
    ];
    assert_eq!(lines.len(), want.len(), "{lines:?}");
    for (line, at) in lines.iter().zip(want) {
        assert!(line.starts_with(&format!("{f}:{at}")), "{line} / {lines:?}");
    }
}
