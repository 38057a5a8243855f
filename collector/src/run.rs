//! The serving collector: opens the series and log stores under the data
//! directory (replaying their write-ahead logs), starts the OTLP
//! receivers with them as sinks, the ruler over the series store with its
//! log metrics fed to the log store, the agent inventory (`agents.sqlite`)
//! that the receivers report to, and the HTTP API with `/metrics`,
//! `/api/v1/logs`, `/api/v1/error-groups` and `/api/v1/agents`;
//! runs the periodic work (agent expiry and the inventory's batched write,
//! error groups to their database, log retention, counter flush, self
//! metrics into the store, head retention) every evaluation interval; and
//! shuts it all down when the token is cancelled.
//!
//! Invariants: nothing is acknowledged before both stores replayed (the
//! receivers start after); `/-/ready` turns true only once every part
//! runs; shutdown stops the listeners first, then writes the error groups,
//! the agent inventory and a last counter flush, within
//! [`SHUTDOWN_DEADLINE`]. Every sample
//! and record was already fsync'd before it was acknowledged, so a
//! shutdown that misses its deadline (or a `kill -9`) loses nothing
//! acknowledged.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tocsin_rules::promql::Labels;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::agents::{self, AgentDbError, AgentRegistry, AgentRegistryOptions};
use crate::api::params::{invalid_param, time_param};
use crate::api::response::{format_time, success};
use crate::api::{self, ApiError, ApiState, Readiness, Role};
use crate::config::CollectorSettings;
use crate::logs::store::self_series;
use crate::logs::{LogQuery, LogStore, LogStoreError};
use crate::receivers::{Ingest, OtlpReceivers, ReceiverError, ingest::system_clock};
use crate::ruler::{
    self, ChannelSink, OutgoingAlert, ReloadError, RulerError, RulerHandle, RulerOptions,
};
use crate::server::error_groups::{ErrorGroupDbError, ErrorGroups};
use crate::store::head::HeadOptions;
use crate::store::wal::WalOptions;
use crate::store::{SeriesStore, StoreError};

/// How long shutdown may take before the remaining tasks are abandoned.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Firing alerts waiting for their consumer.
const ALERT_QUEUE: usize = 1024;

/// The error groups' database, in the data directory.
pub const ERROR_GROUPS_FILE: &str = "error_groups.sqlite";

/// The agent inventory's database, in the data directory.
pub const AGENTS_FILE: &str = "agents.sqlite";

/// The data directory's lock file, held (flock) while a collector runs.
pub const LOCK_FILE: &str = "lock";

