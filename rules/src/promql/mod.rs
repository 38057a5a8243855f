//! PromQL evaluation with Prometheus 3 semantics over any [`Queryable`]
//! store. Parsing is `promql-parser`'s; this module owns evaluation.
//!
//! The evaluator does no I/O of its own and never reads the clock: the
//! evaluation time is an argument, and all data comes from the store.

pub mod aggregate;
pub mod eval;
pub mod functions;
pub mod storage;
pub mod value;

pub use eval::{Engine, EngineOptions, EvalError, QueryResult};
pub use storage::{MatchOp, Matcher, MemStorage, Queryable, StorageError};
pub use value::{InstantSample, Label, Labels, Matrix, Sample, Series, Value, Vector};

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod parse_tests {
    use super::value::{go_quote, is_valid_label_name};
    use promql_parser::parser::Expr;

    fn string_arg(q: &str, n: usize) -> String {
        match super::parse(q).unwrap() {
            Expr::Call(c) => match &*c.args.args[n] {
                Expr::StringLiteral(s) => s.val.clone(),
                e => panic!("not a string: {e:?}"),
            },
            e => panic!("not a call: {e:?}"),
        }
    }

    #[test]
    fn byte_escapes_follow_go_string_semantics() {
        let q = |lit: &str| format!(r#"label_replace(m, {lit}, "", "src", "")"#);
        assert_eq!(string_arg(&q(r#""\xc3\xa9""#), 1), "é");
        assert_eq!(string_arg(&q(r#""\303\251""#), 1), "é");
        let raw = string_arg(&q(r#""a\xc5z""#), 1);
        assert!(!is_valid_label_name(&raw));
        assert_eq!(go_quote(&raw), r#""a\xc5z""#);
        // ASCII escapes, other escapes and raw strings are untouched.
        assert_eq!(string_arg(&q(r#""\x41\"\n""#), 1), "A\"\n");
        assert_eq!(string_arg(&q(r#"`\xff`"#), 1), r"\xff");
        assert_eq!(string_arg(&q(r#"'\xff'"#), 1).chars().count(), 1);
        assert!(super::decode_byte_escapes(r#"up{a="\x41"} # "\xff""#).is_none());
    }
}

/// Non-fatal notes a query produced: Prometheus' `warnings` (e.g. a
/// quantile outside [0, 1]) and `infos` (e.g. `rate()` on a series whose
/// name does not look like a counter). Kept de-duplicated, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Annotations {
    pub fn warn(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub fn info(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    pub fn merge(&mut self, other: Annotations) {
        for w in other.warnings {
            self.warn(w);
        }
        for i in other.infos {
            self.info(i);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.warnings.is_empty() && self.infos.is_empty()
    }
}

/// Parses a PromQL expression (a thin wrapper so callers need not depend on
/// `promql-parser` directly).
///
/// PromQL strings are Go strings: `"\xc3\xa9"` is the two bytes of `é`,
/// and `"\xff"` is one byte that is not UTF-8 (an invalid label name, for
/// example). promql-parser turns each `\x` escape into a character of its
/// own, so byte escapes are decoded here first: runs that form UTF-8
/// become their characters, and each byte that does not becomes a marker
/// character ([`value::raw_byte_marker`]) that label-name checks refuse
/// and [`value::go_quote`] prints back as `\xHH`.
pub fn parse(expr: &str) -> Result<promql_parser::parser::Expr, String> {
    match decode_byte_escapes(expr) {
        Some(decoded) => promql_parser::parser::parse(&decoded),
        None => promql_parser::parser::parse(expr),
    }
}

/// Rewrites `\xHH` and `\OOO` byte escapes inside double- and
/// single-quoted strings; `None` when there are none with the high bit set
/// (the common case costs one scan).
fn decode_byte_escapes(src: &str) -> Option<String> {
    let bytes = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut changed = false;
    let mut i = 0;
    let mut copied = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'`' => {
                    // Raw strings have no escapes: skip to the closing one.
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'`' {
                        i += 1;
                    }
                }
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                _ => {}
            },
            Some(q) if b == q => quote = None,
            Some(_) if b == b'\\' => {
                // A run of byte escapes, decoded together so multi-byte
                // UTF-8 sequences survive.
                let start = i;
                let mut run: Vec<u8> = Vec::new();
                while let Some((byte, len)) = byte_escape(&bytes[i..]) {
                    run.push(byte);
                    i += len;
                }
                if run.iter().any(|&x| x >= 0x80) {
                    out.push_str(&src[copied..start]);
                    for chunk in run.utf8_chunks() {
                        for c in chunk.valid().chars() {
                            if c.is_ascii() {
                                // Keep ASCII escaped: it may be a quote.
                                out.push_str(&format!("\\x{:02x}", c as u32));
                            } else {
                                out.push(c);
                            }
                        }
                        for &x in chunk.invalid() {
                            out.push(value::raw_byte_marker(x));
                        }
                    }
                    copied = i;
                    changed = true;
                    continue;
                }
                if i == start {
                    // Another escape: skip the backslash and what it escapes.
                    i += 1;
                    if i < bytes.len() {
                        i += src[i..].chars().next().map_or(1, char::len_utf8);
                    }
                    continue;
                }
                continue;
            }
            Some(_) => {}
        }
        i += 1;
    }
    if !changed {
        return None;
    }
    out.push_str(&src[copied..]);
    Some(out)
}

/// A `\xHH` or `\OOO` escape at the start of `b`: the byte and the escape's
/// length.
fn byte_escape(b: &[u8]) -> Option<(u8, usize)> {
    if b.first() != Some(&b'\\') {
        return None;
    }
    let hex = |c: u8| (c as char).to_digit(16);
    match b.get(1)? {
        b'x' => {
            let v = hex(*b.get(2)?)? * 16 + hex(*b.get(3)?)?;
            Some((v as u8, 4))
        }
        d @ b'0'..=b'3' => {
            let oct = |c: u8| (b'0'..=b'7').contains(&c).then(|| u32::from(c - b'0'));
            let v = u32::from(d - b'0') * 64 + oct(*b.get(2)?)? * 8 + oct(*b.get(3)?)?;
            Some((v as u8, 4))
        }
        _ => None,
    }
}
