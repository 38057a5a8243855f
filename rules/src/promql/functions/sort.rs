//! `sort`, `sort_desc` (by value, NaN last in both) and the experimental
//! `sort_by_label`, `sort_by_label_desc` (by the named labels in natural
//! order, so `cpu="2"` sorts before `cpu="10"`, then by the whole label
//! set). The elements keep all their labels, metric name included.
//!
//! Natural order is not a strict total order for every pair of strings
//! (`"01"` and `"1"` each compare below the other), so the label sorts use
//! a merge sort that tolerates an inconsistent comparison instead of the
//! standard library's, which may panic on one.

use std::cmp::Ordering;

use super::Args;
use crate::promql::eval::EvalError;
use crate::promql::value::{InstantSample, Vector};

pub(super) fn call(name: &str, args: &mut Args<'_>) -> Result<Vector, EvalError> {
    let mut labels = Vec::new();
    if name.starts_with("sort_by_label") {
        for i in 1..args.len() {
            labels.push(args.string(i)?.to_string());
        }
    }
    let mut v = args.take_vector(0)?;
    match name {
        "sort" => v.sort_by(|a, b| by_value(a, b, false)),
        "sort_desc" => v.sort_by(|a, b| by_value(a, b, true)),
        "sort_by_label" => merge_sort(&mut v, &|a, b| by_labels(a, b, &labels)),
        _ => merge_sort(&mut v, &|a, b| by_labels(a, b, &labels).reverse()),
    }
    Ok(v)
}

/// Ascending (or descending) by value with NaN after every number either
/// way.
fn by_value(a: &InstantSample, b: &InstantSample, desc: bool) -> Ordering {
    match (a.v.is_nan(), b.v.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => {
            let o = a.v.partial_cmp(&b.v).unwrap_or(Ordering::Equal);
            if desc { o.reverse() } else { o }
        }
    }
}

