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
            Some(caps) => s.labels.with(&dst, &go_expand(&replacement, &caps)),
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

/// Expands `$1`, `${1}`, `$name`, `${name}` and `$$` in `template` as Go's
/// `Regexp.ExpandString` does: a name is the longest run of letters, digits
/// and `_` (so `$1x` is the group named `1x`), a number with a leading zero
/// is a name, a missing or unmatched group expands to nothing, and a `$`
/// not followed by a name stays as it is.
fn go_expand(template: &str, caps: &regex::Captures<'_>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = go_group_ref(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let group = match go_group_number(name) {
            Some(n) => caps.get(n),
            None => caps.name(name),
        };
        if let Some(m) = group {
            out.push_str(m.as_str());
        }
    }
    out.push_str(rest);
    out
}

/// The group reference at the start of `s` (just after a `$`) and the
/// text after it.
fn go_group_ref(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphabetic() || c.is_numeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let after = &body[end..];
    if braced {
        let after = after.strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, after))
}

/// A group name that is a plain decimal number without a leading zero.
fn go_group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || (name.len() > 1 && name.starts_with('0')) {
        return None;
    }
    // Go gives up on numbers from 1e8 up; no regex has that many groups.
    name.parse::<usize>().ok().filter(|n| *n < 100_000_000)
}

/// Prometheus 3 accepts any non-empty UTF-8 label name.
fn valid_label_name(name: &str) -> bool {
    crate::promql::value::is_valid_label_name(name)
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
    fn replacement_templates_expand_like_go() {
        let re = regex::Regex::new("^(?s:(?P<a>x)(y))$").unwrap();
        let caps = re.captures("xy").unwrap();
        let cases = [
            ("$1-$2", "x-y"),
            ("${1}0", "x0"),
            ("$10", ""),
            ("$1x", ""),
            ("$01", ""),
            ("$a$$", "x$"),
            ("${a}b", "xb"),
            ("$", "$"),
            ("$-", "$-"),
            ("${a", "${a"),
            ("$3", ""),
        ];
        for (template, want) in cases {
            assert_eq!(super::go_expand(template, &caps), want, "{template}");
        }
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
