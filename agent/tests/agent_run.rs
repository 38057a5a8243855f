//! The run loop in-process, as the demo runs it: `run_with_reload` ships
//! to a fake OTLP/HTTP collector, keeps the running configuration when a
//! reloaded one cannot start, and returns promptly when shut down.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures outside #[test] functions fail the test loudly"
)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use tocsin_agent::config;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);

type Bodies = Arc<Mutex<Vec<String>>>;

async fn logs(State(rx): State<Bodies>, body: Bytes) -> Vec<u8> {
    let req = ExportLogsServiceRequest::decode(body).unwrap();
    let mut rx = rx.lock().unwrap();
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                if let Some(any_value::Value::StringValue(s)) =
                    r.body.as_ref().and_then(|b| b.value.as_ref())
                {
                    rx.push(s.clone());
                }
            }
        }
    }
    Vec::new()
}

async fn fake_collector(bodies: Bodies) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/v1/logs", axum::routing::post(logs))
        .route(
            "/v1/metrics",
            axum::routing::post(|| async { Vec::<u8>::new() }),
        )
        .with_state(bodies);
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

fn config_at(path: &Path, text: &str) -> config::Config {
    std::fs::write(path, text).unwrap();
    match config::load(path) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_reload_that_cannot_start_keeps_the_running_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let bodies = Bodies::default();
    let endpoint = fake_collector(Arc::clone(&bodies)).await;
    let log = dir.path().join("app.log");
    std::fs::write(&log, "").unwrap();
    let text = |data_dir: &str| {
        format!(
            "collector:\n  endpoint: {endpoint}\n  protocol: http\n  gzip: false\nmetrics:\n  enabled: false\nlogs:\n  - include: ['{}']\n    read_from: beginning\ndata_dir: {data_dir}\n",
            log.display()
        )
    };
    let path = dir.path().join("agent.yaml");
    let good = config_at(&path, &text("data"));
    // A data directory below a regular file cannot be created.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let unstartable = config_at(&path, &text("file/data"));

    let shutdown = CancellationToken::new();
    let (reload, reloads) = mpsc::channel(1);
    let agent = tokio::spawn(tocsin_agent::run::run_with_reload(
        good,
        reloads,
        shutdown.clone(),
    ));
    std::fs::write(&log, "ERROR first\n").unwrap();
    wait_until("the first line", || {
        bodies.lock().unwrap().iter().any(|b| b == "ERROR first")
    })
    .await;

    reload.send(unstartable).await.unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, b"ERROR second\n").unwrap();
    wait_until("the line after the failed reload", || {
        bodies.lock().unwrap().iter().any(|b| b == "ERROR second")
    })
    .await;
    assert!(
        !agent.is_finished(),
        "agent stopped after a reload that cannot start"
    );

    shutdown.cancel();
    let result = tokio::time::timeout(DEADLINE, agent)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.iter().filter(|b| *b == "ERROR first").count(), 1);
}
