//! The embedded SQLite backend (one replica).
//!
//! Durability: WAL with `synchronous = FULL`, so a commit returns only after its fsync;
//! the only exception is a commit that carries no webhook, only the worker's claims and
//! endings (see [`sync_for`]).
//! SQLite has one write lock and every commit costs an fsync, so the backend has exactly
//! one writer: a task fed by a channel that carries every hot-path write — webhooks to
//! store, claims of due jobs, and the endings of delivered jobs. Whatever waits in the
//! channel while a commit is under way is written together in the next transaction
//! (group commit), and each request is answered only when the commit that carries it has
//! returned. One fsync thus carries every webhook waiting for it *and* the worker's
//! bookkeeping, instead of the worker's claims and finishes each taking the write lock
//! and an fsync of their own ahead of ingest (see docs/benchmarks.md). Rare operator
//! writes (replay, delete, redaction, retention) use the pool directly; SQLite serialises
//! them with the writer through its own lock.

use std::{
    collections::BTreeMap,
    path::Path,
    str::FromStr,
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use sqlx::{
    Row, Sqlite, SqliteConnection,
    pool::PoolConnection,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
        SqliteSynchronous,
    },
};
use tokio::sync::{mpsc, oneshot};

use super::{
    ContactLink, Enqueued, Finish, Job, JobChange, JobFilter, JobId, JobState, NewJob, StateCounts,
    StoreError, from_millis, to_millis,
};

/// Most requests written in one transaction; bounds the time one commit can take.
const MAX_BATCH: usize = 512;
/// Requests waiting for the writer; beyond this, callers wait (back-pressure).
const QUEUE_DEPTH: usize = 4096;
/// How long a statement waits for SQLite's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pooled connections: the writer's, plus readers (worker lookups, admin, readiness).
/// Each holds its own page cache, so more would cost memory without adding writes.
const POOL_SIZE: u32 = 3;
/// Page cache per connection, in KiB (SQLite's `cache_size` takes a negative KiB
/// count). The hot pages are the recent tail of `jobs` and its indexes; 2 MiB each
/// (SQLite's default) mostly held cold pages and showed up in peak RSS.
const CACHE_KIB: i64 = 1024;

/// One write for the writer task.
enum Op {
    /// Store one request's webhooks; answered with one result per job, in order.
    Enqueue(Vec<NewJob>),
    /// Claim up to `max` due jobs, leasing them until `lease_until_ms`.
    Claim {
        now_ms: i64,
        lease_until_ms: i64,
        max: usize,
    },
    /// End one claim.
    Finish(Box<FinishOp>),
}

/// What the writer answers to an [`Op`], variant for variant.
enum Answer {
    Enqueued(Vec<Enqueued>),
    Claimed(Vec<Job>),
    Finished(bool),
}

type Request = (Op, oneshot::Sender<Result<Answer, StoreError>>);

/// Everything the writer needs to end one claim; owned, so it can wait in the channel.
struct FinishOp {
    id: JobId,
    attempts: u32,
    route: String,
    contact_id: Option<String>,
    contact_updated_at: Option<i64>,
    finish: Finish,
    now_ms: i64,
}

