//! `tocsin-agent check-config`: the packaged example passes, and an invalid
//! file is refused with every problem and its position.

#![allow(
    clippy::panic,
    reason = "test fixtures outside #[test] functions fail the test loudly"
)]

use std::path::Path;
use std::process::Command;

fn check_config(path: &Path) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_tocsin-agent"))
        .args(["check-config", "--config"])
        .arg(path)
        .output();
    match output {
        Ok(output) => output,
        Err(e) => panic!("cannot start tocsin-agent: {e}"),
    }
}

#[test]
fn packaged_example_passes_check_config() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/agent.yaml");
    let output = check_config(&example);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": OK"), "{stdout}");
}

#[test]
fn invalid_config_lists_every_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("agent.yaml");
    std::fs::write(
        &path,
        "collector:\n  endpoint: ftp://x\n  token_file: missing.token\nmetrics:\n  interval: 1ms\nlogs:\n  - include: []\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let output = check_config(&path);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let file = path.display().to_string();
    for expected in [
        format!("{file}:2:13: collector.endpoint:"),
        format!("{file}:3:15: collector.token_file:"),
        format!("{file}:5:13: metrics.interval:"),
        format!("{file}:7:14: logs[0].include:"),
    ] {
        assert!(
            stderr.contains(&expected),
            "{expected} missing in:\n{stderr}"
        );
    }
}

#[test]
fn unreadable_config_is_an_error() {
    let output = check_config(Path::new("/nonexistent/tocsin/agent.yaml"));
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/tocsin/agent.yaml"));
}
