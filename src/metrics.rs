//! Every Prometheus metric the bridge exports, by name, in one place, with one typed
//! function per thing worth counting.
//!
//! Owns the process-wide registry and its text encoding for `GET /metrics`. Label values
//! are bounded: route names come from the config (an unknown route is recorded as
//! `UNKNOWN_ROUTE`), outcomes are `&'static str` codes; never ids, URLs or payload data.
//! Gauges that describe the store (`bridge_jobs`, `bridge_queue_oldest_pending_age_seconds`)
//! are not kept up to date here: the scrape handler samples the store and sets them just
//! before encoding, so they are exact at scrape time and cost nothing between scrapes.
//! The registry is global because one process runs one bridge; tests that run several
//! apps in one process give each test its own route names when they check values.

use std::{
    sync::{LazyLock, atomic::AtomicU64},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// `bridge_webhooks_received_total{route,source,outcome}`.
pub const WEBHOOKS_RECEIVED: &str = "bridge_webhooks_received";
/// `bridge_delivery_attempts_total{route,outcome}`.
pub const DELIVERY_ATTEMPTS: &str = "bridge_delivery_attempts";
/// `bridge_upstream_request_duration_seconds{method}` (histogram).
pub const UPSTREAM_DURATION: &str = "bridge_upstream_request_duration_seconds";
/// `bridge_jobs{state}` (gauge, sampled from the store at scrape time).
pub const JOBS: &str = "bridge_jobs";
/// `bridge_queue_oldest_pending_age_seconds` (gauge, sampled at scrape time).
pub const OLDEST_PENDING_AGE: &str = "bridge_queue_oldest_pending_age_seconds";
/// `bridge_token_mints_total{outcome}`.
pub const TOKEN_MINTS: &str = "bridge_token_mints";
/// `bridge_store_commit_duration_seconds` (histogram, one observation per group commit).
pub const STORE_COMMIT_DURATION: &str = "bridge_store_commit_duration_seconds";
/// `bridge_store_commit_batch_size` (histogram, webhooks per group commit).
pub const STORE_COMMIT_BATCH: &str = "bridge_store_commit_batch_size";
/// `bridge_retention_purged_jobs_total`.
pub const RETENTION_PURGED: &str = "bridge_retention_purged_jobs";

/// The `route` label of a webhook whose route is not configured: the path segment is
/// chosen by whoever sends the request, so it must not become a label value.
pub const UNKNOWN_ROUTE: &str = "_unknown";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    route: String,
    source: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    route: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

struct Metrics {
    registry: Registry,
    webhooks: Family<WebhookLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    upstream: HistogramFamily<MethodLabels>,
    jobs: Family<StateLabels, Gauge>,
    oldest_pending: Gauge<f64, AtomicU64>,
    token_mints: Family<OutcomeLabels, Counter>,
    commit: Histogram,
    commit_batch: Histogram,
    purged: Counter,
}

fn latency_histogram() -> Histogram {
    // 5 ms … ~20 s: Vendasta answers in tens to hundreds of ms; the request timeout caps it.
    Histogram::new(exponential_buckets(0.005, 2.0, 13))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let webhooks = Family::<WebhookLabels, Counter>::default();
    registry.register(
        WEBHOOKS_RECEIVED,
        "Webhooks received, by route, source and outcome",
        webhooks.clone(),
    );
    let deliveries = Family::<DeliveryLabels, Counter>::default();
    registry.register(
        DELIVERY_ATTEMPTS,
        "Delivery attempts, by route and outcome",
        deliveries.clone(),
    );
    let upstream: HistogramFamily<MethodLabels> =
        Family::new_with_constructor(latency_histogram as fn() -> Histogram);
    registry.register(
        UPSTREAM_DURATION,
        "Time from sending a request to Vendasta to reading its whole answer",
        upstream.clone(),
    );
    let jobs = Family::<StateLabels, Gauge>::default();
    registry.register(JOBS, "Jobs in the store, by state", jobs.clone());
    let oldest_pending = Gauge::<f64, AtomicU64>::default();
    registry.register(
        OLDEST_PENDING_AGE,
        "Age of the oldest job not yet delivered (0 when none)",
        oldest_pending.clone(),
    );
    let token_mints = Family::<OutcomeLabels, Counter>::default();
    registry.register(
        TOKEN_MINTS,
        "Vendasta access tokens minted, by outcome",
        token_mints.clone(),
    );
    let commit = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
    registry.register(
        STORE_COMMIT_DURATION,
        "Duration of one group commit of webhooks, fsync included",
        commit.clone(),
    );
    let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 10));
    registry.register(
        STORE_COMMIT_BATCH,
        "Webhooks written by one group commit",
        commit_batch.clone(),
    );
    let purged = Counter::default();
    registry.register(
        RETENTION_PURGED,
        "Done jobs deleted by retention",
        purged.clone(),
    );
    Metrics {
        registry,
        webhooks,
        deliveries,
        upstream,
        jobs,
        oldest_pending,
        token_mints,
        commit,
        commit_batch,
        purged,
    }
});

