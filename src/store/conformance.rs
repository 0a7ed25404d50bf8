//! The store's contract, checked on both backends.
//!
//! Every scenario here runs once on SQLite (a fresh file) and once on PostgreSQL (a fresh
//! database created for the test and dropped after it) when `TEST_DATABASE_URL` names an
//! admin connection. Without it the PostgreSQL runs print that they were skipped, on the
//! terminal rather than into the captured output, so nobody mistakes them for passes.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    io::Write,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use sqlx::{Connection, PgConnection, SqliteConnection};

use super::{
    ContactLink, Enqueued, Finish, JobChange, JobFilter, JobId, JobState, NewJob, Store, to_millis,
};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh store for one test, and what must be cleaned up after it.
struct TestStore {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
    database: Option<TestDatabase>,
}

impl TestStore {
    /// A fresh store, or `None` (after saying so on the terminal) when the backend is
    /// PostgreSQL and `TEST_DATABASE_URL` is not set.
    async fn open(backend: Backend, test: &str) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}/q.db", dir.path().display());
                Some(TestStore {
                    store: Store::open(&url).await.unwrap(),
                    url,
                    _dir: Some(dir),
                    database: None,
                })
            }
            Backend::Postgres => {
                let database = TestDatabase::create(test).await?;
                let url = database.url.clone();
                Some(TestStore {
                    store: Store::connect(&url, 4).await.unwrap(),
                    url,
                    _dir: None,
                    database: Some(database),
                })
            }
        }
    }

    /// A second handle on the same data: another replica for PostgreSQL.
    async fn another_replica(&self) -> Store {
        Store::connect(&self.url, 4).await.unwrap()
    }

    /// Runs one statement on the test's database beside the store: to break it on purpose.
    async fn execute(&self, sql: &str) {
        if self.database.is_some() {
            let mut db = PgConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut db).await.unwrap();
            db.close().await.unwrap();
        } else {
            let mut db = SqliteConnection::connect(&self.url).await.unwrap();
            sqlx::query(sql).execute(&mut db).await.unwrap();
            db.close().await.unwrap();
        }
    }

    /// Reads one count straight from the test's database: what is really on disk.
    async fn count(&self, sql: &str) -> i64 {
        if self.database.is_some() {
            let mut db = PgConnection::connect(&self.url).await.unwrap();
            let count = sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap();
            db.close().await.unwrap();
            count
        } else {
            let mut db = SqliteConnection::connect(&self.url).await.unwrap();
            let count = sqlx::query_scalar(sql).fetch_one(&mut db).await.unwrap();
            db.close().await.unwrap();
            count
        }
    }

    async fn cleanup(self) {
        self.store.close().await;
        if let Some(database) = self.database {
            database.drop().await;
        }
    }
}

/// A database of its own for one test, on the server `TEST_DATABASE_URL` points at.
struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    async fn create(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            // Straight to stderr: libtest captures `eprintln!` of passing tests.
            let _ignored = writeln!(
                std::io::stderr(),
                "skipped: TEST_DATABASE_URL not set, so `{test}` did not run on PostgreSQL"
            );
            return None;
        };
        let name = format!("test_{}_{}", std::process::id(), fastrand::u64(..));
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = database_url(&admin_url, &name);
        Some(TestDatabase {
            admin_url,
            name,
            url,
        })
    }

    async fn drop(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(&format!(r#"DROP DATABASE "{}" WITH (FORCE)"#, self.name))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

/// `admin_url` with its database name replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").unwrap();
    let server = rest.split('/').next().unwrap();
    format!("{scheme}://{server}/{name}{query}")
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
        payload: Bytes::from_static(b"{\"id\":1}"),
    }
}

const LEASE: Duration = Duration::from_secs(60);

fn done(outcome: &'static str, link: Option<&str>) -> Finish {
    Finish::Done {
        outcome,
        link: link.map(str::to_string),
        applied: true,
        note: None,
    }
}

async fn the_same_delivery_id_is_stored_once_even_when_two_replicas_get_it_at_once(
    backend: Backend,
) {
    let Some(t) = TestStore::open(backend, "same_delivery_id").await else {
        return;
    };
    let other = t.another_replica().await;
    // Two in one batch on one replica, and one more on another replica, all at once.
    let (a, b, c) = tokio::join!(
        t.store.enqueue(new_job("d1", Some("c1"), None)),
        t.store.enqueue(new_job("d1", Some("c1"), None)),
        other.enqueue(new_job("d1", Some("c1"), None)),
    );
    let results = [a.unwrap(), b.unwrap(), c.unwrap()];
    let accepted: Vec<_> = results
        .iter()
        .filter_map(|r| match r {
            Enqueued::Accepted(id) => Some(*id),
            Enqueued::Duplicate(_) => None,
        })
        .collect();
    assert_eq!(accepted.len(), 1, "{results:?}");
    for result in results {
        if let Enqueued::Duplicate(id) = result {
            assert_eq!(id, accepted[0], "a duplicate names the original job");
        }
    }
    assert_eq!(t.store.counts().await.unwrap().pending, 1);
    let stored = t.store.job(accepted[0]).await.unwrap().unwrap();
    assert_eq!(stored.payload.as_ref(), b"{\"id\":1}");
    assert_eq!(
        stored.meta.get("shop_domain").map(String::as_str),
        Some("a.myshopify.com")
    );
    other.close().await;
    t.cleanup().await;
}

async fn jobs_of_one_contact_are_claimed_one_at_a_time_in_order(backend: Backend) {
    let Some(t) = TestStore::open(backend, "one_contact_in_order").await else {
        return;
    };
    let store = &t.store;
    for d in ["d1", "d2"] {
        store.enqueue(new_job(d, Some("c1"), None)).await.unwrap();
    }
    store
        .enqueue(new_job("d3", Some("c2"), None))
        .await
        .unwrap();
    let now = SystemTime::now();
    let first = store.claim(now, LEASE).await.unwrap().unwrap();
    let second = store.claim(now, LEASE).await.unwrap().unwrap();
    assert_eq!(
        (first.delivery_id.as_str(), second.delivery_id.as_str()),
        ("d1", "d3")
    );
    assert!(
        store.claim(now, LEASE).await.unwrap().is_none(),
        "d2 must wait for d1"
    );
    assert!(
        store
            .finish(&first, done("created", Some("AG-1:CUSTOMER-1")), now)
            .await
            .unwrap()
    );
    let third = store.claim(now, LEASE).await.unwrap().unwrap();
    assert_eq!(third.delivery_id, "d2");
    assert_eq!(third.state, JobState::InFlight);
    assert_eq!(
        store.contact("acme", "c1").await.unwrap().customer_id,
        Some("AG-1:CUSTOMER-1".into())
    );
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.done, counts.in_flight), (1, 2));
    t.cleanup().await;
}

