//! One rule group as the ruler runs it: the rule engine's
//! [`GroupEvaluator`] (which owns the group's rule and alert state), the
//! store adapter its results are written through, and the snapshot the
//! API reads.
//!
//! An evaluation holds the group's lock from the query to the state save,
//! so a reload that copies state from this group sees a finished
//! evaluation, never half of one. Readers never take that lock: they read
//! the [`GroupSnapshot`] published at the end of each evaluation.
//!
//! Results reach the store in batches: the adapter buffers appended
//! samples and writes them (one write-ahead-log commit) before the next
//! read and at the end, so a rule still reads what an earlier rule of the
//! same evaluation recorded, without one fsync per sample.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tocsin_rules::alert::{Alert, AlertState};
use tocsin_rules::file::{Pos, RuleGroup, RuleKind};
use tocsin_rules::group::{
    AppendError, Appender, EvalContext, GroupAlertState, GroupEvaluator, RuleHealth,
};
use tocsin_rules::promql::storage::{Matcher, Queryable, StorageError};
use tocsin_rules::promql::{Labels, Series};

use super::Shared;
use super::metrics::group_label;
use super::sink::{OutgoingAlert, generator_url};
use crate::store::SeriesStore;

/// Samples buffered before the adapter writes them even without a read:
/// bounds the memory a rule with a huge result holds.
const MAX_BUFFERED_SAMPLES: usize = 10_000;

/// A group's identity across reloads and restarts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub file: String,
    pub name: String,
}

/// What the API shows of a group, as of its last evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    pub file: String,
    pub name: String,
    pub interval_ms: i64,
    pub limit: usize,
    pub query_offset_ms: i64,
    /// The timestamp of the last evaluation (ms), if any.
    pub last_evaluation_ms: Option<i64>,
    /// How long the last evaluation took.
    pub evaluation_time: Duration,
    pub rules: Vec<RuleSnapshot>,
}

/// What the API shows of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSnapshot {
    pub name: String,
    /// The expression, as the PromQL parser prints it.
    pub query: String,
    /// The rule's labels with the group's merged in.
    pub labels: Vec<(String, String)>,
    pub health: RuleHealth,
    pub last_error: Option<String>,
    pub last_evaluation_ms: Option<i64>,
    /// Present for alerting rules.
    pub alerting: Option<AlertingSnapshot>,
}

/// The alerting part of a [`RuleSnapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct AlertingSnapshot {
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    /// The annotation templates as written.
    pub annotations: Vec<(String, String)>,
    /// The highest state of the rule's alerts; inactive when none.
    pub state: AlertState,
    /// Pending and firing alerts, ordered by labels.
    pub alerts: Vec<Alert>,
}

