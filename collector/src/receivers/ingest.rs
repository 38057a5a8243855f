//! One export request from decoded OTLP to an acknowledgement: translate,
//! apply the per-agent series limit, hand to the sink, record clock skew,
//! and build the OTLP response (partial success when something was
//! refused). Shared by both transports, so gRPC and HTTP behave alike.
//!
//! Everything here is synchronous (the sinks block until the WAL fsync'd);
//! the transports call it on tokio's blocking pool. The arrival time comes
//! from an injectable clock.

use std::net::SocketAddr;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};

use super::counters::ReceiverCounters as C;
use super::limits::SeriesLimiter;
use super::{LogSink, MetricsSink, ReceiverCounters, SinkError};
use crate::agents::{AgentRegistry, AgentReport};
use crate::translate::attributes::AgentResource;
use crate::translate::logs::{LogsBatch, LogsOptions, translate_logs};
use crate::translate::logs_wire::decode_logs;
use crate::translate::metrics::{MetricsOptions, MetricsTranslator};
use crate::translate::skew::ClockSkew;

/// The wall clock in ms since the Unix epoch; injectable for tests.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// Limits of the ingest path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOptions {
    pub metrics: MetricsOptions,
    pub logs: LogsOptions,
    pub max_series_per_agent: usize,
    /// Senders tracked by the series limit and agents by the skew table.
    pub max_agents: usize,
    /// A series unseen this long stops counting against its sender.
    pub series_idle_ms: i64,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            metrics: MetricsOptions::default(),
            logs: LogsOptions::default(),
            max_series_per_agent: 50_000,
            max_agents: 10_000,
            series_idle_ms: 24 * 60 * 60 * 1000,
        }
    }
}

/// The ingest path shared by the receivers.
pub struct Ingest {
    translator: MetricsTranslator,
    logs_opts: LogsOptions,
    metrics_sink: Arc<dyn MetricsSink>,
    log_sink: Arc<dyn LogSink>,
    series: SeriesLimiter,
    skew: Arc<ClockSkew>,
    agents: Arc<AgentRegistry>,
    counters: Arc<ReceiverCounters>,
    clock: Clock,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("translator", &self.translator)
            .field("series", &self.series)
            .finish_non_exhaustive()
    }
}

impl Ingest {
    pub fn new(
        opts: IngestOptions,
        metrics_sink: Arc<dyn MetricsSink>,
        log_sink: Arc<dyn LogSink>,
        clock: Clock,
    ) -> Ingest {
        Ingest {
            translator: MetricsTranslator::new(opts.metrics),
            logs_opts: opts.logs,
            metrics_sink,
            log_sink,
            series: SeriesLimiter::new(
                opts.max_series_per_agent,
                opts.max_agents,
                opts.series_idle_ms,
            ),
            skew: Arc::new(ClockSkew::new(opts.max_agents)),
            agents: Arc::new(AgentRegistry::default()),
            counters: Arc::new(ReceiverCounters::default()),
            clock,
        }
    }

    /// Reports the agents of accepted requests to `agents` (by default an
    /// in-memory registry of its own).
    pub fn with_agents(mut self, agents: Arc<AgentRegistry>) -> Ingest {
        self.agents = agents;
        self
    }

    /// The agent inventory this ingest path reports to.
    pub fn agents(&self) -> &Arc<AgentRegistry> {
        &self.agents
    }

    /// Tells the inventory about the agents of an accepted request, with
    /// the skew estimates just updated.
    fn report_agents(&self, agents: &[AgentResource], peer: Option<SocketAddr>, received_ms: i64) {
        if agents.is_empty() {
            return;
        }
        let reports: Vec<AgentReport<'_>> = agents
            .iter()
            .map(|a| AgentReport {
                agent: a,
                address: peer.map(|p| p.ip()),
                received_ms,
                clock_skew_seconds: self.skew.get(&a.id).map(|s| s.skew_seconds),
            })
            .collect();
        self.agents.observe(&reports);
    }

    pub fn counters(&self) -> &Arc<ReceiverCounters> {
        &self.counters
    }