async fn a_batch_claim_takes_due_jobs_in_order_and_never_two_of_one_contact(backend: Backend) {
    let Some(t) = TestStore::open(backend, "claim_many").await else {
        return;
    };
    let store = &t.store;
    for (delivery, contact) in [
        ("d1", Some("c1")),
        ("d2", Some("c1")),
        ("d3", Some("c2")),
        ("d4", None),
        ("d5", Some("c3")),
    ] {
        store
            .enqueue(new_job(delivery, contact, None))
            .await
            .unwrap();
    }
    let now = SystemTime::now();
    let first = store.claim_many(now, LEASE, 3).await.unwrap();
    let names: Vec<&str> = first.iter().map(|j| j.delivery_id.as_str()).collect();
    assert_eq!(names, ["d1", "d3", "d4"], "at most `max`, oldest first");
    let rest = store.claim_many(now, LEASE, 10).await.unwrap();
    let names: Vec<&str> = rest.iter().map(|j| j.delivery_id.as_str()).collect();
    assert_eq!(names, ["d5"], "d2 waits for d1 of the same contact");
    assert!(
        rest.iter()
            .chain(&first)
            .all(|j| j.state == JobState::InFlight && j.attempts == 1)
    );
    assert!(store.claim_many(now, LEASE, 10).await.unwrap().is_empty());
    assert!(
        store
            .finish(&first[0], done("created", None), now)
            .await
            .unwrap()
    );
    let next = store.claim_many(now, LEASE, 10).await.unwrap();
    let names: Vec<&str> = next.iter().map(|j| j.delivery_id.as_str()).collect();
    assert_eq!(names, ["d2"]);
    t.cleanup().await;
}

async fn a_queued_job_runs_after_its_predecessor_ends_in_any_way(backend: Backend) {
    let Some(t) = TestStore::open(backend, "queued_behind").await else {
        return;
    };
    let store = &t.store;
    // A second ahead, so every job stored below is already due at `now`.
    let now = SystemTime::now() + Duration::from_secs(1);
    let endings = [
        ("done", done("created", None)),
        (
            "dead",
            Finish::Dead {
                outcome: "rejected",
                reason: "422".into(),
            },
        ),
        (
            "deferred",
            Finish::Defer {
                at: now + Duration::from_secs(3600),
                reason: "waiting for the create".into(),
            },
        ),
    ];
    for (name, ending) in endings {
        let contact = format!("c-{name}");
        for n in 1..=3 {
            store
                .enqueue(new_job(&format!("{name}-{n}"), Some(&contact), None))
                .await
                .unwrap();
        }
        let first = store.claim(now, LEASE).await.unwrap().unwrap();
        assert_eq!(first.delivery_id, format!("{name}-1"));
        assert!(
            store.claim(now, LEASE).await.unwrap().is_none(),
            "{name}: 2 waits for 1"
        );
        assert!(store.finish(&first, ending, now).await.unwrap());
        let second = store.claim(now, LEASE).await.unwrap();
        let second = second.unwrap_or_else(|| panic!("nothing claimable after {name}"));
        assert_eq!(second.delivery_id, format!("{name}-2"), "after {name}");
        assert!(
            store.claim(now, LEASE).await.unwrap().is_none(),
            "{name}: 3 waits for 2"
        );
        assert!(
            store
                .finish(&second, done("updated", None), now)
                .await
                .unwrap()
        );
        let third = store.claim(now, LEASE).await.unwrap().unwrap();
        assert_eq!(third.delivery_id, format!("{name}-3"));
        assert!(
            store
                .finish(&third, done("updated", None), now)
                .await
                .unwrap()
        );
    }
    // An operator deletes the job the others wait for, before it ever ran.
    let mut ids = Vec::new();
    for n in 1..=2 {
        let Enqueued::Accepted(id) = store
            .enqueue(new_job(&format!("deleted-{n}"), Some("c-deleted"), None))
            .await
            .unwrap()
        else {
            panic!("new deliveries are accepted")
        };
        ids.push(id);
    }
    assert_eq!(store.delete_job(ids[0]).await.unwrap(), JobChange::Applied);
    let next = store.claim(now, LEASE).await.unwrap().unwrap();
    assert_eq!(next.delivery_id, "deleted-2");
    t.cleanup().await;
}

