//! Vendasta outages: a 60-second one and recovery from it, and how long the bridge waits
//! between attempts.
//!
//! "Down" is two things in turn: for the first 35 s the upstream answers every request 503
//! (so each attempt reaches it and is timestamped there), and for the remaining 25 s its
//! port is closed (connection refused: attempts fail without reaching anything). Then it
//! comes back on the same port and answers 201.
//!
//! Retry timing is checked against `delivery.retry_schedule_seconds`: the wait after
//! attempt N fails is step N within its ±20% jitter (src/delivery/retry.rs), or, when the
//! 503 carries `Retry-After`, that wait unjittered — capped at the schedule's largest step
//! when it asks for more. A wait is measured as the upstream sees it, from the moment it
//! answered one attempt to the arrival of the next; it may exceed its bound by up to
//! [`LATE`] (the worker's poll interval and a busy machine) and fall short by up to
//! [`EARLY`] (the next attempt's own way to the upstream); nothing else is allowed.
//! Runs on the in-process app, so on PostgreSQL too with `TEST_STORE=postgres`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpSocket},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use vendasta_bridge::{config::Secret, store::JobState};

use crate::helpers::{CUSTOMERS_PATH, TestApp, customer, eventually, spawn_app_with};

/// `delivery.retry_schedule_seconds` for the outage: short steps, and enough of them that
/// no job runs out during it (even the shortest jittered sum, 0.8 × 183 s, is far longer
/// than 60 s).
const SCHEDULE: [u64; 25] = [
    1, 2, 4, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,
];
const UNAVAILABLE_FOR: Duration = Duration::from_secs(35);
const REFUSED_FOR: Duration = Duration::from_secs(25);
/// Contacts per kind of 503: plain, `Retry-After: 3`, `Retry-After: 120`.
const PER_KIND: u64 = 6;
/// Allowed lateness of an attempt beyond its bound, and earliness before it.
const LATE: Duration = Duration::from_millis(1_000);
const EARLY: Duration = Duration::from_millis(250);
const ADMIN_TOKEN: &str = "outage-test-admin-token";
/// Held 1.2 s (under the tests' 2 s `vendasta.request_timeout_seconds`), then 503 with
/// `Retry-After: 2`.
const SLOW: Kind = Kind::SlowRetryAfter(2, Duration::from_millis(1_200));

/// How the upstream answers a contact's requests while it is unavailable; chosen by the
/// start of the contact's email.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// 503 without `Retry-After`: the schedule's jittered step applies.
    Plain,
    /// 503 with `Retry-After: <seconds>`.
    RetryAfter(u64),
    /// 503 with `Retry-After: <seconds>`, answered only after holding the request this long.
    SlowRetryAfter(u64, Duration),
}

impl Kind {
    fn of(email: &str) -> Kind {
        if email.starts_with("ra3-") {
            Kind::RetryAfter(3)
        } else if email.starts_with("ra120-") {
            Kind::RetryAfter(120)
        } else if email.starts_with("slow-") {
            SLOW
        } else {
            Kind::Plain
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::Plain => "plain-",
            Kind::RetryAfter(3) => "ra3-",
            Kind::RetryAfter(_) => "ra120-",
            Kind::SlowRetryAfter(..) => "slow-",
        }
    }

    /// The wait the bridge must leave after `attempt` (1-based) failed, before jitter.
    fn wait(self, schedule: &[u64], attempt: usize) -> (Duration, Duration) {
        let largest = Duration::from_secs(*schedule.iter().max().unwrap());
        match self {
            Kind::Plain => {
                let step = Duration::from_secs(schedule[attempt - 1]);
                (step.mul_f64(0.8), step.mul_f64(1.2))
            }
            Kind::RetryAfter(seconds) | Kind::SlowRetryAfter(seconds, _) => {
                let wait = Duration::from_secs(seconds).min(largest);
                (wait, wait)
            }
        }
    }
}

/// One request the upstream received.
#[derive(Debug, Clone)]
struct Attempt {
    arrived: Instant,
    answered: Instant,
    email: String,
    status: u16,
}

#[derive(Debug, Default)]
struct Seen {
    available: bool,
    attempts: Vec<Attempt>,
    /// Email → customer id, for the creates that succeeded.
    customers: BTreeMap<String, String>,
}

type Shared = Arc<Mutex<Seen>>;

