//! Prometheus' PromQL conformance suite (`promql/promqltest/testdata`),
//! run against Tocsin's evaluator.
//!
//! Reads every `*.test` file in `../shared/conformance/promqltest/`, loads
//! the float samples into a [`MemStorage`], evaluates each `eval` with
//! [`Engine`] and compares as Prometheus' `promqltest` does: floats with
//! `almost.Equal` (relative epsilon 1e-6, NaN equals NaN, the staleness
//! marker only itself), label sets exactly, order only when the test asks
//! for it, errors and annotations by exact message or regex. Instant evals
//! are also checked, as Prometheus does, with `@` pinned to the evaluation
//! time at other times, and in range mode around the evaluation time.
//!
//! Skips (each printed with its reason): an eval whose expected result holds
//! a native histogram; one whose query selects, at the evaluated times, a
//! series that holds native-histogram samples (decided by evaluating the
//! query's selectors against the loaded data) and whose result on the float
//! samples alone differs from the expected one (such an eval is still run,
//! and passes when everything it expects holds); and every eval of the
//! files for features Prometheus 3 keeps behind feature flags. Nothing else
//! is skipped: an expectation that cannot be parsed is a failure.
//!
//! Run with `cargo test -p tocsin-rules --test promqltest -- --nocapture` to
//! see each failure and skip; `PROMQLTEST_FILES=aggregators,limit` limits
//! the run to the files whose names contain one of the words.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod promqltest {
    pub mod compare;
    pub mod data;
    pub mod format;
}

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use promql_parser::parser::{AtModifier, Expr};
use regex::Regex;
use tocsin_rules::promql::{Engine, EngineOptions, QueryResult, Value};

use promqltest::compare::{
    AnnoTally, annotation_lines, assert_matrix_sorted, check_annotations, check_expected_failure,
    compare_result, fmt_value,
};
use promqltest::data::{Loaded, histogram_named, histogram_selected};
use promqltest::format::{Command, EvalCmd, parse_file};

/// Files of features that Prometheus 3 enables only behind feature flags.
const FEATURE_FLAG_FILES: &[&str] = &[
    "duration_expression",
    "extended_vectors",
    "fill-modifier",
    "info",
    "type_and_unit",
    "start_timestamps",
];

/// Functions whose result changes with the evaluation time even when their
/// arguments do not (Prometheus' `AtModifierUnsafeFunctions`), plus the
/// query-context functions `start()`, `end()`, `range()` and `step()`,
/// which read the query's own times and so cannot survive `@` pinning
/// either.
const AT_MODIFIER_UNSAFE: &[&str] = &[
    "days_in_month",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "hour",
    "minute",
    "month",
    "year",
    "predict_linear",
    "time",
    "timestamp",
    "start",
    "end",
    "range",
    "step",
];

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/promqltest")
}

/// Whether `expr` calls a function that is unsafe under `@` pinning.
fn has_at_unsafe_call(expr: &Expr) -> bool {
    match expr {
        Expr::Call(c) => {
            AT_MODIFIER_UNSAFE.contains(&c.func.name)
                || c.args.args.iter().any(|a| has_at_unsafe_call(a))
        }
        Expr::Aggregate(a) => {
            has_at_unsafe_call(&a.expr) || a.param.as_deref().is_some_and(has_at_unsafe_call)
        }
        Expr::Unary(u) => has_at_unsafe_call(&u.expr),
        Expr::Binary(b) => has_at_unsafe_call(&b.lhs) || has_at_unsafe_call(&b.rhs),
        Expr::Paren(p) => has_at_unsafe_call(&p.expr),
        Expr::Subquery(s) => has_at_unsafe_call(&s.expr),
        _ => false,
    }
}

