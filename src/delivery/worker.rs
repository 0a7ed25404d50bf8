//! The delivery worker: claim a due job, parse and transform it, send it to Vendasta,
//! record what happened.
//!
//! Parsing and mapping run here, not at ingest, so a payload the bridge cannot use is
//! parked as `dead` with its reason (and can be replayed after a fix) instead of being
//! refused to the provider. Shutdown is checked only between jobs: a delivery that has
//! started runs to completion. Every log line names ids, never an email or a phone.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tokio::{
    sync::{Notify, Semaphore},
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{
    actions::{self, Resolved},
    retry::{Next, RetryPolicy},
};
use crate::{
    config::Config,
    contact::Contact,
    health::Health,
    hubspot,
    sources::{ParsedEvent, Registry, Route, StoredEvent},
    store::{ContactLink, Finish, Job, Store},
    transform,
    vendasta::{self, Outcome},
};

/// How long a worker waits before trying the store again after it failed.
const STORE_BACKOFF: Duration = Duration::from_secs(1);
/// Shortest wait of a job whose token could not be minted, so a zero retry step does not
/// spin on a token endpoint that is down.
const AUTH_WAIT_FLOOR: Duration = Duration::from_secs(1);

/// [`transform::to_customer`], on the blocking pool when the contact has phone numbers.
///
/// Reading a phone number can take milliseconds of CPU that a runtime thread must not
/// spend: `phonenumber` decodes its metadata on first use (~95 ms and ~6 MB in a release
/// build, ~800 ms in a debug one), and compiles a region's patterns into a cache of 100
/// (~0.5 ms each; 30 regions need ~300, so contacts from many countries recompile them
/// all the time, ~5 ms per contact). On a runtime thread that stalled every task queued
/// behind it: two deliveries waiting for the first decode held both threads, and ingest
/// stopped answering until it was done. A contact without phones is mapped in place.
pub async fn map_contact(
    contact: &Contact,
    route_tags: &[String],
) -> Result<transform::Customer, transform::TransformError> {
    if contact.phones.is_empty() {
        return transform::to_customer(contact, route_tags);
    }
    let (owned, tags) = (contact.clone(), route_tags.to_vec());
    match tokio::task::spawn_blocking(move || transform::to_customer(&owned, &tags)).await {
        Ok(mapped) => mapped,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Cancelled: the runtime is shutting down under us; finish the job in place.
            Err(_cancelled) => transform::to_customer(contact, route_tags),
        },
    }
}

/// What one turn of the worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// A job was claimed and handled.
    Worked,
    /// Nothing was due.
    Idle,
}

/// Delivers jobs with at most `concurrency` requests in flight. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    routes: Registry,
    upstream: vendasta::Upstream,
    /// Reads contacts that a webhook only names (HubSpot).
    hubspot: hubspot::Client,
    policy: RetryPolicy,
    lease: Duration,
    poll: Duration,
    concurrency: usize,
    /// Ingest pokes this after each commit so new work starts at once.
    wake: Arc<Notify>,
    health: Health,
}

