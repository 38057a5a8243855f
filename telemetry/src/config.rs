//! The `telemetry:` section of agent.yaml and collector.yaml: what serde
//! reads ([`TelemetryConfig`]) and the validated value
//! ([`TelemetrySettings`]) that cannot hold an invalid setting.
//!
//! ```yaml
//! telemetry:
//!   log:
//!     format: json          # text (default) | json
//!     level: info,tocsin_collector::ruler=debug   # RUST_LOG wins when set
//!   otlp:                   # absent: nothing is exported
//!     endpoint: http://otel-collector:4317
//!     protocol: grpc        # grpc (default) | http
//!     headers: { x-scope-orgid: ops }
//!     token_file: /etc/tocsin/otlp.token   # sent as `authorization: Bearer …`
//!     interval: 60s         # metric export interval
//!     sample_ratio: 0.1     # traces kept
//!     timeout: 10s          # one export request
//!     tls: { ca_file: /etc/tocsin/otlp-ca.pem }
//! ```
//!
//! Invariants: unknown keys are schema errors (the callers report them
//! with file:line:col); [`TelemetryConfig::validate`] returns every problem
//! at once, each with its field path relative to the section; files named
//! by `*_file` keys are read during validation, so `check-config` finds a
//! missing one; relative paths are taken from the configuration file's
//! directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Default metric export interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest metric export interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Default time one export request may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound of the span queue between the process and the exporter.
pub const DEFAULT_MAX_QUEUED_SPANS: usize = 2048;
/// Largest span queue accepted.
pub const MAX_QUEUED_SPANS: usize = 1 << 20;

/// `telemetry:`: the process's own log lines, metrics and traces.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Log lines on stderr.
    pub log: LogConfig,
    /// Export of the process's own metrics and traces over OTLP; absent
    /// means nothing is exported and no export task runs.
    pub otlp: Option<OtlpConfig>,
}

/// `telemetry.log:`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (default) or `json`, one object per line.
    pub format: Option<LogFormat>,
    /// Which lines to write, in tracing's `EnvFilter` syntax (`info`,
    /// `warn,tocsin_agent::export=debug`); default `info`. `RUST_LOG`
    /// wins when it is set.
    pub level: Option<String>,
}

/// Format of the log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OTLP/gRPC (usually port 4317).
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies to `/v1/metrics` and `/v1/traces`
    /// under the endpoint (usually port 4318).
    Http,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        })
    }
}

/// `telemetry.otlp:`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// `http://host:port` or `https://host:port` of an OTLP receiver.
    pub endpoint: String,
    /// `grpc` (default) or `http`.
    pub protocol: Protocol,
    /// Extra request headers (gRPC metadata) by name, such as a tenant id.
    pub headers: BTreeMap<String, String>,
    /// A file holding a bearer token, sent as `authorization: Bearer …`.
    pub token_file: Option<PathBuf>,
    /// Time between metric exports (default `60s`, at least `1s`).
    pub interval: Option<String>,
    /// Longest one export request may take (default `10s`).
    pub timeout: Option<String>,
    /// Export traces too (default true); metrics are always exported.
    pub traces: Option<bool>,
    /// Fraction of traces kept, from 0 to 1 (default 1: every one); a
    /// span follows its parent's decision.
    pub sample_ratio: Option<f64>,
    /// Most finished spans waiting for export; further ones are dropped,
    /// counted and logged (default 2048).
    pub max_queued_spans: Option<usize>,
    /// TLS for `https://` endpoints.
    pub tls: Option<TlsConfig>,
}

/// `telemetry.otlp.tls:`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM file of the CA that signs the receiver's certificate; required
    /// for gRPC over TLS, the platform's roots are used over HTTP without it.
    pub ca_file: Option<PathBuf>,
}

/// The validated section.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TelemetrySettings {
    pub log: LogSettings,
    /// `None`: nothing is exported.
    pub otlp: Option<OtlpSettings>,
}

/// Validated `telemetry.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A valid `EnvFilter` directive string.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Validated `telemetry.otlp`.
#[derive(Clone, PartialEq)]
pub struct OtlpSettings {
    /// Without a trailing slash.
    pub endpoint: String,
    pub protocol: Protocol,
    /// Lower-case names, values valid in a header.
    pub headers: Vec<(String, String)>,
    pub token: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub traces: bool,
    /// In `0.0..=1.0`.
    pub sample_ratio: f64,
    pub max_queued_spans: usize,
    /// PEM bytes of `tls.ca_file`.
    pub ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field(
                "headers",
                &self.headers.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("traces", &self.traces)
            .field("sample_ratio", &self.sample_ratio)
            .field("max_queued_spans", &self.max_queued_spans)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// One problem of the section: the field path below `telemetry.` and what
/// is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryProblem {
    /// Such as `otlp.endpoint` or `otlp.headers.x-scope-orgid`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for TelemetryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "telemetry.{}: {}", self.field, self.message)
    }
}

