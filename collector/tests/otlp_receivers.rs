//! The OTLP receivers end to end in-process: real OTLP over gRPC (tonic's
//! client from opentelemetry-proto) and HTTP (reqwest, and a raw TLS
//! client for mutual TLS) to receivers on 127.0.0.1 port 0, checked at the
//! sinks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use support::{RpcStatus, kv, now_ns, raw_metrics_export_err};
use tocsin_collector::logs::record::{LogRecord, Severity};
use tocsin_collector::receivers::config::{ListenerConfig, TlsConfig, TokenConfig};
use tocsin_collector::receivers::ingest::system_clock;
use tocsin_collector::receivers::{
    Ingest, LogAppendOutcome, LogSink, MetricsSink, OtlpReceivers, OtlpReceiversConfig, SinkError,
};
use tocsin_collector::store::AppendOutcome;
use tocsin_rules::promql::value::Labels;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Captures what reached the sinks; can be told to fail.
#[derive(Default)]
struct Capture {
    samples: Mutex<Vec<(Labels, i64, f64)>>,
    logs: Mutex<Vec<LogRecord>>,
    fail: AtomicBool,
}

impl MetricsSink for Capture {
    fn append(&self, samples: &[(Labels, i64, f64)]) -> Result<AppendOutcome, SinkError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(SinkError::Storage("disk on fire".into()));
        }
        self.samples.lock().unwrap().extend_from_slice(samples);
        Ok(AppendOutcome {
            stored: samples.len(),
            ..AppendOutcome::default()
        })
    }
}

impl LogSink for Capture {
    fn append(&self, records: Vec<LogRecord>) -> Result<LogAppendOutcome, SinkError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(SinkError::Storage("disk on fire".into()));
        }
        let n = records.len();
        self.logs.lock().unwrap().extend(records);
        Ok(LogAppendOutcome {
            stored: n,
            ..LogAppendOutcome::default()
        })
    }
}

impl Capture {
    /// The samples that reached the sink, `target_info` left out.
    fn series(&self) -> Vec<(String, f64)> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _, _)| l.metric_name() != "target_info")
            .map(|(l, _, v)| (l.to_string(), *v))
            .collect()
    }

    fn target_info(&self) -> Vec<String> {
        self.samples
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _, _)| l.metric_name() == "target_info")
            .map(|(l, _, _)| l.to_string())
            .collect()
    }
}

struct Harness {
    grpc: SocketAddr,
    http: SocketAddr,
    sink: Arc<Capture>,
    ingest: Arc<Ingest>,
    shutdown: CancellationToken,
    receivers: Option<OtlpReceivers>,
}

impl Harness {
    async fn start(mut cfg: OtlpReceiversConfig, base: &Path) -> Harness {
        if let Some(g) = cfg.grpc.as_mut() {
            g.listen = "127.0.0.1:0".into();
        }
        if let Some(h) = cfg.http.as_mut() {
            h.listen = "127.0.0.1:0".into();
        }
        let settings = cfg.validate("receivers.otlp", base).unwrap();
        let sink = Arc::new(Capture::default());
        let ingest = Arc::new(Ingest::new(
            settings.ingest.clone(),
            sink.clone(),
            sink.clone(),
            system_clock(),
        ));
        let shutdown = CancellationToken::new();
        let receivers = OtlpReceivers::start(&settings, ingest.clone(), shutdown.clone())
            .await
            .unwrap();
        Harness {
            grpc: receivers.grpc_addr.unwrap(),
            http: receivers.http_addr.unwrap(),
            sink,
            ingest,
            shutdown,
            receivers: Some(receivers),
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        let r = self.receivers.take().unwrap();
        tokio::time::timeout(Duration::from_secs(20), r.wait())
            .await
            .expect("receivers stop after cancellation");
    }

    fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    async fn grpc_channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

fn with_token() -> OtlpReceiversConfig {
    OtlpReceiversConfig {
        tokens: vec![TokenConfig {
            name: "web-1".into(),
            token: Some("t0ken".into()),
            token_file: None,
        }],
        ..OtlpReceiversConfig::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            kv("service.name", "node"),
            kv("service.namespace", "infra"),
            kv("service.instance.id", "web-1:9100"),
            kv("host.name", "web-1"),
            kv("tocsin.agent.id", "agent-web-1"),
            kv("tocsin.track", "canary"),
        ],
        ..Resource::default()
    })
}

