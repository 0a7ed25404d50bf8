//! `GET /metrics` on the admin listener: Prometheus (OpenMetrics) text.
//!
//! Samples the store-derived gauges (jobs by state, age of the oldest undelivered job)
//! right before encoding, so they are exact at scrape time. A store that does not answer
//! leaves those gauges at their last value and the counters are served all the same:
//! a scrape must not fail because the thing it would show is broken.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use axum::{
    extract::State,
    http::{HeaderValue, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
};

use super::admin::AdminState;
use crate::{metrics, store::JobState};

/// A scrape waits at most this long for the store before answering without fresh gauges.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let sample = async {
        let counts = state.store.counts().await?;
        let oldest = state.store.oldest_undelivered().await?;
        Ok::<_, crate::store::StoreError>((counts, oldest))
    };
    match tokio::time::timeout(SAMPLE_TIMEOUT, sample).await {
        Ok(Ok((counts, oldest))) => {
            for job_state in JobState::ALL {
                metrics::set_jobs(job_state.as_str(), counts.get(job_state));
            }
            let now = SystemTime::now();
            metrics::set_oldest_pending_age(
                oldest.map(|at| now.duration_since(at).unwrap_or_default()),
            );
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "Cannot sample the store for metrics; job gauges are stale.");
        }
        Err(_) => {
            tracing::warn!("The store did not answer in time for metrics; job gauges are stale.");
        }
    }
    let mut response = metrics::render().into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    response
}
