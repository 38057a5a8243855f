//! The executor: walks a parsed template over a [`Value`], following Go's
//! `text/template/exec.go` (truthiness, variable scopes, `range` order and
//! `else`, `break`/`continue`, lazy `and`/`or`, method-before-field lookup,
//! the `missingkey` option) and Go's error texts.
//!
//! Output and template recursion are bounded so a hostile or buggy template
//! cannot exhaust memory or the stack.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::funcs::{FuncError, FuncSet, html_template_escape};
use super::parse::{Arg, ArgKind, Command, List, Node, Pipe};
use super::value::{MapKind, MissingKey, Value};
use super::{TemplateContext, TemplateError, line_col};

/// Largest output one execution may produce.
pub(crate) const MAX_OUTPUT_BYTES: usize = 4 << 20;
/// Deepest `{{template}}` nesting (Go allows 100000; recursion here uses the
/// native stack, so the bound is lower).
const MAX_DEPTH: usize = 100;
/// Deepest nesting of lists and pipelines being evaluated, across template
/// calls: what actually bounds the native stack the executor uses. Chosen
/// with a 2x margin for unoptimised builds on a 2 MiB thread stack.
const MAX_EVAL_DEPTH: usize = 150;

/// A named body with the source it was parsed from (for positions).
#[derive(Debug)]
pub(crate) struct Def {
    pub list: List,
    pub src: Arc<str>,
    /// The name of the text it came from (the `ParseName` in Go's errors).
    pub source_name: String,
}

/// Everything an execution reads besides dot.
pub struct ExecEnv<'a> {
    pub context: &'a dyn TemplateContext,
    /// Prometheus' `--web.external-url` (for `externalURL`, `pathPrefix`).
    pub external_url: &'a str,
    pub missing_key: MissingKey,
    /// HTML-escape every action's output except trusted HTML
    /// ([`Value::Html`], from `safeHtml`), and print nothing for a missing
    /// value, as Go's `html/template` does in HTML text and quoted
    /// attributes. (Unlike `html/template` it does not switch escapers
    /// inside `<script>`, `<style>` or URL attributes.)
    pub escape_html: bool,
    /// The current time, for Alertmanager's `since`; the engine never reads
    /// the clock, so without it `since` fails.
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

impl<'a> ExecEnv<'a> {
    /// Plain-text execution: no external URL, missing keys print
    /// `<no value>` (Go's defaults).
    pub fn new(context: &'a dyn TemplateContext) -> Self {
        ExecEnv {
            context,
            external_url: "",
            missing_key: MissingKey::Invalid,
            escape_html: false,
            now: None,
        }
    }

    pub fn with_now(mut self, now: chrono::DateTime<chrono::Utc>) -> Self {
        self.now = Some(now);
        self
    }

    pub fn with_external_url(mut self, url: &'a str) -> Self {
        self.external_url = url;
        self
    }

    pub fn with_missing_key(mut self, missing_key: MissingKey) -> Self {
        self.missing_key = missing_key;
        self
    }

    pub fn with_html_escaping(mut self, on: bool) -> Self {
        self.escape_html = on;
        self
    }
}

pub(crate) struct Exec<'a> {
    pub env: &'a ExecEnv<'a>,
    pub funcs: &'a FuncSet,
    pub defs: &'a BTreeMap<String, Arc<Def>>,
    pub out: String,
    vars: Vec<(String, Value)>,
    depth: usize,
    eval_depth: usize,
    /// The template being executed and its source, for error positions.
    name: String,
    def: Arc<Def>,
    /// The node being evaluated: byte span in `def.src`.
    at: (usize, usize),
}

enum Flow {
    Normal,
    Break,
    Continue,
}

type EResult<T> = Result<T, TemplateError>;

