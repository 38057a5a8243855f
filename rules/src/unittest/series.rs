//! The notations promtool's unit tests write series and label sets in:
//! `metric{label="value"}` (Prometheus' `ParseMetric`) and the expanding
//! value notation of `input_series` (`1+2x3`, `_`, `_x3`, `stale`, `1x3`,
//! `-1-1x2`, `Inf`, `NaN`), as Prometheus' series-description grammar
//! defines them.
//!
//! Errors read like Prometheus' parser errors: `line:column: parse error:
//! message`, the column counting from 1 on the single input line.

use std::fmt;

use crate::promql::Labels;
use crate::promql::value::{METRIC_NAME, stale_nan};

/// A parse error at a byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
    /// The input line (for the column in characters).
    input: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let upto = self
            .input
            .get(..self.pos.min(self.input.len()))
            .unwrap_or("");
        let col = upto.chars().count() + 1;
        write!(f, "1:{col}: parse error: {}", self.message)
    }
}

impl std::error::Error for ParseError {}

/// One point of a series description: a value or an omitted step.
pub type SeqValue = Option<f64>;

/// A parsed `series values` line.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesDesc {
    pub labels: Labels,
    /// One entry per step from the start; `None` is an omitted step (`_`).
    pub values: Vec<SeqValue>,
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos..).and_then(|r| r.chars().next())
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.bump();
        }
        self.pos > start
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            pos,
            message: message.into(),
            input: self.s.to_string(),
        }
    }

    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }
}

/// Go's `%q` of a rune.
fn quote_rune(c: char) -> String {
    match c {
        '\'' => r"'\''".to_string(),
        '\\' => r"'\\'".to_string(),
        '\n' => r"'\n'".to_string(),
        '\t' => r"'\t'".to_string(),
        '\r' => r"'\r'".to_string(),
        c if c.is_control() => format!("'\\x{:02x}'", c as u32),
        c => format!("'{c}'"),
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn lex_quoted(cur: &mut Cursor<'_>) -> Result<String, ParseError> {
    let start = cur.pos;
    let Some(q) = cur.bump() else {
        return Err(cur.err(start, "unexpected end of input"));
    };
    let mut out = String::new();
    loop {
        let Some(c) = cur.bump() else {
            return Err(cur.err(start, "unterminated quoted string"));
        };
        if c == q {
            return Ok(out);
        }
        if c == '\\' && q != '`' {
            let Some(e) = cur.bump() else {
                return Err(cur.err(start, "unterminated quoted string"));
            };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                '\'' => out.push('\''),
                'x' | 'u' | 'U' => {
                    let n = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = (0..n).filter_map(|_| cur.bump()).collect();
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| cur.err(start, "invalid escape sequence"))?;
                    out.push(ch);
                }
                other => {
                    return Err(cur.err(
                        cur.pos - other.len_utf8(),
                        format!("unknown escape sequence {}", quote_rune(other)),
                    ));
                }
            }
        } else if c == '\n' && q != '`' {
            return Err(cur.err(start, "unterminated quoted string"));
        } else {
            out.push(c);
        }
    }
}

fn lex_identifier(cur: &mut Cursor<'_>) -> String {
    let start = cur.pos;
    while cur.peek().is_some_and(is_ident_char) {
        cur.bump();
    }
    cur.s.get(start..cur.pos).unwrap_or("").to_string()
}

