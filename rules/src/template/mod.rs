//! Prometheus' template dialect (Go's `text/template` with Prometheus'
//! functions) for alert labels and annotations.
//!
//! CONTRACT (being written):
//! - `Template::parse(name, text) -> Result<Template, TemplateError>`; the
//!   error's Display names the line and column inside `text` and what was
//!   expected.
//! - `Template::execute(&self, data: &AlertTemplateData, ctx: &dyn TemplateContext)
//!   -> Result<String, TemplateError>` renders with `$labels`, `$value`,
//!   `$externalLabels`, `$externalURL`, `.Labels`, `.Value`, … as Prometheus
//!   does; `TemplateContext` gives `query` its evaluator.
