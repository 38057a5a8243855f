//! collector.yaml: what serde reads ([`CollectorConfig`]) and its
//! validation into [`CollectorSettings`], a value that cannot hold an
//! invalid state.
//!
//! ```yaml
//! data_dir: /var/lib/tocsin        # series/, logs/ and ruler.sqlite live here
//! retention: 24h                   # series older than this leave the head
//! head_max_bytes: 4294967296       # the head's memory budget (oldest go first)
//! receivers: { otlp: { grpc: { listen: "0.0.0.0:4317" } } }
//! ruler: { rule_files: ["rules/*.yaml"] }
//! api: { listen: "127.0.0.1:9466" }
//! logs: { retention: 24h }
//! telemetry: { log: { format: json }, otlp: { endpoint: "http://otel:4317" } }
//! ```
//!
//! Every problem is reported at once with `file:line:col` and the field it
//! concerns: schema errors (unknown key, wrong type) one per top-level
//! section (serde stops at the first error of what it reads, so each
//! section is read alone too); validation problems of the sections all,
//! each positioned at the key it names (or the nearest key the file has,
//! when the field was left at its default).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tocsin_rules::validate::parse_duration;
use tocsin_telemetry::{TelemetryConfig, TelemetrySettings};
use tocsin_yaml::Node;

use crate::api::{ApiConfig, ApiSettings, ApiTokenConfig};
use crate::logs::{LogStoreOptions, LogsConfig};
use crate::patterns::MinerConfig;
use crate::receivers::config::{ListenerConfig, OtlpReceiversConfig, TlsConfig};
use crate::receivers::tls::TlsSettings;
use crate::receivers::{OtlpSettings, ReceiversConfig};
use crate::ruler::{RulerConfig, RulerSettings};
use crate::server::error_groups::NewGroupPolicy;

/// The series head's default memory budget: 4 GiB.
pub const DEFAULT_HEAD_MAX_BYTES: u64 = 4 << 30;
/// The smallest memory budget the head accepts: 64 MiB.
pub const MIN_HEAD_MAX_BYTES: u64 = 64 << 20;

/// Where the configuration is read from unless `--config` says otherwise.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/tocsin/collector.yaml";

/// collector.yaml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// The directory holding the series store (`series/`), the log store
    /// (`logs/`), the ruler's state, the error groups
    /// (`error_groups.sqlite`) and the agent inventory (`agents.sqlite`);
    /// relative to the configuration file's
    /// directory (default `/var/lib/tocsin`).
    pub data_dir: PathBuf,
    /// Series samples older than this leave the in-memory head (Prometheus
    /// duration, default `24h`, at least `1h`).
    pub retention: String,
    /// The series head's memory budget in bytes (chunks, label sets and
    /// per-series bookkeeping, estimated): past it, the oldest samples
    /// leave the head before `retention` says so, counted and logged
    /// (default 4 GiB, at least 64 MiB).
    pub head_max_bytes: u64,
    /// Samples up to this far behind a series' newest sample are still
    /// accepted (spooled agents catching up); older ones are refused and
    /// counted (Prometheus duration, default `1h`).
    pub out_of_order_window: String,
    /// The OTLP receivers.
    pub receivers: ReceiversConfig,
    /// Rule files and their evaluation.
    pub ruler: RulerConfig,
    /// The HTTP API, web page and `/metrics`.
    pub api: ApiSectionConfig,
    /// The log store.
    pub logs: LogsConfig,
    /// Error groups mined from log records from warn up.
    pub error_groups: ErrorGroupsConfig,
    /// The collector's own log lines, and its metrics and traces over OTLP.
    pub telemetry: TelemetryConfig,
}

/// `error_groups:`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorGroupsConfig {
    /// `tocsin_error_group_new` is 1 this long after a group first appears
    /// (Prometheus duration, default `1h`).
    pub new_for: String,
    /// Groups first seen this soon after start are not new (default `10m`).
    pub warm_up: String,
    /// Most groups kept; lines of further templates are counted in the
    /// overflow group (default 10000).
    pub max_groups: usize,
}

impl Default for ErrorGroupsConfig {
    fn default() -> Self {
        ErrorGroupsConfig {
            new_for: "1h".into(),
            warm_up: "10m".into(),
            max_groups: MinerConfig::default().max_groups,
        }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            data_dir: PathBuf::from("/var/lib/tocsin"),
            retention: "24h".into(),
            head_max_bytes: DEFAULT_HEAD_MAX_BYTES,
            out_of_order_window: "1h".into(),
            receivers: ReceiversConfig::default(),
            ruler: RulerConfig::default(),
            api: ApiSectionConfig::default(),
            logs: LogsConfig::default(),
            error_groups: ErrorGroupsConfig::default(),
            telemetry: TelemetryConfig::default(),
        }
    }
}

