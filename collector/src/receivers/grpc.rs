//! OTLP/gRPC: `MetricsService/Export` and `LogsService/Export` on tonic.
//!
//! The services are written against tonic's server primitives with a
//! pass-through codec instead of the generated servers, for two reasons
//! the generated code cannot serve: a malformed message must be
//! INVALID_ARGUMENT (tonic's prost codec says INTERNAL, which OTLP senders
//! would retry forever), and an oversize message must be
//! RESOURCE_EXHAUSTED (tonic's framing says OUT_OF_RANGE). tonic still
//! does the framing, gzip and the size bound, so no message larger than
//! `max_request_bytes` (before or after decompression) is ever buffered.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Code, Status};

use super::config::ListenerSettings;
use super::counters::ReceiverCounters as C;
use super::signal::{Logs, Metrics, Signal};
use super::{ReceiverError, SinkError, Transport};

/// Hands message bytes through unchanged; decoding happens in the handler
/// so that its errors get the right status.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

#[derive(Debug, Clone, Copy, Default)]
struct RawCoder;

impl Encoder for RawCoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCoder;
    type Decoder = RawCoder;
    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }
    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

/// The authenticated sender and its peer address, passed from the
/// service to the handler.
#[derive(Debug, Clone)]
struct Sender(String, Option<SocketAddr>);

/// One signal's gRPC service.
struct OtlpService<S> {
    shared: Transport,
    _signal: PhantomData<S>,
}

impl<S> Clone for OtlpService<S> {
    fn clone(&self) -> Self {
        OtlpService {
            shared: self.shared.clone(),
            _signal: PhantomData,
        }
    }
}

impl NamedService for OtlpService<Metrics> {
    const NAME: &'static str = Metrics::SERVICE;
}

impl NamedService for OtlpService<Logs> {
    const NAME: &'static str = Logs::SERVICE;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S: Signal> tower::Service<axum::http::Request<tonic::body::Body>> for OtlpService<S> {
    type Response = axum::http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<tonic::body::Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            if req.uri().path() != S::GRPC_PATH {
                return Ok(
                    Status::unimplemented(format!("unknown method {}", req.uri().path()))
                        .into_http(),
                );
            }
            // Authenticate before tonic reads the body, so an unknown
            // client cannot make the server buffer a message.
            let counters = shared.ingest.counters().clone();
            let peer = req
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|i| i.remote_addr())
                .or_else(|| {
                    req.extensions()
                        .get::<tonic::transport::server::TlsConnectInfo<
                            tonic::transport::server::TcpConnectInfo,
                        >>()
                        .and_then(|i| i.get_ref().remote_addr())
                });
            let auth = req
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            let sender = match shared.tokens.check(auth) {
                Ok(Some(name)) => name.to_string(),
                Ok(None) => peer.map_or_else(|| "anonymous".to_string(), |a| a.ip().to_string()),
                Err(e) => {
                    C::inc(&counters.requests_unauthenticated);
                    tracing::warn!(?peer, error = %e, "OTLP/gRPC request refused");
                    return Ok(Status::unauthenticated(e.to_string()).into_http());
                }
            };
            let Some(_slot) = shared.export_slot().await else {
                return Ok(
                    Status::unavailable("the collector is overloaded, retry later").into_http(),
                );
            };
            let mut req = req;
            req.extensions_mut().insert(Sender(sender, peer));
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .apply_compression_config(
                    enabled_encodings(),
                    tonic::codec::EnabledCompressionEncodings::default(),
                )
                .apply_max_message_size_config(Some(shared.max_request_bytes), None);
            let handler = Handler::<S> {
                shared: shared.clone(),
                _signal: PhantomData,
            };
            let mut resp = grpc.unary(handler, req).await;
            // Errors raised by tonic's framing before the handler runs come
            // back as a trailers-only response, status in the headers. The
            // handler never answers OUT_OF_RANGE or RESOURCE_EXHAUSTED, so
            // either code here is the size bound (uncompressed or
            // decompressed): answer RESOURCE_EXHAUSTED as gRPC servers do.
            let code = resp
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok());
            if matches!(code, Some(c) if c == Code::OutOfRange as i32 || c == Code::ResourceExhausted as i32)
            {
                C::inc(&counters.requests_too_large);
                tracing::warn!(
                    limit = shared.max_request_bytes,
                    "OTLP/gRPC request refused: larger than max_request_bytes"
                );
                resp.headers_mut().insert(
                    "grpc-status",
                    axum::http::HeaderValue::from(Code::ResourceExhausted as i32),
                );
            }
            Ok(resp)
        })
    }
}

fn enabled_encodings() -> tonic::codec::EnabledCompressionEncodings {
    let mut e = tonic::codec::EnabledCompressionEncodings::default();
    e.enable(CompressionEncoding::Gzip);
    e
}

