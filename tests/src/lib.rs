//! End-to-end tests for Tocsin: each test starts the real binaries and real
//! peers on 127.0.0.1 and cleans up the processes it starts.
//!
//! This library is the shared harness: it finds (and if need be builds) the
//! `tocsin-agent` and `tocsin-collector` binaries of the test's own cargo
//! profile, starts them with temporary configurations, data directories
//! and free ports behind guards that kill them on drop (panics included),
//! writes numbered log lines at a rate, and reads every stored record back
//! through the collector's `/api/v1/logs` to check that each sequence
//! number arrived exactly once.
//!
//! Sizes come from environment variables with short defaults for CI
//! ([`Sizes::from_env`]); `bench/e2e/` runs the same tests with the
//! full-length values.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The harness's own errors are reported by panicking: it only runs inside
/// tests, where a failed fixture must fail the test loudly.
pub type Result<T, E = String> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------
// Sizes

/// How big a run is: CI defaults, or the full-length values the benchmark
/// scripts set through the environment.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Lines per second the writer appends (`TOCSIN_E2E_RATE`).
    pub rate: u64,
    /// Rename rotations (`TOCSIN_E2E_ROTATIONS`).
    pub renames: u32,
    /// Copytruncate rotations (`TOCSIN_E2E_COPYTRUNCATES`, default: as
    /// many as renames).
    pub copytruncates: u32,
    /// kill -9 of the agent (`TOCSIN_E2E_KILLS`).
    pub kills: u32,
    /// Collector outage (`TOCSIN_E2E_OUTAGE_SECS`).
    pub outage: Duration,
    /// Writing time between two disruptions (`TOCSIN_E2E_INTERVAL_MS`).
    pub interval: Duration,
}

impl Sizes {
    pub fn from_env() -> Sizes {
        let num = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .unwrap_or_else(|e| fail(format!("{name}={v:?}: {e}"))),
                Err(_) => default,
            }
        };
        let renames = u32::try_from(num("TOCSIN_E2E_ROTATIONS", 3)).unwrap_or(u32::MAX);
        Sizes {
            rate: num("TOCSIN_E2E_RATE", 2000).max(1),
            renames,
            copytruncates: u32::try_from(num("TOCSIN_E2E_COPYTRUNCATES", u64::from(renames)))
                .unwrap_or(u32::MAX),
            kills: u32::try_from(num("TOCSIN_E2E_KILLS", 3)).unwrap_or(u32::MAX),
            outage: Duration::from_secs(num("TOCSIN_E2E_OUTAGE_SECS", 20)),
            interval: Duration::from_millis(num("TOCSIN_E2E_INTERVAL_MS", 700)),
        }
    }

    /// How long to wait for `lines` lines to arrive after writing stopped:
    /// generous, as the machine may be shared; the wait ends as soon as
    /// they are all there.
    pub fn settle_deadline(&self, lines: u64) -> Duration {
        Duration::from_secs(90 + lines / 2000)
    }
}

#[track_caller]
fn fail(msg: String) -> ! {
    #[expect(clippy::panic, reason = "the harness fails the test that uses it")]
    {
        panic!("{msg}")
    }
}

/// `r` or a test failure naming `what`.
#[track_caller]
pub fn check<T, E: std::fmt::Display>(r: std::result::Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => fail(format!("{what}: {e}")),
    }
}

