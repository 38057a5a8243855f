//! `label_replace` and `label_join`: rewrite one label of every element and
//! keep the value and every other label (the metric name too, unless it is
//! the label being written). An empty result removes the label.
//!
//! Arguments are validated before the vector is looked at, as Prometheus
//! does, so a bad regex or label name fails even on an empty vector. Label
//! names follow Prometheus 3's UTF-8 rule: any non-empty string.

use regex::Regex;

use super::{Args, FnCtx, sample};
use crate::promql::eval::EvalError;
use crate::promql::value::Vector;

/// `label_replace(v, dst, replacement, src, regex)`: where `regex` matches
/// the whole value of `src`, sets `dst` to `replacement` with `$1`,
/// `${name}` expanded from the match.
pub(super) fn label_replace(args: &mut Args<'_>, ctx: &mut FnCtx<'_>) -> Result<Vector, EvalError> {
    let dst = args.string(1)?.to_string();
    let replacement = args.string(2)?.to_string();
    let src = args.string(3)?.to_string();
    let regex_src = args.string(4)?.to_string();
    // Anchored, with `.` matching newlines, as Prometheus compiles it.
    let regex = Regex::new(&format!("^(?s:{regex_src})$")).map_err(|_| {
        EvalError::Eval(format!(
            "invalid regular expression in label_replace(): {regex_src}"
        ))
    })?;
    if !valid_label_name(&dst) {
        return Err(EvalError::Eval(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let input = args.take_vector(0)?;
    let mut out = Vector::with_capacity(input.len());
    for s in input {
        let value = s.labels.get(&src);
        let labels = match regex.captures(value) {
            Some(caps) => {
                let mut res = String::new();
                caps.expand(&replacement, &mut res);
                s.labels.with(&dst, &res)
            }
            None => s.labels.clone(),
        };
        out.push(sample(labels, s.v, ctx));
    }
    Ok(out)
}

/// `label_join(v, dst, separator, src...)`: sets `dst` to the values of the
/// `src` labels (missing ones count as empty) joined by `separator`.
pub(super) fn label_join(args: &mut Args<'_>, ctx: &mut FnCtx<'_>) -> Result<Vector, EvalError> {
    let dst = args.string(1)?.to_string();
    let sep = args.string(2)?.to_string();
    let mut srcs = Vec::with_capacity(args.len().saturating_sub(3));
    for i in 3..args.len() {
        let src = args.string(i)?.to_string();
        if !valid_label_name(&src) {
            return Err(EvalError::Eval(format!(
                "invalid source label name in label_join(): {src}"
            )));
        }
        srcs.push(src);
    }
    if !valid_label_name(&dst) {
        return Err(EvalError::Eval(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let input = args.take_vector(0)?;
    let mut out = Vector::with_capacity(input.len());
    for s in input {
        let joined = srcs
            .iter()
            .map(|src| s.labels.get(src))
            .collect::<Vec<_>>()
            .join(&sep);
        out.push(sample(s.labels.with(&dst, &joined), s.v, ctx));
    }
    Ok(out)
}

/// Prometheus 3 accepts any non-empty UTF-8 label name (Rust strings are
/// always valid UTF-8).
fn valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::super::FnArg;
    use super::super::testutil::*;
    use crate::promql::eval::EvalError;
    use crate::promql::value::Vector;

    fn testmetric() -> Vector {
        vector(&[
            (
                &[
                    ("__name__", "testmetric"),
                    ("src", "source-value-10"),
                    ("dst", "original-destination-value"),
                ],
                0.0,
            ),
            (
                &[
                    ("__name__", "testmetric"),
                    ("src", "source-value-20"),
                    ("dst", "original-destination-value"),
                ],
                1.0,
            ),
        ])
    }

    fn replace(v: Vector, strs: [&str; 4]) -> Result<Vec<String>, EvalError> {
        let mut args = vec![FnArg::Vector(v)];
        args.extend(strs.iter().map(|s| FnArg::String(s.to_string())));
        run("label_replace", args, 0, 0)
            .0
            .map(|v| v.into_iter().map(|s| s.labels.to_string()).collect())
    }

    fn join(v: Vector, strs: &[&str]) -> Result<Vec<String>, EvalError> {
        let mut args = vec![FnArg::Vector(v)];
        args.extend(strs.iter().map(|s| FnArg::String(s.to_string())));
        run("label_join", args, 0, 0)
            .0
            .map(|v| v.into_iter().map(|s| s.labels.to_string()).collect())
    }

    #[test]
    fn replace_full_match_with_groups() {
        let r = replace(
            testmetric(),
            ["dst", "destination-value-$1", "src", "source-value-(.*)"],
        );
        assert_eq!(
            r.ok(),
            Some(vec![
                r#"testmetric{dst="destination-value-10", src="source-value-10"}"#.to_string(),
                r#"testmetric{dst="destination-value-20", src="source-value-20"}"#.to_string(),
            ])
        );
        let r = replace(
            testmetric(),
            ["dst", "$1-value-$2", "src", "(.*)-value-(.*)"],
        );
        assert!(
            r.ok()
                .is_some_and(|v| v[0].contains(r#"dst="source-value-10""#))
        );
    }

    #[test]
    fn replace_needs_a_whole_match() {
        let r = replace(
            testmetric(),
            ["dst", "destination-value-$1", "src", "value-(.*)"],
        );
        assert!(
            r.ok()
                .is_some_and(|v| v[0].contains("original-destination-value"))
        );
    }

    #[test]
    fn replace_missing_source_matches_empty() {
        let r = replace(testmetric(), ["dst", "value-$1", "nonexistent-src", "(.*)"]);
        assert!(r.ok().is_some_and(|v| v[0].contains(r#"dst="value-""#)));
        let r = replace(
            testmetric(),
            ["dst", "value-$1", "nonexistent-src", "source-value-(.*)"],
        );
        assert!(
            r.ok()
                .is_some_and(|v| v[0].contains("original-destination-value"))
        );
    }

    #[test]
    fn replace_with_empty_removes_the_label() {
        let r = replace(testmetric(), ["dst", "", "dst", ".*"]);
        assert_eq!(
            r.ok().map(|v| v[0].clone()),
            Some(r#"testmetric{src="source-value-10"}"#.to_string())
        );
    }

    #[test]
    fn replace_errors() {
        let r = replace(testmetric(), ["dst", "value-$1", "src", "(.*"]);
        assert_eq!(
            r.err().map(|e| e.to_string()),
            Some("invalid regular expression in label_replace(): (.*".to_string())
        );
        let r = replace(Vec::new(), ["", "", "src", "(.*)"]);
        assert!(r.is_err());
        // Removing the only distinguishing label leaves two equal sets.
        let r = replace(testmetric(), ["src", "", "", ""]);
        assert!(r.is_err());
    }

    #[test]
    fn join_in_order_and_with_missing_sources() {
        let v = vector(&[(
            &[
                ("__name__", "t"),
                ("src", "a"),
                ("src1", "b"),
                ("src2", "c"),
            ],
            0.0,
        )]);
        let r = join(v.clone(), &["dst", "-", "src", "src1", "src2"]);
        assert!(r.ok().is_some_and(|v| v[0].contains(r#"dst="a-b-c""#)));
        let r = join(v.clone(), &["dst", "-", "src", "src3", "src1"]);
        assert!(r.ok().is_some_and(|v| v[0].contains(r#"dst="a--b""#)));
        let r = join(v, &["src", ", "]);
        assert_eq!(
            r.ok().map(|v| v[0].clone()),
            Some(r#"t{src1="b", src2="c"}"#.to_string())
        );
    }

    #[test]
    fn join_into_duplicates_fails() {
        let v = vector(&[
            (&[("__name__", "dup"), ("label", "a"), ("this", "a")], 1.0),
            (&[("__name__", "dup"), ("label", "b"), ("this", "a")], 1.0),
        ]);
        let r = join(v, &["label", "", "this"]);
        assert_eq!(
            r.err().map(|e| e.to_string()),
            Some("vector cannot contain metrics with the same labelset".to_string())
        );
    }
}
