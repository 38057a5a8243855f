//! PromQL aggregation operators (`sum`, `avg`, `min`, `max`, `count`,
//! `group`, `stddev`, `stdvar`, `topk`, `bottomk`, `quantile`,
//! `count_values`, `limitk`, `limit_ratio`) over one step's instant vector.
//!
//! CONTRACT between the evaluator and this module: the evaluator evaluates
//! the operand and the parameter for the step and calls [`aggregate`].
//!
//! The arithmetic follows Prometheus 3's `engine.go` step for step, because
//! results are compared with Prometheus to the last bit in places: Kahan
//! (Neumaier) compensated sums, the switch from direct to incremental mean
//! when a running sum would overflow, Welford's update for `stddev`, the
//! exact order of Go's `container/heap` and `sort.Sort` for `topk`/`bottomk`
//! (they decide which of several equal values survive and the order they
//! are returned in), and `limit_ratio`'s choice by the xxHash64 of the
//! series' labels in Prometheus' own encoding.
//!
//! Output labels: grouping operators return the `by` labels, or the input
//! labels minus the `without` labels and minus `__name__`; `topk`,
//! `bottomk`, `limitk` and `limit_ratio` return input samples unchanged.

mod gosort;

use std::collections::HashMap;

use promql_parser::parser::LabelModifier;

use super::Annotations;
use super::eval::EvalError;
use super::value::{InstantSample, Labels, METRIC_NAME, Vector, format_value};

/// The evaluated parameter of `topk`, `bottomk`, `quantile`, `limitk`,
/// `limit_ratio` (a scalar) or `count_values` (a string).
#[derive(Debug, Clone)]
pub enum AggParam {
    Scalar(f64),
    String(String),
}

/// Aggregates `input` with the operator named `op` (as promql-parser's
/// token display names it, e.g. "sum", "count_values"), grouping by the
/// `by`/`without` modifier. Output samples carry `eval_ts`. Warnings and
/// infos use Prometheus' wording.
pub fn aggregate(
    op: &str,
    param: Option<AggParam>,
    modifier: Option<&LabelModifier>,
    input: Vector,
    eval_ts: i64,
    annotations: &mut Annotations,
) -> Result<Vector, EvalError> {
    let grouping = Grouping::new(modifier);
    match op {
        "count_values" => {
            let label = match param {
                Some(AggParam::String(s)) => s,
                _ => return Err(param_error(op, "a string")),
            };
            count_values(&grouping, &label, input, eval_ts)
        }
        "topk" | "bottomk" | "limitk" => {
            let k = scalar_param(op, param)?;
            let k = k_from_param(k)?;
            Ok(aggregate_k(op, k, &grouping, input, eval_ts))
        }
        "limit_ratio" => {
            let r = scalar_param(op, param)?;
            if r.is_nan() {
                return Err(EvalError::Eval("Ratio value is NaN".into()));
            }
            if r == 0.0 {
                return Ok(Vec::new());
            }
            let ratio = r.clamp(-1.0, 1.0);
            if ratio != r {
                annotations.warn(format!(
                    "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
                    go_fmt_g(r),
                    go_fmt_g(ratio)
                ));
            }
            Ok(limit_ratio(ratio, &grouping, input, eval_ts))
        }
        "quantile" => {
            let q = scalar_param(op, param)?;
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                annotations.warn(format!(
                    "PromQL warning: quantile value should be between 0 and 1, got {}",
                    go_fmt_g(q)
                ));
            }
            Ok(aggregate_simple(
                SimpleOp::Quantile(q),
                &grouping,
                input,
                eval_ts,
            ))
        }
        _ => {
            let simple = match op {
                "sum" => SimpleOp::Sum,
                "avg" => SimpleOp::Avg,
                "min" => SimpleOp::Min,
                "max" => SimpleOp::Max,
                "count" => SimpleOp::Count,
                "group" => SimpleOp::Group,
                "stddev" => SimpleOp::Stddev,
                "stdvar" => SimpleOp::Stdvar,
                other => {
                    return Err(EvalError::Eval(format!(
                        "unknown aggregation operator {other:?}"
                    )));
                }
            };
            Ok(aggregate_simple(simple, &grouping, input, eval_ts))
        }
    }
}

fn param_error(op: &str, what: &str) -> EvalError {
    EvalError::Eval(format!("aggregation {op} expects {what} as its parameter"))
}

