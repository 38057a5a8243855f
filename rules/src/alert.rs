//! The alert state machine of one alerting rule: inactive → pending →
//! firing, with `for` (hold duration), `keep_firing_for`, resolved alerts
//! kept for 15 minutes so that their resolution is notified, and the
//! `ALERTS` / `ALERTS_FOR_STATE` series, all as Prometheus'
//! `rules/alerting.go` does them.
//!
//! The machine is pure: it never reads the clock and does no I/O. Every
//! transition takes the evaluation time (milliseconds since the epoch) as an
//! argument, and the caller hands it the alert candidates its query
//! produced, with labels and annotations already expanded. Its whole state
//! is a plain serde value ([`AlertTrackerState`]), so the collector can
//! persist `for` progress across restarts and restore it.
//!
//! Invariants: an alert is keyed by its final label set (one alert per
//! label set); a pending alert has no `resolved_at`; an inactive alert has
//! one and is dropped once it is older than [`RESOLVED_RETENTION_MS`]; a
//! firing alert became firing no earlier than `for` after it became active.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::promql::Labels;
use crate::promql::value::{InstantSample, METRIC_NAME};

/// The metric name of the synthetic alert series.
pub const ALERTS_METRIC: &str = "ALERTS";
/// The metric name of the series that records when an alert became active.
pub const ALERTS_FOR_STATE_METRIC: &str = "ALERTS_FOR_STATE";
/// The label holding the alerting rule's name.
pub const ALERT_NAME_LABEL: &str = "alertname";
/// The label holding the alert state in `ALERTS`.
pub const ALERT_STATE_LABEL: &str = "alertstate";

/// How long a resolved alert is kept (and re-sent as resolved), as
/// Prometheus' `resolvedRetention`.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Version of the persisted [`AlertTrackerState`] format.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// The state of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved: was firing, its condition no longer holds.
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// The condition has held for at least `for` (or is kept firing).
    Firing,
}

impl AlertState {
    /// Prometheus' word for the state (`inactive`, `pending`, `firing`).
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

impl std::fmt::Display for AlertState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One instance of an alerting rule (one label set). Times are
/// milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub state: AlertState,
    /// The alert's identifying labels: the result labels without
    /// `__name__`, plus the rule's labels, plus `alertname`.
    #[serde(with = "labels_serde")]
    pub labels: Labels,
    /// Expanded annotations, in the rule's order.
    pub annotations: Vec<(String, String)>,
    /// The value of the alert expression at the last evaluation (persisted
    /// as a string when not finite, so JSON can hold it).
    #[serde(with = "float_serde")]
    pub value: f64,
    /// When the condition started holding (pending began).
    pub active_at: i64,
    pub fired_at: Option<i64>,
    /// When the alert stopped firing; `None` while active.
    pub resolved_at: Option<i64>,
    /// When the alert was last handed to the notifier.
    pub last_sent_at: Option<i64>,
    /// Until when the last notification is valid (Alertmanager's `endsAt`).
    pub valid_until: Option<i64>,
    /// When the condition stopped holding while `keep_firing_for` keeps the
    /// alert firing.
    pub keep_firing_since: Option<i64>,
}

impl Alert {
    /// Whether the notifier should be given this alert at `t`, as
    /// Prometheus' `needsSending`: never while pending, at once after a
    /// resolution not yet sent, otherwise every `resend_delay_ms`.
    pub fn needs_sending(&self, t: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        if let Some(resolved) = self.resolved_at {
            match self.last_sent_at {
                None => return true,
                Some(sent) if resolved > sent => return true,
                Some(_) => {}
            }
        }
        match self.last_sent_at {
            None => true,
            Some(sent) => sent.saturating_add(resend_delay_ms) < t,
        }
    }
}

/// One element of the alert expression's result, ready to become an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertCandidate {
    /// Final alert labels (see [`Alert::labels`]).
    pub labels: Labels,
    /// Expanded annotations.
    pub annotations: Vec<(String, String)>,
    pub value: f64,
}

/// Why an evaluation of the state machine failed. The wording is
/// Prometheus'.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// Two result elements had the same labels once the rule's labels were
    /// applied.
    #[error("vector contains metrics with the same labelset after applying alert labels")]
    DuplicateLabelSet,
    /// The group's `limit` was exceeded; all alerts of the rule were
    /// dropped, as Prometheus does.
    #[error("exceeded limit of {limit} with {count} alerts")]
    LimitExceeded { limit: usize, count: usize },
}

