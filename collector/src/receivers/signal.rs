//! The two OTLP signals the receivers take, as one trait, so the gRPC and
//! HTTP transports are written once for both: the wire paths, the message
//! types and which [`Ingest`] method handles them.

use std::net::SocketAddr;

use bytes::Bytes;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};

use super::SinkError;
use super::ingest::Ingest;

/// An OTLP signal: its paths, messages and handler.
pub trait Signal: Send + Sync + 'static {
    /// The gRPC service name.
    const SERVICE: &'static str;
    /// The gRPC method path.
    const GRPC_PATH: &'static str;
    /// The OTLP/HTTP path.
    const HTTP_PATH: &'static str;
    type Request: prost::Message + Default + serde::de::DeserializeOwned + Send + 'static;
    type Response: prost::Message + serde::Serialize + Send + 'static;

    /// Handles a request from `sender` that came from `peer`.
    fn export(
        ingest: &Ingest,
        sender: &str,
        peer: Option<SocketAddr>,
        req: Self::Request,
    ) -> Result<Self::Response, SinkError>;

    /// Decodes a protobuf request and handles it as [`Signal::export`]
    /// does; `Err` (prost's) when `body` is not a `Self::Request`, in
    /// which case nothing was handled.
    fn export_protobuf(
        ingest: &Ingest,
        sender: &str,
        peer: Option<SocketAddr>,
        body: Bytes,
    ) -> Result<Result<Self::Response, SinkError>, prost::DecodeError> {
        <Self::Request as prost::Message>::decode(body)
            .map(|req| Self::export(ingest, sender, peer, req))
    }
}

/// `opentelemetry.proto.collector.metrics.v1.MetricsService`.
#[derive(Debug, Clone, Copy)]
pub struct Metrics;

/// `opentelemetry.proto.collector.logs.v1.LogsService`.
#[derive(Debug, Clone, Copy)]
pub struct Logs;

impl Signal for Metrics {
    const SERVICE: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
    const GRPC_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const HTTP_PATH: &'static str = "/v1/metrics";
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;

    fn export(
        ingest: &Ingest,
        sender: &str,
        peer: Option<SocketAddr>,
        req: Self::Request,
    ) -> Result<Self::Response, SinkError> {
        ingest.export_metrics(sender, peer, req)
    }
}

impl Signal for Logs {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const HTTP_PATH: &'static str = "/v1/logs";
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;

    fn export(
        ingest: &Ingest,
        sender: &str,
        peer: Option<SocketAddr>,
        req: Self::Request,
    ) -> Result<Self::Response, SinkError> {
        ingest.export_logs(sender, peer, req)
    }

    /// Straight from the bytes to log records, without prost's request
    /// structures.
    fn export_protobuf(
        ingest: &Ingest,
        sender: &str,
        peer: Option<SocketAddr>,
        body: Bytes,
    ) -> Result<Result<Self::Response, SinkError>, prost::DecodeError> {
        ingest.export_logs_protobuf(sender, peer, &body)
    }
}
