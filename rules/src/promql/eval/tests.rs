//! Unit tests of the evaluator over a small in-memory store.

use super::*;
use crate::promql::storage::MemStorage;

fn store(series: &[(&str, &[(i64, f64)])]) -> MemStorage {
    let mut st = MemStorage::new();
    for (text, points) in series {
        let labels = parse_labels(text);
        for &(t, v) in *points {
            st.add(&labels, t, v);
        }
    }
    st
}

/// Parses `name{a="b",c="d"}` (test helper; no escapes).
fn parse_labels(text: &str) -> Labels {
    let (name, rest) = match text.find('{') {
        Some(i) => (&text[..i], &text[i + 1..text.len() - 1]),
        None => (text, ""),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.is_empty() {
        pairs.push((METRIC_NAME.to_string(), name.to_string()));
    }
    for kv in rest.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').expect("label");
        pairs.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
    }
    Labels::from_pairs(pairs)
}

fn instant(st: &MemStorage, q: &str, t: i64) -> Result<Value, EvalError> {
    let expr = crate::promql::parse(q).expect("parse");
    Engine::default()
        .instant_query(st, &expr, t)
        .map(|r| r.value)
}

fn vector(st: &MemStorage, q: &str, t: i64) -> Vec<(String, f64)> {
    match instant(st, q, t).expect("eval") {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> =
                v.into_iter().map(|s| (s.labels.to_string(), s.v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("expected vector, got {other:?}"),
    }
}

#[test]
fn vector_selector_uses_lookback_and_staleness() {
    let st = store(&[(
        "m",
        &[
            (0, 0.0),
            (10_000, 1.0),
            (20_000, crate::promql::value::stale_nan()),
            (30_000, 2.0),
        ],
    )]);
    assert_eq!(vector(&st, "m", 10_000), vec![("m{}".to_string(), 1.0)]);
    assert!(vector(&st, "m", 20_000).is_empty());
    assert_eq!(vector(&st, "m", 329_000), vec![("m{}".to_string(), 2.0)]);
    assert!(vector(&st, "m", 330_000).is_empty());
}
