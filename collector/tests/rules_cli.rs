//! End-to-end tests of `tocsinctl rules test` and `tocsinctl rules check`
//! against Prometheus' own promtool test data: every row of
//! `../shared/conformance/promtool/expected.tsv` whose `needs` column is
//! empty must give the exit code promtool gives, and failure reports must
//! show what was expected and what was got.

#![expect(
    clippy::expect_used,
    reason = "a helper that cannot run tocsinctl or read the expectations must fail the test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The promtool conformance folder, or `None` (with a message) when this
/// checkout does not have it.
fn conformance_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("TOCSIN_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"))
        .join("promtool");
    if dir.join("expected.tsv").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "skipping: promtool conformance data not found at {} (set TOCSIN_CONFORMANCE_DIR)",
            dir.display()
        );
        None
    }
}

fn tocsinctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tocsinctl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run tocsinctl")
}

/// One row of expected.tsv.
struct Row {
    file: String,
    args: Vec<String>,
    code: i32,
    needs: String,
}

fn rows(dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("expected.tsv")).expect("read expected.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Row {
                file: cols[0].to_string(),
                args: cols
                    .get(1)
                    .map(|a| a.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default(),
                code: cols
                    .get(2)
                    .and_then(|c| c.trim().parse().ok())
                    .expect("exit code column"),
                needs: cols
                    .get(3)
                    .map(|n| n.trim().to_string())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

#[test]
fn promtool_expected_exit_codes() {
    let Some(dir) = conformance_dir() else { return };
    let rows = rows(&dir);
    assert!(rows.len() > 10, "expected.tsv looks truncated");
    let mut mismatches = Vec::new();
    let mut run = 0;
    for row in rows.iter().filter(|r| r.needs.is_empty()) {
        run += 1;
        let mut args = vec!["rules", "test", row.file.as_str()];
        args.extend(row.args.iter().map(String::as_str));
        let out = tocsinctl(&dir, &args);
        let code = out.status.code().unwrap_or(-1);
        if code != row.code {
            mismatches.push(format!(
                "{} {:?}: exit {code}, want {}\nstdout:\n{}\nstderr:\n{}",
                row.file,
                row.args,
                row.code,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {run} rows differ from promtool:\n{}",
        mismatches.len(),
        mismatches.join("\n---\n")
    );
}

#[test]
fn failing_tests_show_expected_and_got() {
    let Some(dir) = conformance_dir() else { return };
    let out = tocsinctl(&dir, &["rules", "test", "failing.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.starts_with("Unit Testing:  failing.yml\n"),
        "{stdout}"
    );
    assert!(stderr.contains("  FAILED:\n"), "{stderr}");
    // The PromQL expectation.
    assert!(
        stderr.contains(
            "    expr: \"test\", time: 0s,\n        exp: {__name__=\"test\"} 1E+00\n        got: {__name__=\"test\"} 0E+00"
        ),
        "{stderr}"
    );
    // An alert expected but not firing, then alerts firing unexpectedly.
    assert!(
        stderr.contains("    name: Failing test,\n    alertname: Test, time: 0s, \n        exp:["),
        "{stderr}"
    );
    assert!(
        stderr.contains("    name: Failing alert test,\n    alertname: AlwaysFiring, time: 5m, \n        exp:[], \n        got:["),
        "{stderr}"
    );
    assert!(
        stderr.contains("Labels:{alertname=\"InstanceDown\", job=\"test\", severity=\"page\"}"),
        "{stderr}"
    );
}

#[test]
fn run_selects_test_groups_by_name() {
    let Some(dir) = conformance_dir() else { return };
    let out = tocsinctl(
        &dir,
        &["rules", "test", "rules_run.yml", "--run", "correct"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("  SUCCESS\n"));
    let out = tocsinctl(&dir, &["rules", "test", "rules_run.yml", "--run", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exp: {__name__=\"test\"} 1E+00"),
        "{stderr}"
    );
    assert!(
        stderr.contains("got: {__name__=\"test\"} 0E+00"),
        "{stderr}"
    );
}

#[test]
fn rule_errors_name_the_rule_and_time() {
    let Some(dir) = conformance_dir() else { return };
    let out = tocsinctl(&dir, &["rules", "test", "bad-rules-syntax-test.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad-rules-syntax.yml:7:"), "{stderr}");
    let out = tocsinctl(&dir, &["rules", "test", "bad-rules-error-test.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("    rule: joined, time: 0s, err: "),
        "{stderr}"
    );
}

#[test]
fn check_rules_like_promtool() {
    let Some(dir) = conformance_dir() else { return };
    let out = tocsinctl(&dir, &["rules", "check", "rules.yml"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Checking rules.yml\n  SUCCESS: 5 rules found\n\n"
    );
    let out = tocsinctl(
        &dir,
        &["rules", "check", "rules.yml", "bad-rules-syntax.yml"],
    );
    assert_eq!(out.status.code(), Some(1));
    let out = tocsinctl(
        &dir,
        &[
            "rules",
            "check",
            "--lint-fatal",
            "prometheus-rules.lint.yml",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Metric: HighRequestLatency"));
    let out = tocsinctl(
        &dir,
        &[
            "rules",
            "check",
            "--lint",
            "none",
            "--lint-fatal",
            "prometheus-rules.lint.yml",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let out = tocsinctl(&dir, &["rules", "check", "rules_extrafields.yml"]);
    assert_eq!(out.status.code(), Some(1));
    let out = tocsinctl(
        &dir,
        &[
            "rules",
            "check",
            "--ignore-unknown-fields",
            "rules_extrafields.yml",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
}

/// promtool itself, when installed (`PROMTOOL` or `promtool` on `PATH`).
fn promtool() -> Option<PathBuf> {
    let candidate = std::env::var_os("PROMTOOL").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("promtool"))
                .find(|p| p.is_file())
        })
    });
    if candidate.is_none() {
        eprintln!("skipping: promtool not installed (set PROMTOOL to compare against it)");
    }
    candidate
}

#[test]
fn output_is_byte_identical_to_promtool_where_versions_agree() {
    let Some(conformance) = conformance_dir() else {
        return;
    };
    let Some(promtool) = promtool() else { return };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules_cli");
    // Files whose meaning has not changed between promtool 2.x and 3.x, so
    // any installed promtool is a valid reference for them.
    for (dir, file) in [
        (fixtures.as_path(), "staleness_test.yml"),
        (fixtures.as_path(), "templates_test.yml"),
        (fixtures.as_path(), "keep_firing_test.yml"),
        (fixtures.as_path(), "values_test.yml"),
        (fixtures.as_path(), "alerts_series_test.yml"),
        (conformance.as_path(), "failing.yml"),
        (conformance.as_path(), "rules_run.yml"),
        (conformance.as_path(), "long-period.yml"),
        (conformance.as_path(), "at-modifier-test.yml"),
        (conformance.as_path(), "negative-offset-test.yml"),
    ] {
        let theirs = Command::new(&promtool)
            .current_dir(dir)
            .args(["test", "rules", file])
            .output()
            .expect("run promtool");
        let ours = tocsinctl(dir, &["rules", "test", file]);
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{file}: exit code"
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stdout),
            "{file}: stdout"
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            String::from_utf8_lossy(&theirs.stderr),
            "{file}: stderr"
        );
    }
}

#[test]
fn junit_results_record_each_test_group() {
    let Some(dir) = conformance_dir() else { return };
    let out_dir = tempfile::tempdir().expect("tempdir");
    let xml = out_dir.path().join("results.xml");
    let xml_arg = xml.to_string_lossy().to_string();
    let out = tocsinctl(
        &dir,
        &["rules", "test", "--junit", &xml_arg, "rules_run.yml"],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&xml).expect("junit file written");
    assert!(
        text.starts_with(
            "<testsuites><testsuite name=\"rules_run.yml\" tests=\"2\" failures=\"1\" errors=\"0\""
        ),
        "{text}"
    );
    assert!(
        text.contains("<testcase name=\"correct test\"></testcase>"),
        "{text}"
    );
    assert!(
        text.contains("<testcase name=\"wrong test\"><failure>    expr: &#34;test&#34;"),
        "{text}"
    );
}

#[test]
fn check_rules_over_prometheus_rulefmt_testdata() {
    let Some(promtool_dir) = conformance_dir() else {
        return;
    };
    let dir = promtool_dir.join("../rulefmt");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("read rulefmt dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() > 5, "rulefmt data looks truncated");
    let mut wrong = Vec::new();
    for f in &files {
        let out = tocsinctl(&dir, &["rules", "check", f]);
        let want = if f.ends_with(".bad.yaml") { 1 } else { 0 };
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        if out.status.code() != Some(want) {
            wrong.push(format!(
                "{f}: exit {:?}, want {want}\n{stderr}",
                out.status.code()
            ));
        } else if want == 1 && !stderr.lines().any(|l| l.starts_with(&format!("{f}:"))) {
            wrong.push(format!("{f}: no file-named diagnostic\n{stderr}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n---\n"));
}