/// Takes the data directory's exclusive lock, or says who holds it.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, RunError> {
    let path = dir.join(LOCK_FILE);
    let io_error = |source| RunError::DataDir {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(RunError::DataDirLocked {
            path: dir.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(io_error(source)),
    }
}

/// Why the collector could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the data directory {path} is in use by another collector (its lock file {path}/{LOCK_FILE} is held); stop it or choose another data_dir"
    )]
    DataDirLocked { path: String },
    #[error("series store: {0}")]
    Series(#[from] StoreError),
    #[error(transparent)]
    Logs(#[from] LogStoreError),
    #[error(transparent)]
    Receivers(#[from] ReceiverError),
    #[error(transparent)]
    Ruler(#[from] RulerError),
    #[error(transparent)]
    ErrorGroups(#[from] ErrorGroupDbError),
    #[error(transparent)]
    Agents(#[from] AgentDbError),
    #[error("rule files: {0}")]
    Rules(ReloadError),
    #[error("api.listen: {0}")]
    ApiBind(String),
    #[error("cannot listen on {addr} (api): {source}")]
    ApiListen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("a start-up task failed: {0}")]
    Task(String),
}

/// Where the running collector listens (ports resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub api: SocketAddr,
    pub otlp_grpc: Option<SocketAddr>,
    pub otlp_http: Option<SocketAddr>,
}

/// Everything `/metrics` and the periodic flush read.
struct Parts {
    store: Arc<SeriesStore>,
    logs: Arc<LogStore>,
    ingest: Arc<Ingest>,
    ruler: RulerHandle,
    api: Arc<ApiState>,
    error_groups: Arc<ErrorGroups>,
    agents: Arc<AgentRegistry>,
    /// The head's memory budget (`head_max_bytes`).
    head_max_bytes: usize,
    /// Times the memory budget took samples before retention would have.
    head_budget_truncations: std::sync::atomic::AtomicU64,
}

fn now_ms() -> i64 {
    (system_clock())()
}

/// Runs the collector until `shutdown` is cancelled.
pub async fn run(settings: CollectorSettings, shutdown: CancellationToken) -> Result<(), RunError> {
    run_with(settings, shutdown, None).await
}

/// [`run`], telling `bound` where it listens once it is ready.
pub async fn run_with(
    settings: CollectorSettings,
    shutdown: CancellationToken,
    bound: Option<oneshot::Sender<Bound>>,
) -> Result<(), RunError> {
    run_with_alerts(settings, shutdown, bound, None).await
}

/// [`run_with`], also handing every batch of alerts the ruler sends
/// (newly firing, re-sent, resolved) to `alerts_out` (the demo prints
/// them).
/// A slow receiver holds the batches up in the ruler's bounded queue,
/// where they are dropped and counted when it is full.
pub async fn run_with_alerts(
    settings: CollectorSettings,
    shutdown: CancellationToken,
    bound: Option<oneshot::Sender<Bound>>,
    alerts_out: Option<mpsc::Sender<Vec<OutgoingAlert>>>,
) -> Result<(), RunError> {
    let readiness = Readiness::default();
    for dir in [settings.series_dir(), settings.logs_dir()] {
        std::fs::create_dir_all(&dir).map_err(|source| RunError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    // Held until this function returns: a second collector on the same
    // data directory would replay and append to the same logs.
    let _data_lock = lock_data_dir(&settings.data_dir)?;

    let (series_dir, logs_dir, log_opts) = (
        settings.series_dir(),
        settings.logs_dir(),
        settings.logs.clone(),
    );
    let head_opts = HeadOptions {
        out_of_order_window_ms: settings.out_of_order_window_ms,
        // What housekeeping's retention dropped before a restart stays
        // dropped.
        restore_min_time_ms: now_ms().saturating_sub(settings.retention_ms),
        ..HeadOptions::default()
    };
    let (store, logs) = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let (store, report) = SeriesStore::open(&series_dir, head_opts, WalOptions::default())?;
        tracing::info!(
            dir = %series_dir.display(),
            wal_records = report.wal_records,
            series = report.series,
            samples = report.samples_applied,
            refused = report.samples_refused,
            past_retention = report.samples_past_retention,
            truncated_tail_bytes = report.truncated_tail_bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "series store opened"
        );
        let (logs, report) = LogStore::open(&logs_dir, log_opts, now_ms())?;
        tracing::info!(
            dir = %logs_dir.display(),
            wal_records = report.wal_records,
            records = report.records_restored,
            expired = report.records_expired,
            truncated_tail_bytes = report.truncated_tail_bytes,
            "log store opened"
        );
        Ok::<_, RunError>((Arc::new(store), Arc::new(logs)))
    })
    .await
    .map_err(|e| RunError::Task(e.to_string()))??;

    // The ruler first: its log metrics must be counted from the first
    // record the receivers accept.
    let (sink, mut alerts) = ChannelSink::new(ALERT_QUEUE);
    let (ruler, ruler_task, initial) = ruler::start(
        settings.ruler.clone(),
        store.clone(),
        RulerOptions {
            sink: Some(Arc::new(sink)),
            reload_on_sighup: true,
            ..RulerOptions::default()
        },
        shutdown.clone(),
    )
    .await?;
    match initial {
        Ok(s) => tracing::info!(
            files = s.files,
            groups = s.groups,
            rules = s.rules,
            "rules loaded"
        ),
        Err(e) => {
            shutdown.cancel();
            let _ = ruler_task.await;
            return Err(RunError::Rules(e));
        }
    }
    let mut log_metrics = ruler.log_metrics();
    let current = log_metrics.borrow_and_update().clone();
    logs.set_log_metrics(&current)?;
    let lm_logs = logs.clone();
    let lm_shutdown = shutdown.clone();
    let lm_task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = lm_shutdown.cancelled() => break,
                changed = log_metrics.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let m = log_metrics.borrow_and_update().clone();
                    if let Err(e) = lm_logs.set_log_metrics(&m) {
                        tracing::error!(error = %e, "log metrics of the reloaded rules not applied");
                    }
                }
            }
        }
    });
    // The incident manager will consume these; until then they are logged
    // and visible at /api/v1/alerts.
    let alert_task = tokio::spawn(async move {
        while let Some(batch) = alerts.recv().await {
            for a in &batch {
                tracing::debug!(alert = %a.labels, resolved = a.resolved, "alert");
            }
            if let Some(out) = &alerts_out {
                // A receiver that went away only loses its copy.
                let _ = out.send(batch).await;
            }
        }
    });

    let (eg_config, eg_policy, eg_path) = (
        settings.error_groups.clone(),
        settings.new_groups,
        settings.data_dir.join(ERROR_GROUPS_FILE),
    );
    let opened = tokio::task::spawn_blocking(move || {
        ErrorGroups::open(eg_config, eg_policy, now_ms(), &eg_path)
            .map(|(g, report)| (g, report, eg_path))
    })
    .await
    .map_err(|e| RunError::Task(e.to_string()))?;
    let (error_groups, report, eg_path) = match opened {
        Ok(v) => v,
        Err(e) => {
            shutdown.cancel();
            let _ = ruler_task.await;
            return Err(e.into());
        }
    };
    tracing::info!(
        file = %eg_path.display(),
        restored = report.restored,
        skipped = report.skipped,
        "error groups loaded"
    );
    if let Some(reason) = &report.first_skip_reason {
        tracing::warn!(
            skipped = report.skipped,
            first = %reason,
            "stored error groups not restored (they stay in the database)"
        );
    }
    let error_groups = Arc::new(error_groups);
    logs.set_observer(error_groups.clone());

    let agents_path = settings.data_dir.join(AGENTS_FILE);
    let opened = tokio::task::spawn_blocking(move || {
        AgentRegistry::open(&agents_path, AgentRegistryOptions::default())
            .map(|(a, report)| (a, report, agents_path))
    })
    .await
    .map_err(|e| RunError::Task(e.to_string()))?;
    let agents = match opened {
        Ok((a, report, path)) => {
            tracing::info!(file = %path.display(), restored = report.restored, evicted = report.evicted, "agent inventory loaded");
            Arc::new(a)
        }
        Err(e) => {
            shutdown.cancel();
            let _ = ruler_task.await;
            return Err(e.into());
        }
    };

    let ingest = Arc::new(
        Ingest::new(
            settings.receivers.ingest.clone(),
            store.clone(),
            logs.clone(),
            system_clock(),
        )
        .with_agents(agents.clone()),
    );
    let receivers = OtlpReceivers::start(&settings.receivers, ingest.clone(), shutdown.clone())
        .await
        .inspect_err(|_| shutdown.cancel())?;

    settings
        .api
        .auth
        .check_bind(settings.api_listen)
        .map_err(RunError::ApiBind)?;
    let api_state = Arc::new(
        ApiState::new(store.clone(), Some(ruler.clone()), settings.api.clone())
            .with_readiness(readiness.clone()),
    );
    let parts = Arc::new(Parts {
        store: store.clone(),
        logs: logs.clone(),
        ingest,
        ruler: ruler.clone(),
        api: api_state.clone(),
        error_groups,
        agents: agents.clone(),
        head_max_bytes: usize::try_from(settings.head_max_bytes).unwrap_or(usize::MAX),
        head_budget_truncations: std::sync::atomic::AtomicU64::new(0),
    });
    // Exported only with telemetry.otlp (the global registry is disabled
    // otherwise).
    crate::self_metrics::register(
        &tocsin_telemetry::SelfMetrics::global(),
        &parts.ingest,
        &parts.ruler,
        &parts.store,
        &parts.logs,
    );
    let metrics_route = api::protect(
        Router::new()
            .route("/metrics", get(metrics_handler))
            .route("/api/v1/logs", get(logs_handler).post(logs_handler))
            .route("/api/v1/error-groups", get(error_groups_handler))
            .with_state(parts.clone()),
        &settings.api.auth,
        Role::Read,
    );
    let app = api::router(api_state)
        .merge(metrics_route)
        .merge(agents::routes(agents, system_clock(), &settings.api.auth));
    let listener = tokio::net::TcpListener::bind(settings.api_listen)
        .await
        .map_err(|source| {
            shutdown.cancel();
            RunError::ApiListen {
                addr: settings.api_listen,
                source,
            }
        })?;
    let api_addr = listener
        .local_addr()
        .map_err(|source| RunError::ApiListen {
            addr: settings.api_listen,
            source,
        })?;
    let api_shutdown = shutdown.clone();
    let api_tls = settings.api_tls.clone();
    let api_task = tokio::spawn(async move {
        crate::server::http::serve("api", listener, api_tls.as_ref(), app, api_shutdown).await;
    });

    let interval_ms = settings.ruler.evaluation_interval_ms.max(1000);
    let periodic = tokio::spawn(periodic(
        parts.clone(),
        Duration::from_millis(u64::try_from(interval_ms).unwrap_or(60_000)),
        settings.retention_ms,
        shutdown.clone(),
    ));

    readiness.set_ready(true);
    tracing::info!(
        api = %api_addr,
        otlp_grpc = ?receivers.grpc_addr,
        otlp_http = ?receivers.http_addr,
        data_dir = %settings.data_dir.display(),
        "collector ready"
    );
    if let Some(tx) = bound {
        let _ = tx.send(Bound {
            api: api_addr,
            otlp_grpc: receivers.grpc_addr,
            otlp_http: receivers.http_addr,
        });
    }

    shutdown.cancelled().await;
    readiness.set_ready(false);
    tracing::info!("shutting down");
    let stop = async {
        receivers.wait().await;
        let _ = api_task.await;
        let _ = periodic.await;
        let _ = ruler_task.await;
        let _ = lm_task.await;
        alert_task.abort();
        let store = parts.store.clone();
        let logs = parts.logs.clone();
        let groups = parts.error_groups.clone();
        let agents = parts.agents.clone();
        tokio::task::spawn_blocking(move || {
            persist_error_groups(&groups);
            maintain_agents(&agents, now_ms());
            let flushed = logs.flush_counters(now_ms(), &store);
            if let Err(e) = store.snapshot() {
                tracing::warn!(
                    error = %e,
                    "head snapshot at shutdown failed; the WAL holds everything"
                );
            }
            flushed
        })
        .await
    };
    match tokio::time::timeout(SHUTDOWN_DEADLINE, stop).await {
        Ok(Ok(Ok(_))) => tracing::info!("stopped"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "last counter flush failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "last counter flush failed"),
        Err(_) => tracing::warn!(
            deadline_s = SHUTDOWN_DEADLINE.as_secs(),
            "shutdown deadline passed; stopping anyway (everything acknowledged is in the WAL)"
        ),
    }
    Ok(())
}

