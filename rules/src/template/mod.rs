//! Prometheus' template dialect (Go's `text/template` with Prometheus'
//! functions) for alert labels and annotations, and the same engine with
//! Alertmanager's functions for notification templates.
//!
//! - [`Template::parse`] checks an alert template the way Prometheus does
//!   (grammar, known functions, declared variables, with `$labels`,
//!   `$value`, `$externalLabels` and `$externalURL` predeclared) and reports
//!   errors with the line and column inside the template's own text.
//!   [`validate_alert_template`] is the load-time check.
//! - [`Template::execute`] and [`expand_alert_template`] render with
//!   Prometheus' data and `missingkey=zero`;
//!   [`expand_alert_template_or_error`] yields Prometheus'
//!   `<error expanding template: …>` text instead of an error.
//! - [`Template::parse_with_funcs`], [`Template::add`],
//!   [`Template::execute_value`] and [`Template::execute_named`] run any Go
//!   template over a [`Value`] (e.g. Alertmanager's `.Alerts.Firing`, built
//!   with [`Value::with_method`]) with any [`FuncSet`].
//!
//! Parsing never depends on the data; execution does no I/O and reads no
//! clock (`query` goes through [`TemplateContext`]). Output size and
//! template nesting are bounded.

mod exec;
mod funcs;
mod gofmt;
mod lex;
mod parse;
mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use thiserror::Error;

use crate::promql::Labels;
pub use exec::ExecEnv;
use exec::{Def, Exec};
pub use funcs::{Func, FuncError, FuncSet};
pub use value::{List, Map, MapKind, Method, MissingKey, Value};

/// The variables Prometheus' alert prefix
/// (`{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}…`) declares.
const ALERT_VARIABLES: [&str; 4] = ["$labels", "$externalLabels", "$externalURL", "$value"];

/// Go's type name of Prometheus' alert template data, for messages.
const ALERT_DATA_TYPE: &str = "struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; Value interface {} }";

static PROMETHEUS_FUNCS: LazyLock<Arc<FuncSet>> = LazyLock::new(|| Arc::new(FuncSet::prometheus()));

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
    /// Executing failed at `line:column` of the text named `name`, inside
    /// the (possibly `{{define}}`d) template `executing`; `context` is the
    /// failing action's source. The column is 1-based in characters, like
    /// the parse error's (Go prints a 0-based byte offset here); the rest of
    /// the message is Go's.
    #[error("template: {name}:{line}:{column}: executing {executing:?} at <{context}>: {message}")]
    Exec {
        name: String,
        executing: String,
        line: usize,
        column: usize,
        context: String,
        message: String,
    },
}

/// 1-based line and column (in characters) of byte offset `pos` in `src`.
pub(crate) fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(src.len());
    let before = src.get(..pos).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// Gives `query` its PromQL evaluator. The rule evaluator implements it
/// over its engine at the evaluation time of the rule.
pub trait TemplateContext {
    /// Runs an instant query; the error text ends up in the template error.
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String>;
}

/// One sample of a `query` result.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    pub labels: Labels,
    pub value: f64,
}

/// A context without a query engine (e.g. notification templates): `query`
/// fails with a clear message.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoQueries;

impl TemplateContext for NoQueries {
    fn query(&self, _expr: &str) -> Result<Vec<QuerySample>, String> {
        Err("queries are not available in this template".to_string())
    }
}

/// What Prometheus gives an alert's label and annotation templates.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTemplateData {
    /// The alert's labels (`.Labels`, `$labels`).
    pub labels: Labels,
    /// The configured external labels (`.ExternalLabels`, `$externalLabels`).
    pub external_labels: Labels,
    /// The external URL (`.ExternalURL`, `$externalURL`, `externalURL`).
    pub external_url: String,
    /// The alert's sample value (`.Value`, `$value`).
    pub value: f64,
}

fn labels_value(l: &Labels) -> Value {
    Value::string_map(l.iter().map(|l| (l.name.clone(), l.value.clone())))
}

impl AlertTemplateData {
    /// Dot: the struct Prometheus executes alert templates with.
    pub fn dot(&self) -> Value {
        Value::structure(
            ALERT_DATA_TYPE,
            [
                ("Labels", labels_value(&self.labels)),
                ("ExternalLabels", labels_value(&self.external_labels)),
                ("ExternalURL", Value::from(self.external_url.as_str())),
                ("Value", Value::Float(self.value)),
            ],
        )
    }

    /// The variables of Prometheus' alert prefix.
    pub fn variables(&self) -> Vec<(String, Value)> {
        vec![
            ("$labels".to_string(), labels_value(&self.labels)),
            (
                "$externalLabels".to_string(),
                labels_value(&self.external_labels),
            ),
            (
                "$externalURL".to_string(),
                Value::from(self.external_url.as_str()),
            ),
            ("$value".to_string(), Value::Float(self.value)),
        ]
    }
}

