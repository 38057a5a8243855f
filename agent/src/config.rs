//! The agent's configuration file (`/etc/tocsin/agent.yaml`): what serde
//! reads ([`AgentConfig`]) and the validated value the agent runs with
//! ([`Config`]).
//!
//! Invariants: unknown keys are errors; every problem is reported at once
//! (a section that cannot be read, such as one with an unknown key, is
//! reported beside the validation problems of the sections that can), each
//! with the file, line and column of the value it is about (or of the
//! nearest enclosing key that exists) and its field path; a [`Config`]
//! cannot hold an invalid setting. Relative paths (the token file, TLS
//! files, `data_dir`) are resolved against the directory of the
//! configuration file.
//!
//! ```yaml
//! collector:
//!   endpoint: http://collector:4318
//!   protocol: http
//! resource:
//!   service.name: api
//!   tocsin.track: canary
//! metrics:
//!   interval: 10s
//! logs:
//!   - include: [/var/log/app/*.log]
//! data_dir: /var/lib/tocsin-agent
//! telemetry:
//!   log: { format: json }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Location;
use tocsin_telemetry::{TelemetryConfig, TelemetrySettings};
use tocsin_yaml::{Node, Segment};

use crate::export::config::{CollectorConfig, Export, SpoolConfig, validate as validate_export};
use crate::sources::host::{HostMetrics, HostMetricsConfig, HostMetricsConfigError};
use crate::sources::logtail::{ConfigProblem, LogInput, LogInputConfig, parse_duration};

/// Where the agent looks for its configuration without `--config`.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tocsin/agent.yaml";
/// Where the agent keeps its id, checkpoints and spool without `data_dir`.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/tocsin-agent";
/// Default metric interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Shortest metric interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// `service.name` when the configuration sets none.
pub const DEFAULT_SERVICE_NAME: &str = "tocsin-agent";

/// The whole file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Where and how to send: endpoint, protocol, TLS, token.
    pub collector: CollectorConfig,
    /// Resource attributes every metric and log record carries.
    #[serde(default)]
    pub resource: ResourceConfig,
    /// Host metrics.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Log inputs; none by default.
    #[serde(default)]
    pub logs: Vec<LogInputConfig>,
    /// Agent id, checkpoints and spool (default `/var/lib/tocsin-agent`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Bounds of the on-disk spool.
    #[serde(default)]
    pub spool: SpoolConfig,
    /// The agent's own log lines, and its metrics and traces over OTLP.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// `resource:`: OpenTelemetry resource attributes, by their names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// `host.name`; detected from the system when absent.
    #[serde(default, rename = "host.name")]
    pub host_name: Option<String>,
    /// `service.name` (default `tocsin-agent`); a log input may set its own.
    #[serde(default, rename = "service.name")]
    pub service_name: Option<String>,
    /// `deployment.environment.name`, such as `production`.
    #[serde(default, rename = "deployment.environment.name")]
    pub environment: Option<String>,
    /// `service.version`.
    #[serde(default, rename = "service.version")]
    pub service_version: Option<String>,
    /// `tocsin.track`: the deployment track, such as `canary` or `baseline`.
    #[serde(default, rename = "tocsin.track")]
    pub track: Option<String>,
}

/// `metrics:`: host metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Collect host metrics at all (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Time between collections (default `10s`, at least `1s`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Scrapers, device filters, processes and metric toggles.
    #[serde(default)]
    pub host: HostMetricsConfig,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            interval: None,
            host: HostMetricsConfig::default(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// Validated resource attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub host_name: String,
    pub service_name: String,
    pub environment: Option<String>,
    pub service_version: Option<String>,
    pub track: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (reloads read it again).
    pub path: PathBuf,
    pub export: Export,
    pub resource: Resource,
    /// `None` when host metrics are off.
    pub host_metrics: Option<HostMetrics>,
    pub interval: Duration,
    pub logs: Vec<LogInput>,
    pub data_dir: PathBuf,
    /// Read at start only: a reload keeps the running telemetry.
    pub telemetry: TelemetrySettings,
}

/// One problem in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem concerns the whole file.
    pub line: u64,
    pub column: u64,
    /// Field path such as `logs[0].include[1]`; empty for syntax errors.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} problem(s) in the configuration:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigError>),
}

