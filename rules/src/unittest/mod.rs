//! The promtool-format rule unit-test runner (`promtool test rules`):
//! reads a test file ([`mod@format`]), loads its rule files relative to it,
//! feeds each test group's `input_series` ([`series`]) into a fresh store
//! step by step, evaluates every rule group at each `evaluation_interval`
//! from the group's start to its largest `eval_time`, compares firing alerts
//! at their `eval_time`s and PromQL results afterwards, and reports
//! failures in promtool's words and layout ([`report`]).
//!
//! Evaluation follows promtool exactly: series samples become visible only
//! up to the evaluation step reached; an alert test at `eval_time` is
//! checked against the evaluation at the last step at or before it; an
//! error in any rule ends the test group; PromQL tests run after the last
//! step.

pub mod format;
pub mod junit;
pub mod report;
pub mod series;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::file::{LoadOptions, RuleFile, RuleFileErrors, load_file};
use crate::group::{EvalContext, GroupEvaluator, query_vector};
use crate::promql::{Engine, EngineOptions, Labels, MemStorage, Sample};
use format::{TestGroupConfig, UnitTestFileConfig, format_go_duration, format_prom_duration};
use report::{AlertSet, go_quote, samples_string};

/// How a run is configured (promtool's flags).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--run`: regular expressions over test group names; a group runs when
    /// any matches (unanchored). Empty runs every group.
    pub run: Vec<String>,
    /// `--ignore-unknown-fields`: tolerate unknown keys in rule files.
    pub ignore_unknown_fields: bool,
    /// `--diff`: report alert mismatches as a coloured JSON diff.
    pub diff: bool,
}

/// Why a run could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum UnitTestError {
    #[error("invalid --run pattern {pattern:?}: {source}")]
    BadRunPattern {
        pattern: String,
        #[source]
        source: regex::Error,
    },
    #[error("writing the report: {0}")]
    Io(#[from] io::Error),
}

/// The outcome of one test file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileOutcome {
    pub file: String,
    /// Warnings promtool prints as it goes (`  WARNING: no file match …`).
    pub warnings: Vec<String>,
    /// Failures, each already formatted as promtool prints it.
    pub failures: Vec<String>,
    /// The error that stopped the file before its tests ran (also in
    /// `failures`).
    pub aborted: Option<String>,
    /// Whether the file was read and its tests started (JUnit reports a
    /// timestamp only then, as promtool).
    pub started: bool,
    /// Each test group run, in file order.
    pub cases: Vec<CaseOutcome>,
}

/// The outcome of one test group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseOutcome {
    /// The group's `name`, or `unnamed#N` (its index in the file).
    pub name: String,
    pub failures: Vec<String>,
}

impl FileOutcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    fn abort(mut self, message: String) -> FileOutcome {
        self.failures.push(message.clone());
        self.aborted = Some(message);
        self
    }
}

