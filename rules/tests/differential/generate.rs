//! Random data sets and PromQL expressions for the differential test, as
//! proptest strategies.
//!
//! Invariants the comparison with promtool 2.42 depends on (Prometheus 2 and
//! 3 differ where a sample sits exactly on the left edge of a range window or
//! of the lookback window, and where a subquery step lands exactly on the
//! subquery's left edge):
//! - samples sit at `15k + 7 + j` seconds with jitter `j` in `-2..=2`, so
//!   their residue modulo 15 s is in `5..=9`;
//! - top-level evaluation times have a residue modulo 15 s in
//!   [`EVAL_RESIDUES`], never 0 and never in `5..=9`;
//! - `@` times are like top-level evaluation times, or half a second off;
//! - every range, offset, lookback (5 m) and subquery range and step is a
//!   multiple of 15 s, and subqueries do not nest; so every window edge is
//!   at a top-level residue or (inside a subquery, whose steps are multiples
//!   of 15 s) at residue 0, never on a sample, and a subquery's left edge is
//!   never one of its steps.
//!
//! The grammar sticks to what Prometheus 2.42 parses and what 3.0 did not
//! change: no `holt_winters`, no UTF-8 names,
//! no experimental functions, no label values with newlines. Where the two
//! compute differently the generator steers clear, as the function
//! concerned explains: counters extrapolated by `rate` and `increase` stay
//! far above their increments ([`counter_values`]), `atan2` results lose
//! their metric name ([`binary`]), `stddev` and `stdvar` see only finite
//! values ([`aggregation`]). `topk` and `bottomk` only see series whose
//! values cannot tie, since which of two equal series wins is an
//! implementation detail; `count_values` only sees exactly computed values
//! ([`exact_values`]).

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

/// Number of 15 s sample slots in a data set (12 minutes).
pub const SLOTS: usize = 48;
/// Spacing of sample slots, seconds.
pub const SLOT_SECS: i64 = 15;
/// Offset of a slot's nominal sample time inside its 15 s period, seconds.
pub const SLOT_PHASE: i64 = 7;
/// Allowed residues modulo 15 s of top-level evaluation times.
pub const EVAL_RESIDUES: [i64; 6] = [1, 2, 3, 11, 12, 13];

/// One input sample value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Point {
    Value(f64),
    /// A staleness marker.
    Stale,
}

/// One generated input series.
#[derive(Debug, Clone)]
pub struct GenSeries {
    /// Labels including `__name__`, in any order.
    pub labels: Vec<(String, String)>,
    /// `(seconds, point)` in strictly increasing time order.
    pub points: Vec<(i64, Point)>,
}

/// One generated query: an expression evaluated at one time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    pub expr: String,
    pub eval_secs: i64,
}

/// When a series has samples: a slot range with an optional gap and an
/// optional staleness marker, and each slot's jitter.
#[derive(Debug, Clone)]
struct Shape {
    start: usize,
    end: usize,
    gap: Option<(usize, usize)>,
    stale: Option<usize>,
    jitter: Vec<i64>,
}

impl Shape {
    fn full(jitter: Vec<i64>) -> Shape {
        Shape {
            start: 0,
            end: SLOTS,
            gap: None,
            stale: None,
            jitter,
        }
    }

    fn present(&self, slot: usize) -> bool {
        let in_gap = self.gap.is_some_and(|(g, len)| slot >= g && slot < g + len);
        slot >= self.start && slot < self.end && !in_gap
    }

    fn time(&self, slot: usize) -> i64 {
        slot as i64 * SLOT_SECS + SLOT_PHASE + self.jitter[slot]
    }

    /// Turns one value per slot into points, honouring presence and the
    /// staleness marker.
    fn points(&self, values: &[f64]) -> Vec<(i64, Point)> {
        (0..SLOTS)
            .filter(|&k| self.present(k))
            .map(|k| {
                let p = if self.stale == Some(k) {
                    Point::Stale
                } else {
                    Point::Value(values[k])
                };
                (self.time(k), p)
            })
            .collect()
    }
}

fn jitter() -> impl Strategy<Value = Vec<i64>> {
    vec(-2i64..=2, SLOTS)
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![3 => Just(0usize), 1 => 0usize..12],
        prop_oneof![3 => Just(SLOTS), 1 => 30usize..SLOTS],
        option::weighted(0.3, (5usize..40, 2usize..26)),
        option::weighted(0.15, 3usize..SLOTS),
        jitter(),
    )
        .prop_map(|(start, end, gap, stale, jitter)| Shape {
            start,
            end,
            gap,
            stale,
            jitter,
        })
}

