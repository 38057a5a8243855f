use super::*;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, Metric, ResourceMetrics,
    ScopeMetrics, Sum, Summary, SummaryDataPoint, summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tocsin_rules::promql::value::is_stale;

const NOW_MS: i64 = 1_700_000_000_000;
const NOW_NS: u64 = 1_700_000_000_000_000_000;

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.to_string())),
        }),
        ..KeyValue::default()
    }
}

/// Translates and leaves out `target_info`, which has its own test.
fn run(tr: &MetricsTranslator, req: &ExportMetricsServiceRequest, now_ms: i64) -> MetricsBatch {
    let mut b = tr.translate(req, now_ms);
    b.samples.retain(|s| s.0.metric_name() != "target_info");
    b
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "api"),
                    kv("service.instance.id", "i-1"),
                    kv("host.name", "web-1"),
                    kv("tocsin.agent.id", "agent-1"),
                ],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn metric(name: &str, unit: &str, data: Data) -> Metric {
    Metric {
        name: name.to_string(),
        unit: unit.to_string(),
        data: Some(data),
        ..Metric::default()
    }
}

fn point(t_ns: u64, v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attrs,
        time_unix_nano: t_ns,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..NumberDataPoint::default()
    }
}

fn sum(delta: bool, monotonic: bool, points: Vec<NumberDataPoint>) -> Data {
    Data::Sum(Sum {
        data_points: points,
        aggregation_temporality: if delta {
            AggregationTemporality::Delta as i32
        } else {
            AggregationTemporality::Cumulative as i32
        },
        is_monotonic: monotonic,
    })
}

/// Samples as `(labels text, t, v)`, in emission order.
fn texts(batch: &MetricsBatch) -> Vec<(String, i64, f64)> {
    batch
        .samples
        .iter()
        .map(|(l, t, v)| (l.to_string(), *t, *v))
        .collect()
}

const RES: &str = r#"host_name="web-1", instance="i-1", job="api", service_name="api""#;

/// The expected text of a series under the test resource.
fn want(name: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("__name__", name),
        ("host_name", "web-1"),
        ("instance", "i-1"),
        ("job", "api"),
        ("service_name", "api"),
    ];
    pairs.extend_from_slice(extra);
    Labels::from_pairs(pairs).to_string()
}

#[test]
fn gauge_and_cumulative_counter() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let req = request(vec![
        metric(
            "system.memory.usage",
            "By",
            sum(
                false,
                false,
                vec![point(NOW_NS, 1024.0, vec![kv("state", "used")])],
            ),
        ),
        metric(
            "system.cpu.time",
            "s",
            sum(
                false,
                true,
                vec![point(NOW_NS + 5_000_000, 12.5, vec![kv("cpu", "0")])],
            ),
        ),
        metric(
            "system.cpu.utilization",
            "1",
            Data::Gauge(Gauge {
                data_points: vec![point(NOW_NS, 0.5, vec![])],
            }),
        ),
    ]);
    let b = run(&tr, &req, NOW_MS);
    assert_eq!(b.data_points, 3);
    assert_eq!(b.refused.total(), 0);
    assert_eq!(
        texts(&b),
        vec![
            (
                format!("system_memory_usage_bytes{{{RES}, state=\"used\"}}"),
                NOW_MS,
                1024.0
            ),
            (
                format!("system_cpu_time_seconds_total{{cpu=\"0\", {RES}}}"),
                NOW_MS + 5,
                12.5
            ),
            (
                format!("system_cpu_utilization_ratio{{{RES}}}"),
                NOW_MS,
                0.5
            ),
        ]
    );
    assert_eq!(b.newest_by_agent, vec![("agent-1".to_string(), NOW_MS + 5)]);
    let agents: Vec<(&str, &str)> = b
        .agents
        .iter()
        .map(|a| (a.id.as_str(), a.host_name.as_str()))
        .collect();
    assert_eq!(agents, [("agent-1", "web-1")]);
}