/// Polls `cond` every 50 ms until it holds; fails after `deadline` with
/// `what` and the output of `context`.
#[track_caller]
pub fn wait_until(
    what: &str,
    deadline: Duration,
    context: impl Fn() -> String,
    mut cond: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > deadline {
            fail(format!(
                "timed out after {deadline:?} waiting for {what}\n{}",
                context()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Binaries

/// The agent and collector binaries of this test's profile.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub agent: PathBuf,
    pub collector: PathBuf,
}

/// Finds `tocsin-agent` and `tocsin-collector` next to this test's profile
/// directory (`<target>/<profile>/deps/<test>` → `<target>/<profile>/`,
/// which already honours `CARGO_TARGET_DIR`); builds them once per test
/// process when missing or older than their sources.
/// `TOCSIN_E2E_BIN_DIR` names a directory of prebuilt binaries instead.
pub fn binaries() -> Binaries {
    static BINS: OnceLock<Result<Binaries>> = OnceLock::new();
    match BINS.get_or_init(locate_or_build) {
        Ok(b) => b.clone(),
        Err(e) => fail(e.clone()),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn locate_or_build() -> Result<Binaries> {
    // Prebuilt binaries, used as they are (a benchmark of a fixed build,
    // or a tree whose sources are being edited).
    if let Some(dir) = std::env::var_os("TOCSIN_E2E_BIN_DIR") {
        let dir = PathBuf::from(dir);
        let bins = Binaries {
            agent: dir.join("tocsin-agent"),
            collector: dir.join("tocsin-collector"),
        };
        for b in [&bins.agent, &bins.collector] {
            if !b.is_file() {
                return Err(format!("TOCSIN_E2E_BIN_DIR: {} missing", b.display()));
            }
        }
        return Ok(bins);
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let deps = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent", exe.display()))?;
    let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent()
            .ok_or_else(|| format!("{} has no parent", deps.display()))?
    } else {
        deps
    };
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("no profile in {}", profile_dir.display()))?
        .to_string();
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("{} has no parent", profile_dir.display()))?;
    let bins = Binaries {
        agent: profile_dir.join("tocsin-agent"),
        collector: profile_dir.join("tocsin-collector"),
    };
    let root = workspace_root();
    // Every crate beside this one (the binaries' dependencies among them):
    // a false alarm costs a cargo no-op, a miss a test of old code.
    let crates: Vec<PathBuf> = std::fs::read_dir(&root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d.join("Cargo.toml").is_file() && !d.ends_with("tests"))
        .collect();
    let newest_source = crates
        .iter()
        .flat_map(|c| [c.join("src"), c.join("Cargo.toml")])
        .chain([root.join("Cargo.lock"), root.join("Cargo.toml")])
        .filter_map(|p| newest_mtime(&p))
        .max();
    let stale = |bin: &Path| match (
        std::fs::metadata(bin).and_then(|m| m.modified()),
        newest_source,
    ) {
        (Ok(built), Some(src)) => built < src,
        (Ok(_), None) => false,
        (Err(_), _) => true,
    };
    if stale(&bins.agent) || stale(&bins.collector) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(&root)
            .args([
                "build",
                "-p",
                "tocsin-agent",
                "-p",
                "tocsin-collector",
                "--bins",
            ])
            .env("CARGO_TARGET_DIR", target_dir);
        match profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        eprintln!("tocsin-tests: building the agent and collector ({profile})");
        let status = cmd.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build of the agent and collector: {status}"));
        }
    }
    for b in [&bins.agent, &bins.collector] {
        if !b.is_file() {
            return Err(format!("{} missing after the build", b.display()));
        }
    }
    Ok(bins)
}

fn newest_mtime(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| newest_mtime(&e.path()))
        .max()
}

// ---------------------------------------------------------------------------
// Processes

/// A child process with its stderr in a file; SIGKILLed and reaped when
/// dropped, whichever way the test ends.
pub struct Proc {
    child: Mutex<Child>,
    name: String,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> Proc {
        let stderr = check(File::create(&log), "stderr file");
        let child = check(
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn(),
            name,
        );
        Proc {
            child: Mutex::new(child),
            name: name.to_string(),
            log,
        }
    }

    fn child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pid(&self) -> u32 {
        self.child().id()
    }

