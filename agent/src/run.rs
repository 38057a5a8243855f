//! The agent's run loop: the host collector on its interval and the log
//! tailer feed the exporter; the exporter's deliveries settle the tailer's
//! batches, so a file's checkpoint moves only over acknowledged lines.
//!
//! [`run`] runs one configuration until `shutdown`; [`run_with_reload`]
//! also takes new configurations (the binary sends one per valid SIGHUP
//! reload) and swaps the pipeline: the old one stops as at shutdown
//! (pending batches spooled, checkpoints written), the new one starts from
//! the spool and the checkpoints, so a reload loses and repeats nothing.
//!
//! Invariants: one pipeline at a time owns the data directory (the spool
//! holds a lock); shutdown takes at most [`SHUTDOWN_DEADLINE`] for the
//! sender to hand its queue to the spool, then checkpoints what was
//! acknowledged.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::export::{self, ExportError, ResourceInfo, Transport, TransportError, agent_id};
use crate::self_metrics::{AgentMetrics, Published};
use crate::sources::host::HostCollector;
use crate::sources::logtail::{SystemClock, Tailer, TailerError, TailerOptions};

/// How long shutdown waits for the sender to finish its current request
/// and spool the rest.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// How often the tailer is polled for new lines when it has caught up:
/// the longest a line waits before it is read (Filebeat's default
/// backoff). A busy file is read again at once (see `Pipeline::backlog`),
/// so the interval costs no throughput, while a quiet one costs one poll
/// and at most one request a second.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the agent logs its counters.
pub const STATS_INTERVAL: Duration = Duration::from_secs(60);
/// Records per logs request.
const BATCH_RECORDS: usize = 8192;
/// Record bytes per logs request (the encoded request is about twice this
/// with the per-record attributes; the collector takes 8 MiB by default).
const BATCH_BYTES: usize = 1 << 20;

/// Failures that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    AgentId(#[from] agent_id::AgentIdError),
    #[error("cannot set up the collector connection: {0}")]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("log tailer: {0}")]
    Tailer(#[from] TailerError),
}

/// Runs the agent with `config` until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let (_keep, reloads) = mpsc::channel(1);
    run_with_reload(config, reloads, shutdown).await
}

/// Runs the agent, switching to each configuration received on `reloads`.
/// A configuration whose pipeline cannot start (say its data directory
/// cannot be created) is logged and the previous one started again.
pub async fn run_with_reload(
    config: Config,
    mut reloads: mpsc::Receiver<Config>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let mut current = config;
    // The configuration that last started, to fall back on when a
    // reloaded one cannot start.
    let mut previous: Option<Config> = None;
    // Exported only with telemetry.otlp (the global registry is disabled
    // otherwise); one set of instruments for every pipeline.
    let metrics = AgentMetrics::register(&tocsin_telemetry::SelfMetrics::global());
    loop {
        let pipeline = match Pipeline::start(&current, metrics.clone()).await {
            Ok(p) => p,
            Err(e) => match previous.take() {
                None => return Err(e),
                Some(old) => {
                    tracing::error!(
                        error = %e,
                        "the reloaded configuration cannot start; keeping the running one"
                    );
                    current = old;
                    continue;
                }
            },
        };
        tracing::info!(
            config = %current.path.display(),
            endpoint = %current.export.transport.endpoint,
            inputs = current.logs.len(),
            interval_secs = current.interval.as_secs(),
            "agent running"
        );
        match pipeline.run(shutdown.child_token(), &mut reloads).await? {
            Some(config) => {
                tracing::info!(config = %config.path.display(), "configuration reloaded");
                previous = Some(std::mem::replace(&mut current, config));
            }
            None => {
                tracing::info!("agent stopped");
                return Ok(());
            }
        }
    }
}

