//! Test harness: spawn the app on port 0 against a wiremock Vendasta, sign requests,
//! poll with deadlines (never sleep to wait), capture logs.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    future::Future,
    io::Write,
    sync::{Arc, LazyLock, Mutex, Once},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vendasta_bridge::{
    app::{App, Listeners},
    config::Config,
    store::{Job, JobState, Store},
};
use wiremock::{MockServer, Request};

pub const SECRET: &str = "test_secret_key";
pub const LOCATION: &str = "AG-123";
pub const TOKEN: &str = "test-token";
pub const CUSTOMERS_PATH: &str = "/business/customers";

/// Everything a test needs to talk to a running bridge.
pub struct TestApp {
    pub ingest: String,
    /// `store.url` of this app's SQLite file or PostgreSQL database, for tests that
    /// assert on the database.
    pub store_url: String,
    pub admin: String,
    pub vendasta: MockServer,
    pub store: Store,
    pub shutdown: CancellationToken,
    pub task: Option<JoinHandle<anyhow::Result<()>>>,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
    /// Set when the suite runs on PostgreSQL (`TEST_STORE=postgres`); dropped with the app.
    _database: Option<crate::pg::TestDatabase>,
}

/// The config every in-process test starts from; `extra` is appended to it.
pub fn test_config(vendasta: &str, store_url: &str, extra: &str) -> Config {
    let file = format!(
        r#"
        [server]
        listen_address = "127.0.0.1:0"
        shutdown_timeout_seconds = 10
        [admin]
        listen_address = "127.0.0.1:0"
        [store]
        url = "{store_url}"
        [vendasta]
        customers_url = "{vendasta}{CUSTOMERS_PATH}"
        token = "{TOKEN}"
        request_timeout_seconds = 2
        [delivery]
        retry_schedule_seconds = [0, 0, 0]
        lease_seconds = 30
        poll_interval_milliseconds = 50
        [[routes]]
        name = "acme"
        source = "shopify"
        secrets = ["{SECRET}", "second-secret"]
        business_location = "{LOCATION}"
        tags = ["from-shopify"]
        [[routes]]
        name = "multi"
        source = "shopify"
        secrets = ["{SECRET}"]
        [routes.shop_locations]
        "north.myshopify.com" = "AG-NORTH"
        {extra}
        "#
    );
    Config::from_sources(Some(&file), None, &BTreeMap::new()).expect("test config is valid")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app in-process; `adjust` may change the config first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    capture_logs();
    let vendasta = MockServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let database = crate::pg::suite_database().await;
    let url = match &database {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}/bridge.db", dir.path().display()),
    };
    let mut config = test_config(&vendasta.uri(), &url, "");
    adjust(&mut config);
    let listeners = Listeners::bind(&config).await.expect("bind");
    let ingest = format!("http://{}", listeners.ingest_addr().expect("addr"));
    let admin = format!("http://{}", listeners.admin_addr().expect("addr"));
    let app = App::build(config).await.expect("app builds");
    let store = app.store().clone();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(app.run(listeners, shutdown.clone()));
    TestApp {
        ingest,
        store_url: url,
        admin,
        vendasta,
        store,
        shutdown,
        task: Some(task),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
        _dir: dir,
        _database: database,
    }
}

impl TestApp {
    /// Posts `body` to `/webhooks/{route}` signed with the test secret.
    pub async fn post_shopify(
        &self,
        route: &str,
        topic: &str,
        webhook_id: &str,
        body: &[u8],
    ) -> reqwest::Response {
        self.post(
            route,
            body,
            &shopify_headers(topic, webhook_id, Some(&sign(SECRET, body))),
        )
        .await
    }

    pub async fn post(
        &self,
        route: &str,
        body: &[u8],
        headers: &[(String, String)],
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/webhooks/{route}", self.ingest))
            .header("content-type", "application/json")
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send().await.expect("request sent")
    }

    /// The job stored for a delivery id on route `acme`-like routes.
    pub async fn job(&self, route: &str, delivery_id: &str) -> Option<Job> {
        self.store
            .job_by_delivery(route, delivery_id)
            .await
            .expect("store read")
    }

    /// Waits until the job reaches a final state (done or dead) and returns it.
    pub async fn settled(&self, route: &str, delivery_id: &str) -> Job {
        eventually(Duration::from_secs(15), || async {
            self.job(route, delivery_id)
                .await
                .filter(|job| matches!(job.state, JobState::Done | JobState::Dead))
        })
        .await
        .unwrap_or_else(|| panic!("job {route}/{delivery_id} did not settle"))
    }

    /// Requests Vendasta received so far.
    pub async fn upstream_requests(&self) -> Vec<Request> {
        self.vendasta.received_requests().await.unwrap_or_default()
    }

    /// Stops the app and waits for it to finish draining.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.expect("app task"),
            None => Ok(()),
        }
    }
}

/// Polls `check` until it returns `Some`, or gives up after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// base64 HMAC-SHA256, as Shopify signs.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

pub fn shopify_headers(topic: &str, webhook_id: &str, hmac: Option<&str>) -> Vec<(String, String)> {
    let mut headers = vec![
        ("X-Shopify-Topic".to_string(), topic.to_string()),
        ("X-Shopify-Webhook-Id".to_string(), webhook_id.to_string()),
        (
            "X-Shopify-Shop-Domain".to_string(),
            "acme.myshopify.com".to_string(),
        ),
        ("X-Shopify-API-Version".to_string(), "2026-07".to_string()),
    ];
    if let Some(hmac) = hmac {
        headers.push(("X-Shopify-Hmac-Sha256".to_string(), hmac.to_string()));
    }
    headers
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// The Shopify create fixture with its id, email and `updated_at` replaced.
pub fn customer(id: u64, email: &str, updated_at: &str) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&fixture("shopify/shopify-customers-create.json")).expect("json");
    body["id"] = Value::from(id);
    body["email"] = Value::from(email);
    body["updated_at"] = Value::from(updated_at);
    serde_json::to_vec(&body).expect("json")
}

pub fn json_body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).expect("upstream body is JSON")
}

/// A 201 as Vendasta sends it.
pub fn created(id: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(201).set_body_json(serde_json::json!({
        "data": { "type": "customers", "id": id, "attributes": {} }
    }))
}

static LOGS: LazyLock<Arc<Mutex<Vec<u8>>>> = LazyLock::new(Default::default);
static INIT: Once = Once::new();

#[derive(Clone)]
struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Routes every log line of this test binary, at every level, into a buffer.
pub fn capture_logs() {
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter("trace,wiremock=off")
            .with_writer(|| Capture)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
    });
}

/// Every captured log line, parsed.
pub fn log_lines() -> Vec<Value> {
    let bytes = LOGS.lock().expect("log buffer").clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Every captured log line as raw text.
pub fn log_text() -> String {
    String::from_utf8_lossy(&LOGS.lock().expect("log buffer")).into_owned()
}
