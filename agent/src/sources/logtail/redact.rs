//! Redaction of credentials in a record's text before it leaves the host:
//! a built-in set (passwords and tokens in key=value and JSON, credentials
//! in URLs, bearer and basic authorization, AWS access key ids and secret
//! keys) plus configured regexes. Every secret becomes `***`; the key or
//! scheme around it stays, so the line still reads.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Replacement for a secret.
pub const MASK: &str = "***";

/// A built-in rule: the regex, which group holds the secret (0 = all), and
/// words of which an ASCII line's lower-case copy holds at least one
/// whenever the regex can match it.
struct Rule {
    re: Regex,
    group: usize,
    needs: Vec<memchr::memmem::Finder<'static>>,
}

/// The key words of the key=value rule, as [`Rule::needs`] lists them
/// (`pass` stands for password and passwd).
const KEY_WORDS: &[&str] = &[
    "pass",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "accesskey",
    "access_key",
    "access-key",
    "privatekey",
    "private_key",
    "private-key",
    "credential",
];

const AWS_KEY_PREFIXES: &[&str] = &["akia", "asia", "agpa", "aida", "aroa"];

static BUILTIN: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rules: [(&str, usize, &'static [&'static str]); 6] = [
        // key=value, key: value, "key": "value", with keys such as
        // db_password, secret_key, X-Api-Key, access_token.
        (
            r#"(?i)([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)[\w.-]*["']?\s*[=:]\s*["']?)([^\s"'&,;}\]]+)"#,
            2,
            KEY_WORDS,
        ),
        // scheme://user:password@host
        (
            r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)([^/\s@]+)@",
            2,
            &["://"],
        ),
        // Authorization: Bearer xyz / Basic xyz, and bare "bearer xyz".
        (
            r"(?i)\b(?:bearer|basic)\s+([A-Za-z0-9\-._~+/]+=*)",
            1,
            &["bearer", "basic"],
        ),
        // AWS access key ids.
        (
            r"\b((?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16})\b",
            1,
            AWS_KEY_PREFIXES,
        ),
        // AWS secret access keys written after their usual names.
        (
            r#"(?i)(aws_?secret_?(?:access_?)?key["']?\s*[=:]\s*["']?)([A-Za-z0-9/+=]{40})"#,
            2,
            &["secret"],
        ),
        // A lone 40-character base64 string next to an access key id is
        // the classic pasted pair; masked only in that company.
        (
            r"AKIA[0-9A-Z]{16}[\s,:;]+([A-Za-z0-9/+=]{40})\b",
            1,
            &["akia"],
        ),
    ];
    rules
        .into_iter()
        .filter_map(|(re, group, needs)| {
            Regex::new(re).ok().map(|re| Rule {
                re,
                group,
                needs: needs
                    .iter()
                    .map(|w| memchr::memmem::Finder::new(w.as_bytes()))
                    .collect(),
            })
        })
        .collect()
});

/// Every rule's [`Rule::needs`] as one alternation: one literal search over
/// the line's ASCII lower-case copy rules out most lines before any rule
/// runs. Searched case-sensitively because a case-insensitive set of this
/// many words defeats the regex crate's literal prefilter (the lazy DFA
/// then walks every byte of every line: a fifth of the agent's CPU when
/// every line ships).
static TRIGGER: LazyLock<Option<regex::bytes::Regex>> = LazyLock::new(|| {
    let mut words: Vec<String> = BUILTIN
        .iter()
        .flat_map(|r| {
            r.needs
                .iter()
                .map(|f| regex::escape(&String::from_utf8_lossy(f.needle())))
        })
        .collect();
    words.sort();
    words.dedup();
    regex::bytes::Regex::new(&words.join("|")).ok()
});

