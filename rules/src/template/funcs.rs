//! Function sets: Go's `text/template` builtins, Prometheus' alert template
//! functions and Alertmanager's notification template functions.
//!
//! A [`FuncSet`] maps names to functions and is extensible
//! ([`FuncSet::insert`]); the parser checks names against the set a template
//! is parsed with, so a typo is a load-time error. Functions return
//! [`FuncError::Call`] for failures Go reports as `error calling NAME: …`
//! and [`FuncError::Usage`] for Go's argument errors (wrong count or type).
//! Outputs follow Prometheus' `template.go` to the character (`%.4g`, SI
//! prefixes, Go's `time.Time` printing).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, FixedOffset, Utc};
use regex::Regex;

use super::exec::ExecEnv;
use super::gofmt::{self, format_g};
use super::value::{MapKind, Value};

/// Why a function failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FuncError {
    /// The function ran and failed (Go: `error calling NAME: …`).
    Call(String),
    /// The arguments do not fit the function (Go's own message).
    Usage(String),
}

/// A template function.
pub type Func = Arc<dyn Fn(&ExecEnv<'_>, &[Value]) -> Result<Value, FuncError> + Send + Sync>;

/// Named functions callable from templates.
#[derive(Clone, Default)]
pub struct FuncSet {
    funcs: BTreeMap<String, Func>,
}

impl fmt::Debug for FuncSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.funcs.keys()).finish()
    }
}

type FResult = Result<Value, FuncError>;