/// Every evaluation interval: log retention, the log counters and the
/// collector's own series into the store, head retention.
async fn periodic(
    parts: Arc<Parts>,
    every: Duration,
    retention_ms: i64,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let p = parts.clone();
        let done = tokio::task::spawn_blocking(move || housekeeping(&p, retention_ms)).await;
        if let Err(e) = done {
            tracing::error!(error = %e, "periodic task failed");
        }
    }
}

fn persist_error_groups(groups: &ErrorGroups) {
    match groups.persist() {
        Ok(0) => {}
        Ok(n) => tracing::debug!(groups = n, "error groups written"),
        Err(e) => tracing::error!(error = %e, "error groups not written (retried next time)"),
    }
}

fn maintain_agents(agents: &AgentRegistry, now: i64) {
    if let Err(e) = agents.maintain(now) {
        tracing::error!(error = %e, "agent inventory not written (retried next time)");
    }
}

fn housekeeping(p: &Parts, retention_ms: i64) {
    let now = now_ms();
    maintain_agents(&p.agents, now);
    persist_error_groups(&p.error_groups);
    if let Err(e) = p.logs.enforce_retention(now) {
        tracing::error!(error = %e, "log retention failed");
    }
    // The log store writes its own series along with its counters.
    if let Err(e) = p.logs.flush_counters(now, &p.store) {
        tracing::error!(error = %e, "log counters not written to the series store");
    }
    let mut own: Vec<(Labels, i64, f64)> = own_series(p)
        .into_iter()
        .map(|(l, v)| (l, now, v))
        .collect();
    // Agents gone or renamed: their series end now, not after the lookback.
    own.extend(
        p.agents
            .take_retired()
            .into_iter()
            .map(|l| (l, now, tocsin_rules::promql::value::stale_nan())),
    );
    if let Err(e) = p.store.append(&own) {
        tracing::error!(error = %e, "self metrics not written to the series store");
    }
    let dropped = p
        .store
        .head()
        .truncate_before(now.saturating_sub(retention_ms));
    if dropped > 0 {
        tracing::debug!(
            dropped,
            "series samples past retention dropped from the head"
        );
    }
    if let Some(out) = p.store.head().enforce_memory_budget(p.head_max_bytes, now) {
        p.head_budget_truncations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let kept_since = format_time(Some(out.cutoff_ms));
        if out.still_over {
            tracing::error!(
                head_max_bytes = p.head_max_bytes,
                estimated_bytes = out.bytes_after,
                series_removed = out.series_removed,
                kept_since = %kept_since,
                "series head over its memory budget with only its last hour left; raise head_max_bytes or send fewer series"
            );
        } else {
            tracing::warn!(
                head_max_bytes = p.head_max_bytes,
                bytes_before = out.bytes_before,
                bytes_after = out.bytes_after,
                series_removed = out.series_removed,
                kept_since = %kept_since,
                "series head over its memory budget: samples before kept_since left it ahead of retention"
            );
        }
    }
    if let Err(e) = p.store.snapshot_if_due() {
        tracing::error!(error = %e, "head snapshot failed; the WAL is kept until one succeeds");
    }
}

