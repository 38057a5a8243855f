//! A log query as `/api/v1/logs` and `tocsinctl logs query` pose it:
//! a PromQL series selector over the record labels (`severity` included),
//! a minimum severity, a time range, a substring or regex over the body,
//! and a limit. Results come newest first.
//!
//! Invariant: a [`LogQuery`] is valid once built: its selector parsed, its
//! regex compiled, its limit within [`MAX_LIMIT`].

use regex::Regex;
use tocsin_rules::promql::storage::Matcher;

use super::counters::selector_groups;
use super::record::Severity;

/// A label name no record carries (`__` names are reserved).
const PLACEHOLDER: &str = "__tocsin_log_query__";

/// The most records one query returns.
pub const MAX_LIMIT: usize = 10_000;
/// The limit when the caller gives none.
pub const DEFAULT_LIMIT: usize = 100;
/// The longest regex source accepted (a bound on compile time and size).
pub const MAX_REGEX_BYTES: usize = 4096;

/// Why a query was refused.
#[derive(Debug, thiserror::Error)]
pub enum LogQueryError {
    #[error("selector {selector:?}: {reason}")]
    Selector { selector: String, reason: String },
    #[error("regex {pattern:?}: {reason}")]
    Regex { pattern: String, reason: String },
    #[error("invalid severity {0:?} (valid: trace, debug, info, warn, error, fatal)")]
    Severity(String),
    #[error("limit {0} is out of range (1 to {MAX_LIMIT})")]
    Limit(usize),
    #[error("time range start {start} is after its end {end}")]
    Range { start: i64, end: i64 },
}

/// A filter over record bodies.
#[derive(Debug, Clone)]
pub enum TextFilter {
    /// The body contains this text (case-sensitive).
    Contains(String),
    /// The regex matches somewhere in the body.
    Regex(Regex),
}

impl TextFilter {
    pub fn regex(pattern: &str) -> Result<TextFilter, LogQueryError> {
        if pattern.len() > MAX_REGEX_BYTES {
            return Err(LogQueryError::Regex {
                pattern: pattern.chars().take(64).collect(),
                reason: format!("longer than {MAX_REGEX_BYTES} bytes"),
            });
        }
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(TextFilter::Regex)
            .map_err(|e| LogQueryError::Regex {
                pattern: pattern.to_string(),
                reason: e.to_string(),
            })
    }

    pub fn is_match(&self, body: &str) -> bool {
        match self {
            TextFilter::Contains(s) => body.contains(s.as_str()),
            TextFilter::Regex(re) => re.is_match(body),
        }
    }
}

/// A validated log query.
#[derive(Debug, Clone)]
pub struct LogQuery {
    /// OR of AND groups of matchers; empty selects every record.
    pub selector: Vec<Vec<Matcher>>,
    pub min_severity: Option<Severity>,
    /// Inclusive range over the records' own time (ms).
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: Option<TextFilter>,
    pub limit: usize,
}

