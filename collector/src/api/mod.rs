//! The HTTP API served on 9466: Prometheus-compatible queries
//! (`/api/v1/query`, `/api/v1/query_range`), metadata (`/api/v1/series`,
//! `/api/v1/labels`, `/api/v1/label/<name>/values`), the ruler's view
//! (`/api/v1/rules`, `/api/v1/alerts`) and the lifecycle endpoints
//! (`/-/healthy`, `/-/ready`, `/-/reload`), so Grafana and promtool can use
//! the collector as a Prometheus.
//!
//! [`router`] builds an axum [`Router`]; the binary chooses the address
//! and TLS and serves it. Protected routes go through the bearer-token
//! layer ([`auth`]): `read` for queries and metadata, `admin` for
//! `/-/reload`; `/-/healthy` and `/-/ready` are open so load balancers and
//! systemd can probe them. Other parts of the collector protect their own
//! routes with [`protect`] and merge them in.
//!
//! Invariants: every query runs off the async executor, at most
//! `max_concurrent_queries` at once, and answers within its timeout (503
//! `timeout`); a timed-out or abandoned query stops at its next read of
//! the store. Request bodies are bounded.
//!
//! Wiring it up (what the binary does):
//!
//! ```no_run
//! # async fn serve(
//! #     store: std::sync::Arc<tocsin_collector::store::SeriesStore>,
//! #     api: tocsin_collector::api::ApiConfig,
//! #     ruler: tocsin_collector::ruler::RulerConfig,
//! # ) -> anyhow::Result<()> {
//! use std::path::Path;
//! use std::sync::Arc;
//! use tocsin_collector::{api, ruler};
//! use tokio_util::sync::CancellationToken;
//!
//! let shutdown = CancellationToken::new();
//! let settings = api.validate("api", Path::new("/etc/tocsin")).map_err(|e| anyhow::anyhow!("{e:?}"))?;
//! let addr: std::net::SocketAddr = "127.0.0.1:9466".parse()?;
//! settings.auth.check_bind(addr).map_err(anyhow::Error::msg)?;
//! let rules = ruler
//!     .validate("ruler", Path::new("/etc/tocsin"), Path::new("/var/lib/tocsin"))
//!     .map_err(|e| anyhow::anyhow!("{e:?}"))?;
//! let (handle, _ruler_task, _initial) = ruler::start(
//!     rules,
//!     store.clone(),
//!     ruler::RulerOptions { reload_on_sighup: true, ..Default::default() },
//!     shutdown.clone(),
//! )
//! .await?;
//! let state = api::ApiState::new(store, Some(handle), settings);
//! state.readiness.set_ready(true);
//! let listener = tokio::net::TcpListener::bind(addr).await?;
//! axum::serve(listener, api::router(Arc::new(state)))
//!     .with_graceful_shutdown(async move { shutdown.cancelled().await })
//!     .await?;
//! # Ok(())
//! # }
//! ```

pub mod auth;
pub mod config;
pub mod metadata;
pub mod metrics;
pub mod params;
pub mod query;
pub mod response;
pub mod rules;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Semaphore;

use tocsin_rules::promql::Engine;

use crate::ruler::{Clock, ReloadError, RulerHandle, SystemClock};
use crate::store::SeriesStore;

pub use auth::{ApiAuth, Principal, Role};
pub use config::{ApiConfig, ApiSettings, ApiTokenConfig};
pub use metrics::ApiMetrics;
pub use response::{ApiError, ErrorType};

/// Whether the collector is ready to serve (its store replayed); shared
/// with the binary, which flips it.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the API's handlers share.
pub struct ApiState {
    pub store: Arc<SeriesStore>,
    /// The ruler, when rules are configured.
    pub ruler: Option<RulerHandle>,
    pub settings: ApiSettings,
    /// The default evaluation time of instant queries comes from here.
    pub clock: Arc<dyn Clock>,
    pub readiness: Readiness,
    /// Request counters (`tocsin_api_*`).
    pub metrics: ApiMetrics,
    engine: Engine,
    query_slots: Arc<Semaphore>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    pub fn new(store: Arc<SeriesStore>, ruler: Option<RulerHandle>, settings: ApiSettings) -> Self {
        let engine = Engine::new(settings.engine.clone());
        ApiState {
            store,
            ruler,
            query_slots: Arc::new(Semaphore::new(settings.max_concurrent_queries.max(1))),
            settings,
            clock: Arc::new(SystemClock),
            readiness: Readiness::default(),
            metrics: ApiMetrics::default(),
            engine,
        }
    }

    /// Replaces the clock (tests pin "now").
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `readiness` (shared with the binary) for `/-/ready`.
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }
}

/// Puts `router`'s routes behind the bearer-token check for `need`.
pub fn protect<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    auth: &ApiAuth,
    need: Role,
) -> Router<S> {
    router.route_layer(from_fn_with_state((auth.clone(), need), auth::require))
}

/// The API's routes.
pub fn router(state: Arc<ApiState>) -> Router {
    let auth = state.settings.auth.clone();
    let read = Router::new()
        .route("/api/v1/query", get(query::instant).post(query::instant))
        .route("/api/v1/query_range", get(query::range).post(query::range))
        .route(
            "/api/v1/series",
            get(metadata::series).post(metadata::series),
        )
        .route(
            "/api/v1/labels",
            get(metadata::labels).post(metadata::labels),
        )
        .route("/api/v1/label/{name}/values", get(metadata::label_values))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts));
    let admin = Router::new().route("/-/reload", post(reload).put(reload));
    Router::new()
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .merge(protect(read, &auth, Role::Read))
        .merge(protect(admin, &auth, Role::Admin))
        .route_layer(from_fn_with_state(state.metrics.clone(), metrics::track))
        .with_state(state)
}

async fn healthy() -> &'static str {
    "Tocsin is Healthy.\n"
}

async fn ready(State(st): State<Arc<ApiState>>) -> Response {
    if st.readiness.is_ready() {
        (StatusCode::OK, "Tocsin is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n").into_response()
    }
}

async fn reload(State(st): State<Arc<ApiState>>) -> Response {
    let Some(ruler) = &st.ruler else {
        return ApiError::new(ErrorType::Unavailable, "no rules are configured").into_response();
    };
    match ruler.reload().await {
        Ok(s) => (
            StatusCode::OK,
            format!(
                "rules reloaded: {} files, {} groups, {} rules\n",
                s.files, s.groups, s.rules
            ),
        )
            .into_response(),
        Err(ReloadError::Stopped) => {
            ApiError::new(ErrorType::Unavailable, "the ruler is shutting down").into_response()
        }
        Err(e @ ReloadError::Invalid(_)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload rules (the previous rules keep running):\n{e}\n"),
        )
            .into_response(),
    }
}
