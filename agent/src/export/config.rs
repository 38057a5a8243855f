//! The `collector:` and `spool:` sections of the agent's configuration, as
//! serde reads them ([`CollectorConfig`], [`SpoolConfig`]), and their
//! validation into what the exporter runs with ([`Export`]): a transport
//! configuration whose token and PEM files have been read and checked, and
//! exporter options within their bounds.
//!
//! Invariants: validation reports every problem at once, each naming its
//! field and what would be valid; secrets (the token) never appear in a
//! message or in `Debug` output; files are read once, here, so a missing CA
//! is a configuration error rather than a failure at the first connection.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{BackoffPolicy, ClientTls, ExporterOptions, Protocol, TransportConfig};
use crate::sources::logtail::{ConfigProblem, parse_duration};
use crate::spool::{DEFAULT_MAX_BYTES, SpoolOptions};

/// Smallest spool accepted: room for a few segments.
pub const MIN_SPOOL_MIB: u64 = 1;

/// `collector:`: where and how the agent sends its data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// `http://host:4317` (gRPC) or `http://host:4318` (HTTP); `https://`
    /// needs `tls`.
    pub endpoint: String,
    /// `grpc` (default) or `http` (OTLP/HTTP with protobuf bodies).
    #[serde(default)]
    pub protocol: ProtocolConfig,
    /// Bearer token sent with every request. Prefer `token_file`.
    #[serde(default)]
    pub token: Option<String>,
    /// File holding the bearer token (surrounding whitespace ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Compress request bodies with gzip (default true).
    #[serde(default = "default_true")]
    pub gzip: bool,
    /// Timeout of one request, connection included (default `10s`).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Batches held in memory before new ones go to the spool (default 64).
    #[serde(default)]
    pub memory_batches: Option<usize>,
    /// Requests sent before the first is answered (default 4, 1..=64).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// First delay between retries while the collector is away (default
    /// `500ms`); it doubles, with jitter, up to `retry_max`.
    #[serde(default)]
    pub retry_initial: Option<String>,
    /// Longest delay between retries (default `30s`).
    #[serde(default)]
    pub retry_max: Option<String>,
}

/// OTLP transport, as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolConfig {
    #[default]
    Grpc,
    Http,
}

/// `collector.tls`: PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificates that sign the collector's certificate. Required for
    /// gRPC; for HTTP the system's roots are used without it.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (chain), for mutual TLS; needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Name expected in the collector's certificate, when not the
    /// endpoint's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// `spool:`: the on-disk queue for batches the collector has not taken.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Bound on the spool's size on disk in MiB (default 256). When full,
    /// the oldest metrics are dropped first, logs only when no metrics are
    /// left; every drop is counted and logged.
    #[serde(default)]
    pub max_mib: Option<u64>,
    /// fsync every spooled batch (default true): a spooled batch survives a
    /// power loss.
    #[serde(default = "default_true")]
    pub fsync: bool,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_mib: None,
            fsync: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// The validated export settings.
#[derive(Debug, Clone)]
pub struct Export {
    pub transport: TransportConfig,
    pub options: ExporterOptions,
}

