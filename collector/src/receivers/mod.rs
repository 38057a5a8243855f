//! The OTLP receivers: gRPC (tonic, default port 4317) and HTTP (axum over
//! hyper, default port 4318, `/v1/metrics` and `/v1/logs`, protobuf or
//! JSON, optionally gzip'd), both feeding one [`Ingest`].
//!
//! Invariants: a request is acknowledged only after its sink returned Ok,
//! that is after the write-ahead log fsync'd what it stored; a sink error
//! fails the whole request with a retryable status (503 / UNAVAILABLE) so
//! the sender re-sends, and the store's de-duplication makes that safe.
//! Data refused for what it is (exponential histograms, future timestamps,
//! the per-agent series limit, samples too old…) is reported as OTLP
//! partial success, counted in [`ReceiverCounters`] and logged. Every body
//! is bounded by `max_request_bytes`, before and after decompression, and
//! at most `max_concurrent_requests` exports are read and stored at once:
//! a request waits up to [`EXPORT_SLOT_WAIT`] (by default) for a slot (holding only its
//! headers), then is refused as overloaded (503 / UNAVAILABLE, retryable).
//! Authentication happens before a body is read.

pub mod auth;
pub mod config;
pub mod counters;
pub mod grpc;
pub mod http;
pub mod ingest;
pub mod limits;
pub mod signal;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tocsin_rules::promql::value::Labels;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::logs::record::LogRecord;
use crate::store::{AppendOutcome, SeriesStore};

pub use config::{OtlpReceiversConfig, OtlpSettings, ReceiversConfig};
pub use counters::ReceiverCounters;
pub use ingest::{Ingest, IngestOptions};

/// Why a sink could not take a batch. Both variants are retryable for the
/// sender: nothing of the batch was acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The storage failed (e.g. the write-ahead log could not fsync).
    #[error("storage failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The sink is temporarily over its capacity.
    #[error("storage is overloaded: {0}")]
    Overloaded(String),
}

/// Where translated samples go.
pub trait MetricsSink: Send + Sync + 'static {
    /// Stores a batch; returns once it is durable.
    fn append(&self, samples: &[(Labels, i64, f64)]) -> Result<AppendOutcome, SinkError>;
}

impl MetricsSink for SeriesStore {
    fn append(&self, samples: &[(Labels, i64, f64)]) -> Result<AppendOutcome, SinkError> {
        SeriesStore::append(self, samples).map_err(|e| SinkError::Storage(Box::new(e)))
    }
}

/// What a log sink did with a batch, record by record, summed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendOutcome {
    pub stored: usize,
    /// Already stored (same agent, file and offset): dropped, not refused.
    pub duplicates: usize,
    /// Refused by the store (e.g. too old for retention); reported to the
    /// sender as rejected.
    pub refused: usize,
}

/// Where translated log records go.
pub trait LogSink: Send + Sync + 'static {
    /// Stores a batch; returns once it is durable.
    fn append(&self, records: Vec<LogRecord>) -> Result<LogAppendOutcome, SinkError>;
}

/// How long a request may wait for an export slot before it is refused
/// as overloaded, unless the settings say otherwise.
pub const EXPORT_SLOT_WAIT: Duration = Duration::from_secs(5);

/// How long reading a request (headers and body) and storing it may take;
/// a slow or stalled sender must not hold an export slot forever.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What both transports share.
#[derive(Clone)]
pub(crate) struct Transport {
    pub tokens: Arc<auth::Tokens>,
    pub ingest: Arc<Ingest>,
    pub max_request_bytes: usize,
    in_flight: Arc<Semaphore>,
    slot_wait: Duration,
}

impl Transport {
    /// Waits for an export slot; `None` (counted) when none freed up in
    /// time.
    pub async fn export_slot(&self) -> Option<OwnedSemaphorePermit> {
        match tokio::time::timeout(self.slot_wait, self.in_flight.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            // The semaphore is never closed; treat it like a timeout anyway.
            Ok(Err(_)) | Err(_) => {
                counters::ReceiverCounters::inc(&self.ingest.counters().requests_overloaded);
                tracing::warn!(
                    wait_ms = self.slot_wait.as_millis(),
                    "OTLP request refused: every export slot stayed busy"
                );
                None
            }
        }
    }
}

/// Why the receivers could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReceiverError {
    #[error("cannot listen on {addr} ({transport}): {source}")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC TLS configuration: {0}")]
    GrpcTls(#[source] tonic::transport::Error),
}

/// The running receivers: their bound addresses and server tasks.
#[derive(Debug)]
pub struct OtlpReceivers {
    pub grpc_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl OtlpReceivers {
    /// Binds the configured listeners (so port 0 resolves before this
    /// returns) and serves until `shutdown` is cancelled.
    pub async fn start(
        settings: &OtlpSettings,
        ingest: Arc<Ingest>,
        shutdown: CancellationToken,
    ) -> Result<OtlpReceivers, ReceiverError> {
        tls::install_crypto_provider();
        let transport = Transport {
            tokens: Arc::new(settings.tokens.clone()),
            ingest,
            max_request_bytes: settings.max_request_bytes,
            in_flight: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
            slot_wait: settings.export_slot_wait,
        };
        let mut out = OtlpReceivers {
            grpc_addr: None,
            http_addr: None,
            tasks: Vec::new(),
        };
        if let Some(l) = &settings.grpc {
            let (addr, task) = grpc::start(l, transport.clone(), shutdown.clone()).await?;
            out.grpc_addr = Some(addr);
            out.tasks.push(task);
        }
        if let Some(l) = &settings.http {
            let (addr, task) = http::start(l, transport.clone(), shutdown.clone()).await?;
            out.http_addr = Some(addr);
            out.tasks.push(task);
        }
        if settings.tokens.is_open() {
            tracing::warn!(
                "OTLP receivers accept requests without a bearer token (no receivers.otlp.tokens configured)"
            );
        }
        Ok(out)
    }

    /// Waits for the servers to finish after shutdown was requested.
    pub async fn wait(self) {
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "OTLP receiver task ended abnormally");
            }
        }
    }
}