/// A parsed template with the `{{define}}`d templates it can call.
#[derive(Clone)]
pub struct Template {
    name: String,
    main: Arc<Def>,
    defs: Arc<BTreeMap<String, Arc<Def>>>,
    funcs: Arc<FuncSet>,
    /// Variables visible at the top level without a declaration.
    predeclared: Vec<String>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("name", &self.name)
            .field("text", &&*self.main.src)
            .field("defined", &self.defs.keys().collect::<Vec<_>>())
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
        Self::build(
            name,
            text,
            Arc::clone(&PROMETHEUS_FUNCS),
            ALERT_VARIABLES.iter().map(|v| v.to_string()).collect(),
            &BTreeMap::new(),
        )
    }

    /// Parses a plain Go template (no predeclared variables) with the given
    /// functions, e.g. [`FuncSet::alertmanager`] for notification templates.
    pub fn parse_with_funcs(
        name: &str,
        text: &str,
        funcs: FuncSet,
    ) -> Result<Template, TemplateError> {
        Self::build(name, text, Arc::new(funcs), Vec::new(), &BTreeMap::new())
    }

    /// Parses another text into the same set: the result sees every
    /// template defined so far plus the new text's definitions (which win),
    /// the way Go's `Template.Parse` adds to an existing set. This is how
    /// notification configs use templates loaded from files.
    pub fn add(&self, name: &str, text: &str) -> Result<Template, TemplateError> {
        Self::build(
            name,
            text,
            Arc::clone(&self.funcs),
            self.predeclared.clone(),
            &self.defs,
        )
    }

    fn build(
        name: &str,
        text: &str,
        funcs: Arc<FuncSet>,
        predeclared: Vec<String>,
        inherited: &BTreeMap<String, Arc<Def>>,
    ) -> Result<Template, TemplateError> {
        let pre: Vec<&str> = predeclared.iter().map(String::as_str).collect();
        let parsed = parse::parse(text, &|f| funcs.contains(f), &pre).map_err(|e| {
            let (line, column) = line_col(text, e.pos);
            TemplateError::Parse {
                name: name.to_string(),
                line,
                column,
                message: e.message,
            }
        })?;
        let src: Arc<str> = Arc::from(text);
        let mut defs = inherited.clone();
        for (n, list) in parsed.defs {
            defs.insert(
                n,
                Arc::new(Def {
                    list,
                    src: Arc::clone(&src),
                    source_name: name.to_string(),
                }),
            );
        }
        let main = Arc::new(Def {
            list: parsed.root,
            src,
            source_name: name.to_string(),
        });
        defs.entry(name.to_string())
            .or_insert_with(|| Arc::clone(&main));
        Ok(Template {
            name: name.to_string(),
            main,
            defs: Arc::new(defs),
            funcs,
            predeclared,
        })
    }

    /// The name given at parse time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source text.
    pub fn text(&self) -> &str {
        &self.main.src
    }

    /// Names of the templates `{{template}}` can call, sorted.
    pub fn defined_templates(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }

    /// Renders an alert template the way Prometheus does: dot is the alert
    /// data, the prefix variables are set, and a missing key yields the zero
    /// value (`missingkey=zero`).
    pub fn execute(
        &self,
        data: &AlertTemplateData,
        ctx: &dyn TemplateContext,
    ) -> Result<String, TemplateError> {
        let env = ExecEnv::new(ctx)
            .with_external_url(&data.external_url)
            .with_missing_key(MissingKey::Zero);
        self.run(&self.main, &self.name, data.dot(), data.variables(), &env)
    }

    /// Renders with any dot and variables (each variable must be one the
    /// template was parsed with, e.g. `$labels` for [`Template::parse`]).
    pub fn execute_value(
        &self,
        dot: Value,
        vars: Vec<(String, Value)>,
        env: &ExecEnv<'_>,
    ) -> Result<String, TemplateError> {
        self.run(&self.main, &self.name, dot, vars, env)
    }

    /// Renders the template `name` of this set (Go's `ExecuteTemplate`).
    pub fn execute_named(
        &self,
        name: &str,
        dot: Value,
        env: &ExecEnv<'_>,
    ) -> Result<String, TemplateError> {
        let Some(def) = self.defs.get(name) else {
            return Err(TemplateError::Exec {
                name: self.name.clone(),
                executing: name.to_string(),
                line: 1,
                column: 1,
                context: String::new(),
                message: format!(
                    "no template {name:?} associated with template {:?}",
                    self.name
                ),
            });
        };
        self.run(def, name, dot, Vec::new(), env)
    }

    fn run(
        &self,
        def: &Arc<Def>,
        name: &str,
        dot: Value,
        vars: Vec<(String, Value)>,
        env: &ExecEnv<'_>,
    ) -> Result<String, TemplateError> {
        let mut ex = Exec::new(
            env,
            &self.funcs,
            &self.defs,
            name,
            Arc::clone(def),
            dot,
            vars,
        );
        ex.run()?;
        Ok(ex.out)
    }
}

/// Checks an alert label or annotation template at load time, exactly as
/// [`expand_alert_template`] will parse it (positions relative to `text`).
pub fn validate_alert_template(name: &str, text: &str) -> Result<(), TemplateError> {
    Template::parse(name, text).map(|_| ())
}

/// Parses and renders an alert label or annotation template with
/// Prometheus' variables (`$labels`, `$value`, `$externalLabels`,
/// `$externalURL`) and functions.
pub fn expand_alert_template(
    name: &str,
    text: &str,
    data: &AlertTemplateData,
    ctx: &dyn TemplateContext,
) -> Result<String, TemplateError> {
    Template::parse(name, text)?.execute(data, ctx)
}

/// Like [`expand_alert_template`], but on failure returns what Prometheus
/// puts into the label or annotation: `<error expanding template: …>`.
pub fn expand_alert_template_or_error(
    name: &str,
    text: &str,
    data: &AlertTemplateData,
    ctx: &dyn TemplateContext,
) -> String {
    match expand_alert_template(name, text, data, ctx) {
        Ok(s) => s,
        Err(e) => error_text(name, &e),
    }
}

