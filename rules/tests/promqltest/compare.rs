//! How results are judged, as Prometheus' promqltest judges them:
//! `almost.Equal` for floats, exact label sets, order only when asked,
//! annotation and error expectations by message or regex.

use std::fmt::Write as _;

use tocsin_rules::promql::value::is_stale;
use tocsin_rules::promql::{QueryResult, Value};

use super::format::{EvalCmd, Expect, ExpectKind, SeqValue, TextMatch};

/// Relative error allowed for sample values (promqltest's `defaultEpsilon`).
pub const EPSILON: f64 = 0.000001;

/// Go's `almost.Equal`.
pub fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if is_stale(a) || is_stale(b) {
        return is_stale(a) && is_stale(b);
    }
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let min_normal = f64::from_bits(0x0010_0000_0000_0000);
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < min_normal {
        return diff < epsilon * min_normal;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

pub fn fmt_value(v: &Value) -> String {
    match v {
        Value::Scalar { v, .. } => format!("scalar {v}"),
        Value::String { v, .. } => format!("string {v:?}"),
        Value::Vector(vec) => {
            let mut s = format!("vector ({} samples)", vec.len());
            for x in vec {
                let _ = write!(s, "\n      {} {}", x.labels, x.v);
            }
            s
        }
        Value::Matrix(m) => {
            let mut s = format!("matrix ({} series)", m.len());
            for x in m {
                let pts: Vec<String> = x
                    .samples
                    .iter()
                    .map(|p| format!("{}@{}", p.v, p.t))
                    .collect();
                let _ = write!(s, "\n      {} [{}]", x.labels, pts.join(" "));
            }
            s
        }
    }
}

/// Prometheus' `compareResult`.
pub fn compare_result(cmd: &EvalCmd, value: &Value) -> Result<(), String> {
    let expect_scalar = cmd.expect_scalar.is_some();
    match value {
        Value::Matrix(m) => {
            if cmd.is_ordered() {
                return Err("expected ordered result, but query returned a matrix".into());
            }
            if expect_scalar {
                return Err("expected scalar result, but got matrix".into());
            }
            assert_matrix_sorted(m)?;
            let mut seen = vec![false; cmd.series.len()];
            for s in m {
                let Some(idx) = cmd.series.iter().position(|e| e.labels == s.labels) else {
                    return Err(format!("unexpected metric {} in result", s.labels));
                };
                seen[idx] = true;
                let exp = &cmd.series[idx];
                let mut expected = Vec::new();
                for (i, e) in exp.values.iter().enumerate() {
                    let t = cmd.start + i as i64 * cmd.step;
                    // An instant eval without `expect range vector` has no
                    // range (Prometheus' zero end time): no point fits.
                    if t > cmd.end || (!cmd.is_range && !cmd.range_vector) {
                        return Err(format!(
                            "expected {} points for {}, but query time range cannot return this many points",
                            exp.values.len(),
                            exp.labels
                        ));
                    }
                    if let SeqValue::Float(f) = e {
                        expected.push((t, *f));
                    }
                }
                if expected.len() != s.samples.len() {
                    return Err(format!(
                        "expected {} float points for {}, but got {}",
                        expected.len(),
                        exp.labels,
                        s.samples.len()
                    ));
                }
                for (i, ((t, f), got)) in expected.iter().zip(&s.samples).enumerate() {
                    if *t != got.t {
                        return Err(format!(
                            "expected float value at index {i} for {} to have timestamp {t}, but it had timestamp {}",
                            exp.labels, got.t
                        ));
                    }
                    if !almost_equal(got.v, *f, EPSILON) {
                        return Err(format!(
                            "expected float value at index {i} (t={t}) for {} to be {f}, but got {}",
                            exp.labels, got.v
                        ));
                    }
                }
            }
            if let Some(i) = seen.iter().position(|s| !s) {
                return Err(format!(
                    "expected metric {} not found",
                    cmd.series[i].labels
                ));
            }
            Ok(())
        }
        Value::Vector(vec) => {
            if expect_scalar {
                return Err("expected scalar result, but got vector".into());
            }
            let mut seen = vec![false; cmd.series.len()];
            for (pos, s) in vec.iter().enumerate() {
                let Some(idx) = cmd.series.iter().position(|e| e.labels == s.labels) else {
                    return Err(format!(
                        "unexpected metric {} in result, has value {}",
                        s.labels, s.v
                    ));
                };
                let exp = &cmd.series[idx];
                if cmd.is_ordered() && exp.pos != pos + 1 {
                    return Err(format!(
                        "expected metric {} at position {} but was at {}",
                        s.labels,
                        exp.pos,
                        pos + 1
                    ));
                }
                let want = match exp.values.first() {
                    Some(SeqValue::Float(f)) => *f,
                    other => {
                        return Err(format!(
                            "expected {other:?} for {} but got float value {}",
                            s.labels, s.v
                        ));
                    }
                };
                if !almost_equal(want, s.v, EPSILON) {
                    return Err(format!("expected {want} for {} but got {}", s.labels, s.v));
                }
                seen[idx] = true;
            }
            if let Some(i) = seen.iter().position(|s| !s) {
                return Err(format!(
                    "expected metric {} with {:?} not found",
                    cmd.series[i].labels, cmd.series[i].values
                ));
            }
            Ok(())
        }
        Value::Scalar { v, .. } => {
            let Some(SeqValue::Float(want)) = cmd.expect_scalar else {
                return Err(format!(
                    "expected vector or matrix result, but got scalar {v}"
                ));
            };
            if !almost_equal(want, *v, EPSILON) {
                return Err(format!("expected scalar {want} but got {v}"));
            }
            Ok(())
        }
        Value::String { v, .. } => {
            let want = cmd.expected_string.as_deref().unwrap_or("");
            if want != v {
                return Err(format!("expected string {want:?} but got {v:?}"));
            }
            Ok(())
        }
    }
}

pub fn assert_matrix_sorted(m: &[tocsin_rules::promql::Series]) -> Result<(), String> {
    for w in m.windows(2) {
        if w[0].labels > w[1].labels {
            return Err(format!(
                "matrix results should always be sorted by labels, but {} sorts after {}",
                w[0].labels, w[1].labels
            ));
        }
    }
    Ok(())
}

/// Strips the ` (line:col)` position Prometheus appends to annotations:
/// Tocsin's annotations carry no positions.
pub fn strip_position(s: &str) -> &str {
    match s.rfind(" (") {
        Some(p)
            if s.ends_with(')')
                && {
                    let inner = &s[p + 2..s.len() - 1];
                    let mut it = inner.split(':');
                    matches!((it.next(), it.next(), it.next()),
                (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()))
                } =>
        {
            &s[..p]
        }
        _ => s,
    }
}

/// Tallies of annotation expectations (`expect warn|info|no_warn|no_info`
/// lines and the legacy `eval_warn`/`eval_info`).
#[derive(Default)]
pub struct AnnoTally {
    pub total: usize,
    pub hold: usize,
    /// Lines that fail only because the expected message names a source
    /// position.
    pub hold_but_position: usize,
}

impl AnnoTally {
    pub fn add(&mut self, other: &AnnoTally) {
        self.total += other.total;
        self.hold += other.hold;
        self.hold_but_position += other.hold_but_position;
    }
}

/// Prometheus' `checkAnnotations`, plus the per-line tally.
pub fn check_annotations(
    cmd: &EvalCmd,
    res: &QueryResult,
    tally: Option<&mut AnnoTally>,
) -> Result<(), String> {
    let warnings = &res.annotations.warnings;
    let infos = &res.annotations.infos;
    let mut first_err: Option<String> = None;
    let mut note = |e: String| {
        if first_err.is_none() {
            first_err = Some(e);
        }
    };
    let mut line_results: Vec<(bool, bool)> = Vec::new();
    if cmd.warn {
        let ok = !warnings.is_empty();
        line_results.push((ok, false));
        if !ok {
            note("expected warnings but got none".into());
        }
    }
    if cmd.info {
        let ok = !infos.is_empty();
        line_results.push((ok, false));
        if !ok {
            note("expected info annotations but got none".into());
        }
    }
    for (kind, actual, what) in [
        (ExpectKind::Warn, warnings, "warn"),
        (ExpectKind::Info, infos, "info"),
    ] {
        let exps: Vec<&Expect> = cmd.expects_of(kind);
        if exps.is_empty() {
            continue;
        }
        let unexpected: Vec<&String> = actual
            .iter()
            .filter(|a| !exps.iter().any(|e| e.text.matches(a)))
            .collect();
        let unexpected_modulo_pos = actual.iter().any(|a| {
            !exps.iter().any(|e| match &e.text {
                TextMatch::Exact(m) => strip_position(m) == a.as_str(),
                t => t.matches(a),
            })
        });
        for e in &exps {
            let matched = actual.iter().any(|a| e.text.matches(a));
            let matched_modulo_pos = actual.iter().any(|a| match &e.text {
                TextMatch::Exact(m) => strip_position(m) == a.as_str(),
                TextMatch::Regex(r) => r.is_match(&format!("{a} (1:1)")) || r.is_match(a),
                TextMatch::Any => true,
            });
            let holds = matched && unexpected.is_empty();
            line_results.push((
                holds,
                !holds && matched_modulo_pos && !unexpected_modulo_pos,
            ));
            if actual.is_empty() {
                note(format!("expected {what} annotations but none were found"));
            } else if !matched {
                note(format!(
                    "expected {what} annotation matching {} but no matching annotation was found, found: {actual:?}",
                    e.text.describe()
                ));
            }
        }
        if let Some(u) = unexpected.first() {
            note(format!("unexpected {what} annotation {u:?} found"));
        }
    }
    for (kind, actual, what) in [
        (ExpectKind::NoWarn, warnings, "warning"),
        (ExpectKind::NoInfo, infos, "info"),
    ] {
        for _ in cmd.expects_of(kind) {
            line_results.push((actual.is_empty(), false));
        }
        if !cmd.expects_of(kind).is_empty() && !actual.is_empty() {
            note(format!("unexpected {what} annotations: {actual:?}"));
        }
    }
    if let Some(t) = tally {
        for (holds, modulo_pos) in line_results {
            t.total += 1;
            if holds {
                t.hold += 1;
            } else if modulo_pos {
                t.hold_but_position += 1;
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn annotation_lines(cmd: &EvalCmd) -> usize {
    usize::from(cmd.warn)
        + usize::from(cmd.info)
        + cmd
            .expects
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    ExpectKind::Warn | ExpectKind::Info | ExpectKind::NoWarn | ExpectKind::NoInfo
                )
            })
            .count()
}

/// Prometheus' `checkExpectedFailure`.
pub fn check_expected_failure(cmd: &EvalCmd, err: &str) -> Result<(), String> {
    if let Some(m) = &cmd.expected_fail_message
        && m != err
    {
        return Err(format!("expected error {m:?}, but got: {err}"));
    }
    if let Some(r) = &cmd.expected_fail_regexp
        && !r.is_match(err)
    {
        return Err(format!(
            "expected error matching pattern {:?}, but got: {err}",
            r.as_str()
        ));
    }
    if let Some(e) = cmd.expects_of(ExpectKind::Fail).first()
        && !e.text.matches(err)
    {
        return Err(format!(
            "expected error matching {}, but got: {err}",
            e.text.describe()
        ));
    }
    Ok(())
}