/// A webhook request ended with `outcome` (`accepted`, `duplicate`, `ignored`, or an
/// ingest error code such as `bad_signature`). Pass [`UNKNOWN_ROUTE`] and an empty
/// source when the route is not configured.
pub fn webhook_received(route: &str, source: &str, outcome: &'static str) {
    METRICS
        .webhooks
        .get_or_create(&WebhookLabels {
            route: route.to_string(),
            source: source.to_string(),
            outcome: outcome.to_string(),
        })
        .inc();
}

/// One delivery attempt ended with `outcome` (`created`, `updated`, `conflict`, `stale`,
/// `retry`, `unlinked`, `dead`).
pub fn delivery_attempt(route: &str, outcome: &'static str) {
    METRICS
        .deliveries
        .get_or_create(&DeliveryLabels {
            route: route.to_string(),
            outcome: outcome.to_string(),
        })
        .inc();
}

/// One request to Vendasta took `elapsed`, whatever its answer.
pub fn upstream_request(method: &'static str, elapsed: Duration) {
    METRICS
        .upstream
        .get_or_create(&MethodLabels {
            method: method.to_string(),
        })
        .observe(elapsed.as_secs_f64());
}

/// A token mint (service-account auth) ended with `outcome` (`ok` or an error code).
pub fn token_mint(outcome: &'static str) {
    METRICS
        .token_mints
        .get_or_create(&OutcomeLabels {
            outcome: outcome.to_string(),
        })
        .inc();
}

/// One group commit of `batch` webhooks took `elapsed`.
pub fn store_commit(batch: usize, elapsed: Duration) {
    METRICS.commit.observe(elapsed.as_secs_f64());
    METRICS.commit_batch.observe(batch as f64);
}

/// Retention deleted `count` done jobs.
pub fn retention_purged(count: u64) {
    METRICS.purged.inc_by(count);
}

/// The store's job counts, sampled just before a scrape.
pub fn set_jobs(state: &'static str, count: u64) {
    METRICS
        .jobs
        .get_or_create(&StateLabels {
            state: state.to_string(),
        })
        .set(i64::try_from(count).unwrap_or(i64::MAX));
}

/// Age of the oldest undelivered job, sampled just before a scrape (`None`: no such job).
pub fn set_oldest_pending_age(age: Option<Duration>) {
    METRICS
        .oldest_pending
        .set(age.map_or(0.0, |age| age.as_secs_f64()));
}

/// The registry in the Prometheus text format.
pub fn render() -> String {
    let mut text = String::new();
    if let Err(error) = encode(&mut text, &METRICS.registry) {
        tracing::error!(error = %error, "Failed to encode metrics.");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_labels_and_values() {
        webhook_received("metrics-unit", "shopify", "accepted");
        webhook_received("metrics-unit", "shopify", "accepted");
        delivery_attempt("metrics-unit", "created");
        let text = render();
        assert!(
            text.contains(
                r#"bridge_webhooks_received_total{route="metrics-unit",source="shopify",outcome="accepted"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"bridge_delivery_attempts_total{route="metrics-unit",outcome="created"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE bridge_store_commit_duration_seconds histogram"));
    }
}
