//! Configuration of a log input: `LogInputConfig` is what serde reads from
//! the agent's YAML (unknown keys refused), `LogInput` the validated value
//! with globs and regexes compiled. Validation collects every problem of
//! every input before failing, each one naming its field path
//! (`logs[2].multiline.start_pattern`) so the caller can point at the
//! line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Deserializer};

use super::redact::Redactor;
use super::severity::SeverityWord;

/// Smallest `max_line_bytes` accepted: below this even a timestamp and a
/// level would not fit.
pub const MIN_LINE_BYTES: usize = 256;
/// Largest `max_line_bytes` accepted; also bounds a multiline record.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;
/// Default `max_line_bytes`: long enough for JSON log lines with a stack
/// trace inlined, short enough that one line cannot hog a batch.
pub const DEFAULT_LINE_BYTES: usize = 64 * 1024;

/// Where to start in a file that is already present when the agent starts
/// for the first time (no checkpoint file yet). Files that appear later are
/// always read from their beginning, so a rotation loses nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// Skip what is already there: ship only lines written from now on.
    #[default]
    End,
    /// Ship the whole file.
    Beginning,
}

/// Lowest severity an input ships. Records below it are read, counted and
/// checkpointed past, but not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MinSeverity {
    /// Ship every record, including those whose severity is unknown.
    All,
    Trace,
    Debug,
    Info,
    /// Default: the agent is for error logs.
    #[default]
    Warn,
    Error,
    Fatal,
}

impl MinSeverity {
    /// Does a record with this OTLP severity number pass? Unknown severity
    /// (0) passes only `all`.
    pub fn admits(self, number: u8) -> bool {
        let floor = match self {
            MinSeverity::All => return true,
            MinSeverity::Trace => SeverityWord::Trace,
            MinSeverity::Debug => SeverityWord::Debug,
            MinSeverity::Info => SeverityWord::Info,
            MinSeverity::Warn => SeverityWord::Warn,
            MinSeverity::Error => SeverityWord::Error,
            MinSeverity::Fatal => SeverityWord::Fatal,
        };
        number >= floor.lowest_number()
    }
}

/// A duration written as `500ms`, `2s`, `5m` or `1h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(ConfigDuration)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid duration {text:?}: write a whole number followed by ms, s, m or h, such as 2s")))
    }
}

/// Parses `<digits><unit>` with unit `ms`, `s`, `m` or `h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }?;
    Some(Duration::from_millis(millis))
}

/// Multiline records: a line matching `start_pattern` begins a record; the
/// lines after it that do not match (or that match `continue_pattern`) are
/// appended to it.
///
/// Java: `start_pattern: '^\S'`, `continue_pattern: '^(\s|Caused by:)'`.
/// Python: `start_pattern: '^\S'`,
/// `continue_pattern: '^(\s|Traceback |\w[\w.]*(Error|Exception|Exit|Interrupt)\b)'`.
/// Timestamped logs: `start_pattern: '^\d{4}-\d{2}-\d{2}'` covers both.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultilineConfig {
    /// Regex a record's first line matches.
    pub start_pattern: String,
    /// Regex of lines that always continue the current record, even when
    /// they also match `start_pattern`.
    #[serde(default)]
    pub continue_pattern: Option<String>,
    /// A record with no new line for this long is shipped (default 2s).
    #[serde(default)]
    pub flush_timeout: Option<ConfigDuration>,
    /// Lines past this many are dropped from the record, which is marked
    /// truncated (default 500).
    #[serde(default)]
    pub max_lines: Option<usize>,
}

/// Redaction of credentials before a record leaves the host.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionConfig {
    /// Built-in rules (passwords, tokens, URL credentials, bearer tokens,
    /// AWS keys) plus `patterns`; on by default.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Extra regexes; every match is replaced by `***`. A regex with
    /// capture groups masks only the first group.
    #[serde(default)]
    pub patterns: Vec<String>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            enabled: true,
            patterns: Vec::new(),
        }
    }
}

fn default_true() -> bool {
    true
}

/// One log input as written in the agent's configuration (`logs:` list).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogInputConfig {
    /// A name for messages and self metrics; defaults to `logs[N]`.
    #[serde(default)]
    pub name: Option<String>,
    /// Absolute glob patterns of files to tail (`/var/log/app/*.log`).
    /// Rotated names (`app.log.1`) may be included: a renamed file keeps its
    /// identity and a copy is recognised by its content.
    pub include: Vec<String>,
    /// Globs of files never to tail, matched against the full path.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in files present at the agent's first start.
    #[serde(default)]
    pub read_from: ReadFrom,
    #[serde(default)]
    pub multiline: Option<MultilineConfig>,
    /// Lowest severity shipped: trace, debug, info, warn (default), error,
    /// fatal, or all (including lines of unknown severity).
    #[serde(default)]
    pub min_severity: MinSeverity,
    /// Longer lines are cut to this many bytes and marked truncated; the
    /// rest of the line is skipped (default 64 KiB).
    #[serde(default)]
    pub max_line_bytes: Option<usize>,
    #[serde(default)]
    pub redaction: RedactionConfig,
    /// Attributes added to every record of this input, `service.name`
    /// among them for hosts that run several services.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// One problem found in a log input's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Field path, such as `logs[0].include[1]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every problem of a list of log inputs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{} problem(s) in log inputs: {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct LogConfigError(pub Vec<ConfigProblem>);

