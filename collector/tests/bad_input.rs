//! Bad input against the real `tocsin-collector` binary, over OTLP/gRPC
//! and OTLP/HTTP: malformed protobuf and JSON, oversize bodies (plain and
//! gzip'd), a wrong or missing token, an unsupported content type, label
//! values over the limit, timestamps too far in the future. Each gets a
//! clear status (or an OTLP partial success that says what was refused),
//! the refusals are counted on `/metrics`, the process keeps serving, and
//! the good request sent before and after each bad one (and the good
//! points inside a partly refused request) are all queryable at the end:
//! nothing else is lost.

#![expect(
    clippy::unwrap_used,
    reason = "a helper that cannot start the collector or read its answers must fail the test"
)]

mod support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use reqwest::StatusCode;
use support::{
    Collector, RpcStatus, free_port, get_json, get_text, http_client, kv, now_ns,
    raw_metrics_export_err, wait_ready, write_config,
};
use tonic::Code;
use tonic::transport::Channel;

const TOKEN: &str = "agent-secret-3";
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The receivers' default `max_label_value_bytes`.
const MAX_LABEL_VALUE_BYTES: usize = 2048;
const SERVICE: &str = "bad-input";

fn resource(host: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", SERVICE), kv("host.name", host)],
        ..Resource::default()
    })
}

/// A point of `bad_input_good{case=…}` (or of another metric), with extra
/// attributes.
fn point(name: &str, case: &str, t_ns: u64, extra: &[(&str, &str)]) -> Metric {
    let mut attributes = vec![kv("case", case)];
    attributes.extend(extra.iter().map(|(k, v)| kv(k, v)));
    Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes,
                time_unix_nano: t_ns,
                value: Some(number_data_point::Value::AsDouble(1.0)),
                ..NumberDataPoint::default()
            }],
        })),
        ..Metric::default()
    }
}

