//! The ruler: evaluates the configured rule files' groups, each on its own
//! tokio task at its interval, at a per-group offset within the interval
//! as Prometheus schedules them ([`schedule`]); writes recording-rule
//! results and `ALERTS` / `ALERTS_FOR_STATE` into the series store; hands
//! alerts to an [`AlertSink`]; keeps alert state in SQLite ([`state`]) so
//! `for` and `keep_firing_for` progress survive a restart; and reloads on
//! a file change, on SIGHUP and on [`RulerHandle::reload`] (the API's
//! `POST /-/reload`).
//!
//! Invariants: a reload is all or nothing: if any matched file is invalid
//! the running rules stay untouched, every problem is logged as
//! `file:line:col: message` and `tocsin_rules_last_reload_successful` is
//! 0. Reloads are serialised by one manager task. A group that survives a
//! reload (same file and name) keeps the state of its unchanged rules
//! (matched by name and labels, as Prometheus); a group that appears gets
//! its state from the database; a group that disappears writes staleness
//! markers for its series and its saved state is deleted. The group tasks
//! read time only through the injected [`Clock`].
//!
//! The rule files' `log_metrics` are published on a watch channel
//! ([`RulerHandle::log_metrics`]) for whoever counts log records.

pub mod clock;
pub mod config;
pub mod group;
pub mod loader;
pub mod metrics;
pub mod schedule;
pub mod sink;
pub mod state;
mod watcher;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use tocsin_rules::file::LogMetric;
use tocsin_rules::promql::Engine;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::store::SeriesStore;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{RulerConfig, RulerSettings};
pub use group::{AlertingSnapshot, GroupKey, GroupRunner, GroupSnapshot, RuleSnapshot};
pub use loader::LoadError;
pub use metrics::RulerMetrics;
pub use sink::{AlertSink, ChannelSink, OutgoingAlert};
pub use state::{StateDb, StateError};

use group::EvalReport;
use metrics::group_label;

/// Reload requests waiting for the manager; more are coalesced (a file
/// change or signal already queued covers the next one).
const RELOAD_QUEUE: usize = 8;

/// Why the ruler could not start.
#[derive(Debug, thiserror::Error)]
pub enum RulerError {
    #[error(transparent)]
    State(#[from] StateError),
    /// A start-up task failed (panicked or was cancelled).
    #[error("ruler start-up failed: {0}")]
    Task(String),
}

/// Why a reload did not take effect.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    /// A rule file is invalid; the previous rules keep running.
    #[error("{0}")]
    Invalid(#[from] LoadError),
    /// The ruler is shutting down.
    #[error("the ruler is not running")]
    Stopped,
}

/// What a successful reload loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub files: usize,
    pub groups: usize,
    pub rules: usize,
}

/// What started a reload (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Start,
    Request,
    Signal,
    FileChange,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::Start => "start",
            Cause::Request => "request",
            Cause::Signal => "SIGHUP",
            Cause::FileChange => "file change",
        }
    }
}

struct ReloadRequest {
    cause: Cause,
    reply: Option<oneshot::Sender<Result<ReloadSummary, ReloadError>>>,
}

/// What the ruler's tasks share.
pub struct Shared {
    pub(crate) store: Arc<SeriesStore>,
    pub(crate) engine: Engine,
    pub(crate) settings: RulerSettings,
    pub(crate) metrics: Arc<RulerMetrics>,
    pub(crate) state: Option<Mutex<StateDb>>,
    pub(crate) sink: Option<Arc<dyn AlertSink>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Bumped after every group evaluation (tests and readiness wait on it).
    evaluations: watch::Sender<u64>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How the ruler is wired into the process.
pub struct RulerOptions {
    /// Where alerts go; `None` keeps them only in the API's view.
    pub sink: Option<Arc<dyn AlertSink>>,
    pub clock: Arc<dyn Clock>,
    /// Reload on SIGHUP (the binary sets this; tests leave it off).
    pub reload_on_sighup: bool,
    /// The PromQL engine for rule queries (its step for subqueries without
    /// one is set to the evaluation interval).
    pub engine: Engine,
    /// Keep alert state in this database instead of the settings' file
    /// (tests use an in-memory one).
    pub state_db: Option<StateDb>,
}

impl Default for RulerOptions {
    fn default() -> Self {
        RulerOptions {
            sink: None,
            clock: Arc::new(SystemClock),
            reload_on_sighup: false,
            engine: Engine::default(),
            state_db: None,
        }
    }
}

/// A handle on the running ruler; cheap to clone.
#[derive(Clone)]
pub struct RulerHandle {
    shared: Arc<Shared>,
    groups: Arc<RwLock<Vec<Arc<GroupRunner>>>>,
    reload_tx: mpsc::Sender<ReloadRequest>,
    log_metrics: watch::Receiver<Arc<Vec<LogMetric>>>,
}

impl std::fmt::Debug for RulerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulerHandle").finish_non_exhaustive()
    }
}