    /// Everything the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            fail(format!("kill -{sig} {} failed", self.name));
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    /// kill -9 and reap.
    pub fn kill9(self) {
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits for the process to exit, at most `deadline`.
    pub fn wait_exit(&self, deadline: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child().try_wait() {
                return status;
            }
            if start.elapsed() > deadline {
                fail(format!(
                    "{} did not exit within {deadline:?}; its log:\n{}",
                    self.name,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// gRPC, HTTP and API addresses of a collector's log line `collector
/// ready api=… otlp_grpc=Some(…) otlp_http=Some(…)`.
fn ready_addresses(log: &str) -> Option<(SocketAddr, SocketAddr, SocketAddr)> {
    let line = log.lines().find(|l| l.contains("collector ready"))?;
    let field = |name: &str| -> Option<SocketAddr> {
        let rest = &line[line.find(&format!(" {name}="))? + name.len() + 2..];
        let rest = rest.strip_prefix("Some(").unwrap_or(rest);
        let end = rest.find([' ', ')']).unwrap_or(rest.len());
        rest[..end].parse().ok()
    };
    Some((field("otlp_grpc")?, field("otlp_http")?, field("api")?))
}

// ---------------------------------------------------------------------------
// Collector

/// A collector on ports of 127.0.0.1 it chose itself (port 0, read back
/// from its "collector ready" log line, so parallel tests cannot race for
/// a port), with its own data directory; it can be stopped and started
/// again on the same ports and data.
pub struct Collector {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub api: SocketAddr,
    dir: PathBuf,
    config: PathBuf,
    proc: Option<Proc>,
    starts: u32,
}

impl Collector {
    /// Starts a collector under `dir` and waits for `/-/ready`.
    pub fn start(dir: &Path) -> Collector {
        check(std::fs::create_dir_all(dir), "collector dir");
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut c = Collector {
            grpc: any,
            http: any,
            api: any,
            dir: dir.to_path_buf(),
            config: dir.join("collector.yaml"),
            proc: None,
            starts: 0,
        };
        c.restart();
        c
    }

    /// Starts the (stopped) collector again: same ports (those the first
    /// run bound), same data.
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "collector already running");
        let (grpc, http, api) = (self.grpc, self.http, self.api);
        check(
            std::fs::write(
                &self.config,
                format!(
                    "data_dir: data\nreceivers:\n  otlp:\n    grpc: {{ listen: \"{grpc}\" }}\n    http: {{ listen: \"{http}\" }}\napi:\n  listen: \"{api}\"\n"
                ),
            ),
            "collector.yaml",
        );
        self.starts += 1;
        let mut cmd = Command::new(binaries().collector);
        cmd.arg("--config")
            .arg(&self.config)
            .args(["--log-level", "info"])
            .env("NO_COLOR", "1");
        let log = self.dir.join(format!("collector.{}.log", self.starts));
        self.proc = Some(Proc::spawn("tocsin-collector", cmd, log));
        let bound = std::cell::Cell::new(None);
        wait_until(
            "the collector's \"collector ready\" log line",
            Duration::from_secs(60),
            || self.log(),
            || {
                bound.set(ready_addresses(&self.log()));
                bound.get().is_some()
            },
        );
        let Some((grpc, http, api)) = bound.get() else {
            fail(format!(
                "no addresses in the collector's log:\n{}",
                self.log()
            ))
        };
        if self.starts > 1 && (grpc, http, api) != (self.grpc, self.http, self.api) {
            fail(format!(
                "the restarted collector moved to {grpc}, {http}, {api}:\n{}",
                self.log()
            ));
        }
        (self.grpc, self.http, self.api) = (grpc, http, api);
        wait_until(
            "the collector's /-/ready",
            Duration::from_secs(60),
            || self.log(),
            || http_get(api, "/-/ready").is_ok_and(|(s, _)| s == 200),
        );
    }

    /// kill -9, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill9();
        }
    }

    /// SIGTERM and wait for the clean exit.
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal("TERM");
            let status = p.wait_exit(Duration::from_secs(60));
            assert!(status.success(), "collector exit {status}: {}", p.log());
        }
    }