/// Parses `name{a="b", …}` (either part optional) at the cursor.
fn parse_metric_at(cur: &mut Cursor<'_>) -> Result<Labels, ParseError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    cur.skip_spaces();
    if cur.peek().is_some_and(is_ident_start) {
        let name = lex_identifier(cur);
        pairs.push((METRIC_NAME.to_string(), name));
    }
    if cur.peek() == Some('{') {
        cur.bump();
        loop {
            cur.skip_spaces();
            let at = cur.pos;
            match cur.peek() {
                None => return Err(cur.err(at, "unexpected end of input inside braces")),
                Some('}') => {
                    cur.bump();
                    break;
                }
                Some(c) if c == '"' || c == '\'' || c == '`' || is_ident_start(c) => {
                    let quoted = !is_ident_start(c);
                    let name = if quoted {
                        lex_quoted(cur)?
                    } else {
                        lex_identifier(cur)
                    };
                    cur.skip_spaces();
                    if cur.peek() == Some('=') {
                        cur.bump();
                        if cur.peek() == Some('~') {
                            return Err(cur.err(
                                cur.pos - 1,
                                "unexpected \"=~\" in label set, expected \"=\"",
                            ));
                        }
                        cur.skip_spaces();
                        let vat = cur.pos;
                        match cur.peek() {
                            Some('"' | '\'' | '`') => {
                                let v = lex_quoted(cur)?;
                                pairs.push((name, v));
                            }
                            None => {
                                return Err(cur.err(vat, "unexpected end of input inside braces"));
                            }
                            // Tokens the lexer accepts inside braces are
                            // reported as the parser does.
                            Some(c @ ('}' | ',' | '=')) => {
                                return Err(cur.err(
                                    vat,
                                    format!("unexpected \"{c}\" in label set, expected string"),
                                ));
                            }
                            Some(c) if is_ident_start(c) => {
                                let word = lex_identifier(cur);
                                return Err(cur.err(
                                    vat,
                                    format!(
                                        "unexpected identifier {word:?} in label set, expected string"
                                    ),
                                ));
                            }
                            Some(c) => {
                                return Err(cur.err(
                                    vat,
                                    format!(
                                        "unexpected character inside braces: {}",
                                        quote_rune(c)
                                    ),
                                ));
                            }
                        }
                    } else if quoted {
                        // A lone quoted string is the metric name (UTF-8 names).
                        pairs.push((METRIC_NAME.to_string(), name));
                    } else {
                        let at = cur.pos;
                        return Err(match cur.peek() {
                            Some('!') => {
                                cur.err(at, "unexpected \"!=\" in label set, expected \"=\"")
                            }
                            Some(c) => cur.err(
                                at,
                                format!("unexpected character inside braces: {}", quote_rune(c)),
                            ),
                            None => cur.err(at, "unexpected end of input inside braces"),
                        });
                    }
                    cur.skip_spaces();
                    match cur.peek() {
                        Some(',') => {
                            cur.bump();
                        }
                        Some('}') => {}
                        Some(c) => {
                            return Err(cur.err(
                                cur.pos,
                                format!("unexpected character inside braces: {}", quote_rune(c)),
                            ));
                        }
                        None => {
                            return Err(cur.err(cur.pos, "unexpected end of input inside braces"));
                        }
                    }
                }
                Some(c) => {
                    return Err(cur.err(
                        at,
                        format!("unexpected character inside braces: {}", quote_rune(c)),
                    ));
                }
            }
        }
    }
    if pairs.iter().any(|(n, _)| n.is_empty()) {
        return Err(cur.err(0, "invalid empty label name"));
    }
    Ok(Labels::from_pairs(pairs))
}

/// Parses a label set as Prometheus' `ParseMetric` (used for
/// `exp_samples[].labels`); the empty string is the empty label set.
pub fn parse_metric(input: &str) -> Result<Labels, ParseError> {
    let mut cur = Cursor { s: input, pos: 0 };
    let labels = parse_metric_at(&mut cur)?;
    cur.skip_spaces();
    if let Some(c) = cur.peek() {
        let rest: String = cur.rest().chars().take(15).collect();
        let _ = c;
        return Err(cur.err(
            cur.pos,
            format!("could not parse remaining input {rest:?}..."),
        ));
    }
    Ok(labels)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Space,
    Plus,
    Minus,
    Times,
    Blank,
    Number(String),
    Ident(String),
}

