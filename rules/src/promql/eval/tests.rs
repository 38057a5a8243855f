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
    let q = crate::promql::parse("m").expect("parse");
    let short = Engine::new(EngineOptions {
        lookback_delta_ms: 5_000,
        ..EngineOptions::default()
    });
    match short.instant_query(&st, &q, 36_000).expect("eval").value {
        Value::Vector(v) => assert!(v.is_empty()),
        other => panic!("{other:?}"),
    }
    let zero = Engine::new(EngineOptions {
        lookback_delta_ms: 0,
        ..EngineOptions::default()
    });
    match zero.instant_query(&st, &q, 36_000).expect("eval").value {
        Value::Vector(v) => assert_eq!(v.len(), 1),
        other => panic!("{other:?}"),
    }
}

fn engine(delayed: bool) -> Engine {
    Engine::new(EngineOptions {
        delayed_name_removal: delayed,
        ..EngineOptions::default()
    })
}

fn range(
    st: &MemStorage,
    q: &str,
    start: i64,
    end: i64,
    step: i64,
) -> Vec<(String, Vec<(i64, f64)>)> {
    let expr = crate::promql::parse(q).expect("parse");
    match Engine::default()
        .range_query(st, &expr, start, end, step)
        .expect("eval")
        .value
    {
        Value::Matrix(m) => m
            .into_iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.samples.iter().map(|p| (p.t, p.v)).collect(),
                )
            })
            .collect(),
        other => panic!("expected matrix, got {other:?}"),
    }
}

fn err(st: &MemStorage, q: &str, t: i64) -> String {
    instant(st, q, t).expect_err("should fail").to_string()
}

fn every_minute(name: &str, n: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
    let _ = name;
    (0..n).map(|i| (i * 60_000, f(i))).collect()
}

#[test]
fn offset_and_negative_offset_shift_the_reference_time() {
    let pts = every_minute("m", 11, |i| i as f64);
    let st = store(&[("m", &pts)]);
    assert_eq!(
        vector(&st, "m offset 2m", 5 * 60_000),
        vec![("m{}".into(), 3.0)]
    );
    assert_eq!(
        vector(&st, "m offset -2m", 5 * 60_000),
        vec![("m{}".into(), 7.0)]
    );
}

#[test]
fn at_modifier_pins_time_including_start_and_end() {
    let pts = every_minute("m", 11, |i| i as f64);
    let st = store(&[("m", &pts)]);
    assert_eq!(vector(&st, "m @ 120", 600_000), vec![("m{}".into(), 2.0)]);
    let got = range(&st, "m @ start()", 60_000, 180_000, 60_000);
    assert_eq!(
        got,
        vec![(
            "m{}".into(),
            vec![(60_000, 1.0), (120_000, 1.0), (180_000, 1.0)]
        )]
    );
    let got = range(&st, "m @ end() offset 1m", 60_000, 180_000, 60_000);
    assert_eq!(
        got,
        vec![(
            "m{}".into(),
            vec![(60_000, 2.0), (120_000, 2.0), (180_000, 2.0)]
        )]
    );
}