fn labels(name: &str, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = vec![("__name__".to_string(), name.to_string())];
    v.extend(pairs.iter().map(|(n, x)| (n.to_string(), x.to_string())));
    v
}

/// `i / 64` added to every value of the `i`-th series of a metric keeps
/// the values of different series of that metric distinct (values are
/// otherwise multiples of 0.25), so `topk` never faces a tie.
fn tie_breaker(i: usize) -> f64 {
    i as f64 / 64.0
}

/// A gauge: a random walk in steps of 0.25.
fn gauge_values() -> impl Strategy<Value = Vec<f64>> {
    (-80i32..=80, vec(-8i32..=8, SLOTS)).prop_map(|(start, steps)| {
        let mut n = start;
        steps
            .into_iter()
            .map(|s| {
                n += s;
                f64::from(n) * 0.25
            })
            .collect()
    })
}

/// A gauge with occasional NaN and infinite values.
fn odd_gauge_values() -> impl Strategy<Value = Vec<f64>> {
    vec(
        prop_oneof![
            24 => (-160i32..=640).prop_map(|n| f64::from(n) * 0.25),
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
        ],
        SLOTS,
    )
}

/// A counter: increasing from at least 200, with an optional reset to
/// just above 100.
///
/// Where a counter's first sample in a window lies more than 1.1 sample
/// intervals after the window's start, Prometheus 2 extrapolates towards
/// the counter's zero point before clamping to half an interval and
/// Prometheus 3 after, which differs when the zero point lies between half
/// an interval and 1.1 intervals back. Values that stay far above the
/// increments (and a pre-reset value above 1.1 times the post-reset one)
/// keep the zero point out of that band in every window.
fn counter_values() -> impl Strategy<Value = Vec<f64>> {
    (
        0u32..400,
        vec(0u32..=12, SLOTS),
        option::weighted(0.3, 1usize..SLOTS),
    )
        .prop_map(|(start, incs, reset)| {
            let mut v = 200.0 + f64::from(start) * 0.25;
            incs.into_iter()
                .enumerate()
                .map(|(k, inc)| {
                    let step = f64::from(inc + 1) * 0.25;
                    if Some(k) == reset {
                        v = 100.0 + step;
                    } else {
                        v += step;
                    }
                    v
                })
                .collect()
        })
}

const BUCKETS: [&str; 5] = ["0.1", "0.5", "1", "5", "+Inf"];

/// Per-slot, per-bucket increments of a classic histogram.
fn histogram_increments() -> impl Strategy<Value = Vec<[u32; 5]>> {
    vec(prop::array::uniform5(0u32..=4), SLOTS)
}

/// Bucket counts start at 1000 for the reason given at [`counter_values`].
fn histogram_series(inst: &str, shape: &Shape, incs: &[[u32; 5]]) -> Vec<GenSeries> {
    let mut cumulative = [1000u32; 5];
    let mut per_bucket: Vec<Vec<f64>> = vec![Vec::with_capacity(SLOTS); BUCKETS.len()];
    for step in incs {
        let mut below = 0;
        for (b, inc) in step.iter().enumerate() {
            below += inc;
            cumulative[b] += below;
            per_bucket[b].push(f64::from(cumulative[b]));
        }
    }
    // All buckets of one histogram share the shape, as one scrape writes
    // them all; a staleness marker in the middle of a histogram is left out.
    let shape = Shape {
        stale: None,
        ..shape.clone()
    };
    BUCKETS
        .iter()
        .zip(per_bucket)
        .map(|(le, values)| GenSeries {
            labels: labels(
                "req_latency_seconds_bucket",
                &[("inst", inst), ("job", "j0"), ("le", le)],
            ),
            points: shape.points(&values),
        })
        .collect()
}

const GAUGE_KEYS: [(&str, &str); 6] = [
    ("i0", "j0"),
    ("i1", "j0"),
    ("i2", "j0"),
    ("i0", "j1"),
    ("i1", "j1"),
    ("i2", "j1"),
];
const COUNTER_KEYS: [(&str, &str, &str); 5] = [
    ("i0", "j0", "200"),
    ("i0", "j0", "500"),
    ("i1", "j0", "200"),
    ("i1", "j0", "500"),
    ("i2", "j1", "200"),
];

