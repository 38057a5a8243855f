//! The OpenTelemetry Python SDK as an outside client: the real
//! `tocsin-collector` binary on free ports of 127.0.0.1 takes metrics and
//! logs that the SDK's own OTLP exporters send over gRPC and over HTTP
//! (protobuf, gzip), and the query and logs APIs return them under the
//! translated Prometheus names, with `job`, `instance` and the promoted
//! resource attributes as labels, the values the application recorded,
//! and the normalised severities.
//!
//! The SDK comes from a Python venv: `TOCSIN_TEST_PYTHON` names its
//! interpreter, else `target/ci-venv/bin/python` under the workspace root
//! (what `.ci/run` creates). Without one that has the packages the test
//! fails and says how to install them.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a helper that cannot start a process or read its answers must fail the test"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{
    Collector, WAIT, free_port, get_json, http_client, plain_config, wait_ready, write_config,
};

type Labels = BTreeMap<String, String>;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otel_python")
}

/// A command for `python` with the proxy and `OTEL_*` variables of the
/// environment removed, so that nothing but the script's arguments decides
/// where the SDK sends.
fn python_command(python: &Path) -> Command {
    let mut cmd = Command::new(python);
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy().to_ascii_lowercase();
        if k.starts_with("otel_") || k.ends_with("_proxy") {
            cmd.env_remove(&key);
        }
    }
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null());
    cmd
}

/// The interpreter of a venv with the OpenTelemetry SDK and OTLP
/// exporters, or a failure that says how to make one.
fn sdk_python() -> PathBuf {
    let root = workspace_root();
    let (python, source) = match std::env::var_os("TOCSIN_TEST_PYTHON") {
        Some(p) if !p.is_empty() => (root.join(p), "TOCSIN_TEST_PYTHON"),
        _ => (root.join("target/ci-venv/bin/python"), "the default venv"),
    };
    let install = "the OpenTelemetry Python SDK is missing: run `.ci/run`, or create the venv by hand from the workspace root:\n    \
         python3 -m venv target/ci-venv && target/ci-venv/bin/pip install -r collector/tests/otel_python/requirements.txt\n\
         (or set TOCSIN_TEST_PYTHON to a python that has opentelemetry-sdk and opentelemetry-exporter-otlp; \
         `apt-get install python3-venv` if `python3 -m venv` fails)";
    let probe = python_command(&python)
        .args([
            "-c",
            "import opentelemetry.sdk.metrics, opentelemetry.sdk._logs, \
             opentelemetry.exporter.otlp.proto.grpc.metric_exporter, \
             opentelemetry.exporter.otlp.proto.http.metric_exporter",
        ])
        .output();
    match probe {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "{} ({source}) cannot import the SDK:\n{}\n{install}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("{} ({source}): {e}\n{install}", python.display()),
    }
}

/// Runs the sender script to its end, at most [`WAIT`].
fn run_sender(python: &Path, grpc: SocketAddr, http: SocketAddr, dir: &Path) -> Output {
    let (out, err) = (dir.join("sender.out"), dir.join("sender.err"));
    let mut child = python_command(python)
        .arg(script_dir().join("send.py"))
        .args(["--grpc", &format!("http://{grpc}")])
        .args(["--http", &format!("http://{http}")])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "send.py did not finish within {WAIT:?}; stderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(out).unwrap(),
        stderr: std::fs::read(err).unwrap(),
    }
}