impl TelemetryConfig {
    /// Validates the section; relative paths are resolved against `base`.
    pub fn validate(&self, base: &Path) -> Result<TelemetrySettings, Vec<TelemetryProblem>> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(TelemetryProblem {
                field: field.to_string(),
                message,
            });
        };
        let level = self.log.level.clone().unwrap_or_else(|| "info".into());
        if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&level) {
            problem(
                "log.level",
                format!(
                    "{level:?} is not a log filter ({e}); write a level such as info or warn, optionally with per-module levels: warn,tocsin_collector=debug"
                ),
            );
        }
        let log = LogSettings {
            format: self.log.format.unwrap_or_default(),
            level,
        };
        let otlp = self
            .otlp
            .as_ref()
            .map(|o| validate_otlp(o, base, &mut problem));
        if problems.is_empty() {
            Ok(TelemetrySettings { log, otlp })
        } else {
            Err(problems)
        }
    }
}

fn validate_otlp(
    o: &OtlpConfig,
    base: &Path,
    problem: &mut impl FnMut(&str, String),
) -> OtlpSettings {
    let endpoint = o.endpoint.trim().trim_end_matches('/').to_string();
    let https = endpoint.starts_with("https://");
    if endpoint.is_empty() {
        problem(
            "otlp.endpoint",
            "missing; give the receiver's URL, such as http://otel-collector:4317".into(),
        );
    } else if !https && !endpoint.starts_with("http://") {
        problem(
            "otlp.endpoint",
            format!("{endpoint:?} must start with http:// or https://"),
        );
    } else if endpoint
        .split_once("://")
        .is_none_or(|(_, rest)| rest.is_empty() || rest.contains(char::is_whitespace))
    {
        problem(
            "otlp.endpoint",
            format!("{endpoint:?} has no host; write scheme://host:port"),
        );
    }
    if !cfg!(feature = "grpc") && o.protocol == Protocol::Grpc {
        problem(
            "otlp.protocol",
            "this build cannot export over gRPC; use protocol: http".into(),
        );
    }
    if !cfg!(feature = "http") && o.protocol == Protocol::Http {
        problem(
            "otlp.protocol",
            "this build cannot export over HTTP; use protocol: grpc".into(),
        );
    }
    let mut headers = Vec::new();
    for (given, value) in &o.headers {
        let field = format!("otlp.headers.{given}");
        let name = given.trim().to_ascii_lowercase();
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && !name.ends_with("-bin");
        if !valid_name {
            problem(
                &field,
                format!(
                    "{given:?} is not a header name: use letters, digits, '-', '_' and '.' (not ending in -bin)"
                ),
            );
        }
        if name == "authorization" && o.token_file.is_some() {
            problem(
                &field,
                "authorization is set by token_file already; keep one of them".into(),
            );
        }
        if value.is_empty() || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            problem(&field, "the value must be non-empty printable ASCII".into());
        }
        headers.push((name, value.clone()));
    }
    let read = |path: &Path| std::fs::read(resolve(base, path));
    let token = o.token_file.as_ref().and_then(|path| match read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) if valid_token(text.trim()) => Some(text.trim().to_string()),
            _ => {
                problem(
                    "otlp.token_file",
                    format!(
                        "{} must hold one token of printable ASCII without spaces",
                        resolve(base, path).display()
                    ),
                );
                None
            }
        },
        Err(e) => {
            problem(
                "otlp.token_file",
                format!("cannot read {}: {e}", resolve(base, path).display()),
            );
            None
        }
    });
    let ca_pem = o
        .tls
        .as_ref()
        .and_then(|t| t.ca_file.as_ref())
        .and_then(|path| match read(path) {
            Ok(pem) if pem.windows(11).any(|w| w == b"-----BEGIN ") => Some(pem),
            Ok(_) => {
                problem(
                    "otlp.tls.ca_file",
                    format!("{} holds no PEM certificate", resolve(base, path).display()),
                );
                None
            }
            Err(e) => {
                problem(
                    "otlp.tls.ca_file",
                    format!("cannot read {}: {e}", resolve(base, path).display()),
                );
                None
            }
        });
    if o.tls.is_some() && !https && !endpoint.is_empty() {
        problem("otlp.tls", "TLS settings need an https:// endpoint".into());
    }
    if https && o.protocol == Protocol::Grpc && ca_pem.is_none() {
        problem(
            "otlp.tls.ca_file",
            "gRPC over TLS needs the CA that signs the receiver's certificate (tls: {ca_file: …})"
                .into(),
        );
    }
    let mut duration = |field: &str, text: &Option<String>, default: Duration| match text {
        None => default,
        Some(t) => match parse_duration(t) {
            Some(d) if d >= MIN_INTERVAL => d,
            Some(_) => {
                problem(field, format!("{t:?} is shorter than the minimum, 1s"));
                default
            }
            None => {
                problem(
                    field,
                    format!(
                        "{t:?} is not a duration: write a whole number followed by ms, s, m or h, such as 30s"
                    ),
                );
                default
            }
        },
    };
    let interval = duration("otlp.interval", &o.interval, DEFAULT_INTERVAL);
    let timeout = duration("otlp.timeout", &o.timeout, DEFAULT_TIMEOUT);
    let sample_ratio = o.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        problem(
            "otlp.sample_ratio",
            format!("{sample_ratio} is out of range: give a fraction from 0 to 1, such as 0.1"),
        );
    }
    let max_queued_spans = o.max_queued_spans.unwrap_or(DEFAULT_MAX_QUEUED_SPANS);
    if !(1..=MAX_QUEUED_SPANS).contains(&max_queued_spans) {
        problem(
            "otlp.max_queued_spans",
            format!("{max_queued_spans} is out of range: give 1 to {MAX_QUEUED_SPANS}"),
        );
    }
    OtlpSettings {
        endpoint,
        protocol: o.protocol,
        headers,
        token,
        interval,
        timeout,
        traces: o.traces.unwrap_or(true),
        sample_ratio,
        max_queued_spans,
        ca_pem,
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic())
}

