//! The `receivers:` section of collector.yaml, and its validation into
//! [`OtlpSettings`], a value that cannot hold an invalid state.
//!
//! ```yaml
//! receivers:
//!   otlp:
//!     grpc: { listen: "0.0.0.0:4317" }          # null disables it
//!     http:
//!       listen: "0.0.0.0:4318"
//!       tls: { cert_file: server.pem, key_file: server.key, client_ca_file: agents-ca.pem }
//!     tokens:
//!       - { name: web-1, token_file: /etc/tocsin/tokens/web-1 }
//!       - { name: db-1, token: "…" }
//!     max_request_bytes: 8388608
//!     max_series_per_agent: 50000
//!     max_future: 10m
//! ```
//!
//! Validation reads the token and certificate files (relative paths are
//! taken from the configuration file's directory) and reports every
//! problem at once, each naming its field.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::auth::Tokens;
use super::ingest::IngestOptions;
use super::tls::TlsSettings;
use crate::translate::logs::LogsOptions;
use crate::translate::metrics::MetricsOptions;

/// `receivers:`
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiversConfig {
    /// The OTLP receivers.
    pub otlp: OtlpReceiversConfig,
}

/// `receivers.otlp:`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiversConfig {
    /// OTLP/gRPC listener (default `0.0.0.0:4317`); `null` disables it.
    pub grpc: Option<ListenerConfig>,
    /// OTLP/HTTP listener (default `0.0.0.0:4318`); `null` disables it.
    pub http: Option<ListenerConfig>,
    /// Bearer tokens, one per agent or group of senders. None configured:
    /// every request is accepted.
    pub tokens: Vec<TokenConfig>,
    /// Largest request body, compressed and decompressed (default 8 MiB).
    pub max_request_bytes: u64,
    /// Exports read and stored at once, both transports together; more
    /// wait briefly, then are refused as overloaded (default 32).
    pub max_concurrent_requests: usize,
    /// Distinct series one sender may create (default 50000).
    pub max_series_per_agent: usize,
    /// Senders tracked for the series limit and clock skew (default 10000).
    pub max_agents: usize,
    /// Samples and records stamped further ahead of arrival are refused
    /// (Prometheus duration, default `10m`).
    pub max_future: String,
    /// Longest label name or value; longer points are refused (default
    /// 2048).
    pub max_label_value_bytes: usize,
    /// Most labels per series, name included (default 64).
    pub max_labels_per_series: usize,
    /// Delta series converted to cumulative at most (default 100000).
    pub max_delta_series: usize,
}

impl Default for OtlpReceiversConfig {
    fn default() -> Self {
        let m = MetricsOptions::default();
        let i = IngestOptions::default();
        OtlpReceiversConfig {
            grpc: Some(ListenerConfig {
                listen: "0.0.0.0:4317".to_string(),
                tls: None,
            }),
            http: Some(ListenerConfig {
                listen: "0.0.0.0:4318".to_string(),
                tls: None,
            }),
            tokens: Vec::new(),
            max_request_bytes: 8 * 1024 * 1024,
            max_concurrent_requests: 32,
            max_series_per_agent: i.max_series_per_agent,
            max_agents: i.max_agents,
            max_future: "10m".to_string(),
            max_label_value_bytes: m.max_label_value_bytes,
            max_labels_per_series: m.max_labels,
            max_delta_series: m.max_delta_series,
        }
    }
}

/// One listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `host:port` to listen on.
    pub listen: String,
    /// Serve TLS with this certificate.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// TLS for a listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA: when set, clients must present a certificate it signed
    /// (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

/// One bearer token: exactly one of `token` and `token_file`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Names the sender in logs and in the per-agent series limit.
    pub name: String,
    #[serde(default)]
    pub token: Option<String>,
    /// A file holding the token (surrounding whitespace ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// A validated listener.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub addr: SocketAddr,
    pub tls: Option<TlsSettings>,
}