async fn a_refused_webhook_fails_only_its_own_request(backend: Backend) {
    let Some(t) = TestStore::open(backend, "refused_alone").await else {
        return;
    };
    let store = &t.store;
    store
        .enqueue(new_job("d0", Some("c0"), None))
        .await
        .unwrap();
    let claimed = store
        .claim(SystemTime::now(), LEASE)
        .await
        .unwrap()
        .unwrap();
    refuse_deliveries_named_poison(&t, backend).await;
    // Sent together, so on SQLite they share one group commit with a claim's ending.
    let (poison, fine, other, finished) = tokio::join!(
        store.enqueue(new_job("poison", None, None)),
        store.enqueue(new_job("fine", None, None)),
        store.enqueue_many(vec![new_job("a", None, None), new_job("b", None, None)]),
        store.finish(
            &claimed,
            done("created", Some("AG-1:CUSTOMER-0")),
            SystemTime::now()
        ),
    );
    assert!(poison.is_err(), "{poison:?}");
    assert!(matches!(fine.unwrap(), Enqueued::Accepted(_)));
    assert!(
        other
            .unwrap()
            .iter()
            .all(|r| matches!(r, Enqueued::Accepted(_)))
    );
    assert!(finished.unwrap(), "the ending committed with the others");
    for (delivery, stored) in [("poison", false), ("fine", true), ("a", true), ("b", true)] {
        assert_eq!(
            store
                .job_by_delivery("acme", delivery)
                .await
                .unwrap()
                .is_some(),
            stored,
            "{delivery}"
        );
    }
    assert_eq!(store.counts().await.unwrap().done, 1);
    t.cleanup().await;
}

/// Makes the database itself refuse any job whose delivery id is `poison`.
async fn refuse_deliveries_named_poison(t: &TestStore, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            t.execute(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON jobs WHEN NEW.delivery_id = 'poison' \
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
            )
            .await
        }
        Backend::Postgres => {
            t.execute(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN IF NEW.delivery_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; \
                 RETURN NEW; END $$",
            )
            .await;
            t.execute(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON jobs \
                 FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
            )
            .await
        }
    }
}

async fn an_expired_lease_makes_a_job_claimable_and_fences_the_old_claim(backend: Backend) {
    let Some(t) = TestStore::open(backend, "expired_lease").await else {
        return;
    };
    let replica = t.another_replica().await;
    t.store
        .enqueue(new_job("d1", Some("c1"), None))
        .await
        .unwrap();
    let now = SystemTime::now();
    let first = t
        .store
        .claim(now, Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert!(replica.claim(now, LEASE).await.unwrap().is_none());
    let later = now + Duration::from_secs(2);
    let second = replica.claim(later, LEASE).await.unwrap().unwrap();
    assert_eq!((second.id, second.attempts), (first.id, 2));
    let dead = Finish::Dead {
        outcome: "rejected",
        reason: "x".into(),
    };
    assert!(
        !t.store.finish(&first, dead.clone(), later).await.unwrap(),
        "stale claim must not write"
    );
    assert!(replica.finish(&second, dead, later).await.unwrap());
    let job = t.store.job(first.id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.last_error.as_deref()),
        (JobState::Dead, Some("x"))
    );
    replica.close().await;
    t.cleanup().await;
}

async fn retries_wait_until_due_and_applied_times_only_move_forward(backend: Backend) {
    let Some(t) = TestStore::open(backend, "retries_and_applied_times").await else {
        return;
    };
    let store = &t.store;
    store
        .enqueue(new_job("d1", Some("c1"), Some(2_000)))
        .await
        .unwrap();
    store
        .enqueue(new_job("d2", Some("c1"), Some(1_000)))
        .await
        .unwrap();
    let now = SystemTime::now();
    let job = store.claim(now, LEASE).await.unwrap().unwrap();
    let at = now + Duration::from_secs(30);
    let retry = Finish::Retry {
        at,
        error: "vendasta answered 503".into(),
    };
    assert!(store.finish(&job, retry, now).await.unwrap());
    assert!(
        store.claim(now, LEASE).await.unwrap().is_none(),
        "not due, and d2 waits behind d1"
    );
    let job = store.claim(at, LEASE).await.unwrap().unwrap();
    assert_eq!((job.delivery_id.as_str(), job.attempts), ("d1", 2));
    store.finish(&job, done("updated", None), at).await.unwrap();
    let older = store.claim(at, LEASE).await.unwrap().unwrap();
    store
        .finish(&older, done("updated", None), at)
        .await
        .unwrap();
    assert_eq!(
        store
            .contact("acme", "c1")
            .await
            .unwrap()
            .applied_updated_at,
        Some(2_000)
    );
    let by_delivery = store.job_by_delivery("acme", "d2").await.unwrap().unwrap();
    assert_eq!(
        (by_delivery.state, by_delivery.outcome.as_deref()),
        (JobState::Done, Some("updated"))
    );
    t.cleanup().await;
}

async fn an_unlinked_contact_forgets_its_customer_and_is_retried_at_once(backend: Backend) {
    let Some(t) = TestStore::open(backend, "unlink").await else {
        return;
    };
    let store = &t.store;
    for d in ["d1", "d2"] {
        store.enqueue(new_job(d, Some("c1"), None)).await.unwrap();
    }
    let now = SystemTime::now();
    let first = store.claim(now, LEASE).await.unwrap().unwrap();
    store
        .finish(&first, done("created", Some("AG-1:C-1")), now)
        .await
        .unwrap();
    let second = store.claim(now, LEASE).await.unwrap().unwrap();
    let unlink = Finish::Unlink {
        error: "customer gone".into(),
    };
    assert!(store.finish(&second, unlink, now).await.unwrap());
    assert_eq!(store.contact("acme", "c1").await.unwrap().customer_id, None);
    let again = store.claim(now, LEASE).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (second.id, 2));
    t.cleanup().await;
}

