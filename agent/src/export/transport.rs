//! Sends one encoded OTLP request to the collector over gRPC (tonic) or
//! HTTP (reqwest, protobuf body, optional gzip), with a bearer token and
//! TLS, and says what became of it: accepted (with the OTLP partial-success
//! count of rejected items) or an error that [`SendError::class`] sorts
//! into retryable, throttled, unauthorized or permanent. The sorting uses
//! gRPC codes and HTTP statuses as the OTLP specification lists them, never
//! the text of a message.
//!
//! Invariants: payloads are sent as they were encoded (spooled bytes are
//! the bytes sent, so timestamps are the original ones; over gRPC too, the
//! call is framed by hand around them, never decoded again); every
//! request has a timeout; a response body is read up to a bound.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tonic::codegen::Bytes;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::spool::Signal;

/// Largest response body read from the collector.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    Http,
}

/// TLS towards the collector, from PEM files read by the configuration.
#[derive(Clone, Default)]
pub struct ClientTls {
    /// CA certificates that sign the collector's certificate. Required for
    /// gRPC; for HTTP, the platform's roots are used when absent.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain and key, for mutual TLS.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Name to verify in the collector's certificate, when it differs from
    /// the endpoint's host.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// Where and how to send.
#[derive(Clone)]
pub struct TransportConfig {
    pub protocol: Protocol,
    /// `http://host:4317` or `https://…` (gRPC), `http://host:4318` (HTTP);
    /// the HTTP paths `/v1/logs` and `/v1/metrics` are appended.
    pub endpoint: String,
    pub token: Option<String>,
    /// Required when the endpoint is `https://`.
    pub tls: Option<ClientTls>,
    pub gzip: bool,
    pub timeout: Duration,
}

impl std::fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportConfig")
            .field("protocol", &self.protocol)
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .field("gzip", &self.gzip)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A request the collector took. `rejected` items were refused by it for
/// good (OTLP partial success: the client must not retry them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accepted {
    pub rejected: u64,
    pub message: String,
}

/// How the exporter should react to a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The collector is away or overloaded: keep the batch, retry with backoff.
    Retryable,
    /// The collector asked us to slow down, maybe saying for how long.
    Throttled(Option<Duration>),
    /// The token or certificate was refused: keep the batch (it is fine),
    /// say so loudly, retry slowly; an operator has to fix the credentials.
    Unauthorized,
    /// The endpoint is not an OTLP receiver for this signal (no such path
    /// or method, a redirect, an unsupported content type): a
    /// configuration mistake, not the data's fault. Like `Unauthorized`:
    /// keep the batch, say so loudly, retry slowly.
    Misrouted,
    /// The collector will never take this batch: drop it, counted.
    Permanent,
}

/// Failures of building a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("invalid collector endpoint {endpoint:?}: {message}")]
    Endpoint { endpoint: String, message: String },
    #[error("TLS towards {endpoint}: {message}")]
    Tls { endpoint: String, message: String },
    #[error("the bearer token is not a valid header value")]
    Token,
}

/// Failures of one send.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot reach the collector at {endpoint} for {signal}: {message}")]
    Unreachable {
        endpoint: String,
        signal: &'static str,
        message: String,
    },
    #[error("collector at {endpoint} refused {signal} with gRPC status {code:?}: {message}")]
    Grpc {
        endpoint: String,
        signal: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("collector at {endpoint} refused {signal} with HTTP {status}: {message}")]
    Http {
        endpoint: String,
        signal: &'static str,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
}

impl SendError {
    /// The reaction this failure calls for (OTLP specification, "Failures").
    pub fn class(&self) -> ErrorClass {
        match self {
            SendError::Unreachable { .. } => ErrorClass::Retryable,
            SendError::Grpc { code, .. } => {
                use tonic::Code;
                match code {
                    Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::Aborted
                    | Code::OutOfRange
                    | Code::Unavailable
                    | Code::DataLoss
                    // The collector's WAL failing is its problem, not the data's.
                    | Code::Internal
                    | Code::Unknown => ErrorClass::Retryable,
                    Code::ResourceExhausted => ErrorClass::Throttled(None),
                    Code::Unauthenticated | Code::PermissionDenied => ErrorClass::Unauthorized,
                    Code::Unimplemented | Code::NotFound => ErrorClass::Misrouted,
                    _ => ErrorClass::Permanent,
                }
            }
            SendError::Http {
                status,
                retry_after,
                ..
            } => match status {
                429 => ErrorClass::Throttled(*retry_after),
                503 => match retry_after {
                    Some(_) => ErrorClass::Throttled(*retry_after),
                    None => ErrorClass::Retryable,
                },
                401 | 403 => ErrorClass::Unauthorized,
                300..=399 | 404 | 405 | 415 => ErrorClass::Misrouted,
                408 | 500 | 502 | 504 => ErrorClass::Retryable,
                s if *s >= 500 && *s != 501 && *s != 505 => ErrorClass::Retryable,
                _ => ErrorClass::Permanent,
            },
        }
    }
}