/// The validated receivers configuration.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    pub grpc: Option<ListenerSettings>,
    pub http: Option<ListenerSettings>,
    pub tokens: Tokens,
    pub max_request_bytes: usize,
    pub max_concurrent_requests: usize,
    /// How long a request waits for an export slot (not configurable in
    /// YAML; tests shorten it).
    pub export_slot_wait: std::time::Duration,
    pub ingest: IngestOptions,
}

/// One configuration problem, naming its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl OtlpReceiversConfig {
    /// Validates the section found at `field` (e.g. `receivers.otlp`),
    /// resolving relative paths against `base_dir`.
    pub fn validate(&self, field: &str, base_dir: &Path) -> Result<OtlpSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |f: String, message: String| {
            errors.push(ConfigError { field: f, message });
        };

        let mut listener = |name: &str, l: &Option<ListenerConfig>| -> Option<ListenerSettings> {
            let l = l.as_ref()?;
            let addr = match l.listen.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    err(
                        format!("{field}.{name}.listen"),
                        format!(
                            "{:?} is not a socket address (want host:port, e.g. 0.0.0.0:4317 or [::]:4317)",
                            l.listen
                        ),
                    );
                    None
                }
            };
            let tls = match &l.tls {
                None => None,
                Some(t) => {
                    let f = format!("{field}.{name}.tls");
                    let mut read = |key: &str, p: &Path| match std::fs::read(resolve(base_dir, p)) {
                        Ok(b) => Some(b),
                        Err(e) => {
                            err(
                                format!("{f}.{key}"),
                                format!("cannot read {}: {e}", p.display()),
                            );
                            None
                        }
                    };
                    let cert = read("cert_file", &t.cert_file);
                    let key = read("key_file", &t.key_file);
                    let ca = t.client_ca_file.as_ref().map(|p| read("client_ca_file", p));
                    match (cert, key, ca) {
                        (Some(cert), Some(key), None) => Some((cert, key, None)),
                        (Some(cert), Some(key), Some(Some(ca))) => Some((cert, key, Some(ca))),
                        _ => None,
                    }
                    .and_then(|(c, k, ca)| match TlsSettings::new(c, k, ca) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            err(f.clone(), e.to_string());
                            None
                        }
                    })
                }
            };
            let failed_tls = l.tls.is_some() && tls.is_none();
            match addr {
                Some(addr) if !failed_tls => Some(ListenerSettings { addr, tls }),
                _ => None,
            }
        };
        let grpc = listener("grpc", &self.grpc);
        let http = listener("http", &self.http);

        let mut names = HashSet::new();
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
            let secret = match (&t.token, &t.token_file) {
                (Some(s), None) => Some(s.clone()),
                (None, Some(p)) => match std::fs::read_to_string(resolve(base_dir, p)) {
                    Ok(s) => Some(s.trim().to_string()),
                    Err(e) => {
                        err(
                            format!("{f}.token_file"),
                            format!("cannot read {}: {e}", p.display()),
                        );
                        None
                    }
                },
                _ => {
                    err(f.clone(), "set exactly one of token and token_file".into());
                    None
                }
            };
            match secret {
                Some(s) if s.is_empty() => err(f.clone(), "the token is empty".into()),
                Some(s) if s.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                    err(
                        f.clone(),
                        "the token contains whitespace or control characters".into(),
                    );
                }
                Some(s) => tokens.push((t.name.clone(), s)),
                None => {}
            }
        }

        let max_future_ms = match tocsin_rules::validate::parse_duration(&self.max_future) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => {
                err(
                    format!("{field}.max_future"),
                    format!("{:?}: {e} (want a duration such as 10m)", self.max_future),
                );
                0
            }
        };
        let mut positive = |name: &str, v: u64| {
            if v == 0 {
                err(format!("{field}.{name}"), "must be greater than 0".into());
            }
        };
        positive("max_request_bytes", self.max_request_bytes);
        positive(
            "max_concurrent_requests",
            self.max_concurrent_requests as u64,
        );
        positive("max_series_per_agent", self.max_series_per_agent as u64);
        positive("max_agents", self.max_agents as u64);
        positive("max_label_value_bytes", self.max_label_value_bytes as u64);
        positive("max_labels_per_series", self.max_labels_per_series as u64);
        positive("max_delta_series", self.max_delta_series as u64);
        let max_request_bytes = match usize::try_from(self.max_request_bytes) {
            Ok(v) => v,
            Err(_) => {
                err(
                    format!("{field}.max_request_bytes"),
                    "too large for this platform".into(),
                );
                0
            }
        };

        if !errors.is_empty() {
            return Err(errors);
        }
        let defaults = IngestOptions::default();
        Ok(OtlpSettings {
            grpc,
            http,
            tokens: Tokens::new(tokens),
            max_request_bytes,
            max_concurrent_requests: self.max_concurrent_requests,
            export_slot_wait: super::EXPORT_SLOT_WAIT,
            ingest: IngestOptions {
                metrics: MetricsOptions {
                    max_future_ms,
                    max_label_value_bytes: self.max_label_value_bytes,
                    max_labels: self.max_labels_per_series,
                    max_delta_series: self.max_delta_series,
                    ..defaults.metrics
                },
                logs: LogsOptions {
                    max_future_ms,
                    max_label_value_bytes: self.max_label_value_bytes,
                },
                max_series_per_agent: self.max_series_per_agent,
                max_agents: self.max_agents,
                ..defaults
            },
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ReceiversConfig, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_listen_on_the_standard_ports() {
        let c = parse("otlp: {}").unwrap();
        let s = c.otlp.validate("receivers.otlp", Path::new(".")).unwrap();
        assert_eq!(s.grpc.unwrap().addr.port(), 4317);
        assert_eq!(s.http.unwrap().addr.port(), 4318);
        assert!(s.tokens.is_open());
        assert_eq!(s.ingest.metrics.max_future_ms, 600_000);
        assert_eq!(s.max_request_bytes, 8 * 1024 * 1024);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(parse("otlp: { grpc: { listen: '1.2.3.4:1', port: 3 } }").is_err());
        assert!(parse("otlp: { max_futur: 1m }").is_err());
    }

    #[test]
    fn a_listener_can_be_disabled() {
        let c = parse("otlp: { grpc: null }").unwrap();
        let s = c.otlp.validate("receivers.otlp", Path::new(".")).unwrap();
        assert!(s.grpc.is_none());
        assert!(s.http.is_some());
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "  from-file\n").unwrap();
        let c = parse(
            r#"
otlp:
  grpc: { listen: "nonsense" }
  http: { listen: "127.0.0.1:0", tls: { cert_file: missing.pem, key_file: missing.key } }
  tokens:
    - { name: a, token: x }
    - { name: a, token_file: tok }
    - { name: b }
  max_future: 10 minutes
  max_series_per_agent: 0
"#,
        )
        .unwrap();
        let errs = c.otlp.validate("receivers.otlp", dir.path()).unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "receivers.otlp.grpc.listen",
                "receivers.otlp.http.tls.cert_file",
                "receivers.otlp.http.tls.key_file",
                "receivers.otlp.tokens[1].name",
                "receivers.otlp.tokens[2]",
                "receivers.otlp.max_future",
                "receivers.otlp.max_series_per_agent",
            ],
            "{errs:?}"
        );
    }

    #[test]
    fn tokens_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "  from-file\n").unwrap();
        let c = parse("otlp: { tokens: [ { name: a, token_file: tok } ] }").unwrap();
        let s = c.otlp.validate("receivers.otlp", dir.path()).unwrap();
        assert_eq!(
            s.tokens.check(Some(b"Bearer from-file")).unwrap(),
            Some("a")
        );
    }
}