impl FuncSet {
    /// Adds or replaces a function.
    pub fn insert(
        &mut self,
        name: &str,
        f: impl Fn(&ExecEnv<'_>, &[Value]) -> FResult + Send + Sync + 'static,
    ) -> &mut Self {
        self.funcs.insert(name.to_string(), Arc::new(f));
        self
    }

    pub fn contains(&self, name: &str) -> bool {
        self.funcs.contains_key(name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Func> {
        self.funcs.get(name)
    }

    /// The function names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.funcs.keys().map(String::as_str)
    }

    /// Go's `text/template` builtins (`and`/`or` are handled by the
    /// executor, which evaluates them lazily, but are listed here so
    /// the parser accepts them).
    pub fn builtins() -> FuncSet {
        let mut s = FuncSet::default();
        s.insert("and", |_, a| Ok(a.last().cloned().unwrap_or_default()));
        s.insert("or", |_, a| Ok(a.last().cloned().unwrap_or_default()));
        s.insert("not", |_, a| {
            let [v] = want::<1>("not", a)?;
            Ok(Value::Bool(!v.is_true()))
        });
        s.insert("len", |_, a| {
            let [v] = want::<1>("len", a)?;
            let n = match v {
                Value::String(s) | Value::Html(s) => s.len(),
                Value::List(l) => l.items.len(),
                Value::Map(m) if matches!(m.kind, MapKind::Map { .. }) => m.entries.len(),
                other => {
                    return Err(FuncError::Call(format!(
                        "len of type {}",
                        other.type_name()
                    )));
                }
            };
            Ok(Value::Int(n as i64))
        });
        s.insert("index", |_, a| {
            let Some((item, idx)) = a.split_first() else {
                return Err(wrong_count("index", 1, 0));
            };
            let mut cur = item.clone();
            for i in idx {
                cur = index_one(&cur, i)?;
            }
            Ok(cur)
        });
        s.insert("slice", |_, a| slice(a));
        s.insert("print", |_, a| Ok(Value::from(gofmt::sprint(a))));
        s.insert("println", |_, a| Ok(Value::from(gofmt::sprintln(a))));
        s.insert("printf", |_, a| {
            let Some((f, rest)) = a.split_first() else {
                return Err(wrong_count("printf", 1, 0));
            };
            let f = string_arg(f)?;
            Ok(Value::from(gofmt::sprintf(&f, rest)))
        });
        s.insert("html", |_, a| Ok(Value::from(html_escape(&eval_args(a)))));
        s.insert("js", |_, a| Ok(Value::from(js_escape(&eval_args(a)))));
        s.insert("urlquery", |_, a| {
            Ok(Value::from(query_escape(&eval_args(a))))
        });
        s.insert("call", |_, a| {
            let Some((f, rest)) = a.split_first() else {
                return Err(wrong_count("call", 1, 0));
            };
            match f {
                Value::Func(f) => f(rest).map_err(FuncError::Call),
                other => Err(FuncError::Call(format!(
                    "non-function of type {}",
                    other.type_name()
                ))),
            }
        });
        for (name, op) in [
            ("eq", Cmp::Eq),
            ("ne", Cmp::Ne),
            ("lt", Cmp::Lt),
            ("le", Cmp::Le),
            ("gt", Cmp::Gt),
            ("ge", Cmp::Ge),
        ] {
            s.insert(name, move |_, a| compare(op, a));
        }
        s
    }

    /// The builtins plus Prometheus' alert and console template functions.
    pub fn prometheus() -> FuncSet {
        let mut s = FuncSet::builtins();
        s.insert("query", |env, a| {
            let [q] = want::<1>("query", a)?;
            let q = string_arg(q)?;
            let samples = env.context.query(&q).map_err(FuncError::Call)?;
            Ok(query_result(samples.into_iter().map(|s| {
                let labels = s.labels.iter().map(|l| (l.name.clone(), l.value.clone()));
                (Value::string_map(labels), s.value)
            })))
        });
        s.insert("first", |_, a| {
            let [v] = want::<1>("first", a)?;
            match v {
                Value::List(l) => l.items.first().cloned().ok_or_else(|| {
                    FuncError::Call("first() called on vector with no elements".to_string())
                }),
                other => Err(wrong_type("template.queryResult", other)),
            }
        });
        s.insert("label", |_, a| {
            let [l, smpl] = want::<2>("label", a)?;
            let l = string_arg(l)?;
            sample_label(smpl, &l)
        });
        s.insert("value", |_, a| {
            let [smpl] = want::<1>("value", a)?;
            sample_field(smpl, "Value")
        });
        s.insert("strvalue", |_, a| {
            let [smpl] = want::<1>("strvalue", a)?;
            sample_label(smpl, "__value__")
        });
        s.insert("args", |_, a| {
            Ok(Value::map(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| (format!("arg{i}"), v.clone())),
            ))
        });
        s.insert("reReplaceAll", |_, a| {
            let [p, r, t] = want::<3>("reReplaceAll", a)?;
            let (p, r, t) = (string_arg(p)?, string_arg(r)?, string_arg(t)?);
            let re = compile(&p)?;
            Ok(Value::from(re.replace_all(&t, r.as_str()).into_owned()))
        });
        s.insert("safeHtml", |_, a| {
            let [t] = want::<1>("safeHtml", a)?;
            Ok(Value::Html(Arc::from(string_arg(t)?)))
        });
        s.insert("match", |_, a| {
            let [p, t] = want::<2>("match", a)?;
            let re = compile(&string_arg(p)?)?;
            Ok(Value::Bool(re.is_match(&string_arg(t)?)))
        });
        s.insert("title", |_, a| {
            let [t] = want::<1>("title", a)?;
            Ok(Value::from(title(&string_arg(t)?)))
        });
        s.insert("toUpper", |_, a| {
            let [t] = want::<1>("toUpper", a)?;
            Ok(Value::from(string_arg(t)?.to_uppercase()))
        });
        s.insert("toLower", |_, a| {
            let [t] = want::<1>("toLower", a)?;
            Ok(Value::from(string_arg(t)?.to_lowercase()))
        });
        s.insert("graphLink", |_, a| {
            let [e] = want::<1>("graphLink", a)?;
            Ok(Value::from(format!(
                "/graph?g0.expr={}&g0.tab=0",
                query_escape(&string_arg(e)?)
            )))
        });
        s.insert("tableLink", |_, a| {
            let [e] = want::<1>("tableLink", a)?;
            Ok(Value::from(format!(
                "/graph?g0.expr={}&g0.tab=1",
                query_escape(&string_arg(e)?)
            )))
        });
        s.insert("sortByLabel", |_, a| {
            let [l, v] = want::<2>("sortByLabel", a)?;
            let l = string_arg(l)?;
            let Value::List(list) = v else {
                return Err(wrong_type("template.queryResult", v));
            };
            let mut keyed = Vec::with_capacity(list.items.len());
            for s in &list.items {
                let key = sample_label(s, &l)?;
                keyed.push((key.to_string(), s.clone()));
            }
            // A stable sort, as Prometheus' sort.Stable.
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Value::typed_list(
                "template.queryResult",
                keyed.into_iter().map(|(_, s)| s),
            ))
        });
        s.insert("stripPort", |_, a| {
            let [hp] = want::<1>("stripPort", a)?;
            let hp = string_arg(hp)?;
            Ok(Value::from(match split_host_port(&hp) {
                Some((h, _)) => h,
                None => hp,
            }))
        });
        s.insert("stripDomain", |_, a| {
            let [hp] = want::<1>("stripDomain", a)?;
            Ok(Value::from(strip_domain(&string_arg(hp)?)))
        });
        s.insert("humanize", |_, a| {
            let [v] = want::<1>("humanize", a)?;
            Ok(Value::from(humanize(to_float(v)?)))
        });
        s.insert("humanize1024", |_, a| {
            let [v] = want::<1>("humanize1024", a)?;
            Ok(Value::from(humanize1024(to_float(v)?)))
        });
        s.insert("humanizeDuration", |_, a| {
            let [v] = want::<1>("humanizeDuration", a)?;
            Ok(Value::from(humanize_duration(to_float(v)?)))
        });
        s.insert("humanizePercentage", |_, a| {
            let [v] = want::<1>("humanizePercentage", a)?;
            Ok(Value::from(format!(
                "{}%",
                format_g(to_float(v)? * 100.0, Some(4), false)
            )))
        });
        s.insert("humanizeTimestamp", |_, a| {
            let [v] = want::<1>("humanizeTimestamp", a)?;
            let v = to_float(v)?;
            if !v.is_finite() {
                return Ok(Value::from(format_g(v, Some(4), false)));
            }
            Ok(Value::from(gofmt::time_string(&float_to_time(v)?)))
        });
        s.insert("toTime", |_, a| {
            let [v] = want::<1>("toTime", a)?;
            let v = to_float(v)?;
            if !v.is_finite() {
                return Err(FuncError::Call("value is NaN or Inf".to_string()));
            }
            Ok(Value::Time(float_to_time(v)?))
        });
        s.insert("toDuration", |_, a| {
            let [v] = want::<1>("toDuration", a)?;
            let v = to_float(v)?;
            let ns = v * 1e9;
            if !ns.is_finite() || ns >= i64::MAX as f64 || ns < i64::MIN as f64 {
                return Err(FuncError::Call(format!(
                    "{} cannot be represented as a nanoseconds duration since it overflows int64",
                    gofmt::format_float_v(v)
                )));
            }
            Ok(Value::Duration(ns as i64))
        });
        s.insert("parseDuration", |_, a| {
            let [d] = want::<1>("parseDuration", a)?;
            let d = string_arg(d)?;
            parse_duration(&d)
                .map(|ms| Value::Float(ms as f64 / 1000.0))
                .ok_or_else(|| FuncError::Call(format!("not a valid duration string: {d:?}")))
        });
        s.insert("pathPrefix", |env, a| {
            want::<0>("pathPrefix", a)?;
            Ok(Value::from(url_path(env.external_url)))
        });
        s.insert("externalURL", |env, a| {
            want::<0>("externalURL", a)?;
            Ok(Value::from(env.external_url))
        });
        s
    }

