//! The rule-file model: Prometheus rule files (`groups[].rules[]`) plus
//! Tocsin's top-level `log_metrics` list.
//!
//! `*Config` types are what serde reads (with source positions); the types
//! without the suffix are validated values: a [`RuleFile`] always holds
//! parsed expressions, valid names, valid durations and templates that
//! parse. [`load_file`] and [`load_str`] turn text into a [`RuleFile`] or
//! report every problem at once, each as `file:line:column: message`
//! ([`RuleFileErrors`]); the checks themselves live in [`crate::validate`].
//!
//! The `*Config` types deliberately do not use `deny_unknown_fields`: serde
//! would stop at the first unknown key, and `--ignore-unknown-fields` must be
//! able to switch the check off at run time. Unknown keys are found by a
//! separate pass over the YAML tree that reports all of them, with
//! positions, against the field lists of these same types.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use promql_parser::parser::Expr;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::promql::Labels;

/// A position in a source file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A validated rule file.
#[derive(Debug, Clone)]
pub struct RuleFile {
    /// The path or name the file was loaded from (used in messages).
    pub source: String,
    pub groups: Vec<RuleGroup>,
    pub log_metrics: Vec<LogMetric>,
}

/// A validated rule group.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub name: String,
    /// `interval:`; `None` means the global evaluation interval.
    pub interval: Option<Duration>,
    /// `limit:`; 0 means no limit.
    pub limit: usize,
    /// `query_offset:`; `None` means the global default.
    pub query_offset: Option<Duration>,
    /// Group-level `labels:`, added to every rule's result (rule labels win).
    pub labels: Vec<(String, String)>,
    pub rules: Vec<Rule>,
    pub pos: Pos,
}

/// Whether a rule records a series or raises an alert, with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleKind {
    Alert(String),
    Record(String),
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    /// The expression as written.
    pub expr_text: String,
    pub expr: Expr,
    /// `for:` (zero when absent). Alerts only.
    pub for_: Duration,
    /// `keep_firing_for:` (zero when absent). Alerts only.
    pub keep_firing_for: Duration,
    /// `labels:` in file order; values may hold templates (alerts).
    pub labels: Vec<(String, String)>,
    /// `annotations:` in file order; values hold templates.
    pub annotations: Vec<(String, String)>,
    pub pos: Pos,
}

impl Rule {
    pub fn name(&self) -> &str {
        match &self.kind {
            RuleKind::Alert(n) | RuleKind::Record(n) => n,
        }
    }
}

/// A validated `log_metrics` entry (DESIGN.md, "Logs become series").
#[derive(Debug, Clone)]
pub struct LogMetric {
    pub name: String,
    /// The PromQL series selector over the record's labels, parsed.
    pub selector: Expr,
    pub selector_text: String,
    /// Lowest severity counted (`trace` … `fatal`); `None` counts all.
    pub min_severity: Option<String>,
    /// Regex over the record body; its named groups become labels.
    pub pattern: Option<String>,
    /// `pattern`, compiled (unanchored: it matches anywhere in the body).
    pub pattern_regex: Option<regex::Regex>,
    /// Static labels added to the series.
    pub labels: Labels,
    pub pos: Pos,
}

impl Pos {
    /// The position a serde-saphyr value was read from.
    pub fn of<T>(spanned: &Spanned<T>) -> Pos {
        Pos::from_location(&spanned.referenced)
    }

    pub(crate) fn from_location(loc: &serde_saphyr::Location) -> Pos {
        Pos {
            line: usize::try_from(loc.line()).unwrap_or(usize::MAX),
            column: usize::try_from(loc.column()).unwrap_or(usize::MAX),
        }
    }

    /// Whether the position is known (line 0 means "the whole file", e.g.
    /// for an I/O error).
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How strictly [`load_file`] and [`load_str`] read a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Tolerate keys the schema does not know (promtool's
    /// `--ignore-unknown-fields`), e.g. ownership metadata added by other
    /// tools. Off by default: an unknown key is usually a typo.
    pub ignore_unknown_fields: bool,
}

/// One problem found in a rule file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFileError {
    /// The file (or source name) the problem is in.
    pub file: String,
    /// Where in the file; line 0 when the problem concerns the whole file.
    pub pos: Pos,
    /// What is wrong and, where it helps, what would be valid.
    pub message: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.is_known() {
            write!(f, "{}:{}: {}", self.file, self.pos, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// Every problem found in a rule file, in file order; displays one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleFileErrors {
    pub errors: Vec<RuleFileError>,
}

impl fmt::Display for RuleFileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Reads and validates the rule file at `path`; messages name the path as
/// given.
pub fn load_file(path: &Path, opts: LoadOptions) -> Result<RuleFile, RuleFileErrors> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(&source, &text, opts),
        Err(e) => Err(RuleFileErrors {
            errors: vec![RuleFileError {
                file: source,
                pos: Pos::default(),
                message: format!("cannot read rule file: {e}"),
            }],
        }),
    }
}