fn metrics(points: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource("host-1"),
            scope_metrics: vec![ScopeMetrics {
                metrics: points,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn record(body: &str, t_ns: u64) -> LogRecord {
    LogRecord {
        time_unix_nano: t_ns,
        severity_number: 13,
        severity_text: "WARN".into(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        ..LogRecord::default()
    }
}

fn logs(host: &str, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(host),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn authed<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

struct Env {
    c: Collector,
    http: reqwest::Client,
    otlp_http: SocketAddr,
    api: SocketAddr,
    grpc_metrics: MetricsServiceClient<Channel>,
    grpc_logs: LogsServiceClient<Channel>,
    channel: Channel,
    /// Every `case` label and log body sent in a good request.
    good: BTreeSet<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Http,
    Grpc,
}

impl Via {
    /// How the cases sent this way are named.
    fn name(self) -> &'static str {
        match self {
            Via::Http => "http",
            Via::Grpc => "grpc",
        }
    }
}

/// An OTLP/HTTP answer: status, content type, body.
struct HttpAnswer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl HttpAnswer {
    /// The message of an error answer, protobuf or JSON.
    fn message(&self) -> String {
        let json = self
            .headers
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").contains("json"));
        if json {
            let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
            v["message"].as_str().unwrap().to_string()
        } else {
            RpcStatus::decode(&self.body[..]).unwrap().message
        }
    }
}

impl Env {
    async fn start(dir: &Path) -> Env {
        let (grpc, otlp_http, api) = (free_port(), free_port(), free_port());
        let config = write_config(
            dir,
            &format!(
                "data_dir: data\n\
                 receivers:\n  otlp:\n\
                 \x20   grpc: {{ listen: \"{grpc}\" }}\n\
                 \x20   http: {{ listen: \"{otlp_http}\" }}\n\
                 \x20   tokens: [{{ name: agent-1, token: \"{TOKEN}\" }}]\n\
                 \x20   max_request_bytes: {MAX_REQUEST_BYTES}\n\
                 ruler:\n  evaluation_interval: 1s\n\
                 api:\n  listen: \"{api}\"\n"
            ),
        );
        let c = Collector::start(&config, dir.join("collector.log"));
        let http = http_client();
        wait_ready(&http, api, &c).await;
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Env {
            c,
            http,
            otlp_http,
            api,
            grpc_metrics: MetricsServiceClient::new(channel.clone()),
            grpc_logs: LogsServiceClient::new(channel.clone()),
            channel,
            good: BTreeSet::new(),
        }
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        token: Option<&str>,
        body: Vec<u8>,
    ) -> HttpAnswer {
        let mut req = self
            .http
            .post(format!("http://{}{path}", self.otlp_http))
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        HttpAnswer {
            status: r.status(),
            headers: r.headers().clone(),
            body: r.bytes().await.unwrap().to_vec(),
        }
    }

    /// An OTLP/HTTP protobuf request with the token, answered 200 OK; the
    /// answer.
    async fn post_ok<R: Message + Default>(&self, path: &str, body: Vec<u8>) -> R {
        let a = self
            .post(path, "application/x-protobuf", &[], Some(TOKEN), body)
            .await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        R::decode(&a.body[..]).unwrap()
    }

    /// A fully accepted metrics request over `via`.
    async fn export_metrics(
        &mut self,
        req: ExportMetricsServiceRequest,
        via: Via,
    ) -> ExportMetricsServiceResponse {
        match via {
            Via::Http => self.post_ok("/v1/metrics", req.encode_to_vec()).await,
            Via::Grpc => self
                .grpc_metrics
                .export(authed(req, Some(TOKEN)))
                .await
                .unwrap()
                .into_inner(),
        }
    }

    async fn export_logs(
        &mut self,
        req: ExportLogsServiceRequest,
        via: Via,
    ) -> ExportLogsServiceResponse {
        match via {
            Via::Http => self.post_ok("/v1/logs", req.encode_to_vec()).await,
            Via::Grpc => self
                .grpc_logs
                .export(authed(req, Some(TOKEN)))
                .await
                .unwrap()
                .into_inner(),
        }
    }

    /// A good metrics and a good logs request tagged `tag`, fully accepted.
    async fn good(&mut self, tag: &str, via: Via) {
        self.c.assert_running();
        let t = now_ns();
        let m = self
            .export_metrics(metrics(vec![point("bad_input_good", tag, t, &[])]), via)
            .await;
        assert_eq!(m.partial_success, None, "{tag}");
        let l = self
            .export_logs(logs("host-1", vec![record(tag, t)]), via)
            .await;
        assert_eq!(l.partial_success, None, "{tag}");
        self.good.insert(tag.to_string());
    }

    /// A label value over the limit (`huge`) in a metrics and a logs
    /// request over `via`: each refused as a partial success that says
    /// why, while the good point beside it in the same request is kept.
    async fn huge_label(&mut self, huge: &str, via: Via) {
        let name = via.name();
        self.good(&format!("{name}-huge-label-before"), via).await;
        let t = now_ns();
        let same_request = format!("{name}-huge-label-same-request");
        let r = self
            .export_metrics(
                metrics(vec![
                    point("bad_input_good", &same_request, t, &[]),
                    point("bad_input_huge", name, t, &[("big", huge)]),
                ]),
                via,
            )
            .await;
        let p = r.partial_success.unwrap();
        assert_eq!(p.rejected_data_points, 1);
        assert!(
            p.error_message.contains("label value too long"),
            "{}",
            p.error_message
        );
        self.good.insert(same_request);
        let r = self
            .export_logs(
                logs(huge, vec![record(&format!("never stored ({name})"), t)]),
                via,
            )
            .await;
        let p = r.partial_success.unwrap();
        assert_eq!(p.rejected_log_records, 1);
        assert!(
            p.error_message
                .contains(&format!("longer than {MAX_LABEL_VALUE_BYTES} bytes")),
            "{}",
            p.error_message
        );
        self.good(&format!("{name}-huge-label-after"), via).await;
    }

    /// `/metrics` as (series, value).
    async fn self_metrics(&self) -> Vec<(String, f64)> {
        let text = get_text(&self.http, format!("http://{}/metrics", self.api)).await;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, v) = l.rsplit_once(' ')?;
                Some((series.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    async fn api_json(&self, path_and_query: &str) -> serde_json::Value {
        get_json(&self.http, format!("http://{}{path_and_query}", self.api)).await
    }
}

fn big_metrics_request() -> ExportMetricsServiceRequest {
    let t = now_ns();
    let points: Vec<Metric> = (0..2000)
        .map(|i| point(&format!("bad_input_big_{i}"), "oversize", t, &[]))
        .collect();
    let req = metrics(points);
    assert!(req.encoded_len() > MAX_REQUEST_BYTES);
    req
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_refusal_and_loses_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::start(dir.path()).await;
    let huge = "x".repeat(MAX_LABEL_VALUE_BYTES + 1);
    let future_ns = now_ns() + 3_600 * 1_000_000_000;

    // ---- OTLP/HTTP ----
    env.good("http-malformed-protobuf-before", Via::Http).await;
    // Field 1, length 5, but only two bytes follow.
    let a = env
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            &[],
            Some(TOKEN),
            b"\x0a\x05ab".to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.message().starts_with("malformed protobuf"),
        "{}",
        a.message()
    );
    env.good("http-malformed-protobuf-after", Via::Http).await;

    env.good("http-malformed-json-before", Via::Http).await;
    let a = env
        .post(
            "/v1/logs",
            "application/json",
            &[],
            Some(TOKEN),
            br#"{"resourceLogs": [{"#.to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.message().starts_with("malformed JSON"), "{}", a.message());
    let a = env
        .post(
            "/v1/metrics",
            "application/json",
            &[],
            Some(TOKEN),
            br#"{"resourceMetrics": 7}"#.to_vec(),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.message().starts_with("malformed JSON"), "{}", a.message());
    env.good("http-malformed-json-after", Via::Http).await;

    env.good("http-oversize-before", Via::Http).await;
    let big = big_metrics_request().encode_to_vec();
    let a = env
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            &[],
            Some(TOKEN),
            big.clone(),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        a.message()
            .contains(&format!("larger than {MAX_REQUEST_BYTES} bytes")),
        "{}",
        a.message()
    );
    // Small on the wire, too large once decompressed.
    let zipped = gzip(&big);
    assert!(zipped.len() < MAX_REQUEST_BYTES);
    let a = env
        .post(
            "/v1/metrics",
            "application/x-protobuf",
            &[("content-encoding", "gzip")],
            Some(TOKEN),
            zipped,
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    env.good("http-oversize-after", Via::Http).await;

    env.good("http-token-before", Via::Http).await;
    let body = metrics(vec![point(
        "bad_input_unauthenticated",
        "http",
        now_ns(),
        &[],
    )])
    .encode_to_vec();
    for token in [Some("wrong-token"), None] {
        let a = env
            .post(
                "/v1/metrics",
                "application/x-protobuf",
                &[],
                token,
                body.clone(),
            )
            .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(a.headers.get("www-authenticate").unwrap(), "Bearer");
    }
    env.good("http-token-after", Via::Http).await;

    env.good("http-content-type-before", Via::Http).await;
    let a = env
        .post("/v1/metrics", "text/plain", &[], Some(TOKEN), body.clone())
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    env.good("http-content-type-after", Via::Http).await;

    env.huge_label(&huge, Via::Http).await;

    env.good("http-future-before", Via::Http).await;
    let t = now_ns();
    let r = env
        .export_metrics(
            metrics(vec![
                point("bad_input_good", "http-future-same-request", t, &[]),
                point("bad_input_future", "http", future_ns, &[]),
            ]),
            Via::Http,
        )
        .await;
    let p = r.partial_success.unwrap();
    assert_eq!(p.rejected_data_points, 1);
    assert!(
        p.error_message.contains("in the future"),
        "{}",
        p.error_message
    );
    env.good.insert("http-future-same-request".into());
    let r = env
        .export_logs(
            logs(
                "host-1",
                vec![
                    record("http-future-log-same-request", t),
                    record("never stored (future)", future_ns),
                ],
            ),
            Via::Http,
        )
        .await;
    let p = r.partial_success.unwrap();
    assert_eq!(p.rejected_log_records, 1);
    assert!(
        p.error_message.contains("in the future"),
        "{}",
        p.error_message
    );
    env.good("http-future-after", Via::Http).await;

    // ---- OTLP/gRPC ----
    env.good("grpc-malformed-protobuf-before", Via::Grpc).await;
    let err = raw_metrics_export_err(
        env.channel.clone(),
        authed(bytes::Bytes::from_static(b"\x0a\x05ab"), Some(TOKEN)),
    )
    .await;
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    env.good("grpc-malformed-protobuf-after", Via::Grpc).await;

    env.good("grpc-oversize-before", Via::Grpc).await;
    let err = env
        .grpc_metrics
        .export(authed(big_metrics_request(), Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    env.good("grpc-oversize-after", Via::Grpc).await;

    env.good("grpc-token-before", Via::Grpc).await;
    for token in [Some("wrong-token"), None] {
        let req = metrics(vec![point(
            "bad_input_unauthenticated",
            "grpc",
            now_ns(),
            &[],
        )]);
        let err = env
            .grpc_metrics
            .export(authed(req, token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{token:?}: {err:?}");
    }
    env.good("grpc-token-after", Via::Grpc).await;

    env.huge_label(&huge, Via::Grpc).await;

    env.good("grpc-future-before", Via::Grpc).await;
    let r = env
        .export_metrics(
            metrics(vec![point("bad_input_future", "grpc", future_ns, &[])]),
            Via::Grpc,
        )
        .await;
    let p = r.partial_success.unwrap();
    assert_eq!(p.rejected_data_points, 1);
    assert!(
        p.error_message.contains("in the future"),
        "{}",
        p.error_message
    );
    let r = env
        .export_logs(
            logs("host-1", vec![record("never stored (future)", future_ns)]),
            Via::Grpc,
        )
        .await;
    assert_eq!(r.partial_success.unwrap().rejected_log_records, 1);
    env.good("grpc-future-after", Via::Grpc).await;

    env.c.assert_running();

    // Every good point is queryable, nothing refused is.
    let body = env.api_json("/api/v1/query?query=bad_input_good").await;
    let cases: BTreeSet<String> = body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["metric"]["case"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cases, env.good, "{body}");
    for refused in [
        "bad_input_huge",
        "bad_input_future",
        "bad_input_unauthenticated",
        "bad_input_big_0",
    ] {
        let body = env
            .api_json(&format!("/api/v1/query?query={refused}"))
            .await;
        assert_eq!(
            body["data"]["result"],
            serde_json::json!([]),
            "{refused}: {body}"
        );
    }
    let selector: String =
        form_urlencoded::byte_serialize(format!("{{service_name=\"{SERVICE}\"}}").as_bytes())
            .collect();
    let body = env
        .api_json(&format!("/api/v1/logs?query={selector}&limit=1000"))
        .await;
    let bodies: BTreeSet<String> = body["data"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"].as_str().unwrap().to_string())
        .collect();
    let mut want_logs: BTreeSet<String> = env
        .good
        .iter()
        .filter(|c| !c.ends_with("-same-request"))
        .cloned()
        .collect();
    want_logs.insert("http-future-log-same-request".into());
    assert_eq!(bodies, want_logs, "{body}");

    // Every refusal counted.
    let m = env.self_metrics().await;
    let value = |series: &str| {
        m.iter()
            .find(|(s, _)| s == series)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{series} not on /metrics"))
    };
    assert_eq!(
        value("tocsin_receiver_requests_refused_total{reason=\"malformed\"}"),
        4.0
    );
    assert_eq!(
        value("tocsin_receiver_requests_refused_total{reason=\"too_large\"}"),
        3.0
    );
    assert_eq!(
        value("tocsin_receiver_requests_refused_total{reason=\"unauthenticated\"}"),
        4.0
    );
    assert_eq!(
        value("tocsin_receiver_requests_refused_total{reason=\"unsupported\"}"),
        1.0
    );
    assert_eq!(
        value("tocsin_receiver_refused_total{reason=\"label_limits\",signal=\"metrics\"}"),
        2.0
    );
    assert_eq!(
        value("tocsin_receiver_refused_total{reason=\"label_limits\",signal=\"logs\"}"),
        2.0
    );
    assert_eq!(
        value("tocsin_receiver_refused_total{reason=\"future_timestamp\",signal=\"metrics\"}"),
        2.0
    );
    assert_eq!(
        value("tocsin_receiver_refused_total{reason=\"future_timestamp\",signal=\"logs\"}"),
        2.0
    );
    env.c.assert_running();
}