fn scalar_param(op: &str, param: Option<AggParam>) -> Result<f64, EvalError> {
    match param {
        Some(AggParam::Scalar(v)) => Ok(v),
        _ => Err(param_error(op, "a scalar")),
    }
}

/// Validates the `k` of `topk`, `bottomk` and `limitk` with Prometheus'
/// messages; `None` means "k < 1": the result is empty.
fn k_from_param(v: f64) -> Result<Option<usize>, EvalError> {
    if v.is_nan() {
        return Err(EvalError::Eval("Parameter value is NaN".into()));
    }
    // Go's int64 conversion is undefined outside these bounds, hence the
    // errors (9223372036854774784 is the largest float below 2^63).
    if v <= i64::MIN as f64 {
        return Err(EvalError::Eval(format!(
            "Scalar value {} underflows int64",
            go_fmt_g(v)
        )));
    }
    if v > 9_223_372_036_854_774_784.0 {
        return Err(EvalError::Eval(format!(
            "Scalar value {} overflows int64",
            go_fmt_g(v)
        )));
    }
    let k = v.trunc() as i64;
    if k < 1 {
        return Ok(None);
    }
    Ok(Some(usize::try_from(k).unwrap_or(usize::MAX)))
}

/// The `by (…)` / `without (…)` clause; no clause groups everything.
enum Grouping {
    By(Vec<String>),
    Without(Vec<String>),
}

impl Grouping {
    fn new(modifier: Option<&LabelModifier>) -> Self {
        match modifier {
            None => Grouping::By(Vec::new()),
            Some(LabelModifier::Include(l)) => Grouping::By(l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => Grouping::Without(l.labels.clone()),
        }
    }

    /// The output labels of the group `labels` falls in; equal output
    /// labels mean the same group (as Prometheus' grouping hash).
    fn group_labels(&self, labels: &Labels) -> Labels {
        match self {
            Grouping::By(names) => {
                if names.is_empty() {
                    Labels::empty()
                } else {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    labels.keep_only(&names)
                }
            }
            Grouping::Without(names) => {
                let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
                names.push(METRIC_NAME);
                labels.without(&names)
            }
        }
    }
}

/// Assigns each input sample to a group, in first-seen order.
fn assign_groups(grouping: &Grouping, input: &[InstantSample]) -> (Vec<Labels>, Vec<usize>) {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups = Vec::new();
    let mut of_sample = Vec::with_capacity(input.len());
    for s in input {
        let key = grouping.group_labels(&s.labels);
        let next = groups.len();
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(key);
            next
        });
        of_sample.push(i);
    }
    (groups, of_sample)
}

#[derive(Debug, Clone, Copy)]
enum SimpleOp {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    Group,
    Stddev,
    Stdvar,
    Quantile(f64),
}

/// One group's running state (Prometheus' `groupedAggregation`).
#[derive(Default)]
struct GroupState {
    seen: bool,
    float_value: f64,
    float_mean: f64,
    kahan_c: f64,
    count: f64,
    incremental_mean: bool,
    values: Vec<f64>,
}

