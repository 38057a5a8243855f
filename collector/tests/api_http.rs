//! The HTTP API end to end in-process: the axum router driven with
//! `tower::ServiceExt::oneshot` over a real series store (and a real ruler
//! for the rules endpoints), responses checked against the shapes of
//! Prometheus' documented HTTP API; and, when Debian's `promtool` is on
//! PATH, the router served on 127.0.0.1 and queried by promtool, a real
//! Prometheus API client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tocsin_collector::api::{ApiAuth, ApiSettings, ApiState, Readiness, Role, router};
use tocsin_collector::ruler::{self, ManualClock, RulerHandle, RulerOptions, RulerSettings};
use tocsin_collector::store::SeriesStore;
use tocsin_collector::store::head::HeadOptions;
use tocsin_collector::store::wal::WalOptions;
use tocsin_rules::promql::Labels;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The samples' base time: a whole second, so timestamps print without
/// fractions.
const T: i64 = 1_700_000_000_000;
/// "Now" for the API (the default `time` of instant queries).
const NOW: i64 = T + 600_000;

struct Env {
    _dir: TempDir,
    dir_path: std::path::PathBuf,
    store: Arc<SeriesStore>,
    clock: Arc<ManualClock>,
}

fn lbl(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = SeriesStore::open(
            &dir.path().join("wal"),
            HeadOptions::default(),
            WalOptions::default(),
        )
        .unwrap();
        let mut batch = Vec::new();
        // 10 minutes of data every 15s.
        for i in 0..=40 {
            let t = T + i * 15_000;
            batch.push((
                lbl(&[("__name__", "up"), ("job", "api"), ("instance", "a")]),
                t,
                1.0,
            ));
            batch.push((
                lbl(&[("__name__", "up"), ("job", "db"), ("instance", "b")]),
                t,
                0.0,
            ));
            batch.push((
                lbl(&[("__name__", "http_requests_total"), ("job", "api")]),
                t,
                (i * 30) as f64,
            ));
        }
        // Only early data: outside a late window.
        batch.push((lbl(&[("__name__", "old_metric"), ("job", "api")]), T, 5.0));
        batch.push((lbl(&[("__name__", "dup_a"), ("x", "1")]), NOW, 1.0));
        batch.push((lbl(&[("__name__", "dup_b"), ("x", "1")]), NOW, 2.0));
        batch.push((
            lbl(&[("__name__", "dotted"), ("http.method", "GET")]),
            NOW,
            1.0,
        ));
        store.append(&batch).unwrap();
        Env {
            dir_path: dir.path().to_path_buf(),
            _dir: dir,
            store: Arc::new(store),
            clock: Arc::new(ManualClock::new(NOW)),
        }
    }

    fn router(&self, settings: ApiSettings, ruler: Option<RulerHandle>) -> (Router, Readiness) {
        let readiness = Readiness::default();
        let state = ApiState::new(self.store.clone(), ruler, settings)
            .with_clock(self.clock.clone())
            .with_readiness(readiness.clone());
        (router(Arc::new(state)), readiness)
    }

    fn open_router(&self) -> Router {
        self.router(ApiSettings::default(), None).0
    }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn send(r: &Router, req: Request<Body>) -> Reply {
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(r: &Router, uri: &str) -> Reply {
    send(r, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post_form(r: &Router, uri: &str, form: &str) -> Reply {
    send(
        r,
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.to_string()))
            .unwrap(),
    )
    .await
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Asserts a Prometheus error response and returns its message.
fn assert_error(r: &Reply, status: u16, error_type: &str) -> String {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.content_type, "application/json");
    let v = r.json();
    assert_eq!(v["status"], "error", "{}", r.body);
    assert_eq!(v["errorType"], error_type, "{}", r.body);
    v["error"].as_str().unwrap().to_string()
}

fn assert_success(r: &Reply) -> Value {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.content_type, "application/json");
    let v = r.json();
    assert_eq!(v["status"], "success", "{}", r.body);
    v
}

mod query {
    use super::*;

