//! The promqltest file format (Prometheus' `promql/promqltest`): commands
//! (`load`, `load_with_nhcb`, `clear`, `eval …`), their expectation lines,
//! series descriptions with the expanding value notation, and Prometheus'
//! duration syntax. Parsing only: nothing here evaluates or loads.
//!
//! Invariant: anything that cannot be parsed is an error with the line it
//! came from, never silently dropped, so an unparsable expectation cannot
//! turn into a pass.

use regex::Regex;
use tocsin_rules::promql::Labels;

/// One value position of a series description.
#[derive(Debug, Clone, PartialEq)]
pub enum SeqValue {
    /// `_`: no sample at this step.
    Omitted,
    Float(f64),
    /// A `{{…}}` native histogram literal, recognised but not interpreted.
    Histogram,
}

/// `metric{labels} values…`
#[derive(Debug, Clone)]
pub struct SeriesDesc {
    pub labels: Labels,
    pub values: Vec<SeqValue>,
}

/// How an expected error or annotation is matched.
#[derive(Debug, Clone)]
pub enum TextMatch {
    Any,
    Exact(String),
    Regex(Regex),
}

impl TextMatch {
    pub fn matches(&self, s: &str) -> bool {
        match self {
            TextMatch::Any => true,
            TextMatch::Exact(m) => m == s,
            TextMatch::Regex(r) => r.is_match(s),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TextMatch::Any => "anything".into(),
            TextMatch::Exact(m) => format!("message {m:?}"),
            TextMatch::Regex(r) => format!("pattern {:?}", r.as_str()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectKind {
    Ordered,
    Fail,
    Warn,
    NoWarn,
    Info,
    NoInfo,
}

/// One `expect …` line.
#[derive(Debug, Clone)]
pub struct Expect {
    pub kind: ExpectKind,
    pub text: TextMatch,
}

/// One expected result line: a series (with its position among the
/// series lines, 1-based) or a scalar.
#[derive(Debug, Clone)]
pub struct ExpectedSeries {
    pub pos: usize,
    pub labels: Labels,
    pub values: Vec<SeqValue>,
}

#[derive(Debug, Clone)]
pub struct EvalCmd {
    /// 1-based line of the `eval` line.
    pub line: usize,
    pub expr: String,
    pub is_range: bool,
    /// The evaluation time of an instant query (ms): the `at` time, or the
    /// end of an `expect range vector` range.
    pub eval: i64,
    /// Milliseconds.
    pub start: i64,
    pub end: i64,
    pub step: i64,
    /// Legacy `eval_<mod>` flags.
    pub fail: bool,
    pub warn: bool,
    pub info: bool,
    pub ordered: bool,
    pub expected_fail_message: Option<String>,
    pub expected_fail_regexp: Option<Regex>,
    pub expects: Vec<Expect>,
    pub expect_scalar: Option<SeqValue>,
    pub series: Vec<ExpectedSeries>,
    pub expected_string: Option<String>,
    pub exclude_from_range_query: bool,
    /// `expect range vector` was given: an instant query may return a
    /// matrix over `start..=end`.
    pub range_vector: bool,
    /// The raw expectation lines, for failure reports.
    pub raw_expected: Vec<String>,
    /// Whether an expected value is a native histogram.
    pub expects_histogram: bool,
}

impl EvalCmd {
    pub fn is_fail(&self) -> bool {
        self.fail || self.expects.iter().any(|e| e.kind == ExpectKind::Fail)
    }

    pub fn is_ordered(&self) -> bool {
        self.ordered || self.expects.iter().any(|e| e.kind == ExpectKind::Ordered)
    }

    pub fn expects_of(&self, kind: ExpectKind) -> Vec<&Expect> {
        self.expects.iter().filter(|e| e.kind == kind).collect()
    }
}

#[derive(Debug, Clone)]
pub struct LoadCmd {
    pub gap_ms: i64,
    pub with_nhcb: bool,
    pub series: Vec<SeriesDesc>,
}

#[derive(Debug, Clone)]
pub enum Command {
    Clear,
    Load(LoadCmd),
    Eval(Box<EvalCmd>),
    /// A command that could not be parsed; `eval` says whether it was an
    /// eval (which then counts as failed).
    Broken {
        line: usize,
        eval: Option<String>,
        error: String,
    },
}

/// Lines trimmed, comments blanked (as `getLines`).
pub fn get_lines(input: &str) -> Vec<String> {
    input
        .split('\n')
        .map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect()
}

/// Parses a whole file into commands. Errors are kept in place as
/// [`Command::Broken`] so the caller can count them.
pub fn parse_file(input: &str) -> Vec<Command> {
    let lines = get_lines(input);
    let mut cmds = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if l.is_empty() {
            i += 1;
            continue;
        }
        let word = l
            .split([' ', '\t'])
            .next()
            .unwrap_or_default()
            .to_lowercase();
        if word == "clear" {
            cmds.push(Command::Clear);
            i += 1;
        } else if word.starts_with("load") {
            let (next, cmd) = parse_load(&lines, i);
            cmds.push(cmd);
            i = next + 1;
        } else if word.starts_with("eval") {
            let (next, cmd) = parse_eval(&lines, i);
            cmds.push(cmd);
            i = next + 1;
        } else {
            cmds.push(Command::Broken {
                line: i + 1,
                eval: None,
                error: format!("invalid command {l:?}"),
            });
            i += 1;
        }
    }
    cmds
}

/// Index of the last line of the block starting at `i` (blocks end at an
/// empty line).
fn block_end(lines: &[String], i: usize) -> usize {
    let mut j = i;
    while j + 1 < lines.len() && !lines[j + 1].is_empty() {
        j += 1;
    }
    j
}

fn parse_load(lines: &[String], i: usize) -> (usize, Command) {
    let end = block_end(lines, i);
    let re = regex_or_panic(r"^load(?:_(with_nhcb))?\s+(.+?)$");
    let broken = |error: String| Command::Broken {
        line: i + 1,
        eval: None,
        error,
    };
    let Some(c) = re.captures(&lines[i]) else {
        return (end, broken("invalid load command".into()));
    };
    let with_nhcb = c.get(1).is_some();
    let gap_ms = match parse_duration(&c[2]) {
        Ok(g) => g,
        Err(e) => return (end, broken(format!("invalid step definition: {e}"))),
    };
    let mut by_labels: Vec<SeriesDesc> = Vec::new();
    for (k, line) in lines.iter().enumerate().take(end + 1).skip(i + 1) {
        match parse_series_desc(line) {
            // A series defined twice in one load keeps its last definition.
            Ok(s) => match by_labels.iter_mut().find(|x| x.labels == s.labels) {
                Some(x) => *x = s,
                None => by_labels.push(s),
            },
            Err(e) => {
                return (
                    end,
                    Command::Broken {
                        line: k + 1,
                        eval: None,
                        error: format!("invalid series line {line:?}: {e}"),
                    },
                );
            }
        }
    }
    (
        end,
        Command::Load(LoadCmd {
            gap_ms,
            with_nhcb,
            series: by_labels,
        }),
    )
}

fn regex_or_panic(re: &str) -> Regex {
    match Regex::new(re) {
        Ok(r) => r,
        Err(e) => panic!("built-in pattern {re:?} does not compile: {e}"),
    }
}

fn parse_eval(lines: &[String], i: usize) -> (usize, Command) {
    let end = block_end(lines, i);
    let line = &lines[i];
    let inst =
        regex_or_panic(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$");
    let range = regex_or_panic(
        r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$",
    );
    let broken = |expr: Option<String>, error: String, at: usize| {
        (
            end,
            Command::Broken {
                line: at,
                eval: Some(expr.unwrap_or_else(|| line.clone())),
                error,
            },
        )
    };
    let (modifier, expr, start, stop, step, is_range) = if let Some(c) = inst.captures(line) {
        let at = c.get(2).map_or("", |m| m.as_str());
        let t = match parse_duration(at) {
            Ok(t) => t,
            Err(e) => {
                return broken(
                    Some(c[3].to_string()),
                    format!("invalid timestamp definition {at:?}: {e}"),
                    i + 1,
                );
            }
        };
        (
            c.get(1).map(|m| m.as_str().to_string()),
            c[3].to_string(),
            t,
            t,
            0,
            false,
        )
    } else if let Some(c) = range.captures(line) {
        let parsed = (|| -> Result<(i64, i64, i64), String> {
            let from = parse_duration(&c[2])?;
            let to = parse_duration(&c[3])?;
            let step = parse_duration(&c[4])?;
            if to < from {
                return Err("end timestamp is before start timestamp".into());
            }
            Ok((from, to, step))
        })();
        match parsed {
            Ok((from, to, step)) => (
                c.get(1).map(|m| m.as_str().to_string()),
                c[5].to_string(),
                from,
                to,
                step,
                true,
            ),
            Err(e) => return broken(Some(c[5].to_string()), e, i + 1),
        }
    } else {
        return broken(None, "invalid evaluation command".into(), i + 1);
    };
    let mut cmd = EvalCmd {
        line: i + 1,
        expr,
        is_range,
        eval: start,
        start,
        end: stop,
        step,
        fail: modifier.as_deref() == Some("fail"),
        warn: modifier.as_deref() == Some("warn"),
        info: modifier.as_deref() == Some("info"),
        ordered: modifier.as_deref() == Some("ordered"),
        expected_fail_message: None,
        expected_fail_regexp: None,
        expects: Vec::new(),
        expect_scalar: None,
        series: Vec::new(),
        expected_string: None,
        exclude_from_range_query: false,
        range_vector: false,
        raw_expected: Vec::new(),
        expects_histogram: false,
    };
    let mut pos = 0;
    let mut expect_range_vector = false;
    let mut k = i;
    while k < end {
        k += 1;
        let def = &lines[k];
        cmd.raw_expected.push(def.clone());
        let fail_here = |e: String| broken(Some(cmd.expr.clone()), e, k + 1);
        if cmd.fail && def.starts_with("expected_fail_message") {
            cmd.expected_fail_message =
                Some(def["expected_fail_message".len()..].trim().to_string());
            return (k, Command::Eval(Box::new(cmd)));
        }
        if cmd.fail && def.starts_with("expected_fail_regexp") {
            let pat = def["expected_fail_regexp".len()..].trim();
            match Regex::new(pat) {
                Ok(r) => cmd.expected_fail_regexp = Some(r),
                Err(e) => return fail_here(format!("invalid regexp {pat:?}: {e}")),
            }
            return (k, Command::Eval(Box::new(cmd)));
        }
        if def.starts_with("expect range vector") {
            let re =
                regex_or_panic(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$");
            let Some(c) = re.captures(def) else {
                return fail_here(format!("invalid range vector definition {def:?}"));
            };
            match (
                parse_duration(&c[1]),
                parse_duration(&c[2]),
                parse_duration(&c[3]),
            ) {
                (Ok(a), Ok(b), Ok(s)) if b >= a => {
                    cmd.start = a;
                    cmd.end = b;
                    cmd.step = s;
                    cmd.eval = b;
                }
                _ => return fail_here(format!("invalid range vector definition {def:?}")),
            }
            expect_range_vector = true;
            cmd.range_vector = true;
            cmd.exclude_from_range_query = true;
            continue;
        }
        if let Some(rest) = def.strip_prefix("expect string") {
            let rest = rest.trim();
            match go_unquote(rest) {
                Some(s) if !rest.is_empty() => cmd.expected_string = Some(s),
                _ => return fail_here(format!("invalid expected string literal {rest:?}")),
            }
            cmd.exclude_from_range_query = true;
            continue;
        }
        if def.split(' ').next() == Some("expect") {
            match parse_expect(def) {
                Ok(e) => cmd.expects.push(e),
                Err(e) => return fail_here(e),
            }
            if let Err(e) = validate_expects(&cmd) {
                return fail_here(e);
            }
            continue;
        }
        pos += 1;
        if let Some(f) = parse_number(def) {
            cmd.expect_scalar = Some(SeqValue::Float(f));
            cmd.series.clear();
            return (k, Command::Eval(Box::new(cmd)));
        }
        match parse_series_desc(def) {
            Ok(s) => {
                if s.values.len() > 1 && !cmd.is_range && !expect_range_vector {
                    return fail_here(
                        "expecting multiple values in instant evaluation not allowed".into(),
                    );
                }
                if s.values.contains(&SeqValue::Histogram) {
                    cmd.expects_histogram = true;
                }
                cmd.expect_scalar = None;
                // A repeated label set replaces the earlier line (a map in
                // Prometheus).
                cmd.series.retain(|x| x.labels != s.labels);
                cmd.series.push(ExpectedSeries {
                    pos,
                    labels: s.labels,
                    values: s.values,
                });
            }
            Err(e) => return fail_here(format!("invalid expected line {def:?}: {e}")),
        }
    }
    (end, Command::Eval(Box::new(cmd)))
}

fn validate_expects(cmd: &EvalCmd) -> Result<(), String> {
    let n = |k| cmd.expects.iter().filter(|e| e.kind == k).count();
    if n(ExpectKind::Info) > 0 && n(ExpectKind::NoInfo) > 0 {
        return Err("info and no_info cannot be used together".into());
    }
    if n(ExpectKind::Warn) > 0 && n(ExpectKind::NoWarn) > 0 {
        return Err("warn and no_warn cannot be used together".into());
    }
    if n(ExpectKind::Fail) > 1 {
        return Err("multiple expect fail lines are not allowed".into());
    }
    Ok(())
}

fn parse_expect(def: &str) -> Result<Expect, String> {
    let re = regex_or_panic(
        r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$",
    );
    let Some(c) = re.captures(def.trim()) else {
        return Err(format!("invalid expect statement {def:?}"));
    };
    let kind = match &c[1] {
        "ordered" => ExpectKind::Ordered,
        "fail" => ExpectKind::Fail,
        "warn" => ExpectKind::Warn,
        "no_warn" => ExpectKind::NoWarn,
        "info" => ExpectKind::Info,
        _ => ExpectKind::NoInfo,
    };
    let text = match c.get(2).map(|m| m.as_str()) {
        Some("msg") => TextMatch::Exact(c[3].trim().to_string()),
        Some(_) => {
            let pat = c[3].trim();
            TextMatch::Regex(Regex::new(pat).map_err(|e| format!("invalid regex {pat}: {e}"))?)
        }
        None => TextMatch::Any,
    };
    Ok(Expect { kind, text })
}

/// Go's `parseNumber`: `strconv.ParseInt(s, 0, 64)`, else `ParseFloat`.
pub fn parse_number(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let int = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(&h.replace('_', ""), 16).ok()
    } else if let Some(b) = body.strip_prefix("0b").or_else(|| body.strip_prefix("0B")) {
        i64::from_str_radix(b, 2).ok()
    } else if let Some(o) = body.strip_prefix("0o").or_else(|| body.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| b.is_ascii_digit()) {
        i64::from_str_radix(&body[1..], 8).ok()
    } else if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit()) {
        body.parse::<i64>().ok()
    } else {
        None
    };
    if let Some(n) = int {
        return Some(if neg { -(n as f64) } else { n as f64 });
    }
    parse_go_float(s)
}

/// Go's `strconv.ParseFloat` for the spellings test files use: decimal and
/// exponent forms, `Inf`/`Infinity`/`NaN` in any case, with a sign.
pub fn parse_go_float(s: &str) -> Option<f64> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return Some(sign * f64::INFINITY);
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'))
        || !body.bytes().any(|b| b.is_ascii_digit())
    {
        return None;
    }
    body.replace('_', "").parse::<f64>().ok().map(|v| sign * v)
}

/// Prometheus' `model.ParseDuration` (units y, w, d, h, m, s, ms, in that
/// order, each at most once; "0" alone allowed), in milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    let re = regex_or_panic(
        r"^(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?$",
    );
    let Some(c) = re.captures(s) else {
        return Err(format!("not a valid duration string: {s:?}"));
    };
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    let unit_ms: [i64; 7] = [
        365 * 24 * 3_600_000,
        7 * 24 * 3_600_000,
        24 * 3_600_000,
        3_600_000,
        60_000,
        1000,
        1,
    ];
    let mut total: i64 = 0;
    for (k, ms) in unit_ms.iter().enumerate() {
        if let Some(m) = c.get(k + 1) {
            let n: i64 = m
                .as_str()
                .parse()
                .map_err(|_| format!("duration out of range: {s:?}"))?;
            total = n
                .checked_mul(*ms)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| format!("duration out of range: {s:?}"))?;
        }
    }
    Ok(total)
}