fn by_labels(a: &InstantSample, b: &InstantSample, names: &[String]) -> Ordering {
    for n in names {
        let (x, y) = (a.labels.get(n), b.labels.get(n));
        if x == y {
            continue;
        }
        return if natural_less(x, y) {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    a.labels.cmp(&b.labels)
}

/// Splits `s` into alternating runs of ASCII digits and non-digits.
fn chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut prev_digit: Option<bool> = None;
    for (i, c) in s.char_indices() {
        let d = c.is_ascii_digit();
        if prev_digit.is_some_and(|p| p != d) {
            out.push(&s[start..i]);
            start = i;
        }
        prev_digit = Some(d);
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// Natural-order "less than" as Prometheus' `natsort.Compare`: chunk by
/// chunk, numerically when both chunks are numbers, else as strings; once
/// one side runs out of chunks while equal so far, the shorter one is less.
fn natural_less(a: &str, b: &str) -> bool {
    let ca = chunks(a);
    let cb = chunks(b);
    for (i, x) in ca.iter().enumerate() {
        let Some(y) = cb.get(i) else {
            return false;
        };
        let equal = match (x.parse::<i64>(), y.parse::<i64>()) {
            (Ok(nx), Ok(ny)) => {
                if nx != ny {
                    return nx < ny;
                }
                true
            }
            _ => x == y,
        };
        if !equal {
            return x < y;
        }
        if i == ca.len() - 1 {
            return true;
        }
        if i == cb.len() - 1 {
            return false;
        }
    }
    false
}

/// A stable top-down merge sort; never panics whatever `cmp` answers.
fn merge_sort<T: Clone>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let mid = v.len() / 2;
    merge_sort(&mut v[..mid], cmp);
    merge_sort(&mut v[mid..], cmp);
    let left = v[..mid].to_vec();
    let right = v[mid..].to_vec();
    let (mut i, mut j) = (0, 0);
    for slot in v.iter_mut() {
        let take_left =
            j >= right.len() || (i < left.len() && cmp(&right[j], &left[i]) != Ordering::Less);
        if take_left {
            *slot = left[i].clone();
            i += 1;
        } else {
            *slot = right[j].clone();
            j += 1;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::super::FnArg;
    use super::super::testutil::*;
    use super::*;

    #[test]
    fn sort_puts_nan_last_both_ways() {
        let v = vector(&[
            (&[("i", "a")], 3.0),
            (&[("i", "b")], f64::NAN),
            (&[("i", "c")], 1.0),
            (&[("i", "d")], 2.0),
        ]);
        let up: Vec<f64> = values("sort", vec![FnArg::Vector(v.clone())], 0, 0)
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(&up[..3], &[1.0, 2.0, 3.0]);
        assert!(up[3].is_nan());
        let down: Vec<f64> = values("sort_desc", vec![FnArg::Vector(v)], 0, 0)
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(&down[..3], &[3.0, 2.0, 1.0]);
        assert!(down[3].is_nan());
    }

    #[test]
    fn sort_keeps_the_name() {
        let v = vector(&[(&[("__name__", "m")], 1.0)]);
        assert_eq!(values("sort", vec![FnArg::Vector(v)], 0, 0)[0].0, "m{}");
    }

    #[test]
    fn natural_order() {
        assert!(natural_less("2", "10"));
        assert!(!natural_less("10", "2"));
        assert!(natural_less("4m5", "4m600"));
        assert!(natural_less("4m600", "4m1000"));
        assert!(natural_less("1.2.3", "1.11.3"));
        assert!(natural_less("1.11.3", "1.111.3"));
        assert!(natural_less("a", "b"));
        assert!(natural_less("abc", "abcd"));
    }

    #[test]
    fn sort_by_label_natural_then_full_labelset() {
        let cpus = ["0", "1", "10", "2", "100", "11", "3"];
        let v: Vector = cpus
            .iter()
            .map(|c| crate::promql::InstantSample {
                labels: labels(&[("cpu", c)]),
                t: 0,
                v: 1.0,
            })
            .collect();
        let args = vec![FnArg::Vector(v.clone()), FnArg::String("cpu".into())];
        let got: Vec<String> = values("sort_by_label", args, 0, 0)
            .into_iter()
            .map(|x| x.0)
            .collect();
        let want: Vec<String> = ["0", "1", "2", "3", "10", "11", "100"]
            .iter()
            .map(|c| format!("{{cpu=\"{c}\"}}"))
            .collect();
        assert_eq!(got, want);
        let args = vec![FnArg::Vector(v), FnArg::String("cpu".into())];
        let got: Vec<String> = values("sort_by_label_desc", args, 0, 0)
            .into_iter()
            .map(|x| x.0)
            .collect();
        let mut rev = want;
        rev.reverse();
        assert_eq!(got, rev);
    }

    #[test]
    fn sort_by_label_ties_break_on_labels() {
        let v = vector(&[
            (&[("g", "p"), ("i", "0")], 1.0),
            (&[("g", "c"), ("i", "0")], 2.0),
        ]);
        let args = vec![FnArg::Vector(v), FnArg::String("i".into())];
        let got = values("sort_by_label", args, 0, 0);
        assert_eq!(got[0].0, r#"{g="c", i="0"}"#);
    }

    #[test]
    fn merge_sort_survives_inconsistent_order() {
        let mut v = vec![3, 1, 2, 5, 4];
        merge_sort(&mut v, &|_, _| Ordering::Less);
        assert_eq!(v.len(), 5);
        merge_sort(&mut v, &|a, b| a.cmp(b));
        assert_eq!(v, vec![1, 2, 3, 4, 5]);
    }
}

#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;
    use crate::promql::value::Labels;

    proptest! {
        #[test]
        fn sort_by_label_is_a_permutation(values in proptest::collection::vec("[0-9a]{0,4}", 0..12)) {
            let v: Vector = values
                .iter()
                .enumerate()
                .map(|(i, s)| InstantSample {
                    labels: Labels::from_pairs([("l", s.clone()), ("i", i.to_string())]),
                    t: 0,
                    v: i as f64,
                })
                .collect();
            let mut sorted = v.clone();
            let names = vec!["l".to_string()];
            merge_sort(&mut sorted, &|a, b| by_labels(a, b, &names));
            let mut got: Vec<f64> = sorted.iter().map(|s| s.v).collect();
            got.sort_by(|a, b| a.total_cmp(b));
            let want: Vec<f64> = (0..v.len()).map(|i| i as f64).collect();
            prop_assert_eq!(got, want);
        }
    }
}