fn named(name: &str, pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(std::iter::once(("__name__", name)).chain(pairs.iter().copied()))
}

/// The collector's own series except the log store's (which it writes
/// itself), valued now.
fn own_series(p: &Parts) -> Vec<(Labels, f64)> {
    let mut out = Vec::new();
    for (name, labels, v) in p.ingest.counters().snapshot() {
        out.push((named(name, &labels), v as f64));
    }
    for (name, v) in p.ingest.table_metrics() {
        out.push((named(name, &[]), v));
    }
    out.extend(p.ruler.self_metrics());
    out.extend(p.api.metrics.samples());
    out.extend(p.error_groups.series(now_ms()));
    // tocsin_agent_up and tocsin_agent_clock_skew_seconds.
    out.extend(p.agents.series(now_ms()));
    let h = p.store.head().stats();
    out.push((named("tocsin_store_head_series", &[]), h.series as f64));
    out.push((
        named("tocsin_store_head_chunk_bytes", &[]),
        h.chunk_bytes as f64,
    ));
    out.push((
        named("tocsin_store_head_out_of_order_samples", &[]),
        h.out_of_order_samples as f64,
    ));
    out.push((
        named("tocsin_store_head_estimated_bytes", &[]),
        h.estimated_bytes as f64,
    ));
    out.push((
        named("tocsin_store_head_max_bytes", &[]),
        p.head_max_bytes as f64,
    ));
    out.push((
        named("tocsin_store_head_budget_truncations_total", &[]),
        p.head_budget_truncations
            .load(std::sync::atomic::Ordering::Relaxed) as f64,
    ));
    for (name, v) in p.store.stats().series() {
        out.push((named(name, &[]), v));
    }
    out
}

