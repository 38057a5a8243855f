//! `tocsinctl` against the real `tocsin-collector` binary, on free ports
//! of 127.0.0.1, with API tokens of role read and admin: samples and log
//! records sent over OTLP/HTTP are found by `tocsinctl query` and
//! `tocsinctl logs query` given `--url` and `--token` or `TOCSIN_TOKEN`;
//! a missing or wrong token, a token without the role, an unreachable
//! collector and an API error each give a clear message and a non-zero
//! exit; `agents list` and `agents forget` work over `/api/v1/agents`;
//! `error-groups list` shows the mined groups, and after a restart the
//! same group (id, first seen) continues its count.

#![expect(
    clippy::unwrap_used,
    reason = "a helper that cannot start the collector or read its answers must fail the test"
)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use support::{
    Collector, WAIT, error_logs_request, free_port, gauge_request, http_client, kv, now_ms,
    post_protobuf, wait_ready,
};

const READ_TOKEN: &str = "read-secret-1";
const ADMIN_TOKEN: &str = "admin-secret-2";
const AGENT_ID: &str = "ctl-agent-7";

fn resource() -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", "ctl"),
            kv("host.name", "host-ctl"),
            kv("tocsin.agent.id", AGENT_ID),
            kv("tocsin.agent.version", "0.1.0"),
            kv("tocsin.agent.interval", "10"),
        ],
        ..Resource::default()
    }
}

