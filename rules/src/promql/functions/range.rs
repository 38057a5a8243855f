//! Range-vector functions: the rate family (`rate`, `increase`, `delta`,
//! `irate`, `idelta`), regression (`deriv`, `predict_linear`), `changes`,
//! `resets`, `double_exponential_smoothing`, and the `*_over_time`
//! aggregations, computed per series over the float samples of its window.
//!
//! Every function follows Prometheus 3's arithmetic to the bit where the
//! conformance data depends on it: extrapolation to the window edges with
//! the zero cutoff for counters, counter-reset correction, Kahan–Neumaier
//! summation in `sum_over_time`/`avg_over_time`/the variance and the
//! regression, and the direct-then-incremental mean of `avg_over_time`.
//! A series with no sample in its window produces no output.

use super::stats::{kahan_inc, quantile};
use super::{Args, FnCtx, drop_metadata, metric_name, sample};
use crate::promql::eval::EvalError;
use crate::promql::value::{Sample, Vector};

pub(super) fn call(
    name: &str,
    args: &mut Args<'_>,
    ctx: &mut FnCtx<'_>,
) -> Result<Vector, EvalError> {
    let (matrix, param) = match name {
        "quantile_over_time" => (args.take_matrix(1)?, vec![args.scalar(0)?]),
        "predict_linear" => (args.take_matrix(0)?, vec![args.scalar(1)?]),
        "double_exponential_smoothing" => {
            (args.take_matrix(0)?, vec![args.scalar(1)?, args.scalar(2)?])
        }
        _ => (args.take_matrix(0)?, Vec::new()),
    };
    // Only the two "which sample" functions keep the metric name: their
    // value is still a sample of the input metric.
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let w = Window {
        start: ctx.window_start,
        end: ctx.window_end,
        eval_ts: ctx.eval_ts,
    };
    let mut out = Vector::with_capacity(matrix.len());
    for series in &matrix {
        let pts = &series.samples;
        if pts.is_empty() {
            continue;
        }
        let value = match name {
            "rate" | "increase" => {
                counter_name_info(metric_name(series), ctx);
                extrapolated_rate(pts, &w, true, name == "rate")
            }
            "delta" => extrapolated_rate(pts, &w, false, false),
            "irate" => instant_value(pts, true),
            "idelta" => instant_value(pts, false),
            "deriv" => deriv(pts),
            "predict_linear" => predict_linear(pts, param[0], w.eval_ts),
            "changes" => Some(changes(pts)),
            "resets" => Some(resets(pts)),
            "double_exponential_smoothing" => {
                double_exponential_smoothing(pts, param[0], param[1])?
            }
            "avg_over_time" => Some(avg_over_time(pts)),
            "sum_over_time" => Some(sum_over_time(pts)),
            "count_over_time" => Some(pts.len() as f64),
            "present_over_time" => Some(1.0),
            "min_over_time" => Some(compare_over_time(pts, |cur, best| cur < best).0),
            "max_over_time" => Some(compare_over_time(pts, |cur, best| cur > best).0),
            "ts_of_min_over_time" => Some(seconds(compare_over_time(pts, |c, b| c <= b).1)),
            "ts_of_max_over_time" => Some(seconds(compare_over_time(pts, |c, b| c >= b).1)),
            "last_over_time" => pts.last().map(|p| p.v),
            "first_over_time" => pts.first().map(|p| p.v),
            "ts_of_last_over_time" => pts.last().map(|p| seconds(p.t)),
            "ts_of_first_over_time" => pts.first().map(|p| seconds(p.t)),
            "quantile_over_time" => {
                let q = param[0];
                if q.is_nan() || !(0.0..=1.0).contains(&q) {
                    ctx.annotations.warn(invalid_quantile_warning(q));
                }
                let mut vals: Vec<f64> = pts.iter().map(|p| p.v).collect();
                Some(quantile(q, &mut vals))
            }
            "stdvar_over_time" => Some(variance(pts)),
            "stddev_over_time" => Some(variance(pts).sqrt()),
            "mad_over_time" => Some(mad(pts)),
            _ => {
                return Err(EvalError::Eval(format!(
                    "function {name:?} is not a range-vector function"
                )));
            }
        };
        if let Some(v) = value {
            let labels = if keep_name {
                series.labels.clone()
            } else {
                drop_metadata(&series.labels)
            };
            out.push(sample(labels, v, ctx));
        }
    }
    Ok(out)
}