impl RulerHandle {
    /// Every group's state as of its last evaluation, in file order.
    pub fn groups(&self) -> Vec<Arc<GroupSnapshot>> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|g| g.snapshot())
            .collect()
    }

    /// Reloads the rule files; resolves once the new rules run (or the old
    /// ones were kept because a file is invalid).
    pub async fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.reload_tx
            .send(ReloadRequest {
                cause: Cause::Request,
                reply: Some(tx),
            })
            .await
            .map_err(|_| ReloadError::Stopped)?;
        rx.await.map_err(|_| ReloadError::Stopped)?
    }

    /// The loaded rule files' log metrics; changes on every successful
    /// reload.
    pub fn log_metrics(&self) -> watch::Receiver<Arc<Vec<LogMetric>>> {
        self.log_metrics.clone()
    }

    pub fn metrics(&self) -> &Arc<RulerMetrics> {
        &self.shared.metrics
    }

    /// The ruler's self-metric series ([`RulerMetrics::samples`]) plus
    /// `tocsin_rules_alerts_dropped_total`, the alerts the sink refused.
    pub fn self_metrics(&self) -> Vec<(tocsin_rules::promql::Labels, f64)> {
        let mut out = self.shared.metrics.samples();
        if let Some(sink) = &self.shared.sink {
            out.push((
                tocsin_rules::promql::Labels::from_pairs([(
                    "__name__",
                    "tocsin_rules_alerts_dropped_total",
                )]),
                sink.dropped_alerts() as f64,
            ));
        }
        out
    }

    /// A counter bumped after every group evaluation.
    pub fn evaluations(&self) -> watch::Receiver<u64> {
        self.shared.evaluations.subscribe()
    }
}

/// Starts the ruler: opens the alert-state database, loads the rule files
/// and starts the groups. Returns the handle, the manager task (it ends
/// after `shutdown`, once every group stopped) and the result of the
/// initial load: an invalid rule file at start leaves the ruler running
/// with no rules (it loads them on the next successful reload); the
/// binary decides whether that is fatal.
pub async fn start(
    settings: RulerSettings,
    store: Arc<SeriesStore>,
    options: RulerOptions,
    shutdown: CancellationToken,
) -> Result<
    (
        RulerHandle,
        JoinHandle<()>,
        Result<ReloadSummary, ReloadError>,
    ),
    RulerError,
> {
    let db = match options.state_db {
        Some(db) => db,
        None => {
            let path = settings.state_file.clone();
            tokio::task::spawn_blocking(move || StateDb::open(&path))
                .await
                .map_err(|e| RulerError::Task(e.to_string()))??
        }
    };
    let (evaluations, _) = watch::channel(0u64);
    let mut engine = options.engine;
    // A subquery without a step uses the global evaluation interval, as in
    // Prometheus.
    engine.options.no_step_subquery_interval_ms = settings.evaluation_interval_ms;
    let shared = Arc::new(Shared {
        store,
        engine,
        settings,
        metrics: Arc::new(RulerMetrics::new()),
        state: Some(Mutex::new(db)),
        sink: options.sink,
        clock: options.clock,
        evaluations,
    });
    let groups = Arc::new(RwLock::new(Vec::new()));
    let (reload_tx, reload_rx) = mpsc::channel(RELOAD_QUEUE);
    let (lm_tx, lm_rx) = watch::channel(Arc::new(Vec::new()));
    let mut manager = Manager {
        shared: shared.clone(),
        groups: groups.clone(),
        tasks: Vec::new(),
        fingerprint: None,
        log_metrics: lm_tx,
    };
    let initial = manager.reload(Cause::Start).await;

    let mut watcher = None;
    if shared.settings.watch_files {
        match watcher::watch(&shared.settings.rule_files, reload_tx.clone()) {
            Ok(w) => watcher = Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "rule files will not be reloaded on change (SIGHUP and /-/reload still work)")
            }
        }
    }
    if options.reload_on_sighup {
        watcher::on_sighup(reload_tx.clone(), shutdown.clone());
    }
    let task = tokio::spawn(async move {
        // Dropping the watcher stops it: keep it as long as the manager.
        let _watcher = watcher;
        manager.run(reload_rx, shutdown).await;
    });
    Ok((
        RulerHandle {
            shared,
            groups,
            reload_tx,
            log_metrics: lm_rx,
        },
        task,
        initial,
    ))
}