fn aggregate_simple(op: SimpleOp, grouping: &Grouping, input: Vector, eval_ts: i64) -> Vector {
    let (labels, of_sample) = assign_groups(grouping, &input);
    let mut states: Vec<GroupState> = labels.iter().map(|_| GroupState::default()).collect();
    for (s, &gi) in input.iter().zip(&of_sample) {
        let f = s.v;
        let g = &mut states[gi];
        if !g.seen {
            *g = GroupState {
                seen: true,
                float_value: f,
                float_mean: f,
                count: 1.0,
                ..GroupState::default()
            };
            match op {
                SimpleOp::Stddev | SimpleOp::Stdvar => {
                    g.float_value = if f.is_nan() || f.is_infinite() {
                        f64::NAN
                    } else {
                        0.0
                    };
                }
                SimpleOp::Quantile(_) => g.values.push(f),
                SimpleOp::Group => g.float_value = 1.0,
                _ => {}
            }
            continue;
        }
        match op {
            SimpleOp::Sum => {
                (g.float_value, g.kahan_c) = kahan_sum_inc(f, g.float_value, g.kahan_c);
            }
            SimpleOp::Avg => {
                g.count += 1.0;
                if !g.incremental_mean {
                    let (v, c) = kahan_sum_inc(f, g.float_value, g.kahan_c);
                    if !v.is_infinite() {
                        g.float_value = v;
                        g.kahan_c = c;
                        continue;
                    }
                    // The direct sum would overflow: continue with the
                    // incremental mean, as Prometheus does.
                    g.incremental_mean = true;
                    g.float_mean = g.float_value / (g.count - 1.0);
                    g.kahan_c /= g.count - 1.0;
                }
                let q = (g.count - 1.0) / g.count;
                (g.float_mean, g.kahan_c) =
                    kahan_sum_inc(f / g.count, q * g.float_mean, q * g.kahan_c);
            }
            SimpleOp::Group => {}
            SimpleOp::Max => {
                if g.float_value < f || g.float_value.is_nan() {
                    g.float_value = f;
                }
            }
            SimpleOp::Min => {
                if g.float_value > f || g.float_value.is_nan() {
                    g.float_value = f;
                }
            }
            SimpleOp::Count => g.count += 1.0,
            SimpleOp::Stddev | SimpleOp::Stdvar => {
                g.count += 1.0;
                let delta = f - g.float_mean;
                g.float_mean += delta / g.count;
                g.float_value += delta * (f - g.float_mean);
            }
            SimpleOp::Quantile(_) => g.values.push(f),
        }
    }

    let mut out = Vec::with_capacity(states.len());
    for (g, labels) in states.into_iter().zip(labels) {
        if !g.seen {
            continue;
        }
        let v = match op {
            SimpleOp::Avg if g.incremental_mean => g.float_mean + g.kahan_c,
            SimpleOp::Avg => g.float_value / g.count + g.kahan_c / g.count,
            SimpleOp::Count => g.count,
            SimpleOp::Stdvar => g.float_value / g.count,
            SimpleOp::Stddev => (g.float_value / g.count).sqrt(),
            SimpleOp::Quantile(q) => quantile(q, g.values),
            SimpleOp::Sum => g.float_value + g.kahan_c,
            SimpleOp::Min | SimpleOp::Max | SimpleOp::Group => g.float_value,
        };
        out.push(InstantSample {
            labels,
            t: eval_ts,
            v,
        });
    }
    out
}

/// Kahan summation with Neumaier's improvement, exactly as Prometheus'
/// `kahanSumInc`: returns the new sum and compensation.
pub fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus' `quantile`: linear interpolation between the two closest
/// ranks; NaN sorts below every number.
fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's sort with `vectorByValueHeap.Less` (NaN below everything, even
    // another NaN): that comparator is not a total order, so only Go's own
    // algorithm is sure to leave the values where Prometheus has them.
    gosort::sort(&mut values, &|a: &f64, b: &f64| by_value_less(*a, *b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (n - 1.0).min(lower + 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// `count_values`: one output series per group and distinct value, the
/// value written into the label `label` as Go's `FormatFloat(v, 'f', -1)`.
fn count_values(
    grouping: &Grouping,
    label: &str,
    input: Vector,
    eval_ts: i64,
) -> Result<Vector, EvalError> {
    // Prometheus 3 accepts any non-empty UTF-8 label name.
    if !super::value::is_valid_label_name(label) {
        return Err(EvalError::Eval(format!(
            "invalid label name {}",
            super::value::go_quote(label)
        )));
    }
    let grouping = match grouping {
        Grouping::By(names) => {
            let mut names = names.clone();
            if !names.iter().any(|n| n == label) {
                names.push(label.to_string());
            }
            Grouping::By(names)
        }
        Grouping::Without(names) => Grouping::Without(names.clone()),
    };
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vector = Vec::new();
    for s in input {
        let metric = s.labels.with(label, &format_value(s.v));
        let key = grouping.group_labels(&metric);
        match index.get(&key) {
            Some(&i) => out[i].v += 1.0,
            None => {
                index.insert(key.clone(), out.len());
                out.push(InstantSample {
                    labels: key,
                    t: eval_ts,
                    v: 1.0,
                });
            }
        }
    }
    Ok(out)
}

/// Go's `container/heap` over samples with a `less` on values; the exact
/// sift order matters because it decides which of equal values are kept.
struct GoHeap {
    items: Vec<InstantSample>,
    less: fn(f64, f64) -> bool,
}

impl GoHeap {
    fn less_at(&self, i: usize, j: usize) -> bool {
        (self.less)(self.items[i].v, self.items[j].v)
    }

    fn push(&mut self, s: InstantSample) {
        self.items.push(s);
        self.up(self.items.len() - 1);
    }

    fn fix(&mut self, i: usize) {
        if !self.down(i, self.items.len()) {
            self.up(i);
        }
    }

    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less_at(j, i) {
                break;
            }
            self.items.swap(i, j);
            j = i;
        }
    }

    fn down(&mut self, i0: usize, n: usize) -> bool {
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            let j2 = j1 + 1;
            if j2 < n && self.less_at(j2, j1) {
                j = j2;
            }
            if !self.less_at(j, i) {
                break;
            }
            self.items.swap(i, j);
            i = j;
        }
        i > i0
    }

    /// Go's `sort.Sort(sort.Reverse(heap))`, in Go's own algorithm, so
    /// equal values end in the same order as in Prometheus.
    fn sort_reverse(&mut self) {
        let less = self.less;
        gosort::sort(&mut self.items, &|a: &InstantSample, b: &InstantSample| {
            less(b.v, a.v)
        });
    }
}

