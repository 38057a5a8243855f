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

/// A built-in rule: the regex and which group holds the secret (0 = all).
struct Rule {
    re: Regex,
    group: usize,
}

static BUILTIN: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    let rules: [(&str, usize); 6] = [
        // key=value, key: value, "key": "value", with keys such as
        // db_password, secret_key, X-Api-Key, access_token.
        (
            r#"(?i)([\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)[\w.-]*["']?\s*[=:]\s*["']?)([^\s"'&,;}\]]+)"#,
            2,
        ),
        // scheme://user:password@host
        (r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)([^/\s@]+)@", 2),
        // Authorization: Bearer xyz / Basic xyz, and bare "bearer xyz".
        (r"(?i)\b(?:bearer|basic)\s+([A-Za-z0-9\-._~+/]+=*)", 1),
        // AWS access key ids.
        (r"\b((?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16})\b", 1),
        // AWS secret access keys written after their usual names.
        (
            r#"(?i)(aws_?secret_?(?:access_?)?key["']?\s*[=:]\s*["']?)([A-Za-z0-9/+=]{40})"#,
            2,
        ),
        // A lone 40-character base64 string next to an access key id is
        // the classic pasted pair; masked only in that company.
        (r"AKIA[0-9A-Z]{16}[\s,:;]+([A-Za-z0-9/+=]{40})\b", 1),
    ];
    rules
        .into_iter()
        .filter_map(|(re, group)| Regex::new(re).ok().map(|re| Rule { re, group }))
        .collect()
});

/// Words without which no built-in rule can match, in lower case: one
/// literal search over the line's ASCII lower-case copy rules out most
/// lines before any rule runs. Searched case-sensitively because a
/// case-insensitive set of this many words defeats the regex crate's
/// literal prefilter (the lazy DFA then walks every byte of every line:
/// a fifth of the agent's CPU when every line ships).
static TRIGGER: LazyLock<Option<regex::bytes::Regex>> = LazyLock::new(|| {
    regex::bytes::Regex::new(
        r"pass|pwd|secret|token|key|credential|://|bearer|basic|akia|asia|agpa|aida|aroa",
    )
    .ok()
});

thread_local! {
    /// The lower-case copy of the line being checked, reused.
    static LOWER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Could a built-in rule match `text`?
fn triggered(text: &str) -> bool {
    // The rules fold case by Unicode's rules (`(?i)`), under which a few
    // non-ASCII letters match ASCII ones (the Kelvin sign matches `k`), so
    // a line with any non-ASCII byte goes to the rules unfiltered.
    let Some(trigger) = TRIGGER.as_ref().filter(|_| text.is_ascii()) else {
        return true;
    };
    LOWER.with(|lower| {
        let mut lower = lower.borrow_mut();
        lower.clear();
        lower.extend(text.bytes().map(|b| b.to_ascii_lowercase()));
        trigger.is_match(&lower)
    })
}

/// All built-in rules at once: most lines hold no secret, and one pass of a
/// set tells so faster than one pass per rule.
static BUILTIN_SET: LazyLock<Option<regex::RegexSet>> =
    LazyLock::new(|| regex::RegexSet::new(BUILTIN.iter().map(|r| r.re.as_str())).ok());

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
        let matched = BUILTIN_SET
            .as_ref()
            .filter(|_| triggered)
            .map(|set| set.matches(text));
        for (i, rule) in BUILTIN.iter().enumerate().filter(|_| triggered) {
            if matched.as_ref().is_some_and(|m| !m.matched(i)) {
                continue;
            }
            out = mask(out, &rule.re, rule.group, &mut count);
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
        assert!(triggered("PASSWORD=x"));
        assert!(triggered("Authorization: BEARER abc"));
        assert!(triggered("id akiaiosfodnn7example"));
        assert!(!triggered("ERROR connection refused to db:5432"));
        // U+212A KELVIN SIGN folds to k under (?i).
        assert!(triggered("api_\u{212A}ey=abc"));
        assert_eq!(redact("api_\u{212A}ey=abc").0, "api_\u{212A}ey=***");
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