    /// The builtins plus Alertmanager's notification template functions.
    pub fn alertmanager() -> FuncSet {
        let prom = FuncSet::prometheus();
        let mut s = FuncSet::builtins();
        for name in [
            "toUpper",
            "toLower",
            "safeHtml",
            "reReplaceAll",
            "match",
            "humanize",
            "humanize1024",
            "humanizeDuration",
            "humanizePercentage",
            "humanizeTimestamp",
            "toTime",
            "toDuration",
        ] {
            if let Some(f) = prom.get(name) {
                s.funcs.insert(name.to_string(), Arc::clone(f));
            }
        }
        // Alertmanager's title lower-cases the rest of each word
        // (`cases.Title` without `NoLower`), unlike Prometheus'.
        s.insert("title", |_, a| {
            let [t] = want::<1>("title", a)?;
            Ok(Value::from(title_lower(&string_arg(t)?)))
        });
        s.insert("toJson", |_, a| {
            let [v] = want::<1>("toJson", a)?;
            // Go's json.Marshal fails on NaN and Inf; Alertmanager then
            // prints the empty string.
            Ok(Value::from(to_json(v).unwrap_or_default()))
        });
        s.insert("trimSpace", |_, a| {
            let [t] = want::<1>("trimSpace", a)?;
            Ok(Value::from(string_arg(t)?.trim().to_string()))
        });
        s.insert("join", |_, a| {
            let [sep, list] = want::<2>("join", a)?;
            let sep = string_arg(sep)?;
            let Value::List(l) = list else {
                return Err(wrong_type("[]string", list));
            };
            let parts = l
                .items
                .iter()
                .map(string_arg)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::from(parts.join(&sep)))
        });
        s.insert("stringSlice", |_, a| {
            let items = a
                .iter()
                .map(|v| string_arg(v).map(Value::from))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::typed_list("[]string", items))
        });
        s.insert("safeUrl", |_, a| {
            let [t] = want::<1>("safeUrl", a)?;
            Ok(Value::from(string_arg(t)?))
        });
        s.insert("urlUnescape", |_, a| {
            let [t] = want::<1>("urlUnescape", a)?;
            query_unescape(&string_arg(t)?)
        });
        s.insert("since", |env, a| {
            let [t] = want::<1>("since", a)?;
            let Value::Time(t) = t else {
                return Err(wrong_type("time.Time", t));
            };
            let now = env.now.ok_or_else(|| {
                FuncError::Call("the current time is not available to this template".to_string())
            })?;
            let d = now.signed_duration_since(t.to_utc());
            Ok(Value::Duration(d.num_nanoseconds().unwrap_or(i64::MAX)))
        });
        s.insert("date", |_, a| {
            let [layout, t] = want::<2>("date", a)?;
            let layout = string_arg(layout)?;
            match t {
                Value::Time(t) => Ok(Value::from(gofmt::format_time(t, &layout))),
                other => Err(wrong_type("time.Time", other)),
            }
        });
        s
    }
}

