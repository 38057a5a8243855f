//! The lexer of Go's `text/template` dialect: splits a template into text
//! runs and the tokens inside `{{ … }}` actions.
//!
//! Trim markers (`{{- ` and ` -}}`) are applied here, to the neighbouring
//! text, and comments (`{{/* … */}}`) are dropped, so the parser never sees
//! them. Every token carries the byte offset where it starts in the source,
//! which is what positions in errors are computed from. Spaces inside actions
//! are tokens because Go's grammar needs them to separate operands.

/// Keywords that start or shape an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
}

impl Keyword {
    fn from_ident(s: &str) -> Option<Keyword> {
        Some(match s {
            "block" => Keyword::Block,
            "break" => Keyword::Break,
            "continue" => Keyword::Continue,
            "define" => Keyword::Define,
            "else" => Keyword::Else,
            "end" => Keyword::End,
            "if" => Keyword::If,
            "range" => Keyword::Range,
            "template" => Keyword::Template,
            "with" => Keyword::With,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Keyword::Block => "block",
            Keyword::Break => "break",
            Keyword::Continue => "continue",
            Keyword::Define => "define",
            Keyword::Else => "else",
            Keyword::End => "end",
            Keyword::If => "if",
            Keyword::Range => "range",
            Keyword::Template => "template",
            Keyword::With => "with",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokKind {
    /// Plain text outside actions (after trimming).
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    /// A function name.
    Identifier(String),
    Keyword(Keyword),
    /// `.Name` (the name without the dot).
    Field(String),
    /// `$name` or `$`, with the dollar.
    Variable(String),
    Dot,
    /// A quoted or raw string, already unquoted.
    Str(String),
    Char(char),
    /// A number exactly as written.
    Number(String),
    Bool(bool),
    Nil,
    Pipe,
    LeftParen,
    RightParen,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokKind,
    /// Byte offset of the token's first character in the source.
    pub pos: usize,
    /// Byte offset just past the token.
    pub end: usize,
}

impl Token {
    /// How Go's parser names a token in "unexpected …" messages.
    pub(crate) fn describe(&self, src: &str) -> String {
        match &self.kind {
            TokKind::Eof => "EOF".to_string(),
            TokKind::Keyword(k) => format!("<{}>", k.as_str()),
            TokKind::Text(t) => go_quote_short(t),
            _ => go_quote_short(src.get(self.pos..self.end).unwrap_or("")),
        }
    }
}

/// Go's `%q` of a token, shortened like `%.10q...` past ten characters.
fn go_quote_short(s: &str) -> String {
    if s.chars().count() > 10 {
        let head: String = s.chars().take(10).collect();
        format!("{}...", super::gofmt::quote(&head))
    } else {
        super::gofmt::quote(s)
    }
}

/// A lexing error: where and what.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LexError {
    pub pos: usize,
    pub message: String,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

/// Go's `%#U` of a character: `U+0078 'x'`, without the quoted form when
/// the character is not printable.
fn go_char_u(c: char) -> String {
    if c == ' ' || !(c.is_whitespace() || c.is_control()) {
        format!("U+{:04X} '{c}'", c as u32)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Lexes `src` completely; the last token is always `Eof`.
pub(crate) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    let mut lx = Lexer {
        src,
        pos: 0,
        toks: Vec::new(),
        paren_depth: 0,
    };
    lx.run()?;
    Ok(lx.toks)
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    toks: Vec<Token>,
    paren_depth: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn emit(&mut self, kind: TokKind, start: usize) {
        self.toks.push(Token {
            kind,
            pos: start,
            end: self.pos,
        });
    }

    fn err<T>(&self, pos: usize, message: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos,
            message: message.into(),
        })
    }

    fn run(&mut self) -> Result<(), LexError> {
        let mut trim_next_text = false;
        loop {
            let start = self.pos;
            let next = self.rest().find(LEFT).map(|i| i + self.pos);
            let text_end = next.unwrap_or(self.src.len());
            let mut text = &self.src[start..text_end];
            let mut tstart = start;
            if trim_next_text {
                text = text.trim_start_matches(is_space);
                tstart = text_end - text.len();
            }
            let Some(delim) = next else {
                if !text.is_empty() {
                    self.pos = text_end;
                    self.emit(TokKind::Text(text.to_string()), tstart);
                }
                self.pos = self.src.len();
                self.emit(TokKind::Eof, self.src.len());
                return Ok(());
            };
            let after = &self.src[delim + LEFT.len()..];
            let left_trim = after.starts_with('-') && after[1..].starts_with(is_space);
            if left_trim {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.toks.push(Token {
                    kind: TokKind::Text(text.to_string()),
                    pos: tstart,
                    end: tstart + text.len(),
                });
            }
            self.pos = delim + LEFT.len() + if left_trim { 2 } else { 0 };
            if self.rest().starts_with("/*") {
                trim_next_text = self.comment(delim)?;
                continue;
            }
            self.pos = delim + LEFT.len();
            self.emit(TokKind::LeftDelim, delim);
            if left_trim {
                // The marker and its space belong to the delimiter.
                self.pos += 1;
            }
            trim_next_text = self.inside_action(delim)?;
        }
    }

    /// Skips a comment; returns whether its closing delimiter trims.
    fn comment(&mut self, delim: usize) -> Result<bool, LexError> {
        let Some(end) = self.rest().find("*/") else {
            return self.err(delim, "unclosed comment");
        };
        self.pos += end + 2;
        let (trim, len) = self.at_right_delim();
        if len == 0 {
            return self.err(delim, "comment ends before closing delimiter");
        }
        self.pos += len;
        Ok(trim)
    }

    /// Whether a right delimiter starts here: (trims, length) or length 0.
    fn at_right_delim(&self) -> (bool, usize) {
        let r = self.rest();
        if r.starts_with(is_space) && r[1..].starts_with("-}}") {
            return (true, 1 + 1 + RIGHT.len());
        }
        if r.starts_with(RIGHT) {
            return (false, RIGHT.len());
        }
        (false, 0)
    }

    /// Lexes an action's inside up to and including the right delimiter;
    /// returns whether the delimiter trims the following text.
    fn inside_action(&mut self, delim: usize) -> Result<bool, LexError> {
        self.paren_depth = 0;
        loop {
            let (trim, len) = self.at_right_delim();
            if len > 0 {
                if self.paren_depth > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                let start = self.pos;
                if trim {
                    // The space before the marker is part of the delimiter.
                    self.pos += 1;
                    self.emit(TokKind::Space, start);
                }
                let dstart = self.pos;
                self.pos = start + len;
                self.emit(TokKind::RightDelim, dstart);
                return Ok(trim);
            }
            let start = self.pos;
            let Some(c) = self.peek_char() else {
                return self.err(delim, "unclosed action");
            };
            match c {
                c if is_space(c) => {
                    // Stop before a " -}}" so it is seen as the delimiter.
                    while let Some(c) = self.peek_char() {
                        if !is_space(c) || self.at_right_delim().0 {
                            break;
                        }
                        self.pos += c.len_utf8();
                    }
                    self.emit(TokKind::Space, start);
                }
                '=' => {
                    self.pos += 1;
                    self.emit(TokKind::Assign, start);
                }
                ':' => {
                    if !self.rest().starts_with(":=") {
                        return self.err(start, "expected :=");
                    }
                    self.pos += 2;
                    self.emit(TokKind::Declare, start);
                }
                '|' => {
                    self.pos += 1;
                    self.emit(TokKind::Pipe, start);
                }
                ',' => {
                    self.pos += 1;
                    self.emit(TokKind::Comma, start);
                }
                '"' => self.quote(start)?,
                '`' => self.raw_quote(start)?,
                '\'' => self.char_const(start)?,
                '$' => {
                    self.pos += 1;
                    self.alnum_run();
                    self.check_terminator()?;
                    let name = self.src[start..self.pos].to_string();
                    self.emit(TokKind::Variable(name), start);
                }
                '.' => {
                    let next = self.rest()[1..].chars().next();
                    if next.is_some_and(|c| c.is_ascii_digit()) {
                        self.number(start)?;
                    } else {
                        self.pos += 1;
                        if next.is_some_and(is_alnum) {
                            self.alnum_run();
                            self.check_terminator()?;
                            let name = self.src[start + 1..self.pos].to_string();
                            self.emit(TokKind::Field(name), start);
                        } else {
                            self.emit(TokKind::Dot, start);
                        }
                    }
                }
                '+' | '-' | '0'..='9' => self.number(start)?,
                '(' => {
                    self.pos += 1;
                    self.paren_depth += 1;
                    self.emit(TokKind::LeftParen, start);
                }
                ')' => {
                    self.pos += 1;
                    if self.paren_depth == 0 {
                        return self.err(start, "unexpected right paren");
                    }
                    self.paren_depth -= 1;
                    self.emit(TokKind::RightParen, start);
                }
                c if is_alnum(c) => {
                    self.alnum_run();
                    self.check_terminator()?;
                    let word = &self.src[start..self.pos];
                    let kind = if let Some(k) = Keyword::from_ident(word) {
                        TokKind::Keyword(k)
                    } else {
                        match word {
                            "true" => TokKind::Bool(true),
                            "false" => TokKind::Bool(false),
                            "nil" => TokKind::Nil,
                            _ => TokKind::Identifier(word.to_string()),
                        }
                    };
                    self.emit(kind, start);
                }
                c => {
                    return self.err(
                        start,
                        format!("unrecognized character in action: {}", go_char_u(c)),
                    );
                }
            }
        }
    }

    fn alnum_run(&mut self) {
        while let Some(c) = self.peek_char() {
            if !is_alnum(c) {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    /// Go requires a word to be followed by something that can end it.
    fn check_terminator(&self) -> Result<(), LexError> {
        let Some(c) = self.peek_char() else {
            return Ok(());
        };
        if is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(' | '=') {
            return Ok(());
        }
        if self.rest().starts_with(RIGHT) {
            return Ok(());
        }
        self.err(self.pos, format!("bad character {}", go_char_u(c)))
    }

    fn quote(&mut self, start: usize) -> Result<(), LexError> {
        self.pos += 1;
        loop {
            let Some(c) = self.peek_char() else {
                return self.err(start, "unterminated quoted string");
            };
            self.pos += c.len_utf8();
            match c {
                '\\' => match self.peek_char() {
                    Some(n) if n != '\n' => self.pos += n.len_utf8(),
                    _ => return self.err(start, "unterminated quoted string"),
                },
                '\n' => return self.err(start, "unterminated quoted string"),
                '"' => break,
                _ => {}
            }
        }
        let raw = &self.src[start..self.pos];
        let s = unquote(&raw[1..raw.len() - 1], '"').map_err(|m| LexError {
            pos: start,
            message: m,
        })?;
        self.emit(TokKind::Str(s), start);
        Ok(())
    }

    fn raw_quote(&mut self, start: usize) -> Result<(), LexError> {
        let Some(end) = self.rest()[1..].find('`') else {
            return self.err(start, "unterminated raw quoted string");
        };
        let s = self.rest()[1..1 + end].replace('\r', "");
        self.pos += end + 2;
        self.emit(TokKind::Str(s), start);
        Ok(())
    }

    fn char_const(&mut self, start: usize) -> Result<(), LexError> {
        self.pos += 1;
        loop {
            let Some(c) = self.peek_char() else {
                return self.err(start, "unterminated character constant");
            };
            self.pos += c.len_utf8();
            match c {
                '\\' => match self.peek_char() {
                    Some(n) if n != '\n' => self.pos += n.len_utf8(),
                    _ => return self.err(start, "unterminated character constant"),
                },
                '\n' => return self.err(start, "unterminated character constant"),
                '\'' => break,
                _ => {}
            }
        }
        let raw = &self.src[start..self.pos];
        let s = unquote(&raw[1..raw.len() - 1], '\'').map_err(|m| LexError {
            pos: start,
            message: m,
        })?;
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => {
                self.emit(TokKind::Char(c), start);
                Ok(())
            }
            _ => self.err(start, format!("malformed character constant: {raw}")),
        }
    }

    fn number(&mut self, start: usize) -> Result<(), LexError> {
        // Accept the union of Go's number forms; the parser validates.
        if matches!(self.peek_char(), Some('+' | '-')) {
            self.pos += 1;
        }
        let mut hex = false;
        let r = self.rest();
        if r.starts_with("0x") || r.starts_with("0X") {
            hex = true;
            self.pos += 2;
        } else if r.starts_with("0o")
            || r.starts_with("0O")
            || r.starts_with("0b")
            || r.starts_with("0B")
        {
            self.pos += 2;
        }
        while let Some(c) = self.peek_char() {
            let ok = c.is_ascii_digit()
                || c == '_'
                || c == '.'
                || (hex && c.is_ascii_hexdigit())
                || (!hex && matches!(c, 'e' | 'E'))
                || (hex && matches!(c, 'p' | 'P'));
            if ok {
                self.pos += 1;
                if matches!(c, 'e' | 'E' | 'p' | 'P') && matches!(self.peek_char(), Some('+' | '-'))
                {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
        if self.peek_char().is_some_and(is_alnum) {
            self.pos += self.peek_char().map_or(0, char::len_utf8);
            return self.err(
                start,
                format!("bad number syntax: {:?}", &self.src[start..self.pos]),
            );
        }
        let text = self.src[start..self.pos].to_string();
        self.emit(TokKind::Number(text), start);
        Ok(())
    }
}

/// Go's `strconv.Unquote` for the inside of a `"…"` or `'…'` literal.
pub(crate) fn unquote(s: &str, quote: char) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    let bad = || "invalid syntax".to_string();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = it.next().ok_or_else(bad)?;
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' => out.push('\\'),
            '"' | '\'' if e == quote => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let mut v = 0u32;
                for _ in 0..n {
                    let d = it.next().and_then(|c| c.to_digit(16)).ok_or_else(bad)?;
                    v = v * 16 + d;
                }
                if e == 'x' {
                    // Go strings hold bytes; a lone byte above 0x7f has no
                    // UTF-8 form, so it is kept as the Latin-1 character.
                    out.push(char::from_u32(v).ok_or_else(bad)?);
                } else {
                    out.push(char::from_u32(v).ok_or_else(bad)?);
                }
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = it.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                if v > 255 {
                    return Err(bad());
                }
                out.push(char::from_u32(v).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokKind> {
        lex(src).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn text_and_action() {
        assert_eq!(
            kinds("a {{ .Labels.x }}b"),
            vec![
                TokKind::Text("a ".into()),
                TokKind::LeftDelim,
                TokKind::Space,
                TokKind::Field("Labels".into()),
                TokKind::Field("x".into()),
                TokKind::Space,
                TokKind::RightDelim,
                TokKind::Text("b".into()),
                TokKind::Eof,
            ]
        );
    }

    #[test]
    fn trim_markers_eat_surrounding_space() {
        assert_eq!(
            kinds("a \n {{- 1 -}} \n b"),
            vec![
                TokKind::Text("a".into()),
                TokKind::LeftDelim,
                TokKind::Space,
                TokKind::Number("1".into()),
                TokKind::Space,
                TokKind::RightDelim,
                TokKind::Text("b".into()),
                TokKind::Eof,
            ]
        );
        // "{{-3}}" is the number -3, not a trim marker.
        assert_eq!(kinds("{{-3}}")[1], TokKind::Number("-3".into()));
    }

    #[test]
    fn comments_vanish_and_trim() {
        assert_eq!(
            kinds("a {{- /* x */ -}} b"),
            vec![
                TokKind::Text("a".into()),
                TokKind::Text("b".into()),
                TokKind::Eof
            ]
        );
        assert_eq!(
            lex("{{/* x */ y}}").unwrap_err().message,
            "comment ends before closing delimiter"
        );
        assert_eq!(lex("{{/* x ").unwrap_err().message, "unclosed comment");
    }

    #[test]
    fn literals() {
        assert_eq!(
            kinds(r#"{{"a\tb" `r\n` 'x' '\n' 0x1F 1.5e3 true nil $ $x}}"#)[1..20],
            [
                TokKind::Str("a\tb".into()),
                TokKind::Space,
                TokKind::Str("r\\n".into()),
                TokKind::Space,
                TokKind::Char('x'),
                TokKind::Space,
                TokKind::Char('\n'),
                TokKind::Space,
                TokKind::Number("0x1F".into()),
                TokKind::Space,
                TokKind::Number("1.5e3".into()),
                TokKind::Space,
                TokKind::Bool(true),
                TokKind::Space,
                TokKind::Nil,
                TokKind::Space,
                TokKind::Variable("$".into()),
                TokKind::Space,
                TokKind::Variable("$x".into()),
            ]
        );
    }

    #[test]
    fn errors_carry_positions() {
        let e = lex("ab{{ \"x }}").unwrap_err();
        assert_eq!(
            (e.pos, e.message.as_str()),
            (5, "unterminated quoted string")
        );
        let e = lex("{{ .x").unwrap_err();
        assert_eq!((e.pos, e.message.as_str()), (0, "unclosed action"));
        assert!(
            lex("{{ 3x }}")
                .unwrap_err()
                .message
                .starts_with("bad number syntax")
        );
        assert_eq!(lex("{{ (1 }}").unwrap_err().message, "unclosed left paren");
    }
}
