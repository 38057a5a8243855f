//! What log records become as series: the built-in
//! `tocsin_log_records_total{host_name, service_name, severity}` and the
//! rule files' `log_metrics`, as counters.
//!
//! [`LogMetrics`] is the compiled set of log metrics: every pattern sits in
//! one `RegexSet`, run at most once per record and only when a metric whose
//! selector and minimum severity accept the record has a pattern; capture
//! groups are extracted only for the metrics that matched and have named
//! groups. [`Counters`] holds the counter series and their values.
//!
//! Invariants: the number of series per metric name never exceeds its cap
//! (an increment that would create one more is refused and counted); a
//! value never decreases except when a failed write-ahead-log write takes
//! back the increments it carried; a series is `started` once its 0 sample
//! (just before its first increment) is in the series store.

use std::collections::HashMap;

use regex::{Regex, RegexSet};
use tocsin_rules::file::LogMetric;
use tocsin_rules::promql::storage::{MatchOp, Matcher};
use tocsin_rules::promql::value::{Label, Labels};

use super::codec::{CounterDelta, CounterState};
use super::record::{LogRecord, Severity};

/// The built-in counter every accepted record increments.
pub const RECORDS_TOTAL: &str = "tocsin_log_records_total";
/// Label values taken from a record body are cut to this many bytes: a
/// capture group must not turn a megabyte line into a label.
pub const MAX_CAPTURED_VALUE_BYTES: usize = 1024;

/// Why a set of log metrics could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum LogMetricsError {
    #[error("log metric {name:?}: selector {selector:?} is not a series selector")]
    Selector { name: String, selector: String },
    #[error("log metric {name:?}: invalid min_severity {value:?}")]
    Severity { name: String, value: String },
    #[error("log metrics: patterns do not compile into one set: {0}")]
    RegexSet(#[from] regex::Error),
}

#[derive(Debug)]
struct CompiledMetric {
    name: String,
    /// OR of AND groups (a selector's `or` branches), as the evaluator
    /// reads selectors.
    groups: Vec<Vec<Matcher>>,
    min_severity: Option<Severity>,
    /// Index in the RegexSet, and the regex itself when it has named
    /// groups (only then are captures worth running).
    pattern: Option<(usize, Option<Regex>)>,
    static_labels: Labels,
}

/// Turns a parsed series selector into its matcher groups.
pub fn selector_groups(expr: &promql_parser::parser::Expr) -> Option<Vec<Vec<Matcher>>> {
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return None;
    };
    let m = &vs.matchers;
    let mut groups = if m.or_matchers.is_empty() {
        vec![m.matchers.clone()]
    } else {
        let mut g = m.or_matchers.clone();
        if !m.matchers.is_empty() {
            g.push(m.matchers.clone());
        }
        g
    };
    if let Some(name) = &vs.name {
        for g in &mut groups {
            g.push(Matcher::new(MatchOp::Equal, "__name__", name));
        }
    }
    Some(groups)
}

/// Whether a label set satisfies any of the matcher groups (no groups: all).
pub fn groups_match(groups: &[Vec<Matcher>], labels: &Labels) -> bool {
    groups.is_empty()
        || groups
            .iter()
            .any(|g| g.iter().all(|m| m.is_match(labels.get(&m.name))))
}

/// The compiled log metrics of the loaded rule files.
#[derive(Debug)]
pub struct LogMetrics {
    metrics: Vec<CompiledMetric>,
    set: RegexSet,
}

impl Default for LogMetrics {
    fn default() -> Self {
        LogMetrics {
            metrics: Vec::new(),
            set: RegexSet::empty(),
        }
    }
}

