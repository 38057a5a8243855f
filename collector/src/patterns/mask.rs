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

/// The placeholder that stands for a variable part of a line.
pub const WILDCARD: &str = "<*>";

/// Most tokens a masked line keeps; the rest of a longer line becomes one
/// trailing placeholder so that a pathological line cannot blow up a group.
pub const MAX_TOKENS: usize = 128;

/// A masked line: tokens stored back to back in one buffer so that masking a
/// line allocates nothing once the buffers have grown.
#[derive(Debug, Default, Clone)]
pub struct MaskedLine {
    buf: String,
    ends: Vec<usize>,
    /// Kinds of the current run of variables, units and dates (scratch).
    run: Vec<Kind>,
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
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0)
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.buf.get(start..end).unwrap_or("")
    }

    /// The tokens in order.
    pub fn tokens(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).map(move |i| self.token(i))
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.run.clear();
    }

    fn push_end(&mut self) {
        self.ends.push(self.buf.len());
    }

    fn last_token(&self) -> &str {
        match self.len() {
            0 => "",
            n => self.token(n - 1),
        }
    }

    fn pop(&mut self) {
        if self.ends.pop().is_some() {
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
        mask_tokens(line.split_ascii_whitespace(), out)
    } else {
        mask_tokens(line.split_whitespace(), out)
    };
    if capped && classify(out.last_token()) != Kind::Var {
        // The cut tail becomes one placeholder, taking the last kept slot.
        out.pop();
        out.buf.push_str(WILDCARD);
        out.push_end();
    }
    capped
}