/// `api:`: the listener and the API's own settings ([`ApiConfig`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSectionConfig {
    /// `host:port` of the HTTP API (default `127.0.0.1:9466`). Without
    /// tokens it must be a loopback address.
    pub listen: String,
    /// Serve HTTPS with this certificate (`cert_file`, `key_file`, and
    /// `client_ca_file` to require client certificates).
    pub tls: Option<TlsConfig>,
    /// Bearer tokens with their roles (`read`, `ack`, `admin`), each with
    /// `token` or `token_file`.
    pub tokens: Vec<ApiTokenConfig>,
    /// Longest a query may run (default `2m`).
    pub query_timeout: String,
    /// Queries evaluated at once (default 20).
    pub max_concurrent_queries: usize,
    /// Most samples one query may hold in memory (default 50000000).
    pub max_samples: usize,
    /// How far back an instant selector looks for a sample (default `5m`).
    pub lookback_delta: String,
    /// Largest form body of a POST request (default 4 MiB).
    pub max_request_bytes: usize,
}

impl Default for ApiSectionConfig {
    fn default() -> Self {
        let a = ApiConfig::default();
        ApiSectionConfig {
            listen: "127.0.0.1:9466".into(),
            tls: None,
            tokens: a.tokens,
            query_timeout: a.query_timeout,
            max_concurrent_queries: a.max_concurrent_queries,
            max_samples: a.max_samples,
            lookback_delta: a.lookback_delta,
            max_request_bytes: a.max_request_bytes,
        }
    }
}

