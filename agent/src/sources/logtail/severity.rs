//! Severity of a log record: the OTLP severity number (1–24, 0 when unknown)
//! read from a JSON `level`/`severity` field, a syslog `<PRI>`, a level
//! keyword near the start of the line, or, for lines without a level, an
//! error marker (`Traceback`, `panicked at`, …) that classifies them as
//! error. The normalised word follows DESIGN.md's ranges.

use std::sync::LazyLock;

use regex::Regex;

/// The six normalised severity words (plus unknown for 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SeverityWord {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl SeverityWord {
    /// First OTLP number of the word's range (TRACE=1, DEBUG=5, …).
    pub fn lowest_number(self) -> u8 {
        match self {
            SeverityWord::Trace => 1,
            SeverityWord::Debug => 5,
            SeverityWord::Info => 9,
            SeverityWord::Warn => 13,
            SeverityWord::Error => 17,
            SeverityWord::Fatal => 21,
        }
    }
}

/// The `severity` label for an OTLP severity number: trace, debug, info,
/// warn, error, fatal, or unknown for 0 and out-of-range numbers.
pub fn severity_word(number: u8) -> &'static str {
    match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "fatal",
        _ => "unknown",
    }
}

/// What was found: the number and the text it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Severity {
    /// OTLP severity number, 0 when unknown.
    pub number: u8,
    /// The level as written in the line (`WARNING`, `<3>`, `50`), or the
    /// error marker that classified it.
    pub text: Option<String>,
}

/// How far into a line a level keyword is looked for: levels sit next to
/// the timestamp, and a keyword deep in a message ("retrying after error")
/// says nothing about the line.
const KEYWORD_WINDOW: usize = 160;

fn word_number(word: &str) -> Option<u8> {
    // Upper-cased on the stack: no level word is longer than 11 bytes.
    let mut buf = [0u8; 16];
    let upper = buf.get_mut(..word.len())?;
    upper.copy_from_slice(word.as_bytes());
    upper.make_ascii_uppercase();
    Some(match &*upper {
        b"TRACE" | b"TRC" | b"FINEST" | b"FINER" => 1,
        b"DEBUG" | b"DBG" | b"FINE" => 5,
        b"INFO" | b"INF" | b"INFORMATION" => 9,
        b"NOTICE" => 10,
        b"WARN" | b"WARNING" | b"WRN" => 13,
        b"ERROR" | b"ERR" | b"SEVERE" => 17,
        b"CRITICAL" | b"CRIT" => 21,
        b"ALERT" => 22,
        b"FATAL" | b"FTL" | b"EMERG" | b"EMERGENCY" | b"PANIC" => 21,
        _ => return None,
    })
}

static LOGFMT_LEVEL: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(?:level|lvl|severity|loglevel)\s*[=:]\s*"?([A-Za-z]+)"#).ok()
});

/// Upper-case or capitalised level words as whole words; lower-case ones
/// only in brackets (`[error]`), where they cannot be prose.
static KEYWORD: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|CRITICAL|CRIT|FATAL|PANIC|EMERG|ALERT|Trace|Debug|Info|Notice|Warn|Warning|Error|Critical|Fatal)\b|\[(trace|debug|info|notice|warn|warning|error|crit|critical|fatal|emerg|alert)\]",
    )
    .ok()
});

/// The level words of [`KEYWORD`]'s first alternative (whole words, as
/// written) and of its second (in brackets, lower case).
const KEYWORDS_WHOLE: &[&str] = &[
    "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "ERR", "SEVERE", "CRITICAL",
    "CRIT", "FATAL", "PANIC", "EMERG", "ALERT", "Trace", "Debug", "Info", "Notice", "Warn",
    "Warning", "Error", "Critical", "Fatal",
];
const KEYWORDS_BRACKETED: &[&str] = &[
    "trace", "debug", "info", "notice", "warn", "warning", "error", "crit", "critical", "fatal",
    "emerg", "alert",
];