#[test]
fn target_info_spans_the_resource_samples() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let step_ns = TARGET_INFO_STEP_MS as u64 * 1_000_000;
    let req = request(vec![metric(
        "g",
        "",
        Data::Gauge(Gauge {
            data_points: vec![
                point(NOW_NS, 1.0, vec![]),
                point(NOW_NS + 2 * step_ns + 5_000_000, 2.0, vec![]),
            ],
        }),
    )]);
    let b = tr.translate(&req, NOW_MS + 10 * TARGET_INFO_STEP_MS);
    let info: Vec<(String, i64)> = b
        .samples
        .iter()
        .filter(|s| s.0.metric_name() == "target_info")
        .map(|s| (s.0.to_string(), s.1))
        .collect();
    let labels = Labels::from_pairs([
        ("__name__", "target_info"),
        ("host_name", "web-1"),
        ("instance", "i-1"),
        ("job", "api"),
        ("tocsin_agent_id", "agent-1"),
    ])
    .to_string();
    assert_eq!(
        info,
        vec![
            (labels.clone(), NOW_MS),
            (labels.clone(), NOW_MS + TARGET_INFO_STEP_MS),
            (labels.clone(), NOW_MS + 2 * TARGET_INFO_STEP_MS),
            (labels, NOW_MS + 2 * TARGET_INFO_STEP_MS + 5),
        ]
    );
    // It comes first, ahead of the resource's own samples.
    assert_eq!(b.samples[0].0.metric_name(), "target_info");

    // Points spanning years produce a bounded number of samples.
    let far = request(vec![metric(
        "g",
        "",
        Data::Gauge(Gauge {
            data_points: vec![
                point(1_000_000_000, 1.0, vec![]),
                point(NOW_NS, 2.0, vec![]),
            ],
        }),
    )]);
    let b = tr.translate(&far, NOW_MS);
    let n = b
        .samples
        .iter()
        .filter(|s| s.0.metric_name() == "target_info")
        .count();
    assert_eq!(n as i64, TARGET_INFO_MAX_SAMPLES);

    // No accepted sample, no target_info.
    let b = tr.translate(&request(vec![]), NOW_MS);
    assert!(b.samples.is_empty());
}

#[test]
fn delta_sums_accumulate_and_retries_do_not_double_count() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let send = |t: u64, v: f64| {
        let b = run(
            &tr,
            &request(vec![metric(
                "requests",
                "",
                sum(true, true, vec![point(t, v, vec![])]),
            )]),
            NOW_MS,
        );
        (b.samples.iter().map(|s| s.2).collect::<Vec<_>>(), b.refused)
    };
    assert_eq!(send(NOW_NS, 3.0).0, vec![3.0]);
    assert_eq!(send(NOW_NS + 1_000_000_000, 2.0).0, vec![5.0]);
    // The same point again (a retry): same cumulative value, not 7.
    assert_eq!(send(NOW_NS + 1_000_000_000, 2.0).0, vec![5.0]);
    // An older point is refused, not added.
    let (v, refused) = send(NOW_NS + 500_000_000, 1.0);
    assert!(v.is_empty());
    assert_eq!(refused.delta_out_of_order, 1);
    assert_eq!(send(NOW_NS + 2_000_000_000, 1.0).0, vec![6.0]);
    assert_eq!(tr.delta_series(), 1);
}

#[test]
fn delta_table_is_bounded_and_evicts_idle_series() {
    let tr = MetricsTranslator::new(MetricsOptions {
        max_delta_series: 2,
        delta_idle_ms: 1000,
        ..MetricsOptions::default()
    });
    let send = |series: &str, now_ms: i64| {
        run(
            &tr,
            &request(vec![metric(
                "requests",
                "",
                sum(true, true, vec![point(NOW_NS, 1.0, vec![kv("s", series)])]),
            )]),
            now_ms,
        )
    };
    assert_eq!(send("a", NOW_MS).samples.len(), 1);
    assert_eq!(send("b", NOW_MS).samples.len(), 1);
    let full = send("c", NOW_MS);
    assert!(full.samples.is_empty());
    assert_eq!(full.refused.delta_state_full, 1);
    // Later, a and b are idle and make room.
    assert_eq!(send("c", NOW_MS + 2000).samples.len(), 1);
    assert_eq!(tr.delta_series(), 1);
}

fn hist_point(
    t: u64,
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
    bounds: Vec<f64>,
) -> HistogramDataPoint {
    HistogramDataPoint {
        time_unix_nano: t,
        count,
        sum: Some(sum),
        bucket_counts: buckets,
        explicit_bounds: bounds,
        attributes: vec![kv("route", "/x")],
        ..HistogramDataPoint::default()
    }
}

fn histogram(delta: bool, p: HistogramDataPoint) -> Metric {
    metric(
        "http.server.request.duration",
        "s",
        Data::Histogram(Histogram {
            data_points: vec![p],
            aggregation_temporality: if delta { 1 } else { 2 },
        }),
    )
}