/// A SQLite-backed store; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: mpsc::Sender<Request>,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            url: url.to_string(),
            reason,
        };
        create_parent_dir(url).map_err(open_error)?;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| {
                open_error(format!(
                    "{e}; use sqlite://PATH, e.g. sqlite://data/bridge.db"
                ))
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("cache_size", format!("-{CACHE_KIB}"));
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let (writer, requests) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_loop(pool.clone(), requests));
        Ok(Self { pool, writer })
    }

    /// Sends `op` to the writer and waits for the commit that carries it.
    async fn write(&self, op: Op) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send((op, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        self.enqueue_many(vec![job])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("the writer answered no result".into()))
    }

    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        match self.write(Op::Enqueue(jobs)).await? {
            Answer::Enqueued(results) => Ok(results),
            _ => Err(wrong_answer()),
        }
    }

    pub async fn claim(&self, now: SystemTime, lease: Duration) -> Result<Option<Job>, StoreError> {
        Ok(self.claim_many(now, lease, 1).await?.pop())
    }

    pub async fn claim_many(
        &self,
        now: SystemTime,
        lease: Duration,
        max: usize,
    ) -> Result<Vec<Job>, StoreError> {
        let op = Op::Claim {
            now_ms: to_millis(now),
            lease_until_ms: to_millis(now + lease),
            max,
        };
        match self.write(op).await? {
            Answer::Claimed(jobs) => Ok(jobs),
            _ => Err(wrong_answer()),
        }
    }

    pub async fn finish(
        &self,
        job: &Job,
        finish: Finish,
        now: SystemTime,
    ) -> Result<bool, StoreError> {
        let op = FinishOp {
            id: job.id,
            attempts: job.attempts,
            route: job.route.clone(),
            contact_id: job.contact_id.clone(),
            contact_updated_at: job.contact_updated_at,
            finish,
            now_ms: to_millis(now),
        };
        match self.write(Op::Finish(Box::new(op))).await? {
            Answer::Finished(applied) => Ok(applied),
            _ => Err(wrong_answer()),
        }
    }

    pub async fn contact(&self, route: &str, contact_id: &str) -> Result<ContactLink, StoreError> {
        let row = sqlx::query(
            r#"SELECT customer_id, applied_updated_at, source_tags FROM contacts WHERE route = ?1 AND contact_id = ?2"#,
        )
        .bind(route)
        .bind(contact_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => {
                let tags: Option<String> = row.try_get("source_tags")?;
                ContactLink {
                    customer_id: row.try_get("customer_id")?,
                    applied_updated_at: row.try_get("applied_updated_at")?,
                    source_tags: tags
                        .map(|tags| serde_json::from_str(&tags))
                        .transpose()
                        .map_err(|e| {
                            StoreError::Corrupt(format!("contact tags are not a JSON list: {e}"))
                        })?,
                }
            }
            None => ContactLink::default(),
        })
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
            INSERT INTO contacts (route, contact_id, source_tags, updated_at) VALUES (?1, ?2, ?3, ?4)
            ON CONFLICT (route, contact_id) DO UPDATE SET
                source_tags = excluded.source_tags, updated_at = excluded.updated_at
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
        let mut conn = begin(self.pool.acquire().await?).await?;
        let deleted = delete_contacts(&mut conn, route, contact_ids).await;
        Ok(end(conn, deleted).await?.0)
    }

    pub async fn redact_tenant(&self, route: &str, tenant: &str) -> Result<u64, StoreError> {
        let mut conn = begin(self.pool.acquire().await?).await?;
        let deleted = delete_tenant(&mut conn, route, tenant).await;
        Ok(end(conn, deleted).await?.0)
    }

    pub async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(r#"SELECT * FROM jobs WHERE id = ?1"#)
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
        let row = sqlx::query(r#"SELECT * FROM jobs WHERE route = ?1 AND delivery_id = ?2"#)
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
        let rows = sqlx::query(
            r#"SELECT * FROM jobs
                WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR route = ?2)
                  AND (?3 IS NULL OR created_at >= ?3) AND (?4 IS NULL OR id < ?4)
                ORDER BY id DESC
                LIMIT ?5"#,
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
        let affected = sqlx::query(
            r#"UPDATE jobs
                  SET state = 'pending', attempts = 0, next_attempt_at = ?1, lease_until = NULL,
                      replayed_at = ?1, updated_at = ?1
                WHERE id = ?2 AND state <> 'in_flight'"#,
        )
        .bind(now_ms)
        .bind(id.0)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if affected > 0 {
            return Ok(JobChange::Applied);
        }
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
                    WHERE id > ?1 AND id <= ?2 AND state <> 'in_flight'
                      AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR route = ?4)
                      AND (?5 IS NULL OR created_at >= ?5)
                    ORDER BY id
                    LIMIT ?6"#,
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
            replayed += sqlx::query(
                r#"UPDATE jobs
                      SET state = 'pending', attempts = 0, next_attempt_at = ?1, lease_until = NULL,
                          replayed_at = ?1, updated_at = ?1
                    WHERE id >= ?2 AND id <= ?3 AND state <> 'in_flight'
                      AND (?4 IS NULL OR state = ?4) AND (?5 IS NULL OR route = ?5)
                      AND (?6 IS NULL OR created_at >= ?6)"#,
            )
            .bind(now_ms)
            .bind(first)
            .bind(last)
            .bind(filter.state.map(JobState::as_str))
            .bind(filter.route.as_deref())
            .bind(filter.since.map(to_millis))
            .execute(&self.pool)
            .await?
            .rows_affected();
            after = last;
        }
        Ok(replayed)
    }

    pub async fn delete_job(&self, id: JobId) -> Result<JobChange, StoreError> {
        let affected = sqlx::query(r#"DELETE FROM jobs WHERE id = ?1 AND state <> 'in_flight'"#)
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
        let exists: Option<i64> = sqlx::query_scalar(r#"SELECT id FROM jobs WHERE id = ?1"#)
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
        let deleted = sqlx::query(
            r#"DELETE FROM jobs WHERE id IN (
                   SELECT id FROM jobs WHERE state = 'done' AND updated_at < ?1 LIMIT ?2)"#,
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

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn upsert_contact(
    conn: &mut SqliteConnection,
    route: &str,
    contact_id: &str,
    customer_id: Option<&str>,
    applied_at: Option<i64>,
    now_ms: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        r#"
        INSERT INTO contacts (route, contact_id, customer_id, applied_updated_at, updated_at)
        VALUES (?1, ?2, ?3, ?4, ?5)
        ON CONFLICT (route, contact_id) DO UPDATE SET
            customer_id = COALESCE(excluded.customer_id, contacts.customer_id),
            applied_updated_at = CASE
                WHEN excluded.applied_updated_at IS NULL THEN contacts.applied_updated_at
                WHEN contacts.applied_updated_at IS NULL THEN excluded.applied_updated_at
                ELSE MAX(contacts.applied_updated_at, excluded.applied_updated_at) END,
            updated_at = excluded.updated_at
        "#,
    )
    .bind(route)
    .bind(contact_id)
    .bind(customer_id)
    .bind(applied_at)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn wrong_answer() -> StoreError {
    StoreError::Corrupt("the store's writer answered a different kind of request".into())
}

/// The group-commit writer: drains whatever is waiting, writes it in one transaction,
/// answers each request after the commit. Ends when every sender is gone or the pool is
/// closed.
///
/// It keeps one pooled connection for itself. SQLite drops a connection's page cache
/// whenever another connection has written, so a writer that took whichever connection
/// was free re-read the pages it writes (the tail of `jobs` and its indexes) from the
/// OS on every commit; profiled, those copies cost more CPU than SQLite's own work.
async fn write_loop(pool: SqlitePool, mut requests: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    let mut held: Option<(PoolConnection<Sqlite>, Durability)> = None;
    let closed = pool.close_event();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            received = requests.recv_many(&mut batch, MAX_BATCH) => if received == 0 { break },
            // `close` waits for every connection to come back: give ours back.
            () = &mut closed => break,
        }
        // Endings first, claims last: a finish can free the next job of its contact,
        // which a claim in the same commit may then take. Webhooks keep arrival order.
        batch.sort_by_key(|(op, _)| match op {
            Op::Enqueue(_) => 0,
            Op::Finish(_) => 1,
            Op::Claim { .. } => 2,
        });
        let webhooks: usize = batch
            .iter()
            .map(|(op, _)| match op {
                Op::Enqueue(jobs) => jobs.len(),
                _ => 0,
            })
            .sum();
        let started = Instant::now();
        let ops: Vec<&Op> = batch.iter().map(|(op, _)| op).collect();
        let committed = apply(&pool, &mut held, &ops, sync_for(webhooks)).await;
        if webhooks > 0 {
            crate::metrics::store_commit(webhooks, started.elapsed());
        }
        match committed {
            Ok(answers) => {
                for ((_, reply), answer) in batch.drain(..).zip(answers) {
                    // A requester that gave up (timed out) no longer listens; its writes
                    // are committed all the same (a retried webhook is then a duplicate,
                    // an unheard claim's lease runs out).
                    let _ignored = reply.send(Ok(answer));
                }
            }
            Err(error) if batch.len() > 1 => {
                // One request the database refuses (or a fault such as a full disk) must
                // not fail the others with it: write each alone, so only the refused
                // ones are answered with an error (ingest then answers 503).
                tracing::warn!(error = %error, batch = batch.len(), "A group commit failed; writing its requests one by one.");
                for (op, reply) in batch.drain(..) {
                    let sync = sync_for(usize::from(matches!(op, Op::Enqueue(_))));
                    let answer =
                        apply(&pool, &mut held, &[&op], sync)
                            .await
                            .and_then(|mut answers| {
                                answers.pop().ok_or_else(|| {
                                    StoreError::Corrupt("the writer produced no answer".into())
                                })
                            });
                    if let Err(error) = &answer {
                        log_refused(&op, error);
                    }
                    let _ignored = reply.send(answer);
                }
            }
            Err(error) => {
                for (op, reply) in batch.drain(..) {
                    log_refused(&op, &error);
                    let _ignored = reply.send(Err(super::commit_failed(&error)));
                }
            }
        }
    }
}

/// Webhooks the store refused are logged here (ingest only answers 503); the worker logs
/// its own failed claims and finishes.
fn log_refused(op: &Op, error: &StoreError) {
    if let Op::Enqueue(jobs) = op {
        tracing::error!(error = %error, webhooks = jobs.len(), "Failed to commit webhooks to the store; they were answered 503.");
    }
}

/// How a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// fsync before the commit returns (`synchronous = FULL`, the connections' setting).
    Full,
    /// No fsync (`synchronous = NORMAL`): survives a crash of the process, not a power
    /// cut; the next `Full` commit fsyncs the WAL and makes it durable with it.
    Normal,
}