async fn a_closed_store_refuses_writes(backend: Backend) {
    let Some(t) = TestStore::open(backend, "closed_store").await else {
        return;
    };
    t.store.close().await;
    assert!(t.store.enqueue(new_job("d1", None, None)).await.is_err());
    assert!(t.store.ping().await.is_err());
    t.cleanup().await;
}

/// Two replicas with eight claimers each race over many contacts: no contact ever has
/// two jobs in flight, every job is finished exactly once, and each contact's jobs are
/// finished in the order they arrived.
async fn racing_claimers_never_hold_two_jobs_of_one_contact(backend: Backend) {
    let Some(t) = TestStore::open(backend, "racing_claimers").await else {
        return;
    };
    let replica = t.another_replica().await;
    const CONTACTS: usize = 12;
    const PER_CONTACT: usize = 8;
    for n in 0..PER_CONTACT {
        for c in 0..CONTACTS {
            t.store
                .enqueue(new_job(&format!("d{c}-{n}"), Some(&format!("c{c}")), None))
                .await
                .unwrap();
        }
    }
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let finished: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    for store in [t.store.clone(), replica.clone()] {
        for _ in 0..8 {
            let (store, busy, finished) = (store.clone(), Arc::clone(&busy), Arc::clone(&finished));
            tasks.spawn(async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let Some(job) = store.claim(SystemTime::now(), LEASE).await.unwrap() else {
                        if store.counts().await.unwrap().pending == 0 {
                            return;
                        }
                        assert!(std::time::Instant::now() < deadline, "claimers stalled");
                        tokio::task::yield_now().await;
                        continue;
                    };
                    let contact = job.contact_id.clone().unwrap();
                    assert!(
                        busy.lock().unwrap().insert(contact.clone()),
                        "two jobs of {contact} in flight at once"
                    );
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    busy.lock().unwrap().remove(&contact);
                    finished
                        .lock()
                        .unwrap()
                        .entry(contact)
                        .or_default()
                        .push(job.delivery_id.clone());
                    assert!(
                        store
                            .finish(&job, done("updated", None), SystemTime::now())
                            .await
                            .unwrap()
                    );
                }
            });
        }
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let finished = finished.lock().unwrap().clone();
    for c in 0..CONTACTS {
        let expected: Vec<String> = (0..PER_CONTACT).map(|n| format!("d{c}-{n}")).collect();
        assert_eq!(finished[&format!("c{c}")], expected);
    }
    assert_eq!(
        t.store.counts().await.unwrap().done,
        (CONTACTS * PER_CONTACT) as u64
    );
    replica.close().await;
    t.cleanup().await;
}

/// The instant as the store keeps it (Unix ms), so comparisons ignore sub-ms digits.
fn ms(time: SystemTime) -> i64 {
    to_millis(time)
}

async fn a_replay_resets_attempts_and_starts_a_fresh_age_window(backend: Backend) {
    let Some(t) = TestStore::open(backend, "replay").await else {
        return;
    };
    let store = &t.store;
    assert_eq!(store.oldest_undelivered().await.unwrap(), None);
    for d in ["d1", "d2"] {
        store.enqueue(new_job(d, Some(d), None)).await.unwrap();
    }
    let now = SystemTime::now();
    let parked = store.claim(now, LEASE).await.unwrap().unwrap();
    let dead = Finish::Dead {
        outcome: "rejected",
        reason: "x".into(),
    };
    store.finish(&parked, dead, now).await.unwrap();
    let busy = store.claim(now, LEASE).await.unwrap().unwrap();
    let before = store.job(parked.id).await.unwrap().unwrap();
    assert_eq!((before.attempts, before.replayed_at), (1, None));
    assert_eq!(ms(before.age_from()), ms(before.created_at));

    let later = now + Duration::from_secs(3 * 3600);
    assert_eq!(
        store.replay(parked.id, later).await.unwrap(),
        JobChange::Applied
    );
    let after = store.job(parked.id).await.unwrap().unwrap();
    assert_eq!((after.state, after.attempts), (JobState::Pending, 0));
    assert_eq!(after.replayed_at.map(ms), Some(ms(later)));
    assert_eq!(ms(after.age_from()), ms(later));
    assert_eq!(ms(after.created_at), ms(before.created_at));
    assert_eq!(ms(after.next_attempt_at), ms(later));
    assert_eq!(
        store.oldest_undelivered().await.unwrap().map(ms),
        Some(ms(busy.created_at)),
        "the job in flight arrived before the replayed one's fresh window"
    );

    assert_eq!(
        store.replay(busy.id, later).await.unwrap(),
        JobChange::InFlight
    );
    assert_eq!(
        store.replay(JobId(999_999), later).await.unwrap(),
        JobChange::NotFound
    );
    store
        .finish(&busy, done("created", None), now)
        .await
        .unwrap();
    assert!(
        store.claim(now, LEASE).await.unwrap().is_none(),
        "the replayed job is due at the replay's time"
    );
    let again = store.claim(later, LEASE).await.unwrap().unwrap();
    assert_eq!((again.id, again.attempts), (parked.id, 1));
    t.cleanup().await;
}

