//! The parser of Go's `text/template` dialect: tokens to a syntax tree.
//!
//! It follows Go's `text/template/parse` closely (same grammar, same checks,
//! same messages) so that a template Prometheus rejects is rejected here
//! with a message an SRE can search for. Checks done at parse time, as in
//! Go: functions must exist, variables must be declared before use,
//! `break`/`continue` only inside `range`, a pipeline stage after the first
//! must be executable.

use super::lex::{Keyword, TokKind, Token, lex};

/// Deepest nesting of `if`/`range`/`with` and parenthesised pipelines.
const MAX_NESTING: usize = 100;

/// A sequence of nodes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct List(pub Vec<Node>);

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    /// `{{pipeline}}`: prints the value unless the pipeline declares.
    Action(Pipe),
    If(Control),
    Range(Control),
    With(Control),
    /// `{{template "name" pipeline}}` (also what `block` leaves behind).
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(usize),
    Continue(usize),
}

/// The shared shape of `if`, `range` and `with`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Control {
    pub pipe: Pipe,
    pub list: List,
    pub else_list: Option<List>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pipe {
    pub pos: usize,
    pub end: usize,
    /// `=` rather than `:=`.
    pub is_assign: bool,
    pub decl: Vec<String>,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Command {
    pub pos: usize,
    pub end: usize,
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Arg {
    pub pos: usize,
    pub end: usize,
    pub kind: ArgKind,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArgKind {
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str(String),
    /// `.A.B`: fields of dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Variable(String, Vec<String>),
    /// A function name.
    Identifier(String),
    /// `(pipeline).A.B`.
    Chain(Box<Arg>, Vec<String>),
    Pipe(Box<Pipe>),
}

/// A numeric constant as written, with the interpretations Go allows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// Written as a character constant (`'a'`): always an integer.
    pub is_char: bool,
}

impl Number {
    /// Go's `idealConstant`: a float if written like one, else an int.
    pub(crate) fn looks_float(&self) -> bool {
        let t = self.text.to_ascii_lowercase();
        let hex = t.trim_start_matches(['+', '-']).starts_with("0x");
        !self.is_char
            && if hex {
                t.contains('p')
            } else {
                t.contains(['.', 'e'])
            }
    }

    fn parse(text: &str) -> Result<Number, String> {
        let clean: String = text.chars().filter(|&c| c != '_').collect();
        let (neg, digits) = match clean.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
        };
        let lower = digits.to_ascii_lowercase();
        let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
            (16, b.to_string())
        } else if let Some(b) = lower.strip_prefix("0o") {
            (8, b.to_string())
        } else if let Some(b) = lower.strip_prefix("0b") {
            (2, b.to_string())
        } else if lower.len() > 1
            && lower.starts_with('0')
            && lower.chars().all(|c| c.is_ascii_digit())
        {
            (8, lower[1..].to_string())
        } else {
            (10, lower.clone())
        };
        let int = i128::from_str_radix(&body, radix)
            .ok()
            .map(|v| if neg { -v } else { v })
            .and_then(|v| i64::try_from(v).ok());
        let float = if radix == 10 {
            clean.parse::<f64>().ok().filter(|f| f.is_finite())
        } else if radix == 16 && body.contains('p') {
            parse_hex_float(&body).map(|f| if neg { -f } else { f })
        } else {
            int.map(|i| i as f64)
                .or_else(|| u128::from_str_radix(&body, radix).ok().map(|u| u as f64))
        };
        if int.is_none() && float.is_none() {
            return Err(format!("illegal number syntax: {text:?}"));
        }
        Ok(Number {
            text: text.to_string(),
            int,
            float,
            is_char: false,
        })
    }
}

/// A hexadecimal float such as `1.8p1` (without the `0x`).
fn parse_hex_float(body: &str) -> Option<f64> {
    let (mant, exp) = body.split_once('p')?;
    let exp: i32 = exp.parse().ok()?;
    let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
    let mut v = 0f64;
    for c in ip.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in fp.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

/// A parse error: byte offset in the source and Go's message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParseError {
    pub pos: usize,
    pub message: String,
}

