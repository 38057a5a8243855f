//! `/api/v1/rules` and `/api/v1/alerts`, in Prometheus' shapes: groups
//! with `name`, `file`, `rules`, `interval`, `limit`, `evaluationTime` and
//! `lastEvaluation`; alerting rules with `state`, `duration`,
//! `keepFiringFor`, `annotations` and their active `alerts`; recording
//! rules; `health` and `lastError`. Read from the ruler's per-group
//! snapshots, never from a group under evaluation.
//!
//! Filters as Prometheus: `type=alert|record`, `rule_name[]`,
//! `rule_group[]`, `file[]`, `match[]` (over the rules' labels),
//! `exclude_alerts`. A rule's own evaluation
//! time is not reported (the rule engine evaluates a group as a whole);
//! the group's is.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tocsin_rules::alert::Alert;
use tocsin_rules::promql::Labels;
use tocsin_rules::promql::storage::{Matcher, matches};

use super::ApiState;
use super::params::{self, Params, invalid_param, match_params};
use super::response::{ApiError, format_float_e, format_time, success};
use crate::ruler::{GroupSnapshot, RuleSnapshot};

fn label_map(pairs: impl IntoIterator<Item = (String, String)>) -> Value {
    // serde_json's Map is ordered by key: Prometheus' label order.
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect::<Map<_, _>>(),
    )
}

fn alert_json(a: &Alert) -> Value {
    let mut o = json!({
        "labels": label_map(a.labels.iter().map(|l| (l.name.clone(), l.value.clone()))),
        "annotations": label_map(a.annotations.iter().cloned()),
        "state": a.state.as_str(),
        "activeAt": format_time(Some(a.active_at)),
        "value": format_float_e(a.value),
    });
    if let (Some(since), Some(obj)) = (a.keep_firing_since, o.as_object_mut()) {
        obj.insert("keepFiringSince".into(), json!(format_time(Some(since))));
    }
    o
}

fn rule_json(r: &RuleSnapshot, exclude_alerts: bool) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(r.name));
    o.insert("query".into(), json!(r.query));
    o.insert("labels".into(), label_map(r.labels.iter().cloned()));
    o.insert("health".into(), json!(r.health));
    if let Some(e) = &r.last_error {
        o.insert("lastError".into(), json!(e));
    }
    o.insert(
        "lastEvaluation".into(),
        json!(format_time(r.last_evaluation_ms)),
    );
    match &r.alerting {
        Some(a) => {
            o.insert("state".into(), json!(a.state.as_str()));
            o.insert("duration".into(), json!(a.for_ms as f64 / 1000.0));
            o.insert(
                "keepFiringFor".into(),
                json!(a.keep_firing_for_ms as f64 / 1000.0),
            );
            o.insert(
                "annotations".into(),
                label_map(a.annotations.iter().cloned()),
            );
            if !exclude_alerts {
                o.insert(
                    "alerts".into(),
                    Value::Array(a.alerts.iter().map(alert_json).collect()),
                );
            }
            o.insert("type".into(), json!("alerting"));
        }
        None => {
            o.insert("type".into(), json!("recording"));
        }
    }
    Value::Object(o)
}

struct Filter {
    /// `match[]`: a rule is kept when its labels satisfy any one set.
    matchers: Vec<Vec<Matcher>>,
    alerts: bool,
    records: bool,
    names: Vec<String>,
    groups: Vec<String>,
    files: Vec<String>,
    exclude_alerts: bool,
}

fn filter(p: &Params) -> Result<Filter, ApiError> {
    let typ = p.value("type").to_ascii_lowercase();
    if !matches!(typ.as_str(), "" | "alert" | "record") {
        return Err(invalid_param(
            "type",
            format!("not supported value {typ:?}"),
        ));
    }
    let exclude_alerts = match p.value("exclude_alerts") {
        "" | "false" | "0" | "f" | "F" | "FALSE" | "False" => false,
        "true" | "1" | "t" | "T" | "TRUE" | "True" => true,
        other => {
            return Err(invalid_param(
                "exclude_alerts",
                format!("strconv.ParseBool: parsing {other:?}: invalid syntax"),
            ));
        }
    };
    let owned = |n: &str| p.all(n).into_iter().map(str::to_string).collect();
    Ok(Filter {
        matchers: match_params(&p.all("match[]"))?,
        alerts: typ != "record",
        records: typ != "alert",
        names: owned("rule_name[]"),
        groups: owned("rule_group[]"),
        files: owned("file[]"),
        exclude_alerts,
    })
}

fn group_json(g: &GroupSnapshot, f: &Filter) -> Option<Value> {
    if (!f.groups.is_empty() && !f.groups.contains(&g.name))
        || (!f.files.is_empty() && !f.files.contains(&g.file))
    {
        return None;
    }
    let rules: Vec<Value> = g
        .rules
        .iter()
        .filter(|r| {
            let kind_ok = if r.alerting.is_some() {
                f.alerts
            } else {
                f.records
            };
            kind_ok
                && (f.names.is_empty() || f.names.contains(&r.name))
                && (f.matchers.is_empty() || {
                    let labels = Labels::from_pairs(r.labels.iter().cloned());
                    f.matchers
                        .iter()
                        .any(|set| set.iter().all(|m| matches(m, &labels)))
                })
        })
        .map(|r| rule_json(r, f.exclude_alerts))
        .collect();
    let filtered = !f.names.is_empty() || !f.matchers.is_empty() || !f.alerts || !f.records;
    if filtered && rules.is_empty() {
        return None;
    }
    Some(json!({
        "name": g.name,
        "file": g.file,
        "rules": rules,
        "interval": g.interval_ms as f64 / 1000.0,
        "limit": g.limit,
        "evaluationTime": g.evaluation_time.as_secs_f64(),
        "lastEvaluation": format_time(g.last_evaluation_ms),
    }))
}

fn groups(st: &ApiState) -> Vec<Arc<GroupSnapshot>> {
    st.ruler.as_ref().map(|r| r.groups()).unwrap_or_default()
}

/// `GET /api/v1/rules`
pub async fn rules(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let result = async {
        let p = params::read(req, st.settings.max_request_bytes).await?;
        let f = filter(&p)?;
        let groups: Vec<Value> = groups(&st)
            .iter()
            .filter_map(|g| group_json(g, &f))
            .collect();
        let data = json!({ "groups": groups }).to_string();
        Ok::<_, ApiError>(success(&data, &[], &[]))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub async fn alerts(State(st): State<Arc<ApiState>>) -> Response {
    let alerts: Vec<Value> = groups(&st)
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter_map(|r| r.alerting.as_ref())
        .flat_map(|a| a.alerts.iter().map(alert_json))
        .collect();
    let data = json!({ "alerts": alerts }).to_string();
    success(&data, &[], &[])
}