impl ApiSectionConfig {
    fn api_config(&self) -> ApiConfig {
        ApiConfig {
            tokens: self.tokens.clone(),
            query_timeout: self.query_timeout.clone(),
            max_concurrent_queries: self.max_concurrent_queries,
            max_samples: self.max_samples,
            lookback_delta: self.lookback_delta.clone(),
            max_request_bytes: self.max_request_bytes,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct CollectorSettings {
    /// The file it was read from.
    pub source: PathBuf,
    pub data_dir: PathBuf,
    pub retention_ms: i64,
    pub head_max_bytes: u64,
    pub out_of_order_window_ms: i64,
    pub receivers: OtlpSettings,
    pub ruler: RulerSettings,
    pub api_listen: SocketAddr,
    pub api_tls: Option<TlsSettings>,
    pub api: ApiSettings,
    pub logs: LogStoreOptions,
    pub error_groups: MinerConfig,
    pub new_groups: NewGroupPolicy,
    pub telemetry: TelemetrySettings,
}

impl CollectorSettings {
    pub fn series_dir(&self) -> PathBuf {
        self.data_dir.join("series")
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}

/// One problem of a configuration file, where it is and what it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    /// The field path (`api.tokens[0].role`); empty for YAML syntax errors.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a configuration could not be used: every problem found.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {message}", path.display())]
    Read { path: PathBuf, message: String },
    #[error("{}", join(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn join(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The individual problems (a read failure is one).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Read { .. } => vec![self.to_string()],
            ConfigError::Invalid(p) => p.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Reads and validates `path`.
pub fn load(path: &Path) -> Result<CollectorSettings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(path, &text)
}

/// Validates `text`, read from `path` (relative paths in it are taken from
/// `path`'s directory).
pub fn parse(path: &Path, text: &str) -> Result<CollectorSettings, ConfigError> {
    let problem = |line: u64, column: u64, field: String, message: String| ConfigProblem {
        file: path.to_path_buf(),
        line,
        column,
        field,
        message,
    };
    // An empty file is a configuration of defaults.
    let config: CollectorConfig = if text.trim().is_empty() {
        CollectorConfig::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let located = |field: &str, e: &serde_saphyr::Error| {
                let (line, column) = e
                    .location()
                    .map(|l| (l.line(), l.column()))
                    .unwrap_or((1, 1));
                problem(
                    line,
                    column,
                    field.to_string(),
                    tocsin_yaml::message_unescaped(e),
                )
            };
            // serde stops at the file's first schema error: one per
            // top-level section, each section read alone.
            let mut problems: Vec<ConfigProblem> =
                tocsin_yaml::errors_by_section::<CollectorConfig>(text)
                    .iter()
                    .map(|(field, e)| located(field, e))
                    .collect();
            if problems.is_empty() {
                problems.push(located("", &e));
            }
            problems.dedup();
            ConfigError::Invalid(problems)
        })?
    };
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tree: Option<Node> = serde_saphyr::from_str(text).ok();
    // At the key the field names, or the nearest one the file has.
    let locate = |field: &str| {
        tree.as_ref()
            .and_then(|t| t.locate_key(&tocsin_yaml::segments(field)))
            .map_or((1, 1), |l| (l.line(), l.column()))
    };
    match config.validate(base) {
        Ok(s) => Ok(CollectorSettings {
            source: path.to_path_buf(),
            ..s
        }),
        Err(errors) => {
            let mut problems: Vec<ConfigProblem> = errors
                .into_iter()
                .map(|(field, message)| {
                    let (line, column) = locate(&field);
                    problem(line, column, field, message)
                })
                .collect();
            // File order reads best; stable, so one key's problems keep
            // the order they were found in.
            problems.sort_by_key(|p| (p.line, p.column));
            Err(ConfigError::Invalid(problems))
        }
    }
}

impl CollectorConfig {
    /// Validates every section, relative paths against `base`; returns
    /// every problem as (field, message).
    pub fn validate(&self, base: &Path) -> Result<CollectorSettings, Vec<(String, String)>> {
        let mut errors: Vec<(String, String)> = Vec::new();
        let data_dir = if self.data_dir.is_absolute() {
            self.data_dir.clone()
        } else {
            base.join(&self.data_dir)
        };
        if self.data_dir.as_os_str().is_empty() {
            errors.push(("data_dir".into(), "must not be empty".into()));
        }
        let retention_ms = match parse_duration(&self.retention) {
            Ok(d) if d.as_secs() >= 3600 => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Ok(_) => {
                errors.push((
                    "retention".into(),
                    format!("{:?} is shorter than the minimum of 1h", self.retention),
                ));
                0
            }
            Err(e) => {
                errors.push((
                    "retention".into(),
                    format!("{:?} is not a duration ({e}; e.g. 24h, 7d)", self.retention),
                ));
                0
            }
        };
        if self.head_max_bytes < MIN_HEAD_MAX_BYTES {
            errors.push((
                "head_max_bytes".into(),
                format!(
                    "{} is below the minimum of {MIN_HEAD_MAX_BYTES} (64 MiB)",
                    self.head_max_bytes
                ),
            ));
        }
        let mut ms = |key: &str, v: &str| match parse_duration(v) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => {
                errors.push((
                    key.to_string(),
                    format!("{v:?} is not a duration ({e}; e.g. 10m, 1h)"),
                ));
                0
            }
        };
        let out_of_order_window_ms = ms("out_of_order_window", &self.out_of_order_window);
        let new_groups = NewGroupPolicy {
            new_for_ms: ms("error_groups.new_for", &self.error_groups.new_for),
            warm_up_ms: ms("error_groups.warm_up", &self.error_groups.warm_up),
        };
        if self.error_groups.max_groups == 0 {
            errors.push((
                "error_groups.max_groups".into(),
                "must be at least 1".into(),
            ));
        }
        let receivers = self
            .receivers
            .otlp
            .validate("receivers.otlp", base)
            .map_err(|es| {
                errors.extend(es.into_iter().map(|e| (e.field, e.message)));
            })
            .ok();
        let ruler = self
            .ruler
            .validate("ruler", base, &data_dir)
            .map_err(|es| errors.extend(es.into_iter().map(|e| (e.field, e.message))))
            .ok();
        let api = self
            .api
            .api_config()
            .validate("api", base)
            .map_err(|es| errors.extend(es.into_iter().map(|e| (e.field, e.message))))
            .ok();
        // The API's listener is validated as a receiver's is (address,
        // certificate files), with the field names of `api:`.
        let listener = OtlpReceiversConfig {
            grpc: None,
            http: Some(ListenerConfig {
                listen: self.api.listen.clone(),
                tls: self.api.tls.clone(),
            }),
            ..OtlpReceiversConfig::default()
        }
        .validate("api", base)
        .map_err(|es| {
            errors.extend(
                es.into_iter()
                    .map(|e| (e.field.replacen("api.http.", "api.", 1), e.message)),
            )
        })
        .ok()
        .and_then(|s| s.http);
        let api_listen = listener.as_ref().map(|l| l.addr);
        let api_tls = listener.and_then(|l| l.tls);
        if let (Some(api), Some(addr)) = (&api, api_listen)
            && let Err(e) = api.auth.check_bind(addr)
        {
            errors.push(("api.listen".into(), e));
        }
        let logs = self
            .logs
            .validate()
            .map_err(|es| {
                errors.extend(
                    es.into_iter()
                        .map(|e| (format!("logs.{}", e.field), e.message)),
                )
            })
            .ok();
        let telemetry = self
            .telemetry
            .validate(base)
            .map_err(|es| {
                errors.extend(
                    es.into_iter()
                        .map(|e| (format!("telemetry.{}", e.field), e.message)),
                )
            })
            .ok();
        match (receivers, ruler, api, api_listen, logs, telemetry) {
            (
                Some(receivers),
                Some(ruler),
                Some(api),
                Some(api_listen),
                Some(logs),
                Some(telemetry),
            ) if errors.is_empty() => Ok(CollectorSettings {
                source: PathBuf::new(),
                data_dir,
                retention_ms,
                head_max_bytes: self.head_max_bytes,
                out_of_order_window_ms,
                receivers,
                ruler,
                api_listen,
                api_tls,
                api,
                logs,
                error_groups: MinerConfig {
                    max_groups: self.error_groups.max_groups,
                    ..MinerConfig::default()
                },
                new_groups,
                telemetry,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.yaml");
        match parse(&path, text) {
            Ok(_) => Vec::new(),
            Err(e) => e
                .problems()
                .into_iter()
                .map(|p| p.replace(&path.display().to_string(), "F"))
                .collect(),
        }
    }

    #[test]
    fn empty_file_is_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let s = parse(&dir.path().join("c.yaml"), "").unwrap();
        assert_eq!(s.api_listen, "127.0.0.1:9466".parse().unwrap());
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/tocsin"));
        assert_eq!(s.retention_ms, 24 * 3600 * 1000);
    }

    #[test]
    fn unknown_key_is_named_with_its_position() {
        let p = problems("data_dir: /tmp/x\napi:\n  listne: 127.0.0.1:1\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("F:3:3: "), "{p:?}");
        assert!(p[0].contains("listne"), "{p:?}");
    }

    #[test]
    fn schema_errors_of_every_section_are_reported() {
        let p = problems(concat!(
            "# collector\n",
            "api:\n",
            "  listne: 127.0.0.1:1\n",
            "logs:\n",
            "  max_bytes: lots\n",
            "ruler:\n",
            "  rule_files: [a.yaml]\n",
            "retention: 24h\n",
            "bogus: 1\n",
        ));
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            p[0].starts_with("F:3:3: api: ") && p[0].contains("listne"),
            "{p:?}"
        );
        assert!(p[1].starts_with("F:5:14: logs: "), "{p:?}");
        assert!(
            p[2].starts_with("F:9:1: bogus: ") && p[2].contains("unknown field"),
            "{p:?}"
        );
    }

    #[test]
    fn every_validation_problem_is_reported_at_its_key() {
        let p = problems(concat!(
            "retention: 5m\n",
            "api:\n",
            "  listen: nowhere\n",
            "  query_timeout: soon\n",
            "logs:\n",
            "  retention: forever\n",
            "ruler:\n",
            "  evaluation_interval: 0s\n",
            "head_max_bytes: 1000\n",
        ));
        let has = |prefix: &str| p.iter().any(|x| x.starts_with(prefix));
        assert!(has("F:9:1: head_max_bytes: 1000 is below"), "{p:?}");
        assert!(has("F:1:1: retention: "), "{p:?}");
        assert!(has("F:4:3: api.query_timeout: "), "{p:?}");
        assert!(has("F:3:3: api.listen: "), "{p:?}");
        assert!(has("F:6:3: logs.retention: "), "{p:?}");
        assert!(has("F:8:3: ruler.evaluation_interval: "), "{p:?}");
        assert_eq!(p.len(), 6, "{p:?}");
    }

    #[test]
    fn an_open_api_must_listen_on_loopback() {
        let p = problems("api:\n  listen: 0.0.0.0:9466\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("F:2:3: api.listen: "), "{p:?}");
        assert!(p[0].contains("loopback"), "{p:?}");
    }

    #[test]
    fn api_tls_files_are_checked_under_api() {
        let p = problems(
            "api:\n  listen: 127.0.0.1:9466\n  tls:\n    cert_file: missing.pem\n    key_file: missing.key\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].starts_with("F:4:5: api.tls.cert_file: "), "{p:?}");
        assert!(p[1].starts_with("F:5:5: api.tls.key_file: "), "{p:?}");
    }

    #[test]
    fn list_items_are_located() {
        let p = problems(
            "api:\n  tokens:\n    - {name: a, role: read, token: x}\n    - {name: b, role: boss, token: y}\n",
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("F:4:"), "{p:?}");
        assert!(p[0].contains("api.tokens[1].role"), "{p:?}");
    }
}