struct Handler<S> {
    shared: Transport,
    _signal: PhantomData<S>,
}

impl<S: Signal> UnaryService<Bytes> for Handler<S> {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let counters = shared.ingest.counters().clone();
            let Some(Sender(sender, peer)) = request.extensions().get::<Sender>().cloned() else {
                tracing::error!("OTLP/gRPC handler reached without an authenticated sender");
                return Err(Status::internal("request not authenticated"));
            };
            // Decoding and storing are CPU and disk work: off the async
            // workers.
            let ingest = shared.ingest.clone();
            let body = request.into_inner();
            let who = sender.clone();
            let result = tokio::task::spawn_blocking(move || {
                S::export_protobuf(&ingest, &sender, peer, body)
            })
            .await;
            match result {
                Ok(Err(e)) => {
                    C::inc(&counters.requests_malformed);
                    tracing::warn!(sender = who, error = %e, "OTLP/gRPC request refused: malformed protobuf");
                    Err(Status::invalid_argument(format!("malformed protobuf: {e}")))
                }
                Ok(Ok(Ok(resp))) => Ok(tonic::Response::new(Bytes::from(
                    prost::Message::encode_to_vec(&resp),
                ))),
                Ok(Ok(Err(SinkError::Overloaded(m)))) => Err(Status::unavailable(format!(
                    "storage is overloaded, retry later: {m}"
                ))),
                Ok(Ok(Err(e @ SinkError::Storage(_)))) => {
                    Err(Status::unavailable(format!("{e}; retry later")))
                }
                Err(e) => {
                    tracing::error!(error = %e, "OTLP/gRPC export task failed");
                    Err(Status::internal("export task failed"))
                }
            }
        })
    }
}

/// HTTP/2 flow-control windows: how much of a request a sender may have
/// in transit before the receiver reads it. With the default windows
/// (HTTP/2's 64 KiB, hyper's 1 MiB) a sender of multi-megabyte exports
/// waits for a window update every few frames, and those updates wait for the receiver's reader to
/// be scheduled: under load the collector sat idle a fifth of the time
/// with exports half-sent (bench/agent/throughput.sh, gRPC against HTTP).
/// The bytes a connection can buffer unread are bounded by the connection
/// window.
const GRPC_STREAM_WINDOW: u32 = 4 << 20;
const GRPC_CONNECTION_WINDOW: u32 = 8 << 20;
/// The largest HTTP/2 frame a sender may send (HTTP/2's default is 16
/// KiB): a multi-megabyte export then comes in a few DATA frames rather
/// than a hundred, each of which both sides frame, account against the
/// windows and wake their tasks for. A connection reads a whole frame
/// before handing it on, so this bounds its read buffer.
const GRPC_MAX_FRAME: u32 = 1 << 20;

/// Binds `listener` and serves both services until `shutdown`.
pub(crate) async fn start(
    listener: &ListenerSettings,
    shared: Transport,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, JoinHandle<()>), ReceiverError> {
    let tcp = tokio::net::TcpListener::bind(listener.addr)
        .await
        .map_err(|source| ReceiverError::Bind {
            transport: "OTLP/gRPC",
            addr: listener.addr,
            source,
        })?;
    let addr = tcp.local_addr().map_err(|source| ReceiverError::Bind {
        transport: "OTLP/gRPC",
        addr: listener.addr,
        source,
    })?;
    // Bounds reading, decoding and storing one call, so a stalled sender
    // gives its export slot back.
    let mut builder = tonic::transport::Server::builder()
        .timeout(super::REQUEST_TIMEOUT)
        .initial_stream_window_size(GRPC_STREAM_WINDOW)
        .initial_connection_window_size(GRPC_CONNECTION_WINDOW)
        .max_frame_size(GRPC_MAX_FRAME);
    if let Some(tls) = &listener.tls {
        let mut cfg =
            ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
        if let Some(ca) = &tls.client_ca_pem {
            cfg = cfg.client_ca_root(Certificate::from_pem(ca));
        }
        builder = builder.tls_config(cfg).map_err(ReceiverError::GrpcTls)?;
    }
    let router = builder
        .add_service(OtlpService::<Metrics> {
            shared: shared.clone(),
            _signal: PhantomData,
        })
        .add_service(OtlpService::<Logs> {
            shared,
            _signal: PhantomData,
        });
    let incoming = TcpIncoming::from(tcp).with_nodelay(Some(true));
    tracing::info!(%addr, tls = listener.tls.is_some(), "OTLP/gRPC receiver listening");
    let task = tokio::spawn(async move {
        if let Err(e) = router
            .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "OTLP/gRPC receiver stopped with an error");
        }
    });
    Ok((addr, task))
}