async fn create(State(seen): State<Shared>, body: Bytes) -> Response {
    let arrived = Instant::now();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let email = body["data"]["attributes"]["emailAddresses"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let available = seen.lock().unwrap().available;
    let kind = Kind::of(&email);
    if let (false, Kind::SlowRetryAfter(_, hold)) = (available, kind) {
        // A slow answer is part of the fault being simulated.
        tokio::time::sleep(hold).await;
    }
    let mut seen = seen.lock().unwrap();
    let response = if !available {
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"errors": [{"status": "503", "detail": "down for the test"}]})),
        )
            .into_response();
        if let Kind::RetryAfter(seconds) | Kind::SlowRetryAfter(seconds, _) = kind {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    } else if let Some(id) = seen.customers.get(&email) {
        let body = json!({"errors": [{"status": "409", "meta": {"conflictingCustomerId": id}}]});
        (StatusCode::CONFLICT, Json(body)).into_response()
    } else {
        let id = format!("AG-123:CUSTOMER-{}", seen.customers.len() + 1);
        seen.customers.insert(email.clone(), id.clone());
        let body = json!({"data": {"type": "customers", "id": id, "attributes": {}}});
        (StatusCode::CREATED, Json(body)).into_response()
    };
    seen.attempts.push(Attempt {
        arrived,
        answered: Instant::now(),
        email,
        status: response.status().as_u16(),
    });
    response
}

/// Serves the upstream on `listener` until `stop` is cancelled.
fn serve(listener: TcpListener, seen: Shared, stop: CancellationToken) -> JoinHandle<()> {
    let router = Router::new()
        .route(CUSTOMERS_PATH, post(create))
        .with_state(seen);
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
            .unwrap();
    })
}

/// The bridge, and the upstream it delivers to.
struct Setup {
    app: TestApp,
    seen: Shared,
    /// The upstream's address, to come back on after its port was closed.
    addr: SocketAddr,
    /// Closes the upstream's port.
    stop: CancellationToken,
    server: JoinHandle<()>,
}