/// The result of parsing one source text: its body and its definitions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Parsed {
    pub root: List,
    /// `{{define}}` and `{{block}}` bodies, in source order.
    pub defs: Vec<(String, List)>,
}

/// Parses `src`. `has_func` says whether a function name exists;
/// `predeclared` are variables (besides `$`) visible from the start.
pub(crate) fn parse(
    src: &str,
    has_func: &dyn Fn(&str) -> bool,
    predeclared: &[&str],
) -> Result<Parsed, ParseError> {
    let toks = lex(src).map_err(|e| ParseError {
        pos: e.pos,
        message: e.message,
    })?;
    let mut vars = vec!["$".to_string()];
    vars.extend(predeclared.iter().map(|v| v.to_string()));
    let mut p = Parser {
        src,
        toks,
        idx: 0,
        vars,
        range_depth: 0,
        depth: 0,
        has_func,
        defs: Vec::new(),
    };
    let root = p.top()?;
    Ok(Parsed { root, defs: p.defs })
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    idx: usize,
    vars: Vec<String>,
    range_depth: usize,
    /// Nesting of controls and parenthesised pipelines, bounded because
    /// the parser and the executor recurse on it.
    depth: usize,
    has_func: &'a dyn Fn(&str) -> bool,
    defs: Vec<(String, List)>,
}