    /// The current (or last) run's log.
    pub fn log(&self) -> String {
        let path = self.dir.join(format!("collector.{}.log", self.starts));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The value of an unlabelled sample on `/metrics`.
    pub fn self_metric(&self, name: &str) -> Option<f64> {
        let (status, body) = http_get(self.api, "/metrics").ok()?;
        if status != 200 {
            return None;
        }
        String::from_utf8_lossy(&body).lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
            rest.trim().parse().ok()
        })
    }

    /// `tocsin_logs_stored_records` (cheap: polled while waiting).
    pub fn stored_records(&self) -> u64 {
        self.self_metric("tocsin_logs_stored_records")
            .map_or(0, |v| v as u64)
    }

    /// Records the collector dropped as already accepted (same agent,
    /// file and offset): re-sends it absorbed.
    pub fn duplicates_dropped(&self) -> u64 {
        self.self_metric("tocsin_logs_duplicates_total")
            .map_or(0, |v| v as u64)
    }

    /// Every stored record whose time lies in `[start_ms, end_ms]`, read
    /// through `/api/v1/logs` (newest first, at most 10,000 a page): a
    /// window whose answer is truncated is halved; a one-millisecond
    /// window that is still truncated is split by the last digits of
    /// `seq=` numbers.
    pub fn all_records(&self, start_ms: i64, end_ms: i64) -> Vec<Record> {
        let mut out = Vec::new();
        self.collect_records(start_ms, end_ms, "", &mut out);
        out
    }

    fn collect_records(&self, start: i64, end: i64, suffix: &str, out: &mut Vec<Record>) {
        let mut params = vec![
            ("start", ms_to_secs(start)),
            ("end", ms_to_secs(end)),
            ("limit", "10000".to_string()),
        ];
        if !suffix.is_empty() {
            params.push(("regex", format!("seq=\\d*{suffix}\\b")));
        }
        let page = self.logs_page(&params);
        if !page.truncated {
            out.extend(page.records);
            return;
        }
        if start < end {
            let mid = start + (end - start) / 2;
            self.collect_records(start, mid, suffix, out);
            self.collect_records(mid + 1, end, suffix, out);
        } else if suffix.len() < 10 {
            for d in 0..10 {
                self.collect_records(start, end, &format!("{d}{suffix}"), out);
            }
        } else {
            fail(format!(
                "more than 10000 records at {start} ms end in seq ...{suffix}"
            ));
        }
    }

    /// One `/api/v1/logs` answer.
    pub fn logs_page(&self, params: &[(&str, String)]) -> LogsPage {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", url_encode(v)))
            .collect();
        let path = format!("/api/v1/logs?{}", query.join("&"));
        let (status, body) = check(http_get(self.api, &path), &path);
        let json: serde_json::Value = check(serde_json::from_slice(&body), "logs JSON");
        if status != 200 || json["status"] != "success" {
            fail(format!("{path}: {status} {json}"));
        }
        let records = json["data"]["records"]
            .as_array()
            .map(|a| a.iter().map(Record::from_json).collect())
            .unwrap_or_default();
        LogsPage {
            records,
            truncated: json["data"]["truncated"].as_bool().unwrap_or(false),
        }
    }

    /// An instant query; the JSON `data` of the answer.
    pub fn query(&self, expr: &str, time_ms: i64) -> serde_json::Value {
        let path = format!(
            "/api/v1/query?query={}&time={}",
            url_encode(expr),
            ms_to_secs(time_ms)
        );
        let (status, body) = check(http_get(self.api, &path), &path);
        let json: serde_json::Value = check(serde_json::from_slice(&body), "query JSON");
        if status != 200 || json["status"] != "success" {
            fail(format!("{path}: {status} {json}"));
        }
        json["data"].clone()
    }
}

/// One page of `/api/v1/logs`.
pub struct LogsPage {
    pub records: Vec<Record>,
    pub truncated: bool,
}

/// A stored log record as `/api/v1/logs` returns it.
#[derive(Debug, Clone)]
pub struct Record {
    pub time_ms: i64,
    pub severity: String,
    pub body: String,
    pub labels: serde_json::Value,
    pub attributes: serde_json::Value,
}

