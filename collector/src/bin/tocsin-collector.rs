//! `tocsin-collector`: parses the command line, loads collector.yaml, sets
//! up logging and hands over to `tocsin_collector::run`. `check-config`
//! validates the configuration and prints every problem.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tocsin_collector::config::{self, DEFAULT_CONFIG_FILE};
use tocsin_collector::demo;
use tocsin_telemetry::{LogOverrides, Service, TelemetrySettings};
use tokio_util::sync::CancellationToken;

/// Ingest builds and drops label sets, maps and buffers for every data
/// point; with the system allocator that churn was about a third of the
/// collector's CPU under OTLP load (bench/ingest), mimalloc takes most of
/// it away.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long the last export of the collector's own metrics and traces may
/// take at shutdown.
const TELEMETRY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Parser)]
#[command(
    name = "tocsin-collector",
    version,
    about = "Tocsin's collector: OTLP ingest, store, rules and the HTTP API"
)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_FILE)]
    config: PathBuf,
    /// Log line format (wins over `telemetry.log.format`; default text).
    #[arg(long, global = true, value_enum, env = "TOCSIN_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// Which log lines to write (tracing `EnvFilter` syntax; wins over
    /// `telemetry.log.level`, default info; `RUST_LOG` wins when set).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and the rule files it names: prints
    /// every problem with file:line:col and exits 1, or prints OK.
    CheckConfig,
    /// Run Tocsin on this host in one process: the collector with its
    /// defaults on 127.0.0.1 (data in a local folder), an agent sending
    /// this host's metrics and a demo log file, and the example rules.
    /// Prints where everything is and every alert that fires or resolves;
    /// its own log lines from warn up unless --log-level or RUST_LOG say
    /// otherwise. Ignores --config.
    Demo(DemoArgs),
}

#[derive(clap::Args)]
struct DemoArgs {
    /// The folder for the demo's data, configurations and log file
    /// (created if missing; kept between runs).
    #[arg(long, default_value = demo::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The HTTP API's address.
    #[arg(long, default_value = demo::DEFAULT_API_LISTEN)]
    api_listen: SocketAddr,
    /// The OTLP/gRPC receiver's address (the demo's agent sends here).
    #[arg(long, default_value = demo::DEFAULT_OTLP_GRPC_LISTEN)]
    otlp_grpc_listen: SocketAddr,
    /// The OTLP/HTTP receiver's address.
    #[arg(long, default_value = demo::DEFAULT_OTLP_HTTP_LISTEN)]
    otlp_http_listen: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::CheckConfig) => check_config(&cli),
        Some(Command::Demo(ref args)) => match run_demo(&cli, args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tocsin-collector demo: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => match serve(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e:#}");
                eprintln!("tocsin-collector: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check_config(cli: &Cli) -> ExitCode {
    match config::load(&cli.config) {
        // The rule files are part of the configuration: the collector
        // would refuse to start with an invalid one.
        Ok(settings) => match tocsin_collector::ruler::loader::load(&settings.ruler.rule_files) {
            Ok(_) => {
                println!("OK");
                ExitCode::SUCCESS
            }
            Err(e) => {
                for p in &e.errors {
                    println!("{p}");
                }
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            for p in e.problems() {
                println!("{p}");
            }
            ExitCode::FAILURE
        }
    }
}

fn log_overrides(cli: &Cli) -> LogOverrides {
    LogOverrides {
        format: cli.log_format.map(|f| match f {
            LogFormat::Text => tocsin_telemetry::LogFormat::Text,
            LogFormat::Json => tocsin_telemetry::LogFormat::Json,
        }),
        level: cli.log_level.clone(),
    }
}

fn service() -> Service {
    Service {
        name: "tocsin-collector",
        version: env!("CARGO_PKG_VERSION"),
        host_name: tocsin_telemetry::host_name(),
    }
}

/// Log lines only, as the command line says, at `default_level` when it
/// names none.
fn init_tracing(cli: &Cli, default_level: &str) -> anyhow::Result<()> {
    let mut overrides = log_overrides(cli);
    overrides
        .level
        .get_or_insert_with(|| default_level.to_string());
    tocsin_telemetry::init(&TelemetrySettings::default(), &overrides, &service())?;
    Ok(())
}

fn serve(cli: &Cli) -> anyhow::Result<()> {
    let settings = config::load(&cli.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // In the runtime: the OTLP exporters' connections run on it.
        let telemetry =
            tocsin_telemetry::init(&settings.telemetry, &log_overrides(cli), &service())?;
        let shutdown = CancellationToken::new();
        tokio::spawn(on_signal(shutdown.clone()));
        let result = tocsin_collector::run::run(settings, shutdown)
            .await
            .context("collector");
        telemetry.shutdown(TELEMETRY_DEADLINE).await;
        result
    })
}

fn run_demo(cli: &Cli, args: &DemoArgs) -> anyhow::Result<()> {
    // The terminal is the demo's banner and alerts: the parts' own log
    // lines from warn up, unless --log-level or RUST_LOG ask for more.
    init_tracing(cli, "warn")?;
    let options = demo::DemoOptions {
        data_dir: args.data_dir.clone(),
        api_listen: args.api_listen,
        otlp_grpc_listen: args.otlp_grpc_listen,
        otlp_http_listen: args.otlp_http_listen,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let first = shutdown.clone();
        tokio::spawn(async move {
            on_signal(first.clone()).await;
            if !first.is_cancelled() {
                return;
            }
            eprintln!("Stopping the demo (Ctrl-C again to exit at once)...");
            // A second signal: the WAL, spool and checkpoints are
            // crash-safe, so an impatient user loses nothing.
            let again = CancellationToken::new();
            on_signal(again.clone()).await;
            if again.is_cancelled() {
                std::process::exit(130);
            }
        });
        demo::run(options, shutdown, Box::new(std::io::stdout())).await
    })?;
    Ok(())
}

/// Cancels `shutdown` at SIGINT or SIGTERM.
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut int, mut term) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "cannot listen for SIGINT/SIGTERM; stop with SIGKILL");
            return;
        }
    };
    tokio::select! {
        _ = int.recv() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
    shutdown.cancel();
}
