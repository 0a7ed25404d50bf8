//! Several replicas on one PostgreSQL database: three real bridge processes share a
//! queue, one is SIGKILLed mid-run, and nothing acknowledged is lost, no successful create
//! is repeated by a surviving replica, and no contact ever has two requests upstream at
//! once. Runs only when `TEST_DATABASE_URL` is set; otherwise says so on the terminal.

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::{patch, post},
};
use serde_json::{Value, json};
use vendasta_bridge::store::{JobState, Store};

use crate::{
    binary::{BIN, Bridge},
    helpers::{SECRET, customer, eventually, shopify_headers, sign},
    pg::TestDatabase,
};

const REPLICAS: usize = 3;
const CONTACTS: u64 = 750;
/// One create and five updates per contact: 4,500 distinct webhooks, plus 500 duplicates.
const EVENTS_PER_CONTACT: u64 = 6;
/// Replica 0 is SIGKILLed once this many webhooks have been acknowledged.
const KILL_AFTER_ACKS: usize = 2_000;
/// Upstream latency, so that overlapping requests for one contact would be seen.
const UPSTREAM_LATENCY: Duration = Duration::from_millis(3);

/// What the mock upstream saw. Each replica gets its own URL prefix (`/r0`, `/r1`, …)
/// so every request can be traced to the process that sent it.
#[derive(Default)]
struct Upstream {
    in_flight: HashMap<u64, u32>,
    /// Contacts that had a second request arrive while one was still being answered.
    overlaps: Vec<u64>,
    /// Contact → the replica whose create got the 201.
    created: HashMap<u64, String>,
    /// (contact, replica that repeated the create, replica whose create had succeeded).
    repeated_creates: Vec<(u64, String, String)>,
    patches: usize,
}

type Shared = Arc<Mutex<Upstream>>;

/// Marks one request of `contact` in flight until dropped. A guard, because hyper drops
/// the handler when its client disconnects (as the killed replica's requests do), and
/// that request is no longer in flight then.
struct InFlight {
    upstream: Shared,
    contact: u64,
}

fn enter(upstream: &Shared, contact: u64) -> InFlight {
    let mut seen = upstream.lock().unwrap();
    let count = seen.in_flight.entry(contact).or_default();
    *count += 1;
    if *count > 1 {
        seen.overlaps.push(contact);
    }
    InFlight {
        upstream: Arc::clone(upstream),
        contact,
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut seen = self.upstream.lock().unwrap();
        if let Some(count) = seen.in_flight.get_mut(&self.contact) {
            *count -= 1;
        }
    }
}

fn contact_of_email(body: &Value) -> u64 {
    let email = body["data"]["attributes"]["emailAddresses"][0]
        .as_str()
        .expect("the create carries the contact's email");
    email
        .strip_prefix('c')
        .and_then(|rest| rest.split('@').next())
        .and_then(|n| n.parse().ok())
        .expect("emails are c<N>@example.com")
}

async fn create(
    State(upstream): State<Shared>,
    Path(replica): Path<String>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let contact = contact_of_email(&body);
    let in_flight = enter(&upstream, contact);
    tokio::time::sleep(UPSTREAM_LATENCY).await;
    let id = format!("AG-9:CUSTOMER-{contact}");
    let answer = {
        let mut seen = upstream.lock().unwrap();
        match seen.created.get(&contact).cloned() {
            // As Vendasta does: the customer exists, so the create conflicts.
            Some(original) => {
                seen.repeated_creates.push((contact, replica, original));
                (
                    StatusCode::CONFLICT,
                    Json(
                        json!({ "errors": [{ "status": "409", "detail": "customer exists",
                        "meta": { "conflictingCustomerId": id } }] }),
                    ),
                )
            }
            None => {
                seen.created.insert(contact, replica);
                (
                    StatusCode::CREATED,
                    Json(json!({ "data": { "type": "customers", "id": id, "attributes": {} } })),
                )
            }
        }
    };
    drop(in_flight);
    answer
}

async fn update(
    State(upstream): State<Shared>,
    Path((_replica, id)): Path<(String, String)>,
) -> (StatusCode, Json<Value>) {
    let contact: u64 = id
        .rsplit("CUSTOMER-")
        .next()
        .and_then(|n| n.parse().ok())
        .expect("ids are AG-9:CUSTOMER-<N>");
    let in_flight = enter(&upstream, contact);
    tokio::time::sleep(UPSTREAM_LATENCY).await;
    upstream.lock().unwrap().patches += 1;
    drop(in_flight);
    (
        StatusCode::OK,
        Json(json!({ "data": { "type": "customers", "id": id, "attributes": {} } })),
    )
}