impl LogMetrics {
    /// Compiles validated log metrics (rule-file validation already
    /// checked each one; this only fails on what validation cannot see,
    /// such as the combined set exceeding the regex size limit).
    pub fn compile(metrics: &[LogMetric]) -> Result<LogMetrics, LogMetricsError> {
        let mut compiled = Vec::with_capacity(metrics.len());
        let mut patterns = Vec::new();
        for m in metrics {
            let groups = selector_groups(&m.selector).ok_or_else(|| LogMetricsError::Selector {
                name: m.name.clone(),
                selector: m.selector_text.clone(),
            })?;
            let min_severity = match &m.min_severity {
                None => None,
                Some(word) => {
                    Some(
                        Severity::parse(word).ok_or_else(|| LogMetricsError::Severity {
                            name: m.name.clone(),
                            value: word.clone(),
                        })?,
                    )
                }
            };
            let pattern = match (&m.pattern, &m.pattern_regex) {
                (Some(p), re) => {
                    let idx = patterns.len();
                    patterns.push(p.clone());
                    let named = re
                        .as_ref()
                        .filter(|re| re.capture_names().flatten().next().is_some())
                        .cloned();
                    let named = match (named, re) {
                        (Some(re), _) => Some(re),
                        // Validation normally compiled it; compile here if
                        // a caller built the metric by hand.
                        (None, None) => {
                            let re = Regex::new(p)?;
                            re.capture_names().flatten().next().is_some().then_some(re)
                        }
                        (None, Some(_)) => None,
                    };
                    Some((idx, named))
                }
                (None, _) => None,
            };
            compiled.push(CompiledMetric {
                name: m.name.clone(),
                groups,
                min_severity,
                pattern,
                static_labels: m.labels.clone(),
            });
        }
        Ok(LogMetrics {
            metrics: compiled,
            set: RegexSet::new(&patterns)?,
        })
    }