#[test]
fn histograms_become_classic_buckets() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let b = run(
        &tr,
        &request(vec![histogram(
            false,
            hist_point(NOW_NS, 6, 2.5, vec![1, 2, 3], vec![0.1, 1.0]),
        )]),
        NOW_MS,
    );
    let n = "http_server_request_duration_seconds";
    let got: Vec<(String, f64)> = texts(&b).into_iter().map(|(l, _, v)| (l, v)).collect();
    assert_eq!(
        got,
        vec![
            (
                want(&format!("{n}_bucket"), &[("le", "0.1"), ("route", "/x")]),
                1.0
            ),
            (
                want(&format!("{n}_bucket"), &[("le", "1"), ("route", "/x")]),
                3.0
            ),
            (
                want(&format!("{n}_bucket"), &[("le", "+Inf"), ("route", "/x")]),
                6.0
            ),
            (want(&format!("{n}_sum"), &[("route", "/x")]), 2.5),
            (want(&format!("{n}_count"), &[("route", "/x")]), 6.0),
        ]
    );
}

#[test]
fn delta_histograms_accumulate() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    run(
        &tr,
        &request(vec![histogram(
            true,
            hist_point(NOW_NS, 2, 1.0, vec![1, 1, 0], vec![0.1, 1.0]),
        )]),
        NOW_MS,
    );
    let b = run(
        &tr,
        &request(vec![histogram(
            true,
            hist_point(
                NOW_NS + 1_000_000_000,
                3,
                2.0,
                vec![0, 1, 2],
                vec![0.1, 1.0],
            ),
        )]),
        NOW_MS,
    );
    let values: Vec<f64> = b.samples.iter().map(|s| s.2).collect();
    // Buckets 1, 1+2=3, +Inf=5; sum 3; count 5.
    assert_eq!(values, vec![1.0, 3.0, 5.0, 3.0, 5.0]);
}

#[test]
fn mismatched_buckets_are_refused() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let b = run(
        &tr,
        &request(vec![histogram(
            false,
            hist_point(NOW_NS, 2, 1.0, vec![1, 1], vec![0.1, 1.0]),
        )]),
        NOW_MS,
    );
    assert!(b.samples.is_empty());
    assert_eq!(b.refused.invalid_point, 1);
}

#[test]
fn summaries() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let b = run(
        &tr,
        &request(vec![metric(
            "rpc.latency",
            "ms",
            Data::Summary(Summary {
                data_points: vec![SummaryDataPoint {
                    time_unix_nano: NOW_NS,
                    count: 10,
                    sum: 55.0,
                    quantile_values: vec![
                        ValueAtQuantile {
                            quantile: 0.5,
                            value: 4.0,
                        },
                        ValueAtQuantile {
                            quantile: 0.99,
                            value: 9.0,
                        },
                    ],
                    ..SummaryDataPoint::default()
                }],
            }),
        )]),
        NOW_MS,
    );
    let got: Vec<(String, f64)> = texts(&b).into_iter().map(|(l, _, v)| (l, v)).collect();
    assert_eq!(
        got,
        vec![
            (
                want("rpc_latency_milliseconds", &[("quantile", "0.5")]),
                4.0
            ),
            (
                want("rpc_latency_milliseconds", &[("quantile", "0.99")]),
                9.0
            ),
            (want("rpc_latency_milliseconds_sum", &[]), 55.0),
            (want("rpc_latency_milliseconds_count", &[]), 10.0),
        ]
    );
}

#[test]
fn exponential_histograms_and_future_points_are_refused_and_counted() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let future_ns = NOW_NS + 11 * 60 * 1_000_000_000;
    let b = run(
        &tr,
        &request(vec![
            metric(
                "latency",
                "s",
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: vec![ExponentialHistogramDataPoint {
                        time_unix_nano: NOW_NS,
                        ..ExponentialHistogramDataPoint::default()
                    }],
                    aggregation_temporality: 2,
                }),
            ),
            metric(
                "g",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![
                        point(future_ns, 1.0, vec![]),
                        point(NOW_NS + 9 * 60 * 1_000_000_000, 2.0, vec![]),
                        point(0, 3.0, vec![]),
                    ],
                }),
            ),
        ]),
        NOW_MS,
    );
    assert_eq!(b.data_points, 4);
    assert_eq!(b.refused.exponential_histogram, 1);
    assert_eq!(b.refused.future_timestamp, 1);
    assert_eq!(b.refused.missing_timestamp, 1);
    assert_eq!(b.refused.total(), 3);
    assert_eq!(b.samples.len(), 1);
    assert_eq!(b.samples[0].2, 2.0);
    // The refused future point still shows the agent's clock.
    assert_eq!(b.newest_by_agent[0].1, NOW_MS + 11 * 60 * 1000);
    let msg = b.refused.describe();
    assert!(
        msg.contains("1 exponential histograms are not supported"),
        "{msg}"
    );
    assert!(msg.contains("1 timestamp too far in the future"), "{msg}");
}