async fn replay_matching_replays_only_matching_jobs_not_in_flight_in_batches(backend: Backend) {
    let Some(t) = TestStore::open(backend, "replay_matching").await else {
        return;
    };
    let store = &t.store;
    let mut elsewhere = new_job("other", Some("o1"), None);
    elsewhere.route = "beta".into();
    store.enqueue(elsewhere).await.unwrap();
    for n in 0..5 {
        let d = format!("d{n}");
        store.enqueue(new_job(&d, Some(&d), None)).await.unwrap();
    }
    let now = SystemTime::now();
    // Park everything but the last acme job, which stays in flight.
    for _ in 0..5 {
        let job = store.claim(now, LEASE).await.unwrap().unwrap();
        let dead = Finish::Dead {
            outcome: "rejected",
            reason: "x".into(),
        };
        store.finish(&job, dead, now).await.unwrap();
    }
    let in_flight = store.claim(now, LEASE).await.unwrap().unwrap();
    assert_eq!(in_flight.delivery_id, "d4");

    let filter = JobFilter {
        state: Some(JobState::Dead),
        route: Some("acme".into()),
        since: None,
    };
    let later = now + Duration::from_secs(60);
    assert_eq!(store.replay_matching(&filter, later, 2).await.unwrap(), 4);
    let counts = store.counts().await.unwrap();
    assert_eq!(
        (counts.pending, counts.in_flight, counts.dead),
        (4, 1, 1),
        "beta's dead job and the job in flight are left alone"
    );
    let other = store
        .job_by_delivery("beta", "other")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.state, JobState::Dead);
    assert_eq!(store.replay_matching(&filter, later, 2).await.unwrap(), 0);
    t.cleanup().await;
}