fn wrong_count(name: &str, want: usize, got: usize) -> FuncError {
    FuncError::Usage(format!(
        "wrong number of args for {name}: want {want} got {got}"
    ))
}

fn wrong_type(want: &str, got: &Value) -> FuncError {
    FuncError::Usage(format!(
        "wrong type for value; expected {want}; got {}",
        got.type_name()
    ))
}

/// Exactly `N` arguments.
fn want<'v, const N: usize>(name: &str, a: &'v [Value]) -> Result<&'v [Value; N], FuncError> {
    a.try_into().map_err(|_| wrong_count(name, N, a.len()))
}

fn string_arg(v: &Value) -> Result<String, FuncError> {
    match v {
        Value::String(s) | Value::Html(s) => Ok(s.to_string()),
        // Go's message for a missing key passed where a string is expected.
        Value::Missing => Err(FuncError::Usage(
            "invalid value; expected string".to_string(),
        )),
        other => Err(wrong_type("string", other)),
    }
}

/// Prometheus' `ConvertToFloat`.
fn to_float(v: &Value) -> Result<f64, FuncError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Duration(d) => Ok(*d as f64 / 1e9),
        Value::String(s) => parse_go_float(s).ok_or_else(|| {
            FuncError::Call(format!(
                "strconv.ParseFloat: parsing {}: invalid syntax",
                gofmt::quote(s)
            ))
        }),
        other => Err(FuncError::Call(format!(
            "can't convert {} to float",
            other.type_name()
        ))),
    }
}

/// Go's `strconv.ParseFloat` for the forms people write.
fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim_start_matches(['+', '-']);
    let lower = t.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        if t.len() != s.len() && lower == "nan" {
            return None;
        }
        return s.parse::<f64>().ok().or_else(|| {
            let neg = s.starts_with('-');
            Some(if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        });
    }
    if lower.starts_with("0x")
        || t.is_empty()
        || !t.starts_with(|c: char| c.is_ascii_digit() || c == '.')
    {
        return None;
    }
    s.parse::<f64>().ok()
}

fn sample_field(smpl: &Value, field: &str) -> FResult {
    match smpl {
        Value::Map(m) if matches!(&m.kind, MapKind::Struct { type_name } if type_name == "*template.sample") => {
            Ok(m.entries.get(field).cloned().unwrap_or_default())
        }
        other => Err(wrong_type("*template.sample", other)),
    }
}

fn sample_label(smpl: &Value, label: &str) -> FResult {
    match sample_field(smpl, "Labels")? {
        Value::Map(m) => Ok(m
            .entries
            .get(label)
            .cloned()
            .unwrap_or_else(|| Value::from(""))),
        _ => Ok(Value::from("")),
    }
}

/// A Prometheus `queryResult`: a list of `*sample{Labels, Value}`.
pub(crate) fn query_result(samples: impl IntoIterator<Item = (Value, f64)>) -> Value {
    Value::typed_list(
        "template.queryResult",
        samples.into_iter().map(|(labels, v)| {
            Value::structure(
                "*template.sample",
                [("Labels", labels), ("Value", Value::Float(v))],
            )
        }),
    )
}

/// Compiled patterns of `reReplaceAll` and `match`: alert templates run
/// for every alert at every evaluation with the same few patterns.
static REGEX_CACHE: LazyLock<Mutex<HashMap<String, Regex>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const REGEX_CACHE_MAX: usize = 256;

fn compile(pattern: &str) -> Result<Regex, FuncError> {
    if let Ok(cache) = REGEX_CACHE.lock()
        && let Some(re) = cache.get(pattern)
    {
        return Ok(re.clone());
    }
    let re =
        Regex::new(pattern).map_err(|e| FuncError::Call(format!("error parsing regexp: {e}")))?;
    // A poisoned lock only means another thread panicked mid-insert; the
    // cache is an optimisation, so it is then simply bypassed.
    if let Ok(mut cache) = REGEX_CACHE.lock() {
        if cache.len() >= REGEX_CACHE_MAX {
            cache.clear();
        }
        cache.insert(pattern.to_string(), re.clone());
    }
    Ok(re)
}