/// Validates `collector` (at field path `field`) and `spool`, appending
/// every problem to `problems`; returns the settings only when there was
/// none. Relative file paths are resolved against `base` (the directory of
/// the configuration file).
pub fn validate(
    collector: &CollectorConfig,
    spool: &SpoolConfig,
    base: &Path,
    problems: &mut Vec<ConfigProblem>,
) -> Option<Export> {
    let before = problems.len();
    let mut problem = |field: &str, message: String| {
        problems.push(ConfigProblem {
            field: field.to_string(),
            message,
        })
    };
    let endpoint = collector.endpoint.trim().trim_end_matches('/').to_string();
    let https = endpoint.starts_with("https://");
    if !https && !endpoint.starts_with("http://") {
        problem(
            "collector.endpoint",
            format!(
                "{endpoint:?} must start with http:// or https://, such as http://collector:4317"
            ),
        );
    }
    if https && collector.tls.is_none() {
        problem(
            "collector.tls",
            "an https:// endpoint needs tls settings (at least ca_file for gRPC)".into(),
        );
    }
    if !https && collector.tls.is_some() {
        problem(
            "collector.endpoint",
            "tls is set but the endpoint is http://; write https://".into(),
        );
    }
    let read = |field: &str, path: &Path, problem: &mut dyn FnMut(&str, String)| {
        let full = base.join(path);
        std::fs::read(&full)
            .map_err(|e| problem(field, format!("cannot read {}: {e}", full.display())))
            .ok()
    };
    let token = match (&collector.token, &collector.token_file) {
        (Some(_), Some(_)) => {
            problem(
                "collector.token_file",
                "set either token or token_file, not both".into(),
            );
            None
        }
        (Some(t), None) => Some(t.trim().to_string()),
        (None, Some(path)) => read("collector.token_file", path, &mut problem)
            .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string()),
        (None, None) => None,
    };
    if let Some(t) = &token {
        if t.is_empty() {
            problem("collector.token", "the token is empty".into());
        } else if !t.bytes().all(|b| b.is_ascii_graphic()) {
            // The message must not show the token.
            problem(
                "collector.token",
                "the token may hold only visible ASCII characters".into(),
            );
        }
    }
    let protocol = match collector.protocol {
        ProtocolConfig::Grpc => Protocol::Grpc,
        ProtocolConfig::Http => Protocol::Http,
    };
    let tls = collector.tls.as_ref().map(|t| {
        let ca_pem = t
            .ca_file
            .as_ref()
            .and_then(|p| read("collector.tls.ca_file", p, &mut problem));
        if protocol == Protocol::Grpc && t.ca_file.is_none() {
            problem(
                "collector.tls.ca_file",
                "gRPC over TLS needs the CA that signs the collector's certificate".into(),
            );
        }
        let identity = match (&t.cert_file, &t.key_file) {
            (Some(c), Some(k)) => {
                let cert = read("collector.tls.cert_file", c, &mut problem);
                let key = read("collector.tls.key_file", k, &mut problem);
                cert.zip(key)
            }
            (Some(_), None) => {
                problem(
                    "collector.tls.key_file",
                    "cert_file needs key_file (the client certificate's private key)".into(),
                );
                None
            }
            (None, Some(_)) => {
                problem(
                    "collector.tls.cert_file",
                    "key_file needs cert_file (the client certificate)".into(),
                );
                None
            }
            (None, None) => None,
        };
        ClientTls {
            ca_pem,
            identity,
            server_name: t.server_name.clone(),
        }
    });
    let mut duration = |field: &str, text: &Option<String>, default: Duration| match text {
        None => default,
        Some(text) => match parse_duration(text) {
            Some(d) if !d.is_zero() => d,
            _ => {
                problem(
                    field,
                    format!(
                        "invalid duration {text:?}: write a whole number above 0 followed by ms, s, m or h, such as 2s"
                    ),
                );
                default
            }
        },
    };
    let timeout = duration(
        "collector.timeout",
        &collector.timeout,
        Duration::from_secs(10),
    );
    let defaults = BackoffPolicy::default();
    let initial = duration(
        "collector.retry_initial",
        &collector.retry_initial,
        defaults.initial,
    );
    let max = duration("collector.retry_max", &collector.retry_max, defaults.max);
    if initial > max {
        problem(
            "collector.retry_initial",
            format!("{initial:?} is longer than retry_max ({max:?})"),
        );
    }
    let memory_batches = collector.memory_batches.unwrap_or(64);
    if !(1..=10_000).contains(&memory_batches) {
        problem(
            "collector.memory_batches",
            format!("{memory_batches} is outside 1..=10000"),
        );
    }
    let max_in_flight = collector
        .max_in_flight
        .unwrap_or(ExporterOptions::default().max_in_flight);
    if !(1..=64).contains(&max_in_flight) {
        problem(
            "collector.max_in_flight",
            format!("{max_in_flight} is outside 1..=64"),
        );
    }
    let max_bytes = match spool.max_mib {
        None => DEFAULT_MAX_BYTES,
        Some(mib) if (MIN_SPOOL_MIB..=1 << 20).contains(&mib) => mib << 20,
        Some(mib) => {
            problem(
                "spool.max_mib",
                format!("{mib} is outside {MIN_SPOOL_MIB}..=1048576 (MiB)"),
            );
            DEFAULT_MAX_BYTES
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(Export {
        transport: TransportConfig {
            protocol,
            endpoint,
            token,
            tls,
            gzip: collector.gzip,
            timeout,
        },
        options: ExporterOptions {
            memory_batches,
            memory_bytes: ExporterOptions::default().memory_bytes,
            max_in_flight,
            spool: SpoolOptions {
                max_bytes,
                fsync: spool.fsync,
            },
            backoff: BackoffPolicy { initial, max },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> CollectorConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn problems(c: &CollectorConfig, s: &SpoolConfig, base: &Path) -> Vec<String> {
        let mut p = Vec::new();
        assert!(validate(c, s, base, &mut p).is_none());
        p.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_and_a_token_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "  s3cret\n").unwrap();
        let c = parse("endpoint: http://collector:4317/\ntoken_file: token\n");
        let mut p = Vec::new();
        let e = validate(&c, &SpoolConfig::default(), dir.path(), &mut p).unwrap();
        assert!(p.is_empty());
        assert_eq!(e.transport.endpoint, "http://collector:4317");
        assert_eq!(e.transport.protocol, Protocol::Grpc);
        assert_eq!(e.transport.token.as_deref(), Some("s3cret"));
        assert!(e.transport.gzip);
        assert_eq!(e.transport.timeout, Duration::from_secs(10));
        assert_eq!(e.options.spool.max_bytes, 256 << 20);
        assert!(e.options.spool.fsync);
        assert_eq!(e.options.memory_batches, 64);
        assert_eq!(e.options.max_in_flight, 4);
        assert!(!format!("{e:?}").contains("s3cret"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = parse(
            "endpoint: https://collector:4317\n\
             token: abc\n\
             token_file: /nonexistent\n\
             timeout: 10 parsecs\n\
             memory_batches: 0\n\
             max_in_flight: 65\n\
             tls:\n  cert_file: client.pem\n",
        );
        let s: SpoolConfig = serde_saphyr::from_str("max_mib: 0\n").unwrap();
        let p = problems(&c, &s, dir.path());
        let fields: Vec<&str> = p.iter().map(|m| m.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            vec![
                "collector.token_file",
                "collector.tls.ca_file",
                "collector.tls.key_file",
                "collector.timeout",
                "collector.memory_batches",
                "collector.max_in_flight",
                "spool.max_mib",
            ],
            "{p:#?}"
        );
    }

    #[test]
    fn unknown_keys_are_errors() {
        let r: Result<CollectorConfig, _> =
            serde_saphyr::from_str("endpoint: http://x:4317\nendpiont: y\n");
        assert!(r.is_err());
    }

    #[test]
    fn missing_pem_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let c = parse("endpoint: https://x:4318\nprotocol: http\ntls:\n  ca_file: ca.pem\n");
        let p = problems(&c, &SpoolConfig::default(), dir.path());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("collector.tls.ca_file: cannot read"));
        assert!(p[0].contains(&dir.path().join("ca.pem").display().to_string()));
    }

    #[test]
    fn a_token_with_control_characters_is_refused_without_showing_it() {
        let c = parse("endpoint: http://x:4317\ntoken: \"ab\\u0007cd\"\n");
        let p = problems(&c, &SpoolConfig::default(), Path::new("/"));
        assert_eq!(p.len(), 1);
        assert!(!p[0].contains("ab"), "{p:?}");
    }
}
