//! `tocsinctl logs patterns`: the offline error-group miner behind the
//! collector's error groups, run as the operator would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn tocsinctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tocsinctl"))
}

fn write_log(dir: &tempfile::TempDir) -> std::path::PathBuf {
    let path = dir.path().join("app.log");
    let mut lines = Vec::new();
    for i in 0..30 {
        lines.push(format!(
            "connection to 10.0.0.{i}:5432 timed out after {}ms",
            100 + i
        ));
    }
    for i in 0..5 {
        lines.push(format!("user {i} logged in"));
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn patterns_lists_templates_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(&dir);
    let out = tocsinctl()
        .args(["logs", "patterns"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(rows[0][0], "30");
    assert_eq!(rows[0][2], "connection to <*> timed out after <*>");
    assert_eq!(rows[1][0], "5");
    assert_eq!(rows[0][1].len(), 16, "ids are 16 hex digits: {text}");
}

#[test]
fn assign_prints_one_group_id_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(&dir);
    let listed = tocsinctl()
        .args(["logs", "patterns"])
        .arg(&path)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    let first_id = listed
        .lines()
        .next()
        .unwrap()
        .split('\t')
        .nth(1)
        .unwrap()
        .to_string();
    let out = tocsinctl()
        .args(["logs", "patterns", "--assign"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let ids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 35);
    assert!(ids[..30].iter().all(|id| *id == first_id));
    assert!(ids[30..].iter().all(|id| *id != first_id));
}

#[test]
fn a_missing_file_is_named_and_fails() {
    let out = tocsinctl()
        .args(["logs", "patterns", "/nonexistent/tocsin-test.log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot open /nonexistent/tocsin-test.log"),
        "{err}"
    );
}
