//! Prometheus' template dialect (Go's `text/template` with Prometheus'
//! functions) for alert labels and annotations.
//!
//! [`Template::parse`] checks a template the way Go does (grammar, known
//! functions, declared variables) and reports errors with the line and
//! column inside the template's own text. Parsing never depends on the data
//! the template is later executed with.

mod gofmt;
mod lex;
mod parse;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use thiserror::Error;

/// Functions Prometheus' alert templates may call (Go's builtins plus
/// Prometheus' function map).
const PROMETHEUS_FUNCS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "call",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "graphLink",
    "tableLink",
    "sortByLabel",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toDuration",
    "pathPrefix",
    "externalURL",
    "parseDuration",
    "stripPort",
    "stripDomain",
    "now",
];

/// The variables Prometheus' alert prefix
/// (`{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}…`) declares.
const ALERT_VARIABLES: [&str; 4] = ["$labels", "$externalLabels", "$externalURL", "$value"];

/// A template that failed to parse or to execute.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TemplateError {
    /// The text is not a valid template; `line` and `column` (1-based,
    /// columns in characters) point into the template's own text.
    #[error("template: {name}:{line}:{column}: {message}")]
    Parse {
        name: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// Executing failed at `line:column`; `context` is the failing action.
    #[error("template: {name}:{line}:{column}: executing {name:?} at <{context}>: {message}")]
    Exec {
        name: String,
        line: usize,
        column: usize,
        context: String,
        message: String,
    },
}

/// 1-based line and column (in characters) of byte offset `pos` in `src`.
fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = src.get(..pos).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// A parsed template with its `{{define}}`d sub-templates.
#[derive(Clone)]
#[expect(dead_code, reason = "the body is read by the executor")]
pub struct Template {
    name: String,
    src: Arc<str>,
    root: Arc<parse::List>,
    defs: Arc<BTreeMap<String, Arc<parse::List>>>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("text", &&*self.src)
            .finish_non_exhaustive()
    }
}

impl Template {
    /// Parses `text` as a Prometheus alert label or annotation template
    /// named `name` (used in messages and by `{{template}}`): Prometheus'
    /// functions, and the variables `$labels`, `$externalLabels`,
    /// `$externalURL` and `$value` that Prometheus' alert prefix declares.
    /// Positions in errors are relative to `text` itself.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        Self::parse_with(
            name,
            text,
            &|f| PROMETHEUS_FUNCS.contains(&f),
            &ALERT_VARIABLES,
        )
    }

    fn parse_with(
        name: &str,
        text: &str,
        has_func: &dyn Fn(&str) -> bool,
        predeclared: &[&str],
    ) -> Result<Template, TemplateError> {
        let parsed = parse::parse(text, has_func, predeclared).map_err(|e| {
            let (line, column) = line_col(text, e.pos);
            TemplateError::Parse {
                name: name.to_string(),
                line,
                column,
                message: e.message,
            }
        })?;
        let defs = parsed
            .defs
            .into_iter()
            .map(|(n, l)| (n, Arc::new(l)))
            .collect();
        Ok(Template {
            name: name.to_string(),
            src: Arc::from(text),
            root: Arc::new(parsed.root),
            defs: Arc::new(defs),
        })
    }

    /// The name given at parse time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source text.
    pub fn text(&self) -> &str {
        &self.src
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn parse_error_names_line_column_and_expectation() {
        let e = Template::parse("summary", "ok\n  {{ $labels.x }").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: summary:2:16: unrecognized character in action: U+007D '}'"
        );
        let e = Template::parse("summary", "ok\n  {{ $labels.x ").unwrap_err();
        assert_eq!(e.to_string(), "template: summary:2:3: unclosed action");
        let e = Template::parse("t", "a {{ if .A }}\n{{ humanize }}").unwrap_err();
        assert_eq!(e.to_string(), "template: t:2:15: unexpected EOF");
        let e = Template::parse("t", "{{ nosuch 1 }}").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"template: t:1:4: function "nosuch" not defined"#
        );
        let e = Template::parse("t", "x\n\té{{ .A ) }}").unwrap_err();
        assert_eq!(e.to_string(), "template: t:2:9: unexpected right paren");
    }

    #[test]
    fn parse_accepts_prometheus_templates() {
        for t in [
            "{{ $labels.instance }} is down",
            "{{ .Value | humanize }}",
            r#"{{ with query "up" }}{{ . | first | value | humanize }}{{ end }}"#,
            "{{- range $k, $v := .Labels -}} {{ $k }}={{ $v }} {{- end }}",
            r#"{{ printf "%.2f" .Value }}"#,
        ] {
            Template::parse("t", t).unwrap();
        }
    }
}
