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

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// Longest any one wait of this test may take.
const WAIT: Duration = Duration::from_secs(60);

/// The collector process; killed with SIGKILL when dropped, whatever path
/// the test takes.
struct Collector {
    child: Child,
    log: PathBuf,
}

impl Collector {
    fn start(config: &Path, log: PathBuf) -> Collector {
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tocsin-collector"))
            .arg("--config")
            .arg(config)
            .args(["--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Collector { child, log }
    }

    /// SIGKILL, as a crash would.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

fn gauge_request(points: &[(u64, f64)]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "e2e"),
                    kv("service.instance.id", "host-1"),
                    kv("host.name", "host-1"),
                ],
                ..Resource::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "e2e_temperature".into(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: points
                            .iter()
                            .map(|&(t_ns, v)| NumberDataPoint {
                                time_unix_nano: t_ns,
                                value: Some(number_data_point::Value::AsDouble(v)),
                                ..NumberDataPoint::default()
                            })
                            .collect(),
                    })),
                    ..Metric::default()
                }],
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn log_request(t_ns: u64, body: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "e2e"), kv("host.name", "host-1")],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: t_ns,
                    severity_number: 17,
                    severity_text: "ERROR".into(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue(body.into())),
                    }),
                    ..LogRecord::default()
                }],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// The bodies `/api/v1/logs` returns for `params`.
async fn log_bodies(http: &reqwest::Client, api: SocketAddr, params: &str) -> Vec<String> {
    let r = http
        .get(format!("http://{api}/api/v1/logs?{params}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "logs {params}: {}", r.status());
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `check` until it returns `Some`, at most [`WAIT`].
async fn wait_for<T, F, Fut>(what: &str, c: &Collector, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; collector log:\n{}",
            c.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_ready(http: &reqwest::Client, api: SocketAddr, c: &Collector) {
    wait_for("/-/ready", c, || async {
        let r = http
            .get(format!("http://{api}/-/ready"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
}

/// The values of an instant query at `time_s`, as (labels JSON, value).
async fn query(
    http: &reqwest::Client,
    api: SocketAddr,
    expr: &str,
    time_s: f64,
) -> Vec<(serde_json::Value, f64)> {
    let params = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", expr)
        .append_pair("time", &time_s.to_string())
        .finish();
    let r = http
        .get(format!("http://{api}/api/v1/query?{params}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "query {expr}: {}", r.status());
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["status"], "success", "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let v = s["value"][1].as_str().unwrap().parse::<f64>().unwrap();
            (s["metric"].clone(), v)
        })
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
    let config = dir.path().join("collector.yaml");
    std::fs::write(
        &config,
        format!(
            "data_dir: data\nreceivers:\n  otlp:\n    grpc: null\n    http: {{ listen: \"{otlp}\" }}\nruler:\n  rule_files: [\"rules/*.yaml\"]\n  evaluation_interval: 1s\napi:\n  listen: \"{api}\"\n"
        ),
    )
    .unwrap();
    // In a workspace build reqwest is compiled with the agent's
    // `rustls-no-provider` feature, which requires a process-wide crypto
    // provider even for plain HTTP clients.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let c = Collector::start(&config, dir.path().join("first.log"));
    wait_ready(&http, api, &c).await;

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let now_ms = u64::try_from(now.as_millis()).unwrap();
    let points: Vec<(u64, f64)> = (0..3)
        .map(|i| ((now_ms - 3000 + i * 1000) * 1_000_000, 20.0 + i as f64))
        .collect();
    let body = gauge_request(&points).encode_to_vec();
    let r = http
        .post(format!("http://{otlp}/v1/metrics"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "export: {}", r.status());

    let r = http
        .post(format!("http://{otlp}/v1/logs"))
        .header("content-type", "application/x-protobuf")
        .body(log_request(now_ms * 1_000_000, "disk /dev/sda1 failed: I/O error").encode_to_vec())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "export logs: {}", r.status());
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
    let text = http
        .get(format!("http://{api}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
    let pid = c.child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = c.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no exit after SIGTERM:\n{}",
            c.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}; log:\n{}", c.log());
    assert!(c.log().contains("stopped"), "{}", c.log());
}