/// Validated multiline settings.
#[derive(Debug, Clone)]
pub struct Multiline {
    pub start: Regex,
    pub continuation: Option<Regex>,
    pub flush_timeout: Duration,
    pub max_lines: usize,
}

/// A validated log input: cannot hold an invalid glob or regex.
#[derive(Debug, Clone)]
pub struct LogInput {
    pub name: String,
    pub include: Vec<String>,
    pub exclude: Vec<glob::Pattern>,
    pub read_from: ReadFrom,
    pub multiline: Option<Multiline>,
    pub min_severity: MinSeverity,
    pub max_line_bytes: usize,
    pub redactor: Option<Redactor>,
    pub attributes: BTreeMap<String, String>,
}

impl LogInput {
    /// `service.name` of this input's records, when the input sets one.
    pub fn service_name(&self) -> Option<&str> {
        self.attributes.get("service.name").map(String::as_str)
    }

    /// Is `path` excluded by this input?
    pub fn excludes(&self, path: &std::path::Path) -> bool {
        self.exclude.iter().any(|p| p.matches_path(path))
    }
}

/// Validates every input, collecting all problems. `field` is the path of
/// the list in the configuration (usually `logs`).
pub fn validate_inputs(
    field: &str,
    configs: &[LogInputConfig],
) -> Result<Vec<LogInput>, LogConfigError> {
    let mut problems = Vec::new();
    let mut inputs = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, config) in configs.iter().enumerate() {
        let prefix = format!("{field}[{i}]");
        if let Some(input) = config.validate(&prefix, &mut problems) {
            if let Some(first) = names.insert(input.name.clone(), i) {
                problems.push(ConfigProblem {
                    field: format!("{prefix}.name"),
                    message: format!(
                        "name {:?} is already used by {field}[{first}]; names must be unique",
                        input.name
                    ),
                });
            }
            inputs.push(input);
        }
    }
    if problems.is_empty() {
        Ok(inputs)
    } else {
        Err(LogConfigError(problems))
    }
}

impl LogInputConfig {
    /// Validates this input, appending every problem to `problems`; returns
    /// the input only when it had none.
    pub fn validate(&self, prefix: &str, problems: &mut Vec<ConfigProblem>) -> Option<LogInput> {
        let before = problems.len();
        let mut problem =
            |field: String, message: String| problems.push(ConfigProblem { field, message });
        if self.include.is_empty() {
            problem(
                format!("{prefix}.include"),
                "at least one glob is required, such as /var/log/app/*.log".into(),
            );
        }
        for (i, pattern) in self.include.iter().enumerate() {
            let field = format!("{prefix}.include[{i}]");
            if !pattern.starts_with('/') {
                problem(
                    field.clone(),
                    format!(
                        "{pattern:?} is not absolute; write the full path, such as /var/log/app/*.log"
                    ),
                );
            }
            if let Err(e) = glob::Pattern::new(pattern) {
                problem(field, format!("invalid glob {pattern:?}: {e}"));
            }
        }
        let mut exclude = Vec::new();
        for (i, pattern) in self.exclude.iter().enumerate() {
            match glob::Pattern::new(pattern) {
                Ok(p) => exclude.push(p),
                Err(e) => problem(
                    format!("{prefix}.exclude[{i}]"),
                    format!("invalid glob {pattern:?}: {e}"),
                ),
            }
        }
        let max_line_bytes = self.max_line_bytes.unwrap_or(DEFAULT_LINE_BYTES);
        if !(MIN_LINE_BYTES..=MAX_LINE_BYTES).contains(&max_line_bytes) {
            problem(
                format!("{prefix}.max_line_bytes"),
                format!(
                    "{max_line_bytes} is out of range: use {MIN_LINE_BYTES} to {MAX_LINE_BYTES}"
                ),
            );
        }
        let mut multiline = None;
        if let Some(m) = &self.multiline {
            let start = compile(
                &m.start_pattern,
                format!("{prefix}.multiline.start_pattern"),
                &mut problem,
            );
            let continuation = match &m.continue_pattern {
                Some(p) => compile(
                    p,
                    format!("{prefix}.multiline.continue_pattern"),
                    &mut problem,
                )
                .map(Some),
                None => Some(None),
            };
            let flush_timeout = m.flush_timeout.map_or(Duration::from_secs(2), |d| d.0);
            if flush_timeout.is_zero() || flush_timeout > Duration::from_secs(3600) {
                problem(
                    format!("{prefix}.multiline.flush_timeout"),
                    "must be between 1ms and 1h".into(),
                );
            }
            let max_lines = m.max_lines.unwrap_or(500);
            if !(1..=100_000).contains(&max_lines) {
                problem(
                    format!("{prefix}.multiline.max_lines"),
                    format!("{max_lines} is out of range: use 1 to 100000"),
                );
            }
            if let (Some(start), Some(continuation)) = (start, continuation) {
                multiline = Some(Multiline {
                    start,
                    continuation,
                    flush_timeout,
                    max_lines,
                });
            }
        }
        let mut redactor = None;
        if self.redaction.enabled {
            let mut extra = Vec::new();
            for (i, p) in self.redaction.patterns.iter().enumerate() {
                if let Some(re) =
                    compile(p, format!("{prefix}.redaction.patterns[{i}]"), &mut problem)
                {
                    extra.push(re);
                }
            }
            redactor = Some(Redactor::new(extra));
        }
        for key in self.attributes.keys() {
            if key.trim().is_empty() {
                problem(
                    format!("{prefix}.attributes"),
                    "attribute names must not be empty".into(),
                );
            }
        }
        if problems.len() > before {
            return None;
        }
        Some(LogInput {
            name: self.name.clone().unwrap_or_else(|| prefix.to_string()),
            include: self.include.clone(),
            exclude,
            read_from: self.read_from,
            multiline,
            min_severity: self.min_severity,
            max_line_bytes,
            redactor,
            attributes: self.attributes.clone(),
        })
    }
}

