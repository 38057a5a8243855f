//! The API's self metrics, as series for `/metrics` and the collector's
//! own store ([`ApiMetrics::samples`]): `tocsin_api_requests_total{handler,
//! code}` and `tocsin_api_request_duration_seconds_sum` / `_count`
//! `{handler}`. `handler` is the route pattern (label names in paths are
//! not labels), so the series count is bounded by the routes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tocsin_rules::promql::Labels;

#[derive(Debug, Default)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    /// handler → (sum of seconds, count)
    durations: BTreeMap<String, (f64, u64)>,
}

/// Request counters of the API.
#[derive(Debug, Default, Clone)]
pub struct ApiMetrics {
    inner: Arc<Mutex<Inner>>,
}

/// The route pattern of a request path.
fn handler_of(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("/api/v1/label/")
        && rest.ends_with("/values")
    {
        return "/api/v1/label/{name}/values".into();
    }
    path.to_string()
}

impl ApiMetrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain counters: still meaningful after a panic elsewhere.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, path: &str, code: u16, seconds: f64) {
        let handler = handler_of(path);
        let mut i = self.inner();
        *i.requests.entry((handler.clone(), code)).or_default() += 1;
        let d = i.durations.entry(handler).or_default();
        d.0 += seconds;
        d.1 += 1;
    }

    /// Every series, valued now.
    pub fn samples(&self) -> Vec<(Labels, f64)> {
        let i = self.inner();
        let mut out = Vec::new();
        for ((handler, code), n) in &i.requests {
            out.push((
                Labels::from_pairs([
                    ("__name__", "tocsin_api_requests_total"),
                    ("handler", handler.as_str()),
                    ("code", code.to_string().as_str()),
                ]),
                *n as f64,
            ));
        }
        for (handler, (sum, count)) in &i.durations {
            let l = |name: &str| Labels::from_pairs([("__name__", name), ("handler", handler)]);
            out.push((l("tocsin_api_request_duration_seconds_sum"), *sum));
            out.push((
                l("tocsin_api_request_duration_seconds_count"),
                *count as f64,
            ));
        }
        out
    }
}

/// The middleware that counts every routed request.
pub async fn track(State(metrics): State<ApiMetrics>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics.record(
        &path,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_value_paths_share_one_handler() {
        let m = ApiMetrics::default();
        m.record("/api/v1/label/job/values", 200, 0.5);
        m.record("/api/v1/label/instance/values", 200, 0.25);
        m.record("/api/v1/query", 400, 0.0);
        let s = m.samples();
        let find = |name: &str, handler: &str| {
            s.iter()
                .find(|(l, _)| l.metric_name() == name && l.get("handler") == handler)
                .map(|(l, v)| (l.get("code").to_string(), *v))
        };
        assert_eq!(
            find("tocsin_api_requests_total", "/api/v1/label/{name}/values"),
            Some(("200".into(), 2.0))
        );
        assert_eq!(
            find(
                "tocsin_api_request_duration_seconds_sum",
                "/api/v1/label/{name}/values"
            ),
            Some((String::new(), 0.75))
        );
        assert_eq!(
            find("tocsin_api_requests_total", "/api/v1/query"),
            Some(("400".into(), 1.0))
        );
    }
}