/// The persisted form of an [`AlertTracker`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertTrackerState {
    /// [`STATE_FORMAT_VERSION`] at the time of writing.
    pub version: u32,
    /// The last evaluation time the state reflects (ms), if any.
    pub last_eval_at: Option<i64>,
    /// Every alert held, pending, firing and recently resolved.
    pub alerts: Vec<Alert>,
}

/// Why a persisted state could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "alert state format version {found} is not supported (expected {STATE_FORMAT_VERSION})"
    )]
    UnsupportedVersion { found: u32 },
}

/// The alert state machine of one alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertTracker {
    hold_ms: i64,
    keep_firing_for_ms: i64,
    alerts: BTreeMap<Labels, Alert>,
    last_eval_at: Option<i64>,
}

impl AlertTracker {
    /// A tracker for a rule with `for: hold_ms` and
    /// `keep_firing_for: keep_firing_for_ms` (milliseconds).
    pub fn new(hold_ms: i64, keep_firing_for_ms: i64) -> Self {
        AlertTracker {
            hold_ms: hold_ms.max(0),
            keep_firing_for_ms: keep_firing_for_ms.max(0),
            alerts: BTreeMap::new(),
            last_eval_at: None,
        }
    }

    pub fn hold_ms(&self) -> i64 {
        self.hold_ms
    }

    pub fn keep_firing_for_ms(&self) -> i64 {
        self.keep_firing_for_ms
    }

    /// The time of the last successful [`AlertTracker::eval`], if any.
    pub fn last_eval_at(&self) -> Option<i64> {
        self.last_eval_at
    }

    /// Advances the machine to time `t` given this evaluation's candidates
    /// (the alert expression's result, one candidate per element). A `limit`
    /// of 0 means no limit.
    ///
    /// On [`AlertError::DuplicateLabelSet`] the state is left untouched; on
    /// [`AlertError::LimitExceeded`] every alert is dropped (Prometheus
    /// forgets them so that they start pending again).
    pub fn eval(
        &mut self,
        t: i64,
        candidates: Vec<AlertCandidate>,
        limit: usize,
    ) -> Result<(), AlertError> {
        let mut fresh: BTreeMap<Labels, AlertCandidate> = BTreeMap::new();
        for c in candidates {
            if fresh.contains_key(&c.labels) {
                return Err(AlertError::DuplicateLabelSet);
            }
            fresh.insert(c.labels.clone(), c);
        }

        for (labels, c) in &fresh {
            match self.alerts.get_mut(labels) {
                // A pending or firing alert keeps its identity and timers;
                // only the value and annotations follow the query.
                Some(a) if a.state != AlertState::Inactive => {
                    a.value = c.value;
                    a.annotations = c.annotations.clone();
                }
                // New, or a resolved alert coming back: starts pending anew.
                _ => {
                    self.alerts.insert(
                        labels.clone(),
                        Alert {
                            state: AlertState::Pending,
                            labels: labels.clone(),
                            annotations: c.annotations.clone(),
                            value: c.value,
                            active_at: t,
                            fired_at: None,
                            resolved_at: None,
                            last_sent_at: None,
                            valid_until: None,
                            keep_firing_since: None,
                        },
                    );
                }
            }
        }

        let mut active = 0usize;
        let hold = self.hold_ms;
        let keep_for = self.keep_firing_for_ms;
        self.alerts.retain(|labels, a| {
            if !fresh.contains_key(labels) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && keep_for > 0 {
                    let since = *a.keep_firing_since.get_or_insert(t);
                    keep_firing = t.saturating_sub(since) < keep_for;
                }
                // Pending alerts vanish at once; resolved ones are kept for
                // the retention period so the resolution is notified.
                let drop = a.state == AlertState::Pending
                    || a.resolved_at
                        .is_some_and(|r| t.saturating_sub(r) > RESOLVED_RETENTION_MS);
                if drop {
                    return false;
                }
                if !keep_firing {
                    if a.state != AlertState::Inactive {
                        a.state = AlertState::Inactive;
                        a.resolved_at = Some(t);
                    }
                    return true;
                }
            } else {
                a.keep_firing_since = None;
            }
            active += 1;
            if a.state == AlertState::Pending && t.saturating_sub(a.active_at) >= hold {
                a.state = AlertState::Firing;
                a.fired_at = Some(t);
            }
            true
        });

