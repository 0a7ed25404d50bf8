//! `POST /webhooks/{route}`: verify, persist, acknowledge.
//!
//! Order matters and is the contract with providers: look up the route (404), bound the
//! body (413; a body that does not arrive within `server.request_read_timeout_seconds`
//! gets 408 and the connection is closed), verify the signature over the raw bytes (401,
//! nothing stored), read the envelope, store it durably (503 if the commit fails), and only
//! then answer 200. Nothing here waits on Vendasta; a verified body is never refused for
//! its content.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Request, State},
    http::{HeaderMap, header::CONTENT_LENGTH},
    response::{IntoResponse, Response},
    routing::post,
};
use http_body_util::LengthLimitError;
use serde_json::json;
use tokio::sync::Notify;
use tracing::Instrument;

use super::{error::IngestError, privacy};
use crate::{
    metrics,
    sources::{Disposition, Envelope, Registry, Verified},
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
    /// The whole body must arrive within this long after the headers did.
    pub body_read_timeout: Duration,
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
    /// Several jobs from one request (a batching provider), committed together.
    Batch(Vec<Enqueued>),
    /// A privacy request carried out (or logged) before answering.
    Privacy(&'static str),
}

async fn receive(
    State(state): State<Arc<IngestState>>,
    Path(route): Path<String>,
    request: Request,
) -> Response {
    // The request is taken apart rather than extracted as `HeaderMap` and `Body`: axum's
    // `HeaderMap` extractor clones the map, a copy of every header per webhook (with
    // its drop, 6% of the bridge's CPU under ingest load, profiled).
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // One span per webhook (exported as a trace with `--features otel`). Only ids and
    // bounded labels go on it: never the body, a header value, an email or a phone.
    let span = tracing::info_span!(
        "webhook",
        otel.kind = "server",
        route = %route,
        source = tracing::field::Empty,
        delivery_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        job_id = tracing::field::Empty,
    );
    respond(state, route, headers, body).instrument(span).await
}

async fn respond(
    state: Arc<IngestState>,
    route: String,
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
                Ack::Batch(results) => batch_body(results),
                Ack::Privacy(done) => ("privacy", json!({ "status": done })),
            };
            let job_id = match &ack {
                Ack::Accepted(id) | Ack::Duplicate(id) => id.as_str(),
                Ack::Ignored(_) | Ack::Batch(_) | Ack::Privacy(_) => "",
            };
            trace_webhook(source, &delivery_id, outcome, job_id, &ack);
            tracing::info!(
                route = %route, source, delivery_id = %delivery_id, topic = %topic,
                outcome, job_id, status = 200, latency_ms, "Webhook received."
            );
            Json(body).into_response()
        }
        Err(error) => {
            tracing::Span::current().record("outcome", error.code());
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

/// Completes the webhook span once the request's outcome and job id are known.
fn trace_webhook(source: &str, delivery_id: &str, outcome: &str, job_id: &str, ack: &Ack) {
    let span = tracing::Span::current();
    span.record("source", source);
    span.record("outcome", outcome);
    if !delivery_id.is_empty() {
        span.record("delivery_id", delivery_id);
    }
    match ack {
        Ack::Batch(results) => {
            let ids = results
                .iter()
                .map(|result| match result {
                    Enqueued::Accepted(id) | Enqueued::Duplicate(id) => id.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            span.record("job_id", ids);
        }
        _ if !job_id.is_empty() => {
            span.record("job_id", job_id);
        }
        _ => {}
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
    // A deadline for the whole body, not per read: a sender that drips a byte now and
    // then would otherwise hold the connection (and this task) indefinitely.
    let bytes = tokio::time::timeout(state.body_read_timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| IngestError::SlowBody {
            seconds: state.body_read_timeout.as_secs(),
        })?
        .map_err(|error| {
            if is_length_limit(&error) {
                IngestError::TooLarge { limit }
            } else {
                IngestError::UnreadableBody
            }
        })?;
    let source = &route.source;
    let verified = source.verify(headers, bytes, SystemTime::now())?;
    if let Some(request) = source.privacy(headers, &verified) {
        let topic = source.envelope(headers, &verified).topic;
        let done = privacy::carry_out(&state.store, route_name, &topic, request?).await?;
        return Ok((Ack::Privacy(done), source.kind(), String::new(), topic));
    }
    let mut envelopes = source.envelopes(headers, &verified);
    if envelopes.len() > 1 {
        return store_batch(state, route_name, source.kind(), envelopes, verified).await;
    }
    let Some(envelope) = envelopes.pop() else {
        return Ok((
            Ack::Ignored(String::new()),
            source.kind(),
            String::new(),
            String::new(),
        ));
    };
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
        Ok((Ack::Batch(results), ..)) => batch_body(results).0,
        Ok((Ack::Privacy(_), ..)) => "privacy",
        Err(error) => error.code(),
    };
    metrics::webhook_received(route, source, outcome);
}

/// Stores every deliverable event of a batch in one durable commit: the provider gets its
/// 200 only when all of them are on disk, and a retry of the batch is all duplicates.
async fn store_batch(
    state: &IngestState,
    route_name: &str,
    kind: &'static str,
    envelopes: Vec<Envelope>,
    verified: Verified,
) -> Result<(Ack, &'static str, String, String), IngestError> {
    let topics = envelopes
        .iter()
        .map(|e| e.topic.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let delivery_ids = envelopes
        .iter()
        .map(|e| e.delivery_id.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let payload = verified.into_body();
    let jobs: Vec<NewJob> = envelopes
        .into_iter()
        .filter(|e| e.disposition == Disposition::Deliver)
        .map(|envelope| NewJob {
            route: route_name.to_string(),
            source: kind.to_string(),
            delivery_id: envelope.delivery_id,
            topic: envelope.topic,
            contact_id: envelope.contact_id,
            contact_updated_at: envelope.updated_at,
            meta: envelope.meta,
            // Each job keeps the exact verified body (its meta says which event is its
            // own), so every stored payload can still be checked against the signature.
            payload: payload.clone(),
        })
        .collect();
    if jobs.is_empty() {
        return Ok((Ack::Ignored(topics.clone()), kind, delivery_ids, topics));
    }
    let results = tokio::time::timeout(COMMIT_DEADLINE, state.store.enqueue_many(jobs))
        .await
        .map_err(|_| IngestError::StoreTimeout)??;
    if results.iter().any(|r| matches!(r, Enqueued::Accepted(_))) {
        state.wake.notify_one();
    }
    Ok((Ack::Batch(results), kind, delivery_ids, topics))
}

/// `accepted` with the new job ids when anything new was stored, else `duplicate`.
fn batch_body(results: &[Enqueued]) -> (&'static str, serde_json::Value) {
    let mut accepted = Vec::new();
    let mut duplicates = Vec::new();
    for result in results {
        match result {
            Enqueued::Accepted(id) => accepted.push(id.to_string()),
            Enqueued::Duplicate(id) => duplicates.push(id.to_string()),
        }
    }
    let status = if accepted.is_empty() {
        "duplicate"
    } else {
        "accepted"
    };
    (
        status,
        json!({ "status": status, "ids": accepted, "duplicate_ids": duplicates }),
    )
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