/// Go's `strconv.Unquote` for double-quoted, single-quoted and backtick
/// strings.
pub fn go_unquote(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    if bytes.len() < 2 {
        return None;
    }
    let q = bytes[0];
    if bytes[bytes.len() - 1] != q {
        return None;
    }
    let inner = &s[1..s.len() - 1];
    match q {
        b'`' => (!inner.contains('`')).then(|| inner.to_string()),
        b'"' | b'\'' => unescape(inner, q as char),
        _ => None,
    }
}

/// Go string escapes; `\x` and octal escapes produce bytes, which must form
/// UTF-8 here (Rust strings cannot hold anything else).
fn unescape(s: &str, quote: char) -> Option<String> {
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == quote {
            return None;
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = chars.next()?;
        match e {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' => out.push(b'\\'),
            '\'' | '"' => out.push(e as u8),
            'x' => {
                let h: String = [chars.next()?, chars.next()?].iter().collect();
                out.push(u8::from_str_radix(&h, 16).ok()?);
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let mut h = String::new();
                for _ in 0..n {
                    h.push(chars.next()?);
                }
                let ch = char::from_u32(u32::from_str_radix(&h, 16).ok()?)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let o: String = [e, chars.next()?, chars.next()?].iter().collect();
                out.push(u8::from_str_radix(&o, 8).ok()?);
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// Reads a quoted string at the start of `s`; returns it and the rest.
fn take_quoted(s: &str) -> Result<(String, &str), String> {
    let q = s.chars().next().ok_or("expected a string")?;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if q != '`' && escaped {
            escaped = false;
            continue;
        }
        if q != '`' && c == '\\' {
            escaped = true;
            continue;
        }
        if c == q {
            let lit = &s[..i + c.len_utf8()];
            let v = go_unquote(lit).ok_or_else(|| format!("invalid string {lit}"))?;
            return Ok((v, &s[i + c.len_utf8()..]));
        }
    }
    Err(format!("unterminated string {s:?}"))
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Parses `metric{a="b", "c.d"='e'} 1+2x3 _ stale {{…}}`.
pub fn parse_series_desc(line: &str) -> Result<SeriesDesc, String> {
    let s = line.trim();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let name_len = s
        .char_indices()
        .take_while(|(i, c)| {
            if *i == 0 {
                is_name_start(*c)
            } else {
                is_name_char(*c)
            }
        })
        .count();
    let mut rest = &s[name_len..];
    if name_len > 0 {
        pairs.push(("__name__".into(), s[..name_len].to_string()));
    }
    rest = rest.trim_start();
    // `{{` starts a histogram value, not a label set.
    if let Some(r) = rest.strip_prefix('{').filter(|r| !r.starts_with('{')) {
        rest = r;
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            // A label name, bare or quoted; a quoted string alone is the
            // metric name.
            let (name, r) = if rest.starts_with(['"', '\'', '`']) {
                take_quoted(rest)?
            } else {
                let n = rest
                    .char_indices()
                    .take_while(|(i, c)| {
                        if *i == 0 {
                            c.is_ascii_alphabetic() || *c == '_'
                        } else {
                            c.is_ascii_alphanumeric() || *c == '_'
                        }
                    })
                    .count();
                if n == 0 {
                    return Err(format!("unexpected {rest:?} in label set"));
                }
                (rest[..n].to_string(), &rest[n..])
            };
            let r = r.trim_start();
            if let Some(r) = r.strip_prefix('=') {
                let (value, r) = take_quoted(r.trim_start())?;
                pairs.push((name, value));
                rest = r;
            } else {
                if pairs.iter().any(|(n, _)| n == "__name__") {
                    return Err("metric name given twice".into());
                }
                pairs.push(("__name__".into(), name));
                rest = r;
            }
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err(format!("expected ',' or '}}' at {rest:?}"));
            }
        }
    } else if name_len == 0 {
        return Err("series description needs a metric name or a label set".into());
    }
    let values = parse_values(rest.trim())?;
    Ok(SeriesDesc {
        labels: Labels::from_pairs(pairs),
        values,
    })
}

/// Splits the value part into items, keeping `{{…}}` literals (which hold
/// spaces) in one piece.
fn split_items(s: &str) -> Result<Vec<String>, String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '{' && chars.peek() == Some(&'{') {
            chars.next();
            depth += 1;
            cur.push_str("{{");
            continue;
        }
        if c == '}' && depth > 0 && chars.peek() == Some(&'}') {
            chars.next();
            depth -= 1;
            cur.push_str("}}");
            continue;
        }
        if c.is_whitespace() && depth == 0 {
            if !cur.is_empty() {
                items.push(std::mem::take(&mut cur));
            }
            continue;
        }
        cur.push(c);
    }
    if depth != 0 {
        return Err("unterminated histogram literal".into());
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    Ok(items)
}

fn parse_times(s: &str) -> Result<usize, String> {
    s.parse::<usize>()
        .map_err(|_| format!("invalid repetition count {s:?}"))
}

/// Expands the value notation: `_`, `_xN` (N omitted), `v`, `vxN` (N+1
/// copies), `v+dxN` / `v-dxN` (N+1 values, added step by step as
/// Prometheus does), `stale`, and `{{…}}` histograms in the same forms.
pub fn parse_values(s: &str) -> Result<Vec<SeqValue>, String> {
    let mut out = Vec::new();
    for item in split_items(s)? {
        if item.starts_with("{{") {
            let last = item.rfind("}}").ok_or("unterminated histogram literal")?;
            let tail = &item[last + 2..];
            let n = if tail.is_empty() {
                1
            } else if let Some(t) = tail.strip_prefix('x') {
                parse_times(t)? + 1
            } else {
                return Err(format!("unexpected {tail:?} after histogram"));
            };
            // `{{a}}+{{b}}xN` puts its repetition after the second literal.
            out.extend(std::iter::repeat_n(SeqValue::Histogram, n));
            continue;
        }
        if item == "_" {
            out.push(SeqValue::Omitted);
            continue;
        }
        if let Some(t) = item.strip_prefix("_x") {
            out.extend(std::iter::repeat_n(SeqValue::Omitted, parse_times(t)?));
            continue;
        }
        let (head, times) = match item.rfind('x') {
            Some(p) if p + 1 < item.len() && item[p + 1..].bytes().all(|b| b.is_ascii_digit()) => {
                (&item[..p], Some(parse_times(&item[p + 1..])?))
            }
            _ => (item.as_str(), None),
        };
        // Find the operator between start and step: a '+' or '-' not at the
        // start and not part of an exponent.
        let b = head.as_bytes();
        let op = (1..b.len())
            .find(|&k| (b[k] == b'+' || b[k] == b'-') && !matches!(b[k - 1], b'e' | b'E'));
        let start = parse_series_value(op.map_or(head, |k| &head[..k]))?;
        match (op, times) {
            (None, None) => out.push(SeqValue::Float(start)),
            (None, Some(n)) => out.extend(std::iter::repeat_n(SeqValue::Float(start), n + 1)),
            (Some(k), Some(n)) => {
                let step = parse_go_float(&head[k..])
                    .ok_or_else(|| format!("invalid step in {item:?}"))?;
                let mut v = start;
                for _ in 0..=n {
                    out.push(SeqValue::Float(v));
                    v += step;
                }
            }
            (Some(_), None) => return Err(format!("invalid value {item:?}")),
        }
    }
    Ok(out)
}

fn parse_series_value(s: &str) -> Result<f64, String> {
    if s == "stale" {
        return Ok(tocsin_rules::promql::value::stale_nan());
    }
    parse_number(s).ok_or_else(|| format!("invalid value {s:?}"))
}