        if limit > 0 && active > limit {
            self.alerts.clear();
            return Err(AlertError::LimitExceeded {
                limit,
                count: active,
            });
        }
        self.last_eval_at = Some(t);
        Ok(())
    }

    /// Every alert held, including resolved ones still retained, ordered by
    /// labels.
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    /// The pending and firing alerts (Prometheus' `ActiveAlerts`).
    pub fn active_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values().filter(|a| a.resolved_at.is_none())
    }

    /// The firing alerts.
    pub fn firing_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .values()
            .filter(|a| a.state == AlertState::Firing)
    }

    /// The highest state of any alert (Prometheus' rule state), `None` when
    /// the rule holds no alert.
    pub fn max_state(&self) -> Option<AlertState> {
        self.alerts.values().map(|a| a.state).max()
    }

    /// The `ALERTS` and `ALERTS_FOR_STATE` samples for the pending and firing
    /// alerts, stamped `t` (the evaluation time minus the group's query
    /// offset). `rule_labels` are the rule's configured labels as written
    /// (Prometheus starts from them, then lays the alert's labels over).
    pub fn series(
        &self,
        alertname: &str,
        rule_labels: &[(String, String)],
        t: i64,
    ) -> Vec<InstantSample> {
        let mut out = Vec::new();
        for a in self.alerts.values() {
            if a.state == AlertState::Inactive {
                continue;
            }
            let base = merged_labels(rule_labels, &a.labels, alertname);
            out.push(InstantSample {
                labels: base
                    .with(METRIC_NAME, ALERTS_METRIC)
                    .with(ALERT_STATE_LABEL, a.state.as_str()),
                t,
                v: 1.0,
            });
            out.push(InstantSample {
                labels: base.with(METRIC_NAME, ALERTS_FOR_STATE_METRIC),
                t,
                // Whole seconds, rounded down as Go's `Time.Unix`.
                v: a.active_at.div_euclid(1000) as f64,
            });
        }
        out
    }

    /// The alerts to hand to the notifier at `t`, marking them sent, as
    /// Prometheus' `sendAlerts`: each sent alert is valid for four times the
    /// larger of the group interval and the resend delay.
    pub fn take_alerts_to_send(
        &mut self,
        t: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
    ) -> Vec<Alert> {
        let delta = interval_ms.max(resend_delay_ms);
        let mut out = Vec::new();
        for a in self.alerts.values_mut() {
            if a.needs_sending(t, resend_delay_ms) {
                a.last_sent_at = Some(t);
                a.valid_until = Some(t.saturating_add(delta.saturating_mul(4)));
                out.push(a.clone());
            }
        }
        out
    }

    /// The persistable state.
    pub fn export(&self) -> AlertTrackerState {
        AlertTrackerState {
            version: STATE_FORMAT_VERSION,
            last_eval_at: self.last_eval_at,
            alerts: self.alerts.values().cloned().collect(),
        }
    }

    /// Replaces the state with a persisted one, unchanged (for a restart
    /// without downtime worth accounting for, or for tests).
    pub fn import(&mut self, state: AlertTrackerState) -> Result<(), RestoreError> {
        if state.version != STATE_FORMAT_VERSION {
            return Err(RestoreError::UnsupportedVersion {
                found: state.version,
            });
        }
        self.alerts = state
            .alerts
            .into_iter()
            .map(|a| (a.labels.clone(), a))
            .collect();
        self.last_eval_at = state.last_eval_at;
        Ok(())
    }

    /// Restores a persisted state after a downtime, adjusting the `for`
    /// progress of pending alerts as Prometheus' `RestoreForState` does:
    /// the time spent down does not count towards `for`, and an alert that
    /// would fire within `grace_period_ms` of `now` fires no earlier than
    /// `now + grace_period_ms`. The downtime starts at the state's
    /// `last_eval_at`. Rules whose `for` is shorter than the grace period
    /// are restored unchanged, as in Prometheus.
    pub fn restore(
        &mut self,
        state: AlertTrackerState,
        now: i64,
        grace_period_ms: i64,
    ) -> Result<(), RestoreError> {
        let down_at = state.last_eval_at;
        self.import(state)?;
        let Some(down_at) = down_at else {
            return Ok(());
        };
        if self.hold_ms < grace_period_ms {
            return Ok(());
        }
        let hold = self.hold_ms;
        for a in self.alerts.values_mut() {
            if a.state != AlertState::Pending {
                continue;
            }
            // Prometheus works in whole seconds here (the series' value).
            let down_s = down_at.div_euclid(1000) * 1000;
            let active_s = a.active_at.div_euclid(1000) * 1000;
            let spent = down_s - active_s;
            let remaining = hold - spent;
            if remaining <= 0 {
                continue;
            }
            a.active_at = if remaining < grace_period_ms {
                now + grace_period_ms - hold
            } else {
                active_s + (now - down_s)
            };
        }
        Ok(())
    }
}

