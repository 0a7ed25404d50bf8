//! The admin listener: `GET /healthz` (liveness, no I/O) and `GET /readyz` (readiness);
//! it also mounts `GET /metrics` ([`super::scrape`]) and the `/admin` API ([`super::admin_api`]).
//!
//! Readiness fails (503) only for what stops ingest or delivery on this replica: the
//! store not answering, the worker loop stuck, or a shutdown in progress. Upstream
//! trouble never fails it: ingest still works, and leaving the load balancer would make
//! providers' deliveries fail.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use tokio::sync::Notify;

use crate::{config::Secret, health::Health, store::Store};

/// A store that takes longer than this to answer `SELECT 1` is reported as failing.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the admin handlers need.
#[derive(Debug)]
pub struct AdminState {
    pub store: Store,
    pub health: Health,
    /// `admin.token`; `None` turns the `/admin` API off.
    pub token: Option<Secret>,
    /// Poked after a replay so the worker starts at once.
    pub wake: Arc<Notify>,
}

pub fn admin_router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(super::scrape::metrics))
        .merge(super::admin_api::routes())
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let store = match tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => json!({ "ok": true }),
        Ok(Err(error)) => json!({ "ok": false, "error": error.to_string() }),
        Err(_) => json!({ "ok": false, "error": "the store did not answer within 2 s" }),
    };
    let (age, fresh) = state.health.worker(SystemTime::now());
    let worker = if fresh {
        json!({ "ok": true, "last_heartbeat_seconds_ago": age })
    } else {
        json!({ "ok": false, "last_heartbeat_seconds_ago": age,
                "error": "the delivery worker has not reported in; it is stuck or has stopped" })
    };
    let draining = if state.health.is_draining() {
        json!({ "ok": false, "error": "shutting down" })
    } else {
        json!({ "ok": true })
    };
    // Reported, never counted: a failing token endpoint leaves ingest working.
    let failing = state.health.vendasta_auth();
    let vendasta_auth = if failing.is_empty() {
        json!({ "ok": true })
    } else {
        json!({ "ok": false, "error": failing, "affects_readiness": false })
    };
    let ready = [&store, &worker, &draining]
        .iter()
        .all(|check| check["ok"] == json!(true));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "store": store, "worker": worker, "draining": draining,
                    "vendasta_auth": vendasta_auth },
    });
    (status, Json(body)).into_response()
}
