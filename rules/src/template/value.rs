//! The dynamic values templates compute with, standing in for the Go values
//! (`reflect.Value`) that `text/template` walks.
//!
//! A [`Value`] is cheap to clone (containers are shared). Maps come in two
//! kinds, as in Go: a real map, where a missing key yields the element's
//! zero value or "no value" depending on the `missingkey` option, and a
//! struct, where a missing field is an error. Maps, lists, times and
//! durations can carry methods (zero or more arguments) that are looked up
//! before fields, the way Go resolves `.Name` — this is how Alertmanager's
//! `.Alerts.Firing` or `.CommonLabels.SortedPairs` are expressed.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use super::gofmt;

/// A method or function value: takes already evaluated arguments.
pub type Method = Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

/// A template value.
#[derive(Clone, Default)]
pub enum Value {
    /// Go's invalid value: what a missing key yields; prints `<no value>`.
    #[default]
    Missing,
    /// Go's untyped `nil`; prints `<nil>`.
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(Arc<str>),
    /// Trusted HTML (Go's `template.HTML`, what `safeHtml` returns): a
    /// string that HTML-escaping execution prints unescaped.
    Html(Arc<str>),
    List(Arc<List>),
    Map(Arc<Map>),
    /// A point in time (Go's `time.Time`), with its zone offset.
    Time(DateTime<FixedOffset>),
    /// Go's `time.Duration`, in nanoseconds.
    Duration(i64),
    /// A function value, for `call`.
    Func(Method),
}

/// A list (Go slice) with an optional Go type name and methods.
#[derive(Clone, Default)]
pub struct List {
    pub items: Vec<Value>,
    /// The Go type name used in messages (`[]interface {}` by default).
    pub type_name: Option<String>,
    pub methods: BTreeMap<String, Method>,
}

/// A Go map or struct.
#[derive(Clone)]
pub struct Map {
    pub entries: BTreeMap<String, Value>,
    pub kind: MapKind,
    pub methods: BTreeMap<String, Method>,
}

#[derive(Clone)]
pub enum MapKind {
    /// A map; `zero` is the element type's zero value (`""` for
    /// `map[string]string`, `nil` for `map[string]interface{}`), `type_name`
    /// its Go type.
    Map { zero: Box<Value>, type_name: String },
    /// A struct named `type_name`: a missing field is an error.
    Struct { type_name: String },
}

