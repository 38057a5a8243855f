//! `tocsin-collector check-config`: the packaged example passes, and a
//! broken file gets every problem with file:line:col and a non-zero exit.

#![expect(
    clippy::expect_used,
    reason = "a test that cannot run the binary or write its files must fail"
)]

use std::path::Path;
use std::process::{Command, Output};

fn check_config(file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tocsin-collector"))
        .args(["check-config", "--config"])
        .arg(file)
        .output()
        .expect("run tocsin-collector")
}

#[test]
fn the_packaged_example_passes_check_config() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/collector.yaml");
    let out = check_config(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "OK");
}

#[test]
fn every_problem_is_printed_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("collector.yaml");
    std::fs::write(
        &file,
        "data_dir: data\nreceivers:\n  otlp:\n    grpc: { listen: \"nowhere\" }\napi:\n  listen: 0.0.0.0:9466\nlogs:\n  max_bytes: 10\n",
    )
    .unwrap();
    let out = check_config(&file);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let f = file.display().to_string();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with(&format!("{f}:4:")), "{stdout}");
    assert!(lines[0].contains("receivers.otlp.grpc.listen"), "{stdout}");
    assert!(
        lines[1].starts_with(&format!("{f}:6:3: api.listen: ")),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with(&format!("{f}:8:3: logs.max_bytes: ")),
        "{stdout}"
    );
}

#[test]
fn an_unknown_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("collector.yaml");
    std::fs::write(&file, "ruler:\n  rule_file: [x.yaml]\n").unwrap();
    let out = check_config(&file);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!("{}:2:3: ", file.display())) && stdout.contains("rule_file"),
        "{stdout}"
    );
}

#[test]
fn invalid_rule_files_fail_check_config_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/bad.yaml"),
        "groups:\n  - name: x\n    rules:\n      - record: a\n        expr: sum(\n",
    )
    .unwrap();
    let file = dir.path().join("collector.yaml");
    std::fs::write(&file, "ruler:\n  rule_files: [\"rules/*.yaml\"]\n").unwrap();
    let out = check_config(&file);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bad.yaml:5:15: "), "{stdout}");
    std::fs::write(
        dir.path().join("rules/bad.yaml"),
        "groups:\n  - name: x\n    rules:\n      - record: a\n        expr: sum(up)\n",
    )
    .unwrap();
    let out = check_config(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