impl Worker {
    pub fn new(
        config: &Config,
        store: Store,
        routes: Registry,
        upstream: vendasta::Upstream,
        wake: Arc<Notify>,
        health: Health,
    ) -> Result<Self, vendasta::client::ClientError> {
        let policy = RetryPolicy {
            schedule: config
                .delivery
                .retry_schedule_seconds
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
            max_age: config.delivery.max_age(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                routes,
                upstream,
                hubspot: hubspot::Client::new(config.vendasta.request_timeout())?,
                policy,
                lease: config.delivery.lease(),
                poll: config.delivery.poll_interval(),
                concurrency: config.vendasta.concurrency,
                wake,
                health,
            }),
        })
    }

    /// Runs until `shutdown` is cancelled, then waits for the deliveries in flight.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.inner.concurrency));
        let mut in_flight = JoinSet::new();
        // Bounds every wait so the heartbeat stays fresh even when all permits are busy.
        let beat = self.inner.poll.min(Duration::from_secs(1));
        loop {
            self.inner.health.beat();
            while in_flight.try_join_next().is_some() {}
            if shutdown.is_cancelled() {
                break;
            }
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = tokio::time::sleep(beat) => continue,
                () = shutdown.cancelled() => break,
            };
            // Take every other free permit too, so that one claim (on SQLite, one commit)
            // fetches work for all of them instead of one commit per job.
            let mut free = vec![permit];
            while let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
                free.push(permit);
            }
            let wanted = free.len();
            match self
                .inner
                .store
                .claim_many(SystemTime::now(), self.inner.lease, wanted)
                .await
            {
                Ok(jobs) => {
                    let drained = jobs.len() < wanted;
                    for (job, permit) in jobs.into_iter().zip(free.drain(..)) {
                        let worker = self.clone();
                        in_flight.spawn(async move {
                            worker.deliver(job).await;
                            drop(permit);
                        });
                    }
                    // Permits left over go back; with nothing more due, wait for new work
                    // (ingest, or a finished delivery that frees its contact's next job).
                    drop(free);
                    if drained {
                        tokio::select! {
                            () = self.inner.wake.notified() => {}
                            () = tokio::time::sleep(self.inner.poll) => {}
                            () = shutdown.cancelled() => {}
                        }
                    }
                }
                Err(error) => {
                    drop(free);
                    tracing::warn!(error = %error, "Failed to claim a job; will try again.");
                    tokio::select! {
                        () = tokio::time::sleep(STORE_BACKOFF) => {}
                        () = shutdown.cancelled() => {}
                    }
                }
            }
        }
        let unfinished = in_flight.len();
        if unfinished > 0 {
            tracing::info!(
                in_flight = unfinished,
                "Waiting for deliveries in flight to finish."
            );
        }
        while in_flight.join_next().await.is_some() {
            self.inner.health.beat();
        }
        tracing::info!("Delivery worker stopped.");
    }

    /// Claims and delivers one job inline (for tests and tools that drive the worker).
    pub async fn run_once(&self) -> Tick {
        match self
            .inner
            .store
            .claim(SystemTime::now(), self.inner.lease)
            .await
        {
            Ok(Some(job)) => {
                self.deliver(job).await;
                Tick::Worked
            }
            Ok(None) => Tick::Idle,
            Err(error) => {
                tracing::warn!(error = %error, "Failed to claim a job.");
                Tick::Idle
            }
        }
    }

    /// Handles one claimed job from start to recorded end, inside its delivery span.
    async fn deliver(&self, job: Job) {
        // One span per attempt (exported as a trace with `--features otel`): ids and
        // bounded labels only, never the contact.
        let span = tracing::info_span!(
            "delivery",
            otel.kind = "consumer",
            route = %job.route,
            job_id = %job.id,
            attempt = job.attempts,
            outcome = tracing::field::Empty,
        );
        self.deliver_in_span(job).instrument(span).await;
    }

    async fn deliver_in_span(&self, job: Job) {
        let started = Instant::now();
        let (finish, attempted) = self.attempt(&job).await;
        let outcome = match &finish {
            Finish::Done { outcome, .. } | Finish::Dead { outcome, .. } => *outcome,
            Finish::Retry { .. } => "retry",
            Finish::Wait { .. } => "waiting",
            Finish::Defer { .. } => "deferred",
            Finish::Unlink { .. } => "unlinked",
        };
        tracing::Span::current().record("outcome", outcome);
        crate::metrics::delivery_attempt(
            &job.route,
            match &finish {
                Finish::Dead { .. } => "dead",
                _ => outcome,
            },
        );
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let contact_id = job.contact_id.as_deref().unwrap_or("");
        match &finish {
            Finish::Done { link, .. } => tracing::info!(
                route = %job.route, job_id = %job.id, source_contact_id = contact_id,
                customer_id = link.as_deref().unwrap_or(""), attempt = job.attempts,
                outcome, upstream_called = attempted, latency_ms, "Delivery finished."
            ),
            Finish::Retry { at, error } | Finish::Wait { at, error } => tracing::warn!(
                route = %job.route, job_id = %job.id, source_contact_id = contact_id,
                attempt = job.attempts, outcome, error = %error,
                retry_in_seconds = at.duration_since(SystemTime::now()).unwrap_or_default().as_secs_f64(),
                latency_ms, "Delivery failed; will retry."
            ),
            Finish::Defer { reason, .. } => tracing::info!(
                route = %job.route, job_id = %job.id, source_contact_id = contact_id,
                outcome, reason = %reason, latency_ms,
                "Delivery deferred until the contact is linked; no attempt counted."
            ),
            Finish::Unlink { error } => tracing::warn!(
                route = %job.route, job_id = %job.id, source_contact_id = contact_id,
                attempt = job.attempts, outcome, error = %error, latency_ms,
                "Linked customer is gone upstream; will create it again."
            ),
            Finish::Dead { reason, .. } => tracing::error!(
                route = %job.route, job_id = %job.id, source_contact_id = contact_id,
                attempt = job.attempts, outcome, reason = %reason, latency_ms,
                "Delivery parked as dead; fix the cause and replay the job."
            ),
        }
        match self
            .inner
            .store
            .finish(&job, finish, SystemTime::now())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                route = %job.route, job_id = %job.id,
                "The job's lease ran out before its delivery finished; another claim owns it now."
            ),
            Err(error) => tracing::error!(
                route = %job.route, job_id = %job.id, error = %error,
                "Failed to record a delivery; the job will be retried when its lease runs out."
            ),
        }
        // Finishing may unblock a later job of the same contact.
        self.inner.wake.notify_one();
    }

    /// Decides how a job ends; the bool says whether Vendasta was called.
    async fn attempt(&self, job: &Job) -> (Finish, bool) {
        let now = SystemTime::now();
        let Some(route) = self.inner.routes.get(&job.route) else {
            return (
                dead(
                    "no_route",
                    format!(
                        "route `{}` is no longer configured: restore it in [[routes]] and replay the job",
                        job.route
                    ),
                ),
                false,
            );
        };
        let link = match (&job.link, &job.contact_id) {
            (Some(link), _) => link.clone(),
            (None, Some(contact_id)) => {
                match self.inner.store.contact(&job.route, contact_id).await {
                    Ok(link) => link,
                    Err(error) => {
                        return (
                            self.retry(job, format!("cannot read the contact link: {error}"), None),
                            false,
                        );
                    }
                }
            }
            (None, None) => Default::default(),
        };
        if let (Some(this), Some(applied)) = (job.contact_updated_at, link.applied_updated_at)
            && this < applied
        {
            return (
                Finish::Done {
                    outcome: "stale",
                    link: None,
                    applied: false,
                    note: Some("a newer version of this contact was already delivered".into()),
                },
                false,
            );
        }
        let event = StoredEvent {
            topic: &job.topic,
            meta: &job.meta,
            body: &job.payload,
        };
        let action = match route.plan(&event) {
            Ok(action) => action,
            Err(error) => return (dead("unparseable", error.to_string()), false),
        };
        let retry =
            |reason: String, retry_after: Option<Duration>| self.retry(job, reason, retry_after);
        let wait = |reason: String| self.wait_for_token(reason);
        let context = actions::Context {
            store: &self.inner.store,
            upstream: &self.inner.upstream,
            hubspot: &self.inner.hubspot,
            max_age: self.inner.policy.max_age,
            retry: &retry,
            wait: &wait,
        };
        let parsed = match actions::resolve(&context, job, &route.config, &link, action, now).await
        {
            Resolved::Upsert(parsed) => parsed,
            Resolved::Finished(finish, called) => return (finish, called),
        };
        // The stated tags are stored while the contact goes to Vendasta, not before: only
        // a later tag merge of this contact reads them, and that waits for this job to end
        // (one job per contact). Awaited in turn, the store's round trip was added to every
        // delivery.
        let (ended, ()) = tokio::join!(
            self.upsert(job, route, &link, &parsed),
            actions::remember_stated_tags(&context, job, &parsed),
        );
        ended
    }

    /// The create-or-update of a parsed contact: its location, the body, the call, and
    /// how the job ends.
    async fn upsert(
        &self,
        job: &Job,
        route: &Route,
        link: &ContactLink,
        parsed: &ParsedEvent,
    ) -> (Finish, bool) {
        let Some(location) = route.config.location_for(parsed.tenant.as_deref()) else {
            let tenant = parsed.tenant.as_deref().unwrap_or("(none)");
            return (
                dead(
                    "no_location",
                    format!(
                        "no business location for tenant `{tenant}` on route `{}`: add it to routes.tenant_locations or set routes.business_location, then replay the job",
                        job.route
                    ),
                ),
                false,
            );
        };
        let customer = match map_contact(&parsed.contact, &route.config.tags).await {
            Ok(customer) => customer,
            Err(error) => return (dead(error.code(), error.to_string()), false),
        };
        if customer.dropped_phones > 0 {
            tracing::info!(
                route = %job.route, job_id = %job.id, dropped_phones = customer.dropped_phones,
                "Left out phone numbers that are not valid E.164 numbers."
            );
        }
        let outcome = self
            .inner
            .upstream
            .deliver(&vendasta::Delivery {
                route: &job.route,
                source_contact_id: job.contact_id.as_deref(),
                business_location: location,
                linked_id: link.customer_id.as_deref(),
                attributes: &customer.attributes,
            })
            .await;
        let finish = match outcome {
            Outcome::Created { customer_id } => Finish::Done {
                outcome: "created",
                link: Some(customer_id),
                applied: true,
                note: None,
            },
            Outcome::Updated => Finish::Done {
                outcome: "updated",
                link: link.customer_id.clone(),
                applied: true,
                note: None,
            },
            Outcome::Conflict { existing_id } => {
                tracing::warn!(
                    route = %job.route, job_id = %job.id,
                    source_contact_id = job.contact_id.as_deref().unwrap_or(""),
                    conflicting_customer_id = %existing_id,
                    "Vendasta already has this customer; linked to the existing one."
                );
                match link.customer_id.clone() {
                    // A create that conflicts: the existing customer is this contact.
                    None => Finish::Done {
                        outcome: "conflict",
                        link: Some(existing_id),
                        applied: true,
                        note: None,
                    },
                    // An update whose email or phone belongs to another customer: keep our
                    // link, acknowledge, and say which customer holds the value.
                    Some(ours) => Finish::Done {
                        outcome: "conflict",
                        link: Some(ours),
                        applied: true,
                        note: Some(format!(
                            "the update's email or phone already belongs to customer {existing_id}"
                        )),
                    },
                }
            }
            Outcome::NotFound => Finish::Unlink {
                error: "vendasta answered 404 for the linked customer".into(),
            },
            Outcome::Retry {
                reason,
                retry_after,
            } => self.retry(job, reason, retry_after),
            Outcome::Reject { reason } => dead("rejected", reason),
            Outcome::Unauthorized { reason } => dead("unauthorized", reason),
            Outcome::AuthUnavailable { reason } => self.wait_for_token(reason),
        };
        (finish, true)
    }

    /// The wait counts from now, when the failure is known, not from when the attempt
    /// started: a slow answer or a request timeout must not eat into the wait (or into a
    /// `Retry-After`), or a timed-out attempt would be retried at once.
    fn retry(&self, job: &Job, reason: String, retry_after: Option<Duration>) -> Finish {
        let now = SystemTime::now();
        let jitter = fastrand::f64() * 2.0 - 1.0;
        match self
            .inner
            .policy
            .next(job.attempts, retry_after, job.age_from(), now, jitter)
        {
            Next::RetryAt(at) => Finish::Retry { at, error: reason },
            Next::GiveUp { reason: why } => dead("gave_up", format!("{why}; last error: {reason}")),
        }
    }
}

impl Worker {
    /// A job whose token could not be minted waits and is never given up: the credential
    /// or the token endpoint is at fault, not the job, and nothing was sent. The wait does
    /// not count as an attempt, so it uses up neither the retry schedule nor, later, the
    /// job's retries against Vendasta; it repeats every first schedule step.
    fn wait_for_token(&self, reason: String) -> Finish {
        let now = SystemTime::now();
        let step = self
            .inner
            .policy
            .schedule
            .first()
            .copied()
            .unwrap_or_default();
        Finish::Wait {
            at: now + step.max(AUTH_WAIT_FLOOR),
            error: format!("waiting for a vendasta access token: {reason}"),
        }
    }
}

fn dead(outcome: &'static str, reason: String) -> Finish {
    Finish::Dead { outcome, reason }
}
