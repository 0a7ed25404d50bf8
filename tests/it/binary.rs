//! The built binary, run as the container runs it: exit codes, crash recovery, and a
//! graceful SIGTERM.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;
use vendasta_bridge::{
    http::mock_vendasta::{MockOptions, MockVendasta},
    store::{JobState, Store},
};
use wiremock::{Mock, MockServer, matchers::method};

use crate::helpers::{SECRET, created, customer, eventually, shopify_headers, sign};

pub const BIN: &str = env!("CARGO_BIN_EXE_vendasta-bridge");

/// A running `vendasta-bridge serve`.
pub struct Bridge {
    pub child: Child,
    pub ingest: String,
    pub admin: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Bridge {
    /// Starts `serve --config FILE`.
    pub fn start(config: &Path) -> Bridge {
        let mut command = Command::new(BIN);
        command.args(["serve", "--config"]).arg(config);
        Bridge::spawn(command)
    }

    /// Spawns `command` and waits for its "Bridge started." line to learn its ports.
    pub fn spawn(mut command: Command) -> Bridge {
        let mut child = command
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let started = lines.lock().unwrap().iter().find_map(|line| {
                let json: Value = serde_json::from_str(line).ok()?;
                (json["message"] == "Bridge started.").then(|| {
                    (
                        format!("http://{}", json["ingest"].as_str().unwrap()),
                        format!("http://{}", json["admin"].as_str().unwrap()),
                    )
                })
            });
            if let Some((ingest, admin)) = started {
                return Bridge {
                    child,
                    ingest,
                    admin,
                    lines,
                };
            }
            if let Some(status) = child.try_wait().unwrap() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
                panic!("the bridge exited with {status} before starting: {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "the bridge did not start: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the bridge did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // The process may already have exited; either way it must not outlive the test.
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

pub fn test_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Writes `DIR/bridge.toml`: store `sqlite://DIR/data/bridge.db`, route `acme` (Shopify),
/// a retry schedule of sixty 1-second steps and a 6-second lease; `extra` goes in
/// `[delivery]`.
///
/// Sixty steps, so no test's job is given up while Vendasta is unreachable, however slow
/// a busy CI machine makes the test (with ten, a first run that lasted 8 s could park
/// every job as dead before its restart).
pub fn write_config(dir: &Path, customers_url: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("bridge.toml");
    let schedule = vec!["1"; 60].join(", ");
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
        token = "binary-test-token"
        request_timeout_seconds = 5
        [delivery]
        retry_schedule_seconds = [{schedule}]
        lease_seconds = 6
        poll_interval_milliseconds = 50
        {extra}
        [[routes]]
        name = "acme"
        source = "shopify"
        secrets = ["{SECRET}"]
        business_location = "AG-123"
        "#,
        dir.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A signed Shopify webhook to route `acme` of the bridge at `ingest`, not yet sent.
pub fn signed_request(
    client: &reqwest::Client,
    ingest: &str,
    topic: &str,
    id: &str,
    body: &[u8],
) -> reqwest::RequestBuilder {
    let mut request = client
        .post(format!("{ingest}/webhooks/acme"))
        .body(body.to_vec());
    for (name, value) in shopify_headers(topic, id, Some(&sign(SECRET, body))) {
        request = request.header(name, value);
    }
    request
}

async fn post(
    client: &reqwest::Client,
    bridge: &Bridge,
    id: &str,
    body: &[u8],
) -> reqwest::Response {
    let request = signed_request(client, &bridge.ingest, "customers/create", id, body);
    // A 503 asks the provider to come back later; retry as Shopify would (at once here:
    // a 503 already took the commit deadline), so a busy machine cannot turn a correct
    // 503 into a failed test.
    for _ in 0..5 {
        let retry = request.try_clone().expect("plain body");
        let response = retry.send().await.expect("posted");
        if response.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return response;
        }
    }
    request.send().await.expect("posted")
}

#[test]
fn a_config_with_three_mistakes_prints_all_three_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
        [vendasta]
        customers_url = "prod.apigateway.co/business/customers"
        token = "t"
        concurency = 4
        [[routes]]
        name = "acme"
        source = "shopify"
        secrets = ["${UNSET_WEBHOOK_SECRET_FOR_TEST}"]
        business_location = "AG-1"
        "#,
    )
    .unwrap();

    for command in ["serve", "check-config"] {
        let output = Command::new(BIN)
            .args([command, "--config"])
            .arg(&path)
            .env_remove("UNSET_WEBHOOK_SECRET_FOR_TEST")
            .output()
            .unwrap();

        assert_eq!(output.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("3 problems"), "{command}: {stderr}");
        assert!(
            stderr.contains("vendasta.customers_url") && stderr.contains("https://"),
            "{stderr}"
        );
        assert!(
            stderr.contains("unknown key `vendasta.concurency`"),
            "{stderr}"
        );
        assert!(
            stderr.contains("UNSET_WEBHOOK_SECRET_FOR_TEST is not set")
                && stderr.contains("routes[0].secrets[0]"),
            "{stderr}"
        );
    }
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "https://prod.apigateway.co/business/customers",
        "",
    );

    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("customers_url = \"https://prod.apigateway.co/business/customers\""),
        "{stdout}"
    );
    assert!(stdout.contains("[redacted]"));
    assert!(
        !stdout.contains(SECRET) && !stdout.contains("binary-test-token"),
        "{stdout}"
    );
    let usage = Command::new(BIN)
        .arg("serve")
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2), "a usage error exits 2");
}

