//! The PostgreSQL backend: several replicas share one queue.
//!
//! Same rules as SQLite, made to hold across processes. Durability: `synchronous_commit`
//! stays on, so a commit returns after the WAL flush; inserts go through one writer task
//! per process that batches whatever is waiting into one transaction (group commit), and
//! each webhook is answered only after the commit that carries it. Dedupe is the unique
//! index on `(route, delivery_id)` with `ON CONFLICT DO NOTHING`, so the same delivery
//! posted to two replicas at once is stored once. Claims take row locks with
//! `FOR UPDATE SKIP LOCKED` plus a per-contact advisory lock (see [`PostgresStore::claim`]
//! for why both); a lease that runs out makes the job claimable by any replica. New work
//! is announced with `pg_notify` inside the writing transaction, and
//! [`PostgresStore::forward_new_work`] turns those notifications into worker wake-ups.

use std::{
    collections::HashMap,
    str::FromStr,
    sync::Arc,
    time::{Duration, SystemTime},
};

use sqlx::{
    Connection, Postgres, Row, Transaction,
    postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow},
};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::row::{contact_from_row, job_from_row};
use super::{
    ContactLink, Enqueued, Finish, Job, JobChange, JobFilter, JobId, JobState, NewJob, StateCounts,
    StoreError, from_millis, redact_url, to_millis,
};

/// Most webhooks written in one transaction; bounds the time one commit can take.
const MAX_BATCH: usize = 512;
/// Webhooks waiting for the writer; beyond this, ingest waits (back-pressure).
const QUEUE_DEPTH: usize = 4096;
/// How long a caller waits for a pooled connection before the call fails instead of
/// hanging while the database is unreachable: below Shopify's 5 s webhook timeout, so the
/// provider gets a 503 (and retries) rather than a timeout.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// How many due jobs one claim looks at; more than one so that a contact whose advisory
/// lock another replica holds does not make this claim come back empty.
const CLAIM_CANDIDATES: i64 = 8;
/// First key of the two-key advisory locks that guard contacts. The two-key space is
/// separate from the one-key space sqlx's migrator locks in, so they cannot collide.
const CONTACT_LOCK_CLASS: i32 = 0x5642_4331;
/// The notification channel new or released work is announced on.
const CHANNEL: &str = "vendasta_bridge_jobs";
/// Wait before reconnecting the notification listener after it failed.
const LISTEN_BACKOFF: Duration = Duration::from_secs(1);

/// One request's jobs are written in the same transaction and answered together.
type Reply = oneshot::Sender<Result<Vec<Enqueued>, StoreError>>;

/// A PostgreSQL-backed store; cheap to clone.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    writer: mpsc::Sender<(Vec<NewJob>, Reply)>,
    /// Stops the notification listener on close.
    stop: CancellationToken,
}

