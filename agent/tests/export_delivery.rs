//! The exporter against in-process fake collectors (a tonic OTLP/gRPC
//! server and an axum OTLP/HTTP server on 127.0.0.1:0) that can be
//! stopped, restarted on the same port, made to refuse the token, reject
//! part of a batch or refuse a batch for good.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures outside #[test] functions fail the test loudly"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::metric;
use tocsin_agent::export::{
    BackoffPolicy, Delivery, Exporter, ExporterOptions, Protocol, ResourceInfo, Transport,
    TransportConfig, exporter,
};
use tocsin_agent::sources::host::{DataPoint, Descriptor, Metric, MetricKind, Value};
use tocsin_agent::sources::logtail::{Batch, LogRecord};
use tocsin_agent::spool::SpoolOptions;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "good-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Accept,
    /// Partial success rejecting this many items.
    RejectSome(i64),
    /// A permanent refusal (gRPC InvalidArgument, HTTP 400).
    Invalid,
    /// "Slow down" (gRPC ResourceExhausted, HTTP 429) for this many more
    /// requests, then accept.
    Throttle(u32),
}

/// Why the fake refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Invalid,
    Throttled,
}

#[derive(Debug, Clone, PartialEq)]
enum Received {
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

struct Fake {
    mode: Mutex<Mode>,
    /// While true, requests wait before being handled (a collector that
    /// hangs), so a batch stays in flight.
    hold: tokio::sync::watch::Sender<bool>,
    received: Mutex<Vec<Received>>,
    unauthorized: Mutex<u64>,
}

impl Fake {
    fn new() -> Arc<Fake> {
        Arc::new(Fake {
            mode: Mutex::new(Mode::Accept),
            hold: tokio::sync::watch::channel(false).0,
            received: Mutex::new(Vec::new()),
            unauthorized: Mutex::new(0),
        })
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn authorized(&self, header: Option<&str>) -> bool {
        let ok = header == Some(&format!("Bearer {TOKEN}"));
        if !ok {
            *self.unauthorized.lock().unwrap() += 1;
        }
        ok
    }

    /// Waits while requests are held.
    async fn gate(&self) {
        let mut rx = self.hold.subscribe();
        let _ = rx.wait_for(|held| !*held).await;
    }

    /// Records the request unless refused; the partial-success count.
    fn take(&self, r: Received) -> Result<i64, Refusal> {
        let mode = self.mode();
        match mode {
            Mode::Invalid => Err(Refusal::Invalid),
            Mode::Throttle(n) => {
                self.set_mode(if n <= 1 {
                    Mode::Accept
                } else {
                    Mode::Throttle(n - 1)
                });
                Err(Refusal::Throttled)
            }
            Mode::Accept => {
                self.received.lock().unwrap().push(r);
                Ok(0)
            }
            Mode::RejectSome(n) => {
                self.received.lock().unwrap().push(r);
                Ok(n)
            }
        }
    }
}

mod grpc_server {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
        LogsService, LogsServiceServer,
    };
    use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
        MetricsService, MetricsServiceServer,
    };
    use tonic::{Request, Response, Status};

    #[derive(Clone)]
    pub struct Svc(pub Arc<Fake>);

    fn status(r: Refusal) -> Status {
        match r {
            Refusal::Invalid => Status::invalid_argument("malformed"),
            Refusal::Throttled => Status::resource_exhausted("slow down"),
        }
    }

    impl Svc {
        fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
            let auth = req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            if self.0.authorized(auth) {
                Ok(())
            } else {
                Err(Status::unauthenticated("bad token"))
            }
        }
    }

    #[tonic::async_trait]
    impl LogsService for Svc {
        async fn export(
            &self,
            req: Request<ExportLogsServiceRequest>,
        ) -> Result<Response<ExportLogsServiceResponse>, Status> {
            self.check(&req)?;
            self.0.gate().await;
            let n = self
                .0
                .take(Received::Logs(req.into_inner()))
                .map_err(status)?;
            Ok(Response::new(ExportLogsServiceResponse {
                partial_success: (n > 0).then(|| ExportLogsPartialSuccess {
                    rejected_log_records: n,
                    error_message: "labels too long".into(),
                }),
            }))
        }
    }

    #[tonic::async_trait]
    impl MetricsService for Svc {
        async fn export(
            &self,
            req: Request<ExportMetricsServiceRequest>,
        ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
            self.check(&req)?;
            self.0.gate().await;
            let n = self
                .0
                .take(Received::Metrics(req.into_inner()))
                .map_err(status)?;
            Ok(Response::new(ExportMetricsServiceResponse {
                partial_success: (n > 0).then(|| ExportMetricsPartialSuccess {
                    rejected_data_points: n,
                    error_message: "out of order".into(),
                }),
            }))
        }
    }

    pub async fn serve(
        listener: tokio::net::TcpListener,
        fake: Arc<Fake>,
        stop: CancellationToken,
    ) {
        let svc = Svc(fake);
        let _ = tonic::transport::Server::builder()
            .add_service(
                LogsServiceServer::new(svc.clone())
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .add_service(
                MetricsServiceServer::new(svc)
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                stop.cancelled_owned(),
            )
            .await;
    }
}

