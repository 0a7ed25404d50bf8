//! The durable queue: jobs, their dedupe keys, and contact links.
//!
//! Owns every byte on disk and the rules that must hold there: a webhook is acknowledged
//! only after the transaction holding it is fsync'd; `(route, delivery_id)` is unique; a
//! claimed job carries a lease and becomes claimable again when it expires; jobs of one
//! contact are claimed one at a time, oldest first; a job's final state is written only by
//! the claim that holds it. Only this module imports sqlx. It knows nothing of HTTP,
//! providers or Vendasta.

#[cfg(test)]
mod conformance;
mod postgres;
mod row;
mod sqlite;

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Identifies a job; shown to providers in the ack and to operators in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A verified webhook to be stored.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub route: String,
    pub source: String,
    pub delivery_id: String,
    pub topic: String,
    pub contact_id: Option<String>,
    pub contact_updated_at: Option<i64>,
    pub meta: BTreeMap<String, String>,
    pub payload: Bytes,
}

/// What `enqueue` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored durably as a new job.
    Accepted(JobId),
    /// The route already has this delivery id; nothing was stored.
    Duplicate(JobId),
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    InFlight,
    Done,
    Dead,
}

impl JobState {
    /// Every state, for gauges and help texts.
    pub const ALL: [JobState; 4] = [
        JobState::Pending,
        JobState::InFlight,
        JobState::Done,
        JobState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::InFlight => "in_flight",
            JobState::Done => "done",
            JobState::Dead => "dead",
        }
    }

    /// Reads a state name as operators type it (`pending`, `in_flight`, `done`, `dead`).
    pub fn from_name(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Ok(match text {
            "pending" => JobState::Pending,
            "in_flight" => JobState::InFlight,
            "done" => JobState::Done,
            "dead" => JobState::Dead,
            other => return Err(StoreError::Corrupt(format!("unknown job state `{other}`"))),
        })
    }
}

/// A stored job, as claimed by the worker or read by an operator.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub route: String,
    pub source: String,
    pub delivery_id: String,
    pub topic: String,
    pub contact_id: Option<String>,
    pub contact_updated_at: Option<i64>,
    pub meta: BTreeMap<String, String>,
    pub payload: Bytes,
    pub state: JobState,
    /// Attempts made, including the current one once claimed. Together with `id` it
    /// identifies one claim, so a worker whose lease ran out cannot overwrite a newer claim.
    pub attempts: u32,
    pub next_attempt_at: SystemTime,
    pub outcome: Option<String>,
    pub customer_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: SystemTime,
    /// When an operator last replayed the job; `delivery.max_age_hours` counts from here
    /// when set, so a replayed job gets a fresh age window.
    pub replayed_at: Option<SystemTime>,
    /// Its contact's link, when the store read it in the claim's own transaction
    /// (SQLite); `None` when the worker has to read it ([`Store::contact`]). Nothing else
    /// can change the link in between: a contact has one job in flight at a time.
    pub link: Option<ContactLink>,
}

impl Job {
    /// The instant `delivery.max_age_hours` is measured from.
    pub fn age_from(&self) -> SystemTime {
        self.replayed_at.unwrap_or(self.created_at)
    }
}

/// Which jobs an operator means (admin API, CLI). Every field narrows the set.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub route: Option<String>,
    /// Only jobs that arrived at or after this instant.
    pub since: Option<SystemTime>,
}

/// What an operator's change to one job (`replay`, `delete_job`) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobChange {
    /// Done: the job was replayed (pending, due now, fresh retry schedule and age
    /// window) or deleted.
    Applied,
    /// No job has that id.
    NotFound,
    /// A worker holds the job right now; nothing changed. Try again after that attempt.
    InFlight,
}

/// What the bridge remembers about one source contact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactLink {
    /// The Vendasta customer this contact is linked to.
    pub customer_id: Option<String>,
    /// The newest payload `updated_at` (Unix ms) applied upstream.
    pub applied_updated_at: Option<i64>,
    /// The contact's tags as last known from the provider; `None` if never seen.
    pub source_tags: Option<Vec<String>>,
}

