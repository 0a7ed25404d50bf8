//! OpenTelemetry traces (`--features otel`): the built binary, pointed at an OTLP/HTTP
//! receiver on loopback, exports a span per webhook and per delivery carrying the job id,
//! flushes them on SIGTERM, and never puts the contact's email or phone in them.
#![cfg(feature = "otel")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, routing::post};
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use vendasta_bridge::http::mock_vendasta::{MockOptions, MockVendasta};

const BIN: &str = env!("CARGO_BIN_EXE_vendasta-bridge");
const SECRET: &str = "otel_test_secret";
/// Distinctive, so finding its bytes in an export cannot be a coincidence.
const ROUTE: &str = "otel-trace-route";
const EMAIL: &str = "traced.person@example.com";
const PHONE: &str = "+16135550123";

/// Bodies POSTed to `/v1/traces`.
type Received = Arc<Mutex<Vec<Bytes>>>;

async fn collector() -> (String, Received) {
    let received = Received::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(|State(seen): State<Received>, body: Bytes| async move {
                seen.lock().unwrap().push(body);
                // An empty ExportTraceServiceResponse: full success.
                ([("content-type", "application/x-protobuf")], Bytes::new())
            }),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), received)
}

fn write_config(dir: &Path, customers_url: &str, otlp_endpoint: &str) -> std::path::PathBuf {
    let path = dir.join("bridge.toml");
    let text = format!(
        r#"
        [server]
        listen_address = "127.0.0.1:0"
        shutdown_timeout_seconds = 20
        [admin]
        listen_address = "127.0.0.1:0"
        [store]
        url = "sqlite://{}/data/bridge.db"
        [vendasta]
        customers_url = "{customers_url}"
        token = "otel-test-token"
        request_timeout_seconds = 5
        [delivery]
        poll_interval_milliseconds = 50
        [telemetry]
        otlp_endpoint = "{otlp_endpoint}"
        service_name = "bridge-under-otel-test"
        [[routes]]
        name = "{ROUTE}"
        source = "shopify"
        secrets = ["{SECRET}"]
        business_location = "AG-123"
        "#,
        dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A running `vendasta-bridge serve` and its stdout lines.
struct Bridge {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Bridge {
    fn start(config: &Path) -> (Bridge, String) {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut bridge = Bridge { child, lines };
        let started = bridge.wait_for_line("Bridge started.", Duration::from_secs(30));
        let ingest = format!("http://{}", started["ingest"].as_str().unwrap());
        (bridge, ingest)
    }

    /// Polls stdout for a JSON log line with `message`, until a deadline.
    fn wait_for_line(&mut self, message: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let found = self.lines.lock().unwrap().iter().find_map(|line| {
                let json: Value = serde_json::from_str(line).ok()?;
                (json["message"] == message).then_some(json)
            });
            if let Some(json) = found {
                return json;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut stderr)
                    .unwrap();
                panic!("the bridge exited with {status} before logging {message:?}: {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "no {message:?} line: {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM".to_string(), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the bridge did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn shopify_customer() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": 706_405_506_930_370_000u64,
        "email": EMAIL,
        "first_name": "Traced",
        "last_name": "Person",
        "phone": PHONE,
        "created_at": "2026-01-01T00:00:00-05:00",
        "updated_at": "2026-01-01T00:00:00-05:00",
        "addresses": [],
        "tags": ""
    }))
    .unwrap()
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_for_a_webhook_and_its_delivery_reach_the_collector_with_the_job_id_and_no_email() {
    // Arrange: an OTLP/HTTP receiver, a Vendasta stand-in, and the bridge pointed at both.
    let (endpoint, received) = collector().await;
    let vendasta = MockVendasta::start("127.0.0.1:0".parse().unwrap(), MockOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &vendasta.customers_url(), &endpoint);
    let (mut bridge, ingest) = Bridge::start(&config);

    // Act: one signed webhook, delivered; then SIGTERM, which flushes the spans.
    let body = shopify_customer();
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .post(format!("{ingest}/webhooks/{ROUTE}"))
        .header("X-Shopify-Topic", "customers/create")
        .header("X-Shopify-Webhook-Id", "otel-webhook-1")
        .header("X-Shopify-Shop-Domain", "acme.myshopify.com")
        .header("X-Shopify-Hmac-Sha256", sign(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let ack: Value = response.json().await.unwrap();
    let job_id = ack["id"]
        .as_str()
        .expect("accepted with a job id")
        .to_string();
    let delivered = bridge.wait_for_line("Delivery finished.", Duration::from_secs(30));
    assert_eq!(delivered["job_id"], job_id.as_str());
    bridge.terminate();
    assert_eq!(bridge.wait_exit(Duration::from_secs(30)), Some(0));

    // Assert: the export holds a webhook span and a delivery span, each carrying the job
    // id and route as attributes, and nowhere (spans, events, resource) the contact's
    // email or phone.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (exported, spans) = loop {
        let bodies = received.lock().unwrap().clone();
        let spans: Vec<Span> = bodies.iter().flat_map(|body| spans_in(body)).collect();
        if spans.iter().any(|span| span.name == "delivery") {
            break (bodies.concat(), spans);
        }
        assert!(
            Instant::now() < deadline,
            "no delivery span reached the collector: {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let webhook = spans
        .iter()
        .find(|s| s.name == "webhook")
        .expect("a webhook span");
    assert_eq!(webhook.attribute("route"), Some(ROUTE));
    assert_eq!(webhook.attribute("source"), Some("shopify"));
    assert_eq!(webhook.attribute("delivery_id"), Some("otel-webhook-1"));
    assert_eq!(webhook.attribute("outcome"), Some("accepted"));
    assert_eq!(webhook.attribute("job_id"), Some(job_id.as_str()));
    let delivery = spans.iter().find(|s| s.name == "delivery").unwrap();
    assert_eq!(delivery.attribute("route"), Some(ROUTE));
    assert_eq!(delivery.attribute("job_id"), Some(job_id.as_str()));
    assert_eq!(delivery.attribute("outcome"), Some("created"));
    assert!(
        contains(&exported, "bridge-under-otel-test"),
        "service.name"
    );
    assert!(
        !contains(&exported, EMAIL),
        "an email reached the collector"
    );
    assert!(
        !contains(&exported, "6135550123"),
        "a phone number reached the collector"
    );
    assert!(!contains(&exported, SECRET) && !contains(&exported, "otel-test-token"));
}

/// A span as the collector received it: its name and its string attributes.
#[derive(Debug)]
struct Span {
    name: String,
    attributes: Vec<(String, String)>,
}

impl Span {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The spans of an OTLP `ExportTraceServiceRequest`: resource_spans (1) → scope_spans (2)
/// → spans (2), each with name (5) and attributes (9: KeyValue key 1, AnyValue 2 whose
/// string_value is 1). A hand-rolled reader keeps the default build free of a protobuf
/// dependency it would never use.
fn spans_in(body: &[u8]) -> Vec<Span> {
    let mut spans = Vec::new();
    for resource in submessages(body, 1) {
        for scope in submessages(resource, 2) {
            for span in submessages(scope, 2) {
                let name = submessages(span, 5)
                    .first()
                    .map(|b| text(b))
                    .unwrap_or_default();
                let attributes = submessages(span, 9)
                    .into_iter()
                    .filter_map(|kv| {
                        let key = text(submessages(kv, 1).first()?);
                        let value = submessages(kv, 2).first().copied()?;
                        Some((key, text(submessages(value, 1).first()?)))
                    })
                    .collect();
                spans.push(Span { name, attributes });
            }
        }
    }
    spans
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The length-delimited fields numbered `field` of one protobuf message.
fn submessages(mut message: &[u8], field: u64) -> Vec<&[u8]> {
    let mut found = Vec::new();
    while !message.is_empty() {
        let Some(tag) = varint(&mut message) else {
            break;
        };
        let skip = match tag & 7 {
            0 => {
                varint(&mut message);
                0
            }
            1 => 8,
            5 => 4,
            2 => match varint(&mut message) {
                Some(len) if (len as usize) <= message.len() => {
                    if tag >> 3 == field {
                        found.push(&message[..len as usize]);
                    }
                    len as usize
                }
                _ => break,
            },
            _ => break,
        };
        if skip > message.len() {
            break;
        }
        message = &message[skip..];
    }
    found
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in 0..10 {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}