    /// The bounded tables' sizes and evictions, for `/metrics`.
    pub fn table_metrics(&self) -> Vec<(&'static str, f64)> {
        vec![
            (
                "tocsin_receiver_delta_series",
                self.translator.delta_series() as f64,
            ),
            (
                "tocsin_receiver_clock_skew_agents_evicted_total",
                self.skew.evicted() as f64,
            ),
            (
                "tocsin_receiver_label_cache_entries",
                self.translator.label_cache().len() as f64,
            ),
            (
                "tocsin_receiver_label_cache_hits_total",
                self.translator.label_cache().hits() as f64,
            ),
            (
                "tocsin_receiver_label_cache_misses_total",
                self.translator.label_cache().misses() as f64,
            ),
            (
                "tocsin_receiver_label_cache_evicted_total",
                self.translator.label_cache().evicted() as f64,
            ),
        ]
    }

    /// Per-agent clock skew, for the liveness code and the inventory.
    pub fn clock_skew(&self) -> &Arc<ClockSkew> {
        &self.skew
    }

    /// Translates and stores a metrics request from `sender` (the token's
    /// name or the peer address) that came from `peer`; Ok once the
    /// accepted samples are durable.
    #[tracing::instrument(name = "otlp_export_metrics", skip_all, fields(sender = %sender))]
    pub fn export_metrics(
        &self,
        sender: &str,
        peer: Option<SocketAddr>,
        req: ExportMetricsServiceRequest,
    ) -> Result<ExportMetricsServiceResponse, SinkError> {
        let received_ms = (self.clock)();
        C::inc(&self.counters.metrics_requests);
        let batch = self.translator.translate(&req, received_ms);
        drop(req);
        for (agent, newest) in &batch.newest_by_agent {
            self.skew.observe(agent, *newest, received_ms);
        }
        C::add(&self.counters.data_points_received, batch.data_points);
        C::add(&self.counters.attributes_dropped, batch.dropped_attributes);
        C::add(
            &self.counters.target_info_dropped,
            batch.target_info_dropped,
        );
        if batch.target_info_dropped > 0 {
            tracing::warn!(
                sender,
                "target_info left out: the resource's attributes exceed the label limits"
            );
        }
        self.counters.add_metric_refusals(&batch.refused);
        if batch.refused.total() > 0 {
            tracing::warn!(sender, refused = batch.refused.total(), reasons = %batch.refused.describe(), "OTLP data points refused");
        }
        let (samples, over_limit) = self.series.admit(sender, batch.samples, received_ms);
        C::add(&self.counters.refused_series_limit, over_limit);
        let outcome = if samples.is_empty() {
            crate::store::AppendOutcome::default()
        } else {
            match self.metrics_sink.append(&samples) {
                Ok(o) => o,
                Err(e) => {
                    C::inc(&self.counters.requests_sink_failed);
                    tracing::error!(sender, error = %e, samples = samples.len(), "storing samples failed; the request is refused and will be retried");
                    return Err(e);
                }
            }
        };
        self.report_agents(&batch.agents, peer, received_ms);
        C::add(&self.counters.samples_stored, outcome.stored);
        C::add(&self.counters.samples_duplicate, outcome.duplicates);
        C::add(&self.counters.refused_too_old, outcome.refused_too_old);
        C::add(
            &self.counters.refused_duplicate_timestamp,
            outcome.refused_duplicate_timestamp,
        );
        if outcome.refused_too_old + outcome.refused_duplicate_timestamp > 0 {
            tracing::warn!(
                sender,
                too_old = outcome.refused_too_old,
                duplicate_timestamp = outcome.refused_duplicate_timestamp,
                "samples refused by the store"
            );
        }

        let mut reasons = Vec::new();
        let described = batch.refused.describe();
        if !described.is_empty() {
            reasons.push(described);
        }
        if over_limit > 0 {
            reasons.push(format!(
                "{over_limit} samples of new series over the sender's series limit"
            ));
        }
        if outcome.refused_too_old > 0 {
            reasons.push(format!(
                "{} samples older than the out-of-order window",
                outcome.refused_too_old
            ));
        }
        if outcome.refused_duplicate_timestamp > 0 {
            reasons.push(format!(
                "{} samples at a timestamp already stored with another value",
                outcome.refused_duplicate_timestamp
            ));
        }
        // Refusals after translation are per sample; a data point counts
        // at most once, so the sum is capped at the points received.
        let rejected = (batch.refused.total()
            + over_limit
            + outcome.refused_too_old
            + outcome.refused_duplicate_timestamp)
            .min(batch.data_points);
        Ok(ExportMetricsServiceResponse {
            partial_success: (!reasons.is_empty()).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: reasons.join("; "),
            }),
        })
    }

    /// Translates and stores a decoded logs request (OTLP/JSON); Ok once
    /// the accepted records are durable.
    #[tracing::instrument(name = "otlp_export_logs", skip_all, fields(sender = %sender))]
    pub fn export_logs(
        &self,
        sender: &str,
        peer: Option<SocketAddr>,
        req: ExportLogsServiceRequest,
    ) -> Result<ExportLogsServiceResponse, SinkError> {
        let received_ms = (self.clock)();
        C::inc(&self.counters.logs_requests);
        let batch = translate_logs(req, received_ms, &self.logs_opts);
        self.store_logs(sender, peer, batch, received_ms)
    }

    /// Decodes, translates and stores a protobuf logs request, straight
    /// from its bytes to log records ([`decode_logs`]). `Err` when the
    /// bytes are not an `ExportLogsServiceRequest` (nothing is counted as
    /// a request then, as when the transport's decoding fails); otherwise
    /// what [`Ingest::export_logs`] gives for the decoded request. The
    /// arrival time is taken before decoding.
    #[tracing::instrument(name = "otlp_export_logs", skip_all, fields(sender = %sender))]
    pub fn export_logs_protobuf(
        &self,
        sender: &str,
        peer: Option<SocketAddr>,
        body: &[u8],
    ) -> Result<Result<ExportLogsServiceResponse, SinkError>, prost::DecodeError> {
        let received_ms = (self.clock)();
        let batch = decode_logs(body, received_ms, &self.logs_opts)?;
        C::inc(&self.counters.logs_requests);
        Ok(self.store_logs(sender, peer, batch, received_ms))
    }

    /// Counts, stores and acknowledges a translated logs request.
    fn store_logs(
        &self,
        sender: &str,
        peer: Option<SocketAddr>,
        batch: LogsBatch,
        received_ms: i64,
    ) -> Result<ExportLogsServiceResponse, SinkError> {
        for (agent, newest) in &batch.newest_by_agent {
            self.skew.observe(agent, *newest, received_ms);
        }
        C::add(&self.counters.log_records_received, batch.total);
        C::add(
            &self.counters.log_records_refused_future,
            batch.refused_future,
        );
        if batch.refused_future > 0 {
            tracing::warn!(
                sender,
                refused = batch.refused_future,
                "log records stamped too far in the future refused"
            );
        }
        C::add(
            &self.counters.log_records_refused_label_limits,
            batch.refused_label_limits,
        );
        if batch.refused_label_limits > 0 {
            tracing::warn!(
                sender,
                refused = batch.refused_label_limits,
                "log records with a promoted resource attribute over the label limits refused"
            );
        }
        let outcome = if batch.records.is_empty() {
            super::LogAppendOutcome::default()
        } else {
            let n = batch.records.len();
            match self.log_sink.append(batch.records) {
                Ok(o) => o,
                Err(e) => {
                    C::inc(&self.counters.requests_sink_failed);
                    tracing::error!(sender, error = %e, records = n, "storing log records failed; the request is refused and will be retried");
                    return Err(e);
                }
            }
        };
        self.report_agents(&batch.agents, peer, received_ms);
        C::add(&self.counters.log_records_stored, outcome.stored);
        C::add(&self.counters.log_records_duplicate, outcome.duplicates);
        C::add(&self.counters.log_records_refused_by_store, outcome.refused);
        let mut reasons = Vec::new();
        if batch.refused_future > 0 {
            reasons.push(format!(
                "{} log records stamped more than {}s in the future (check the sender's clock)",
                batch.refused_future,
                self.logs_opts.max_future_ms / 1000
            ));
        }
        if batch.refused_label_limits > 0 {
            reasons.push(format!(
                "{} log records with a promoted resource attribute longer than {} bytes",
                batch.refused_label_limits, self.logs_opts.max_label_value_bytes
            ));
        }
        if outcome.refused > 0 {
            tracing::warn!(
                sender,
                refused = outcome.refused,
                "log records refused by the store"
            );
            reasons.push(format!(
                "{} log records refused by the store",
                outcome.refused
            ));
        }
        let rejected = batch.refused_future + batch.refused_label_limits + outcome.refused;
        Ok(ExportLogsServiceResponse {
            partial_success: (!reasons.is_empty()).then(|| ExportLogsPartialSuccess {
                rejected_log_records: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: reasons.join("; "),
            }),
        })
    }
}
