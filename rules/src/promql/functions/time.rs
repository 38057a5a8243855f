//! Calendar functions (`year`, `month`, `day_of_month`, `day_of_year`,
//! `day_of_week`, `days_in_month`, `hour`, `minute`), always in UTC. Each
//! element's value is read as Unix seconds (truncated to whole seconds, as
//! Go's `int64()` conversion); without an argument the evaluation time is
//! used and the result is one sample with no labels.

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};

use super::{Args, FnCtx, drop_metadata, sample};
use crate::promql::eval::EvalError;
use crate::promql::value::{Labels, Vector};

pub(super) fn call(
    name: &str,
    args: &mut Args<'_>,
    ctx: &mut FnCtx<'_>,
) -> Result<Vector, EvalError> {
    let part: fn(&DateTime<Utc>) -> f64 = match name {
        "year" => |t| f64::from(t.year()),
        "month" => |t| f64::from(t.month()),
        "day_of_month" => |t| f64::from(t.day()),
        "day_of_year" => |t| f64::from(t.ordinal()),
        // Sunday is 0, as Go's time.Weekday.
        "day_of_week" => |t| f64::from(t.weekday().num_days_from_sunday()),
        "days_in_month" => |t| days_in_month(t.year(), t.month()),
        "hour" => |t| f64::from(t.hour()),
        "minute" => |t| f64::from(t.minute()),
        _ => {
            return Err(EvalError::Eval(format!(
                "function {name:?} is not a calendar function"
            )));
        }
    };
    if args.len() == 0 {
        // Integer division truncates towards zero, as Go's `enh.Ts / 1000`.
        let v = at(ctx.eval_ts / 1000, part);
        return Ok(vec![sample(Labels::empty(), v, ctx)]);
    }
    let input = args.take_vector(0)?;
    Ok(input
        .into_iter()
        .map(|s| {
            // Go converts NaN and infinities to an arbitrary integer (and so
            // an arbitrary date); NaN says "no date" instead.
            let v = if s.v.is_finite() {
                at(s.v as i64, part)
            } else {
                f64::NAN
            };
            sample(drop_metadata(&s.labels), v, ctx)
        })
        .collect())
}

/// `part` of the UTC time `secs`, or NaN when the time is outside what a
/// calendar can express.
fn at(secs: i64, part: fn(&DateTime<Utc>) -> f64) -> f64 {
    match DateTime::<Utc>::from_timestamp(secs, 0) {
        Some(t) => part(&t),
        None => f64::NAN,
    }
}

fn days_in_month(year: i32, month: u32) -> f64 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    match (
        NaiveDate::from_ymd_opt(year, month, 1),
        NaiveDate::from_ymd_opt(ny, nm, 1),
    ) {
        (Some(a), Some(b)) => (b - a).num_days() as f64,
        _ => f64::NAN,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::super::FnArg;
    use super::super::testutil::*;

    fn of(name: &str, secs: f64) -> f64 {
        let args = vec![FnArg::Vector(vector(&[(&[("__name__", "t")], secs)]))];
        let v = values(name, args, 0, 0);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, "{}");
        v[0].1
    }

    #[test]
    fn parts_of_a_known_time() {
        // 2006-01-02 22:04:05 UTC, a Monday.
        let t = 1136239445.0;
        assert_eq!(of("year", t), 2006.0);
        assert_eq!(of("month", t), 1.0);
        assert_eq!(of("day_of_month", t), 2.0);
        assert_eq!(of("day_of_year", t), 2.0);
        assert_eq!(of("day_of_week", t), 1.0);
        assert_eq!(of("hour", t), 22.0);
        assert_eq!(of("minute", t), 4.0);
    }

    #[test]
    fn leap_years_and_month_lengths() {
        assert_eq!(of("days_in_month", 1454284800.0), 29.0);
        assert_eq!(of("days_in_month", 1485907200.0), 28.0);
        assert_eq!(of("day_of_year", 1483191420.0), 366.0);
        assert_eq!(of("day_of_year", 1672493820.0), 365.0);
        assert_eq!(of("year", 1230767999.0), 2008.0);
        assert_eq!(of("year", 1230768000.0), 2009.0);
        assert_eq!(of("days_in_month", 1703980800.0), 31.0);
    }

    #[test]
    fn non_finite_times_have_no_date() {
        assert!(of("year", f64::NAN).is_nan());
        assert!(of("hour", f64::INFINITY).is_nan());
        assert!(of("month", 1e300).is_nan());
    }

    #[test]
    fn without_argument_uses_evaluation_time() {
        let v = values("day_of_week", vec![], 0, 0);
        assert_eq!(v, vec![("{}".to_string(), 4.0)]);
        let v = values("year", vec![], 1_136_239_445_000, 0);
        assert_eq!(v, vec![("{}".to_string(), 2006.0)]);
    }
}