/// Prometheus' `title` (`cases.Title(…, cases.NoLower)`): upper-cases the
/// first letter of every word, leaves the rest alone.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !(c.is_alphanumeric() || c == '\'' || c == '’');
    }
    out
}

/// Alertmanager's `title` (`cases.Title`): the first letter of each word
/// upper-cased, the rest lower-cased.
fn title_lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else if c.is_alphabetic() {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        at_start = !(c.is_alphanumeric() || c == '\'' || c == '’');
    }
    out
}

/// Go's `json.Marshal` of a template value (`None` where Go fails: NaN,
/// infinities, functions).
fn to_json(v: &Value) -> Option<String> {
    fn string(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                // Go escapes these so the output is safe inside HTML.
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                }
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    fn float(f: f64) -> Option<String> {
        if !f.is_finite() {
            return None;
        }
        let a = f.abs();
        if a != 0.0 && !(1e-6..1e21).contains(&a) {
            // Go: strconv's 'e' form ("1e+21"), with "e-07" cleaned to "e-7".
            let s = format!("{f:e}");
            let (m, e) = s.split_once('e')?;
            if let Some(neg) = e.strip_prefix('-') {
                return Some(format!("{m}e-{neg}"));
            }
            return Some(format!("{m}e+{e:0>2}"));
        }
        Some(format!("{f}"))
    }
    fn walk(out: &mut String, v: &Value) -> Option<()> {
        match v {
            Value::Missing | Value::Nil => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) | Value::Duration(i) => out.push_str(&i.to_string()),
            Value::Float(f) => out.push_str(&float(*f)?),
            Value::String(s) | Value::Html(s) => string(out, s),
            Value::Time(t) => string(out, &t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            Value::List(l) => {
                out.push('[');
                for (i, x) in l.items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    walk(out, x)?;
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                for (i, (k, x)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    string(out, k);
                    out.push(':');
                    walk(out, x)?;
                }
                out.push('}');
            }
            Value::Func(_) => return None,
        }
        Some(())
    }
    let mut out = String::new();
    walk(&mut out, v)?;
    Some(out)
}

/// Prometheus' `humanize`: SI prefixes and four significant digits.
pub(crate) fn humanize(mut v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format_g(v, Some(4), false);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", format_g(v, Some(4), false))
}

/// Prometheus' `humanize1024`: binary prefixes.
pub(crate) fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || !v.is_finite() {
        return format_g(v, Some(4), false);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", format_g(v, Some(4), false))
}

/// Prometheus' `humanizeDuration` (seconds in, `1d 2h 3m 4s` out).
pub(crate) fn humanize_duration(mut v: f64) -> String {
    if !v.is_finite() {
        return format_g(v, Some(4), false);
    }
    if v == 0.0 {
        return format!("{}s", format_g(v, Some(4), false));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, d / 60 % 60, d / 3600 % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {hours}h {mins}m {secs}s");
        }
        if hours != 0 {
            return format!("{sign}{hours}h {mins}m {secs}s");
        }
        if mins != 0 {
            return format!("{sign}{mins}m {secs}s");
        }
        return format!("{sign}{}s", format_g(v, Some(4), false));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", format_g(v, Some(4), false))
}

/// Prometheus' `floatToTime`: seconds to a UTC time, truncated to the
/// millisecond as `model.Time` is.
fn float_to_time(v: f64) -> Result<DateTime<FixedOffset>, FuncError> {
    let ns = v * 1e9;
    if ns > i64::MAX as f64 || ns < i64::MIN as f64 {
        return Err(FuncError::Call(format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            gofmt::format_float_v(v)
        )));
    }
    let ms = (ns as i64) / 1_000_000;
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.fixed_offset())
        .ok_or_else(|| FuncError::Call(format!("{v} is out of the time range")))
}

/// Prometheus' `model.ParseDuration`, in milliseconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let num: i64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        // "ms" must be tried before "m"; units must appear in order.
        let (idx, len) = UNITS
            .iter()
            .enumerate()
            .skip(next_unit)
            .filter(|(_, (u, _))| rest.starts_with(u))
            .map(|(i, (u, _))| (i, u.len()))
            .max_by_key(|&(_, l)| l)?;
        rest = &rest[len..];
        total = total.checked_add(num.checked_mul(UNITS[idx].1)?)?;
        next_unit = idx + 1;
    }
    Some(total)
}

/// Go's `net.SplitHostPort`.
fn split_host_port(hp: &str) -> Option<(String, String)> {
    let i = hp.rfind(':')?;
    let host = if hp.starts_with('[') {
        let end = hp.find(']')?;
        if end + 1 != i {
            return None;
        }
        &hp[1..end]
    } else {
        let h = &hp[..i];
        if h.contains(':') {
            return None;
        }
        h
    };
    if host.contains(['[', ']']) || hp[i + 1..].contains(['[', ']']) {
        return None;
    }
    Some((host.to_string(), hp[i + 1..].to_string()))
}