fn metrics_request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..ScopeMetrics::default()
            }],
            ..ResourceMetrics::default()
        }],
    }
}

fn cpu_time(t_ns: u64, cpu: &str, v: f64) -> Metric {
    Metric {
        name: "system.cpu.time".into(),
        unit: "s".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                attributes: vec![kv("cpu", cpu), kv("state", "user")],
                time_unix_nano: t_ns,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..NumberDataPoint::default()
            }],
            aggregation_temporality: 2,
            is_monotonic: true,
        })),
        ..Metric::default()
    }
}

fn memory(t_ns: u64, v: i64) -> Metric {
    Metric {
        name: "system.memory.usage".into(),
        unit: "By".into(),
        data: Some(Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                attributes: vec![kv("state", "used")],
                time_unix_nano: t_ns,
                value: Some(number_data_point::Value::AsInt(v)),
                ..NumberDataPoint::default()
            }],
            aggregation_temporality: 2,
            is_monotonic: false,
        })),
        ..Metric::default()
    }
}

fn latency(t_ns: u64) -> Metric {
    Metric {
        name: "http.server.request.duration".into(),
        unit: "s".into(),
        data: Some(Data::Histogram(Histogram {
            data_points: vec![HistogramDataPoint {
                time_unix_nano: t_ns,
                count: 4,
                sum: Some(1.5),
                bucket_counts: vec![1, 2, 1],
                explicit_bounds: vec![0.25, 1.0],
                ..HistogramDataPoint::default()
            }],
            aggregation_temporality: 2,
        })),
        ..Metric::default()
    }
}

fn exponential(t_ns: u64) -> Metric {
    Metric {
        name: "rpc.duration".into(),
        unit: "s".into(),
        data: Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                time_unix_nano: t_ns,
                count: 1,
                ..ExponentialHistogramDataPoint::default()
            }],
            aggregation_temporality: 2,
        })),
        ..Metric::default()
    }
}

fn gauge(name: &str, t_ns: u64, v: f64) -> Metric {
    Metric {
        name: name.into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                time_unix_nano: t_ns,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..NumberDataPoint::default()
            }],
        })),
        ..Metric::default()
    }
}

fn logs_request(records: Vec<OtlpRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

fn error_line(t_ns: u64, body: &str, offset: i64) -> OtlpRecord {
    OtlpRecord {
        time_unix_nano: t_ns,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        attributes: vec![
            kv("log.file.path", "/var/log/app.log"),
            kv("tocsin.file.id", "inc-1"),
            KeyValue {
                key: "tocsin.file.offset".into(),
                value: Some(AnyValue {
                    value: Some(Value::IntValue(offset)),
                }),
                ..KeyValue::default()
            },
        ],
        ..OtlpRecord::default()
    }
}

const RES_LABELS: &str = r#"host_name="web-1", instance="web-1:9100", job="infra/node", service_name="node", tocsin_track="canary""#;

/// The text of a series under the test resource (labels print sorted).
fn want(name: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("__name__", name),
        ("host_name", "web-1"),
        ("instance", "web-1:9100"),
        ("job", "infra/node"),
        ("service_name", "node"),
        ("tocsin_track", "canary"),
    ];
    pairs.extend_from_slice(extra);
    Labels::from_pairs(pairs).to_string()
}

fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

