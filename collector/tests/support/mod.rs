//! What the integration tests that run the real `tocsin-collector` binary
//! share: starting it on a config in a temporary directory (free ports of
//! 127.0.0.1), waiting for `/-/ready`, stopping or killing it (it is
//! always killed when dropped, whatever path the test takes), sending it
//! OTLP and reading its API. Each test binary uses a part of it.

#![allow(dead_code, reason = "each test binary uses a part of the harness")]

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

/// Longest any one wait of a test may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// The collector process; killed with SIGKILL when dropped.
pub struct Collector {
    child: Child,
    log: PathBuf,
}

impl Collector {
    /// Starts the collector on `config`, its standard error in `log`.
    pub fn start(config: &Path, log: PathBuf) -> Collector {
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
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and waits at most [`WAIT`] for a clean exit (status 0).
    pub fn stop(&mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}; log:\n{}", self.log());
    }

    /// Its standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the collector exited:\n{}",
            self.log()
        );
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Writes `yaml` as `collector.yaml` in `dir`; its path.
pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let config = dir.join("collector.yaml");
    std::fs::write(&config, yaml).unwrap();
    config
}

/// The config of a collector with both OTLP receivers and the API, no
/// tokens, evaluating every second.
pub fn plain_config(grpc: SocketAddr, otlp_http: SocketAddr, api: SocketAddr) -> String {
    format!(
        "data_dir: data\nreceivers:\n  otlp:\n    grpc: {{ listen: \"{grpc}\" }}\n    http: {{ listen: \"{otlp_http}\" }}\nruler:\n  evaluation_interval: 1s\napi:\n  listen: \"{api}\"\n"
    )
}

/// An HTTP client that gives up on a request after 10 s.
pub fn http_client() -> reqwest::Client {
    // In a workspace build reqwest is compiled with the agent's
    // `rustls-no-provider` feature, which requires a process-wide crypto
    // provider even for plain HTTP clients.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Polls `check` until it returns `Some`, at most [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, c: &Collector, mut check: F) -> T
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

/// Waits until the collector answers `/-/ready` with success.
pub async fn wait_ready(http: &reqwest::Client, api: SocketAddr, c: &Collector) {
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

/// POSTs a protobuf body, asserting success.
pub async fn post_protobuf(http: &reqwest::Client, url: String, body: Vec<u8>) {
    let r = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
}

/// A GET of the API, asserting a successful answer; its JSON.
pub async fn get_json(http: &reqwest::Client, url: String) -> serde_json::Value {
    let r = http.get(&url).send().await.unwrap();
    let status = r.status();
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(status.is_success(), "{url}: {status} {body}");
    assert_eq!(body["status"], "success", "{url}: {body}");
    body
}

/// A GET that must succeed; its body as text.
pub async fn get_text(http: &reqwest::Client, url: String) -> String {
    let r = http.get(&url).send().await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.text().await.unwrap()
}

/// An instant query at `time_s`, as (labels JSON, value) per sample.
pub async fn query(
    http: &reqwest::Client,
    api: SocketAddr,
    expr: &str,
    time_s: f64,
) -> Vec<(serde_json::Value, f64)> {
    let params = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", expr)
        .append_pair("time", &time_s.to_string())
        .finish();
    let body = get_json(http, format!("http://{api}/api/v1/query?{params}")).await;
    assert_eq!(body["data"]["resultType"], "vector", "{expr}: {body}");
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

/// A string attribute.
pub fn kv(key: &str, v: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..KeyValue::default()
    }
}

/// One gauge `name` of `resource` with `points` as (time in ns, value).
pub fn gauge_request(
    resource: Resource,
    name: &str,
    points: &[(u64, f64)],
) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.into(),
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

/// ERROR records of `resource` at `t_ns`, one per body.
pub fn error_logs_request(
    resource: Resource,
    t_ns: u64,
    bodies: &[&str],
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource),
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .iter()
                    .map(|body| LogRecord {
                        time_unix_nano: t_ns,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(AnyValue {
                            value: Some(Value::StringValue((*body).into())),
                        }),
                        ..LogRecord::default()
                    })
                    .collect(),
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

pub fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

pub fn now_ns() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// `google.rpc.Status`, the body of an OTLP/HTTP error.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// Sends `req`'s bytes unchanged as the body of a gRPC metrics export,
/// which must fail; the status it failed with.
pub async fn raw_metrics_export_err(
    channel: tonic::transport::Channel,
    req: tonic::Request<bytes::Bytes>,
) -> tonic::Status {
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    raw.unary(
        req,
        tonic::codegen::http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        ),
        RawCodec,
    )
    .await
    .unwrap_err()
}

/// Sends raw bytes as a gRPC request body (a codec that does no encoding).
#[derive(Clone, Copy, Default)]
pub struct RawCodec;
#[derive(Clone, Copy, Default)]
pub struct RawCoder;
impl tonic::codec::Encoder for RawCoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}
impl tonic::codec::Decoder for RawCoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<bytes::Bytes>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        Ok(Some(bytes::Buf::copy_to_bytes(src, n)))
    }
}
impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawCoder;
    type Decoder = RawCoder;
    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }
    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}