/// Masks `tokens` into `out`; returns whether the token cap cut them short.
fn mask_tokens<'a>(tokens: impl Iterator<Item = &'a str>, out: &mut MaskedLine) -> bool {
    // The run of variables/units/dates is folded when a word ends it.
    let mut capped = false;
    for raw in tokens {
        if out.len() >= MAX_TOKENS {
            capped = true;
            break;
        }
        let kind = mask_token(raw, &mut out.buf);
        out.push_end();
        if kind == Kind::Word {
            fold_run(out, 1);
            out.run.clear();
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
fn drop_repeat(out: &mut MaskedLine) {
    let n = out.len();
    // Which of the last tokens hold a placeholder; most lines stop here.
    let mut wild = [false; MAX_PERIOD];
    for (j, w) in wild.iter_mut().enumerate().take(n.min(MAX_PERIOD)) {
        *w = out.token(n - 1 - j).contains(WILDCARD);
    }
    for k in 1..=MAX_PERIOD {
        if n < 2 * k {
            return;
        }
        if !wild.iter().take(k).any(|w| *w) {
            continue;
        }
        if (1..=k).all(|j| out.token(n - j) == out.token(n - k - j)) {
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
    out.buf.replace_range(run_start..tail_start, WILDCARD);
    out.ends.truncate(n - skip_last - folded);
    out.ends.push(run_start + WILDCARD.len());
    if skip_last == 1 {
        out.push_end();
    }
}

fn token_start(out: &MaskedLine, i: usize) -> usize {
    if i == 0 {
        0
    } else {
        out.ends.get(i - 1).copied().unwrap_or(0)
    }
}

fn is_opener(b: u8) -> bool {
    matches!(b, b'(' | b'[' | b'{' | b'<' | b'"' | b'\'' | b'`')
}

fn is_closer(b: u8) -> bool {
    matches!(
        b,
        b')' | b']' | b'}' | b'>' | b'"' | b'\'' | b'`' | b',' | b';' | b':' | b'.' | b'!' | b'?'
    )
}

/// `s` without its leading brackets and quotes (ASCII, so the cut is on a
/// character boundary).
fn trim_openers(s: &str) -> &str {
    let n = s.bytes().take_while(|b| is_opener(*b)).count();
    s.get(n..).unwrap_or("")
}

/// `s` without its trailing brackets, quotes and punctuation.
fn trim_closers(s: &str) -> &str {
    let n = s.bytes().rev().take_while(|b| is_closer(*b)).count();
    s.get(..s.len() - n).unwrap_or("")
}

/// The kind of a masked token.
fn classify(token: &str) -> Kind {
    let core = trim_closers(trim_openers(token));
    if core.is_empty() {
        // `<*>` itself trims to nothing (`<` and `>` are brackets); so does
        // an empty value (`()`, `""`, `[]`), which is a variable left blank.
        return if token.contains(WILDCARD) || is_empty_value(token) {
            Kind::Var
        } else {
            Kind::Word
        };
    }
    if core == "*" && token.contains(WILDCARD) {
        return Kind::Var;
    }
    if !core.bytes().all(|b| b.is_ascii_alphabetic() || b == b'%') && core != "µs" {
        Kind::Word
    } else if is_unit(core) {
        Kind::Unit
    } else if is_date_word(core) {
        Kind::Date
    } else {
        Kind::Word
    }
}

fn is_empty_value(token: &str) -> bool {
    let token = token.trim_end_matches([',', ';', ':', '.']);
    matches!(token, "()" | "[]" | "{}" | "<>" | "\"\"" | "''" | "``")
}

fn is_unit(word: &str) -> bool {
    matches!(
        word,
        "ns" | "us"
            | "µs"
            | "ms"
            | "s"
            | "sec"
            | "secs"
            | "second"
            | "seconds"
            | "min"
            | "mins"
            | "minute"
            | "minutes"
            | "hr"
            | "hrs"
            | "hour"
            | "hours"
            | "day"
            | "days"
            | "B"
            | "b"
            | "byte"
            | "bytes"
            | "KB"
            | "kB"
            | "kb"
            | "KiB"
            | "MB"
            | "mb"
            | "MiB"
            | "GB"
            | "gb"
            | "GiB"
            | "TB"
            | "TiB"
            | "%"
    )
}

fn is_date_word(word: &str) -> bool {
    matches!(
        word,
        "Mon"
            | "Tue"
            | "Wed"
            | "Thu"
            | "Fri"
            | "Sat"
            | "Sun"
            | "Monday"
            | "Tuesday"
            | "Wednesday"
            | "Thursday"
            | "Friday"
            | "Saturday"
            | "Sunday"
            | "Jan"
            | "Feb"
            | "Mar"
            | "Apr"
            | "May"
            | "Jun"
            | "Jul"
            | "Aug"
            | "Sep"
            | "Oct"
            | "Nov"
            | "Dec"
            | "January"
            | "February"
            | "March"
            | "April"
            | "June"
            | "July"
            | "August"
            | "September"
            | "October"
            | "November"
            | "December"
            | "AM"
            | "PM"
            | "UTC"
            | "GMT"
            | "Z"
            | "CET"
            | "CEST"
            | "EST"
            | "EDT"
            | "CST"
            | "CDT"
            | "MST"
            | "MDT"
            | "PST"
            | "PDT"
    )
}

/// Masks one whitespace-delimited token into `out`; returns its kind.
fn mask_token(raw: &str, out: &mut String) -> Kind {
    // Fast path: most tokens are plain words.
    if !raw
        .bytes()
        .any(|b| b.is_ascii_digit() || matches!(b, b':' | b'@' | b'.' | b'/' | b'\\'))
    {
        out.push_str(raw);
        return classify(raw);
    }
    let start = out.len();
    mask_token_slow(raw, out);
    classify(out.get(start..).unwrap_or(""))
}

fn mask_token_slow(raw: &str, out: &mut String) {
    let rest = trim_openers(raw);
    let core_start = raw.len() - rest.len();
    let core = trim_closers(rest);
    let (prefix, suffix) = (
        raw.get(..core_start).unwrap_or(""),
        rest.get(core.len()..).unwrap_or(""),
    );
    if core.is_empty() || !core.bytes().any(|b| b.is_ascii_digit()) && !might_be_whole(core) {
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
    mask_core(core, start, out);
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
    let mut rest = s;
    let mut seen = false;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(WILDCARD) {
            rest = r;
            seen = true;
        } else if rest.starts_with(is_glue) {
            rest = rest.get(1..).unwrap_or("");
        } else {
            return false;
        }
    }
    seen
}

/// Cheap pre-check: a digit-free token can still be a whole variable
/// (URL, endpoint, e-mail address).
fn might_be_whole(core: &str) -> bool {
    core.bytes()
        .any(|b| matches!(b, b':' | b'@' | b'.' | b'/' | b'\\'))
}

/// Masks the core of a token (brackets and trailing punctuation removed);
/// `start` is where the token's masked text begins in `out`.
fn mask_core(core: &str, start: usize, out: &mut String) {
    // `key=value`: the key names the field and stays; the value is masked
    // on its own, so that `rhost=host-1.example.net` loses the whole host
    // and `path=/api/v1/users/7` keeps `path=`.
    if let Some((key, value)) = core.split_once('=')
        && is_key(key)
        && !value.is_empty()
    {
        mask_segments(key, start, out);
        out.push('=');
        let value_start = out.len();
        let inner = trim_openers(value);
        out.push_str(value.get(..value.len() - inner.len()).unwrap_or(""));
        mask_core(inner, value_start, out);
        return;
    }
    if is_whole_variable(core) {
        out.push_str(WILDCARD);
        return;
    }
    if core.bytes().any(|b| b.is_ascii_digit()) {
        mask_segments(core, start, out);
        // An id made mostly of numbers with short tags between them
        // (`attempt_1445_0020_m_000000_0`) is one variable: its tags vary too.
        let masked = out.get(start..).unwrap_or("");
        let digits = core.bytes().filter(u8::is_ascii_digit).count();
        if masked.matches(WILDCARD).count() >= 2 && digits * 2 >= core.len() {
            out.truncate(start);
            out.push_str(WILDCARD);
        }
    } else {
        out.push_str(core);
    }
}

/// A field name: letters, digits, `_`, `-`, `.`, starting with a letter.
fn is_key(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Whether the whole token is one variable even where parts of it carry no
/// digit: URLs, endpoints, e-mail addresses, paths with numbers.
fn is_whole_variable(core: &str) -> bool {
    let has_digit = core.bytes().any(|b| b.is_ascii_digit());
    if core.as_bytes().windows(3).any(|w| w == b"://") {
        return true;
    }
    if let Some((user, host)) = core.split_once('@')
        && !user.is_empty()
        && host.contains('.')
        && is_hostname(host)
    {
        return true;
    }
    if let Some((host, port)) = core.rsplit_once(':')
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && host.contains('.')
        && is_hostname(host)
    {
        return true;
    }
    if is_absolute_path(core) || has_digit && looks_like_path(core) {
        return true;
    }
    // A dotted name carrying a number: a host (`host-10.example.net`), an
    // address or a numbered file (`core.2275`); or a domain name.
    if core.contains('.') && is_hostname(core) && (has_digit || is_domain_name(core)) {
        return true;
    }
    false
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// A host name by its top-level domain: a generic one (`example.com`), or
/// a two-letter country code under a generic second level
/// (`mail.example.co.uk`, `isp.com.br`), so that `java.lang.String`,
/// `app.py`, `mapred.task.id` or `android.intent.action.MAIN` stay words.
fn is_domain_name(s: &str) -> bool {
    let Some((rest, tld)) = s.rsplit_once('.') else {
        return false;
    };
    if rest.is_empty() || rest.ends_with('.') {
        return false;
    }
    if is_generic_tld(tld) {
        return true;
    }
    let Some((above, second)) = rest.rsplit_once('.') else {
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

/// Separators that glue the parts of one value (`10.0.0.1:80`, `12:30:01`,
/// `2016-09-27`, `a##b`): a placeholder, such separators and another
/// placeholder fold into one.
fn is_glue(c: char) -> bool {
    matches!(
        c,
        '.' | ':' | '-' | '_' | '/' | '#' | ',' | '+' | '@' | '|' | '~'
    )
}

/// Masks the digit-bearing segments (maximal runs of letters, digits and
/// `_`... minus separators) of a token, keeping the other segments and the
/// punctuation between them.
fn mask_segments(core: &str, token_start: usize, out: &mut String) {
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
    let token = out.get(token_start..).unwrap_or("");
    if let Some(unsigned) = token.strip_suffix(['-', '+'])
        && !unsigned.ends_with(char::is_alphanumeric)
    {
        out.truncate(token_start + unsigned.len());
    }
    let token = out.get(token_start..).unwrap_or("");
    let glued = token.trim_end_matches(is_glue);
    if glued.ends_with(WILDCARD) {
        let keep = token_start + glued.len();
        out.truncate(keep);
    } else {
        out.push_str(WILDCARD);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]
mod tests {
    use super::*;

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