/// A commit that stores webhooks is acknowledged to their providers, so it is fsync'd
/// (`Full`). One that carries only the worker's claims and endings is not: losing it to
/// a power cut only makes the worker send those deliveries again, which at-least-once
/// delivery already allows (a repeated create is answered 409 and linked), while an
/// fsync per claim would cap delivery at one batch per fsync (see docs/benchmarks.md).
fn sync_for(webhooks: usize) -> Durability {
    if webhooks > 0 {
        Durability::Full
    } else {
        Durability::Normal
    }
}

/// Starts a write transaction on a pooled connection of its own.
///
/// Not sqlx's `Transaction`: when SQLite fails a `COMMIT` (a full disk, an I/O error) it
/// keeps the transaction open, and a connection that went back to the pool inside it
/// made every later `BEGIN … COMMIT` on it a silent no-op — webhooks answered 200 that
/// were never written — while holding the write lock against the other connections.
/// [`end`] rolls back and closes the connection instead whenever anything failed.
async fn begin(mut conn: PoolConnection<Sqlite>) -> Result<PoolConnection<Sqlite>, StoreError> {
    // IMMEDIATE takes the write lock now, so the transaction never has to upgrade a read
    // snapshot to a write (which SQLite refuses when another commit came in between).
    match sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        Ok(_) => Ok(conn),
        Err(error) => {
            discard(conn).await;
            Err(error.into())
        }
    }
}

