//! Rule-file validation: turns the `*Config` types of [`crate::file`] into a
//! validated [`RuleFile`], collecting every problem with its position
//! instead of stopping at the first.
//!
//! The checks and their messages follow Prometheus' `model/rulefmt` (so a
//! file Prometheus loads loads here, and the messages read the same),
//! with positions on every message and a hint of what would be valid. Names
//! follow Prometheus 3's UTF-8 rules: any non-empty label or metric name is
//! valid, except that `__name__` cannot be set through labels and recording
//! rule names cannot hold braces (usually a selector pasted by mistake).
//!
//! Loading is three passes over the text: a generic YAML tree (syntax
//! errors; then every unknown key and every value of the wrong shape, all at
//! once), the typed `*Config` read, then the semantic checks here.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use promql_parser::parser::Expr;
use serde::Deserialize;
use serde_saphyr::Spanned;
use tocsin_yaml::{AnyScalarKey, NodeKind};

use crate::file::{
    LabelMapConfig, LoadOptions, LogMetric, LogMetricConfig, Pos, Rule, RuleConfig, RuleFile,
    RuleFileConfig, RuleFileError, RuleFileErrors, RuleGroup, RuleGroupConfig, RuleKind,
};
use crate::promql::Labels;
use crate::template::{Template, TemplateError};

/// The metric-name label, which rules and log metrics may not set.
const METRIC_NAME_LABEL: &str = "__name__";

/// Severities a log metric's `min_severity` may name, lowest first
/// (DESIGN.md, "Log records on the wire").
pub const SEVERITIES: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

/// The label every log-metric series carries for the record's severity.
const SEVERITY_LABEL: &str = "severity";

// ---------------------------------------------------------------------------
// Durations

/// Why a Prometheus duration string was refused. The messages are those of
/// Prometheus' `model.ParseDuration`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration string")]
    Empty,
    #[error("not a valid duration string: {0:?}")]
    Invalid(String),
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("duration out of range")]
    OutOfRange,
}

/// Parses a Prometheus duration (`model.ParseDuration`): integer amounts
/// with units `y` (365d), `w`, `d`, `h`, `m`, `s`, `ms`, each at most once
/// and largest first (`1h30m`, `90s`, `1d`), or a bare `0`. No sign, no
/// fractions, no spaces. At most Go's `time.Duration` range (about 292
/// years), so that a file valid here is valid in Prometheus.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    match s {
        "0" => return Ok(Duration::ZERO),
        "" => return Err(DurationError::Empty),
        _ => {}
    }
    const MS: u64 = 1_000_000;
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 24 * 3600 * 1000 * MS),
        ("w", 7 * 24 * 3600 * 1000 * MS),
        ("d", 24 * 3600 * 1000 * MS),
        ("h", 3600 * 1000 * MS),
        ("m", 60 * 1000 * MS),
        ("s", 1000 * MS),
        ("ms", MS),
    ];
    let invalid = || DurationError::Invalid(s.to_string());
    let mut rest = s;
    let mut nanos: u64 = 0;
    // Index into UNITS of the next unit allowed: units must shrink.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(invalid());
        }
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(idx) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(DurationError::UnknownUnit {
                unit: unit.to_string(),
                input: s.to_string(),
            });
        };
        if idx < next_unit {
            return Err(invalid());
        }
        next_unit = idx + 1;
        let add = amount
            .checked_mul(UNITS[idx].1)
            .ok_or(DurationError::OutOfRange)?;
        nanos = nanos.checked_add(add).ok_or(DurationError::OutOfRange)?;
        if nanos > i64::MAX as u64 {
            return Err(DurationError::OutOfRange);
        }
    }
    Ok(Duration::from_nanos(nanos))
}

/// Formats a duration as Prometheus does (`model.Duration.String()`):
/// largest units first, years and weeks only when they divide it exactly
/// (`90d`, not `12w6d`), milliseconds precision, `0s` for zero.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let units: [(&str, u128, bool); 7] = [
        ("y", 365 * 24 * 3_600_000, true),
        ("w", 7 * 24 * 3_600_000, true),
        ("d", 24 * 3_600_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in units {
        if exact && !ms.is_multiple_of(mult) {
            continue;
        }
        let n = ms / mult;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            ms -= n * mult;
        }
    }
    out
}

/// What a valid duration looks like, for messages.
const DURATION_HINT: &str = "expected e.g. 30s, 5m, 1h30m or 0: whole numbers with units y, w, d, h, m, s, ms, largest first";

// ---------------------------------------------------------------------------
// Names

/// Whether `name` is a valid label name under Prometheus 3's UTF-8 rules
/// (any non-empty UTF-8 string).
pub fn is_valid_label_name(name: &str) -> bool {
    crate::promql::value::is_valid_label_name(name)
}

