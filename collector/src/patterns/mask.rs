//! The masking stage: turns one log line into the token sequence the miner
//! clusters, with every variable part replaced by the `<*>` placeholder.
//!
//! Masking is general log-format knowledge, never per-format configuration:
//! anything carrying a digit (numbers, hex ids, hashes, UUIDs, IPv4/IPv6
//! addresses, versions, timestamps, block and task ids) is a variable, and
//! so are endpoints (`host:port`), URLs, e-mail addresses, domain names and
//! file paths. Inside a token only the variable part is masked (`uid=0`
//! becomes `uid=<*>`, `blk_-42` becomes `blk_<*>`) so that keys and prefixes
//! keep telling events apart. Variables glued by separators (`10.0.0.1:80`,
//! `12:30:01.5`, `1514##69##54`) become one placeholder, and a run of
//! whitespace-separated variables together with the words that only qualify
//! them (units after a number as in `4042 bytes (3.94 KB)`, weekday, month
//! and time-zone names around a date, empty values such as `()`) becomes one
//! placeholder too: the number of tokens a variable takes must not split an
//! event in two.
//!
//! Invariants: the output is a pure function of the input line; no token is
//! empty or holds whitespace; there are never more than [`MAX_TOKENS`]
//! tokens (the tail of a longer line becomes one trailing placeholder, and
//! [`mask_line`] says so).
//!
//! Cost: masking runs for every mined line, so it makes one pass over an
//! ASCII line to split it and to learn each token's byte classes (digits,
//! letters, the marks of paths and addresses, …); the costlier checks run
//! only on the tokens whose classes let them match, and a token's "holds a
//! placeholder" flag is kept beside it instead of being searched for again.
//! Tokens that need those checks are remembered by shape (digits made
//! alike: see [`Shape`]) in a table kept in the reused [`MaskedLine`], so a
//! timestamp, `[worker-7]` or `attempt=2/3` shaped like one masked before
//! is copied from it.

/// The placeholder that stands for a variable part of a line.
pub const WILDCARD: &str = "<*>";

/// Most tokens a masked line keeps; the rest of a longer line becomes one
/// trailing placeholder so that a pathological line cannot blow up a group.
pub const MAX_TOKENS: usize = 128;

/// A masked line: tokens stored back to back in one buffer so that masking a
/// line allocates nothing once the buffers have grown. Reused from line to
/// line, it also keeps the masking of recent token shapes (about 100 KiB
/// once filled), which later lines take instead of masking their tokens.
///
/// Invariant: `ends` and `wild` have one entry per token; `wild[i]` says
/// whether token `i` holds a placeholder, kept as tokens are pushed so that
/// folding lists of ids never searches the tokens.
#[derive(Debug, Default, Clone)]
pub struct MaskedLine {
    buf: String,
    ends: Vec<usize>,
    wild: Vec<bool>,
    /// Kinds of the current run of variables, units and dates (scratch).
    run: Vec<Kind>,
    /// Masked tokens by shape, kept from line to line.
    cache: ShapeCache,
}

impl MaskedLine {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the line had no token at all (empty or only whitespace).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Token `i`, or `""` past the end.
    pub fn token(&self, i: usize) -> &str {
        self.buf.get(self.span(i)).unwrap_or("")
    }

    /// The tokens in order.
    pub fn tokens(&self) -> impl Iterator<Item = &str> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let token = self.buf.get(start..end).unwrap_or("");
            start = end;
            token
        })
    }

    /// The tokens in order, as bytes (for comparing: no character-boundary
    /// checks).
    pub(crate) fn token_bytes(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let bytes = self.buf.as_bytes();
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let token = bytes.get(start..end).unwrap_or_default();
            start = end;
            token
        })
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.wild.clear();
        self.run.clear();
    }

    /// Ends the token that began after the previous one; `wild` says
    /// whether it holds a placeholder.
    fn push_end(&mut self, wild: bool) {
        self.ends.push(self.buf.len());
        self.wild.push(wild);
    }

    fn last_token(&self) -> &str {
        match self.len() {
            0 => "",
            n => self.token(n - 1),
        }
    }

    /// Where token `i` is in `buf`.
    fn span(&self, i: usize) -> std::ops::Range<usize> {
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).copied().unwrap_or(0),
            None => 0,
        };
        start..self.ends.get(i).copied().unwrap_or(start)
    }

    /// Whether tokens `i` and `j` are equal. Compared in place, lengths
    /// first: most differ there, and the rest are too short for `memcmp`.
    fn same_tokens(&self, i: usize, j: usize) -> bool {
        let (a, b) = (self.span(i), self.span(j));
        if a.len() != b.len() {
            return false;
        }
        let bytes = self.buf.as_bytes();
        match (bytes.get(a), bytes.get(b)) {
            (Some(a), Some(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y),
            _ => false,
        }
    }

    fn pop(&mut self) {
        if self.ends.pop().is_some() {
            self.wild.pop();
            let start = self.ends.last().copied().unwrap_or(0);
            self.buf.truncate(start);
        }
    }
}

/// What a masked token is, for folding runs of variables together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Only a placeholder, maybe inside brackets or quotes.
    Var,
    /// A unit that qualifies the number before it (`bytes`, `ms`, `KB`).
    Unit,
    /// A date or time word (`Tue`, `Jul`, `UTC`) next to a number.
    Date,
    /// Anything else: part of the event's wording.
    Word,
}

/// Masks `line` into `out`; returns whether the token cap cut the line short.
pub fn mask_line(line: &str, out: &mut MaskedLine) -> bool {
    out.clear();
    // Unicode whitespace splits tokens too, but the ASCII split is cheaper.
    let capped = if line.is_ascii() {
        mask_tokens(AsciiTokens { line, pos: 0 }, out)
    } else {
        mask_tokens(line.split_whitespace().map(|t| (t, summary(t))), out)
    };
    if capped && classify(out.last_token()) != Kind::Var {
        // The cut tail becomes one placeholder, taking the last kept slot.
        out.pop();
        out.buf.push_str(WILDCARD);
        out.push_end(true);
    }
    capped
}

/// The tokens of an ASCII line (split at ASCII whitespace, as
/// `split_ascii_whitespace` does) with their byte classes (see
/// [`summary`]), both found in one pass over the line.
struct AsciiTokens<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> Iterator for AsciiTokens<'a> {
    type Item = (&'a str, (u16, u16));

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.line.as_bytes().get(self.pos..)?;
        let spaces = rest.iter().take_while(|b| class(**b) & SPACE != 0).count();
        let (mut any, mut all) = (0, u16::MAX);
        let mut len = 0;
        for &b in rest.get(spaces..).unwrap_or_default() {
            let c = class(b);
            if c & SPACE != 0 {
                break;
            }
            any |= c;
            all &= c;
            len += 1;
        }
        let start = self.pos + spaces;
        self.pos = start + len;
        if len == 0 {
            return None;
        }
        Some((self.line.get(start..start + len)?, (any, all)))
    }
}

/// Masks `tokens` (each with its byte classes) into `out`; returns whether
/// the token cap cut them short.
fn mask_tokens<'a>(
    tokens: impl Iterator<Item = (&'a str, (u16, u16))>,
    out: &mut MaskedLine,
) -> bool {
    // The run of variables/units/dates is folded when a word ends it.
    let mut capped = false;
    for (raw, classes) in tokens {
        if out.len() >= MAX_TOKENS {
            capped = true;
            break;
        }
        let (kind, wild) = mask_token(raw, classes, &mut out.buf, &mut out.cache);
        out.push_end(wild);
        if kind == Kind::Word {
            if !out.run.is_empty() {
                fold_run(out, 1);
                out.run.clear();
            }
            drop_repeat(out);
        } else {
            out.run.push(kind);
        }
    }
    fold_run(out, 0);
    drop_repeat(out);
    capped
}

