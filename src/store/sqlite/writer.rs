//! The SQLite store's single writer: a thread of its own that owns one connection and
//! writes every hot-path request — webhooks to store, claims of due jobs, endings of
//! delivered jobs and the tags they applied — in group commits.
//!
//! Whatever waits in the channel while a commit is under way is written together in the
//! next transaction, and each request is answered only when the commit that carries it
//! has returned, so one fsync carries every webhook waiting for it and the worker's
//! bookkeeping with it. The thread calls SQLite directly (rusqlite) rather than through
//! sqlx, which runs each connection on a thread of its own and hands every statement
//! and its result across through channels: two thread switches per statement, and a
//! group commit of 40 webhooks is ~45 statements. Profiled under ingest load, those
//! hand-offs cost more CPU than SQLite's own work (see docs/benchmarks.md).

use std::{
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use rusqlite::{CachedStatement, Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::{
    BUSY_TIMEOUT, CACHE_KIB,
    checkpoint::{BACKSTOP_PAGES, Checkpointer},
};
use crate::store::{ContactLink, Enqueued, Finish, Job, JobId, NewJob, StoreError, to_millis};

/// Most requests written in one transaction; bounds the time one commit can take.
const MAX_BATCH: usize = 512;
/// Requests waiting for the writer; beyond this, callers wait (back-pressure).
const QUEUE_DEPTH: usize = 4096;
/// Prepared statements kept per connection; the writer runs fewer distinct ones.
const STATEMENT_CACHE: usize = 16;

/// One write for the writer.
pub(super) enum Op {
    /// Store one request's webhooks; answered with one result per job, in order.
    Enqueue(Vec<Staged>),
    /// Claim up to `max` due jobs, leasing them until `lease_until_ms`.
    Claim {
        now_ms: i64,
        lease_until_ms: i64,
        max: usize,
    },
    /// End one claim.
    Finish(Box<FinishOp>),
    /// Remember the source tags last applied to a contact (JSON list).
    RememberTags {
        route: String,
        contact_id: String,
        tags: String,
        now_ms: i64,
    },
    /// Write what came before, close the connection and stop.
    Close,
}

/// What the writer answers to an [`Op`], variant for variant.
pub(super) enum Answer {
    Enqueued(Vec<Enqueued>),
    Claimed(Vec<Job>),
    Finished(bool),
    Remembered,
    Closed,
}

type Request = (Op, oneshot::Sender<Result<Answer, StoreError>>);

/// A webhook ready for the writer: its kept headers are encoded by the caller, on the
/// caller's task, because everything the writer does is done one request at a time
/// while the others wait for the commit.
pub(super) struct Staged {
    job: NewJob,
    meta: String,
}

impl Staged {
    pub fn new(job: NewJob) -> Result<Self, StoreError> {
        let meta = serde_json::to_string(&job.meta)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode job meta: {e}")))?;
        Ok(Self { job, meta })
    }
}

/// Everything the writer needs to end one claim; owned, so it can wait in the channel.
pub(super) struct FinishOp {
    pub id: JobId,
    pub attempts: u32,
    pub route: String,
    pub contact_id: Option<String>,
    pub contact_updated_at: Option<i64>,
    pub finish: Finish,
    pub now_ms: i64,
}

/// The sending side of the writer; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    requests: mpsc::Sender<Request>,
}

impl Writer {
    /// Starts the writer thread on the database file at `path` (already migrated). The
    /// connection is opened here, so a file the writer cannot open fails the start-up.
    pub fn start(path: PathBuf) -> Result<Self, StoreError> {
        let conn = open(&path)?;
        let checkpointer = Checkpointer::start(&path)?;
        let (requests, receiver) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(path, conn, checkpointer, receiver))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the store's writer: {e}")))?;
        Ok(Self { requests })
    }

    /// Sends `op` to the writer and waits for the commit that carries it.
    pub async fn write(&self, op: Op) -> Result<Answer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((op, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// The writer's connection and the durability it is set to.
struct Held {
    conn: Connection,
    durability: Durability,
}

/// Opens a connection for the writer or the checkpointer, set up like the pool's.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The same settings as the pool's connections (journal_mode = WAL is a property of
    // the file, set when the pool opened it), except that checkpoints are left to the
    // checkpointer (see checkpoint.rs).
    conn.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -{CACHE_KIB};
         PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES};"
    ))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// The writer thread: drains whatever is waiting, writes it in one transaction, answers