/// Owns the running groups; the only place rule sets change.
struct Manager {
    shared: Arc<Shared>,
    groups: Arc<RwLock<Vec<Arc<GroupRunner>>>>,
    tasks: Vec<(CancellationToken, JoinHandle<()>)>,
    fingerprint: Option<u64>,
    log_metrics: watch::Sender<Arc<Vec<LogMetric>>>,
}

impl Manager {
    async fn run(&mut self, mut rx: mpsc::Receiver<ReloadRequest>, shutdown: CancellationToken) {
        loop {
            let req = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                req = rx.recv() => match req {
                    Some(r) => r,
                    None => break,
                },
            };
            if req.cause == Cause::FileChange && !self.files_changed().await {
                continue;
            }
            let result = self.reload(req.cause).await;
            if let Some(reply) = req.reply {
                // The requester may have gone away; the reload stands.
                let _ = reply.send(result);
            }
        }
        self.stop_groups().await;
        tracing::info!("ruler stopped");
    }

    /// Whether the matched files differ from the loaded ones (a change
    /// notification also fires for our own reads and for unrelated files).
    async fn files_changed(&self) -> bool {
        let patterns = self.shared.settings.rule_files.clone();
        let now = tokio::task::spawn_blocking(move || loader::fingerprint(&patterns)).await;
        match (now, self.fingerprint) {
            (Ok(Ok(f)), Some(old)) => f != old,
            _ => true,
        }
    }

    async fn stop_groups(&mut self) {
        for (token, _) in &self.tasks {
            token.cancel();
        }
        for (_, task) in self.tasks.drain(..) {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "rule group task failed");
            }
        }
    }

    async fn reload(&mut self, cause: Cause) -> Result<ReloadSummary, ReloadError> {
        let patterns = self.shared.settings.rule_files.clone();
        let loaded = match tokio::task::spawn_blocking(move || loader::load(&patterns)).await {
            Ok(r) => r,
            Err(e) => Err(LoadError {
                errors: vec![tocsin_rules::file::RuleFileError {
                    file: "rule_files".into(),
                    pos: tocsin_rules::file::Pos::default(),
                    message: format!("loading failed: {e}"),
                }],
            }),
        };
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                for err in &e.errors {
                    tracing::error!(
                        cause = cause.as_str(),
                        error = %err,
                        "invalid rule file; the previous rules keep running"
                    );
                }
                self.shared.metrics.reload_failed();
                return Err(ReloadError::Invalid(e));
            }
        };

        self.stop_groups().await;
        // Readers keep seeing the old groups until the new ones replace
        // them below.
        let old: Vec<Arc<GroupRunner>> = self
            .groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let settings = &self.shared.settings;
        let mut new = Vec::new();
        let mut summary = ReloadSummary {
            files: loaded.files.len(),
            ..ReloadSummary::default()
        };
        let mut log_metrics = Vec::new();
        for f in &loaded.files {
            log_metrics.extend(f.log_metrics.iter().cloned());
            for g in &f.groups {
                summary.groups += 1;
                summary.rules += g.rules.len();
                new.push(Arc::new(GroupRunner::new(
                    &f.source,
                    g,
                    settings.evaluation_interval_ms,
                    settings.query_offset_ms,
                )));
            }
        }

        // Carrying state over and restoring it are blocking (locks, SQLite).
        let shared = self.shared.clone();
        let new_groups = new.clone();
        let carried =
            tokio::task::spawn_blocking(move || carry_state(&shared, &old, &new_groups)).await;
        if let Err(e) = carried {
            tracing::error!(error = %e, "carrying alert state over the reload failed");
        }

        self.shared.metrics.set_groups(
            &new.iter()
                .map(|g| {
                    (
                        group_label(&g.key.file, &g.key.name),
                        g.snapshot().rules.len(),
                    )
                })
                .collect::<Vec<_>>(),
        );
        *self.groups.write().unwrap_or_else(|e| e.into_inner()) = new.clone();
        // The first slots are fixed now, not when each task first runs:
        // time that passes before a task is polled must count as late.
        let now = self.shared.clock.now_ms();
        for g in new {
            let token = CancellationToken::new();
            let task = tokio::spawn(run_group(self.shared.clone(), g, now, token.clone()));
            self.tasks.push((token, task));
        }
        self.fingerprint = Some(loaded.fingerprint);
        self.log_metrics.send_replace(Arc::new(log_metrics));
        self.shared
            .metrics
            .reload_succeeded(self.shared.clock.now_ms());
        tracing::info!(
            cause = cause.as_str(),
            files = summary.files,
            groups = summary.groups,
            rules = summary.rules,
            "rules loaded"
        );
        Ok(summary)
    }
}