struct Pipeline {
    exporter: export::Exporter,
    sender: tokio::task::JoinHandle<()>,
    sender_stop: CancellationToken,
    deliveries: mpsc::UnboundedReceiver<export::Delivery>,
    tailer: Option<Tailer>,
    host: Option<HostCollector>,
    interval: Duration,
    /// The last poll left lines behind: it filled a whole batch, or the
    /// exporter's memory queue was full. The loop polls again as soon as
    /// the exporter has room instead of waiting for the next tick.
    backlog: bool,
    metrics: AgentMetrics,
}

impl Pipeline {
    async fn start(config: &Config, metrics: AgentMetrics) -> Result<Pipeline, RunError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| RunError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let agent_id = agent_id::load_or_create(&config.data_dir)?;
        let r = &config.resource;
        let info = ResourceInfo {
            host_name: r.host_name.clone(),
            service_name: r.service_name.clone(),
            environment: r.environment.clone(),
            service_version: r.service_version.clone(),
            track: r.track.clone(),
            agent_id,
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            interval_secs: config.interval.as_secs(),
        };
        let transport = Transport::new(&config.export.transport)?;
        let (exporter, task, deliveries) = export::exporter(
            &config.data_dir.join("spool"),
            config.export.options.clone(),
            transport,
            info,
        )?;
        let sender_stop = CancellationToken::new();
        let sender = tokio::spawn(task.run(sender_stop.clone()));
        let tailer = if config.logs.is_empty() {
            None
        } else {
            match Tailer::new(
                config.logs.clone(),
                &config.data_dir.join("logs"),
                Arc::new(SystemClock),
                TailerOptions::default(),
            ) {
                Ok(t) => Some(t),
                Err(e) => {
                    sender_stop.cancel();
                    let _ = sender.await;
                    return Err(e.into());
                }
            }
        };
        let host = config.host_metrics.clone().map(HostCollector::new);
        Ok(Pipeline {
            exporter,
            sender,
            sender_stop,
            deliveries,
            tailer,
            host,
            interval: config.interval,
            backlog: false,
            metrics,
        })
    }

    /// Runs until `stop` (returns `None`) or a new configuration arrives
    /// (returns it); either way the pipeline is shut down cleanly first.
    async fn run(
        mut self,
        stop: CancellationToken,
        reloads: &mut mpsc::Receiver<Config>,
    ) -> Result<Option<Config>, RunError> {
        let mut metrics_tick = tokio::time::interval(self.interval);
        metrics_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut poll_tick = tokio::time::interval(POLL_INTERVAL);
        poll_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut stats_tick =
            tokio::time::interval_at(tokio::time::Instant::now() + STATS_INTERVAL, STATS_INTERVAL);
        stats_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut reloads_open = true;
        let next = loop {
            tokio::select! {
                () = stop.cancelled() => break None,
                config = reloads.recv(), if reloads_open => match config {
                    Some(config) => break Some(config),
                    None => reloads_open = false,
                },
                _ = metrics_tick.tick(), if self.host.is_some() => self.collect_metrics(),
                _ = poll_tick.tick(), if self.tailer.is_some() => self.poll_logs(),
                // Lets the sender and the other branches run between two
                // polls of a backlog (one thread runs them all).
                () = tokio::task::yield_now(), if self.backlog && self.exporter.has_room() => {
                    self.poll_logs();
                }
                Some(delivery) = self.deliveries.recv() => self.settle(delivery),
                _ = stats_tick.tick() => self.log_stats("agent counters"),
            }
        };
        self.shutdown().await;
        Ok(next)
    }

    fn collect_metrics(&mut self) {
        let Some(host) = self.host.as_mut() else {
            return;
        };
        let collection = host.collect();
        for error in &collection.errors {
            tracing::warn!(%error, "host metrics: a family could not be read");
        }
        self.exporter.submit_metrics(&collection.metrics);
        self.publish();
    }

    fn poll_logs(&mut self) {
        let Some(tailer) = self.tailer.as_mut() else {
            return;
        };
        if let Err(error) = tailer.poll() {
            tracing::error!(%error, "log tailer");
        }
        // Batches wait in the tailer (their lines are safe in the file)
        // while the sender is busy, rather than going to the spool; the
        // spool is for a collector that does not answer.
        self.backlog = false;
        loop {
            if !self.exporter.has_room() {
                self.backlog = true;
                break;
            }
            let Some(batch) = tailer.next_batch(BATCH_RECORDS, BATCH_BYTES) else {
                break;
            };
            let bytes: usize = batch.records.iter().map(|r| r.body.len()).sum();
            self.backlog |= batch.records.len() >= BATCH_RECORDS || bytes >= BATCH_BYTES / 2;
            self.exporter.submit_logs(&batch);
        }
        self.publish();
    }

    /// Hands the counters to the self metrics (when exported).
    fn publish(&self) {
        if !self.metrics.is_enabled() {
            return;
        }
        let (memory_batches, spool_batches) = self.exporter.pending();
        self.metrics.publish(Published {
            export: self.exporter.counters(),
            spool: self.exporter.spool_counters(),
            tailer: self
                .tailer
                .as_ref()
                .map(|t| t.counters().clone())
                .unwrap_or_default(),
            memory_batches,
            spool_batches,
        });
    }

    /// One line with the counters an operator checks first: what was
    /// read, shipped, spooled and given up.
    fn log_stats(&self, message: &str) {
        let e = self.exporter.counters();
        let (memory_batches, spool_batches) = self.exporter.pending();
        let spool = self.exporter.spool_counters();
        let t = self
            .tailer
            .as_ref()
            .map(|t| t.counters().clone())
            .unwrap_or_default();
        tracing::info!(
            batches_sent = e.batches_sent,
            batches_spooled = e.batches_spooled,
            batches_rejected = e.batches_rejected,
            batches_unspoolable = e.batches_unspoolable,
            send_failures = e.send_failures,
            memory_batches,
            spool_batches,
            spool_evicted_metrics = spool.evicted_metrics,
            spool_evicted_logs = spool.evicted_logs,
            records_read = t.records_read,
            records_filtered = t.records_filtered,
            records_acked = t.records_acked,
            records_dropped = t.records_dropped,
            read_errors = t.read_errors,
            checkpoint_errors = t.checkpoint_errors,
            "{message}"
        );
    }

    fn settle(&mut self, delivery: export::Delivery) {
        if let Some(tailer) = self.tailer.as_mut()
            && let Err(error) = delivery.apply(tailer)
        {
            tracing::error!(%error, "log tailer: cannot settle a delivery");
        }
        self.publish();
    }

    /// Hands what the tailer read to the exporter, lets the sender spool
    /// its queue (within the deadline), settles what was acknowledged and
    /// writes the checkpoints.
    async fn shutdown(mut self) {
        if let Some(tailer) = self.tailer.as_mut() {
            while let Some(batch) = tailer.next_batch(BATCH_RECORDS, BATCH_BYTES) {
                self.exporter.submit_logs(&batch);
            }
        }
        self.sender_stop.cancel();
        let abort = self.sender.abort_handle();
        match tokio::time::timeout(SHUTDOWN_DEADLINE, &mut self.sender).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "exporter task failed"),
            Err(_) => {
                tracing::warn!(
                    deadline_secs = SHUTDOWN_DEADLINE.as_secs(),
                    "exporter did not stop within the deadline; unsent logs are re-read from the checkpoints"
                );
                abort.abort();
                // The task holds the spool's lock until it is dropped,
                // which its next poll does after the abort.
                let _ = (&mut self.sender).await;
            }
        }
        while let Ok(delivery) = self.deliveries.try_recv() {
            self.settle(delivery);
        }
        if let Some(tailer) = self.tailer.as_mut()
            && let Err(error) = tailer.checkpoint_now()
        {
            tracing::error!(%error, "cannot write log checkpoints at shutdown");
        }
        self.log_stats("pipeline stopped");
        self.publish();
        self.metrics.retire();
    }
}