mod grpc {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_and_logs_reach_the_sinks_translated() {
        let h = Harness::start(with_token(), Path::new(".")).await;
        let t = now_ns();
        let mut client = MetricsServiceClient::new(h.grpc_channel().await);
        let resp = client
            .export(authed(
                metrics_request(vec![cpu_time(t, "0", 12.5), memory(t, 1 << 30), latency(t)]),
                "t0ken",
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.partial_success, None);
        let series = h.sink.series();
        assert!(
            series.contains(&(
                want(
                    "system_cpu_time_seconds_total",
                    &[("cpu", "0"), ("state", "user")]
                ),
                12.5
            )),
            "{series:#?}"
        );
        assert!(series.contains(&(
            want("system_memory_usage_bytes", &[("state", "used")]),
            (1u64 << 30) as f64
        )));
        let n = "http_server_request_duration_seconds";
        for (le, v) in [("0.25", 1.0), ("1", 3.0), ("+Inf", 4.0)] {
            let want = want(&format!("{n}_bucket"), &[("le", le)]);
            assert!(series.contains(&(want.clone(), v)), "{want} in {series:#?}");
        }
        assert!(series.contains(&(format!("{n}_sum{{{RES_LABELS}}}"), 1.5)));
        assert!(series.contains(&(format!("{n}_count{{{RES_LABELS}}}"), 4.0)));
        let stamp = h.sink.samples.lock().unwrap()[0].1;
        assert_eq!(stamp, (t / 1_000_000) as i64);
        assert_eq!(
            h.sink.target_info(),
            vec![
                Labels::from_pairs([
                    ("__name__", "target_info"),
                    ("host_name", "web-1"),
                    ("instance", "web-1:9100"),
                    ("job", "infra/node"),
                    ("tocsin_agent_id", "agent-web-1"),
                    ("tocsin_track", "canary"),
                ])
                .to_string()
            ]
        );

        let mut logs = LogsServiceClient::new(h.grpc_channel().await);
        let resp = logs
            .export(authed(
                logs_request(vec![error_line(t, "disk full on /", 4096)]),
                "t0ken",
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.partial_success, None);
        let recs = h.sink.logs.lock().unwrap().clone();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].body, "disk full on /");
        assert_eq!(recs[0].severity, Severity::Error);
        assert_eq!(recs[0].labels.get("severity"), "error");
        assert_eq!(recs[0].labels.get("host_name"), "web-1");
        let origin = recs[0].origin.clone().unwrap();
        assert_eq!(
            (&*origin.agent_id, &*origin.file_id, origin.offset),
            ("agent-web-1", "inc-1", 4096)
        );
        assert!(h.ingest.clock_skew().get("agent-web-1").is_some());
        h.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_or_missing_token_is_unauthenticated() {
        let h = Harness::start(with_token(), Path::new(".")).await;
        let mut client = MetricsServiceClient::new(h.grpc_channel().await);
        let req = metrics_request(vec![gauge("g", now_ns(), 1.0)]);
        let err = client
            .export(authed(req.clone(), "wrong"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        let err = client.export(req).await.unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert!(h.sink.series().is_empty());
        assert_eq!(
            h.ingest
                .counters()
                .requests_unauthenticated
                .load(Ordering::Relaxed),
            2
        );
        h.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn oversize_is_resource_exhausted_and_gzip_is_bounded_too() {
        let cfg = OtlpReceiversConfig {
            max_request_bytes: 4096,
            ..OtlpReceiversConfig::default()
        };
        let h = Harness::start(cfg, Path::new(".")).await;
        let big: Vec<Metric> = (0..200)
            .map(|i| gauge(&format!("metric.number.{i}"), now_ns(), 1.0))
            .collect();
        let req = metrics_request(big);
        assert!(req.encoded_len() > 4096);
        let mut client = MetricsServiceClient::new(h.grpc_channel().await);
        let err = client.export(req.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        // Compressed it fits on the wire, but not once decompressed.
        let mut gz = MetricsServiceClient::new(h.grpc_channel().await)
            .send_compressed(CompressionEncoding::Gzip);
        let err = gz.export(req).await.unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        // A small gzip'd request goes through.
        gz.export(metrics_request(vec![gauge("small", now_ns(), 2.0)]))
            .await
            .unwrap();
        assert_eq!(h.sink.series().len(), 1);
        assert_eq!(
            h.ingest
                .counters()
                .requests_too_large
                .load(Ordering::Relaxed),
            2
        );
        h.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_protobuf_is_invalid_argument() {
        let h = Harness::start(OtlpReceiversConfig::default(), Path::new(".")).await;
        // Field 1, length 5, but only two bytes follow.
        let err = raw_metrics_export_err(
            h.grpc_channel().await,
            tonic::Request::new(bytes::Bytes::from_static(b"\x0a\x05ab")),
        )
        .await;
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        // The server keeps serving.
        let mut client = MetricsServiceClient::new(h.grpc_channel().await);
        client
            .export(metrics_request(vec![gauge("g", now_ns(), 1.0)]))
            .await
            .unwrap();
        h.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_points_are_partial_success() {
        let h = Harness::start(OtlpReceiversConfig::default(), Path::new(".")).await;
        let now = now_ns();
        let future = now + 3600 * 1_000_000_000;
        let mut client = MetricsServiceClient::new(h.grpc_channel().await);
        let resp: ExportMetricsServiceResponse = client
            .export(metrics_request(vec![
                gauge("ok", now, 1.0),
                gauge("ahead", future, 1.0),
                exponential(now),
            ]))
            .await
            .unwrap()
            .into_inner();
        let ps = resp.partial_success.unwrap();
        assert_eq!(ps.rejected_data_points, 2);
        assert!(ps.error_message.contains("future"), "{}", ps.error_message);
        assert!(
            ps.error_message.contains("exponential"),
            "{}",
            ps.error_message
        );
        assert_eq!(h.sink.series().len(), 1);
        // The agent's clock shows about an hour ahead.
        let skew = h.ingest.clock_skew().get("agent-web-1").unwrap();
        assert!((3500.0..3700.0).contains(&skew.skew_seconds), "{skew:?}");

        let mut logs = LogsServiceClient::new(h.grpc_channel().await);
        let resp: ExportLogsServiceResponse = logs
            .export(logs_request(vec![
                error_line(now, "fine", 0),
                error_line(future, "from the future", 10),
            ]))
            .await
            .unwrap()
            .into_inner();
        let ps = resp.partial_success.unwrap();
        assert_eq!(ps.rejected_log_records, 1);
        assert_eq!(h.sink.logs.lock().unwrap().len(), 1);
        h.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn series_limit_per_agent_refuses_new_series_only() {
        // target_info is one of the sender's series too.
        let cfg = OtlpReceiversConfig {
            max_series_per_agent: 3,
            ..with_token()
        };
        let h = Harness::start(cfg, Path::new(".")).await;
        let now = now_ns();
        let mut client = MetricsServiceClient::new(h.grpc_channel().await);
        let resp = client
            .export(authed(
                metrics_request(vec![
                    gauge("a", now, 1.0),
                    gauge("b", now, 1.0),
                    gauge("c", now, 1.0),
                ]),
                "t0ken",
            ))
            .await
            .unwrap()
            .into_inner();
        let ps = resp.partial_success.unwrap();
        assert_eq!(ps.rejected_data_points, 1);
        assert!(ps.error_message.contains("series limit"));
        // Known series keep flowing.
        let resp = client
            .export(authed(
                metrics_request(vec![gauge("a", now + 1_000_000_000, 2.0)]),
                "t0ken",
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.partial_success, None);
        assert_eq!(h.sink.series().len(), 3);
        assert_eq!(
            h.ingest
                .counters()
                .refused_series_limit
                .load(Ordering::Relaxed),
            1
        );
        h.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn storage_failure_is_unavailable_so_the_sender_retries() {
        let h = Harness::start(OtlpReceiversConfig::default(), Path::new(".")).await;
        h.sink.fail.store(true, Ordering::SeqCst);
        let mut client = MetricsServiceClient::new(h.grpc_channel().await);
        let err = client
            .export(metrics_request(vec![gauge("g", now_ns(), 1.0)]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
        h.stop().await;
    }
}

mod http {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    async fn post(
        url: &str,
        content_type: &str,
        gz: bool,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Vec<u8>) {
        let client = reqwest::Client::new();
        let mut req = client
            .post(url)
            .header("content-type", content_type)
            .body(if gz { gzip(&body) } else { body });
        if gz {
            req = req.header("content-encoding", "gzip");
        }
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap().to_vec())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn protobuf_json_and_gzip_bodies() {
        let h = Harness::start(OtlpReceiversConfig::default(), Path::new(".")).await;
        let t = now_ns();
        let url = h.http_url("/v1/metrics");
        let pb = metrics_request(vec![cpu_time(t, "0", 1.0)]).encode_to_vec();
        let (status, body) = post(&url, "application/x-protobuf", false, None, pb.clone()).await;
        assert_eq!(status, 200);
        let resp = ExportMetricsServiceResponse::decode(body.as_slice()).unwrap();
        assert_eq!(resp.partial_success, None);
        let pb = metrics_request(vec![cpu_time(t, "1", 2.0)]).encode_to_vec();
        let (status, _) = post(&url, "application/x-protobuf", true, None, pb).await;
        assert_eq!(status, 200);

        // OTLP/JSON as an SDK writes it: camelCase, 64-bit ints as strings,
        // enums as numbers.
        let json = format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[
                {{"key":"service.name","value":{{"stringValue":"node"}}}},
                {{"key":"host.name","value":{{"stringValue":"web-2"}}}}]}},
              "scopeMetrics":[{{"metrics":[{{"name":"system.cpu.time","unit":"s",
                "sum":{{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[
                  {{"attributes":[{{"key":"cpu","value":{{"intValue":"3"}}}}],
                    "timeUnixNano":"{t}","asDouble":7.5}}]}}}}]}}]}}]}}"#
        );
        let (status, body) = post(&url, "application/json", true, None, json.into_bytes()).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8(body).unwrap().starts_with('{'));

        let series = h.sink.series();
        let names: Vec<&str> = series.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(series.len(), 3, "{names:#?}");
        assert!(series.contains(&(
            r#"system_cpu_time_seconds_total{cpu="3", host_name="web-2", job="node", service_name="node"}"#.to_string(),
            7.5
        )));
        assert!(
            series
                .iter()
                .any(|(l, v)| l.contains(r#"cpu="1""#) && *v == 2.0)
        );

        let trace = "5b8efff798038103d269b633813fc60c";
        let logs_json = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[
                {{"key":"service.name","value":{{"stringValue":"api"}}}}]}},
              "scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{t}","severityNumber":13,
                "severityText":"WARNING","body":{{"stringValue":"slow request"}},
                "traceId":"{trace}","attributes":[{{"key":"http.route","value":{{"stringValue":"/x"}}}}]}}]}}]}}]}}"#
        );
        let (status, body) = post(
            &h.http_url("/v1/logs"),
            "application/json",
            false,
            None,
            logs_json.into_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let pb = logs_request(vec![error_line(t, "boom", 1)]).encode_to_vec();
        let (status, _) = post(
            &h.http_url("/v1/logs"),
            "application/x-protobuf",
            true,
            None,
            pb,
        )
        .await;
        assert_eq!(status, 200);
        let recs = h.sink.logs.lock().unwrap().clone();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].severity, Severity::Warn);
        assert_eq!(&*recs[0].severity_text, "WARNING");
        assert_eq!(recs[0].trace_id.as_deref(), Some(trace));
        assert_eq!(
            recs[0].labels.to_string(),
            r#"{job="api", service_name="api", severity="warn"}"#
        );
        assert_eq!(
            recs[0].attributes,
            vec![("http.route".into(), "/x".into())].into()
        );
        assert_eq!(recs[1].body, "boom");
        h.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refusals_have_clear_status_codes() {
        let cfg = OtlpReceiversConfig {
            max_request_bytes: 4096,
            ..with_token()
        };
        let h = Harness::start(cfg, Path::new(".")).await;
        let url = h.http_url("/v1/metrics");
        let small = metrics_request(vec![gauge("g", now_ns(), 1.0)]).encode_to_vec();

        let (status, _) = post(&url, "application/x-protobuf", false, None, small.clone()).await;
        assert_eq!(status, 401);
        let (status, body) = post(
            &url,
            "application/x-protobuf",
            false,
            Some("nope"),
            small.clone(),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(
            RpcStatus::decode(body.as_slice()).unwrap().code,
            Code::Unauthenticated as i32
        );

        let big = vec![0u8; 10_000];
        let (status, body) = post(
            &url,
            "application/x-protobuf",
            false,
            Some("t0ken"),
            big.clone(),
        )
        .await;
        assert_eq!(status, 413);
        assert_eq!(
            RpcStatus::decode(body.as_slice()).unwrap().code,
            Code::ResourceExhausted as i32
        );
        // Small on the wire, too large once decompressed.
        let (status, _) = post(&url, "application/x-protobuf", true, Some("t0ken"), big).await;
        assert_eq!(status, 413);

        let (status, body) = post(
            &url,
            "application/x-protobuf",
            false,
            Some("t0ken"),
            b"\x0a\x05ab".to_vec(),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(
            RpcStatus::decode(body.as_slice()).unwrap().code,
            Code::InvalidArgument as i32
        );
        let (status, body) = post(
            &url,
            "application/json",
            false,
            Some("t0ken"),
            b"{\"resourceMetrics\": [".to_vec(),
        )
        .await;
        assert_eq!(status, 400);
        let err: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(err["code"], Code::InvalidArgument as i32);
        assert!(err["message"].as_str().unwrap().contains("JSON"));

        let (status, _) = post(&url, "text/plain", false, Some("t0ken"), small.clone()).await;
        assert_eq!(status, 415);

        assert!(h.sink.series().is_empty());
        // And the receiver still serves.
        let (status, _) = post(&url, "application/x-protobuf", false, Some("t0ken"), small).await;
        assert_eq!(status, 200);
        assert_eq!(h.sink.series().len(), 1);
        let c = h.ingest.counters();
        assert_eq!(c.requests_unauthenticated.load(Ordering::Relaxed), 2);
        assert_eq!(c.requests_too_large.load(Ordering::Relaxed), 2);
        assert_eq!(c.requests_malformed.load(Ordering::Relaxed), 2);
        assert_eq!(c.requests_unsupported.load(Ordering::Relaxed), 1);
        h.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partial_success_in_json() {
        let h = Harness::start(OtlpReceiversConfig::default(), Path::new(".")).await;
        let future = now_ns() + 3600 * 1_000_000_000;
        let req = metrics_request(vec![gauge("ahead", future, 1.0)]);
        let (status, body) = post(
            &h.http_url("/v1/metrics"),
            "application/json",
            false,
            None,
            serde_json::to_vec(&req).unwrap(),
        )
        .await;
        assert_eq!(status, 200);
        let resp: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(resp["partialSuccess"]["rejectedDataPoints"], 1, "{resp}");
        h.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn storage_failure_is_503() {
        let h = Harness::start(OtlpReceiversConfig::default(), Path::new(".")).await;
        h.sink.fail.store(true, Ordering::SeqCst);
        let pb = logs_request(vec![error_line(now_ns(), "x", 0)]).encode_to_vec();
        let (status, _) = post(
            &h.http_url("/v1/logs"),
            "application/x-protobuf",
            false,
            None,
            pb,
        )
        .await;
        assert_eq!(status, 503);
        h.stop().await;
    }
}

mod overload {
    use super::*;

    /// A sink that holds each append until released.
    struct Gate {
        entered: tokio::sync::mpsc::UnboundedSender<()>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
    }

    impl MetricsSink for Gate {
        fn append(&self, samples: &[(Labels, i64, f64)]) -> Result<AppendOutcome, SinkError> {
            let _ = self.entered.send(());
            let _ = self.release.lock().unwrap().recv();
            Ok(AppendOutcome {
                stored: samples.len(),
                ..AppendOutcome::default()
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_beyond_the_concurrency_limit_are_refused_as_overloaded() {
        let cfg = OtlpReceiversConfig {
            grpc: None,
            http: Some(ListenerConfig {
                listen: "127.0.0.1:0".into(),
                tls: None,
            }),
            max_concurrent_requests: 1,
            ..OtlpReceiversConfig::default()
        };
        let mut settings = cfg.validate("receivers.otlp", Path::new(".")).unwrap();
        settings.export_slot_wait = Duration::from_millis(100);
        let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let gate = Arc::new(Gate {
            entered: entered_tx,
            release: Mutex::new(release_rx),
        });
        let ingest = Arc::new(Ingest::new(
            settings.ingest.clone(),
            gate,
            Arc::new(Capture::default()),
            system_clock(),
        ));
        let shutdown = CancellationToken::new();
        let receivers = OtlpReceivers::start(&settings, ingest.clone(), shutdown.clone())
            .await
            .unwrap();
        let url = format!("http://{}/v1/metrics", receivers.http_addr.unwrap());
        let body = metrics_request(vec![gauge("g", now_ns(), 1.0)]).encode_to_vec();
        let send = |body: Vec<u8>| {
            let url = url.clone();
            async move {
                reqwest::Client::new()
                    .post(url)
                    .header("content-type", "application/x-protobuf")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        let first = tokio::spawn(send(body.clone()));
        // The first request now holds the only slot, inside the sink.
        entered.recv().await.unwrap();
        assert_eq!(send(body.clone()).await, 503);
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), 200);
        assert_eq!(
            ingest
                .counters()
                .requests_overloaded
                .load(Ordering::Relaxed),
            1
        );
        // The slot is free again.
        let again = tokio::spawn(send(body));
        entered.recv().await.unwrap();
        release.send(()).unwrap();
        assert_eq!(again.await.unwrap(), 200);
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), receivers.wait())
            .await
            .unwrap();
    }
}

mod tls {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Pki {
        ca: String,
        server_cert: String,
        server_key: String,
        client_cert: String,
        client_key: String,
        rogue_cert: String,
        rogue_key: String,
    }

    fn leaf(
        name: &str,
        purpose: ExtendedKeyUsagePurpose,
        issuer: &rcgen::Issuer<'_, KeyPair>,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.extended_key_usages = vec![purpose];
        let cert = p.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
    }

    fn pki() -> Pki {
        let ca1 = ca("Tocsin test CA");
        let (server_cert, server_key) =
            leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth, &ca1);
        let (client_cert, client_key) = leaf("agent-1", ExtendedKeyUsagePurpose::ClientAuth, &ca1);
        let rogue_ca = ca("Somebody else");
        let (rogue_cert, rogue_key) =
            leaf("intruder", ExtendedKeyUsagePurpose::ClientAuth, &rogue_ca);
        Pki {
            ca: ca1.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
            rogue_cert,
            rogue_key,
        }
    }

    async fn mtls_harness(dir: &Path, p: &Pki) -> Harness {
        for (f, c) in [
            ("ca.pem", &p.ca),
            ("server.pem", &p.server_cert),
            ("server.key", &p.server_key),
        ] {
            std::fs::write(dir.join(f), c).unwrap();
        }
        let tls = Some(TlsConfig {
            cert_file: "server.pem".into(),
            key_file: "server.key".into(),
            client_ca_file: Some("ca.pem".into()),
        });
        let cfg = OtlpReceiversConfig {
            grpc: Some(ListenerConfig {
                listen: String::new(),
                tls: tls.clone(),
            }),
            http: Some(ListenerConfig {
                listen: String::new(),
                tls,
            }),
            ..OtlpReceiversConfig::default()
        };
        Harness::start(cfg, dir).await
    }

    async fn grpc_export(
        h: &Harness,
        p: &Pki,
        identity: Option<(&str, &str)>,
    ) -> Result<(), String> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&p.ca))
            .domain_name("localhost");
        if let Some((c, k)) = identity {
            tls = tls.identity(Identity::from_pem(c, k));
        }
        let channel = Channel::from_shared(format!("https://{}", h.grpc))
            .unwrap()
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        MetricsServiceClient::new(channel)
            .export(metrics_request(vec![gauge("over.tls", now_ns(), 1.0)]))
            .await
            .map(|_| ())
            .map_err(|e| format!("export: {e:?}"))
    }

    /// One HTTP/1.1 request over TLS by hand; returns the status line.
    async fn https_post(
        h: &Harness,
        p: &Pki,
        identity: Option<(&str, &str)>,
    ) -> Result<String, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(p.ca.as_bytes()).unwrap())
            .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            Some((c, k)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(c.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(k.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(h.http).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let body = metrics_request(vec![gauge("over.https", now_ns(), 1.0)]).encode_to_vec();
        let head = format!(
            "POST /v1/metrics HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let io = async {
            tls.write_all(head.as_bytes()).await?;
            tls.write_all(&body).await?;
            tls.flush().await?;
            let mut out = Vec::new();
            tls.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        };
        let out = io.await.map_err(|e| format!("exchange: {e}"))?;
        let text = String::from_utf8_lossy(&out);
        Ok(text.lines().next().unwrap_or_default().to_string())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mutual_tls_admits_only_clients_signed_by_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let p = pki();
        let h = mtls_harness(dir.path(), &p).await;

        grpc_export(&h, &p, Some((&p.client_cert, &p.client_key)))
            .await
            .unwrap();
        assert!(grpc_export(&h, &p, None).await.is_err());
        assert!(
            grpc_export(&h, &p, Some((&p.rogue_cert, &p.rogue_key)))
                .await
                .is_err()
        );

        let status = https_post(&h, &p, Some((&p.client_cert, &p.client_key)))
            .await
            .unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        // Without a certificate the server ends the handshake; depending on
        // timing the client notices at the handshake or at the exchange, but
        // it never gets an answer.
        let refused = |r: Result<String, String>| !matches!(r, Ok(s) if s.starts_with("HTTP/"));
        assert!(refused(https_post(&h, &p, None).await));
        assert!(refused(
            https_post(&h, &p, Some((&p.rogue_cert, &p.rogue_key))).await
        ));

        let names: Vec<String> = h.sink.series().into_iter().map(|(l, _)| l).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("over_tls")));
        assert!(names.iter().any(|n| n.starts_with("over_https")));
        h.stop().await;
    }
}

