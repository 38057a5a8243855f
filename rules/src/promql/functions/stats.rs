//! Numeric helpers shared by the function families, each reproducing the Go
//! behaviour Prometheus' results depend on: Kahan–Neumaier summation,
//! the sample quantile, `math.Min`/`math.Max` NaN propagation, and Go's
//! `%g` / OpenMetrics float formatting used inside annotation and label
//! text.

use std::cmp::Ordering;

/// One step of Kahan–Neumaier summation (Prometheus' `kahansum.Inc`):
/// returns the new sum and compensation. The compensation is reset once the
/// sum is infinite, so an overflow is not turned into NaN by `Inf - Inf`.
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
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

/// Orders NaN before every number, as Prometheus' `vectorByValueHeap`.
pub(crate) fn nan_first(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// The φ-quantile of `values` with linear interpolation between the two
/// closest ranks (Prometheus' `quantile`): NaN for no values or φ = NaN,
/// -Inf for φ < 0, +Inf for φ > 1. Sorts `values`.
pub(crate) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| nan_first(*a, *b));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's `math.Min`: NaN if either is NaN, and -0 below +0.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    // Go checks -Inf before NaN: Min(NaN, -Inf) is -Inf.
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

/// Go's `math.Max`: +Inf if either is +Inf (even against NaN), else NaN
/// if either is NaN, and +0 above -0.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_positive() { a } else { b }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `strconv.FormatFloat(v, 'g', -1, 64)` (also `fmt`'s `%g`): the
/// shortest round-trip digits, in exponent form when the decimal exponent
/// is below -4 or at least 6, with a signed two-digit minimum exponent;
/// `NaN`, `+Inf`, `-Inf`.
pub(crate) fn go_format_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // `{:e}` gives the shortest round-trip mantissa and the exponent.
    let sci = format!("{v:e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

/// Go's `strconv.FormatFloat(v, 'g', 2, 64)` (`%.2g`): two significant
/// digits, exponent form when the exponent is below -4 or at least 2.
pub(crate) fn go_format_g2(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let sci = format!("{v:.1e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    // %g drops trailing zeros of the mantissa.
    let mantissa = if mantissa.contains('.') {
        mantissa
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        mantissa
    };
    if !(-4..2).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        // Re-render in positional notation with the rounded value.
        let rounded: f64 = format!("{mantissa}e{exp}").parse().unwrap_or(v);
        format!("{rounded}")
    }
}

/// Prometheus' `labels.FormatOpenMetricsFloat`: like `%g`, but a whole
/// number keeps a `.0` so the label reads as a float (`1.0`, `0.0`).
pub(crate) fn format_openmetrics_float(v: f64) -> String {
    let s = go_format_g(v);
    if v.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn kahan_keeps_small_terms_next_to_large_ones() {
        let mut sum = 0.0;
        let mut c = 0.0;
        for v in [1.0, 1e100, 1.0, -1e100] {
            (sum, c) = kahan_inc(v, sum, c);
        }
        assert_eq!(sum + c, 2.0);
    }

    #[test]
    fn kahan_overflow_stays_infinite() {
        let (s, c) = kahan_inc(f64::MAX, f64::MAX, 0.0);
        assert_eq!(s, f64::INFINITY);
        assert_eq!(c, 0.0);
    }

    #[test]
    fn quantile_interpolates_and_handles_edges() {
        assert_eq!(quantile(0.5, &mut [0.0, 1.0]), 0.5);
        assert_eq!(quantile(0.75, &mut [4.0, 0.0, 1.0]), 2.5);
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
        assert_eq!(quantile(2.0, &mut [1.0]), f64::INFINITY);
        assert!(quantile(f64::NAN, &mut [1.0]).is_nan());
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn go_min_max_propagate_nan() {
        assert!(go_min(f64::NAN, 1.0).is_nan());
        assert!(go_max(1.0, f64::NAN).is_nan());
        assert_eq!(go_min(-2.0, 3.0), -2.0);
        assert_eq!(go_max(-2.0, 3.0), 3.0);
        assert!(go_min(0.0, -0.0).is_sign_negative());
        // Infinities win over NaN, as in Go.
        assert_eq!(go_max(f64::NAN, f64::INFINITY), f64::INFINITY);
        assert_eq!(go_min(f64::NEG_INFINITY, f64::NAN), f64::NEG_INFINITY);
        assert!(go_max(f64::NAN, f64::NEG_INFINITY).is_nan());
        assert!(go_max(-0.0, 0.0).is_sign_positive());
    }

    #[test]
    fn format_g_like_go() {
        assert_eq!(go_format_g(1.5), "1.5");
        assert_eq!(go_format_g(-1.0), "-1");
        assert_eq!(go_format_g(2.0), "2");
        assert_eq!(go_format_g(1e-5), "1e-05");
        assert_eq!(go_format_g(0.0001), "0.0001");
        assert_eq!(go_format_g(1e21), "1e+21");
        assert_eq!(go_format_g(1e6), "1e+06");
        assert_eq!(go_format_g(123456.0), "123456");
        assert_eq!(go_format_g(123456789.0), "1.23456789e+08");
        assert_eq!(go_format_g(f64::NAN), "NaN");
        assert_eq!(go_format_g(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn format_g2_like_go() {
        assert_eq!(go_format_g2(0.5), "0.5");
        assert_eq!(go_format_g2(1.0), "1");
        assert_eq!(go_format_g2(12.0), "12");
        assert_eq!(go_format_g2(123.0), "1.2e+02");
        assert_eq!(go_format_g2(0.000123), "0.00012");
    }

    #[test]
    fn openmetrics_float_keeps_a_decimal_point() {
        assert_eq!(format_openmetrics_float(1.0), "1.0");
        assert_eq!(format_openmetrics_float(0.0), "0.0");
        assert_eq!(format_openmetrics_float(0.25), "0.25");
        assert_eq!(format_openmetrics_float(-0.1), "-0.1");
        assert_eq!(format_openmetrics_float(f64::NAN), "NaN");
    }
}