    pub fn len(&self) -> usize {
        self.metrics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Whether `name` is one of these metrics.
    pub fn has(&self, name: &str) -> bool {
        self.metrics.iter().any(|m| m.name == name)
    }

    /// Calls `hit(metric name, series labels)` for every log metric the
    /// record increments.
    pub fn matches(&self, rec: &LogRecord, mut hit: impl FnMut(&str, Labels)) {
        let mut candidates: Vec<&CompiledMetric> = Vec::new();
        let mut need_set = false;
        for m in &self.metrics {
            if m.min_severity.is_some_and(|min| rec.severity < min)
                || !groups_match(&m.groups, &rec.labels)
            {
                continue;
            }
            need_set |= m.pattern.is_some();
            candidates.push(m);
        }
        if candidates.is_empty() {
            return;
        }
        let set_matches = need_set.then(|| self.set.matches(&rec.body));
        for m in candidates {
            let mut captured: Vec<Label> = Vec::new();
            if let Some((idx, named)) = &m.pattern {
                if !set_matches.as_ref().is_some_and(|s| s.matched(*idx)) {
                    continue;
                }
                if let Some(re) = named
                    && let Some(caps) = re.captures(&rec.body)
                {
                    for name in re.capture_names().flatten() {
                        if let Some(v) = caps.name(name) {
                            captured.push(Label {
                                name: name.to_string(),
                                value: cut(v.as_str(), MAX_CAPTURED_VALUE_BYTES).to_string(),
                            });
                        }
                    }
                }
            }
            let mut labels: Vec<Label> = rec.labels.iter().cloned().collect();
            labels.extend(captured);
            labels.extend(m.static_labels.iter().cloned());
            labels.push(Label {
                name: "__name__".into(),
                value: m.name.clone(),
            });
            // `from_vec` keeps the last of a repeated name: static labels
            // win over captures and captures over the record's labels, and
            // the name and severity (pushed last / refused by validation)
            // cannot be overridden.
            labels.push(Label {
                name: "severity".into(),
                value: rec.severity.as_str().into(),
            });
            hit(&m.name, Labels::from_vec(labels));
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes ending on a char
/// boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The built-in series a record increments.
pub fn records_total_labels(rec: &LogRecord) -> Labels {
    Labels::from_pairs([
        ("__name__", RECORDS_TOTAL),
        ("host_name", rec.labels.get("host_name")),
        ("service_name", rec.labels.get("service_name")),
        ("severity", rec.severity.as_str()),
    ])
}

/// Limits of the counters.
#[derive(Debug, Clone)]
pub struct CounterLimits {
    /// Series per log metric name.
    pub max_series_per_metric: usize,
    /// Series of `tocsin_log_records_total` (hosts × services × severities).
    pub max_records_total_series: usize,
    /// A series not incremented for this long is forgotten (ms).
    pub idle_ms: i64,
}

impl Default for CounterLimits {
    fn default() -> Self {
        CounterLimits {
            max_series_per_metric: 10_000,
            max_records_total_series: 100_000,
            idle_ms: 24 * 60 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Counter {
    pub value: u64,
    pub created_ms: i64,
    pub last_ms: i64,
    /// Its 0 sample is in the series store (or it already had samples
    /// there).
    pub started: bool,
}

/// The counter series and their values.
#[derive(Debug, Default)]
pub struct Counters {
    pub(crate) series: HashMap<Labels, Counter>,
    per_metric: HashMap<String, usize>,
}

impl Counters {
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The current value of a series.
    pub fn value(&self, labels: &Labels) -> Option<u64> {
        self.series.get(labels).map(|c| c.value)
    }

    /// Adds `n` to a series, creating it within the cap. Returns false when
    /// the cap refused a new series.
    pub fn add(&mut self, labels: &Labels, n: u64, at_ms: i64, limits: &CounterLimits) -> bool {
        if let Some(c) = self.series.get_mut(labels) {
            c.value = c.value.saturating_add(n);
            c.last_ms = c.last_ms.max(at_ms);
            return true;
        }
        let name = labels.metric_name();
        let cap = if name == RECORDS_TOTAL {
            limits.max_records_total_series
        } else {
            limits.max_series_per_metric
        };
        let count = self.per_metric.entry(name.to_string()).or_insert(0);
        if *count >= cap {
            return false;
        }
        *count += 1;
        self.series.insert(
            labels.clone(),
            Counter {
                value: n,
                created_ms: at_ms,
                last_ms: at_ms,
                started: false,
            },
        );
        true
    }

    /// Takes back increments whose write-ahead-log write failed.
    pub fn subtract(&mut self, deltas: &[CounterDelta]) {
        for d in deltas {
            if let Some(c) = self.series.get_mut(&d.labels) {
                c.value = c.value.saturating_sub(d.delta);
            }
        }
    }

    fn remove(&mut self, labels: &Labels) {
        if self.series.remove(labels).is_some() {
            let name = labels.metric_name();
            if let Some(n) = self.per_metric.get_mut(name) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_metric.remove(name);
                }
            }
        }
    }

    /// Forgets series idle since before `cutoff_ms`; returns how many.
    pub fn expire(&mut self, cutoff_ms: i64) -> usize {
        let idle: Vec<Labels> = self
            .series
            .iter()
            .filter(|(_, c)| c.last_ms < cutoff_ms)
            .map(|(l, _)| l.clone())
            .collect();
        for l in &idle {
            self.remove(l);
        }
        idle.len()
    }

    /// Forgets the series of log metrics `keep` does not name (the built-in
    /// counter stays); returns how many.
    pub fn retain_metrics(&mut self, keep: &LogMetrics) -> usize {
        let gone: Vec<Labels> = self
            .series
            .keys()
            .filter(|l| l.metric_name() != RECORDS_TOTAL && !keep.has(l.metric_name()))
            .cloned()
            .collect();
        for l in &gone {
            self.remove(l);
        }
        gone.len()
    }

    /// The state to persist.
    pub fn snapshot(&self) -> Vec<CounterState> {
        self.series
            .iter()
            .map(|(labels, c)| CounterState {
                labels: labels.clone(),
                value: c.value,
                created_ms: c.created_ms,
                last_ms: c.last_ms,
            })
            .collect()
    }

    /// Replaces the state with a persisted snapshot. Every restored series
    /// must prove it has samples in the series store before it counts as
    /// started.
    pub fn restore(&mut self, snapshot: Vec<CounterState>) {
        self.series.clear();
        self.per_metric.clear();
        for c in snapshot {
            *self
                .per_metric
                .entry(c.labels.metric_name().to_string())
                .or_insert(0) += 1;
            self.series.insert(
                c.labels,
                Counter {
                    value: c.value,
                    created_ms: c.created_ms,
                    last_ms: c.last_ms,
                    started: false,
                },
            );
        }
    }

    /// Re-applies logged increments on replay. Replay never refuses: the
    /// cap was checked when the increments were accepted.
    pub fn replay(&mut self, deltas: &[CounterDelta], at_ms: i64) {
        let unlimited = CounterLimits {
            max_series_per_metric: usize::MAX,
            max_records_total_series: usize::MAX,
            idle_ms: i64::MAX,
        };
        for d in deltas {
            self.add(&d.labels, d.delta, at_ms, &unlimited);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use crate::logs::codec::tests::record;
    use tocsin_rules::file::Pos;

    pub(crate) fn metric(
        name: &str,
        selector: &str,
        min: Option<&str>,
        pattern: Option<&str>,
        labels: &[(&str, &str)],
    ) -> LogMetric {
        LogMetric {
            name: name.into(),
            selector: tocsin_rules::promql::parse(selector).unwrap(),
            selector_text: selector.into(),
            min_severity: min.map(String::from),
            pattern: pattern.map(String::from),
            pattern_regex: pattern.map(|p| Regex::new(p).unwrap()),
            labels: Labels::from_pairs(labels.iter().copied()),
            pos: Pos { line: 1, column: 1 },
        }
    }

    fn hits(m: &LogMetrics, rec: &LogRecord) -> Vec<String> {
        let mut out = Vec::new();
        m.matches(rec, |_, l| out.push(l.to_string()));
        out.sort();
        out
    }

    #[test]
    fn selector_severity_pattern_and_captures_decide_the_series() {
        let m = LogMetrics::compile(&[
            metric(
                "timeouts_total",
                r#"{host_name="web-1"}"#,
                Some("warn"),
                Some(r"timeout talking to (?P<peer>\w+)"),
                &[("team", "db")],
            ),
            metric(
                "other_host_total",
                r#"{host_name="web-2"}"#,
                None,
                None,
                &[],
            ),
            metric(
                "fatal_total",
                r#"{host_name=~"web.*"}"#,
                Some("fatal"),
                None,
                &[],
            ),
            metric(
                "any_total",
                r#"{host_name=~".+"}"#,
                None,
                Some("nomatch"),
                &[],
            ),
        ])
        .unwrap();
        let rec = record("timeout talking to db after 5s");
        assert_eq!(
            hits(&m, &rec),
            vec![
                r#"timeouts_total{host_name="web-1", peer="db", severity="error", team="db"}"#
                    .to_string()
            ]
        );
        let mut info = record("timeout talking to db");
        info.severity = Severity::Info;
        assert!(hits(&m, &info).is_empty(), "below min_severity");
    }

    #[test]
    fn or_selectors_match_either_branch() {
        let m = LogMetrics::compile(&[metric(
            "x_total",
            r#"{host_name="nope" or severity="error"}"#,
            None,
            None,
            &[],
        )])
        .unwrap();
        assert_eq!(hits(&m, &record("a")).len(), 1);
    }

    #[test]
    fn long_captures_are_cut_on_a_char_boundary() {
        assert_eq!(cut("héllo", 2), "h");
        assert_eq!(cut("héllo", 3), "hé");
        assert_eq!(cut("abc", 10), "abc");
        let m = LogMetrics::compile(&[metric(
            "x_total",
            r#"{host_name="web-1"}"#,
            None,
            Some(r"id=(?P<id>\S+)"),
            &[],
        )])
        .unwrap();
        let rec = record(&format!("id={}", "é".repeat(2000)));
        let mut got = Vec::new();
        m.matches(&rec, |_, l| got.push(l.get("id").len()));
        assert_eq!(got, vec![MAX_CAPTURED_VALUE_BYTES]);
    }

    #[test]
    fn cardinality_cap_refuses_new_series_but_keeps_counting_old_ones() {
        let limits = CounterLimits {
            max_series_per_metric: 2,
            ..CounterLimits::default()
        };
        let mut c = Counters::default();
        let s = |v: &str| Labels::from_pairs([("__name__", "x_total"), ("id", v)]);
        assert!(c.add(&s("a"), 1, 0, &limits));
        assert!(c.add(&s("b"), 1, 0, &limits));
        assert!(!c.add(&s("c"), 1, 0, &limits));
        assert!(c.add(&s("a"), 5, 1, &limits));
        assert_eq!(c.value(&s("a")), Some(6));
        assert_eq!(c.value(&s("c")), None);
        // Another metric has its own budget.
        let other = Labels::from_pairs([("__name__", "y_total")]);
        assert!(c.add(&other, 1, 0, &limits));
        // Expiry frees room under the cap.
        assert_eq!(c.expire(1), 2);
        assert!(c.add(&s("c"), 1, 2, &limits));
    }
}