impl Record {
    fn from_json(v: &serde_json::Value) -> Record {
        Record {
            time_ms: v["time_ms"].as_i64().unwrap_or(0),
            severity: v["severity"].as_str().unwrap_or_default().to_string(),
            body: v["body"].as_str().unwrap_or_default().to_string(),
            labels: v["labels"].clone(),
            attributes: v["attributes"].clone(),
        }
    }

    /// The `seq=NNN` number of a writer's line.
    pub fn seq(&self) -> Option<u64> {
        parse_seq(&self.body)
    }

    pub fn attr(&self, key: &str) -> Option<String> {
        match &self.attributes[key] {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
}

fn ms_to_secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A plain HTTP/1.1 GET on 127.0.0.1 (status, body): enough for the
/// collector's API, and free of a client's feature interplay with the
/// workspace build.
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept-Encoding: identity\r\n\r\n"
    )?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad status line {line:?}")))?;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse::<usize>().ok();
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|e| io::Error::other(format!("chunk size {line:?}: {e}")))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok((status, body))
}

// ---------------------------------------------------------------------------
// Agent

/// An agent with its configuration file and data directory; restartable
/// (the data directory, checkpoints and spool, survive).
pub struct Agent {
    pub config: PathBuf,
    dir: PathBuf,
    proc: Option<Proc>,
    starts: u32,
    /// Run the agent as this user (`setpriv`), for permission tests as root.
    pub run_as: Option<u32>,
}

/// The agent's configuration for a collector: gRPC, 1 s metrics, short
/// retry delays; `logs_yaml` is the `logs:` list, indented by two spaces.
pub fn agent_config(collector: &Collector, data_dir: &Path, logs_yaml: &str) -> String {
    format!(
        "\
collector:
  endpoint: http://{grpc}
  protocol: grpc
  timeout: 5s
  retry_initial: 100ms
  retry_max: 1s
resource:
  host.name: e2e-host
  service.name: e2e
metrics:
  interval: 1s
  host:
    scrapers: [cpu, memory, system]
logs:
{logs_yaml}
data_dir: {data}
",
        grpc = collector.grpc,
        data = data_dir.display(),
    )
}

impl Agent {
    /// Writes `config_text` under `dir` (which also holds the agent's logs)
    /// and starts the agent; waits for "agent running".
    pub fn start(dir: &Path, config_text: &str) -> Agent {
        Agent::start_as(dir, config_text, None)
    }

    pub fn start_as(dir: &Path, config_text: &str, run_as: Option<u32>) -> Agent {
        check(std::fs::create_dir_all(dir), "agent dir");
        let config = dir.join("agent.yaml");
        check(std::fs::write(&config, config_text), "agent.yaml");
        let mut a = Agent {
            config,
            dir: dir.to_path_buf(),
            proc: None,
            starts: 0,
            run_as,
        };
        a.restart();
        a
    }