/// The rule's labels as written, overlaid with the alert's labels and
/// `alertname`.
fn merged_labels(rule_labels: &[(String, String)], alert: &Labels, alertname: &str) -> Labels {
    let pairs = rule_labels
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .chain(alert.iter().map(|l| (l.name.clone(), l.value.clone())))
        .chain(std::iter::once((
            ALERT_NAME_LABEL.to_string(),
            alertname.to_string(),
        )));
    Labels::from_pairs(pairs)
}

/// Serde for a float that may be NaN or infinite: a number when finite,
/// otherwise Prometheus' text (`NaN`, `+Inf`, `-Inf`).
mod float_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
    }

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            Repr::Number(*v).serialize(s)
        } else {
            Repr::Text(crate::promql::value::format_value(*v)).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Number(v) => Ok(v),
            Repr::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "+Inf" | "Inf" => Ok(f64::INFINITY),
                "-Inf" => Ok(f64::NEG_INFINITY),
                other => other.parse().map_err(serde::de::Error::custom),
            },
        }
    }
}

/// Serde for [`Labels`] as a list of `[name, value]` pairs.
mod labels_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::promql::Labels;

    pub fn serialize<S: Serializer>(labels: &Labels, s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        let pairs: Vec<(String, String)> = Vec::deserialize(d)?;
        Ok(Labels::from_pairs(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn cand(instance: &str, v: f64) -> AlertCandidate {
        AlertCandidate {
            labels: Labels::from_pairs([("alertname", "Down"), ("instance", instance)]),
            annotations: vec![("summary".into(), format!("{instance} down"))],
            value: v,
        }
    }

    #[test]
    fn pending_then_firing_after_for() {
        let mut tr = AlertTracker::new(5 * MIN, 0);
        for i in 0..5 {
            tr.eval(i * MIN, vec![cand("a", 1.0)], 0).expect("eval");
            assert_eq!(tr.max_state(), Some(AlertState::Pending), "at minute {i}");
        }
        tr.eval(5 * MIN, vec![cand("a", 2.0)], 0).expect("eval");
        let a = tr.alerts().next().expect("alert");
        assert_eq!(a.state, AlertState::Firing);
        assert_eq!(a.active_at, 0);
        assert_eq!(a.fired_at, Some(5 * MIN));
        assert_eq!(a.value, 2.0);
    }

    #[test]
    fn zero_for_fires_at_once() {
        let mut tr = AlertTracker::new(0, 0);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        assert_eq!(tr.firing_alerts().count(), 1);
    }

    #[test]
    fn pending_alert_disappears_without_resolution() {
        let mut tr = AlertTracker::new(5 * MIN, 0);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        tr.eval(MIN, vec![], 0).expect("eval");
        assert_eq!(tr.alerts().count(), 0);
    }

    #[test]
    fn resolved_alert_is_kept_fifteen_minutes_then_dropped() {
        let mut tr = AlertTracker::new(0, 0);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        tr.eval(MIN, vec![], 0).expect("eval");
        let a = tr.alerts().next().expect("kept");
        assert_eq!(a.state, AlertState::Inactive);
        assert_eq!(a.resolved_at, Some(MIN));
        assert_eq!(tr.active_alerts().count(), 0);
        tr.eval(16 * MIN, vec![], 0).expect("eval");
        assert_eq!(tr.alerts().count(), 1, "exactly 15m is still kept");
        tr.eval(16 * MIN + 1, vec![], 0).expect("eval");
        assert_eq!(tr.alerts().count(), 0);
    }

    #[test]
    fn resolved_alert_coming_back_starts_pending_again() {
        let mut tr = AlertTracker::new(2 * MIN, 0);
        for i in 0..3 {
            tr.eval(i * MIN, vec![cand("a", 1.0)], 0).expect("eval");
        }
        assert_eq!(tr.max_state(), Some(AlertState::Firing));
        tr.eval(3 * MIN, vec![], 0).expect("eval");
        tr.eval(4 * MIN, vec![cand("a", 1.0)], 0).expect("eval");
        let a = tr.alerts().next().expect("alert");
        assert_eq!(a.state, AlertState::Pending);
        assert_eq!(a.active_at, 4 * MIN);
        assert_eq!(a.resolved_at, None);
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut tr = AlertTracker::new(0, 2 * MIN);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        tr.eval(MIN, vec![], 0).expect("eval");
        assert_eq!(tr.firing_alerts().count(), 1);
        assert_eq!(
            tr.alerts().next().and_then(|a| a.keep_firing_since),
            Some(MIN)
        );
        tr.eval(2 * MIN, vec![], 0).expect("eval");
        assert_eq!(tr.firing_alerts().count(), 1);
        tr.eval(3 * MIN, vec![], 0).expect("eval");
        assert_eq!(tr.firing_alerts().count(), 0);
        assert_eq!(
            tr.alerts().next().and_then(|a| a.resolved_at),
            Some(3 * MIN)
        );
    }

    #[test]
    fn keep_firing_resets_when_condition_returns() {
        let mut tr = AlertTracker::new(0, 2 * MIN);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        tr.eval(MIN, vec![], 0).expect("eval");
        tr.eval(2 * MIN, vec![cand("a", 1.0)], 0).expect("eval");
        let a = tr.alerts().next().expect("alert");
        assert_eq!(a.keep_firing_since, None);
        assert_eq!(a.active_at, 0, "same alert, not a new one");
    }

    #[test]
    fn duplicate_labelsets_are_rejected_with_prometheus_wording() {
        let mut tr = AlertTracker::new(0, 0);
        let err = tr
            .eval(0, vec![cand("a", 1.0), cand("a", 2.0)], 0)
            .expect_err("duplicate");
        assert_eq!(
            err.to_string(),
            "vector contains metrics with the same labelset after applying alert labels"
        );
        assert_eq!(tr.alerts().count(), 0);
    }

    #[test]
    fn limit_drops_all_alerts() {
        let mut tr = AlertTracker::new(0, 0);
        tr.eval(0, vec![cand("a", 1.0)], 1).expect("within limit");
        let err = tr
            .eval(MIN, vec![cand("a", 1.0), cand("b", 1.0)], 1)
            .expect_err("limit");
        assert_eq!(err.to_string(), "exceeded limit of 1 with 2 alerts");
        assert_eq!(tr.alerts().count(), 0);
    }

    #[test]
    fn series_have_prometheus_labels_and_values() {
        let mut tr = AlertTracker::new(MIN, 0);
        tr.eval(61_500, vec![cand("a", 1.0)], 0).expect("eval");
        let rule_labels = vec![("severity".to_string(), "page".to_string())];
        let s = tr.series("Down", &rule_labels, 61_500 - 1000);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].labels.to_string(),
            r#"ALERTS{alertname="Down", alertstate="pending", instance="a", severity="page"}"#
        );
        assert_eq!(s[0].v, 1.0);
        assert_eq!(s[0].t, 60_500);
        assert_eq!(
            s[1].labels.to_string(),
            r#"ALERTS_FOR_STATE{alertname="Down", instance="a", severity="page"}"#
        );
        assert_eq!(s[1].v, 61.0);
    }

    #[test]
    fn resolved_alerts_produce_no_series() {
        let mut tr = AlertTracker::new(0, 0);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        tr.eval(MIN, vec![], 0).expect("eval");
        assert!(tr.series("Down", &[], MIN).is_empty());
    }

    #[test]
    fn sending_follows_resend_delay_and_resolution() {
        let mut tr = AlertTracker::new(0, 0);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        let sent = tr.take_alerts_to_send(0, MIN, 15_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].valid_until, Some(4 * MIN));
        assert!(tr.take_alerts_to_send(30_000, MIN, 15_000).is_empty());
        assert_eq!(tr.take_alerts_to_send(MIN + 1, MIN, 15_000).len(), 1);
        tr.eval(MIN + 2, vec![], 0).expect("eval");
        let sent = tr.take_alerts_to_send(MIN + 2, MIN, 15_000);
        assert_eq!(sent.len(), 1, "resolution is sent at once");
        assert_eq!(sent[0].state, AlertState::Inactive);
    }

    #[test]
    fn pending_alerts_are_never_sent() {
        let mut tr = AlertTracker::new(5 * MIN, 0);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        assert!(tr.take_alerts_to_send(0, MIN, MIN).is_empty());
    }

    #[test]
    fn export_import_round_trips_through_yaml() {
        let mut tr = AlertTracker::new(5 * MIN, 0);
        tr.eval(0, vec![cand("a", 1.0), cand("b", 2.0)], 0)
            .expect("eval");
        let text = serde_saphyr::to_string(&tr.export()).expect("serialize");
        let state: AlertTrackerState = serde_saphyr::from_str(&text).expect("deserialize");
        let mut back = AlertTracker::new(5 * MIN, 0);
        back.import(state).expect("import");
        assert_eq!(back, tr);
    }

    #[test]
    fn export_round_trips_through_json_with_non_finite_values() {
        let mut tr = AlertTracker::new(0, 0);
        tr.eval(0, vec![cand("a", f64::NAN), cand("b", f64::INFINITY)], 0)
            .expect("eval");
        let text = serde_json::to_string(&tr.export()).expect("serialize");
        let state: AlertTrackerState = serde_json::from_str(&text).expect("deserialize");
        let values: Vec<f64> = state.alerts.iter().map(|a| a.value).collect();
        assert!(values[0].is_nan());
        assert_eq!(values[1], f64::INFINITY);
    }

    #[test]
    fn import_rejects_unknown_versions() {
        let mut tr = AlertTracker::new(0, 0);
        let err = tr
            .import(AlertTrackerState {
                version: 99,
                last_eval_at: None,
                alerts: vec![],
            })
            .expect_err("version");
        assert_eq!(err, RestoreError::UnsupportedVersion { found: 99 });
    }

    #[test]
    fn restore_does_not_count_downtime_towards_for() {
        let mut tr = AlertTracker::new(10 * MIN, 0);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        tr.eval(2 * MIN, vec![cand("a", 1.0)], 0).expect("eval");
        let state = tr.export();
        let mut back = AlertTracker::new(10 * MIN, 0);
        // Down from 2m to 32m: 8m of `for` remain, counted from 32m.
        back.restore(state, 32 * MIN, MIN).expect("restore");
        let a = back.alerts().next().expect("alert");
        assert_eq!(a.active_at, 30 * MIN);
    }

    #[test]
    fn restore_applies_the_grace_period() {
        let mut tr = AlertTracker::new(10 * MIN, 0);
        tr.eval(0, vec![cand("a", 1.0)], 0).expect("eval");
        tr.eval(9 * MIN + 30_000, vec![cand("a", 1.0)], 0)
            .expect("eval");
        let mut back = AlertTracker::new(10 * MIN, 0);
        back.restore(tr.export(), 20 * MIN, 2 * MIN)
            .expect("restore");
        let a = back.alerts().next().expect("alert");
        // Fires no earlier than now + grace period.
        assert_eq!(a.active_at + 10 * MIN, 22 * MIN);
    }
}