/// One group under the ruler.
#[derive(Debug)]
pub struct GroupRunner {
    pub key: GroupKey,
    pub interval_ms: i64,
    evaluator: Mutex<GroupEvaluator>,
    snapshot: RwLock<Arc<GroupSnapshot>>,
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl GroupRunner {
    pub fn new(
        file: &str,
        group: &RuleGroup,
        default_interval_ms: i64,
        default_offset_ms: i64,
    ) -> Self {
        let ev = GroupEvaluator::new(group, default_interval_ms);
        let key = GroupKey {
            file: file.to_string(),
            name: group.name.clone(),
        };
        let snapshot = snapshot_of(
            &key,
            &ev,
            group
                .query_offset
                .map(duration_ms)
                .unwrap_or(default_offset_ms),
            group.limit,
            None,
            Duration::ZERO,
        );
        GroupRunner {
            interval_ms: ev.interval_ms(),
            key,
            evaluator: Mutex::new(ev),
            snapshot: RwLock::new(Arc::new(snapshot)),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, GroupEvaluator> {
        // The evaluator's state is replaced wholesale by each evaluation's
        // steps; a panic mid-way leaves a usable (if stale) state.
        self.evaluator.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state as of the last evaluation.
    pub fn snapshot(&self) -> Arc<GroupSnapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn publish(&self, s: GroupSnapshot) {
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
    }

    /// Takes over the rule and alert state of the same group before a
    /// reload (rules matched by name and labels).
    pub fn adopt(&self, old: &GroupRunner) {
        let old_ev = old.lock();
        let mut ev = self.lock();
        ev.copy_state_from(&old_ev);
        let prev = self.snapshot();
        let s = snapshot_of(
            &self.key,
            &ev,
            prev.query_offset_ms,
            prev.limit,
            old.snapshot().last_evaluation_ms,
            old.snapshot().evaluation_time,
        );
        drop(ev);
        self.publish(s);
    }

    /// Restores alert state saved before a restart. Rules whose state is
    /// older than the outage tolerance start afresh. Returns how many rules
    /// got their state back.
    pub fn restore(&self, saved: GroupAlertState, shared: &Shared) -> Result<usize, String> {
        let now = shared.clock.now_ms();
        let tolerance = shared.settings.for_outage_tolerance_ms;
        let mut saved = saved;
        saved.rules.retain(|r| {
            let fresh = r
                .state
                .last_eval_at
                .is_some_and(|t| now.saturating_sub(t) <= tolerance);
            if !fresh {
                tracing::info!(
                    file = %self.key.file,
                    group = %self.key.name,
                    rule = %r.name,
                    "saved alert state is older than the outage tolerance; alerts start afresh"
                );
            }
            fresh
        });
        let n = saved.rules.len();
        let mut ev = self.lock();
        ev.restore_alert_state(saved, now, shared.settings.for_grace_period_ms)
            .map_err(|e| e.to_string())?;
        let prev = self.snapshot();
        let s = snapshot_of(
            &self.key,
            &ev,
            prev.query_offset_ms,
            prev.limit,
            None,
            Duration::ZERO,
        );
        drop(ev);
        self.publish(s);
        Ok(n)
    }

    /// Evaluates the group at `t` (ms): writes results and alert series,
    /// hands alerts to the sink, saves alert state, publishes the snapshot
    /// and counts. Blocking (store and database I/O): run it off the async
    /// executor.
    pub fn evaluate(&self, shared: &Shared, t: i64) -> EvalReport {
        let _span = tracing::info_span!(
            "rule_group_evaluation",
            file = %self.key.file,
            group = %self.key.name,
            t
        )
        .entered();
        let started = Instant::now();
        let mut ev = self.lock();
        let ctx = EvalContext {
            engine: &shared.engine,
            external_labels: &shared.settings.external_labels,
            external_url: &shared.settings.external_url,
            default_query_offset_ms: shared.settings.query_offset_ms,
        };
        let mut app = StoreAppender::new(&shared.store);
        let errors = ev.eval(&mut app, t, &ctx);
        let written = app.finish();
        for (i, e) in &errors {
            let rule = ev
                .rules()
                .get(*i)
                .map(|r| r.name().to_string())
                .unwrap_or_default();
            tracing::warn!(
                file = %self.key.file,
                group = %self.key.name,
                rule,
                error = %e,
                "rule evaluation failed"
            );
        }
        if let Some(e) = &written.error {
            tracing::error!(
                file = %self.key.file,
                group = %self.key.name,
                error = %e,
                "rule results could not be stored"
            );
        }
        if written.refused > 0 {
            tracing::warn!(
                file = %self.key.file,
                group = %self.key.name,
                refused = written.refused,
                "the store refused rule results (a different value at the same timestamp, or too old)"
            );
        }

        let mut outgoing = Vec::new();
        let interval = ev.interval_ms();
        for r in ev.rules_mut() {
            let expr = r.rule().expr.to_string();
            let Some(tracker) = r.tracker_mut() else {
                continue;
            };
            for a in tracker.take_alerts_to_send(t, shared.settings.resend_delay_ms, interval) {
                outgoing.push(outgoing_alert(shared, &self.key, &expr, a));
            }
        }
        let has_alerts = ev.rules().iter().any(|r| r.tracker().is_some());
        let state = has_alerts.then(|| ev.alert_state());
        let offset = ev.query_offset_ms(&ctx);
        let elapsed = started.elapsed();
        let snapshot = snapshot_of(
            &self.key,
            &ev,
            offset,
            self.snapshot().limit,
            Some(t),
            elapsed,
        );
        // Saved under the lock: a reload copying this group's state, and
        // the next evaluation's save, come strictly after this one.
        if let (Some(state), Some(db)) = (state, shared.state.as_ref()) {
            let db = db.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = db.save(&self.key.file, &state, shared.clock.now_ms()) {
                shared.metrics.state_save_failed();
                tracing::error!(
                    file = %self.key.file,
                    group = %self.key.name,
                    error = %e,
                    "alert state could not be saved; a restart would lose `for` progress"
                );
            }
        }
        drop(ev);
        self.publish(snapshot);
        if let Some(sink) = &shared.sink {
            sink.send(outgoing);
        }
        shared.metrics.evaluated(
            &group_label(&self.key.file, &self.key.name),
            t,
            elapsed.as_secs_f64(),
            errors.len(),
            written.refused,
        );
        EvalReport {
            t,
            rule_errors: errors.len(),
            samples_stored: written.stored,
            samples_refused: written.refused,
        }
    }

    /// Writes staleness markers at `t` for every series this group wrote
    /// at its last evaluation: the group was removed by a reload.
    pub fn mark_removed(&self, shared: &Shared, t: i64) {
        let old = self.lock();
        let ctx = EvalContext {
            engine: &shared.engine,
            external_labels: &shared.settings.external_labels,
            external_url: &shared.settings.external_url,
            default_query_offset_ms: shared.settings.query_offset_ms,
        };
        let empty = RuleGroup {
            name: self.key.name.clone(),
            interval: None,
            limit: 0,
            query_offset: Some(Duration::from_millis(
                u64::try_from(old.query_offset_ms(&ctx)).unwrap_or(0),
            )),
            labels: Vec::new(),
            rules: Vec::new(),
            pos: Pos::default(),
        };
        let mut ev = GroupEvaluator::new(&empty, self.interval_ms);
        ev.copy_state_from(&old);
        drop(old);
        let mut app = StoreAppender::new(&shared.store);
        let _ = ev.eval(&mut app, t, &ctx);
        let written = app.finish();
        if let Some(e) = written.error {
            tracing::warn!(group = %self.key.name, error = %e, "staleness markers of a removed group could not be stored");
        }
    }
}

/// What one evaluation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalReport {
    pub t: i64,
    pub rule_errors: usize,
    pub samples_stored: usize,
    pub samples_refused: usize,
}

fn outgoing_alert(shared: &Shared, key: &GroupKey, expr: &str, a: Alert) -> OutgoingAlert {
    let mut labels = a.labels.clone();
    for l in shared.settings.external_labels.iter() {
        if !labels.has(&l.name) {
            labels = labels.with(&l.name, &l.value);
        }
    }
    let resolved = a.resolved_at.is_some();
    OutgoingAlert {
        labels,
        annotations: a.annotations,
        starts_at_ms: a.fired_at.unwrap_or(a.active_at),
        ends_at_ms: a.resolved_at.or(a.valid_until).unwrap_or(a.active_at),
        resolved,
        generator_url: generator_url(&shared.settings.external_url, expr),
        file: key.file.clone(),
        group: key.name.clone(),
    }
}

fn snapshot_of(
    key: &GroupKey,
    ev: &GroupEvaluator,
    query_offset_ms: i64,
    limit: usize,
    last_evaluation_ms: Option<i64>,
    evaluation_time: Duration,
) -> GroupSnapshot {
    let rules = ev
        .rules()
        .iter()
        .map(|r| {
            let rule = r.rule();
            let alerting = match (&rule.kind, r.tracker()) {
                (RuleKind::Alert(_), Some(t)) => Some(AlertingSnapshot {
                    for_ms: duration_ms(rule.for_),
                    keep_firing_for_ms: duration_ms(rule.keep_firing_for),
                    annotations: rule.annotations.clone(),
                    state: t.max_state().unwrap_or(AlertState::Inactive),
                    alerts: t.active_alerts().cloned().collect(),
                }),
                _ => None,
            };
            RuleSnapshot {
                name: r.name().to_string(),
                query: rule.expr.to_string(),
                labels: r.labels().to_vec(),
                health: r.health(),
                last_error: r.last_error().map(str::to_string),
                last_evaluation_ms: r.last_eval_at(),
                alerting,
            }
        })
        .collect();
    GroupSnapshot {
        file: key.file.clone(),
        name: key.name.clone(),
        interval_ms: ev.interval_ms(),
        limit,
        query_offset_ms,
        last_evaluation_ms,
        evaluation_time,
        rules,
    }
}

/// What the adapter wrote.
#[derive(Debug, Default)]
struct Written {
    stored: usize,
    refused: usize,
    error: Option<String>,
}

/// The rule engine's view of the series store: reads go to the store
/// after pending writes are flushed; writes are buffered.
struct StoreAppender<'a> {
    store: &'a SeriesStore,
    pending: RefCell<Vec<(Labels, i64, f64)>>,
    /// (labels, t) → value bits of buffered samples, so two different
    /// values for one timestamp are refused at once, as the store would.
    buffered: HashMap<(Labels, i64), u64>,
    written: RefCell<Written>,
}

impl<'a> StoreAppender<'a> {
    fn new(store: &'a SeriesStore) -> Self {
        StoreAppender {
            store,
            pending: RefCell::new(Vec::new()),
            buffered: HashMap::new(),
            written: RefCell::new(Written::default()),
        }
    }

    fn flush(&self) -> Result<(), StorageError> {
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        if batch.is_empty() {
            return Ok(());
        }
        let mut w = self.written.borrow_mut();
        match self.store.append(&batch) {
            Ok(out) => {
                w.stored += out.stored + out.duplicates;
                w.refused += out.refused_too_old + out.refused_duplicate_timestamp;
                Ok(())
            }
            Err(e) => {
                w.refused += batch.len();
                let msg = e.to_string();
                w.error.get_or_insert_with(|| msg.clone());
                Err(StorageError(msg))
            }
        }
    }

    fn finish(self) -> Written {
        // A failure is recorded in `written` by flush itself.
        let _ = self.flush();
        self.written.into_inner()
    }
}

impl Queryable for StoreAppender<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        self.flush()?;
        self.store.select(matchers, mint, maxt)
    }
}

impl Appender for StoreAppender<'_> {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
        let key = (labels.clone(), t);
        match self.buffered.get(&key) {
            Some(bits) if *bits == v.to_bits() => return Ok(()),
            Some(_) => return Err(AppendError::DuplicateSampleForTimestamp),
            None => {}
        }
        if self.buffered.len() >= MAX_BUFFERED_SAMPLES {
            // Past the bound the store's own check takes over (counted as
            // refused at the flush instead of failing this rule at once).
            self.buffered.clear();
        }
        self.buffered.insert(key, v.to_bits());
        let full = {
            let mut p = self.pending.borrow_mut();
            p.push((labels.clone(), t, v));
            p.len() >= MAX_BUFFERED_SAMPLES
        };
        if full {
            self.flush()
                .map_err(|e| AppendError::Other(e.to_string()))?;
        }
        Ok(())
    }
}