    fn command(&self) -> Command {
        let agent = binaries().agent;
        let mut cmd = match self.run_as {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={uid}"))
                    .arg("--clear-groups")
                    .arg(agent);
                c
            }
            None => Command::new(agent),
        };
        cmd.arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        cmd
    }

    /// Starts the stopped agent again with the same data directory.
    pub fn restart(&mut self) {
        assert!(self.proc.is_none(), "agent already running");
        self.starts += 1;
        let log = self.dir.join(format!("agent.{}.log", self.starts));
        let proc = Proc::spawn("tocsin-agent", self.command(), log);
        let start = Instant::now();
        while !proc.log().contains("agent running") {
            if !proc.is_running() {
                fail(format!("the agent exited at start:\n{}", proc.log()));
            }
            if start.elapsed() > Duration::from_secs(60) {
                fail(format!("the agent did not start:\n{}", proc.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.proc = Some(proc);
    }

    pub fn kill9(&mut self) {
        if let Some(p) = self.proc.take() {
            p.kill9();
        }
    }

    /// SIGTERM and wait for the clean exit.
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal("TERM");
            let status = p.wait_exit(Duration::from_secs(60));
            assert!(status.success(), "agent exit {status}: {}", p.log());
        }
    }

    pub fn signal(&self, sig: &str) {
        match &self.proc {
            Some(p) => p.signal(sig),
            None => fail("agent not running".into()),
        }
    }

    pub fn is_running(&self) -> bool {
        self.proc.as_ref().is_some_and(Proc::is_running)
    }

    /// The current run's log.
    pub fn log(&self) -> String {
        let path = self.dir.join(format!("agent.{}.log", self.starts));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Every run's log, for failure messages.
    pub fn all_logs(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                let path = self.dir.join(format!("agent.{i}.log"));
                format!(
                    "--- agent run {i} ---\n{}",
                    std::fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Writer

/// Appends numbered lines (`<prefix> seq=0000000042 <padding>`) to a file
/// at a rate, from a thread. Locking it ([`Writer::pause`]) holds the
/// thread between two batches; the file is opened in append mode, so a
/// copytruncate's truncation makes it write at the new end.
pub struct Writer {
    shared: Arc<Mutex<WriterState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub struct WriterState {
    path: PathBuf,
    file: File,
    /// Next sequence number; also the count of lines written.
    pub next: u64,
    prefix: String,
}

/// The writer, paused while the guard lives.
pub struct Paused<'a>(MutexGuard<'a, WriterState>);

impl Paused<'_> {
    /// Closes the file and opens (creates) its path again, as an
    /// application told to reopen its log after a rename.
    pub fn reopen(&mut self) {
        self.0.file = open_append(&self.0.path);
    }

    pub fn written(&self) -> u64 {
        self.0.next
    }
}

fn open_append(path: &Path) -> File {
    check(
        OpenOptions::new().create(true).append(true).open(path),
        "open the log file",
    )
}

impl Writer {
    /// Starts writing `rate` lines per second to `path`, each beginning
    /// with `prefix` (a level word, such as `ERROR`).
    pub fn start(path: &Path, prefix: &str, rate: u64) -> Writer {
        let shared = Arc::new(Mutex::new(WriterState {
            path: path.to_path_buf(),
            file: open_append(path),
            next: 0,
            prefix: prefix.to_string(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::spawn(move || write_loop(&shared, &stop, rate))
        };
        Writer {
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub fn pause(&self) -> Paused<'_> {
        Paused(self.shared.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn written(&self) -> u64 {
        self.pause().written()
    }

    /// Stops the thread; returns the number of lines written.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.written()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(shared: &Mutex<WriterState>, stop: &AtomicBool, rate: u64) {
    const TICK: Duration = Duration::from_millis(10);
    let mut last = Instant::now();
    let mut credit = 0.0f64;
    let mut buf = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(TICK);
        let mut st = shared.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Time spent paused (or descheduled) earns at most 100 ms of lines:
        // the rate stays a rate, not a burst after every pause.
        let dt = now.duration_since(last).min(Duration::from_millis(100));
        last = now;
        credit += dt.as_secs_f64() * rate as f64;
        let n = credit.floor() as u64;
        credit -= n as f64;
        buf.clear();
        for _ in 0..n {
            let seq = st.next;
            st.next += 1;
            let _ = writeln!(
                buf,
                "{} seq={seq:010} e2e line from the writer, padded to a typical length",
                st.prefix
            );
        }
        if let Err(e) = st.file.write_all(&buf) {
            eprintln!("writer: {e}");
            return;
        }
    }
}

/// The number in `seq=NNN`, if the text has one.
pub fn parse_seq(text: &str) -> Option<u64> {
    let at = text.find("seq=")? + 4;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The sequence numbers of the lines in `files` (each counted as often as
/// it occurs).
pub fn seqs_on_disk(files: &[PathBuf]) -> Vec<u64> {
    let mut out = Vec::new();
    for f in files {
        let text = check(std::fs::read(f), &f.display().to_string());
        out.extend(
            text.split(|&b| b == b'\n')
                .filter_map(|l| parse_seq(&String::from_utf8_lossy(l))),
        );
    }
    out
}

// ---------------------------------------------------------------------------
// Exactly once

/// What arrived compared to what was written.
#[derive(Debug)]
pub struct Tally {
    pub expected: u64,
    pub received: u64,
    pub duplicates: u64,
    pub missing: Vec<u64>,
    pub unexpected: Vec<u64>,
}

impl Tally {
    /// `expected` sequence numbers (each once) against `received` (as
    /// often as they arrived).
    pub fn of(expected: &[u64], received: impl IntoIterator<Item = u64>) -> Tally {
        let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
        let mut n = 0;
        for s in received {
            *counts.entry(s).or_default() += 1;
            n += 1;
        }
        let want: std::collections::BTreeSet<u64> = expected.iter().copied().collect();
        let missing = want
            .iter()
            .filter(|s| !counts.contains_key(s))
            .copied()
            .collect();
        let unexpected = counts
            .keys()
            .filter(|s| !want.contains(s))
            .copied()
            .collect();
        let duplicates = counts.values().map(|&c| c.saturating_sub(1)).sum();
        Tally {
            expected: want.len() as u64,
            received: n,
            duplicates,
            missing,
            unexpected,
        }
    }

    pub fn exact(&self) -> bool {
        self.duplicates == 0 && self.missing.is_empty() && self.unexpected.is_empty()
    }

    /// One line of figures, printed by every test and collected by the
    /// benchmark scripts (`TOCSIN_E2E_REPORT` names a file to append to).
    pub fn report(&self, test: &str, written: u64, duration: Duration, extra: &str) {
        let line = format!(
            "e2e-figures test={test} written={written} on_disk={} received={} duplicates={} missing={} unexpected={} duration_s={:.1}{}{extra}",
            self.expected,
            self.received,
            self.duplicates,
            self.missing.len(),
            self.unexpected.len(),
            duration.as_secs_f64(),
            if extra.is_empty() { "" } else { " " },
        );
        println!("{line}");
        if let Ok(path) = std::env::var("TOCSIN_E2E_REPORT")
            && let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Fails the test unless every line arrived exactly once.
    #[track_caller]
    pub fn assert_exact(&self, context: impl Fn() -> String) {
        if !self.exact() {
            let head = |v: &[u64]| v.iter().take(20).copied().collect::<Vec<_>>();
            fail(format!(
                "not exactly once: expected {} received {} duplicates {} missing {} (first {:?}) unexpected {} (first {:?})\n{}",
                self.expected,
                self.received,
                self.duplicates,
                self.missing.len(),
                head(&self.missing),
                self.unexpected.len(),
                head(&self.unexpected),
                context()
            ));
        }
    }
}

/// Waits until the collector stores at least `want` records, at most
/// `deadline`, or until the count has not moved for 30 s (what is missing
/// then is not coming; the tally that follows says what it is). Returns
/// how long it waited: the catch-up time once writing has stopped.
pub fn wait_for_records(collector: &Collector, want: u64, deadline: Duration) -> Duration {
    let start = Instant::now();
    let mut last = u64::MAX;
    let mut moved = Instant::now();
    loop {
        let stored = collector.stored_records();
        if stored >= want {
            return start.elapsed();
        }
        if stored != last {
            last = stored;
            moved = Instant::now();
        }
        if start.elapsed() > deadline || moved.elapsed() > Duration::from_secs(30) {
            eprintln!("stored {stored} of {want} records when the wait ended");
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads every record stored since `since_ms` back and tallies their
/// sequence numbers against `expected`.
pub fn tally(collector: &Collector, expected: &[u64], since_ms: i64) -> Tally {
    let records = collector.all_records(since_ms - 60_000, now_ms() + 60_000);
    Tally::of(expected, records.iter().filter_map(Record::seq))
}
