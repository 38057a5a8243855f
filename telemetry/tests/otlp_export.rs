//! Self telemetry against a real OTLP receiver on 127.0.0.1: a tonic
//! server with opentelemetry-proto's metrics and trace services for gRPC,
//! an axum endpoint decoding the protobuf bodies for HTTP. Telemetry is
//! built with the real SDK and exporters, a metric and a span are
//! recorded, shutdown flushes, and the receiver must hold both with the
//! resource attributes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use prost::Message as _;
use tocsin_telemetry::config::{OtlpConfig, TelemetryConfig, TlsConfig};
use tocsin_telemetry::{LogOverrides, Protocol, Service, Telemetry};

/// What the receiver got.
#[derive(Default)]
struct Received {
    metrics: Vec<ExportMetricsServiceRequest>,
    traces: Vec<ExportTraceServiceRequest>,
    /// `authorization` and `x-tenant` of every request.
    headers: Vec<(Option<String>, Option<String>)>,
}

type Shared = Arc<Mutex<Received>>;

#[derive(Clone)]
struct Grpc(Shared);

fn header(map: &tonic::metadata::MetadataMap, name: &str) -> Option<String> {
    map.get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut r = self.0.lock().unwrap();
        let md = request.metadata();
        r.headers
            .push((header(md, "authorization"), header(md, "x-tenant")));
        r.metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut r = self.0.lock().unwrap();
        let md = request.metadata();
        r.headers
            .push((header(md, "authorization"), header(md, "x-tenant")));
        r.traces.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn grpc_receiver(shared: Shared) -> SocketAddr {
    grpc_receiver_with(shared, None).await
}

/// With `tls`, (certificate, key) PEM: serves TLS.
async fn grpc_receiver_with(shared: Shared, tls: Option<(String, String)>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let mut server = tonic::transport::Server::builder();
    if let Some((cert, key)) = tls {
        let identity = tonic::transport::Identity::from_pem(cert, key);
        server = server
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .unwrap();
    }
    tokio::spawn(
        server
            .add_service(MetricsServiceServer::new(Grpc(shared.clone())))
            .add_service(TraceServiceServer::new(Grpc(shared)))
            .serve_with_incoming(incoming),
    );
    addr
}

async fn http_receiver(shared: Shared) -> SocketAddr {
    http_receiver_with(shared, None).await
}

/// With `tls`, (certificate, key) PEM: serves HTTPS.
async fn http_receiver_with(shared: Shared, tls: Option<(String, String)>) -> SocketAddr {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::routing::post;

    fn h(map: &HeaderMap, name: &str) -> Option<String> {
        map.get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
    async fn metrics(
        State(s): State<Shared>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
        let Ok(req) = ExportMetricsServiceRequest::decode(body) else {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain")],
                vec![],
            );
        };
        let mut r = s.lock().unwrap();
        r.headers
            .push((h(&headers, "authorization"), h(&headers, "x-tenant")));
        r.metrics.push(req);
        let body = ExportMetricsServiceResponse::default().encode_to_vec();
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body,
        )
    }
    async fn traces(
        State(s): State<Shared>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
        let Ok(req) = ExportTraceServiceRequest::decode(body) else {
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/plain")],
                vec![],
            );
        };
        let mut r = s.lock().unwrap();
        r.headers
            .push((h(&headers, "authorization"), h(&headers, "x-tenant")));
        r.traces.push(req);
        let body = ExportTraceServiceResponse::default().encode_to_vec();
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            body,
        )
    }
    let app = axum::Router::new()
        .route("/v1/metrics", post(metrics))
        .route("/v1/traces", post(traces))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let Some((cert, key)) = tls else {
        tokio::spawn(async move { axum::serve(listener, app).await });
        return addr;
    };
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    addr
}

fn service() -> Service {
    Service {
        name: "tocsin-test",
        version: "9.8.7",
        host_name: "test-host".into(),
    }
}

fn string(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .filter_map(|kv| Some((kv.key.clone(), string(&kv.value)?)))
        .collect()
}