mod store {
    use super::*;
    use tocsin_collector::store::SeriesStore;
    use tocsin_collector::store::head::HeadOptions;
    use tocsin_collector::store::wal::WalOptions;

    /// Logs go nowhere in this test.
    struct NoLogs;
    impl LogSink for NoLogs {
        fn append(&self, records: Vec<LogRecord>) -> Result<LogAppendOutcome, SinkError> {
            Ok(LogAppendOutcome {
                stored: records.len(),
                ..LogAppendOutcome::default()
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_series_store_is_a_sink_and_its_refusals_are_partial_success() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SeriesStore::open(
            dir.path(),
            HeadOptions {
                out_of_order_window_ms: 60_000,
                ..HeadOptions::default()
            },
            WalOptions::default(),
        )
        .unwrap();
        let store = Arc::new(store);
        let mut cfg = OtlpReceiversConfig {
            http: None,
            ..OtlpReceiversConfig::default()
        };
        if let Some(g) = cfg.grpc.as_mut() {
            g.listen = "127.0.0.1:0".into();
        }
        let settings = cfg.validate("receivers.otlp", Path::new(".")).unwrap();
        let ingest = Arc::new(Ingest::new(
            settings.ingest.clone(),
            store.clone(),
            Arc::new(NoLogs),
            system_clock(),
        ));
        let shutdown = CancellationToken::new();
        let receivers = OtlpReceivers::start(&settings, ingest, shutdown.clone())
            .await
            .unwrap();
        let channel = Channel::from_shared(format!("http://{}", receivers.grpc_addr.unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = MetricsServiceClient::new(channel);
        let now = now_ns();
        let resp = client
            .export(metrics_request(vec![gauge("g", now, 1.0)]))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.partial_success, None);
        // Ten minutes older than the newest: outside the one-minute window.
        let old = now - 600 * 1_000_000_000;
        let resp = client
            .export(metrics_request(vec![gauge("g", old, 2.0)]))
            .await
            .unwrap()
            .into_inner();
        let ps = resp.partial_success.unwrap();
        assert_eq!(ps.rejected_data_points, 1);
        assert!(
            ps.error_message.contains("out-of-order window"),
            "{}",
            ps.error_message
        );
        // g and its resource's target_info.
        assert_eq!(store.head().stats().series, 2);
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), receivers.wait())
            .await
            .unwrap();
    }
}