async fn a_deleted_job_is_gone_with_its_dedupe_key_unless_it_is_in_flight(backend: Backend) {
    let Some(t) = TestStore::open(backend, "delete_job").await else {
        return;
    };
    let store = &t.store;
    let Enqueued::Accepted(first) = store.enqueue(new_job("d1", None, None)).await.unwrap() else {
        panic!("a new delivery is accepted")
    };
    store.enqueue(new_job("d2", None, None)).await.unwrap();
    let busy = store
        .claim(SystemTime::now(), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(busy.id, first);
    assert_eq!(store.delete_job(first).await.unwrap(), JobChange::InFlight);
    let second = store.job_by_delivery("acme", "d2").await.unwrap().unwrap();
    assert_eq!(
        store.delete_job(second.id).await.unwrap(),
        JobChange::Applied
    );
    assert!(store.job(second.id).await.unwrap().is_none());
    assert_eq!(
        store.delete_job(second.id).await.unwrap(),
        JobChange::NotFound
    );
    assert!(matches!(
        store.enqueue(new_job("d2", None, None)).await.unwrap(),
        Enqueued::Accepted(id) if id != second.id
    ));
    t.cleanup().await;
}

async fn jobs_are_listed_newest_first_filtered_and_paged_by_cursor(backend: Backend) {
    let Some(t) = TestStore::open(backend, "list_jobs").await else {
        return;
    };
    let store = &t.store;
    let mut ids = Vec::new();
    for n in 0..5 {
        let d = format!("d{n}");
        match store.enqueue(new_job(&d, None, None)).await.unwrap() {
            Enqueued::Accepted(id) => ids.push(id),
            other => panic!("{other:?}"),
        }
        let mut elsewhere = new_job(&d, None, None);
        elsewhere.route = "beta".into();
        store.enqueue(elsewhere).await.unwrap();
    }
    let acme = JobFilter {
        route: Some("acme".into()),
        ..JobFilter::default()
    };
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_jobs(&acme, before, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        before = page.last().map(|job| job.id);
        pages.push(page.iter().map(|job| job.id).collect::<Vec<_>>());
    }
    let expected: Vec<Vec<JobId>> = vec![vec![ids[4], ids[3]], vec![ids[2], ids[1]], vec![ids[0]]];
    assert_eq!(pages, expected);

    let job = store
        .claim(SystemTime::now(), LEASE)
        .await
        .unwrap()
        .unwrap();
    let in_flight = JobFilter {
        state: Some(JobState::InFlight),
        ..JobFilter::default()
    };
    let listed = store.list_jobs(&in_flight, None, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![job.id]
    );
    let future = JobFilter {
        since: Some(SystemTime::now() + Duration::from_secs(3600)),
        ..JobFilter::default()
    };
    assert!(store.list_jobs(&future, None, 10).await.unwrap().is_empty());
    let past = JobFilter {
        since: Some(SystemTime::now() - Duration::from_secs(3600)),
        ..JobFilter::default()
    };
    assert_eq!(store.list_jobs(&past, None, 100).await.unwrap().len(), 10);
    t.cleanup().await;
}

async fn purging_deletes_only_done_jobs_older_than_the_cutoff_in_bounded_batches(backend: Backend) {
    let Some(t) = TestStore::open(backend, "purge_done").await else {
        return;
    };
    let store = &t.store;
    for d in ["old1", "old2", "recent", "dead", "pending"] {
        store.enqueue(new_job(d, Some(d), None)).await.unwrap();
    }
    let now = SystemTime::now();
    let old = now - Duration::from_secs(10 * 24 * 3600);
    for (ended, finish) in [
        (old, done("created", None)),
        (old, done("created", None)),
        (now, done("created", None)),
        (
            old,
            Finish::Dead {
                outcome: "rejected",
                reason: "x".into(),
            },
        ),
    ] {
        let job = store.claim(now, LEASE).await.unwrap().unwrap();
        assert!(store.finish(&job, finish, ended).await.unwrap());
    }
    let cutoff = now - Duration::from_secs(7 * 24 * 3600);
    assert_eq!(store.purge_done(cutoff, 1).await.unwrap(), 1);
    assert_eq!(store.purge_done(cutoff, 1).await.unwrap(), 1);
    assert_eq!(store.purge_done(cutoff, 1).await.unwrap(), 0);
    for (delivery, kept) in [
        ("old1", false),
        ("old2", false),
        ("recent", true),
        ("dead", true),
        ("pending", true),
    ] {
        assert_eq!(
            store
                .job_by_delivery("acme", delivery)
                .await
                .unwrap()
                .is_some(),
            kept,
            "{delivery}"
        );
    }
    t.cleanup().await;
}

async fn one_requests_jobs_are_stored_all_or_nothing_and_deduped(backend: Backend) {
    let Some(t) = TestStore::open(backend, "enqueue_many").await else {
        return;
    };
    let store = &t.store;
    let Enqueued::Accepted(b) = store.enqueue(new_job("b", None, None)).await.unwrap() else {
        panic!("a new delivery is accepted")
    };
    let results = store
        .enqueue_many(vec![
            new_job("a", None, None),
            new_job("b", None, None),
            new_job("c", None, None),
            new_job("a", None, None),
        ])
        .await
        .unwrap();
    let Enqueued::Accepted(a) = results[0] else {
        panic!("{results:?}")
    };
    assert_eq!(results[1], Enqueued::Duplicate(b));
    assert!(matches!(results[2], Enqueued::Accepted(c) if c != a && c != b));
    assert_eq!(results[3], Enqueued::Duplicate(a));
    assert_eq!(store.counts().await.unwrap().pending, 3);

    // A job the database refuses must take the rest of its request down with it.
    refuse_deliveries_named_poison(&t, backend).await;
    let refused = store
        .enqueue_many(vec![
            new_job("x", None, None),
            new_job("poison", None, None),
            new_job("y", None, None),
        ])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    for delivery in ["x", "poison", "y"] {
        assert!(
            store
                .job_by_delivery("acme", delivery)
                .await
                .unwrap()
                .is_none(),
            "{delivery} must not be stored"
        );
    }
    assert_eq!(t.count("SELECT COUNT(*) FROM jobs").await, 3);
    // The writer survives a failed commit.
    assert!(matches!(
        store.enqueue(new_job("x", None, None)).await.unwrap(),
        Enqueued::Accepted(_)
    ));
    t.cleanup().await;
}

/// A job whose payload names its contact's e-mail address, as a real webhook would.
fn personal_job(delivery: &str, contact: &str, shop: &str) -> NewJob {
    let mut job = new_job(delivery, Some(contact), None);
    job.meta = BTreeMap::from([("shop_domain".into(), shop.into())]);
    job.payload = Bytes::from(format!(r#"{{"email":"{contact}@example.com"}}"#));
    job
}

async fn redaction_leaves_no_payload_or_link_of_those_customers(backend: Backend) {
    let Some(t) = TestStore::open(backend, "redaction").await else {
        return;
    };
    let store = &t.store;
    let mut other_route = personal_job("r1", "c2", "a.myshopify.com");
    other_route.route = "beta".into();
    for job in [
        personal_job("d1", "c1", "a.myshopify.com"),
        personal_job("d2", "c1", "a.myshopify.com"),
        personal_job("d3", "c2", "a.myshopify.com"),
        personal_job("d4", "c3", "b.myshopify.com"),
        other_route,
    ] {
        store.enqueue(job).await.unwrap();
    }
    store
        .remember_tags("acme", "c1", &["vip".into(), "wholesale".into()])
        .await
        .unwrap();
    assert_eq!(
        store.contact("acme", "c1").await.unwrap().source_tags,
        Some(vec!["vip".to_string(), "wholesale".to_string()])
    );
    // Deliver everything, so every contact has a link to forget.
    let now = SystemTime::now();
    while let Some(job) = store.claim(now, LEASE).await.unwrap() {
        let link = format!("AG-1:{}", job.contact_id.as_deref().unwrap());
        assert!(
            store
                .finish(&job, done("created", Some(&link)), now)
                .await
                .unwrap()
        );
    }
    assert_eq!(t.count("SELECT COUNT(*) FROM contacts").await, 4);

    assert_eq!(
        store.redact_contacts("acme", &["c1".into()]).await.unwrap(),
        2
    );
    assert_eq!(
        store.contact("acme", "c1").await.unwrap(),
        ContactLink::default()
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM jobs WHERE route = 'acme' AND contact_id = 'c1'")
            .await,
        0
    );
    assert_eq!(
        t.count("SELECT COUNT(*) FROM contacts WHERE route = 'acme' AND contact_id = 'c1'")
            .await,
        0
    );

    assert_eq!(
        store
            .redact_tenant("acme", "A.MyShopify.com")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.contact("acme", "c2").await.unwrap(),
        ContactLink::default()
    );
    let left: Vec<_> = store
        .list_jobs(&JobFilter::default(), None, 100)
        .await
        .unwrap();
    let mut left_deliveries: Vec<_> = left
        .iter()
        .map(|job| (job.route.as_str(), job.delivery_id.as_str()))
        .collect();
    left_deliveries.sort_unstable();
    assert_eq!(left_deliveries, vec![("acme", "d4"), ("beta", "r1")]);
    for job in left.iter().filter(|job| job.route == "acme") {
        let payload = String::from_utf8_lossy(&job.payload);
        assert!(
            !payload.contains("c1@") && !payload.contains("c2@"),
            "{payload}"
        );
    }
    assert_eq!(t.count("SELECT COUNT(*) FROM contacts").await, 2);
    assert_eq!(
        store.contact("beta", "c2").await.unwrap().customer_id,
        Some("AG-1:c2".into()),
        "another route's contact is not that shop's"
    );
    t.cleanup().await;
}

async fn a_deferral_gives_back_the_attempt_lets_the_create_run_and_linking_wakes_it(
    backend: Backend,
) {
    let Some(t) = TestStore::open(backend, "defer").await else {
        return;
    };
    let replica = t.another_replica().await;
    let store = &t.store;
    store
        .enqueue(new_job("tags", Some("c1"), None))
        .await
        .unwrap();
    store
        .enqueue(new_job("create", Some("c1"), None))
        .await
        .unwrap();
    let now = SystemTime::now();
    let partial = store.claim(now, LEASE).await.unwrap().unwrap();
    assert_eq!(
        (partial.delivery_id.as_str(), partial.attempts),
        ("tags", 1)
    );
    let later = now + Duration::from_secs(3600);
    let defer = Finish::Defer {
        at: later,
        reason: "waiting for the contact's create".into(),
    };
    assert!(store.finish(&partial, defer, now).await.unwrap());
    let deferred = store.job(partial.id).await.unwrap().unwrap();
    assert_eq!(
        (
            deferred.state,
            deferred.attempts,
            deferred.outcome.as_deref()
        ),
        (JobState::Pending, 0, Some("deferred"))
    );

    let create = replica.claim(now, LEASE).await.unwrap().unwrap();
    assert_eq!(
        create.delivery_id, "create",
        "the deferred job must not hold the create back"
    );
    assert!(
        store.claim(now, LEASE).await.unwrap().is_none(),
        "the deferred job is not due and its contact is busy"
    );
    replica
        .finish(&create, done("created", Some("AG-1:C-1")), now)
        .await
        .unwrap();
    let woken = store.claim(now, LEASE).await.unwrap().unwrap();
    assert_eq!(
        (woken.delivery_id.as_str(), woken.attempts),
        ("tags", 1),
        "linking the contact makes its deferred job due at once"
    );
    let finished = done("updated", None);
    assert!(store.finish(&woken, finished, now).await.unwrap());
    replica.close().await;
    t.cleanup().await;
}

async fn a_wait_gives_back_the_attempt_and_still_holds_the_contact_back(backend: Backend) {
    let Some(t) = TestStore::open(backend, "wait").await else {
        return;
    };
    let store = &t.store;
    for d in ["d1", "d2"] {
        store.enqueue(new_job(d, Some("c1"), None)).await.unwrap();
    }
    let now = SystemTime::now();
    let job = store.claim(now, LEASE).await.unwrap().unwrap();
    let at = now + Duration::from_secs(30);
    let wait = Finish::Wait {
        at,
        error: "no Vendasta token".into(),
    };
    assert!(store.finish(&job, wait, now).await.unwrap());
    let waiting = store.job(job.id).await.unwrap().unwrap();
    assert_eq!(
        (waiting.state, waiting.attempts, waiting.outcome.as_deref()),
        (JobState::Pending, 0, Some("waiting"))
    );
    assert!(
        store.claim(now, LEASE).await.unwrap().is_none(),
        "d1 is not due and d2 waits behind it"
    );
    let again = store.claim(at, LEASE).await.unwrap().unwrap();
    assert_eq!((again.delivery_id.as_str(), again.attempts), ("d1", 1));
    t.cleanup().await;
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Postgres).await;
            })*
        }
    };
}