impl PostgresStore {
    /// Connects with up to `pool_size` connections and runs the embedded migrations.
    pub async fn open(url: &str, pool_size: u32) -> Result<Self, StoreError> {
        // The URL may carry a password: only its redacted form goes into errors.
        let open_error = |reason: String| StoreError::Open {
            url: redact_url(url),
            reason,
        };
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            open_error(format!(
                "{e}; use postgres://USER:PASSWORD@HOST:PORT/DATABASE"
            ))
        })?;
        // One direct connection first: the pool would only report "timed out", hiding
        // the reason (refused, unknown host, bad password, no such database).
        let probe = PgConnection::connect_with(&options).await.map_err(|e| {
            open_error(format!(
                "{e}: check that PostgreSQL runs at that host and port and accepts this user, password and database"
            ))
        })?;
        probe.close().await.map_err(|e| open_error(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        // sqlx's migrator holds a session advisory lock (keyed on the database name) while
        // it runs, so replicas starting together apply each migration exactly once: the
        // others wait, then find it applied.
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let (writer, requests) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_loop(pool.clone(), requests));
        Ok(Self {
            pool,
            writer,
            stop: CancellationToken::new(),
        })
    }

    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        self.enqueue_many(vec![job])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("the writer answered no result".into()))
    }

    /// Hands one request's jobs to the group-commit writer as one unit: they go into the
    /// same transaction, so they are stored together or not at all.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        if self.pool.is_closed() {
            return Err(StoreError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .send((jobs, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Claims the next due job for `lease`.
    ///
    /// Why it is safe across replicas: candidates are read and row-locked with
    /// `FOR UPDATE SKIP LOCKED`, so two claimers never take the same row. That alone does
    /// not keep two *different* jobs of one contact apart: each claimer judges "no other
    /// job of this contact is in flight" from its own statement snapshot, and a claim
    /// another replica commits just after that snapshot is invisible to it (an admin
    /// replay that puts an older job back to pending makes this reachable). So before
    /// taking a job of a contact the claimer takes the transaction-scoped advisory lock
    /// of that contact and re-checks in a new statement. Every claimer of that contact
    /// holds the same lock until its commit, and PostgreSQL makes a commit visible
    /// before it releases the transaction's locks, so the re-check's fresh snapshot sees
    /// every earlier claim of the contact: at most one job per contact is in flight.
    /// Finishing a job needs no lock: it only moves a job out of flight, which can only
    /// make a concurrent re-check more cautious.
    ///
    /// A deferred job (a partial update waiting for its contact's create) holds no later
    /// job of its contact back, exactly as on SQLite, or the create it waits for could
    /// never run. It still takes the contact's advisory lock when it is itself claimed,
    /// and a deferred job in flight blocks the contact like any other: deferral only
    /// changes what a *pending* job blocks.
    pub async fn claim_many(
        &self,
        now: SystemTime,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Job>, StoreError> {
        // One transaction per claim: PostgreSQL commits concurrently (no single write
        // lock to share), and a short transaction holds its contact's advisory lock for
        // the least time.
        let mut claimed = Vec::new();
        while claimed.len() < max {
            match self.claim(now, lease).await {
                Ok(Some(job)) => claimed.push(job),
                Ok(None) => break,
                Err(error) if claimed.is_empty() => return Err(error),
                // The jobs already claimed are committed: hand them over rather than
                // leave them leased and idle until their leases run out.
                Err(error) => {
                    tracing::warn!(error = %error, claimed = claimed.len(), "A claim failed after others succeeded; delivering those.");
                    break;
                }
            }
        }
        Ok(claimed)
    }

    pub async fn claim(&self, now: SystemTime, lease: Duration) -> Result<Option<Job>, StoreError> {
        let now_ms = to_millis(now);
        let until_ms = to_millis(now + lease);
        let mut tx = self.pool.begin().await?;
        // The contact check names the two states that can hold a job back
        // (`o.state IN (…)`) although the OR below implies them: only then is the state
        // part of the `jobs_by_contact` probe (route, contact_id, state). Without it the
        // probe read every job the contact ever had, done ones included, for every
        // candidate: with 20,000 done and 20,000 pending jobs of one contact, one claim
        // took 165 s under EXPLAIN ANALYZE, against ~50 ms with the state in the probe.
        // Same rows either way. What is left is one probe per due job of a busy contact
        // that the scan passes before it finds `LIMIT` claimable ones.
        let candidates = sqlx::query(
            r#"
            SELECT j.id, j.route, j.contact_id FROM jobs j
             WHERE ((j.state = 'pending' AND j.next_attempt_at <= $1)
                 OR (j.state = 'in_flight' AND j.lease_until <= $1))
               AND (j.contact_id IS NULL OR NOT EXISTS (
                    SELECT 1 FROM jobs o
                     WHERE o.route = j.route AND o.contact_id = j.contact_id
                       AND o.state IN ('in_flight', 'pending') AND o.id <> j.id
                       AND ((o.state = 'in_flight' AND o.lease_until > $1)
                         OR (o.id < j.id AND (o.state = 'in_flight' OR NOT o.deferred)))))
             ORDER BY j.next_attempt_at, j.id
             LIMIT $2
             FOR UPDATE OF j SKIP LOCKED
            "#,
        )
        .bind(now_ms)
        .bind(CLAIM_CANDIDATES)
        .fetch_all(&mut *tx)
        .await?;
        for candidate in candidates {
            let id: i64 = candidate.try_get("id")?;
            let route: String = candidate.try_get("route")?;
            let contact_id: Option<String> = candidate.try_get("contact_id")?;
            if let Some(contact_id) = &contact_id {
                let locked: bool = sqlx::query_scalar(
                    r#"SELECT pg_try_advisory_xact_lock($1, hashtext($2 || E'\n' || $3))"#,
                )
                .bind(CONTACT_LOCK_CLASS)
                .bind(&route)
                .bind(contact_id)
                .fetch_one(&mut *tx)
                .await?;
                if !locked {
                    // Another replica is claiming a job of this contact right now.
                    continue;
                }
            }
            // Our row lock keeps the job itself as the first query saw it; the contact
            // condition is re-checked here, in a snapshot taken after the advisory lock.
            let row = sqlx::query(
                r#"
                UPDATE jobs j
                   SET state = 'in_flight', lease_until = $1, attempts = attempts + 1, updated_at = $2
                 WHERE j.id = $3
                   AND (j.contact_id IS NULL OR NOT EXISTS (
                        SELECT 1 FROM jobs o
                         WHERE o.route = j.route AND o.contact_id = j.contact_id
                           AND o.state IN ('in_flight', 'pending') AND o.id <> j.id
                           AND ((o.state = 'in_flight' AND o.lease_until > $2)
                             OR (o.id < j.id AND (o.state = 'in_flight' OR NOT o.deferred)))))
                RETURNING *
                "#,
            )
            .bind(until_ms)
            .bind(now_ms)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                let job = job_from_row(&row)?;
                tx.commit().await?;
                return Ok(Some(job));
            }
        }
        tx.commit().await?;
        Ok(None)
    }

    pub async fn finish(
        &self,
        job: &Job,
        finish: Finish,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let now_ms = to_millis(now);
        // Every ending is one fenced update: it applies only to the claim this worker holds
        // (id, attempts) while the job is still in flight.
        let ending = finish.ending(now_ms);
        let mut tx = self.pool.begin().await?;
        let affected = sqlx::query(
            r#"UPDATE jobs
                  SET state = $1, outcome = $2, customer_id = COALESCE($3, customer_id), last_error = $4,
                      next_attempt_at = COALESCE($5, next_attempt_at), lease_until = NULL, updated_at = $6,
                      deferred = $9, attempts = attempts - $10
                WHERE id = $7 AND attempts = $8 AND state = 'in_flight'"#,
        )
        .bind(ending.state)
        .bind(ending.outcome)
        .bind(ending.customer_id)
        .bind(ending.last_error)
        .bind(ending.next_attempt_at)
        .bind(now_ms)
        .bind(job.id.0)
        .bind(i64::from(job.attempts))
        .bind(ending.deferred)
        .bind(i64::from(ending.gives_back_attempt))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if affected == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(contact_id) = &job.contact_id {
            match &finish {
                Finish::Done { link, applied, .. } if link.is_some() || *applied => {
                    let applied_at = if *applied {
                        job.contact_updated_at
                    } else {
                        None
                    };
                    upsert_contact(
                        &mut tx,
                        &job.route,
                        contact_id,
                        link.as_deref(),
                        applied_at,
                        now_ms,
                    )
                    .await?;
                    if link.is_some() {
                        // Partial updates that waited for this contact's link are due now.
                        sqlx::query(
                            r#"UPDATE jobs SET next_attempt_at = $1
                                WHERE route = $2 AND contact_id = $3 AND state = 'pending' AND deferred"#,
                        )
                        .bind(now_ms)
                        .bind(&job.route)
                        .bind(contact_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Finish::Unlink { .. } => {
                    sqlx::query(
                        r#"UPDATE contacts SET customer_id = NULL, updated_at = $1
                            WHERE route = $2 AND contact_id = $3"#,
                    )
                    .bind(now_ms)
                    .bind(&job.route)
                    .bind(contact_id)
                    .execute(&mut *tx)
                    .await?;
                }
                _ => {}
            }
            // A retry or a wait keeps the job ahead of the contact's later jobs, so nothing
            // new is claimable; every other ending frees the contact (a deferral frees the
            // jobs behind it, a link also wakes deferred ones).
            if !matches!(finish, Finish::Retry { .. } | Finish::Wait { .. }) {
                // The contact's next job (possibly another replica's to take) is free now.
                notify(&mut tx).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn contact(&self, route: &str, contact_id: &str) -> Result<ContactLink, StoreError> {
        let row = sqlx::query(
            r#"SELECT customer_id, applied_updated_at, source_tags FROM contacts WHERE route = $1 AND contact_id = $2"#,
        )
        .bind(route)
        .bind(contact_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .as_ref()
            .map(contact_from_row)
            .transpose()?
            .unwrap_or_default())
    }

    pub async fn remember_tags(
        &self,
        route: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<(), StoreError> {
        let tags = serde_json::to_string(tags)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode tags: {e}")))?;
        sqlx::query(
            r#"
            INSERT INTO contacts (route, contact_id, source_tags, updated_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (route, contact_id) DO UPDATE SET
                source_tags = EXCLUDED.source_tags, updated_at = EXCLUDED.updated_at
            "#,
        )
        .bind(route)
        .bind(contact_id)
        .bind(tags)
        .bind(to_millis(SystemTime::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn redact_contacts(
        &self,
        route: &str,
        contact_ids: &[String],
    ) -> Result<u64, StoreError> {
        // One statement per table with the ids as an array: the whole redaction is one
        // transaction whatever the number of contacts.
        let mut tx = self.pool.begin().await?;
        let deleted = sqlx::query(r#"DELETE FROM jobs WHERE route = $1 AND contact_id = ANY($2)"#)
            .bind(route)
            .bind(contact_ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(r#"DELETE FROM contacts WHERE route = $1 AND contact_id = ANY($2)"#)
            .bind(route)
            .bind(contact_ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    pub async fn redact_tenant(&self, route: &str, tenant: &str) -> Result<u64, StoreError> {
        // `meta` is TEXT holding a JSON object (as on SQLite), so it is read as jsonb here.
        let mut tx = self.pool.begin().await?;
        // Links first: they are found through the jobs about to be deleted.
        sqlx::query(
            r#"DELETE FROM contacts WHERE route = $1 AND contact_id IN (
                   SELECT contact_id FROM jobs
                    WHERE route = $1 AND contact_id IS NOT NULL
                      AND lower(meta::jsonb ->> 'shop_domain') = lower($2))"#,
        )
        .bind(route)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        let deleted = sqlx::query(
            r#"DELETE FROM jobs WHERE route = $1 AND lower(meta::jsonb ->> 'shop_domain') = lower($2)"#,
        )
        .bind(route)
        .bind(tenant)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(deleted)
    }

    pub async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(r#"SELECT * FROM jobs WHERE id = $1"#)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn job_by_delivery(
        &self,
        route: &str,
        delivery_id: &str,
    ) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(r#"SELECT * FROM jobs WHERE route = $1 AND delivery_id = $2"#)
            .bind(route)
            .bind(delivery_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn counts(&self) -> Result<StateCounts, StoreError> {
        let rows = sqlx::query(r#"SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"#)
            .fetch_all(&self.pool)
            .await?;
        let mut counts = StateCounts::default();
        for row in rows {
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            counts.set(JobState::parse(row.try_get::<&str, _>("state")?)?, n);
        }
        Ok(counts)
    }

    pub async fn list_jobs(
        &self,
        filter: &JobFilter,
        before: Option<JobId>,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError> {
        // `$n::type IS NULL` gives PostgreSQL the parameter's type, which it cannot infer
        // from a bare `$n IS NULL`.
        let rows = sqlx::query(
            r#"SELECT * FROM jobs
                WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR route = $2)
                  AND ($3::bigint IS NULL OR created_at >= $3) AND ($4::bigint IS NULL OR id < $4)
                ORDER BY id DESC
                LIMIT $5"#,
        )
        .bind(filter.state.map(JobState::as_str))
        .bind(filter.route.as_deref())
        .bind(filter.since.map(to_millis))
        .bind(before.map(|id| id.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    pub async fn replay(&self, id: JobId, now: SystemTime) -> Result<JobChange, StoreError> {
        let now_ms = to_millis(now);
        // Attempts go back to 0 (a fresh retry schedule) and replayed_at starts a fresh
        // max-age window; outcome and last_error stay until the next attempt overwrites them.
        let mut tx = self.pool.begin().await?;
        let affected = sqlx::query(
            r#"UPDATE jobs
                  SET state = 'pending', attempts = 0, next_attempt_at = $1, lease_until = NULL,
                      replayed_at = $1, updated_at = $1
                WHERE id = $2 AND state <> 'in_flight'"#,
        )
        .bind(now_ms)
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if affected > 0 {
            // Another replica's idle worker may be the one to deliver it.
            notify(&mut tx).await?;
            tx.commit().await?;
            return Ok(JobChange::Applied);
        }
        tx.commit().await?;
        self.missing_or_in_flight(id).await
    }

    pub async fn replay_matching(
        &self,
        filter: &JobFilter,
        now: SystemTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let now_ms = to_millis(now);
        // Walk ids upwards from a fixed ceiling so that replayed jobs (which may match the
        // filter again, e.g. state = pending) and new arrivals are never visited twice, and
        // each batch is its own short transaction so ingest is not blocked for long.
        let ceiling: Option<i64> = sqlx::query_scalar(r#"SELECT MAX(id) FROM jobs"#)
            .fetch_one(&self.pool)
            .await?;
        let Some(ceiling) = ceiling else {
            return Ok(0);
        };
        let mut after = 0_i64;
        let mut replayed = 0_u64;
        loop {
            let ids: Vec<i64> = sqlx::query_scalar(
                r#"SELECT id FROM jobs
                    WHERE id > $1 AND id <= $2 AND state <> 'in_flight'
                      AND ($3::text IS NULL OR state = $3) AND ($4::text IS NULL OR route = $4)
                      AND ($5::bigint IS NULL OR created_at >= $5)
                    ORDER BY id
                    LIMIT $6"#,
            )
            .bind(after)
            .bind(ceiling)
            .bind(filter.state.map(JobState::as_str))
            .bind(filter.route.as_deref())
            .bind(filter.since.map(to_millis))
            .bind(i64::from(batch.max(1)))
            .fetch_all(&self.pool)
            .await?;
            let (Some(first), Some(last)) = (ids.first().copied(), ids.last().copied()) else {
                break;
            };
            let mut tx = self.pool.begin().await?;
            // The filter is applied again: a job may have been claimed or changed since
            // the ids were read.
            let affected = sqlx::query(
                r#"UPDATE jobs
                      SET state = 'pending', attempts = 0, next_attempt_at = $1, lease_until = NULL,
                          replayed_at = $1, updated_at = $1
                    WHERE id >= $2 AND id <= $3 AND state <> 'in_flight'
                      AND ($4::text IS NULL OR state = $4) AND ($5::text IS NULL OR route = $5)
                      AND ($6::bigint IS NULL OR created_at >= $6)"#,
            )
            .bind(now_ms)
            .bind(first)
            .bind(last)
            .bind(filter.state.map(JobState::as_str))
            .bind(filter.route.as_deref())
            .bind(filter.since.map(to_millis))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if affected > 0 {
                notify(&mut tx).await?;
            }
            tx.commit().await?;
            replayed += affected;
            after = last;
        }
        Ok(replayed)
    }

    pub async fn delete_job(&self, id: JobId) -> Result<JobChange, StoreError> {
        let affected = sqlx::query(r#"DELETE FROM jobs WHERE id = $1 AND state <> 'in_flight'"#)
            .bind(id.0)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if affected > 0 {
            return Ok(JobChange::Applied);
        }
        self.missing_or_in_flight(id).await
    }

    async fn missing_or_in_flight(&self, id: JobId) -> Result<JobChange, StoreError> {
        let exists: Option<i64> = sqlx::query_scalar(r#"SELECT id FROM jobs WHERE id = $1"#)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(if exists.is_some() {
            JobChange::InFlight
        } else {
            JobChange::NotFound
        })
    }

    pub async fn purge_done(&self, cutoff: SystemTime, batch: u32) -> Result<u64, StoreError> {
        // SKIP LOCKED: replicas purging at the same time split the rows instead of
        // waiting on each other.
        let deleted = sqlx::query(
            r#"DELETE FROM jobs WHERE id IN (
                   SELECT id FROM jobs WHERE state = 'done' AND updated_at < $1
                    LIMIT $2 FOR UPDATE SKIP LOCKED)"#,
        )
        .bind(to_millis(cutoff))
        .bind(i64::from(batch.max(1)))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(deleted)
    }

    pub async fn oldest_undelivered(&self) -> Result<Option<SystemTime>, StoreError> {
        let oldest: Option<i64> = sqlx::query_scalar(
            r#"SELECT MIN(COALESCE(replayed_at, created_at)) FROM jobs
                WHERE state IN ('pending', 'in_flight')"#,
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(oldest.map(from_millis))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Pokes `wake` whenever any replica stores new work or frees a contact's next job,
    /// so idle workers start at once instead of waiting for their poll. Runs until the
    /// store is closed; a lost connection is logged and re-established, never fatal, and
    /// after each reconnect `wake` is poked once because notifications may have been
    /// missed meanwhile.
    pub fn forward_new_work(&self, wake: Arc<Notify>) {
        let pool = self.pool.clone();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let mut listener = match listen(&pool).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(error = %error, "Cannot listen for new work on the store; will retry.");
                        tokio::select! {
                            () = tokio::time::sleep(LISTEN_BACKOFF) => continue,
                            () = stop.cancelled() => return,
                        }
                    }
                };
                wake.notify_one();
                loop {
                    let received = tokio::select! {
                        received = listener.try_recv() => received,
                        () = stop.cancelled() => return,
                    };
                    match received {
                        Ok(Some(_)) => wake.notify_one(),
                        Ok(None) => {
                            // sqlx reconnects on the next call; work may have arrived meanwhile.
                            tracing::warn!(
                                "Lost the store connection that listens for new work; reconnecting."
                            );
                            wake.notify_one();
                            tokio::select! {
                                () = tokio::time::sleep(LISTEN_BACKOFF) => {}
                                () = stop.cancelled() => return,
                            }
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, "Listening for new work on the store failed; reconnecting.");
                            break;
                        }
                    }
                }
            }
        });
    }

    pub async fn close(&self) {
        self.stop.cancel();
        self.pool.close().await;
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Queues a notification that is delivered when (and only if) `tx` commits.
async fn notify(tx: &mut Transaction<'_, Postgres>) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn upsert_contact(
    tx: &mut Transaction<'_, Postgres>,
    route: &str,
    contact_id: &str,
    customer_id: Option<&str>,
    applied_at: Option<i64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    // GREATEST ignores NULLs, so the applied time only moves forward.
    sqlx::query(
        r#"
        INSERT INTO contacts (route, contact_id, customer_id, applied_updated_at, updated_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (route, contact_id) DO UPDATE SET
            customer_id = COALESCE(EXCLUDED.customer_id, contacts.customer_id),
            applied_updated_at = GREATEST(contacts.applied_updated_at, EXCLUDED.applied_updated_at),
            updated_at = EXCLUDED.updated_at
        "#,
    )
    .bind(route)
    .bind(contact_id)
    .bind(customer_id)
    .bind(applied_at)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The group-commit writer: drains whatever is waiting, writes it in one transaction,
/// answers each request after the commit. Ends when every sender is gone.
async fn write_loop(pool: PgPool, mut requests: mpsc::Receiver<(Vec<NewJob>, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while requests.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs: Vec<&NewJob> = batch.iter().flat_map(|(jobs, _)| jobs).collect();
        let started = std::time::Instant::now();
        let committed = insert_batch(&pool, &jobs).await;
        crate::metrics::store_commit(jobs.len(), started.elapsed());
        match committed {
            Ok(results) => {
                let mut results = results.into_iter();
                for (jobs, reply) in batch.drain(..) {
                    let mine: Vec<Enqueued> = results.by_ref().take(jobs.len()).collect();
                    // A requester that gave up (timed out) no longer listens; its jobs are
                    // stored all the same and a retry of them will be duplicates.
                    let _ignored = reply.send(Ok(mine));
                }
            }
            Err(error) if batch.len() > 1 => {
                // One request the database refuses must not fail the others with it:
                // write each alone, so only the refused ones are answered 503.
                tracing::warn!(error = %error, batch = batch.len(), "A group commit failed; writing its requests one by one.");
                for (jobs, reply) in batch.drain(..) {
                    let alone: Vec<&NewJob> = jobs.iter().collect();
                    let result = insert_batch(&pool, &alone).await;
                    if let Err(error) = &result {
                        tracing::error!(error = %error, webhooks = jobs.len(), "Failed to commit webhooks to the store; they were answered 503.");
                    }
                    let _ignored = reply.send(result);
                }
            }
            Err(error) => {
                tracing::error!(error = %error, webhooks = jobs_in(&batch), "Failed to commit webhooks to the store; they were answered 503.");
                for (_, reply) in batch.drain(..) {
                    let _ignored = reply.send(Err(super::commit_failed(&error)));
                }
            }
        }
    }
}

fn jobs_in(batch: &[(Vec<NewJob>, Reply)]) -> usize {
    batch.iter().map(|(jobs, _)| jobs.len()).sum()
}

/// Writes one group commit with a constant number of statements, whatever its size: one
/// multi-row insert, one look-up of the ids already stored under the keys it skipped (only
/// when it skipped any), the notification when anything was accepted, and the commit.
/// Results are in the order of `jobs`.
async fn insert_batch(pool: &PgPool, jobs: &[&NewJob]) -> Result<Vec<Enqueued>, StoreError> {
    let now = to_millis(SystemTime::now());
    // The same delivery may come twice in one batch (two requests carrying one webhook):
    // only its first occurrence is written, and the later ones are answered as duplicates
    // of it. Sending each key once also keeps the insert from depending on which of two
    // equal rows PostgreSQL happens to reach first.
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::with_capacity(jobs.len());
    // For each webhook, the index of the first one in the batch with its key.
    let mut first: Vec<usize> = Vec::with_capacity(jobs.len());
    // The webhooks that are written: each key's first occurrence.
    let mut written: Vec<usize> = Vec::with_capacity(jobs.len());
    for (index, job) in jobs.iter().enumerate() {
        let key = (job.route.as_str(), job.delivery_id.as_str());
        let first_index = *first_of.entry(key).or_insert(index);
        if first_index == index {
            written.push(index);
        }
        first.push(first_index);
    }
    let metas = written
        .iter()
        .map(|&index| serde_json::to_string(&jobs[index].meta))
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("cannot encode job meta: {e}")))?;
    let column = |field: fn(&NewJob) -> &str| -> Vec<&str> {
        written.iter().map(|&index| field(jobs[index])).collect()
    };
    let routes = column(|job| &job.route);
    let delivery_ids = column(|job| &job.delivery_id);
    let contact_ids: Vec<Option<&str>> = written
        .iter()
        .map(|&index| jobs[index].contact_id.as_deref())
        .collect();
    let contact_updated_ats: Vec<Option<i64>> = written
        .iter()
        .map(|&index| jobs[index].contact_updated_at)
        .collect();
    let payloads: Vec<&[u8]> = written
        .iter()
        .map(|&index| jobs[index].payload.as_ref())
        .collect();

    let mut tx = pool.begin().await?;
    // Rows go in in key order (ORDER BY feeds the insert): two replicas' batches that
    // share delivery ids then wait on each other in the same order and cannot deadlock
    // (an insert of a key another open transaction has inserted waits for that
    // transaction to end). Ids are handed out in that order too, as they were when each
    // row had its own statement.
    let inserted = sqlx::query(
        r#"
        INSERT INTO jobs (route, source, delivery_id, topic, contact_id, contact_updated_at,
                          meta, payload, state, attempts, next_attempt_at, created_at, updated_at)
        SELECT route, source, delivery_id, topic, contact_id, contact_updated_at,
               meta, payload, 'pending', 0, $9, $9, $9
          FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                      $6::BIGINT[], $7::TEXT[], $8::BYTEA[])
               AS new (route, source, delivery_id, topic, contact_id, contact_updated_at,
                       meta, payload)
         ORDER BY route, delivery_id
        ON CONFLICT (route, delivery_id) DO NOTHING
        RETURNING id, route, delivery_id
        "#,
    )
    .bind(&routes)
    .bind(column(|job| &job.source))
    .bind(&delivery_ids)
    .bind(column(|job| &job.topic))
    .bind(&contact_ids)
    .bind(&contact_updated_ats)
    .bind(&metas)
    .bind(&payloads)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    let mut results: Vec<Option<Enqueued>> = vec![None; jobs.len()];
    let accepted_any = !inserted.is_empty();
    for row in &inserted {
        let index = index_of(&first_of, row)?;
        results[index] = Some(Enqueued::Accepted(JobId(row.try_get("id")?)));
    }
    if inserted.len() < written.len() {
        // The keys the insert skipped are stored, and committed: ON CONFLICT waited for
        // any other transaction that held one of them, and this statement's fresh
        // snapshot sees its result.
        let skipped: Vec<usize> = written
            .iter()
            .copied()
            .filter(|&index| results[index].is_none())
            .collect();
        let skipped_routes: Vec<&str> = skipped.iter().map(|&i| jobs[i].route.as_str()).collect();
        let skipped_ids: Vec<&str> = skipped
            .iter()
            .map(|&i| jobs[i].delivery_id.as_str())
            .collect();
        let existing = sqlx::query(
            r#"
            SELECT j.id, j.route, j.delivery_id
              FROM UNNEST($1::TEXT[], $2::TEXT[]) AS k (route, delivery_id)
              JOIN jobs j ON j.route = k.route AND j.delivery_id = k.delivery_id
            "#,
        )
        .bind(&skipped_routes)
        .bind(&skipped_ids)
        .fetch_all(&mut *tx)
        .await?;
        for row in &existing {
            let index = index_of(&first_of, row)?;
            results[index] = Some(Enqueued::Duplicate(JobId(row.try_get("id")?)));
        }
        // A skipped key is missing only if its row was deleted (by an operator, redaction
        // or retention) between the two statements. Roll back (dropping `tx` does) and
        // fail the batch, as the row-by-row insert did: write_loop then writes each
        // request on its own, when the key can be stored anew.
        if written.iter().any(|&index| results[index].is_none()) {
            return Err(StoreError::Database(sqlx::Error::RowNotFound));
        }
    }
    if accepted_any {
        notify(&mut tx).await?;
    }
    tx.commit().await?;
    // Later occurrences of a key answer with the id its first occurrence got.
    for (index, &first_index) in first.iter().enumerate() {
        if first_index != index {
            results[index] = match results[first_index] {
                Some(Enqueued::Accepted(id) | Enqueued::Duplicate(id)) => {
                    Some(Enqueued::Duplicate(id))
                }
                None => None,
            };
        }
    }
    results
        .into_iter()
        .map(|result| {
            result.ok_or_else(|| StoreError::Corrupt("a webhook in a batch was not written".into()))
        })
        .collect()
}

/// Which webhook of the batch a returned `(route, delivery_id)` row belongs to.
fn index_of(first_of: &HashMap<(&str, &str), usize>, row: &PgRow) -> Result<usize, StoreError> {
    let route: &str = row.try_get("route")?;
    let delivery_id: &str = row.try_get("delivery_id")?;
    first_of.get(&(route, delivery_id)).copied().ok_or_else(|| {
        StoreError::Corrupt("the store returned a key the batch did not write".into())
    })
}
