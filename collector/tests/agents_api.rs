//! End to end: the real `tocsin-collector` binary learns an agent from
//! the resource attributes of its OTLP metrics (`tocsin.agent.id`,
//! `tocsin.agent.version`, `tocsin.agent.interval`), lists it at
//! `/api/v1/agents`, and writes `tocsin_agent_up` into its own store: 1
//! while the agent reports, 0 once it is silent for more than three
//! intervals; after `kill -9` and a restart the agent is still known and
//! down until it reports again; `DELETE /api/v1/agents/{id}` forgets it and
//! ends its series at once.

#![expect(
    clippy::unwrap_used,
    reason = "a helper that cannot start the collector or read its answers must fail the test"
)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use support::{
    Collector, free_port, gauge_request, get_json, get_text, http_client, now_ms, plain_config,
    post_protobuf, query, wait_for, wait_ready, write_config,
};

const AGENT: &str = "agent-e2e-1";
const UP: &str = "tocsin_agent_up{tocsin_agent_id=\"agent-e2e-1\"}";

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..KeyValue::default()
    }
}

/// One report of an agent: a heartbeat gauge under its resource.
fn report(id: &str, host: &str, interval: Value) -> ExportMetricsServiceRequest {
    let resource = Resource {
        attributes: vec![
            kv("service.name", Value::StringValue("host".into())),
            kv("host.name", Value::StringValue(host.into())),
            kv("tocsin.agent.id", Value::StringValue(id.into())),
            kv("tocsin.agent.version", Value::StringValue("9.8.7".into())),
            kv("tocsin.agent.interval", interval),
        ],
        ..Resource::default()
    };
    gauge_request(resource, "e2e_heartbeat", &[(now_ms() * 1_000_000, 1.0)])
}

async fn send(http: &reqwest::Client, otlp: SocketAddr, interval: Value) {
    post_protobuf(
        http,
        format!("http://{otlp}/v1/metrics"),
        report(AGENT, "host-e2e", interval).encode_to_vec(),
    )
    .await;
}

/// Sends a report every 200 ms until dropped.
struct Reporter {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    fn start(http: &reqwest::Client, otlp: SocketAddr, interval: Value) -> Reporter {
        let stop = Arc::new(AtomicBool::new(false));
        let (http, flag) = (http.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                send(&http, otlp, interval.clone()).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Reporter { stop, task }
    }

    /// Stops after the report in flight, which is then acknowledged.
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
    }
}

