//! The admin API under `/admin/*` on the admin listener: list, show, replay and delete
//! jobs, behind the bearer token `admin.token`.
//!
//! Owns authentication (constant-time comparison of token digests), the translation of
//! query strings and JSON filters into store calls, and the one JSON error shape
//! `{"error": <code>, "message": <what is wrong and what to do>}`. Without `admin.token`
//! the API is off and every `/admin` route answers 404 saying which key turns it on.
//! Payload contact data is redacted unless `?reveal=true`, and a reveal is logged (the
//! job id only). The contract is documented in `docs/admin-openapi.yaml`.

use std::{sync::Arc, time::SystemTime};

use axum::{
    Json, Router,
    extract::{
        FromRequestParts, Path, Query, State, rejection::JsonRejection, rejection::QueryRejection,
    },
    http::{
        HeaderValue, StatusCode, header::AUTHORIZATION, header::WWW_AUTHENTICATE, request::Parts,
    },
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::admin::AdminState;
use crate::{
    inspect::{self, FilterError},
    store::{JobChange, JobFilter, JobId, StoreError},
};

/// The `/admin` routes; merged into the admin router. Every path here must appear in
/// `docs/admin-openapi.yaml` (a test checks it).
pub const ROUTES: &[&str] = &[
    "/admin/jobs",
    "/admin/jobs/{id}",
    "/admin/jobs/{id}/replay",
    "/admin/replay",
];

pub fn routes() -> Router<Arc<AdminState>> {
    Router::new()
        .route(ROUTES[0], get(list))
        .route(ROUTES[1], get(show).delete(delete))
        .route(ROUTES[2], post(replay_one))
        .route(ROUTES[3], post(replay_matching))
}

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "the admin API is off: set admin.token (or BRIDGE_ADMIN__TOKEN) to a random value of at least 16 characters to turn it on"
    )]
    Off,
    #[error("missing bearer token: send `Authorization: Bearer <admin.token>`")]
    MissingToken,
    #[error("the bearer token does not match admin.token")]
    WrongToken,
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error("bad query string: {0}")]
    Query(String),
    #[error(
        "the body is not a replay filter: {0}; send e.g. {{\"state\": \"dead\", \"route\": \"shop\"}}"
    )]
    Body(String),
    #[error("job id `{0}` is not a number: use an `id` from GET /admin/jobs")]
    BadId(String),
    #[error("no job has id {0}: it may have been deleted or purged by retention")]
    NotFound(i64),
    #[error("job {0} is being delivered right now: try again when the attempt ends")]
    InFlight(i64),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

