//! The rule-file model: Prometheus rule files (`groups[].rules[]`) plus
//! Tocsin's top-level `log_metrics` list.
//!
//! `*Config` types are what serde reads (with source positions); the types
//! without the suffix are validated values: a [`RuleFile`] always holds
//! parsed expressions, valid names and parsed templates.
//!
//! CONTRACT (the validated types below are fixed; loading is being written
//! in this module and `validate`):
//! - `load_file(path) -> Result<RuleFile, RuleFileErrors>` and
//!   `load_str(name, text) -> Result<RuleFile, RuleFileErrors>` report every
//!   problem at once, each with file:line:column.

use std::time::Duration;

use promql_parser::parser::Expr;

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
    /// Static labels added to the series.
    pub labels: Labels,
    pub pos: Pos,
}
