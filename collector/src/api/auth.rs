//! Bearer tokens with roles for the HTTP API: `read` (queries, rules,
//! alerts, logs), `ack` (read, and acknowledging incidents) and `admin`
//! (everything, including `/-/reload`). Each role includes the ones
//! before it.
//!
//! Invariants: with no token configured the API is open, and the binary
//! must then listen on a loopback address only ([`ApiAuth::check_bind`]);
//! otherwise every protected request needs `Authorization: Bearer <token>`
//! matching a configured token, compared in constant time against every
//! token. A missing or unknown token is 401, a known token whose role is
//! too low is 403. Secrets never appear in logs or `Debug` output.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::response::{ApiError, ErrorType};

/// What a token may do; a higher role includes the lower ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Read,
    Ack,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Ack => "ack",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read" => Some(Role::Read),
            "ack" => Some(Role::Ack),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who made a request: the token's name and role, or nobody (open API).
/// Handlers find it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: Option<String>,
    pub role: Role,
}

struct Entry {
    name: String,
    role: Role,
    secret: Vec<u8>,
}

/// The configured API tokens.
#[derive(Clone, Default)]
pub struct ApiAuth {
    entries: Arc<Vec<Entry>>,
}

impl fmt::Debug for ApiAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.entries
                    .iter()
                    .map(|e| format!("{} ({})", e.name, e.role.as_str())),
            )
            .finish()
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ApiAuth {
    /// Tokens from `(name, role, secret)`.
    pub fn new(entries: impl IntoIterator<Item = (String, Role, String)>) -> Self {
        ApiAuth {
            entries: Arc::new(
                entries
                    .into_iter()
                    .map(|(name, role, secret)| Entry {
                        name,
                        role,
                        secret: secret.into_bytes(),
                    })
                    .collect(),
            ),
        }
    }

    /// No token configured: every request is allowed.
    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    /// Refuses a non-loopback listen address when the API is open.
    pub fn check_bind(&self, addr: SocketAddr) -> Result<(), String> {
        if self.is_open() && !addr.ip().is_loopback() {
            return Err(format!(
                "no API tokens are configured, so the API may listen only on a loopback address (127.0.0.1 or ::1), not {addr}; configure tokens to serve other hosts"
            ));
        }
        Ok(())
    }

    /// Authenticates an `Authorization` header value and checks that its
    /// role allows `need`.
    pub fn authorize(&self, header: Option<&[u8]>, need: Role) -> Result<Principal, ApiError> {
        if self.is_open() {
            return Ok(Principal {
                name: None,
                role: Role::Admin,
            });
        }
        let unauthorized = |m: &str| ApiError::new(ErrorType::Unauthorized, m);
        let header = header.ok_or_else(|| unauthorized("missing bearer token"))?;
        let token = header
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| header[7..].trim_ascii())
            .ok_or_else(|| {
                unauthorized("malformed Authorization header (want \"Bearer <token>\")")
            })?;
        // Compare with every token so the time taken does not say which.
        let mut found: Option<&Entry> = None;
        for e in self.entries.iter() {
            if ct_eq(&e.secret, token) && found.is_none() {
                found = Some(e);
            }
        }
        let e = found.ok_or_else(|| unauthorized("unknown bearer token"))?;
        if e.role < need {
            return Err(ApiError::new(
                ErrorType::Forbidden,
                format!(
                    "token {:?} has role {}; this endpoint needs {}",
                    e.name,
                    e.role.as_str(),
                    need.as_str()
                ),
            ));
        }
        Ok(Principal {
            name: Some(e.name.clone()),
            role: e.role,
        })
    }
}

/// The middleware that enforces `need` on a group of routes.
pub async fn require(
    State((auth, need)): State<(ApiAuth, Role)>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    match auth.authorize(header.as_deref(), need) {
        Ok(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        Err(e) => {
            tracing::debug!(error = %e.message, path = %req.uri().path(), "API request refused");
            e.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> ApiAuth {
        ApiAuth::new([
            ("grafana".to_string(), Role::Read, "r-secret".to_string()),
            ("ops".to_string(), Role::Admin, "a-secret".to_string()),
        ])
    }

    #[test]
    fn roles_include_lower_ones() {
        let a = auth();
        assert_eq!(
            a.authorize(Some(b"Bearer a-secret"), Role::Read)
                .unwrap()
                .name
                .as_deref(),
            Some("ops")
        );
        assert_eq!(
            a.authorize(Some(b"bearer r-secret"), Role::Read)
                .unwrap()
                .role,
            Role::Read
        );
        let e = a
            .authorize(Some(b"Bearer r-secret"), Role::Admin)
            .unwrap_err();
        assert_eq!(e.kind, ErrorType::Forbidden);
        assert!(!e.message.contains("r-secret"));
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_unauthorized() {
        let a = auth();
        for h in [None, Some(&b"Basic eDp5"[..]), Some(&b"Bearer nope"[..])] {
            assert_eq!(
                a.authorize(h, Role::Read).unwrap_err().kind,
                ErrorType::Unauthorized
            );
        }
        assert!(!format!("{a:?}").contains("secret"));
    }

    #[test]
    fn an_open_api_binds_only_to_loopback() {
        let open = ApiAuth::default();
        assert!(open.authorize(None, Role::Admin).is_ok());
        assert!(open.check_bind("127.0.0.1:9466".parse().unwrap()).is_ok());
        assert!(open.check_bind("[::1]:9466".parse().unwrap()).is_ok());
        assert!(open.check_bind("0.0.0.0:9466".parse().unwrap()).is_err());
        assert!(auth().check_bind("0.0.0.0:9466".parse().unwrap()).is_ok());
    }
}
