//! End to end: `tocsin-collector demo`, the real binary, on free ports of
//! 127.0.0.1 with a temporary data folder. One error line appended to the
//! log file the banner names fires the demo alert, which shows on
//! `/api/v1/alerts` and on the terminal; this host's metrics are queryable;
//! SIGTERM stops it cleanly. A taken port is refused with the flag that
//! moves it.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a helper that cannot start the demo or read its answers must fail the test"
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest any one wait of this test may take.
const WAIT: Duration = Duration::from_secs(90);

/// The demo process; killed with SIGKILL when dropped, whatever path the
/// test takes.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: PathBuf,
}

impl Demo {
    fn start(data_dir: &Path, stderr: PathBuf) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tocsin-collector"))
            .arg("demo")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--api-listen", "127.0.0.1:0"])
            .args(["--otlp-grpc-listen", "127.0.0.1:0"])
            .args(["--otlp-http-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            lines,
            stdout: Vec::new(),
            stderr,
        }
    }

    fn diagnostics(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// The first stdout line (from now on) for which `f` is true.
    fn wait_line(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.stdout.push(line.clone());
                    if f(&line) {
                        return line;
                    }
                }
                Err(e) => panic!("no stdout line {what} ({e}); {}", self.diagnostics()),
            }
        }
    }

    /// Polls `check` until it returns `Some`, at most [`WAIT`].
    fn wait_for<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = check() {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; {}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not exit; {}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking JSON GET, `None` when the request fails.
fn get_json(
    rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    url: &str,
) -> Option<serde_json::Value> {
    rt.block_on(async {
        let r = http.get(url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        serde_json::from_slice(&r.bytes().await.ok()?).ok()
    })
}

/// The text after `label` on the banner line that starts with it.
fn banner_value(line: &str, label: &str) -> String {
    line.trim_start()
        .strip_prefix(label)
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn an_appended_error_line_fires_the_demo_alert() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo data");
    // In a workspace build reqwest is compiled with the agent's
    // `rustls-no-provider` feature, which requires a process-wide crypto
    // provider even for plain HTTP clients.
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut demo = Demo::start(&data, dir.path().join("stderr.log"));
    let title = demo.wait_line("naming the host", |l| l.starts_with("Tocsin demo:"));
    let host = title
        .split_once("for this host (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .unwrap()
        .0
        .to_string();
    let log_file = banner_value(
        &demo.wait_line("naming the log file", |l| {
            l.trim_start().starts_with("log file")
        }),
        "log file",
    );
    let expected = std::path::absolute(data.join("demo-app.log")).unwrap();
    assert_eq!(Path::new(&log_file), expected);
    let api = banner_value(
        &demo.wait_line("naming the API", |l| l.trim_start().starts_with("API ")),
        "API",
    );
    assert!(api.starts_with("http://127.0.0.1:"), "{api}");
    let paste = demo.wait_line("with the line to paste", |l| {
        l.contains("ERROR payment failed") && l.contains(">>")
    });
    assert!(paste.ends_with(&format!("'{log_file}'")), "{paste}");
    demo.wait_line("ending the banner", |l| l.starts_with("Ctrl-C"));
    assert!(
        data.join("collector.yaml").is_file() && data.join("agent.yaml").is_file(),
        "the demo writes the configurations it runs with"
    );

    // What a user pastes, minus the shell.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&log_file)
        .unwrap();
    writeln!(
        f,
        "{} ERROR payment failed: connection refused",
        chrono::Local::now().to_rfc3339()
    )
    .unwrap();
    drop(f);

    let alerts_url = format!("{api}/api/v1/alerts");
    let alert = demo.wait_for("the demo alert on /api/v1/alerts", || {
        let body = get_json(&rt, &http, &alerts_url)?;
        body["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "DemoErrorLogged" && a["state"] == "firing")
            .cloned()
    });
    assert_eq!(alert["labels"]["host_name"], host.as_str(), "{alert}");
    assert_eq!(alert["labels"]["service_name"], "demo-app", "{alert}");
    let printed = demo.wait_line("with the firing alert", |l| {
        l.contains("FIRING") && l.contains("DemoErrorLogged")
    });
    assert!(
        printed.contains(&format!("host_name=\"{host}\"")),
        "{printed}"
    );
    assert!(
        printed.contains("demo-app on ") && printed.contains(" logged errors in the last minute"),
        "the summary follows the labels: {printed}"
    );

    // This host's metrics, sent by the in-process agent.
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair(
            "query",
            &format!("sum(system_memory_usage_bytes{{host_name=\"{host}\"}})"),
        )
        .finish();
    let memory = demo.wait_for("this host's memory usage", || {
        let body = get_json(&rt, &http, &format!("{api}/api/v1/query?{query}"))?;
        let v = body["data"]["result"].as_array()?.first()?["value"][1]
            .as_str()?
            .parse::<f64>()
            .ok()?;
        Some(v)
    });
    assert!(memory > 0.0, "memory usage {memory}");
    // The banner's tocsinctl line, with the tocsinctl of this build.
    let line = demo
        .stdout
        .iter()
        .find(|l| l.contains(" query 'system_memory_usage_bytes"))
        .cloned()
        .unwrap_or_else(|| panic!("no tocsinctl line; {}", demo.diagnostics()));
    assert!(
        line.contains("tocsinctl") && line.contains(&format!("--url {api} query")),
        "{line}"
    );
    let expr = format!("system_memory_usage_bytes{{host_name=\"{host}\"}}");
    assert!(line.ends_with(&format!("'{expr}'")), "{line}");
    let ctl = Command::new(env!("CARGO_BIN_EXE_tocsinctl"))
        .args(["--url", &api, "query", &expr])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&ctl.stdout);
    assert!(
        ctl.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&ctl.stderr)
    );
    assert!(
        printed.contains(&format!("host_name=\"{host}\"")) && printed.contains("state=\"used\""),
        "{printed}"
    );

    demo.signal("TERM");
    let status = demo.wait_exit();
    assert!(status.success(), "exit {status}; {}", demo.diagnostics());
    demo.wait_line("saying it stopped", |l| l.starts_with("Demo stopped."));
}

#[test]
fn a_taken_port_is_refused_with_the_flag_that_moves_it() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin-collector"))
        .arg("demo")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--api-listen", &addr.to_string()])
        .args(["--otlp-grpc-listen", "127.0.0.1:0"])
        .args(["--otlp-http-listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot listen on {addr} for the HTTP API: Address already in use"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--api-listen ADDR"), "{stderr}");
}