fn assert_resource(kvs: &[KeyValue]) {
    let a = attrs(kvs);
    assert_eq!(
        a.get("service.name").map(String::as_str),
        Some("tocsin-test"),
        "{a:?}"
    );
    assert_eq!(
        a.get("service.version").map(String::as_str),
        Some("9.8.7"),
        "{a:?}"
    );
    assert_eq!(
        a.get("host.name").map(String::as_str),
        Some("test-host"),
        "{a:?}"
    );
}

/// Builds telemetry for `endpoint`, records a counter, a gauge, a
/// histogram and spans, shuts down, and checks what `received` holds.
async fn export_and_check(endpoint: String, protocol: Protocol, received: Shared) {
    export_and_check_with(endpoint, protocol, received, None).await;
}

/// [`export_and_check`], trusting the CA `ca` (PEM) when given.
async fn export_and_check_with(
    endpoint: String,
    protocol: Protocol,
    received: Shared,
    ca: Option<&str>,
) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("otlp.token"), "s3cret\n").unwrap();
    let tls = ca.map(|pem| {
        std::fs::write(dir.path().join("ca.pem"), pem).unwrap();
        TlsConfig {
            ca_file: Some("ca.pem".into()),
        }
    });
    let config = TelemetryConfig {
        otlp: Some(OtlpConfig {
            endpoint,
            protocol,
            headers: BTreeMap::from([("x-tenant".to_string(), "ops".to_string())]),
            token_file: Some("otlp.token".into()),
            // Longer than the test: the one export is the one at shutdown.
            interval: Some("1h".into()),
            tls,
            ..OtlpConfig::default()
        }),
        ..TelemetryConfig::default()
    };
    let settings = config.validate(dir.path()).unwrap();
    // The log level does not limit which spans are exported.
    let quiet = LogOverrides {
        level: Some("warn".into()),
        ..LogOverrides::default()
    };
    let (telemetry, dispatch) = Telemetry::build(&settings, &quiet, &service()).unwrap();
    assert!(telemetry.is_exporting());
    let metrics = telemetry.metrics();
    metrics.counter(
        "tocsin_test_things_total",
        "Things counted by the test.",
        |o| {
            o.observe(40, &[("kind", "a")]);
            o.observe(2, &[("kind", "b")]);
        },
    );
    metrics.gauge("tocsin_test_level", "A level.", "By", |o| {
        o.observe(1.5, &[])
    });
    let h = metrics.histogram("tocsin_test_wait_seconds", "Waits.", "s", &[0.01, 0.1, 1.0]);
    h.record(0.05);
    h.record(0.5);
    tracing::dispatcher::with_default(&dispatch, || {
        let outer = tracing::info_span!(target: "tocsin_test", "test_operation", answer = 42);
        let _outer = outer.enter();
        tracing::info_span!(target: "tocsin_test", "inner_step").in_scope(|| {
            tracing::info!(target: "tocsin_test", "inside");
        });
        // Not Tocsin's: never exported (the transports' own spans must not
        // feed the exporter).
        tracing::info_span!(target: "h2::proto", "foreign").in_scope(|| {});
    });
    telemetry.shutdown(Duration::from_secs(20)).await;

    let r = received.lock().unwrap();
    assert!(!r.metrics.is_empty(), "no metrics arrived");
    assert!(!r.traces.is_empty(), "no spans arrived");
    for (auth, tenant) in &r.headers {
        assert_eq!(auth.as_deref(), Some("Bearer s3cret"));
        assert_eq!(tenant.as_deref(), Some("ops"));
    }

    let mut seen = BTreeMap::new();
    for req in &r.metrics {
        for rm in &req.resource_metrics {
            assert_resource(&rm.resource.as_ref().unwrap().attributes);
            for sm in &rm.scope_metrics {
                let scope = sm.scope.as_ref().map(|s| s.name.as_str());
                if scope == Some("tocsin-telemetry") {
                    continue;
                }
                assert_eq!(scope, Some("tocsin-test"));
                for m in &sm.metrics {
                    match m.data.as_ref().unwrap() {
                        Data::Sum(s) => {
                            assert!(s.is_monotonic, "{}", m.name);
                            for p in &s.data_points {
                                let Some(Value::AsInt(v)) = p.value else {
                                    panic!("{}: {p:?}", m.name)
                                };
                                let kind = attrs(&p.attributes).remove("kind").unwrap();
                                seen.insert(format!("{}{{{kind}}}", m.name), v as f64);
                            }
                        }
                        Data::Gauge(g) => {
                            assert_eq!(m.unit, "By");
                            let Some(Value::AsDouble(v)) = g.data_points[0].value else {
                                panic!("{m:?}")
                            };
                            seen.insert(m.name.clone(), v);
                        }
                        Data::Histogram(h) => {
                            let p = &h.data_points[0];
                            assert_eq!(p.explicit_bounds, vec![0.01, 0.1, 1.0]);
                            assert_eq!(p.bucket_counts, vec![0, 1, 1, 0]);
                            seen.insert(m.name.clone(), p.count as f64);
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        }
    }
    assert_eq!(
        span_counter(&r.metrics, "tocsin_telemetry_spans_dropped_total"),
        Some(0)
    );
    assert_eq!(
        seen,
        BTreeMap::from([
            ("tocsin_test_level".to_string(), 1.5),
            ("tocsin_test_things_total{a}".to_string(), 40.0),
            ("tocsin_test_things_total{b}".to_string(), 2.0),
            ("tocsin_test_wait_seconds".to_string(), 2.0),
        ])
    );

    let mut spans = BTreeMap::new();
    for req in &r.traces {
        for rs in &req.resource_spans {
            assert_resource(&rs.resource.as_ref().unwrap().attributes);
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    spans.insert(s.name.clone(), s.clone());
                }
            }
        }
    }
    assert_eq!(
        spans.keys().map(String::as_str).collect::<Vec<_>>(),
        ["inner_step", "test_operation"]
    );
    let outer = &spans["test_operation"];
    let inner = &spans["inner_step"];
    assert_eq!(
        attrs(&outer.attributes).get("answer").map(String::as_str),
        Some("42")
    );
    assert_eq!(inner.trace_id, outer.trace_id);
    assert_eq!(inner.parent_span_id, outer.span_id);
    assert!(
        inner.events.iter().any(|e| e.name == "inside"),
        "{:?}",
        inner.events
    );
}

/// The value of the telemetry's own counter `name` in the last export.
fn span_counter(metrics: &[ExportMetricsServiceRequest], name: &str) -> Option<i64> {
    metrics
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .filter(|m| m.name == name)
        .filter_map(|m| match m.data.as_ref()? {
            Data::Sum(s) => match s.data_points.first()?.value? {
                Value::AsInt(v) => Some(v),
                Value::AsDouble(_) => None,
            },
            _ => None,
        })
        .next_back()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_spans_arrive_over_grpc_with_the_resource() {
    let received = Shared::default();
    let addr = grpc_receiver(received.clone()).await;
    export_and_check(format!("http://{addr}"), Protocol::Grpc, received).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_spans_arrive_over_http_with_the_resource() {
    let received = Shared::default();
    let addr = http_receiver(received.clone()).await;
    export_and_check(format!("http://{addr}/"), Protocol::Http, received).await;
}

/// A throwaway CA and a `localhost` server certificate it signed:
/// (CA PEM, (certificate PEM, key PEM)).
fn test_pki() -> (String, (String, String)) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair,
    };
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "Tocsin test CA");
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = p.signed_by(&key, &ca).unwrap();
    (ca.pem(), (cert.pem(), key.serialize_pem()))
}