/// `DELETE /api/v1/agents/{id}`: the status and the JSON answer.
async fn forget(
    http: &reqwest::Client,
    api: SocketAddr,
    id: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    let r = http
        .delete(format!("http://{api}/api/v1/agents/{id}"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = r.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// The inventory as `GET /api/v1/agents` returns it.
async fn agents(http: &reqwest::Client, api: SocketAddr) -> Vec<serde_json::Value> {
    let body = get_json(http, format!("http://{api}/api/v1/agents")).await;
    body["data"].as_array().unwrap().clone()
}

/// `tocsin_agent_up` of the test's agent now, as the query API answers
/// it: `None` when there is no such series.
async fn up_now(http: &reqwest::Client, api: SocketAddr) -> Option<(serde_json::Value, f64)> {
    let result = query(http, api, UP, now_ms() as f64 / 1000.0).await;
    assert!(result.len() <= 1, "{result:?}");
    result.into_iter().next()
}

async fn wait_up(http: &reqwest::Client, api: SocketAddr, c: &Collector, want: f64) {
    wait_for(&format!("{UP} == {want}"), c, || async {
        let got = up_now(http, api).await?;
        (got.1 == want).then_some(())
    })
    .await;
}

/// The agent's stored interval, read from the collector's database the
/// way an operator's sqlite3 would (WAL mode allows a concurrent reader).
fn stored_interval_ms(db: &Path) -> Option<i64> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    conn.query_row(
        "SELECT interval_ms FROM agent WHERE id = ?1",
        [AGENT],
        |r| r.get(0),
    )
    .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_are_listed_go_down_survive_a_restart_and_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (otlp, grpc, api) = (free_port(), free_port(), free_port());
    let config = write_config(dir.path(), &plain_config(grpc, otlp, api));
    let http = http_client();

    let c = Collector::start(&config, dir.path().join("first.log"));
    wait_ready(&http, api, &c).await;
    assert!(agents(&http, api).await.is_empty());

    // Reporting every 200 ms with a 1 s interval (as a string, which is
    // valid): up.
    let started_ms = now_ms();
    let reporter = Reporter::start(&http, otlp, Value::StringValue("1".into()));
    wait_up(&http, api, &c, 1.0).await;
    let (labels, _) = up_now(&http, api).await.unwrap();
    assert_eq!(
        labels,
        serde_json::json!({
            "__name__": "tocsin_agent_up",
            "host_name": "host-e2e",
            "tocsin_agent_id": AGENT,
        })
    );
    let list = agents(&http, api).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let a = &list[0];
    assert_eq!(a["id"], AGENT);
    assert_eq!(a["host_name"], "host-e2e");
    assert_eq!(a["service_name"], "host");
    assert_eq!(a["version"], "9.8.7");
    assert_eq!(a["interval_seconds"], 1);
    assert_eq!(a["address"], "127.0.0.1");
    assert_eq!(a["up"], true);
    assert!(a["clock_skew_seconds"].is_number(), "{a}");
    let first_seen = chrono::DateTime::parse_from_rfc3339(a["first_seen"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(
        first_seen >= i64::try_from(started_ms).unwrap() - 1000,
        "{a}"
    );
    chrono::DateTime::parse_from_rfc3339(a["last_seen"].as_str().unwrap()).unwrap();

    // Over gRPC too, with the peer address; listed by host name first.
    let mut client = MetricsServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    client
        .export(report("agent-grpc", "a-host", Value::DoubleValue(2.5)))
        .await
        .unwrap();
    // An agent that only sends logs is an agent too.
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    kv("host.name", Value::StringValue("b-host".into())),
                    kv("tocsin.agent.id", Value::StringValue("agent-logs".into())),
                ],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: now_ms() * 1_000_000,
                    severity_number: 9,
                    body: Some(AnyValue {
                        value: Some(Value::StringValue("started".into())),
                    }),
                    ..LogRecord::default()
                }],
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    };
    post_protobuf(
        &http,
        format!("http://{otlp}/v1/logs"),
        logs.encode_to_vec(),
    )
    .await;
    let list = agents(&http, api).await;
    let ids: Vec<&str> = list.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["agent-grpc", "agent-logs", AGENT], "{list:?}");
    assert_eq!(list[0]["address"], "127.0.0.1", "{list:?}");
    assert_eq!(list[0]["interval_seconds"], 2.5, "{list:?}");
    // No interval given: the default 10 s; no version: empty.
    assert_eq!(list[1]["interval_seconds"], 10, "{list:?}");
    assert_eq!(list[1]["version"], "", "{list:?}");
    for id in ["agent-grpc", "agent-logs"] {
        let (status, body) = forget(&http, api, id).await;
        assert!(status.is_success(), "{status}: {body}");
    }
    assert_eq!(agents(&http, api).await.len(), 1);

    // Silent for more than three intervals: down, in the store and the API.
    reporter.stop().await;
    wait_up(&http, api, &c, 0.0).await;
    assert_eq!(agents(&http, api).await[0]["up"], false);

    // Back, now with a 60 s interval (an int): up again. Wait until the
    // batched write has the new interval on disk, then crash while it
    // would still count as up by its last report.
    let reporter = Reporter::start(&http, otlp, Value::IntValue(60));
    wait_up(&http, api, &c, 1.0).await;
    let db = dir.path().join("data/agents.sqlite");
    wait_for("the 60 s interval in agents.sqlite", &c, || async {
        (stored_interval_ms(&db) == Some(60_000)).then_some(())
    })
    .await;
    reporter.stop().await;
    let before = agents(&http, api).await;
    c.kill();

    // Known after the restart, and down until it reports, although its
    // last report is well within three intervals.
    let c = Collector::start(&config, dir.path().join("second.log"));
    wait_ready(&http, api, &c).await;
    let list = agents(&http, api).await;
    assert_eq!(list.len(), 1, "{list:?}; log:\n{}", c.log());
    let a = &list[0];
    assert_eq!(a["up"], false, "{a}");
    assert_eq!(a["interval_seconds"], 60, "{a}");
    assert_eq!(a["first_seen"], before[0]["first_seen"], "{a}");
    assert_eq!(a["version"], "9.8.7");
    assert_eq!(a["host_name"], "host-e2e");
    wait_up(&http, api, &c, 0.0).await;
    let text = get_text(&http, format!("http://{api}/metrics")).await;
    assert!(
        text.lines()
            .any(|l| l
                == "tocsin_agent_up{host_name=\"host-e2e\",tocsin_agent_id=\"agent-e2e-1\"} 0"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "tocsin_agents_known 1"), "{text}");

    // One report: up again.
    send(&http, otlp, Value::IntValue(60)).await;
    wait_up(&http, api, &c, 1.0).await;
    assert_eq!(agents(&http, api).await[0]["up"], true);

    // Forget: gone from the inventory, and its series ends at once
    // (a staleness marker, not the five-minute lookback).
    let (status, body) = forget(&http, api, AGENT).await;
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(
        body,
        serde_json::json!({"status": "success", "data": {"forgotten": AGENT}})
    );
    assert!(agents(&http, api).await.is_empty());
    wait_for("the forgotten agent's series to end", &c, || async {
        up_now(&http, api).await.is_none().then_some(())
    })
    .await;
    let (status, body) = forget(&http, api, AGENT).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], "not_found", "{body}");
    assert!(body["error"].as_str().unwrap().contains(AGENT), "{body}");

    // Forgotten for good: not back after another restart.
    c.kill();
    let c = Collector::start(&config, dir.path().join("third.log"));
    wait_ready(&http, api, &c).await;
    assert!(agents(&http, api).await.is_empty(), "log:\n{}", c.log());
}