fn lex_values(cur: &mut Cursor<'_>) -> Result<Vec<(usize, Tok)>, ParseError> {
    let mut toks = Vec::new();
    while let Some(c) = cur.peek() {
        let at = cur.pos;
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                cur.skip_spaces();
                toks.push((at, Tok::Space));
            }
            '+' => {
                cur.bump();
                toks.push((at, Tok::Plus));
            }
            '-' => {
                cur.bump();
                toks.push((at, Tok::Minus));
            }
            'x' => {
                cur.bump();
                toks.push((at, Tok::Times));
            }
            '_' => {
                cur.bump();
                toks.push((at, Tok::Blank));
            }
            c if c.is_ascii_digit()
                || (c == '.'
                    && cur
                        .rest()
                        .chars()
                        .nth(1)
                        .is_some_and(|d| d.is_ascii_digit())) =>
            {
                // Hexadecimal is not lexed here: `0x10` is `0` repeated.
                while cur.peek().is_some_and(|d| d.is_ascii_digit()) {
                    cur.bump();
                }
                if cur.peek() == Some('.') {
                    cur.bump();
                    while cur.peek().is_some_and(|d| d.is_ascii_digit()) {
                        cur.bump();
                    }
                }
                if matches!(cur.peek(), Some('e' | 'E')) {
                    cur.bump();
                    if matches!(cur.peek(), Some('+' | '-')) {
                        cur.bump();
                    }
                    while cur.peek().is_some_and(|d| d.is_ascii_digit()) {
                        cur.bump();
                    }
                }
                if let Some(n) = cur.peek()
                    && n != 'x'
                    && (n.is_ascii_alphanumeric() || n == '_')
                {
                    cur.bump();
                    let bad = cur.s.get(at..cur.pos).unwrap_or("");
                    return Err(cur.err(at, format!("bad number or duration syntax: {bad:?}")));
                }
                toks.push((
                    at,
                    Tok::Number(cur.s.get(at..cur.pos).unwrap_or("").to_string()),
                ));
            }
            c if c.is_ascii_alphabetic() => {
                let word = lex_identifier(cur);
                let lower = word.to_ascii_lowercase();
                if lower == "inf" || lower == "nan" {
                    toks.push((at, Tok::Number(word)));
                } else {
                    toks.push((at, Tok::Ident(word)));
                }
            }
            '{' if cur.rest().starts_with("{{") => {
                return Err(cur.err(
                    at,
                    "native histogram values ({{…}}) are not supported in series values",
                ));
            }
            c => {
                return Err(cur.err(
                    at,
                    format!("unexpected character in series sequence: {}", quote_rune(c)),
                ));
            }
        }
    }
    Ok(toks)
}

/// Go's `strconv.ParseInt(s, 0, 64)` then `ParseFloat`, as the PromQL
/// parser reads numbers (so `010` is octal 8).
fn parse_number(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    if lower == "inf" {
        return Some(f64::INFINITY);
    }
    if lower == "nan" {
        return Some(f64::NAN);
    }
    if s.len() > 1 && s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = i64::from_str_radix(&s[1..], 8) {
            return Some(v as f64);
        }
    } else if s.bytes().all(|b| b.is_ascii_digit())
        && let Ok(v) = s.parse::<i64>()
    {
        return Some(v as f64);
    }
    s.parse::<f64>().ok()
}