/// A data set: gauges, counters, a classic histogram, an info metric and
/// a gauge with NaN and infinite values.
pub fn dataset() -> impl Strategy<Value = Vec<GenSeries>> {
    let gauges = (
        subsequence(GAUGE_KEYS.to_vec(), 2..=5),
        vec((shape(), gauge_values()), 5),
    );
    let counters = (
        subsequence(COUNTER_KEYS.to_vec(), 2..=4),
        vec((shape(), counter_values()), 4),
    );
    let histograms = (
        subsequence(vec!["i0", "i1"], 1..=2),
        vec((shape(), histogram_increments()), 2),
    );
    let info = (
        vec(select(vec!["t0", "t1"]), 3),
        option::weighted(0.15, select(vec!["i0", "i1", "i2"])),
        jitter(),
    );
    let odd = (
        subsequence(vec!["i0", "i1"], 1..=2),
        vec((shape(), odd_gauge_values()), 2),
    );
    (gauges, counters, histograms, info, odd).prop_map(
        |(gauges, counters, histograms, info, odd)| {
            let mut out = Vec::new();
            for (i, ((inst, job), (shape, values))) in gauges.0.iter().zip(gauges.1).enumerate() {
                let values: Vec<f64> = values.iter().map(|v| v + tie_breaker(i)).collect();
                out.push(GenSeries {
                    labels: labels("node_gauge", &[("inst", inst), ("job", job)]),
                    points: shape.points(&values),
                });
            }
            for (i, ((inst, job, code), (shape, values))) in
                counters.0.iter().zip(counters.1).enumerate()
            {
                // The tie breaker goes into every increment, so rates of
                // different series differ too.
                let values: Vec<f64> = values
                    .iter()
                    .enumerate()
                    .map(|(k, v)| v + tie_breaker(i) * (k + 1) as f64)
                    .collect();
                out.push(GenSeries {
                    labels: labels(
                        "http_requests_total",
                        &[("inst", inst), ("job", job), ("code", code)],
                    ),
                    points: shape.points(&values),
                });
            }
            for (inst, (shape, incs)) in histograms.0.iter().zip(histograms.1) {
                out.extend(histogram_series(inst, &shape, &incs));
            }
            let (teams, duplicate, jitter) = info;
            let shape = Shape::full(jitter);
            let ones = vec![1.0; SLOTS];
            for (inst, team) in ["i0", "i1", "i2"].iter().zip(&teams) {
                out.push(GenSeries {
                    labels: labels("inst_info", &[("inst", inst), ("team", team)]),
                    points: shape.points(&ones),
                });
            }
            // A second team for one instance makes `group_left` joins on
            // `inst` ambiguous: both engines must then fail.
            if let Some(inst) = duplicate {
                out.push(GenSeries {
                    labels: labels("inst_info", &[("inst", inst), ("team", "t9")]),
                    points: shape.points(&ones),
                });
            }
            for (inst, (shape, values)) in odd.0.iter().zip(odd.1) {
                out.push(GenSeries {
                    labels: labels("temp_celsius", &[("inst", inst)]),
                    points: shape.points(&values),
                });
            }
            out
        },
    )
}

/// A top-level evaluation time, seconds.
pub fn eval_secs() -> impl Strategy<Value = i64> {
    (2i64..=60, select(EVAL_RESIDUES.to_vec())).prop_map(|(k, r)| k * SLOT_SECS + r)
}

/// A query: an expression and its evaluation time.
pub fn query() -> impl Strategy<Value = Query> {
    let expr = prop_oneof![
        2 => vector_expr(1),
        3 => vector_expr(2),
        2 => vector_expr(3),
        1 => scalar_expr(vector_expr(1)),
    ];
    (expr, eval_secs()).prop_map(|(expr, eval_secs)| Query { expr, eval_secs })
}

fn pick(items: &[&'static str]) -> BoxedStrategy<String> {
    select(items.to_vec()).prop_map(str::to_string).boxed()
}

const RANGES: [&str; 6] = ["30s", "1m", "90s", "2m", "5m", "10m"];
const OFFSETS: [&str; 4] = ["15s", "1m", "2m30s", "5m"];
const SUBQUERY_RANGES: [&str; 3] = ["1m", "2m", "5m"];
const SUBQUERY_STEPS: [&str; 3] = ["15s", "30s", "1m"];

const NEGATIVE_OFFSETS: [&str; 3] = ["-15s", "-1m", "-5m"];

/// A time for the `@` modifier: like a top-level evaluation time, or
/// half a second off one (never on a sample, which sit on whole seconds).
fn at_time() -> BoxedStrategy<String> {
    prop_oneof![
        3 => eval_secs().prop_map(|t| t.to_string()),
        1 => eval_secs().prop_map(|t| format!("{t}.5")),
    ]
    .boxed()
}

/// Where an expression is generated: subquery bodies differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Top,
    InSubquery,
}