/// Prometheus' `stripDomain`: the first label of a host name, keeping a
/// port; IP addresses are returned unchanged.
fn strip_domain(hp: &str) -> String {
    let (host, port) = split_host_port(hp).unwrap_or_else(|| (hp.to_string(), String::new()));
    if host.parse::<std::net::IpAddr>().is_ok() {
        return hp.to_string();
    }
    let first = host.split('.').next().unwrap_or("").to_string();
    if port.is_empty() {
        first
    } else if first.contains(':') {
        format!("[{first}]:{port}")
    } else {
        format!("{first}:{port}")
    }
}

/// The path of a URL (what Go's `url.URL.Path` holds).
fn url_path(u: &str) -> String {
    let after_scheme = u.split_once("://").map_or(u, |(_, r)| r);
    let path = match after_scheme.find('/') {
        Some(i) => &after_scheme[i..],
        None => "",
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path[..end].to_string()
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `url.QueryUnescape`.
fn query_unescape(s: &str) -> FResult {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                let Some(b) = hex else {
                    let bad: String = s[i..].chars().take(3).collect();
                    return Err(FuncError::Call(format!(
                        "invalid URL escape {}",
                        gofmt::quote(&bad)
                    )));
                };
                out.push(b);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(Value::from(String::from_utf8_lossy(&out).into_owned()))
}

/// `html/template`'s escaping of action output in HTML text and quoted
/// attributes (it also escapes `+`, unlike `HTMLEscapeString`).
pub(crate) fn html_template_escape(s: &str) -> String {
    html_escape(s).replace('+', "&#43;")
}

/// Go's `template.HTMLEscapeString`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 || c.is_control() => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `evalArgs` for the escaping builtins: one string as is, anything
/// else through `fmt.Sprint`.
fn eval_args(a: &[Value]) -> String {
    match a {
        [Value::String(s) | Value::Html(s)] => s.to_string(),
        _ => gofmt::sprint(a),
    }
}

fn index_one(item: &Value, idx: &Value) -> FResult {
    match item {
        Value::List(l) => {
            let Value::Int(i) = idx else {
                return Err(FuncError::Call(format!(
                    "cannot index slice/array with type {}",
                    idx.type_name()
                )));
            };
            usize::try_from(*i)
                .ok()
                .and_then(|i| l.items.get(i))
                .cloned()
                .ok_or_else(|| FuncError::Call(format!("index out of range: {i}")))
        }
        Value::String(s) => {
            let Value::Int(i) = idx else {
                return Err(FuncError::Call(format!(
                    "cannot index slice/array with type {}",
                    idx.type_name()
                )));
            };
            usize::try_from(*i)
                .ok()
                .and_then(|i| s.as_bytes().get(i))
                .map(|b| Value::Int(i64::from(*b)))
                .ok_or_else(|| FuncError::Call(format!("index out of range: {i}")))
        }
        Value::Map(m) => {
            // A struct falls through to Go's "can't index item" below.
            let MapKind::Map { zero, .. } = &m.kind else {
                return Err(FuncError::Call(format!(
                    "can't index item of type {}",
                    item.type_name()
                )));
            };
            let Value::String(k) = idx else {
                return Err(FuncError::Call(format!(
                    "value has type {}; should be string",
                    idx.type_name()
                )));
            };
            Ok(m.entries
                .get(&**k)
                .cloned()
                .unwrap_or_else(|| (**zero).clone()))
        }
        Value::Missing | Value::Nil => Err(FuncError::Call("index of untyped nil".to_string())),
        other => Err(FuncError::Call(format!(
            "can't index item of type {}",
            other.type_name()
        ))),
    }
}

fn slice(a: &[Value]) -> FResult {
    let Some((item, idx)) = a.split_first() else {
        return Err(wrong_count("slice", 1, 0));
    };
    if idx.len() > 3 {
        return Err(FuncError::Call(format!(
            "too many slice indexes: {}",
            idx.len()
        )));
    }
    let len = match item {
        Value::String(s) => s.len(),
        Value::List(l) => l.items.len(),
        Value::Missing | Value::Nil => {
            return Err(FuncError::Call("slice of untyped nil".to_string()));
        }
        other => {
            return Err(FuncError::Call(format!(
                "can't slice item of type {}",
                other.type_name()
            )));
        }
    };
    let mut ix = [0usize, len, len];
    for (n, v) in idx.iter().enumerate() {
        let Value::Int(i) = v else {
            return Err(FuncError::Call(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            )));
        };
        let i = usize::try_from(*i)
            .ok()
            .filter(|&i| i <= len)
            .ok_or_else(|| FuncError::Call(format!("index out of range: {i}")))?;
        ix[n] = i;
    }
    if idx.len() < 2 {
        ix[1] = len;
    }
    if ix[0] > ix[1] {
        return Err(FuncError::Call(format!(
            "invalid slice index: {} > {}",
            ix[0], ix[1]
        )));
    }
    match item {
        Value::String(s) => {
            if idx.len() == 3 {
                return Err(FuncError::Call("cannot 3-index slice a string".to_string()));
            }
            s.get(ix[0]..ix[1])
                .map(Value::from)
                .ok_or_else(|| FuncError::Call("slice splits a UTF-8 character".to_string()))
        }
        Value::List(l) => Ok(Value::List(Arc::new(super::value::List {
            items: l.items[ix[0]..ix[1]].to_vec(),
            type_name: l.type_name.clone(),
            methods: BTreeMap::new(),
        }))),
        _ => Err(FuncError::Call("can't slice".to_string())),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    String,
    Other,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Missing | Value::Nil => Kind::Invalid,
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Duration(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::String(_) | Value::Html(_) => Kind::String,
        _ => Kind::Other,
    }
}

fn as_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Duration(i) => *i,
        _ => 0,
    }
}