impl LoadError {
    /// Every problem, one per line, for `check-config` and reload logs.
    pub fn problems(&self) -> Vec<String> {
        match self {
            LoadError::Read { .. } => vec![self.to_string()],
            LoadError::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text).map_err(LoadError::Invalid)
}

/// Validates `text`, the contents of the file `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<ConfigError>> {
    let error_at = |loc: Option<Location>, field: &str, message: String| {
        let (line, column) = loc.map_or((0, 0), |l| (l.line(), l.column()));
        ConfigError {
            file: path.to_path_buf(),
            line,
            column,
            field: field.to_string(),
            message,
        }
    };
    // The shape with positions first: it finds syntax errors and later
    // maps field paths to positions.
    let tree: Node = match serde_saphyr::from_str(text) {
        Ok(tree) => tree,
        Err(e) => return Err(vec![error_at(e.location(), "", tocsin_yaml::message(&e))]),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let config: AgentConfig = match serde_saphyr::from_str(text) {
        Ok(config) => config,
        Err(e) => {
            // serde stops at the first problem: read each section on its
            // own so that problems in different sections are all reported,
            // and validate the sections that did read.
            let with_field = |e: serde_saphyr::Error| {
                let field = e
                    .location()
                    .and_then(|l| tree.path_at(l))
                    .unwrap_or_default();
                error_at(e.location(), &field, tocsin_yaml::message(&e))
            };
            let (parts, section_errors) = Sections::read(text);
            let mut errors: Vec<ConfigError> = section_errors.into_iter().map(with_field).collect();
            errors.extend(tree.unknown_keys(&TOP_LEVEL_KEYS).map(|key| {
                error_at(
                    Some(key.referenced),
                    &key.value,
                    format!(
                        "unknown field `{}`, expected one of {}",
                        key.value,
                        TOP_LEVEL_KEYS.join(", ")
                    ),
                )
            }));
            if errors.is_empty() {
                errors.push(error_at(e.location(), "", tocsin_yaml::message(&e)));
            }
            errors.extend(
                parts
                    .validation_problems(base)
                    .into_iter()
                    .map(|p| error_at(Some(locate(&tree, &p.field)), &p.field, p.message)),
            );
            errors.sort_by_key(|e| (e.line, e.column));
            errors.dedup();
            return Err(errors);
        }
    };
    let mut problems = Vec::new();
    let validated = validate(&config, base, &mut problems);
    match validated {
        Some(mut config) if problems.is_empty() => {
            config.path = path.to_path_buf();
            Ok(config)
        }
        _ => {
            let mut errors: Vec<ConfigError> = problems
                .into_iter()
                .map(|p| error_at(Some(locate(&tree, &p.field)), &p.field, p.message))
                .collect();
            errors.sort_by_key(|e| (e.line, e.column));
            Err(errors)
        }
    }
}

/// The meaning: every problem goes to `problems`.
fn validate(
    config: &AgentConfig,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Config> {
    let export = validate_export(&config.collector, &config.spool, base, problems);
    let resource = validate_resource(&config.resource, problems);
    let interval = match &config.metrics.interval {
        None => DEFAULT_INTERVAL,
        Some(text) => match parse_duration(text) {
            Some(d) if d >= MIN_INTERVAL => d,
            Some(_) => {
                problems.push(ConfigProblem {
                    field: "metrics.interval".into(),
                    message: format!("{text:?} is shorter than the minimum, 1s"),
                });
                DEFAULT_INTERVAL
            }
            None => {
                problems.push(ConfigProblem {
                    field: "metrics.interval".into(),
                    message: format!(
                        "invalid duration {text:?}: write a whole number followed by ms, s, m or h, such as 10s"
                    ),
                });
                DEFAULT_INTERVAL
            }
        },
    };
    let host_metrics = match config.metrics.host.validate() {
        Ok(host) => Some(host),
        Err(errors) => {
            for e in errors {
                problems.push(host_problem(e));
            }
            None
        }
    };
    let logs = match crate::sources::logtail::validate_inputs("logs", &config.logs) {
        Ok(logs) => Some(logs),
        Err(e) => {
            problems.extend(e.0);
            None
        }
    };
    let data_dir = config
        .data_dir
        .as_ref()
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_DIR), |d| base.join(d));
    if config
        .data_dir
        .as_ref()
        .is_some_and(|d| d.as_os_str().is_empty())
    {
        problems.push(ConfigProblem {
            field: "data_dir".into(),
            message: "empty path; give a directory such as /var/lib/tocsin-agent".into(),
        });
    }
    let telemetry = match config.telemetry.validate(base) {
        Ok(t) => Some(t),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|e| ConfigProblem {
                field: format!("telemetry.{}", e.field),
                message: e.message,
            }));
            None
        }
    };
    Some(Config {
        path: PathBuf::new(),
        export: export?,
        resource: resource?,
        host_metrics: if config.metrics.enabled {
            Some(host_metrics?)
        } else {
            None
        },
        interval,
        logs: logs?,
        data_dir,
        telemetry: telemetry?,
    })
}