#[cfg(test)]
mod proptests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn labels(i: u8) -> Labels {
        Labels::from_pairs([("alertname", "X".to_string()), ("id", i.to_string())])
    }

    /// One evaluation: time advance in seconds and which of 4 label sets
    /// the expression returned.
    fn step() -> impl Strategy<Value = (i64, Vec<bool>)> {
        (1i64..600, proptest::collection::vec(any::<bool>(), 4))
    }

    proptest! {
        #[test]
        fn state_machine_invariants(
            hold_s in 0i64..900,
            keep_s in prop_oneof![Just(0i64), 1i64..900],
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let hold = hold_s * 1000;
            let keep = keep_s * 1000;
            let mut tr = AlertTracker::new(hold, keep);
            let mut t = 0i64;
            let mut prev: BTreeMap<Labels, Alert> = BTreeMap::new();
            for (dt, present) in steps {
                t += dt * 1000;
                let cands: Vec<AlertCandidate> = present
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| **p)
                    .map(|(i, _)| AlertCandidate { labels: labels(i as u8), annotations: vec![], value: i as f64 })
                    .collect();
                tr.eval(t, cands, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
                for (i, p) in present.iter().enumerate() {
                    let a = tr.alerts.get(&labels(i as u8));
                    if *p {
                        // A present label set always has an active alert.
                        let a = a.ok_or_else(|| TestCaseError::fail("present but no alert"))?;
                        prop_assert!(a.state != AlertState::Inactive);
                        prop_assert_eq!(a.value, i as f64);
                    }
                    if let Some(a) = a {
                        prop_assert!(a.active_at <= t);
                        match a.state {
                            AlertState::Pending => {
                                prop_assert!(*p);
                                prop_assert!(t - a.active_at < hold);
                                prop_assert!(a.resolved_at.is_none());
                            }
                            AlertState::Firing => {
                                let fired = a.fired_at.ok_or_else(|| TestCaseError::fail("firing without fired_at"))?;
                                prop_assert!(fired - a.active_at >= hold);
                                prop_assert!(a.resolved_at.is_none());
                                if !*p {
                                    let since = a.keep_firing_since.ok_or_else(|| TestCaseError::fail("kept firing without keep_firing_since"))?;
                                    prop_assert!(keep > 0 && t - since < keep);
                                }
                            }
                            AlertState::Inactive => {
                                prop_assert!(!*p);
                                let r = a.resolved_at.ok_or_else(|| TestCaseError::fail("inactive without resolved_at"))?;
                                prop_assert!(t - r <= RESOLVED_RETENTION_MS);
                            }
                        }
                        // An alert that stayed active keeps its start time.
                        if let Some(old) = prev.get(&a.labels)
                            && old.state != AlertState::Inactive
                            && a.state != AlertState::Inactive
                        {
                            prop_assert_eq!(old.active_at, a.active_at);
                        }
                    }
                }
                // Two series per active alert, all label sets distinct.
                let series = tr.series("X", &[], t);
                let active = tr.alerts().filter(|a| a.state != AlertState::Inactive).count();
                prop_assert_eq!(series.len(), 2 * active);
                let distinct: std::collections::BTreeSet<_> = series.iter().map(|s| s.labels.clone()).collect();
                prop_assert_eq!(distinct.len(), series.len());
                // Export and import keep the machine identical.
                let mut copy = AlertTracker::new(hold, keep);
                copy.import(tr.export()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(&copy, &tr);
                prev = tr.alerts.clone();
            }
        }

        #[test]
        fn every_resolution_is_notified_and_pending_alerts_never_are(
            hold_s in 0i64..300,
            resend_s in 1i64..600,
            steps in proptest::collection::vec(step(), 1..60),
        ) {
            let mut tr = AlertTracker::new(hold_s * 1000, 0);
            let mut t = 0i64;
            for (dt, present) in steps {
                t += dt * 1000;
                let cands: Vec<AlertCandidate> = present
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| **p)
                    .map(|(i, _)| AlertCandidate { labels: labels(i as u8), annotations: vec![], value: 1.0 })
                    .collect();
                tr.eval(t, cands, 0).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let resolved_now: BTreeSet<Labels> = tr
                    .alerts()
                    .filter(|a| a.resolved_at == Some(t))
                    .map(|a| a.labels.clone())
                    .collect();
                let sent = tr.take_alerts_to_send(t, resend_s * 1000, 60_000);
                prop_assert!(sent.iter().all(|a| a.state != AlertState::Pending));
                let sent_resolved: BTreeSet<Labels> = sent
                    .iter()
                    .filter(|a| a.state == AlertState::Inactive)
                    .map(|a| a.labels.clone())
                    .collect();
                prop_assert!(resolved_now.is_subset(&sent_resolved));
                // Every firing alert has been sent at least once by now.
                prop_assert!(tr.firing_alerts().all(|a| a.last_sent_at.is_some()));
            }
        }

        #[test]
        fn limit_never_leaves_more_active_alerts_than_allowed(
            limit in 1usize..4,
            steps in proptest::collection::vec(step(), 1..30),
        ) {
            let mut tr = AlertTracker::new(0, 0);
            let mut t = 0i64;
            for (dt, present) in steps {
                t += dt * 1000;
                let cands: Vec<AlertCandidate> = present
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| **p)
                    .map(|(i, _)| AlertCandidate { labels: labels(i as u8), annotations: vec![], value: 1.0 })
                    .collect();
                let n = cands.len();
                match tr.eval(t, cands, limit) {
                    Ok(()) => prop_assert!(tr.active_alerts().count() <= limit),
                    Err(AlertError::LimitExceeded { count, .. }) => {
                        prop_assert!(count > limit && count >= n);
                        prop_assert_eq!(tr.alerts().count(), 0);
                    }
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
            }
        }
    }
}
