//! What a query reads: the loaded data (floats in the store, the times of
//! native-histogram samples beside it) and, for skip rule (b), the
//! selectors of a query with the sample windows they read at the evaluated
//! times, matched against the series that hold native histograms.

use std::collections::HashMap;
use std::time::SystemTime;

use promql_parser::parser::{AtModifier, Expr, Offset};
use regex::Regex;
use tocsin_rules::promql::{Labels, Matcher, MemStorage};

use super::format::{LoadCmd, SeqValue, parse_duration, parse_go_float};

pub const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Loaded data: floats in the store, and for each series holding native
/// histograms the times of those samples (the store cannot hold them).
#[derive(Default)]
pub struct Loaded {
    pub store: MemStorage,
    pub histograms: HashMap<Labels, Vec<i64>>,
}

impl Loaded {
    pub fn load(&mut self, cmd: &LoadCmd) {
        for s in &cmd.series {
            for (i, v) in s.values.iter().enumerate() {
                let t = i as i64 * cmd.gap_ms;
                match v {
                    SeqValue::Omitted => {}
                    SeqValue::Float(f) => self.store.add(&s.labels, t, *f),
                    SeqValue::Histogram => {
                        self.histograms.entry(s.labels.clone()).or_default().push(t)
                    }
                }
            }
        }
        if cmd.with_nhcb {
            // Classic histogram series (`_bucket` with a numeric `le`,
            // `_count`, `_sum`) also become one native histogram with custom
            // buckets under the base name, at each of their sample times.
            for s in &cmd.series {
                let name = s.labels.metric_name();
                let base = if let Some(b) = name.strip_suffix("_bucket") {
                    // Go's ParseFloat, as Prometheus reads `le`.
                    match parse_go_float(s.labels.get("le")) {
                        Some(v) if !v.is_nan() => b,
                        _ => continue,
                    }
                } else if let Some(b) = name.strip_suffix("_count") {
                    b
                } else if let Some(b) = name.strip_suffix("_sum") {
                    b
                } else {
                    continue;
                };
                let labels = s.labels.without(&["le"]).with("__name__", base);
                let times = self.histograms.entry(labels).or_default();
                for (i, v) in s.values.iter().enumerate() {
                    if matches!(v, SeqValue::Float(_)) {
                        times.push(i as i64 * cmd.gap_ms);
                    }
                }
            }
        }
    }
}

/// One selector of a query with the window of sample times it can read,
/// `(mint, maxt]` (left-open, as Prometheus 3's lookback and ranges).
pub struct SelectorWindow<'a> {
    pub name: Option<&'a str>,
    pub matchers: &'a [Matcher],
    pub or_matchers: &'a [Vec<Matcher>],
    pub mint: i64,
    pub maxt: i64,
}

pub fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
        None => 0,
    }
}

pub fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The evaluation times a selector sees, given the times `[lo, hi]` its
/// enclosing expression is evaluated at and the query's start and end.
pub fn selector_times(
    at: &Option<AtModifier>,
    offset: &Option<Offset>,
    lo: i64,
    hi: i64,
    q: (i64, i64),
) -> (i64, i64) {
    let (lo, hi) = match at {
        Some(AtModifier::Start) => (q.0, q.0),
        Some(AtModifier::End) => (q.1, q.1),
        Some(AtModifier::At(t)) => (system_time_ms(t), system_time_ms(t)),
        None => (lo, hi),
    };
    let o = offset_ms(offset);
    (lo - o, hi - o)
}