#[test]
fn no_recorded_value_is_a_staleness_marker_and_nan_is_plain() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let mut stale = point(NOW_NS, 1.0, vec![kv("a", "1")]);
    stale.flags = FLAG_NO_RECORDED_VALUE;
    let sneaky = point(NOW_NS, stale_nan(), vec![kv("a", "2")]);
    let inf = point(NOW_NS, f64::INFINITY, vec![kv("a", "3")]);
    let b = run(
        &tr,
        &request(vec![metric(
            "g",
            "",
            Data::Gauge(Gauge {
                data_points: vec![stale, sneaky, inf],
            }),
        )]),
        NOW_MS,
    );
    assert!(is_stale(b.samples[0].2));
    assert!(b.samples[1].2.is_nan() && !is_stale(b.samples[1].2));
    assert_eq!(b.samples[2].2, f64::INFINITY);

    let mut h = hist_point(NOW_NS, 0, 0.0, vec![], vec![]);
    h.flags = FLAG_NO_RECORDED_VALUE;
    let b = run(&tr, &request(vec![histogram(false, h)]), NOW_MS);
    assert_eq!(b.samples.len(), 3);
    assert!(b.samples.iter().all(|s| is_stale(s.2)));
}

#[test]
fn label_limits_refuse_the_point() {
    let tr = MetricsTranslator::new(MetricsOptions {
        // The longest name under the test resource is service_name (12).
        max_label_value_bytes: 12,
        ..MetricsOptions::default()
    });
    let b = run(
        &tr,
        &request(vec![metric(
            "g",
            "",
            Data::Gauge(Gauge {
                data_points: vec![
                    point(NOW_NS, 1.0, vec![kv("k", "short")]),
                    point(NOW_NS, 1.0, vec![kv("k", "much too long")]),
                    point(NOW_NS, 1.0, vec![kv("much.too.long", "v")]),
                ],
            }),
        )]),
        NOW_MS,
    );
    assert_eq!(b.samples.len(), 1);
    assert_eq!(b.refused.label_limits, 2);
}

#[test]
fn unspecified_temporality_and_bad_names_are_refused() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let mut s = sum(false, true, vec![point(NOW_NS, 1.0, vec![])]);
    if let Data::Sum(ref mut x) = s {
        x.aggregation_temporality = 0;
    }
    let b = run(
        &tr,
        &request(vec![
            metric("x", "", s),
            metric(
                "...",
                "",
                Data::Gauge(Gauge {
                    data_points: vec![point(NOW_NS, 1.0, vec![])],
                }),
            ),
        ]),
        NOW_MS,
    );
    assert!(b.samples.is_empty());
    assert_eq!(b.refused.invalid_point, 1);
    assert_eq!(b.refused.invalid_name, 1);
}

mod delta_property {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever order and repetition delta points arrive in (retries,
        /// replays), each emitted value is the sum of the distinct points
        /// applied so far, every applied point is newer than the one before,
        /// and a point is never counted twice.
        #[test]
        fn delta_points_are_never_counted_twice(
            points in proptest::collection::vec((0u64..20, 0u32..100), 1..60)
        ) {
            let tr = MetricsTranslator::new(MetricsOptions::default());
            let mut applied: Vec<(u64, f64)> = Vec::new();
            for (step, v) in points {
                let t = NOW_NS + step * 1_000_000_000;
                let v = f64::from(v);
                let b = run(&tr,
                    &request(vec![metric("d", "", sum(true, true, vec![point(t, v, vec![])]))]),
                    NOW_MS,
                );
                let last = applied.last().map(|p| p.0);
                match last {
                    Some(l) if t < l => {
                        prop_assert!(b.samples.is_empty());
                        prop_assert_eq!(b.refused.delta_out_of_order, 1);
                    }
                    Some(l) if t == l => {
                        // A retry: the same cumulative value again.
                        let total: f64 = applied.iter().map(|p| p.1).sum();
                        prop_assert_eq!(b.samples.len(), 1);
                        prop_assert_eq!(b.samples[0].2, total);
                    }
                    _ => {
                        applied.push((t, v));
                        let total: f64 = applied.iter().map(|p| p.1).sum();
                        prop_assert_eq!(b.samples.len(), 1);
                        prop_assert_eq!(b.samples[0].2, total);
                        prop_assert_eq!(b.samples[0].1, ns_to_ms(t));
                    }
                }
            }
        }
    }
}

