//! The one place where an ingest failure becomes a status code and a JSON body.
//!
//! Bodies are `{"error": <bounded code>, "message": <what is wrong and what to do>}`.
//! Store failures never echo internals: the provider only needs to know to retry.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header::CONNECTION, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    sources::{PayloadError, SignatureError},
    store::StoreError,
};

/// Seconds a provider is asked to wait after a 503.
const RETRY_AFTER_SECONDS: &str = "5";

/// Why a webhook was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Return `404 Not Found`.
    #[error("no route named `{0}` is configured: check the webhook URL against [[routes]] name")]
    UnknownRoute(String),
    /// Return `413 Payload Too Large`.
    #[error("the body is larger than server.max_body_bytes ({limit} bytes)")]
    TooLarge { limit: usize },
    /// Return `408 Request Timeout` and close the connection: the rest of the body may
    /// still be on its way, so the connection cannot carry another request.
    #[error(
        "the request body did not arrive within server.request_read_timeout_seconds ({seconds} s): send the whole body at once, or raise the key if a proxy in front of the bridge is slow"
    )]
    SlowBody { seconds: u64 },
    /// Return `400 Bad Request`: the body could not be read at all.
    #[error("the request body could not be read")]
    UnreadableBody,
    /// Return `401 Unauthorized`; nothing is stored.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Return `400 Bad Request`: a privacy request (Shopify `customers/redact`, …) whose
    /// payload cannot be read, so nothing could be deleted; the provider retries.
    #[error(transparent)]
    Privacy(#[from] PayloadError),
    /// Return `503 Service Unavailable` with `Retry-After`; the provider retries.
    #[error("the store could not commit the webhook: {0}")]
    Store(#[from] StoreError),
    /// Return `503 Service Unavailable` with `Retry-After`.
    #[error("the store did not commit the webhook in time")]
    StoreTimeout,
}

impl IngestError {
    /// Bounded code for the response body, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            IngestError::UnknownRoute(_) => "unknown_route",
            IngestError::TooLarge { .. } => "too_large",
            IngestError::SlowBody { .. } => "body_timeout",
            IngestError::UnreadableBody => "unreadable_body",
            IngestError::Signature(_) => "bad_signature",
            IngestError::Privacy(_) => "unreadable_privacy_request",
            IngestError::Store(_) | IngestError::StoreTimeout => "store_unavailable",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::UnknownRoute(_) => StatusCode::NOT_FOUND,
            IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::SlowBody { .. } => StatusCode::REQUEST_TIMEOUT,
            IngestError::UnreadableBody | IngestError::Privacy(_) => StatusCode::BAD_REQUEST,
            IngestError::Signature(_) => StatusCode::UNAUTHORIZED,
            IngestError::Store(_) | IngestError::StoreTimeout => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            IngestError::Store(_) | IngestError::StoreTimeout => {
                "the webhook was not stored; retry later".to_string()
            }
            IngestError::Signature(error) => error.to_string(),
            other => other.to_string(),
        };
        let code = match &self {
            IngestError::Signature(error) => error.code(),
            other => other.code(),
        };
        let mut response =
            (status, Json(json!({ "error": code, "message": message }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        if status == StatusCode::REQUEST_TIMEOUT {
            // Part of the body was never read, so the connection is closed after this.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