/// Prometheus' warning for a quantile argument outside [0, 1].
pub(super) fn invalid_quantile_warning(q: f64) -> String {
    format!(
        "PromQL warning: quantile value should be between 0 and 1, got {}",
        super::stats::go_format_g(q)
    )
}

/// `rate` and `increase` on a metric whose name does not look like a
/// counter get Prometheus' info (it cannot know the type otherwise).
fn counter_name_info(name: &str, ctx: &mut FnCtx<'_>) {
    if name.is_empty() {
        return;
    }
    if ["_total", "_sum", "_count", "_bucket"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
    {
        return;
    }
    ctx.annotations.info(format!(
        "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
    ));
}

struct Window {
    /// Exclusive start (ms).
    start: i64,
    /// Inclusive end (ms).
    end: i64,
    eval_ts: i64,
}

fn seconds(t_ms: i64) -> f64 {
    t_ms as f64 / 1000.0
}

/// `rate`, `increase` and `delta`: the difference between the last and
/// first samples (plus every counter reset's lost value for counters),
/// extrapolated towards the window edges. A sample gap longer than 1.1
/// average intervals at an edge means the series starts or ends inside the
/// window, so extrapolation stops half an interval out; a counter is never
/// extrapolated below zero.
fn extrapolated_rate(pts: &[Sample], w: &Window, is_counter: bool, is_rate: bool) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let first = pts[0];
    let last = pts[pts.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        for pair in pts.windows(2) {
            if pair[1].v < pair[0].v {
                result += pair[0].v;
            }
        }
    }
    let mut duration_to_start = (first.t - w.start) as f64 / 1000.0;
    let mut duration_to_end = (w.end - last.t) as f64 / 1000.0;
    let sampled_interval = (last.t - first.t) as f64 / 1000.0;
    let avg_between = sampled_interval / (pts.len() - 1) as f64;
    let threshold = avg_between * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = avg_between / 2.0;
    }
    if is_counter && result > 0.0 && first.v >= 0.0 {
        let duration_to_zero = sampled_interval * (first.v / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = avg_between / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= (w.end - w.start) as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples only. For `irate` a
/// decrease is a counter reset, so the later value is the increase.
fn instant_value(pts: &[Sample], is_rate: bool) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let prev = pts[pts.len() - 2];
    let last = pts[pts.len() - 1];
    let interval = last.t - prev.t;
    if interval == 0 {
        return None;
    }
    let mut v = if is_rate && last.v < prev.v {
        last.v
    } else {
        last.v - prev.v
    };
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// Least-squares regression over the samples with x in seconds relative
/// to `intercept_ms`; returns the slope and the value at `intercept_ms`.
/// A constant series has slope 0 (NaN if the constant is infinite), which
/// avoids the 0/0 of the general formula.
fn linear_regression(pts: &[Sample], intercept_ms: i64) -> (f64, f64) {
    let init_y = pts[0].v;
    let const_y = pts.iter().all(|p| p.v == init_y);
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (mut sum_x, mut c_x) = (0.0, 0.0);
    let (mut sum_y, mut c_y) = (0.0, 0.0);
    let (mut sum_xy, mut c_xy) = (0.0, 0.0);
    let (mut sum_x2, mut c_x2) = (0.0, 0.0);
    let n = pts.len() as f64;
    for p in pts {
        let x = (p.t - intercept_ms) as f64 / 1e3;
        (sum_x, c_x) = kahan_inc(x, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(p.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(x * p.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(x * x, sum_x2, c_x2);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

fn deriv(pts: &[Sample]) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    // Regress around the first sample's time: absolute Unix times squared
    // lose precision.
    Some(linear_regression(pts, pts[0].t).0)
}

fn predict_linear(pts: &[Sample], duration_s: f64, eval_ts: i64) -> Option<f64> {
    if pts.len() < 2 {
        return None;
    }
    let (slope, intercept) = linear_regression(pts, eval_ts);
    Some(slope * duration_s + intercept)
}

fn changes(pts: &[Sample]) -> f64 {
    pts.windows(2)
        .filter(|p| p[1].v != p[0].v && !(p[1].v.is_nan() && p[0].v.is_nan()))
        .count() as f64
}

fn resets(pts: &[Sample]) -> f64 {
    pts.windows(2).filter(|p| p[1].v < p[0].v).count() as f64
}

/// Holt's linear (double exponential) smoothing with smoothing factor `sf`
/// and trend factor `tf`, both strictly between 0 and 1.
fn double_exponential_smoothing(
    pts: &[Sample],
    sf: f64,
    tf: f64,
) -> Result<Option<f64>, EvalError> {
    if sf.is_nan() || sf <= 0.0 || sf >= 1.0 {
        return Err(EvalError::Eval(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
            go_format_f(sf)
        )));
    }
    if tf.is_nan() || tf <= 0.0 || tf >= 1.0 {
        return Err(EvalError::Eval(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {}",
            go_format_f(tf)
        )));
    }
    if pts.len() < 2 {
        return Ok(None);
    }
    let mut s0 = 0.0;
    let mut s1 = pts[0].v;
    let mut b = pts[1].v - pts[0].v;
    for (i, p) in pts.iter().enumerate().skip(1) {
        let x = sf * p.v;
        // The trend of the first step is the initial difference itself.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Ok(Some(s1))
}

/// Go's `%f`: six decimals, `NaN`, `+Inf`, `-Inf`.
fn go_format_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v:.6}")
    }
}

fn sum_over_time(pts: &[Sample]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for p in pts {
        (sum, c) = kahan_inc(p.v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// The mean by direct Kahan summation while the sum stays finite (more
/// accurate), switching to an incremental mean once it would overflow.
fn avg_over_time(pts: &[Sample]) -> f64 {
    let mut sum = pts[0].v;
    let mut count = 1.0;
    let mut mean = 0.0;
    let mut c = 0.0;
    let mut incremental = false;
    for (i, p) in pts.iter().enumerate().skip(1) {
        count = (i + 1) as f64;
        if !incremental {
            let (new_sum, new_c) = kahan_inc(p.v, sum, c);
            if !new_sum.is_infinite() {
                sum = new_sum;
                c = new_c;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(p.v / count, q * mean, q * c);
    }
    if incremental {
        mean + c
    } else {
        sum / count + c / count
    }
}

/// The population variance by Welford's method with compensated sums.
fn variance(pts: &[Sample]) -> f64 {
    let mut count = 0.0;
    let (mut mean, mut c_mean) = (0.0, 0.0);
    let (mut aux, mut c_aux) = (0.0, 0.0);
    for p in pts {
        count += 1.0;
        let delta = p.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (p.v - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// The median absolute deviation around the median. A NaN sample makes
/// the result NaN instead of being sorted aside.
fn mad(pts: &[Sample]) -> f64 {
    if pts.iter().any(|p| p.v.is_nan()) {
        return f64::NAN;
    }
    let mut vals: Vec<f64> = pts.iter().map(|p| p.v).collect();
    let median = quantile(0.5, &mut vals);
    let mut dev: Vec<f64> = pts.iter().map(|p| (p.v - median).abs()).collect();
    quantile(0.5, &mut dev)
}

/// The extreme value under `better` and its timestamp; a NaN current best
/// is always replaced, so NaN wins only when every value is NaN.
fn compare_over_time(pts: &[Sample], better: impl Fn(f64, f64) -> bool) -> (f64, i64) {
    let mut best = pts[0].v;
    let mut ts = pts[0].t;
    for p in pts {
        if better(p.v, best) || best.is_nan() {
            best = p.v;
            ts = p.t;
        }
    }
    (best, ts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::super::FnArg;
    use super::super::testutil::*;

    const M: i64 = 60_000;

    /// A series with one sample every `step_ms` from 0, for each value.
    fn seq(pairs: &[(&str, &str)], step_ms: i64, vals: &[f64]) -> crate::promql::Series {
        let pts: Vec<(i64, f64)> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * step_ms, *v))
            .collect();
        series(pairs, &pts)
    }

    /// Keeps the samples of `s` inside `(end - range, end]`.
    fn window(s: &crate::promql::Series, end: i64, range: i64) -> crate::promql::Series {
        let mut s = s.clone();
        s.samples.retain(|p| p.t > end - range && p.t <= end);
        s
    }

    fn one(name: &str, s: crate::promql::Series, end: i64, range: i64) -> Option<f64> {
        let w = window(&s, end, range);
        let v = values(name, vec![FnArg::Matrix(vec![w])], end, range);
        v.first().map(|x| x.1)
    }

    fn lin(start: f64, step: f64, n: usize) -> Vec<f64> {
        (0..=n).map(|i| start + step * i as f64).collect()
    }

    #[test]
    fn increase_extrapolates_with_zero_cutoff() {
        // functions.test "Tests for increase()".
        let foo = seq(&[("path", "/foo")], 5 * M, &lin(0.0, 10.0, 10));
        assert_eq!(one("increase", foo.clone(), 50 * M, 50 * M), Some(100.0));
        let mut bar = lin(0.0, 18.0, 5);
        bar.extend(lin(0.0, 18.0, 5));
        let bar = seq(&[("path", "/bar")], 5 * M, &bar);
        assert_eq!(one("increase", bar.clone(), 50 * M, 50 * M), Some(160.0));
        assert_eq!(one("increase", bar, 50 * M, 100 * M), Some(162.0));
        let dings = seq(&[], 5 * M, &lin(10.0, 10.0, 10));
        assert_eq!(one("increase", dings, 50 * M, 100 * M), Some(105.0));
        let bumms = seq(&[], 5 * M, &lin(1.0, 10.0, 10));
        assert_eq!(one("increase", bumms, 50 * M, 100 * M), Some(101.0));
        assert_eq!(one("increase", foo, 50 * M, 100 * M), Some(100.0));
    }

    #[test]
    fn increase_counts_a_decrease_as_a_reset() {
        let s = seq(&[], 5 * M, &[0.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]);
        assert_eq!(one("increase", s, 30 * M, 30 * M), Some(7.0));
    }

    #[test]
    fn rate_handles_resets_and_needs_two_samples() {
        let mut v = lin(0.0, 27.0, 4);
        v.extend(lin(0.0, 27.0, 5));
        let s = seq(&[], 5 * M, &v);
        assert_close(one("rate", s, 50 * M, 50 * M).unwrap_or(f64::NAN), 0.08);
        let mut v = lin(0.0, 10.0, 9);
        v.extend([0.0, 10.0]);
        let s = seq(&[], 5 * M, &v);
        assert_eq!(one("rate", s.clone(), 50 * M, 5 * M), None);
        assert_eq!(one("rate", s, 50 * M, 6 * M), Some(0.0));
    }

    #[test]
    fn rate_zero_cutoff_for_left_extrapolation() {
        for (start, want) in [(0.0, 0.5), (60.0, 0.55), (120.0, 0.6), (300.0, 0.6)] {
            let s = seq(&[], 4 * M, &lin(start, 240.0, 10));
            assert_close(one("rate", s, 10 * M, 20 * M).unwrap_or(f64::NAN), want);
        }
    }

    #[test]
    fn rate_on_non_counter_name_adds_info() {
        let s = seq(&[("__name__", "requests")], M, &[1.0, 2.0]);
        let (r, ann) = run("rate", vec![FnArg::Matrix(vec![s])], M, 2 * M);
        assert!(r.is_ok());
        assert_eq!(
            ann.infos,
            vec![
                "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"requests\""
            ]
        );
        let s = seq(&[("__name__", "requests_total")], M, &[1.0, 2.0]);
        let (_, ann) = run("increase", vec![FnArg::Matrix(vec![s])], M, 2 * M);
        assert!(ann.is_empty());
    }

    #[test]
    fn rate_drops_the_metric_name() {
        let s = seq(&[("__name__", "x_total"), ("a", "1")], M, &[1.0, 2.0]);
        let v = values("rate", vec![FnArg::Matrix(vec![s])], M, 2 * M);
        assert_eq!(v[0].0, r#"{a="1"}"#);
    }

    #[test]
    fn delta_is_not_corrected_for_resets() {
        let s = seq(&[], 5 * M, &[200.0, 150.0, 100.0, 50.0, 0.0]);
        assert_eq!(one("delta", s, 20 * M, 20 * M), Some(-200.0));
    }

    #[test]
    fn irate_and_idelta_use_the_last_two_samples() {
        let mut v = lin(0.0, 10.0, 5);
        v.extend(lin(0.0, 10.0, 5));
        let s = seq(&[], 5 * M, &v);
        assert_eq!(one("irate", s, 30 * M, 50 * M), Some(0.0));
        let s = seq(&[], 5 * M, &lin(0.0, 10.0, 10));
        assert_close(
            one("irate", s, 50 * M, 50 * M).unwrap_or(f64::NAN),
            1.0 / 30.0,
        );
        let s = seq(&[], 5 * M, &[0.0, 50.0, 100.0, 50.0]);
        assert_eq!(one("idelta", s, 15 * M, 20 * M), Some(-50.0));
        let s = seq(&[], 5 * M, &[1.0, f64::NAN]);
        assert!(one("irate", s, 5 * M, 15 * M).unwrap_or(0.0).is_nan());
    }

    #[test]
    fn deriv_and_predict_linear_match_prometheus() {
        let mut v = lin(0.0, 10.0, 4);
        v.extend(lin(0.0, 10.0, 5));
        let s = seq(&[], 5 * M, &v);
        assert_close(
            one("deriv", s.clone(), 50 * M, 100 * M).unwrap_or(f64::NAN),
            0.010606060606060607,
        );
        let w = window(&s, 50 * M, 50 * M);
        let p = values(
            "predict_linear",
            vec![FnArg::Matrix(vec![w]), FnArg::Scalar(3600.0)],
            50 * M,
            50 * M,
        );
        assert_close(p[0].1, 70.0);
        let w = window(&s, 50 * M, 55 * M);
        let p = values(
            "predict_linear",
            vec![FnArg::Matrix(vec![w]), FnArg::Scalar(3600.0)],
            10 * M,
            55 * M,
        );
        assert_close(p[0].1, 51.36363636363637);
    }

    #[test]
    fn deriv_of_infinite_values_is_nan() {
        let mut v = vec![f64::NEG_INFINITY];
        v.extend(lin(0.0, 80.0, 10));
        v.push(f64::INFINITY);
        let s = seq(&[], 5 * M, &v);
        assert!(one("deriv", s, 100 * M, 100 * M).unwrap_or(0.0).is_nan());
        let s = seq(&[], 5 * M, &[f64::INFINITY, f64::INFINITY]);
        assert!(one("deriv", s, 5 * M, 10 * M).unwrap_or(0.0).is_nan());
    }

    #[test]
    fn changes_and_resets() {
        let foo = seq(
            &[],
            5 * M,
            &[1.0, 2.0, 3.0, 0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0],
        );
        assert_eq!(one("resets", foo.clone(), 50 * M, 50 * M), Some(3.0));
        assert_eq!(one("changes", foo.clone(), 50 * M, 50 * M), Some(7.0));
        assert_eq!(one("resets", foo, 50 * M, 5 * M), None);
        let nan = seq(&[], 5 * M, &[f64::NAN, f64::NAN, f64::NAN]);
        assert_eq!(one("changes", nan, 15 * M, 20 * M), Some(0.0));
        let c = seq(&[], 5 * M, &[0.0, f64::NAN, 0.0]);
        assert_eq!(one("changes", c, 15 * M, 20 * M), Some(2.0));
    }

    #[test]
    fn sum_and_avg_over_time_are_compensated() {
        let s = seq(&[], 10_000, &[1.0, 1e100, 1.0, -1e100]);
        assert_eq!(one("sum_over_time", s.clone(), M, 2 * M), Some(2.0));
        assert_eq!(one("avg_over_time", s, M, 2 * M), Some(0.5));
        let big: f64 = "9.988465674311579e+307".parse().unwrap();
        let s = seq(&[], 10_000, &[big, big]);
        assert_eq!(one("avg_over_time", s.clone(), 55_000, M), Some(big));
        assert_eq!(one("sum_over_time", s, 55_000, M), Some(f64::INFINITY));
        let s = seq(&[], 10_000, &[-big, big]);
        assert_eq!(one("avg_over_time", s, 55_000, M), Some(0.0));
        let s = seq(&[], 10_000, &[52.0; 101]);
        assert_eq!(one("avg_over_time", s, 10 * M, 130_000), Some(52.0));
    }

    #[test]
    fn avg_over_time_of_extreme_magnitudes() {
        let s = seq(&[], 5_000, &[1e10, 1e-6, 1e-6, 1e-6, 1e-6, 1e-6]);
        assert_close(
            one("avg_over_time", s, 55_000, M).unwrap_or(f64::NAN),
            1.6666666666666675e9,
        );
        let v = [
            -1.78264e215,
            0.76342771,
            1.9592258,
            2.258e220,
            7.69805412,
            1.78264e215,
            -458.90154,
        ];
        let s = seq(&[], 5_000, &v);
        assert_close(
            one("avg_over_time", s, 55_000, M).unwrap_or(f64::NAN),
            3.225714285714286e219,
        );
    }

    #[test]
    fn avg_over_time_infinities() {
        let s = seq(
            &[],
            10_000,
            &[1.0, 2.0, 3.0, f64::INFINITY, f64::NEG_INFINITY],
        );
        assert!(one("avg_over_time", s, 55_000, M).unwrap_or(0.0).is_nan());
        let s = seq(&[], 10_000, &[f64::INFINITY, 0.0, f64::INFINITY]);
        assert_eq!(one("avg_over_time", s, 55_000, M), Some(f64::INFINITY));
    }

    #[test]
    fn min_max_with_nan() {
        let s = seq(&[], 10_000, &[f64::NAN, 0.0, 1.0]);
        assert_eq!(one("min_over_time", s.clone(), M, 2 * M), Some(0.0));
        assert_eq!(one("max_over_time", s, M, 2 * M), Some(1.0));
        let s = seq(&[], 10_000, &[2.0, f64::NAN, 1.0]);
        assert_eq!(one("min_over_time", s, M, 2 * M), Some(1.0));
        let s = seq(&[], 10_000, &[f64::NAN, f64::NAN]);
        assert!(one("max_over_time", s, M, 2 * M).unwrap_or(0.0).is_nan());
    }

    #[test]
    fn ts_of_functions() {
        let s = seq(&[], 10_053, &[1.0, 2.0, 3.0, 0.0, 5.0, 6.0, 2.0, 1.0, 4.0]);
        assert_eq!(
            one("ts_of_min_over_time", s.clone(), 90_000, 90_000),
            Some(30.159)
        );
        assert_eq!(one("ts_of_max_over_time", s, 90_000, 90_000), Some(50.265));
        let s = seq(&[], 10_053, &[1.0, 2.0, 3.0]);
        assert_eq!(
            one("ts_of_last_over_time", s.clone(), 95_000, 90_000),
            Some(20.106)
        );
        assert_eq!(
            one("ts_of_first_over_time", s, 95_000, 90_000),
            Some(10.053)
        );
    }

    #[test]
    fn last_and_first_keep_the_name() {
        let s = seq(&[("__name__", "data")], 10_000, &[2.0, 0.0, 3.0]);
        let v = values(
            "last_over_time",
            vec![FnArg::Matrix(vec![s.clone()])],
            M,
            2 * M,
        );
        assert_eq!(v, vec![("data{}".to_string(), 3.0)]);
        let v = values(
            "first_over_time",
            vec![FnArg::Matrix(vec![s.clone()])],
            M,
            2 * M,
        );
        assert_eq!(v, vec![("data{}".to_string(), 2.0)]);
        let v = values("count_over_time", vec![FnArg::Matrix(vec![s])], M, 2 * M);
        assert_eq!(v, vec![("{}".to_string(), 3.0)]);
    }

    #[test]
    fn empty_series_give_no_output() {
        let s = seq(&[("a", "1")], 10_000, &[]);
        for f in [
            "present_over_time",
            "count_over_time",
            "last_over_time",
            "sum_over_time",
        ] {
            let v = values(f, vec![FnArg::Matrix(vec![s.clone()])], M, 2 * M);
            assert!(v.is_empty(), "{f}");
        }
    }

    #[test]
    fn stddev_and_stdvar() {
        let s = seq(&[], 10_000, &[0.0, 8.0, 8.0, 2.0, 3.0]);
        assert_close(
            one("stdvar_over_time", s.clone(), M, 2 * M).unwrap_or(f64::NAN),
            10.56,
        );
        assert_close(
            one("stddev_over_time", s, M, 2 * M).unwrap_or(f64::NAN),
            10.56f64.sqrt(),
        );
        let c = 1.5990505637277868;
        let s = seq(&[], 10_000, &[c, c, c]);
        assert_eq!(one("stdvar_over_time", s, 55_000, M), Some(0.0));
    }

    #[test]
    fn mad_over_time_cases() {
        let s = seq(&[], 10_000, &[4.0, 6.0, 2.0, 1.0, 999.0, 1.0, 2.0]);
        assert_eq!(one("mad_over_time", s, 70_000, 70_000), Some(1.0));
        let s = seq(&[], 10_000, &[7.0; 5]);
        assert_eq!(one("mad_over_time", s, 40_000, 50_000), Some(0.0));
        let s = seq(&[], 10_000, &[1.0, 2.0, f64::NAN, 4.0]);
        assert!(
            one("mad_over_time", s, 30_000, 40_000)
                .unwrap_or(0.0)
                .is_nan()
        );
    }

    #[test]
    fn quantile_over_time_warns_out_of_range() {
        let s = seq(&[("test", "three")], 10_000, &[0.0, 1.0, 2.0]);
        let w = window(&s, M, 2 * M);
        let v = values(
            "quantile_over_time",
            vec![FnArg::Scalar(0.75), FnArg::Matrix(vec![w.clone()])],
            M,
            2 * M,
        );
        assert_eq!(v[0].1, 1.5);
        let (r, ann) = run(
            "quantile_over_time",
            vec![FnArg::Scalar(2.0), FnArg::Matrix(vec![w])],
            M,
            2 * M,
        );
        assert_eq!(r.map(|v| v[0].v).ok(), Some(f64::INFINITY));
        assert_eq!(
            ann.warnings,
            vec!["PromQL warning: quantile value should be between 0 and 1, got 2"]
        );
    }

    #[test]
    fn double_exponential_smoothing_follows_trend() {
        let mut v = lin(0.0, 10.0, 1000);
        v.extend(lin(100.0, 30.0, 1000));
        let s = seq(&[], 10_000, &v);
        let w = window(&s, 8_000_000, M);
        let r = values(
            "double_exponential_smoothing",
            vec![
                FnArg::Matrix(vec![w.clone()]),
                FnArg::Scalar(0.01),
                FnArg::Scalar(0.1),
            ],
            8_000_000,
            M,
        );
        assert_close(r[0].1, 8000.0);
        let (r, _) = run(
            "double_exponential_smoothing",
            vec![
                FnArg::Matrix(vec![w]),
                FnArg::Scalar(1.0),
                FnArg::Scalar(0.1),
            ],
            8_000_000,
            M,
        );
        match r {
            Err(e) => assert_eq!(
                e.to_string(),
                "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000"
            ),
            Ok(v) => panic!("expected an error, got {v:?}"),
        }
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// Samples at strictly increasing times inside a 10-minute window
    /// ending at 600 s, with values from `vals`.
    fn samples(gaps: &[i64], vals: &[f64]) -> Vec<Sample> {
        let mut t = 0;
        gaps.iter()
            .zip(vals)
            .map(|(g, v)| {
                t += g;
                Sample { t, v: *v }
            })
            .collect()
    }

    fn window() -> Window {
        Window {
            start: 0,
            end: 600_000,
            eval_ts: 600_000,
        }
    }

    proptest! {
        #[test]
        fn counter_increase_is_never_negative_and_rate_is_its_mean(
            gaps in proptest::collection::vec(1i64..30_000, 2..20),
            vals in proptest::collection::vec(0.0f64..1e6, 20),
        ) {
            let pts = samples(&gaps, &vals);
            let w = window();
            let inc = extrapolated_rate(&pts, &w, true, false);
            let rate = extrapolated_rate(&pts, &w, true, true);
            let (Some(inc), Some(rate)) = (inc, rate) else {
                return Err(TestCaseError::fail("two samples give a result"));
            };
            prop_assert!(inc >= 0.0);
            prop_assert!((rate * 600.0 - inc).abs() <= 1e-9 * inc.abs().max(1.0));
        }

        #[test]
        fn quantile_and_mean_stay_within_the_values(
            gaps in proptest::collection::vec(1i64..30_000, 1..20),
            vals in proptest::collection::vec(-1e9f64..1e9, 20),
            q in 0.0f64..=1.0,
        ) {
            let pts = samples(&gaps, &vals);
            let lo = pts.iter().map(|p| p.v).fold(f64::INFINITY, f64::min);
            let hi = pts.iter().map(|p| p.v).fold(f64::NEG_INFINITY, f64::max);
            let mut v: Vec<f64> = pts.iter().map(|p| p.v).collect();
            let qv = quantile(q, &mut v);
            prop_assert!(qv >= lo && qv <= hi);
            let avg = avg_over_time(&pts);
            let slack = 1e-9 * lo.abs().max(hi.abs());
            prop_assert!(avg >= lo - slack && avg <= hi + slack);
            prop_assert!(variance(&pts) >= 0.0);
        }

        #[test]
        fn resets_are_changes(
            gaps in proptest::collection::vec(1i64..30_000, 1..20),
            vals in proptest::collection::vec(0.0f64..10.0, 20),
        ) {
            let pts = samples(&gaps, &vals.iter().map(|v| v.floor()).collect::<Vec<_>>());
            let c = changes(&pts);
            let r = resets(&pts);
            prop_assert!(r <= c);
            prop_assert!(c <= (pts.len() - 1) as f64);
        }
    }
}