/// A whole number followed by `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn otlp(endpoint: &str) -> OtlpConfig {
        OtlpConfig {
            endpoint: endpoint.into(),
            ..OtlpConfig::default()
        }
    }

    fn problems(c: &TelemetryConfig) -> Vec<String> {
        match c.validate(Path::new("/etc/tocsin")) {
            Ok(_) => Vec::new(),
            Err(p) => p.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn defaults_log_text_at_info_and_export_nothing() {
        let s = TelemetryConfig::default().validate(Path::new(".")).unwrap();
        assert_eq!(s.log, LogSettings::default());
        assert!(s.otlp.is_none());
    }

    #[test]
    fn otlp_defaults() {
        let c = TelemetryConfig {
            otlp: Some(otlp("http://127.0.0.1:4317/")),
            ..TelemetryConfig::default()
        };
        let o = c.validate(Path::new(".")).unwrap().otlp.unwrap();
        assert_eq!(o.endpoint, "http://127.0.0.1:4317");
        assert_eq!(o.protocol, Protocol::Grpc);
        assert_eq!(o.interval, DEFAULT_INTERVAL);
        assert_eq!(o.timeout, DEFAULT_TIMEOUT);
        assert_eq!(o.max_queued_spans, DEFAULT_MAX_QUEUED_SPANS);
        assert!(o.traces);
        assert_eq!(o.sample_ratio, 1.0);
    }

    #[test]
    fn every_problem_is_reported() {
        let c = TelemetryConfig {
            log: LogConfig {
                format: None,
                level: Some("info,[".into()),
            },
            otlp: Some(OtlpConfig {
                endpoint: "ftp://x".into(),
                headers: BTreeMap::from([("bad name".to_string(), "v".to_string())]),
                token_file: Some("missing.token".into()),
                interval: Some("500ms".into()),
                timeout: Some("soon".into()),
                max_queued_spans: Some(0),
                sample_ratio: Some(1.5),
                ..OtlpConfig::default()
            }),
        };
        let p = problems(&c);
        for field in [
            "telemetry.log.level:",
            "telemetry.otlp.endpoint:",
            "telemetry.otlp.headers.bad name:",
            "telemetry.otlp.token_file: cannot read /etc/tocsin/missing.token",
            "telemetry.otlp.interval:",
            "telemetry.otlp.timeout:",
            "telemetry.otlp.max_queued_spans:",
            "telemetry.otlp.sample_ratio:",
        ] {
            assert!(p.iter().any(|m| m.starts_with(field)), "{field}: {p:#?}");
        }
        assert_eq!(p.len(), 8, "{p:#?}");
    }

    #[test]
    fn grpc_over_tls_needs_a_ca() {
        let c = TelemetryConfig {
            otlp: Some(otlp("https://otel:4317")),
            ..TelemetryConfig::default()
        };
        let p = problems(&c);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].starts_with("telemetry.otlp.tls.ca_file:"), "{p:#?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10"), None);
    }
}
