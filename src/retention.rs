//! Retention: a background task that deletes done jobs (their payloads and dedupe keys
//! with them) once they have been done for `store.retention_days`.
//!
//! Why done jobs only: a dead job is kept until an operator replays or deletes it, and a
//! pending one is still work. Why a job's row doubles as its dedupe key and no separate
//! key table exists: `store.retention_days` is validated to be at least 7, longer than
//! any provider's retry window, so a key always outlives the retries it must catch.
//! Deletes run in bounded batches, each its own short transaction, so ingest's group
//! commit never waits long behind them.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::{metrics, store::Store};

/// Rows deleted per transaction.
pub const BATCH: u32 = 1_000;
/// How often the task looks for expired jobs (and once at startup).
const INTERVAL: Duration = Duration::from_secs(3_600);

/// Deletes every done job that finished before `now - retention`, `batch` rows per
/// transaction, and returns how many it deleted.
pub async fn purge_expired(
    store: &Store,
    retention: Duration,
    now: SystemTime,
    batch: u32,
) -> Result<u64, crate::store::StoreError> {
    let cutoff = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut total = 0;
    loop {
        let deleted = store.purge_done(cutoff, batch).await?;
        total += deleted;
        metrics::retention_purged(deleted);
        if deleted < u64::from(batch.max(1)) {
            return Ok(total);
        }
        // Let waiting writers in between batches.
        tokio::task::yield_now().await;
    }
}

/// Purges at startup and then every hour until `shutdown` is cancelled.
pub async fn run(store: Store, retention: Duration, shutdown: CancellationToken) {
    loop {
        match purge_expired(&store, retention, SystemTime::now(), BATCH).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(
                deleted,
                retention_days = retention.as_secs() / 86_400,
                "Purged done jobs past their retention."
            ),
            Err(error) => {
                tracing::warn!(error = %error, "Retention purge failed; will try again later.");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::store::{Finish, JobState, NewJob};

    const DAY: Duration = Duration::from_secs(86_400);

    fn job(delivery: &str) -> NewJob {
        NewJob {
            route: "acme".into(),
            source: "shopify".into(),
            delivery_id: delivery.into(),
            topic: "customers/create".into(),
            contact_id: Some(delivery.into()),
            contact_updated_at: None,
            meta: BTreeMap::new(),
            payload: Bytes::from_static(b"{\"email\":\"a@example.com\"}"),
        }
    }

    /// Enqueues a job and finishes it `age` ago with `finish`.
    async fn finished(store: &Store, delivery: &str, age: Duration, finish: Finish) {
        store.enqueue(job(delivery)).await.unwrap();
        let at = SystemTime::now() - age;
        let claimed = store
            .claim(SystemTime::now(), Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(claimed.delivery_id, delivery);
        assert!(store.finish(&claimed, finish, at).await.unwrap());
    }

    fn done() -> Finish {
        Finish::Done {
            outcome: "created",
            link: None,
            applied: false,
            note: None,
        }
    }

    #[tokio::test]
    async fn done_jobs_past_retention_are_deleted_and_dead_and_recent_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/r.db", dir.path().display()))
            .await
            .unwrap();
        finished(&store, "old-done", 8 * DAY, done()).await;
        finished(&store, "recent-done", 6 * DAY, done()).await;
        let dead = Finish::Dead {
            outcome: "no_location",
            reason: "x".into(),
        };
        finished(&store, "old-dead", 30 * DAY, dead).await;
        store.enqueue(job("pending")).await.unwrap();

        let deleted = purge_expired(&store, 7 * DAY, SystemTime::now(), BATCH)
            .await
            .unwrap();

        assert_eq!(deleted, 1);
        assert!(
            store
                .job_by_delivery("acme", "old-done")
                .await
                .unwrap()
                .is_none()
        );
        let kept = |d: &'static str| {
            let store = store.clone();
            async move {
                store
                    .job_by_delivery("acme", d)
                    .await
                    .unwrap()
                    .map(|j| j.state)
            }
        };
        assert_eq!(kept("recent-done").await, Some(JobState::Done));
        assert_eq!(kept("old-dead").await, Some(JobState::Dead));
        assert_eq!(kept("pending").await, Some(JobState::Pending));
        let counts = store.counts().await.unwrap();
        assert_eq!((counts.done, counts.dead, counts.pending), (1, 1, 1));
    }

    #[tokio::test]
    async fn purging_more_than_one_batch_deletes_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/r.db", dir.path().display()))
            .await
            .unwrap();
        for i in 0..5 {
            finished(&store, &format!("d{i}"), 10 * DAY, done()).await;
        }
        let deleted = purge_expired(&store, 7 * DAY, SystemTime::now(), 2)
            .await
            .unwrap();
        assert_eq!(deleted, 5);
        assert_eq!(store.counts().await.unwrap().done, 0);
    }
}
