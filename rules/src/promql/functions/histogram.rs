//! Histogram functions over classic histograms: series that share all
//! labels but `le` form one histogram whose `le` values are the buckets'
//! inclusive upper bounds and whose values are cumulative counts.
//! `histogram_quantile`, the experimental `histogram_quantiles` and
//! `histogram_fraction` work on them as Prometheus' `BucketQuantile` and
//! `BucketFraction` do, including the monotonicity repair and its info.
//!
//! `histogram_count`, `histogram_sum`, `histogram_avg`, `histogram_stddev`
//! and `histogram_stdvar` read only native histograms in Prometheus 3; a
//! float sample is ignored by them, so over Tocsin's float store they
//! return nothing.
//!
//! The grouping key keeps the metric name (two histograms that differ only
//! by name stay apart) and the result drops it, so such a query fails with
//! Prometheus' duplicate-labelset error.

use std::collections::HashMap;

use chrono::DateTime;

use super::range::invalid_quantile_warning;
use super::stats::{format_openmetrics_float, go_format_g, go_format_g2};
use super::{Args, FnCtx, drop_metadata, sample};
use crate::promql::Annotations;
use crate::promql::eval::EvalError;
use crate::promql::value::{Labels, Vector};

/// Relative difference between neighbouring cumulative counts below which
/// the difference is treated as floating point noise (Prometheus'
/// `smallDeltaTolerance`).
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

pub(super) fn call(
    name: &str,
    args: &mut Args<'_>,
    ctx: &mut FnCtx<'_>,
) -> Result<Vector, EvalError> {
    match name {
        "histogram_quantile" => {
            let q = args.scalar(0)?;
            let input = args.take_vector(1)?;
            warn_quantile(q, ctx.annotations);
            let groups = group_buckets(input, ctx.annotations);
            let mut out = Vector::with_capacity(groups.len());
            let mut repaired = Repairs::default();
            for g in groups {
                let r = bucket_quantile(q, g.buckets);
                repaired.note(&r);
                out.push(sample(drop_metadata(&g.labels), r.value, ctx));
            }
            repaired.annotate(ctx.eval_ts, ctx.annotations);
            Ok(out)
        }
        "histogram_quantiles" => {
            let input = args.take_vector(0)?;
            let label = args.string(1)?.to_string();
            let mut qs = Vec::with_capacity(args.len().saturating_sub(2));
            for i in 2..args.len() {
                let q = args.scalar(i)?;
                warn_quantile(q, ctx.annotations);
                qs.push(q);
            }
            let groups = group_buckets(input, ctx.annotations);
            let mut out = Vector::with_capacity(groups.len() * qs.len());
            let mut repaired = Repairs::default();
            for q in qs {
                let q_label = format_openmetrics_float(q);
                for g in &groups {
                    let r = bucket_quantile(q, g.buckets.clone());
                    repaired.note(&r);
                    let labels = drop_metadata(&g.labels).with(&label, &q_label);
                    out.push(sample(labels, r.value, ctx));
                }
            }
            repaired.annotate(ctx.eval_ts, ctx.annotations);
            Ok(out)
        }
        "histogram_fraction" => {
            let lower = args.scalar(0)?;
            let upper = args.scalar(1)?;
            let input = args.take_vector(2)?;
            let groups = group_buckets(input, ctx.annotations);
            Ok(groups
                .into_iter()
                .map(|g| {
                    let v = bucket_fraction(lower, upper, g.buckets);
                    sample(drop_metadata(&g.labels), v, ctx)
                })
                .collect())
        }
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            args.take_vector(0)?;
            Ok(Vector::new())
        }
        _ => Err(EvalError::Eval(format!(
            "function {name:?} is not a histogram function"
        ))),
    }
}

fn warn_quantile(q: f64, ann: &mut Annotations) {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        ann.warn(invalid_quantile_warning(q));
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    upper: f64,
    count: f64,
}

struct Group {
    /// The series' labels without `le`.
    labels: Labels,
    buckets: Vec<Bucket>,
}