/// Runs the test files and writes promtool's report: progress and
/// `SUCCESS` to `out`, `FAILED:` blocks and warnings to `err`. Returns
/// each file's outcome (see [`FileOutcome::passed`]).
pub fn run_files(
    files: &[PathBuf],
    opts: &RunOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<Vec<FileOutcome>, UnitTestError> {
    let run = compile_run(&opts.run)?;
    let mut outcomes = Vec::with_capacity(files.len());
    for f in files {
        writeln!(out, "Unit Testing:  {}", f.display())?;
        let outcome = run_file(f, opts, run.as_ref());
        for w in &outcome.warnings {
            writeln!(err, "{w}")?;
        }
        if outcome.passed() {
            writeln!(out, "  SUCCESS")?;
        } else {
            writeln!(err, "  FAILED:")?;
            for e in &outcome.failures {
                writeln!(err, "{e}")?;
                writeln!(out)?;
            }
        }
        writeln!(out)?;
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Joins the `--run` patterns into one alternation, as promtool does.
pub fn compile_run(patterns: &[String]) -> Result<Option<Regex>, UnitTestError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let joined = patterns.join("|");
    Regex::new(&joined)
        .map(Some)
        .map_err(|source| UnitTestError::BadRunPattern {
            pattern: joined,
            source,
        })
}

/// Runs one test file.
pub fn run_file(path: &Path, opts: &RunOptions, run: Option<&Regex>) -> FileOutcome {
    let mut outcome = FileOutcome {
        file: path.display().to_string(),
        ..FileOutcome::default()
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return outcome.abort(format!("open {}: {}", path.display(), io_message(&e)));
        }
    };
    let mut file: UnitTestFileConfig = match serde_saphyr::from_str(&text) {
        Ok(f) => f,
        Err(e) => {
            return outcome.abort(format!("{}: {e}", path.display()));
        }
    };
    // Large test files are mostly input series: keep one copy, not two.
    drop(text);
    let base = path.parent().unwrap_or(Path::new(""));
    let mut rule_paths = Vec::new();
    for rf in &file.rule_files {
        match resolve_rule_files(base, &rf.0) {
            Ok(found) if found.is_empty() => {
                let shown = joined(base, &rf.0);
                outcome.warnings.push(format!(
                    "  WARNING: no file match pattern {}",
                    shown.display()
                ));
            }
            Ok(found) => rule_paths.extend(found),
            Err(e) => return outcome.abort(e),
        }
    }
    outcome.started = true;
    let eval_interval = file
        .evaluation_interval
        .map(|d| d.0)
        .filter(|d| *d != 0)
        .unwrap_or(60_000);
    let mut order: BTreeMap<String, usize> = BTreeMap::new();
    for (i, g) in file.group_eval_order.iter().enumerate() {
        if order.insert(g.0.clone(), i).is_some() {
            return outcome.abort(format!("group name repeated in evaluation order: {}", g.0));
        }
    }
    let load_opts = LoadOptions {
        ignore_unknown_fields: opts.ignore_unknown_fields,
    };
    let rule_files: Vec<Result<RuleFile, RuleFileErrors>> =
        rule_paths.iter().map(|p| load_file(p, load_opts)).collect();
    let suite = Suite {
        eval_interval,
        order: &order,
        rule_files: &rule_files,
        fuzzy: file.fuzzy_compare,
        diff: opts.diff,
    };
    for (i, tg) in file.tests.iter_mut().enumerate() {
        let name = tg.name.as_ref().map(|n| n.0.clone()).unwrap_or_default();
        if let Some(re) = run
            && !re.is_match(&name)
        {
            continue;
        }
        let failures = suite.run_group(tg);
        outcome.failures.extend(failures.iter().cloned());
        outcome.cases.push(CaseOutcome {
            name: if name.is_empty() {
                format!("unnamed#{i}")
            } else {
                name
            },
            failures,
        });
    }
    outcome
}

fn io_message(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `base` joined with `rel` as Go's `filepath.Join` would show it.
fn joined(base: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    if p.is_absolute() || base.as_os_str().is_empty() || base == Path::new(".") {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Resolves a `rule_files` entry relative to the test file and expands
/// globs (a pattern matching nothing yields nothing).
fn resolve_rule_files(base: &Path, rel: &str) -> Result<Vec<PathBuf>, String> {
    if rel.is_empty() {
        return Ok(Vec::new());
    }
    let full = joined(base, rel);
    let pattern = full.to_string_lossy().to_string();
    let paths =
        glob::glob(&pattern).map_err(|e| format!("syntax error in pattern {pattern:?}: {e}"))?;
    let mut out: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
    out.sort();
    Ok(out)
}

/// What every test group of a file shares.
struct Suite<'a> {
    eval_interval: i64,
    order: &'a BTreeMap<String, usize>,
    rule_files: &'a [Result<RuleFile, RuleFileErrors>],
    fuzzy: bool,
    diff: bool,
}

impl Suite<'_> {
    /// Runs one test group. Its input series are taken out of `tg` and
    /// dropped as they are expanded, so a large file's text is not held
    /// beside its samples.
    fn run_group(&self, tg: &mut TestGroupConfig) -> Vec<String> {
        let group_name = tg.name.as_ref().map(|n| n.0.clone()).unwrap_or_default();
        let interval = tg
            .interval
            .map(|d| d.0)
            .filter(|d| *d != 0)
            .unwrap_or(self.eval_interval);
        let start = tg.start_timestamp.map(|s| s.0).unwrap_or(0);

        // Input series, as promtool's `load` command: the last definition
        // of a label set wins.
        let mut defs: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        for is in std::mem::take(&mut tg.input_series) {
            let line = format!("{} {}", is.series.0, is.values.0);
            drop(is);
            let desc = match series::parse_series_desc(&line) {
                Ok(d) => d,
                Err(e) => return vec![e.to_string()],
            };
            drop(line);
            let mut samples = Vec::with_capacity(desc.values.len());
            let mut t = start;
            for v in desc.values {
                if let Some(v) = v {
                    samples.push(Sample { t, v });
                }
                t = t.saturating_add(interval);
            }
            defs.insert(desc.labels, samples);
        }

        // Rule groups, in `group_eval_order`. As in promtool, a group not
        // named there ranks with the first one named; ties keep file order
        // (promtool leaves them in map order).
        let mut groups: Vec<GroupEvaluator> = Vec::new();
        let mut load_errors = Vec::new();
        for rf in self.rule_files {
            match rf {
                Ok(f) => groups.extend(f.groups.iter().map(|g| GroupEvaluator::new(g, interval))),
                Err(errs) => load_errors.extend(errs.errors.iter().map(ToString::to_string)),
            }
        }
        if !load_errors.is_empty() {
            return load_errors;
        }
        groups.sort_by_key(|g| self.order.get(g.name()).copied().unwrap_or(0));

        let mint = start;
        let max_eval = tg
            .alert_rule_test
            .iter()
            .map(|a| a.eval_time.0)
            .chain(tg.promql_expr_test.iter().map(|p| p.eval_time.0))
            .max()
            .unwrap_or(0);
        let maxt = mint.saturating_add(max_eval);

        // Alert tests by eval time.
        let mut alert_tests: BTreeMap<i64, Vec<&format::AlertTestCaseConfig>> = BTreeMap::new();
        for a in &tg.alert_rule_test {
            if a.alertname.0.is_empty() {
                let in_group = if group_name.is_empty() {
                    String::new()
                } else {
                    format!(" (in TestGroup {group_name})")
                };
                return vec![format!(
                    "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
                    format_prom_duration(a.eval_time.0)
                )];
            }
            alert_tests.entry(a.eval_time.0).or_default().push(a);
        }
        let alert_times: Vec<i64> = alert_tests.keys().copied().collect();

        // A subquery without a step uses the evaluation interval, as promtool
        // configures its engine.
        let engine = Engine::new(EngineOptions {
            no_step_subquery_interval_ms: self.eval_interval,
            ..EngineOptions::default()
        });
        let external_labels = Labels::from_pairs(
            tg.external_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone())),
        );
        let external_url = tg
            .external_url
            .as_ref()
            .map(|u| u.0.clone())
            .unwrap_or_default();
        let ctx = EvalContext {
            engine: &engine,
            external_labels: &external_labels,
            external_url: &external_url,
            default_query_offset_ms: 0,
        };
        // Every input sample goes in at once, hidden beyond the current
        // evaluation time: what promtool's lazy loader shows, without a
        // second copy of the samples.
        let mut store = MemStorage::new();
        store.set_visible_until(Some(mint));
        for (labels, samples) in defs {
            store.add_series(&labels, samples);
        }
        let mut errs: Vec<String> = Vec::new();
        let mut curr = 0usize;
        let mut ts = mint;
        while ts <= maxt {
            store.set_visible_until(Some(ts));
            let mut eval_errs = Vec::new();
            for g in &mut groups {
                for (i, e) in g.eval(&mut store, ts, &ctx) {
                    let name = g
                        .rules()
                        .get(i)
                        .map(|r| r.name().to_string())
                        .unwrap_or_default();
                    eval_errs.push(format!(
                        "    rule: {name}, time: {}, err: {e}",
                        format_go_duration(ts)
                    ));
                }
            }
            if !eval_errs.is_empty() {
                errs.extend(eval_errs);
                return errs;
            }
            while curr < alert_times.len()
                && ts - mint <= alert_times[curr]
                && alert_times[curr] < ts.saturating_add(self.eval_interval) - mint
            {
                let t = alert_times[curr];
                for tc in alert_tests.get(&t).map(Vec::as_slice).unwrap_or(&[]) {
                    let mut got = AlertSet::default();
                    for g in &groups {
                        for r in g.rules() {
                            if r.name() != tc.alertname.0 {
                                continue;
                            }
                            if let Some(tr) = r.tracker() {
                                for a in tr.firing_alerts() {
                                    got.push_alert(&a.labels, &a.annotations);
                                }
                            }
                        }
                    }
                    let mut exp = AlertSet::default();
                    for ea in &tc.exp_alerts {
                        let mut labels: BTreeMap<String, String> = ea
                            .exp_labels
                            .iter()
                            .map(|(k, v)| (k.clone(), v.0.clone()))
                            .collect();
                        labels.insert("alertname".into(), tc.alertname.0.clone());
                        let annotations: BTreeMap<String, String> = ea
                            .exp_annotations
                            .iter()
                            .map(|(k, v)| (k.clone(), v.0.clone()))
                            .collect();
                        exp.push_maps(labels, annotations);
                    }
                    got.sort();
                    exp.sort();
                    if got != exp {
                        let name_line = if group_name.is_empty() {
                            String::new()
                        } else {
                            format!("    name: {group_name},\n")
                        };
                        if self.diff {
                            let (matched, diff) = report::json_diff(&exp.to_json(), &got.to_json());
                            if matched != report::JsonMatch::Full {
                                errs.push(format!(
                                    "{name_line}    alertname: {}, time: {}, \n        diff: {}",
                                    tc.alertname.0,
                                    format_prom_duration(tc.eval_time.0),
                                    report::indent_lines(&diff, "            "),
                                ));
                            }
                            continue;
                        }
                        errs.push(format!(
                            "{name_line}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
                            tc.alertname.0,
                            format_prom_duration(tc.eval_time.0),
                            report::indent_lines(&exp.to_string(), "            "),
                            report::indent_lines(&got.to_string(), "            "),
                        ));
                    }
                }
                curr += 1;
            }
            if self.eval_interval <= 0 || ts == i64::MAX {
                break;
            }
            ts = ts.saturating_add(self.eval_interval);
        }

        for tc in &tg.promql_expr_test {
            let when = format_prom_duration(tc.eval_time.0);
            let prefix = format!("    expr: {}, time: {when}", go_quote(&tc.expr.0));
            let got = crate::promql::parse(&tc.expr.0)
                .map_err(|e| e.to_string())
                .and_then(|expr| {
                    query_vector(&engine, &store, &expr, mint.saturating_add(tc.eval_time.0))
                        .map_err(|e| e.to_string())
                });
            let got = match got {
                Ok(v) => v,
                Err(e) => {
                    errs.push(format!("{prefix}, err: {e}"));
                    continue;
                }
            };
            let mut got: Vec<(Vec<(String, String)>, f64)> =
                got.into_iter().map(|s| (pairs(&s.labels), s.v)).collect();
            let mut exp: Vec<(Vec<(String, String)>, f64)> = Vec::new();
            let mut bad = None;
            for s in &tc.exp_samples {
                if s.histogram.as_ref().is_some_and(|h| !h.0.is_empty()) {
                    bad = Some(format!(
                        "labels {}: native histogram samples are not supported",
                        go_quote(&s.labels.0)
                    ));
                    break;
                }
                match series::parse_metric(&s.labels.0) {
                    Ok(l) => exp.push((pairs(&l), s.value)),
                    Err(e) => {
                        bad = Some(format!("labels {}: {e}", go_quote(&s.labels.0)));
                        break;
                    }
                }
            }
            if let Some(e) = bad {
                errs.push(format!("{prefix}, err: {e}"));
                continue;
            }
            got.sort_by(|a, b| a.0.cmp(&b.0));
            exp.sort_by(|a, b| a.0.cmp(&b.0));
            let equal = got.len() == exp.len()
                && got
                    .iter()
                    .zip(&exp)
                    .all(|(g, e)| g.0 == e.0 && floats_equal(e.1, g.1, self.fuzzy));
            if !equal {
                errs.push(format!(
                    "{prefix},\n        exp: {}\n        got: {}",
                    samples_string(&exp),
                    samples_string(&got)
                ));
            }
        }
        errs
    }
}

