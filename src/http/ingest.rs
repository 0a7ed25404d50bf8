//! `POST /webhooks/{route}`: verify, persist, acknowledge.
//!
//! Order matters and is the contract with providers: look up the route (404), bound the
//! body (413), verify the signature over the raw bytes (401, nothing stored), read the
//! envelope, store it durably (503 if the commit fails), and only then answer 200. Nothing
//! here waits on Vendasta; a verified body is never refused for its content.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, header::CONTENT_LENGTH},
    response::{IntoResponse, Response},
    routing::post,
};
use http_body_util::LengthLimitError;
use serde_json::json;
use tokio::sync::Notify;

use super::error::IngestError;
use crate::{
    metrics,
    sources::{Disposition, Registry},
    store::{Enqueued, NewJob, Store},
};

/// Longest a webhook waits for its commit before the provider is told to retry; well
/// inside Shopify's 5-second budget.
const COMMIT_DEADLINE: Duration = Duration::from_secs(4);

/// What the ingest handler needs.
#[derive(Debug)]
pub struct IngestState {
    pub routes: Registry,
    pub store: Store,
    /// Woken after each commit so the worker starts at once.
    pub wake: Arc<Notify>,
    pub max_body_bytes: usize,
}

pub fn ingest_router(state: Arc<IngestState>) -> Router {
    Router::new()
        .route("/webhooks/{route}", post(receive))
        .with_state(state)
}

/// How an accepted request ended.
enum Ack {
    Accepted(String),
    Duplicate(String),
    Ignored(String),
}

async fn receive(
    State(state): State<Arc<IngestState>>,
    Path(route): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let result = handle(&state, &route, &headers, body).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    record(&state, &route, &result);
    match result {
        Ok((ack, source, delivery_id, topic)) => {
            let (outcome, body) = match &ack {
                Ack::Accepted(id) => ("accepted", json!({ "status": "accepted", "id": id })),
                Ack::Duplicate(id) => ("duplicate", json!({ "status": "duplicate", "id": id })),
                Ack::Ignored(topic) => ("ignored", json!({ "status": "ignored", "topic": topic })),
            };
            let job_id = match &ack {
                Ack::Accepted(id) | Ack::Duplicate(id) => id.as_str(),
                Ack::Ignored(_) => "",
            };
            tracing::info!(
                route = %route, source, delivery_id = %delivery_id, topic = %topic,
                outcome, job_id, status = 200, latency_ms, "Webhook received."
            );
            Json(body).into_response()
        }
        Err(error) => {
            let status = error.status().as_u16();
            match &error {
                IngestError::Store(_) | IngestError::StoreTimeout => tracing::error!(
                    route = %route, outcome = error.code(), status, error = %error, latency_ms,
                    "Webhook refused: the store is unavailable."
                ),
                _ => tracing::warn!(
                    route = %route, outcome = error.code(), status, error = %error, latency_ms,
                    "Webhook refused."
                ),
            }
            error.into_response()
        }
    }
}

async fn handle(
    state: &IngestState,
    route_name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Ack, &'static str, String, String), IngestError> {
    let route = state
        .routes
        .get(route_name)
        .ok_or_else(|| IngestError::UnknownRoute(route_name.to_string()))?;
    let limit = state.max_body_bytes;
    // Refuse early when the sender announces an oversized body.
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(IngestError::TooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|error| {
        if is_length_limit(&error) {
            IngestError::TooLarge { limit }
        } else {
            IngestError::UnreadableBody
        }
    })?;
    let source = &route.source;
    let verified = source.verify(headers, bytes, SystemTime::now())?;
    let envelope = source.envelope(headers, &verified);
    if envelope.disposition == Disposition::Ignore {
        let topic = envelope.topic.clone();
        return Ok((
            Ack::Ignored(topic.clone()),
            source.kind(),
            envelope.delivery_id,
            topic,
        ));
    }
    let job = NewJob {
        route: route_name.to_string(),
        source: source.kind().to_string(),
        delivery_id: envelope.delivery_id.clone(),
        topic: envelope.topic.clone(),
        contact_id: envelope.contact_id,
        contact_updated_at: envelope.updated_at,
        meta: envelope.meta,
        payload: verified.into_body(),
    };
    let enqueued = tokio::time::timeout(COMMIT_DEADLINE, state.store.enqueue(job))
        .await
        .map_err(|_| IngestError::StoreTimeout)??;
    let ack = match enqueued {
        Enqueued::Accepted(id) => {
            state.wake.notify_one();
            Ack::Accepted(id.to_string())
        }
        Enqueued::Duplicate(id) => Ack::Duplicate(id.to_string()),
    };
    Ok((ack, source.kind(), envelope.delivery_id, envelope.topic))
}

/// Counts the request; an unknown route's name is the sender's choice, so it is not a label.
fn record(
    state: &IngestState,
    route: &str,
    result: &Result<(Ack, &'static str, String, String), IngestError>,
) {
    let (route, source) = match state.routes.get(route) {
        Some(found) => (route, found.source.kind()),
        None => (metrics::UNKNOWN_ROUTE, ""),
    };
    let outcome = match result {
        Ok((Ack::Accepted(_), ..)) => "accepted",
        Ok((Ack::Duplicate(_), ..)) => "duplicate",
        Ok((Ack::Ignored(_), ..)) => "ignored",
        Err(error) => error.code(),
    };
    metrics::webhook_received(route, source, outcome);
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if current.is::<LengthLimitError>() {
            return true;
        }
        cause = current.source();
    }
    false
}
