//! `vendasta-bridge demo`: the whole flow on one machine, with no accounts, narrated.
//!
//! Starts the Vendasta stand-in on loopback (pre-seeded with one customer), then the real
//! bridge (`App` on 127.0.0.1 port 0, a temporary SQLite store, a `demo` route with a
//! freshly generated secret), posts signed Shopify webhooks — a create, an update of the
//! same contact, a second contact whose email Vendasta already has, and a provider retry
//! — and tells what happened after each one. Every sentence is built from what the bridge
//! answered, what the store recorded for the job, and what the stand-in received; nothing
//! is canned. stdout is the story; logs go to stderr, and only when `RUST_LOG` is set.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::{EXIT_RUNTIME, say};
use crate::{
    app::{App, Listeners},
    config::Config,
    http::mock_vendasta::{MockOptions, MockRequest, MockVendasta},
    store::{Job, JobId, JobState, Store},
    vendasta::client::http_client,
};

/// The demo's business location in the stand-in.
const LOCATION: &str = "AG-DEMO";
/// The route the demo's webhooks are posted to.
const ROUTE: &str = "demo";
/// How long one step may take before the demo gives up.
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the demo; exit 0 when every step happened as narrated.
pub fn run() -> ExitCode {
    init_logs();
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vendasta-bridge demo: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let dir = temp_dir();
    let result = runtime.block_on(demo(&dir));
    // The store lives only for the demo; a leftover directory would just be litter.
    if let Err(error) = std::fs::remove_dir_all(&dir) {
        eprintln!(
            "vendasta-bridge demo: could not remove {}: {error}",
            dir.display()
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vendasta-bridge demo: {error:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Logs only on request, and to stderr, so stdout reads as a story.
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _already_set = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

fn temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    std::env::temp_dir().join(format!(
        "vendasta-bridge-demo-{}-{nanos}",
        std::process::id()
    ))
}

async fn demo(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create a temporary directory {}", dir.display()))?;

    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mock = MockVendasta::start(loopback, MockOptions::default()).await?;
    say(&format!(
        "A Vendasta stand-in is listening on {} (an in-memory copy of Vendasta's customers API).",
        mock.customers_url()
    ));
    let existing_email = "grace@example.com";
    let existing = mock.seed_customer(
        LOCATION,
        json!({ "givenName": "Grace", "familyName": "Hopper", "emailAddresses": [existing_email] })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    say(&format!(
        "Vendasta already has one customer in business location {LOCATION}: Grace Hopper, {existing}."
    ));

    // Not a cryptographic generator, and it need not be: the secret guards a loopback
    // port for the minute the demo runs, and shows that every route has its own secret.
    let secret = format!("demo-{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let store_url = format!("sqlite://{}/demo.db", dir.display());
    let config = demo_config(&mock.customers_url(), &store_url, &secret)?;
    let listeners = Listeners::bind(&config).await?;
    let ingest = format!("http://{}/webhooks/{ROUTE}", listeners.ingest_addr()?);
    let app = App::build(config).await?;
    let store = app.store().clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(listeners, shutdown.clone()));
    say(&format!(
        "The bridge is running: it receives Shopify webhooks at {ingest}, keeps its queue in a temporary SQLite file, and signs route `{ROUTE}` with a secret generated just now."
    ));

    let steps = async {
        let shop = Shop {
            url: ingest,
            secret,
        };
        say("");
        say("1. A new customer signs up in the shop: Shopify sends customers/create for contact 1001 (Ada Lovelace).");
        let create = ada("Lovelace", "2026-01-01T10:00:00Z");
        let seen = mock.requests().len();

        let job = shop
            .post("customers/create", "wh-1", &create, &store)
            .await?;
        let (done, upstream) = settled(&store, &mock, job, seen).await?;
        narrate_delivery(&done, &upstream);

        say("");
        say("2. Ada changes her last name: Shopify sends customers/update for contact 1001.");
        let update = ada("King", "2026-01-02T10:00:00Z");
        let seen = mock.requests().len();

        let job = shop
            .post("customers/update", "wh-2", &update, &store)
            .await?;
        let (done, upstream) = settled(&store, &mock, job, seen).await?;
        narrate_delivery(&done, &upstream);

        say("");
        say("3. Grace, who is already in Vendasta, buys for the first time: Shopify sends customers/create for contact 1002 with the email Vendasta already has.");
        let grace = customer(1002, "Grace", "Hopper", existing_email, "2026-01-03T10:00:00Z");
        let seen = mock.requests().len();

        let job = shop
            .post("customers/create", "wh-3", &grace, &store)
            .await?;
        let (done, upstream) = settled(&store, &mock, job, seen).await?;
        narrate_delivery(&done, &upstream);

        say("");
        say("4. Shopify did not see the first answer in time and sends webhook wh-1 again.");
        let before = mock.requests().len();
        shop.post("customers/create", "wh-1", &create, &store)
            .await?;
        let after = mock.requests().len();
        say(&format!(
            "   Vendasta received {} new requests for it: the retry was recognised by its X-Shopify-Webhook-Id and not delivered twice.",
            after - before
        ));

        say("");
        let counts = store.counts().await?;
        say(&format!(
            "Done. The store has {} jobs done, {} dead, {} pending; the stand-in holds {} customers after {} requests.",
            counts.done,
            counts.dead,
            counts.pending,
            mock.customers().len(),
            mock.requests().len()
        ));
        anyhow::Ok(())
    }
    .await;

    shutdown.cancel();
    let stopped = task.await;
    mock.stop().await;
    steps?;
    stopped
        .context("the bridge task panicked")?
        .context("the bridge failed while stopping")?;
    say(
        "The bridge drained and stopped; the temporary store is removed. See README.md to set up a real route.",
    );
    Ok(())
}

/// What the worker did with a job, told from the stored job and the stand-in's log.
fn narrate_delivery(job: &Job, upstream: &[MockRequest]) {
    for request in upstream {
        say(&format!(
            "   The delivery worker sent {} {} to Vendasta, which answered {}.",
            request.method, request.path, request.status
        ));
    }
    let customer = job.customer_id.as_deref().unwrap_or("(none)");
    let outcome = job.outcome.as_deref().unwrap_or("(none)");
    let line = match (job.state, outcome) {
        (JobState::Done, "created") => format!(
            "   Delivered: job {} created Vendasta customer {customer} and linked the contact to it (outcome: created).",
            job.id
        ),
        (JobState::Done, "updated") => format!(
            "   Delivered: job {} was PATCHed onto the linked customer {customer}; only the fields in the webhook changed (outcome: updated).",
            job.id
        ),
        (JobState::Done, "conflict") => format!(
            "   Vendasta answered 409 Conflict: it already has this email as customer {customer}. The bridge linked the contact to that existing customer and acknowledged job {} (outcome: conflict).",
            job.id
        ),
        (state, outcome) => format!(
            "   Job {} ended {} with outcome {outcome}: {}",
            job.id,
            state.as_str(),
            job.last_error.as_deref().unwrap_or("no reason recorded")
        ),
    };
    say(&line);
}

/// Waits until the job is done or dead; returns it with the requests Vendasta received
/// after the first `seen`. The caller counts those before posting the webhook, not after:
/// the worker may deliver the job before the post's own answer is back.
async fn settled(
    store: &Store,
    mock: &MockVendasta,
    id: JobId,
    seen: usize,
) -> anyhow::Result<(Job, Vec<MockRequest>)> {
    let end = Instant::now() + STEP_DEADLINE;
    loop {
        if let Some(job) = store.job(id).await?
            && matches!(job.state, JobState::Done | JobState::Dead)
        {
            let upstream = mock.requests().into_iter().skip(seen).collect();
            return Ok((job, upstream));
        }
        if Instant::now() >= end {
            bail!(
                "job {id} was not delivered within {} seconds",
                STEP_DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Plays Shopify: signs and posts webhooks.
struct Shop {
    url: String,
    secret: String,
}

impl Shop {
    /// Posts a signed webhook and narrates the bridge's answer; returns the job id.
    async fn post(
        &self,
        topic: &str,
        webhook_id: &str,
        body: &Value,
        store: &Store,
    ) -> anyhow::Result<JobId> {
        let body = serde_json::to_vec(body)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes())
            .context("cannot key the demo's HMAC")?;
        mac.update(&body);
        let signature = BASE64.encode(mac.finalize().into_bytes());
        // A client per webhook: four requests do not need a pool, and this way no reqwest
        // type is named outside `vendasta/`.
        let response = http_client(Duration::from_secs(10))?
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-shopify-topic", topic)
            .header("x-shopify-hmac-sha256", signature)
            .header("x-shopify-webhook-id", webhook_id)
            .header("x-shopify-shop-domain", "demo-shop.myshopify.com")
            .header("x-shopify-api-version", "2026-01")
            .body(body)
            .send()
            .await
            .context("cannot reach the bridge")?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .context("the bridge's answer is not JSON")?;
        let verdict = answer["status"].as_str().unwrap_or("?");
        // The ack carries the id as a string (ids may outgrow JSON numbers elsewhere).
        let id = match &answer["id"] {
            Value::String(text) => text.parse().ok(),
            other => other.as_i64(),
        };
        let Some(id) = id.map(JobId) else {
            bail!("the bridge answered {status} {answer} without a job id");
        };
        let stored = store.job(id).await?.is_some();
        say(&format!(
            "   The bridge checked the HMAC signature, {} and answered {status} \"{verdict}\" with job id {id}.",
            if stored {
                "found the job on disk"
            } else {
                "did not store it"
            }
        ));
        Ok(id)
    }
}

fn ada(last_name: &str, updated_at: &str) -> Value {
    customer(1001, "Ada", last_name, "ada@example.com", updated_at)
}

/// A customer in the shape of Shopify's `customers/create|update` payload.
fn customer(id: u64, first: &str, last: &str, email: &str, updated_at: &str) -> Value {
    json!({
        "id": id,
        "email": email,
        "first_name": first,
        "last_name": last,
        "phone": null,
        "created_at": "2026-01-01T10:00:00Z",
        "updated_at": updated_at,
        "tags": "demo",
        "email_marketing_consent": { "state": "subscribed", "opt_in_level": "single_opt_in" },
        "default_address": {
            "address1": "1 Demo Street", "city": "Saskatoon", "province_code": "SK",
            "country_code": "CA", "default": true
        }
    })
}

fn demo_config(customers_url: &str, store_url: &str, secret: &str) -> anyhow::Result<Config> {
    let file = format!(
        r#"
        [server]
        listen_address = "127.0.0.1:0"
        shutdown_timeout_seconds = 10
        [admin]
        listen_address = "127.0.0.1:0"
        [log]
        format = "pretty"
        [store]
        url = "{store_url}"
        [vendasta]
        customers_url = "{customers_url}"
        token = "demo-token"
        request_timeout_seconds = 5
        [delivery]
        retry_schedule_seconds = [1, 2]
        poll_interval_milliseconds = 100
        [[routes]]
        name = "{ROUTE}"
        source = "shopify"
        secrets = ["{secret}"]
        business_location = "{LOCATION}"
        "#
    );
    // The demo's own settings only: no BRIDGE_* variable of the shell may change them.
    Config::from_sources(Some(&file), Some("the demo's config"), &BTreeMap::new())
        .map_err(|error| anyhow::anyhow!("the demo's config is invalid: {error}"))
}