/// Label pairs sorted by name, `__name__` included.
fn pairs(l: &Labels) -> Vec<(String, String)> {
    l.iter()
        .map(|l| (l.name.clone(), l.value.clone()))
        .collect()
}

/// promtool's float comparison: exact (so NaN never matches), or within one
/// ULP when `fuzzy_compare` is on.
fn floats_equal(x: f64, y: f64, fuzzy: bool) -> bool {
    if x == y {
        return true;
    }
    fuzzy && (next_after(x, f64::NEG_INFINITY) == y || next_after(x, f64::INFINITY) == y)
}

/// Go's `math.Nextafter`.
fn next_after(x: f64, toward: f64) -> f64 {
    if x.is_nan() || toward.is_nan() {
        return f64::NAN;
    }
    if x == toward {
        return x;
    }
    if x == 0.0 {
        return f64::from_bits(1).copysign(toward);
    }
    let bits = x.to_bits();
    let up = (toward > x) == (x > 0.0);
    f64::from_bits(if up { bits + 1 } else { bits - 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzzy_compare_allows_one_ulp() {
        assert!(floats_equal(3.0, 2.9999999999999996, true));
        assert!(floats_equal(3.0, 3.0000000000000004, true));
        assert!(!floats_equal(3.0, 2.9999999999999987, true));
        assert!(!floats_equal(3.0, 2.9999999999999996, false));
        assert!(!floats_equal(f64::NAN, f64::NAN, true));
    }

    #[test]
    fn start_time_accepts_unix_and_rfc3339() {
        use format::parse_start_time;
        assert_eq!(parse_start_time("1609459200"), Ok(1_609_459_200_000));
        assert_eq!(
            parse_start_time("2024-01-01T00:00:00Z"),
            Ok(1_704_067_200_000)
        );
        assert_eq!(parse_start_time("1.5"), Ok(1500));
        assert!(parse_start_time("yesterday").is_err());
    }

    #[test]
    fn run_patterns_join_as_alternation() {
        let re = compile_run(&["correct".into(), "wrong".into()])
            .expect("compile")
            .expect("some");
        assert!(re.is_match("correct test"));
        assert!(re.is_match("wrong test"));
        assert!(!re.is_match(""));
        assert!(compile_run(&["(".into()]).is_err());
    }

    fn run_yaml(rules: &str, tests: &str, opts: &RunOptions) -> FileOutcome {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("rules.yml"), rules).expect("write rules");
        let test = dir.path().join("test.yml");
        std::fs::write(&test, tests).expect("write test");
        let run = compile_run(&opts.run).expect("run patterns");
        run_file(&test, opts, run.as_ref())
    }

    const RULES: &str = "groups:\n- name: g\n  rules:\n  - alert: High\n    expr: load > 1\n    for: 2m\n    labels:\n      env: '{{ $externalLabels.env }}'\n    annotations:\n      url: '{{ $externalURL }}/x'\n  - record: load:doubled\n    expr: load * 2\n";

    #[test]
    fn alerts_follow_for_and_are_checked_at_the_last_step_before_eval_time() {
        let tests = "rule_files: [rules.yml]\ntests:\n- interval: 1m\n  external_labels: {env: prod}\n  external_url: http://t.example\n  input_series:\n  - series: load{host=\"a\"}\n    values: 2x10\n  alert_rule_test:\n  - eval_time: 1m59s\n    alertname: High\n    exp_alerts: []\n  - eval_time: 2m30s\n    alertname: High\n    exp_alerts:\n    - exp_labels: {host: a, env: prod}\n      exp_annotations: {url: http://t.example/x}\n  promql_expr_test:\n  - expr: load:doubled\n    eval_time: 3m\n    exp_samples:\n    - labels: 'load:doubled{host=\"a\"}'\n      value: 4\n";
        let out = run_yaml(RULES, tests, &RunOptions::default());
        assert_eq!(out.failures, Vec::<String>::new());
    }

    #[test]
    fn wrong_expectations_are_reported_like_promtool() {
        let tests = "rule_files: [rules.yml]\ntests:\n- name: t1\n  input_series:\n  - series: load\n    values: 2x10\n  alert_rule_test:\n  - eval_time: 5m\n    alertname: High\n    exp_alerts: []\n";
        let out = run_yaml(RULES, tests, &RunOptions::default());
        assert_eq!(out.failures.len(), 1);
        assert!(
            out.failures[0].starts_with("    name: t1,\n    alertname: High, time: 5m, \n        exp:[], \n        got:[\n            0:\n              Labels:{alertname=\"High\"}"),
            "{}",
            out.failures[0]
        );
    }

    #[test]
    fn diff_mode_reports_alert_mismatches_as_a_diff() {
        let tests = "rule_files: [rules.yml]\ntests:\n- name: t1\n  input_series:\n  - series: load\n    values: 2x10\n  alert_rule_test:\n  - eval_time: 5m\n    alertname: High\n    exp_alerts: []\n";
        let opts = RunOptions {
            diff: true,
            ..RunOptions::default()
        };
        let out = run_yaml(RULES, tests, &opts);
        assert_eq!(out.failures.len(), 1);
        assert!(
            out.failures[0]
                .starts_with("    name: t1,\n    alertname: High, time: 5m, \n        diff: [\n"),
            "{}",
            out.failures[0]
        );
        assert!(
            out.failures[0].contains("\u{1b}[0;32m\"alertname\": \"High\""),
            "{:?}",
            out.failures[0]
        );
    }

    #[test]
    fn missing_alertname_and_unmatched_rule_files_are_reported() {
        let tests = "rule_files: [nope-*.yml]\ntests:\n- alert_rule_test:\n  - eval_time: 1m\n    exp_alerts: []\n";
        let out = run_yaml(RULES, tests, &RunOptions::default());
        assert_eq!(out.warnings.len(), 1);
        assert!(out.warnings[0].starts_with("  WARNING: no file match pattern "));
        assert_eq!(
            out.failures,
            vec![
                "an item under alert_rule_test misses required attribute alertname at eval_time 1m"
                    .to_string()
            ]
        );
    }

    #[test]
    fn run_skips_groups_whose_name_does_not_match() {
        let tests = "tests:\n- name: good\n  input_series:\n  - series: x\n    values: 1\n  promql_expr_test:\n  - expr: x\n    exp_samples: [{labels: x, value: 1}]\n- name: bad\n  promql_expr_test:\n  - expr: x\n    exp_samples: [{labels: x, value: 1}]\n";
        let all = run_yaml(RULES, tests, &RunOptions::default());
        assert_eq!(all.failures.len(), 1);
        let only_good = RunOptions {
            run: vec!["^go".into()],
            ..RunOptions::default()
        };
        assert!(run_yaml(RULES, tests, &only_good).passed());
    }

    #[test]
    fn group_eval_order_decides_which_recording_rule_runs_first() {
        let rules = "groups:\n- name: second\n  rules:\n  - record: b\n    expr: a + 1\n- name: first\n  rules:\n  - record: a\n    expr: vector(1)\n";
        let tests = "rule_files: [rules.yml]\ngroup_eval_order: [first, second]\ntests:\n- promql_expr_test:\n  - expr: b\n    exp_samples: [{labels: b, value: 2}]\n";
        assert_eq!(
            run_yaml(rules, tests, &RunOptions::default()).failures,
            Vec::<String>::new()
        );
        let repeated = "group_eval_order: [a, a]\ntests: []\n";
        assert_eq!(
            run_yaml(rules, repeated, &RunOptions::default()).failures,
            vec!["group name repeated in evaluation order: a".to_string()]
        );
    }
}