on_both_backends!(
    the_same_delivery_id_is_stored_once_even_when_two_replicas_get_it_at_once,
    jobs_of_one_contact_are_claimed_one_at_a_time_in_order,
    a_batch_claim_takes_due_jobs_in_order_and_never_two_of_one_contact,
    a_refused_webhook_fails_only_its_own_request,
    a_queued_job_runs_after_its_predecessor_ends_in_any_way,
    an_expired_lease_makes_a_job_claimable_and_fences_the_old_claim,
    retries_wait_until_due_and_applied_times_only_move_forward,
    an_unlinked_contact_forgets_its_customer_and_is_retried_at_once,
    a_closed_store_refuses_writes,
    racing_claimers_never_hold_two_jobs_of_one_contact,
    a_replay_resets_attempts_and_starts_a_fresh_age_window,
    replay_matching_replays_only_matching_jobs_not_in_flight_in_batches,
    a_deleted_job_is_gone_with_its_dedupe_key_unless_it_is_in_flight,
    jobs_are_listed_newest_first_filtered_and_paged_by_cursor,
    purging_deletes_only_done_jobs_older_than_the_cutoff_in_bounded_batches,
    one_requests_jobs_are_stored_all_or_nothing_and_deduped,
    redaction_leaves_no_payload_or_link_of_those_customers,
    a_deferral_gives_back_the_attempt_lets_the_create_run_and_linking_wakes_it,
    a_wait_gives_back_the_attempt_and_still_holds_the_contact_back,
);

/// PostgreSQL only: SQLite has one replica, whose ingest wakes its own worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_stored_or_freed_on_one_replica_wakes_the_others_at_once() {
    let Some(t) = TestStore::open(Backend::Postgres, "wakes_other_replicas").await else {
        return;
    };
    let wake = Arc::new(tokio::sync::Notify::new());
    t.store.forward_new_work(Arc::clone(&wake));
    let woken = || tokio::time::timeout(Duration::from_secs(10), wake.notified());
    // The listener pokes once when it connects, for anything it might have missed.
    woken().await.expect("the listener connects");
    let other = t.another_replica().await;

    other
        .enqueue(new_job("d1", Some("c1"), None))
        .await
        .unwrap();
    woken()
        .await
        .expect("a webhook stored by another replica wakes this one");

    other
        .enqueue(new_job("d2", Some("c1"), None))
        .await
        .unwrap();
    woken().await.expect("second webhook");
    let now = SystemTime::now();
    let job = other.claim(now, LEASE).await.unwrap().unwrap();
    other
        .finish(&job, done("created", Some("AG-1:C-1")), now)
        .await
        .unwrap();
    woken()
        .await
        .expect("finishing a contact's job wakes replicas for its next job");
    other.close().await;
    t.cleanup().await;
}

#[test]
fn a_database_url_keeps_server_and_options_and_swaps_the_name() {
    assert_eq!(
        database_url(
            "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
            "t1"
        ),
        "postgres://postgres@127.0.0.1:5432/t1?sslmode=disable"
    );
}