/// Longest repeated group of tokens that [`drop_repeat`] recognises.
const MAX_PERIOD: usize = 3;

/// Drops the last `k` tokens when they repeat the `k` before them and hold
/// a placeholder: a list of ids (`blk_<*> blk_<*> …`, `node-<*> <*> <ok>
/// node-<*> <*> <ok> …`) is one variable however long it is.
///
/// Inlined: it runs after every word, and most calls end at the first
/// check.
#[inline(always)]
fn drop_repeat(out: &mut MaskedLine) {
    // A group of `k` tokens holds a placeholder once `k` reaches the newest
    // one; most lines stop here, with none among the last tokens.
    let last = out.wild.get(out.wild.len().saturating_sub(MAX_PERIOD)..);
    let first_k = match last.unwrap_or_default() {
        [.., true] => 1,
        [.., true, false] => 2,
        [true, false, false] => 3,
        _ => return,
    };
    // A group repeats only if its newest token has the length of the one
    // `k` before it; most lines have none such.
    let n = out.len();
    let newest = out.span(n.saturating_sub(1)).len();
    if (first_k..=MAX_PERIOD).any(|k| n >= 2 * k && out.span(n - 1 - k).len() == newest) {
        drop_repeat_from(out, first_k);
    }
}

/// [`drop_repeat`] past its first check: tries groups of `first_k` to
/// [`MAX_PERIOD`] tokens.
#[inline(never)]
fn drop_repeat_from(out: &mut MaskedLine, first_k: usize) {
    let n = out.len();
    for k in first_k..=MAX_PERIOD {
        if n < 2 * k {
            return;
        }
        if (1..=k).all(|j| out.same_tokens(n - j, n - k - j)) {
            for _ in 0..k {
                out.pop();
            }
            return;
        }
    }
}

/// Folds the run of variable/unit/date tokens that ends `skip_last` tokens
/// before the end of `out` into one placeholder. Units before the first
/// variable qualify nothing and stay words; a run without a variable (a lone
/// month name, a lone `ms`) is left alone.
fn fold_run(out: &mut MaskedLine, skip_last: usize) {
    let run = &out.run;
    let Some(first_var) = run.iter().position(|k| *k == Kind::Var) else {
        return;
    };
    // Leading units stay; leading dates belong to the date that follows.
    let first = run
        .iter()
        .take(first_var)
        .rposition(|k| *k == Kind::Unit)
        .map_or(0, |p| p + 1);
    let folded = run.len() - first;
    if folded < 2 {
        return;
    }
    // Replace the folded tokens in place; the word after them moves left.
    let n = out.len();
    let tail_start = token_start(out, n - skip_last);
    let run_start = token_start(out, n - skip_last - folded);
    if run_start > tail_start || !out.buf.is_char_boundary(tail_start) {
        return;
    }
    let tail_wild = out.wild.last().copied().unwrap_or(false);
    out.buf.replace_range(run_start..tail_start, WILDCARD);
    out.ends.truncate(n - skip_last - folded);
    out.wild.truncate(n - skip_last - folded);
    out.ends.push(run_start + WILDCARD.len());
    out.wild.push(true);
    if skip_last == 1 {
        out.push_end(tail_wild);
    }
}

fn token_start(out: &MaskedLine, i: usize) -> usize {
    if i == 0 {
        0
    } else {
        out.ends.get(i - 1).copied().unwrap_or(0)
    }
}

/// Byte classes: one bit per property a byte can have, looked up in
/// [`CLASSES`] so that one pass over a token tells which of the (much
/// costlier) checks below can match at all. Non-ASCII bytes have none.
const DIGIT: u16 = 1 << 0;
/// An ASCII letter.
const ALPHA: u16 = 1 << 1;
/// What host and field names are made of: letters, digits, `.`, `-`, `_`.
const NAME: u16 = 1 << 2;
/// Opening brackets and quotes.
const OPENER: u16 = 1 << 3;
/// Closing brackets, quotes and trailing punctuation.
const CLOSER: u16 = 1 << 4;
/// Separators that glue the parts of one value (`10.0.0.1:80`, `12:30:01`,
/// `2016-09-27`, `a##b`): a placeholder, such separators and another
/// placeholder fold into one. One of `.:-_/#,+@|~`.
const GLUE: u16 = 1 << 5;
/// A letter or `%`: what a unit or date word is made of.
const WORDY: u16 = 1 << 6;
const COLON: u16 = 1 << 7;
const AT: u16 = 1 << 8;
const DOT: u16 = 1 << 9;
const SLASH: u16 = 1 << 10;
const BACKSLASH: u16 = 1 << 11;
const STAR: u16 = 1 << 12;
const EQUALS: u16 = 1 << 13;
/// ASCII whitespace, as `u8::is_ascii_whitespace` has it.
const SPACE: u16 = 1 << 14;
/// Bytes that send a token to the slow path of [`mask_token`]: digits and
/// the marks of URLs, endpoints, addresses and paths.
const SLOW: u16 = DIGIT | COLON | AT | DOT | SLASH | BACKSLASH;

static CLASSES: [u16; 256] = byte_classes();

const fn byte_classes() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut b = 0u8;
    loop {
        let mut c = 0;
        if b.is_ascii_digit() {
            c |= DIGIT | NAME;
        }
        if b.is_ascii_alphabetic() {
            c |= ALPHA | NAME | WORDY;
        }
        c |= match b {
            b'%' => WORDY,
            b'.' => NAME | DOT | GLUE | CLOSER,
            b'-' | b'_' => NAME | GLUE,
            b':' => COLON | GLUE | CLOSER,
            b'/' => SLASH | GLUE,
            b',' => GLUE | CLOSER,
            b'#' | b'+' | b'|' | b'~' => GLUE,
            b'@' => AT | GLUE,
            b'\\' => BACKSLASH,
            b'*' => STAR,
            b'=' => EQUALS,
            b' ' | b'\t' | b'\n' | b'\x0c' | b'\r' => SPACE,
            b'(' | b'[' | b'{' | b'<' => OPENER,
            b'"' | b'\'' | b'`' => OPENER | CLOSER,
            b')' | b']' | b'}' | b'>' | b';' | b'!' | b'?' => CLOSER,
            _ => 0,
        };
        t[b as usize] = c;
        if b == u8::MAX {
            return t;
        }
        b += 1;
    }
}

fn class(b: u8) -> u16 {
    CLASSES[usize::from(b)]
}

/// The classes found in `s` (any byte) and those shared by every byte.
fn summary(s: &str) -> (u16, u16) {
    s.bytes().fold((0, u16::MAX), |(any, all), b| {
        let c = class(b);
        (any | c, all & c)
    })
}

/// `s` without its leading brackets and quotes (ASCII, so the cut is on a
/// character boundary).
fn trim_openers(s: &str) -> &str {
    let n = s.bytes().take_while(|b| class(*b) & OPENER != 0).count();
    s.get(n..).unwrap_or("")
}