async fn metrics_handler(State(p): State<Arc<Parts>>) -> impl IntoResponse {
    let mut series = own_series(&p);
    series.extend(
        self_series(&p.logs.stats(), 0)
            .into_iter()
            .map(|(l, _, v)| (l, v)),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exposition(series),
    )
}

/// `/api/v1/logs`: stored log records by `query` (a series selector over
/// the record labels), `severity` (the minimum), `start`/`end`, `contains`
/// or `regex` over the body, and `limit`; newest first.
async fn logs_handler(State(p): State<Arc<Parts>>, req: Request) -> Response {
    match logs_query(&p, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn logs_query(p: &Parts, req: Request) -> Result<Response, ApiError> {
    let params = api::params::read(req, p.api.settings.max_request_bytes).await?;
    let start = time_param(&params, "start", i64::MIN)?;
    let end = time_param(&params, "end", i64::MAX)?;
    let limit = match params.get("limit") {
        None | Some("") => None,
        Some(v) => Some(v.parse::<usize>().map_err(|e| invalid_param("limit", e))?),
    };
    let nonempty = |name: &str| params.get(name).filter(|v| !v.is_empty());
    let q = LogQuery::from_params(
        nonempty("query"),
        nonempty("severity"),
        Some(start),
        Some(end),
        nonempty("contains"),
        nonempty("regex"),
        limit,
    )
    .map_err(|e| ApiError::bad_data(e.to_string()))?;
    let logs = p.logs.clone();
    let result = tokio::task::spawn_blocking(move || logs.query(&q))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let records: Vec<serde_json::Value> = result
        .records
        .iter()
        .map(|r| {
            let labels: serde_json::Map<String, serde_json::Value> = r
                .labels
                .iter()
                .map(|l| (l.name.clone(), l.value.clone().into()))
                .collect();
            let attributes: serde_json::Map<String, serde_json::Value> = r
                .attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string().into()))
                .collect();
            serde_json::json!({
                "time": format_time(Some(r.time_ms)),
                "time_ms": r.time_ms,
                "received_ms": r.received_ms,
                "severity": r.severity.as_str(),
                "severity_text": &*r.severity_text,
                "labels": labels,
                "body": r.body,
                "attributes": attributes,
                "trace_id": r.trace_id,
                "span_id": r.span_id,
            })
        })
        .collect();
    let data = serde_json::json!({
        "records": records,
        "truncated": result.truncated,
        "scanned": result.scanned,
    });
    Ok(success(&data.to_string(), &[], &[]))
}

