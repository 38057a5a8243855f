//! OTLP/HTTP: `POST /v1/metrics` and `POST /v1/logs` with protobuf
//! (`application/x-protobuf`) or JSON (`application/json`, OTLP's JSON
//! mapping) bodies, optionally `Content-Encoding: gzip`; the response uses
//! the request's encoding. Errors carry a `google.rpc.Status` body as the
//! OTLP specification asks: 400 malformed, 401 no or wrong token, 413 too
//! large, 415 unsupported content type or encoding, 503 storage failed
//! (retryable).
//!
//! Connections are accepted by hand (hyper-util) so TLS, the peer address
//! and graceful shutdown are ours: a TLS handshake runs in the
//! connection's task with a deadline and never stalls the accept loop.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::config::ListenerSettings;
use super::counters::ReceiverCounters as C;
use super::signal::{Logs, Metrics, Signal};
use super::{REQUEST_TIMEOUT, ReceiverError, SinkError, Transport};

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// The peer of a connection, inserted into each request's extensions.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

fn error(enc: Encoding, status: StatusCode, grpc_code: tonic::Code, message: String) -> Response {
    let body = RpcStatus {
        code: grpc_code as i32,
        message,
    };
    let bytes = match enc {
        Encoding::Protobuf => prost::Message::encode_to_vec(&body),
        Encoding::Json => serde_json::to_vec(&body).unwrap_or_default(),
    };
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type()),
    );
    resp
}

fn media_type(headers: &HeaderMap) -> Option<Encoding> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mt = ct.split(';').next()?.trim().to_ascii_lowercase();
    match mt.as_str() {
        "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
        "application/json" => Some(Encoding::Json),
        _ => None,
    }
}

/// Reads at most `limit` bytes of body; `None` when it is longer.
async fn read_limited(body: Body, limit: usize) -> Result<Option<Bytes>, axum::Error> {
    let mut body = body;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Ok(None);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Some(buf.freeze()))
}

/// Decompresses gzip into at most `limit` bytes; `Ok(None)` when larger.
fn gunzip(data: &[u8], limit: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(data)
        .take(cap)
        .read_to_end(&mut out)?;
    Ok((out.len() <= limit).then_some(out))
}

/// What the blocking part of an export came to.
enum Prepared<R> {
    TooLarge,
    Malformed(String),
    Exported(Result<R, SinkError>),
}

