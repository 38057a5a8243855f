//! `tocsin-collector demo`: the whole of Tocsin on this host in one
//! process. The collector runs with its defaults on 127.0.0.1 (WAL and
//! SQLite under a local data folder), an agent runs in-process sending this
//! host's metrics every [`METRIC_INTERVAL`] and tailing a demo log file, and
//! the example rule pack plus a demo rule ([`DEMO_ALERT`]: one error line
//! fires it) are evaluated. A banner says where everything is and what to
//! try; every alert that starts firing or resolves is printed.
//!
//! The data folder holds what the demo ran with, so the pieces can be
//! started alone later: `collector.yaml`, `agent.yaml` and `rules/` are
//! written anew at every start; the stores (`collector/`), the agent's
//! checkpoints and spool (`agent/`) and the log file are kept, so a second
//! run continues where the first stopped. A lock (`demo.lock`) keeps a
//! second demo out of a folder in use.
//!
//! Shutdown order: the agent first (it ships or spools what it read and
//! writes its checkpoints while the collector still listens), then the
//! collector.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::receivers::ReceiverError;
use crate::ruler::OutgoingAlert;
use crate::run::{Bound, RunError};

/// The data folder unless `--data-dir` says otherwise (relative to the
/// working directory).
pub const DEFAULT_DATA_DIR: &str = "tocsin-demo-data";
/// The demo log file, in the data folder.
pub const LOG_FILE: &str = "demo-app.log";
/// `service.name` of the demo log file's records.
pub const DEMO_SERVICE: &str = "demo-app";
/// The alert one error line in the demo log file fires.
pub const DEMO_ALERT: &str = "DemoErrorLogged";
/// How often the in-process agent collects host metrics: short, so that
/// queries show movement at once.
pub const METRIC_INTERVAL: Duration = Duration::from_secs(2);
/// Default listeners: the collector's own defaults, on loopback.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9466";
pub const DEFAULT_OTLP_GRPC_LISTEN: &str = "127.0.0.1:4317";
pub const DEFAULT_OTLP_HTTP_LISTEN: &str = "127.0.0.1:4318";

/// Alert batches waiting to be printed.
const ALERT_PRINT_QUEUE: usize = 64;
/// How long the stopped demo waits for the last alerts to be printed.
const PRINTER_DEADLINE: Duration = Duration::from_secs(2);

/// The rule files the demo evaluates: the example pack and the demo rule,
/// built into the binary so the demo needs no checkout.
const RULE_FILES: [(&str, &str); 3] = [
    (
        "host.rules.yaml",
        include_str!("../../packaging/rules/host.rules.yaml"),
    ),
    (
        "logs.rules.yaml",
        include_str!("../../packaging/rules/logs.rules.yaml"),
    ),
    (
        "demo.rules.yaml",
        include_str!("../../packaging/demo/demo.rules.yaml"),
    ),
];

/// Where the demo keeps its data and listens.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub api_listen: SocketAddr,
    pub otlp_grpc_listen: SocketAddr,
    pub otlp_http_listen: SocketAddr,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot prepare the demo data folder: {path}: {error}")]
    Prepare {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "the demo data folder {path} has a character that globs treat specially ({ch:?}); choose another with --data-dir DIR"
    )]
    DataDirName { path: PathBuf, ch: char },
    #[error("the demo data folder {path} is not valid UTF-8; choose another with --data-dir DIR")]
    DataDirNotUtf8 { path: PathBuf },
    #[error(
        "another demo is running with the data folder {path}; stop it, or choose another folder with --data-dir DIR"
    )]
    Busy { path: PathBuf },
    #[error("the demo's collector configuration is invalid (a defect of the demo):\n{0}")]
    CollectorConfig(String),
    #[error("the demo's agent configuration is invalid (a defect of the demo):\n{0}")]
    AgentConfig(String),
    #[error(
        "cannot listen on {addr} for {what}: {error}{hint}; choose another address with {flag} ADDR (127.0.0.1:0 picks a free port)"
    )]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        flag: &'static str,
        hint: &'static str,
        error: std::io::Error,
    },
    #[error("collector: {0}")]
    Collector(RunError),
    #[error("the collector stopped before it was ready")]
    CollectorGone,
    #[error("agent: {0}")]
    Agent(tocsin_agent::run::RunError),
    #[error("a demo task failed: {0}")]
    Task(String),
}