#[test]
fn an_attribute_named_like_the_metric_name_label_does_not_rename_the_series() {
    let tr = MetricsTranslator::new(MetricsOptions::default());
    let req = request(vec![
        metric(
            "queue.depth",
            "",
            Data::Gauge(Gauge {
                data_points: vec![point(NOW_NS, 3.0, vec![kv("__name__", "spoofed")])],
            }),
        ),
        metric(
            "jobs.done",
            "",
            sum(
                false,
                true,
                vec![point(NOW_NS, 7.0, vec![kv("__name__", "spoofed")])],
            ),
        ),
    ]);
    let b = run(&tr, &req, NOW_MS);
    assert_eq!(
        texts(&b),
        vec![
            (want("queue_depth", &[]), NOW_MS, 3.0),
            (want("jobs_done_total", &[]), NOW_MS, 7.0),
        ]
    );
}

/// A request whose points have the given attributes, under the test
/// resource with `host.name` = `host`.
fn gauge_request(
    host: &str,
    name: &str,
    points: Vec<Vec<KeyValue>>,
) -> ExportMetricsServiceRequest {
    let mut req = request(vec![metric(
        name,
        "",
        Data::Gauge(Gauge {
            data_points: points
                .into_iter()
                .enumerate()
                .map(|(i, attrs)| point(NOW_NS, i as f64, attrs))
                .collect(),
        }),
    )]);
    if let Some(r) = req.resource_metrics[0].resource.as_mut() {
        r.attributes.retain(|a| a.key != "host.name");
        r.attributes.push(kv("host.name", host));
    }
    req
}

#[test]
fn cached_label_sets_equal_freshly_built_ones_and_are_shared() {
    let cached = MetricsTranslator::new(MetricsOptions::default());
    let fresh = MetricsTranslator::new(MetricsOptions {
        max_cached_label_sets: 0,
        ..MetricsOptions::default()
    });
    let int = |key: &str, i: i64| KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(i)),
        }),
        ..KeyValue::default()
    };
    let points = || {
        vec![
            vec![kv("cpu", "0"), kv("state", "idle")],
            vec![kv("state", "idle"), kv("cpu", "0")],
            vec![kv("cpu", "01")],
            vec![kv("cpu0", "1")],
            vec![int("cpu", 0)],
            // Dropped attribute (a name that translates to nothing) and
            // names merged after translation.
            vec![kv("", "x"), kv("a.b", "1"), kv("a_b", "2")],
            // Over the limit: refused, never cached.
            vec![kv("big", &"x".repeat(5000))],
            vec![],
        ]
    };
    let mut first_round = Vec::new();
    for round in 0..3 {
        for host in ["web-1", "web-2"] {
            for name in ["m", "n"] {
                let req = gauge_request(host, name, points());
                let a = run(&cached, &req, NOW_MS);
                let b = run(&fresh, &req, NOW_MS);
                assert_eq!(texts(&a), texts(&b), "round {round} {host} {name}");
                assert_eq!(a.dropped_attributes, b.dropped_attributes);
                assert_eq!(a.dropped_attributes, 1);
                assert_eq!(a.refused, b.refused);
                assert_eq!(a.refused.label_limits, 1);
                if round == 0 {
                    first_round.push(a.samples);
                } else {
                    // The very label sets handed out the first time.
                    let i = usize::from(host == "web-2") * 2 + usize::from(name == "n");
                    for (s, f) in a.samples.iter().zip(&first_round[i]) {
                        assert!(s.0.same_storage(&f.0), "{}", s.0);
                    }
                }
            }
        }
    }
    let c = cached.label_cache();
    // 7 cacheable points × 2 hosts × 2 names.
    assert_eq!(c.len(), 28);
    assert_eq!(c.hits(), 2 * 28);
    assert!(fresh.label_cache().is_empty());
}

#[test]
fn the_label_cache_stays_within_its_bound() {
    let tr = MetricsTranslator::new(MetricsOptions {
        max_cached_label_sets: 320,
        ..MetricsOptions::default()
    });
    for host in 0..50 {
        let req = gauge_request(
            &format!("h{host}"),
            "m",
            (0..20).map(|i| vec![kv("i", &i.to_string())]).collect(),
        );
        let batch = run(&tr, &req, NOW_MS);
        assert_eq!(batch.samples.len(), 20);
        assert!(tr.label_cache().len() <= 320);
    }
    assert!(tr.label_cache().evicted() >= 1000 - 320);
}
