//! Evaluating one rule group at one timestamp, as Prometheus'
//! `rules/group.go` does: rules run in file order, each recording rule
//! appends its result to the store before the next rule runs (so later
//! rules read it), alerting rules drive their [`AlertTracker`] and write the
//! `ALERTS` / `ALERTS_FOR_STATE` series, series a rule stopped producing get
//! a staleness marker, and `limit`, `query_offset` and the group's `labels`
//! apply.
//!
//! Nothing here reads the clock: the evaluation time is an argument. The
//! store is anything that can be queried and appended to ([`Queryable`] +
//! [`Appender`]); [`MemStorage`] is one.
//!
//! ```
//! use tocsin_rules::file::{load_str, LoadOptions};
//! use tocsin_rules::group::{EvalContext, GroupEvaluator};
//! use tocsin_rules::promql::{Engine, Labels, MemStorage};
//!
//! let file = load_str(
//!     "example.yml",
//!     "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 1m\n",
//!     LoadOptions::default(),
//! )
//! .expect("valid rules");
//! let mut group = GroupEvaluator::new(&file.groups[0], 60_000);
//! let mut store = MemStorage::new();
//! let up = Labels::from_pairs([("__name__", "up"), ("instance", "a")]);
//! let engine = Engine::default();
//! let ctx = EvalContext {
//!     engine: &engine,
//!     external_labels: &Labels::empty(),
//!     external_url: "",
//!     default_query_offset_ms: 0,
//! };
//! for minute in 0..2 {
//!     let t = minute * 60_000;
//!     store.add(&up, t, 0.0);
//!     assert!(group.eval(&mut store, t, &ctx).is_empty());
//! }
//! let tracker = group.rules()[0].tracker().expect("alerting rule");
//! assert_eq!(tracker.firing_alerts().count(), 1);
//! // What the collector persists so that `for` survives a restart.
//! let saved = group.alert_state();
//! assert_eq!(saved.rules[0].state.alerts.len(), 1);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::alert::{AlertCandidate, AlertError, AlertTracker, AlertTrackerState, RestoreError};
use crate::file::{Rule, RuleGroup, RuleKind};
use crate::promql::value::{METRIC_NAME, stale_nan};
use crate::promql::{Engine, EvalError, Labels, MemStorage, Queryable, Value, Vector};
use crate::template::{
    AlertTemplateData, QuerySample, Template, TemplateContext, TemplateError, error_text,
};

/// Write access to a series store, as the rule evaluator needs it.
pub trait Appender {
    /// Appends one sample. A sample at a timestamp the series already holds
    /// is accepted when it is bit-for-bit the same value, and refused with
    /// [`AppendError::DuplicateSampleForTimestamp`] otherwise.
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError>;
}

/// Why a store refused a sample (Prometheus' storage errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("duplicate sample for timestamp")]
    DuplicateSampleForTimestamp,
    #[error("out of order sample")]
    OutOfOrder,
    #[error("too old sample")]
    TooOld,
    #[error("{0}")]
    Other(String),
}

impl Appender for MemStorage {
    fn append(&mut self, labels: &Labels, t: i64, v: f64) -> Result<(), AppendError> {
        match self.sample_at(labels, t) {
            Some(old) if old.to_bits() == v.to_bits() => Ok(()),
            Some(_) => Err(AppendError::DuplicateSampleForTimestamp),
            None => {
                self.add(labels, t, v);
                Ok(())
            }
        }
    }
}

/// Why one rule's evaluation failed; the wording is Prometheus'.
#[derive(Debug, thiserror::Error)]
pub enum RuleEvalError {
    #[error(transparent)]
    Query(#[from] EvalError),
    #[error("rule result is not a vector or scalar")]
    NotVectorOrScalar,
    #[error("vector contains metrics with the same labelset after applying rule labels")]
    DuplicateRecordLabelSet,
    #[error("exceeded limit of {limit} with {count} series")]
    SeriesLimitExceeded { limit: usize, count: usize },
    #[error(transparent)]
    Alert(#[from] AlertError),
    /// The store refused a result sample.
    #[error(transparent)]
    Append(#[from] AppendError),
}

/// What the evaluation of a group needs besides the store.
#[derive(Debug, Clone)]
pub struct EvalContext<'a> {
    pub engine: &'a Engine,
    /// External labels, available to templates as `$externalLabels`.
    pub external_labels: &'a Labels,
    /// Available to templates as `$externalURL`.
    pub external_url: &'a str,
    /// The query offset for groups that set none (ms).
    pub default_query_offset_ms: i64,
}

/// The alert state of every alerting rule of a group, for persistence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupAlertState {
    pub group: String,
    pub rules: Vec<RuleAlertState>,
}

/// One alerting rule's persisted state, matched back by name and labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleAlertState {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub state: AlertTrackerState,
}