/// The modifiers of a selector or subquery: `offset` (negative too) and
/// `@`. `@ start()` and `@ end()` are the evaluation time of an instant
/// query.
///
/// No `@` inside a subquery: there promtool 2.42 gives an `@`-pinned
/// range selector under `predict_linear` (the one range function not
/// treated as step-invariant) a value at the subquery's first step only:
/// `count_over_time((predict_linear(foo[30s] @ 31, 60))[2m:15s])` is 1
/// where `count_over_time((foo @ 31)[2m:15s])` is 8.
fn modifiers(ctx: Ctx) -> BoxedStrategy<String> {
    if ctx == Ctx::InSubquery {
        return prop_oneof![
            14 => Just(String::new()),
            3 => pick(&OFFSETS).prop_map(|o| format!(" offset {o}")),
            1 => pick(&NEGATIVE_OFFSETS).prop_map(|o| format!(" offset {o}")),
        ]
        .boxed();
    }
    prop_oneof![
        14 => Just(String::new()),
        3 => pick(&OFFSETS).prop_map(|o| format!(" offset {o}")),
        1 => pick(&NEGATIVE_OFFSETS).prop_map(|o| format!(" offset {o}")),
        1 => at_time().prop_map(|t| format!(" @ {t}")),
        1 => pick(&[" @ start()", " @ end()"]),
        1 => (at_time(), pick(&OFFSETS)).prop_map(|(t, o)| format!(" @ {t} offset {o}")),
    ]
    .boxed()
}

fn gauge_selector() -> BoxedStrategy<String> {
    pick(&[
        "node_gauge",
        "node_gauge",
        r#"node_gauge{inst="i0"}"#,
        r#"node_gauge{inst!="i1"}"#,
        r#"node_gauge{job="j1"}"#,
        r#"node_gauge{inst=~"i[01]"}"#,
        r#"node_gauge{job!~"j0"}"#,
        r#"node_gauge{inst=~"i.*", job="j0"}"#,
        r#"node_gauge{inst="i9"}"#,
    ])
}

fn counter_selector() -> BoxedStrategy<String> {
    pick(&[
        "http_requests_total",
        "http_requests_total",
        r#"http_requests_total{code="500"}"#,
        r#"http_requests_total{code=~"2.."}"#,
        r#"http_requests_total{inst!="i0"}"#,
        r#"http_requests_total{code!~"5..", job="j0"}"#,
    ])
}