/// `vectorByValueHeap.Less`: NaN is smallest.
fn by_value_less(a: f64, b: f64) -> bool {
    a.is_nan() || a < b
}

/// `vectorByReverseValueHeap.Less`: NaN is "largest" in reverse order.
fn by_reverse_value_less(a: f64, b: f64) -> bool {
    a.is_nan() || a > b
}

/// `topk`, `bottomk` and `limitk`: up to `k` input samples per group.
fn aggregate_k(
    op: &str,
    k: Option<usize>,
    grouping: &Grouping,
    input: Vector,
    eval_ts: i64,
) -> Vector {
    let Some(k) = k else {
        return Vec::new();
    };
    let k = k.min(input.len());
    if k == 0 {
        return Vec::new();
    }
    let (labels, of_sample) = assign_groups(grouping, &input);
    let less = if op == "bottomk" {
        by_reverse_value_less
    } else {
        by_value_less
    };
    let mut heaps: Vec<Option<GoHeap>> = labels.iter().map(|_| None).collect();
    for (mut s, gi) in input.into_iter().zip(of_sample) {
        s.t = eval_ts;
        let Some(heap) = heaps[gi].as_mut() else {
            heaps[gi] = Some(GoHeap {
                items: vec![s],
                less,
            });
            continue;
        };
        match op {
            "limitk" => {
                if heap.items.len() < k {
                    heap.push(s);
                }
            }
            _ => {
                if heap.items.len() < k {
                    heap.push(s);
                } else {
                    let top = heap.items[0].v;
                    let replace = if op == "topk" {
                        top < s.v || (top.is_nan() && !s.v.is_nan())
                    } else {
                        top > s.v || (top.is_nan() && !s.v.is_nan())
                    };
                    if replace {
                        heap.items[0] = s;
                        if k > 1 {
                            heap.fix(0);
                        }
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    for mut heap in heaps.into_iter().flatten() {
        if op != "limitk" && heap.items.len() > 1 {
            heap.sort_reverse();
        }
        out.extend(heap.items);
    }
    out
}

/// The position of a series in [0, 1] that `limit_ratio` compares with the
/// ratio: Prometheus' `labels.Hash()` divided by the largest `uint64`.
/// Prometheus 3's default label representation (`stringlabels`) hashes its
/// encoded form with XXH64, so the same series lands on the same side of a
/// ratio here and in Prometheus.
pub fn ratio_offset(labels: &Labels) -> f64 {
    xxhash_rust::xxh64::xxh64(&encode_labels(labels), 0) as f64 / u64::MAX as f64
}

/// Prometheus' `stringlabels` encoding: for each label in name order, the
/// name then the value, each preceded by its length (one byte below 255,
/// else 255 and three little-endian bytes).
fn encode_labels(labels: &Labels) -> Vec<u8> {
    fn put(buf: &mut Vec<u8>, s: &str) {
        let n = s.len();
        if n < 255 {
            buf.push(n as u8);
        } else {
            buf.extend_from_slice(&[255, n as u8, (n >> 8) as u8, (n >> 16) as u8]);
        }
        buf.extend_from_slice(s.as_bytes());
    }
    let mut buf = Vec::with_capacity(128);
    for l in labels.iter() {
        put(&mut buf, &l.name);
        put(&mut buf, &l.value);
    }
    buf
}

/// Whether `limit_ratio(ratio, …)` keeps a series at `offset`: a positive
/// ratio keeps the lowest offsets, a negative one the complement.
fn ratio_keeps(ratio: f64, offset: f64) -> bool {
    (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
}

fn limit_ratio(ratio: f64, grouping: &Grouping, input: Vector, eval_ts: i64) -> Vector {
    let (labels, of_sample) = assign_groups(grouping, &input);
    let mut heaps: Vec<GoHeap> = labels
        .iter()
        .map(|_| GoHeap {
            items: Vec::new(),
            less: by_value_less,
        })
        .collect();
    for (mut s, gi) in input.into_iter().zip(of_sample) {
        if ratio_keeps(ratio, ratio_offset(&s.labels)) {
            s.t = eval_ts;
            heaps[gi].push(s);
        }
    }
    heaps.into_iter().flat_map(|h| h.items).collect()
}

/// Go's `%g` (and `%v`) for a float: shortest representation, exponent
/// form when the exponent is below -4 or at least 6.
pub fn go_fmt_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Go does.
    let e = format!("{v:e}");
    let (mantissa, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use promql_parser::label::Labels as ParserLabels;

    fn sample(pairs: &[(&str, &str)], v: f64) -> InstantSample {
        InstantSample {
            labels: Labels::from_pairs(pairs.iter().copied()),
            t: 0,
            v,
        }
    }

    fn by(names: &[&str]) -> LabelModifier {
        LabelModifier::Include(ParserLabels {
            labels: names.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn without(names: &[&str]) -> LabelModifier {
        LabelModifier::Exclude(ParserLabels {
            labels: names.iter().map(|s| s.to_string()).collect(),
        })
    }

    fn run(
        op: &str,
        param: Option<AggParam>,
        m: Option<&LabelModifier>,
        input: Vector,
    ) -> (Vector, Annotations) {
        let mut a = Annotations::default();
        let out = aggregate(op, param, m, input, 1000, &mut a).unwrap();
        (out, a)
    }

    fn render(v: &Vector) -> Vec<String> {
        v.iter().map(|s| format!("{} {}", s.labels, s.v)).collect()
    }

    fn http() -> Vector {
        vec![
            sample(&[("__name__", "req"), ("job", "api"), ("g", "a")], 1.0),
            sample(&[("__name__", "req"), ("job", "api"), ("g", "b")], 2.0),
            sample(&[("__name__", "req"), ("job", "web"), ("g", "a")], 3.0),
            sample(&[("__name__", "req"), ("job", "web"), ("g", "b")], 4.0),
        ]
    }

    #[test]
    fn sum_by_and_without_drop_the_name() {
        let (out, _) = run("sum", None, Some(&by(&["job"])), http());
        assert_eq!(render(&out), vec![r#"{job="api"} 3"#, r#"{job="web"} 7"#]);
        assert!(out.iter().all(|s| s.t == 1000));
        let (out, _) = run("sum", None, Some(&without(&["g"])), http());
        assert_eq!(render(&out), vec![r#"{job="api"} 3"#, r#"{job="web"} 7"#]);
        let (out, _) = run("sum", None, None, http());
        assert_eq!(render(&out), vec!["{} 10"]);
        // by (__name__) keeps the name.
        let (out, _) = run("count", None, Some(&by(&["__name__"])), http());
        assert_eq!(render(&out), vec!["req{} 4"]);
    }

    #[test]
    fn kahan_sum_recovers_lost_precision() {
        let input = vec![
            sample(&[("a", "1")], 1.0),
            sample(&[("a", "2")], 1e100),
            sample(&[("a", "3")], 1.0),
            sample(&[("a", "4")], -1e100),
        ];
        let (out, _) = run("sum", None, None, input.clone());
        assert_eq!(out[0].v, 2.0);
        let (out, _) = run("avg", None, None, input);
        assert_eq!(out[0].v, 0.5);
    }

    #[test]
    fn avg_switches_to_incremental_mean_on_overflow() {
        let input = vec![
            sample(&[("a", "1")], f64::MAX),
            sample(&[("a", "2")], f64::MAX),
            sample(&[("a", "3")], f64::MAX),
        ];
        let (out, _) = run("avg", None, None, input);
        // A direct sum would be +Inf; the incremental mean stays finite and
        // within rounding of the true mean.
        assert!(out[0].v.is_finite());
        assert!((out[0].v - f64::MAX).abs() / f64::MAX < 1e-15);
        let inf = vec![
            sample(&[("a", "1")], f64::INFINITY),
            sample(&[("a", "2")], 1.0),
        ];
        let (out, _) = run("avg", None, None, inf);
        assert_eq!(out[0].v, f64::INFINITY);
        let mixed = vec![
            sample(&[("a", "1")], f64::INFINITY),
            sample(&[("a", "2")], f64::NEG_INFINITY),
        ];
        let (out, _) = run("avg", None, None, mixed);
        assert!(out[0].v.is_nan());
    }

    #[test]
    fn min_max_replace_a_leading_nan() {
        let input = vec![
            sample(&[("a", "1")], f64::NAN),
            sample(&[("a", "2")], 5.0),
            sample(&[("a", "3")], 3.0),
        ];
        let (out, _) = run("max", None, None, input.clone());
        assert_eq!(out[0].v, 5.0);
        let (out, _) = run("min", None, None, input);
        assert_eq!(out[0].v, 3.0);
        let only_nan = vec![sample(&[("a", "1")], f64::NAN)];
        let (out, _) = run("max", None, None, only_nan);
        assert!(out[0].v.is_nan());
    }

    #[test]
    fn stddev_stdvar_count_group() {
        let (out, _) = run("stdvar", None, None, http());
        assert_eq!(out[0].v, 1.25);
        let (out, _) = run("stddev", None, None, http());
        assert_eq!(out[0].v, 1.25f64.sqrt());
        let (out, _) = run("count", None, Some(&by(&["g"])), http());
        assert_eq!(render(&out), vec![r#"{g="a"} 2"#, r#"{g="b"} 2"#]);
        let (out, _) = run("group", None, Some(&by(&["g"])), http());
        assert_eq!(render(&out), vec![r#"{g="a"} 1"#, r#"{g="b"} 1"#]);
        let inf = vec![
            sample(&[("a", "1")], f64::INFINITY),
            sample(&[("a", "2")], 1.0),
        ];
        let (out, _) = run("stddev", None, None, inf);
        assert!(out[0].v.is_nan());
    }

    #[test]
    fn topk_bottomk_order_and_nan() {
        let mut input = http();
        input.push(sample(&[("__name__", "req"), ("job", "x")], f64::NAN));
        let (out, _) = run("topk", Some(AggParam::Scalar(2.0)), None, input.clone());
        assert_eq!(out.iter().map(|s| s.v).collect::<Vec<_>>(), vec![4.0, 3.0]);
        assert_eq!(out[0].labels.metric_name(), "req");
        let (out, _) = run("bottomk", Some(AggParam::Scalar(2.0)), None, input.clone());
        assert_eq!(out.iter().map(|s| s.v).collect::<Vec<_>>(), vec![1.0, 2.0]);
        // NaN comes last and only when k exceeds the numbers.
        let (out, _) = run("topk", Some(AggParam::Scalar(10.0)), None, input.clone());
        let vals: Vec<f64> = out.iter().map(|s| s.v).collect();
        assert_eq!(&vals[..4], &[4.0, 3.0, 2.0, 1.0]);
        assert!(vals[4].is_nan());
        let (out, _) = run("bottomk", Some(AggParam::Scalar(10.0)), None, input);
        let vals: Vec<f64> = out.iter().map(|s| s.v).collect();
        assert_eq!(&vals[..4], &[1.0, 2.0, 3.0, 4.0]);
        assert!(vals[4].is_nan());
        let (out, _) = run(
            "topk",
            Some(AggParam::Scalar(1.0)),
            Some(&by(&["g"])),
            http(),
        );
        assert_eq!(out.iter().map(|s| s.v).collect::<Vec<_>>(), vec![3.0, 4.0]);
    }

    #[test]
    fn topk_parameter_errors_and_empty() {
        let mut a = Annotations::default();
        let err = aggregate(
            "topk",
            Some(AggParam::Scalar(f64::NAN)),
            None,
            vec![],
            0,
            &mut a,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Parameter value is NaN");
        let err = aggregate(
            "limitk",
            Some(AggParam::Scalar(1e20)),
            None,
            vec![],
            0,
            &mut a,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Scalar value 1e+20 overflows int64");
        let err = aggregate(
            "limit_ratio",
            Some(AggParam::Scalar(f64::NAN)),
            None,
            vec![],
            0,
            &mut a,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Ratio value is NaN");
        let (out, _) = run("topk", Some(AggParam::Scalar(0.5)), None, http());
        assert!(out.is_empty());
        let (out, _) = run("bottomk", Some(AggParam::Scalar(-3.0)), None, http());
        assert!(out.is_empty());
    }

    #[test]
    fn topk_ties_follow_go_heap_order() {
        // Equal values: Go's heap keeps the first k seen, in heap order.
        let input = vec![
            sample(&[("a", "1")], 1.0),
            sample(&[("a", "2")], 1.0),
            sample(&[("a", "3")], 1.0),
        ];
        let (out, _) = run("topk", Some(AggParam::Scalar(2.0)), None, input);
        assert_eq!(render(&out), vec![r#"{a="1"} 1"#, r#"{a="2"} 1"#]);
    }

    #[test]
    fn quantile_interpolates_and_warns() {
        let input = vec![
            sample(&[("p", "a")], 0.0),
            sample(&[("p", "b")], 1.0),
            sample(&[("p", "c")], 4.0),
        ];
        let (out, a) = run("quantile", Some(AggParam::Scalar(0.8)), None, input.clone());
        assert!((out[0].v - 2.8).abs() < 1e-12);
        assert!(a.is_empty());
        let (out, a) = run("quantile", Some(AggParam::Scalar(1.5)), None, input.clone());
        assert_eq!(out[0].v, f64::INFINITY);
        assert_eq!(
            a.warnings,
            vec!["PromQL warning: quantile value should be between 0 and 1, got 1.5"]
        );
        let (out, a) = run("quantile", Some(AggParam::Scalar(f64::NAN)), None, input);
        assert!(out[0].v.is_nan());
        assert_eq!(
            a.warnings,
            vec!["PromQL warning: quantile value should be between 0 and 1, got NaN"]
        );
        let nan = vec![
            sample(&[("p", "a")], 0.0),
            sample(&[("p", "b")], 1.0),
            sample(&[("p", "c")], f64::NAN),
        ];
        let (out, _) = run("quantile", Some(AggParam::Scalar(0.8)), None, nan.clone());
        assert!((out[0].v - 0.6).abs() < 1e-12);
        let (out, _) = run("quantile", Some(AggParam::Scalar(0.2)), None, nan);
        assert!(out[0].v.is_nan());
    }

    #[test]
    fn count_values_formats_like_go_and_groups() {
        let input = vec![
            sample(&[("__name__", "v"), ("i", "0"), ("job", "a")], 6.0),
            sample(&[("__name__", "v"), ("i", "1"), ("job", "a")], 6.0),
            sample(&[("__name__", "v"), ("i", "2"), ("job", "b")], 0.1),
            sample(&[("__name__", "v"), ("i", "3"), ("job", "b")], 1e21),
            sample(
                &[("__name__", "v"), ("i", "4"), ("job", "b")],
                f64::NEG_INFINITY,
            ),
        ];
        let p = || Some(AggParam::String("version".into()));
        let (out, _) = run("count_values", p(), None, input.clone());
        assert_eq!(
            render(&out),
            vec![
                r#"{version="6"} 2"#,
                r#"{version="0.1"} 1"#,
                r#"{version="1000000000000000000000"} 1"#,
                r#"{version="-Inf"} 1"#,
            ]
        );
        let (out, _) = run("count_values", p(), Some(&without(&["i"])), input.clone());
        assert_eq!(render(&out)[0], r#"{job="a", version="6"} 2"#);
        // The value label overwrites an existing one.
        let (out, _) = run(
            "count_values",
            Some(AggParam::String("job".into())),
            Some(&by(&["job"])),
            input,
        );
        assert_eq!(render(&out)[0], r#"{job="6"} 2"#);
        let mut a = Annotations::default();
        let err = aggregate(
            "count_values",
            Some(AggParam::String(String::new())),
            None,
            vec![],
            0,
            &mut a,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), r#"invalid label name """#);
    }

    #[test]
    fn grouping_treats_an_absent_label_as_empty() {
        let input = vec![
            sample(&[("__name__", "m"), ("a", "1"), ("b", "x")], 1.0),
            sample(&[("__name__", "m"), ("a", "1")], 2.0),
            sample(&[("__name__", "m"), ("a", "2"), ("c", "y")], 4.0),
        ];
        let (out, _) = run("sum", None, Some(&by(&["b", "zzz"])), input.clone());
        assert_eq!(render(&out), vec![r#"{b="x"} 1"#, "{} 6"]);
        let (out, _) = run("max", None, Some(&without(&["b", "c"])), input);
        assert_eq!(render(&out), vec![r#"{a="1"} 2"#, r#"{a="2"} 4"#]);
    }

    #[test]
    fn count_values_small_and_negative_zero() {
        let input = vec![
            sample(&[("i", "0")], 1e-7),
            sample(&[("i", "1")], -0.0),
            sample(&[("i", "2")], f64::NAN),
        ];
        let (out, _) = run(
            "count_values",
            Some(AggParam::String("v".into())),
            None,
            input,
        );
        assert_eq!(
            render(&out),
            vec![r#"{v="0.0000001"} 1"#, r#"{v="-0"} 1"#, r#"{v="NaN"} 1"#]
        );
    }

    /// Worked through Go's heap by hand: `2` is replaced at the root by
    /// `{a="3"}`, `{a="4"}` does not beat an equal root, and the final
    /// insertion sort keeps equal neighbours in place.
    #[test]
    fn bottomk_ties_follow_go_heap_replacement() {
        let input = vec![
            sample(&[("a", "1")], 2.0),
            sample(&[("a", "2")], 1.0),
            sample(&[("a", "3")], 1.0),
            sample(&[("a", "4")], 1.0),
        ];
        let (out, _) = run("bottomk", Some(AggParam::Scalar(2.0)), None, input);
        assert_eq!(render(&out), vec![r#"{a="3"} 1"#, r#"{a="2"} 1"#]);
    }

    #[test]
    fn limitk_keeps_k_per_group() {
        let (out, _) = run(
            "limitk",
            Some(AggParam::Scalar(1.0)),
            Some(&by(&["job"])),
            http(),
        );
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].labels.get("job"), out[1].labels.get("job"));
        assert_eq!(out[0].labels.metric_name(), "req");
        let (out, _) = run("limitk", Some(AggParam::Scalar(100.0)), None, http());
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn xxhash64_matches_reference_vectors() {
        // Reference values of XXH64 with seed 0.
        assert_eq!(xxhash_rust::xxh64::xxh64(b"", 0), 0xef46_db37_51d8_e999);
        assert_eq!(xxhash_rust::xxh64::xxh64(b"a", 0), 0xd24e_c4f1_a98c_6e5b);
    }

    #[test]
    fn labels_encode_like_prometheus_stringlabels() {
        let l = Labels::from_pairs([("__name__", "a"), ("b", "cd")]);
        let mut want = vec![8u8];
        want.extend_from_slice(b"__name__");
        want.extend_from_slice(&[1, b'a', 1, b'b', 2, b'c', b'd']);
        assert_eq!(encode_labels(&l), want);
        let long = "x".repeat(300);
        let l = Labels::from_pairs([("k", long.as_str())]);
        let enc = encode_labels(&l);
        assert_eq!(&enc[..6], &[1, b'k', 255, 44, 1, 0]);
        assert_eq!(enc.len(), 6 + 300);
        let o = ratio_offset(&l);
        assert!((0.0..=1.0).contains(&o));
    }

    #[test]
    fn limit_ratio_complements_and_warns() {
        let mut input = Vec::new();
        for i in 0..50 {
            input.push(sample(
                &[("__name__", "m"), ("i", &i.to_string())],
                i as f64,
            ));
        }
        for r in [0.2, 0.5, 0.8] {
            let (pos, _) = run(
                "limit_ratio",
                Some(AggParam::Scalar(r)),
                None,
                input.clone(),
            );
            let (neg, _) = run(
                "limit_ratio",
                Some(AggParam::Scalar(-(1.0 - r))),
                None,
                input.clone(),
            );
            assert_eq!(pos.len() + neg.len(), 50, "ratio {r}");
            assert!(
                pos.iter()
                    .all(|p| !neg.iter().any(|n| n.labels == p.labels))
            );
        }
        let (all, a) = run(
            "limit_ratio",
            Some(AggParam::Scalar(1.1)),
            None,
            input.clone(),
        );
        assert_eq!(all.len(), 50);
        assert_eq!(
            a.warnings,
            vec!["PromQL warning: ratio value should be between -1 and 1, got 1.1, capping to 1"]
        );
        let (none, _) = run("limit_ratio", Some(AggParam::Scalar(0.0)), None, input);
        assert!(none.is_empty());
    }

    #[test]
    fn go_g_formatting() {
        assert_eq!(go_fmt_g(1.5), "1.5");
        assert_eq!(go_fmt_g(-1.1), "-1.1");
        assert_eq!(go_fmt_g(1.0), "1");
        assert_eq!(go_fmt_g(1e6), "1e+06");
        assert_eq!(go_fmt_g(123456.0), "123456");
        assert_eq!(go_fmt_g(1234567.0), "1.234567e+06");
        assert_eq!(go_fmt_g(0.0001), "0.0001");
        assert_eq!(go_fmt_g(0.00001), "1e-05");
        assert_eq!(go_fmt_g(f64::INFINITY), "+Inf");
    }

    #[test]
    fn unknown_operator_is_an_error() {
        let mut a = Annotations::default();
        assert!(aggregate("median", None, None, http(), 0, &mut a).is_err());
    }
}