impl<'a> Exec<'a> {
    pub(crate) fn new(
        env: &'a ExecEnv<'a>,
        funcs: &'a FuncSet,
        defs: &'a BTreeMap<String, Arc<Def>>,
        name: &str,
        def: Arc<Def>,
        dot: Value,
        vars: Vec<(String, Value)>,
    ) -> Self {
        let mut all = vec![("$".to_string(), dot)];
        all.extend(vars);
        Exec {
            env,
            funcs,
            defs,
            out: String::new(),
            vars: all,
            depth: 0,
            eval_depth: 0,
            name: name.to_string(),
            def,
            at: (0, 0),
        }
    }

    pub(crate) fn run(&mut self) -> EResult<()> {
        let def = Arc::clone(&self.def);
        let dot = self.vars[0].1.clone();
        self.walk(&def.list, &dot).map(|_| ())
    }

    fn error<T>(&self, message: impl Into<String>) -> EResult<T> {
        let src = &self.def.src;
        let (line, column) = line_col(src, self.at.0);
        let ctx = src.get(self.at.0..self.at.1.max(self.at.0)).unwrap_or("");
        let ctx = ctx.to_string();
        Err(TemplateError::Exec {
            name: self.def.source_name.clone(),
            executing: self.name.clone(),
            line,
            column,
            context: ctx,
            message: message.into(),
        })
    }