    #[tokio::test]
    async fn instant_vector_has_prometheus_shape() {
        let env = Env::new();
        let r = env.open_router();
        let v = assert_success(&get(&r, "/api/v1/query?query=up").await);
        // Evaluated at "now" by default; sorted by labels.
        assert_eq!(
            v["data"],
            json!({
                "resultType": "vector",
                "result": [
                    {"metric": {"__name__": "up", "instance": "a", "job": "api"}, "value": [1_700_000_600, "1"]},
                    {"metric": {"__name__": "up", "instance": "b", "job": "db"}, "value": [1_700_000_600, "0"]},
                ]
            })
        );
        assert!(v.get("warnings").is_none() && v.get("infos").is_none());
    }

    #[tokio::test]
    async fn post_form_time_formats_and_fractional_timestamps() {
        let env = Env::new();
        let r = env.open_router();
        let a = post_form(
            &r,
            "/api/v1/query",
            &format!("query={}&time=1700000300.5", enc("sum by (job) (up)")),
        )
        .await;
        let v = assert_success(&a);
        assert!(a.body.contains("[1700000300.500,\"1\"]"), "{}", a.body);
        assert_eq!(v["data"]["result"][0]["metric"], json!({"job": "api"}));
        let b = get(
            &r,
            &format!(
                "/api/v1/query?query={}&time=2023-11-14T22:18:20.5Z",
                enc("sum by (job) (up)")
            ),
        )
        .await;
        assert_eq!(assert_success(&b)["data"], v["data"]);
    }

    #[tokio::test]
    async fn scalar_string_and_matrix_results() {
        let env = Env::new();
        let r = env.open_router();
        let v = assert_success(&get(&r, "/api/v1/query?query=1%2B1&time=100").await);
        assert_eq!(
            v["data"],
            json!({"resultType": "scalar", "result": [100, "2"]})
        );
        let v = assert_success(&get(&r, "/api/v1/query?query=%22hi%22&time=100").await);
        assert_eq!(
            v["data"],
            json!({"resultType": "string", "result": [100, "hi"]})
        );
        let v = assert_success(
            &get(
                &r,
                &format!(
                    "/api/v1/query?query={}&time=1700000030",
                    enc("up{job=\"api\"}[30s]")
                ),
            )
            .await,
        );
        assert_eq!(v["data"]["resultType"], "matrix");
        assert_eq!(
            v["data"]["result"][0]["values"],
            json!([[1_700_000_015, "1"], [1_700_000_030, "1"]])
        );
        let v = assert_success(&get(&r, "/api/v1/query?query=1%2F0&time=1").await);
        assert_eq!(v["data"]["result"][1], "+Inf");
    }

    #[tokio::test]
    async fn range_query_matrix_with_step_as_duration_or_seconds() {
        let env = Env::new();
        let r = env.open_router();
        let q = enc("http_requests_total / 15");
        let a = get(
            &r,
            &format!("/api/v1/query_range?query={q}&start=1700000060&end=1700000120&step=30s"),
        )
        .await;
        let v = assert_success(&a);
        assert_eq!(
            v["data"],
            json!({
                "resultType": "matrix",
                "result": [{
                    "metric": {"job": "api"},
                    "values": [[1_700_000_060, "8"], [1_700_000_090, "12"], [1_700_000_120, "16"]]
                }]
            })
        );
        let b = post_form(
            &r,
            "/api/v1/query_range",
            &format!("query={q}&start=2023-11-14T22:14:20Z&end=2023-11-14T22:15:20Z&step=30"),
        )
        .await;
        assert_eq!(assert_success(&b)["data"], v["data"]);
    }

    #[tokio::test]
    async fn warnings_and_infos_are_reported() {
        let env = Env::new();
        let r = env.open_router();
        let v =
            assert_success(&get(&r, &format!("/api/v1/query?query={}", enc("rate(up[5m])"))).await);
        let infos = v["infos"].as_array().unwrap();
        assert!(
            infos[0]
                .as_str()
                .unwrap()
                .contains("might not be a counter"),
            "{v}"
        );
        let v = assert_success(
            &get(
                &r,
                &format!("/api/v1/query?query={}", enc("quantile(2, up)")),
            )
            .await,
        );
        let w = v["warnings"].as_array().unwrap();
        assert!(
            w[0].as_str()
                .unwrap()
                .contains("quantile value should be between 0 and 1"),
            "{v}"
        );
    }

