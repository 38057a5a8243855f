//! End to end: the real `tocsin-collector` binary on free ports of
//! 127.0.0.1 takes OTLP metrics and logs over HTTP, answers them through
//! `/api/v1/query` and `/api/v1/logs`, evaluates a recording rule over
//! them, reports itself on `/-/ready` and `/metrics`, and after `kill -9`
//! and a restart still has every acknowledged sample and record; SIGTERM
//! stops it cleanly.

#![expect(
    clippy::unwrap_used,
    reason = "a helper that cannot start the collector or read its answers must fail the test"
)]

mod support;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use support::{
    Collector, error_logs_request, free_port, gauge_request, get_json, get_text, http_client, kv,
    post_protobuf, query, wait_for, wait_ready, write_config,
};

/// The test's resource: service `e2e` on `host-1`, with the instance id
/// when `instance` (the metrics carry it, the logs do not).
fn e2e_resource(instance: bool) -> Resource {
    let mut attributes = vec![kv("service.name", "e2e")];
    if instance {
        attributes.push(kv("service.instance.id", "host-1"));
    }
    attributes.push(kv("host.name", "host-1"));
    Resource {
        attributes,
        ..Resource::default()
    }
}

/// The bodies `/api/v1/logs` returns for `params`.
async fn log_bodies(http: &reqwest::Client, api: SocketAddr, params: &str) -> Vec<String> {
    let body = get_json(http, format!("http://{api}/api/v1/logs?{params}")).await;
    body["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_query_rules_metrics_and_restart_after_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (otlp, api) = (free_port(), free_port());
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(
        dir.path().join("rules/e2e.yaml"),
        "groups:\n  - name: e2e\n    interval: 1s\n    rules:\n      - record: e2e:temperature:max\n        expr: max(e2e_temperature)\n",
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "data_dir: data\nreceivers:\n  otlp:\n    grpc: null\n    http: {{ listen: \"{otlp}\" }}\nruler:\n  rule_files: [\"rules/*.yaml\"]\n  evaluation_interval: 1s\napi:\n  listen: \"{api}\"\n"
        ),
    );
    let http = http_client();

    let c = Collector::start(&config, dir.path().join("first.log"));
    wait_ready(&http, api, &c).await;

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let now_ms = u64::try_from(now.as_millis()).unwrap();
    let points: Vec<(u64, f64)> = (0..3)
        .map(|i| ((now_ms - 3000 + i * 1000) * 1_000_000, 20.0 + i as f64))
        .collect();
    post_protobuf(
        &http,
        format!("http://{otlp}/v1/metrics"),
        gauge_request(e2e_resource(true), "e2e_temperature", &points).encode_to_vec(),
    )
    .await;
    post_protobuf(
        &http,
        format!("http://{otlp}/v1/logs"),
        error_logs_request(
            e2e_resource(false),
            now_ms * 1_000_000,
            &["disk /dev/sda1 failed: I/O error"],
        )
        .encode_to_vec(),
    )
    .await;
    let logs_params = "query=%7Bservice_name%3D%22e2e%22%7D&severity=error&contains=I%2FO";
    assert_eq!(
        log_bodies(&http, api, logs_params).await,
        vec!["disk /dev/sda1 failed: I/O error".to_string()]
    );
    assert!(log_bodies(&http, api, "severity=fatal").await.is_empty());
    let groups: serde_json::Value = serde_json::from_slice(
        &http
            .get(format!("http://{api}/api/v1/error-groups"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(groups["data"][0]["count"], 1, "{groups}");
    assert_eq!(groups["data"][0]["hosts"][0], "host-1", "{groups}");

    // The newest point, as Prometheus would return it.
    let newest_s = (now_ms - 1000) as f64 / 1000.0;
    let got = query(&http, api, "e2e_temperature", newest_s).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, 22.0);
    assert_eq!(got[0].0["job"], "e2e");
    assert_eq!(got[0].0["instance"], "host-1");
    assert_eq!(got[0].0["host_name"], "host-1");
    let oldest_s = (now_ms - 3000) as f64 / 1000.0;
    assert_eq!(
        query(&http, api, "e2e_temperature", oldest_s).await[0].1,
        20.0
    );

    // The ruler evaluates the rule file over what was ingested.
    wait_for("the recording rule's result", &c, || async {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let got = query(&http, api, "e2e:temperature:max", t).await;
        (got.first().map(|s| s.1) == Some(22.0)).then_some(())
    })
    .await;

    // /metrics: the receivers counted the request; the collector's own
    // series reach the store too.
    let text = get_text(&http, format!("http://{api}/metrics")).await;
    assert!(
        text.contains("# TYPE tocsin_receiver_requests_total counter"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "tocsin_receiver_requests_total{signal=\"metrics\"} 1"),
        "{text}"
    );
    assert!(text.contains("tocsin_store_head_series "), "{text}");
    assert!(text.contains("tocsin_logs_stored_records 1"), "{text}");
    assert!(
        text.contains("tocsin_rules_last_reload_successful"),
        "{text}"
    );
    wait_for("self metrics in the store", &c, || async {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        let got = query(
            &http,
            api,
            "tocsin_receiver_requests_total{signal=\"metrics\"}",
            t,
        )
        .await;
        (got.first().map(|s| s.1) == Some(1.0)).then_some(())
    })
    .await;

    c.kill();

    let c = Collector::start(&config, dir.path().join("second.log"));
    wait_ready(&http, api, &c).await;
    for (t_ns, v) in &points {
        let t_s = (*t_ns / 1_000_000) as f64 / 1000.0;
        let got = query(&http, api, "e2e_temperature", t_s).await;
        assert_eq!(
            got.iter().map(|s| s.1).collect::<Vec<_>>(),
            vec![*v],
            "after restart at {t_s}; log:\n{}",
            c.log()
        );
    }

    assert_eq!(
        log_bodies(&http, api, logs_params).await,
        vec!["disk /dev/sda1 failed: I/O error".to_string()],
        "after restart; log:\n{}",
        c.log()
    );

    // SIGTERM: a graceful stop within the shutdown deadline, exit 0.
    let mut c = c;
    c.stop();
    assert!(c.log().contains("stopped"), "{}", c.log());
}