/// Prometheus' text for a failed expansion.
pub fn error_text(name: &str, e: &TemplateError) -> String {
    let stage = match e {
        TemplateError::Parse { .. } => "parsing",
        TemplateError::Exec { .. } => "executing",
    };
    format!("<error expanding template: error {stage} template {name}: {e}>")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    struct FakeQuery(Vec<QuerySample>);

    impl TemplateContext for FakeQuery {
        fn query(&self, _expr: &str) -> Result<Vec<QuerySample>, String> {
            Ok(self.0.clone())
        }
    }

    const EXT_URL: &str = "http://testhost:9090/path/prefix";

    fn sample(pairs: &[(&str, &str)], v: f64) -> QuerySample {
        QuerySample {
            labels: Labels::from_pairs(pairs.iter().copied()),
            value: v,
        }
    }

    /// Runs `text` like Prometheus' template tests: Prometheus' functions,
    /// dot = `input`, `missingkey=zero`.
    fn expand_with(text: &str, input: Value, q: Vec<QuerySample>) -> Result<String, String> {
        let t = Template::parse_with_funcs("test", text, FuncSet::prometheus())
            .map_err(|e| error_text("test", &e))?;
        let ctx = FakeQuery(q);
        let env = ExecEnv::new(&ctx)
            .with_external_url(EXT_URL)
            .with_missing_key(MissingKey::Zero);
        t.execute_value(input, Vec::new(), &env)
            .map_err(|e| error_text("test", &e))
    }

    fn expand(text: &str, input: Value) -> String {
        match expand_with(text, input, Vec::new()) {
            Ok(s) => s,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn fails(text: &str, input: Value) -> String {
        match expand_with(text, input, Vec::new()) {
            Ok(s) => panic!("{text}: expected an error, got {s:?}"),
            Err(e) => e,
        }
    }

    fn floats(v: &[f64]) -> Value {
        Value::list(v.iter().map(|f| Value::Float(*f)))
    }

    fn strs(v: &[&str]) -> Value {
        Value::list(v.iter().map(|s| Value::from(*s)))
    }

    fn ints(v: &[i64]) -> Value {
        Value::list(v.iter().map(|i| Value::Int(*i)))
    }

    fn alert_data() -> AlertTemplateData {
        AlertTemplateData {
            labels: Labels::from_pairs([("alertname", "HighLatency"), ("instance", "web-1:9100")]),
            external_labels: Labels::from_pairs([("cluster", "eu1")]),
            external_url: EXT_URL.to_string(),
            value: 1234567.0,
        }
    }

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
        // Go rejects a non-ASCII space inside an action.
        let e = Template::parse("t", "{{\u{a0}}}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: t:1:3: unrecognized character in action: U+00A0"
        );
    }

    #[test]
    fn parse_accepts_prometheus_templates() {
        for t in [
            "{{ $labels.instance }} is down",
            "{{ .Value | humanize }}",
            r#"{{ with query "up" }}{{ . | first | value | humanize }}{{ end }}"#,
            "{{- range $k, $v := .Labels -}} {{ $k }}={{ $v }} {{- end }}",
            r#"{{ printf "%.2f" .Value }}"#,
            "{{ $externalLabels.cluster }} {{ $externalURL }} {{ $value }}",
        ] {
            Template::parse("t", t).unwrap();
        }
        // The alert variables are not visible inside a definition, as in
        // Prometheus (where they come from a prefix of the main template).
        assert!(Template::parse("t", r#"{{define "x"}}{{$labels}}{{end}}"#).is_err());
    }

    #[test]
    fn alert_expansion_like_prometheus() {
        let d = alert_data();
        let ctx = NoQueries;
        let out = expand_alert_template(
            "__alert_HighLatency",
            "{{ $labels.instance }} ({{ .Labels.alertname }}) in {{ $externalLabels.cluster }}: {{ $value }} = {{ $value | humanize }}; {{ $labels.missing }}|{{ .ExternalURL }}",
            &d,
            &ctx,
        )
        .unwrap();
        assert_eq!(
            out,
            "web-1:9100 (HighLatency) in eu1: 1.234567e+06 = 1.235M; |http://testhost:9090/path/prefix"
        );
        let out = expand_alert_template(
            "a",
            r#"{{ printf "%.2f" $value }} {{ externalURL }} {{ pathPrefix }}"#,
            &d,
            &ctx,
        )
        .unwrap();
        assert_eq!(
            out,
            "1234567.00 http://testhost:9090/path/prefix /path/prefix"
        );
    }

    #[test]
    fn alert_expansion_errors_become_prometheus_text() {
        let d = alert_data();
        let out = expand_alert_template_or_error("__alert_A", "{{ .Nope }}", &d, &NoQueries);
        assert_eq!(
            out,
            format!(
                "<error expanding template: error executing template __alert_A: template: __alert_A:1:4: executing \"__alert_A\" at <.Nope>: can't evaluate field Nope in type {ALERT_DATA_TYPE}>"
            )
        );
        let out = expand_alert_template_or_error("__alert_A", "x {{ if }}", &d, &NoQueries);
        assert_eq!(
            out,
            "<error expanding template: error parsing template __alert_A: template: __alert_A:1:9: missing value for if>"
        );
        let out =
            expand_alert_template_or_error("__alert_A", r#"{{ query "up" }}"#, &d, &NoQueries);
        assert!(
            out.contains("error calling query: queries are not available"),
            "{out}"
        );
        // Positions of a validated template point into the user's text.
        let e = validate_alert_template("a", "line one\n{{ $labels.x | nosuch }}").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"template: a:2:16: function "nosuch" not defined"#
        );
        assert!(validate_alert_template("a", "{{ $labels.x }}").is_ok());
    }

    // Cases ported from Prometheus' template/template_test.go. Execution
    // error columns here are 1-based characters; Go prints 0-based bytes.
    #[test]
    fn prometheus_expansion_cases() {
        assert_eq!(expand("plain text", Value::Nil), "plain text");
        assert_eq!(expand("{{ 1 }}", Value::Nil), "1");
        assert_eq!(expand(r#"{{ "<b>" }}"#, Value::Nil), "<b>");
        assert_eq!(
            expand(
                r#"{{define "x"}}{{.arg0}} {{.arg1}}{{end}}{{template "x" (args 1 "2")}}"#,
                Value::Nil
            ),
            "1 2"
        );
        assert_eq!(
            expand(r#"{{ reReplaceAll "(a)b" "x$1" "ab" }}"#, Value::Nil),
            "xa"
        );
        assert_eq!(
            expand(r#"{{ "aa bb CC" | title }}"#, Value::Nil),
            "Aa Bb CC"
        );
        assert_eq!(
            expand(r#"{{ "aa bb CC" | toUpper }}"#, Value::Nil),
            "AA BB CC"
        );
        assert_eq!(
            expand(r#"{{ "aA bB CC" | toLower }}"#, Value::Nil),
            "aa bb cc"
        );
        assert_eq!(
            expand(r#"{{ match "a+" "aa" }} {{ match "a+" "b" }}"#, Value::Nil),
            "true false"
        );
        assert_eq!(
            expand(r#"{{ graphLink "up" }}"#, Value::Nil),
            "/graph?g0.expr=up&g0.tab=0"
        );
        assert_eq!(
            expand(r#"{{ tableLink "up" }}"#, Value::Nil),
            "/graph?g0.expr=up&g0.tab=1"
        );
        assert_eq!(expand("{{ pathPrefix }}", Value::Nil), "/path/prefix");
        assert_eq!(expand("{{ externalURL }}", Value::Nil), EXT_URL);
        assert_eq!(
            expand(
                r#"{{ printf "%0.2f" (parseDuration "1h2m10ms") }}"#,
                Value::Nil
            ),
            "3720.01"
        );
        assert_eq!(expand("{{ .Foo }}", Value::Nil), "<no value>");
        assert_eq!(
            expand(r#"{{ "foo.example.com:12345" | stripPort }}"#, Value::Nil),
            "foo.example.com"
        );
        assert_eq!(
            expand(r#"{{ "[2001:0DB8::1]:12345" | stripPort }}"#, Value::Nil),
            "2001:0DB8::1"
        );
        assert_eq!(
            expand(r#"{{ "foo.example.com:12345" | stripDomain }}"#, Value::Nil),
            "foo:12345"
        );
        assert_eq!(
            expand(r#"{{ "192.0.2.1:12345" | stripDomain }}"#, Value::Nil),
            "192.0.2.1:12345"
        );
    }

    #[test]
    fn prometheus_parse_failures() {
        assert_eq!(
            fails("{{", Value::Nil),
            "<error expanding template: error parsing template test: template: test:1:1: unclosed action>"
        );
    }

    #[test]
    fn prometheus_query_cases() {
        let m = |inst: &str, v| sample(&[("__name__", "metric"), ("instance", inst)], v);
        let run = |t: &str, q: Vec<QuerySample>| expand_with(t, Value::Nil, q).unwrap();
        assert_eq!(
            run(
                r#"{{ query "1.5" | first | value }}"#,
                vec![sample(&[], 1.5)]
            ),
            "1.5"
        );
        assert_eq!(
            run(
                r#"{{ query "metric{instance='a'}" | first | value }}"#,
                vec![m("a", 11.0)]
            ),
            "11"
        );
        assert_eq!(
            run(
                r#"{{ query "metric{instance='a'}" | first | label "instance" }}"#,
                vec![m("a", 11.0)]
            ),
            "a"
        );
        assert_eq!(
            run(
                r#"{{ query "metric{__value__='a'}" | first | strvalue }}"#,
                vec![sample(&[("__name__", "metric"), ("__value__", "a")], 11.0)]
            ),
            "a"
        );
        assert_eq!(
            run(
                r#"{{ query "metric{instance='a'}" | first | label "foo" }}"#,
                vec![m("a", 11.0)]
            ),
            ""
        );
        assert_eq!(
            run(
                r#"{{ $x := query "metric" | first }}{{ $x.Labels.foo }}"#,
                vec![m("a", 11.0)]
            ),
            ""
        );
        assert_eq!(
            run(
                r#"{{ range query "metric" | sortByLabel "instance" }}{{.Labels.instance}}:{{.Value}}: {{end}}"#,
                vec![m("b", 21.0), m("a", 11.0)]
            ),
            "a:11: b:21: "
        );
        assert_eq!(
            expand_with(r#"{{ query "missing" | first }}"#, Value::Nil, vec![]).unwrap_err(),
            r#"<error expanding template: error executing template test: template: test:1:22: executing "test" at <first>: error calling first: first() called on vector with no elements>"#
        );
        let e = expand_with(r#"{{ (query "missing").banana }}"#, Value::Nil, vec![]).unwrap_err();
        assert!(
            e.ends_with("can't evaluate field banana in type template.queryResult>"),
            "{e}"
        );
    }

    #[test]
    fn prometheus_humanize_cases() {
        let each = |f: &str, input: Value| {
            expand(
                &format!("{{{{ range . }}}}{{{{ {f} . }}}}:{{{{ end }}}}"),
                input,
            )
        };
        assert_eq!(
            each("humanize", floats(&[0.0, 1.0, 1234567.0, 0.12])),
            "0:1:1.235M:120m:"
        );
        assert_eq!(
            each("humanize", strs(&["0.0", "1.0", "1234567.0", ".12"])),
            "0:1:1.235M:120m:"
        );
        assert_eq!(
            each("humanize", ints(&[0, -1, 1, 1234567, i64::MAX])),
            "0:-1:1:1.235M:9.223E:"
        );
        assert_eq!(
            each("humanize1024", floats(&[0.0, 1.0, 1048576.0, 0.12])),
            "0:1:1Mi:0.12:"
        );
        assert_eq!(
            each("humanize1024", strs(&["0.0", "1.0", "1048576.0", ".12"])),
            "0:1:1Mi:0.12:"
        );
        assert_eq!(
            each("humanize1024", ints(&[0, -1, 1, 1234567, i64::MAX])),
            "0:-1:1:1.177Mi:8Ei:"
        );
        assert_eq!(
            each(
                "humanizeDuration",
                floats(&[
                    0.0,
                    1.0,
                    60.0,
                    3600.0,
                    86400.0,
                    86400.0 + 3600.0,
                    -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0),
                    899.99
                ])
            ),
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:"
        );
        assert_eq!(
            each("humanizeDuration", strs(&["0", "1", "60", "3600", "86400"])),
            "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"
        );
        assert_eq!(
            each(
                "humanizeDuration",
                floats(&[0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345])
            ),
            "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"
        );
        assert_eq!(
            each("humanizeDuration", ints(&[0, -1, 1, 1234567])),
            "0s:-1s:1s:14d 6h 56m 7s:"
        );
        let all = "{{ range . }}{{ humanize . }}:{{ humanize1024 . }}:{{ humanizeDuration . }}:{{humanizeTimestamp .}}:{{ end }}";
        let want = "+Inf:+Inf:+Inf:+Inf:-Inf:-Inf:-Inf:-Inf:NaN:NaN:NaN:NaN:";
        assert_eq!(
            expand(all, floats(&[f64::INFINITY, f64::NEG_INFINITY, f64::NAN])),
            want
        );
        assert_eq!(expand(all, strs(&["+Inf", "-Inf", "NaN"])), want);
        assert_eq!(
            expand(
                "{{ -0.22222 | humanizePercentage }}:{{ 0.0 | humanizePercentage }}:{{ 0.1234567 | humanizePercentage }}:{{ 1.23456 | humanizePercentage }}",
                Value::Nil
            ),
            "-22.22%:0%:12.35%:123.5%"
        );
        assert_eq!(
            each("humanizePercentage", ints(&[0, -1, 1, 1234567, i64::MAX])),
            "0%:-100%:100%:1.235e+08%:9.223e+20%:"
        );
        assert_eq!(
            expand(
                r#"{{ "-0.22222" | humanizePercentage }}:{{ "0.0" | humanizePercentage }}:{{ "0.1234567" | humanizePercentage }}:{{ "1.23456" | humanizePercentage }}"#,
                Value::Nil
            ),
            "-22.22%:0%:12.35%:123.5%"
        );
        assert_eq!(
            each("humanizeTimestamp", ints(&[0, -1, 1, 1234567, 9223372036])),
            "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:"
        );
        assert_eq!(
            expand("{{ 1435065584.128 | humanizeTimestamp }}", Value::Nil),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            expand(r#"{{ "1435065584.128" | humanizeTimestamp }}"#, Value::Nil),
            "2015-06-23 13:19:44.128 +0000 UTC"
        );
        assert_eq!(
            expand(
                r#"{{ (1435065584.128 | toTime).Format "2006" }}"#,
                Value::Nil
            ),
            "2015"
        );
        assert_eq!(
            expand(
                r#"{{ ("1435065584.128" | toTime).Format "2006" }}"#,
                Value::Nil
            ),
            "2015"
        );
    }

    #[test]
    fn prometheus_humanize_errors() {
        for f in ["humanize", "humanize1024", "humanizeDuration"] {
            assert_eq!(
                fails(&format!(r#"{{{{ {f} "one" }}}}"#), Value::Nil),
                format!(
                    r#"<error expanding template: error executing template test: template: test:1:4: executing "test" at <{f} "one">: error calling {f}: strconv.ParseFloat: parsing "one": invalid syntax>"#
                )
            );
        }
        assert_eq!(
            fails(r#"{{ "one" | humanizePercentage }}"#, Value::Nil),
            r#"<error expanding template: error executing template test: template: test:1:12: executing "test" at <humanizePercentage>: error calling humanizePercentage: strconv.ParseFloat: parsing "one": invalid syntax>"#
        );
        assert_eq!(
            fails(
                "{{ range . }}{{ humanizeTimestamp . }}:{{ end }}",
                ints(&[i64::MIN, i64::MAX])
            ),
            r#"<error expanding template: error executing template test: template: test:1:17: executing "test" at <humanizeTimestamp .>: error calling humanizeTimestamp: -9.223372036854776e+18 cannot be represented as a nanoseconds timestamp since it overflows int64>"#
        );
    }

    #[test]
    fn missing_keys_by_option() {
        let data = Value::string_map([("a", "1")]);
        let t = Template::parse_with_funcs("t", "[{{ .b }}]", FuncSet::builtins()).unwrap();
        let run = |mk| {
            let env = ExecEnv::new(&NoQueries).with_missing_key(mk);
            t.execute_value(data.clone(), Vec::new(), &env)
        };
        assert_eq!(run(MissingKey::Invalid).unwrap(), "[<no value>]");
        assert_eq!(run(MissingKey::Zero).unwrap(), "[]");
        assert_eq!(
            run(MissingKey::Error).unwrap_err().to_string(),
            r#"template: t:1:5: executing "t" at <.b>: map has no entry for key "b""#
        );
        let e = expand_with("{{ .Foo }}", Value::Nil, vec![]).unwrap();
        assert_eq!(e, "<no value>");
    }

    fn go(text: &str, dot: Value) -> String {
        let t = Template::parse_with_funcs("go", text, FuncSet::builtins())
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let env = ExecEnv::new(&NoQueries).with_missing_key(MissingKey::Invalid);
        t.execute_value(dot, Vec::new(), &env)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn go_err(text: &str, dot: Value) -> String {
        let t = Template::parse_with_funcs("go", text, FuncSet::builtins())
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let env = ExecEnv::new(&NoQueries).with_missing_key(MissingKey::Invalid);
        match t.execute_value(dot, Vec::new(), &env) {
            Ok(s) => panic!("{text}: expected an error, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn data() -> Value {
        Value::map([
            (
                "Labels",
                Value::string_map([("b", "2"), ("a", "1"), ("c", "3")]),
            ),
            ("List", strs(&["x", "y", "z"])),
            ("Empty", Value::list([])),
            ("N", Value::Int(3)),
            ("F", Value::Float(2.5)),
            ("S", Value::from("str")),
            ("T", Value::Bool(true)),
            (
                "Nested",
                Value::map([("Inner", Value::string_map([("k", "v")]))]),
            ),
        ])
    }

    #[test]
    fn go_text_and_trim_and_comments() {
        assert_eq!(go("a  {{- 1 -}}  b", Value::Nil), "a1b");
        assert_eq!(go("a {{- /* note */ -}}\n b", Value::Nil), "ab");
        assert_eq!(go("a{{/* c */}}b", Value::Nil), "ab");
        assert_eq!(go("{{ -1 }} |{{- 2}}", Value::Nil), "-1 |2");
        assert_eq!(go("{{ -1 }} {{- 2}}", Value::Nil), "-12");
    }

    #[test]
    fn go_fields_variables_and_pipelines() {
        let d = data();
        assert_eq!(go("{{ .Labels.a }}{{ .Nested.Inner.k }}", d.clone()), "1v");
        assert_eq!(
            go("{{ $x := .Labels }}{{ $x.b }}{{ $.S }}", d.clone()),
            "2str"
        );
        assert_eq!(
            go(
                "{{ $x := 1 }}{{ if .T }}{{ $x = 2 }}{{ end }}{{ $x }}",
                d.clone()
            ),
            "2"
        );
        assert_eq!(go(r#"{{ .S | printf "%s-%s" "a" }}"#, d.clone()), "a-str");
        assert_eq!(go(r#"{{ (printf "%d" 5) | len }}"#, d.clone()), "1");
        assert_eq!(go("{{ (.Nested).Inner.k }}", d.clone()), "v");
        assert_eq!(
            go("{{ . }}", Value::string_map([("b", "2"), ("a", "1")])),
            "map[a:1 b:2]"
        );
        assert_eq!(go("{{ .List }}", d.clone()), "[x y z]");
        assert_eq!(
            go(
                "{{ .F }} {{ 1.5e3 }} {{ 0x10 }} {{ 'a' }} {{ true }} {{ \"q\" }} {{ `r` }}",
                d.clone()
            ),
            "2.5 1500 16 97 true q r"
        );
        assert_eq!(go("{{ .Missing }}", d.clone()), "<no value>");
        assert_eq!(go("{{ .Missing.Deeper }}", d.clone()), "<no value>");
    }

    #[test]
    fn go_control_structures() {
        let d = data();
        assert_eq!(go("{{ if .T }}y{{ else }}n{{ end }}", d.clone()), "y");
        assert_eq!(
            go(
                "{{ if .Empty }}y{{ else if .N }}n{{ .N }}{{ end }}",
                d.clone()
            ),
            "n3"
        );
        assert_eq!(
            go(
                "{{ if 0 }}a{{ else if \"\" }}b{{ else }}c{{ end }}",
                d.clone()
            ),
            "c"
        );
        assert_eq!(go("{{ with .Labels }}{{ .a }}{{ end }}", d.clone()), "1");
        assert_eq!(
            go("{{ with .Empty }}x{{ else }}empty{{ end }}", d.clone()),
            "empty"
        );
        assert_eq!(
            go(
                "{{ with .Missing }}x{{ else with .S }}{{ . }}{{ end }}",
                d.clone()
            ),
            "str"
        );
        assert_eq!(
            go("{{ range .List }}{{ . }},{{ end }}", d.clone()),
            "x,y,z,"
        );
        assert_eq!(
            go(
                "{{ range $i, $v := .List }}{{ $i }}={{ $v }} {{ end }}",
                d.clone()
            ),
            "0=x 1=y 2=z "
        );
        // Maps are visited in sorted key order.
        assert_eq!(
            go(
                "{{ range $k, $v := .Labels }}{{ $k }}{{ $v }}{{ end }}",
                d.clone()
            ),
            "a1b2c3"
        );
        assert_eq!(
            go("{{ range $v := .Labels }}{{ $v }}{{ end }}", d.clone()),
            "123"
        );
        assert_eq!(
            go("{{ range .Empty }}x{{ else }}none{{ end }}", d.clone()),
            "none"
        );
        assert_eq!(
            go(
                "{{ $v := 0 }}{{ range $v = .List }}{{ end }}{{ $v }}",
                d.clone()
            ),
            "z"
        );
        assert_eq!(
            go(
                "{{ range .List }}{{ if eq . \"y\" }}{{ continue }}{{ end }}{{ . }}{{ end }}",
                d.clone()
            ),
            "xz"
        );
        assert_eq!(
            go(
                "{{ range .List }}{{ if eq . \"y\" }}{{ break }}{{ end }}{{ . }}{{ end }}",
                d.clone()
            ),
            "x"
        );
        assert_eq!(go("{{ range 3 }}{{ . }}{{ end }}", d.clone()), "012");
        assert_eq!(
            go("{{ range .Missing }}x{{ else }}nil{{ end }}", d.clone()),
            "nil"
        );
        assert_eq!(
            go_err("{{ range .S }}{{ end }}", d.clone()),
            r#"template: go:1:10: executing "go" at <.S>: range can't iterate over str"#
        );
        // Variables declared inside a block end with it.
        assert_eq!(
            go(
                "{{ $x := 1 }}{{ range .List }}{{ $x := . }}{{ end }}{{ $x }}",
                d.clone()
            ),
            "1"
        );
    }

    #[test]
    fn go_define_template_block() {
        let d = data();
        assert_eq!(
            go(
                r#"{{ define "row" }}<{{ . }}>{{ end }}{{ range .List }}{{ template "row" . }}{{ end }}"#,
                d.clone()
            ),
            "<x><y><z>"
        );
        assert_eq!(
            go(r#"{{ block "b" .S }}[{{ . }}]{{ end }}"#, d.clone()),
            "[str]"
        );
        assert_eq!(
            go(
                r#"{{ define "t" }}{{ $ }}{{ end }}{{ template "t" }}"#,
                d.clone()
            ),
            "<no value>"
        );
        assert_eq!(
            go_err(r#"{{ template "nope" }}"#, d.clone()),
            r#"template: go:1:4: executing "go" at <template>: template: no template "nope" associated with template "go""#
        );
        assert!(
            go_err(
                r#"{{ define "r" }}{{ template "r" }}{{ end }}{{ template "r" }}"#,
                d.clone()
            )
            .contains("exceeded maximum template depth")
        );
        // Sets: a later text sees earlier definitions.
        let base = Template::parse_with_funcs(
            "defs",
            r#"{{ define "greet" }}hi {{ . }}{{ end }}"#,
            FuncSet::alertmanager(),
        )
        .unwrap();
        let t = base
            .add("subject", r#"{{ template "greet" .S }}!"#)
            .unwrap();
        let env = ExecEnv::new(&NoQueries).with_missing_key(MissingKey::Invalid);
        assert_eq!(
            t.execute_value(d.clone(), Vec::new(), &env).unwrap(),
            "hi str!"
        );
        assert_eq!(
            base.execute_named("greet", Value::from("you"), &env)
                .unwrap(),
            "hi you"
        );
        // An error inside a definition names that definition.
        let t = base
            .add(
                "bad",
                r#"{{ define "inner" }}{{ .X.Y }}{{ end }}{{ template "inner" .S }}"#,
            )
            .unwrap();
        assert_eq!(
            t.execute_value(d, Vec::new(), &env)
                .unwrap_err()
                .to_string(),
            r#"template: bad:1:24: executing "inner" at <.X.Y>: can't evaluate field X in type string"#
        );
    }

    #[test]
    fn go_builtins() {
        let d = data();
        assert_eq!(
            go(
                "{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 5 }} {{ not .T }}",
                d.clone()
            ),
            "0 2  5 false"
        );
        // and/or stop evaluating at the deciding argument.
        assert_eq!(go("{{ or 1 (index .List 99) }}", d.clone()), "1");
        assert_eq!(
            go("{{ len .List }} {{ len .Labels }} {{ len .S }}", d.clone()),
            "3 3 3"
        );
        assert_eq!(
            go(
                "{{ index .List 1 }} {{ index .Labels \"b\" }} {{ index .Nested \"Inner\" \"k\" }}",
                d.clone()
            ),
            "y 2 v"
        );
        assert_eq!(go("[{{ index .Labels \"zz\" }}]", d.clone()), "[]");
        assert_eq!(go("[{{ index . \"zz\" }}]", d.clone()), "[<nil>]");
        let s = Value::structure("T", [("A", Value::Int(1))]);
        assert_eq!(
            go_err("{{ index . \"A\" }}", s),
            r#"template: go:1:4: executing "go" at <index . "A">: error calling index: can't index item of type T"#
        );
        assert_eq!(
            go(
                "{{ slice .S 1 }} {{ slice .List 1 2 }} {{ slice .S }}",
                d.clone()
            ),
            "tr [y] str"
        );
        assert_eq!(
            go(
                "{{ print 1 2 \"a\" 3 }}|{{ println \"a\" 1 }}|{{ printf \"%5.1f|%-4d|%q\" .F .N .S }}",
                d.clone()
            ),
            "1 2a3|a 1\n|  2.5|3   |\"str\""
        );
        assert_eq!(
            go(
                "{{ eq .N 3 }} {{ eq .S \"a\" \"str\" }} {{ ne .S \"str\" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt .F 3.0 }} {{ ge \"b\" \"a\" }}",
                d.clone()
            ),
            "true true false true true false true"
        );
        assert_eq!(
            go(
                r#"{{ html "<a href='x'>&</a>" }} {{ js "it's <b>" }} {{ urlquery "a b&c" }}"#,
                d.clone()
            ),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt; it\\'s \\u003Cb\\u003E a+b%26c"
        );
        let with_fn = Value::map([("F", Value::func(|a| Ok(Value::Int(a.len() as i64))))]);
        assert_eq!(go("{{ call .F 1 2 }}", with_fn), "2");
        assert_eq!(
            go_err("{{ index .List 5 }}", d.clone()),
            r#"template: go:1:4: executing "go" at <index .List 5>: error calling index: index out of range: 5"#
        );
        assert_eq!(
            go_err("{{ eq .N .F }}", d.clone()),
            r#"template: go:1:4: executing "go" at <eq .N .F>: error calling eq: incompatible types for comparison"#
        );
        assert_eq!(
            go_err("{{ len 3 }}", d.clone()),
            r#"template: go:1:4: executing "go" at <len 3>: error calling len: len of type int"#
        );
        assert_eq!(
            go_err("{{ not 1 2 }}", d.clone()),
            r#"template: go:1:4: executing "go" at <not 1 2>: wrong number of args for not: want 1 got 2"#
        );
        assert_eq!(
            go_err("{{ nil }}", d.clone()),
            r#"template: go:1:4: executing "go" at <nil>: nil is not a command"#
        );
        assert_eq!(
            go_err("{{ .S 1 }}", d),
            r#"template: go:1:4: executing "go" at <.S 1>: S is not a method but has arguments"#
        );
    }

    #[test]
    fn methods_expose_alertmanager_style_data() {
        let alert = |status: &str, a: &str| {
            Value::structure(
                "template.Alert",
                [
                    ("Status", Value::from(status)),
                    ("Labels", Value::kv([("a", a)])),
                ],
            )
        };
        let dot = Value::structure(
            "template.Data",
            [
                (
                    "Alerts",
                    Value::alerts([alert("firing", "1"), alert("resolved", "2")]),
                ),
                (
                    "CommonLabels",
                    Value::kv([("job", "api"), ("alertname", "X")]),
                ),
                ("GroupLabels", Value::kv([("job", "api")])),
                ("Status", Value::from("firing")),
            ],
        );
        let t = Template::parse_with_funcs(
            "am",
            r#"[{{ .Status | toUpper }}:{{ len .Alerts.Firing }}] {{ range .Alerts.Firing }}{{ .Labels.a }}{{ end }} {{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}{{ join "," (.CommonLabels.Remove .GroupLabels.Names).Names }} {{ .CommonLabels.nope }}"#,
            FuncSet::alertmanager(),
        )
        .unwrap();
        let env = ExecEnv::new(&NoQueries).with_missing_key(MissingKey::Invalid);
        assert_eq!(
            t.execute_value(dot, Vec::new(), &env).unwrap(),
            "[FIRING:1] 1 alertname=X job=api alertname <no value>"
        );
        let t = Template::parse_with_funcs(
            "am",
            r#"{{ date "2006-01-02 15:04" (toTime 1435065584) }} {{ stringSlice "a" "b" | join "+" }} {{ "  x " | trimSpace }}"#,
            FuncSet::alertmanager(),
        )
        .unwrap();
        assert_eq!(
            t.execute_value(Value::Nil, Vec::new(), &env).unwrap(),
            "2015-06-23 13:19 a+b x"
        );
        let t = Template::parse_with_funcs(
            "am",
            "{{ since (toTime 1435065584) }}",
            FuncSet::alertmanager(),
        )
        .unwrap();
        assert!(t.execute_value(Value::Nil, Vec::new(), &env).is_err());
        let now = chrono::DateTime::from_timestamp(1435065584 + 3725, 0).unwrap();
        let env = ExecEnv::new(&NoQueries).with_now(now);
        assert_eq!(
            t.execute_value(Value::Nil, Vec::new(), &env).unwrap(),
            "1h2m5s"
        );
        // Alertmanager has no query engine: the name is not even known.
        assert!(
            Template::parse_with_funcs("am", r#"{{ query "up" }}"#, FuncSet::alertmanager())
                .is_err()
        );
    }

    #[test]
    fn function_sets_are_extensible() {
        let mut f = FuncSet::prometheus();
        f.insert("double", |_, a| match a {
            [Value::Float(x)] => Ok(Value::Float(x * 2.0)),
            _ => Err(FuncError::Usage("double wants one float".into())),
        });
        let t = Template::parse_with_funcs("t", "{{ 1.5 | double }}", f).unwrap();
        let env = ExecEnv::new(&NoQueries).with_missing_key(MissingKey::Zero);
        assert_eq!(t.execute_value(Value::Nil, Vec::new(), &env).unwrap(), "3");
        assert!(Template::parse("t", "{{ double 1 }}").is_err());
    }

    #[test]
    fn html_escaping_mode() {
        let run = |t: &str, dot: Value| {
            let t = Template::parse_with_funcs("h", t, FuncSet::prometheus()).unwrap();
            let env = ExecEnv::new(&NoQueries).with_html_escaping(true);
            t.execute_value(dot, Vec::new(), &env).unwrap()
        };
        // Prometheus' ExpandHTML cases.
        assert_eq!(run(r#"{{ "<b>" }}"#, Value::Nil), "&lt;b&gt;");
        assert_eq!(run(r#"{{ "<b>" | safeHtml }}"#, Value::Nil), "<b>");
        assert_eq!(run("{{ .Foo }}", Value::Nil), "");
        assert_eq!(
            run(
                r#"<a title="{{ . }}">{{ 1 }}</a>"#,
                Value::from("\"x' & 1+1")
            ),
            "<a title=\"&#34;x&#39; &amp; 1&#43;1\">1</a>"
        );
        // Text outside actions is the author's and stays as written.
        assert_eq!(run("<b>{{ \"&\" }}</b>", Value::Nil), "<b>&amp;</b>");
    }

    #[test]
    fn templates_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Template>();
        assert_send_sync::<FuncSet>();
        assert_send_sync::<Value>();
    }

    #[test]
    fn common_annotation_idioms() {
        let mut d = alert_data();
        d.value = 0.000_123_4;
        let run =
            |t: &str, d: &AlertTemplateData| expand_alert_template("a", t, d, &NoQueries).unwrap();
        assert_eq!(run(r#"{{ $value | printf "%.2f" }}"#, &d), "0.00");
        assert_eq!(
            run("{{ humanize $value }}|{{ $value }}", &d),
            "123.4u|0.0001234"
        );
        assert_eq!(run(r#"{{ printf "%.4g" $value }}"#, &d), "0.0001234");
        d.value = 0.973;
        assert_eq!(run("{{ $value | humanizePercentage }}", &d), "97.3%");
        assert_eq!(
            run(
                r#"{{ if gt $value 0.9 }}high{{ else }}ok{{ end }} on {{ $labels.instance | stripPort }}"#,
                &d
            ),
            "high on web-1"
        );
        assert_eq!(
            run(
                r#"{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}"#,
                &d
            ),
            "alertname=HighLatency;instance=web-1:9100;"
        );
        assert_eq!(
            run(
                r#"{{ reReplaceAll ":[0-9]+$" "" $labels.instance | toUpper }}"#,
                &d
            ),
            "WEB-1"
        );
        let e = Template::parse("a", "ok\n{{ $undefined }}").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"template: a:2:4: undefined variable "$undefined""#
        );
    }

    #[test]
    fn worst_case_recursion_is_an_error_not_a_stack_overflow() {
        let nest = 98;
        let text = format!(
            r#"{{{{define "r"}}}}{}{{{{template "r" (slice . 1)}}}}{}{{{{end}}}}{{{{template "r" .}}}}"#,
            "{{if .}}".repeat(nest),
            "{{end}}".repeat(nest)
        );
        let t = Template::parse_with_funcs("deep", &text, FuncSet::builtins()).unwrap();
        let dot = Value::list((0..10_000).map(Value::Int));
        // Run on a thread with a small stack, like a busy runtime worker.
        let res = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let env = ExecEnv::new(&NoQueries);
                t.execute_value(dot, Vec::new(), &env)
                    .map_err(|e| e.to_string())
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(res.unwrap_err().contains("exceeded maximum template depth"));
    }

    #[test]
    fn output_is_bounded() {
        let t = Template::parse_with_funcs(
            "t",
            r#"{{ range 100000 }}{{ range 100 }}xxxxxxxxxx{{ end }}{{ end }}"#,
            FuncSet::builtins(),
        )
        .unwrap();
        let env = ExecEnv::new(&NoQueries).with_missing_key(MissingKey::Zero);
        let e = t.execute_value(Value::Nil, Vec::new(), &env).unwrap_err();
        assert!(e.to_string().contains("output exceeds the limit"), "{e}");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod prop_tests {
    use super::*;
    use proptest::prelude::*;

    /// Fragments that combine into plausible, often broken, templates.
    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "{{",
            "}}",
            "{{- ",
            " -}}",
            "{{/* c */}}",
            "/*",
            "*/",
            " ",
            "\n",
            "é",
            "if",
            "else",
            "end",
            "range",
            "with",
            "define",
            "template",
            "block",
            "break",
            "continue",
            "$",
            "$x",
            " := ",
            " = ",
            ",",
            "|",
            "(",
            ")",
            ".",
            ".A",
            ".Labels",
            "$labels",
            "$value",
            "\"s\"",
            "`r`",
            "'c'",
            "'",
            "\"",
            "1",
            "-2.5e3",
            "0x1F",
            "true",
            "nil",
            "printf",
            "\"%d %s %.2f\"",
            "humanize",
            "len",
            "index",
            "slice",
            "eq",
            "and",
            "or",
            "not",
            "toUpper",
            "query",
            "first",
            "args",
            "text ",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever the input, parsing and executing return instead of
        /// panicking, and a parse error points inside the text.
        #[test]
        fn parse_and_execute_never_panic(parts in prop::collection::vec(fragment(), 0..24)) {
            let text: String = parts.concat();
            match Template::parse("p", &text) {
                Ok(t) => {
                    let data = AlertTemplateData {
                        labels: Labels::from_pairs([("a", "1")]),
                        external_labels: Labels::empty(),
                        external_url: String::new(),
                        value: 1.5,
                    };
                    let _ = t.execute(&data, &NoQueries);
                }
                Err(TemplateError::Parse { line, column, .. }) => {
                    prop_assert!(line >= 1 && line <= text.matches('\n').count() + 1);
                    let line_len = text.split('\n').nth(line - 1).map_or(0, |l| l.chars().count());
                    prop_assert!(column >= 1 && column <= line_len + 1, "{column} > {line_len} in {text:?}");
                }
                Err(e) => prop_assert!(false, "unexpected error kind {e}"),
            }
        }
    }
}
