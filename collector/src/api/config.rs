//! The `api:` section of collector.yaml (the HTTP API on 9466), and its
//! validation into [`ApiSettings`].
//!
//! ```yaml
//! api:
//!   tokens:
//!     - { name: grafana, role: read, token_file: /etc/tocsin/tokens/grafana }
//!     - { name: oncall, role: ack, token_file: /etc/tocsin/tokens/oncall }
//!     - { name: ops, role: admin, token: "…" }
//!   query_timeout: 2m
//!   max_concurrent_queries: 20
//!   max_samples: 50000000
//!   lookback_delta: 5m
//!   max_request_bytes: 4194304
//! ```
//!
//! With no tokens the API is open and may listen on loopback only (the
//! listener's address is the binary's; [`super::auth::ApiAuth::check_bind`]
//! tells it). Validation reads token files (relative to the configuration
//! file's directory) and reports every problem at once, naming its field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tocsin_rules::promql::EngineOptions;
use tocsin_rules::validate::parse_duration;

use super::auth::{ApiAuth, Role};
pub use crate::receivers::config::ConfigError;

/// `api:`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Bearer tokens with their roles. None: the API is open and must
    /// listen on a loopback address.
    pub tokens: Vec<ApiTokenConfig>,
    /// Longest a query may run; a request's `timeout` may only shorten it
    /// (Prometheus duration, default `2m`).
    pub query_timeout: String,
    /// Queries evaluated at once; more wait (within their timeout).
    /// Default 20.
    pub max_concurrent_queries: usize,
    /// Most samples one query may hold in memory (default 50000000).
    pub max_samples: usize,
    /// How far back an instant selector looks for a sample (default `5m`).
    pub lookback_delta: String,
    /// Largest form body of a POST request (default 4 MiB).
    pub max_request_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            tokens: Vec::new(),
            query_timeout: "2m".into(),
            max_concurrent_queries: 20,
            max_samples: 50_000_000,
            lookback_delta: "5m".into(),
            max_request_bytes: 4 * 1024 * 1024,
        }
    }
}

/// One `api.tokens[]` entry: exactly one of `token` and `token_file`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenConfig {
    /// Names the caller in logs.
    pub name: String,
    /// `read`, `ack` or `admin`.
    pub role: String,
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token (surrounding whitespace ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for ApiTokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTokenConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// The validated API settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub auth: ApiAuth,
    pub query_timeout: Duration,
    pub max_concurrent_queries: usize,
    pub engine: EngineOptions,
    pub max_request_bytes: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            auth: ApiAuth::default(),
            query_timeout: Duration::from_secs(120),
            max_concurrent_queries: 20,
            engine: EngineOptions::default(),
            max_request_bytes: 4 * 1024 * 1024,
        }
    }
}

impl ApiConfig {
    /// Validates the section found at `field` (e.g. `api`), reading token
    /// files relative to `base_dir`.
    pub fn validate(&self, field: &str, base_dir: &Path) -> Result<ApiSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |f: String, message: String| errors.push(ConfigError { field: f, message });
        let duration = |key: &str, v: &str, err: &mut dyn FnMut(String, String)| -> Duration {
            match parse_duration(v) {
                Ok(d) if d.is_zero() => {
                    err(format!("{field}.{key}"), "must be greater than 0s".into());
                    d
                }
                Ok(d) => d,
                Err(e) => {
                    err(
                        format!("{field}.{key}"),
                        format!("{e} (want a Prometheus duration such as 30s or 2m)"),
                    );
                    Duration::ZERO
                }
            }
        };
        let query_timeout = duration("query_timeout", &self.query_timeout, &mut err);
        let lookback = duration("lookback_delta", &self.lookback_delta, &mut err);
        if self.max_concurrent_queries == 0 {
            err(
                format!("{field}.max_concurrent_queries"),
                "must be at least 1".into(),
            );
        }
        if self.max_samples == 0 {
            err(format!("{field}.max_samples"), "must be at least 1".into());
        }
        if self.max_request_bytes == 0 {
            err(
                format!("{field}.max_request_bytes"),
                "must be at least 1".into(),
            );
        }