/// `/api/v1/error-groups`: every error group, most recently seen first.
async fn error_groups_handler(State(p): State<Arc<Parts>>) -> Response {
    let groups: Vec<serde_json::Value> = p
        .error_groups
        .groups()
        .into_iter()
        .map(|g| {
            serde_json::json!({
                "id": g.id,
                "template": g.template,
                "count": g.count,
                "first_seen": format_time(Some(g.first_seen_ms)),
                "last_seen": format_time(Some(g.last_seen_ms)),
                "hosts": g.hosts,
                "samples": g.samples,
            })
        })
        .collect();
    success(&serde_json::Value::from(groups).to_string(), &[], &[])
}

/// Prometheus text exposition of `series`, grouped by metric name.
pub fn exposition(mut series: Vec<(Labels, f64)>) -> String {
    series.sort_by(|a, b| {
        a.0.metric_name()
            .cmp(b.0.metric_name())
            .then_with(|| a.0.to_string().cmp(&b.0.to_string()))
    });
    let mut out = String::new();
    let mut last = String::new();
    for (labels, v) in &series {
        let name = labels.metric_name();
        if name != last {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            last = name.to_string();
        }
        out.push_str(name);
        let mut first = true;
        for l in labels.iter().filter(|l| l.name != "__name__") {
            out.push(if first { '{' } else { ',' });
            first = false;
            let _ = write!(out, "{}=\"", l.name);
            for c in l.value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        if v.is_nan() {
            out.push_str("NaN");
        } else if v.is_infinite() {
            out.push_str(if *v > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{v}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_collector_on_the_same_data_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_data_dir(dir.path()).unwrap();
        let err = lock_data_dir(dir.path()).unwrap_err();
        assert!(matches!(err, RunError::DataDirLocked { .. }), "{err}");
        assert!(
            err.to_string().contains("in use by another collector"),
            "{err}"
        );
        drop(held);
        lock_data_dir(dir.path()).unwrap();
    }

    #[test]
    fn exposition_groups_by_name_and_escapes_values() {
        let text = exposition(vec![
            (named("b_total", &[("x", "a\"b\\c\nd")]), 2.0),
            (named("a_bytes", &[]), f64::INFINITY),
            (named("b_total", &[("x", "plain")]), 1.5),
        ]);
        assert_eq!(
            text,
            concat!(
                "# TYPE a_bytes gauge\n",
                "a_bytes +Inf\n",
                "# TYPE b_total counter\n",
                "b_total{x=\"a\\\"b\\\\c\\nd\"} 2\n",
                "b_total{x=\"plain\"} 1.5\n",
            )
        );
    }
}