/// Collects every selector of `expr` with the sample window it may read.
pub fn collect_selectors<'a>(
    expr: &'a Expr,
    lo: i64,
    hi: i64,
    q: (i64, i64),
    out: &mut Vec<SelectorWindow<'a>>,
) {
    match expr {
        Expr::VectorSelector(vs) => {
            let (a, b) = selector_times(&vs.at, &vs.offset, lo, hi, q);
            out.push(SelectorWindow {
                name: vs.name.as_deref(),
                matchers: &vs.matchers.matchers,
                or_matchers: &vs.matchers.or_matchers,
                mint: a - LOOKBACK_MS,
                maxt: b,
            });
        }
        Expr::MatrixSelector(ms) => {
            let (a, b) = selector_times(&ms.vs.at, &ms.vs.offset, lo, hi, q);
            out.push(SelectorWindow {
                name: ms.vs.name.as_deref(),
                matchers: &ms.vs.matchers.matchers,
                or_matchers: &ms.vs.matchers.or_matchers,
                mint: a - ms.range.as_millis() as i64,
                maxt: b,
            });
        }
        Expr::Subquery(sq) => {
            let (a, b) = selector_times(&sq.at, &sq.offset, lo, hi, q);
            collect_selectors(&sq.expr, a - sq.range.as_millis() as i64, b, q, out);
        }
        Expr::Aggregate(a) => {
            collect_selectors(&a.expr, lo, hi, q, out);
            if let Some(p) = &a.param {
                collect_selectors(p, lo, hi, q, out);
            }
        }
        Expr::Unary(u) => collect_selectors(&u.expr, lo, hi, q, out),
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, lo, hi, q, out);
            collect_selectors(&b.rhs, lo, hi, q, out);
        }
        Expr::Paren(p) => collect_selectors(&p.expr, lo, hi, q, out),
        Expr::Call(c) => {
            for a in &c.args.args {
                collect_selectors(a, lo, hi, q, out);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

pub fn selector_matches(sel: &SelectorWindow<'_>, labels: &Labels) -> bool {
    if let Some(n) = sel.name
        && labels.metric_name() != n
    {
        return false;
    }
    let all = |ms: &[Matcher]| ms.iter().all(|m| m.is_match(labels.get(&m.name)));
    if sel.or_matchers.is_empty() {
        all(sel.matchers)
    } else {
        sel.or_matchers.iter().any(|g| all(g) && all(sel.matchers))
    }
}

/// Skip rule (b): the first loaded series holding native histograms that a
/// selector of `expr` reads at the times `[lo, hi]`.
pub fn histogram_selected(
    loaded: &Loaded,
    expr: &Expr,
    lo: i64,
    hi: i64,
    q: (i64, i64),
) -> Option<String> {
    let mut sels = Vec::new();
    collect_selectors(expr, lo, hi, q, &mut sels);
    for sel in &sels {
        for (labels, times) in &loaded.histograms {
            if selector_matches(sel, labels) && times.iter().any(|&t| t > sel.mint && t <= sel.maxt)
            {
                return Some(format!(
                    "query selects native-histogram samples of {labels} in ({}ms, {}ms]",
                    sel.mint, sel.maxt
                ));
            }
        }
    }
    None
}

/// Skip rule (b) for a query promql-parser cannot parse: the metric names
/// it mentions (identifiers outside strings and label braces, not called
/// like functions, not keywords), looked up among the series holding
/// native histograms within the lookback plus the longest range written
/// in the query.
pub fn histogram_named(loaded: &Loaded, query: &str, (lo, hi): (i64, i64)) -> Option<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "atan2",
        "inf",
        "nan",
        "start",
        "end",
    ];
    let ranges = Regex::new(r"\[([0-9a-z]+)(?::[0-9a-z]*)?\]").expect("static regex");
    let longest = ranges
        .captures_iter(query)
        .filter_map(|c| parse_duration(&c[1]).ok())
        .max()
        .unwrap_or(0);
    let bytes = query.as_bytes();
    let mut names = Vec::new();
    let (mut i, mut depth, mut quote) = (0, 0usize, None::<u8>);
    while i < bytes.len() {
        let c = bytes[i];
        if let Some(q) = quote {
            if c == b'\\' {
                i += 1;
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' | b'\'' | b'`' => quote = Some(c),
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            c if depth == 0 && (c.is_ascii_alphabetic() || c == b'_' || c == b':') => {
                let start = i;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':')
                {
                    i += 1;
                }
                let word = &query[start..i];
                let called = query[i..].trim_start().starts_with('(');
                let after_number = start > 0 && bytes[start - 1].is_ascii_digit();
                if !called && !after_number && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                    names.push(word.to_string());
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let mint = lo - LOOKBACK_MS - longest;
    for (labels, times) in &loaded.histograms {
        if names.iter().any(|n| n == labels.metric_name())
            && times.iter().any(|&t| t > mint && t <= hi)
        {
            return Some(format!(
                "it names {labels}, which holds native-histogram samples in ({mint}ms, {hi}ms]"
            ));
        }
    }
    None
}
