//! Tocsin's own telemetry, shared by the collector and the agent: log
//! lines on stderr (text or JSON, through tracing-subscriber) and, when
//! `telemetry.otlp` is configured, the process's own metrics
//! ([`SelfMetrics`]) and traces (tracing spans, through
//! tracing-opentelemetry) exported over OTLP with the resource
//! `service.name`, `service.version` and `host.name`.
//!
//! Invariants: without `telemetry.otlp` no provider, exporter, thread or
//! task is created and [`SelfMetrics::global`] is disabled. Only spans of
//! Tocsin's own crates (targets `tocsin…`) at info level or above are
//! exported, whatever the log level: the HTTP and gRPC libraries the
//! exporters use are never traced, so an export cannot feed itself.
//! [`Telemetry::shutdown`] flushes both providers within its deadline.

pub mod config;
pub mod metrics;
mod otlp;
mod spans;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, Registry};

pub use config::{
    LogFormat, LogSettings, OtlpSettings, Protocol, TelemetryConfig, TelemetryProblem,
    TelemetrySettings,
};
pub use metrics::{Histogram, Observer, SelfMetrics};

/// Who reports: the resource of every exported metric and span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `service.name`: `tocsin-collector` or `tocsin-agent`.
    pub name: &'static str,
    /// `service.version`.
    pub version: &'static str,
    /// `host.name`.
    pub host_name: String,
}

/// Command-line settings that win over `telemetry.log`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOverrides {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log level {level:?} is not a log filter: {message}")]
    Level { level: String, message: String },
    #[error("cannot set up logging: {0}")]
    Install(String),
    #[error("telemetry.otlp ({endpoint}): {message}")]
    Exporter { endpoint: String, message: String },
    #[error("telemetry.otlp needs a Tokio runtime: set telemetry up inside the runtime")]
    NoRuntime,
}

/// The running telemetry; [`Telemetry::shutdown`] flushes it.
pub struct Telemetry {
    providers: Option<otlp::Providers>,
    scope: &'static str,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.is_exporting())
            .finish()
    }
}

/// Sets up telemetry for the whole process: installs the global tracing
/// subscriber and, with `telemetry.otlp`, the providers behind
/// [`SelfMetrics::global`]. Call it once, inside the Tokio runtime that
/// runs until [`Telemetry::shutdown`] when OTLP export is configured.
pub fn init(
    settings: &TelemetrySettings,
    overrides: &LogOverrides,
    service: &Service,
) -> Result<Telemetry, TelemetryError> {
    let (telemetry, dispatch) = Telemetry::build(settings, overrides, service)?;
    tracing::dispatcher::set_global_default(dispatch)
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    if let Some(p) = &telemetry.providers {
        metrics::set_global(p.meter.clone(), service.name);
    }
    Ok(telemetry)
}

impl Telemetry {
    /// The providers and a subscriber (log lines, and spans to OTLP when
    /// configured) without installing anything globally: [`init`] installs
    /// them; tests use the dispatch locally.
    pub fn build(
        settings: &TelemetrySettings,
        overrides: &LogOverrides,
        service: &Service,
    ) -> Result<(Telemetry, tracing::Dispatch), TelemetryError> {
        let level = overrides
            .level
            .clone()
            .unwrap_or_else(|| settings.log.level.clone());
        let filter = match EnvFilter::try_from_default_env() {
            Ok(from_env) => from_env,
            Err(_) => EnvFilter::builder()
                .parse(&level)
                .map_err(|e| TelemetryError::Level {
                    level: level.clone(),
                    message: e.to_string(),
                })?,
        };
        let format = overrides.format.unwrap_or(settings.log.format);
        let lines = match format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .boxed(),
        };
        let providers = settings
            .otlp
            .as_ref()
            .map(|o| otlp::build(o, service))
            .transpose()?;
        let spans = providers.as_ref().and_then(|p| p.tracer.as_ref()).map(|t| {
            tracing_opentelemetry::layer()
                .with_tracer(t.tracer(service.name))
                .with_filter(Targets::new().with_target("tocsin", LevelFilter::INFO))
        });
        let subscriber = Registry::default()
            .with(lines.with_filter(filter))
            .with(spans);
        Ok((
            Telemetry {
                providers,
                scope: service.name,
            },
            tracing::Dispatch::new(subscriber),
        ))
    }

    /// Whether metrics and traces are exported.
    pub fn is_exporting(&self) -> bool {
        self.providers.is_some()
    }

    /// The self metrics of this telemetry (disabled when not exporting).
    pub fn metrics(&self) -> SelfMetrics {
        match &self.providers {
            Some(p) => SelfMetrics::from_provider(&p.meter, self.scope),
            None => SelfMetrics::disabled(),
        }
    }

    /// Exports what is pending (the last metric collection included) and
    /// stops the exporters; returns after `deadline` at the latest.
    pub async fn shutdown(self, deadline: Duration) {
        let Some(p) = self.providers else {
            return;
        };
        let meter = p.meter;
        let metrics = tokio::task::spawn_blocking(move || meter.shutdown_with_timeout(deadline));
        let traces = p
            .tracer
            .map(|t| tokio::task::spawn_blocking(move || t.shutdown_with_timeout(deadline)));
        let both = async {
            let traces = match traces {
                Some(t) => Some(t.await),
                None => None,
            };
            (metrics.await, traces)
        };
        match tokio::time::timeout(deadline, both).await {
            Ok((metrics, traces)) => {
                for (signal, result) in [("metrics", Some(metrics)), ("traces", traces)] {
                    match result {
                        Some(Ok(Ok(()))) | None => {}
                        Some(Ok(Err(e))) => {
                            tracing::warn!(signal, error = %e, "telemetry: the last export failed");
                        }
                        Some(Err(e)) => {
                            tracing::warn!(signal, error = %e, "telemetry: shutdown task failed");
                        }
                    }
                }
            }
            Err(_) => tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "telemetry: export did not finish within the shutdown deadline"
            ),
        }
    }
}

/// This machine's host name, for `host.name`: the kernel's, else
/// `/etc/hostname`, else `localhost`.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