/// The demo's files, all under one folder.
#[derive(Debug, Clone)]
pub struct DemoPaths {
    /// Absolute.
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    pub collector_config: PathBuf,
    pub agent_config: PathBuf,
    pub rules_dir: PathBuf,
}

impl DemoPaths {
    /// The layout under `data_dir` (made absolute against the working
    /// directory), refusing names the collector's and agent's globs would
    /// misread.
    pub fn new(data_dir: &Path) -> Result<DemoPaths, DemoError> {
        let data_dir = std::path::absolute(data_dir).map_err(|error| DemoError::Prepare {
            path: data_dir.to_path_buf(),
            error,
        })?;
        let Some(text) = data_dir.to_str() else {
            return Err(DemoError::DataDirNotUtf8 { path: data_dir });
        };
        // Rule files are found by glob below the collector configuration's
        // folder, which would read these characters as patterns.
        if let Some(ch) = text.chars().find(|c| matches!(c, '*' | '?' | '[' | ']')) {
            return Err(DemoError::DataDirName { path: data_dir, ch });
        }
        Ok(DemoPaths {
            log_file: data_dir.join(LOG_FILE),
            collector_config: data_dir.join("collector.yaml"),
            agent_config: data_dir.join("agent.yaml"),
            rules_dir: data_dir.join("rules"),
            data_dir,
        })
    }

