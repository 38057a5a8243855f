//! Element-wise float functions of an instant vector: `abs`, `ceil`,
//! `floor`, `exp`, `sqrt`, `ln`, `log2`, `log10`, the trigonometric and
//! hyperbolic functions, `rad`, `deg`, `sgn`, `round` and the `clamp`
//! family. Each drops the metric name (the value is no longer the metric)
//! and keeps every other label. NaN propagates as in Go's `math` package.

use super::stats::{go_max, go_min};
use super::{Args, FnCtx, drop_metadata, sample};
use crate::promql::eval::EvalError;
use crate::promql::value::Vector;

pub(super) fn call(
    name: &str,
    args: &mut Args<'_>,
    ctx: &mut FnCtx<'_>,
) -> Result<Vector, EvalError> {
    let input = args.take_vector(0)?;
    let f: Box<dyn Fn(f64) -> f64> = match name {
        "abs" => Box::new(f64::abs),
        "ceil" => Box::new(f64::ceil),
        "floor" => Box::new(f64::floor),
        "exp" => Box::new(f64::exp),
        "sqrt" => Box::new(f64::sqrt),
        "ln" => Box::new(f64::ln),
        "log2" => Box::new(f64::log2),
        "log10" => Box::new(f64::log10),
        "sin" => Box::new(f64::sin),
        "cos" => Box::new(f64::cos),
        "tan" => Box::new(f64::tan),
        "asin" => Box::new(f64::asin),
        "acos" => Box::new(f64::acos),
        "atan" => Box::new(f64::atan),
        "sinh" => Box::new(f64::sinh),
        "cosh" => Box::new(f64::cosh),
        "tanh" => Box::new(f64::tanh),
        "asinh" => Box::new(f64::asinh),
        "acosh" => Box::new(f64::acosh),
        "atanh" => Box::new(f64::atanh),
        "rad" => Box::new(|v| v * std::f64::consts::PI / 180.0),
        "deg" => Box::new(|v| v * 180.0 / std::f64::consts::PI),
        "sgn" => Box::new(sgn),
        "round" => {
            let to_nearest = if args.len() >= 2 {
                args.scalar(1)?
            } else {
                1.0
            };
            // Multiplying by the inverse gives fewer representation errors
            // than dividing (Prometheus does the same).
            let inv = 1.0 / to_nearest;
            Box::new(move |v: f64| (v * inv + 0.5).floor() / inv)
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let (lo, hi) = match name {
                "clamp" => (args.scalar(1)?, args.scalar(2)?),
                "clamp_min" => (args.scalar(1)?, f64::INFINITY),
                _ => (f64::NEG_INFINITY, args.scalar(1)?),
            };
            // An empty interval selects nothing.
            if hi < lo {
                return Ok(Vector::new());
            }
            Box::new(move |v| go_max(lo, go_min(hi, v)))
        }
        _ => {
            return Err(EvalError::Eval(format!(
                "function {name:?} is not a float function"
            )));
        }
    };
    Ok(input
        .into_iter()
        .map(|s| sample(drop_metadata(&s.labels), f(s.v), ctx))
        .collect())
}

/// -1, 0 or 1 by sign; NaN and ±0 unchanged.
fn sgn(v: f64) -> f64 {
    if v < 0.0 {
        -1.0
    } else if v > 0.0 {
        1.0
    } else {
        v
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::super::FnArg;
    use super::super::testutil::*;

    fn apply(name: &str, extra: &[f64], v: f64) -> Option<f64> {
        let mut args = vec![FnArg::Vector(vector(&[(&[("__name__", "m")], v)]))];
        args.extend(extra.iter().map(|x| FnArg::Scalar(*x)));
        values(name, args, 0, 0).first().map(|x| x.1)
    }

    #[test]
    fn rounding_functions() {
        assert_eq!(apply("round", &[], 2.5), Some(3.0));
        assert_eq!(apply("round", &[], -2.5), Some(-2.0));
        assert_eq!(apply("round", &[0.1], 1.234), Some(1.2));
        assert_eq!(apply("round", &[5.0], 12.0), Some(10.0));
        assert_eq!(apply("ceil", &[], 2.5), Some(3.0));
        assert_eq!(apply("floor", &[], -2.5), Some(-3.0));
        assert_eq!(apply("abs", &[], f64::NEG_INFINITY), Some(f64::INFINITY));
        assert!(apply("round", &[], f64::NAN).unwrap_or(0.0).is_nan());
    }

    #[test]
    fn clamp_family() {
        assert_eq!(apply("clamp", &[-25.0, 75.0], 100.0), Some(75.0));
        assert_eq!(apply("clamp", &[-25.0, 75.0], -50.0), Some(-25.0));
        assert_eq!(apply("clamp_min", &[-25.0], -50.0), Some(-25.0));
        assert_eq!(apply("clamp_max", &[75.0], 100.0), Some(75.0));
        assert!(
            apply("clamp", &[0.0, f64::NAN], 1.0)
                .unwrap_or(0.0)
                .is_nan()
        );
        assert!(
            apply("clamp", &[f64::NAN, 0.0], 1.0)
                .unwrap_or(0.0)
                .is_nan()
        );
        assert_eq!(apply("clamp", &[5.0, -5.0], 1.0), None);
    }

    #[test]
    fn sgn_and_logs() {
        assert_eq!(apply("sgn", &[], -50.0), Some(-1.0));
        assert_eq!(apply("sgn", &[], f64::INFINITY), Some(1.0));
        assert_eq!(apply("sgn", &[], 0.0), Some(0.0));
        assert!(apply("sgn", &[], f64::NAN).unwrap_or(0.0).is_nan());
        assert_eq!(apply("ln", &[], 0.0), Some(f64::NEG_INFINITY));
        assert!(apply("log2", &[], -10.0).unwrap_or(0.0).is_nan());
        assert_eq!(apply("log10", &[], 10.0), Some(1.0));
        assert_close(apply("exp", &[], 10.0).unwrap_or(0.0), 22026.465794806718);
        assert_close(
            apply("deg", &[], std::f64::consts::PI).unwrap_or(0.0),
            180.0,
        );
        assert_close(
            apply("rad", &[], 180.0).unwrap_or(0.0),
            std::f64::consts::PI,
        );
    }

    #[test]
    fn name_is_dropped_other_labels_kept() {
        let args = vec![FnArg::Vector(vector(&[(
            &[("__name__", "m"), ("a", "b")],
            1.0,
        )]))];
        let v = values("sqrt", args, 0, 0);
        assert_eq!(v, vec![(r#"{a="b"}"#.to_string(), 1.0)]);
    }
}