thread_local! {
    /// The lower-case copy of the line being checked, reused.
    static LOWER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Which built-in rules could match `text` (bit i for rule i).
fn triggered(text: &str) -> u64 {
    let all = (1u64 << BUILTIN.len()) - 1;
    // The rules fold case by Unicode's rules (`(?i)`), under which a few
    // non-ASCII letters match ASCII ones (the Kelvin sign matches `k`), so
    // a line with any non-ASCII byte goes to every rule unfiltered.
    let Some(trigger) = TRIGGER.as_ref().filter(|_| text.is_ascii()) else {
        return all;
    };
    LOWER.with(|lower| {
        let mut lower = lower.borrow_mut();
        lower.clear();
        lower.extend(text.bytes().map(|b| b.to_ascii_lowercase()));
        if !trigger.is_match(&lower) {
            return 0;
        }
        // Rare from here on: a word-by-word check per rule spares running
        // the rules whose words are absent.
        BUILTIN
            .iter()
            .enumerate()
            .filter(|(_, r)| r.needs.iter().any(|f| f.find(&lower).is_some()))
            .fold(0, |bits, (i, _)| bits | 1 << i)
    })
}

/// Applies the built-in rules and the configured ones.
#[derive(Debug, Clone)]
pub struct Redactor {
    extra: Vec<Regex>,
}

impl Redactor {
    /// `extra` regexes mask their first capture group, or the whole match
    /// when they have none.
    pub fn new(extra: Vec<Regex>) -> Self {
        Redactor { extra }
    }

    /// Masks every secret in `text`; returns the new text and how many
    /// secrets were masked.
    pub fn redact<'a>(&self, text: &'a str) -> (Cow<'a, str>, u64) {
        let mut count = 0;
        let mut out = Cow::Borrowed(text);
        let triggered = triggered(text);
        for (i, rule) in BUILTIN.iter().enumerate() {
            if triggered & (1 << i) != 0 {
                out = mask(out, &rule.re, rule.group, &mut count);
            }
        }
        for re in &self.extra {
            let group = usize::from(re.captures_len() > 1);
            out = mask(out, re, group, &mut count);
        }
        (out, count)
    }
}