fn host_problem(e: HostMetricsConfigError) -> ConfigProblem {
    let field = match &e {
        HostMetricsConfigError::InvalidGlob { field, .. }
        | HostMetricsConfigError::Duplicate { field, .. }
        | HostMetricsConfigError::Empty { field }
        | HostMetricsConfigError::UnknownMetric { field, .. }
        | HostMetricsConfigError::OutOfRange { field, .. } => field.clone(),
    };
    let full = format!("metrics.host.{field}");
    // The error's text starts with its (relative) field; the full path is
    // printed in front instead.
    let text = e.to_string();
    let message = text
        .strip_prefix(&format!("{field}: "))
        .unwrap_or(&text)
        .to_string();
    ConfigProblem {
        field: full,
        message,
    }
}

fn validate_resource(r: &ResourceConfig, problems: &mut Vec<ConfigProblem>) -> Option<Resource> {
    let before = problems.len();
    let mut check = |field: &str, value: &Option<String>| {
        if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
            problems.push(ConfigProblem {
                field: format!("resource.{field}"),
                message: "empty value; remove the key or give a value".into(),
            });
        }
    };
    check("host.name", &r.host_name);
    check("service.name", &r.service_name);
    check("deployment.environment.name", &r.environment);
    check("service.version", &r.service_version);
    check("tocsin.track", &r.track);
    if problems.len() > before {
        return None;
    }
    Some(Resource {
        host_name: r.host_name.clone().unwrap_or_else(detect_host_name),
        service_name: r
            .service_name
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string()),
        environment: r.environment.clone(),
        service_version: r.service_version.clone(),
        track: r.track.clone(),
    })
}

/// The system's host name, or `localhost` (with a warning) when it cannot
/// be read.
pub fn detect_host_name() -> String {
    match sysinfo::System::host_name() {
        Ok(name) if !name.trim().is_empty() => name.trim().to_string(),
        Ok(_) => {
            tracing::warn!(
                "the system's host name is empty; using localhost; set resource.host.name"
            );
            "localhost".into()
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the host name; using localhost; set resource.host.name");
            "localhost".into()
        }
    }
}

/// The top-level keys of [`AgentConfig`].
const TOP_LEVEL_KEYS: [&str; 7] = [
    "collector",
    "resource",
    "metrics",
    "logs",
    "data_dir",
    "spool",
    "telemetry",
];

/// The top level with each section either read as its type or skipped.
#[derive(Deserialize)]
#[allow(dead_code, reason = "only the section read as its type is used")]
struct Sections<A, B, C, D, E, F, G> {
    collector: Option<A>,
    resource: Option<B>,
    metrics: Option<C>,
    logs: Option<D>,
    data_dir: Option<E>,
    spool: Option<F>,
    telemetry: Option<G>,
}

/// Each top-level section read on its own: `None` when it could not be
/// read (its serde problem is reported instead) or, for `collector`, when
/// it is absent.
struct Parts {
    collector: Option<CollectorConfig>,
    resource: Option<ResourceConfig>,
    metrics: Option<MetricsConfig>,
    logs: Option<Vec<LogInputConfig>>,
    data_dir: Option<Option<PathBuf>>,
    spool: Option<SpoolConfig>,
    telemetry: Option<TelemetryConfig>,
}