/// Groups the elements into histograms by their labels without `le`, in
/// first-seen order. An element whose `le` is missing or not a number is
/// skipped with Prometheus' warning.
fn group_buckets(input: Vector, ann: &mut Annotations) -> Vec<Group> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for s in input {
        let le = s.labels.get("le");
        let Some(upper) = parse_go_float(le) else {
            let mut msg = format!(
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of {le:?}"
            );
            let name = s.labels.metric_name();
            if !name.is_empty() {
                msg.push_str(&format!(" for metric name {name:?}"));
            }
            ann.warn(msg);
            continue;
        };
        let key = s.labels.without(&["le"]);
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push(Group {
                labels: key,
                buckets: Vec::new(),
            });
            groups.len() - 1
        });
        groups[i].buckets.push(Bucket { upper, count: s.v });
    }
    groups
}

/// Parses a bucket bound as Go's `strconv.ParseFloat` would for the forms
/// found in practice (`0.1`, `.2`, `1e0`, `+Inf`, `+inf`, `NaN`).
fn parse_go_float(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    s.parse::<f64>().ok()
}

/// A quantile and what had to be repaired to compute it.
struct QuantileResult {
    value: f64,
    /// Set when some bucket count was lower than a lower bucket's.
    repair: Option<Repair>,
}

#[derive(Debug, Clone, Copy)]
struct Repair {
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
}

/// Prometheus' `BucketQuantile`: linear interpolation inside the bucket
/// holding rank q·count; the top (+Inf) bucket answers with the next
/// bound down; the lowest bucket interpolates from 0 when its bound is
/// positive and answers with its bound otherwise. NaN without a +Inf
/// bucket, with fewer than two buckets or with no observations.
fn bucket_quantile(q: f64, mut buckets: Vec<Bucket>) -> QuantileResult {
    let plain = |value| QuantileResult {
        value,
        repair: None,
    };
    if q.is_nan() {
        return plain(f64::NAN);
    }
    if q < 0.0 {
        return plain(f64::NEG_INFINITY);
    }
    if q > 1.0 {
        return plain(f64::INFINITY);
    }
    let Some(mut buckets) = sorted_coalesced(&mut buckets) else {
        return plain(f64::NAN);
    };
    // The repair is reported even when the answer below is NaN.
    let repair = ensure_monotonic(&mut buckets, SMALL_DELTA_TOLERANCE);
    let observations = buckets[buckets.len() - 1].count;
    if buckets.len() < 2 || observations == 0.0 {
        return QuantileResult {
            value: f64::NAN,
            repair,
        };
    }
    let mut rank = q * observations;
    // The first bucket (excluding the top one) whose count reaches rank.
    let b = buckets[..buckets.len() - 1].partition_point(|x| x.count < rank);
    let value = if b == buckets.len() - 1 {
        buckets[buckets.len() - 2].upper
    } else if b == 0 && buckets[0].upper <= 0.0 {
        buckets[0].upper
    } else {
        let mut start = 0.0;
        let end = buckets[b].upper;
        let mut count = buckets[b].count;
        if b > 0 {
            start = buckets[b - 1].upper;
            count -= buckets[b - 1].count;
            rank -= buckets[b - 1].count;
        }
        start + (end - start) * (rank / count)
    };
    QuantileResult { value, repair }
}

/// Sorts the buckets and merges those with equal bounds (`0.2` and
/// `2e-1` are one bucket); `None` when the histogram has no +Inf bucket.
fn sorted_coalesced(buckets: &mut [Bucket]) -> Option<Vec<Bucket>> {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    match buckets.last() {
        Some(b) if b.upper == f64::INFINITY => {}
        _ => return None,
    }
    let mut merged: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match merged.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => merged.push(*b),
        }
    }
    Some(merged)
}