/// Moves state from the old groups to the new ones: same group → rule
/// state carried over; new group → restored from the database; removed
/// group → staleness markers and its saved state deleted.
fn carry_state(shared: &Shared, old: &[Arc<GroupRunner>], new: &[Arc<GroupRunner>]) {
    let old_by_key: BTreeMap<&GroupKey, &Arc<GroupRunner>> =
        old.iter().map(|g| (&g.key, g)).collect();
    for g in new {
        if let Some(o) = old_by_key.get(&g.key) {
            g.adopt(o);
            continue;
        }
        let Some(db) = shared.state.as_ref() else {
            continue;
        };
        let saved = db
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .load(&g.key.file, &g.key.name);
        match saved {
            Ok(None) => {}
            Ok(Some(s)) => match g.restore(s.state, shared) {
                Ok(n) if n > 0 => tracing::info!(
                    file = %g.key.file,
                    group = %g.key.name,
                    rules = n,
                    "alert state restored"
                ),
                Ok(_) => {}
                Err(e) => {
                    shared.metrics.state_restore_failed();
                    tracing::error!(file = %g.key.file, group = %g.key.name, error = %e, "alert state not restored");
                }
            },
            Err(e) => {
                shared.metrics.state_restore_failed();
                tracing::error!(file = %g.key.file, group = %g.key.name, error = %e, "alert state not restored");
            }
        }
    }
    let new_keys: Vec<&GroupKey> = new.iter().map(|g| &g.key).collect();
    let now = shared.clock.now_ms();
    for o in old.iter().filter(|o| !new_keys.contains(&&o.key)) {
        o.mark_removed(shared, now);
        if let Some(db) = shared.state.as_ref()
            && let Err(e) = db
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .delete(&o.key.file, &o.key.name)
        {
            tracing::warn!(group = %o.key.name, error = %e, "saved state of a removed group not deleted");
        }
    }
}

/// A group's evaluation loop: waits for each slot on the injected clock,
/// skips (and counts) slots it is too late for, evaluates off the async
/// executor.
async fn run_group(
    shared: Arc<Shared>,
    group: Arc<GroupRunner>,
    started_ms: i64,
    cancel: CancellationToken,
) {
    let interval = group.interval_ms.max(1);
    let offset = schedule::offset_ms(&group.key.file, &group.key.name, interval);
    let label = group_label(&group.key.file, &group.key.name);
    let mut due = schedule::first_slot(started_ms, interval, offset);
    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            _ = shared.clock.sleep_until(due) => {}
        }
        let (t, missed) = schedule::catch_up(due, shared.clock.now_ms(), interval);
        if missed > 0 {
            shared.metrics.iterations_missed(&label, missed);
            tracing::warn!(
                file = %group.key.file,
                group = %group.key.name,
                missed,
                "rule group evaluation slots missed"
            );
        }
        let (s, g) = (shared.clone(), group.clone());
        // Not raced against cancellation: an evaluation, once begun,
        // finishes and saves its state.
        let result: Result<EvalReport, _> =
            tokio::task::spawn_blocking(move || g.evaluate(&s, t)).await;
        if let Err(e) = result {
            tracing::error!(file = %group.key.file, group = %group.key.name, error = %e, "rule group evaluation panicked");
        }
        shared.evaluations.send_modify(|n| *n = n.wrapping_add(1));
        due = t.saturating_add(interval);
    }
}

#[cfg(test)]
mod tests;