    #[tokio::test]
    async fn bad_parameters_are_bad_data() {
        let env = Env::new();
        let r = env.open_router();
        let m = assert_error(&get(&r, "/api/v1/query").await, 400, "bad_data");
        assert!(m.starts_with("invalid parameter \"query\": "), "{m}");
        let m = assert_error(&get(&r, "/api/v1/query?query=sum(").await, 400, "bad_data");
        assert!(m.starts_with("invalid parameter \"query\": "), "{m}");
        let m = assert_error(
            &get(&r, "/api/v1/query?query=up&time=later").await,
            400,
            "bad_data",
        );
        assert_eq!(
            m,
            "invalid parameter \"time\": cannot parse \"later\" to a valid timestamp"
        );
        let m = assert_error(
            &get(&r, "/api/v1/query?query=up&timeout=soon").await,
            400,
            "bad_data",
        );
        assert_eq!(
            m,
            "invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration"
        );
        let range = |s: &str| format!("/api/v1/query_range?query=up&{s}");
        let m = assert_error(
            &get(&r, &range("start=10&end=5&step=1")).await,
            400,
            "bad_data",
        );
        assert_eq!(m, "end timestamp must not be before start time");
        let m = assert_error(
            &get(&r, &range("start=1&end=5&step=0")).await,
            400,
            "bad_data",
        );
        assert_eq!(
            m,
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
        );
        let m = assert_error(
            &get(&r, &range("start=0&end=100000&step=1")).await,
            400,
            "bad_data",
        );
        assert!(
            m.starts_with("exceeded maximum resolution of 11,000 points"),
            "{m}"
        );
        let m = assert_error(&get(&r, &range("start=0&end=10")).await, 400, "bad_data");
        assert_eq!(
            m,
            "invalid parameter \"step\": cannot parse \"\" to a valid duration"
        );
        let m = assert_error(&get(&r, &range("end=10&step=1")).await, 400, "bad_data");
        assert_eq!(
            m,
            "invalid parameter \"start\": cannot parse \"\" to a valid timestamp"
        );
    }

    #[tokio::test]
    async fn evaluation_failures_are_execution_errors() {
        let env = Env::new();
        let r = env.open_router();
        let m = assert_error(
            &get(
                &r,
                &format!("/api/v1/query?query={}", enc("{__name__=~\"dup_.\"} * 2")),
            )
            .await,
            422,
            "execution",
        );
        assert!(m.contains("same labelset"), "{m}");
        let m = assert_error(
            &get(
                &r,
                &format!(
                    "/api/v1/query_range?query={}&start=0&end=1&step=1",
                    enc("up[5m]")
                ),
            )
            .await,
            422,
            "execution",
        );
        assert!(m.contains("range vector"), "{m}");
    }

    #[tokio::test]
    async fn lookback_delta_overrides_the_lookback_per_query() {
        let env = Env::new();
        let r = env.open_router();
        // The last `up` sample is at NOW; 90s later it is within the
        // default 5m lookback but not within 1m.
        let at = "time=1700000690";
        let v = assert_success(&get(&r, &format!("/api/v1/query?query=up&{at}")).await);
        assert_eq!(v["data"]["result"].as_array().unwrap().len(), 2);
        let v = assert_success(
            &get(
                &r,
                &format!("/api/v1/query?query=up&{at}&lookback_delta=1m"),
            )
            .await,
        );
        assert_eq!(v["data"]["result"], json!([]));
        let m = assert_error(
            &get(&r, "/api/v1/query?query=up&lookback_delta=-5").await,
            400,
            "bad_data",
        );
        assert!(m.starts_with("invalid parameter \"lookback_delta\""), "{m}");
    }

    #[tokio::test]
    async fn an_expired_timeout_is_a_503_timeout() {
        let env = Env::new();
        let r = env.open_router();
        let m = assert_error(
            &get(&r, "/api/v1/query?query=up&timeout=0s").await,
            503,
            "timeout",
        );
        assert_eq!(m, "query timed out in expression evaluation");
    }

    #[tokio::test]
    async fn too_many_samples_is_an_execution_error() {
        let env = Env::new();
        let mut settings = ApiSettings::default();
        settings.engine.max_samples = 10;
        let (r, _) = env.router(settings, None);
        let m = assert_error(
            &get(&r, &format!("/api/v1/query?query={}", enc("up[10m]"))).await,
            422,
            "execution",
        );
        assert!(m.contains("too many samples"), "{m}");
    }
}

mod metadata {
    use super::*;