/// Parses and validates rule-file `text`; `source` names it in messages.
pub fn load_str(source: &str, text: &str, opts: LoadOptions) -> Result<RuleFile, RuleFileErrors> {
    crate::validate::load(source, text, opts)
}

// Every field of the `*Config` types is optional and every scalar is read
// as text: a missing or malformed value is then reported by validation,
// with its position and together with every other problem, instead of
// ending the serde read at the first one.

/// The top level of a rule file, as read.
#[derive(Debug, Default, Deserialize)]
pub struct RuleFileConfig {
    /// The rule groups; each is evaluated on its own schedule.
    #[serde(default)]
    pub groups: Option<Vec<Spanned<RuleGroupConfig>>>,
    /// Tocsin's extension: counters derived from log records, usable in any
    /// expression (DESIGN.md, "Logs become series").
    #[serde(default)]
    pub log_metrics: Option<Vec<Spanned<LogMetricConfig>>>,
}

/// One `groups[]` entry, as read.
#[derive(Debug, Deserialize)]
pub struct RuleGroupConfig {
    /// Required, unique within the file.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// How often the group's rules are evaluated, as a Prometheus duration
    /// (`30s`, `1m`); absent or `0` means the global evaluation interval.
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    /// At most this many series per alerting rule (alerts) or recording
    /// rule (samples), else the evaluation fails; 0 or negative means no
    /// limit, as in Prometheus.
    #[serde(default)]
    pub limit: Option<Spanned<i64>>,
    /// How far behind the evaluation time the rules query, as a Prometheus
    /// duration; absent means the global default.
    #[serde(default)]
    pub query_offset: Option<Spanned<String>>,
    /// Labels added to every rule's result; a rule's own labels win.
    #[serde(default)]
    pub labels: Option<Spanned<LabelMapConfig>>,
    /// The rules, evaluated in order.
    #[serde(default)]
    pub rules: Option<Vec<Spanned<RuleConfig>>>,
}

/// One `rules[]` entry, as read: exactly one of `record` and `alert`.
#[derive(Debug, Deserialize)]
pub struct RuleConfig {
    /// The name of the series a recording rule writes (a metric name,
    /// without braces).
    #[serde(default)]
    pub record: Option<Spanned<String>>,
    /// The name of the alert (its `alertname` label).
    #[serde(default)]
    pub alert: Option<Spanned<String>>,
    /// The PromQL expression; required.
    #[serde(default)]
    pub expr: Option<Spanned<String>>,
    /// Alerts only: how long the expression must hold before the alert
    /// fires (pending until then), as a Prometheus duration.
    #[serde(default, rename = "for")]
    pub for_: Option<Spanned<String>>,
    /// Alerts only: how long a firing alert keeps firing after the
    /// expression stops returning it, as a Prometheus duration.
    #[serde(default)]
    pub keep_firing_for: Option<Spanned<String>>,
    /// Labels added to the result (alerts: templates over `$labels` and
    /// `$value`); `__name__` cannot be set.
    #[serde(default)]
    pub labels: Option<Spanned<LabelMapConfig>>,
    /// Alerts only: templated texts (summary, description, runbook…).
    #[serde(default)]
    pub annotations: Option<Spanned<LabelMapConfig>>,
}

/// One `log_metrics[]` entry, as read.
#[derive(Debug, Deserialize)]
pub struct LogMetricConfig {
    /// The counter's metric name (e.g. `api_timeouts_total`); required,
    /// unique within the file, and not also a recording rule's name.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// A PromQL series selector over the record's labels, without a metric
    /// name (e.g. `{service_name="api"}`); required.
    #[serde(default)]
    pub selector: Option<Spanned<String>>,
    /// The lowest severity counted: trace, debug, info, warn, error or
    /// fatal; absent counts every record.
    #[serde(default)]
    pub min_severity: Option<Spanned<String>>,
    /// A regular expression the record's body must match (anywhere); its
    /// named groups become labels. Absent counts every selected record.
    #[serde(default)]
    pub pattern: Option<Spanned<String>>,
    /// Static labels added to the series (not `severity`, which is the
    /// record's).
    #[serde(default)]
    pub labels: Option<Spanned<LabelMapConfig>>,
}

/// A string-to-string mapping (`labels:`, `annotations:`) in file order,
/// with the position of every key and value. Scalars of any type are read
/// as their text, as Prometheus does (`priority: 1` is the label value "1";
/// a null value is "").
#[derive(Debug, Default)]
pub struct LabelMapConfig(pub Vec<(Spanned<String>, Spanned<String>)>);

impl<'de> Deserialize<'de> for LabelMapConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> serde::de::Visitor<'de> for MapVisitor {
            type Value = LabelMapConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of names to string values")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<LabelMapConfig, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    // A null value (`team:`) is the empty string, as Go's
                    // YAML decoder reads it into a string.
                    let value = map.next_value::<Spanned<Option<String>>>()?;
                    let value = Spanned {
                        value: value.value.unwrap_or_default(),
                        referenced: value.referenced,
                        defined: value.defined,
                    };
                    out.push((key, value));
                }
                Ok(LabelMapConfig(out))
            }
        }
        d.deserialize_map(MapVisitor)
    }
}