#[tokio::test]
async fn webhooks_acked_while_vendasta_is_down_survive_sigkill_and_are_delivered_after_restart() {
    // Arrange: Vendasta refuses connections. Its port stays bound (not listening) for the
    // whole test: a port merely closed could be handed to another test's server, which
    // would then receive, and end, this test's deliveries.
    let dir = tempfile::tempdir().unwrap();
    let refusing = tokio::net::TcpSocket::new_v4().unwrap();
    refusing.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let down = format!(
        "http://{}/business/customers",
        refusing.local_addr().unwrap()
    );
    let config = write_config(dir.path(), &down, "");
    let client = test_client();
    let mut first = Bridge::start(&config);

    // Act: ack 20 webhooks, then kill -9.
    let mut acked = Vec::new();
    for n in 0..20u64 {
        let body = customer(
            8_000_000_000_000_000 + n,
            &format!("c{n}@example.com"),
            "2026-01-01T00:00:00Z",
        );
        let response = post(&client, &first, &format!("wh-kill-{n}"), &body).await;
        assert_eq!(response.status(), 200);
        acked.push(format!("wh-kill-{n}"));
    }
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(5));

    // Restart against a working Vendasta: the stand-in, which (like Vendasta) answers a
    // second create of the same email with 409, so duplicates would show as extra
    // requests and never as extra customers.
    let vendasta = MockVendasta::start("127.0.0.1:0".parse().unwrap(), MockOptions::default())
        .await
        .unwrap();
    let config = write_config(dir.path(), &vendasta.customers_url(), "");
    let mut bridge = Bridge::start(&config);

    // Assert: every acked webhook became exactly one Vendasta customer.
    let delivered = eventually(Duration::from_secs(30), || async {
        let customers = vendasta.customers();
        (customers.len() >= acked.len()).then_some(customers)
    })
    .await;
    let store = Store::open(&format!("sqlite://{}/data/bridge.db", dir.path().display()))
        .await
        .unwrap();
    let Some(customers) = delivered else {
        // Say where each webhook is, so a failure on a busy CI machine explains itself.
        let mut states = Vec::new();
        for id in &acked {
            let job = store.job_by_delivery("acme", id).await.unwrap();
            states.push(format!(
                "{id}: {:?}",
                job.map(|job| (job.state, job.attempts, job.outcome, job.last_error))
            ));
        }
        panic!(
            "{} of {} acked webhooks delivered; jobs (state, attempts, outcome, last error): \
             {states:#?}; log before the kill: {:#?}; log after it: {:#?}",
            vendasta.customers().len(),
            acked.len(),
            first.log(),
            bridge.log()
        );
    };
    bridge.signal("TERM");
    assert_eq!(bridge.wait_exit(Duration::from_secs(20)), Some(0));
    let mut emails: Vec<String> = vendasta
        .customers()
        .iter()
        .filter_map(|c| {
            c.attributes["emailAddresses"][0]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    emails.sort();
    emails.dedup();
    assert_eq!(customers.len(), acked.len(), "no contact was created twice");
    assert_eq!(emails.len(), acked.len());
    for id in &acked {
        let job = store
            .job_by_delivery("acme", id)
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(job.state, JobState::Done, "{id}");
    }
}

#[tokio::test]
async fn sigterm_during_a_slow_delivery_lets_it_finish_and_exits_0() {
    // Arrange: Vendasta answers after 2 s.
    let dir = tempfile::tempdir().unwrap();
    let vendasta = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created("AG-123:CUSTOMER-SLOW").set_delay(Duration::from_secs(2)))
        .expect(1)
        .mount(&vendasta)
        .await;
    let config = write_config(
        dir.path(),
        &format!("{}/business/customers", vendasta.uri()),
        "",
    );
    let client = test_client();
    let mut bridge = Bridge::start(&config);
    let body = customer(31, "slow@example.com", "2026-01-01T00:00:00Z");
    assert_eq!(post(&client, &bridge, "wh-slow", &body).await.status(), 200);
    eventually(Duration::from_secs(10), || async {
        let requests = vendasta.received_requests().await.unwrap_or_default();
        (!requests.is_empty()).then_some(())
    })
    .await
    .expect("the delivery is in flight");

    // Act
    bridge.signal("TERM");

    // Assert: readiness turns 503 while draining, the delivery completes, exit 0.
    let draining = eventually(Duration::from_secs(2), || async {
        let response = client
            .get(format!("{}/readyz", bridge.admin))
            .send()
            .await
            .ok()?;
        (response.status() == 503).then_some(response)
    })
    .await
    .expect("readyz answers 503 while draining");
    let body: Value = draining.json().await.unwrap();
    assert_eq!(body["checks"]["draining"]["ok"], false);
    assert_eq!(bridge.wait_exit(Duration::from_secs(20)), Some(0));
    let log = bridge.log();
    assert!(
        log.iter()
            .any(|l| l.contains("Delivery finished.") && l.contains("\"outcome\":\"created\"")),
        "{log:?}"
    );
    let store = Store::open(&format!("sqlite://{}/data/bridge.db", dir.path().display()))
        .await
        .unwrap();
    let job = store
        .job_by_delivery("acme", "wh-slow")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state, job.customer_id.as_deref()),
        (JobState::Done, Some("AG-123:CUSTOMER-SLOW"))
    );
}