#[test]
fn a_password_in_a_store_url_is_redacted() {
    use super::redact_url;
    assert_eq!(
        redact_url("postgres://bridge:s3c@ret@db:5432/bridge?sslmode=require&password=x"),
        "postgres://bridge:[redacted]@db:5432/bridge?sslmode=require&password=[redacted]"
    );
    assert_eq!(
        redact_url("postgres://bridge:p/a?ss@db/bridge"),
        "postgres://bridge:[redacted]@db/bridge"
    );
    assert_eq!(
        redact_url("postgresql://bridge@db/bridge"),
        "postgresql://bridge@db/bridge"
    );
    assert_eq!(
        redact_url("sqlite://data/bridge.db"),
        "sqlite://data/bridge.db"
    );
}

/// A group commit is written with a handful of statements on PostgreSQL, in key order, so
/// these check that each webhook still gets its own answer, in the order it was sent.
mod group_commit {
    use super::*;

    /// A job whose payload says which copy of its delivery it is.
    fn copy_of(delivery: &str, copy: u32) -> NewJob {
        let mut job = new_job(delivery, None, None);
        job.payload = Bytes::from(format!("{delivery}#{copy}"));
        job
    }

    async fn a_batch_is_answered_in_input_order_with_in_batch_and_stored_duplicates(
        backend: Backend,
    ) {
        let Some(t) = TestStore::open(backend, "batch_input_order").await else {
            return;
        };
        let store = &t.store;
        // Arrange: "m" is stored already.
        let Enqueued::Accepted(m) = store.enqueue(copy_of("m", 0)).await.unwrap() else {
            panic!("a new delivery is accepted")
        };

        // Act: keys out of key order, new keys sent twice, a stored key sent twice.
        let sent = [
            ("z", 1),
            ("a", 1),
            ("m", 1),
            ("z", 2),
            ("b", 1),
            ("a", 2),
            ("m", 2),
        ];
        let results = store
            .enqueue_many(sent.iter().map(|&(d, copy)| copy_of(d, copy)).collect())
            .await
            .unwrap();

        // Assert: the first copy of a new key is accepted and stored with its own payload;
        // every later copy, and every copy of "m", is a duplicate of the stored job.
        assert_eq!(results.len(), sent.len(), "{results:?}");
        let mut stored: HashMap<&str, JobId> = HashMap::from([("m", m)]);
        for (&(delivery, copy), result) in sent.iter().zip(&results) {
            match (stored.get(delivery), *result) {
                (None, Enqueued::Accepted(id)) => {
                    let job = store.job(id).await.unwrap().unwrap();
                    assert_eq!(job.delivery_id, delivery);
                    assert_eq!(job.payload, Bytes::from(format!("{delivery}#{copy}")));
                    stored.insert(delivery, id);
                }
                (Some(&first), Enqueued::Duplicate(id)) => assert_eq!(id, first, "{delivery}"),
                (first, result) => panic!("{delivery}#{copy}: {result:?}, first {first:?}"),
            }
        }
        let ids: HashSet<JobId> = stored.values().copied().collect();
        assert_eq!(ids.len(), 4, "each delivery has its own job: {stored:?}");
        assert_eq!(store.counts().await.unwrap().pending, 4);
        let m_job = store.job(m).await.unwrap().unwrap();
        assert_eq!(
            m_job.payload,
            Bytes::from("m#0"),
            "a duplicate changes nothing"
        );
        t.cleanup().await;
    }

    async fn requests_sharing_a_commit_get_one_job_per_delivery(backend: Backend) {
        let Some(t) = TestStore::open(backend, "batch_across_requests").await else {
            return;
        };
        // Act: many requests at once, so that the writer takes several into one commit;
        // the even ones all carry the same delivery.
        let requests: Vec<_> = (0..32_u32)
            .map(|i| {
                let store = t.store.clone();
                let delivery = if i % 2 == 0 {
                    "same".to_string()
                } else {
                    format!("own-{i}")
                };
                tokio::spawn(async move {
                    (delivery.clone(), store.enqueue(copy_of(&delivery, i)).await)
                })
            })
            .collect();
        let mut answers = Vec::new();
        for request in requests {
            let (delivery, answer) = request.await.unwrap();
            answers.push((delivery, answer.unwrap()));
        }

        // Assert: "same" is accepted once and every other copy names that job; each
        // other delivery is accepted as its own job.
        let accepted: Vec<JobId> = answers
            .iter()
            .filter_map(|(delivery, answer)| match answer {
                Enqueued::Accepted(id) if delivery == "same" => Some(*id),
                _ => None,
            })
            .collect();
        let [same] = accepted[..] else {
            panic!("exactly one copy is accepted: {answers:?}")
        };
        let mut own = HashSet::new();
        for (delivery, answer) in &answers {
            match answer {
                Enqueued::Duplicate(id) => assert_eq!((delivery.as_str(), *id), ("same", same)),
                Enqueued::Accepted(id) if delivery != "same" => {
                    assert_eq!(&store_delivery(&t, *id).await, delivery);
                    assert!(own.insert(*id) && *id != same, "{answers:?}");
                }
                Enqueued::Accepted(_) => {}
            }
        }
        assert_eq!(own.len(), 16);
        assert_eq!(store_delivery(&t, same).await, "same");
        assert_eq!(t.store.counts().await.unwrap().pending, 17);
        t.cleanup().await;
    }

    async fn store_delivery(t: &TestStore, id: JobId) -> String {
        t.store.job(id).await.unwrap().unwrap().delivery_id
    }

    on_both_backends!(
        a_batch_is_answered_in_input_order_with_in_batch_and_stored_duplicates,
        requests_sharing_a_commit_get_one_job_per_delivery,
    );
}
