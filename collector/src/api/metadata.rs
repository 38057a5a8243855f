//! `/api/v1/series`, `/api/v1/labels` and `/api/v1/label/<name>/values`,
//! as Prometheus answers them: `match[]` selectors (several are a union),
//! optional `start` / `end` (series with a sample in the window) and
//! `limit` (0 means none; a truncated answer carries a warning).
//!
//! Without selectors and window, names and values come straight from the
//! head's inverted index; otherwise from the matching series.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use tocsin_rules::promql::Labels;
use tocsin_rules::promql::storage::{MatchOp, Matcher, Queryable};
use tocsin_rules::promql::value::METRIC_NAME;

use super::ApiState;
use super::params::{
    self, MAX_TIME_MS, MIN_TIME_MS, Params, invalid_param, match_params, time_param,
    unescape_label_name,
};
use super::response::{ApiError, success, write_labels, write_str};

const TRUNCATED: &str = "results truncated due to limit";

/// The `limit` parameter: 0 (or absent) means no limit.
fn limit_param(p: &Params) -> Result<usize, ApiError> {
    match p.get("limit") {
        None | Some("") => Ok(0),
        Some(v) => v
            .parse::<i64>()
            .map_err(|_| invalid_param("limit", format!("cannot parse {v:?} to a valid limit")))
            .and_then(|n| {
                usize::try_from(n).map_err(|_| invalid_param("limit", "limit must be non-negative"))
            }),
    }
}

/// The selection a metadata request describes.
struct Selection {
    sets: Vec<Vec<Matcher>>,
    start: i64,
    end: i64,
    windowed: bool,
    limit: usize,
}

fn selection(p: &Params, require_match: bool) -> Result<Selection, ApiError> {
    let matches = p.all("match[]");
    if require_match && matches.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = time_param(p, "start", MIN_TIME_MS)?;
    let end = time_param(p, "end", MAX_TIME_MS)?;
    Ok(Selection {
        sets: match_params(&matches)?,
        start,
        end,
        windowed: start != MIN_TIME_MS || end != MAX_TIME_MS,
        limit: limit_param(p)?,
    })
}

/// The label sets of the selected series, sorted and distinct.
fn selected_series(st: &ApiState, sel: &Selection) -> Result<BTreeSet<Labels>, ApiError> {
    let all = vec![vec![Matcher::new(MatchOp::NotEqual, METRIC_NAME, "")]];
    let sets = if sel.sets.is_empty() { &all } else { &sel.sets };
    let mut out = BTreeSet::new();
    for set in sets {
        if sel.windowed {
            let series = st
                .store
                .select(set, sel.start, sel.end)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            out.extend(series.into_iter().map(|s| s.labels));
        } else {
            out.extend(st.store.head().series_labels(set));
        }
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request failed: {e}")))?
}

fn strings_response(mut values: Vec<String>, limit: usize) -> Response {
    let mut warnings = Vec::new();
    if limit > 0 && values.len() > limit {
        values.truncate(limit);
        warnings.push(TRUNCATED.to_string());
    }
    let mut data = String::from("[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            data.push(',');
        }
        write_str(&mut data, v);
    }
    data.push(']');
    success(&data, &warnings, &[])
}

/// `GET|POST /api/v1/series`
pub async fn series(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let result = async {
        let p = params::read(req, st.settings.max_request_bytes).await?;
        let sel = selection(&p, true)?;
        let st2 = st.clone();
        let found = blocking(move || selected_series(&st2, &sel).map(|s| (s, sel.limit))).await?;
        let (found, limit) = found;
        let mut warnings = Vec::new();
        let mut data = String::from("[");
        for (i, l) in found.iter().enumerate() {
            if limit > 0 && i >= limit {
                warnings.push(TRUNCATED.to_string());
                break;
            }
            if i > 0 {
                data.push(',');
            }
            write_labels(&mut data, l);
        }
        data.push(']');
        Ok::<_, ApiError>(success(&data, &warnings, &[]))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET|POST /api/v1/labels`
pub async fn labels(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    let result = async {
        let p = params::read(req, st.settings.max_request_bytes).await?;
        let sel = selection(&p, false)?;
        let limit = sel.limit;
        let st2 = st.clone();
        let names = blocking(move || {
            if sel.sets.is_empty() && !sel.windowed {
                return Ok(st2.store.head().label_names());
            }
            let mut names = BTreeSet::new();
            for l in selected_series(&st2, &sel)? {
                names.extend(l.iter().map(|l| l.name.clone()));
            }
            Ok(names.into_iter().collect())
        })
        .await?;
        Ok::<_, ApiError>(strings_response(names, limit))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/label/<name>/values`
pub async fn label_values(
    State(st): State<Arc<ApiState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let result = async {
        let Some(name) = unescape_label_name(&name).filter(|n| !n.is_empty()) else {
            return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
        };
        let p = params::read(req, st.settings.max_request_bytes).await?;
        let sel = selection(&p, false)?;
        let limit = sel.limit;
        let st2 = st.clone();
        let values = blocking(move || {
            if sel.sets.is_empty() && !sel.windowed {
                return Ok(st2.store.head().label_values(&name));
            }
            let values: BTreeSet<String> = selected_series(&st2, &sel)?
                .iter()
                .map(|l| l.get(&name).to_string())
                .filter(|v| !v.is_empty())
                .collect();
            Ok(values.into_iter().collect())
        })
        .await?;
        Ok::<_, ApiError>(strings_response(values, limit))
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