#[tokio::test]
async fn the_binary_runs_on_environment_variables_alone_as_the_container_does() {
    // Arrange: no config file; everything from BRIDGE_* variables, like the image.
    let dir = tempfile::tempdir().unwrap();
    let vendasta = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(created("AG-9:CUSTOMER-1"))
        .expect(1)
        .mount(&vendasta)
        .await;
    let env = [
        ("BRIDGE_SERVER__LISTEN_ADDRESS", "127.0.0.1:0".to_string()),
        ("BRIDGE_ADMIN__LISTEN_ADDRESS", "127.0.0.1:0".to_string()),
        (
            "BRIDGE_STORE__URL",
            format!("sqlite://{}/data/bridge.db", dir.path().display()),
        ),
        (
            "BRIDGE_VENDASTA__CUSTOMERS_URL",
            format!("{}/business/customers", vendasta.uri()),
        ),
        (
            "BRIDGE_DELIVERY__POLL_INTERVAL_MILLISECONDS",
            "50".to_string(),
        ),
        ("VENDASTA_TOKEN", "env-token".to_string()),
        ("BRIDGE_ROUTES__0__NAME", "acme".to_string()),
        ("BRIDGE_ROUTES__0__SOURCE", "shopify".to_string()),
        ("BRIDGE_ROUTES__0__SECRETS", SECRET.to_string()),
        ("BRIDGE_ROUTES__0__BUSINESS_LOCATION", "AG-9".to_string()),
    ];
    let mut command = Command::new(BIN);
    command.arg("serve").env_remove("BRIDGE_CONFIG");
    for (name, value) in &env {
        command.env(name, value);
    }
    let mut bridge = Bridge::spawn(command);
    let client = test_client();

    // Act
    let body = customer(55, "env@example.com", "2026-01-01T00:00:00Z");
    let response = post(&client, &bridge, "wh-env", &body).await;

    // Assert
    assert_eq!(response.status(), 200);
    let request = eventually(Duration::from_secs(10), || async {
        vendasta
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .next()
    })
    .await
    .expect("delivered");
    assert_eq!(request.headers["authorization"], "Bearer env-token");
    bridge.signal("TERM");
    assert_eq!(bridge.wait_exit(Duration::from_secs(20)), Some(0));
}

#[test]
fn healthcheck_exits_0_against_a_running_bridge_and_1_once_it_has_stopped() {
    let healthcheck = |args: &[&str]| {
        let output = Command::new(BIN)
            .arg("healthcheck")
            .args(args)
            .env_remove("BRIDGE_CONFIG")
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9/business/customers", "");
    // The admin listener on the wildcard address and a known port, as in the image, so
    // `healthcheck --config` has to find it on loopback by itself.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[admin]\n        listen_address = \"127.0.0.1:0\"",
        &format!("[admin]\n        listen_address = \"0.0.0.0:{port}\""),
        1,
    );
    assert!(text.contains(&format!("0.0.0.0:{port}")));
    std::fs::write(&config, text).unwrap();
    let mut bridge = Bridge::start(&config);
    let readyz = format!("{}/readyz", bridge.admin);

    let (code, stderr) = healthcheck(&["--url", &readyz]);
    assert_eq!(code, Some(0), "{stderr}");
    let config_arg = config.to_str().unwrap();
    let (code, stderr) = healthcheck(&["--config", config_arg]);
    assert_eq!(code, Some(0), "{stderr}");

    bridge.signal("TERM");
    assert_eq!(bridge.wait_exit(Duration::from_secs(30)), Some(0));
    let (code, stderr) = healthcheck(&["--url", &readyz]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("not ready") && stderr.contains(&readyz),
        "{stderr}"
    );

    // A config that cannot be read is a usage error, and says how to get past it.
    let (code, stderr) = healthcheck(&["--config", "/nonexistent/bridge.toml"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--url"), "{stderr}");
}