/// each request after the commit. Ends on [`Op::Close`] or when every sender is gone.
fn run(
    path: PathBuf,
    conn: Connection,
    checkpointer: Checkpointer,
    mut requests: mpsc::Receiver<Request>,
) {
    let mut held = Some(Held {
        conn,
        durability: Durability::Full,
    });
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while closing.is_none() && requests.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        if let Some(at) = batch.iter().position(|(op, _)| matches!(op, Op::Close)) {
            // Requests that came after the close are dropped unanswered (their senders
            // see `Closed`); those before it are written.
            closing = Some(batch.remove(at).1);
            batch.truncate(at);
        }
        // Endings first, claims last: a finish can free the next job of its contact,
        // which a claim in the same commit may then take. Webhooks keep arrival order.
        batch.sort_by_key(|(op, _)| match op {
            Op::Enqueue(_) => 0,
            Op::Finish(_) | Op::RememberTags { .. } => 1,
            Op::Claim { .. } | Op::Close => 2,
        });
        write_batch(&path, &mut held, &mut batch);
    }
    // Closing the connections here (the checkpointer's too), before answering, is what
    // lets `close` promise that the file is no longer in use when it returns.
    drop(held);
    drop(checkpointer);
    if let Some(reply) = closing {
        let _ignored = reply.send(Ok(Answer::Closed));
    }
}