fn mask<'a>(text: Cow<'a, str>, re: &Regex, group: usize, count: &mut u64) -> Cow<'a, str> {
    // replace_all borrows when nothing matched: no is_match pass first.
    let replaced = match re.replace_all(&text, |caps: &Captures<'_>| {
        let Some(whole) = caps.get(0) else {
            return String::new();
        };
        let Some(secret) = caps.get(group) else {
            return whole.as_str().to_string();
        };
        if secret.as_str() == MASK {
            return whole.as_str().to_string();
        }
        *count += 1;
        let s = whole.as_str();
        let (from, to) = (secret.start() - whole.start(), secret.end() - whole.start());
        format!("{}{MASK}{}", &s[..from], &s[to..])
    }) {
        Cow::Owned(replaced) => Some(replaced),
        Cow::Borrowed(_) => None,
    };
    match replaced {
        Some(replaced) => Cow::Owned(replaced),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> (String, u64) {
        let (out, n) = Redactor::new(Vec::new()).redact(text);
        (out.into_owned(), n)
    }

    #[test]
    fn key_value_and_json() {
        assert_eq!(
            redact("login user=bob password=hunter2 ok").0,
            "login user=bob password=*** ok"
        );
        assert_eq!(redact("db_passwd: s3cr3t").0, "db_passwd: ***");
        assert_eq!(
            redact(r#"{"user":"bob","password":"hunter2","n":1}"#).0,
            r#"{"user":"bob","password":"***","n":1}"#
        );
        assert_eq!(redact("api_key=abc123&x=1").0, "api_key=***&x=1");
        assert_eq!(redact("client_secret='xyz'").0, "client_secret='***'");
    }

    #[test]
    fn urls_bearer_and_aws() {
        assert_eq!(
            redact("connecting to postgres://app:pa55@db:5432/x").0,
            "connecting to postgres://app:***@db:5432/x"
        );
        assert_eq!(
            redact("Authorization: Bearer eyJhbGciOi.J9x-y_z").0,
            "Authorization: Bearer ***"
        );
        assert_eq!(redact("got bearer abc.def").0, "got bearer ***");
        assert_eq!(redact("key AKIAIOSFODNN7EXAMPLE used").0, "key *** used");
        assert_eq!(
            redact("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY").0,
            "aws_secret_access_key = ***"
        );
    }

    #[test]
    fn password_and_token_in_one_line_are_both_counted() {
        let (out, n) =
            redact("ERROR auth failed password=hunter2 header Authorization: Bearer abc.def");
        assert!(
            !out.contains("hunter2") && !out.contains("abc.def"),
            "{out}"
        );
        assert_eq!(n, 2);
    }

    #[test]
    fn the_trigger_ignores_case_and_lets_non_ascii_lines_through() {
        assert_eq!(triggered("PASSWORD=x"), 1);
        assert_eq!(triggered("Authorization: BEARER abc"), 1 << 2);
        assert_eq!(triggered("id akiaiosfodnn7example"), 1 << 3 | 1 << 5);
        assert_eq!(triggered("ERROR connection refused to db:5432"), 0);
        assert_eq!(triggered("cache miss key=session:1 for user=bob"), 0);
        // U+212A KELVIN SIGN folds to k under (?i).
        assert_eq!(triggered("api_\u{212A}ey=abc"), (1 << BUILTIN.len()) - 1);
        assert_eq!(redact("api_\u{212A}ey=abc").0, "api_\u{212A}ey=***");
    }

    /// Every built-in rule applied to every line, in order: what the
    /// triggers must never change.
    fn redact_unfiltered(text: &str) -> (String, u64) {
        let mut count = 0;
        let mut out = Cow::Borrowed(text);
        for rule in BUILTIN.iter() {
            out = mask(out, &rule.re, rule.group, &mut count);
        }
        (out.into_owned(), count)
    }

    fn fragment() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        // Every rule's words as listed and title-cased, then spellings and
        // pieces around them.
        let mut pieces: Vec<String> = Vec::new();
        for rule in BUILTIN.iter() {
            for f in &rule.needs {
                let w = String::from_utf8_lossy(f.needle()).into_owned();
                let (first, rest) = w.split_at(1);
                pieces.push(first.to_ascii_uppercase() + rest);
                pieces.push(w);
            }
        }
        pieces.extend(
            [
                "password",
                "PassWd",
                "pwd",
                "db_secret",
                "Token",
                "api-key",
                "APIKEY",
                "api_key",
                "access_key",
                "Private-Key",
                "credentials",
                "key",
                "aws_secret_access_key",
                "AWS_SECRET_KEY",
                "bearer",
                "Basic",
                "Authorization:",
                "https://",
                "postgres://u:",
                "@db",
                "AKIAIOSFODNN7EXAMPLE",
                "ASIAABCDEFGHIJKLMNOP",
                "akiaiosfodnn7example",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "=",
                ":",
                " = ",
                "\"",
                "'",
                ",",
                " ",
                "  ",
                "user",
                "value",
                "x1",
                "\u{212A}",
                "é",
                "ſ",
                "{",
                "}",
            ]
            .iter()
            .map(|p| p.to_string()),
        );
        let words = prop::sample::select(pieces);
        proptest::collection::vec(words, 0..12).prop_map(|w| w.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The triggers only skip rules that could not have matched.
        #[test]
        fn triggers_never_change_what_is_masked(line in fragment()) {
            let (out, n) = Redactor::new(Vec::new()).redact(&line);
            proptest::prop_assert_eq!((out.into_owned(), n), redact_unfiltered(&line));
        }
    }

    #[test]
    fn clean_lines_are_untouched_and_borrowed() {
        let r = Redactor::new(Vec::new());
        let (out, n) = r.redact("ERROR connection refused to db:5432");
        assert!(matches!(out, Cow::Borrowed(_)));
        assert_eq!(n, 0);
    }

    #[test]
    fn configured_patterns_mask_group_or_match() {
        let r = Redactor::new(vec![
            Regex::new(r"card=(\d+)").unwrap(),
            Regex::new(r"\b\d{3}-\d{2}-\d{4}\b").unwrap(),
        ]);
        let (out, n) = r.redact("card=4111111111111111 ssn 123-45-6789");
        assert_eq!(out, "card=*** ssn ***");
        assert_eq!(n, 2);
    }
}