    #[tokio::test]
    async fn series_needs_match_and_returns_label_sets() {
        let env = Env::new();
        let r = env.open_router();
        let m = assert_error(&get(&r, "/api/v1/series").await, 400, "bad_data");
        assert_eq!(m, "no match[] parameter provided");
        let v = assert_success(
            &get(
                &r,
                &format!(
                    "/api/v1/series?match[]={}&match[]={}",
                    enc("up{job=\"db\"}"),
                    enc("old_metric")
                ),
            )
            .await,
        );
        assert_eq!(
            v["data"],
            json!([
                {"__name__": "old_metric", "job": "api"},
                {"__name__": "up", "instance": "b", "job": "db"},
            ])
        );
        // A window after old_metric's only sample leaves it out.
        let v = assert_success(
            &post_form(
                &r,
                "/api/v1/series",
                &format!(
                    "match[]={}&start=1700000100&end=1700000200",
                    enc("{job=\"api\"}")
                ),
            )
            .await,
        );
        let names: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["__name__"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["http_requests_total", "up"]);
        let m = assert_error(
            &get(&r, "/api/v1/series?match[]=sum(up)").await,
            400,
            "bad_data",
        );
        assert!(m.starts_with("invalid parameter \"match[]\""), "{m}");
    }

    #[tokio::test]
    async fn labels_and_values_with_matchers_limits_and_escaped_names() {
        let env = Env::new();
        let r = env.open_router();
        let v = assert_success(&get(&r, "/api/v1/labels").await);
        assert_eq!(
            v["data"],
            json!(["__name__", "http.method", "instance", "job", "x"])
        );
        let v = assert_success(&get(&r, &format!("/api/v1/labels?match[]={}", enc("up"))).await);
        assert_eq!(v["data"], json!(["__name__", "instance", "job"]));
        let v = assert_success(&get(&r, "/api/v1/label/job/values").await);
        assert_eq!(v["data"], json!(["api", "db"]));
        let v = assert_success(
            &get(
                &r,
                &format!(
                    "/api/v1/label/__name__/values?match[]={}",
                    enc("{job=\"api\"}")
                ),
            )
            .await,
        );
        assert_eq!(
            v["data"],
            json!(["http_requests_total", "old_metric", "up"])
        );
        let v = assert_success(&get(&r, "/api/v1/label/__name__/values?limit=2").await);
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
        let v = assert_success(&get(&r, "/api/v1/label/U__http_2e_method/values").await);
        assert_eq!(v["data"], json!(["GET"]));
        let v = assert_success(&get(&r, "/api/v1/label/nope/values").await);
        assert_eq!(v["data"], json!([]));
        let m = assert_error(&get(&r, "/api/v1/labels?limit=-1").await, 400, "bad_data");
        assert!(m.starts_with("invalid parameter \"limit\""), "{m}");
    }
}

mod rules {
    use super::*;

    const RULES: &str = "groups:
- name: example
  interval: 10s
  labels:
    team: core
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: InstanceDown
    expr: up == 0
    for: 10s
    keep_firing_for: 1m
    labels:
      severity: page
    annotations:
      summary: '{{ $labels.instance }} down'
  - record: broken
    expr: '{__name__=~\"dup_.\"} * 2'
";

    async fn start_ruler(env: &Env, text: &str) -> (RulerHandle, CancellationToken, String) {
        let rules_dir = env.dir_path.join("rules");
        std::fs::create_dir_all(&rules_dir).unwrap();
        let file = rules_dir.join("example.yaml");
        std::fs::write(&file, text).unwrap();
        let mut settings = RulerSettings::new(
            vec![format!("{}/*.yaml", rules_dir.display())],
            env.dir_path.join("ruler.sqlite"),
        );
        settings.watch_files = false;
        let shutdown = CancellationToken::new();
        let (handle, _task, initial) = ruler::start(
            settings,
            env.store.clone(),
            RulerOptions {
                clock: env.clock.clone(),
                ..RulerOptions::default()
            },
            shutdown.clone(),
        )
        .await
        .unwrap();
        initial.unwrap();
        (handle, shutdown, file.display().to_string())
    }