/// [`KEYWORD`]'s leftmost match in an ASCII `window`, found word by word:
/// the regex's prefilter finds candidates fast but confirming each word
/// boundary walks its lazy DFA, a fifth of the agent's CPU when every line
/// ships. In ASCII text a word boundary lies exactly at the ends of the
/// maximal runs of `[A-Za-z0-9_]`, and a bracketed word is such a run
/// between `[` and `]`, so the first run that is a level word is the match.
fn keyword_ascii(window: &str) -> Option<&str> {
    let bytes = window.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word(bytes[i]) {
            i += 1;
        }
        let word = &window[start..i];
        if KEYWORDS_WHOLE.contains(&word) {
            return Some(word);
        }
        if start > 0
            && bytes[start - 1] == b'['
            && bytes.get(i) == Some(&b']')
            && KEYWORDS_BRACKETED.contains(&word)
        {
            return window.get(start - 1..=i);
        }
    }
    None
}

/// glog / klog (`E1126 05:02:54.123456 …`) and Android (`E/Tag:`) single
/// letters: unambiguous only at the very start of the line.
static SHORT_FORM: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^(?:([DIWEF])\d{4} \d\d:\d\d:\d\d|([VDIWEF])/[\w.$-]+(?:\(\s*\d+\))?:)").ok()
});

/// Markers of an error in a line that names no level.
const ERROR_MARKERS: &[&str] = &[
    "Traceback (most recent call last)",
    "panicked at",
    "Exception",
    "Out of memory",
    "out of memory",
    "OutOfMemoryError",
    "segfault",
    "Segmentation fault",
    "core dumped",
    "FATAL",
    "stack overflow",
    "Unhandled",
];

/// Classifies one record (its first line decides the level; markers are
/// looked for in the whole text).
pub fn detect(text: &str) -> Severity {
    let first = text.lines().next().unwrap_or("");
    if let Some(s) = from_json(first) {
        return s;
    }
    if let Some(s) = from_syslog(first) {
        return s;
    }
    if let Some(s) = from_keywords(first) {
        return s;
    }
    for marker in ERROR_MARKERS {
        if text.contains(marker) {
            return Severity {
                number: SeverityWord::Error.lowest_number(),
                text: Some((*marker).to_string()),
            };
        }
    }
    Severity {
        number: 0,
        text: None,
    }
}

/// The level fields of a JSON log line; everything else is skipped
/// without being built.
#[derive(serde::Deserialize)]
struct JsonLevels {
    level: Option<JsonLevel>,
    severity: Option<JsonLevel>,
    lvl: Option<JsonLevel>,
    #[serde(rename = "log.level")]
    log_level: Option<JsonLevel>,
    levelname: Option<JsonLevel>,
    loglevel: Option<JsonLevel>,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum JsonLevel {
    Text(String),
    Number(u64),
    Other(serde::de::IgnoredAny),
}

fn from_json(line: &str) -> Option<Severity> {
    let trimmed = line.trim_start();
    if !trimmed.starts_with('{') {
        return None;
    }
    let levels: JsonLevels = serde_json::from_str(trimmed).ok()?;
    let fields = [
        levels.level,
        levels.severity,
        levels.lvl,
        levels.log_level,
        levels.levelname,
        levels.loglevel,
    ];
    for field in fields.into_iter().flatten() {
        match field {
            JsonLevel::Text(s) => {
                if let Some(number) = word_number(s.trim()) {
                    return Some(Severity {
                        number,
                        text: Some(s),
                    });
                }
            }
            // bunyan / pino numeric levels.
            JsonLevel::Number(n) => {
                let number = match n {
                    0..=10 => 1,
                    11..=20 => 5,
                    21..=30 => 9,
                    31..=40 => 13,
                    41..=50 => 17,
                    _ => 21,
                };
                return Some(Severity {
                    number,
                    text: Some(n.to_string()),
                });
            }
            JsonLevel::Other(_) => {}
        }
    }
    None
}

fn from_syslog(line: &str) -> Option<Severity> {
    let rest = line.strip_prefix('<')?;
    let close = rest.find('>')?;
    if close == 0 || close > 3 {
        return None;
    }
    let pri: u16 = rest[..close].parse().ok()?;
    if pri > 191 {
        return None;
    }
    let number = match pri & 7 {
        0 => 23, // emerg
        1 => 22, // alert
        2 => 21, // crit
        3 => 17, // err
        4 => 13, // warning
        5 => 10, // notice
        6 => 9,  // info
        _ => 5,  // debug
    };
    Some(Severity {
        number,
        text: Some(format!("<{pri}>")),
    })
}

/// Could [`LOGFMT_LEVEL`] match `window`? Its key words folded to ASCII
/// lower case are searched first: a case-insensitive regex over four words
/// has too many literal variants for the regex crate's prefilter, and
/// walking every byte of every line is a tenth of the agent's CPU. Under
/// Unicode case folding `ſ` matches `s`, so a window with any non-ASCII
/// byte goes to the regex unfiltered.
fn may_hold_logfmt_level(window: &str) -> bool {
    if !window.is_ascii() {
        return true;
    }
    let mut lower = [0u8; KEYWORD_WINDOW];
    let lower = &mut lower[..window.len()];
    lower.copy_from_slice(window.as_bytes());
    lower.make_ascii_lowercase();
    LOGFMT_KEYS.iter().any(|f| f.find(lower).is_some())
}

/// The searchers of [`may_hold_logfmt_level`], built once (`loglevel`
/// holds `level`).
static LOGFMT_KEYS: LazyLock<[memchr::memmem::Finder<'static>; 3]> = LazyLock::new(|| {
    ["level", "lvl", "severity"].map(|w| memchr::memmem::Finder::new(w.as_bytes()))
});