impl AdminError {
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Off => "admin_api_off",
            AdminError::MissingToken | AdminError::WrongToken => "unauthorized",
            AdminError::Filter(error) => error.code(),
            AdminError::Query(_) => "bad_query",
            AdminError::Body(_) => "bad_body",
            AdminError::BadId(_) => "bad_id",
            AdminError::NotFound(_) => "not_found",
            AdminError::InFlight(_) => "in_flight",
            AdminError::Store(_) => "store_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Off | AdminError::NotFound(_) => StatusCode::NOT_FOUND,
            AdminError::MissingToken | AdminError::WrongToken => StatusCode::UNAUTHORIZED,
            AdminError::Filter(_)
            | AdminError::Query(_)
            | AdminError::Body(_)
            | AdminError::BadId(_) => StatusCode::BAD_REQUEST,
            AdminError::InFlight(_) => StatusCode::CONFLICT,
            AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({ "error": self.code(), "message": self.to_string() });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Proof that the request carried `admin.token`.
pub struct Authorized;

impl FromRequestParts<Arc<AdminState>> for Authorized {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = &state.token else {
            return Err(AdminError::Off);
        };
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(AdminError::MissingToken)?;
        // Comparing digests keeps the comparison constant-time in the length as well.
        let expected = Sha256::digest(token.expose().as_bytes());
        let presented = Sha256::digest(presented.trim().as_bytes());
        if bool::from(expected.ct_eq(&presented)) {
            Ok(Authorized)
        } else {
            tracing::warn!("Admin request refused: wrong bearer token.");
            Err(AdminError::WrongToken)
        }
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    route: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct ShowQuery {
    #[serde(default)]
    reveal: bool,
}

/// The body of `POST /admin/replay`. Unknown fields are refused: a misspelt filter must
/// not widen a bulk replay.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    /// Defaults to `dead`: the usual reason to replay.
    state: Option<String>,
    route: Option<String>,
    since: Option<String>,
}

/// Builds a store filter from what an operator typed.
fn filter(
    state: Option<&str>,
    route: Option<&str>,
    since: Option<&str>,
) -> Result<JobFilter, FilterError> {
    Ok(JobFilter {
        state: state.map(inspect::parse_state).transpose()?,
        route: route.map(str::to_string),
        since: since.map(inspect::parse_since).transpose()?,
    })
}

fn job_id(text: &str) -> Result<JobId, AdminError> {
    text.parse()
        .map(JobId)
        .map_err(|_| AdminError::BadId(text.to_string()))
}

async fn list(
    _: Authorized,
    State(state): State<Arc<AdminState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::Query(e.body_text()))?;
    let filter = filter(
        query.state.as_deref(),
        query.route.as_deref(),
        query.since.as_deref(),
    )?;
    let limit = inspect::parse_limit(query.limit)?;
    let before = query
        .cursor
        .as_deref()
        .map(inspect::parse_cursor)
        .transpose()?
        .map(JobId);
    let jobs = state.store.list_jobs(&filter, before, limit).await?;
    let next_cursor = match jobs.last() {
        Some(last) if jobs.len() == limit as usize => Some(last.id.0.to_string()),
        _ => None,
    };
    Ok(Json(json!({
        "jobs": jobs.iter().map(inspect::summary).collect::<Vec<_>>(),
        "next_cursor": next_cursor,
    })))
}

async fn show(
    _: Authorized,
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
    query: Result<Query<ShowQuery>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::Query(e.body_text()))?;
    let id = job_id(&id)?;
    let job = state
        .store
        .job(id)
        .await?
        .ok_or(AdminError::NotFound(id.0))?;
    if query.reveal {
        tracing::info!(job_id = %id, "Admin revealed a job's payload.");
    }
    Ok(Json(inspect::detail(&job, query.reveal)))
}

async fn replay_one(
    _: Authorized,
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let id = job_id(&id)?;
    match state.store.replay(id, SystemTime::now()).await? {
        JobChange::Applied => {
            state.wake.notify_one();
            tracing::info!(job_id = %id, "Job replayed by an operator.");
            Ok(Json(json!({ "status": "replayed", "id": id.0 })))
        }
        JobChange::NotFound => Err(AdminError::NotFound(id.0)),
        JobChange::InFlight => Err(AdminError::InFlight(id.0)),
    }
}

async fn replay_matching(
    _: Authorized,
    State(state): State<Arc<AdminState>>,
    body: Result<Json<ReplayBody>, JsonRejection>,
) -> Result<Json<Value>, AdminError> {
    let Json(body) = body.map_err(|e| AdminError::Body(e.body_text()))?;
    let filter = filter(
        Some(body.state.as_deref().unwrap_or("dead")),
        body.route.as_deref(),
        body.since.as_deref(),
    )?;
    let count = state
        .store
        .replay_matching(&filter, SystemTime::now(), inspect::REPLAY_BATCH)
        .await?;
    if count > 0 {
        state.wake.notify_one();
    }
    tracing::info!(
        count,
        state = filter.state.map(|s| s.as_str()).unwrap_or(""),
        route = filter.route.as_deref().unwrap_or(""),
        "Jobs replayed by an operator."
    );
    Ok(Json(json!({ "status": "replayed", "count": count })))
}

async fn delete(
    _: Authorized,
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let id = job_id(&id)?;
    match state.store.delete_job(id).await? {
        JobChange::Applied => {
            tracing::info!(job_id = %id, "Job deleted by an operator.");
            Ok(Json(json!({ "status": "deleted", "id": id.0 })))
        }
        JobChange::NotFound => Err(AdminError::NotFound(id.0)),
        JobChange::InFlight => Err(AdminError::InFlight(id.0)),
    }
}