/// How a claimed job ends (or is put back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Delivered (or deliberately skipped). `link` is recorded for the contact;
    /// `applied` marks the payload's `updated_at` as applied upstream.
    Done {
        outcome: &'static str,
        link: Option<String>,
        applied: bool,
        note: Option<String>,
    },
    /// Try again at `at`.
    Retry { at: SystemTime, error: String },
    /// Try again at `at` without counting this attempt: nothing was sent (no Vendasta
    /// token could be had), so the wait must not use up the job's retry schedule.
    Wait { at: SystemTime, error: String },
    /// Not deliverable yet (a partial update of a contact that is not linked): try again
    /// at `at`, or as soon as the contact gets linked, without counting an attempt and
    /// without holding later jobs of the contact back.
    Defer { at: SystemTime, reason: String },
    /// The linked customer is gone upstream: forget the link and retry at once as a create.
    Unlink { error: String },
    /// Parked with a reason; can be replayed.
    Dead {
        outcome: &'static str,
        reason: String,
    },
}

/// The columns a [`Finish`] writes to its job's row: the same on both backends.
pub(crate) struct Ending<'a> {
    pub state: &'static str,
    pub outcome: &'static str,
    /// Recorded only when set (`COALESCE`): a retry keeps the customer already reached.
    pub customer_id: Option<&'a str>,
    pub last_error: Option<&'a str>,
    /// Changed only when set.
    pub next_attempt_at: Option<i64>,
    /// A deferral is marked so it does not hold later jobs of the contact back.
    pub deferred: bool,
    /// A deferral or a wait gives back the attempt its claim counted.
    pub gives_back_attempt: bool,
}

impl Finish {
    /// What this ending writes, at `now_ms` (Unix ms).
    pub(crate) fn ending(&self, now_ms: i64) -> Ending<'_> {
        let (state, outcome, customer_id, last_error, next_attempt_at) = match self {
            Finish::Done {
                outcome,
                link,
                note,
                ..
            } => ("done", *outcome, link.as_deref(), note.as_deref(), None),
            Finish::Defer { at, reason } => (
                "pending",
                "deferred",
                None,
                Some(reason.as_str()),
                Some(to_millis(*at)),
            ),
            Finish::Retry { at, error } => (
                "pending",
                "retry",
                None,
                Some(error.as_str()),
                Some(to_millis(*at)),
            ),
            Finish::Wait { at, error } => (
                "pending",
                "waiting",
                None,
                Some(error.as_str()),
                Some(to_millis(*at)),
            ),
            Finish::Unlink { error } => (
                "pending",
                "unlinked",
                None,
                Some(error.as_str()),
                Some(now_ms),
            ),
            Finish::Dead { outcome, reason } => {
                ("dead", *outcome, None, Some(reason.as_str()), None)
            }
        };
        Ending {
            state,
            outcome,
            customer_id,
            last_error,
            next_attempt_at,
            deferred: matches!(self, Finish::Defer { .. }),
            gives_back_attempt: matches!(self, Finish::Defer { .. } | Finish::Wait { .. }),
        }
    }
}

/// Counts of jobs by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub pending: u64,
    pub in_flight: u64,
    pub done: u64,
    pub dead: u64,
}

impl StateCounts {
    /// Records `n` jobs in `state` (one row of a `GROUP BY state` count).
    pub(crate) fn set(&mut self, state: JobState, n: u64) {
        match state {
            JobState::Pending => self.pending = n,
            JobState::InFlight => self.in_flight = n,
            JobState::Done => self.done = n,
            JobState::Dead => self.dead = n,
        }
    }

    /// The count for one state.
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Pending => self.pending,
            JobState::InFlight => self.in_flight,
            JobState::Done => self.done,
            JobState::Dead => self.dead,
        }
    }
}

/// Store failures. The message is for operators; none contains payload data.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at `{url}`: {reason}")]
    Open { url: String, reason: String },
    #[error("store migration failed: {0}")]
    Migrate(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite store's writer, which calls SQLite directly.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store is shutting down or its writer has stopped")]
    Closed,
    #[error("stored data is not what the bridge expects: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Open { .. } => "store_open",
            StoreError::Migrate(_) => "store_migrate",
            StoreError::Database(_) | StoreError::Sqlite(_) => "store_database",
            StoreError::Closed => "store_closed",
            StoreError::Corrupt(_) => "store_corrupt",
        }
    }
}

/// The configured backend. An enum, not a trait object: there are exactly two known
/// backends, and every caller sees one concrete API.
#[derive(Debug, Clone)]
pub enum Store {
    /// One replica, embedded file.
    Sqlite(SqliteStore),
    /// Several replicas sharing one database.
    Postgres(PostgresStore),
}