mod http_server {
    use super::*;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use prost::Message;
    use std::io::Read;

    fn body(headers: &HeaderMap, bytes: &Bytes) -> Vec<u8> {
        let gzip = headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| v == "gzip");
        if gzip {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            bytes.to_vec()
        }
    }

    fn authorized(fake: &Fake, headers: &HeaderMap) -> bool {
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        fake.authorized(auth)
    }

    fn refusal(r: Refusal) -> Response {
        match r {
            Refusal::Invalid => (StatusCode::BAD_REQUEST, "malformed").into_response(),
            Refusal::Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "0")],
                "slow down",
            )
                .into_response(),
        }
    }

    async fn logs(State(fake): State<Arc<Fake>>, headers: HeaderMap, bytes: Bytes) -> Response {
        if !authorized(&fake, &headers) {
            return (StatusCode::UNAUTHORIZED, "bad token").into_response();
        }
        fake.gate().await;
        let req = ExportLogsServiceRequest::decode(body(&headers, &bytes).as_slice()).unwrap();
        match fake.take(Received::Logs(req)) {
            Err(r) => refusal(r),
            Ok(n) => ExportLogsServiceResponse {
                partial_success: (n > 0).then(|| ExportLogsPartialSuccess {
                    rejected_log_records: n,
                    error_message: "labels too long".into(),
                }),
            }
            .encode_to_vec()
            .into_response(),
        }
    }

    async fn metrics(State(fake): State<Arc<Fake>>, headers: HeaderMap, bytes: Bytes) -> Response {
        if !authorized(&fake, &headers) {
            return (StatusCode::UNAUTHORIZED, "bad token").into_response();
        }
        fake.gate().await;
        let req = ExportMetricsServiceRequest::decode(body(&headers, &bytes).as_slice()).unwrap();
        match fake.take(Received::Metrics(req)) {
            Err(r) => refusal(r),
            Ok(n) => ExportMetricsServiceResponse {
                partial_success: (n > 0).then(|| ExportMetricsPartialSuccess {
                    rejected_data_points: n,
                    error_message: "out of order".into(),
                }),
            }
            .encode_to_vec()
            .into_response(),
        }
    }

    pub async fn serve(
        listener: tokio::net::TcpListener,
        fake: Arc<Fake>,
        stop: CancellationToken,
    ) {
        let app = axum::Router::new()
            .route("/v1/logs", axum::routing::post(logs))
            .route("/v1/metrics", axum::routing::post(metrics))
            .with_state(fake);
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
    }
}

/// A fake collector that can be stopped and started again on its port.
struct Collector {
    protocol: Protocol,
    /// Appended to the endpoint the agent is given (to misconfigure it).
    path: String,
    fake: Arc<Fake>,
    addr: SocketAddr,
    running: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl Collector {
    async fn start(protocol: Protocol) -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Collector {
            protocol,
            path: String::new(),
            fake: Fake::new(),
            addr,
            running: None,
        };
        c.serve(listener);
        c
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let stop = CancellationToken::new();
        let fake = Arc::clone(&self.fake);
        let handle = match self.protocol {
            Protocol::Grpc => tokio::spawn(grpc_server::serve(listener, fake, stop.clone())),
            Protocol::Http => tokio::spawn(http_server::serve(listener, fake, stop.clone())),
        };
        self.running = Some((stop, handle));
    }

    async fn stop(&mut self) {
        if let Some((stop, handle)) = self.running.take() {
            stop.cancel();
            handle.await.unwrap();
        }
    }

    async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn endpoint(&self) -> String {
        format!("http://{}{}", self.addr, self.path)
    }
}

