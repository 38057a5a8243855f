//! Differential test of Tocsin's PromQL evaluator against Prometheus'
//! own, as shipped in promtool.
//!
//! proptest strategies generate random data sets (gauges, counters with
//! resets, a classic histogram, an info metric, gaps, staleness markers,
//! NaN and infinities) and random expressions of the grammar Tocsin
//! supports (see `differential/generate.rs` for what is generated and why
//! it avoids where Prometheus 2 and 3 differ). Each expression is evaluated
//! as an instant query by [`Engine`] over a [`MemStorage`], and written into
//! a promtool rule unit-test file as a `promql_expr_test` expecting Tocsin's
//! result; `promtool test rules` then either passes the entry (the engines
//! agree exactly) or reports what Prometheus got, which is compared with a
//! relative tolerance of 1e-9 (NaN equals NaN). An expression both engines
//! reject at evaluation agrees; one that promtool's parser rejects is a
//! defect of the generator and fails the test, as does any promtool output
//! that is not an entry report.
//!
//! A disagreement is shrunk through proptest's value tree to a smaller
//! expression that still disagrees, and the run's test files are kept for
//! replaying by hand. Disagreements once found are also fixed cases
//! ([`regressions`]) compared in every run.
//!
//! `TOCSIN_DIFF_CASES` sets the number of random expressions (default
//! [`DEFAULT_CASES`]), `TOCSIN_DIFF_SEED` the seed. Without promtool on
//! `PATH` the test says so and does nothing: CI installs it.

#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "a test reports failures by panicking"
)]

#[path = "differential/generate.rs"]
mod generate;
#[path = "differential/promtool.rs"]
mod promtool;

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tocsin_rules::promql::value::stale_nan;
use tocsin_rules::promql::{Engine, EngineOptions, Labels, MemStorage, Value};

use generate::{GenSeries, Point, Query};
use promtool::{Expected, Outcome, Sample};

/// Expressions compared by default: enough to cover the grammar, few
/// enough for well under a minute in a debug build.
const DEFAULT_CASES: usize = 1000;
/// Expressions sharing one data set, one test file and one promtool run.
const QUERIES_PER_GROUP: usize = 40;
const DEFAULT_SEED: u64 = 0x7052_4f4d_514c_0001;
/// Disagreements printed in full; the rest are only counted.
const PRINT_LIMIT: usize = 100;

/// Relative tolerance, with an absolute floor: Prometheus versions sum in
/// different orders (2.42 naively, 3 with Kahan compensation), so a result
/// that is exactly 0 on one side can be a few ulps of the operands away
/// from 0 on the other, where no relative tolerance helps.
fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    diff <= 1e-9 * a.abs().max(b.abs()) || diff <= 1e-12
}

fn same_samples(a: &[Sample], b: &[Sample]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.0 == y.0 && close(x.1, y.1))
}

fn env_number(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    match raw.trim().parse() {
        Ok(n) => Some(n),
        Err(e) => panic!("{name}={raw:?} is not a number: {e}"),
    }
}

/// Tocsin's result for one query, as samples sorted by labels.
enum TocsinOutcome {
    Samples(Vec<Sample>),
    Error(String),
    /// The evaluator panicked: a bug whatever promtool says.
    Panic(String),
}