/// Go's `eq`, `ne`, `lt`, `le`, `gt`, `ge`.
fn compare(op: Cmp, a: &[Value]) -> FResult {
    let name = match op {
        Cmp::Eq => "eq",
        Cmp::Ne => "ne",
        Cmp::Lt => "lt",
        Cmp::Le => "le",
        Cmp::Gt => "gt",
        Cmp::Ge => "ge",
    };
    let incompatible = || FuncError::Call("incompatible types for comparison".to_string());
    match op {
        Cmp::Eq => {
            let Some((x, rest)) = a.split_first() else {
                return Err(wrong_count(name, 1, 0));
            };
            if rest.is_empty() {
                return Err(FuncError::Call(
                    "missing argument for comparison".to_string(),
                ));
            }
            for y in rest {
                if eq2(x, y).map_err(|()| incompatible())? {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        Cmp::Ne => {
            let [x, y] = want::<2>(name, a)?;
            Ok(Value::Bool(!eq2(x, y).map_err(|()| incompatible())?))
        }
        _ => {
            let [x, y] = want::<2>(name, a)?;
            let (kx, ky) = (kind(x), kind(y));
            if matches!(kx, Kind::Invalid | Kind::Bool | Kind::Other)
                || matches!(ky, Kind::Invalid | Kind::Bool | Kind::Other)
            {
                return Err(FuncError::Call("invalid type for comparison".to_string()));
            }
            if kx != ky {
                return Err(incompatible());
            }
            let ord = match (x, y) {
                (Value::String(p) | Value::Html(p), Value::String(q) | Value::Html(q)) => p.cmp(q),
                (Value::Float(p), Value::Float(q)) => {
                    p.partial_cmp(q).unwrap_or(std::cmp::Ordering::Greater)
                }
                _ => as_int(x).cmp(&as_int(y)),
            };
            let nan =
                matches!((x, y), (Value::Float(p), Value::Float(q)) if p.is_nan() || q.is_nan());
            let res = !nan
                && match op {
                    Cmp::Lt => ord.is_lt(),
                    Cmp::Le => ord.is_le(),
                    Cmp::Gt => ord.is_gt(),
                    _ => ord.is_ge(),
                };
            Ok(Value::Bool(res))
        }
    }
}

/// One `eq` comparison; `Err` means incompatible basic kinds.
fn eq2(x: &Value, y: &Value) -> Result<bool, ()> {
    let (kx, ky) = (kind(x), kind(y));
    if kx != ky {
        if kx == Kind::Invalid || ky == Kind::Invalid {
            return Ok(false);
        }
        return Err(());
    }
    Ok(match kx {
        Kind::Invalid => true,
        Kind::Int => as_int(x) == as_int(y),
        Kind::String => x.as_str() == y.as_str(),
        _ => x == y,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn humanize_family_matches_prometheus() {
        let h: Vec<String> = [0.0, 1.0, 1234567.0, 0.12, -1.0, i64::MAX as f64]
            .into_iter()
            .map(humanize)
            .collect();
        assert_eq!(h, ["0", "1", "1.235M", "120m", "-1", "9.223E"]);
        let h: Vec<String> = [
            0.0,
            1.0,
            1048576.0,
            0.12,
            1234567.0,
            i64::MAX as f64,
            u64::MAX as f64,
        ]
        .into_iter()
        .map(humanize1024)
        .collect();
        assert_eq!(h, ["0", "1", "1Mi", "0.12", "1.177Mi", "8Ei", "16Ei"]);
        let h: Vec<String> = [
            0.0,
            1.0,
            60.0,
            3600.0,
            86400.0,
            86400.0 + 3600.0,
            -(86400.0 * 2.0 + 3600.0 * 3.0 + 60.0 * 4.0 + 5.0),
            899.99,
            0.1,
            0.0001,
            0.12345,
            60.1,
            1.2345,
            12.345,
            1234567.0,
        ]
        .into_iter()
        .map(humanize_duration)
        .collect();
        assert_eq!(
            h,
            [
                "0s",
                "1s",
                "1m 0s",
                "1h 0m 0s",
                "1d 0h 0m 0s",
                "1d 1h 0m 0s",
                "-2d 3h 4m 5s",
                "14m 59s",
                "100ms",
                "100us",
                "123.5ms",
                "1m 0s",
                "1.234s",
                "12.35s",
                "14d 6h 56m 7s"
            ]
        );
        for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            let want = gofmt::format_float_v(v);
            assert_eq!(humanize(v), want);
            assert_eq!(humanize1024(v), want);
            assert_eq!(humanize_duration(v), want);
        }
    }

    #[test]
    fn host_helpers_match_go() {
        for (hp, port, domain) in [
            ("foo.example.com", "foo.example.com", "foo"),
            ("foo.example.com:12345", "foo.example.com", "foo:12345"),
            ("192.0.2.1", "192.0.2.1", "192.0.2.1"),
            ("192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"),
            ("2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"),
            (
                "[2001:0DB8::1]:12345",
                "2001:0DB8::1",
                "[2001:0DB8::1]:12345",
            ),
            (
                "[2001:0DB8::1]::12345",
                "[2001:0DB8::1]::12345",
                "[2001:0DB8::1]::12345",
            ),
        ] {
            let p = split_host_port(hp).map_or(hp.to_string(), |(h, _)| h);
            assert_eq!(p, port, "stripPort {hp}");
            assert_eq!(strip_domain(hp), domain, "stripDomain {hp}");
        }
    }

    #[test]
    fn durations_and_urls() {
        assert_eq!(parse_duration("1h2m10ms"), Some(3_720_010));
        assert_eq!(parse_duration("1y2w"), Some((365 + 14) * 86_400_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5m1h"), None);
        assert_eq!(parse_duration("1.5h"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(url_path("http://testhost:9090/path/prefix"), "/path/prefix");
        assert_eq!(url_path("http://testhost:9090"), "");
        assert_eq!(query_escape("up{job=\"a b\"}"), "up%7Bjob%3D%22a+b%22%7D");
        assert_eq!(title("aa bb CC o'neil foo-bar"), "Aa Bb CC O'neil Foo-Bar");
    }

    #[test]
    fn alertmanager_title_and_json() {
        assert_eq!(title_lower("aa bb CC o'NEIL"), "Aa Bb Cc O'neil");
        let v = Value::map([
            ("s", Value::from("a<b>\"c\"\n")),
            (
                "n",
                Value::list([
                    Value::Int(1),
                    Value::Float(0.5),
                    Value::Float(1e21),
                    Value::Float(1e-7),
                ]),
            ),
            ("b", Value::Bool(true)),
            ("z", Value::Nil),
        ]);
        assert_eq!(
            to_json(&v).unwrap(),
            r#"{"b":true,"n":[1,0.5,1e+21,1e-7],"s":"a\u003cb\u003e\"c\"\n","z":null}"#
        );
        assert_eq!(to_json(&Value::Float(f64::NAN)), None);
    }

    #[test]
    fn regex_errors_and_cache() {
        let a = compile("a+").unwrap();
        let b = compile("a+").unwrap();
        assert_eq!(a.as_str(), b.as_str());
        let FuncError::Call(m) = compile("(").unwrap_err() else {
            panic!("not a call error")
        };
        assert!(m.starts_with("error parsing regexp:"), "{m}");
    }

    #[test]
    fn comparisons_follow_go() {
        let c = |op, a: &[Value]| compare(op, a);
        assert_eq!(
            c(Cmp::Eq, &[Value::Int(1), Value::Int(2), Value::Int(1)]).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            c(Cmp::Eq, &[Value::from("a"), Value::Missing]).unwrap(),
            Value::Bool(false)
        );
        assert!(c(Cmp::Eq, &[Value::Int(1), Value::Float(1.0)]).is_err());
        assert_eq!(
            c(Cmp::Lt, &[Value::Float(1.0), Value::Float(2.0)]).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            c(Cmp::Ge, &[Value::from("b"), Value::from("a")]).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            c(Cmp::Lt, &[Value::Bool(true), Value::Bool(false)]).unwrap_err(),
            FuncError::Call("invalid type for comparison".into())
        );
    }
}