/// gRPC over TLS, the receiver's certificate signed by the configured CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_spans_arrive_over_grpc_with_tls() {
    let (ca, server) = test_pki();
    let received = Shared::default();
    let addr = grpc_receiver_with(received.clone(), Some(server)).await;
    export_and_check_with(
        format!("https://localhost:{}", addr.port()),
        Protocol::Grpc,
        received,
        Some(&ca),
    )
    .await;
}

/// HTTPS, the receiver's certificate signed by the configured CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_spans_arrive_over_https_with_tls() {
    let (ca, server) = test_pki();
    let received = Shared::default();
    let addr = http_receiver_with(received.clone(), Some(server)).await;
    export_and_check_with(
        format!("https://localhost:{}", addr.port()),
        Protocol::Http,
        received,
        Some(&ca),
    )
    .await;
}

/// A current-thread runtime, as the agent runs: the export at shutdown
/// must not wait for the thread that is blocked waiting for it.
#[test]
fn shutdown_flushes_on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let received = Shared::default();
        let addr = grpc_receiver(received.clone()).await;
        export_and_check(format!("http://{addr}"), Protocol::Grpc, received).await;
    });
}

#[tokio::test]
async fn without_otlp_nothing_is_exported() {
    let settings = TelemetryConfig::default()
        .validate(std::path::Path::new("."))
        .unwrap();
    let (telemetry, _dispatch) =
        Telemetry::build(&settings, &LogOverrides::default(), &service()).unwrap();
    assert!(!telemetry.is_exporting());
    assert!(!telemetry.metrics().is_enabled());
    assert!(!tocsin_telemetry::SelfMetrics::global().is_enabled());
    telemetry.shutdown(Duration::from_secs(1)).await;
}

