//! PostgreSQL-only integration tests and their harness: a database of its own per test,
//! and the store going away and coming back under a running bridge.

use std::{io::Write, time::Duration};

use serde_json::Value;
use sqlx::{Connection, PgConnection};
use wiremock::{Mock, matchers::method};

use crate::helpers::{created, customer, eventually, spawn_app_with};

/// A database of its own on the server `TEST_DATABASE_URL` points at.
pub struct TestDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// Creates it, or returns `None` after saying on the terminal (not into libtest's
    /// captured output) that `test` was skipped because `TEST_DATABASE_URL` is not set.
    pub async fn create(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
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
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url.as_str(), String::new()),
        };
        let (scheme, rest) = base.split_once("://").unwrap();
        let server = rest.split('/').next().unwrap();
        let url = format!("{scheme}://{server}/{name}{query}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

// Dropped on every path, a failing test included, so no database is left behind. Drop
// cannot await, so the DROP runs on a thread with a runtime of its own.
impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                    .execute(&mut admin)
                    .await
                    .map(|_| ())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ignored = writeln!(
                std::io::stderr(),
                "could not drop test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

/// With `TEST_STORE=postgres`, [`crate::helpers::spawn_app_with`] runs the whole in-process
/// suite on PostgreSQL, a fresh database per app (`.ci/run` runs the suite both ways).
pub async fn suite_database() -> Option<TestDatabase> {
    if std::env::var("TEST_STORE").as_deref() != Ok("postgres") {
        return None;
    }
    let database = TestDatabase::create("the in-process suite").await;
    assert!(
        database.is_some(),
        "TEST_STORE=postgres needs TEST_DATABASE_URL"
    );
    database
}

/// Runs `sql` on the admin connection.
async fn admin(sql: &str) {
    let url = std::env::var("TEST_DATABASE_URL").unwrap();
    let mut admin = PgConnection::connect(&url).await.unwrap();
    sqlx::query(sql).execute(&mut admin).await.unwrap();
}

#[tokio::test]
async fn readiness_fails_while_postgres_is_unreachable_and_the_bridge_recovers_without_a_restart() {
    let Some(database) = TestDatabase::create(
        "readiness_fails_while_postgres_is_unreachable_and_the_bridge_recovers_without_a_restart",
    )
    .await
    else {
        return;
    };
    // Arrange: a bridge on its own database, ready.
    let url = database.url.clone();
    let app = spawn_app_with(|config| config.store.url = url).await;
    Mock::given(method("POST"))
        .respond_with(created("AG-123:CUSTOMER-7"))
        .mount(&app.vendasta)
        .await;
    let readyz = || async {
        let response = app
            .http
            .get(format!("{}/readyz", app.admin))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    assert_eq!(readyz().await.0, 200);

    // Act: the database refuses new connections and drops the bridge's open ones.
    let name = &database.name;
    admin(&format!(
        r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS false"#
    ))
    .await;
    admin(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .await;

    // Assert: readiness says the store is failing; a webhook is refused with 503, not lost.
    let down = eventually(Duration::from_secs(20), || async {
        let (status, body) = readyz().await;
        (status == 503).then_some(body)
    })
    .await
    .expect("readyz turns 503 while the store is unreachable");
    assert_eq!(down["checks"]["store"]["ok"], false, "{down}");
    assert_eq!(
        down["checks"]["worker"]["ok"], true,
        "the worker keeps running: {down}"
    );
    let body = customer(7, "outage@example.com", "2026-01-01T00:00:00Z");
    let refused = app
        .post_shopify("acme", "customers/create", "wh-outage", &body)
        .await;
    assert_eq!(refused.status(), 503);

    // Act: the database is back.
    admin(&format!(
        r#"ALTER DATABASE "{name}" ALLOW_CONNECTIONS true"#
    ))
    .await;

    // Assert: ready again without a restart, and the provider's retry is stored and delivered.
    let up = eventually(Duration::from_secs(20), || async {
        (readyz().await.0 == 200).then_some(())
    })
    .await;
    assert!(up.is_some(), "readyz recovers once the store is back");
    let accepted = app
        .post_shopify("acme", "customers/create", "wh-outage", &body)
        .await;
    assert_eq!(accepted.status(), 200);
    let job = app.settled("acme", "wh-outage").await;
    assert_eq!(job.customer_id.as_deref(), Some("AG-123:CUSTOMER-7"));
    app.stop().await.unwrap();
    drop(database);
}

/// Needs no PostgreSQL: nothing listens on port 1.
#[test]
fn an_unreachable_database_at_startup_exits_1_naming_store_url_without_the_password() {
    let output = std::process::Command::new(crate::binary::BIN)
        .arg("serve")
        .env_remove("BRIDGE_CONFIG")
        .env_remove("RUST_LOG")
        .env("BRIDGE_SERVER__LISTEN_ADDRESS", "127.0.0.1:0")
        .env("BRIDGE_ADMIN__LISTEN_ADDRESS", "127.0.0.1:0")
        .env(
            "BRIDGE_STORE__URL",
            "postgres://bridge:hunter2-secret@127.0.0.1:1/bridge",
        )
        .env("VENDASTA_TOKEN", "t")
        .env("BRIDGE_ROUTES__0__NAME", "acme")
        .env("BRIDGE_ROUTES__0__SOURCE", "shopify")
        .env("BRIDGE_ROUTES__0__SECRETS", crate::helpers::SECRET)
        .env("BRIDGE_ROUTES__0__BUSINESS_LOCATION", "AG-9")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("store.url"), "{text}");
    assert!(
        text.contains("Connection refused"),
        "the cause is named: {text}"
    );
    assert!(
        text.contains("postgres://bridge:[redacted]@127.0.0.1:1/bridge"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}