fn compile(
    pattern: &str,
    field: String,
    problem: &mut impl FnMut(String, String),
) -> Option<Regex> {
    match regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
    {
        Ok(re) => Some(re),
        Err(e) => {
            problem(field, format!("invalid regex {pattern:?}: {e}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Vec<LogInputConfig>, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_error_logs_from_the_end_with_redaction() {
        let configs = parse("- include: [/var/log/app/*.log]\n").unwrap();
        let inputs = validate_inputs("logs", &configs).unwrap();
        let input = &inputs[0];
        assert_eq!(input.name, "logs[0]");
        assert_eq!(input.read_from, ReadFrom::End);
        assert_eq!(input.min_severity, MinSeverity::Warn);
        assert_eq!(input.max_line_bytes, DEFAULT_LINE_BYTES);
        assert!(input.redactor.is_some());
        assert!(input.multiline.is_none());
    }

    #[test]
    fn full_input_parses() {
        let yaml = r#"
- name: api
  include: [/var/log/api/*.log, /var/log/api/*.log.1]
  exclude: ["*.gz"]
  read_from: beginning
  min_severity: all
  max_line_bytes: 4096
  multiline: {start_pattern: '^\S', continue_pattern: '^(\s|Caused by:)', flush_timeout: 500ms, max_lines: 50}
  redaction: {enabled: true, patterns: ['card=(\d+)']}
  attributes: {service.name: api, team: payments}
"#;
        let inputs = validate_inputs("logs", &parse(yaml).unwrap()).unwrap();
        let input = &inputs[0];
        assert_eq!(input.service_name(), Some("api"));
        assert_eq!(input.read_from, ReadFrom::Beginning);
        assert_eq!(input.min_severity, MinSeverity::All);
        let m = input.multiline.as_ref().unwrap();
        assert_eq!(m.flush_timeout, Duration::from_millis(500));
        assert_eq!(m.max_lines, 50);
        assert!(input.excludes(std::path::Path::new("/var/log/api/x.gz")));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse("- include: [/a]\n  follow: true\n").unwrap_err();
        assert!(err.contains("follow"), "{err}");
    }

    #[test]
    fn validation_reports_every_problem() {
        let yaml = r#"
- name: a
  include: [relative/*.log, "/ok/[.log"]
  exclude: ["[bad"]
  max_line_bytes: 10
  multiline: {start_pattern: '(', continue_pattern: ')'}
  redaction: {patterns: ['[']}
- name: a
  include: []
"#;
        let err = validate_inputs("logs", &parse(yaml).unwrap()).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "logs[0].include[0]",
                "logs[0].include[1]",
                "logs[0].exclude[0]",
                "logs[0].max_line_bytes",
                "logs[0].multiline.start_pattern",
                "logs[0].multiline.continue_pattern",
                "logs[0].redaction.patterns[0]",
                "logs[1].include",
            ],
            "{err}"
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let yaml = "- {name: a, include: [/x]}\n- {name: a, include: [/y]}\n";
        let err = validate_inputs("logs", &parse(yaml).unwrap()).unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].field, "logs[1].name");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("10"), None);
    }

    #[test]
    fn min_severity_admits() {
        assert!(MinSeverity::All.admits(0));
        assert!(!MinSeverity::Trace.admits(0));
        assert!(MinSeverity::Warn.admits(13));
        assert!(!MinSeverity::Warn.admits(12));
        assert!(MinSeverity::Fatal.admits(24));
        assert!(!MinSeverity::Fatal.admits(20));
    }
}
