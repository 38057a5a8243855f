//! `/api/v1/query` and `/api/v1/query_range`, as Prometheus answers them:
//! the same parameters, limits, result encodings and error types.
//!
//! A query runs on a blocking thread over a view of the store that
//! refuses further reads once the query's deadline passed or its caller
//! went away ([`Guarded`]), so an abandoned query stops at its next
//! selector instead of running to the end.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use promql_parser::parser::Expr;
use tocsin_rules::promql::storage::{Matcher, Queryable, StorageError};
use tocsin_rules::promql::{Engine, EvalError, QueryResult, Series};

use super::ApiState;
use super::params::{self, Params, invalid_param, parse_duration, parse_time, time_param};
use super::response::{ApiError, ErrorType, success, write_query_data};
use crate::store::SeriesStore;

/// Most points one series of a range query may have (Prometheus' 11,000).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

const TIMEOUT_MESSAGE: &str = "query timed out in expression evaluation";

/// `GET|POST /api/v1/query`
pub async fn instant(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    match instant_inner(&st, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

#[tracing::instrument(name = "query", skip_all)]
async fn instant_inner(st: &Arc<ApiState>, req: Request) -> Result<Response, ApiError> {
    let p = params::read(req, st.settings.max_request_bytes).await?;
    let t = time_param(&p, "time", st.clock.now_ms())?;
    let timeout = timeout_param(st, &p)?;
    let expr = parse_query(&p)?;
    let engine = engine_for(st, &p)?;
    let res = run(st, timeout, move |q| engine.instant_query(q, &expr, t)).await?;
    Ok(respond(&res))
}

/// `GET|POST /api/v1/query_range`
pub async fn range(State(st): State<Arc<ApiState>>, req: Request) -> Response {
    match range_inner(&st, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

#[tracing::instrument(name = "query_range", skip_all)]
async fn range_inner(st: &Arc<ApiState>, req: Request) -> Result<Response, ApiError> {
    let p = params::read(req, st.settings.max_request_bytes).await?;
    let start = parse_time(p.value("start")).map_err(|e| invalid_param("start", e))?;
    let end = parse_time(p.value("end")).map_err(|e| invalid_param("end", e))?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    let step = parse_duration(p.value("step")).map_err(|e| invalid_param("step", e))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let timeout = timeout_param(st, &p)?;
    let expr = parse_query(&p)?;
    let engine = engine_for(st, &p)?;
    let res = run(st, timeout, move |q| {
        engine.range_query(q, &expr, start, end, step)
    })
    .await?;
    Ok(respond(&res))
}

fn parse_query(p: &Params) -> Result<Expr, ApiError> {
    tocsin_rules::promql::parse(p.value("query")).map_err(|e| invalid_param("query", e))
}

/// The engine for this request: the configured one, with the request's
/// `lookback_delta` when it sets one (Prometheus 3's per-query override).
fn engine_for(st: &ApiState, p: &Params) -> Result<Engine, ApiError> {
    let mut engine = st.engine.clone();
    match p.get("lookback_delta") {
        None | Some("") => {}
        Some(v) => {
            let ms = parse_duration(v).map_err(|e| invalid_param("lookback_delta", e))?;
            if ms < 0 {
                return Err(invalid_param(
                    "lookback_delta",
                    "lookback delta must be non-negative",
                ));
            }
            // Zero keeps the default, as in Prometheus.
            if ms > 0 {
                engine.options.lookback_delta_ms = ms;
            }
        }
    }
    Ok(engine)
}

/// The request's `timeout`, never longer than the configured one.
fn timeout_param(st: &ApiState, p: &Params) -> Result<Duration, ApiError> {
    let max = st.settings.query_timeout;
    match p.get("timeout") {
        None | Some("") => Ok(max),
        Some(v) => {
            let ms = parse_duration(v).map_err(|e| invalid_param("timeout", e))?;
            Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(max))
        }
    }
}

fn respond(res: &QueryResult) -> Response {
    let mut data = String::new();
    write_query_data(&mut data, &res.value);
    success(&data, &res.annotations.warnings, &res.annotations.infos)
}

/// Sets the flag when dropped: the request future was dropped (client
/// gone, or the deadline hit), so the blocking query should stop.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The store as a query sees it: every read first checks the deadline and
/// the cancellation flag.
pub struct Guarded<'a> {
    store: &'a SeriesStore,
    deadline: Instant,
    cancel: &'a AtomicBool,
    tripped: Cell<bool>,
}

impl Queryable for Guarded<'_> {
    fn select(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
    ) -> Result<Vec<Series>, StorageError> {
        if self.cancel.load(Ordering::Relaxed) || Instant::now() >= self.deadline {
            self.tripped.set(true);
            return Err(StorageError(TIMEOUT_MESSAGE.into()));
        }
        self.store.select(matchers, mint, maxt)
    }
}

/// Runs a query within `timeout` and a query slot.
pub(crate) async fn run<F>(st: &ApiState, timeout: Duration, f: F) -> Result<QueryResult, ApiError>
where
    F: FnOnce(&dyn Queryable) -> Result<QueryResult, EvalError> + Send + 'static,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let permit =
        match tokio::time::timeout_at(deadline, st.query_slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => {
                return Err(ApiError::new(
                    ErrorType::Unavailable,
                    "the query engine is shutting down",
                ));
            }
            Err(_) => {
                return Err(ApiError::new(
                    ErrorType::Timeout,
                    "query timed out in query queue",
                ));
            }
        };
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let store = st.store.clone();
    let std_deadline = deadline.into_std();
    let span = tracing::Span::current();
    let task = tokio::task::spawn_blocking(move || {
        let _span = span.entered();
        let _permit = permit;
        let q = Guarded {
            store: &store,
            deadline: std_deadline,
            cancel: &cancel,
            tripped: Cell::new(false),
        };
        let r = f(&q);
        (r, q.tripped.get())
    });
    match tokio::time::timeout_at(deadline, task).await {
        Err(_) | Ok(Ok((_, true))) => Err(ApiError::new(ErrorType::Timeout, TIMEOUT_MESSAGE)),
        Ok(Err(e)) => Err(ApiError::internal(format!("query failed: {e}"))),
        Ok(Ok((Err(e), false))) => Err(eval_error(e)),
        Ok(Ok((Ok(r), false))) => Ok(r),
    }
}

/// Prometheus' classification: storage failures are internal, everything
/// else the query did is an execution error.
fn eval_error(e: EvalError) -> ApiError {
    match e {
        EvalError::Storage(s) => ApiError::internal(s.to_string()),
        EvalError::TooManySamples => ApiError::new(
            ErrorType::Execution,
            "query processing would load too many samples into memory in query execution",
        ),
        EvalError::Eval(m) => ApiError::new(ErrorType::Execution, m),
    }
}