/// `tocsinctl ARGS` with `TOCSIN_TOKEN` set to `env_token` (or unset).
fn ctl(args: &[&str], env_token: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tocsinctl"));
    cmd.args(args)
        .env_remove("TOCSIN_TOKEN")
        .env_remove("TOCSIN_URL")
        .stdin(Stdio::null());
    if let Some(t) = env_token {
        cmd.env("TOCSIN_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `tocsinctl ARGS` until its standard output satisfies `check`
/// (data sent is stored before it is acknowledged, but the self series
/// and agent inventory are written by the periodic work).
fn ctl_until(
    args: &[&str],
    env_token: Option<&str>,
    c: &Collector,
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let o = ctl(args, env_token);
        let out = stdout(&o);
        if o.status.success() && check(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "tocsinctl {args:?}: {}\nstdout:\n{out}\nstderr:\n{}\ncollector log:\n{}",
            o.status,
            stderr(&o),
            c.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts a failed run: non-zero exit, and `needle` in its message.
fn assert_fails(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "expected failure; stdout:\n{}",
        stdout(o)
    );
    let err = stderr(o);
    assert!(err.contains(needle), "want {needle:?} in:\n{err}");
}

fn write_config(dir: &Path, otlp: SocketAddr, api: SocketAddr) -> PathBuf {
    support::write_config(
        dir,
        &format!(
            "data_dir: data\n\
             receivers:\n  otlp:\n    grpc: null\n    http: {{ listen: \"{otlp}\" }}\n\
             ruler:\n  evaluation_interval: 1s\n\
             api:\n  listen: \"{api}\"\n  tokens:\n\
             \x20   - {{ name: grafana, role: read, token: \"{READ_TOKEN}\" }}\n\
             \x20   - {{ name: ops, role: admin, token: \"{ADMIN_TOKEN}\" }}\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tocsinctl_queries_a_collector_with_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (otlp, api) = (free_port(), free_port());
    let config = write_config(dir.path(), otlp, api);
    let http = http_client();
    let mut c = Collector::start(&config, dir.path().join("first.log"));
    wait_ready(&http, api, &c).await;
    let url = format!("http://{api}");

    let now = now_ms();
    let points: Vec<(u64, f64)> = (0..3)
        .map(|i| ((now - 3000 + i * 1000) * 1_000_000, 20.0 + i as f64))
        .collect();
    post_protobuf(
        &http,
        format!("http://{otlp}/v1/metrics"),
        gauge_request(resource(), "ctl_temperature", &points).encode_to_vec(),
    )
    .await;
    post_protobuf(
        &http,
        format!("http://{otlp}/v1/logs"),
        error_logs_request(
            resource(),
            now * 1_000_000,
            &[
                "disk /dev/sda1 failed: I/O error",
                "disk /dev/sdb2 failed: I/O error",
            ],
        )
        .encode_to_vec(),
    )
    .await;

    // query with --url and --token: promtool's format.
    let o = ctl(
        &[
            "query",
            "ctl_temperature",
            "--url",
            &url,
            "--token",
            READ_TOKEN,
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("ctl_temperature{")
            && out.contains("host_name=\"host-ctl\"")
            && out.contains("} => 22 @["),
        "{out}"
    );
    // The token from the environment, the URL after the subcommand's
    // arguments, -o json: the API's answer.
    let o = ctl(
        &["query", "ctl_temperature * 2", "-o", "json", "--url", &url],
        Some(READ_TOKEN),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let body: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["result"][0]["value"][1], "44", "{body}");
    // A range query over the three points.
    let (start, end) = ((now - 3000) as f64 / 1000.0, (now - 1000) as f64 / 1000.0);
    let o = ctl(
        &[
            "--url",
            &url,
            "query",
            "range",
            "ctl_temperature",
            "--start",
            &start.to_string(),
            "--end",
            &end.to_string(),
            "--step",
            "1s",
        ],
        Some(READ_TOKEN),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(" =>\n20 @[") && out.contains("\n22 @["),
        "{out}"
    );

    // logs query: selector, severity, text, limit.
    let o = ctl(
        &[
            "logs",
            "query",
            "{service_name=\"ctl\"}",
            "--severity",
            "error",
            "--contains",
            "sdb2",
            "--since",
            "1h",
            "--url",
            &url,
        ],
        Some(READ_TOKEN),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains(" ERROR ") && out.ends_with("disk /dev/sdb2 failed: I/O error\n"),
        "{out}"
    );
    let o = ctl(
        &[
            "logs", "query", "--regex", "sd[ab]", "--limit", "1", "-o", "json", "--url", &url,
            "--token", READ_TOKEN,
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let body: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        body["data"]["records"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    assert_eq!(body["data"]["truncated"], true, "{body}");

    // Refusals: each says what is wrong and exits non-zero.
    assert_fails(
        &ctl(&["query", "up", "--url", &url], None),
        "pass --token or set TOCSIN_TOKEN",
    );
    assert_fails(
        &ctl(&["query", "up", "--url", &url, "--token", "wrong"], None),
        "did not accept the token",
    );
    assert_fails(
        &ctl(&["logs", "query", "--url", &url], Some("wrong")),
        "did not accept the token",
    );
    assert_fails(
        &ctl(
            &["agents", "forget", AGENT_ID, "--url", &url],
            Some(READ_TOKEN),
        ),
        "role may not",
    );
    assert_fails(
        &ctl(&["query", "sum(", "--url", &url], Some(READ_TOKEN)),
        "bad_data",
    );
    assert_fails(
        &ctl(
            &["logs", "query", "--severity", "loud", "--url", &url],
            Some(READ_TOKEN),
        ),
        "loud",
    );
    let nowhere = format!("http://{}", free_port());
    assert_fails(
        &ctl(&["query", "up", "--url", &nowhere], Some(READ_TOKEN)),
        &format!("cannot reach the collector at {nowhere}/api/v1/query"),
    );
    assert_fails(
        &ctl(&["query", "up", "--url", "localhost:9466"], None),
        "want http://HOST:PORT",
    );

    // The agent inventory: GET /api/v1/agents and DELETE /api/v1/agents/{id}.
    let out = ctl_until(
        &["agents", "list", "--url", &url],
        Some(READ_TOKEN),
        &c,
        |out| out.contains(AGENT_ID),
    );
    assert!(out.starts_with("ID "), "{out}");
    let row = out.lines().find(|l| l.starts_with(AGENT_ID)).unwrap();
    assert!(
        row.contains("host-ctl") && row.contains("0.1.0") && row.contains("10s"),
        "{out}"
    );
    let o = ctl(
        &[
            "agents",
            "forget",
            AGENT_ID,
            "--url",
            &url,
            "--token",
            ADMIN_TOKEN,
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), format!("forgotten: {AGENT_ID}\n"));
    let o = ctl(
        &["agents", "list", "-o", "json", "--url", &url],
        Some(READ_TOKEN),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains(AGENT_ID), "{}", stdout(&o));
    // Forgetting it again: the API's 404 and its message.
    assert_fails(
        &ctl(
            &["agents", "forget", AGENT_ID, "--url", &url],
            Some(ADMIN_TOKEN),
        ),
        "not_found",
    );

    // Error groups: both lines in one group; after a restart the same
    // group goes on counting.
    let out = ctl_until(
        &["error-groups", "list", "--url", &url],
        Some(READ_TOKEN),
        &c,
        |out| out.lines().any(|l| l.starts_with("2 ")),
    );
    let row = out.lines().nth(1).unwrap().to_string();
    let fields: Vec<&str> = row.split_whitespace().collect();
    let (id, first_seen) = (fields[1].to_string(), fields[2].to_string());
    assert!(
        row.contains("host-ctl") && row.contains("failed: I/O error"),
        "{out}"
    );
    c.stop();

    let mut c = Collector::start(&config, dir.path().join("second.log"));
    wait_ready(&http, api, &c).await;
    let out = ctl(&["error-groups", "list", "--url", &url], Some(READ_TOKEN));
    assert!(
        stdout(&out).contains(&row),
        "after restart:\n{}\nbefore: {row}",
        stdout(&out)
    );
    post_protobuf(
        &http,
        format!("http://{otlp}/v1/logs"),
        error_logs_request(
            resource(),
            now_ms() * 1_000_000,
            &["disk /dev/sdc3 failed: I/O error"],
        )
        .encode_to_vec(),
    )
    .await;
    let out = ctl(
        &["error-groups", "list", "-o", "json", "--url", &url],
        Some(READ_TOKEN),
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups = body["data"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{body}");
    assert_eq!(groups[0]["id"], id.as_str(), "{body}");
    assert_eq!(groups[0]["count"], 3, "{body}");
    assert_eq!(groups[0]["first_seen"], first_seen.as_str(), "{body}");
    assert_eq!(
        groups[0]["samples"][0], "disk /dev/sdc3 failed: I/O error",
        "{body}"
    );
    c.stop();
}

/// A CA and a certificate it signed for `localhost`, as PEM files in `dir`:
/// (ca, cert, key).
fn pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "Tocsin test CA");
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = p.signed_by(&key, &ca).unwrap();
    let paths = (dir.join("ca.pem"), dir.join("api.pem"), dir.join("api.key"));
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tocsinctl_verifies_an_https_collector_with_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path());
    let api = free_port();
    let config = support::write_config(
        dir.path(),
        &format!(
            "data_dir: data\n\
             receivers:\n  otlp:\n    grpc: null\n    http: null\n\
             api:\n  listen: \"{api}\"\n\
             \x20 tls: {{ cert_file: \"{}\", key_file: \"{}\" }}\n\
             \x20 tokens: [{{ name: grafana, role: read, token: \"{READ_TOKEN}\" }}]\n",
            cert.display(),
            key.display()
        ),
    );
    let c = Collector::start(&config, dir.path().join("collector.log"));
    let url = format!("https://localhost:{}", api.port());
    let ca_file = ca.to_str().unwrap();
    // Ready once a verified query answers.
    let out = ctl_until(
        &["query", "vector(7)", "--url", &url, "--ca-file", ca_file],
        Some(READ_TOKEN),
        &c,
        |_| true,
    );
    assert!(out.starts_with("{} => 7 @["), "{out}");
    // Without the CA the certificate is not trusted: a clear failure.
    assert_fails(
        &ctl(&["query", "vector(7)", "--url", &url], Some(READ_TOKEN)),
        "TLS with the collector at",
    );
    let query_with_ca = |ca_file: &str| {
        ctl(
            &["query", "vector(7)", "--url", &url, "--ca-file", ca_file],
            Some(READ_TOKEN),
        )
    };
    assert_fails(
        &query_with_ca("/nonexistent/ca.pem"),
        "--ca-file /nonexistent/ca.pem",
    );
    // A file that is not a certificate.
    assert_fails(
        &query_with_ca(config.to_str().unwrap()),
        "holds no certificate",
    );
}