/// Commits the transaction [`begin`] opened when `work` succeeded and hands the
/// connection back; otherwise, or when the commit fails, rolls it back and closes the
/// connection so nothing of it is reused.
async fn end<T>(
    mut conn: PoolConnection<Sqlite>,
    work: Result<T, StoreError>,
) -> Result<(T, PoolConnection<Sqlite>), StoreError> {
    let value = match work {
        Ok(value) => value,
        Err(error) => {
            discard(conn).await;
            return Err(error);
        }
    };
    if let Err(error) = sqlx::query("COMMIT").execute(&mut *conn).await {
        discard(conn).await;
        return Err(error.into());
    }
    Ok((value, conn))
}

/// Rolls back whatever the connection holds and closes it; the pool opens a fresh one.
async fn discard(mut conn: PoolConnection<Sqlite>) {
    // Either may fail on a broken disk; the connection is gone afterwards regardless.
    let _ignored = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    let _ignored = conn.close().await;
}

async fn delete_contacts(
    conn: &mut SqliteConnection,
    route: &str,
    contact_ids: &[String],
) -> Result<u64, StoreError> {
    let mut deleted = 0;
    for contact_id in contact_ids {
        deleted += sqlx::query(r#"DELETE FROM jobs WHERE route = ?1 AND contact_id = ?2"#)
            .bind(route)
            .bind(contact_id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        sqlx::query(r#"DELETE FROM contacts WHERE route = ?1 AND contact_id = ?2"#)
            .bind(route)
            .bind(contact_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(deleted)
}

async fn delete_tenant(
    conn: &mut SqliteConnection,
    route: &str,
    tenant: &str,
) -> Result<u64, StoreError> {
    // Links first: they are found through the jobs about to be deleted.
    sqlx::query(
        r#"DELETE FROM contacts WHERE route = ?1 AND contact_id IN (
               SELECT contact_id FROM jobs
                WHERE route = ?1 AND contact_id IS NOT NULL
                  AND lower(json_extract(meta, '$.shop_domain')) = lower(?2))"#,
    )
    .bind(route)
    .bind(tenant)
    .execute(&mut *conn)
    .await?;
    let deleted = sqlx::query(
        r#"DELETE FROM jobs WHERE route = ?1 AND lower(json_extract(meta, '$.shop_domain')) = lower(?2)"#,
    )
    .bind(route)
    .bind(tenant)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(deleted)
}

/// Writes `ops` in one transaction and commits it; one answer per op, in order.
/// `held` is the writer's own connection, taken from the pool on first use and again
/// after a failure closed it.
async fn apply(
    pool: &SqlitePool,
    held: &mut Option<(PoolConnection<Sqlite>, Durability)>,
    ops: &[&Op],
    sync: Durability,
) -> Result<Vec<Answer>, StoreError> {
    // A fresh connection fsyncs (the pool's setting). The writer's connection goes back
    // to the pool only when the pool closes, or is closed after a failure, so no other
    // user ever commits with the setting it left behind.
    let (mut conn, current) = match held.take() {
        Some(held) => held,
        None => (pool.acquire().await?, Durability::Full),
    };
    if sync != current {
        let pragma = match sync {
            Durability::Full => "PRAGMA synchronous = FULL",
            Durability::Normal => "PRAGMA synchronous = NORMAL",
        };
        if let Err(error) = sqlx::query(pragma).execute(&mut *conn).await {
            discard(conn).await;
            return Err(error.into());
        }
    }
    let mut conn = begin(conn).await?;
    let answers = apply_in(&mut conn, ops).await;
    let (answers, conn) = end(conn, answers).await?;
    *held = Some((conn, sync));
    Ok(answers)
}

async fn apply_in(conn: &mut SqliteConnection, ops: &[&Op]) -> Result<Vec<Answer>, StoreError> {
    let now = to_millis(SystemTime::now());
    let mut answers = Vec::with_capacity(ops.len());
    for op in ops {
        answers.push(match op {
            Op::Enqueue(jobs) => Answer::Enqueued(insert_jobs(conn, jobs, now).await?),
            Op::Claim {
                now_ms,
                lease_until_ms,
                max,
            } => {
                let mut claimed = Vec::new();
                // Each claim sees the ones before it in this transaction, so two jobs of
                // one contact are never claimed together.
                while claimed.len() < *max {
                    match claim_one(conn, *now_ms, *lease_until_ms).await? {
                        Some(job) => claimed.push(job),
                        None => break,
                    }
                }
                Answer::Claimed(claimed)
            }
            Op::Finish(op) => Answer::Finished(finish_one(conn, op).await?),
        });
    }
    Ok(answers)
}

async fn insert_jobs(
    conn: &mut SqliteConnection,
    jobs: &[NewJob],
    now: i64,
) -> Result<Vec<Enqueued>, StoreError> {
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let meta = serde_json::to_string(&job.meta)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode job meta: {e}")))?;
        let inserted = sqlx::query(
            r#"
            INSERT INTO jobs (route, source, delivery_id, topic, contact_id, contact_updated_at,
                              meta, payload, state, attempts, next_attempt_at, created_at, updated_at,
                              blocked)
            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9, ?9, ?9,
                    -- Queued behind an unfinished job of the same contact (every stored job
                    -- is older than this one); see migrations/sqlite/0004_blocked_jobs.sql.
                    ?5 IS NOT NULL AND EXISTS (
                        SELECT 1 FROM jobs o WHERE o.route = ?1 AND o.contact_id = ?5
                           AND (o.state = 'in_flight' OR (o.state = 'pending' AND o.deferred = 0))))
            ON CONFLICT (route, delivery_id) DO NOTHING
            RETURNING id
            "#,
        )
        .bind(&job.route)
        .bind(&job.source)
        .bind(&job.delivery_id)
        .bind(&job.topic)
        .bind(job.contact_id.as_deref())
        .bind(job.contact_updated_at)
        .bind(meta)
        .bind(job.payload.as_ref())
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
        let result = match inserted {
            Some(row) => Enqueued::Accepted(JobId(row.try_get("id")?)),
            None => {
                let existing: i64 = sqlx::query_scalar(
                    r#"SELECT id FROM jobs WHERE route = ?1 AND delivery_id = ?2"#,
                )
                .bind(&job.route)
                .bind(&job.delivery_id)
                .fetch_one(&mut *conn)
                .await?;
                Enqueued::Duplicate(JobId(existing))
            }
        };
        results.push(result);
    }
    Ok(results)
}

/// Claims the earliest claimable job, if any.
async fn claim_one(
    conn: &mut SqliteConnection,
    now_ms: i64,
    lease_until_ms: i64,
) -> Result<Option<Job>, StoreError> {
    // One statement, so the check-and-claim is atomic. A job is claimable when it is due
    // (or its lease ran out) and no other job of the same contact is leased or older and
    // unfinished: one job per contact, in order. A deferred job (a partial update waiting
    // for its contact's create) holds nothing back, or the create it waits for could
    // never run.
    // Due jobs and expired leases are looked up separately and the earlier one taken:
    // one `state = … OR state = …` filter kept SQLite from walking `jobs_due` in order,
    // so every claim sorted the whole backlog (seconds per claim at 1,000,000 queued
    // jobs, and ~100 MB of sort memory; see docs/benchmarks.md). Pending jobs queued
    // behind their contact (`blocked`) are skipped through `jobs_ready` rather than
    // checked one by one, and the contact check is two indexed probes (in flight; older
    // and pending), not one `OR` that scanned all of the contact's jobs.
    let row = sqlx::query(
        r#"
        UPDATE jobs
           SET state = 'in_flight', lease_until = ?1, attempts = attempts + 1, updated_at = ?2
         WHERE id = (
            SELECT id FROM (
                SELECT id, next_attempt_at FROM (
                    SELECT j.id, j.next_attempt_at FROM jobs j
                     WHERE j.state = 'pending' AND j.blocked = 0 AND j.next_attempt_at <= ?2
                       AND (j.contact_id IS NULL OR (NOT EXISTS (
                                SELECT 1 FROM jobs o
                                 WHERE o.route = j.route AND o.contact_id = j.contact_id
                                   AND o.state = 'in_flight' AND o.id <> j.id
                                   AND (o.lease_until > ?2 OR o.id < j.id))
                            AND NOT EXISTS (
                                SELECT 1 FROM jobs o
                                 WHERE o.route = j.route AND o.contact_id = j.contact_id
                                   AND o.state = 'pending' AND o.deferred = 0 AND o.id < j.id)))
                     ORDER BY j.next_attempt_at, j.id
                     LIMIT 1)
                UNION ALL
                SELECT id, next_attempt_at FROM (
                    SELECT j.id, j.next_attempt_at FROM jobs j
                     WHERE j.state = 'in_flight' AND j.lease_until <= ?2
                       AND (j.contact_id IS NULL OR (NOT EXISTS (
                                SELECT 1 FROM jobs o
                                 WHERE o.route = j.route AND o.contact_id = j.contact_id
                                   AND o.state = 'in_flight' AND o.id <> j.id
                                   AND (o.lease_until > ?2 OR o.id < j.id))
                            AND NOT EXISTS (
                                SELECT 1 FROM jobs o
                                 WHERE o.route = j.route AND o.contact_id = j.contact_id
                                   AND o.state = 'pending' AND o.deferred = 0 AND o.id < j.id)))
                     ORDER BY j.next_attempt_at, j.id
                     LIMIT 1))
             ORDER BY next_attempt_at, id
             LIMIT 1)
        RETURNING *
        "#,
    )
    .bind(lease_until_ms)
    .bind(now_ms)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(job_from_row).transpose()
}

/// Ends one claim. Every ending is one fenced update: it applies only to the claim the
/// worker holds (id, attempts) while the job is still in flight; false when it had been
/// lost, and then nothing is written.
async fn finish_one(conn: &mut SqliteConnection, op: &FinishOp) -> Result<bool, StoreError> {
    let now_ms = op.now_ms;
    let ending = op.finish.ending(now_ms);
    let affected = sqlx::query(
        r#"UPDATE jobs
              SET state = ?1, outcome = ?2, customer_id = COALESCE(?3, customer_id), last_error = ?4,
                  next_attempt_at = COALESCE(?5, next_attempt_at), lease_until = NULL, updated_at = ?6,
                  deferred = ?9, attempts = attempts - ?10
            WHERE id = ?7 AND attempts = ?8 AND state = 'in_flight'"#,
    )
    .bind(ending.state)
    .bind(ending.outcome)
    .bind(ending.customer_id)
    .bind(ending.last_error)
    .bind(ending.next_attempt_at)
    .bind(now_ms)
    .bind(op.id.0)
    .bind(i64::from(op.attempts))
    .bind(i64::from(ending.deferred))
    .bind(i64::from(ending.gives_back_attempt))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if affected == 0 {
        return Ok(false);
    }
    if let Some(contact_id) = &op.contact_id {
        match &op.finish {
            Finish::Done { link, applied, .. } if link.is_some() || *applied => {
                let applied_at = if *applied {
                    op.contact_updated_at
                } else {
                    None
                };
                upsert_contact(
                    conn,
                    &op.route,
                    contact_id,
                    link.as_deref(),
                    applied_at,
                    now_ms,
                )
                .await?;
                if link.is_some() {
                    // Partial updates that waited for this contact's link are due now.
                    // INDEXED BY: without statistics SQLite prefers `jobs_by_contact`,
                    // which walks every pending job of the contact to find the deferred.
                    sqlx::query(
                        r#"UPDATE jobs INDEXED BY jobs_deferred SET next_attempt_at = ?1
                            WHERE route = ?2 AND contact_id = ?3 AND state = 'pending' AND deferred = 1"#,
                    )
                    .bind(now_ms)
                    .bind(&op.route)
                    .bind(contact_id)
                    .execute(&mut *conn)
                    .await?;
                }
            }
            Finish::Unlink { .. } => {
                sqlx::query(
                    r#"UPDATE contacts SET customer_id = NULL, updated_at = ?1
                        WHERE route = ?2 AND contact_id = ?3"#,
                )
                .bind(now_ms)
                .bind(&op.route)
                .bind(contact_id)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
    }
    Ok(true)
}

fn job_from_row(row: &SqliteRow) -> Result<Job, StoreError> {
    let meta: String = row.try_get("meta")?;
    let meta: BTreeMap<String, String> = serde_json::from_str(&meta)
        .map_err(|e| StoreError::Corrupt(format!("job meta is not a JSON object: {e}")))?;
    let payload: Vec<u8> = row.try_get("payload")?;
    let attempts: i64 = row.try_get("attempts")?;
    Ok(Job {
        id: JobId(row.try_get("id")?),
        route: row.try_get("route")?,
        source: row.try_get("source")?,
        delivery_id: row.try_get("delivery_id")?,
        topic: row.try_get("topic")?,
        contact_id: row.try_get("contact_id")?,
        contact_updated_at: row.try_get("contact_updated_at")?,
        meta,
        payload: Bytes::from(payload),
        state: JobState::parse(row.try_get("state")?)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: from_millis(row.try_get("next_attempt_at")?),
        outcome: row.try_get("outcome")?,
        customer_id: row.try_get("customer_id")?,
        last_error: row.try_get("last_error")?,
        created_at: from_millis(row.try_get("created_at")?),
        replayed_at: row
            .try_get::<Option<i64>, _>("replayed_at")?
            .map(from_millis),
    })
}

/// Creates the directory of a `sqlite://` file so a fresh container or checkout just works.
fn create_parent_dir(url: &str) -> Result<(), String> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/q.db", dir.path().display());
        (SqliteStore::open(&url).await.unwrap(), dir)
    }

    fn new_job(delivery: &str, contact: Option<&str>, updated: Option<i64>) -> NewJob {
        NewJob {
            route: "acme".into(),
            source: "shopify".into(),
            delivery_id: delivery.into(),
            topic: "customers/create".into(),
            contact_id: contact.map(str::to_string),
            contact_updated_at: updated,
            meta: BTreeMap::from([("shop_domain".into(), "a.myshopify.com".into())]),
            payload: Bytes::from_static(b"{}"),
        }
    }

    const LEASE: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn the_same_delivery_id_is_stored_once_even_within_one_batch() {
        let (store, _dir) = store().await;
        let (a, b) = tokio::join!(
            store.enqueue(new_job("d1", Some("c1"), None)),
            store.enqueue(new_job("d1", Some("c1"), None))
        );
        let mut results = [a.unwrap(), b.unwrap()];
        results.sort_by_key(|r| matches!(r, Enqueued::Duplicate(_)));
        let Enqueued::Accepted(id) = results[0] else {
            panic!("{results:?}")
        };
        assert_eq!(results[1], Enqueued::Duplicate(id));
        assert_eq!(store.counts().await.unwrap().pending, 1);
    }

    #[tokio::test]
    async fn redaction_deletes_a_contacts_or_a_shops_jobs_and_links_only() {
        let (store, _dir) = store().await;
        let mut other_shop = new_job("d3", Some("c3"), None);
        other_shop.meta = BTreeMap::from([("shop_domain".into(), "b.myshopify.com".into())]);
        for job in [
            new_job("d1", Some("c1"), None),
            new_job("d2", Some("c2"), None),
            other_shop,
        ] {
            store.enqueue(job).await.unwrap();
        }
        store
            .remember_tags("acme", "c1", &["vip".into()])
            .await
            .unwrap();
        assert_eq!(
            store.contact("acme", "c1").await.unwrap().source_tags,
            Some(vec!["vip".to_string()])
        );

        assert_eq!(
            store.redact_contacts("acme", &["c1".into()]).await.unwrap(),
            1
        );
        assert!(store.job_by_delivery("acme", "d1").await.unwrap().is_none());
        assert_eq!(
            store.contact("acme", "c1").await.unwrap(),
            ContactLink::default()
        );
        assert!(store.job_by_delivery("acme", "d2").await.unwrap().is_some());

        assert_eq!(
            store
                .redact_tenant("acme", "A.myshopify.com")
                .await
                .unwrap(),
            1
        );
        assert!(store.job_by_delivery("acme", "d2").await.unwrap().is_none());
        assert!(store.job_by_delivery("acme", "d3").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn one_requests_jobs_are_committed_together_and_answered_in_order() {
        let (store, _dir) = store().await;
        store.enqueue(new_job("b", None, None)).await.unwrap();
        let results = store
            .enqueue_many(vec![
                new_job("a", None, None),
                new_job("b", None, None),
                new_job("c", None, None),
            ])
            .await
            .unwrap();
        assert!(matches!(results[0], Enqueued::Accepted(_)));
        assert!(matches!(results[1], Enqueued::Duplicate(_)));
        assert!(matches!(results[2], Enqueued::Accepted(_)));
        assert_eq!(store.counts().await.unwrap().pending, 3);
    }

    #[tokio::test]
    async fn the_pool_keeps_fsyncing_while_the_writer_commits_bookkeeping_without() {
        let (store, _dir) = store().await;
        store
            .enqueue(new_job("d1", Some("c1"), None))
            .await
            .unwrap();
        // A claim and an ending alone are committed without an fsync (`Durability::Normal`),
        // on the writer's own connection.
        let job = store
            .claim(SystemTime::now(), LEASE)
            .await
            .unwrap()
            .unwrap();
        let finish = Finish::Done {
            outcome: "created",
            link: None,
            applied: true,
            note: None,
        };
        assert!(store.finish(&job, finish, SystemTime::now()).await.unwrap());
        // Every other connection (the writer keeps one) still fsyncs its commits.
        let mut held = Vec::new();
        for _ in 1..POOL_SIZE {
            let mut conn = store.pool.acquire().await.unwrap();
            let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(level, 2, "FULL");
            held.push(conn);
        }
        drop(held);
        // Closing the store gets the writer's connection back instead of waiting forever.
        tokio::time::timeout(Duration::from_secs(10), store.close())
            .await
            .expect("the writer returns its connection when the pool closes");
    }
}