fn labels_of(v: &serde_json::Value) -> Labels {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// An instant query at `time_s`, as (labels, value), sorted.
async fn query(
    http: &reqwest::Client,
    api: SocketAddr,
    expr: &str,
    time_s: f64,
) -> Vec<(Labels, f64)> {
    let mut out: Vec<(Labels, f64)> = support::query(http, api, expr, time_s)
        .await
        .iter()
        .map(|(labels, v)| (labels_of(labels), *v))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The records `/api/v1/logs` returns for `params`.
async fn logs(
    http: &reqwest::Client,
    api: SocketAddr,
    params: &[(&str, &str)],
) -> Vec<serde_json::Value> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    let body = get_json(http, format!("http://{api}/api/v1/logs?{}", q.finish())).await;
    assert_eq!(body["data"]["truncated"], false, "{body}");
    body["data"]["records"].as_array().unwrap().clone()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The labels every series and record of `protocol`'s resource carries.
fn resource_labels(protocol: &str) -> Labels {
    [
        ("job", "shop/checkout".to_string()),
        ("instance", format!("checkout-{protocol}-1")),
        ("host_name", "web-1".to_string()),
        ("service_name", "checkout".to_string()),
        ("service_version", "1.4.2".to_string()),
        ("deployment_environment_name", "staging".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn series(protocol: &str, name: &str, extra: &[(&str, &str)], value: f64) -> (Labels, f64) {
    let mut l = resource_labels(protocol);
    l.insert("__name__".into(), format!("pysdk_{protocol}_{name}"));
    for (k, v) in extra {
        l.insert((*k).into(), (*v).into());
    }
    (l, value)
}

/// What send.py's measurements must become for one protocol (its module
/// doc lists them): the final values, whatever the temporality.
fn expected_series(protocol: &str) -> Vec<(Labels, f64)> {
    let route = ("http_route", "/pay");
    let mut v = vec![
        series(
            protocol,
            "transferred_bytes_total",
            &[("direction", "tx")],
            1024.0,
        ),
        series(
            protocol,
            "transferred_bytes_total",
            &[("direction", "rx")],
            5.0,
        ),
        series(protocol, "queue_depth", &[("queue", "payments")], 5.0),
        series(protocol, "utilization_ratio", &[], 0.75),
        series(protocol, "request_duration_seconds_sum", &[route], 2.6875),
        series(protocol, "request_duration_seconds_count", &[route], 4.0),
    ];
    for (le, n) in [("0.1", 1.0), ("0.5", 3.0), ("1", 3.0), ("+Inf", 4.0)] {
        v.push(series(
            protocol,
            "request_duration_seconds_bucket",
            &[route, ("le", le)],
            n,
        ));
    }
    v
}

/// (severity label, severity text, body) of send.py's records.
fn expected_records(protocol: &str) -> BTreeSet<(String, String, String)> {
    [
        ("trace", "TRACE", "trace"),
        ("debug", "DEBUG", "debug"),
        ("info", "INFO", "info"),
        ("info", "NOTICE", "notice"),
        ("warn", "WARN", "warn"),
        ("error", "ERROR", "error"),
        ("fatal", "FATAL", "fatal"),
        ("unknown", "", "unspecified"),
    ]
    .into_iter()
    .map(|(sev, text, word)| {
        (
            sev.to_string(),
            text.to_string(),
            format!("{protocol} {word}: payment for order A-17 took 3 attempts"),
        )
    })
    .collect()
}

fn record_key(r: &serde_json::Value) -> (String, String, String) {
    (
        r["severity"].as_str().unwrap().to_string(),
        r["severity_text"].as_str().unwrap().to_string(),
        r["body"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_metrics_and_logs_over_grpc_and_http() {
    let python = sdk_python();
    let dir = tempfile::tempdir().unwrap();
    let (grpc, otlp_http, api) = (free_port(), free_port(), free_port());
    let config = write_config(dir.path(), &plain_config(grpc, otlp_http, api));
    let http = http_client();

    let c = Collector::start(&config, dir.path().join("collector.log"));
    wait_ready(&http, api, &c).await;

    let started_ms = (now_s() * 1000.0) as i64;
    let sender = {
        let (python, dir) = (python.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || run_sender(&python, grpc, otlp_http, &dir))
            .await
            .unwrap()
    };
    assert!(
        sender.status.success(),
        "send.py failed ({}):\nstdout:\n{}\nstderr:\n{}\ncollector log:\n{}",
        sender.status,
        String::from_utf8_lossy(&sender.stdout),
        String::from_utf8_lossy(&sender.stderr),
        c.log()
    );
    let t = now_s();

    // Every series of the two resources, exactly: the names, labels and
    // final values, cumulative over gRPC and delta (accumulated by the
    // collector) over HTTP.
    let got = query(&http, api, r#"{job="shop/checkout"}"#, t).await;
    let (info, got): (Vec<_>, Vec<_>) = got
        .into_iter()
        .partition(|(l, _)| l["__name__"] == "target_info");
    let mut want: Vec<(Labels, f64)> = ["grpc", "http"]
        .into_iter()
        .flat_map(expected_series)
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got, want, "collector log:\n{}", c.log());

    // The first collection's counter value is there too, under both
    // temporalities: 1000 before the 24 more.
    for protocol in ["grpc", "http"] {
        let expr = format!(
            r#"min_over_time(pysdk_{protocol}_transferred_bytes_total{{direction="tx"}}[10m])"#
        );
        let got = query(&http, api, &expr, t).await;
        assert_eq!(
            got.iter().map(|s| s.1).collect::<Vec<_>>(),
            [1000.0],
            "{expr}"
        );
    }

    // target_info: job, instance and the other resource attributes,
    // including the SDK's own.
    assert_eq!(info.len(), 2, "{info:?}");
    for ((labels, v), protocol) in info.iter().zip(["grpc", "http"]) {
        assert_eq!(*v, 1.0);
        assert_eq!(labels["instance"], format!("checkout-{protocol}-1"));
        assert_eq!(labels["job"], "shop/checkout");
        assert_eq!(labels["host_name"], "web-1");
        assert_eq!(labels["service_version"], "1.4.2");
        assert_eq!(labels["deployment_environment_name"], "staging");
        assert_eq!(labels["telemetry_sdk_language"], "python");
        assert_eq!(labels["telemetry_sdk_name"], "opentelemetry");
        assert!(!labels["telemetry_sdk_version"].is_empty(), "{labels:?}");
        let keys: Vec<&str> = labels.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "__name__",
                "deployment_environment_name",
                "host_name",
                "instance",
                "job",
                "service_version",
                "telemetry_sdk_language",
                "telemetry_sdk_name",
                "telemetry_sdk_version",
            ],
            "target_info keeps service.name/namespace/instance.id only as job and instance"
        );
    }

    // Logs: every record, with its normalised severity, the original text,
    // the body, the attributes and the resource's labels.
    for protocol in ["grpc", "http"] {
        let selector = format!(r#"{{instance="checkout-{protocol}-1"}}"#);
        let records = logs(&http, api, &[("query", &selector), ("limit", "100")]).await;
        let got: BTreeSet<_> = records.iter().map(record_key).collect();
        assert_eq!(records.len(), got.len(), "{records:#?}");
        assert_eq!(got, expected_records(protocol), "{records:#?}");
        for r in &records {
            let mut want = resource_labels(protocol);
            want.insert("severity".into(), r["severity"].as_str().unwrap().into());
            assert_eq!(labels_of(&r["labels"]), want, "{r}");
            assert_eq!(r["attributes"]["order.id"], "A-17", "{r}");
            assert_eq!(r["attributes"]["attempts"], "3", "{r}");
            let time_ms = r["time_ms"].as_i64().unwrap();
            assert!(
                (started_ms - 1000..=(t * 1000.0) as i64).contains(&time_ms),
                "record time {time_ms} outside the run [{started_ms}, {t}]: {r}"
            );
        }

        // A minimum severity selects error and fatal only.
        let records = logs(&http, api, &[("query", &selector), ("severity", "error")]).await;
        let got: BTreeSet<_> = records.iter().map(record_key).collect();
        let want: BTreeSet<_> = expected_records(protocol)
            .into_iter()
            .filter(|(sev, _, _)| sev == "error" || sev == "fatal")
            .collect();
        assert_eq!(got, want);
    }

    // Records become series: both resources share host and service, so
    // each severity counted twice.
    let deadline = Instant::now() + WAIT;
    loop {
        let got = query(
            &http,
            api,
            r#"tocsin_log_records_total{host_name="web-1",service_name="checkout"}"#,
            now_s(),
        )
        .await;
        let by_severity: BTreeMap<String, f64> = got
            .iter()
            .map(|(l, v)| (l["severity"].clone(), *v))
            .collect();
        let want: BTreeMap<String, f64> = [
            ("debug", 2.0),
            ("error", 2.0),
            ("fatal", 2.0),
            ("info", 4.0),
            ("trace", 2.0),
            ("unknown", 2.0),
            ("warn", 2.0),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if by_severity == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "tocsin_log_records_total by severity: {by_severity:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