#[test]
fn matrix_selector_window_is_left_open() {
    let pts = every_minute("m", 6, |i| i as f64);
    let st = store(&[("m", &pts)]);
    match instant(&st, "m[2m]", 300_000).expect("eval") {
        Value::Matrix(m) => {
            let ts: Vec<i64> = m[0].samples.iter().map(|s| s.t).collect();
            assert_eq!(ts, vec![240_000, 300_000]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        vector(&st, "count_over_time(m[2m])", 300_000),
        vec![("{}".into(), 2.0)]
    );
}

#[test]
fn range_query_matches_instant_queries_at_every_step() {
    let a = every_minute("a", 30, |i| (i * i) as f64);
    let b = every_minute("b", 30, |i| 100.0 - i as f64);
    let st = store(&[("a{job=\"x\"}", &a), ("b{job=\"x\"}", &b)]);
    for q in [
        "rate(a[5m])",
        "a + on(job) b",
        "sum_over_time(a[10m:2m])",
        "a > bool 50",
        "max_over_time(rate(a[3m])[7m:1m] offset 1m)",
    ] {
        let r = range(&st, q, 600_000, 1_500_000, 60_000);
        for (labels, points) in &r {
            for &(t, v) in points {
                let inst = vector(&st, q, t);
                let found = inst.iter().find(|(l, _)| l == labels).expect("same series");
                assert!((found.1 - v).abs() < 1e-9, "{q} at {t}: {} vs {v}", found.1);
            }
        }
        assert!(!r.is_empty(), "{q} returned nothing");
    }
}

#[test]
fn subquery_steps_are_aligned_to_the_epoch() {
    let pts: Vec<(i64, f64)> = (0..200).map(|i| (i * 10_000, i as f64)).collect();
    let st = store(&[("m", &pts)]);
    // Steps of 1m inside (330s - 3m, 330s]: 180s, 240s, 300s.
    match instant(&st, "m[3m:1m]", 330_000).expect("eval") {
        Value::Matrix(m) => {
            let got: Vec<(i64, f64)> = m[0].samples.iter().map(|s| (s.t, s.v)).collect();
            assert_eq!(got, vec![(180_000, 18.0), (240_000, 24.0), (300_000, 30.0)]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn binary_operators_match_vectors_and_drop_names() {
    let st = store(&[
        ("req{job=\"a\",code=\"200\"}", &[(0, 10.0)]),
        ("req{job=\"a\",code=\"500\"}", &[(0, 2.0)]),
        ("limit{job=\"a\"}", &[(0, 4.0)]),
    ]);
    assert_eq!(
        vector(&st, "req / on(job) group_left limit", 0),
        vec![
            ("{code=\"200\", job=\"a\"}".into(), 2.5),
            ("{code=\"500\", job=\"a\"}".into(), 0.5)
        ]
    );
    // Comparison without bool filters and keeps the name.
    assert_eq!(
        vector(&st, "req > 5", 0),
        vec![("req{code=\"200\", job=\"a\"}".into(), 10.0)]
    );
    assert_eq!(
        vector(&st, "req > bool 5", 0),
        vec![
            ("{code=\"200\", job=\"a\"}".into(), 1.0),
            ("{code=\"500\", job=\"a\"}".into(), 0.0)
        ]
    );
    assert_eq!(
        vector(&st, "2 ^ 3 + limit % 3", 0),
        vec![("{job=\"a\"}".into(), 9.0)]
    );
}

#[test]
fn matching_errors_use_prometheus_wording() {
    let st = store(&[
        ("dup{label=\"alpha\"}", &[(0, 1.0)]),
        ("dup{label=\"beta\"}", &[(0, 2.0)]),
        ("one", &[(0, 3.0)]),
    ]);
    assert_eq!(
        err(&st, "one > on() dup", 0),
        "found duplicate series for the match group {} on the right hand-side of the operation: \
         [{__name__=\"dup\", label=\"alpha\"}, {__name__=\"dup\", label=\"beta\"}];many-to-many \
         matching not allowed: matching labels must be unique on one side"
    );
    assert_eq!(
        err(&st, "dup + on() one", 0),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
    let st = store(&[
        ("t1{src=\"a\"}", &[(0, 0.0)]),
        ("t2{src=\"a\"}", &[(0, 1.0)]),
    ]);
    assert_eq!(
        err(&st, "-{__name__=~\"t1|t2\"}", 0),
        "vector cannot contain metrics with the same labelset"
    );
    let q = crate::promql::parse("ceil({__name__=~\"t1|t2\"})").expect("parse");
    assert!(engine(true).instant_query(&st, &q, 0).is_err());
}

#[test]
fn set_operators() {
    let st = store(&[
        ("a{i=\"1\"}", &[(0, 1.0)]),
        ("a{i=\"2\"}", &[(0, 2.0)]),
        ("b{i=\"2\"}", &[(0, 20.0)]),
        ("b{i=\"3\"}", &[(0, 30.0)]),
    ]);
    assert_eq!(vector(&st, "a and b", 0), vec![("a{i=\"2\"}".into(), 2.0)]);
    assert_eq!(
        vector(&st, "a unless b", 0),
        vec![("a{i=\"1\"}".into(), 1.0)]
    );
    assert_eq!(
        vector(&st, "a or b", 0),
        vec![
            ("a{i=\"1\"}".into(), 1.0),
            ("a{i=\"2\"}".into(), 2.0),
            ("b{i=\"3\"}".into(), 30.0)
        ]
    );
    assert_eq!(vector(&st, "a and on() b", 0).len(), 2);
}

#[test]
fn name_dropping_collisions_depend_on_delayed_removal() {
    let st = store(&[
        ("x_total{env=\"1\"}", &[(0, 0.0), (60_000, 60.0)]),
        ("y_total{env=\"1\"}", &[(0, 0.0), (60_000, 120.0)]),
    ]);
    let q = crate::promql::parse("sum by (env) (rate({env=\"1\"}[2m]))").expect("parse");
    assert!(engine(false).instant_query(&st, &q, 60_000).is_err());
    let got = engine(true)
        .instant_query(&st, &q, 60_000)
        .expect("delayed");
    match got.value {
        Value::Vector(v) => assert_eq!(v.len(), 1),
        other => panic!("{other:?}"),
    }
    let q = crate::promql::parse(
        "label_replace(rate({env=\"1\"}[2m]), \"__name__\", \"rate_$1\", \"__name__\", \"(.+)\")",
    )
    .expect("parse");
    match engine(true)
        .instant_query(&st, &q, 60_000)
        .expect("eval")
        .value
    {
        Value::Vector(v) => {
            let mut names: Vec<String> = v
                .iter()
                .map(|s| s.labels.metric_name().to_string())
                .collect();
            names.sort();
            assert_eq!(names, vec!["rate_x_total", "rate_y_total"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn or_matchers_select_the_union() {
    let st = store(&[
        ("m{a=\"1\"}", &[(0, 1.0)]),
        ("m{b=\"2\"}", &[(0, 2.0)]),
        ("m{c=\"3\"}", &[(0, 3.0)]),
    ]);
    assert_eq!(
        vector(&st, "m{a=\"1\" or b=\"2\"}", 0),
        vec![("m{a=\"1\"}".into(), 1.0), ("m{b=\"2\"}".into(), 2.0)]
    );
}

#[test]
fn absent_takes_labels_from_equality_matchers() {
    let st = store(&[("m{job=\"a\"}", &[(0, 1.0)])]);
    assert_eq!(
        vector(
            &st,
            "absent(nope{job=\"x\", env=~\"p.*\", zone=\"z\", zone=\"y\"})",
            0
        ),
        vec![("{job=\"x\"}".into(), 1.0)]
    );
    assert!(vector(&st, "absent(m)", 0).is_empty());
    assert_eq!(
        vector(&st, "absent_over_time(nope{job=\"x\"}[5m])", 0),
        vec![("{job=\"x\"}".into(), 1.0)]
    );
}

#[test]
fn timestamp_returns_the_sample_time() {
    let st = store(&[("m", &[(10_000, 1.0)])]);
    assert_eq!(
        vector(&st, "timestamp(m)", 60_000),
        vec![("{}".into(), 10.0)]
    );
    assert_eq!(
        vector(&st, "timestamp(-m)", 60_000),
        vec![("{}".into(), 60.0)]
    );
}

#[test]
fn scalar_vector_and_time_functions() {
    let st = store(&[
        ("m", &[(0, 5.0)]),
        ("n{a=\"1\"}", &[(0, 1.0)]),
        ("n{a=\"2\"}", &[(0, 2.0)]),
    ]);
    assert!(matches!(instant(&st, "scalar(m)", 0), Ok(Value::Scalar { v, .. }) if v == 5.0));
    assert!(matches!(instant(&st, "scalar(n)", 0), Ok(Value::Scalar { v, .. }) if v.is_nan()));
    assert!(matches!(instant(&st, "time()", 90_000), Ok(Value::Scalar { v, .. }) if v == 90.0));
    assert_eq!(
        vector(&st, "vector(pi())", 0),
        vec![("{}".into(), std::f64::consts::PI)]
    );
    let r = range(&st, "time()", 0, 120_000, 60_000);
    assert_eq!(
        r,
        vec![(
            "{}".into(),
            vec![(0, 0.0), (60_000, 60.0), (120_000, 120.0)]
        )]
    );
}

#[test]
fn range_query_rejects_range_vectors_and_bad_steps() {
    let st = store(&[("m", &[(0, 1.0)])]);
    let q = crate::promql::parse("m[5m]").expect("parse");
    let e = Engine::default()
        .range_query(&st, &q, 0, 60_000, 60_000)
        .expect_err("matrix");
    assert_eq!(
        e.to_string(),
        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
    let q = crate::promql::parse("m").expect("parse");
    assert!(
        Engine::default()
            .range_query(&st, &q, 0, 60_000, 0)
            .is_err()
    );
}

#[test]
fn max_samples_is_enforced() {
    let pts = every_minute("m", 100, |i| i as f64);
    let st = store(&[("m", &pts)]);
    let q = crate::promql::parse("m").expect("parse");
    let small = Engine::new(EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    });
    let e = small
        .range_query(&st, &q, 0, 6_000_000, 60_000)
        .expect_err("too many");
    assert!(matches!(e, EvalError::TooManySamples));
    assert!(small.instant_query(&st, &q, 60_000).is_ok());
    // Refused before anything is allocated for the steps.
    let e = small
        .range_query(&st, &q, 0, i64::MAX, 1)
        .expect_err("steps");
    assert!(matches!(e, EvalError::TooManySamples));
    let sq = crate::promql::parse("max_over_time(m[1h:1ms])").expect("parse");
    let e = small
        .instant_query(&st, &sq, 60_000)
        .expect_err("subquery steps");
    assert!(matches!(e, EvalError::TooManySamples));
}

#[test]
fn step_invariant_expressions_repeat_their_value() {
    let pts = every_minute("m", 11, |i| i as f64);
    let st = store(&[("m", &pts)]);
    let r = range(&st, "sum(m @ 300) + 1", 0, 180_000, 60_000);
    assert_eq!(
        r,
        vec![(
            "{}".into(),
            vec![(0, 6.0), (60_000, 6.0), (120_000, 6.0), (180_000, 6.0)]
        )]
    );
}

#[test]
fn unary_minus_and_scalar_comparisons() {
    let st = store(&[("m", &[(0, 3.0)])]);
    assert_eq!(vector(&st, "-m", 0), vec![("{}".into(), -3.0)]);
    assert!(matches!(instant(&st, "1 < bool 2", 0), Ok(Value::Scalar { v, .. }) if v == 1.0));
    assert_eq!(vector(&st, "5 > m", 0), vec![("m{}".into(), 3.0)]);
    assert!(matches!(instant(&st, "\"hello\"", 0), Ok(Value::String { v, .. }) if v == "hello"));
}

#[test]
fn fill_modifiers_fill_the_missing_side() {
    let st = store(&[
        ("cpu{instance=\"a\",cpu=\"0\"}", &[(0, 1.0)]),
        ("cpu{instance=\"b\",cpu=\"0\"}", &[(0, 1.0)]),
        ("meta{instance=\"a\"}", &[(0, 100.0)]),
        ("meta{instance=\"c\"}", &[(0, 300.0)]),
    ]);
    assert_eq!(
        vector(&st, "meta * on(instance) group_right fill_right(0) cpu", 0),
        vec![
            ("{cpu=\"0\", instance=\"a\"}".into(), 100.0),
            ("{cpu=\"0\", instance=\"b\"}".into(), 0.0)
        ]
    );
    assert_eq!(
        vector(&st, "meta * on(instance) group_right fill_left(1) cpu", 0),
        vec![
            ("{cpu=\"0\", instance=\"a\"}".into(), 100.0),
            ("{instance=\"c\"}".into(), 300.0)
        ]
    );
}

#[test]
fn annotations_name_the_position_of_their_argument() {
    let st = store(&[("x{a=\"1\"}", &[(0, 1.0)]), ("x{a=\"2\"}", &[(0, 2.0)])]);
    let q = crate::promql::parse("sum(sort(x))").expect("parse");
    let res = Engine::default()
        .range_query(&st, &q, 0, 60_000, 60_000)
        .expect("eval");
    assert_eq!(
        res.annotations.warnings,
        vec![
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:5)"
        ]
    );
    let q = crate::promql::parse("quantile(1.5, x)").expect("parse");
    let res = Engine::default().instant_query(&st, &q, 0).expect("eval");
    assert_eq!(
        res.annotations.warnings,
        vec!["PromQL warning: quantile value should be between 0 and 1, got 1.5 (1:10)"]
    );
}

#[test]
fn delayed_removal_merges_series_that_end_up_with_one_labelset() {
    let st = store(&[
        ("metric_a", &[(0, 1.0)]),
        ("metric_b", &[(0, 3.0), (600_000, 4.0)]),
    ]);
    let q = crate::promql::parse("-metric_a or -metric_b").expect("parse");
    for delayed in [false, true] {
        match engine(delayed)
            .range_query(&st, &q, 0, 1_200_000, 600_000)
            .expect("eval")
            .value
        {
            Value::Matrix(m) => {
                assert_eq!(m.len(), 1);
                assert_eq!(m[0].labels, Labels::empty());
                let got: Vec<(i64, f64)> = m[0].samples.iter().map(|s| (s.t, s.v)).collect();
                assert_eq!(got, vec![(0, -1.0), (600_000, -4.0)]);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn info_adds_data_labels_of_the_matching_info_series() {
    let st = store(&[
        (
            "metric{instance=\"a\",job=\"1\"}",
            &[(0, 1.0), (60_000, 2.0), (120_000, 3.0)],
        ),
        (
            "target_info{instance=\"a\",job=\"1\",version=\"old\"}",
            &[(0, 1.0), (60_000, crate::promql::value::stale_nan())],
        ),
        (
            "target_info{instance=\"a\",job=\"1\",version=\"new\"}",
            &[(60_000, 1.0)],
        ),
        (
            "build_info{instance=\"a\",job=\"1\",build=\"b\"}",
            &[(0, 1.0)],
        ),
    ]);
    assert_eq!(
        range(&st, "info(metric)", 0, 60_000, 60_000),
        vec![
            (
                "metric{instance=\"a\", job=\"1\", version=\"new\"}".into(),
                vec![(60_000, 2.0)]
            ),
            (
                "metric{instance=\"a\", job=\"1\", version=\"old\"}".into(),
                vec![(0, 1.0)]
            ),
        ]
    );
    // The info series is read where the selector reads.
    assert_eq!(
        vector(&st, "info(metric offset 1m)", 120_000),
        vec![(
            "metric{instance=\"a\", job=\"1\", version=\"new\"}".into(),
            2.0
        )]
    );
    // Info series are passed through, and a data-label matcher that does
    // not accept "" drops series without a match.
    assert_eq!(
        vector(&st, "info(build_info, {__name__=~\".+_info\"})", 0),
        vec![(
            "build_info{build=\"b\", instance=\"a\", job=\"1\"}".into(),
            1.0
        )]
    );
    assert!(vector(&st, "info(metric, {nope=~\".+\"})", 0).is_empty());
}