async fn start_upstream(upstream: Shared) -> String {
    let app = Router::new()
        .route("/{replica}/business/customers", post(create))
        .route("/{replica}/business/customers/{id}", patch(update))
        .with_state(upstream);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn start_replica(index: usize, store_url: &str, upstream: &str) -> Bridge {
    let mut command = Command::new(BIN);
    command.arg("serve").env_remove("BRIDGE_CONFIG");
    let env = [
        ("BRIDGE_SERVER__LISTEN_ADDRESS", "127.0.0.1:0".to_string()),
        ("BRIDGE_ADMIN__LISTEN_ADDRESS", "127.0.0.1:0".to_string()),
        ("BRIDGE_STORE__URL", store_url.to_string()),
        ("BRIDGE_STORE__POOL_SIZE", "6".to_string()),
        (
            "BRIDGE_VENDASTA__CUSTOMERS_URL",
            format!("{upstream}/r{index}/business/customers"),
        ),
        ("BRIDGE_VENDASTA__REQUEST_TIMEOUT_SECONDS", "2".to_string()),
        // Short, so the killed replica's leased jobs come back quickly, yet well above
        // the request timeout so a slow delivery on a busy machine keeps its lease.
        ("BRIDGE_DELIVERY__LEASE_SECONDS", "6".to_string()),
        (
            "BRIDGE_DELIVERY__POLL_INTERVAL_MILLISECONDS",
            "200".to_string(),
        ),
        ("VENDASTA_TOKEN", "replica-token".to_string()),
        ("BRIDGE_ROUTES__0__NAME", "acme".to_string()),
        ("BRIDGE_ROUTES__0__SOURCE", "shopify".to_string()),
        ("BRIDGE_ROUTES__0__SECRETS", SECRET.to_string()),
        ("BRIDGE_ROUTES__0__BUSINESS_LOCATION", "AG-9".to_string()),
    ];
    for (name, value) in &env {
        command.env(name, value);
    }
    Bridge::spawn(command)
}

/// One webhook to send: its delivery id, topic, body, and the replica it goes to first.
struct Webhook {
    delivery_id: String,
    topic: &'static str,
    body: Vec<u8>,
    replica: usize,
}

/// Every contact's create, then round after round of its updates (each newer than the
/// last), with 10% of the webhooks sent a second time to a different replica.
fn webhooks() -> Vec<Webhook> {
    let mut list = Vec::new();
    let mut sequence = 0usize;
    for event in 0..EVENTS_PER_CONTACT {
        for contact in 0..CONTACTS {
            let topic = if event == 0 {
                "customers/create"
            } else {
                "customers/update"
            };
            let body = without_phones(&customer(
                contact,
                &format!("c{contact}@example.com"),
                &format!("2026-01-01T00:{event:02}:00Z"),
            ));
            let delivery_id = format!("wh-{contact}-{event}");
            let replica = sequence % REPLICAS;
            // Every ninth webhook (500 of 4,500) is sent again at once to another replica.
            let duplicate = (sequence % 9 == 4).then(|| Webhook {
                delivery_id: delivery_id.clone(),
                topic,
                body: body.clone(),
                replica: (replica + 1) % REPLICAS,
            });
            list.push(Webhook {
                delivery_id,
                topic,
                body,
                replica,
            });
            list.extend(duplicate);
            sequence += 1;
        }
    }
    list
}

/// The body without phone numbers: parsing them is the costliest step of a delivery in a
/// debug build, and this test is about the queue, not the mapping.
pub fn without_phones(body: &[u8]) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(body).unwrap();
    body["phone"] = Value::Null;
    body["default_address"]["phone"] = Value::Null;
    body["addresses"] = json!([]);
    serde_json::to_vec(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_queue_and_a_sigkill_loses_and_doubles_nothing() {
    let Some(database) = TestDatabase::create(
        "three_replicas_share_one_queue_and_a_sigkill_loses_and_doubles_nothing",
    )
    .await
    else {
        return;
    };

    // Arrange: three replicas started together (they race to migrate), one upstream.
    let upstream: Shared = Arc::default();
    let upstream_url = start_upstream(Arc::clone(&upstream)).await;
    let mut bridges: Vec<Bridge> = {
        let url = database.url.clone();
        let upstream_url = upstream_url.clone();
        tokio::task::spawn_blocking(move || {
            let handles: Vec<_> = (0..REPLICAS)
                .map(|index| {
                    let (url, upstream_url) = (url.clone(), upstream_url.clone());
                    std::thread::spawn(move || start_replica(index, &url, &upstream_url))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
        .await
        .unwrap()
    };
    let ingest: Arc<Vec<String>> = Arc::new(bridges.iter().map(|b| b.ingest.clone()).collect());
    let webhooks = Arc::new(webhooks());
    assert_eq!(webhooks.len(), 5_000);

    // Act: post from 24 senders; a webhook whose replica is gone or fails is sent to the
    // next one, as Shopify retries. Replica 0 is SIGKILLed part-way.
    let killed = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let acks = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let (webhooks, next, acked, acks, killed, ingest, client) = (
            Arc::clone(&webhooks),
            Arc::clone(&next),
            Arc::clone(&acked),
            Arc::clone(&acks),
            Arc::clone(&killed),
            Arc::clone(&ingest),
            client.clone(),
        );
        senders.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(webhook) = webhooks.get(index) else {
                    return;
                };
                let signature = sign(SECRET, &webhook.body);
                let mut replica = webhook.replica;
                let mut tries = 0;
                loop {
                    tries += 1;
                    assert!(tries < 20, "no replica accepted {}", webhook.delivery_id);
                    if replica == 0 && killed.load(Ordering::Relaxed) {
                        replica = 1;
                    }
                    let mut request = client
                        .post(format!("{}/webhooks/acme", ingest[replica]))
                        .body(webhook.body.clone());
                    for (name, value) in
                        shopify_headers(webhook.topic, &webhook.delivery_id, Some(&signature))
                    {
                        request = request.header(name, value);
                    }
                    match request.send().await {
                        Ok(response) if response.status() == 200 => {
                            let status: Value = response.json().await.unwrap();
                            assert!(
                                status["status"] == "accepted" || status["status"] == "duplicate",
                                "{status}"
                            );
                            acked.lock().unwrap().insert(webhook.delivery_id.clone());
                            acks.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        _ => replica = (replica + 1) % REPLICAS,
                    }
                }
            }
        });
    }
    let reached = eventually(Duration::from_secs(60), || async {
        (acks.load(Ordering::Relaxed) >= KILL_AFTER_ACKS).then_some(())
    })
    .await;
    assert!(reached.is_some(), "ingest stalled before the kill");
    killed.store(true, Ordering::Relaxed);
    bridges[0].child.kill().unwrap(); // SIGKILL: no drain, leases left behind
    bridges[0].child.wait().unwrap();
    let acked_at_kill = acks.load(Ordering::Relaxed);
    while let Some(result) = senders.join_next().await {
        result.unwrap();
    }

    // Assert: every acknowledged webhook ends up done, with nothing left behind.
    let store = Store::connect(&database.url, 2).await.unwrap();
    let settled = eventually(Duration::from_secs(90), || async {
        let counts = store.counts().await.ok()?;
        (counts.pending == 0 && counts.in_flight == 0).then_some(counts)
    })
    .await;
    let Some(settled) = settled else {
        let tails: Vec<Vec<String>> = bridges[1..]
            .iter()
            .map(|bridge| bridge.log().into_iter().rev().take(15).collect())
            .collect();
        panic!(
            "the queue did not drain: {:?}; the survivors' last log lines: {tails:#?}",
            store.counts().await
        );
    };
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), (CONTACTS * EVENTS_PER_CONTACT) as usize);
    assert_eq!(
        (settled.done, settled.dead),
        (acked.len() as u64, 0),
        "each acknowledged webhook is one job, and all are done"
    );
    for delivery_id in &acked {
        let job = store.job_by_delivery("acme", delivery_id).await.unwrap();
        assert_eq!(
            job.map(|job| job.state),
            Some(JobState::Done),
            "{delivery_id}"
        );
    }

    // Every contact ends linked to its customer with its newest update applied.
    let newest = time::OffsetDateTime::parse(
        &format!("2026-01-01T00:{:02}:00Z", EVENTS_PER_CONTACT - 1),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let newest_ms = i64::try_from(newest.unix_timestamp_nanos() / 1_000_000).unwrap();
    for contact in 0..CONTACTS {
        let link = store.contact("acme", &contact.to_string()).await.unwrap();
        assert_eq!(
            (link.customer_id, link.applied_updated_at),
            (Some(format!("AG-9:CUSTOMER-{contact}")), Some(newest_ms)),
            "contact {contact}"
        );
    }

    {
        let seen = upstream.lock().unwrap();
        assert!(
            seen.overlaps.is_empty(),
            "contacts with two requests in flight at once: {:?}",
            seen.overlaps
        );
        assert_eq!(
            seen.created.len(),
            CONTACTS as usize,
            "every contact was created once"
        );
        // A create is repeated only when the replica that sent the successful one was killed
        // before it could record the link (at-least-once); a surviving replica never
        // repeats a create it saw succeed.
        for (contact, by, original) in &seen.repeated_creates {
            assert_eq!(
                original, "r0",
                "contact {contact}: {by} repeated a create that {original} had completed"
            );
        }
        assert!(
            seen.created.values().any(|replica| replica == "r0"),
            "the killed replica did deliver before it died"
        );
        let _ignored = writeln!(
            std::io::stderr(),
            "replicas: {acked_at_kill} acks before the SIGKILL; {} creates, {} patches, {} creates repeated after the kill",
            seen.created.len(),
            seen.patches,
            seen.repeated_creates.len()
        );
    }

    store.close().await;
    for bridge in &mut bridges[1..] {
        bridge.signal("TERM");
        assert_eq!(bridge.wait_exit(Duration::from_secs(30)), Some(0));
    }
    drop(bridges);
    drop(database);
}