/// Prometheus' `atModifierTestCases` rewrite: sets `@ t` on every selector
/// and subquery without one, not descending into subqueries that had one.
fn pin_at(expr: &mut Expr, t: SystemTime) {
    match expr {
        Expr::VectorSelector(vs) => {
            if vs.at.is_none() {
                vs.at = Some(AtModifier::At(t));
            }
        }
        Expr::MatrixSelector(ms) => {
            if ms.vs.at.is_none() {
                ms.vs.at = Some(AtModifier::At(t));
            }
        }
        // Selectors inside a subquery stay relative to the subquery's
        // steps: Prometheus stops at any subquery that has (or was just
        // given) an `@`.
        Expr::Subquery(sq) => {
            if sq.at.is_none() {
                sq.at = Some(AtModifier::At(t));
            }
        }
        Expr::Aggregate(a) => {
            pin_at(&mut a.expr, t);
            if let Some(p) = a.param.as_deref_mut() {
                pin_at(p, t);
            }
        }
        Expr::Unary(u) => pin_at(&mut u.expr, t),
        Expr::Binary(b) => {
            pin_at(&mut b.lhs, t);
            pin_at(&mut b.rhs, t);
        }
        Expr::Paren(p) => pin_at(&mut p.expr, t),
        Expr::Call(c) => {
            for a in c.args.args.iter_mut() {
                pin_at(a, t);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

fn ms_to_system_time(ms: i64) -> SystemTime {
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

enum Outcome {
    Pass,
    Fail { reason: String, got: String },
    Skip(String),
}

struct Runner {
    engine: Engine,
    query_context_funcs: Regex,
    /// Print nothing (the runner's own self-tests).
    quiet: bool,
}

impl Runner {
    fn new() -> Self {
        Runner {
            // As Prometheus' test engine: delayed `__name__` removal on,
            // 5m lookback, 1m default subquery step.
            engine: Engine::new(EngineOptions {
                delayed_name_removal: true,
                ..EngineOptions::default()
            }),
            query_context_funcs: Regex::new(r"(start|end|range|step)\(\)").expect("static regex"),
            quiet: false,
        }
    }

    fn say(&self, s: &str) {
        if !self.quiet {
            println!("{s}");
        }
    }

    fn run_eval(&self, loaded: &Loaded, cmd: &EvalCmd, tally: &mut AnnoTally) -> Outcome {
        if cmd.expects_histogram {
            return Outcome::Skip("the expected result holds a native histogram".into());
        }
        let expr = match tocsin_rules::promql::parse(&cmd.expr) {
            Ok(e) => e,
            Err(e) => {
                // Prometheus' parser accepts every query of the suite; a
                // parse error here is the engine's failure to run it,
                // unless the query reads native histograms anyway (rule b,
                // decided from the metric names it mentions).
                let window = if cmd.is_range {
                    (cmd.start, cmd.end)
                } else {
                    (cmd.eval, cmd.eval)
                };
                if let Some(why) = histogram_named(loaded, &cmd.expr, window) {
                    return Outcome::Skip(format!("query does not parse ({e}); {why}"));
                }
                if cmd.is_fail() {
                    return match check_expected_failure(cmd, &e) {
                        Ok(()) => Outcome::Pass,
                        Err(r) => Outcome::Fail {
                            reason: r,
                            got: format!("parse error: {e}"),
                        },
                    };
                }
                return Outcome::Fail {
                    reason: format!("query does not parse: {e}"),
                    got: String::new(),
                };
            }
        };
        let q = if cmd.is_range {
            (cmd.start, cmd.end)
        } else {
            (cmd.eval, cmd.eval)
        };
        // Only the evaluation time matters for instant evals: the range-mode
        // check compares just its middle step.
        if let Some(why) = histogram_selected(loaded, &expr, q.0, q.1, q) {
            // Rule (b) allows the skip, but the eval is still run on the
            // float samples: it counts as passed only when everything it
            // expects holds, annotations included; otherwise it is skipped
            // with the reason and what differed.
            let mut scratch = AnnoTally::default();
            return match self.run_parsed(loaded, cmd, &expr, &mut scratch) {
                Outcome::Pass => {
                    tally.add(&scratch);
                    Outcome::Pass
                }
                Outcome::Fail { reason, .. } => {
                    Outcome::Skip(format!("{why}; on its float samples alone: {reason}"))
                }
                skip @ Outcome::Skip(_) => skip,
            };
        }
        self.run_parsed(loaded, cmd, &expr, tally)
    }

    /// Runs a parsed eval: the query as written and, for instant evals,
    /// Prometheus' `@`-pinned and range-mode variants.
    fn run_parsed(
        &self,
        loaded: &Loaded,
        cmd: &EvalCmd,
        expr: &Expr,
        tally: &mut AnnoTally,
    ) -> Outcome {
        if cmd.is_range {
            let res = self
                .engine
                .range_query(&loaded.store, expr, cmd.start, cmd.end, cmd.step);
            return self.judge(cmd, res.map_err(|e| e.to_string()), Some(tally));
        }
        // The instant query as written, then Prometheus' variants with `@`
        // pinned to the evaluation time and evaluated at other times; each
        // is also checked in range mode.
        let mut queries: Vec<(Option<i64>, Expr, i64)> = vec![(None, expr.clone(), cmd.eval)];
        if !has_at_unsafe_call(expr) {
            let mut pinned = expr.clone();
            pin_at(&mut pinned, ms_to_system_time(cmd.eval));
            let ts = cmd.eval;
            let times: Vec<i64> = if ts == 0 {
                vec![-1000, 0, 1000]
            } else {
                vec![-10 * ts, 0, ts / 5, ts, 10 * ts]
            };
            for t in times {
                queries.push((Some(cmd.eval), pinned.clone(), t));
            }
        }
        let mut tally = Some(tally);
        for (pinned_at, e, t) in &queries {
            let context = |reason: String| match pinned_at {
                None => reason,
                Some(at) => format!("with @ {at}ms evaluated at {t}ms: {reason}"),
            };
            let res = self.engine.instant_query(&loaded.store, e, *t);
            match self.judge(cmd, res.map_err(|e| e.to_string()), tally.take()) {
                Outcome::Pass => {}
                Outcome::Fail { reason, got } => {
                    return Outcome::Fail {
                        reason: context(reason),
                        got,
                    };
                }
                s @ Outcome::Skip(_) => return s,
            }
            if cmd.is_fail() {
                continue;
            }
            if let Err(Outcome::Fail { reason, got }) = self.range_mode_check(loaded, cmd, e, *t) {
                return Outcome::Fail {
                    reason: context(reason),
                    got,
                };
            }
        }
        Outcome::Pass
    }

    /// Judges one query result against the eval's expectations.
    fn judge(
        &self,
        cmd: &EvalCmd,
        res: Result<QueryResult, String>,
        tally: Option<&mut AnnoTally>,
    ) -> Outcome {
        let res = match res {
            Err(e) => {
                if let Some(t) = tally {
                    // The annotation expectations cannot hold without a
                    // result, unless a failure was expected (Prometheus
                    // does not check annotations then).
                    if !cmd.is_fail() {
                        t.total += annotation_lines(cmd);
                    }
                }
                if cmd.is_fail() {
                    return match check_expected_failure(cmd, &e) {
                        Ok(()) => Outcome::Pass,
                        Err(r) => Outcome::Fail {
                            reason: r,
                            got: format!("error: {e}"),
                        },
                    };
                }
                return Outcome::Fail {
                    reason: "error evaluating query".into(),
                    got: format!("error: {e}"),
                };
            }
            Ok(r) => r,
        };
        if cmd.is_fail() {
            return Outcome::Fail {
                reason: "expected error evaluating query but got none".into(),
                got: fmt_value(&res.value),
            };
        }
        let got = || {
            let mut s = fmt_value(&res.value);
            if !res.annotations.is_empty() {
                let _ = write!(
                    s,
                    "\n      warnings: {:?}\n      infos: {:?}",
                    res.annotations.warnings, res.annotations.infos
                );
            }
            s
        };
        if let Err(r) = check_annotations(cmd, &res, tally) {
            return Outcome::Fail {
                reason: r,
                got: got(),
            };
        }
        // Prometheus' engine always returns a matrix here; promqltest does
        // not check it, so a wrong type could otherwise pass.
        if (cmd.is_range || cmd.range_vector) && !matches!(res.value, Value::Matrix(_)) {
            return Outcome::Fail {
                reason: format!("expected a matrix, got a {}", res.value.type_name()),
                got: got(),
            };
        }
        if let Err(r) = compare_result(cmd, &res.value) {
            return Outcome::Fail {
                reason: r,
                got: got(),
            };
        }
        Outcome::Pass
    }

    /// Prometheus' check that an instant query gives the same result as
    /// the middle step of a range query around it.
    fn range_mode_check(
        &self,
        loaded: &Loaded,
        cmd: &EvalCmd,
        expr: &Expr,
        t: i64,
    ) -> Result<(), Outcome> {
        if cmd.exclude_from_range_query || self.query_context_funcs.is_match(&cmd.expr) {
            return Ok(());
        }
        let instant = self
            .engine
            .instant_query(&loaded.store, expr, t)
            .map_err(|e| Outcome::Fail {
                reason: "error evaluating query".into(),
                got: format!("error: {e}"),
            })?;
        let res = self
            .engine
            .range_query(&loaded.store, expr, t - 60_000, t + 60_000, 60_000)
            .map_err(|e| Outcome::Fail {
                reason: "error evaluating query in range mode".into(),
                got: format!("error: {e}"),
            })?;
        if cmd.is_ordered() {
            return Ok(());
        }
        let Value::Matrix(m) = &res.value else {
            return Err(Outcome::Fail {
                reason: "range mode: range query did not return a matrix".into(),
                got: fmt_value(&res.value),
            });
        };
        let fail = |reason: String| Outcome::Fail {
            reason: format!("range mode: {reason}"),
            got: fmt_value(&res.value),
        };
        assert_matrix_sorted(m).map_err(fail)?;
        let mut vec = Vec::new();
        for s in m {
            if let Some(p) = s.samples.iter().find(|p| p.t == t) {
                vec.push(tocsin_rules::promql::InstantSample {
                    labels: s.labels.clone(),
                    t,
                    v: p.v,
                });
            }
        }
        let as_value = if matches!(instant.value, Value::Scalar { .. }) {
            match vec.first() {
                Some(s) => Value::Scalar { t, v: s.v },
                None => return Err(fail("no sample at the evaluation time for a scalar".into())),
            }
        } else {
            Value::Vector(vec)
        };
        compare_result(cmd, &as_value).map_err(fail)
    }
}

#[derive(Default)]
struct Totals {
    passed: usize,
    failed: usize,
    skipped: usize,
    anno: AnnoTally,
}

fn report_failure(
    runner: &Runner,
    at: (&str, usize),
    expr: &str,
    expected: &[String],
    reason: &str,
    got: &str,
) {
    let (file, line) = at;
    let mut out = format!("FAIL {file}:{line}: {expr}\n    why: {reason}\n");
    if expected.is_empty() {
        out.push_str("    expected: (empty result)\n");
    } else {
        out.push_str("    expected:\n");
        for e in expected {
            let _ = writeln!(out, "      {e}");
        }
    }
    if !got.is_empty() {
        let _ = writeln!(out, "    got: {got}");
    }
    runner.say(out.trim_end());
}

fn run_file(runner: &Runner, path: &Path, totals: &mut Totals) {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    match std::fs::read_to_string(path) {
        Ok(text) => run_text(runner, &file, &text, totals),
        Err(e) => {
            println!("FAIL {file}: cannot read: {e}");
            totals.failed += 1;
        }
    }
}

/// Runs one test file's text; `file` names it in reports and decides
/// whether it is a feature-flag file.
fn run_text(runner: &Runner, file: &str, text: &str, totals: &mut Totals) {
    let stem = file.trim_end_matches(".test");
    if FEATURE_FLAG_FILES.contains(&stem) {
        let lines = promqltest::format::get_lines(text);
        for (i, l) in lines.iter().enumerate() {
            if l.to_lowercase().starts_with("eval") {
                runner.say(&format!(
                    "SKIP {file}:{}: feature behind a Prometheus 3 feature flag ({stem})",
                    i + 1
                ));
                totals.skipped += 1;
            }
        }
        return;
    }
    let mut loaded = Loaded::default();
    // A load that did not parse poisons the evals until the next `clear`.
    let mut broken_load: Option<String> = None;
    for cmd in parse_file(text) {
        match cmd {
            Command::Clear => {
                loaded = Loaded::default();
                broken_load = None;
            }
            Command::Load(l) => loaded.load(&l),
            Command::Broken {
                line,
                eval: None,
                error,
            } => {
                runner.say(&format!("FAIL {file}:{line}: cannot parse: {error}"));
                broken_load = Some(format!("{file}:{line}: {error}"));
            }
            Command::Broken {
                line,
                eval: Some(expr),
                error,
            } => {
                report_failure(
                    runner,
                    (file, line),
                    &expr,
                    &[],
                    &format!("eval does not parse: {error}"),
                    "",
                );
                totals.failed += 1;
            }
            Command::Eval(e) => {
                if let Some(b) = &broken_load {
                    report_failure(
                        runner,
                        (file, e.line),
                        &e.expr,
                        &e.raw_expected,
                        &format!("data not loaded: {b}"),
                        "",
                    );
                    totals.failed += 1;
                    continue;
                }
                match runner.run_eval(&loaded, &e, &mut totals.anno) {
                    Outcome::Pass => totals.passed += 1,
                    Outcome::Skip(why) => {
                        runner.say(&format!("SKIP {file}:{}: {why}", e.line));
                        totals.skipped += 1;
                    }
                    Outcome::Fail { reason, got } => {
                        report_failure(
                            runner,
                            (file, e.line),
                            &e.expr,
                            &e.raw_expected,
                            &reason,
                            &got,
                        );
                        totals.failed += 1;
                    }
                }
            }
        }
    }
}

#[test]
fn promqltest() {
    let dir = conformance_dir();
    if !dir.is_dir() {
        println!(
            "promqltest: conformance data not found at {}; skipping (it lives in ../shared/conformance/)",
            dir.display()
        );
        return;
    }
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "test"))
            .collect(),
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    // PROMQLTEST_FILES=aggregators,limit runs only the files whose names
    // contain one of the words (for working on one area).
    if let Ok(filter) = std::env::var("PROMQLTEST_FILES") {
        let words: Vec<&str> = filter.split(',').filter(|w| !w.is_empty()).collect();
        files.retain(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            words.iter().any(|w| name.contains(w))
        });
        println!("PROMQLTEST_FILES={filter}: running {} files", files.len());
    }
    let runner = Runner::new();
    let mut totals = Totals::default();
    let mut per_file = Vec::new();
    for f in &files {
        let before = (totals.passed, totals.failed, totals.skipped);
        run_file(&runner, f, &mut totals);
        per_file.push(format!(
            "  {}: {} passed, {} failed, {} skipped",
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            totals.passed - before.0,
            totals.failed - before.1,
            totals.skipped - before.2
        ));
    }
    println!("per file:");
    for l in &per_file {
        println!("{l}");
    }
    println!(
        "promqltest: {} passed, {} failed, {} skipped",
        totals.passed, totals.failed, totals.skipped
    );
    println!(
        "promqltest annotations: {} of {} hold ({} more would hold but for the source position Prometheus appends)",
        totals.anno.hold, totals.anno.total, totals.anno.hold_but_position
    );
    assert_eq!(
        totals.failed, 0,
        "{} promqltest evals failed",
        totals.failed
    );
}

#[cfg(test)]
mod runner_tests {
    use super::*;
    use promqltest::compare::{EPSILON, almost_equal, strip_position};
    use promqltest::format::{SeqValue, parse_series_desc, parse_values};
    use tocsin_rules::promql::value::{is_stale, stale_nan};

    #[test]
    fn almost_equal_follows_prometheus() {
        assert!(almost_equal(f64::NAN, f64::NAN, EPSILON));
        assert!(!almost_equal(stale_nan(), f64::NAN, EPSILON));
        assert!(almost_equal(1.0, 1.0 + 1e-7, EPSILON));
        assert!(!almost_equal(1.0, 1.00001, EPSILON));
        assert!(!almost_equal(0.0, 1e-300, EPSILON));
        assert!(almost_equal(f64::INFINITY, f64::INFINITY, EPSILON));
        assert!(!almost_equal(f64::INFINITY, f64::NEG_INFINITY, EPSILON));
    }

    fn floats(s: &str) -> Vec<f64> {
        parse_values(s)
            .unwrap()
            .into_iter()
            .map(|v| match v {
                SeqValue::Float(f) => f,
                SeqValue::Omitted => -999.0,
                SeqValue::Histogram => -111.0,
            })
            .collect()
    }

    #[test]
    fn value_notation_expands_like_prometheus() {
        assert_eq!(floats("1+2x3"), vec![1.0, 3.0, 5.0, 7.0]);
        assert_eq!(floats("10-3x2"), vec![10.0, 7.0, 4.0]);
        assert_eq!(floats("5x2"), vec![5.0, 5.0, 5.0]);
        assert_eq!(floats("_x3 1 _"), vec![-999.0, -999.0, -999.0, 1.0, -999.0]);
        // No hex in series descriptions: `0x2` is 0 repeated, as in Go's lexer.
        assert_eq!(
            floats("-1e+2 .5 0x2 -Inf"),
            vec![-100.0, 0.5, 0.0, 0.0, 0.0, f64::NEG_INFINITY]
        );
        assert_eq!(floats("1e-1+1e-1x1"), vec![0.1, 0.2]);
        let st = parse_values("stale NaN").unwrap();
        assert!(matches!(st[0], SeqValue::Float(f) if is_stale(f)));
        assert!(matches!(st[1], SeqValue::Float(f) if f.is_nan() && !is_stale(f)));
        assert_eq!(
            floats("{{schema:0 sum:1 count:1}}x2 {{sum:1}}+{{sum:2}}x1 3"),
            vec![-111.0, -111.0, -111.0, -111.0, -111.0, 3.0]
        );
        assert!(parse_values("1+2").is_err());
        assert!(parse_values("abc").is_err());
    }

    #[test]
    fn series_descriptions_parse_names_and_quotes() {
        let s = parse_series_desc(r#"m{a="x\"y", b='z', "c.d"=`e`} 1"#).unwrap();
        assert_eq!(s.labels.to_string(), r#"m{a="x\"y", b="z", "c.d"="e"}"#);
        let s = parse_series_desc(r#"{"my.metric", job="j"} 1"#).unwrap();
        assert_eq!(s.labels.metric_name(), "my.metric");
        let s = parse_series_desc("{} 1").unwrap();
        assert!(s.labels.is_empty());
        let s = parse_series_desc("h {{schema:0 sum:1}}").unwrap();
        assert_eq!(s.labels.metric_name(), "h");
        assert_eq!(s.values, vec![SeqValue::Histogram]);
    }

    /// A small file through the whole runner: right expectations pass,
    /// every kind of wrong one fails, none passes by accident.
    #[test]
    fn wrong_expectations_fail() {
        let text = r#"
load 1m
  m{a="1"} 1 2 3
  m{a="2"} 10 20 30

eval instant at 2m m
  m{a="1"} 3
  m{a="2"} 30

eval instant at 2m m
  m{a="1"} 3
  m{a="2"} 31

eval instant at 2m m
  m{a="1"} 3

eval instant at 2m m{a="1"}
  m{a="1"} 3
  m{a="3"} 3

eval instant at 2m m{a="1"}
  {a="1"} 3

eval range from 0 to 2m step 1m m{a="1"}
  m{a="1"} 1 2 3

eval range from 0 to 2m step 1m m{a="1"}
  m{a="1"} 1 _ 3

eval instant at 2m m{a="1"}
  m{a="1"} three

eval instant at 2m sum(m)
  expect fail

eval instant at 2m sum(m)
  expect warn

eval instant at 2m sum(m)
  expect no_warn
  {} 33

eval instant at 2m sum(m)
  33

eval instant at 2m 33
  33

eval instant at 2m sort_desc(m)
  expect ordered
  m{a="1"} 3
  m{a="2"} 30

eval instant at 2m sort_desc(m)
  expect ordered
  m{a="2"} 30
  m{a="1"} 3
"#;
        let runner = Runner {
            quiet: true,
            ..Runner::new()
        };
        let mut totals = Totals::default();
        run_text(&runner, "self.test", text, &mut totals);
        assert_eq!((totals.passed, totals.failed, totals.skipped), (5, 10, 0));
        assert_eq!((totals.anno.hold, totals.anno.total), (1, 2));
    }

    #[test]
    fn histogram_data_and_flagged_files_are_skipped() {
        let text = r#"
load 1m
  h {{schema:0 sum:1 count:1}}x3
  f 1 2 3

eval instant at 2m h
  {} 1

eval instant at 2m f
  f 3

eval instant at 2m f
  f {{schema:0 sum:1 count:1}}
"#;
        let runner = Runner {
            quiet: true,
            ..Runner::new()
        };
        let mut totals = Totals::default();
        run_text(&runner, "x.test", text, &mut totals);
        assert_eq!((totals.passed, totals.failed, totals.skipped), (1, 0, 2));
        let mut totals = Totals::default();
        run_text(&runner, "info.test", text, &mut totals);
        assert_eq!((totals.passed, totals.failed, totals.skipped), (0, 0, 3));
        // A query the parser rejects is skipped only when a metric it
        // names holds histograms then.
        let text = r#"
load 1m
  h {{schema:0 sum:1 count:1}}x3
  f 1 2 3

eval instant at 2m histogram_count(h </ 2)
  {} 1

eval instant at 2m histogram_count(f </ 2)
  {} 1

eval instant at 20m histogram_count(h </ 2)
  {} 1
"#;
        let mut totals = Totals::default();
        run_text(&runner, "y.test", text, &mut totals);
        assert_eq!((totals.passed, totals.failed, totals.skipped), (0, 2, 1));
    }

    #[test]
    fn strip_position_only_strips_positions() {
        assert_eq!(
            strip_position("PromQL warning: x (1:19)"),
            "PromQL warning: x"
        );
        assert_eq!(
            strip_position("PromQL warning: x (a:b)"),
            "PromQL warning: x (a:b)"
        );
        assert_eq!(strip_position("no position"), "no position");
    }
}