/// A receiver whose trace service answers only once the gate opens.
#[derive(Clone)]
struct Gated {
    inner: Grpc,
    gate: Arc<tokio::sync::Semaphore>,
}

#[tonic::async_trait]
impl TraceService for Gated {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let _open = self.gate.acquire().await.unwrap();
        TraceService::export(&self.inner, request).await
    }
}

/// While the exporter is stuck, spans beyond `max_queued_spans` are dropped
/// and counted; every span is either received or counted as dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_beyond_the_queue_bound_are_dropped_and_counted() {
    let received = Shared::default();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(Grpc(received.clone())))
            .add_service(TraceServiceServer::new(Gated {
                inner: Grpc(received.clone()),
                gate: gate.clone(),
            }))
            .serve_with_incoming(incoming),
    );
    let config = TelemetryConfig {
        otlp: Some(OtlpConfig {
            endpoint: format!("http://{addr}"),
            interval: Some("1h".into()),
            timeout: Some("60s".into()),
            max_queued_spans: Some(2),
            ..OtlpConfig::default()
        }),
        ..TelemetryConfig::default()
    };
    let settings = config.validate(std::path::Path::new(".")).unwrap();
    let (telemetry, dispatch) =
        Telemetry::build(&settings, &LogOverrides::default(), &service()).unwrap();
    const SPANS: i64 = 20;
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..SPANS {
            tracing::info_span!(target: "tocsin_test", "work", i).in_scope(|| {});
        }
    });
    // At most one export is in flight (stuck at the gate) and two spans
    // wait behind it, so most of the twenty were dropped.
    gate.add_permits(1000);
    telemetry.shutdown(Duration::from_secs(30)).await;

    let r = received.lock().unwrap();
    let spans: i64 = r
        .traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as i64)
        .sum();
    let dropped = span_counter(&r.metrics, "tocsin_telemetry_spans_dropped_total").unwrap();
    assert_eq!(
        spans + dropped,
        SPANS,
        "received {spans}, dropped {dropped}"
    );
    assert!((2..=4).contains(&spans), "received {spans}");
}

/// `sample_ratio: 0` keeps no trace; metrics still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_sample_ratio_exports_no_spans() {
    let received = Shared::default();
    let addr = grpc_receiver(received.clone()).await;
    let config = TelemetryConfig {
        otlp: Some(OtlpConfig {
            endpoint: format!("http://{addr}"),
            interval: Some("1h".into()),
            sample_ratio: Some(0.0),
            ..OtlpConfig::default()
        }),
        ..TelemetryConfig::default()
    };
    let settings = config.validate(std::path::Path::new(".")).unwrap();
    let (telemetry, dispatch) =
        Telemetry::build(&settings, &LogOverrides::default(), &service()).unwrap();
    telemetry
        .metrics()
        .counter("tocsin_test_things_total", "Things.", |o| o.observe(1, &[]));
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..10 {
            tracing::info_span!(target: "tocsin_test", "work", i).in_scope(|| {});
        }
    });
    telemetry.shutdown(Duration::from_secs(20)).await;
    let r = received.lock().unwrap();
    assert!(!r.metrics.is_empty(), "no metrics arrived");
    let spans: usize = r
        .traces
        .iter()
        .flat_map(|t| &t.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum();
    assert_eq!(spans, 0);
    assert_eq!(
        span_counter(&r.metrics, "tocsin_telemetry_spans_dropped_total"),
        Some(0)
    );
}