fn odd_selector() -> BoxedStrategy<String> {
    pick(&["temp_celsius", r#"temp_celsius{inst="i1"}"#])
}

fn any_selector() -> BoxedStrategy<String> {
    prop_oneof![
        5 => gauge_selector(),
        4 => counter_selector(),
        2 => odd_selector(),
        1 => pick(&["inst_info", r#"inst_info{team="t0"}"#]),
        1 => pick(&[
            "req_latency_seconds_bucket",
            r#"req_latency_seconds_bucket{le="1"}"#,
        ]),
        1 => pick(&[
            r#"{__name__=~"node_gauge|temp_celsius"}"#,
            r#"{__name__=~"node_.+", inst="i0"}"#,
        ]),
    ]
    .boxed()
}

fn instant_selector(ctx: Ctx) -> BoxedStrategy<String> {
    (any_selector(), modifiers(ctx))
        .prop_map(|(s, o)| format!("{s}{o}"))
        .boxed()
}

fn range_selector(selector: BoxedStrategy<String>, ctx: Ctx) -> BoxedStrategy<String> {
    (selector, pick(&RANGES), modifiers(ctx))
        .prop_map(|(s, r, o)| format!("{s}[{r}]{o}"))
        .boxed()
}

/// Range functions extrapolating a counter: only given counters (see
/// [`counter_values`]).
const EXTRAPOLATING_FNS: [&str; 2] = ["rate", "increase"];
/// Range functions for counters that do not extrapolate; they work on any
/// series.
const COUNTER_FNS: [&str; 2] = ["irate", "resets"];
/// Range functions for gauges.
const GAUGE_FNS: [&str; 15] = [
    "delta",
    "idelta",
    "deriv",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "present_over_time",
    "absent_over_time",
    "resets",
];

fn quantile_param() -> BoxedStrategy<String> {
    prop_oneof![
        8 => pick(&["0", "0.1", "0.25", "0.5", "0.75", "0.9", "0.99", "1"]),
        1 => pick(&["-0.5", "1.5"]),
    ]
    .boxed()
}

/// A range function applied to a range vector: `range` for the functions
/// that take any series, `counters` for those that extrapolate a counter.
fn range_call(
    range: BoxedStrategy<String>,
    counters: BoxedStrategy<String>,
) -> BoxedStrategy<String> {
    prop_oneof![
        2 => (pick(&COUNTER_FNS), range.clone()).prop_map(|(f, r)| format!("{f}({r})")),
        6 => (pick(&GAUGE_FNS), range.clone()).prop_map(|(f, r)| format!("{f}({r})")),
        1 => (quantile_param(), range.clone())
            .prop_map(|(q, r)| format!("quantile_over_time({q}, {r})")),
        1 => (range, pick(&["60", "-30", "0"]))
            .prop_map(|(r, t)| format!("predict_linear({r}, {t})")),
        3 => (pick(&EXTRAPOLATING_FNS), counters).prop_map(|(f, r)| format!("{f}({r})")),
    ]
    .boxed()
}

/// A range vector of counter values: stored counters, or a subquery that
/// keeps them counters.
fn counter_range(ctx: Ctx) -> BoxedStrategy<String> {
    if ctx == Ctx::InSubquery {
        return range_selector(counter_selector(), ctx);
    }
    let body = prop_oneof![
        2 => counter_selector(),
        1 => (pick(&["sum by (inst)", "max by (code)", "sum"]), counter_selector())
            .prop_map(|(a, s)| format!("{a} ({s})")),
    ];
    prop_oneof![
        4 => range_selector(counter_selector(), ctx),
        1 => (body, pick(&SUBQUERY_RANGES), pick(&SUBQUERY_STEPS), modifiers(ctx))
            .prop_map(|(e, r, s, o)| format!("({e})[{r}:{s}]{o}")),
    ]
    .boxed()
}

/// A range vector over stored series of any kind.
fn stored_range(ctx: Ctx) -> BoxedStrategy<String> {
    prop_oneof![
        3 => range_selector(counter_selector(), ctx),
        3 => range_selector(gauge_selector(), ctx),
        1 => range_selector(odd_selector(), ctx),
        1 => range_selector(any_selector(), ctx),
    ]
    .boxed()
}

/// An instant-vector expression without subqueries: what a subquery wraps,
/// since subqueries do not nest (see the module comment).
fn subquery_body() -> BoxedStrategy<String> {
    prop_oneof![
        3 => instant_selector(Ctx::InSubquery),
        3 => range_call(stored_range(Ctx::InSubquery), counter_range(Ctx::InSubquery)),
        1 => (pick(&["sum", "max", "count"]), grouping(),
              range_call(stored_range(Ctx::InSubquery), counter_range(Ctx::InSubquery)))
            .prop_map(|(a, g, e)| format!("{a}{g} ({e})")),
        1 => (instant_selector(Ctx::InSubquery), pick(&["* 2", "> 0", "+ 0.5"]))
            .prop_map(|(e, op)| format!("({e}) {op}")),
    ]
    .boxed()
}

fn subquery() -> BoxedStrategy<String> {
    (
        subquery_body(),
        pick(&SUBQUERY_RANGES),
        pick(&SUBQUERY_STEPS),
        modifiers(Ctx::Top),
    )
        .prop_map(|(e, r, s, o)| format!("({e})[{r}:{s}]{o}"))
        .boxed()
}

fn grouping() -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(String::new()),
        6 => pick(&[
            " by (inst)",
            " by (job)",
            " by (inst, job)",
            " by (code)",
            " by (team)",
            " by (le)",
            " by ()",
            " without (inst)",
            " without (code)",
            " without (job, code)",
            " without ()",
        ]),
    ]
    .boxed()
}

/// A literal number.
fn literal() -> BoxedStrategy<String> {
    prop_oneof![
        12 => pick(&["0", "1", "2", "0.5", "-1", "3.25", "10", "-0.25", "100"]),
        // Other spellings the lexer must read.
        2 => pick(&["1e3", "0x10", ".5", "2.5e-1", "1E2"]),
        1 => pick(&["Inf", "-Inf", "NaN"]),
    ]
    .boxed()
}

const SCALAR_ARITH_OPS: [&str; 6] = ["+", "-", "*", "/", "%", "^"];

/// An unparenthesised chain of literals and operators (with unary
/// minus), so both parsers' precedence and associativity are compared:
/// `^` is right-associative and binds tighter than unary minus.
fn precedence_chain() -> BoxedStrategy<String> {
    let term = (any::<bool>(), pick(&["1", "2", "3", "0.5", "4", "10"]))
        .prop_map(|(neg, l)| if neg { format!("-{l}") } else { l });
    (term.clone(), vec((pick(&SCALAR_ARITH_OPS), term), 2..=4))
        .prop_map(|(first, rest)| {
            let mut out = first;
            for (op, t) in rest {
                out.push_str(&format!(" {op} {t}"));
            }
            out
        })
        .boxed()
}

/// A scalar expression built on `inner` instant vectors.
fn scalar_expr(inner: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        6 => literal(),
        2 => inner.prop_map(|e| format!("scalar({e})")),
        1 => pick(&["time()", "pi()"]),
        1 => precedence_chain(),
        1 => (literal(), pick(&SCALAR_ARITH_OPS), literal())
            .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
        1 => (literal(), pick(&["==", "!=", ">", "<", ">=", "<="]), literal())
            .prop_map(|(a, op, b)| format!("({a} {op} bool {b})")),
    ]
    .boxed()
}

/// Expressions whose result values cannot tie across series (see
/// [`tie_breaker`]), for `topk` and `bottomk`.
fn tie_free() -> BoxedStrategy<String> {
    prop_oneof![
        2 => pick(&["node_gauge", r#"node_gauge{job="j0"}"#]),
        1 => pick(&["rate(http_requests_total[5m])", "increase(http_requests_total[10m])"]),
    ]
    .boxed()
}

/// Leaves: selectors, range functions, and the odd fixed-shape call.
fn leaf_vector() -> BoxedStrategy<String> {
    prop_oneof![
        4 => instant_selector(Ctx::Top),
        6 => range_call(stored_range(Ctx::Top), counter_range(Ctx::Top)),
        2 => range_call(subquery(), counter_range(Ctx::Top)),
        1 => gauge_selector().prop_map(|s| format!("timestamp({s})")),
        1 => literal().prop_map(|l| format!("vector({l})")),
        1 => histogram_quantile(),
        1 => pick(&[
            r#"absent(nonexistent_metric{job="j7"})"#,
            r#"absent(node_gauge{inst="i0"})"#,
            r#"absent(node_gauge{inst=~"i9"})"#,
            r#"absent_over_time(nonexistent_metric{job="j7", inst=~"i.*"}[5m])"#,
        ]),
    ]
    .boxed()
}

fn histogram_quantile() -> BoxedStrategy<String> {
    let buckets = prop_oneof![
        1 => Just("req_latency_seconds_bucket".to_string()),
        2 => pick(&RANGES).prop_map(|r| format!("rate(req_latency_seconds_bucket[{r}])")),
        2 => (pick(&["sum by (le)", "sum by (le, inst)", "sum without (job)"]), pick(&RANGES))
            .prop_map(|(a, r)| format!("{a} (increase(req_latency_seconds_bucket[{r}]))")),
    ];
    (quantile_param(), buckets)
        .prop_map(|(q, b)| format!("histogram_quantile({q}, {b})"))
        .boxed()
}

const MATH_FNS: [&str; 21] = [
    "abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "asin", "acos", "atan",
    "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "deg", "rad", "round",
];
const PERIODIC_FNS: [&str; 3] = ["sin", "cos", "tan"];

const TIME_FNS: [&str; 9] = [
    "minute",
    "hour",
    "day_of_week",
    "day_of_month",
    "day_of_year",
    "days_in_month",
    "month",
    "year",
    "timestamp",
];

/// Date functions, of the evaluation time or of finite values read as
/// seconds since the epoch (negative ones and fractions included; a NaN
/// or infinite time is undefined in Prometheus 2).
fn time_call() -> BoxedStrategy<String> {
    let finite = prop_oneof![
        2 => gauge_selector(),
        1 => gauge_selector().prop_map(|s| format!("timestamp({s})")),
        1 => counter_selector().prop_map(|s| format!("{s} * 3600")),
    ];
    prop_oneof![
        1 => pick(&TIME_FNS[..8]).prop_map(|f| format!("{f}()")),
        3 => (pick(&TIME_FNS[..8]), finite).prop_map(|(f, e)| format!("{f}({e})")),
    ]
    .boxed()
}

/// `label_join`, `sort`, `sort_desc` and unary plus: label plumbing and
/// no-ops whose metric-name handling is compared.
fn label_call(inner: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        2 => (inner.clone(), pick(&["new", "inst", "job"]), pick(&["-", "", ","]),
              pick(&[r#""inst", "job""#, r#""__name__""#, r#""job", "absent_label", "inst""#]))
            .prop_map(|(e, dst, sep, src)| format!(r#"label_join({e}, "{dst}", "{sep}", {src})"#)),
        1 => (pick(&["sort", "sort_desc"]), inner.clone()).prop_map(|(f, e)| format!("{f}({e})")),
        1 => inner.prop_map(|e| format!("+({e})")),
    ]
    .boxed()
}

/// An unparenthesised chain of vector atoms and operators (set operators
/// only between vectors, as the grammar requires).
fn vector_chain() -> BoxedStrategy<String> {
    let vector_atom = prop_oneof![
        3 => instant_selector(Ctx::Top),
        2 => range_call(stored_range(Ctx::Top), counter_range(Ctx::Top)),
    ]
    .boxed();
    let link = prop_oneof![
        3 => (pick(&["+", "-", "*", "/"]), prop_oneof![3 => vector_atom.clone(), 1 => literal()]),
        1 => (pick(&["> bool", "<", "==", "and", "or", "unless"]), vector_atom),
    ];
    (gauge_selector(), vec(link, 1..=3))
        .prop_map(|(first, rest)| {
            let mut out = first;
            for (op, a) in rest {
                out.push_str(&format!(" {op} {a}"));
            }
            out
        })
        .boxed()
}

fn math_call(inner: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        4 => (pick(&MATH_FNS), inner.clone()).prop_map(|(f, e)| format!("{f}({e})")),
        // A periodic function of a large argument turns the argument's
        // last bit (where Go's and Rust's `exp`, `sinh` or `pow` may differ
        // by an ulp) into the result's first: arguments stay small.
        2 => (pick(&PERIODIC_FNS), inner.clone())
            .prop_map(|(f, e)| format!("{f}(clamp({e}, -1000, 1000))")),
        1 => (inner.clone(), pick(&["0.5", "2", "0.1"]))
            .prop_map(|(e, n)| format!("round({e}, {n})")),
        1 => (inner.clone(), pick(&["-1, 5", "0, 0", "2, 1", "-10, 10"]))
            .prop_map(|(e, b)| format!("clamp({e}, {b})")),
        1 => (pick(&["clamp_min", "clamp_max"]), inner.clone(), literal())
            .prop_map(|(f, e, l)| format!("{f}({e}, {l})")),
        1 => inner.prop_map(|e| format!("-({e})")),
    ]
    .boxed()
}

fn aggregation(inner: BoxedStrategy<String>) -> BoxedStrategy<String> {
    let simple = pick(&["sum", "avg", "min", "max", "count", "group"]);
    prop_oneof![
        7 => (simple, grouping(), inner.clone()).prop_map(|(a, g, e)| format!("{a}{g} ({e})")),
        // Prometheus 2 gives 0 for a group of one NaN or infinite sample,
        // Prometheus 3 NaN: only finite samples are given.
        2 => (pick(&["stddev", "stdvar"]), grouping(), inner.clone())
            .prop_map(|(a, g, e)| format!("{a}{g} (({e}) < Inf > -Inf)")),
        // The trailing form of the grouping clause.
        1 => (pick(&["sum", "max"]), inner.clone(), pick(&[" by (inst)", " without (job)"]))
            .prop_map(|(a, e, g)| format!("{a}({e}){g}")),
        2 => (pick(&["topk", "bottomk"]), pick(&["1", "2", "3"]), grouping(), tie_free())
            .prop_map(|(a, k, g, e)| format!("{a}{g} ({k}, {e})")),
        2 => (quantile_param(), grouping(), inner.clone())
            .prop_map(|(q, g, e)| format!("quantile{g} ({q}, {e})")),
        1 => (grouping(), exact_values(inner))
            .prop_map(|(g, e)| format!(r#"count_values{g} ("value", {e})"#)),
    ]
    .boxed()
}

/// Expressions whose values are computed exactly (or rounded to a
/// multiple of 0.25), for `count_values`: its output labels are the values'
/// text, where a one-ulp difference between Go's and Rust's `pow`, `exp`
/// or summation order would otherwise show as different series.
fn exact_values(inner: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        2 => instant_selector(Ctx::Top),
        1 => (pick(&["changes", "resets", "count_over_time", "last_over_time"]), stored_range(Ctx::Top))
            .prop_map(|(f, r)| format!("{f}({r})")),
        1 => gauge_selector().prop_map(|s| format!("timestamp({s})")),
        2 => inner.prop_map(|e| format!("round({e}, 0.25)")),
    ]
    .boxed()
}

const ARITH_OPS: [&str; 7] = ["+", "-", "*", "/", "%", "^", "atan2"];
const COMPARISON_OPS: [&str; 6] = ["==", "!=", ">", "<", ">=", "<="];

/// Vector matching for arithmetic and comparisons, including one-to-many;
/// the data keep most joins valid, and where they are not both engines
/// must fail.
fn matching() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just(String::new()),
        4 => pick(&[
            " on (inst)",
            " on (inst, job)",
            " ignoring (code)",
            " ignoring (job)",
            " on ()",
        ]),
        3 => pick(&[
            " on (inst) group_left ()",
            " on (inst) group_left (team)",
            " ignoring (code) group_left ()",
            " ignoring (code) group_right ()",
            " on (inst) group_right (job)",
        ]),
    ]
    .boxed()
}

/// The left operand of a binary operator: `%` is the remainder of the
/// left operand's every bit, so one ulp between Go's and Rust's `exp` or
/// `sinh` of a large value changes it entirely. Its vector operand is
/// clamped to where an ulp is far below the tolerance.
fn remainder_operand(op: &str, operand: String) -> String {
    if op == "%" {
        format!("clamp({operand}, -1e6, 1e6)")
    } else {
        operand
    }
}

/// A filtering comparison under `on`/`ignoring` becomes its `bool` form.
/// Prometheus 3 reports an ambiguous match group (two samples of the
/// "many" side alike once matched) before the comparison filters samples
/// away; 2.42 only for samples the comparison keeps, so the two disagree
/// whenever the filter leaves at most one sample of such a group.
fn comparison_with_matching(op: String, matching: &str) -> String {
    if !matching.is_empty() && COMPARISON_OPS.contains(&op.as_str()) {
        format!("{op} bool")
    } else {
        op
    }
}

fn binary(inner: BoxedStrategy<String>) -> BoxedStrategy<String> {
    let scalar = scalar_expr(inner.clone());
    let arith = pick(&ARITH_OPS);
    let comparison = (pick(&COMPARISON_OPS), any::<bool>())
        .prop_map(|(op, b)| if b { format!("{op} bool") } else { op })
        .boxed();
    let op = prop_oneof![3 => arith, 2 => comparison].boxed();
    // With a scalar on the left, which cannot be clamped, no `%`.
    let op_after_scalar = op
        .clone()
        .prop_map(|op| if op == "%" { "-".to_string() } else { op });
    let binary = prop_oneof![
        4 => (inner.clone(), op.clone(), matching(), inner.clone())
            .prop_map(|(a, op, m, b)| {
                let op = comparison_with_matching(op, &m);
                format!("({}) {op}{m} ({b})", remainder_operand(&op, a))
            }),
        // Joins that usually match: an aggregate by instance against
        // anything carrying `inst`, and an info metric brought in.
        2 => (inner.clone(), op.clone(), pick(&["sum", "max", "avg"]), inner.clone())
            .prop_map(|(a, op, agg, b)| {
                let a = remainder_operand(&op, a);
                format!("({a}) {op} on (inst) group_left {agg} by (inst) ({b})")
            }),
        1 => (inner.clone(), pick(&["*", "+", "> bool", "== bool"]))
            .prop_map(|(a, op)| format!("({a}) {op} on (inst) group_left (team) inst_info")),
        3 => (inner.clone(), pick(&["and", "or", "unless"]),
              pick(&["", " on (inst)", " ignoring (job)", " on ()", " ignoring (code)"]),
              inner.clone())
            .prop_map(|(a, op, m, b)| format!("({a}) {op}{m} ({b})")),
        3 => (inner.clone(), op, scalar.clone())
            .prop_map(|(a, op, s)| format!("({}) {op} {s}", remainder_operand(&op, a))),
        2 => (scalar, op_after_scalar, inner).prop_map(|(s, op, a)| format!("{s} {op} ({a})")),
    ];
    // Prometheus 2 keeps the metric name through `atan2`, Prometheus 3
    // drops it as for the other arithmetic operators: a double negation
    // (exact, and dropping the name in both) makes the results comparable.
    binary
        .prop_map(|e| {
            if e.contains(" atan2") {
                format!("-(-({e}))")
            } else {
                e
            }
        })
        .boxed()
}

fn label_replace(inner: BoxedStrategy<String>) -> BoxedStrategy<String> {
    (
        inner,
        pick(&["inst", "new", "job", "code"]),
        pick(&["$1", "x-$1", "", "${1}y", "fixed"]),
        pick(&["inst", "job", "__name__", "absent_label"]),
        pick(&["i(.*)", "(.*)", "j([01])", ".*", "x", "(node)_gauge", ""]),
    )
        .prop_map(|(e, dst, repl, src, re)| {
            format!(r#"label_replace({e}, "{dst}", "{repl}", "{src}", "{re}")"#)
        })
        .boxed()
}

/// An instant-vector expression of nesting depth up to `depth`.
pub fn vector_expr(depth: u32) -> BoxedStrategy<String> {
    let leaf = leaf_vector();
    if depth == 0 {
        return leaf;
    }
    let inner = vector_expr(depth - 1);
    prop_oneof![
        3 => leaf,
        4 => aggregation(inner.clone()),
        4 => binary(inner.clone()),
        2 => math_call(inner.clone()),
        1 => label_replace(inner.clone()),
        1 => label_call(inner.clone()),
        1 => time_call(),
        1 => vector_chain(),
        1 => inner.clone().prop_map(|e| format!("absent({e})")),
        1 => scalar_expr(inner).prop_map(|s| format!("vector({s})")),
    ]
    .boxed()
}