/// Parses a series description `metric{labels} values…` (the `series` and
/// `values` of an `input_series` entry joined by a space).
pub fn parse_series_desc(input: &str) -> Result<SeriesDesc, ParseError> {
    let mut cur = Cursor { s: input, pos: 0 };
    let labels = parse_metric_at(&mut cur)?;
    let toks = lex_values(&mut cur)?;
    let end = input.len();
    let mut values: Vec<SeqValue> = Vec::new();
    let mut i = 0;
    let unexpected = |i: usize, what: &str| -> ParseError {
        let (pos, desc) = match toks.get(i) {
            Some((p, t)) => (*p, tok_desc(t)),
            None => (end, "end of input".to_string()),
        };
        ParseError {
            pos,
            message: format!("unexpected {desc} in series values, expected {what}"),
            input: input.to_string(),
        }
    };
    if !toks.is_empty() && toks[0].1 != Tok::Space {
        return Err(unexpected(0, "space"));
    }
    while i < toks.len() {
        // Each item follows a space.
        if toks[i].1 != Tok::Space {
            return Err(unexpected(i, "space"));
        }
        i += 1;
        if i >= toks.len() {
            break;
        }
        let uint_at = |j: usize| -> Result<u64, ParseError> {
            match toks.get(j) {
                Some((p, Tok::Number(n))) => n.parse::<u64>().map_err(|e| ParseError {
                    pos: *p,
                    message: format!("invalid repetition in series values: {e}"),
                    input: input.to_string(),
                }),
                _ => Err(unexpected(j, "number")),
            }
        };
        if toks[i].1 == Tok::Blank {
            if toks.get(i + 1).map(|t| &t.1) == Some(&Tok::Times) {
                let n = uint_at(i + 2)?;
                values.extend((0..n).map(|_| None));
                i += 3;
            } else {
                values.push(None);
                i += 1;
            }
            continue;
        }
        // series_value: `stale`, a number or a signed number.
        let (first, next) = value_at(&toks, i, input, &unexpected)?;
        i = next;
        match toks.get(i).map(|t| &t.1) {
            Some(Tok::Times) => {
                let n = uint_at(i + 1)?;
                values.extend((0..=n).map(|_| Some(first)));
                i += 2;
            }
            Some(Tok::Plus | Tok::Minus) => {
                let neg = toks[i].1 == Tok::Minus;
                let step = match toks.get(i + 1) {
                    Some((_, Tok::Number(n))) => {
                        parse_number(n).ok_or_else(|| unexpected(i + 1, "number"))?
                    }
                    _ => return Err(unexpected(i + 1, "number")),
                };
                let step = if neg { -step } else { step };
                if toks.get(i + 2).map(|t| &t.1) != Some(&Tok::Times) {
                    return Err(unexpected(i + 2, "\"x\""));
                }
                let n = uint_at(i + 3)?;
                let mut v = first;
                for _ in 0..=n {
                    values.push(Some(v));
                    v += step;
                }
                i += 4;
            }
            _ => values.push(Some(first)),
        }
    }
    Ok(SeriesDesc { labels, values })
}

fn tok_desc(t: &Tok) -> String {
    match t {
        Tok::Space => "space".into(),
        Tok::Plus => "\"+\"".into(),
        Tok::Minus => "\"-\"".into(),
        Tok::Times => "\"x\"".into(),
        Tok::Blank => "\"_\"".into(),
        Tok::Number(n) => format!("number {n:?}"),
        Tok::Ident(n) => format!("identifier {n:?}"),
    }
}