/// A connected (lazily) client for one collector.
#[derive(Debug, Clone)]
pub struct Transport {
    endpoint: String,
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Grpc {
        channel: Channel,
        auth: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        gzip: bool,
    },
    Http {
        client: reqwest::Client,
        auth: Option<reqwest::header::HeaderValue>,
        gzip: bool,
    },
}

impl Transport {
    /// Builds the client; nothing is connected until the first send.
    pub fn new(config: &TransportConfig) -> Result<Transport, TransportError> {
        let endpoint = config.endpoint.trim_end_matches('/').to_string();
        let bad = |message: String| TransportError::Endpoint {
            endpoint: endpoint.clone(),
            message,
        };
        let tls_error = |message: String| TransportError::Tls {
            endpoint: endpoint.clone(),
            message,
        };
        let https = endpoint.starts_with("https://");
        if !https && !endpoint.starts_with("http://") {
            return Err(bad("must start with http:// or https://".into()));
        }
        if https && config.tls.is_none() {
            return Err(tls_error(
                "an https:// endpoint needs the tls settings".into(),
            ));
        }
        let token = config.token.as_deref().map(|t| format!("Bearer {t}"));
        let inner = match config.protocol {
            Protocol::Grpc => {
                let mut ep = Endpoint::from_shared(endpoint.clone())
                    .map_err(|e| bad(e.to_string()))?
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout);
                if let (true, Some(tls)) = (https, &config.tls) {
                    let Some(ca) = &tls.ca_pem else {
                        return Err(tls_error(
                            "gRPC over TLS needs ca_file (the CA that signs the collector's certificate)"
                                .into(),
                        ));
                    };
                    let mut t = ClientTlsConfig::new()
                        .ca_certificate(tonic::transport::Certificate::from_pem(ca));
                    if let Some((cert, key)) = &tls.identity {
                        t = t.identity(tonic::transport::Identity::from_pem(cert, key));
                    }
                    if let Some(name) = &tls.server_name {
                        t = t.domain_name(name.clone());
                    }
                    ep = ep.tls_config(t).map_err(|e| tls_error(e.to_string()))?;
                }
                let auth = token
                    .map(|t| t.parse().map_err(|_| TransportError::Token))
                    .transpose()?;
                Inner::Grpc {
                    channel: ep.connect_lazy(),
                    auth,
                    gzip: config.gzip,
                }
            }
            Protocol::Http => {
                // reqwest is built without a default crypto provider; the
                // agent uses ring everywhere, like the collector. Installing
                // fails only when one is installed already, which is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                // A redirect would turn the POST into a GET elsewhere: an
                // OTLP endpoint that redirects is misconfigured, and the
                // 3xx is reported as such (the data is kept).
                let mut builder = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout);
                if let Some(tls) = &config.tls {
                    if let Some(ca) = &tls.ca_pem {
                        let certs = reqwest::Certificate::from_pem_bundle(ca)
                            .map_err(|e| tls_error(format!("CA certificate: {e}")))?;
                        builder = builder.tls_certs_only(certs);
                    }
                    if let Some((cert, key)) = &tls.identity {
                        let mut pem = cert.clone();
                        pem.push(b'\n');
                        pem.extend_from_slice(key);
                        let id = reqwest::Identity::from_pem(&pem)
                            .map_err(|e| tls_error(format!("client certificate: {e}")))?;
                        builder = builder.identity(id);
                    }
                }
                let client = builder.build().map_err(|e| tls_error(e.to_string()))?;
                let auth = token
                    .map(|t| {
                        let mut v = reqwest::header::HeaderValue::from_str(&t)
                            .map_err(|_| TransportError::Token)?;
                        v.set_sensitive(true);
                        Ok(v)
                    })
                    .transpose()?;
                Inner::Http {
                    client,
                    auth,
                    gzip: config.gzip,
                }
            }
        };
        Ok(Transport { endpoint, inner })
    }

    /// The collector's endpoint, for logs.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one encoded request of `signal`.
    #[tracing::instrument(name = "otlp_export", skip_all, fields(signal = ?signal, bytes = payload.len()))]
    pub async fn send(&self, signal: Signal, payload: &[u8]) -> Result<Accepted, SendError> {
        match &self.inner {
            Inner::Grpc {
                channel,
                auth,
                gzip,
            } => {
                self.send_grpc(channel, auth.as_ref(), *gzip, signal, payload)
                    .await
            }
            Inner::Http { client, auth, gzip } => {
                self.send_http(client, auth.as_ref(), *gzip, signal, payload)
                    .await
            }
        }
    }

    /// One unary gRPC call made by hand on the channel: tonic compresses
    /// only at gzip level 6, which cost the agent a quarter of its CPU at
    /// 1,000 lines/s and capped its throughput near 40 MiB/s; level 1
    /// (what the HTTP path sends) is about three times cheaper for a body
    /// a third larger. The framing is gRPC's: a compressed flag, a 4-byte
    /// length, the message; the status comes from the trailers (or the
    /// headers of a trailers-only answer).
    async fn send_grpc(
        &self,
        channel: &Channel,
        auth: Option<&tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
        gzip: bool,
        signal: Signal,
        payload: &[u8],
    ) -> Result<Accepted, SendError> {
        use http_body_util::BodyExt;
        use tonic::codegen::Service;
        use tonic::codegen::http::{self, header};
        let unreachable = |message: String| SendError::Unreachable {
            endpoint: self.endpoint.clone(),
            signal: signal.name(),
            message,
        };
        let path = match signal {
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        };
        let compressed;
        let message = if gzip {
            compressed = gzip_bytes(payload);
            compressed.as_slice()
        } else {
            payload
        };
        let mut frame = Vec::with_capacity(message.len() + 5);
        frame.push(u8::from(gzip));
        frame.extend_from_slice(
            &u32::try_from(message.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        frame.extend_from_slice(message);
        let mut req = http::Request::builder()
            .method(http::Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers");
        if gzip {
            req = req.header("grpc-encoding", "gzip");
        }
        if let Some(auth) = auth {
            req = req.header(header::AUTHORIZATION, auth.as_encoded_bytes());
        }
        let body = tonic::body::Body::new(http_body_util::Full::new(Bytes::from(frame)));
        let req = req.body(body).map_err(|e| unreachable(e.to_string()))?;
        let mut channel = channel.clone();
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let resp = channel
            .call(req)
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let (parts, body) = resp.into_parts();
        let status_error = |status: tonic::Status| self.grpc_error(signal, status);
        if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
            // A trailers-only answer: no message follows.
            if status.code() != tonic::Code::Ok {
                return Err(status_error(status));
            }
        } else if parts.status != http::StatusCode::OK {
            return Err(status_error(tonic::Status::new(
                http_status_code(parts.status.as_u16()),
                format!("HTTP {} without a gRPC status", parts.status),
            )));
        }
        let collected = http_body_util::Limited::new(body, MAX_RESPONSE_BYTES + 5)
            .collect()
            .await
            .map_err(|e| unreachable(error_chain(&*e)))?;
        let status = collected
            .trailers()
            .and_then(tonic::Status::from_header_map)
            .or_else(|| tonic::Status::from_header_map(&parts.headers));
        match status {
            Some(status) if status.code() == tonic::Code::Ok => {}
            Some(status) => return Err(status_error(status)),
            None => {
                return Err(status_error(tonic::Status::unknown(
                    "the answer carries no grpc-status",
                )));
            }
        }
        // An answer the agent cannot read might hold a partial-success
        // rejection: it is an error (Internal, as gRPC clients report
        // undecodable answers: retried, the collector drops the repeat),
        // never silent success.
        let encoding = parts
            .headers
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok());
        grpc_answer(signal, &collected.to_bytes(), encoding).map_err(|why| {
            status_error(tonic::Status::internal(format!(
                "cannot read the collector's answer: {why}"
            )))
        })
    }

    fn grpc_error(&self, signal: Signal, status: tonic::Status) -> SendError {
        // A status made by the client itself (connection refused, TLS
        // failure) arrives as Unavailable with the transport error as source.
        let from_transport = std::error::Error::source(&status).is_some()
            && status.code() == tonic::Code::Unavailable;
        if from_transport {
            let mut message = status.message().to_string();
            let mut source = std::error::Error::source(&status);
            while let Some(s) = source {
                message = format!("{message}: {s}");
                source = s.source();
            }
            return SendError::Unreachable {
                endpoint: self.endpoint.clone(),
                signal: signal.name(),
                message,
            };
        }
        SendError::Grpc {
            endpoint: self.endpoint.clone(),
            signal: signal.name(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }

    async fn send_http(
        &self,
        client: &reqwest::Client,
        auth: Option<&reqwest::header::HeaderValue>,
        gzip: bool,
        signal: Signal,
        payload: &[u8],
    ) -> Result<Accepted, SendError> {
        use reqwest::header;
        let path = match signal {
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        };
        let url = format!("{}{path}", self.endpoint);
        let mut req = client
            .post(&url)
            .header(header::CONTENT_TYPE, "application/x-protobuf");
        if let Some(auth) = auth {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        let body = if gzip {
            req = req.header(header::CONTENT_ENCODING, "gzip");
            gzip_bytes(payload)
        } else {
            payload.to_vec()
        };
        let unreachable = |e: reqwest::Error| SendError::Unreachable {
            endpoint: self.endpoint.clone(),
            signal: signal.name(),
            message: error_chain(&e),
        };
        let mut resp = req.body(body).send().await.map_err(unreachable)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(unreachable)? {
            let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room <= chunk.len() {
                break;
            }
        }
        if !status.is_success() {
            // The OTLP/HTTP error body is a google.rpc.Status; its message
            // (field 2) is what an operator needs. Fall back to the text.
            let message = rpc_status_message(&body)
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(512).collect());
            return Err(SendError::Http {
                endpoint: self.endpoint.clone(),
                signal: signal.name(),
                status: status.as_u16(),
                message,
                retry_after,
            });
        }
        // An empty or undecodable success body is full success: the
        // collector took the request, and re-sending it would only repeat it.
        Ok(match signal {
            Signal::Logs => ExportLogsServiceResponse::decode(body.as_slice())
                .map(logs_accepted)
                .unwrap_or_default(),
            Signal::Metrics => ExportMetricsServiceResponse::decode(body.as_slice())
                .map(metrics_accepted)
                .unwrap_or_default(),
        })
    }
}

/// The gRPC code of an answer without one, by its HTTP status (gRPC's
/// "HTTP to gRPC Status Code Mapping").
fn http_status_code(status: u16) -> tonic::Code {
    match status {
        400 => tonic::Code::Internal,
        401 => tonic::Code::Unauthenticated,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::Unimplemented,
        429 | 502..=504 => tonic::Code::Unavailable,
        _ => tonic::Code::Unknown,
    }
}

/// What a unary gRPC answer body (one length-prefixed message, inflated
/// with `encoding`, the answer's `grpc-encoding`, when its compressed flag
/// is set) says was accepted; an empty body is full success.
fn grpc_answer(signal: Signal, body: &[u8], encoding: Option<&str>) -> Result<Accepted, String> {
    use std::io::Read;
    if body.is_empty() {
        return Ok(Accepted::default());
    }
    let (Some(&flag), Some(prefix)) = (body.first(), body.get(1..5)) else {
        return Err(format!("{} bytes, less than a message prefix", body.len()));
    };
    let mut len = [0; 4];
    len.copy_from_slice(prefix);
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    let Some(framed) = body.get(5..).filter(|m| m.len() == len) else {
        return Err(format!(
            "a message of {len} bytes announced, {} sent",
            body.len() - 5
        ));
    };
    let inflated;
    let message = match (flag, encoding) {
        (0, _) => framed,
        (1, Some("gzip")) => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(framed)
                .take(MAX_RESPONSE_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip: {e}"))?;
            if out.len() > MAX_RESPONSE_BYTES {
                return Err(format!("inflates past {MAX_RESPONSE_BYTES} bytes"));
            }
            inflated = out;
            &inflated
        }
        (1, encoding) => {
            return Err(format!(
                "a compressed message with grpc-encoding {encoding:?}, which the agent does not read"
            ));
        }
        (flag, _) => return Err(format!("unknown message flag {flag}")),
    };
    match signal {
        Signal::Logs => ExportLogsServiceResponse::decode(message).map(logs_accepted),
        Signal::Metrics => ExportMetricsServiceResponse::decode(message).map(metrics_accepted),
    }
    .map_err(|e| {
        format!(
            "not an Export{}ServiceResponse: {e}",
            match signal {
                Signal::Logs => "Logs",
                Signal::Metrics => "Metrics",
            }
        )
    })
}

fn logs_accepted(resp: ExportLogsServiceResponse) -> Accepted {
    resp.partial_success
        .map(|p| Accepted {
            rejected: u64::try_from(p.rejected_log_records).unwrap_or(0),
            message: p.error_message,
        })
        .unwrap_or_default()
}

fn metrics_accepted(resp: ExportMetricsServiceResponse) -> Accepted {
    resp.partial_success
        .map(|p| Accepted {
            rejected: u64::try_from(p.rejected_data_points).unwrap_or(0),
            message: p.error_message,
        })
        .unwrap_or_default()
}

/// The `message` of an encoded `google.rpc.Status`.
fn rpc_status_message(body: &[u8]) -> Option<String> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    RpcStatus::decode(body)
        .ok()
        .map(|s| s.message)
        .filter(|m| !m.is_empty())
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail; if it somehow did, the body would be
    // a truncated gzip stream that the collector refuses as a bad request.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message = format!("{message}: {s}");
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, retry_after: Option<Duration>) -> SendError {
        SendError::Http {
            endpoint: "http://x".into(),
            signal: "logs",
            status,
            message: String::new(),
            retry_after,
        }
    }

    fn grpc(code: tonic::Code) -> SendError {
        SendError::Grpc {
            endpoint: "http://x".into(),
            signal: "logs",
            code,
            message: String::new(),
        }
    }

    #[test]
    fn errors_are_classified_by_status_not_by_text() {
        assert_eq!(http(503, None).class(), ErrorClass::Retryable);
        assert_eq!(http(502, None).class(), ErrorClass::Retryable);
        assert_eq!(
            http(429, Some(Duration::from_secs(3))).class(),
            ErrorClass::Throttled(Some(Duration::from_secs(3)))
        );
        assert_eq!(http(401, None).class(), ErrorClass::Unauthorized);
        assert_eq!(http(403, None).class(), ErrorClass::Unauthorized);
        assert_eq!(http(400, None).class(), ErrorClass::Permanent);
        assert_eq!(http(404, None).class(), ErrorClass::Misrouted);
        assert_eq!(http(308, None).class(), ErrorClass::Misrouted);
        assert_eq!(
            grpc(tonic::Code::Unimplemented).class(),
            ErrorClass::Misrouted
        );
        assert_eq!(http(413, None).class(), ErrorClass::Permanent);
        assert_eq!(
            grpc(tonic::Code::Unavailable).class(),
            ErrorClass::Retryable
        );
        assert_eq!(
            grpc(tonic::Code::ResourceExhausted).class(),
            ErrorClass::Throttled(None)
        );
        assert_eq!(
            grpc(tonic::Code::Unauthenticated).class(),
            ErrorClass::Unauthorized
        );
        assert_eq!(
            grpc(tonic::Code::InvalidArgument).class(),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let c = TransportConfig {
            protocol: Protocol::Http,
            endpoint: "http://x".into(),
            token: Some("s3cret".into()),
            tls: None,
            gzip: false,
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn https_without_tls_settings_is_refused() {
        let c = TransportConfig {
            protocol: Protocol::Grpc,
            endpoint: "https://x:4317".into(),
            token: None,
            tls: None,
            gzip: false,
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            Transport::new(&c),
            Err(TransportError::Tls { .. })
        ));
    }

    fn framed(flag: u8, message: &[u8]) -> Vec<u8> {
        let mut body = vec![flag];
        body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
        body.extend_from_slice(message);
        body
    }

    #[test]
    fn grpc_answers_that_cannot_be_read_are_errors_not_success() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsPartialSuccess;
        let partial = ExportLogsServiceResponse {
            partial_success: Some(ExportLogsPartialSuccess {
                rejected_log_records: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        let rejected = Accepted {
            rejected: 3,
            message: "too old".into(),
        };
        let read = |body: &[u8], encoding| grpc_answer(Signal::Logs, body, encoding);
        assert_eq!(read(&framed(0, &partial), None), Ok(rejected.clone()));
        assert_eq!(read(&[], None), Ok(Accepted::default()));
        // Compressed with gzip, as announced: read.
        let gz = framed(1, &gzip_bytes(&partial));
        assert_eq!(read(&gz, Some("gzip")), Ok(rejected));
        // Compressed without (or with another) encoding, an unknown flag,
        // a cut frame, bytes that are no response: errors.
        for (body, encoding) in [
            (gz.clone(), None),
            (gz.clone(), Some("zstd")),
            (framed(1, b"not gzip"), Some("gzip")),
            (framed(2, &partial), None),
            (framed(0, &partial)[..8].to_vec(), None),
            (vec![0, 0], None),
            (framed(0, &[0xff; 8]), None),
        ] {
            assert!(
                read(&body, encoding).is_err(),
                "{body:?} with {encoding:?} read as success"
            );
        }
        // The error a send makes of it is retried, not dropped or acknowledged.
        assert_eq!(grpc(tonic::Code::Internal).class(), ErrorClass::Retryable);
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let data = b"hello hello hello".repeat(100);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(gzip_bytes(&data).as_slice())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