/// Writes `batch` in one commit and answers each request; drains `batch`.
fn write_batch(path: &Path, held: &mut Option<Held>, batch: &mut Vec<Request>) {
    if batch.is_empty() {
        return;
    }
    let webhooks: usize = batch
        .iter()
        .map(|(op, _)| match op {
            Op::Enqueue(jobs) => jobs.len(),
            _ => 0,
        })
        .sum();
    let started = Instant::now();
    let ops: Vec<&Op> = batch.iter().map(|(op, _)| op).collect();
    let committed = apply(path, held, &ops, sync_for(webhooks));
    if webhooks > 0 {
        crate::metrics::store_commit(webhooks, started.elapsed());
    }
    match committed {
        Ok(answers) => {
            for ((_, reply), answer) in batch.drain(..).zip(answers) {
                // A requester that gave up (timed out) no longer listens; its writes are
                // committed all the same (a retried webhook is then a duplicate, an
                // unheard claim's lease runs out).
                let _ignored = reply.send(Ok(answer));
            }
        }
        Err(error) if batch.len() > 1 => {
            // One request the database refuses (or a fault such as a full disk) must not
            // fail the others with it: write each alone, so only the refused ones are
            // answered with an error (ingest then answers 503).
            tracing::warn!(error = %error, batch = batch.len(), "A group commit failed; writing its requests one by one.");
            for (op, reply) in batch.drain(..) {
                let sync = sync_for(usize::from(matches!(op, Op::Enqueue(_))));
                let answer = apply(path, held, &[&op], sync).and_then(|mut answers| {
                    answers
                        .pop()
                        .ok_or_else(|| StoreError::Corrupt("the writer produced no answer".into()))
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
                let _ignored = reply.send(Err(crate::store::commit_failed(&error)));
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
pub(super) enum Durability {
    /// fsync before the commit returns (`synchronous = FULL`, the connections' setting).
    Full,
    /// No fsync (`synchronous = NORMAL`): survives a crash of the process, not a power
    /// cut; the next `Full` commit fsyncs the WAL and makes it durable with it.
    Normal,
}

/// A commit that stores webhooks is acknowledged to their providers, so it is fsync'd
/// (`Full`). One that carries only the worker's claims, endings and remembered tags is
/// not: losing it to a power cut only makes the worker send those deliveries again (and
/// remember their tags again), which at-least-once
/// delivery already allows (a repeated create is answered 409 and linked), while an
/// fsync per claim would cap delivery at one batch per fsync (see docs/benchmarks.md).
pub(super) fn sync_for(webhooks: usize) -> Durability {
    if webhooks > 0 {
        Durability::Full
    } else {
        Durability::Normal
    }
}

/// Writes `ops` in one transaction and commits it; one answer per op, in order.
///
/// Any failure rolls the transaction back and closes the connection; the next call opens
/// a fresh one. When SQLite fails a `COMMIT` (a full disk, an I/O error) it keeps the
/// transaction open, and a connection reused inside it made every later
/// `BEGIN … COMMIT` a silent no-op — webhooks answered 200 that were never written.
fn apply(
    path: &Path,
    held: &mut Option<Held>,
    ops: &[&Op],
    sync: Durability,
) -> Result<Vec<Answer>, StoreError> {
    let mut current = match held.take() {
        Some(current) => current,
        None => Held {
            conn: open(path)?,
            durability: Durability::Full,
        },
    };
    match transaction(&mut current, ops, sync) {
        Ok(answers) => {
            *held = Some(current);
            Ok(answers)
        }
        Err(error) => {
            // Either may fail on a broken disk; the connection is dropped regardless.
            let _ignored = current.conn.execute_batch("ROLLBACK");
            Err(error)
        }
    }
}

fn transaction(held: &mut Held, ops: &[&Op], sync: Durability) -> Result<Vec<Answer>, StoreError> {
    if sync != held.durability {
        held.conn.execute_batch(match sync {
            Durability::Full => "PRAGMA synchronous = FULL",
            Durability::Normal => "PRAGMA synchronous = NORMAL",
        })?;
        held.durability = sync;
    }
    // IMMEDIATE takes the write lock now, so the transaction never has to upgrade a read
    // snapshot to a write (which SQLite refuses when another commit came in between).
    held.conn.execute_batch("BEGIN IMMEDIATE")?;
    let answers = apply_in(&held.conn, ops)?;
    held.conn.execute_batch("COMMIT")?;
    Ok(answers)
}

fn apply_in(conn: &Connection, ops: &[&Op]) -> Result<Vec<Answer>, StoreError> {
    let now = to_millis(SystemTime::now());
    let mut answers = Vec::with_capacity(ops.len());
    // Looked up in the statement cache once per commit rather than once per request:
    // the lookup hashes the statement's whole text.
    let mut insert = None;
    for op in ops {
        answers.push(match op {
            Op::Enqueue(jobs) => Answer::Enqueued(insert_jobs(conn, &mut insert, jobs, now)?),
            Op::Claim {
                now_ms,
                lease_until_ms,
                max,
            } => {
                let mut claimed = Vec::new();
                // Each claim sees the ones before it in this transaction, so two jobs of
                // one contact are never claimed together.
                while claimed.len() < *max {
                    match claim_one(conn, *now_ms, *lease_until_ms)? {
                        Some(job) => claimed.push(job),
                        None => break,
                    }
                }
                Answer::Claimed(claimed)
            }
            Op::Finish(op) => Answer::Finished(finish_one(conn, op)?),
            Op::RememberTags {
                route,
                contact_id,
                tags,
                now_ms,
            } => {
                conn.prepare_cached(
                    r#"
                    INSERT INTO contacts (route, contact_id, source_tags, updated_at) VALUES (?1, ?2, ?3, ?4)
                    ON CONFLICT (route, contact_id) DO UPDATE SET
                        source_tags = excluded.source_tags, updated_at = excluded.updated_at
                    "#,
                )?
                .execute(params![route, contact_id, tags, now_ms])?;
                Answer::Remembered
            }
            Op::Close => Answer::Closed,
        });
    }
    Ok(answers)
}

/// Stores `jobs`; `insert` is the insert statement, prepared on first use.
fn insert_jobs<'conn>(
    conn: &'conn Connection,
    insert: &mut Option<CachedStatement<'conn>>,
    jobs: &[Staged],
    now: i64,
) -> Result<Vec<Enqueued>, StoreError> {
    let insert = match insert {
        Some(statement) => statement,
        None => insert.insert(conn.prepare_cached(INSERT_JOB)?),
    };
    let mut results = Vec::with_capacity(jobs.len());
    for Staged { job, meta } in jobs {
        let inserted: Option<i64> = insert
            .query_row(
                params![
                    job.route,
                    job.source,
                    job.delivery_id,
                    job.topic,
                    job.contact_id,
                    job.contact_updated_at,
                    meta,
                    job.payload.as_ref(),
                    now,
                ],
                |row| row.get(0),
            )
            .optional()?;
        let result = match inserted {
            Some(id) => Enqueued::Accepted(JobId(id)),
            None => {
                let existing: i64 = conn
                    .prepare_cached(r#"SELECT id FROM jobs WHERE route = ?1 AND delivery_id = ?2"#)?
                    .query_row(params![job.route, job.delivery_id], |row| row.get(0))?;
                Enqueued::Duplicate(JobId(existing))
            }
        };
        results.push(result);
    }
    Ok(results)
}

/// Stores one webhook as a pending job; answers its id, or nothing for a duplicate.
const INSERT_JOB: &str = r#"
        INSERT INTO jobs (route, source, delivery_id, topic, contact_id, contact_updated_at,
                          meta, payload, state, attempts, next_attempt_at, created_at, updated_at,
                          blocked)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9, ?9, ?9,
                -- Queued behind an unfinished job of the same contact (every stored job
                -- is older than this one); see migrations/sqlite/0004_blocked_jobs.sql.
                -- One probe per state: SQLite cannot seek an OR of two states in
                -- `jobs_by_contact`, so it walked the contact's jobs from 'done' on,
                -- every delivered job it keeps (9 ms at 50,000, timed; 9 µs now).
                ?5 IS NOT NULL AND (
                    EXISTS (SELECT 1 FROM jobs o WHERE o.route = ?1 AND o.contact_id = ?5
                               AND o.state = 'in_flight')
                    OR EXISTS (SELECT 1 FROM jobs o WHERE o.route = ?1 AND o.contact_id = ?5
                                  AND o.state = 'pending' AND o.deferred = 0)))
        ON CONFLICT (route, delivery_id) DO NOTHING
        RETURNING id
        "#;

/// The claim's contact check for candidate `j` (at `?2` = now), the same for a due job
/// and for an expired lease: no other job of its contact is leased, or in flight and
/// older, or pending, older and not deferred. A literal, so the claim stays one static
/// statement SQLite prepares once.
macro_rules! contact_is_free {
    () => {
        r#"
                       AND (j.contact_id IS NULL OR (NOT EXISTS (
                                SELECT 1 FROM jobs o
                                 WHERE o.route = j.route AND o.contact_id = j.contact_id
                                   AND o.state = 'in_flight' AND o.id <> j.id
                                   AND (o.lease_until > ?2 OR o.id < j.id))
                            AND NOT EXISTS (
                                SELECT 1 FROM jobs o
                                 WHERE o.route = j.route AND o.contact_id = j.contact_id
                                   AND o.state = 'pending' AND o.deferred = 0 AND o.id < j.id)))
"#
    };
}

/// Claims the earliest claimable job (`?2` = now), leasing it until `?1`.
///
/// One statement, so the check-and-claim is atomic. A job is claimable when it is due
/// (or its lease ran out) and no other job of the same contact is leased or older and
/// unfinished: one job per contact, in order. A deferred job (a partial update waiting
/// for its contact's create) holds nothing back, or the create it waits for could
/// never run.
///
/// Due jobs and expired leases are looked up separately and the earlier one taken: one
/// `state = … OR state = …` filter kept SQLite from walking the due jobs in index order,
/// so every claim sorted the whole backlog (seconds per claim at 1,000,000 queued jobs,
/// and ~100 MB of sort memory; see docs/benchmarks.md). Pending jobs queued behind their
/// contact (`blocked`) are skipped through `jobs_ready` rather than checked one by one,
/// and the contact check is two indexed probes (in flight; older and pending), not one
/// `OR` that scanned all of the contact's jobs. `claim_walks_due_jobs_in_index_order`
/// holds the plan to this.
const CLAIM: &str = concat!(
    r#"
    UPDATE jobs
       SET state = 'in_flight', lease_until = ?1, attempts = attempts + 1, updated_at = ?2
     WHERE id = (
        SELECT id FROM (
            SELECT id, next_attempt_at FROM (
                SELECT j.id, j.next_attempt_at FROM jobs j
                 WHERE j.state = 'pending' AND j.blocked = 0 AND j.next_attempt_at <= ?2
"#,
    contact_is_free!(),
    r#"                     ORDER BY j.next_attempt_at, j.id
                 LIMIT 1)
            UNION ALL
            SELECT id, next_attempt_at FROM (
                SELECT j.id, j.next_attempt_at FROM jobs j
                 WHERE j.state = 'in_flight' AND j.lease_until <= ?2
"#,
    contact_is_free!(),
    r#"                     ORDER BY j.next_attempt_at, j.id
                 LIMIT 1))
         ORDER BY next_attempt_at, id
         LIMIT 1)
    RETURNING *
    "#
);

/// Claims the earliest claimable job, if any, with its contact's link.
fn claim_one(
    conn: &Connection,
    now_ms: i64,
    lease_until_ms: i64,
) -> Result<Option<Job>, StoreError> {
    let job = conn
        .prepare_cached(CLAIM)?
        .query_row(params![lease_until_ms, now_ms], |row| {
            Ok(crate::store::row::job_from_row(row))
        })
        .optional()?
        .transpose()?;
    let Some(mut job) = job else {
        return Ok(None);
    };
    // The link is read here, in the claim's transaction, so the worker does not have to
    // ask the pool for it before every delivery.
    job.link = Some(match &job.contact_id {
        Some(contact_id) => conn
            .prepare_cached(super::CONTACT_QUERY)?
            .query_row(params![job.route, contact_id], |row| {
                Ok(crate::store::row::contact_from_row(row))
            })
            .optional()?
            .transpose()?
            .unwrap_or_default(),
        None => ContactLink::default(),
    });
    Ok(Some(job))
}

/// Ends one claim. Every ending is one fenced update: it applies only to the claim the
/// worker holds (id, attempts) while the job is still in flight; false when it had been
/// lost, and then nothing is written.
fn finish_one(conn: &Connection, op: &FinishOp) -> Result<bool, StoreError> {
    let now_ms = op.now_ms;
    let ending = op.finish.ending(now_ms);
    let affected = conn
        .prepare_cached(
            r#"UPDATE jobs
              SET state = ?1, outcome = ?2, customer_id = COALESCE(?3, customer_id), last_error = ?4,
                  next_attempt_at = COALESCE(?5, next_attempt_at), lease_until = NULL, updated_at = ?6,
                  deferred = ?9, attempts = attempts - ?10
            WHERE id = ?7 AND attempts = ?8 AND state = 'in_flight'"#,
        )?
        .execute(params![
            ending.state,
            ending.outcome,
            ending.customer_id,
            ending.last_error,
            ending.next_attempt_at,
            now_ms,
            op.id.0,
            i64::from(op.attempts),
            i64::from(ending.deferred),
            i64::from(ending.gives_back_attempt),
        ])?;
    if affected == 0 {
        return Ok(false);
    }
    let Some(contact_id) = &op.contact_id else {
        return Ok(true);
    };
    match &op.finish {
        Finish::Done { link, applied, .. } if link.is_some() || *applied => {
            let applied_at = if *applied {
                op.contact_updated_at
            } else {
                None
            };
            conn.prepare_cached(
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
            )?
            .execute(params![op.route, contact_id, link, applied_at, now_ms])?;
            if link.is_some() {
                // Partial updates that waited for this contact's link are due now.
                // INDEXED BY: without statistics SQLite prefers `jobs_by_contact`,
                // which walks every pending job of the contact to find the deferred.
                conn.prepare_cached(
                    r#"UPDATE jobs INDEXED BY jobs_deferred SET next_attempt_at = ?1
                        WHERE route = ?2 AND contact_id = ?3 AND state = 'pending' AND deferred = 1"#,
                )?
                .execute(params![now_ms, op.route, contact_id])?;
            }
        }
        Finish::Unlink { .. } => {
            conn.prepare_cached(
                r#"UPDATE contacts SET customer_id = NULL, updated_at = ?1
                    WHERE route = ?2 AND contact_id = ?3"#,
            )?
            .execute(params![now_ms, op.route, contact_id])?;
        }
        _ => {}
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    /// The plan SQLite picks for `sql` on the migrated schema, one step per line. The
    /// store never runs ANALYZE, so the plan on an empty file is the plan in production.
    async fn plan(sql: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.db");
        let store = SqliteStore::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.close().await;
        let conn = open(&path).unwrap();
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let steps = explain
            .query_map(params![0_i64, 0_i64], |row| row.get::<_, String>(3))
            .unwrap();
        steps.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn claim_walks_due_jobs_in_index_order() {
        let plan = plan(CLAIM).await;
        let (due, leases) = plan.split_once("UNION ALL").expect(&plan);
        // Due jobs are read in (next_attempt_at, id) order straight off the index, so a
        // claim stops at the first claimable one however long the backlog is; a sort
        // here would read every due job on every claim.
        assert!(
            due.contains(
                "SEARCH j USING INDEX jobs_ready (state=? AND blocked=? AND next_attempt_at<?)"
            ),
            "{plan}"
        );
        assert!(!due.contains("TEMP B-TREE"), "{plan}");
        // Expired leases are found among the jobs in flight, through an index on state
        // (a handful of rows, sorted), never by reading the table.
        assert!(
            leases.contains("SEARCH j USING INDEX jobs_ready (state=?)"),
            "{plan}"
        );
        // The contact checks are index probes, one per state.
        assert_eq!(
            plan.matches(
                "SEARCH o USING INDEX jobs_by_contact (route=? AND contact_id=? AND state=?"
            )
            .count(),
            4,
            "{plan}"
        );
        assert!(
            !plan.contains("SCAN j") && !plan.contains("SCAN o"),
            "{plan}"
        );
    }
}