impl Default for LogQuery {
    fn default() -> Self {
        LogQuery {
            selector: Vec::new(),
            min_severity: None,
            start_ms: i64::MIN,
            end_ms: i64::MAX,
            text: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl LogQuery {
    /// Parses a series selector such as `{service_name="api",
    /// severity=~"error|fatal"}`; an empty or `{}` selector selects all.
    pub fn parse_selector(selector: &str) -> Result<Vec<Vec<Matcher>>, LogQueryError> {
        let trimmed = selector.trim();
        if trimmed.is_empty() || trimmed == "{}" {
            return Ok(Vec::new());
        }
        let err = |reason: String| LogQueryError::Selector {
            selector: selector.to_string(),
            reason,
        };
        let flat = |e: String| e.split_whitespace().collect::<Vec<_>>().join(" ");
        let expr = match tocsin_rules::promql::parse(trimmed) {
            Ok(expr) => expr,
            // PromQL refuses selectors whose every matcher accepts the
            // empty value (`{severity!="debug"}`), to keep a query from
            // selecting every series by accident. A log query scans
            // records anyway, so such a selector is useful: parse it with
            // a placeholder matcher that is removed again.
            Err(e) if e.contains("at least one non-empty matcher") && trimmed.starts_with('{') => {
                let padded = format!("{{{PLACEHOLDER}=\"x\", {}", &trimmed[1..]);
                let mut expr = tocsin_rules::promql::parse(&padded)
                    .map_err(|_| err(format!("parse error: {}", flat(e))))?;
                if let promql_parser::parser::Expr::VectorSelector(vs) = &mut expr {
                    vs.matchers.matchers.retain(|m| m.name != PLACEHOLDER);
                    for g in &mut vs.matchers.or_matchers {
                        g.retain(|m| m.name != PLACEHOLDER);
                    }
                }
                expr
            }
            Err(e) => return Err(err(format!("parse error: {}", flat(e)))),
        };
        let groups = selector_groups(&expr).ok_or_else(|| {
            err("not a series selector (write it as {label=\"value\", …})".into())
        })?;
        if let promql_parser::parser::Expr::VectorSelector(vs) = &expr
            && (vs.offset.is_some() || vs.at.is_some())
        {
            return Err(err("offset and @ do not apply to log records".into()));
        }
        Ok(groups)
    }

    /// Builds a query from the API's textual parameters.
    pub fn from_params(
        selector: Option<&str>,
        min_severity: Option<&str>,
        start_ms: Option<i64>,
        end_ms: Option<i64>,
        contains: Option<&str>,
        regex: Option<&str>,
        limit: Option<usize>,
    ) -> Result<LogQuery, LogQueryError> {
        let q = LogQuery {
            selector: match selector {
                Some(s) => LogQuery::parse_selector(s)?,
                None => Vec::new(),
            },
            min_severity: match min_severity {
                None | Some("") => None,
                Some(w) => {
                    Some(Severity::parse(w).ok_or_else(|| LogQueryError::Severity(w.into()))?)
                }
            },
            start_ms: start_ms.unwrap_or(i64::MIN),
            end_ms: end_ms.unwrap_or(i64::MAX),
            text: match (contains, regex) {
                (_, Some(r)) if !r.is_empty() => Some(TextFilter::regex(r)?),
                (Some(c), _) if !c.is_empty() => Some(TextFilter::Contains(c.to_string())),
                _ => None,
            },
            limit: limit.unwrap_or(DEFAULT_LIMIT),
        };
        q.validate()?;
        Ok(q)
    }

    pub fn validate(&self) -> Result<(), LogQueryError> {
        if self.limit == 0 || self.limit > MAX_LIMIT {
            return Err(LogQueryError::Limit(self.limit));
        }
        if self.start_ms > self.end_ms {
            return Err(LogQueryError::Range {
                start: self.start_ms,
                end: self.end_ms,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_validated_with_reasons() {
        let q = LogQuery::from_params(
            Some(r#"{service_name="api", severity=~"error|fatal"}"#),
            Some("warn"),
            Some(1),
            Some(2),
            None,
            Some("time(out)?"),
            Some(5),
        )
        .unwrap();
        assert_eq!(q.selector.len(), 1);
        assert_eq!(q.selector[0].len(), 2);
        assert_eq!(q.min_severity, Some(Severity::Warn));
        assert!(q.text.as_ref().unwrap().is_match("a timeout"));
        assert!(LogQuery::from_params(None, None, None, None, None, None, None).is_ok());
        // Matchers that all accept "" are fine for a log query.
        let g = LogQuery::parse_selector(r#"{severity!="debug", host_name=~"web.*"}"#).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].len(), 2);
        assert!(g[0].iter().all(|m| m.name != PLACEHOLDER));
        let e = |r: Result<LogQuery, LogQueryError>| r.unwrap_err().to_string();
        assert!(
            e(LogQuery::from_params(
                Some("{a="),
                None,
                None,
                None,
                None,
                None,
                None
            ))
            .contains("parse error")
        );
        assert!(
            e(LogQuery::from_params(
                Some("sum(x)"),
                None,
                None,
                None,
                None,
                None,
                None
            ))
            .contains("not a series selector")
        );
        assert!(
            e(LogQuery::from_params(
                None,
                Some("loud"),
                None,
                None,
                None,
                None,
                None
            ))
            .contains("valid: trace")
        );
        assert!(
            e(LogQuery::from_params(
                None,
                None,
                None,
                None,
                None,
                Some("("),
                None
            ))
            .contains("regex")
        );
        assert!(
            e(LogQuery::from_params(
                None,
                None,
                None,
                None,
                None,
                None,
                Some(0)
            ))
            .contains("limit 0")
        );
        assert!(
            e(LogQuery::from_params(
                None,
                None,
                Some(5),
                Some(1),
                None,
                None,
                None
            ))
            .contains("after its end")
        );
    }
}