/// `s` without its trailing brackets, quotes and punctuation.
fn trim_closers(s: &str) -> &str {
    let b = s.as_bytes();
    let mut end = b.len();
    while end > 0 && b.get(end - 1).is_some_and(|b| class(*b) & CLOSER != 0) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Whether `s` holds a placeholder.
fn has_wildcard(s: &str) -> bool {
    s.as_bytes()
        .windows(WILDCARD.len())
        .any(|w| matches!(w, [b'<', b'*', b'>']))
}

/// The kind of a masked token.
fn classify(token: &str) -> Kind {
    classify_masked(token, has_wildcard(token))
}

/// The kind of a masked token; `wild` says whether it holds a placeholder.
fn classify_masked(token: &str, wild: bool) -> Kind {
    // A lone placeholder, the commonest masked token: what the checks below
    // make of it (it trims to `*`).
    if wild {
        return classify_wild(token);
    }
    let core = trim_closers(trim_openers(token));
    if core.is_empty() {
        // `<*>` itself trims to nothing (`<` and `>` are brackets); so does
        // an empty value (`()`, `""`, `[]`), which is a variable left blank.
        return if wild || is_empty_value(token) {
            Kind::Var
        } else {
            Kind::Word
        };
    }
    if core == "*" && wild {
        return Kind::Var;
    }
    // Whether every byte is a letter or `%` (`core` is not empty), stopping
    // at the first that is not.
    if core.bytes().all(|b| class(b) & WORDY != 0) || core == "µs" {
        classify_word(core)
    } else {
        Kind::Word
    }
}

/// [`classify_masked`] for a token holding a placeholder. Its `*` is neither
/// a bracket nor a letter, so the checks there come to this: a variable
/// when the token trims to that `*` alone (`<*>`, `(<*>)`, `"<*>",`), else
/// a word (`uid=<*>`, `[worker-<*>]`).
fn classify_wild(token: &str) -> Kind {
    let b = token.as_bytes();
    let openers = b.iter().take_while(|c| class(**c) & OPENER != 0).count();
    match b.get(openers..) {
        Some([b'*', rest @ ..]) if rest.iter().all(|c| class(*c) & CLOSER != 0) => Kind::Var,
        _ => Kind::Word,
    }
}

/// The kind of a word made of letters and `%` only.
fn classify_word(word: &str) -> Kind {
    if !might_be_unit_or_date(word) {
        Kind::Word
    } else if is_unit(word) {
        Kind::Unit
    } else if is_date_word(word) {
        Kind::Date
    } else {
        Kind::Word
    }
}

fn is_empty_value(token: &str) -> bool {
    let token = token.trim_end_matches([',', ';', ':', '.']);
    matches!(token, "()" | "[]" | "{}" | "<>" | "\"\"" | "''" | "``")
}

/// Defines a list of words as a constant (for [`WORD_SHAPES`]) and a
/// function telling whether a word is in it (a `match`, which compiles to
/// length checks and inline compares).
macro_rules! word_list {
    ($(#[$doc:meta])* $list:ident, $is:ident: $($word:literal)|+) => {
        $(#[$doc])*
        const $list: &[&str] = &[$($word),+];

        fn $is(word: &str) -> bool {
            matches!(word, $($word)|+)
        }
    };
}

word_list!(
    /// Units that qualify the number before them.
    UNITS,
    is_unit: "ns" | "us" | "µs" | "ms" | "s" | "sec" | "secs" | "second" | "seconds" | "min"
        | "mins" | "minute" | "minutes" | "hr" | "hrs" | "hour" | "hours" | "day" | "days" | "B"
        | "b" | "byte" | "bytes" | "KB" | "kB" | "kb" | "KiB" | "MB" | "mb" | "MiB" | "GB" | "gb"
        | "GiB" | "TB" | "TiB" | "%"
);

word_list!(
    /// Weekday, month, half-day and time-zone names.
    DATE_WORDS,
    is_date_word: "Mon" | "Tue" | "Wed" | "Thu" | "Fri" | "Sat" | "Sun" | "Monday" | "Tuesday"
        | "Wednesday" | "Thursday" | "Friday" | "Saturday" | "Sunday" | "Jan" | "Feb" | "Mar"
        | "Apr" | "May" | "Jun" | "Jul" | "Aug" | "Sep" | "Oct" | "Nov" | "Dec" | "January"
        | "February" | "March" | "April" | "June" | "July" | "August" | "September" | "October"
        | "November" | "December" | "AM" | "PM" | "UTC" | "GMT" | "Z" | "CET" | "CEST" | "EST"
        | "EDT" | "CST" | "CDT" | "MST" | "MDT" | "PST" | "PDT"
);

/// For each first byte, bit `n` is set when some unit or date word of `n`
/// bytes (below 16) starts with it: most words are told apart from all of
/// them by one lookup.
static WORD_SHAPES: [u16; 256] = word_shapes();

const fn word_shapes() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < UNITS.len() + DATE_WORDS.len() {
        let word = if i < UNITS.len() {
            UNITS[i].as_bytes()
        } else {
            DATE_WORDS[i - UNITS.len()].as_bytes()
        };
        assert!(!word.is_empty() && word.len() < 16);
        t[word[0] as usize] |= 1 << word.len();
        i += 1;
    }
    t
}

/// Whether some unit or date word has the length and first byte of `word`.
fn might_be_unit_or_date(word: &str) -> bool {
    match word.as_bytes() {
        [first, ..] if word.len() < 16 => WORD_SHAPES[usize::from(*first)] & (1 << word.len()) != 0,
        _ => false,
    }
}

/// Longest token, in 8-byte words, that [`ShapeCache`] keeps.
const SHAPE_WORDS: usize = 5;

/// Slots of [`ShapeCache`] (a power of two).
const SHAPE_SLOTS: usize = 1024;

/// A token's shape: its bytes with every ASCII digit turned into `0`, in
/// little-endian 8-byte words padded with zero bytes, and its length.
///
/// Masking gives every token of one shape the same masked text, kind and
/// placeholder flag: no check tells one digit from another (digits only
/// ever meet classes, `is_ascii_digit`, `is_ascii_alphanumeric` and
/// comparisons with digit-free words), and no digit is ever copied to the
/// output (every segment holding one becomes a placeholder). So the
/// masking of a token stands for that of every token of its shape.
#[derive(Debug, Clone, Copy)]
struct Shape {
    words: [u64; SHAPE_WORDS],
    len: usize,
}

impl PartialEq for Shape {
    /// Word by word without branches (a derived comparison of the array
    /// calls `memcmp`).
    fn eq(&self, other: &Shape) -> bool {
        let differ = self
            .words
            .iter()
            .zip(&other.words)
            .fold(0, |acc, (a, b)| acc | (a ^ b));
        differ == 0 && self.len == other.len
    }
}

impl Shape {
    /// The shape of `raw`, or `None` when it is longer than the cache keeps.
    fn of(raw: &[u8]) -> Option<Shape> {
        if raw.len() > SHAPE_WORDS * 8 {
            return None;
        }
        let mut words = [0u64; SHAPE_WORDS];
        let chunks = raw.chunks_exact(8);
        let tail = chunks.remainder();
        let full = raw.len() / 8;
        for (word, chunk) in words.iter_mut().zip(chunks) {
            *word = zero_digits(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        if let Some(word) = words.get_mut(full)
            && !tail.is_empty()
        {
            // The tail's bytes, shifted in as a load would place them (no
            // call to copy them into a padded buffer).
            let last = tail
                .iter()
                .rev()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            *word = zero_digits(last);
        }
        Some(Shape {
            words,
            len: raw.len(),
        })
    }

    /// Where the shape goes in a cache of [`SHAPE_SLOTS`] slots.
    fn slot(&self) -> usize {
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut h = self.len as u64;
        for w in self.words {
            h = (h.rotate_left(23) ^ w).wrapping_mul(K);
        }
        (h >> (64 - SHAPE_SLOTS.trailing_zeros())) as usize
    }
}

/// `w` with every byte that is an ASCII digit turned into `0` (each byte
/// on its own: no carry crosses bytes).
fn zero_digits(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = w & LOW7;
    // High bit set where the low 7 bits are at least `0`, resp. above `9`.
    let from_zero = low + 0x5050_5050_5050_5050;
    let above_nine = low + 0x4646_4646_4646_4646;
    let digits = from_zero & !above_nine & !w & HIGH;
    // A digit is `0x30 | n`: clearing its low nibble leaves `0`.
    w & !((digits >> 7) * 0x0f)
}

/// The masking of one token shape (see [`Shape`]).
#[derive(Debug, Clone)]
struct CachedToken {
    shape: Shape,
    masked: String,
    kind: Kind,
    wild: bool,
}

/// Masked tokens by shape, so that a token shaped like one masked before
/// (a timestamp, `[worker-7]`, `attempt=2/3`) is copied instead of masked
/// again: a direct-mapped table of [`SHAPE_SLOTS`] slots, a newer shape
/// taking the slot of an older one. It holds only tokens that take the
/// slow path of [`mask_token`] and fit in [`SHAPE_WORDS`] words; its
/// table is allocated when the first such token is masked.
#[derive(Clone, Default)]
struct ShapeCache {
    slots: Vec<Option<CachedToken>>,
}

impl ShapeCache {
    /// The slot of `shape`, which may hold another shape.
    fn slot(&mut self, shape: &Shape) -> &mut Option<CachedToken> {
        if self.slots.len() != SHAPE_SLOTS {
            self.slots.resize(SHAPE_SLOTS, None);
        }
        &mut self.slots[shape.slot() & (SHAPE_SLOTS - 1)]
    }
}

impl std::fmt::Debug for ShapeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shapes = self.slots.iter().flatten().count();
        f.debug_struct("ShapeCache")
            .field("shapes", &shapes)
            .finish()
    }
}

/// Masks one whitespace-delimited token, whose byte classes are `(any,
/// all)` (see [`summary`]), into `out`; returns its kind and whether it
/// holds a placeholder. Tokens that take the slow path are looked up in
/// `cache` by shape first.
fn mask_token(
    raw: &str,
    (any, all): (u16, u16),
    out: &mut String,
    cache: &mut ShapeCache,
) -> (Kind, bool) {
    // Fast path: most tokens are plain words.
    if any & SLOW == 0 {
        out.push_str(raw);
        if all & ALPHA != 0 {
            // Letters only: no brackets to trim, no placeholder.
            return (classify_word(raw), false);
        }
        let wild = any & STAR != 0 && has_wildcard(raw);
        return (classify_masked(raw, wild), wild);
    }
    // Digits only (a count, a duration, a port): the slow path's checks all
    // fail on it, and it becomes one placeholder.
    if all & DIGIT != 0 && !raw.is_empty() {
        out.push_str(WILDCARD);
        return (Kind::Var, true);
    }
    let Some(shape) = Shape::of(raw.as_bytes()) else {
        return mask_token_uncached(raw, (any, all), out);
    };
    let slot = cache.slot(&shape);
    if let Some(slot) = slot.as_ref().filter(|s| s.shape == shape) {
        out.push_str(&slot.masked);
        return (slot.kind, slot.wild);
    }
    let start = out.len();
    let (kind, wild) = mask_token_uncached(raw, (any, all), out);
    let masked = out.get(start..).unwrap_or("");
    match slot {
        Some(slot) => {
            slot.shape = shape;
            slot.masked.clear();
            slot.masked.push_str(masked);
            (slot.kind, slot.wild) = (kind, wild);
        }
        None => {
            *slot = Some(CachedToken {
                shape,
                masked: masked.into(),
                kind,
                wild,
            })
        }
    }
    (kind, wild)
}

/// [`mask_token`] past its fast paths and the cache: a token with a digit
/// or a mark of a URL, endpoint, address or path, not digits only.
fn mask_token_uncached(raw: &str, (any, all): (u16, u16), out: &mut String) -> (Kind, bool) {
    let start = out.len();
    mask_token_slow(raw, (any, all), out);
    let masked = out.get(start..).unwrap_or("");
    if masked == WILDCARD {
        return (Kind::Var, true);
    }
    // Masking changes a token only by putting a placeholder in it, so a
    // token whose length changed holds one without searching it.
    let wild = masked.len() != raw.len() || has_wildcard(masked);
    (classify_masked(masked, wild), wild)
}

/// Masks a token that may hold a variable; `classes` are those of `raw`.
fn mask_token_slow(raw: &str, classes: (u16, u16), out: &mut String) {
    let rest = trim_openers(raw);
    let core_start = raw.len() - rest.len();
    let core = trim_closers(rest);
    let (prefix, suffix) = (
        raw.get(..core_start).unwrap_or(""),
        rest.get(core.len()..).unwrap_or(""),
    );
    // A digit-free core can still be a whole variable (URL, endpoint,
    // e-mail address), but only with one of their marks.
    // Most tokens have nothing to trim, and then their classes are known.
    let (any, all) = if core.len() == raw.len() {
        classes
    } else {
        summary(core)
    };
    if core.is_empty() || any & SLOW == 0 {
        out.push_str(raw);
        return;
    }
    // `[v6 address]:port` is one endpoint, brackets included.
    if prefix.ends_with('[') && core.contains("]:") {
        out.push_str(prefix.get(..prefix.len() - 1).unwrap_or(""));
        out.push_str(WILDCARD);
        out.push_str(suffix);
        return;
    }
    out.push_str(prefix);
    let start = out.len();
    mask_core(core, (any, all), start, out);
    // A variable dressed in glue (`#3#`, `-5`) is just a variable.
    let masked = out.get(start..).unwrap_or("");
    if masked != WILDCARD && is_dressed_wildcard(masked) {
        out.truncate(start);
        out.push_str(WILDCARD);
    }
    out.push_str(suffix);
}

/// Whether `s` is placeholders and glue only, with at least one placeholder.
fn is_dressed_wildcard(s: &str) -> bool {
    let mut rest = s.as_bytes();
    let mut seen = false;
    loop {
        match rest {
            [] => return seen,
            [b'<', b'*', b'>', tail @ ..] => {
                rest = tail;
                seen = true;
            }
            [first, tail @ ..] if class(*first) & GLUE != 0 => rest = tail,
            _ => return false,
        }
    }
}

/// Masks the core of a token (brackets and trailing punctuation removed)
/// whose byte classes are `(any, all)` (see [`summary`]); `start` is where
/// the token's masked text begins in `out`.
fn mask_core(core: &str, (any, all): (u16, u16), start: usize, out: &mut String) {
    // Digits only: no check below matches it but the segment one, which
    // makes it one placeholder.
    if all & DIGIT != 0 && !core.is_empty() {
        push_wildcard(start, out);
        return;
    }
    // `key=value`: the key names the field and stays; the value is masked
    // on its own, so that `rhost=host-1.example.net` loses the whole host
    // and `path=/api/v1/users/7` keeps `path=`.
    if any & EQUALS != 0
        && let Some((key, value)) = split_first(core, b'=')
        && is_key(key)
        && !value.is_empty()
    {
        // A key is ASCII letters, digits and `.-_`: without a digit, its
        // segments are all kept.
        if key.bytes().any(|b| b.is_ascii_digit()) {
            mask_segments(key, start, out);
        } else {
            out.push_str(key);
        }
        out.push('=');
        let value_start = out.len();
        let inner = trim_openers(value);
        out.push_str(value.get(..value.len() - inner.len()).unwrap_or(""));
        mask_core(inner, summary(inner), value_start, out);
        return;
    }
    if is_whole_variable(core, (any, all)) {
        out.push_str(WILDCARD);
        return;
    }
    if any & DIGIT != 0 {
        mask_segments(core, start, out);
        // An id made mostly of numbers with short tags between them
        // (`attempt_1445_0020_m_000000_0`) is one variable: its tags vary too.
        let masked = out.get(start..).unwrap_or("");
        if has_two_wildcards(masked)
            && core.bytes().filter(u8::is_ascii_digit).count() * 2 >= core.len()
        {
            out.truncate(start);
            out.push_str(WILDCARD);
        }
    } else {
        out.push_str(core);
    }
}

/// Whether `s` holds two placeholders or more (stops at the second).
fn has_two_wildcards(s: &str) -> bool {
    s.as_bytes()
        .windows(WILDCARD.len())
        .filter(|w| matches!(w, [b'<', b'*', b'>']))
        .nth(1)
        .is_some()
}

/// A field name: letters, digits, `_`, `-`, `.`, starting with a letter.
fn is_key(s: &str) -> bool {
    s.as_bytes().first().is_some_and(|b| class(*b) & ALPHA != 0)
        && s.bytes().all(|b| class(b) & NAME != 0)
}

/// Whether the whole token is one variable even where parts of it carry no
/// digit: URLs, endpoints, e-mail addresses, paths with numbers. `(any,
/// all)` are the byte classes of `core` (see [`summary`]): each check runs
/// only when the marks it needs are there.
fn is_whole_variable(core: &str, (any, all): (u16, u16)) -> bool {
    let has_digit = any & DIGIT != 0;
    if any & COLON != 0 && any & SLASH != 0 && core.as_bytes().windows(3).any(|w| w == b"://") {
        return true;
    }
    if any & AT != 0
        && let Some((user, host)) = split_first(core, b'@')
        && !user.is_empty()
        && host.bytes().any(|b| b == b'.')
        && is_hostname(host)
    {
        return true;
    }
    if any & COLON != 0
        && any & DOT != 0
        && let Some((host, port)) = split_last(core, b':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && host.bytes().any(|b| b == b'.')
        && is_hostname(host)
    {
        return true;
    }
    if is_absolute_path(core)
        || has_digit && any & (SLASH | BACKSLASH) != 0 && looks_like_path(core)
    {
        return true;
    }
    // A dotted name carrying a number: a host (`host-10.example.net`), an
    // address or a numbered file (`core.2275`); or a domain name. The
    // classes tell `core.contains('.') && is_hostname(core)`.
    if any & DOT != 0 && any & ALPHA != 0 && all & NAME != 0 && (has_digit || is_domain_name(core))
    {
        return true;
    }
    false
}

/// `s` split around its first `sep` (an ASCII byte), as `str::split_once`
/// splits it; a plain scan, cheaper than a `memchr` on tokens this short.
fn split_first(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// `s` split around its last `sep` (an ASCII byte), as `str::rsplit_once`
/// splits it.
fn split_last(s: &str, sep: u8) -> Option<(&str, &str)> {
    let i = s.bytes().rposition(|b| b == sep)?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

fn is_hostname(s: &str) -> bool {
    let (any, all) = summary(s);
    !s.is_empty() && any & ALPHA != 0 && all & NAME != 0
}

/// A host name by its top-level domain: a generic one (`example.com`), or
/// a two-letter country code under a generic second level
/// (`mail.example.co.uk`, `isp.com.br`), so that `java.lang.String`,
/// `app.py`, `mapred.task.id` or `android.intent.action.MAIN` stay words.
fn is_domain_name(s: &str) -> bool {
    let Some((rest, tld)) = split_last(s, b'.') else {
        return false;
    };
    if rest.is_empty() || rest.ends_with('.') {
        return false;
    }
    if is_generic_tld(tld) {
        return true;
    }
    let Some((above, second)) = split_last(rest, b'.') else {
        return false;
    };
    !above.is_empty()
        && tld.len() == 2
        && tld.bytes().all(|b| b.is_ascii_lowercase())
        && (is_generic_tld(second) || matches!(second, "ac" | "co" | "ne" | "or" | "go"))
}

fn is_generic_tld(label: &str) -> bool {
    matches!(
        label,
        "com"
            | "net"
            | "org"
            | "edu"
            | "gov"
            | "mil"
            | "info"
            | "biz"
            | "local"
            | "localdomain"
            | "internal"
            | "lan"
            | "arpa"
    )
}

/// A file path rooted somewhere (`/var/log/x`, `~/x`, `./x`, `C:\\x`):
/// which file an event concerns is its variable, not its wording.
fn is_absolute_path(s: &str) -> bool {
    let b = s.as_bytes();
    match b {
        [b'/', next, ..] => next.is_ascii_alphanumeric() || matches!(next, b'_' | b'.' | b'-'),
        [b'~' | b'.', b'/', ..] | [b'.', b'.', b'/', ..] => true,
        [drive, b':', b'\\', ..] => drive.is_ascii_alphabetic(),
        _ => false,
    }
}

fn looks_like_path(s: &str) -> bool {
    s.starts_with('/')
        || s.starts_with("./")
        || s.starts_with("~/")
        || s.contains('\\')
        || s.bytes().filter(|b| *b == b'/').count() >= 2
}

/// Masks the digit-bearing segments (maximal runs of letters, digits and
/// `_`... minus separators) of a token, keeping the other segments and the
/// punctuation between them.
fn mask_segments(core: &str, token_start: usize, out: &mut String) {
    if !core.is_ascii() {
        mask_segments_unicode(core, token_start, out);
        return;
    }
    // ASCII: segments are runs of ASCII letters and digits, and the
    // punctuation between two segments is copied in one piece.
    let bytes = core.as_bytes();
    let mut i = 0;
    while let Some(rest) = bytes.get(i..)
        && !rest.is_empty()
    {
        let (mut len, mut classes) = (0, 0);
        for &b in rest {
            let c = class(b);
            if c & (ALPHA | DIGIT) == 0 {
                break;
            }
            classes |= c;
            len += 1;
        }
        if len > 0 {
            if classes & DIGIT != 0 {
                push_wildcard(token_start, out);
            } else {
                out.push_str(core.get(i..i + len).unwrap_or(""));
            }
            i += len;
            continue;
        }
        let len = rest
            .iter()
            .take_while(|b| class(**b) & (ALPHA | DIGIT) == 0)
            .count();
        match rest.first() {
            // Most punctuation between segments is one byte.
            Some(&b) if len == 1 => out.push(char::from(b)),
            _ => out.push_str(core.get(i..i + len).unwrap_or("")),
        }
        i += len;
    }
}

/// [`mask_segments`] for a token with non-ASCII characters, where letters
/// and digits are Unicode's.
fn mask_segments_unicode(core: &str, token_start: usize, out: &mut String) {
    let mut seg_start: Option<usize> = None;
    let flush = |seg: &str, out: &mut String| {
        if seg.bytes().any(|b| b.is_ascii_digit()) {
            push_wildcard(token_start, out);
        } else {
            out.push_str(seg);
        }
    };
    for (i, c) in core.char_indices() {
        if c.is_alphanumeric() {
            if seg_start.is_none() {
                seg_start = Some(i);
            }
        } else {
            if let Some(s) = seg_start.take() {
                flush(core.get(s..i).unwrap_or(""), out);
            }
            out.push(c);
        }
    }
    if let Some(s) = seg_start {
        flush(core.get(s..).unwrap_or(""), out);
    }
}

/// Appends a placeholder, folding it into a placeholder of the same token
/// (which starts at `token_start`) that precedes it through glue only.
fn push_wildcard(token_start: usize, out: &mut String) {
    // A sign right after a separator belongs to the number (`blk_-42`,
    // `vCores:-27`), so that negative and positive values look alike.
    // Signs are ASCII: the check is on bytes, and only a non-ASCII byte
    // before the sign needs the character before it.
    if let Some([unsigned @ .., b'-' | b'+']) = out.as_bytes().get(token_start..) {
        let alphanumeric = match unsigned.last() {
            None => false,
            Some(b) if b.is_ascii() => b.is_ascii_alphanumeric(),
            Some(_) => out
                .get(token_start..token_start + unsigned.len())
                .is_some_and(|u| u.ends_with(char::is_alphanumeric)),
        };
        if !alphanumeric {
            out.truncate(token_start + unsigned.len());
        }
    }
    // Glue is ASCII, so trimming it byte by byte stops where trimming
    // characters would.
    let token = out.as_bytes().get(token_start..).unwrap_or_default();
    let glued = token.len()
        - token
            .iter()
            .rev()
            .take_while(|b| class(**b) & GLUE != 0)
            .count();
    if token
        .get(..glued)
        .is_some_and(|t| t.ends_with(WILDCARD.as_bytes()))
    {
        out.truncate(token_start + glued);
    } else {
        out.push_str(WILDCARD);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::super::mask_oracle as oracle;
    use super::*;
    use proptest::prelude::*;

    /// The glue characters, as [`GLUE`] has them.
    fn is_glue(c: char) -> bool {
        matches!(
            c,
            '.' | ':' | '-' | '_' | '/' | '#' | ',' | '+' | '@' | '|' | '~'
        )
    }

    #[test]
    fn byte_classes_are_what_they_stand_for() {
        for b in 0..=u8::MAX {
            let c = class(b);
            let has = |bit: u16| c & bit != 0;
            assert_eq!(has(DIGIT), b.is_ascii_digit(), "{b:#x}");
            assert_eq!(has(ALPHA), b.is_ascii_alphabetic(), "{b:#x}");
            let name = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
            assert_eq!(has(NAME), name, "{b:#x}");
            let opener = matches!(b, b'(' | b'[' | b'{' | b'<' | b'"' | b'\'' | b'`');
            assert_eq!(has(OPENER), opener, "{b:#x}");
            let closer = matches!(
                b,
                b')' | b']'
                    | b'}'
                    | b'>'
                    | b'"'
                    | b'\''
                    | b'`'
                    | b','
                    | b';'
                    | b':'
                    | b'.'
                    | b'!'
                    | b'?'
            );
            assert_eq!(has(CLOSER), closer, "{b:#x}");
            assert_eq!(has(GLUE), b.is_ascii() && is_glue(char::from(b)), "{b:#x}");
            assert_eq!(has(WORDY), b.is_ascii_alphabetic() || b == b'%', "{b:#x}");
            let slow = b.is_ascii_digit() || matches!(b, b':' | b'@' | b'.' | b'/' | b'\\');
            assert_eq!(has(SLOW), slow, "{b:#x}");
            assert_eq!(has(SPACE), b.is_ascii_whitespace(), "{b:#x}");
            for (bit, byte) in [
                (COLON, b':'),
                (AT, b'@'),
                (DOT, b'.'),
                (SLASH, b'/'),
                (BACKSLASH, b'\\'),
                (STAR, b'*'),
                (EQUALS, b'='),
            ] {
                assert_eq!(has(bit), b == byte, "{b:#x}");
            }
        }
    }

    #[test]
    fn every_unit_and_date_word_passes_the_shape_filter() {
        for word in UNITS.iter().chain(DATE_WORDS) {
            assert!(might_be_unit_or_date(word), "{word}");
        }
        assert!(!might_be_unit_or_date("failed"));
        assert!(!might_be_unit_or_date(""));
    }

    /// Lines of pieces that exercise every path of the masker: brackets,
    /// glue, placeholders already in the text, units, dates, non-ASCII
    /// letters and whitespace.
    fn line() -> impl Strategy<Value = String> {
        let piece = prop::sample::select(vec![
            "<*>",
            "<",
            "*",
            ">",
            "1",
            "42",
            "-7",
            "+3",
            "a",
            "abc",
            "ms",
            "bytes",
            "KB",
            "Tue",
            "Jul",
            "UTC",
            "µs",
            "é",
            "Ω9",
            "×",
            "\u{3000}",
            " ",
            " ",
            "  ",
            "\t",
            "\x0b",
            ".",
            ":",
            "@",
            "/",
            "\\",
            "://",
            "=",
            "[",
            "]",
            "(",
            ")",
            "()",
            "\"",
            "'",
            ",",
            ";",
            "#",
            "_",
            "-",
            "|",
            "~",
            "%",
            "0x1f",
            "blk_",
            "example.com",
            "C:\\",
            "~/",
            "]:",
            "10.0.0.1",
            "uid=",
            "*<*>*",
            "<ok>",
        ]);
        prop::collection::vec(piece, 0..60).prop_map(|p| p.concat())
    }

    proptest! {
        /// The shortcuts keep what they stand for: each token's flag says
        /// whether it holds a placeholder, and the one-pass split of an
        /// ASCII line finds `split_ascii_whitespace`'s tokens.
        #[test]
        fn shortcuts_agree_with_what_they_stand_for(l in line()) {
            let mut m = MaskedLine::default();
            mask_line(&l, &mut m);
            prop_assert_eq!(m.wild.len(), m.len());
            for (i, t) in m.tokens().enumerate() {
                prop_assert_eq!(t, m.token(i));
                prop_assert_eq!(m.wild[i], t.contains(WILDCARD), "{:?} in {:?}", t, l);
            }
            if l.is_ascii() {
                let split: Vec<_> = l.split_ascii_whitespace().map(|t| (t, summary(t))).collect();
                let one_pass: Vec<_> = AsciiTokens { line: &l, pos: 0 }.collect();
                prop_assert_eq!(one_pass, split);
            }
            prop_assert_eq!(has_wildcard(&l), l.contains(WILDCARD));
            prop_assert_eq!(has_two_wildcards(&l), l.matches(WILDCARD).count() >= 2);
        }
    }

    /// Tokens of every shape the masker tells apart, and the ones its
    /// shortcuts rely on: numbers, hex, addresses, UUIDs, timestamps,
    /// key=value pairs, paths, placeholders already in the text, brackets,
    /// signs, non-ASCII text and very long tokens.
    fn oracle_token() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => line(),
            2 => "[0-9]{1,20}",
            1 => "[-+#(\\[<\"']{0,2}[0-9]{1,6}[-+#)\\]>\"',;:.!?]{0,2}",
            2 => "[0-9a-fA-F]{1,40}",
            1 => "0x[0-9a-f]{1,16}",
            1 => (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u16>())
                .prop_map(|(a, b, c, d, p)| format!("{a}.{b}.{c}.{d}:{p}")),
            1 => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            1 => "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\\.[0-9]{3}Z",
            2 => "[a-z_.]{1,10}=[-a-zA-Z0-9_./:@<>*()\\[\\]]{0,16}",
            1 => "[/~.]{0,2}[a-z0-9/_.\\\\-]{1,24}",
            1 => "[a-z]{1,8}[.@][a-z0-9-]{1,8}\\.(com|org|net|io|co\\.uk|ab)(:[0-9]{1,5})?",
            1 => "[a-z]{1,5}://[a-z0-9./?=&-]{0,20}",
            2 => "[a-zA-Z%]{1,9}",
            1 => "[<*>()\\[\\]{}\"'`.,;:!?#_|~+@=-]{1,8}",
            1 => "[ -~]{0,30}",
            1 => "\\PC{0,16}",
            1 => "[a-zé0-9Ω×µ._:-]{1,12}",
            1 => "[a-z0-9._:/=-]{100,400}",
        ]
    }

    /// Lines of [`oracle_token`]s, separated by one or more whitespace
    /// characters (ASCII or not), with leading and trailing whitespace.
    fn oracle_line() -> impl Strategy<Value = String> {
        let space = prop::sample::select(vec![
            " ", " ", " ", "  ", "\t", "\u{3000}", "\u{a0}", "\r\n",
        ]);
        prop::collection::vec((space, oracle_token()), 0..40).prop_map(|parts| {
            parts
                .into_iter()
                .flat_map(|(space, token)| [space.to_owned(), token])
                .collect()
        })
    }

    /// The masking of `l` by this module and by the oracle, as (capped,
    /// tokens, placeholder flags).
    type Masking = (bool, Vec<String>, Vec<bool>);

    fn both_maskings(l: &str) -> (Masking, Masking) {
        let mut new = MaskedLine::default();
        let capped = mask_line(l, &mut new);
        let new = (
            capped,
            new.tokens().map(str::to_owned).collect(),
            new.wild.clone(),
        );
        let mut old = oracle::MaskedLine::default();
        let capped = oracle::mask_line(l, &mut old);
        let old = (
            capped,
            old.tokens().map(str::to_owned).collect(),
            old.wild_flags().to_vec(),
        );
        (new, old)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Masking gives byte for byte what the implementation before its
        /// shortcuts gave (kept as a test-only oracle), with the same
        /// placeholder flags and cap.
        #[test]
        fn masking_matches_the_oracle(l in oracle_line()) {
            let (new, old) = both_maskings(&l);
            prop_assert_eq!(new, old, "{:?}", l);
        }

        /// The same, token by token, for single tokens alone and glued to
        /// brackets, punctuation and keys.
        #[test]
        fn token_masking_matches_the_oracle(
            t in oracle_token(),
            before in "[(\\[{<\"'`]{0,2}([a-z_]{1,6}=)?",
            after in "[)\\]}>\"'`,;:.!?]{0,3}",
        ) {
            let l = format!("{before}{t}{after}");
            let (new, old) = both_maskings(&l);
            prop_assert_eq!(new, old, "{:?}", l);
        }
    }

    proptest! {
        /// Lists of ids and of repeated groups of tokens fold as the
        /// oracle folds them.
        #[test]
        fn repeats_match_the_oracle(
            tokens in prop::collection::vec(
                prop::sample::select(vec![
                    "blk_1", "blk_22", "blk_-3", "x=1", "x=22", "y=333", "<ok>", "<*>",
                    "node-3", "node-44", "0x1f", "0x2e", "a", "b", "ab", "ms", "Jul", "()",
                ]),
                0..40,
            ),
        ) {
            let l = tokens.join(" ");
            let (new, old) = both_maskings(&l);
            prop_assert_eq!(new, old, "{:?}", l);
        }
    }

    /// `s` with every ASCII digit replaced by another digit, drawn from
    /// `seed` (the same shape, other values).
    fn other_digits(s: &str, seed: u64) -> String {
        let mut x = seed | 1;
        s.chars()
            .map(|c| {
                if !c.is_ascii_digit() {
                    return c;
                }
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'0' + (x % 10) as u8)
            })
            .collect()
    }

    /// The masking of `l` by the oracle, as [`both_maskings`] gives it.
    fn oracle_masking(l: &str) -> Masking {
        let mut m = oracle::MaskedLine::default();
        let capped = oracle::mask_line(l, &mut m);
        (
            capped,
            m.tokens().map(str::to_owned).collect(),
            m.wild_flags().to_vec(),
        )
    }

    #[test]
    fn shapes_turn_exactly_the_digits_into_zeros() {
        for b in 0..=u8::MAX {
            for at in 0..8 {
                // `b` among bytes that are and are not digits.
                let mut bytes = [b'a', b'9', b'/', b'0', b':', b'Z', b'\\', 0xff];
                bytes[at] = b;
                let expected = bytes.map(|c| if c.is_ascii_digit() { b'0' } else { c });
                let word = zero_digits(u64::from_le_bytes(bytes));
                assert_eq!(word.to_le_bytes(), expected, "{b:#x} at {at}");
            }
        }
        let shape = |s: &str| Shape::of(s.as_bytes());
        assert_eq!(shape("blk_-1234"), shape("blk_-9876"));
        assert_ne!(shape("blk_-1234"), shape("blk_-123"));
        assert_ne!(shape("blk_-1234"), shape("blk_-123a"));
        assert_ne!(shape("a1"), shape("a1\0"));
        let longest = "1".repeat(SHAPE_WORDS * 8);
        assert!(shape(&longest).is_some());
        assert!(shape(&format!("{longest}1")).is_none());
        // Every length up to the longest, with the tail past a whole word.
        for len in 1..=SHAPE_WORDS * 8 {
            let a: String = "ab:1/".chars().cycle().take(len).collect();
            let b = other_digits(&a, len as u64);
            assert_eq!(shape(&a), shape(&b), "{a:?}");
            let c = format!("{}x", &a[..len - 1]);
            assert_eq!(shape(&a) == shape(&c), a.ends_with('x'), "{a:?}");
        }
    }

    /// Token lists that share shapes: tokens drawn from a few, each drawn
    /// again with other digits.
    fn lines_sharing_shapes() -> impl Strategy<Value = Vec<String>> {
        let line = (
            prop::collection::vec(any::<prop::sample::Index>(), 1..16),
            any::<u64>(),
        );
        (
            prop::collection::vec(oracle_token(), 1..10),
            prop::collection::vec(line, 1..40),
        )
            .prop_map(|(tokens, lines)| {
                lines
                    .into_iter()
                    .map(|(picks, seed)| {
                        let picked = picks.iter().enumerate().map(|(n, i)| {
                            let token: &String = i.get(&tokens);
                            other_digits(token, seed.wrapping_add(n as u64))
                        });
                        picked.collect::<Vec<_>>().join(" ")
                    })
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// What the shape cache relies on: which digit a token holds does
        /// not change its masking (the oracle has no cache).
        #[test]
        fn masking_does_not_depend_on_which_digits(l in oracle_line(), seed in any::<u64>()) {
            let other = other_digits(&l, seed);
            prop_assert_eq!(oracle_masking(&l), oracle_masking(&other), "{:?} / {:?}", l, other);
        }

        /// One masked line reused from line to line, as the miner reuses
        /// it, so that tokens are taken from the shape cache: every line
        /// is still masked as the oracle masks it.
        #[test]
        fn cached_masking_matches_the_oracle(lines in lines_sharing_shapes()) {
            let mut m = MaskedLine::default();
            for l in &lines {
                let capped = mask_line(l, &mut m);
                let new = (capped, m.tokens().map(str::to_owned).collect(), m.wild.clone());
                prop_assert_eq!(new, oracle_masking(l), "{:?}", l);
            }
        }
    }

    #[test]
    fn shapes_that_take_each_others_slots_are_masked_as_the_oracle_masks_them() {
        // Far more shapes than slots, each seen twice: every slot is
        // taken over many times.
        let mut m = MaskedLine::default();
        for round in 0..2 {
            for n in 0..4 * SHAPE_SLOTS {
                let key: String = (0..n % 7 + 1)
                    .map(|i| char::from(b'a' + ((n >> (3 * i)) % 26) as u8))
                    .collect();
                let l = format!("x {key}=1.{n} [{key}-{n}] {n}:{key}:{round}");
                mask_line(&l, &mut m);
                let new = (
                    false,
                    m.tokens().map(str::to_owned).collect(),
                    m.wild.clone(),
                );
                assert_eq!(new, oracle_masking(&l), "{l:?}");
            }
        }
        assert!(m.cache.slots.iter().all(Option::is_some));
    }

    #[test]
    fn masking_matches_the_oracle_on_application_lines() {
        for l in [
            "2026-11-26T10:00:01.123Z ERROR [worker-7] request 4f3a2b9c failed after 1234 ms: connection reset by peer (10.0.3.17:8080) user=alice id=550e8400-e29b-41d4-a716-446655440000",
            "2026-11-26T10:00:01.000Z INFO  [worker-3] http.server: request completed method=GET path=/api/v1/orders/123456 status=200 duration_ms=1234 bytes=5678",
            "2026-11-26T10:00:01.000Z WARN  [worker-12] orders.api: upstream timeout after 42ms calling inventory-service attempt=2/3 request_id=00ff12ab34cd56ef",
            "2026-11-26T10:00:01.000Z DEBUG [worker-1] db.pool: connection pool exhausted active=40 waiting=123456 db=orders-primary wait_ms=17",
            "login failed for user=u123456 from 10.3.200.7 reason=bad_credentials password=hunter123456",
            "cache miss key=session:00ff12ab34cd56ef ttl_s=3600 fallback=db latency_ms=9",
            "x -5 +6 #3# blk_-42 vCores:-27> é-1 Ω+2 ×-3 a\u{3000}-4",
            "ask 10.0.0.1:50010 to delete blk_-1 blk_2 blk_-3 blk_4",
            "nodesets node-1 0x1fc <ok> node-2 0x1fd <ok> node-7 0x1fe <ok> done",
            "a=1 a=2 b=3 b=4 a=5 b=6 a=7 b=8 c",
            " 0!!a",
            "1<*>\u{3000}",
            " 1]# 0x1f>",
            "0x1f\u{3000}1]a",
            "",
            "   ",
        ] {
            let (new, old) = both_maskings(l);
            assert_eq!(new, old, "{l:?}");
        }
        let long = "id=1 ".repeat(MAX_TOKENS * 2);
        let (new, old) = both_maskings(&long);
        assert_eq!(new, old);
    }

    fn masked(line: &str) -> String {
        let mut m = MaskedLine::default();
        mask_line(line, &mut m);
        m.tokens().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn numbers_ids_and_addresses_are_masked() {
        assert_eq!(
            masked("PacketResponder 1 for block blk_-6952295868487656571 terminating"),
            "PacketResponder <*> for block blk_<*> terminating"
        );
        assert_eq!(
            masked("Invalid user admin from 173.234.31.186"),
            "Invalid user admin from <*>"
        );
        assert_eq!(
            masked("connect to [fe80::1ff:fe23:4567:890a]:8080 failed"),
            "connect to <*> failed"
        );
        assert_eq!(
            masked("request 3f2504e0-4f89-11d3-9a0c-0305e82c3301 done"),
            "request <*> done"
        );
        assert_eq!(masked("sha 9e107d9d372bb6826bd81d3542a419d6"), "sha <*>");
    }

    #[test]
    fn keys_stay_and_values_go() {
        assert_eq!(
            masked("authentication failure; uid=0 euid=0 tty=ssh rhost=10.1.2.3 user=root"),
            "authentication failure; uid=<*> euid=<*> tty=ssh rhost=<*> user=root"
        );
        assert_eq!(masked("onExtend:1514038530000"), "onExtend:<*>");
        assert_eq!(
            masked("path=/api/v1/users/123 url=http://x/?a=1"),
            "path=<*> url=<*>"
        );
    }

    #[test]
    fn endpoints_urls_and_numbered_paths_are_whole_variables() {
        assert_eq!(
            masked("chat.example.com:443 open through proxy proxy.example.org:5070 HTTPS"),
            "<*> open through proxy <*> HTTPS"
        );
        assert_eq!(masked("GET https://example.com/a?b=c"), "GET <*>");
        assert_eq!(masked("removing '/dev/vcs2'"), "removing '<*>'");
        assert_eq!(masked("loading /etc/httpd/conf"), "loading <*>");
        assert_eq!(masked(r"open C:\Windows\x.dll"), "open <*>");
        assert_eq!(masked("I/O error n/a"), "I/O error n/a");
    }

    #[test]
    fn quantities_with_units_fold_into_one_variable() {
        assert_eq!(
            masked("x close, 474 bytes sent, 4042 bytes (3.94 KB) received, lifetime <1 sec"),
            "x close, <*> sent, <*> received, lifetime <*>"
        );
        assert_eq!(
            masked(
                "x close, 14267 bytes (13.9 KB) sent, 36698 bytes (35.8 KB) received, lifetime 48:06"
            ),
            "x close, <*> sent, <*> received, lifetime <*>"
        );
    }

    #[test]
    fn dates_fold_into_one_variable() {
        assert_eq!(
            masked("connection from 10.0.0.1 () at Tue Jul 26 05:47:42 2005"),
            "connection from <*> at <*>"
        );
        assert_eq!(masked("born in May or June"), "born in May or June");
    }

    #[test]
    fn signs_and_decorations_belong_to_the_number() {
        assert_eq!(
            masked("headroom=<memory:0, vCores:-27>"),
            "headroom=<memory:<*>, vCores:<*>>"
        );
        assert_eq!(
            masked("synchronized to #3#, stratum 1"),
            "synchronized to <*>, stratum <*>"
        );
        assert_eq!(masked("x-1 y_-2"), "x-<*> y_<*>");
    }

    #[test]
    fn domain_names_and_composite_ids_are_whole_variables() {
        assert_eq!(
            masked("rhost=mail.example.org user=root"),
            "rhost=<*> user=root"
        );
        assert_eq!(masked("rhost=host-10.isp.net"), "rhost=<*>");
        assert_eq!(
            masked("attempt_1445144423722_0020_m_000000_0 started"),
            "<*> started"
        );
        // Java classes, Android intents and file names are not hosts.
        assert_eq!(
            masked("action:android.intent.action.SCREEN_ON in java.lang.String app.py"),
            "action:android.intent.action.SCREEN_ON in java.lang.String app.py"
        );
        assert_eq!(masked("Block broadcast_9_piece0"), "Block broadcast_<*>");
        assert_eq!(
            masked("mx.example.co.uk isp.com.br mapred.task.id java.io"),
            "<*> mapred.task.id java.io"
        );
    }

    #[test]
    fn unicode_whitespace_separates_tokens() {
        assert_eq!(masked("a\u{3000}b\u{a0}7"), "a b <*>");
    }

    #[test]
    fn lists_of_ids_fold_into_one() {
        assert_eq!(
            masked("ask 10.0.0.1:50010 to delete blk_-1 blk_2 blk_-3 blk_4"),
            "ask <*> to delete blk_<*>"
        );
        assert_eq!(
            masked("nodesets node-1 0x1fc <ok> node-2 0x1fd <ok> node-7 0x1fe <ok> done"),
            "nodesets node-<*> <*> <ok> done"
        );
        assert_eq!(masked("very very bad"), "very very bad");
    }

    #[test]
    fn a_unit_before_any_number_is_a_word() {
        assert_eq!(masked("took ms 5"), "took ms <*>");
    }

    #[test]
    fn token_count_is_capped() {
        let long = "word ".repeat(MAX_TOKENS * 2);
        let mut m = MaskedLine::default();
        assert!(mask_line(&long, &mut m));
        assert_eq!(m.len(), MAX_TOKENS);
        assert_eq!(m.token(MAX_TOKENS - 1), WILDCARD);
    }

    #[test]
    fn empty_line_has_no_tokens() {
        let mut m = MaskedLine::default();
        assert!(!mask_line("  \t ", &mut m));
        assert!(m.is_empty());
    }
}