type PResult<T> = Result<T, ParseError>;

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.idx.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.idx < self.toks.len() - 1 {
            self.idx += 1;
        }
        t
    }

    fn backup(&mut self) {
        self.idx = self.idx.saturating_sub(1);
    }

    fn next_non_space(&mut self) -> Token {
        loop {
            let t = self.next();
            if t.kind != TokKind::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Token {
        let save = self.idx;
        let t = self.next_non_space();
        self.idx = save;
        t
    }

    fn error<T>(&self, pos: usize, message: impl Into<String>) -> PResult<T> {
        Err(ParseError {
            pos,
            message: message.into(),
        })
    }

    fn unexpected<T>(&self, tok: &Token, context: &str) -> PResult<T> {
        let what = tok.describe(self.src);
        if tok.kind == TokKind::Eof {
            return self.error(tok.pos, format!("unexpected EOF in {context}"));
        }
        self.error(tok.pos, format!("unexpected {what} in {context}"))
    }

    fn expect_right_delim(&mut self, context: &str) -> PResult<Token> {
        let t = self.next_non_space();
        if t.kind != TokKind::RightDelim {
            return self.unexpected(&t, context);
        }
        Ok(t)
    }

    /// The top level: text, actions and definitions.
    fn top(&mut self) -> PResult<List> {
        let mut list = List::default();
        loop {
            let t = self.peek().clone();
            match t.kind {
                TokKind::Eof => return Ok(list),
                TokKind::LeftDelim => {
                    let save = self.idx;
                    self.next();
                    if self.next_non_space().kind == TokKind::Keyword(Keyword::Define) {
                        self.definition()?;
                        continue;
                    }
                    self.idx = save;
                }
                _ => {}
            }
            match self.text_or_action()? {
                Item::Node(n) => list.0.push(n),
                Item::End(pos) => return self.error(pos, "unexpected {{end}}"),
                Item::Else(pos, _) => return self.error(pos, "unexpected {{else}}"),
            }
        }
    }

    fn definition(&mut self) -> PResult<()> {
        let t = self.next_non_space();
        let name = self.template_name(&t, "define clause")?;
        self.expect_right_delim("define clause")?;
        let saved = std::mem::take(&mut self.vars);
        // A definition sees only "$", as in Go: variables declared by the
        // caller (or Prometheus' alert prefix) are not in its scope.
        self.vars = vec!["$".to_string()];
        let (list, end) = self.item_list()?;
        self.vars = saved;
        if let Stop::Else(pos, _) = end {
            return self.error(pos, "unexpected {{else}} in define clause");
        }
        self.defs.push((name, list));
        Ok(())
    }

    fn template_name(&self, t: &Token, context: &str) -> PResult<String> {
        match &t.kind {
            TokKind::Str(s) => Ok(s.clone()),
            _ => self.unexpected(t, context),
        }
    }

    /// Nodes up to an `{{end}}` or `{{else}}`, which is returned too.
    fn item_list(&mut self) -> PResult<(List, Stop)> {
        let mut list = List::default();
        loop {
            if self.peek_non_space().kind == TokKind::Eof {
                let t = self.peek_non_space();
                return self.error(t.pos, "unexpected EOF");
            }
            match self.text_or_action()? {
                Item::Node(n) => list.0.push(n),
                Item::End(_) => return Ok((list, Stop::End)),
                Item::Else(pos, chained) => return Ok((list, Stop::Else(pos, chained))),
            }
        }
    }

    fn text_or_action(&mut self) -> PResult<Item> {
        let t = self.next_non_space();
        match t.kind {
            TokKind::Text(s) => Ok(Item::Node(Node::Text(s))),
            TokKind::LeftDelim => self.action(t.pos),
            _ => self.unexpected(&t, "input"),
        }
    }

    fn action(&mut self, delim_pos: usize) -> PResult<Item> {
        let t = self.next_non_space();
        match t.kind {
            TokKind::Keyword(Keyword::Block) => self.block_control(t.pos).map(Item::Node),
            TokKind::Keyword(Keyword::Break) => {
                if self.range_depth == 0 {
                    return self.error(t.pos, "{{break}} outside {{range}}");
                }
                self.expect_right_delim("break")?;
                Ok(Item::Node(Node::Break(t.pos)))
            }
            TokKind::Keyword(Keyword::Continue) => {
                if self.range_depth == 0 {
                    return self.error(t.pos, "{{continue}} outside {{range}}");
                }
                self.expect_right_delim("continue")?;
                Ok(Item::Node(Node::Continue(t.pos)))
            }
            TokKind::Keyword(Keyword::Else) => {
                let p = self.peek_non_space();
                match p.kind {
                    TokKind::Keyword(k @ (Keyword::If | Keyword::With)) => {
                        // "{{else if …}}": the keyword stays for the caller.
                        Ok(Item::Else(delim_pos, Some(k)))
                    }
                    _ => {
                        self.expect_right_delim("else")?;
                        Ok(Item::Else(delim_pos, None))
                    }
                }
            }
            TokKind::Keyword(Keyword::End) => {
                self.expect_right_delim("end")?;
                Ok(Item::End(delim_pos))
            }
            TokKind::Keyword(Keyword::If) => self.control("if").map(|c| Item::Node(Node::If(c))),
            TokKind::Keyword(Keyword::Range) => {
                self.control("range").map(|c| Item::Node(Node::Range(c)))
            }
            TokKind::Keyword(Keyword::With) => {
                self.control("with").map(|c| Item::Node(Node::With(c)))
            }
            TokKind::Keyword(Keyword::Template) => {
                let n = self.next_non_space();
                let name = self.template_name(&n, "template clause")?;
                let pipe = if self.peek_non_space().kind == TokKind::RightDelim {
                    self.next_non_space();
                    None
                } else {
                    Some(self.pipeline("template clause", TokKind::RightDelim)?)
                };
                Ok(Item::Node(Node::Template {
                    pos: t.pos,
                    name,
                    pipe,
                }))
            }
            _ => {
                self.backup();
                let pipe = self.pipeline("command", TokKind::RightDelim)?;
                Ok(Item::Node(Node::Action(pipe)))
            }
        }
    }

    fn block_control(&mut self, pos: usize) -> PResult<Node> {
        let n = self.next_non_space();
        let name = self.template_name(&n, "block clause")?;
        let pipe = self.pipeline("block clause", TokKind::RightDelim)?;
        let saved = std::mem::take(&mut self.vars);
        self.vars = vec!["$".to_string()];
        let depth = std::mem::replace(&mut self.range_depth, 0);
        let res = self.item_list();
        self.vars = saved;
        self.range_depth = depth;
        let (list, end) = res?;
        if let Stop::Else(p, _) = end {
            return self.error(p, "unexpected {{else}} in block clause");
        }
        self.defs.push((name.clone(), list));
        Ok(Node::Template {
            pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn control(&mut self, context: &str) -> PResult<Control> {
        let nvars = self.vars.len();
        self.depth += 1;
        let res = if self.depth > MAX_NESTING {
            let pos = self.peek_non_space().pos;
            self.error(
                pos,
                format!("exceeded maximum nesting depth ({MAX_NESTING})"),
            )
        } else {
            self.control_inner(context)
        };
        self.depth -= 1;
        self.vars.truncate(nvars);
        res
    }

    fn control_inner(&mut self, context: &str) -> PResult<Control> {
        let pipe = self.pipeline(context, TokKind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let res = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, stop) = res?;
        let else_list = match stop {
            Stop::End => None,
            Stop::Else(pos, chained) => {
                if let Some(k) = chained {
                    // "else if" inside if and "else with" inside with.
                    let allowed = (context == "if" && k == Keyword::If)
                        || (context == "with" && k == Keyword::With);
                    if !allowed {
                        return self.error(pos, format!("unexpected <{}> in else", k.as_str()));
                    }
                    self.next_non_space();
                    let inner = self.control(context)?;
                    let node = if k == Keyword::If {
                        Node::If(inner)
                    } else {
                        Node::With(inner)
                    };
                    Some(List(vec![node]))
                } else {
                    let (l, stop) = self.item_list()?;
                    if let Stop::Else(p, _) = stop {
                        return self.error(p, "expected end; found {{else}}");
                    }
                    Some(l)
                }
            }
        };
        Ok(Control {
            pipe,
            list,
            else_list,
        })
    }

    fn pipeline(&mut self, context: &str, end: TokKind) -> PResult<Pipe> {
        let start = self.peek_non_space().pos;
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return self.error(
                start,
                format!("exceeded maximum nesting depth ({MAX_NESTING})"),
            );
        }
        let res = self.pipeline_inner(context, end, start);
        self.depth -= 1;
        res
    }

    fn pipeline_inner(&mut self, context: &str, end: TokKind, start: usize) -> PResult<Pipe> {
        let mut pipe = Pipe {
            pos: start,
            end: start,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        // Declarations: "$x :=", "$x =", "$i, $v :=".
        'decls: loop {
            let v = self.peek_non_space();
            let TokKind::Variable(name) = &v.kind else {
                break;
            };
            let save = self.idx;
            self.next_non_space();
            let after = self.peek_non_space();
            match after.kind {
                TokKind::Assign | TokKind::Declare => {
                    pipe.is_assign = after.kind == TokKind::Assign;
                    self.next_non_space();
                    if pipe.is_assign && !self.vars.contains(name) {
                        return self.error(v.pos, format!("undefined variable {name:?}"));
                    }
                    pipe.decl.push(name.clone());
                    self.vars.push(name.clone());
                    break 'decls;
                }
                TokKind::Comma => {
                    self.next_non_space();
                    pipe.decl.push(name.clone());
                    self.vars.push(name.clone());
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            TokKind::Variable(_) | TokKind::RightDelim | TokKind::RightParen => {
                                continue 'decls;
                            }
                            _ => {
                                return self.error(v.pos, "range can only initialize variables");
                            }
                        }
                    }
                    return self.error(v.pos, format!("too many declarations in {context}"));
                }
                _ => {
                    self.idx = save;
                    break;
                }
            }
        }
        loop {
            let t = self.next_non_space();
            if t.kind == end {
                pipe.end = pipe.cmds.last().map_or(t.pos, |c| c.end);
                self.check_pipeline(&pipe, context, t.pos)?;
                return Ok(pipe);
            }
            match t.kind {
                TokKind::Bool(_)
                | TokKind::Char(_)
                | TokKind::Dot
                | TokKind::Field(_)
                | TokKind::Identifier(_)
                | TokKind::Number(_)
                | TokKind::Nil
                | TokKind::Str(_)
                | TokKind::Variable(_)
                | TokKind::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return self.unexpected(&t, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str, pos: usize) -> PResult<()> {
        if pipe.cmds.is_empty() {
            return self.error(pos, format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if let Some(a) = c.args.first()
                && matches!(
                    a.kind,
                    ArgKind::Bool(_)
                        | ArgKind::Dot
                        | ArgKind::Nil
                        | ArgKind::Number(_)
                        | ArgKind::Str(_)
                )
            {
                return self.error(
                    a.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(())
    }

    fn command(&mut self) -> PResult<Command> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(a) = self.operand()? {
                args.push(a);
            }
            let t = self.next();
            match t.kind {
                TokKind::Space => continue,
                TokKind::RightDelim | TokKind::RightParen => self.backup(),
                TokKind::Pipe => {}
                _ => return self.unexpected(&t, "operand"),
            }
            break;
        }
        if args.is_empty() {
            return self.error(pos, "empty command");
        }
        let end = args.last().map_or(pos, |a| a.end);
        Ok(Command { pos, end, args })
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut fields = Vec::new();
        let mut end = term.end;
        while let TokKind::Field(f) = &self.peek().kind {
            fields.push(f.clone());
            end = self.peek().end;
            self.next();
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        let kind = match term.kind {
            ArgKind::Field(mut fs) => {
                fs.extend(fields);
                ArgKind::Field(fs)
            }
            ArgKind::Variable(v, mut fs) => {
                fs.extend(fields);
                ArgKind::Variable(v, fs)
            }
            ArgKind::Bool(_)
            | ArgKind::Str(_)
            | ArgKind::Number(_)
            | ArgKind::Nil
            | ArgKind::Dot => {
                return self.error(term.end, "unexpected . after term");
            }
            _ => ArgKind::Chain(Box::new(term.clone()), fields),
        };
        Ok(Some(Arg {
            pos: term.pos,
            end,
            kind,
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let t = self.next_non_space();
        let kind = match &t.kind {
            TokKind::Identifier(name) => {
                if !(self.has_func)(name) {
                    return self.error(t.pos, format!("function {name:?} not defined"));
                }
                ArgKind::Identifier(name.clone())
            }
            TokKind::Dot => ArgKind::Dot,
            TokKind::Nil => ArgKind::Nil,
            TokKind::Variable(name) => {
                if !self.vars.contains(name) {
                    return self.error(t.pos, format!("undefined variable {name:?}"));
                }
                ArgKind::Variable(name.clone(), Vec::new())
            }
            TokKind::Field(f) => ArgKind::Field(vec![f.clone()]),
            TokKind::Bool(b) => ArgKind::Bool(*b),
            TokKind::Char(c) => ArgKind::Number(Number {
                text: self.src[t.pos..t.end].to_string(),
                int: Some(i64::from(u32::from(*c))),
                float: Some(f64::from(u32::from(*c))),
                is_char: true,
            }),
            TokKind::Number(text) => match Number::parse(text) {
                Ok(n) => ArgKind::Number(n),
                Err(m) => return self.error(t.pos, m),
            },
            TokKind::Str(s) => ArgKind::Str(s.clone()),
            TokKind::LeftParen => {
                let pipe = self.pipeline("parenthesized pipeline", TokKind::RightParen)?;
                let end = self.toks[self.idx.saturating_sub(1)].end;
                return Ok(Some(Arg {
                    pos: t.pos,
                    end,
                    kind: ArgKind::Pipe(Box::new(pipe)),
                }));
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        };
        Ok(Some(Arg {
            pos: t.pos,
            end: t.end,
            kind,
        }))
    }
}

enum Item {
    Node(Node),
    /// `{{end}}` at this offset.
    End(usize),
    /// `{{else}}`, possibly chained with `if` or `with`.
    Else(usize, Option<Keyword>),
}

enum Stop {
    End,
    Else(usize, Option<Keyword>),
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn p(src: &str) -> Result<Parsed, ParseError> {
        parse(src, &|f| matches!(f, "printf" | "len" | "humanize"), &[])
    }

    fn err(src: &str) -> String {
        p(src).unwrap_err().message
    }

    #[test]
    fn parses_nested_controls() {
        let t = p("{{if .A}}a{{else if .B}}b{{else}}c{{end}}").unwrap();
        let Node::If(c) = &t.root.0[0] else {
            panic!("not an if: {:?}", t.root)
        };
        let Some(List(inner)) = &c.else_list else {
            panic!("no else")
        };
        assert!(matches!(&inner[0], Node::If(c2) if c2.else_list.is_some()));
    }

    #[test]
    fn chained_fields_fold_into_one_operand() {
        let t = p("{{ $x := 1 }}{{ .Labels.instance }}{{ $x.a.b }}{{ (.A).B }}").unwrap();
        let args: Vec<_> = t
            .root
            .0
            .iter()
            .filter_map(|n| match n {
                Node::Action(p) => Some(p.cmds[0].args[0].kind.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            args[1],
            ArgKind::Field(vec!["Labels".into(), "instance".into()])
        );
        assert_eq!(
            args[2],
            ArgKind::Variable("$x".into(), vec!["a".into(), "b".into()])
        );
        assert!(matches!(&args[3], ArgKind::Chain(_, f) if f == &vec!["B".to_string()]));
    }

    #[test]
    fn definitions_are_collected() {
        let t = p(r#"{{define "a"}}x{{end}}{{template "a" .}}{{block "b" .}}y{{end}}"#).unwrap();
        let names: Vec<_> = t.defs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(t.root.0.len(), 2);
    }

    #[test]
    fn go_parse_errors() {
        assert_eq!(err("{{ foo }}"), r#"function "foo" not defined"#);
        assert_eq!(err("{{ $x }}"), r#"undefined variable "$x""#);
        assert_eq!(err("{{if .A}}"), "unexpected EOF");
        assert_eq!(err("{{end}}"), "unexpected {{end}}");
        assert_eq!(err("{{else}}"), "unexpected {{else}}");
        assert_eq!(err("{{}}"), "missing value for command");
        assert_eq!(err("{{break}}"), "{{break}} outside {{range}}");
        assert_eq!(
            err("{{ .A | 1 }}"),
            "non executable command in pipeline stage 2"
        );
        assert_eq!(err("{{ printf \"%d\"1 }}"), r#"unexpected "1" in operand"#);
        assert_eq!(err("{{ 1.x }}"), "bad number syntax: \"1.x\"");
        assert_eq!(
            err("{{range $a, $b, $c := .}}{{end}}"),
            "too many declarations in range"
        );
        assert_eq!(err("{{ $x = 1 }}"), r#"undefined variable "$x""#);
        assert_eq!(
            err(r#"{{template .A}}"#),
            r#"unexpected ".A" in template clause"#
        );
    }

    #[test]
    fn variables_are_scoped_to_their_control() {
        assert!(p("{{if $x := 1}}{{$x}}{{else}}{{$x}}{{end}}").is_ok());
        assert_eq!(
            err("{{if $x := 1}}{{end}}{{$x}}"),
            r#"undefined variable "$x""#
        );
        assert!(p("{{range $i, $v := .}}{{$i}}{{$v}}{{break}}{{end}}").is_ok());
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{{{{ {}1{} }}}}", "(".repeat(150), ")".repeat(150));
        assert_eq!(err(&deep), "exceeded maximum nesting depth (100)");
        let ifs = format!("{}{}", "{{if 1}}".repeat(150), "{{end}}".repeat(150));
        assert_eq!(err(&ifs), "exceeded maximum nesting depth (100)");
        let ok = format!("{{{{ {}1{} }}}}", "(".repeat(50), ")".repeat(50));
        assert!(p(&ok).is_ok());
    }

    #[test]
    fn numbers() {
        let n = Number::parse("0x1F").unwrap();
        assert_eq!((n.int, n.looks_float()), (Some(31), false));
        let n = Number::parse("1e3").unwrap();
        assert_eq!(
            (n.int, n.float, n.looks_float()),
            (None, Some(1000.0), true)
        );
        let n = Number::parse("-1_000").unwrap();
        assert_eq!(n.int, Some(-1000));
        assert!(Number::parse("0x").is_err());
    }
}