async fn export<S: Signal>(
    State(st): State<Transport>,
    Extension(Peer(peer)): Extension<Peer>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let counters = st.ingest.counters().clone();
    let enc = media_type(&headers);
    let reply_enc = enc.unwrap_or(Encoding::Json);
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let sender = match st.tokens.check(auth) {
        Ok(Some(name)) => name.to_string(),
        Ok(None) => peer.ip().to_string(),
        Err(e) => {
            C::inc(&counters.requests_unauthenticated);
            tracing::warn!(%peer, error = %e, "OTLP/HTTP request refused");
            let mut r = error(
                reply_enc,
                StatusCode::UNAUTHORIZED,
                tonic::Code::Unauthenticated,
                e.to_string(),
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    let Some(enc) = enc else {
        C::inc(&counters.requests_unsupported);
        tracing::warn!(sender, content_type = ?headers.get(header::CONTENT_TYPE), "OTLP/HTTP request refused: unsupported content type");
        return error(
            reply_enc,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            tonic::Code::InvalidArgument,
            "unsupported content type (want application/x-protobuf or application/json)".into(),
        );
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            C::inc(&counters.requests_unsupported);
            tracing::warn!(
                sender,
                encoding = other,
                "OTLP/HTTP request refused: unsupported content encoding"
            );
            return error(
                enc,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                tonic::Code::InvalidArgument,
                format!("unsupported content encoding {other:?} (want gzip or none)"),
            );
        }
    };
    let too_large = |counters: &C| {
        C::inc(&counters.requests_too_large);
        tracing::warn!(
            limit = st.max_request_bytes,
            "OTLP/HTTP request refused: larger than max_request_bytes"
        );
        error(
            enc,
            StatusCode::PAYLOAD_TOO_LARGE,
            tonic::Code::ResourceExhausted,
            format!("request body larger than {} bytes", st.max_request_bytes),
        )
    };
    let Some(_slot) = st.export_slot().await else {
        let mut r = error(
            enc,
            StatusCode::SERVICE_UNAVAILABLE,
            tonic::Code::Unavailable,
            "the collector is overloaded, retry later".into(),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > st.max_request_bytes as u64) {
        return too_large(&counters);
    }
    let read = tokio::time::timeout(REQUEST_TIMEOUT, read_limited(body, st.max_request_bytes));
    let raw = match read.await {
        Ok(Ok(Some(b))) => b,
        Ok(Ok(None)) => return too_large(&counters),
        Err(_) => {
            C::inc(&counters.requests_timed_out);
            tracing::warn!(
                sender,
                "OTLP/HTTP request refused: body not received in time"
            );
            return error(
                enc,
                StatusCode::REQUEST_TIMEOUT,
                tonic::Code::DeadlineExceeded,
                format!(
                    "request body not received within {}s",
                    REQUEST_TIMEOUT.as_secs()
                ),
            );
        }
        Ok(Err(e)) => {
            C::inc(&counters.requests_malformed);
            tracing::warn!(sender, error = %e, "OTLP/HTTP request body could not be read");
            return error(
                enc,
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                format!("cannot read the request body: {e}"),
            );
        }
    };
    // Decompression, decoding and storing are CPU and disk work: off the
    // async workers.
    let ingest = st.ingest.clone();
    let limit = st.max_request_bytes;
    let work = tokio::task::spawn_blocking(move || {
        let data: Bytes = if gzip {
            match gunzip(&raw, limit) {
                Ok(Some(d)) => Bytes::from(d),
                Ok(None) => return Prepared::TooLarge,
                Err(e) => return Prepared::Malformed(format!("malformed gzip body: {e}")),
            }
        } else {
            raw
        };
        let exported = match enc {
            Encoding::Protobuf => S::export_protobuf(&ingest, &sender, Some(peer), data)
                .map_err(|e| format!("malformed protobuf: {e}")),
            Encoding::Json => serde_json::from_slice(&data)
                .map(|msg| S::export(&ingest, &sender, Some(peer), msg))
                .map_err(|e| format!("malformed JSON: {e}")),
        };
        match exported {
            Ok(r) => Prepared::Exported(r),
            Err(message) => Prepared::Malformed(message),
        }
    });
    let exported = match work.await {
        Ok(Prepared::TooLarge) => return too_large(&counters),
        Ok(Prepared::Malformed(message)) => {
            C::inc(&counters.requests_malformed);
            tracing::warn!(%peer, error = %message, "OTLP/HTTP request refused");
            return error(
                enc,
                StatusCode::BAD_REQUEST,
                tonic::Code::InvalidArgument,
                message,
            );
        }
        Ok(Prepared::Exported(r)) => Ok(r),
        Err(e) => Err(e),
    };
    match exported {
        Ok(Ok(resp)) => {
            let bytes = match enc {
                Encoding::Protobuf => prost::Message::encode_to_vec(&resp),
                Encoding::Json => match serde_json::to_vec(&resp) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot encode an OTLP/HTTP response as JSON");
                        return error(
                            enc,
                            StatusCode::INTERNAL_SERVER_ERROR,
                            tonic::Code::Internal,
                            "cannot encode the response".into(),
                        );
                    }
                },
            };
            let mut r = (StatusCode::OK, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(enc.content_type()),
            );
            r
        }
        Ok(Err(e)) => {
            let mut r = error(
                enc,
                StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::Unavailable,
                match e {
                    SinkError::Overloaded(m) => format!("storage is overloaded, retry later: {m}"),
                    e @ SinkError::Storage(_) => {
                        format!("{e}; retry later")
                    }
                },
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "OTLP/HTTP export task failed");
            error(
                enc,
                StatusCode::INTERNAL_SERVER_ERROR,
                tonic::Code::Internal,
                "export task failed".into(),
            )
        }
    }
}

fn router(state: Transport) -> Router {
    Router::new()
        .route(Metrics::HTTP_PATH, post(export::<Metrics>))
        .route(Logs::HTTP_PATH, post(export::<Logs>))
        .with_state(state)
}

/// Binds `listener` and serves until `shutdown`.
pub(crate) async fn start(
    listener: &ListenerSettings,
    transport: Transport,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), ReceiverError> {
    let bind_err = |source| ReceiverError::Bind {
        transport: "OTLP/HTTP",
        addr: listener.addr,
        source,
    };
    let tcp = tokio::net::TcpListener::bind(listener.addr)
        .await
        .map_err(bind_err)?;
    let addr = tcp.local_addr().map_err(bind_err)?;
    let app = router(transport);
    let tls = listener
        .tls
        .as_ref()
        .map(|t| TlsAcceptor::from(t.server_config.clone()));
    tracing::info!(%addr, tls = tls.is_some(), "OTLP/HTTP receiver listening");
    let task = tokio::spawn(serve(tcp, tls, app, shutdown));
    Ok((addr, task))
}

async fn serve(
    tcp: tokio::net::TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = tcp.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Usually EMFILE or a connection reset before accept;
                    // the listener itself is still fine.
                    tracing::warn!(error = %e, "OTLP/HTTP accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    app.clone().oneshot(req.map(Body::new))
                },
            );
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // Without a timer hyper enforces no header read timeout.
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT);
            let result = match tls {
                None => {
                    watcher
                        .watch(
                            builder
                                .serve_connection(TokioIo::new(stream), svc)
                                .into_owned(),
                        )
                        .await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    let stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "OTLP/HTTP TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "OTLP/HTTP TLS handshake timed out");
                            return;
                        }
                    };
                    watcher
                        .watch(
                            builder
                                .serve_connection(TokioIo::new(stream), svc)
                                .into_owned(),
                        )
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "OTLP/HTTP connection ended with an error");
            }
        });
    }
    drop(tcp);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("OTLP/HTTP shutdown: connections still open after the grace period");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_is_bounded_after_decompression() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&[b'a'; 10_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert!(gz.len() < 200);
        assert_eq!(gunzip(&gz, 10_000).unwrap().unwrap().len(), 10_000);
        assert!(gunzip(&gz, 9_999).unwrap().is_none());
        assert!(gunzip(b"not gzip", 100).is_err());
    }

    #[test]
    fn media_types() {
        let mut h = HeaderMap::new();
        assert_eq!(media_type(&h), None);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert_eq!(media_type(&h), Some(Encoding::Json));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        assert_eq!(media_type(&h), Some(Encoding::Protobuf));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(media_type(&h), None);
    }
}