/// What a missing map key yields (Go's `missingkey` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// `<no value>` (Go's default, Alertmanager's behaviour).
    #[default]
    Invalid,
    /// The element type's zero value (`missingkey=zero`, Prometheus').
    Zero,
    /// An error (`missingkey=error`).
    Error,
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(Arc::from(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(Arc::from(s))
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<&crate::promql::Labels> for Value {
    /// A `map[string]string` of the labels.
    fn from(l: &crate::promql::Labels) -> Self {
        Value::string_map(l.iter().map(|l| (l.name.clone(), l.value.clone())))
    }
}

impl From<DateTime<chrono::Utc>> for Value {
    fn from(t: DateTime<chrono::Utc>) -> Self {
        Value::Time(t.fixed_offset())
    }
}

impl Value {
    /// Alertmanager's `template.KV`: a `map[string]string` with the methods
    /// `SortedPairs` (`alertname` first, then by name; each pair has `.Name`
    /// and `.Value`, the list has `.Names` and `.Values`), `Names`, `Values`
    /// and `Remove` (taking a list of names).
    pub fn kv<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Value {
        Value::kv_from_map(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    fn kv_from_map(map: BTreeMap<String, String>) -> Value {
        let mut names: Vec<String> = map.keys().cloned().collect();
        if let Some(i) = names.iter().position(|n| n == "alertname") {
            let n = names.remove(i);
            names.insert(0, n);
        }
        let sorted: Vec<(String, String)> = names
            .iter()
            .map(|n| (n.clone(), map.get(n).cloned().unwrap_or_default()))
            .collect();
        let plain_names: Vec<String> = map.keys().cloned().collect();
        let plain_values: Vec<String> = map.values().cloned().collect();
        let strings =
            |v: &[String]| Value::typed_list("[]string", v.iter().map(|s| Value::from(s.as_str())));
        let pairs_value = {
            let items = sorted.iter().map(|(n, v)| {
                Value::structure(
                    "template.Pair",
                    [
                        ("Name", Value::from(n.as_str())),
                        ("Value", Value::from(v.as_str())),
                    ],
                )
            });
            let ns: Vec<String> = sorted.iter().map(|(n, _)| n.clone()).collect();
            let vs: Vec<String> = sorted.iter().map(|(_, v)| v.clone()).collect();
            let (nv, vv) = (strings(&ns), strings(&vs));
            Value::typed_list("template.Pairs", items)
                .with_method("Names", move |_| Ok(nv.clone()))
                .with_method("Values", move |_| Ok(vv.clone()))
        };
        let (nv, vv) = (strings(&plain_names), strings(&plain_values));
        let base = map.clone();
        let mut v = Value::string_map(map);
        if let Value::Map(m) = &mut v
            && let Some(m) = Arc::get_mut(m)
        {
            m.kind = MapKind::Map {
                zero: Box::new(Value::from("")),
                type_name: "template.KV".to_string(),
            };
        }
        v.with_method("SortedPairs", move |_| Ok(pairs_value.clone()))
            .with_method("Names", move |_| Ok(nv.clone()))
            .with_method("Values", move |_| Ok(vv.clone()))
            .with_method("Remove", move |args| {
                let [Value::List(keys)] = args else {
                    return Err("Remove takes a list of label names".to_string());
                };
                let drop: Vec<&str> = keys.items.iter().filter_map(Value::as_str).collect();
                Ok(Value::kv_from_map(
                    base.iter()
                        .filter(|(k, _)| !drop.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ))
            })
    }

    /// Alertmanager's `template.Alerts`: a list of alert structs with the
    /// methods `Firing` and `Resolved`, which select by each alert's
    /// `Status` field.
    pub fn alerts(items: impl IntoIterator<Item = Value>) -> Value {
        let items: Vec<Value> = items.into_iter().collect();
        let by_status = |status: &'static str, items: &[Value]| {
            let sel: Vec<Value> = items
                .iter()
                .filter(|a| {
                    a.field("Status", &[], MissingKey::Zero)
                        .is_ok_and(|s| s.as_str() == Some(status))
                })
                .cloned()
                .collect();
            Value::typed_list("template.Alerts", sel)
        };
        let firing = by_status("firing", &items);
        let resolved = by_status("resolved", &items);
        Value::typed_list("template.Alerts", items)
            .with_method("Firing", move |_| Ok(firing.clone()))
            .with_method("Resolved", move |_| Ok(resolved.clone()))
    }

    /// A `map[string]string`.
    pub fn string_map<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::Map(Arc::new(Map {
            entries: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), Value::from(v.into())))
                .collect(),
            kind: MapKind::Map {
                zero: Box::new(Value::from("")),
                type_name: "map[string]string".to_string(),
            },
            methods: BTreeMap::new(),
        }))
    }

    /// A `map[string]interface{}`.
    pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::Map(Arc::new(Map {
            entries: pairs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            kind: MapKind::Map {
                zero: Box::new(Value::Nil),
                type_name: "map[string]interface {}".to_string(),
            },
            methods: BTreeMap::new(),
        }))
    }

    /// A struct named `type_name` with the given fields.
    pub fn structure<K: Into<String>>(
        type_name: &str,
        fields: impl IntoIterator<Item = (K, Value)>,
    ) -> Value {
        Value::Map(Arc::new(Map {
            entries: fields.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            kind: MapKind::Struct {
                type_name: type_name.to_string(),
            },
            methods: BTreeMap::new(),
        }))
    }

    /// A `[]interface {}`.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(Arc::new(List {
            items: items.into_iter().collect(),
            type_name: None,
            methods: BTreeMap::new(),
        }))
    }

    /// A list with a Go type name (used in messages).
    pub fn typed_list(type_name: &str, items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(Arc::new(List {
            items: items.into_iter().collect(),
            type_name: Some(type_name.to_string()),
            methods: BTreeMap::new(),
        }))
    }

    /// A function value for `call`.
    pub fn func(f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static) -> Value {
        Value::Func(Arc::new(f))
    }

    /// Adds a method (looked up before fields and keys). Values other than
    /// maps and lists are returned unchanged.
    pub fn with_method(
        self,
        name: &str,
        f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Value {
        match self {
            Value::Map(m) => {
                let mut m = Arc::unwrap_or_clone(m);
                m.methods.insert(name.to_string(), Arc::new(f));
                Value::Map(Arc::new(m))
            }
            Value::List(l) => {
                let mut l = Arc::unwrap_or_clone(l);
                l.methods.insert(name.to_string(), Arc::new(f));
                Value::List(Arc::new(l))
            }
            other => other,
        }
    }

    /// The Go type name, for messages (`%T`).
    pub fn type_name(&self) -> String {
        match self {
            Value::Missing | Value::Nil => "<nil>".to_string(),
            Value::Bool(_) => "bool".to_string(),
            Value::Int(_) => "int".to_string(),
            Value::Float(_) => "float64".to_string(),
            Value::String(_) => "string".to_string(),
            Value::Html(_) => "template.HTML".to_string(),
            Value::List(l) => l
                .type_name
                .clone()
                .unwrap_or_else(|| "[]interface {}".to_string()),
            Value::Map(m) => match &m.kind {
                MapKind::Map { type_name, .. } | MapKind::Struct { type_name } => type_name.clone(),
            },
            Value::Time(_) => "time.Time".to_string(),
            Value::Duration(_) => "time.Duration".to_string(),
            Value::Func(_) => "func".to_string(),
        }
    }

    /// Go's truthiness (`if`, `with`, `and`, `or`, `not`).
    pub fn is_true(&self) -> bool {
        match self {
            Value::Missing | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) | Value::Html(s) => !s.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => match m.kind {
                MapKind::Map { .. } => !m.entries.is_empty(),
                MapKind::Struct { .. } => true,
            },
            Value::Time(_) | Value::Func(_) => true,
            Value::Duration(d) => *d != 0,
        }
    }

    /// The string inside, if this is a string (or trusted HTML).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Html(s) => Some(s),
            _ => None,
        }
    }

    /// Looks up `.name` (with arguments when it is a method call), as Go's
    /// `evalField` does.
    pub fn field(&self, name: &str, args: &[Value], missing: MissingKey) -> Result<Value, String> {
        if let Some(m) = self.method(name) {
            return m(args);
        }
        let no_args = |why: &str| {
            if args.is_empty() {
                Ok(())
            } else {
                Err(format!("{name} {why}"))
            }
        };
        match self {
            Value::Missing | Value::Nil => match missing {
                MissingKey::Error => Err(format!("nil data; no entry for key {name:?}")),
                _ => Ok(Value::Missing),
            },
            Value::Map(m) => match &m.kind {
                MapKind::Map { zero, .. } => {
                    no_args("is not a method but has arguments")?;
                    match m.entries.get(name) {
                        Some(v) => Ok(v.clone()),
                        None => match missing {
                            MissingKey::Invalid => Ok(Value::Missing),
                            MissingKey::Zero => Ok((**zero).clone()),
                            MissingKey::Error => Err(format!("map has no entry for key {name:?}")),
                        },
                    }
                }
                MapKind::Struct { type_name } => match m.entries.get(name) {
                    Some(v) => {
                        no_args("has arguments but cannot be invoked as function")?;
                        Ok(v.clone())
                    }
                    None => Err(format!("can't evaluate field {name} in type {type_name}")),
                },
            },
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    fn method(&self, name: &str) -> Option<Method> {
        match self {
            Value::Map(m) => m.methods.get(name).cloned(),
            Value::List(l) => l.methods.get(name).cloned(),
            Value::Time(t) => time_method(*t, name),
            Value::Duration(d) => duration_method(*d, name),
            _ => None,
        }
    }
}

fn time_method(t: DateTime<FixedOffset>, name: &str) -> Option<Method> {
    let f: Method = match name {
        "Format" => Arc::new(move |a: &[Value]| match a {
            [Value::String(layout)] => Ok(Value::from(gofmt::format_time(&t, layout))),
            _ => Err("wrong arguments for Format; expected a layout string".to_string()),
        }),
        "String" => Arc::new(move |_: &[Value]| Ok(Value::from(gofmt::time_string(&t)))),
        "Unix" => Arc::new(move |_: &[Value]| Ok(Value::Int(t.timestamp()))),
        "UnixMilli" => Arc::new(move |_: &[Value]| Ok(Value::Int(t.timestamp_millis()))),
        "UnixNano" => {
            Arc::new(move |_: &[Value]| Ok(Value::Int(t.timestamp_nanos_opt().unwrap_or(i64::MAX))))
        }
        "UTC" => Arc::new(move |_: &[Value]| Ok(Value::Time(t.to_utc().fixed_offset()))),
        "IsZero" => Arc::new(move |_: &[Value]| {
            Ok(Value::Bool(t.to_utc() == gofmt::go_zero_time().to_utc()))
        }),
        "Year" | "Day" | "Hour" | "Minute" | "Second" | "YearDay" | "Nanosecond" => {
            let name = name.to_string();
            Arc::new(move |_: &[Value]| {
                use chrono::{Datelike, Timelike};
                Ok(Value::Int(i64::from(match name.as_str() {
                    "Year" => t.year(),
                    "Day" => t.day() as i32,
                    "Hour" => t.hour() as i32,
                    "Minute" => t.minute() as i32,
                    "Second" => t.second() as i32,
                    "YearDay" => t.ordinal() as i32,
                    _ => t.nanosecond() as i32,
                })))
            })
        }
        _ => return None,
    };
    Some(f)
}

fn duration_method(d: i64, name: &str) -> Option<Method> {
    let f: Method = match name {
        "String" => Arc::new(move |_: &[Value]| Ok(Value::from(gofmt::duration_string(d)))),
        "Seconds" => Arc::new(move |_: &[Value]| Ok(Value::Float(d as f64 / 1e9))),
        "Minutes" => Arc::new(move |_: &[Value]| Ok(Value::Float(d as f64 / 6e10))),
        "Hours" => Arc::new(move |_: &[Value]| Ok(Value::Float(d as f64 / 3.6e12))),
        "Milliseconds" => Arc::new(move |_: &[Value]| Ok(Value::Int(d / 1_000_000))),
        "Nanoseconds" => Arc::new(move |_: &[Value]| Ok(Value::Int(d))),
        _ => return None,
    };
    Some(f)
}

/// Go's `fmt.Sprint` of one value (`%v`).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Missing => f.write_str("<no value>"),
            Value::Nil => f.write_str("<nil>"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(v) => f.write_str(&gofmt::format_float_v(*v)),
            Value::String(s) | Value::Html(s) => f.write_str(s),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{}", v.nested())?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                let is_struct = matches!(m.kind, MapKind::Struct { .. });
                f.write_str(if is_struct { "{" } else { "map[" })?;
                for (i, (k, v)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    if is_struct {
                        write!(f, "{}", v.nested())?;
                    } else {
                        write!(f, "{k}:{}", v.nested())?;
                    }
                }
                f.write_str(if is_struct { "}" } else { "]" })
            }
            Value::Time(t) => f.write_str(&gofmt::time_string(t)),
            Value::Duration(d) => f.write_str(&gofmt::duration_string(*d)),
            Value::Func(_) => f.write_str("<func>"),
        }
    }
}