        let mut names = HashSet::new();
        let mut secrets = HashSet::new();
        let mut tokens = Vec::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let f = format!("{field}.tokens[{i}]");
            if t.name.trim().is_empty() {
                err(format!("{f}.name"), "must not be empty".into());
            } else if !names.insert(t.name.clone()) {
                err(
                    format!("{f}.name"),
                    format!("{:?} is used by another token", t.name),
                );
            }
            let role = Role::parse(&t.role);
            if role.is_none() {
                err(
                    format!("{f}.role"),
                    format!("unknown role {:?} (want read, ack or admin)", t.role),
                );
            }
            let secret = match (&t.token, &t.token_file) {
                (Some(s), None) => Some(s.trim().to_string()),
                (None, Some(p)) => {
                    let full = if p.is_absolute() {
                        p.clone()
                    } else {
                        base_dir.join(p)
                    };
                    match std::fs::read_to_string(&full) {
                        Ok(s) => Some(s.trim().to_string()),
                        Err(e) => {
                            err(
                                format!("{f}.token_file"),
                                format!("cannot read {}: {e}", p.display()),
                            );
                            None
                        }
                    }
                }
                (Some(_), Some(_)) => {
                    err(f.clone(), "set either token or token_file, not both".into());
                    None
                }
                (None, None) => {
                    err(f.clone(), "needs token or token_file".into());
                    None
                }
            };
            if let Some(s) = &secret {
                if s.is_empty() {
                    err(f.clone(), "the token is empty".into());
                } else if !secrets.insert(s.clone()) {
                    err(f.clone(), "the same token is configured twice".into());
                }
            }
            if let (Some(secret), Some(role)) = (secret, role) {
                tokens.push((t.name.clone(), role, secret));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ApiSettings {
            auth: ApiAuth::new(tokens),
            query_timeout,
            max_concurrent_queries: self.max_concurrent_queries,
            engine: EngineOptions {
                lookback_delta_ms: i64::try_from(lookback.as_millis()).unwrap_or(i64::MAX),
                max_samples: self.max_samples,
                ..EngineOptions::default()
            },
            max_request_bytes: self.max_request_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_and_roles_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("g"), "  from-file\n").unwrap();
        let cfg: ApiConfig = serde_saphyr::from_str(
            "tokens:\n- {name: g, role: read, token_file: g}\n- {name: o, role: admin, token: x}\n",
        )
        .unwrap();
        let s = cfg.validate("api", dir.path()).unwrap();
        assert!(!s.auth.is_open());
        assert_eq!(
            s.auth
                .authorize(Some(b"Bearer from-file"), Role::Read)
                .unwrap()
                .name
                .as_deref(),
            Some("g")
        );
        assert_eq!(s.query_timeout, Duration::from_secs(120));
    }

    #[test]
    fn every_problem_is_reported() {
        let cfg = ApiConfig {
            tokens: vec![
                ApiTokenConfig {
                    name: "a".into(),
                    role: "root".into(),
                    token: Some("t".into()),
                    token_file: None,
                },
                ApiTokenConfig {
                    name: "a".into(),
                    role: "read".into(),
                    token: Some("t".into()),
                    token_file: None,
                },
                ApiTokenConfig {
                    name: "c".into(),
                    role: "read".into(),
                    token: None,
                    token_file: Some("missing".into()),
                },
            ],
            query_timeout: "soon".into(),
            max_concurrent_queries: 0,
            ..ApiConfig::default()
        };
        let errs = cfg.validate("api", Path::new("/nonexistent")).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "api.query_timeout",
                "api.max_concurrent_queries",
                "api.tokens[0].role",
                "api.tokens[1].name",
                "api.tokens[1]",
                "api.tokens[2].token_file",
            ]
        );
        assert!(!format!("{cfg:?}").contains("\"t\""));
    }
}