fn info() -> ResourceInfo {
    ResourceInfo {
        host_name: "web-1".into(),
        service_name: "host".into(),
        environment: None,
        service_version: None,
        track: Some("canary".into()),
        agent_id: "0123456789abcdef0123456789abcdef".into(),
        agent_version: "0.1.0".into(),
        interval_secs: 10,
    }
}

struct Running {
    exporter: Exporter,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn shutdown(self) -> mpsc::UnboundedReceiver<Delivery> {
        self.stop.cancel();
        self.task.await.unwrap();
        self.deliveries
    }
}

fn start_exporter(collector: &Collector, spool: &Path, token: &str, gzip: bool) -> Running {
    start_exporter_with(collector, spool, token, gzip, 1 << 20)
}

fn start_exporter_with(
    collector: &Collector,
    spool: &Path,
    token: &str,
    gzip: bool,
    spool_bytes: u64,
) -> Running {
    let transport = Transport::new(&TransportConfig {
        protocol: collector.protocol,
        endpoint: collector.endpoint(),
        token: Some(token.into()),
        tls: None,
        gzip,
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let options = ExporterOptions {
        memory_batches: 4,
        memory_bytes: 1 << 20,
        max_in_flight: 4,
        spool: SpoolOptions {
            max_bytes: spool_bytes,
            fsync: false,
        },
        // Short, so the test does not wait long for the reconnect; the
        // test itself waits on conditions, never on these delays.
        backoff: BackoffPolicy {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
    };
    let (exporter, task, deliveries) = exporter(spool, options, transport, info()).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(task.run(stop.clone()));
    Running {
        exporter,
        deliveries,
        stop,
        task,
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn log_batch(id: u64, offset: u64) -> Batch {
    Batch {
        id,
        records: vec![LogRecord {
            body: format!("ERROR line at {offset}"),
            path: Arc::from(Path::new("/var/log/app.log")),
            file_id: Arc::from("file-1"),
            offset,
            end_offset: offset + 20,
            severity_number: 17,
            severity_text: Some("ERROR".into()),
            truncated: false,
            observed_unix_nanos: 1_700_000_000_000_000_000 + offset,
            input: 0,
            attributes: Arc::new(BTreeMap::new()),
        }],
    }
}

fn metrics_at(secs: u64) -> Vec<Metric> {
    vec![Metric {
        descriptor: Descriptor {
            name: "system.memory.usage",
            description: "memory",
            unit: "By",
            kind: MetricKind::NonMonotonicSum,
        },
        points: vec![DataPoint {
            attributes: vec![],
            start_time: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)),
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            value: Value::Int(secs as i64),
        }],
    }]
}

/// What a received request says, for comparing orders: ("logs", offset)
/// or ("metrics", time in seconds).
fn describe(r: &Received) -> (&'static str, u64) {
    match r {
        Received::Logs(req) => {
            let rec = &req.resource_logs[0].scope_logs[0].log_records[0];
            let offset = rec
                .attributes
                .iter()
                .find(|a| a.key == "tocsin.file.offset")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match v.value {
                    Some(any_value::Value::IntValue(i)) => Some(i as u64),
                    _ => None,
                })
                .unwrap();
            assert_eq!(rec.time_unix_nano, 1_700_000_000_000_000_000 + offset);
            ("logs", offset)
        }
        Received::Metrics(req) => {
            let m = &req.resource_metrics[0].scope_metrics[0].metrics[0];
            let Some(metric::Data::Sum(sum)) = &m.data else {
                panic!("expected a sum: {m:?}")
            };
            ("metrics", sum.data_points[0].time_unix_nano / 1_000_000_000)
        }
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Ok(d) = rx.try_recv() {
        out.push(d);
    }
    out
}

fn spool_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    (dir, spool)
}

/// Batches submitted while the collector is down wait in the spool and
/// arrive, oldest first and with their original timestamps, when it comes
/// back; acknowledgements come only after that.
async fn outage_then_recovery(protocol: Protocol, gzip: bool) {
    let mut collector = Collector::start(protocol).await;
    let (_dir, spool) = spool_dir();
    let mut agent = start_exporter(&collector, &spool, TOKEN, gzip);

    agent.exporter.submit_metrics(&metrics_at(1_700_000_000));
    agent.exporter.submit_logs(&log_batch(1, 0));
    wait_until("the first two batches arrive", || {
        collector.fake.received().len() == 2
    })
    .await;
    let mut acks = Vec::new();
    wait_until("the first log batch is acknowledged", || {
        acks.extend(drain(&mut agent.deliveries));
        !acks.is_empty()
    })
    .await;
    assert_eq!(acks, vec![Delivery::Acked { batch: 1 }]);

    collector.stop().await;
    agent.exporter.submit_logs(&log_batch(2, 20));
    agent.exporter.submit_metrics(&metrics_at(1_700_000_010));
    agent.exporter.submit_logs(&log_batch(3, 40));
    agent.exporter.submit_metrics(&metrics_at(1_700_000_020));
    wait_until("the batches are spooled after failed sends", || {
        let c = agent.exporter.counters();
        c.send_failures >= 2 && agent.exporter.pending() == (0, 4)
    })
    .await;
    assert!(
        drain(&mut agent.deliveries).is_empty(),
        "nothing is acknowledged while the collector is down"
    );
    assert_eq!(collector.fake.received().len(), 2);
    // While the spool holds anything, a new batch goes behind it at once,
    // never into memory where it could overtake the spooled ones.
    agent.exporter.submit_logs(&log_batch(4, 60));
    assert_eq!(agent.exporter.pending(), (0, 5));

    collector.restart().await;
    wait_until("the spooled batches arrive", || {
        collector.fake.received().len() == 7
    })
    .await;
    let mut order: Vec<_> = collector.fake.received().iter().map(describe).collect();
    // The first two were in flight together (requests are pipelined), so
    // they may arrive either way round; the spool sends one at a time,
    // oldest first.
    order[..2].sort();
    assert_eq!(
        order,
        vec![
            ("logs", 0),
            ("metrics", 1_700_000_000),
            ("logs", 20),
            ("metrics", 1_700_000_010),
            ("logs", 40),
            ("metrics", 1_700_000_020),
            ("logs", 60),
        ]
    );
    let mut acks = Vec::new();
    wait_until("the spooled log batches are acknowledged", || {
        acks.extend(drain(&mut agent.deliveries));
        acks.len() == 3
    })
    .await;
    assert_eq!(
        acks,
        vec![
            Delivery::Acked { batch: 2 },
            Delivery::Acked { batch: 3 },
            Delivery::Acked { batch: 4 }
        ]
    );
    wait_until("the spool is empty", || agent.exporter.pending() == (0, 0)).await;
    let counters = agent.exporter.counters();
    assert_eq!(counters.batches_sent, 7);
    assert_eq!(counters.batches_rejected, 0);
    agent.shutdown().await;
    collector.stop().await;
}

/// Partial success: the batch is acknowledged (the collector keeps the
/// rest and would reject the same items again), the rejected items counted.
async fn partial_success_acks_and_counts(protocol: Protocol) {
    let mut collector = Collector::start(protocol).await;
    collector.fake.set_mode(Mode::RejectSome(1));
    let (_dir, spool) = spool_dir();
    let mut agent = start_exporter(&collector, &spool, TOKEN, false);
    agent.exporter.submit_logs(&log_batch(7, 0));
    let mut acks = Vec::new();
    wait_until("the batch is acknowledged", || {
        acks.extend(drain(&mut agent.deliveries));
        !acks.is_empty()
    })
    .await;
    assert_eq!(acks, vec![Delivery::Acked { batch: 7 }]);
    assert_eq!(agent.exporter.counters().items_rejected, 1);
    assert_eq!(collector.fake.received().len(), 1, "sent once, not retried");
    agent.shutdown().await;
    collector.stop().await;
}

/// A batch the collector refuses for good is dropped, counted and reported,
/// and does not block the batches behind it.
async fn permanent_refusal_drops_and_reports(protocol: Protocol) {
    let mut collector = Collector::start(protocol).await;
    collector.fake.set_mode(Mode::Invalid);
    let (_dir, spool) = spool_dir();
    let mut agent = start_exporter(&collector, &spool, TOKEN, false);
    agent.exporter.submit_logs(&log_batch(1, 0));
    let mut seen = Vec::new();
    wait_until("the refused batch is reported", || {
        seen.extend(drain(&mut agent.deliveries));
        !seen.is_empty()
    })
    .await;
    assert_eq!(seen, vec![Delivery::Dropped { batch: 1 }]);
    assert_eq!(agent.exporter.counters().batches_rejected, 1);
    collector.fake.set_mode(Mode::Accept);
    agent.exporter.submit_logs(&log_batch(2, 20));
    wait_until("the next batch is acknowledged", || {
        seen.extend(drain(&mut agent.deliveries));
        seen.len() == 2
    })
    .await;
    assert_eq!(seen[1], Delivery::Acked { batch: 2 });
    agent.shutdown().await;
    collector.stop().await;
}

/// A wrong token is reported as such and keeps the data: the batch stays
/// spooled (across a restart of the agent) until the token is fixed.
async fn wrong_token_keeps_the_data(protocol: Protocol) {
    let mut collector = Collector::start(protocol).await;
    let (_dir, spool) = spool_dir();
    let agent = start_exporter(&collector, &spool, "wrong", false);
    agent.exporter.submit_logs(&log_batch(1, 0));
    agent.exporter.submit_metrics(&metrics_at(1_700_000_000));
    wait_until("the refusal is counted and the batches spooled", || {
        agent.exporter.counters().auth_failures >= 1 && agent.exporter.pending() == (0, 2)
    })
    .await;
    let mut deliveries = agent.shutdown().await;
    assert!(
        drain(&mut deliveries).is_empty(),
        "neither acknowledged nor dropped"
    );
    assert!(collector.fake.received().is_empty());
    assert!(*collector.fake.unauthorized.lock().unwrap() >= 1);

    // Fixed token, new agent process on the same spool.
    let mut agent = start_exporter(&collector, &spool, TOKEN, false);
    wait_until("the spooled batches arrive", || {
        collector.fake.received().len() == 2
    })
    .await;
    let order: Vec<_> = collector.fake.received().iter().map(describe).collect();
    assert_eq!(order, vec![("logs", 0), ("metrics", 1_700_000_000)]);
    wait_until("the spool is empty", || agent.exporter.pending() == (0, 0)).await;
    // The log batch came from an earlier run: its tailer batch id means
    // nothing now, so no acknowledgement is reported for it.
    assert!(drain(&mut agent.deliveries).is_empty());
    agent.shutdown().await;
    collector.stop().await;
}

/// A full spool evicts the oldest metrics first; log batches evicted when
/// no metrics are left are reported as dropped, so the tailer counts them.
async fn a_full_spool_evicts_metrics_first_and_reports_dropped_logs(protocol: Protocol) {
    let mut collector = Collector::start(protocol).await;
    collector.stop().await;
    let (_dir, spool) = spool_dir();
    // Two 4 KiB segments.
    let mut agent = start_exporter_with(&collector, &spool, TOKEN, false, 8192);
    agent.exporter.submit_metrics(&metrics_at(1_700_000_000));
    wait_until("the first batch is spooled", || {
        agent.exporter.pending() == (0, 1)
    })
    .await;
    let mut next = 1;
    let mut dropped = Vec::new();
    wait_until("a log batch is evicted", || {
        agent.exporter.submit_logs(&log_batch(next, next * 20));
        next += 1;
        dropped.extend(drain(&mut agent.deliveries));
        !dropped.is_empty()
    })
    .await;
    let spool_counters = agent.exporter.spool_counters();
    assert_eq!(spool_counters.evicted_metrics, 1, "the metrics went first");
    assert!(spool_counters.evicted_logs >= 1);
    assert_eq!(
        dropped[0],
        Delivery::Dropped { batch: 1 },
        "oldest logs first"
    );
    assert!(
        dropped
            .iter()
            .all(|d| matches!(d, Delivery::Dropped { .. })),
        "{dropped:?}"
    );
    agent.shutdown().await;
}

/// Throttling is retried (after the Retry-After the collector names, or
/// with backoff), counted, and the batch then acknowledged.
async fn throttling_is_retried(protocol: Protocol) {
    let mut collector = Collector::start(protocol).await;
    collector.fake.set_mode(Mode::Throttle(2));
    let (_dir, spool) = spool_dir();
    let mut agent = start_exporter(&collector, &spool, TOKEN, false);
    agent.exporter.submit_logs(&log_batch(1, 0));
    let mut acks = Vec::new();
    wait_until("the batch is acknowledged", || {
        acks.extend(drain(&mut agent.deliveries));
        !acks.is_empty()
    })
    .await;
    assert_eq!(acks, vec![Delivery::Acked { batch: 1 }]);
    let c = agent.exporter.counters();
    assert_eq!(c.throttled, 2);
    assert_eq!(c.batches_rejected, 0);
    assert_eq!(collector.fake.received().len(), 1);
    agent.shutdown().await;
    collector.stop().await;
}

/// Shutdown while a batch is in flight and others wait in memory: all of
/// them go to the spool, and the next run sends them in order.
async fn shutdown_spools_what_is_in_flight_and_in_memory(protocol: Protocol) {
    let hung = Collector::start(protocol).await;
    hung.fake.hold.send_replace(true);
    let (_dir, spool) = spool_dir();
    let agent = start_exporter(&hung, &spool, TOKEN, false);
    agent.exporter.submit_logs(&log_batch(1, 0));
    wait_until("the first batch is in flight", || {
        agent.exporter.pending() == (0, 0)
    })
    .await;
    agent.exporter.submit_logs(&log_batch(2, 20));
    agent.exporter.submit_metrics(&metrics_at(1_700_000_000));
    agent.exporter.submit_metrics(&metrics_at(1_700_000_010));
    // The second log batch and the first metrics batch go in flight beside
    // the first (requests are pipelined); the second metrics batch waits in
    // memory, since only one metrics batch is ever in flight.
    wait_until("three batches are in flight and one in memory", || {
        agent.exporter.pending() == (1, 0)
    })
    .await;
    let exporter = agent.exporter.clone();
    let mut deliveries = agent.shutdown().await;
    assert_eq!(exporter.pending(), (0, 4));
    assert!(drain(&mut deliveries).is_empty());
    // The spool stays locked while any handle of the exporter lives.
    drop(exporter);
    // The hung collector is left hanging: its held requests never complete.

    let mut collector = Collector::start(protocol).await;
    let agent = start_exporter(&collector, &spool, TOKEN, false);
    wait_until("the spooled batches arrive", || {
        collector.fake.received().len() == 4
    })
    .await;
    let order: Vec<_> = collector.fake.received().iter().map(describe).collect();
    assert_eq!(
        order,
        vec![
            ("logs", 0),
            ("logs", 20),
            ("metrics", 1_700_000_000),
            ("metrics", 1_700_000_010)
        ]
    );
    agent.shutdown().await;
    collector.stop().await;
}

mod grpc {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn throttling_is_retried() {
        super::throttling_is_retried(Protocol::Grpc).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_spools_what_is_in_flight_and_in_memory() {
        super::shutdown_spools_what_is_in_flight_and_in_memory(Protocol::Grpc).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_spool_evicts_metrics_first() {
        a_full_spool_evicts_metrics_first_and_reports_dropped_logs(Protocol::Grpc).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_spool_during_an_outage_and_arrive_oldest_first() {
        outage_then_recovery(Protocol::Grpc, true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partial_success_is_acknowledged_and_counted() {
        partial_success_acks_and_counts(Protocol::Grpc).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permanent_refusal_is_dropped_and_reported() {
        permanent_refusal_drops_and_reports(Protocol::Grpc).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_token_keeps_the_data_spooled() {
        wrong_token_keeps_the_data(Protocol::Grpc).await;
    }
}

mod http {
    use super::*;

    /// An endpoint that is no OTLP receiver (404) is a configuration
    /// mistake: the data is kept, the mistake counted and logged.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_path_keeps_the_data_spooled() {
        let mut collector = Collector::start(Protocol::Http).await;
        collector.path = "/otlp".into();
        let (_dir, spool) = spool_dir();
        let mut agent = start_exporter(&collector, &spool, TOKEN, false);
        agent.exporter.submit_logs(&log_batch(1, 0));
        wait_until("the batch is spooled after a 404", || {
            agent.exporter.counters().misrouted >= 1 && agent.exporter.pending() == (0, 1)
        })
        .await;
        assert!(drain(&mut agent.deliveries).is_empty());
        assert_eq!(agent.exporter.counters().batches_rejected, 0);
        agent.shutdown().await;
        collector.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn throttling_is_retried() {
        super::throttling_is_retried(Protocol::Http).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_spools_what_is_in_flight_and_in_memory() {
        super::shutdown_spools_what_is_in_flight_and_in_memory(Protocol::Http).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_spool_evicts_metrics_first() {
        a_full_spool_evicts_metrics_first_and_reports_dropped_logs(Protocol::Http).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_spool_during_an_outage_and_arrive_oldest_first() {
        outage_then_recovery(Protocol::Http, true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn uncompressed_bodies_work_too() {
        outage_then_recovery(Protocol::Http, false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn partial_success_is_acknowledged_and_counted() {
        partial_success_acks_and_counts(Protocol::Http).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permanent_refusal_is_dropped_and_reported() {
        permanent_refusal_drops_and_reports(Protocol::Http).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wrong_token_keeps_the_data_spooled() {
        wrong_token_keeps_the_data(Protocol::Http).await;
    }
}