/// A rule's identity across reloads: its name and sorted labels.
type RuleKey = (String, Vec<(String, String)>);

/// A rule with its evaluation state.
#[derive(Debug, Clone)]
pub struct RuleState {
    rule: Rule,
    /// The group's labels merged with the rule's (the rule's win), in
    /// order: group labels not overridden first, then the rule's.
    labels: Vec<(String, String)>,
    /// Parsed label and annotation templates (alerting rules only).
    label_templates: Vec<(String, Result<Template, TemplateError>)>,
    annotation_templates: Vec<(String, Result<Template, TemplateError>)>,
    tracker: Option<AlertTracker>,
    /// Series written by the last successful evaluation (for staleness).
    previous_series: BTreeSet<Labels>,
    last_error: Option<String>,
    /// When the rule was last evaluated (ms).
    last_eval_at: Option<i64>,
}

/// A rule's health as Prometheus' rules API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleHealth {
    /// Not evaluated yet.
    Unknown,
    /// The last evaluation succeeded.
    Ok,
    /// The last evaluation failed (see [`RuleState::last_error`]).
    Err,
}

impl RuleState {
    fn new(rule: &Rule, group_labels: &[(String, String)]) -> Self {
        let mut labels: Vec<(String, String)> = group_labels
            .iter()
            .filter(|(n, _)| !rule.labels.iter().any(|(rn, _)| rn == n))
            .cloned()
            .collect();
        labels.extend(rule.labels.iter().cloned());
        let is_alert = matches!(rule.kind, RuleKind::Alert(_));
        let tmpl = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(n, v)| {
                    (
                        n.clone(),
                        Template::parse(&format!("__alert_{}", rule.name()), v),
                    )
                })
                .collect::<Vec<_>>()
        };
        RuleState {
            label_templates: if is_alert { tmpl(&labels) } else { Vec::new() },
            annotation_templates: if is_alert {
                tmpl(&rule.annotations)
            } else {
                Vec::new()
            },
            tracker: is_alert.then(|| {
                AlertTracker::new(duration_ms(rule.for_), duration_ms(rule.keep_firing_for))
            }),
            rule: rule.clone(),
            labels,
            previous_series: BTreeSet::new(),
            last_error: None,
            last_eval_at: None,
        }
    }

    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    pub fn name(&self) -> &str {
        self.rule.name()
    }

    /// The rule's labels with the group's merged in.
    pub fn labels(&self) -> &[(String, String)] {
        &self.labels
    }

    /// The alert state machine (alerting rules only).
    pub fn tracker(&self) -> Option<&AlertTracker> {
        self.tracker.as_ref()
    }

    pub fn tracker_mut(&mut self) -> Option<&mut AlertTracker> {
        self.tracker.as_mut()
    }

    /// The error of the last evaluation, if it failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the rule was last evaluated (ms), if ever.
    pub fn last_eval_at(&self) -> Option<i64> {
        self.last_eval_at
    }

    /// `unknown` before the first evaluation, then `ok` or `err`.
    pub fn health(&self) -> RuleHealth {
        match (self.last_eval_at, &self.last_error) {
            (None, _) => RuleHealth::Unknown,
            (Some(_), None) => RuleHealth::Ok,
            (Some(_), Some(_)) => RuleHealth::Err,
        }
    }

    fn key(&self) -> RuleKey {
        let mut l = self.labels.clone();
        l.sort();
        (self.rule.name().to_string(), l)
    }
}

/// A rule group with the state its evaluations carry from one to the next.
#[derive(Debug, Clone)]
pub struct GroupEvaluator {
    name: String,
    interval_ms: i64,
    limit: usize,
    query_offset_ms: Option<i64>,
    rules: Vec<RuleState>,
    /// Series of rules removed by a reload, to be marked stale once.
    stale_series: Vec<Labels>,
}

