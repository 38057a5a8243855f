//! The real `tocsin-agent` binary against a fake OTLP/HTTP collector (axum
//! on 127.0.0.1:0, requests decoded with opentelemetry-proto): error lines
//! appended to a log file arrive as log records with their file attributes
//! and severity, host metrics arrive under their OpenTelemetry names, an
//! invalid configuration at start is refused with every problem, and an
//! invalid one on SIGHUP leaves the agent running.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures outside #[test] functions fail the test loudly"
)]

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;

/// Longest wait for any one condition.
const DEADLINE: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Received {
    logs: Vec<ExportLogsServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
}

type Shared = Arc<Mutex<Received>>;

async fn logs(State(rx): State<Shared>, body: Bytes) -> Vec<u8> {
    let req = ExportLogsServiceRequest::decode(body).unwrap();
    rx.lock().unwrap().logs.push(req);
    Vec::new()
}

async fn metrics(State(rx): State<Shared>, body: Bytes) -> Vec<u8> {
    let req = ExportMetricsServiceRequest::decode(body).unwrap();
    rx.lock().unwrap().metrics.push(req);
    Vec::new()
}

/// Starts the fake collector; returns its endpoint.
async fn fake_collector(received: Shared) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/v1/logs", axum::routing::post(logs))
        .route("/v1/metrics", axum::routing::post(metrics))
        .with_state(received);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// The agent process, killed on every path out of the test.
struct Agent {
    child: Child,
    stderr: PathBuf,
}