fn value_at(
    toks: &[(usize, Tok)],
    i: usize,
    input: &str,
    unexpected: &dyn Fn(usize, &str) -> ParseError,
) -> Result<(f64, usize), ParseError> {
    let number = |j: usize| -> Result<f64, ParseError> {
        match toks.get(j) {
            Some((p, Tok::Number(n))) => parse_number(n).ok_or_else(|| ParseError {
                pos: *p,
                message: format!("invalid number {n:?}"),
                input: input.to_string(),
            }),
            _ => Err(unexpected(j, "number or \"stale\"")),
        }
    };
    match toks.get(i).map(|t| &t.1) {
        Some(Tok::Ident(w)) if w == "stale" => Ok((stale_nan(), i + 1)),
        Some(Tok::Number(_)) => Ok((number(i)?, i + 1)),
        Some(Tok::Plus) => Ok((number(i + 1)?, i + 2)),
        Some(Tok::Minus) => Ok((-number(i + 1)?, i + 2)),
        _ => Err(unexpected(i, "number or \"stale\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::value::is_stale;

    fn vals(s: &str) -> Vec<SeqValue> {
        parse_series_desc(&format!("m {s}")).expect("parse").values
    }

    #[test]
    fn expanding_notation() {
        assert_eq!(
            vals("1+2x3"),
            vec![Some(1.0), Some(3.0), Some(5.0), Some(7.0)]
        );
        assert_eq!(vals("1x3"), vec![Some(1.0); 4]);
        assert_eq!(vals("10-2x2"), vec![Some(10.0), Some(8.0), Some(6.0)]);
        assert_eq!(vals("-1-1x2"), vec![Some(-1.0), Some(-2.0), Some(-3.0)]);
        assert_eq!(vals("0 _ _ 1"), vec![Some(0.0), None, None, Some(1.0)]);
        assert_eq!(vals("_x3 1"), vec![None, None, None, Some(1.0)]);
        assert_eq!(vals("0x10").len(), 11, "0x10 is zero repeated, not hex");
        assert_eq!(
            vals("Inf -Inf +Inf"),
            vec![
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                Some(f64::INFINITY)
            ]
        );
        assert!(vals("NaN")[0].is_some_and(f64::is_nan));
        assert_eq!(vals("1e3 .5 010"), vec![Some(1000.0), Some(0.5), Some(8.0)]);
        assert_eq!(vals(""), vec![]);
    }

    #[test]
    fn stale_is_the_staleness_marker() {
        let v = vals("0 stale");
        assert_eq!(v.len(), 2);
        assert!(v[1].is_some_and(is_stale));
    }

    #[test]
    fn labels_are_parsed() {
        let d = parse_series_desc(r#"up{job="prometheus", instance="localhost:9090"} 0+0x2"#)
            .expect("parse");
        assert_eq!(
            d.labels.to_string(),
            r#"up{instance="localhost:9090", job="prometheus"}"#
        );
        assert_eq!(d.values.len(), 3);
        let d = parse_series_desc(r#"{"my.metric", a='b'} 1"#).expect("parse");
        assert_eq!(d.labels.metric_name(), "my.metric");
    }

    #[test]
    fn unclosed_braces_error_like_prometheus() {
        let e = parse_series_desc(r#"up{job="prometheus", instance="localhost:9090" 0+0x1440"#)
            .expect_err("bad");
        assert_eq!(
            e.to_string(),
            "1:48: parse error: unexpected character inside braces: '0'"
        );
    }

    #[test]
    fn bad_values_are_errors() {
        let e = parse_series_desc("m {{schema:1 sum:3 count:2}}").expect_err("histogram");
        assert!(e.to_string().contains("native histogram values"), "{e}");
        for bad in [
            "m 1+2",
            "m foo",
            "m 1x",
            "m 1xy",
            "m 1+-1x2",
            "m 1x2.5",
            "m stalex2",
            "m #",
        ] {
            assert!(parse_series_desc(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn parse_metric_forms() {
        assert_eq!(parse_metric("").expect("empty"), Labels::empty());
        assert_eq!(parse_metric("test").expect("name").to_string(), "test{}");
        assert_eq!(
            parse_metric(r#"{alertname="A",alertstate="firing"}"#)
                .expect("set")
                .to_string(),
            r#"{alertname="A", alertstate="firing"}"#
        );
        assert!(parse_metric("a b").is_err());
        assert_eq!(
            parse_metric("a{b=}").expect_err("no value").to_string(),
            r#"1:5: parse error: unexpected "}" in label set, expected string"#
        );
        assert!(parse_metric(r#"a{b=~"c"}"#).is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(input in "[a-z{}=,\"'`_x+\\-0-9. Ie:]{0,40}") {
            let _ = parse_series_desc(&input);
            let _ = parse_metric(&input);
            let _ = super::super::format::parse_duration(&input);
        }

        #[test]
        fn expanding_notation_matches_its_definition(
            a in -1000i64..1000,
            b in -100i64..100,
            n in 0u64..50,
            blanks in 0u64..5,
        ) {
            let sign = if b < 0 { '-' } else { '+' };
            let text = format!("m {a}{sign}{}x{n} _x{blanks} {a}x{n}", b.abs());
            let got = parse_series_desc(&text).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?.values;
            let mut want: Vec<SeqValue> = (0..=n as i64).map(|i| Some((a + i * b) as f64)).collect();
            want.extend((0..blanks).map(|_| None));
            want.extend((0..=n).map(|_| Some(a as f64)));
            proptest::prop_assert_eq!(got, want);
        }
    }
}
