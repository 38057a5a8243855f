//! `tocsin-agent`: parses the command line, loads the configuration, sets
//! up logging and signals, and calls the library's run loop.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tocsin_agent::config::{self, DEFAULT_CONFIG_PATH};
use tocsin_telemetry::{LogOverrides, Service, TelemetrySettings};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Tocsin's agent: host metrics and error logs over OTLP.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// Configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH, env = "TOCSIN_AGENT_CONFIG")]
    config: PathBuf,
    /// Format of the agent's own log lines on stderr (wins over
    /// `telemetry.log.format`; default text). The level comes from
    /// `telemetry.log.level`, and RUST_LOG wins over it.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate the configuration: print every problem, or OK.
    CheckConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig) => check_config(&cli.config),
        None => match run(&cli.config, cli.log_format) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                eprintln!("tocsin-agent: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check_config(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(_) => {
            println!("{}: OK", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            for problem in e.problems() {
                eprintln!("{problem}");
            }
            ExitCode::FAILURE
        }
    }
}

/// How long the last export of the agent's own metrics and traces may
/// take at shutdown.
const TELEMETRY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

fn run(path: &Path, log_format: Option<LogFormat>) -> anyhow::Result<()> {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(e) => {
            for problem in e.problems() {
                eprintln!("{problem}");
            }
            anyhow::bail!("invalid configuration {}", path.display());
        }
    };
    // One thread: the agent's work is small and a second thread's stack
    // and allocator arena cost more memory than they save time.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // In the runtime: the OTLP exporters' connections run on it.
        let overrides = LogOverrides {
            format: log_format.map(|f| match f {
                LogFormat::Text => tocsin_telemetry::LogFormat::Text,
                LogFormat::Json => tocsin_telemetry::LogFormat::Json,
            }),
            level: None,
        };
        let service = Service {
            name: "tocsin-agent",
            version: env!("CARGO_PKG_VERSION"),
            host_name: config.resource.host_name.clone(),
        };
        let telemetry = tocsin_telemetry::init(&config.telemetry, &overrides, &service)?;
        let shutdown = CancellationToken::new();
        let (reload_tx, reloads) = mpsc::channel(1);
        let signals = tokio::spawn(watch_signals(
            path.to_path_buf(),
            config.telemetry.clone(),
            reload_tx,
            shutdown.clone(),
        ));
        let result = tocsin_agent::run::run_with_reload(config, reloads, shutdown.clone()).await;
        shutdown.cancel();
        signals.abort();
        telemetry.shutdown(TELEMETRY_DEADLINE).await;
        result.context("agent failed")
    })
}

/// The first SIGINT or SIGTERM starts a graceful shutdown; a second one
/// exits at once (the spool and checkpoints are crash-safe, so an impatient
/// operator loses nothing but a re-send).
fn stop(signal: &str, shutdown: &CancellationToken) {
    if shutdown.is_cancelled() {
        tracing::warn!("{signal} again: exiting without waiting for the shutdown");
        std::process::exit(1);
    }
    tracing::info!("{signal}: shutting down");
    shutdown.cancel();
}

/// SIGHUP reloads the configuration (an invalid one is logged and the old
/// one keeps running; `telemetry:` applies at the next start only);
/// SIGINT and SIGTERM shut down.
async fn watch_signals(
    path: PathBuf,
    telemetry: TelemetrySettings,
    reloads: mpsc::Sender<config::Config>,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut hup, mut term, mut int) = match (
        signal(SignalKind::hangup()),
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(h), Ok(t), Ok(i)) => (h, t, i),
        _ => {
            tracing::error!("cannot install signal handlers; stopping");
            shutdown.cancel();
            return;
        }
    };
    loop {
        tokio::select! {
            _ = term.recv() => stop("SIGTERM", &shutdown),
            _ = int.recv() => stop("SIGINT", &shutdown),
            _ = hup.recv() => match config::load(&path) {
                Ok(config) => {
                    tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
                    if config.telemetry != telemetry {
                        tracing::warn!("SIGHUP: the telemetry section changed; it applies when the agent restarts");
                    }
                    if reloads.send(config).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let problems = e.problems();
                    for problem in &problems {
                        tracing::error!("{problem}");
                    }
                    tracing::error!(
                        problems = problems.len(),
                        "SIGHUP: the configuration is invalid; keeping the running one"
                    );
                }
            },
        }
    }
}