    /// Moves the clock to `t` and waits for one more evaluation.
    async fn eval_at(env: &Env, h: &RulerHandle, t: i64) {
        let mut evals = h.evaluations();
        let before = *evals.borrow_and_update();
        env.clock.set(t);
        tokio::time::timeout(Duration::from_secs(20), evals.wait_for(|n| *n > before))
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rules_and_alerts_have_prometheus_shape() {
        let env = Env::new();
        let (h, shutdown, file) = start_ruler(&env, RULES).await;
        let (r, _) = env.router(ApiSettings::default(), Some(h.clone()));

        let v = assert_success(&get(&r, "/api/v1/rules").await);
        let g = &v["data"]["groups"][0];
        assert_eq!(g["lastEvaluation"], "0001-01-01T00:00:00Z");
        assert_eq!(g["rules"][0]["health"], "unknown");

        let slot = ruler::schedule::first_slot(
            NOW,
            10_000,
            ruler::schedule::offset_ms(&file, "example", 10_000),
        );
        eval_at(&env, &h, slot).await;
        eval_at(&env, &h, slot + 10_000).await;

        let v = assert_success(&get(&r, "/api/v1/rules").await);
        let g = &v["data"]["groups"][0];
        assert_eq!(g["name"], "example");
        assert_eq!(g["file"], file);
        assert_eq!(g["interval"], json!(10.0));
        assert_eq!(g["limit"], 0);
        assert!(g["evaluationTime"].as_f64().unwrap() >= 0.0);
        let last =
            chrono::DateTime::parse_from_rfc3339(g["lastEvaluation"].as_str().unwrap()).unwrap();
        assert_eq!(last.timestamp_millis(), slot + 10_000);

        let rec = &g["rules"][0];
        assert_eq!(rec["type"], "recording");
        assert_eq!(rec["name"], "job:up:sum");
        assert_eq!(rec["query"], "sum by (job) (up)");
        assert_eq!(rec["labels"], json!({"team": "core"}));
        assert_eq!(rec["health"], "ok");
        assert!(rec.get("lastError").is_none());

        let alert = &g["rules"][1];
        assert_eq!(alert["type"], "alerting");
        assert_eq!(alert["state"], "firing");
        assert_eq!(alert["duration"], json!(10.0));
        assert_eq!(alert["keepFiringFor"], json!(60.0));
        assert_eq!(alert["labels"], json!({"severity": "page", "team": "core"}));
        assert_eq!(
            alert["annotations"],
            json!({"summary": "{{ $labels.instance }} down"})
        );
        assert_eq!(alert["health"], "ok");
        let a = &alert["alerts"][0];
        assert_eq!(
            a["labels"],
            json!({"alertname": "InstanceDown", "instance": "b", "job": "db", "severity": "page", "team": "core"})
        );
        assert_eq!(a["annotations"], json!({"summary": "b down"}));
        assert_eq!(a["state"], "firing");
        assert_eq!(a["value"], "0e+00");
        let active = chrono::DateTime::parse_from_rfc3339(a["activeAt"].as_str().unwrap()).unwrap();
        assert_eq!(active.timestamp_millis(), slot);

        let broken = &g["rules"][2];
        assert_eq!(broken["health"], "err");
        assert!(
            broken["lastError"]
                .as_str()
                .unwrap()
                .contains("same labelset")
        );

        let v = assert_success(&get(&r, "/api/v1/alerts").await);
        assert_eq!(v["data"]["alerts"].as_array().unwrap().len(), 1);
        assert_eq!(v["data"]["alerts"][0], *a);

        // Filters.
        let v = assert_success(&get(&r, "/api/v1/rules?type=record").await);
        let types: Vec<&str> = v["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, vec!["recording", "recording"]);
        let v = assert_success(&get(&r, "/api/v1/rules?type=alert&exclude_alerts=true").await);
        assert!(v["data"]["groups"][0]["rules"][0].get("alerts").is_none());
        let v = assert_success(
            &get(
                &r,
                &format!("/api/v1/rules?match[]={}", enc("{severity=\"page\"}")),
            )
            .await,
        );
        let names: Vec<&str> = v["data"]["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["InstanceDown"]);
        let v = assert_success(&get(&r, "/api/v1/rules?rule_name[]=nothing").await);
        assert_eq!(v["data"]["groups"], json!([]));
        let m = assert_error(&get(&r, "/api/v1/rules?type=both").await, 400, "bad_data");
        assert_eq!(
            m,
            "invalid parameter \"type\": not supported value \"both\""
        );
        shutdown.cancel();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reload_through_the_api_keeps_old_rules_on_error() {
        let env = Env::new();
        let (h, shutdown, file) = start_ruler(&env, RULES).await;
        let (r, _) = env.router(ApiSettings::default(), Some(h.clone()));
        std::fs::write(
            &file,
            "groups:\n- name: x\n  rules:\n  - alert: A\n    expr: up ==\n",
        )
        .unwrap();
        let reply = send(&r, Request::post("/-/reload").body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(reply.body.contains(&format!("{file}:5:")), "{}", reply.body);
        let v = assert_success(&get(&r, "/api/v1/rules").await);
        assert_eq!(v["data"]["groups"][0]["name"], "example");
        std::fs::write(
            &file,
            "groups:\n- name: y\n  rules:\n  - record: z\n    expr: vector(1)\n",
        )
        .unwrap();
        let reply = send(&r, Request::put("/-/reload").body(Body::empty()).unwrap()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let v = assert_success(&get(&r, "/api/v1/rules").await);
        assert_eq!(v["data"]["groups"][0]["name"], "y");
        let reply = get(&r, "/-/reload").await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        shutdown.cancel();
    }

    #[tokio::test]
    async fn without_a_ruler_rules_are_empty_and_reload_is_unavailable() {
        let env = Env::new();
        let r = env.open_router();
        let v = assert_success(&get(&r, "/api/v1/rules").await);
        assert_eq!(v["data"], json!({"groups": []}));
        let v = assert_success(&get(&r, "/api/v1/alerts").await);
        assert_eq!(v["data"], json!({"alerts": []}));
        let reply = send(&r, Request::post("/-/reload").body(Body::empty()).unwrap()).await;
        assert_error(&reply, 503, "unavailable");
    }
}

mod access {
    use super::*;

    fn with_tokens() -> ApiSettings {
        ApiSettings {
            auth: ApiAuth::new([
                ("grafana".to_string(), Role::Read, "read-token".to_string()),
                ("ops".to_string(), Role::Admin, "admin-token".to_string()),
            ]),
            ..ApiSettings::default()
        }
    }

    fn req(method: Method, uri: &str, token: Option<&str>) -> Request<Body> {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn tokens_and_roles_guard_the_endpoints() {
        let env = Env::new();
        let (r, _) = env.router(with_tokens(), None);
        let reply = send(&r, req(Method::GET, "/api/v1/query?query=up", None)).await;
        assert_error(&reply, 401, "unauthorized");
        let reply = send(
            &r,
            req(Method::GET, "/api/v1/query?query=up", Some("wrong")),
        )
        .await;
        assert_error(&reply, 401, "unauthorized");
        let reply = send(
            &r,
            req(Method::GET, "/api/v1/query?query=up", Some("read-token")),
        )
        .await;
        assert_success(&reply);
        let reply = send(&r, req(Method::GET, "/api/v1/labels", Some("admin-token"))).await;
        assert_success(&reply);
        let reply = send(&r, req(Method::POST, "/-/reload", Some("read-token"))).await;
        let m = assert_error(&reply, 403, "forbidden");
        assert!(m.contains("needs admin"), "{m}");
        // Passes the admin check; no ruler here.
        let reply = send(&r, req(Method::POST, "/-/reload", Some("admin-token"))).await;
        assert_error(&reply, 503, "unavailable");
        // Probes stay open.
        let reply = send(&r, req(Method::GET, "/-/healthy", None)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn requests_are_counted_by_handler_and_code() {
        let env = Env::new();
        let state = ApiState::new(env.store.clone(), None, with_tokens());
        let metrics = state.metrics.clone();
        let r = router(Arc::new(state));
        send(&r, req(Method::GET, "/api/v1/query?query=up", None)).await;
        send(
            &r,
            req(Method::GET, "/api/v1/query?query=up", Some("read-token")),
        )
        .await;
        send(
            &r,
            req(Method::GET, "/api/v1/label/job/values", Some("read-token")),
        )
        .await;
        let count = |handler: &str, code: &str| {
            metrics
                .samples()
                .into_iter()
                .find(|(l, _)| {
                    l.metric_name() == "tocsin_api_requests_total"
                        && l.get("handler") == handler
                        && l.get("code") == code
                })
                .map(|(_, v)| v)
        };
        assert_eq!(count("/api/v1/query", "401"), Some(1.0));
        assert_eq!(count("/api/v1/query", "200"), Some(1.0));
        assert_eq!(count("/api/v1/label/{name}/values", "200"), Some(1.0));
    }

    #[tokio::test]
    async fn readiness_follows_the_flag() {
        let env = Env::new();
        let (r, ready) = env.router(ApiSettings::default(), None);
        assert_eq!(
            get(&r, "/-/ready").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        ready.set_ready(true);
        let reply = get(&r, "/-/ready").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "Tocsin is Ready.\n");
        assert_eq!(get(&r, "/-/healthy").await.body, "Tocsin is Healthy.\n");
    }

    #[tokio::test]
    async fn an_oversized_form_body_is_refused() {
        let env = Env::new();
        let settings = ApiSettings {
            max_request_bytes: 64,
            ..ApiSettings::default()
        };
        let (r, _) = env.router(settings, None);
        let body = format!("query={}", "u".repeat(100));
        assert_error(
            &post_form(&r, "/api/v1/query", &body).await,
            400,
            "bad_data",
        );
    }
}

mod promtool {
    use super::*;
    use std::process::Command;

    fn promtool() -> Option<std::path::PathBuf> {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("promtool"))
                .find(|p| p.is_file())
        })
    }

    async fn serve(r: Router) -> (String, CancellationToken) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, r)
                .with_graceful_shutdown(async move { s.cancelled().await })
                .await
                .unwrap();
        });
        (url, stop)
    }

    async fn run(args: Vec<String>) -> (bool, String, String) {
        tokio::task::spawn_blocking(move || {
            let out = Command::new("promtool").args(&args).output().unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn promtool_queries_get_correct_answers() {
        if promtool().is_none() {
            println!("promtool not on PATH: skipping the promtool client test");
            return;
        }
        let env = Env::new();
        let (url, stop) = serve(env.open_router()).await;

        let (ok, out, err) = run(vec![
            "query".into(),
            "instant".into(),
            "--time=2023-11-14T22:23:20Z".into(),
            url.clone(),
            "up".into(),
        ])
        .await;
        assert!(ok, "{err}");
        assert_eq!(
            out,
            "up{instance=\"a\", job=\"api\"} => 1 @[1700000600]\nup{instance=\"b\", job=\"db\"} => 0 @[1700000600]\n"
        );

        let (ok, out, err) = run(vec![
            "query".into(),
            "instant".into(),
            "--time=1700000300".into(),
            url.clone(),
            "sum(http_requests_total) / 30".into(),
        ])
        .await;
        assert!(ok, "{err}");
        assert_eq!(out, "{} => 20 @[1700000300]\n");

        let (ok, out, err) = run(vec![
            "query".into(),
            "range".into(),
            "--start=1700000060".into(),
            "--end=1700000090".into(),
            "--step=15s".into(),
            url.clone(),
            "up{job=\"db\"} + 1".into(),
        ])
        .await;
        assert!(ok, "{err}");
        assert_eq!(
            out,
            "{instance=\"b\", job=\"db\"} =>\n1 @[1700000060]\n1 @[1700000075]\n1 @[1700000090]\n"
        );

        let (ok, out, err) = run(vec![
            "query".into(),
            "series".into(),
            // promtool's default window is the last minutes before now.
            "--start=1700000000".into(),
            "--end=2023-11-14T22:23:20Z".into(),
            "--match=up".into(),
            "--match=old_metric".into(),
            url.clone(),
        ])
        .await;
        assert!(ok, "{err}");
        assert_eq!(
            out,
            "{__name__=\"old_metric\", job=\"api\"}\n{__name__=\"up\", instance=\"a\", job=\"api\"}\n{__name__=\"up\", instance=\"b\", job=\"db\"}\n"
        );

        let (ok, out, err) = run(vec![
            "query".into(),
            "labels".into(),
            "--start=1700000000".into(),
            "--end=1700000600".into(),
            "--match=up".into(),
            url.clone(),
            "job".into(),
        ])
        .await;
        assert!(ok, "{err}");
        assert_eq!(out, "api\ndb\n");

        // A query error reaches promtool as Prometheus' would.
        let (ok, _, err) = run(vec![
            "query".into(),
            "instant".into(),
            url.clone(),
            "sum(".into(),
        ])
        .await;
        assert!(!ok);
        assert!(err.contains("bad_data"), "{err}");
        stop.cancel();
    }
}