/// An upstream on a free port, and the bridge pointed at it with `schedule`.
async fn start(schedule: &[u64], available: bool) -> Setup {
    let seen: Shared = Arc::new(Mutex::new(Seen {
        available,
        ..Seen::default()
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = serve(listener, Arc::clone(&seen), stop.clone());
    let schedule = schedule.to_vec();
    let app = spawn_app_with(|config| {
        config.vendasta.customers_url = format!("http://{addr}{CUSTOMERS_PATH}");
        config.delivery.retry_schedule_seconds = schedule;
        config.admin.token = Some(Secret::new(ADMIN_TOKEN));
    })
    .await;
    Setup {
        app,
        seen,
        addr,
        stop,
        server,
    }
}

/// Posts `PER_KIND` new contacts of each kind; every one must be acknowledged.
async fn post_batch(app: &TestApp, batch: &str, kinds: &[Kind]) -> Vec<String> {
    let mut emails = Vec::new();
    for kind in kinds {
        for n in 0..PER_KIND {
            let email = format!("{}{batch}{n}@example.com", kind.prefix());
            let id = format!("wh-outage-{batch}-{}", emails.len());
            let contact = 5_000_000 + 1_000 * u64::from(batch.as_bytes()[0]) + emails.len() as u64;
            let body = customer(contact, &email, "2026-01-01T00:00:00Z");
            let response = app
                .post_shopify("acme", "customers/create", &id, &body)
                .await;
            assert_eq!(
                response.status(),
                200,
                "ingest works while Vendasta is down"
            );
            emails.push(email);
        }
    }
    emails
}

async fn assert_ready(app: &TestApp) {
    let response = app
        .http
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        status, 200,
        "an upstream outage never fails readiness: {body}"
    );
}

/// Checks the wait before every attempt of `email` that followed a 503, among the
/// attempts answered before `until`; returns how many waits were checked. Every attempt
/// of the job must have reached the upstream (so the N-th one seen is attempt N).
fn check_waits(seen: &Seen, email: &str, schedule: &[u64], until: Instant) -> usize {
    let attempts: Vec<&Attempt> = seen
        .attempts
        .iter()
        .filter(|a| a.email == email && a.answered < until)
        .collect();
    let mut checked = 0;
    for (index, pair) in attempts.windows(2).enumerate() {
        assert_eq!(pair[0].status, 503, "{email}: {pair:?}");
        let attempt = index + 1;
        let wait = pair[1].arrived.saturating_duration_since(pair[0].answered);
        let (low, high) = Kind::of(email).wait(schedule, attempt);
        assert!(
            wait + EARLY >= low && wait <= high + LATE,
            "{email}: attempt {} arrived {wait:?} after the upstream answered attempt {attempt} with 503; the schedule allows {low:?}..={high:?}",
            attempt + 1
        );
        checked += 1;
    }
    checked
}

/// Delivers one contact while the upstream is fine, so the bridge's first-use costs
/// (connections, phone number metadata) are paid before any wait is timed.
async fn warm_up(app: &TestApp) {
    let warmup = customer(4_999_999, "warmup@example.com", "2026-01-01T00:00:00Z");
    let response = app
        .post_shopify("acme", "customers/create", "wh-warmup", &warmup)
        .await;
    assert_eq!(response.status(), 200);
    let warm = eventually(Duration::from_secs(15), || async {
        let job = app.job("acme", "wh-warmup").await?;
        (job.state == JobState::Done).then_some(())
    })
    .await;
    assert!(warm.is_some(), "the warm-up contact was delivered");
}

/// Admin API `GET /admin/jobs?{query}`: the `jobs` array.
async fn admin_jobs(app: &TestApp, query: &str) -> Vec<Value> {
    let body: Value = app
        .http
        .get(format!("{}/admin/jobs?{query}", app.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["jobs"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_60_second_outage_is_retried_on_schedule_and_the_backlog_drains_after_it() {
    // Arrange
    let Setup {
        app,
        seen,
        addr,
        stop,
        server,
    } = start(&SCHEDULE, true).await;
    warm_up(&app).await;
    let kinds = [Kind::Plain, Kind::RetryAfter(3), Kind::RetryAfter(120)];

    // Act: the upstream goes down as webhooks arrive; more arrive while its port is closed.
    seen.lock().unwrap().available = false;
    let outage = Instant::now();
    let first = post_batch(&app, "a", &kinds).await;
    // Holding the fault for its specified time; nothing is waited for.
    tokio::time::sleep_until((outage + UNAVAILABLE_FOR).into()).await;
    assert_ready(&app).await;
    stop.cancel();
    server.await.unwrap();
    // The port stays bound but not listening while it is closed: connections are refused,
    // and no other test's server can be handed it before the upstream comes back on it.
    // SO_REUSEADDR because the server's closed connections linger on it in TIME_WAIT.
    let closed = TcpSocket::new_v4().unwrap();
    closed.set_reuseaddr(true).unwrap();
    closed.bind(addr).unwrap();
    let refused_from = Instant::now();
    let second = post_batch(&app, "b", &kinds).await;
    tokio::time::sleep_until((refused_from + REFUSED_FOR).into()).await;
    assert_ready(&app).await;
    seen.lock().unwrap().available = true;
    let listener = closed.listen(1024).unwrap();
    let recovered = Instant::now();
    let _server = serve(listener, Arc::clone(&seen), CancellationToken::new());
    println!(
        "outage: {:?} of 503, {:?} refused",
        refused_from - outage,
        recovered - refused_from
    );

    // Assert: the backlog drains and nothing is dead.
    let total = 1 + first.len() + second.len();
    let drained = eventually(Duration::from_secs(40), || async {
        let counts = app.store.counts().await.ok()?;
        (counts.pending == 0 && counts.in_flight == 0).then_some(counts)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the backlog did not drain: {:?}",
            seen.lock().unwrap().customers
        )
    });
    assert_eq!((drained.done, drained.dead), (total as u64, 0));
    let dead = admin_jobs(&app, "state=dead").await;
    assert!(dead.is_empty(), "no job is dead: {dead:?}");
    let done = admin_jobs(&app, "state=done&limit=100").await;
    assert_eq!(done.len(), total);
    for job in done.iter().filter(|job| job["delivery_id"] != "wh-warmup") {
        assert_eq!(job["outcome"], "created", "{job}");
        assert!(job["attempts"].as_u64().unwrap() > 1, "retried: {job}");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.customers.len(), total, "each contact created once");
    for email in first.iter().chain(&second) {
        assert!(seen.customers.contains_key(email), "{email} was created");
    }

    // Retry timing, for the first batch: all its attempts until the port closed reached
    // the upstream.
    let checked: usize = first
        .iter()
        .map(|email| {
            let checked = check_waits(&seen, email, &SCHEDULE, refused_from);
            assert!(checked >= 2, "{email}: only {checked} retries in 35 s");
            checked
        })
        .sum();
    println!("checked {checked} waits between attempts");
}

#[tokio::test]
async fn the_wait_before_a_retry_counts_from_vendastas_answer() {
    // Arrange: the upstream holds each request 1.2 s, then answers 503 with Retry-After: 2.
    let Setup {
        app,
        seen,
        stop: _stop,
        server: _server,
        ..
    } = start(&[2, 2, 2], true).await;
    warm_up(&app).await;
    seen.lock().unwrap().available = false;

    // Act
    let emails = post_batch(&app, "s", &[SLOW]).await;
    let email = &emails[0];
    let third = eventually(Duration::from_secs(20), || async {
        let seen = seen.lock().unwrap();
        (seen.attempts.iter().filter(|a| &a.email == email).count() >= 3).then_some(())
    })
    .await;
    assert!(third.is_some(), "three attempts were made");

    // Assert: each retry came at least Retry-After after the 503 that asked for it.
    let seen = seen.lock().unwrap();
    assert!(check_waits(&seen, email, &[2, 2, 2], Instant::now()) >= 2);
}