/// Connections a PostgreSQL store opens when the caller does not say (`store.pool_size`).
pub const DEFAULT_POOL_SIZE: u32 = 10;

impl Store {
    /// Opens (creating if needed) the store named by `url` and runs its migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::connect(url, DEFAULT_POOL_SIZE).await
    }

    /// Like [`Store::open`], with up to `pool_size` connections for PostgreSQL
    /// (`postgres://` or `postgresql://`); any other URL is a SQLite file.
    pub async fn connect(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        if is_postgres_url(url) {
            Ok(Store::Postgres(PostgresStore::open(url, pool_size).await?))
        } else {
            Ok(Store::Sqlite(SqliteStore::open(url).await?))
        }
    }

    /// Which backend this is, for logs and `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Pokes `wake` when another replica stores new work or frees a contact's next job.
    /// SQLite has one replica, whose ingest pokes the worker itself, so it does nothing.
    pub fn forward_new_work(&self, wake: std::sync::Arc<tokio::sync::Notify>) {
        match self {
            Store::Sqlite(_) => {}
            Store::Postgres(store) => store.forward_new_work(wake),
        }
    }

    /// Stores a webhook durably. Returns only after the commit that holds it is on disk.
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        match self {
            Store::Sqlite(store) => store.enqueue(job).await,
            Store::Postgres(store) => store.enqueue(job).await,
        }
    }

    /// Claims the next due job, leasing it until `now + lease`.
    pub async fn claim(&self, now: SystemTime, lease: Duration) -> Result<Option<Job>, StoreError> {
        match self {
            Store::Sqlite(store) => store.claim(now, lease).await,
            Store::Postgres(store) => store.claim(now, lease).await,
        }
    }

    /// Claims up to `max` due jobs at once (never two of one contact), each leased until
    /// `now + lease`; fewer, or none, when fewer are due. On SQLite they share one commit.
    pub async fn claim_many(
        &self,
        now: SystemTime,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Job>, StoreError> {
        match self {
            Store::Sqlite(store) => store.claim_many(now, lease, max).await,
            Store::Postgres(store) => store.claim_many(now, lease, max).await,
        }
    }

    /// Ends the claim `job` holds. Returns false when the claim had been lost (lease
    /// expired and another worker took the job), in which case nothing was written.
    pub async fn finish(
        &self,
        job: &Job,
        finish: Finish,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(store) => store.finish(job, finish, now).await,
            Store::Postgres(store) => store.finish(job, finish, now).await,
        }
    }

    /// Stores every job of one request in the same durable commit; the results are in
    /// the order of `jobs`.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        match self {
            Store::Sqlite(store) => store.enqueue_many(jobs).await,
            Store::Postgres(store) => store.enqueue_many(jobs).await,
        }
    }

    /// Remembers a contact's tag set as the provider last stated it.
    pub async fn remember_tags(
        &self,
        route: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.remember_tags(route, contact_id, tags).await,
            Store::Postgres(store) => store.remember_tags(route, contact_id, tags).await,
        }
    }

    /// Deletes every job (payload included) and the link of these contacts on `route`.
    /// Returns how many jobs were deleted; returns after the deletion is committed.
    pub async fn redact_contacts(
        &self,
        route: &str,
        contact_ids: &[String],
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(store) => store.redact_contacts(route, contact_ids).await,
            Store::Postgres(store) => store.redact_contacts(route, contact_ids).await,
        }
    }

    /// Deletes every job of one tenant (a shop domain, as kept in the job's meta) on
    /// `route`, and the links of the contacts those jobs named. Returns how many jobs were
    /// deleted; returns after the deletion is committed.
    pub async fn redact_tenant(&self, route: &str, tenant: &str) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(store) => store.redact_tenant(route, tenant).await,
            Store::Postgres(store) => store.redact_tenant(route, tenant).await,
        }
    }

    /// The link and applied timestamp for a source contact.
    pub async fn contact(&self, route: &str, contact_id: &str) -> Result<ContactLink, StoreError> {
        match self {
            Store::Sqlite(store) => store.contact(route, contact_id).await,
            Store::Postgres(store) => store.contact(route, contact_id).await,
        }
    }

    /// One job by id.
    pub async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        match self {
            Store::Sqlite(store) => store.job(id).await,
            Store::Postgres(store) => store.job(id).await,
        }
    }

    /// One job by its route and delivery id.
    pub async fn job_by_delivery(
        &self,
        route: &str,
        delivery_id: &str,
    ) -> Result<Option<Job>, StoreError> {
        match self {
            Store::Sqlite(store) => store.job_by_delivery(route, delivery_id).await,
            Store::Postgres(store) => store.job_by_delivery(route, delivery_id).await,
        }
    }

    /// How many jobs are in each state.
    pub async fn counts(&self) -> Result<StateCounts, StoreError> {
        match self {
            Store::Sqlite(store) => store.counts().await,
            Store::Postgres(store) => store.counts().await,
        }
    }

    /// Jobs matching `filter`, newest first (descending id), at most `limit`, only those
    /// with an id below `before` when given (cursor paging).
    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        match self {
            Store::Sqlite(store) => store.list_jobs(filter, before, limit).await,
            Store::Postgres(store) => store.list_jobs(filter, before, limit).await,
        }
    }

    /// Makes one job pending and due at `now` with attempts reset and `replayed_at = now`.
    pub async fn replay(&self, id: JobId, now: SystemTime) -> Result<JobChange, StoreError> {
        match self {
            Store::Sqlite(store) => store.replay(id, now).await,
            Store::Postgres(store) => store.replay(id, now).await,
        }
    }

    /// Replays every job matching `filter` that is not in flight, in batches of at most
    /// `batch` rows per transaction; returns how many were replayed. Jobs that arrive
    /// while it runs are left alone.
    pub async fn replay_matching(
        &self,
        filter: &JobFilter,
        now: SystemTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(store) => store.replay_matching(filter, now, batch).await,
            Store::Postgres(store) => store.replay_matching(filter, now, batch).await,
        }
    }

    /// Deletes one job (and with it its dedupe key) unless it is in flight.
    pub async fn delete_job(&self, id: JobId) -> Result<JobChange, StoreError> {
        match self {
            Store::Sqlite(store) => store.delete_job(id).await,
            Store::Postgres(store) => store.delete_job(id).await,
        }
    }

    /// Deletes at most `batch` done jobs last updated before `cutoff`; returns how many.
    pub async fn purge_done(&self, cutoff: SystemTime, batch: u32) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(store) => store.purge_done(cutoff, batch).await,
            Store::Postgres(store) => store.purge_done(cutoff, batch).await,
        }
    }

    /// When the oldest job not yet delivered (pending or in flight) arrived or was replayed.
    pub async fn oldest_undelivered(&self) -> Result<Option<SystemTime>, StoreError> {
        match self {
            Store::Sqlite(store) => store.oldest_undelivered().await,
            Store::Postgres(store) => store.oldest_undelivered().await,
        }
    }

    /// A cheap round trip, for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.ping().await,
            Store::Postgres(store) => store.ping().await,
        }
    }

    /// Stops the writer and closes connections; later calls fail with `Closed`.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(store) => store.close().await,
            Store::Postgres(store) => store.close().await,
        }
    }
}

