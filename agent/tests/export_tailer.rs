//! The tailer and the exporter together against a fake OTLP/gRPC collector
//! on 127.0.0.1:0: a file's checkpoint advances only after the collector
//! acknowledged the batch holding its lines, so lines sent while the
//! collector was away are read again after a restart, and lines it
//! acknowledged are not.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures outside #[test] functions fail the test loudly"
)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use tocsin_agent::export::{
    BackoffPolicy, Delivery, ExporterOptions, Protocol, ResourceInfo, Transport, TransportConfig,
    exporter,
};
use tocsin_agent::sources::logtail::{
    LogInputConfig, SystemClock, Tailer, TailerOptions, validate_inputs,
};
use tocsin_agent::spool::SpoolOptions;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Offsets of the log records the collector accepted.
#[derive(Default)]
struct Offsets(Mutex<Vec<i64>>);

struct Svc(Arc<Offsets>);

#[tonic::async_trait]
impl LogsService for Svc {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let mut offsets = self.0.0.lock().unwrap();
        for rl in &req.get_ref().resource_logs {
            for sl in &rl.scope_logs {
                for r in &sl.log_records {
                    let offset = r
                        .attributes
                        .iter()
                        .find(|a| a.key == "tocsin.file.offset")
                        .and_then(|a| a.value.as_ref()?.value.as_ref())
                        .map(|v| match v {
                            any_value::Value::IntValue(i) => *i,
                            other => panic!("offset is not an int: {other:?}"),
                        })
                        .unwrap();
                    offsets.push(offset);
                }
            }
        }
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

fn serve(listener: tokio::net::TcpListener, offsets: Arc<Offsets>) -> CancellationToken {
    let stop = CancellationToken::new();
    let server = tonic::transport::Server::builder()
        .add_service(LogsServiceServer::new(Svc(offsets)))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener),
            stop.clone().cancelled_owned(),
        );
    tokio::spawn(async move {
        let _ = server.await;
    });
    stop
}

fn tailer(logs: &Path, data: &Path) -> Tailer {
    let yaml = format!(
        "- include: ['{}/app.log']\n  read_from: beginning\n",
        logs.display()
    );
    let configs: Vec<LogInputConfig> = serde_saphyr::from_str(&yaml).unwrap();
    let inputs = validate_inputs("logs", &configs).unwrap();
    let options = TailerOptions {
        watch: false,
        ..TailerOptions::default()
    };
    Tailer::new(inputs, data, Arc::new(SystemClock), options).unwrap()
}

fn info() -> ResourceInfo {
    ResourceInfo {
        host_name: "web-1".into(),
        service_name: "host".into(),
        environment: None,
        service_version: None,
        track: None,
        agent_id: "0123456789abcdef0123456789abcdef".into(),
        agent_version: "0.1.0".into(),
        interval_secs: 10,
    }
}

struct Agent {
    tailer: Tailer,
    exporter: tocsin_agent::export::Exporter,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Agent {
    fn start(logs: &Path, data: &Path, port: u16) -> Agent {
        let transport = Transport::new(&TransportConfig {
            protocol: Protocol::Grpc,
            endpoint: format!("http://127.0.0.1:{port}"),
            token: None,
            tls: None,
            gzip: false,
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let options = ExporterOptions {
            memory_batches: 4,
            memory_bytes: 1 << 20,
            max_in_flight: 4,
            spool: SpoolOptions {
                max_bytes: 1 << 20,
                fsync: false,
            },
            backoff: BackoffPolicy {
                initial: Duration::from_millis(5),
                max: Duration::from_millis(50),
            },
        };
        let (exporter, task, deliveries) =
            exporter(&data.join("spool"), options, transport, info()).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(task.run(stop.clone()));
        let mut tailer = tailer(logs, data);
        tailer.reconcile();
        Agent {
            tailer,
            exporter,
            deliveries,
            stop,
            task,
        }
    }

    /// Reads the file and submits what it holds; returns the records sent.
    fn read_and_submit(&mut self) -> usize {
        self.tailer.poll().unwrap();
        let mut sent = 0;
        while let Some(batch) = self.tailer.next_batch(100, 1 << 20) {
            sent += batch.records.len();
            self.exporter.submit_logs(&batch);
        }
        sent
    }

    fn settle(&mut self) -> usize {
        let mut n = 0;
        while let Ok(d) = self.deliveries.try_recv() {
            d.apply(&mut self.tailer).unwrap();
            n += 1;
        }
        n
    }

    async fn stop(mut self) {
        self.settle();
        self.tailer.checkpoint_now().unwrap();
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn append(path: &Path, lines: &[&str]) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_advance_only_over_acknowledged_lines() {
    let logs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let file = logs.path().join("app.log");
    append(&file, &["ERROR one", "ERROR two"]);

    // The collector is not there yet: a port nobody listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);

    let mut agent = Agent::start(logs.path(), data.path(), port);
    assert_eq!(agent.read_and_submit(), 2);
    wait_until("the batch is spooled after a failed send", || {
        agent.exporter.counters().send_failures >= 1 && agent.exporter.pending() == (0, 1)
    })
    .await;
    assert_eq!(agent.settle(), 0, "nothing acknowledged");
    agent.stop().await;

    // Restart with the collector up: the unacknowledged lines are read
    // again (and the spooled copy is sent too; the collector deduplicates
    // by file id and offset), then acknowledged.
    let offsets = Arc::new(Offsets::default());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let server = serve(listener, Arc::clone(&offsets));
    let mut agent = Agent::start(logs.path(), data.path(), port);
    assert_eq!(
        agent.read_and_submit(),
        2,
        "unacknowledged lines are read again"
    );
    let mut settled = 0;
    wait_until("the re-read batch is acknowledged", || {
        settled += agent.settle();
        settled == 1
    })
    .await;
    wait_until("the spool is drained", || {
        agent.exporter.pending() == (0, 0)
    })
    .await;
    let mut got = offsets.0.lock().unwrap().clone();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, vec![0, 10], "both lines arrived (after dedup)");
    append(&file, &["ERROR three"]);
    assert_eq!(agent.read_and_submit(), 1);
    wait_until("the new line is acknowledged", || {
        settled += agent.settle();
        settled == 2
    })
    .await;
    agent.stop().await;

    // Everything was acknowledged: a restart reads nothing again.
    let mut agent = Agent::start(logs.path(), data.path(), port);
    assert_eq!(agent.read_and_submit(), 0);
    agent.stop().await;
    server.cancel();
}