fn store_of(series: &[GenSeries]) -> MemStorage {
    let mut store = MemStorage::new();
    for s in series {
        let labels = Labels::from_pairs(s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        for &(t, p) in &s.points {
            let v = match p {
                Point::Value(v) => v,
                Point::Stale => stale_nan(),
            };
            store.add(&labels, t * 1000, v);
        }
    }
    store
}

fn to_samples(labels_and_values: impl Iterator<Item = (Labels, f64)>) -> Vec<Sample> {
    let mut out: Vec<Sample> = labels_and_values
        .map(|(l, v)| {
            let pairs = l
                .iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect();
            (pairs, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn evaluate(engine: &Engine, store: &MemStorage, q: &Query) -> TocsinOutcome {
    let expr = match tocsin_rules::promql::parse(&q.expr) {
        Ok(e) => e,
        Err(e) => return TocsinOutcome::Error(format!("parse error: {e}")),
    };
    let run = catch_unwind(AssertUnwindSafe(|| {
        engine.instant_query(store, &expr, q.eval_secs * 1000)
    }));
    match run {
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            TocsinOutcome::Panic(msg)
        }
        Ok(Err(e)) => TocsinOutcome::Error(e.to_string()),
        Ok(Ok(res)) => match res.value {
            Value::Vector(v) => {
                TocsinOutcome::Samples(to_samples(v.into_iter().map(|s| (s.labels, s.v))))
            }
            Value::Scalar { v, .. } => TocsinOutcome::Samples(vec![(Vec::new(), v)]),
            other => TocsinOutcome::Error(format!(
                "{} result where promtool takes only a vector or a scalar",
                other.type_name()
            )),
        },
    }
}

fn show(samples: &[Sample]) -> String {
    if samples.is_empty() {
        return "(empty)".to_string();
    }
    samples
        .iter()
        .map(|(labels, v)| {
            let l: Vec<String> = labels.iter().map(|(n, x)| format!("{n}={x:?}")).collect();
            format!("{{{}}} {v:?}", l.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The opening of an error message, which names the kind of failure.
fn error_kind(msg: &str) -> String {
    msg.chars().take(48).collect()
}

/// The verdict on one query.
enum Verdict {
    /// `exact`: promtool passed the entry as written (bit-identical
    /// values), rather than reporting values within the tolerance;
    /// `samples`: how many samples the agreed result has.
    Agree {
        both_failed: Option<(String, String)>,
        exact: bool,
        samples: usize,
    },
    Disagree {
        tocsin: String,
        prometheus: String,
    },
    /// promtool's parser rejected the expression: the generator must not
    /// produce it.
    Rejected(String),
}

fn judge(tocsin: &TocsinOutcome, prometheus: Option<&Outcome>) -> Verdict {
    let prometheus = prometheus.unwrap_or(&Outcome::Passed);
    if let Outcome::Error(e) = prometheus
        && e.contains("parse error")
    {
        return Verdict::Rejected(e.clone());
    }
    match (tocsin, prometheus) {
        (TocsinOutcome::Panic(msg), p) => Verdict::Disagree {
            tocsin: format!("panic: {msg}"),
            prometheus: format!("{p:?}"),
        },
        (TocsinOutcome::Samples(ours), Outcome::Passed) => Verdict::Agree {
            both_failed: None,
            exact: true,
            samples: ours.len(),
        },
        (TocsinOutcome::Samples(ours), Outcome::Got(theirs)) => {
            if same_samples(ours, theirs) {
                Verdict::Agree {
                    both_failed: None,
                    exact: false,
                    samples: ours.len(),
                }
            } else {
                Verdict::Disagree {
                    tocsin: show(ours),
                    prometheus: show(theirs),
                }
            }
        }
        (TocsinOutcome::Samples(ours), Outcome::Error(e)) => Verdict::Disagree {
            tocsin: show(ours),
            prometheus: format!("error: {e}"),
        },
        (TocsinOutcome::Error(ours), Outcome::Error(theirs)) => Verdict::Agree {
            both_failed: Some((ours.clone(), theirs.clone())),
            exact: false,
            samples: 0,
        },
        (TocsinOutcome::Error(e), Outcome::Got(theirs)) => Verdict::Disagree {
            tocsin: format!("error: {e}"),
            prometheus: show(theirs),
        },
        (TocsinOutcome::Error(e), Outcome::Passed) => Verdict::Disagree {
            tocsin: format!("error: {e}"),
            prometheus: "promtool accepted the error sentinel (cannot happen)".to_string(),
        },
    }
}

/// A drawn query with the proptest value tree it came from, kept so a
/// disagreement can be shrunk.
type Drawn = (Query, Box<dyn ValueTree<Value = Query>>);

/// Draws one group's data set and distinct queries.
fn draw_group(runner: &mut TestRunner, queries: usize) -> (Vec<GenSeries>, Vec<Drawn>) {
    let series = generate::dataset()
        .new_tree(runner)
        .expect("data set strategy")
        .current();
    let strategy = generate::query().boxed();
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(queries);
    // promtool reports an entry by its expression and time, so both must
    // be unique within a file; a repeat is simply drawn again.
    for _ in 0..queries * 20 {
        if out.len() == queries {
            break;
        }
        let tree = strategy.new_tree(runner).expect("query strategy");
        let q = tree.current();
        if seen.insert(q.clone()) {
            out.push((q, tree));
        }
    }
    (series, out)
}

/// Disagreements random runs once found, minimised, as fixed cases
/// compared in every run (with their own small data set).
fn regressions() -> (Vec<GenSeries>, Vec<Query>) {
    let series = |name: &str, labels: &[(&str, &str)], v: f64| GenSeries {
        labels: std::iter::once(("__name__".to_string(), name.to_string()))
            .chain(labels.iter().map(|(n, x)| (n.to_string(), x.to_string())))
            .collect(),
        // On the sample grid of `generate` (residue 7 modulo 15 s).
        points: [7, 22, 37].map(|t| (t, Point::Value(v))).to_vec(),
    };
    let data = vec![
        series("foo", &[("a", "1")], 1.0),
        series("foo", &[("a", "2")], 5.0),
        series("many", &[("a", "1"), ("b", "x")], 1.0),
        series("many", &[("a", "1"), ("b", "y")], 9.0),
        series("one", &[("a", "1"), ("b", "z")], 5.0),
    ];
    // Not here, as Prometheus 3 and 2.42 differ by design: `foo > on ()
    // vector(3)` and `one < on (a) group_right (b) many` (3 reports the
    // ambiguous match group before the comparison filters it, as its
    // operators.test requires; 2.42 returns the surviving sample), and
    // `absent(+nonexistent{a="b"})` (promql-parser drops a unary plus, so
    // absent() takes the selector's labels where Prometheus takes none).
    let queries = [
        // Go's math.Max(NaN, +Inf) is +Inf, math.Min(NaN, -Inf) is -Inf.
        "clamp_min(vector(NaN), Inf)",
        "clamp_max(vector(NaN), -Inf)",
        "clamp(vector(NaN), Inf, Inf)",
    ]
    .map(|e| Query {
        expr: e.to_string(),
        eval_secs: 41,
    })
    .to_vec();
    (data, queries)
}

/// What the comparison of one batch needs.
struct Differ {
    promtool: PathBuf,
    engine: Engine,
    dir: PathBuf,
}

impl Differ {
    /// Evaluates `queries` in Tocsin, writes them with their data set to
    /// `file_name` and judges promtool's report. The file stays so a
    /// disagreement can be replayed by hand with `promtool test rules`.
    fn compare(
        &self,
        series: &[GenSeries],
        store: &MemStorage,
        queries: &[Query],
        file_name: &str,
    ) -> Result<(PathBuf, Vec<Verdict>), String> {
        let results: Vec<TocsinOutcome> = queries
            .iter()
            .map(|q| evaluate(&self.engine, store, q))
            .collect();
        let entries: Vec<(Query, Expected)> = queries
            .iter()
            .zip(&results)
            .map(|(q, r)| {
                let e = match r {
                    TocsinOutcome::Samples(s) => Expected::Samples(s.clone()),
                    TocsinOutcome::Error(_) | TocsinOutcome::Panic(_) => Expected::Error,
                };
                (q.clone(), e)
            })
            .collect();
        let file = self.dir.join(file_name);
        std::fs::write(&file, promtool::test_file(series, &entries))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let outcomes = promtool::run(&self.promtool, &file)
            .map_err(|e| format!("{}: {}", file.display(), e.0))?;
        let loader = Query {
            expr: promtool::LOADER_EXPR.to_string(),
            eval_secs: promtool::LOADER_SECS,
        };
        if let Some(o) = outcomes.get(&promtool::report_key(&loader)) {
            return Err(format!(
                "{}: the loading entry failed: {o:?}",
                file.display()
            ));
        }
        let verdicts = queries
            .iter()
            .zip(&results)
            .map(|(q, r)| judge(r, outcomes.get(&promtool::report_key(q))))
            .collect();
        Ok((file, verdicts))
    }

    /// Shrinks a disagreeing query with proptest's value tree, keeping the
    /// simplest variant that still disagrees; at most `budget` promtool runs.
    fn shrink(
        &self,
        series: &[GenSeries],
        store: &MemStorage,
        tree: &mut dyn ValueTree<Value = Query>,
        budget: usize,
    ) -> Option<(Query, String, String)> {
        let mut best = None;
        let mut runs = 0;
        if !tree.simplify() {
            return None;
        }
        while runs < budget {
            runs += 1;
            let q = tree.current();
            let still_disagrees =
                match self.compare(series, store, std::slice::from_ref(&q), "shrink.yaml") {
                    Ok((_, v)) => match v.into_iter().next() {
                        Some(Verdict::Disagree { tocsin, prometheus }) => {
                            best = Some((q, tocsin, prometheus));
                            true
                        }
                        _ => false,
                    },
                    Err(_) => false,
                };
            let moved = if still_disagrees {
                tree.simplify()
            } else {
                tree.complicate()
            };
            if !moved {
                break;
            }
        }
        best
    }
}

/// A fresh directory for this run's test files: several runs of this test
/// (a developer's and a workspace-wide `cargo test`) may share the target
/// directory. It is kept when something disagreed, so the files can be
/// replayed by hand with `promtool test rules`, and removed otherwise.
fn output_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("differential-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create the test-file directory")
}

/// Disagreements shrunk to a smaller expression, and promtool runs spent
/// on each: bounded so a broken evaluator does not make the test crawl.
const SHRINK_LIMIT: usize = 8;
const SHRINK_RUNS: usize = 150;

#[test]
fn tocsin_agrees_with_promtool() {
    let Some(promtool_bin) = promtool::find() else {
        println!("promtool not found: differential test not run");
        return;
    };
    let cases = env_number("TOCSIN_DIFF_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let seed = env_number("TOCSIN_DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let mut seed_bytes = [0u8; 16];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    seed_bytes[8..].copy_from_slice(&(!seed).to_le_bytes());
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::XorShift, &seed_bytes),
    );
    let dir = output_dir();
    let differ = Differ {
        promtool: promtool_bin,
        engine: Engine::new(EngineOptions::default()),
        dir: dir.path().to_path_buf(),
    };

    let (mut compared, mut agree, mut both_failed, mut exact) = (0usize, 0usize, 0usize, 0usize);
    let mut non_empty = 0usize;
    let mut failure_kinds = std::collections::BTreeMap::new();
    let mut disagreements = Vec::new();
    let mut rejected = Vec::new();
    let mut promtool_failures = Vec::new();
    let (mut group, mut drawn, mut not_compared) = (0, 0, 0);
    let mut fixed = Some(regressions());
    loop {
        // The fixed cases first, then random groups; only random queries
        // have a value tree to shrink.
        type Tree = Option<Box<dyn ValueTree<Value = Query>>>;
        let (series, queries, mut trees): (Vec<GenSeries>, Vec<Query>, Vec<Tree>) = match fixed
            .take()
        {
            Some((series, queries)) => {
                let trees = queries.iter().map(|_| None).collect();
                (series, queries, trees)
            }
            None => {
                if drawn >= cases {
                    break;
                }
                let (series, drawn_queries) =
                    draw_group(&mut runner, (cases - drawn).min(QUERIES_PER_GROUP));
                if drawn_queries.is_empty() {
                    break;
                }
                drawn += drawn_queries.len();
                let (queries, trees) = drawn_queries.into_iter().map(|(q, t)| (q, Some(t))).unzip();
                (series, queries, trees)
            }
        };
        let store = store_of(&series);
        let file_name = format!("group-{group}.yaml");
        group += 1;
        let (file, verdicts) = match differ.compare(&series, &store, &queries, &file_name) {
            Ok(v) => v,
            Err(e) => {
                promtool_failures.push(e);
                not_compared += queries.len();
                continue;
            }
        };
        for ((q, verdict), tree) in queries.iter().zip(verdicts).zip(&mut trees) {
            match verdict {
                Verdict::Agree {
                    both_failed: b,
                    exact: e,
                    samples,
                } => {
                    compared += 1;
                    agree += 1;
                    non_empty += usize::from(samples > 0);
                    if let Some((ours, theirs)) = b {
                        both_failed += 1;
                        // Grouped by the messages' openings, which name the
                        // kind of failure; the rest names series.
                        let kind = (error_kind(&ours), error_kind(&theirs));
                        *failure_kinds.entry(kind).or_insert(0usize) += 1;
                    }
                    exact += usize::from(e);
                }
                Verdict::Disagree { tocsin, prometheus } => {
                    compared += 1;
                    let mut report = format!(
                        "  expr: {}\n  at: {}s ({})\n  tocsin:     {tocsin}\n  prometheus: {prometheus}",
                        q.expr,
                        q.eval_secs,
                        file.display()
                    );
                    if disagreements.len() < SHRINK_LIMIT
                        && let Some(tree) = tree
                        && let Some((small, t, p)) =
                            differ.shrink(&series, &store, tree.as_mut(), SHRINK_RUNS)
                    {
                        report.push_str(&format!(
                            "\n  shrunk to: {}\n  at: {}s\n  tocsin:     {t}\n  prometheus: {p}",
                            small.expr, small.eval_secs
                        ));
                    }
                    disagreements.push(report);
                }
                Verdict::Rejected(e) => {
                    rejected.push(format!("  expr: {}\n  promtool: {e}", q.expr));
                }
            }
        }
    }

    for (i, d) in disagreements.iter().take(PRINT_LIMIT).enumerate() {
        println!("disagreement {}:\n{d}", i + 1);
    }
    if disagreements.len() > PRINT_LIMIT {
        println!(
            "... and {} more disagreements",
            disagreements.len() - PRINT_LIMIT
        );
    }
    for r in &rejected {
        println!("generated expression promtool cannot parse:\n{r}");
    }
    for f in &promtool_failures {
        println!("promtool failed: {f}");
    }
    if not_compared > 0 {
        println!("{not_compared} expressions not compared: their promtool run failed");
    }
    println!(
        "differential: {compared} compared, {agree} agree, {} disagree",
        disagreements.len()
    );
    println!(
        "differential: of the agreements {non_empty} with samples, {exact} bit-identical, \
         {} within tolerance (or NaN), {both_failed} errors on both sides; seed {seed:#x}",
        agree - exact - both_failed,
    );
    // Failing alike is an agreement, but whether both failed for the same
    // reason is for a human to read.
    for ((ours, theirs), n) in &failure_kinds {
        println!("differential: both failed {n}x: tocsin \"{ours}\" / prometheus \"{theirs}\"");
    }
    if disagreements.is_empty() && rejected.is_empty() && promtool_failures.is_empty() {
        dir.close().expect("remove the test-file directory");
    } else {
        println!("differential: test files kept in {}", dir.keep().display());
    }
    assert!(
        promtool_failures.is_empty(),
        "promtool failed unexpectedly (see above)"
    );
    assert!(
        rejected.is_empty(),
        "{} generated expressions do not parse in promtool",
        rejected.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {compared} expressions disagree with promtool",
        disagreements.len()
    );
}