impl GroupEvaluator {
    /// A fresh evaluator for `group`; `default_interval_ms` applies when the
    /// group sets no `interval`.
    pub fn new(group: &RuleGroup, default_interval_ms: i64) -> Self {
        GroupEvaluator {
            name: group.name.clone(),
            interval_ms: group
                .interval
                .map(duration_ms)
                .unwrap_or(default_interval_ms),
            limit: group.limit,
            query_offset_ms: group.query_offset.map(duration_ms),
            rules: group
                .rules
                .iter()
                .map(|r| RuleState::new(r, &group.labels))
                .collect(),
            stale_series: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The evaluation interval (ms).
    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    pub fn rules(&self) -> &[RuleState] {
        &self.rules
    }

    pub fn rules_mut(&mut self) -> &mut [RuleState] {
        &mut self.rules
    }

    /// Takes over the alert and staleness state of `old` (the same group
    /// before a reload), as Prometheus' `CopyState`: rules are matched by
    /// name and labels, duplicates in order; series of rules that no longer
    /// exist are marked stale at the next evaluation.
    pub fn copy_state_from(&mut self, old: &GroupEvaluator) {
        let mut by_key: BTreeMap<RuleKey, Vec<usize>> = BTreeMap::new();
        for (i, r) in old.rules.iter().enumerate() {
            by_key.entry(r.key()).or_default().push(i);
        }
        for r in &mut self.rules {
            let Some(list) = by_key.get_mut(&r.key()) else {
                continue;
            };
            if list.is_empty() {
                continue;
            }
            let from = &old.rules[list.remove(0)];
            r.previous_series = from.previous_series.clone();
            if let (Some(new), Some(prev)) = (r.tracker.as_mut(), from.tracker.as_ref()) {
                // Same version by construction, so import cannot fail.
                let _ = new.import(prev.export());
            }
        }
        self.stale_series = old.stale_series.clone();
        for idxs in by_key.values() {
            for &i in idxs {
                self.stale_series
                    .extend(old.rules[i].previous_series.iter().cloned());
            }
        }
    }

    /// The alert state of every alerting rule, for persistence.
    pub fn alert_state(&self) -> GroupAlertState {
        GroupAlertState {
            group: self.name.clone(),
            rules: self
                .rules
                .iter()
                .filter_map(|r| {
                    r.tracker.as_ref().map(|t| RuleAlertState {
                        name: r.name().to_string(),
                        labels: r.key().1,
                        state: t.export(),
                    })
                })
                .collect(),
        }
    }

    /// Restores persisted alert state after a downtime (see
    /// [`AlertTracker::restore`]); rules are matched by name and labels.
    pub fn restore_alert_state(
        &mut self,
        state: GroupAlertState,
        now: i64,
        grace_period_ms: i64,
    ) -> Result<(), RestoreError> {
        let mut saved: Vec<Option<RuleAlertState>> = state.rules.into_iter().map(Some).collect();
        for r in &mut self.rules {
            let key = r.key();
            let Some(tracker) = r.tracker.as_mut() else {
                continue;
            };
            let found = saved.iter_mut().find(|s| {
                s.as_ref()
                    .is_some_and(|s| s.name == key.0 && s.labels == key.1)
            });
            if let Some(slot) = found
                && let Some(s) = slot.take()
            {
                tracker.restore(s.state, now, grace_period_ms)?;
            }
        }
        Ok(())
    }

    /// The query offset in effect (ms).
    pub fn query_offset_ms(&self, ctx: &EvalContext<'_>) -> i64 {
        self.query_offset_ms.unwrap_or(ctx.default_query_offset_ms)
    }

    /// Evaluates every rule at `t` (ms), in order. A failing rule records
    /// its error (see [`RuleState::last_error`]) and the group goes on, as
    /// in Prometheus. Returns the errors of this evaluation by rule index.
    pub fn eval<S: Queryable + Appender>(
        &mut self,
        store: &mut S,
        t: i64,
        ctx: &EvalContext<'_>,
    ) -> Vec<(usize, RuleEvalError)> {
        let offset = self.query_offset_ms(ctx);
        let limit = self.limit;
        let mut errors = Vec::new();
        for i in 0..self.rules.len() {
            let result = eval_rule(&mut self.rules[i], &*store, t, offset, limit, ctx);
            let rule = &mut self.rules[i];
            rule.last_eval_at = Some(t);
            let vector = match result {
                Ok(v) => v,
                Err(e) => {
                    rule.last_error = Some(e.to_string());
                    errors.push((i, e));
                    continue;
                }
            };
            rule.last_error = None;
            let mut returned = BTreeSet::new();
            let mut append_error = None;
            for s in &vector {
                match store.append(&s.labels, s.t, s.v) {
                    Ok(()) => {
                        returned.insert(s.labels.clone());
                    }
                    Err(e) => {
                        append_error.get_or_insert(e);
                    }
                }
            }
            for gone in rule.previous_series.difference(&returned) {
                // Refusals are expected when another rule writes the same
                // series; Prometheus ignores them too.
                let _ = store.append(gone, t.saturating_sub(offset), stale_nan());
            }
            rule.previous_series = returned;
            if let Some(e) = append_error {
                rule.last_error = Some(e.to_string());
                errors.push((i, RuleEvalError::Append(e)));
            }
        }
        for s in std::mem::take(&mut self.stale_series) {
            let _ = store.append(&s, t.saturating_sub(offset), stale_nan());
        }
        errors
    }
}

/// Runs `expr` at `t` and returns an instant vector, as Prometheus'
/// `EngineQueryFunc` does (a scalar becomes one sample without labels).
pub fn query_vector(
    engine: &Engine,
    store: &dyn Queryable,
    expr: &promql_parser::parser::Expr,
    t: i64,
) -> Result<Vector, RuleEvalError> {
    let res = engine.instant_query(store, expr, t)?;
    match res.value {
        Value::Vector(v) => Ok(v),
        Value::Scalar { t, v } => Ok(vec![crate::promql::InstantSample {
            labels: Labels::empty(),
            t,
            v,
        }]),
        _ => Err(RuleEvalError::NotVectorOrScalar),
    }
}

fn eval_rule(
    rs: &mut RuleState,
    store: &dyn Queryable,
    t: i64,
    offset: i64,
    limit: usize,
    ctx: &EvalContext<'_>,
) -> Result<Vector, RuleEvalError> {
    let res = query_vector(ctx.engine, store, &rs.rule.expr, t.saturating_sub(offset))?;
    match &rs.rule.kind {
        RuleKind::Record(name) => {
            let mut out = Vec::with_capacity(res.len());
            let mut seen = BTreeSet::new();
            for mut s in res {
                let mut l = s.labels.with(METRIC_NAME, name);
                for (n, v) in &rs.labels {
                    l = l.with(n, v);
                }
                if !seen.insert(l.clone()) {
                    return Err(RuleEvalError::DuplicateRecordLabelSet);
                }
                s.labels = l;
                out.push(s);
            }
            if limit > 0 && out.len() > limit {
                return Err(RuleEvalError::SeriesLimitExceeded {
                    limit,
                    count: out.len(),
                });
            }
            Ok(out)
        }
        RuleKind::Alert(name) => {
            let tctx = RuleTemplateContext {
                engine: ctx.engine,
                store,
                t,
            };
            let mut candidates = Vec::with_capacity(res.len());
            for s in res {
                let data = AlertTemplateData {
                    labels: s.labels.clone(),
                    external_labels: ctx.external_labels.clone(),
                    external_url: ctx.external_url.to_string(),
                    value: s.v,
                };
                let mut labels = s.labels.drop_metric_name();
                for (n, tmpl) in &rs.label_templates {
                    labels = labels.with(n, &expand(tmpl, &data, &tctx));
                }
                labels = labels.with(crate::alert::ALERT_NAME_LABEL, name);
                let annotations = rs
                    .annotation_templates
                    .iter()
                    .map(|(n, tmpl)| (n.clone(), expand(tmpl, &data, &tctx)))
                    .collect();
                candidates.push(AlertCandidate {
                    labels,
                    annotations,
                    value: s.v,
                });
            }
            let tracker = rs.tracker.get_or_insert_with(|| {
                AlertTracker::new(
                    duration_ms(rs.rule.for_),
                    duration_ms(rs.rule.keep_firing_for),
                )
            });
            tracker.eval(t, candidates, limit)?;
            Ok(tracker.series(name, &rs.labels, t.saturating_sub(offset)))
        }
    }
}

/// Expands one template; a failure becomes the text Prometheus puts in its
/// place.
fn expand(
    tmpl: &Result<Template, TemplateError>,
    data: &AlertTemplateData,
    ctx: &dyn TemplateContext,
) -> String {
    match tmpl {
        Ok(t) => t
            .execute(data, ctx)
            .unwrap_or_else(|e| error_text(t.name(), &e)),
        Err(e) => error_text(&template_name_of(e), e),
    }
}

fn template_name_of(e: &TemplateError) -> String {
    match e {
        TemplateError::Parse { name, .. } | TemplateError::Exec { name, .. } => name.clone(),
    }
}

/// Gives templates' `query` function the rule evaluator's engine and store,
/// at the rule's evaluation time.
struct RuleTemplateContext<'a> {
    engine: &'a Engine,
    store: &'a dyn Queryable,
    t: i64,
}

impl TemplateContext for RuleTemplateContext<'_> {
    fn query(&self, expr: &str) -> Result<Vec<QuerySample>, String> {
        let parsed = crate::promql::parse(expr)?;
        let v =
            query_vector(self.engine, self.store, &parsed, self.t).map_err(|e| e.to_string())?;
        Ok(v.into_iter()
            .map(|s| QuerySample {
                labels: s.labels,
                value: s.v,
            })
            .collect())
    }
}

fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::{LoadOptions, load_str};
    use crate::promql::value::is_stale;
    use crate::promql::{MatchOp, Matcher};

    const MIN: i64 = 60_000;

    fn group(yaml: &str) -> GroupEvaluator {
        let f = load_str("test.yml", yaml, LoadOptions::default()).expect("valid rule file");
        GroupEvaluator::new(&f.groups[0], MIN)
    }

    fn lbl(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    /// The samples of the series named `name`, as (t, v).
    fn samples(store: &MemStorage, name: &str) -> Vec<(Labels, Vec<(i64, f64)>)> {
        store
            .select(
                &[Matcher::new(MatchOp::Equal, METRIC_NAME, name)],
                i64::MIN,
                i64::MAX,
            )
            .expect("select")
            .into_iter()
            .map(|s| (s.labels, s.samples.iter().map(|x| (x.t, x.v)).collect()))
            .collect()
    }

    fn run(g: &mut GroupEvaluator, store: &mut MemStorage, t: i64) -> Vec<String> {
        let engine = Engine::default();
        let ext = lbl(&[("cluster", "eu1")]);
        let ctx = EvalContext {
            engine: &engine,
            external_labels: &ext,
            external_url: "http://tocsin.example",
            default_query_offset_ms: 0,
        };
        g.eval(store, t, &ctx)
            .into_iter()
            .map(|(i, e)| format!("{}: {e}", g.rules()[i].name()))
            .collect()
    }

    #[test]
    fn recording_rules_feed_the_next_rule_in_the_same_evaluation() {
        let mut g = group(
            "groups:\n- name: g\n  rules:\n  - record: a\n    expr: up * 2\n  - record: b\n    expr: a + 1\n",
        );
        let mut st = MemStorage::new();
        st.add(&lbl(&[("__name__", "up"), ("job", "x")]), 0, 3.0);
        assert!(run(&mut g, &mut st, 0).is_empty());
        assert!(g.rules().iter().all(|r| r.health() == RuleHealth::Ok));
        assert_eq!(
            samples(&st, "a"),
            vec![(lbl(&[("__name__", "a"), ("job", "x")]), vec![(0, 6.0)])]
        );
        assert_eq!(
            samples(&st, "b"),
            vec![(lbl(&[("__name__", "b"), ("job", "x")]), vec![(0, 7.0)])]
        );
    }

    #[test]
    fn vanished_series_get_a_staleness_marker() {
        let mut g = group("groups:\n- name: g\n  rules:\n  - record: a\n    expr: up\n");
        let mut st = MemStorage::new();
        st.add(&lbl(&[("__name__", "up")]), 0, 1.0);
        assert!(run(&mut g, &mut st, 0).is_empty());
        // Ten minutes later `up` is beyond the lookback window.
        assert!(run(&mut g, &mut st, 10 * MIN).is_empty());
        let a = samples(&st, "a");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].1.len(), 2);
        assert_eq!(a[0].1[1].0, 10 * MIN);
        assert!(is_stale(a[0].1[1].1));
    }

    #[test]
    fn group_labels_apply_and_rule_labels_win() {
        let mut g = group(
            "groups:\n- name: g\n  labels:\n    team: a\n    env: prod\n  rules:\n  - record: r\n    expr: vector(1)\n    labels:\n      team: b\n",
        );
        let mut st = MemStorage::new();
        assert!(run(&mut g, &mut st, 0).is_empty());
        assert_eq!(
            samples(&st, "r")[0].0,
            lbl(&[("__name__", "r"), ("env", "prod"), ("team", "b")])
        );
    }

    #[test]
    fn limit_and_duplicate_labelsets_fail_with_prometheus_wording() {
        let mut g =
            group("groups:\n- name: g\n  limit: 1\n  rules:\n  - record: r\n    expr: up\n");
        let mut st = MemStorage::new();
        st.add(&lbl(&[("__name__", "up"), ("i", "1")]), 0, 1.0);
        st.add(&lbl(&[("__name__", "up"), ("i", "2")]), 0, 1.0);
        assert_eq!(g.rules()[0].health(), RuleHealth::Unknown);
        assert_eq!(
            run(&mut g, &mut st, 0),
            vec!["r: exceeded limit of 1 with 2 series"]
        );
        assert_eq!(g.rules()[0].health(), RuleHealth::Err);
        assert_eq!(g.rules()[0].last_eval_at(), Some(0));
        assert_eq!(
            g.rules()[0].last_error(),
            Some("exceeded limit of 1 with 2 series")
        );

        let mut g = group(
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    labels:\n      i: same\n",
        );
        assert_eq!(
            run(&mut g, &mut st, 0),
            vec!["r: vector contains metrics with the same labelset after applying rule labels"]
        );
        assert!(samples(&st, "r").is_empty());
    }

    #[test]
    fn query_offset_shifts_the_query_and_the_written_samples() {
        let mut g = group(
            "groups:\n- name: g\n  query_offset: 1m\n  rules:\n  - record: r\n    expr: up\n",
        );
        let mut st = MemStorage::new();
        st.add(&lbl(&[("__name__", "up")]), 0, 1.0);
        st.add(&lbl(&[("__name__", "up")]), MIN, 2.0);
        assert!(run(&mut g, &mut st, MIN).is_empty());
        assert_eq!(samples(&st, "r")[0].1, vec![(0, 1.0)]);
    }

    #[test]
    fn alerting_rules_expand_templates_and_write_alerts_series() {
        let mut g = group(concat!(
            "groups:\n- name: g\n  rules:\n  - alert: Down\n    expr: up == 0\n    for: 1m\n",
            "    labels:\n      severity: page\n      where: '{{ $labels.instance }}'\n",
            "    annotations:\n      summary: '{{ $labels.instance }} is {{ $value }} in {{ $externalLabels.cluster }}'\n",
        ));
        let mut st = MemStorage::new();
        let up = lbl(&[("__name__", "up"), ("instance", "h1")]);
        st.add(&up, 0, 0.0);
        st.add(&up, MIN, 0.0);
        assert!(run(&mut g, &mut st, 0).is_empty());
        let tr = g.rules()[0].tracker().expect("alerting rule");
        let a = tr.alerts().next().expect("pending alert");
        assert_eq!(
            a.labels,
            lbl(&[
                ("alertname", "Down"),
                ("instance", "h1"),
                ("severity", "page"),
                ("where", "h1")
            ])
        );
        assert_eq!(
            a.annotations,
            vec![("summary".to_string(), "h1 is 0 in eu1".to_string())]
        );
        let alerts = samples(&st, "ALERTS");
        assert_eq!(alerts[0].0.get("alertstate"), "pending");
        assert!(run(&mut g, &mut st, MIN).is_empty());
        assert_eq!(
            g.rules()[0]
                .tracker()
                .expect("tracker")
                .firing_alerts()
                .count(),
            1
        );
        let alerts = samples(&st, "ALERTS");
        let firing = alerts
            .iter()
            .find(|(l, _)| l.get("alertstate") == "firing")
            .expect("firing");
        assert_eq!(firing.1, vec![(MIN, 1.0)]);
        // The pending series went stale when the alert fired.
        let pending = alerts
            .iter()
            .find(|(l, _)| l.get("alertstate") == "pending")
            .expect("pending");
        assert!(
            pending
                .1
                .last()
                .is_some_and(|(t, v)| *t == MIN && is_stale(*v))
        );
        let for_state = samples(&st, "ALERTS_FOR_STATE");
        assert_eq!(for_state[0].1.last(), Some(&(MIN, 0.0)));
    }

    #[test]
    fn reload_keeps_alert_state_and_persisted_state_restores() {
        let yaml = "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: vector(1)\n    for: 5m\n";
        let mut g = group(yaml);
        let mut st = MemStorage::new();
        assert!(run(&mut g, &mut st, 0).is_empty());
        let mut reloaded = group(yaml);
        reloaded.copy_state_from(&g);
        assert_eq!(
            reloaded.rules()[0]
                .tracker()
                .and_then(|t| t.alerts().next())
                .map(|a| a.active_at),
            Some(0)
        );
        let saved = g.alert_state();
        let mut restarted = group(yaml);
        restarted.restore_alert_state(saved, 0, 0).expect("restore");
        assert_eq!(restarted.rules()[0].tracker(), g.rules()[0].tracker());
    }

    #[test]
    fn removed_rules_series_go_stale_after_reload() {
        let mut g = group("groups:\n- name: g\n  rules:\n  - record: old\n    expr: vector(1)\n");
        let mut st = MemStorage::new();
        assert!(run(&mut g, &mut st, 0).is_empty());
        let mut reloaded =
            group("groups:\n- name: g\n  rules:\n  - record: new\n    expr: vector(1)\n");
        reloaded.copy_state_from(&g);
        assert!(run(&mut reloaded, &mut st, MIN).is_empty());
        let old = samples(&st, "old");
        assert!(
            old[0]
                .1
                .last()
                .is_some_and(|(t, v)| *t == MIN && is_stale(*v))
        );
    }

    #[test]
    fn memstorage_refuses_a_different_value_at_the_same_timestamp() {
        let mut st = MemStorage::new();
        let l = lbl(&[("__name__", "x")]);
        st.append(&l, 0, 1.0).expect("first");
        st.append(&l, 0, 1.0).expect("same value again");
        assert_eq!(
            st.append(&l, 0, 2.0),
            Err(AppendError::DuplicateSampleForTimestamp)
        );
    }

    proptest::proptest! {
        /// Whatever appears and disappears, a recording rule's output holds
        /// each present input's value at every evaluation, and a staleness
        /// marker exactly when a series it wrote at the previous evaluation
        /// is gone.
        #[test]
        fn recorded_series_follow_their_inputs_and_go_stale_once(
            steps in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<bool>(), 3), 1..25),
        ) {
            let mut g = group("groups:\n- name: g\n  rules:\n  - record: r\n    expr: input\n");
            let mut st = MemStorage::new();
            let mut previous = [false; 3];
            for (step, present) in steps.iter().enumerate() {
                // Ten minutes apart: beyond the lookback, so absent means gone.
                let t = step as i64 * 10 * MIN;
                for (i, p) in present.iter().enumerate() {
                    if *p {
                        st.add(&lbl(&[("__name__", "input"), ("i", &i.to_string())]), t, i as f64);
                    }
                }
                proptest::prop_assert!(run(&mut g, &mut st, t).is_empty());
                for (i, p) in present.iter().enumerate() {
                    let out = lbl(&[("__name__", "r"), ("i", &i.to_string())]);
                    let at_t = st.sample_at(&out, t);
                    if *p {
                        proptest::prop_assert_eq!(at_t, Some(i as f64));
                    } else if previous[i] {
                        proptest::prop_assert!(at_t.is_some_and(is_stale));
                    } else {
                        proptest::prop_assert_eq!(at_t, None);
                    }
                }
                previous.copy_from_slice(present);
            }
        }
    }
}