/// Makes cumulative counts non-decreasing: differences within `tolerance`
/// (relative) are float noise and flattened either way; a real decrease is
/// raised to the count below it and reported.
fn ensure_monotonic(buckets: &mut [Bucket], tolerance: f64) -> Option<Repair> {
    let mut repair: Option<Repair> = None;
    let mut prev = buckets.first()?.count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, tolerance) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            let diff = prev - curr;
            b.count = prev;
            repair = Some(match repair {
                None => Repair {
                    min_bucket: b.upper,
                    max_bucket: b.upper,
                    max_diff: diff,
                },
                Some(r) => Repair {
                    min_bucket: r.min_bucket.min(b.upper),
                    max_bucket: r.max_bucket.max(b.upper),
                    max_diff: r.max_diff.max(diff),
                },
            });
            continue;
        }
        prev = curr;
    }
    repair
}

/// Prometheus' `almost.Equal`: relative comparison, absolute near zero.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// The share of observations between `lower` and `upper` (Prometheus'
/// `BucketFraction`), interpolating linearly inside a bucket. The lowest
/// bucket spans from 0 when its bound is positive and from -Inf otherwise;
/// observations in a bucket of infinite width sit at that infinity, so they
/// count as all below (or all above) any finite bound inside it. Unlike the
/// quantile, the counts are used as they are, without monotonicity repair.
fn bucket_fraction(lower: f64, upper: f64, mut buckets: Vec<Bucket>) -> f64 {
    let Some(buckets) = sorted_coalesced(&mut buckets) else {
        return f64::NAN;
    };
    let total = match buckets.last() {
        Some(b) => b.count,
        None => return f64::NAN,
    };
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // Cumulative count below the current bucket.
    let mut rank = 0.0;
    let mut lower_rank: Option<f64> = None;
    let mut upper_rank: Option<f64> = None;
    for (i, b) in buckets.iter().enumerate() {
        let bl = match i {
            0 if b.upper > 0.0 => 0.0,
            0 => f64::NEG_INFINITY,
            _ => buckets[i - 1].upper,
        };
        let bu = b.upper;
        // With an infinite upper bound the fraction term is 0: nothing of
        // the bucket lies below a finite value.
        let within = |v: f64| {
            if bl == f64::NEG_INFINITY {
                b.count
            } else {
                rank + (b.count - rank) * (v - bl) / (bu - bl)
            }
        };
        if lower_rank.is_none() && bl >= lower {
            lower_rank = Some(rank);
        }
        if upper_rank.is_none() && bl >= upper {
            upper_rank = Some(rank);
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        if lower_rank.is_none() && bl < lower && bu > lower {
            lower_rank = Some(within(lower));
        }
        if upper_rank.is_none() && bl < upper && bu > upper {
            upper_rank = Some(within(upper));
        }
        if lower_rank.is_some() && upper_rank.is_some() {
            break;
        }
        rank = b.count;
    }
    let lower_rank = lower_rank.map_or(total, |r| r.min(total));
    let upper_rank = upper_rank.map_or(total, |r| r.min(total));
    (upper_rank - lower_rank) / total
}

/// The monotonicity repairs of one call, reported as one info that also
/// absorbs the same info from earlier steps of a range query (Prometheus
/// widens a single annotation rather than adding one per step).
#[derive(Default)]
struct Repairs {
    merged: Option<MonotonicityInfo>,
}

impl Repairs {
    fn note(&mut self, r: &QuantileResult) {
        let Some(rep) = r.repair else {
            return;
        };
        let one = MonotonicityInfo {
            min_ts: 0,
            max_ts: 0,
            min_bucket: rep.min_bucket,
            max_bucket: rep.max_bucket,
            max_diff: rep.max_diff,
            samples: 1,
        };
        self.merged = Some(match self.merged.take() {
            None => one,
            Some(m) => m.merge(&one),
        });
    }

    fn annotate(self, eval_ts: i64, ann: &mut Annotations) {
        let Some(mut info) = self.merged else {
            return;
        };
        info.min_ts = eval_ts;
        info.max_ts = eval_ts;
        if let Some(pos) = ann
            .infos
            .iter()
            .position(|s| s.starts_with(MONOTONICITY_PREFIX))
            && let Some(prev) = MonotonicityInfo::parse(&ann.infos[pos])
        {
            ann.infos[pos] = prev.merge(&info).render();
            return;
        }
        ann.info(info.render());
    }
}

const MONOTONICITY_PREFIX: &str = "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)";

#[derive(Debug, Clone, PartialEq)]
struct MonotonicityInfo {
    min_ts: i64,
    max_ts: i64,
    min_bucket: f64,
    max_bucket: f64,
    max_diff: f64,
    samples: u64,
}

impl MonotonicityInfo {
    fn merge(&self, o: &MonotonicityInfo) -> MonotonicityInfo {
        MonotonicityInfo {
            min_ts: self.min_ts.min(o.min_ts),
            max_ts: self.max_ts.max(o.max_ts),
            min_bucket: self.min_bucket.min(o.min_bucket),
            max_bucket: self.max_bucket.max(o.max_bucket),
            max_diff: self.max_diff.max(o.max_diff),
            samples: self.samples + o.samples,
        }
    }

    fn render(&self) -> String {
        format!(
            "{MONOTONICITY_PREFIX}, from buckets {} to {}, with a max diff of {}, over {} samples from {} to {}",
            go_format_g(self.min_bucket),
            go_format_g(self.max_bucket),
            go_format_g2(self.max_diff),
            self.samples,
            rfc3339(self.min_ts),
            rfc3339(self.max_ts),
        )
    }

    /// Reads back a rendered info (the max diff only to its two printed
    /// digits, which is all a later merge can change anyway).
    fn parse(s: &str) -> Option<MonotonicityInfo> {
        let rest = s.strip_prefix(MONOTONICITY_PREFIX)?;
        let rest = rest.strip_prefix(", from buckets ")?;
        let (min_bucket, rest) = rest.split_once(" to ")?;
        let (max_bucket, rest) = rest.split_once(", with a max diff of ")?;
        let (max_diff, rest) = rest.split_once(", over ")?;
        let (samples, rest) = rest.split_once(" samples from ")?;
        let (t1, t2) = rest.split_once(" to ")?;
        Some(MonotonicityInfo {
            min_ts: DateTime::parse_from_rfc3339(t1).ok()?.timestamp_millis(),
            max_ts: DateTime::parse_from_rfc3339(t2).ok()?.timestamp_millis(),
            min_bucket: parse_go_float(min_bucket)?,
            max_bucket: parse_go_float(max_bucket)?,
            max_diff: parse_go_float(max_diff)?,
            samples: samples.parse().ok()?,
        })
    }
}

/// Go's `time.Unix(ms/1000, 0).UTC().Format(time.RFC3339)`.
fn rfc3339(ms: i64) -> String {
    match DateTime::from_timestamp(ms / 1000, 0) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => ms.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::super::FnArg;
    use super::super::testutil::*;
    use super::*;
    use crate::promql::InstantSample;

    /// A classic histogram `name` with extra labels and `(le, count)` pairs.
    fn hist(name: &str, extra: &[(&str, &str)], buckets: &[(&str, f64)]) -> Vector {
        buckets
            .iter()
            .map(|(le, c)| {
                let mut pairs: Vec<(&str, &str)> = vec![("__name__", name), ("le", le)];
                pairs.extend_from_slice(extra);
                InstantSample {
                    labels: labels(&pairs),
                    t: 0,
                    v: *c,
                }
            })
            .collect()
    }

    fn testhistogram3() -> Vector {
        let mut v = hist(
            "testhistogram3_bucket",
            &[("start", "positive")],
            &[
                ("0", 0.0),
                ("0.1", 50.0),
                (".2", 70.0),
                ("1e0", 110.0),
                ("+Inf", 110.0),
            ],
        );
        v.extend(hist(
            "testhistogram3_bucket",
            &[("start", "negative")],
            &[
                ("-.25", 0.0),
                ("-.2", 10.0),
                ("-0.1", 20.0),
                ("0.3", 20.0),
                ("+Inf", 20.0),
            ],
        ));
        v
    }

    fn quantiles(q: f64, v: Vector) -> (Vec<(String, f64)>, Annotations) {
        let (r, ann) = run(
            "histogram_quantile",
            vec![FnArg::Scalar(q), FnArg::Vector(v)],
            0,
            0,
        );
        let r = r.map(|v| v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect());
        (r.unwrap_or_default(), ann)
    }

    #[test]
    fn quantiles_of_a_classic_histogram() {
        for (q, pos, neg) in [
            (0.0, 0.0, -0.25),
            (0.25, 0.055, -0.225),
            (0.5, 0.125, -0.2),
            (0.75, 0.45, -0.15),
            (1.0, 1.0, -0.1),
        ] {
            let (r, ann) = quantiles(q, testhistogram3());
            assert!(ann.is_empty());
            assert_eq!(r[0].0, r#"{start="positive"}"#);
            assert_close(r[0].1, pos);
            assert_close(r[1].1, neg);
        }
    }

    #[test]
    fn out_of_range_quantiles_warn() {
        let (r, ann) = quantiles(-0.1, testhistogram3());
        assert_eq!(r[0].1, f64::NEG_INFINITY);
        assert_eq!(
            ann.warnings,
            vec!["PromQL warning: quantile value should be between 0 and 1, got -0.1"]
        );
        let (r, ann) = quantiles(f64::NAN, Vec::new());
        assert!(r.is_empty());
        assert_eq!(
            ann.warnings,
            vec!["PromQL warning: quantile value should be between 0 and 1, got NaN"]
        );
    }

    #[test]
    fn equal_bounds_are_merged_and_missing_inf_is_nan() {
        let v = hist(
            "mixed_bucket",
            &[],
            &[
                ("0.1", 1.0),
                ("0.2", 1.0),
                ("2e-1", 1.0),
                ("2.0e-1", 1.0),
                ("+Inf", 4.0),
            ],
        );
        let (r, _) = quantiles(0.5, v);
        assert_close(r[0].1, 0.15);
        let v = hist("no_inf", &[], &[("0.1", 1.0), ("0.2", 2.0)]);
        let (r, _) = quantiles(0.5, v);
        assert!(r[0].1.is_nan());
        let v = hist("empty", &[], &[("0.1", 0.0), ("+Inf", 0.0)]);
        let (r, _) = quantiles(0.5, v);
        assert!(r[0].1.is_nan());
    }

    #[test]
    fn nonmonotonic_buckets_are_fixed_with_an_info() {
        let v = hist(
            "nonmonotonic_bucket",
            &[],
            &[
                ("0.1", 20.0),
                ("1", 10.0),
                ("10", 50.0),
                ("100", 40.0),
                ("1000", 90.0),
                ("+Inf", 80.0),
            ],
        );
        let (r, ann) = quantiles(0.5, v.clone());
        assert_close(r[0].1, 8.5);
        let (r, _) = quantiles(0.01, v.clone());
        assert_close(r[0].1, 0.0045);
        let (r, _) = quantiles(0.99, v);
        assert_close(r[0].1, 979.75);
        assert_eq!(ann.infos.len(), 1);
        assert_eq!(
            ann.infos[0],
            format!(
                "{MONOTONICITY_PREFIX}, from buckets 1 to +Inf, with a max diff of 10, over 1 samples from 1970-01-01T00:00:00Z to 1970-01-01T00:00:00Z"
            )
        );
    }

    #[test]
    fn monotonicity_info_widens_across_steps() {
        let mut ann = Annotations::default();
        let mut a = Repairs::default();
        let r = QuantileResult {
            value: 0.0,
            repair: Some(Repair {
                min_bucket: 1.0,
                max_bucket: 1.0,
                max_diff: 2.0,
            }),
        };
        a.note(&r);
        a.annotate(0, &mut ann);
        let mut b = Repairs::default();
        b.note(&r);
        b.annotate(60_000, &mut ann);
        assert_eq!(ann.infos.len(), 1);
        assert!(
            ann.infos[0]
                .ends_with("over 2 samples from 1970-01-01T00:00:00Z to 1970-01-01T00:01:00Z")
        );
    }

    #[test]
    fn bad_le_is_skipped_with_a_warning() {
        let v = vector(&[(&[("__name__", "series"), ("ale", "0.1")], 2.0)]);
        let (r, ann) = quantiles(0.8, v);
        assert!(r.is_empty());
        assert_eq!(
            ann.warnings,
            vec![
                "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"\" for metric name \"series\""
            ]
        );
        let v = vector(&[(&[("__name__", "series"), ("le", "Hello World")], 2.0)]);
        let (_, ann) = quantiles(0.8, v);
        assert!(ann.warnings[0].contains("of \"Hello World\" for metric name"));
    }

    #[test]
    fn same_labels_different_names_fail() {
        let mut v = hist("a_bucket", &[("job", "j")], &[("0.1", 1.0), ("+Inf", 2.0)]);
        v.extend(hist(
            "b_bucket",
            &[("job", "j")],
            &[("0.1", 1.0), ("+Inf", 2.0)],
        ));
        let (r, _) = run(
            "histogram_quantile",
            vec![FnArg::Scalar(0.5), FnArg::Vector(v)],
            0,
            0,
        );
        assert!(r.is_err());
    }

    #[test]
    fn histogram_quantiles_labels_each_quantile() {
        let args = vec![
            FnArg::Vector(testhistogram3()),
            FnArg::String("q".into()),
            FnArg::Scalar(0.0),
            FnArg::Scalar(1.0),
        ];
        let r = values("histogram_quantiles", args, 0, 0);
        let names: Vec<&str> = r.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            vec![
                r#"{q="0.0", start="positive"}"#,
                r#"{q="0.0", start="negative"}"#,
                r#"{q="1.0", start="positive"}"#,
                r#"{q="1.0", start="negative"}"#,
            ]
        );
        let args = vec![
            FnArg::Vector(testhistogram3()),
            FnArg::String("start".into()),
            FnArg::Scalar(0.5),
        ];
        assert!(run("histogram_quantiles", args, 0, 0).0.is_err());
    }

    fn fraction(lower: f64, upper: f64, buckets: &[(&str, f64)]) -> f64 {
        let v = hist("h_bucket", &[], buckets);
        let r = values(
            "histogram_fraction",
            vec![FnArg::Scalar(lower), FnArg::Scalar(upper), FnArg::Vector(v)],
            0,
            0,
        );
        r[0].1
    }

    #[test]
    fn fractions_match_prometheus_cases() {
        let pos = [("1", 1.0), ("2", 3.0), ("3", 6.0), ("+Inf", 100.0)];
        let neg = [("-3", 10.0), ("-2", 12.0), ("-1", 15.0), ("+Inf", 100.0)];
        assert_close(fraction(0.0, 1.5, &pos), 0.02);
        assert_close(fraction(-4.0, -2.0, &neg), 0.02);
        assert_close(fraction(f64::NEG_INFINITY, -1.5, &neg), 0.135);
        assert_close(fraction(f64::NEG_INFINITY, f64::INFINITY, &pos), 1.0);
        assert_close(fraction(f64::NEG_INFINITY, f64::INFINITY, &neg), 1.0);
        assert_close(fraction(4.0, 5.0, &pos), 0.0);
        assert_close(fraction(0.0, 1.0, &neg), 0.0);
        assert_close(fraction(2.0, 5.0, &pos), 0.03);
        assert_close(fraction(400.0, f64::INFINITY, &pos), 0.94);
        assert_close(fraction(2.0, 2.0, &pos), 0.0);
        assert_close(fraction(3.0, 2.0, &pos), 0.0);
        assert_close(fraction(0.5, 2.0, &pos), 0.025);
        assert_close(fraction(1.0, 3.0, &pos), 0.05);
        assert_close(fraction(0.0, 1.0, &[("+Inf", 100.0)]), 0.0);
        assert!(fraction(0.0, 5.0, &[("1", 0.0), ("+Inf", 0.0)]).is_nan());
        assert!(fraction(f64::NAN, 1.0, &pos).is_nan());
        assert_close(
            fraction(0.1, 0.75, &[("0.5", 2.5), ("1", 7.5), ("+Inf", 100.0)]),
            0.045,
        );
        let cross = [
            ("-2", 5.0),
            ("-1", 10.0),
            ("0", 15.0),
            ("1", 20.0),
            ("+Inf", 100.0),
        ];
        assert_close(fraction(-1.0, 1.0, &cross), 0.1);
        assert_close(
            fraction(-10.0, -5.0, &[("1", 1.0), ("2", 3.0), ("+Inf", 10.0)]),
            0.0,
        );
        // A lowest bound of 0 opens the histogram to -Inf, not to 0.
        assert_close(
            fraction(-1.0, 0.5, &[("0", 5.0), ("1", 10.0), ("+Inf", 10.0)]),
            0.25,
        );
        assert_close(
            fraction(
                0.0,
                4.0,
                &[
                    ("0", 0.0),
                    ("2", 1.0),
                    ("4", 2.0),
                    ("6", 3.0),
                    ("+Inf", 3.0),
                ],
            ),
            2.0 / 3.0,
        );
    }

    #[test]
    fn native_only_functions_ignore_floats() {
        for f in [
            "histogram_count",
            "histogram_sum",
            "histogram_avg",
            "histogram_stddev",
        ] {
            let r = values(f, vec![FnArg::Vector(testhistogram3())], 0, 0);
            assert!(r.is_empty(), "{f}");
        }
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// A classic histogram with distinct finite bounds plus +Inf and
    /// cumulative (non-decreasing) counts.
    fn histogram(bounds: &[f64], incs: &[f64]) -> Vec<Bucket> {
        let mut bs: Vec<f64> = bounds.to_vec();
        bs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        bs.dedup();
        bs.push(f64::INFINITY);
        let mut count = 0.0;
        bs.iter()
            .zip(incs.iter().cycle())
            .map(|(u, inc)| {
                count += inc;
                Bucket { upper: *u, count }
            })
            .collect()
    }

    proptest! {
        #[test]
        fn fractions_are_shares_and_cover_everything(
            bounds in proptest::collection::vec(-100.0f64..100.0, 1..8),
            incs in proptest::collection::vec(0.0f64..50.0, 1..8),
            a in -200.0f64..200.0,
            b in -200.0f64..200.0,
        ) {
            let h = histogram(&bounds, &incs);
            let total = h.last().map_or(0.0, |b| b.count);
            let f = bucket_fraction(a.min(b), a.max(b), h.clone());
            let all = bucket_fraction(f64::NEG_INFINITY, f64::INFINITY, h);
            if total == 0.0 {
                prop_assert!(f.is_nan() && all.is_nan());
            } else {
                prop_assert!((-1e-12..=1.0 + 1e-12).contains(&f), "fraction {}", f);
                prop_assert!((all - 1.0).abs() < 1e-12);
            }
        }

        #[test]
        fn quantiles_grow_with_q(
            bounds in proptest::collection::vec(-100.0f64..100.0, 1..8),
            incs in proptest::collection::vec(0.5f64..50.0, 1..8),
            q1 in 0.0f64..=1.0,
            q2 in 0.0f64..=1.0,
        ) {
            let h = histogram(&bounds, &incs);
            let (lo, hi) = (q1.min(q2), q1.max(q2));
            let a = bucket_quantile(lo, h.clone()).value;
            let b = bucket_quantile(hi, h).value;
            if !a.is_nan() {
                prop_assert!(a <= b + 1e-9 * b.abs().max(1.0), "{} > {}", a, b);
            }
        }
    }
}