/// The error each request of a failed group commit is answered with (sqlx errors are
/// not `Clone`, and every waiting request needs its own).
fn commit_failed(error: &StoreError) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("commit failed: {error}")))
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` with any password replaced by `[redacted]`, safe to print or log.
/// `postgres://bridge:s3cret@db/bridge` → `postgres://bridge:[redacted]@db/bridge`; a
/// `password=` query parameter is redacted too.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(parts) => parts,
        None => return url.to_string(),
    };
    // The userinfo ends at the last '@': a password may hold a raw '@', '/' or '?'
    // (invalid, but users write it, and then it must not leak in the parse error). An
    // '@' in a query value makes this redact more than needed, which is the safe side.
    let (authority, rest) = match rest.rsplit_once('@') {
        Some((userinfo, host_and_rest)) => {
            let userinfo = match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:[redacted]"),
                None => userinfo.to_string(),
            };
            (format!("{userinfo}@"), host_and_rest)
        }
        None => (String::new(), rest),
    };
    let (path, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest, None),
    };
    let mut redacted = format!("{scheme}://{authority}{path}");
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                    format!("{key}=[redacted]")
                }
                _ => pair.to_string(),
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&pairs.join("&"));
    }
    redacted
}

/// Unix milliseconds; the store keeps every time in this form.
pub fn to_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`to_millis`].
pub fn from_millis(millis: i64) -> SystemTime {
    if millis >= 0 {
        UNIX_EPOCH + Duration::from_millis(millis.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(millis.unsigned_abs())
    }
}