fn from_keywords(line: &str) -> Option<Severity> {
    let mut end = line.len().min(KEYWORD_WINDOW);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let window = &line[..end];
    // Captures are costly and this runs on every line: the short forms
    // need a level letter first, and the other two patterns are found
    // without captures and cut by hand.
    let short = matches!(
        window.as_bytes(),
        [
            b'V' | b'D' | b'I' | b'W' | b'E' | b'F',
            b'0'..=b'9' | b'/',
            ..
        ]
    );
    if short && let Some(caps) = SHORT_FORM.as_ref().and_then(|re| re.captures(window)) {
        let letter = caps
            .get(1)
            .or_else(|| caps.get(2))
            .map_or("", |m| m.as_str());
        let number = match letter {
            "V" => 1,
            "D" => 5,
            "I" => 9,
            "W" => 13,
            "E" => 17,
            _ => 21,
        };
        return Some(Severity {
            number,
            text: Some(letter.to_string()),
        });
    }
    if may_hold_logfmt_level(window)
        && let Some(m) = LOGFMT_LEVEL.as_ref().and_then(|re| re.find(window))
    {
        // The match ends with the level word: `level=error`, `lvl: "warn`.
        let text = m.as_str();
        let start = text
            .rfind(|c: char| !c.is_ascii_alphabetic())
            .map_or(0, |i| i + 1);
        let word = &text[start..];
        if let Some(number) = word_number(word) {
            return Some(Severity {
                number,
                text: Some(word.to_string()),
            });
        }
    }
    let found = if window.is_ascii() {
        keyword_ascii(window)?
    } else {
        KEYWORD.as_ref()?.find(window)?.as_str()
    };
    let word = found.trim_start_matches('[').trim_end_matches(']');
    Some(Severity {
        number: word_number(word)?,
        text: Some(word.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(line: &str) -> u8 {
        detect(line).number
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The key-word check before the logfmt regex only rules out lines
        /// the regex would not match.
        #[test]
        fn the_logfmt_prefilter_never_hides_a_level(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "level", "LEVEL", "Lvl", "lvL", "severity", "SEVERITY", "ſeverity", "loglevel",
                "LogLevel", "=", ":", " = ", "\"", " ", "error", "warn", "x", "_", "é", "\u{212A}",
                "2024-01-01T00:00:00Z",
            ]), 0..10)
        ) {
            let window = parts.concat();
            let mut end = window.len().min(KEYWORD_WINDOW);
            while !window.is_char_boundary(end) {
                end -= 1;
            }
            let window = &window[..end];
            let matched = LOGFMT_LEVEL.as_ref().and_then(|re| re.find(window)).is_some();
            proptest::prop_assert!(!matched || may_hold_logfmt_level(window), "{:?}", window);
        }
    }

    /// Every level word as written, in brackets, upper-, lower- and
    /// title-cased,
    /// with a plural, and the separators around them.
    fn keyword_fragments() -> Vec<String> {
        let mut parts: Vec<String> = Vec::new();
        for w in KEYWORDS_WHOLE.iter().chain(KEYWORDS_BRACKETED) {
            parts.push(w.to_string());
            parts.push(format!("[{w}]"));
            parts.push(w.to_ascii_lowercase());
            parts.push(w.to_ascii_uppercase());
            let (first, rest) = w.split_at(1);
            parts.push(first.to_ascii_uppercase() + &rest.to_ascii_lowercase());
            parts.push(format!("{w}S"));
        }
        for sep in [
            "[",
            "]",
            "_",
            "-",
            " ",
            "  ",
            ":",
            "2",
            "x",
            ".",
            "=",
            "2024-01-01T00:00:00Z",
        ] {
            parts.push(sep.to_string());
        }
        parts
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        /// The word-by-word keyword scan finds what the regex finds.
        #[test]
        fn the_ascii_keyword_scan_matches_the_regex(
            parts in proptest::collection::vec(proptest::sample::select(keyword_fragments()), 0..12)
        ) {
            let window = parts.concat();
            let by_regex = KEYWORD.as_ref().and_then(|re| re.find(&window)).map(|m| m.as_str());
            proptest::prop_assert_eq!(keyword_ascii(&window), by_regex, "{:?}", window);
        }
    }

    #[test]
    fn words_follow_design_ranges() {
        let words: Vec<&str> = [0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25]
            .iter()
            .map(|&n| severity_word(n))
            .collect();
        assert_eq!(
            words,
            [
                "unknown", "trace", "trace", "debug", "debug", "info", "info", "warn", "warn",
                "error", "error", "fatal", "fatal", "unknown"
            ]
        );
    }

    #[test]
    fn keywords() {
        assert_eq!(
            number("2024-01-01T00:00:00Z ERROR db: connection refused"),
            17
        );
        assert_eq!(number("2024-01-01 12:00:00,123 WARNING low disk"), 13);
        assert_eq!(number("[2024-01-01] WARN x"), 13);
        assert_eq!(number("INFO retrying after ERROR"), 9);
        assert_eq!(number("2024 [error] nginx upstream timed out"), 17);
        assert_eq!(number("FATAL: the database system is shutting down"), 21);
        assert_eq!(number("CRITICAL disk full"), 21);
        assert_eq!(number("DEBUG cache miss"), 5);
        assert_eq!(number("TRACE enter"), 1);
        assert_eq!(number("ts=1 level=error msg=boom"), 17);
        assert_eq!(number("ts=1 level=info msg=\"an error\""), 9);
        // Lower-case prose is not a level.
        assert_eq!(number("user entered an error code"), 0);
        assert_eq!(
            detect("E1126 05:02:54.123456  1234 main.go:10] boom").number,
            17
        );
        assert_eq!(detect("W/ActivityManager( 123): slow").number, 13);
        assert_eq!(detect("I/Tag: hello").number, 9);
        // A sentence starting with a capital E is not glog.
        assert_eq!(number("Everything fine"), 0);
    }

    #[test]
    fn json_levels() {
        assert_eq!(number(r#"{"level":"error","msg":"x"}"#), 17);
        assert_eq!(number(r#"{"severity":"WARNING","msg":"x"}"#), 13);
        assert_eq!(number(r#"{"level":50,"msg":"pino"}"#), 17);
        assert_eq!(number(r#"{"level":30,"msg":"pino"}"#), 9);
        assert_eq!(
            detect(r#"{"levelname":"CRITICAL"}"#).text.as_deref(),
            Some("CRITICAL")
        );
        assert_eq!(number(r#"{"log.level":"warn","level":{"x":1}}"#), 13);
        // Not JSON after all: the keywords decide.
        assert_eq!(number(r#"{broken ERROR"#), 17);
    }

    #[test]
    fn syslog_priority() {
        assert_eq!(number("<3>Nov 26 05:00:00 host app: x"), 17);
        assert_eq!(number("<11>x"), 17); // user.err
        assert_eq!(number("<12>x"), 13);
        assert_eq!(number("<14>x"), 9);
        assert_eq!(number("<0>x"), 23);
        assert_eq!(number("<999>x"), 0);
    }

    #[test]
    fn error_markers_classify_levelless_lines() {
        for line in [
            "Traceback (most recent call last):\n  File \"x.py\", line 1",
            "thread 'main' panicked at src/main.rs:2:5:",
            "java.lang.IllegalStateException: bad",
            "kernel: app[123]: segfault at 0 ip 0",
            "Out of memory: Killed process 1234",
        ] {
            let s = detect(line);
            assert_eq!(s.number, 17, "{line}");
            assert!(s.text.is_some());
        }
        assert_eq!(number("all good"), 0);
    }

    #[test]
    fn level_wins_over_marker() {
        assert_eq!(number("INFO handled Exception gracefully"), 9);
    }
}