    /// Creates the folder and locks it for this demo (the collector's
    /// stores take no lock of their own, and two processes replaying one
    /// WAL would corrupt it); the lock lasts as long as the file.
    pub fn lock(&self) -> Result<std::fs::File, DemoError> {
        let path = self.data_dir.join("demo.lock");
        let io = |error| DemoError::Prepare {
            path: path.clone(),
            error,
        };
        std::fs::create_dir_all(&self.data_dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(DemoError::Busy {
                path: self.data_dir.clone(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// Creates the folder, writes the rule files and creates the log file
    /// when missing (an existing one is kept: the agent's checkpoints
    /// continue in it).
    pub fn prepare(&self) -> Result<(), DemoError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| DemoError::Prepare { path, error }
        };
        std::fs::create_dir_all(&self.rules_dir).map_err(io(&self.rules_dir))?;
        for (name, text) in RULE_FILES {
            let path = self.rules_dir.join(name);
            let header = "# Written by `tocsin-collector demo` at every start (edits last until the next\n# start; the collector reloads this folder when a file changes).\n";
            std::fs::write(&path, format!("{header}{text}")).map_err(io(&path))?;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.log_file)
        {
            Ok(mut f) => {
                let line = format!(
                    "{} INFO {DEMO_SERVICE} started; lines from WARN up are shipped to the collector\n",
                    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
                );
                f.write_all(line.as_bytes()).map_err(io(&self.log_file))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&self.log_file)(e)),
        }
        Ok(())
    }
}

/// collector.yaml of the demo: the defaults, on the given listeners, with
/// evaluation every 5 s so the demo alert follows a log line quickly, and
/// alerts re-sent every 5 s so that one still firing from the previous run
/// (its state and last sending survive a restart) is printed soon after
/// start; the printer drops the repeats.
fn collector_yaml(options: &DemoOptions) -> String {
    format!(
        "# Written by `tocsin-collector demo` at every start: the collector part of the demo.\n\
         # Run it alone with `tocsin-collector --config collector.yaml` in this folder.\n\
         data_dir: collector\n\
         receivers:\n  otlp:\n    grpc: {{ listen: \"{grpc}\" }}\n    http: {{ listen: \"{http}\" }}\n\
         ruler:\n  rule_files: [\"rules/*.yaml\"]\n  evaluation_interval: 5s\n  resend_delay: 5s\n\
         api:\n  listen: \"{api}\"\n",
        grpc = options.otlp_grpc_listen,
        http = options.otlp_http_listen,
        api = options.api_listen,
    )
}

/// agent.yaml of the demo: this host's metrics every [`METRIC_INTERVAL`]
/// and the demo log file from its beginning, to `endpoint` over gRPC.
fn agent_yaml(endpoint: SocketAddr, log_file: &Path) -> String {
    // A JSON string is a YAML double-quoted scalar.
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    let include = glob::Pattern::escape(&log_file.to_string_lossy());
    format!(
        "# Written by `tocsin-collector demo` at every start: the agent part of the demo.\n\
         collector:\n  endpoint: \"http://{endpoint}\"\n  protocol: grpc\n\
         metrics:\n  interval: {interval}s\n\
         logs:\n  - name: {DEMO_SERVICE}\n    include: [{include}]\n    read_from: beginning\n    min_severity: warn\n    attributes:\n      service.name: {DEMO_SERVICE}\n\
         data_dir: agent\n",
        interval = METRIC_INTERVAL.as_secs(),
        include = quoted(&include),
    )
}

/// Writes `text` to `path`, for the configuration parsers
/// (which resolve relative paths against the file's folder).
fn write_config(path: &Path, text: &str) -> Result<(), DemoError> {
    std::fs::write(path, text).map_err(|error| DemoError::Prepare {
        path: path.to_path_buf(),
        error,
    })
}

/// A listener that would not bind, told with the flag that moves it.
fn listen_error(e: RunError, options: &DemoOptions) -> DemoError {
    let in_use_hint = |source: &std::io::Error| {
        if source.kind() == std::io::ErrorKind::AddrInUse {
            " (is another collector or demo running?)"
        } else {
            ""
        }
    };
    match e {
        RunError::ApiListen { addr, source } => DemoError::Listen {
            what: "the HTTP API",
            addr,
            flag: "--api-listen",
            hint: in_use_hint(&source),
            error: source,
        },
        RunError::Receivers(ReceiverError::Bind { addr, source, .. })
            if addr == options.otlp_grpc_listen || addr == options.otlp_http_listen =>
        {
            let (what, flag) = if addr == options.otlp_grpc_listen {
                ("OTLP/gRPC", "--otlp-grpc-listen")
            } else {
                ("OTLP/HTTP", "--otlp-http-listen")
            };
            DemoError::Listen {
                what,
                addr,
                flag,
                hint: in_use_hint(&source),
                error: source,
            }
        }
        e => DemoError::Collector(e),
    }
}

/// Runs the demo until `shutdown` is cancelled, printing the banner and
/// the alerts to `out`.
pub async fn run(
    options: DemoOptions,
    shutdown: CancellationToken,
    mut out: Box<dyn Write + Send>,
) -> Result<(), DemoError> {
    let paths = DemoPaths::new(&options.data_dir)?;
    let _lock = paths.lock()?;
    paths.prepare()?;
    let collector_text = collector_yaml(&options);
    write_config(&paths.collector_config, &collector_text)?;
    let settings = crate::config::parse(&paths.collector_config, &collector_text)
        .map_err(|e| DemoError::CollectorConfig(e.to_string()))?;

    // The collector's own token: it stops after the agent.
    let collector_stop = CancellationToken::new();
    let (bound_tx, bound_rx) = oneshot::channel();
    let (alerts_tx, alerts_rx) = mpsc::channel(ALERT_PRINT_QUEUE);
    let mut collector: JoinHandle<Result<(), RunError>> =
        tokio::spawn(crate::run::run_with_alerts(
            settings,
            collector_stop.clone(),
            Some(bound_tx),
            Some(alerts_tx),
        ));
    let bound: Bound = tokio::select! {
        b = bound_rx => match b {
            Ok(b) => b,
            // The sender is dropped when the collector returned early.
            Err(_) => return Err(match collector.await {
                Ok(Err(e)) => listen_error(e, &options),
                Ok(Ok(())) => DemoError::CollectorGone,
                Err(e) => DemoError::Task(e.to_string()),
            }),
        },
        () = shutdown.cancelled() => {
            collector_stop.cancel();
            return finish_collector(collector).await;
        }
    };
    let Some(grpc) = bound.otlp_grpc else {
        collector_stop.cancel();
        let _ = collector.await;
        return Err(DemoError::CollectorGone);
    };

    let agent_text = agent_yaml(grpc, &paths.log_file);
    let agent_config = match write_config(&paths.agent_config, &agent_text).and_then(|()| {
        tocsin_agent::config::parse(&paths.agent_config, &agent_text).map_err(|errors| {
            DemoError::AgentConfig(
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })
    }) {
        Ok(config) => config,
        Err(e) => {
            collector_stop.cancel();
            let _ = collector.await;
            return Err(e);
        }
    };
    let host = agent_config.resource.host_name.clone();
    let agent_stop = CancellationToken::new();
    let mut agent = tokio::spawn(tocsin_agent::run::run(agent_config, agent_stop.clone()));

    let banner = banner(&paths, &bound, &host, &tocsinctl_command());
    // The terminal is the demo's purpose; if it is gone there is no one to
    // tell, and the demo still serves the API.
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    let printer = tokio::spawn(print_alerts(alerts_rx, out));

    // Runs until Ctrl-C, or until a part stops by itself (an error).
    let mut failure: Option<DemoError> = None;
    let mut agent_done = false;
    let mut collector_done = false;
    tokio::select! {
        () = shutdown.cancelled() => {}
        r = &mut agent => {
            agent_done = true;
            failure = Some(match r {
                Ok(Ok(())) => DemoError::Task("the agent stopped by itself".into()),
                Ok(Err(e)) => DemoError::Agent(e),
                Err(e) => DemoError::Task(e.to_string()),
            });
        }
        r = &mut collector => {
            collector_done = true;
            failure = Some(match r {
                Ok(Ok(())) => DemoError::CollectorGone,
                Ok(Err(e)) => DemoError::Collector(e),
                Err(e) => DemoError::Task(e.to_string()),
            });
        }
    }
    tracing::info!("demo stopping: the agent first, then the collector");
    agent_stop.cancel();
    if !agent_done {
        match agent.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "agent"),
            Err(e) => tracing::error!(error = %e, "agent task"),
        }
    }
    collector_stop.cancel();
    if !collector_done {
        let stopped = finish_collector(collector).await;
        if failure.is_none() {
            failure = stopped.err();
        }
    }
    // The collector dropped its end of the alert channel, so the printer
    // ends after the last batch; a collector that missed its shutdown
    // deadline may still hold it, and then the printer is left behind.
    if let Ok(Ok(mut out)) = tokio::time::timeout(PRINTER_DEADLINE, printer).await {
        let _ = writeln!(
            out,
            "Demo stopped. Its data stays in {} for the next run.",
            paths.data_dir.display()
        );
        let _ = out.flush();
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn finish_collector(collector: JoinHandle<Result<(), RunError>>) -> Result<(), DemoError> {
    match collector.await {
        Ok(r) => r.map_err(DemoError::Collector),
        Err(e) => Err(DemoError::Task(e.to_string())),
    }
}

/// `s` as one shell word.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '_' | '-' | '+' | ':' | ',' | '@' | '%')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How to start tocsinctl: the one installed beside this binary, else
/// from the repository with cargo (`cargo run` builds only the collector).
fn tocsinctl_command() -> String {
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("tocsinctl"))
        .filter(|p| p.is_file());
    match beside {
        Some(p) => shell_quote(&p.to_string_lossy()),
        None => "cargo run --release -p tocsin-collector --bin tocsinctl --".into(),
    }
}

/// What the demo prints once everything runs.
fn banner(paths: &DemoPaths, bound: &Bound, host: &str, tocsinctl: &str) -> String {
    let api = format!("http://{}", bound.api);
    let log = shell_quote(&paths.log_file.to_string_lossy());
    let otlp = [
        bound.otlp_grpc.map(|a| format!("gRPC {a}")),
        bound.otlp_http.map(|a| format!("HTTP {a}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    let expr = format!("system_memory_usage_bytes{{host_name=\"{host}\"}}");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", &expr)
        .finish();
    let url = if bound.api.to_string() == DEFAULT_API_LISTEN {
        String::new()
    } else {
        format!(" --url {api}")
    };
    let mut b = String::new();
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "Tocsin demo: a collector and an agent for this host ({host}) in one process."
    );
    let _ = writeln!(b, "  data      {}", paths.data_dir.display());
    let _ = writeln!(
        b,
        "            (collector.yaml, agent.yaml and rules/ are what the demo runs with)"
    );
    let _ = writeln!(b, "  log file  {}", paths.log_file.display());
    let _ = writeln!(b, "  API       {api}");
    let _ = writeln!(b, "  OTLP      {otlp}");
    let _ = writeln!(b);
    let _ = writeln!(
        b,
        "Make an alert fire: in another terminal, append an error line:"
    );
    let _ = writeln!(
        b,
        "  echo \"$(date -Is) ERROR payment failed: connection refused\" >> {log}"
    );
    let _ = writeln!(
        b,
        "{DEMO_ALERT} fires here within about 10 s and resolves a minute after the last error."
    );
    let _ = writeln!(b, "Firing alerts:   {api}/api/v1/alerts");
    let _ = writeln!(b, "This host's metrics:");
    let _ = writeln!(b, "  {tocsinctl}{url} query {}", shell_quote(&expr));
    let _ = writeln!(b, "  curl -s '{api}/api/v1/query?{query}'");
    let _ = writeln!(b, "Stored log lines: {api}/api/v1/logs?severity=warn");
    let _ = writeln!(b, "Ctrl-C stops the demo.");
    let _ = writeln!(b);
    b
}

/// One alert's labels without `alertname`, as `{a="x", b="y"}`.
fn labels_text(a: &OutgoingAlert) -> String {
    let pairs: Vec<String> = a
        .labels
        .iter()
        .filter(|l| l.name != "alertname")
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Alerts whose last printed state is remembered.
const MAX_PRINTED: usize = 10_000;

/// The last state printed per alert, so that the ruler's re-sends (every
/// resend delay while an alert fires, and for a while after it resolved)
/// are not printed again. One entry per label set that fired, at most
/// [`MAX_PRINTED`]: past that, resolved alerts are forgotten first (a late
/// re-send of such a resolution may then print once more).
#[derive(Debug, Default)]
struct AlertLines {
    /// Labels → (firing since, resolved).
    printed: HashMap<String, (i64, bool)>,
}

impl AlertLines {
    /// The line to print for `a`, if it is news: it started firing (or
    /// fired again) or resolved.
    fn line(&mut self, a: &OutgoingAlert, now: &str) -> Option<String> {
        let state = (a.starts_at_ms, a.resolved);
        if self.printed.insert(a.labels.to_string(), state) == Some(state) {
            return None;
        }
        if self.printed.len() > MAX_PRINTED {
            self.printed.retain(|_, (_, resolved)| !*resolved);
            if self.printed.len() > MAX_PRINTED {
                self.printed.clear();
            }
        }
        let name = a.labels.get("alertname");
        let summary = a
            .annotations
            .iter()
            .find(|(k, _)| k == "summary")
            .map(|(_, v)| format!("  {v}"))
            .unwrap_or_default();
        let word = if a.resolved { "RESOLVED" } else { "FIRING" };
        Some(format!(
            "{now} {word:<8} {name} {}{summary}",
            labels_text(a)
        ))
    }
}

/// Prints every alert that starts firing or resolves; returns the writer
/// when the collector closes the channel.
async fn print_alerts(
    mut alerts: mpsc::Receiver<Vec<OutgoingAlert>>,
    mut out: Box<dyn Write + Send>,
) -> Box<dyn Write + Send> {
    let mut lines = AlertLines::default();
    while let Some(batch) = alerts.recv().await {
        let now = chrono::Local::now().format("%H:%M:%S").to_string();
        for a in &batch {
            if let Some(line) = lines.line(a, &now) {
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_rules::promql::Labels;

    fn options() -> DemoOptions {
        DemoOptions {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            api_listen: DEFAULT_API_LISTEN.parse().unwrap(),
            otlp_grpc_listen: DEFAULT_OTLP_GRPC_LISTEN.parse().unwrap(),
            otlp_http_listen: DEFAULT_OTLP_HTTP_LISTEN.parse().unwrap(),
        }
    }

    #[test]
    fn the_generated_configurations_and_rules_load() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DemoPaths::new(&dir.path().join("demo data")).unwrap();
        paths.prepare().unwrap();
        let settings =
            crate::config::parse(&paths.collector_config, &collector_yaml(&options())).unwrap();
        assert_eq!(settings.data_dir, paths.data_dir.join("collector"));
        assert_eq!(settings.api_listen, options().api_listen);
        let loaded = crate::ruler::loader::load(&settings.ruler.rule_files).unwrap();
        assert_eq!(loaded.files.len(), RULE_FILES.len());

        let agent = tocsin_agent::config::parse(
            &paths.agent_config,
            &agent_yaml("127.0.0.1:4317".parse().unwrap(), &paths.log_file),
        )
        .unwrap();
        assert_eq!(agent.interval, METRIC_INTERVAL);
        assert_eq!(agent.data_dir, paths.data_dir.join("agent"));
        assert_eq!(agent.logs.len(), 1);
        assert_eq!(agent.logs[0].service_name(), Some(DEMO_SERVICE));
        assert_eq!(
            agent.logs[0].include,
            vec![paths.log_file.to_string_lossy().into_owned()]
        );
    }

    #[test]
    fn an_existing_log_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DemoPaths::new(dir.path()).unwrap();
        paths.prepare().unwrap();
        let first = std::fs::read_to_string(&paths.log_file).unwrap();
        assert!(first.contains("INFO"), "{first}");
        std::fs::write(&paths.log_file, "kept\n").unwrap();
        paths.prepare().unwrap();
        assert_eq!(std::fs::read_to_string(&paths.log_file).unwrap(), "kept\n");
    }

    #[test]
    fn a_data_folder_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = DemoPaths::new(&dir.path().join("data")).unwrap();
        let held = paths.lock().unwrap();
        let err = paths.lock().unwrap_err();
        assert!(matches!(err, DemoError::Busy { .. }), "{err}");
        assert!(err.to_string().contains("--data-dir"), "{err}");
        drop(held);
        paths.lock().unwrap();
    }

    #[test]
    fn data_folders_with_glob_characters_are_refused() {
        let err = DemoPaths::new(Path::new("/tmp/demo[1]")).unwrap_err();
        assert!(err.to_string().contains("--data-dir"), "{err}");
    }

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(shell_quote("/tmp/a-b_c.log"), "/tmp/a-b_c.log");
        assert_eq!(shell_quote("/tmp/my demo/x.log"), "'/tmp/my demo/x.log'");
        assert_eq!(shell_quote("/tmp/it's"), r"'/tmp/it'\''s'");
    }

    fn alert(starts: i64, resolved: bool) -> OutgoingAlert {
        OutgoingAlert {
            labels: Labels::from_pairs([
                ("alertname", DEMO_ALERT),
                ("host_name", "web-1"),
                ("service_name", DEMO_SERVICE),
            ]),
            annotations: vec![("summary".into(), "demo-app on web-1 logged errors".into())],
            starts_at_ms: starts,
            ends_at_ms: starts + 1,
            resolved,
            generator_url: String::new(),
            file: "f".into(),
            group: "g".into(),
        }
    }

    #[test]
    fn resends_are_not_printed_again() {
        let mut lines = AlertLines::default();
        assert_eq!(
            lines.line(&alert(1, false), "10:00:00").as_deref(),
            Some(
                "10:00:00 FIRING   DemoErrorLogged {host_name=\"web-1\", service_name=\"demo-app\"}  demo-app on web-1 logged errors"
            )
        );
        assert_eq!(lines.line(&alert(1, false), "10:01:00"), None);
        let resolved = lines.line(&alert(1, true), "10:02:00").unwrap();
        assert!(
            resolved.starts_with("10:02:00 RESOLVED DemoErrorLogged {"),
            "{resolved}"
        );
        assert_eq!(lines.line(&alert(1, true), "10:03:00"), None);
        assert!(lines.line(&alert(5, false), "10:04:00").is_some());
        assert!(lines.line(&alert(5, true), "10:05:00").is_some());
    }

    #[test]
    fn remembered_alerts_are_bounded_forgetting_resolved_ones_first() {
        let mut lines = AlertLines::default();
        let firing = alert(1, false);
        assert!(lines.line(&firing, "10:00:00").is_some());
        for i in 0..MAX_PRINTED {
            let mut a = alert(1, true);
            a.labels = Labels::from_pairs([("alertname", "Other"), ("n", &i.to_string())]);
            assert!(lines.line(&a, "10:00:01").is_some());
        }
        assert!(lines.printed.len() <= MAX_PRINTED);
        // The firing alert is still remembered: its re-send stays silent.
        assert_eq!(lines.line(&firing, "10:00:02"), None);
    }
}