impl Sections<(), (), (), (), (), (), ()> {
    /// Reads every section on its own; the first serde problem of each
    /// section that could not be read.
    fn read(text: &str) -> (Parts, Vec<serde_saphyr::Error>) {
        use serde::de::IgnoredAny as I;
        fn section<S: serde::de::DeserializeOwned, T>(
            text: &str,
            pick: impl FnOnce(S) -> T,
            errors: &mut Vec<serde_saphyr::Error>,
        ) -> Option<T> {
            match serde_saphyr::from_str::<S>(text) {
                Ok(sections) => Some(pick(sections)),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        }
        let e = &mut Vec::new();
        let parts = Parts {
            collector: section(
                text,
                |s: Sections<CollectorConfig, I, I, I, I, I, I>| s.collector,
                e,
            )
            .flatten(),
            resource: section(
                text,
                |s: Sections<I, ResourceConfig, I, I, I, I, I>| s.resource.unwrap_or_default(),
                e,
            ),
            metrics: section(
                text,
                |s: Sections<I, I, MetricsConfig, I, I, I, I>| s.metrics.unwrap_or_default(),
                e,
            ),
            logs: section(
                text,
                |s: Sections<I, I, I, Vec<LogInputConfig>, I, I, I>| s.logs.unwrap_or_default(),
                e,
            ),
            data_dir: section(text, |s: Sections<I, I, I, I, PathBuf, I, I>| s.data_dir, e),
            spool: section(
                text,
                |s: Sections<I, I, I, I, I, SpoolConfig, I>| s.spool.unwrap_or_default(),
                e,
            ),
            telemetry: section(
                text,
                |s: Sections<I, I, I, I, I, I, TelemetryConfig>| s.telemetry.unwrap_or_default(),
                e,
            ),
        };
        let errors = std::mem::take(e);
        (parts, errors)
    }
}

impl Parts {
    /// The validation problems of the sections that could be read. The
    /// others stand in with their defaults, and problems about them are
    /// dropped: their reading problem is what is reported.
    fn validation_problems(self, base: &Path) -> Vec<ConfigProblem> {
        fn or_default<T: Default>(
            name: &'static str,
            part: Option<T>,
            unread: &mut Vec<&str>,
        ) -> T {
            part.unwrap_or_else(|| {
                unread.push(name);
                T::default()
            })
        }
        let mut unread: Vec<&str> = Vec::new();
        let resource = or_default("resource", self.resource, &mut unread);
        let metrics = or_default("metrics", self.metrics, &mut unread);
        let logs = or_default("logs", self.logs, &mut unread);
        let data_dir = or_default("data_dir", self.data_dir, &mut unread);
        let spool = or_default("spool", self.spool, &mut unread);
        let telemetry = or_default("telemetry", self.telemetry, &mut unread);
        let collector = self.collector.unwrap_or_else(|| {
            unread.push("collector");
            CollectorConfig {
                endpoint: String::new(),
                protocol: Default::default(),
                token: None,
                token_file: None,
                tls: None,
                gzip: true,
                timeout: None,
                memory_batches: None,
                max_in_flight: None,
                retry_initial: None,
                retry_max: None,
            }
        });
        let config = AgentConfig {
            collector,
            resource,
            metrics,
            logs,
            data_dir,
            spool,
            telemetry,
        };
        let mut problems = Vec::new();
        validate(&config, base, &mut problems);
        problems.retain(|p| {
            !unread.iter().any(|section| {
                p.field
                    .strip_prefix(section)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            })
        });
        problems
    }
}

/// Where the value at `field` (`logs[0].include[1]`) is, or the deepest
/// part of the path present in the file. Resource attribute names hold
/// dots, so `resource.` is followed by one key, the rest of the path.
fn locate(tree: &Node, field: &str) -> Location {
    match field.strip_prefix("resource.") {
        Some(name) => tree.locate_value(&[Segment::Key("resource"), Segment::Key(name)]),
        None => tree.locate_value(&tocsin_yaml::segments(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse(Path::new("/etc/tocsin/agent.yaml"), text) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let config = parse(
            Path::new("/etc/tocsin/agent.yaml"),
            "collector:\n  endpoint: http://127.0.0.1:4318\n  protocol: http\n",
        )
        .map_err(|e| format!("{e:?}"));
        let Ok(config) = config else {
            panic!("{config:?}");
        };
        assert_eq!(config.interval, DEFAULT_INTERVAL);
        assert_eq!(config.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(config.resource.service_name, DEFAULT_SERVICE_NAME);
        assert!(!config.resource.host_name.is_empty());
        assert!(config.host_metrics.is_some());
        assert!(config.logs.is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_its_position() {
        let text = "\
collector:
  endpoint: ftp://collector
resource:
  tocsin.track: ''
metrics:
  interval: 500ms
logs:
  - include: []
  - include: ['relative/*.log']
    multiline:
      start_pattern: '('
";
        let errors = errors(text);
        assert!(errors.len() >= 5, "{errors:#?}");
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(has("agent.yaml:2:13: collector.endpoint:"), "{errors:#?}");
        assert!(
            has("agent.yaml:4:17: resource.tocsin.track:"),
            "{errors:#?}"
        );
        assert!(has("agent.yaml:6:13: metrics.interval:"), "{errors:#?}");
        assert!(has(":8:14: logs[0].include:"), "{errors:#?}");
        assert!(
            has(":11:22: logs[1].multiline.start_pattern:"),
            "{errors:#?}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_a_position() {
        let errors = errors("collector:\n  endpoint: http://c:4317\n  endpont: x\n");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("agent.yaml:3:"), "{errors:#?}");
        assert!(errors[0].contains("endpont"), "{errors:#?}");
    }

    #[test]
    fn problems_of_reading_different_sections_are_all_reported() {
        let text = "\
collector:
  endpoint: http://c:4317
  protocol: carrier-pigeon
metrics:
  intervall: 10s
logs:
  - include: /var/log/*.log
spool:
  max_mib: lots
extra: 1
";
        let errors = errors(text);
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(has("agent.yaml:3:13: collector.protocol:"), "{errors:#?}");
        assert!(has("agent.yaml:5:3: metrics.intervall:"), "{errors:#?}");
        assert!(has("agent.yaml:7:14: logs[0].include:"), "{errors:#?}");
        assert!(has("agent.yaml:9:12: spool.max_mib:"), "{errors:#?}");
        assert!(
            has("agent.yaml:10:1: extra: unknown field `extra`"),
            "{errors:#?}"
        );
        assert_eq!(errors.len(), 5, "{errors:#?}");
    }

    #[test]
    fn reading_problems_do_not_hide_the_validation_problems_of_other_sections() {
        let text = "\
collector:
  endpoint: ftp://collector
resource:
  service.name: ''
metrics:
  interval: 10ms
logs:
  - include: ['relative/*.log']
    min_severity: loud
  - include: []
spool:
  colour: blue
";
        let errors = errors(text);
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(has("agent.yaml:2:13: collector.endpoint:"), "{errors:#?}");
        assert!(
            has("agent.yaml:4:17: resource.service.name:"),
            "{errors:#?}"
        );
        assert!(has("agent.yaml:6:13: metrics.interval:"), "{errors:#?}");
        assert!(has("agent.yaml:9:19: logs[0].min_severity:"), "{errors:#?}");
        assert!(has("agent.yaml:12:3: spool.colour:"), "{errors:#?}");
        // The logs section did not read: nothing is said about its other
        // inputs, and the stand-in defaults of unread sections add nothing.
        assert_eq!(errors.len(), 5, "{errors:#?}");
    }

    #[test]
    fn a_missing_collector_is_reported_with_the_other_problems() {
        let errors = errors("metrics:\n  interval: 10ms\n");
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(has("collector"), "{errors:#?}");
        assert!(has("agent.yaml:2:13: metrics.interval:"), "{errors:#?}");
        assert_eq!(errors.len(), 2, "{errors:#?}");
    }

    #[test]
    fn host_metrics_problems_carry_the_full_path() {
        let errors = errors(
            "collector:\n  endpoint: http://c:4317\nmetrics:\n  host:\n    metrics:\n      system.nope: {enabled: false}\n",
        );
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("metrics.host.metrics"), "{errors:#?}");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let Ok(config) = parse(
            Path::new("/etc/tocsin/agent.yaml"),
            "collector:\n  endpoint: http://c:4317\ndata_dir: state\n",
        ) else {
            panic!("config refused");
        };
        assert_eq!(config.data_dir, PathBuf::from("/etc/tocsin/state"));
    }
}
