//! Bearer tokens for the receivers: one per agent (or group of senders),
//! each with a name that identifies the sender in logs and in the
//! per-agent series limit.
//!
//! Invariants: with no token configured every request is accepted (the
//! receivers warn at start); otherwise a request needs
//! `Authorization: Bearer <token>` matching one configured token, compared
//! in constant time against every token so the timing does not reveal
//! which prefix matched.

use std::fmt;

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("malformed Authorization header (want \"Bearer <token>\")")]
    Malformed,
    #[error("unknown bearer token")]
    Unknown,
}

/// The configured tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, Vec<u8>)>,
}

impl fmt::Debug for Tokens {
    // Never print the secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(n, _)| n))
            .finish()
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    /// Tokens from `(name, secret)` pairs.
    pub fn new(entries: impl IntoIterator<Item = (String, String)>) -> Tokens {
        Tokens {
            entries: entries
                .into_iter()
                .map(|(n, t)| (n, t.into_bytes()))
                .collect(),
        }
    }

    /// True when no token is configured: everything is accepted.
    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks an `Authorization` header value; returns the token's name,
    /// or `None` when open.
    pub fn check(&self, header: Option<&[u8]>) -> Result<Option<&str>, AuthError> {
        if self.is_open() {
            return Ok(None);
        }
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| header[7..].trim_ascii())
            .ok_or(AuthError::Malformed)?;
        let mut found = None;
        for (name, secret) in &self.entries {
            if ct_eq(secret, token) && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found.map(Some).ok_or(AuthError::Unknown)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_sender() {
        let t = Tokens::new([
            ("web-1".to_string(), "s3cret".to_string()),
            ("web-2".to_string(), "other".to_string()),
        ]);
        assert_eq!(t.check(Some(b"Bearer s3cret")).unwrap(), Some("web-1"));
        assert_eq!(t.check(Some(b"bearer other")).unwrap(), Some("web-2"));
        assert_eq!(t.check(Some(b"Bearer s3cre")), Err(AuthError::Unknown));
        assert_eq!(t.check(Some(b"Basic s3cret")), Err(AuthError::Malformed));
        assert_eq!(t.check(Some(b"Bear")), Err(AuthError::Malformed));
        assert_eq!(t.check(None), Err(AuthError::Missing));
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn no_tokens_means_open() {
        let t = Tokens::default();
        assert!(t.is_open());
        assert_eq!(t.check(None).unwrap(), None);
    }
}