impl Agent {
    fn start(config: &Path, stderr: PathBuf) -> Agent {
        let log = std::fs::File::create(&stderr).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tocsin-agent"))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Agent { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_until(what: &str, agent: &Agent, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > DEADLINE {
            panic!(
                "timed out waiting for {what}; agent log:\n{}",
                agent.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key) {
        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

/// (body, severity number, path, file id, offset) of every record received.
fn records(received: &Shared) -> Vec<(String, i32, String, String, i64)> {
    let rx = received.lock().unwrap();
    let mut out = Vec::new();
    for req in &rx.logs {
        for rl in &req.resource_logs {
            for sl in &rl.scope_logs {
                for r in &sl.log_records {
                    let body = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let offset = match attr(&r.attributes, "tocsin.file.offset") {
                        Some(any_value::Value::IntValue(i)) => *i,
                        _ => -1,
                    };
                    out.push((
                        body,
                        r.severity_number,
                        string_attr(&r.attributes, "log.file.path").unwrap_or_default(),
                        string_attr(&r.attributes, "tocsin.file.id").unwrap_or_default(),
                        offset,
                    ));
                }
            }
        }
    }
    out
}

fn metric_names(received: &Shared) -> Vec<String> {
    let rx = received.lock().unwrap();
    rx.metrics
        .iter()
        .flat_map(|req| &req.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| m.name.clone())
        .collect()
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

fn config_text(endpoint: &str, dir: &Path) -> String {
    format!(
        "\
collector:
  endpoint: {endpoint}
  protocol: http
  gzip: false
  retry_initial: 100ms
  retry_max: 1s
resource:
  host.name: e2e-host
  service.name: e2e
  tocsin.track: canary
metrics:
  interval: 1s
  host:
    scrapers: [cpu, memory, system]
logs:
  - name: app
    include: ['{logs}/*.log']
    read_from: beginning
data_dir: {data}
",
        logs = dir.join("logs").display(),
        data = dir.join("data").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_ships_error_lines_and_host_metrics_and_survives_a_bad_reload() {
    let dir = tempfile::tempdir().unwrap();
    let received = Shared::default();
    let endpoint = fake_collector(Arc::clone(&received)).await;
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let log = dir.path().join("logs/app.log");
    let first = "2026-01-01T00:00:00Z INFO started\n";
    append(&log, first);
    let config = dir.path().join("agent.yaml");
    std::fs::write(&config, config_text(&endpoint, dir.path())).unwrap();
    let mut agent = Agent::start(&config, dir.path().join("agent.stderr"));

    // An error line appended while the agent runs arrives with its file
    // attributes; the info line before it is below min_severity.
    wait_until("the agent to start", &agent, || {
        agent.stderr().contains("agent running")
    })
    .await;
    let error = "2026-01-01T00:00:01Z ERROR payment failed: card declined";
    append(&log, &format!("{error}\n"));
    wait_until("the error record", &agent, || {
        records(&received).iter().any(|r| r.0 == error)
    })
    .await;
    let recs = records(&received);
    assert!(
        recs.iter().all(|r| !r.0.contains("INFO started")),
        "{recs:?}"
    );
    let rec = recs.iter().find(|r| r.0 == error).unwrap();
    assert!((17..=20).contains(&rec.1), "severity {}", rec.1);
    assert_eq!(rec.2, log.display().to_string());
    assert!(!rec.3.is_empty(), "file id missing");
    assert_eq!(rec.4, i64::try_from(first.len()).unwrap());
    {
        let rx = received.lock().unwrap();
        let resource = rx.logs[0].resource_logs[0].resource.as_ref().unwrap();
        let attrs = &resource.attributes;
        assert_eq!(string_attr(attrs, "host.name").as_deref(), Some("e2e-host"));
        assert_eq!(string_attr(attrs, "service.name").as_deref(), Some("e2e"));
        assert_eq!(
            string_attr(attrs, "tocsin.track").as_deref(),
            Some("canary")
        );
        assert!(string_attr(attrs, "tocsin.agent.id").is_some());
    }

    // Host metrics under their semantic-convention names.
    wait_until("host metrics", &agent, || {
        let names = metric_names(&received);
        ["system.cpu.time", "system.memory.usage", "system.uptime"]
            .iter()
            .all(|n| names.iter().any(|m| m == n))
    })
    .await;

    // SIGHUP with an invalid file: every problem logged, the agent keeps
    // running with the old configuration and still ships lines.
    std::fs::write(
        &config,
        "collector:\n  endpoint: ftp://nowhere\nmetrics:\n  interval: 1ms\n",
    )
    .unwrap();
    agent.signal("HUP");
    wait_until("the reload to be refused", &agent, || {
        agent.stderr().contains("keeping the running one")
    })
    .await;
    let stderr = agent.stderr();
    assert!(stderr.contains("collector.endpoint"), "{stderr}");
    assert!(stderr.contains("metrics.interval"), "{stderr}");
    assert!(agent.is_running(), "agent exited after a bad reload");
    let after = "2026-01-01T00:00:02Z ERROR still here after a bad reload";
    append(&log, &format!("{after}\n"));
    wait_until("a record after the bad reload", &agent, || {
        records(&received).iter().any(|r| r.0 == after)
    })
    .await;

    // SIGHUP with a valid file: the new resource attributes apply, and the
    // pipeline restarts from its checkpoints (no line sent twice).
    std::fs::write(
        &config,
        config_text(&endpoint, dir.path())
            .replace("service.name: e2e", "service.name: e2e-reloaded"),
    )
    .unwrap();
    agent.signal("HUP");
    wait_until("the reload", &agent, || {
        agent.stderr().contains("configuration reloaded")
    })
    .await;
    let reloaded = "2026-01-01T00:00:03Z ERROR after a good reload";
    append(&log, &format!("{reloaded}\n"));
    wait_until("a record after the good reload", &agent, || {
        records(&received).iter().any(|r| r.0 == reloaded)
    })
    .await;
    {
        let rx = received.lock().unwrap();
        let last = rx.logs.last().unwrap();
        let resource = last.resource_logs[0].resource.as_ref().unwrap();
        assert_eq!(
            string_attr(&resource.attributes, "service.name").as_deref(),
            Some("e2e-reloaded")
        );
    }

    // SIGTERM: a clean exit within the deadline.
    agent.signal("TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "agent did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit {status}: {}", agent.stderr());
    // A restart resumes from the checkpoints: earlier lines are not sent
    // again, a new one is.
    let mut agent = Agent::start(&config, dir.path().join("agent2.stderr"));
    let restarted = "2026-01-01T00:00:04Z ERROR after a restart";
    wait_until("the agent to restart", &agent, || {
        agent.stderr().contains("agent running")
    })
    .await;
    append(&log, &format!("{restarted}\n"));
    wait_until("a record after the restart", &agent, || {
        records(&received).iter().any(|r| r.0 == restarted)
    })
    .await;
    let recs = records(&received);
    for line in [error, after, reloaded, restarted] {
        assert_eq!(
            recs.iter().filter(|r| r.0 == line).count(),
            1,
            "{line} not received exactly once: {recs:?}"
        );
    }
    assert!(agent.is_running());
}

#[test]
fn invalid_config_at_start_exits_non_zero_listing_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        "collector:\n  endpoint: ftp://nowhere\nresource:\n  service.name: ''\nmetrics:\n  interval: 10ms\nlogs:\n  - include: []\n",
    )
    .unwrap();
    let mut agent = Agent::start(&config, dir.path().join("agent.stderr"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "agent did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let stderr = agent.stderr();
    let file = config.display().to_string();
    for expected in [
        format!("{file}:2:13: collector.endpoint"),
        format!("{file}:4:17: resource.service.name"),
        format!("{file}:6:13: metrics.interval"),
        format!("{file}:8:14: logs[0].include"),
    ] {
        assert!(
            stderr.contains(&expected),
            "{expected} missing in:\n{stderr}"
        );
    }
}