/// Whether `name` may be a recorded series' name: a valid metric name under
/// Prometheus 3's UTF-8 rules, without braces (Prometheus refuses those in
/// `record:` because they are nearly always a selector pasted by mistake).
pub fn is_valid_record_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['{', '}'])
}

/// Checks one `labels:` map (of a group, rule or log metric), pushing a
/// problem for every name that cannot be set.
fn check_label_names(labels: &LabelMapConfig, ctx: &str, name_source: &str, out: &mut Problems) {
    for (key, _) in &labels.0 {
        if key.value == METRIC_NAME_LABEL {
            out.push(
                Pos::of(key),
                format!(
                    "{ctx}invalid label name: {METRIC_NAME_LABEL} (the series name comes from \
                     {name_source}, not from labels)"
                ),
            );
        } else if !is_valid_label_name(&key.value) {
            out.push(
                Pos::of(key),
                format!(
                    "{ctx}invalid label name: {:?} (label names must not be empty)",
                    key.value
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Loading

/// Problems found so far, each with its position.
struct Problems(Vec<(Pos, String)>);

impl Problems {
    fn push(&mut self, pos: Pos, message: String) {
        self.0.push((pos, message));
    }
}

/// Reads and validates `text` (the body of [`crate::file::load_str`]).
pub(crate) fn load(
    source: &str,
    text: &str,
    opts: LoadOptions,
) -> Result<RuleFile, RuleFileErrors> {
    let mut problems = Problems(Vec::new());
    let yaml_opts = serde_saphyr::options! {
        with_snippet: false,
        // `.inf` and `.nan` are text to Go's decoder when read into a
        // string, so a label value `.inf` must load.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
        // serde-saphyr's defaults suit small configs (250k nodes is a
        // rule file of about 3 MB); rule files of whole fleets are larger.
        // Still bounded, so that a runaway file cannot exhaust memory.
        budget: serde_saphyr::budget! {
            max_events: 40_000_000,
            max_nodes: 20_000_000,
        },
    };

    // Pass 1: syntax, and every unknown key. A syntax error ends loading:
    // nothing after it can be trusted.
    let mut text = text;
    let tree = loop {
        match serde_saphyr::from_str_with_options::<Node>(text, yaml_opts.clone()) {
            Ok(tree) => break tree,
            Err(e) => {
                // Prometheus reads the first document of a multi-document
                // file and ignores the rest; a file it loads loads here.
                if let Some(cut) = second_document_start(&e, text) {
                    text = &text[..cut];
                    continue;
                }
                problems.push(error_pos(&e), tocsin_yaml::message(&e));
                return Err(into_errors(source, problems));
            }
        }
    };
    if !check_tree(&tree, !opts.ignore_unknown_fields, &mut problems) {
        // The typed read would only stop at the first of these.
        return Err(into_errors(source, problems));
    }

    // Pass 2: the typed read. Unknown keys are skipped here and shapes were
    // checked above, so little can fail here; if something does, serde stops
    // at it, and the tree says which field it was and what it should be.
    let config = match serde_saphyr::from_str_with_options::<RuleFileConfig>(text, yaml_opts) {
        Ok(c) => c,
        Err(e) => {
            let pos = error_pos(&e);
            let message = match describe_expected(&tree, pos) {
                Some(what) => format!("{what} ({})", tocsin_yaml::message(&e)),
                None => tocsin_yaml::message(&e),
            };
            problems.push(pos, message);
            return Err(into_errors(source, problems));
        }
    };

    // Pass 3: the meaning.
    let file = validate_config(source, text, config, &mut problems);
    if problems.0.is_empty() {
        Ok(file)
    } else {
        Err(into_errors(source, problems))
    }
}

/// Where the second document of `text` starts, if `e` says there is one.
fn second_document_start(e: &serde_saphyr::Error, text: &str) -> Option<usize> {
    let serde_saphyr::Error::MultipleDocuments { location, .. } = e.without_snippet() else {
        return None;
    };
    let line = usize::try_from(location.line()).ok()?;
    // Byte offset of the start of that (1-based) line.
    let cut: usize = text
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum();
    (cut > 0 && cut < text.len()).then_some(cut)
}

fn into_errors(source: &str, problems: Problems) -> RuleFileErrors {
    let mut problems = problems.0;
    // File order reads best; stable, so one position's problems keep the
    // order in which they were found.
    problems.sort_by_key(|(pos, _)| *pos);
    problems.dedup();
    RuleFileErrors {
        errors: problems
            .into_iter()
            .map(|(pos, message)| RuleFileError {
                file: source.to_string(),
                pos,
                message,
            })
            .collect(),
    }
}

fn error_pos(e: &serde_saphyr::Error) -> Pos {
    e.location()
        .map(|l| Pos::from_location(&l))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The generic YAML tree and unknown keys

/// The file as a tree of positioned nodes, for the schema walk that finds
/// unknown keys and values of the wrong shape. Keys of any scalar type are
/// read as their value's text, as Prometheus' YAML decoder reads them.
type Node = tocsin_yaml::Node<AnyScalarKey>;

/// Where `node`'s value is.
fn pos_of(node: &Node) -> Pos {
    Pos::from_location(&node.location)
}

/// The field names serde's derive gave `T` (read from the `fields` list
/// its `Deserialize` impl passes to `deserialize_struct`), so the
/// unknown-key check can never drift from the `*Config` types.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Captured(&'static [&'static str]);
    impl fmt::Display for Captured {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("field list captured")
        }
    }
    impl std::error::Error for Captured {}
    impl serde::de::Error for Captured {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Captured(&[])
        }
    }
    struct Introspect;
    impl<'de> serde::Deserializer<'de> for Introspect {
        type Error = Captured;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
            Err(Captured(&[]))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Captured> {
            Err(Captured(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Introspect) {
        Err(Captured(fields)) => fields,
        Ok(_) => &[],
    }
}

/// Which `*Config` type a mapping in the tree is read as.
#[derive(Clone, Copy)]
enum Schema {
    File,
    Group,
    Rule,
    LogMetric,
}

impl Schema {
    fn fields(self) -> &'static [&'static str] {
        match self {
            Schema::File => fields_of::<RuleFileConfig>(),
            Schema::Group => fields_of::<RuleGroupConfig>(),
            Schema::Rule => fields_of::<RuleConfig>(),
            Schema::LogMetric => fields_of::<LogMetricConfig>(),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Schema::File => "the top level of a rule file",
            Schema::Group => "a rule group",
            Schema::Rule => "a rule",
            Schema::LogMetric => "a log metric",
        }
    }

    /// The schema of the sequence items under `key`, if they are checked.
    fn child(self, key: &str) -> Option<Schema> {
        match (self, key) {
            (Schema::File, "groups") => Some(Schema::Group),
            (Schema::File, "log_metrics") => Some(Schema::LogMetric),
            (Schema::Group, "rules") => Some(Schema::Rule),
            _ => None,
        }
    }
}

/// The message for a file whose top level is not a mapping.
const TOP_LEVEL_SHAPE: &str =
    "a rule file must be a mapping with groups: (and optionally log_metrics:)";

/// Checks the tree against the `*Config` types: every unknown key (unless
/// `check_unknown` is off) and every value of the wrong shape, all at once.
/// Returns whether the shapes are right, i.e. whether the typed read can
/// succeed; unknown keys do not stop it.
fn check_tree(tree: &Node, check_unknown: bool, out: &mut Problems) -> bool {
    match &tree.kind {
        NodeKind::Map(_) => {
            let mut shape_ok = true;
            check_mapping(tree, Schema::File, check_unknown, &mut shape_ok, out);
            shape_ok
        }
        // An empty file (or only comments) has no groups, as in Prometheus.
        NodeKind::Null => true,
        _ => {
            out.push(pos_of(tree), TOP_LEVEL_SHAPE.into());
            false
        }
    }
}

fn check_mapping(
    node: &Node,
    schema: Schema,
    check_unknown: bool,
    shape_ok: &mut bool,
    out: &mut Problems,
) {
    let NodeKind::Map(entries) = &node.kind else {
        return;
    };
    let fields = schema.fields();
    for (key, value) in entries {
        let k = key.value.as_str();
        if !fields.contains(&k) {
            if check_unknown {
                let suggestion = closest(k, fields)
                    .map(|near| format!("did you mean {near}? "))
                    .unwrap_or_default();
                out.push(
                    Pos::of(key),
                    format!(
                        "field {k} not found in {} ({suggestion}valid fields: {})",
                        schema.what(),
                        fields.join(", ")
                    ),
                );
            }
            continue;
        }
        let mut wrong = |pos: Pos, message: String| {
            *shape_ok = false;
            out.push(pos, message);
        };
        let must_be = || {
            format!(
                "field {k} in {} must be {}",
                schema.what(),
                expected_value(k)
            )
        };
        let value_pos = pos_of(value);
        let is_text_map = k == "labels" || k == "annotations";
        match (&value.kind, schema.child(k)) {
            // Absent and null are the same to every field.
            (NodeKind::Null, _) => {}
            (NodeKind::Seq(items), Some(child)) => {
                for item in items {
                    if let NodeKind::Map(_) = item.kind {
                        check_mapping(item, child, check_unknown, shape_ok, out);
                    } else {
                        *shape_ok = false;
                        out.push(
                            pos_of(item),
                            format!("each entry of {k} must be a mapping ({})", child.what()),
                        );
                    }
                }
            }
            (_, Some(_)) => wrong(value_pos, must_be()),
            (NodeKind::Map(pairs), None) if is_text_map => {
                for (name, v) in pairs {
                    if let NodeKind::Map(_) | NodeKind::Seq(_) = v.kind {
                        wrong(
                            pos_of(v),
                            format!("the value of {} in {k} must be a string", name.value),
                        );
                    }
                }
            }
            (_, None) if is_text_map => wrong(value_pos, must_be()),
            (NodeKind::Int, None) if k == "limit" => {}
            (_, None) if k == "limit" => wrong(value_pos, must_be()),
            (NodeKind::Map(_) | NodeKind::Seq(_), None) => wrong(value_pos, must_be()),
            (NodeKind::Int | NodeKind::Scalar, None) => {}
        }
    }
}

/// What the value at `pos` should have been, naming its field, for a type
/// error of the typed read (serde-saphyr says only what it expected).
fn describe_expected(tree: &Node, pos: Pos) -> Option<String> {
    if pos_of(tree) == pos {
        return Some(TOP_LEVEL_SHAPE.into());
    }
    find_expected(tree, Some(Schema::File), pos)
}

fn find_expected(node: &Node, schema: Option<Schema>, pos: Pos) -> Option<String> {
    match &node.kind {
        NodeKind::Map(entries) => {
            for (key, value) in entries {
                let k = key.value.as_str();
                let Some(schema) = schema else {
                    // Inside labels: or annotations:.
                    if pos_of(value) == pos {
                        return Some(format!("the value of {k} must be a string"));
                    }
                    continue;
                };
                if pos_of(value) == pos {
                    return Some(format!(
                        "field {k} in {} must be {}",
                        schema.what(),
                        expected_value(k)
                    ));
                }
                let found = match (&value.kind, schema.child(k)) {
                    (NodeKind::Seq(items), Some(child)) => items.iter().find_map(|item| {
                        if pos_of(item) == pos {
                            Some(format!(
                                "each entry of {k} must be a mapping ({})",
                                child.what()
                            ))
                        } else {
                            find_expected(item, Some(child), pos)
                        }
                    }),
                    (NodeKind::Map(_), _) if k == "labels" || k == "annotations" => {
                        find_expected(value, None, pos)
                    }
                    _ => None,
                };
                if found.is_some() {
                    return found;
                }
            }
            None
        }
        _ => None,
    }
}

fn expected_value(key: &str) -> &'static str {
    match key {
        "groups" => "a list of rule groups",
        "log_metrics" => "a list of log metrics",
        "rules" => "a list of rules",
        "labels" | "annotations" => "a mapping of names to string values",
        "interval" | "query_offset" | "for" | "keep_firing_for" => {
            "a duration such as 30s, 5m or 1h30m"
        }
        "limit" => "a whole number",
        _ => "a string",
    }
}

/// The field closest to a misspelt key, if one is plausibly meant.
fn closest<'a>(key: &str, fields: &[&'a str]) -> Option<&'a str> {
    fields
        .iter()
        .map(|f| (edit_distance(key, f), *f))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------
// Semantic checks

fn validate_config(
    source: &str,
    text: &str,
    config: RuleFileConfig,
    out: &mut Problems,
) -> RuleFile {
    let mut seen_groups: HashMap<String, Pos> = HashMap::new();
    let mut groups = Vec::new();
    for g in config.groups.unwrap_or_default() {
        let pos = Pos::of(&g);
        let group = validate_group(text, g.value, pos, &mut seen_groups, out);
        groups.push(group);
    }
    let mut seen_metrics: HashMap<String, Pos> = HashMap::new();
    let mut log_metrics = Vec::new();
    for m in config.log_metrics.unwrap_or_default() {
        let pos = Pos::of(&m);
        if let Some(metric) = validate_log_metric(m.value, pos, &mut seen_metrics, out) {
            log_metrics.push(metric);
        }
    }
    // A recording rule and a log metric of the same name would write the
    // same series.
    for group in &groups {
        for rule in &group.rules {
            if let RuleKind::Record(name) = &rule.kind
                && let Some(m) = log_metrics.iter().find(|m| &m.name == name)
            {
                out.push(
                    rule.pos,
                    format!(
                        "group {:?}: recording rule {name} has the name of the log metric at {} \
                         (they would write the same series; rename one)",
                        group.name, m.pos
                    ),
                );
            }
        }
    }
    RuleFile {
        source: source.to_string(),
        groups,
        log_metrics,
    }
}

/// Parses an optional duration field, reporting a bad one at its value.
fn duration_field(
    field: &Option<Spanned<String>>,
    key: &str,
    ctx: &str,
    out: &mut Problems,
) -> Option<Duration> {
    let f = field.as_ref()?;
    match parse_duration(&f.value) {
        Ok(d) => Some(d),
        Err(e) => {
            out.push(
                Pos::of(f),
                format!("{ctx}invalid {key}: {e} ({DURATION_HINT})"),
            );
            None
        }
    }
}

fn pairs(map: &Option<Spanned<LabelMapConfig>>) -> Vec<(String, String)> {
    map.as_ref()
        .map(|m| {
            m.value
                .0
                .iter()
                .map(|(k, v)| (k.value.clone(), v.value.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn validate_group(
    text: &str,
    g: RuleGroupConfig,
    pos: Pos,
    seen: &mut HashMap<String, Pos>,
    out: &mut Problems,
) -> RuleGroup {
    let name = g.name.as_ref().map(|n| n.value.clone()).unwrap_or_default();
    if name.is_empty() {
        out.push(
            pos,
            "Groupname must not be empty (every group needs a `name:` unique in its file)".into(),
        );
    } else if let Some(first) = seen.get(&name) {
        out.push(
            pos,
            format!("groupname: {name:?} is repeated in the same file (first at {first}; group names must be unique in a file)"),
        );
    } else {
        seen.insert(name.clone(), pos);
    }
    let ctx = format!("group {name:?}: ");
    let interval = duration_field(&g.interval, "interval", &ctx, out).filter(|d| !d.is_zero());
    let query_offset = duration_field(&g.query_offset, "query_offset", &ctx, out);
    let limit = g
        .limit
        .as_ref()
        .map(|l| usize::try_from(l.value).unwrap_or(0))
        .unwrap_or(0);
    if let Some(labels) = &g.labels {
        check_label_names(&labels.value, &ctx, "`record:` or the expression", out);
    }
    let labels = pairs(&g.labels);

    let mut rules = Vec::new();
    for (i, r) in g.rules.unwrap_or_default().into_iter().enumerate() {
        let rpos = Pos::of(&r);
        if let Some(rule) = validate_rule(text, &name, i + 1, r.value, rpos, out) {
            rules.push(rule);
        }
    }
    RuleGroup {
        name,
        interval,
        limit,
        query_offset,
        labels,
        rules,
        pos,
    }
}

/// A non-empty string field: Prometheus treats `record: ""` as absent.
fn non_empty(f: &Option<Spanned<String>>) -> Option<&Spanned<String>> {
    f.as_ref().filter(|s| !s.value.is_empty())
}

fn validate_rule(
    text: &str,
    group: &str,
    index: usize,
    r: RuleConfig,
    pos: Pos,
    out: &mut Problems,
) -> Option<Rule> {
    let record = non_empty(&r.record);
    let alert = non_empty(&r.alert);
    let name = alert.or(record).map(|s| s.value.as_str()).unwrap_or("");
    let ctx = format!("group {group:?}, rule {index}, {name:?}: ");
    let before = out.0.len();

    let kind = match (record, alert) {
        (Some(rec), Some(al)) => {
            out.push(
                Pos::of(rec),
                format!(
                    "{ctx}only one of 'record' and 'alert' must be set (alert: is at {}; a rule either records a series or raises an alert)",
                    Pos::of(al)
                ),
            );
            None
        }
        (None, None) => {
            out.push(
                pos,
                format!("{ctx}one of 'record' or 'alert' must be set (record: names the series a recording rule writes, alert: names an alert)"),
            );
            None
        }
        (Some(rec), None) => Some(RuleKind::Record(rec.value.clone())),
        (None, Some(al)) => Some(RuleKind::Alert(al.value.clone())),
    };

    let expr = match non_empty(&r.expr) {
        None => {
            let at = r.expr.as_ref().map(Pos::of).unwrap_or(pos);
            out.push(
                at,
                format!("{ctx}field 'expr' must be set in rule (a PromQL expression)"),
            );
            None
        }
        Some(e) => match crate::promql::parse(&e.value) {
            Ok(parsed) => Some((e.value.clone(), parsed)),
            Err(msg) => {
                out.push(
                    Pos::of(e),
                    format!(
                        "{ctx}could not parse expression: parse error: {}",
                        promql_error(&msg)
                    ),
                );
                None
            }
        },
    };

    let for_ = duration_field(&r.for_, "for", &ctx, out).unwrap_or_default();
    let keep_firing_for =
        duration_field(&r.keep_firing_for, "keep_firing_for", &ctx, out).unwrap_or_default();

    if let Some(rec) = record {
        if let Some(ann) = r.annotations.as_ref().filter(|a| !a.value.0.is_empty()) {
            out.push(
                Pos::of(ann),
                format!("{ctx}invalid field 'annotations' in recording rule (only alerts have annotations)"),
            );
        }
        if let Some(f) = r.for_.as_ref().filter(|_| !for_.is_zero()) {
            out.push(
                Pos::of(f),
                format!(
                    "{ctx}invalid field 'for' in recording rule (only alerts wait before firing)"
                ),
            );
        }
        if let Some(f) = r
            .keep_firing_for
            .as_ref()
            .filter(|_| !keep_firing_for.is_zero())
        {
            out.push(
                Pos::of(f),
                format!("{ctx}invalid field 'keep_firing_for' in recording rule (only alerts keep firing)"),
            );
        }
        if rec.value.contains(['{', '}']) {
            out.push(
                Pos::of(rec),
                format!(
                    "{ctx}braces present in the recording rule name; should it be in expr?: {} (record: is the name of the series written, e.g. job:http_requests:rate5m)",
                    rec.value
                ),
            );
        } else if !is_valid_record_name(&rec.value) {
            out.push(
                Pos::of(rec),
                format!("{ctx}invalid recording rule name: {}", rec.value),
            );
        }
    }

    if let Some(labels) = &r.labels {
        check_label_names(&labels.value, &ctx, "`record:` or the expression", out);
    }
    if let Some(ann) = &r.annotations {
        for (key, _) in &ann.value.0 {
            if !is_valid_label_name(&key.value) {
                out.push(
                    Pos::of(key),
                    format!(
                        "{ctx}invalid annotation name: {:?} (annotation names must not be empty)",
                        key.value
                    ),
                );
            }
        }
    }

    // Prometheus parses alert label and annotation templates at load time
    // (recording rule labels are not templates).
    if let Some(al) = alert {
        let tmpl_name = format!("__alert_{}", al.value);
        for (what, map) in [("label", &r.labels), ("annotation", &r.annotations)] {
            let Some(map) = map else { continue };
            for (key, value) in &map.value.0 {
                if let Err(e) = Template::parse(&tmpl_name, &value.value) {
                    let at = match &e {
                        TemplateError::Parse { line, column, .. }
                        | TemplateError::Exec { line, column, .. } => {
                            pos_in_scalar(text, value, *line, *column)
                        }
                    };
                    out.push(at, format!("{ctx}{what} {:?}: {e}", key.value));
                }
            }
        }
    }

    let kind = kind?;
    let (expr_text, expr) = expr?;
    if out.0.len() > before {
        return None;
    }
    Some(Rule {
        kind,
        expr_text,
        expr,
        for_,
        keep_firing_for,
        labels: pairs(&r.labels),
        annotations: pairs(&r.annotations),
        pos,
    })
}

/// Maps `line:column` (1-based, in characters) inside a scalar's value to
/// the file, where that line of the value stands verbatim in the file:
/// plain and quoted scalars without escapes, literal (`|`) blocks. Anywhere
/// else (escapes, folding) it is the scalar's own position.
fn pos_in_scalar(text: &str, scalar: &Spanned<String>, line: usize, column: usize) -> Pos {
    let start = Pos::of(scalar);
    let (Some(value_line), Some(file_line_no)) = (
        line.checked_sub(1)
            .and_then(|l| scalar.value.split('\n').nth(l)),
        start.line.checked_add(line.saturating_sub(1)),
    ) else {
        return start;
    };
    let Some(file_line) = text.lines().nth(file_line_no.saturating_sub(1)) else {
        return start;
    };
    // A quoted scalar's position is its opening quote.
    let skips: &[usize] = if line == 1 { &[0, 1] } else { &[0] };
    for skip in skips {
        let begin = start.column.saturating_sub(1) + skip;
        let rest: String = file_line.chars().skip(begin).collect();
        if rest.starts_with(value_line) {
            return Pos {
                line: file_line_no,
                column: begin + column,
            };
        }
    }
    start
}

/// The regex crate's syntax errors draw a caret under the pattern over
/// several lines; the position is already in front, so keep the reason.
fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .map(str::to_string)
            .unwrap_or_else(|| one_line(s)),
        other => one_line(&other.to_string()),
    }
}

/// The parser's message, one line; its catch-all for grammar errors says
/// neither where nor what, so add what usually causes it.
fn promql_error(msg: &str) -> String {
    let msg = one_line(msg);
    if msg == "invalid promql query" {
        format!(
            "{msg} (the parser does not say where; look for a missing operand or operator, \
             two values side by side, or an unbalanced bracket)"
        )
    } else {
        msg
    }
}

/// PromQL parser messages may span lines; a diagnostic is one line.
fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn validate_log_metric(
    m: LogMetricConfig,
    pos: Pos,
    seen: &mut HashMap<String, Pos>,
    out: &mut Problems,
) -> Option<LogMetric> {
    let before = out.0.len();
    let name = non_empty(&m.name)
        .map(|n| n.value.clone())
        .unwrap_or_default();
    let ctx = if name.is_empty() {
        "log metric: ".to_string()
    } else {
        format!("log metric {name:?}: ")
    };
    match non_empty(&m.name) {
        None => out.push(
            m.name.as_ref().map(Pos::of).unwrap_or(pos),
            "log metric: field 'name' must be set (the counter's metric name, e.g. api_timeouts_total)".into(),
        ),
        Some(n) if !is_valid_record_name(&n.value) => out.push(
            Pos::of(n),
            format!("{ctx}invalid metric name: {} (a series name, without braces or labels)", n.value),
        ),
        Some(n) => {
            if let Some(first) = seen.get(&n.value) {
                out.push(
                    Pos::of(n),
                    format!("{ctx}log metric name is repeated in the same file (first at {first})"),
                );
            } else {
                seen.insert(n.value.clone(), Pos::of(n));
            }
        }
    }

    let selector = match non_empty(&m.selector) {
        None => {
            out.push(
                m.selector.as_ref().map(Pos::of).unwrap_or(pos),
                format!("{ctx}field 'selector' must be set (a series selector over the record's labels, e.g. '{{service_name=\"api\"}}')"),
            );
            None
        }
        Some(s) => match crate::promql::parse(&s.value) {
            Ok(Expr::VectorSelector(vs)) => {
                let names_metric = vs.name.is_some()
                    || vs
                        .matchers
                        .matchers
                        .iter()
                        .any(|m| m.name == METRIC_NAME_LABEL)
                    || vs
                        .matchers
                        .or_matchers
                        .iter()
                        .flatten()
                        .any(|m| m.name == METRIC_NAME_LABEL);
                if names_metric {
                    out.push(
                        Pos::of(s),
                        format!("{ctx}selector must not match a metric name: log records have none (select on their labels, e.g. '{{service_name=\"api\"}}')"),
                    );
                    None
                } else if vs.offset.is_some() || vs.at.is_some() {
                    out.push(
                        Pos::of(s),
                        format!("{ctx}selector must not use offset or @: it is matched against each record as it arrives"),
                    );
                    None
                } else {
                    Some((s.value.clone(), Expr::VectorSelector(vs)))
                }
            }
            Ok(_) => {
                out.push(
                    Pos::of(s),
                    format!("{ctx}selector must be a series selector such as '{{service_name=\"api\", host_name=~\"web.*\"}}', not an expression"),
                );
                None
            }
            Err(msg) => {
                out.push(
                    Pos::of(s),
                    format!(
                        "{ctx}could not parse selector: parse error: {}",
                        one_line(&msg)
                    ),
                );
                None
            }
        },
    };

    let min_severity = match non_empty(&m.min_severity) {
        None => None,
        Some(s) if SEVERITIES.contains(&s.value.as_str()) => Some(s.value.clone()),
        Some(s) => {
            out.push(
                Pos::of(s),
                format!(
                    "{ctx}invalid min_severity: {:?} (valid: {})",
                    s.value,
                    SEVERITIES.join(", ")
                ),
            );
            None
        }
    };

    let static_labels: BTreeMap<&str, Pos> = m
        .labels
        .as_ref()
        .map(|l| {
            l.value
                .0
                .iter()
                .map(|(k, _)| (k.value.as_str(), Pos::of(k)))
                .collect()
        })
        .unwrap_or_default();
    if let Some(labels) = &m.labels {
        check_label_names(&labels.value, &ctx, "`name:`", out);
        for (key, _) in &labels.value.0 {
            if key.value == SEVERITY_LABEL {
                out.push(
                    Pos::of(key),
                    format!("{ctx}label {SEVERITY_LABEL} is set from each record's severity and cannot be static"),
                );
            }
        }
    }

    let mut pattern_regex = None;
    if let Some(p) = non_empty(&m.pattern) {
        match regex::Regex::new(&p.value) {
            Ok(re) => {
                for group in re.capture_names().flatten() {
                    let problem = if group.starts_with("__") {
                        Some("names starting with __ are reserved")
                    } else if group == SEVERITY_LABEL {
                        Some("it would hide the record's severity label")
                    } else if static_labels.contains_key(group) {
                        Some("a static label of this log metric has the same name")
                    } else {
                        None
                    };
                    if let Some(why) = problem {
                        out.push(
                            Pos::of(p),
                            format!("{ctx}invalid capture group name {group:?} in pattern: {why} (named groups become labels)"),
                        );
                    }
                }
                pattern_regex = Some(re);
            }
            Err(e) => out.push(
                Pos::of(p),
                format!("{ctx}invalid pattern: {}", regex_error(&e)),
            ),
        }
    }

    let (selector_text, selector) = selector?;
    if out.0.len() > before {
        return None;
    }
    Some(LogMetric {
        name,
        selector,
        selector_text,
        min_severity,
        pattern: non_empty(&m.pattern).map(|p| p.value.clone()),
        pattern_regex,
        labels: Labels::from_pairs(pairs(&m.labels)),
        pos,
    })
}

// ---------------------------------------------------------------------------
// Lint

/// Rules that write the same series: the same name and the same labels
/// (group labels merged under the rule's own), promtool's
/// `--lint duplicate-rules` definition. Such rules overwrite each other's
/// samples, whatever their expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateRule {
    /// The alert or record name.
    pub name: String,
    /// The merged labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// Where each of the rules is, in file order (at least two).
    pub positions: Vec<Pos>,
}

impl fmt::Display for DuplicateRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "duplicate rule {}", self.name)?;
        if !self.labels.is_empty() {
            f.write_str("{")?;
            for (i, (k, v)) in self.labels.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{k}={v:?}")?;
            }
            f.write_str("}")?;
        }
        f.write_str(" at")?;
        for p in &self.positions {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// A written series' identity: the rule name and its merged labels.
type SeriesKey = (String, Vec<(String, String)>);

/// Finds rules that write the same series (see [`DuplicateRule`]), sorted
/// by name then labels, like promtool's report.
pub fn lint_duplicates(file: &RuleFile) -> Vec<DuplicateRule> {
    let mut seen: BTreeMap<SeriesKey, Vec<Pos>> = BTreeMap::new();
    for group in &file.groups {
        for rule in &group.rules {
            let mut merged: BTreeMap<String, String> = group.labels.iter().cloned().collect();
            merged.extend(rule.labels.iter().cloned());
            let labels = merged.into_iter().collect();
            seen.entry((rule.name().to_string(), labels))
                .or_default()
                .push(rule.pos);
        }
    }
    seen.into_iter()
        .filter(|(_, positions)| positions.len() > 1)
        .map(|((name, labels), positions)| DuplicateRule {
            name,
            labels,
            positions,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("1h30m"), Ok(ms(5_400_000)));
        assert_eq!(parse_duration("1d"), Ok(ms(86_400_000)));
        assert_eq!(parse_duration("1w"), Ok(ms(7 * 86_400_000)));
        assert_eq!(parse_duration("1y"), Ok(ms(365 * 86_400_000)));
        assert_eq!(parse_duration("2m59s999ms"), Ok(ms(179_999)));
        assert_eq!(parse_duration("100ms"), Ok(ms(100)));
        assert_eq!(parse_duration("106700d"), Ok(ms(106_700 * 86_400_000)));
    }

    #[test]
    fn durations_refused_like_prometheus() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        for bad in [
            "5", "m", "1.5h", "-5m", " 5m", "5m ", "1m1h", "1m1m", "1s1m", "5M",
        ] {
            assert!(
                matches!(
                    parse_duration(bad),
                    Err(DurationError::Invalid(_) | DurationError::UnknownUnit { .. })
                ),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(
            parse_duration("5x"),
            Err(DurationError::UnknownUnit {
                unit: "x".into(),
                input: "5x".into()
            })
        );
        assert_eq!(
            parse_duration("1m1h").map_err(|e| e.to_string()),
            Err("not a valid duration string: \"1m1h\"".to_string())
        );
        // Go's time.Duration holds at most 2^63-1 ns (about 292 years).
        assert_eq!(
            parse_duration("292y"),
            Ok(Duration::from_secs(292 * 365 * 86_400))
        );
        assert_eq!(parse_duration("293y"), Err(DurationError::OutOfRange));
        assert_eq!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Invalid("99999999999999999999s".into()))
        );
    }

    #[test]
    fn durations_format_like_prometheus() {
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(ms(5_400_000)), "1h30m");
        assert_eq!(format_duration(ms(90 * 86_400_000)), "90d");
        assert_eq!(format_duration(ms(14 * 86_400_000)), "2w");
        assert_eq!(format_duration(ms(365 * 86_400_000)), "1y");
        assert_eq!(format_duration(ms(179_999)), "2m59s999ms");
        // Below a millisecond is dropped, as Prometheus keeps milliseconds.
        assert_eq!(format_duration(Duration::from_micros(1500)), "1ms");
    }

    proptest::proptest! {
        /// Every whole-millisecond duration in range survives a round trip
        /// through Prometheus' text form.
        #[test]
        fn duration_text_round_trips(millis in 0u64..9_223_372_036_854) {
            let d = Duration::from_millis(millis);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn names_follow_prometheus_3_utf8_rules() {
        assert!(is_valid_label_name("ins-tance"));
        assert!(is_valid_label_name("host.name"));
        assert!(is_valid_label_name("ünïcode"));
        assert!(!is_valid_label_name(""));
        assert!(is_valid_record_name("job:http_requests:rate5m"));
        assert!(is_valid_record_name("http.server.duration"));
        assert!(!is_valid_record_name(""));
        assert!(!is_valid_record_name("foo{job=\"x\"}"));
        assert!(!is_valid_record_name("foo}"));
    }

    #[test]
    fn field_lists_come_from_the_config_types() {
        assert_eq!(fields_of::<RuleFileConfig>(), &["groups", "log_metrics"]);
        assert_eq!(
            fields_of::<RuleConfig>(),
            &[
                "record",
                "alert",
                "expr",
                "for",
                "keep_firing_for",
                "labels",
                "annotations"
            ]
        );
        assert!(fields_of::<RuleGroupConfig>().contains(&"query_offset"));
        assert!(fields_of::<LogMetricConfig>().contains(&"min_severity"));
    }

    #[test]
    fn misspelt_keys_get_a_suggestion() {
        assert_eq!(
            closest("annotation", fields_of::<RuleConfig>()),
            Some("annotations")
        );
        assert_eq!(closest("exp", fields_of::<RuleConfig>()), Some("expr"));
        assert_eq!(closest("ownership", fields_of::<RuleGroupConfig>()), None);
    }
}
