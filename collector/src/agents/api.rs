//! The inventory's HTTP endpoints (the contract is in the module doc of
//! [`crate::agents`]): `GET /api/v1/agents` for the `read` role and
//! `DELETE /api/v1/agents/{id}` for `admin`. The database work of a
//! forget runs on the blocking pool.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};

use super::{AgentRegistry, AgentView};
use crate::api::response::{format_time, success};
use crate::api::{ApiAuth, ApiError, ErrorType, Role, protect};
use crate::receivers::ingest::Clock;

#[derive(Clone)]
struct AgentsState {
    registry: Arc<AgentRegistry>,
    clock: Clock,
}

/// The inventory's routes behind the API's bearer tokens; `clock` gives
/// "now" for the `up` field.
pub fn routes(registry: Arc<AgentRegistry>, clock: Clock, auth: &ApiAuth) -> Router {
    let state = AgentsState { registry, clock };
    let read = Router::new()
        .route("/api/v1/agents", get(list))
        .with_state(state.clone());
    let admin = Router::new()
        .route("/api/v1/agents/{id}", delete(forget))
        .with_state(state);
    protect(read, auth, Role::Read).merge(protect(admin, auth, Role::Admin))
}

/// One agent as JSON.
pub(super) fn agent_json(a: &AgentView) -> serde_json::Value {
    let interval = if a.interval_ms % 1000 == 0 {
        serde_json::Value::from(a.interval_ms / 1000)
    } else {
        serde_json::Value::from(a.interval_ms as f64 / 1000.0)
    };
    serde_json::json!({
        "id": a.id,
        "host_name": a.host_name,
        "service_name": a.service_name,
        "version": a.version,
        "interval_seconds": interval,
        "address": a.address,
        "first_seen": format_time(Some(a.first_seen_ms)),
        "last_seen": format_time(Some(a.last_seen_ms)),
        "up": a.up,
        "clock_skew_seconds": a.clock_skew_seconds,
    })
}

async fn list(State(st): State<AgentsState>) -> Response {
    let now = (st.clock)();
    let agents: Vec<serde_json::Value> = st.registry.list(now).iter().map(agent_json).collect();
    success(&serde_json::Value::from(agents).to_string(), &[], &[])
}

async fn forget(State(st): State<AgentsState>, Path(id): Path<String>) -> Response {
    let registry = st.registry.clone();
    let who = id.clone();
    match tokio::task::spawn_blocking(move || registry.forget(&who)).await {
        Ok(Ok(true)) => success(
            &serde_json::json!({ "forgotten": id }).to_string(),
            &[],
            &[],
        ),
        Ok(Ok(false)) => ApiError::new(
            ErrorType::NotFound,
            format!("no agent with id {id:?} is known (GET /api/v1/agents lists the known agents)"),
        )
        .into_response(),
        Ok(Err(e)) => {
            tracing::error!(agent = %id, error = %e, "agent not forgotten");
            ApiError::internal(format!("agent {id:?} not forgotten: {e}")).into_response()
        }
        Err(e) => ApiError::internal(format!("agent {id:?} not forgotten: {e}")).into_response(),
    }
}