    fn write(&mut self, s: &str) -> EResult<()> {
        if self.out.len() + s.len() > MAX_OUTPUT_BYTES {
            return self.error(format!(
                "output exceeds the limit of {MAX_OUTPUT_BYTES} bytes"
            ));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk(&mut self, list: &List, dot: &Value) -> EResult<Flow> {
        self.enter()?;
        let res = self.walk_inner(list, dot);
        self.eval_depth -= 1;
        res
    }

    /// Counts one level of recursion; errors past the bound.
    fn enter(&mut self) -> EResult<()> {
        if self.eval_depth >= MAX_EVAL_DEPTH {
            return self.error(format!(
                "exceeded maximum template depth ({MAX_EVAL_DEPTH} nested evaluations)"
            ));
        }
        self.eval_depth += 1;
        Ok(())
    }

    fn walk_inner(&mut self, list: &List, dot: &Value) -> EResult<Flow> {
        for node in &list.0 {
            match self.node(node, dot)? {
                Flow::Normal => {}
                f => return Ok(f),
            }
        }
        Ok(Flow::Normal)
    }

    fn node(&mut self, node: &Node, dot: &Value) -> EResult<Flow> {
        match node {
            Node::Text(t) => self.write(t)?,
            Node::Action(pipe) => {
                let v = self.pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    let s = self.printable(&v)?;
                    self.write(&s)?;
                }
            }
            Node::If(c) | Node::With(c) => {
                let mark = self.vars.len();
                let v = self.pipeline(dot, &c.pipe)?;
                let res = if v.is_true() {
                    let inner = if matches!(node, Node::With(_)) {
                        v
                    } else {
                        dot.clone()
                    };
                    self.walk(&c.list, &inner)
                } else if let Some(e) = &c.else_list {
                    self.walk(e, dot)
                } else {
                    Ok(Flow::Normal)
                };
                self.vars.truncate(mark);
                return res;
            }
            Node::Range(c) => {
                let mark = self.vars.len();
                let res = self.range(c, dot);
                self.vars.truncate(mark);
                return res;
            }
            Node::Template { pos, name, pipe } => {
                self.at = (*pos, *pos + "template".len());
                let Some(def) = self.defs.get(name).cloned() else {
                    return self.error(format!(
                        "template: no template {name:?} associated with template {:?}",
                        self.name
                    ));
                };
                let new_dot = match pipe {
                    Some(p) => self.pipeline(dot, p)?,
                    None => Value::Missing,
                };
                if self.depth >= MAX_DEPTH {
                    return self.error(format!("exceeded maximum template depth ({MAX_DEPTH})"));
                }
                let saved_vars =
                    std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
                let saved_name = std::mem::replace(&mut self.name, name.clone());
                let saved_def = std::mem::replace(&mut self.def, Arc::clone(&def));
                self.depth += 1;
                let res = self.walk(&def.list, &new_dot);
                self.depth -= 1;
                self.vars = saved_vars;
                self.name = saved_name;
                self.def = saved_def;
                res?;
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, c: &super::parse::Control, dot: &Value) -> EResult<Flow> {
        let v = self.pipeline(dot, &c.pipe)?;
        let items: Vec<(Value, Value)> = match &v {
            Value::List(l) => l
                .items
                .iter()
                .enumerate()
                .map(|(i, v)| (Value::Int(i as i64), v.clone()))
                .collect(),
            Value::Map(m) if matches!(m.kind, MapKind::Map { .. }) => m
                .entries
                .iter()
                .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
                .collect(),
            Value::Int(n) => (0..*n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
            Value::Missing | Value::Nil => Vec::new(),
            other => {
                self.at = (c.pipe.pos, c.pipe.end);
                return self.error(format!("range can't iterate over {other}"));
            }
        };
        if items.is_empty() {
            if let Some(e) = &c.else_list {
                return self.walk(e, dot);
            }
            return Ok(Flow::Normal);
        }
        let decl = &c.pipe.decl;
        for (k, elem) in items {
            let mark = self.vars.len();
            // Declared (`:=`) variables were pushed by the pipeline and are
            // the innermost of their name; assigned (`=`) ones are outer
            // variables that keep the last element after the loop, as in Go.
            match decl.as_slice() {
                [v] => self.set_var(v, elem.clone()),
                [kn, vn] => {
                    self.set_var(kn, k);
                    self.set_var(vn, elem.clone());
                }
                _ => {}
            }
            let flow = self.walk(&c.list, &elem)?;
            self.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    /// Sets the innermost variable called `name` (`=`).
    fn set_var(&mut self, name: &str, v: Value) {
        if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
        }
    }

    fn lookup(&self, name: &str) -> EResult<Value> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => self.error(format!("undefined variable: {name}")),
        }
    }

    fn printable(&self, v: &Value) -> EResult<String> {
        match v {
            Value::Func(_) => self.error(format!("can't print value of type {}", v.type_name())),
            Value::Html(s) if self.env.escape_html => Ok(s.to_string()),
            Value::Missing if self.env.escape_html => Ok(String::new()),
            v if self.env.escape_html => Ok(html_template_escape(&v.to_string())),
            v => Ok(v.to_string()),
        }
    }

    fn pipeline(&mut self, dot: &Value, pipe: &Pipe) -> EResult<Value> {
        self.enter()?;
        let res = self.pipeline_inner(dot, pipe);
        self.eval_depth -= 1;
        res
    }

    fn pipeline_inner(&mut self, dot: &Value, pipe: &Pipe) -> EResult<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            value = Some(self.command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Missing);
        for v in &pipe.decl {
            if pipe.is_assign {
                self.set_var(v, value.clone());
            } else {
                self.vars.push((v.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn command(&mut self, dot: &Value, cmd: &Command, fin: Option<Value>) -> EResult<Value> {
        let Some(first) = cmd.args.first() else {
            return Ok(Value::Missing);
        };
        let rest = &cmd.args[1..];
        self.at = (cmd.pos, cmd.end);
        match &first.kind {
            ArgKind::Field(names) => self.field_chain(dot, dot.clone(), names, rest, fin),
            ArgKind::Chain(inner, names) => {
                let recv = self.arg(dot, inner)?;
                self.at = (cmd.pos, cmd.end);
                self.field_chain(dot, recv, names, rest, fin)
            }
            ArgKind::Identifier(name) => self.function(dot, name, cmd, rest, fin),
            ArgKind::Variable(name, fields) => {
                let v = self.lookup(name)?;
                if fields.is_empty() {
                    self.not_a_function(rest, &fin, &first.kind)?;
                    return Ok(v);
                }
                self.field_chain(dot, v, fields, rest, fin)
            }
            ArgKind::Pipe(p) => {
                self.not_a_function(rest, &fin, &first.kind)?;
                self.pipeline(dot, p)
            }
            ArgKind::Nil => self.error("nil is not a command"),
            kind => {
                self.not_a_function(rest, &fin, kind)?;
                self.arg(dot, first)
            }
        }
    }

    fn not_a_function(&self, rest: &[Arg], fin: &Option<Value>, kind: &ArgKind) -> EResult<()> {
        if !rest.is_empty() || fin.is_some() {
            let what = match kind {
                ArgKind::Dot => ".".to_string(),
                _ => {
                    let src = &self.def.src;
                    src.get(self.at.0..self.at.1).unwrap_or("").to_string()
                }
            };
            let what = what.split_whitespace().next().unwrap_or("").to_string();
            return self.error(format!("can't give argument to non-function {what}"));
        }
        Ok(())
    }

    fn field_chain(
        &mut self,
        dot: &Value,
        mut recv: Value,
        names: &[String],
        args: &[Arg],
        fin: Option<Value>,
    ) -> EResult<Value> {
        let missing = self.env.missing_key;
        let Some((last, init)) = names.split_last() else {
            return Ok(recv);
        };
        for n in init {
            recv = match recv.field(n, &[], missing) {
                Ok(v) => v,
                Err(e) => return self.error(e),
            };
        }
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(dot, a)?);
        }
        vals.extend(fin);
        match recv.field(last, &vals, missing) {
            Ok(v) => Ok(v),
            Err(e) => self.error(e),
        }
    }

    fn function(
        &mut self,
        dot: &Value,
        name: &str,
        cmd: &Command,
        args: &[Arg],
        fin: Option<Value>,
    ) -> EResult<Value> {
        if name == "and" || name == "or" {
            // Evaluated lazily: stops at the first argument deciding the result.
            let want = name == "or";
            if args.is_empty() && fin.is_none() {
                return self.error(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut last = Value::Missing;
            for a in args {
                last = self.arg(dot, a)?;
                if last.is_true() == want {
                    return Ok(last);
                }
            }
            if let Some(f) = fin {
                last = f;
            }
            return Ok(last);
        }
        let Some(f) = self.funcs.get(name) else {
            return self.error(format!("{name:?} is not a defined function"));
        };
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(dot, a)?);
        }
        vals.extend(fin);
        self.at = (cmd.pos, cmd.end);
        match f(self.env, &vals) {
            Ok(v) => Ok(v),
            Err(FuncError::Call(m)) => self.error(format!("error calling {name}: {m}")),
            Err(FuncError::Usage(m)) => self.error(m),
        }
    }

    fn arg(&mut self, dot: &Value, a: &Arg) -> EResult<Value> {
        let saved = self.at;
        self.at = (a.pos, a.end);
        let v = match &a.kind {
            ArgKind::Dot => dot.clone(),
            ArgKind::Nil => Value::Nil,
            ArgKind::Bool(b) => Value::Bool(*b),
            ArgKind::Str(s) => Value::from(s.as_str()),
            ArgKind::Number(n) => {
                if n.looks_float() {
                    Value::Float(n.float.unwrap_or(0.0))
                } else if let Some(i) = n.int {
                    Value::Int(i)
                } else if let Some(f) = n.float {
                    Value::Float(f)
                } else {
                    return self.error(format!("{} overflows int", n.text));
                }
            }
            ArgKind::Field(names) => self.field_chain(dot, dot.clone(), names, &[], None)?,
            ArgKind::Variable(name, fields) => {
                let v = self.lookup(name)?;
                self.field_chain(dot, v, fields, &[], None)?
            }
            ArgKind::Pipe(p) => self.pipeline(dot, p)?,
            ArgKind::Identifier(name) => {
                let cmd = Command {
                    pos: a.pos,
                    end: a.end,
                    args: Vec::new(),
                };
                self.function(dot, name, &cmd, &[], None)?
            }
            ArgKind::Chain(inner, names) => {
                let recv = self.arg(dot, inner)?;
                self.at = (a.pos, a.end);
                self.field_chain(dot, recv, names, &[], None)?
            }
        };
        self.at = saved;
        Ok(v)
    }
}