impl Value {
    /// How Go prints a value inside a container (`<nil>` for missing).
    fn nested(&self) -> Value {
        match self {
            Value::Missing => Value::Nil,
            v => v.clone(),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) | Value::Html(s) => write!(f, "{s:?}"),
            other => write!(f, "{other}"),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Missing, Value::Missing) | (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::String(a), Value::String(b)) | (Value::Html(a), Value::Html(b)) => a == b,
            (Value::List(a), Value::List(b)) => a.items == b.items,
            (Value::Map(a), Value::Map(b)) => a.entries == b.entries,
            (Value::Time(a), Value::Time(b)) => a == b,
            (Value::Duration(a), Value::Duration(b)) => a == b,
            (Value::Func(a), Value::Func(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn prints_like_go() {
        assert_eq!(Value::Float(1e6).to_string(), "1e+06");
        assert_eq!(Value::Float(123456.0).to_string(), "123456");
        assert_eq!(
            Value::list([Value::Int(1), Value::from("a"), Value::Missing]).to_string(),
            "[1 a <nil>]"
        );
        assert_eq!(
            Value::string_map([("b", "2"), ("a", "1")]).to_string(),
            "map[a:1 b:2]"
        );
    }

    #[test]
    fn missing_keys_follow_the_option() {
        let m = Value::string_map([("a", "1")]);
        assert_eq!(
            m.field("x", &[], MissingKey::Invalid).unwrap(),
            Value::Missing
        );
        assert_eq!(
            m.field("x", &[], MissingKey::Zero).unwrap(),
            Value::from("")
        );
        assert_eq!(
            m.field("x", &[], MissingKey::Error).unwrap_err(),
            r#"map has no entry for key "x""#
        );
        let s = Value::structure("template.Data", [("A", Value::Int(1))]);
        assert_eq!(
            s.field("B", &[], MissingKey::Zero).unwrap_err(),
            "can't evaluate field B in type template.Data"
        );
    }

    #[test]
    fn methods_come_before_keys() {
        let v = Value::list([Value::Int(1), Value::Int(2)])
            .with_method("Firing", |_| Ok(Value::list([Value::Int(1)])));
        assert_eq!(
            v.field("Firing", &[], MissingKey::Zero)
                .unwrap()
                .to_string(),
            "[1]"
        );
        assert!(v.field("Nope", &[], MissingKey::Zero).is_err());
    }

    #[test]
    fn alertmanager_kv_and_alerts() {
        let kv = Value::kv([("job", "api"), ("alertname", "Down"), ("instance", "a")]);
        let f = |v: &Value, n: &str, a: &[Value]| v.field(n, a, MissingKey::Invalid).unwrap();
        let pairs = f(&kv, "SortedPairs", &[]);
        assert_eq!(
            f(&pairs, "Names", &[]).to_string(),
            "[alertname instance job]"
        );
        let Value::List(l) = &pairs else {
            panic!("not a list")
        };
        assert_eq!(f(&l.items[2], "Value", &[]).to_string(), "api");
        assert_eq!(f(&kv, "Names", &[]).to_string(), "[alertname instance job]");
        assert_eq!(f(&kv, "Values", &[]).to_string(), "[Down a api]");
        let rest = f(&kv, "Remove", &[Value::list([Value::from("job")])]);
        assert_eq!(f(&rest, "Names", &[]).to_string(), "[alertname instance]");
        assert_eq!(f(&kv, "job", &[]).to_string(), "api");
        assert_eq!(kv.type_name(), "template.KV");

        let alert = |s: &str| Value::structure("template.Alert", [("Status", Value::from(s))]);
        let alerts = Value::alerts([alert("firing"), alert("resolved"), alert("firing")]);
        let n = |v: Value| match v {
            Value::List(l) => l.items.len(),
            _ => usize::MAX,
        };
        assert_eq!(n(f(&alerts, "Firing", &[])), 2);
        assert_eq!(n(f(&alerts, "Resolved", &[])), 1);
        assert_eq!(n(alerts), 3);
    }

    #[test]
    fn truthiness() {
        for (v, t) in [
            (Value::Missing, false),
            (Value::Int(0), false),
            (Value::Float(0.5), true),
            (Value::from(""), false),
            (Value::list([]), false),
            (Value::string_map([("a", "b")]), true),
            (Value::structure("s", Vec::<(String, Value)>::new()), true),
        ] {
            assert_eq!(v.is_true(), t, "{v:?}");
        }
    }
}
