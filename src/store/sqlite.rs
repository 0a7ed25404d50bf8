//! The embedded SQLite backend (one replica).
//!
//! Durability: WAL with `synchronous = FULL`, so a commit returns only after its fsync;
//! the only exception is a commit that carries no webhook, only the worker's claims and
//! endings (see [`writer::sync_for`]).
//! SQLite has one write lock and every commit costs an fsync, so the backend has exactly
//! one writer, a thread of its own ([`writer`]) fed by a channel that carries every
//! hot-path write — webhooks to store, claims of due jobs, and the endings of delivered
//! jobs — and writes whatever is waiting in one group commit. One fsync thus carries every
//! webhook waiting for it *and* the worker's bookkeeping, instead of the worker's claims
//! and finishes each taking the write lock and an fsync of their own ahead of ingest (see
//! docs/benchmarks.md). Reads and rare operator writes (replay, delete, redaction,
//! retention) use a small sqlx pool; SQLite serialises those writes with the writer
//! through its own lock.

mod checkpoint;
mod writer;

use std::{
    path::Path,
    str::FromStr,
    time::{Duration, SystemTime},
};

use sqlx::{
    Row, Sqlite, SqliteConnection,
    pool::PoolConnection,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use self::writer::{Answer, FinishOp, Op, Staged, Writer};
use super::row::{contact_from_row, job_from_row};
use super::{
    ContactLink, Enqueued, Finish, Job, JobChange, JobFilter, JobId, JobState, NewJob, StateCounts,
    StoreError, from_millis, to_millis,
};

/// How long a statement waits for SQLite's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pooled connections, besides the writer's own: readers (worker lookups, admin,
/// readiness) and operator writes. Each holds its own page cache, so more would cost
/// memory without adding writes.
const POOL_SIZE: u32 = 2;
/// Page cache per connection, in KiB (SQLite's `cache_size` takes a negative KiB
/// count). The hot pages are the recent tail of `jobs` and its indexes; 2 MiB each
/// (SQLite's default) mostly held cold pages and showed up in peak RSS.
const CACHE_KIB: i64 = 1024;

/// A SQLite-backed store; cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: Writer,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let open_error = |reason: String| StoreError::Open {
            url: url.to_string(),
            reason,
        };
        create_parent_dir(url).map_err(open_error)?;
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(open_error(
                "an in-memory database loses every webhook on a restart; use a file, \
                 sqlite://PATH, e.g. sqlite://data/bridge.db"
                    .into(),
            ));
        }
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
        let path = options.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect_with(options)
            .await
            .map_err(|e| open_error(e.to_string()))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migrate(e.to_string()))?;
        let writer = Writer::start(path).map_err(|e| open_error(e.to_string()))?;
        Ok(Self { pool, writer })
    }

    /// Sends `op` to the writer and waits for the commit that carries it.
    async fn write(&self, op: Op) -> Result<Answer, StoreError> {
        self.writer.write(op).await
    }

    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued, StoreError> {
        self.enqueue_many(vec![job])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt("the writer answered no result".into()))
    }

    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        let staged = jobs
            .into_iter()
            .map(Staged::new)
            .collect::<Result<Vec<_>, _>>()?;
        match self.write(Op::Enqueue(staged)).await? {
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
        let row = sqlx::query(CONTACT_QUERY)
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
        // Through the writer, like the ending of the delivery it belongs to: on the pool
        // it was a transaction and an fsync of its own per delivery, taking the write
        // lock from the writer's group commits.
        let op = Op::RememberTags {
            route: route.to_string(),
            contact_id: contact_id.to_string(),
            tags,
            now_ms: to_millis(SystemTime::now()),
        };
        match self.write(op).await? {
            Answer::Remembered => Ok(()),
            _ => Err(wrong_answer()),
        }
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

    /// Waits for the writer to commit what it was given and close its connection, then
    /// closes the pool.
    pub async fn close(&self) {
        // `Closed` when another clone closed the store first: nothing left to wait for.
        let _closed = self.write(Op::Close).await;
        self.pool.close().await;
    }
}

fn wrong_answer() -> StoreError {
    StoreError::Corrupt("the store's writer answered a different kind of request".into())
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

/// A contact's link, by route and contact id (`?1`, `?2`); read by the pool and by the
/// writer's claims alike.
const CONTACT_QUERY: &str = r#"SELECT customer_id, applied_updated_at, source_tags FROM contacts WHERE route = ?1 AND contact_id = ?2"#;

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
    use std::collections::BTreeMap;

    use bytes::Bytes;

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
    async fn an_in_memory_database_is_refused_with_what_to_use_instead() {
        let error = SqliteStore::open("sqlite::memory:").await.unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, StoreError::Open { .. }), "{message}");
        assert!(message.contains("sqlite://PATH"), "{message}");
    }

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
        // on the writer's own connection, which is not the pool's.
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
        // Every pooled connection still fsyncs its commits.
        let mut held = Vec::new();
        for _ in 0..POOL_SIZE {
            let mut conn = store.pool.acquire().await.unwrap();
            let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(level, 2, "FULL");
            held.push(conn);
        }
        drop(held);
        // Closing the store stops the writer; later writes are refused, not lost silently.
        tokio::time::timeout(Duration::from_secs(10), store.close())
            .await
            .expect("the writer stops when the store closes");
        assert!(matches!(
            store.enqueue(new_job("d2", Some("c1"), None)).await,
            Err(StoreError::Closed)
        ));
    }
}
