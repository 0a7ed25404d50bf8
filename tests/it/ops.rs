//! Operations: `/metrics` values after real traffic, the admin API (auth, list, show,
//! replay, delete), replaying a dead job after fixing the config, and the `jobs` CLI
//! against the store while the server is down.

use std::{path::Path, process::Command, time::Duration};

use reqwest::StatusCode;
use serde_json::{Value, json};
use vendasta_bridge::{
    config::{Config, Secret},
    store::{JobId, JobState},
};
use wiremock::{
    Mock,
    matchers::{method, path},
};

use crate::helpers::{
    CUSTOMERS_PATH, SECRET, TestApp, created, customer, eventually, json_body, shopify_headers,
    sign, spawn_app_with,
};

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_vendasta-bridge");

fn with_admin_token(config: &mut Config) {
    config.admin.token = Some(Secret::new(ADMIN_TOKEN));
}

/// Adds a copy of route `acme` named `name`, so metric values of this test are its own.
fn with_route(config: &mut Config, name: &str) {
    let mut route = config.routes[0].clone();
    route.name = name.to_string();
    config.routes.push(route);
}

async fn admin_get(app: &TestApp, path_and_query: &str) -> (StatusCode, Value) {
    let response = app
        .http
        .get(format!("{}{path_and_query}", app.admin))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn admin_send(
    app: &TestApp,
    verb: reqwest::Method,
    path_only: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .request(verb, format!("{}{path_only}", app.admin))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// The value of one sample line, e.g. `bridge_jobs{state="done"}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

#[tokio::test]
async fn metrics_count_webhooks_and_deliveries_by_route_and_outcome() {
    // Arrange
    let app = spawn_app_with(|c| with_route(c, "metrics")).await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-M"))
        .mount(&app.vendasta)
        .await;

    // Act: two new contacts, one duplicate delivery, one bad signature.
    let first = customer(5001, "m1@example.com", "2026-12-01T10:00:00-05:00");
    let second = customer(5002, "m2@example.com", "2026-12-01T10:00:00-05:00");
    for (id, body) in [("m-1", &first), ("m-2", &second), ("m-1", &first)] {
        let response = app
            .post_shopify("metrics", "customers/create", id, body)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let forged = app
        .post(
            "metrics",
            &first,
            &shopify_headers("customers/create", "m-3", Some(&sign("wrong", &first))),
        )
        .await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    app.settled("metrics", "m-1").await;
    app.settled("metrics", "m-2").await;
    let text = app
        .http
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Assert
    let webhooks = |outcome: &str| {
        sample(
            &text,
            &format!(
                r#"bridge_webhooks_received_total{{route="metrics",source="shopify",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(webhooks("accepted"), Some(2.0), "{text}");
    assert_eq!(webhooks("duplicate"), Some(1.0), "{text}");
    assert_eq!(webhooks("bad_signature"), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"bridge_delivery_attempts_total{route="metrics",outcome="created"}"#
        ),
        Some(2.0),
        "{text}"
    );
    // Sampled from this app's own store at scrape time.
    assert_eq!(
        sample(&text, r#"bridge_jobs{state="done"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"bridge_jobs{state="pending"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "bridge_queue_oldest_pending_age_seconds"),
        Some(0.0),
        "{text}"
    );
    // Histograms are process-wide (other tests add to them): at least ours are there.
    assert!(
        sample(
            &text,
            r#"bridge_upstream_request_duration_seconds_count{method="POST"}"#
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(
        sample(&text, "bridge_store_commit_duration_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(text.contains("bridge_token_mints"), "{text}");
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token_and_refuses_requests_without_the_right_one() {
    let off = spawn_app_with(|_| {}).await;
    let response = off
        .http
        .get(format!("{}/admin/jobs", off.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "admin_api_off");
    assert!(body["message"].as_str().unwrap().contains("admin.token"));

    let on = spawn_app_with(with_admin_token).await;
    let missing = on
        .http
        .get(format!("{}/admin/jobs", on.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let wrong = on
        .http
        .post(format!("{}/admin/jobs/1/replay", on.admin))
        .bearer_auth("admin-token-for-tests-WRONG")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // Health and metrics stay open: probes and Prometheus carry no token.
    let health = on
        .http
        .get(format!("{}/healthz", on.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn jobs_are_listed_newest_first_in_pages_shown_redacted_and_deleted() {
    // Arrange
    let app = spawn_app_with(with_admin_token).await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-L"))
        .mount(&app.vendasta)
        .await;
    for (id, contact) in [("l-1", 6001), ("l-2", 6002), ("l-3", 6003)] {
        let body = customer(
            contact,
            &format!("{id}@example.com"),
            "2026-12-01T10:00:00-05:00",
        );
        app.post_shopify("acme", "customers/create", id, &body)
            .await;
    }
    for id in ["l-1", "l-2", "l-3"] {
        app.settled("acme", id).await;
    }

    // Act + Assert: two pages of two, newest first.
    let (status, page) = admin_get(&app, "/admin/jobs?route=acme&state=done&limit=2").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["delivery_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["l-3", "l-2"]);
    assert!(
        page["jobs"][0].get("payload").is_none(),
        "lists carry no payloads"
    );
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, next) = admin_get(
        &app,
        &format!("/admin/jobs?route=acme&limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(next["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(next["jobs"][0]["delivery_id"], "l-1");
    assert_eq!(next["next_cursor"], Value::Null);

    // Show: redacted by default, revealed on request.
    let id = app.job("acme", "l-1").await.unwrap().id.0;
    let (status, shown) = admin_get(&app, &format!("/admin/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["state"], "done");
    assert_eq!(shown["outcome"], "created");
    assert_eq!(shown["payload"]["email"], "[redacted]");
    assert_eq!(shown["payload"]["id"], 6001);
    assert!(!shown.to_string().contains("l-1@example.com"));
    let (_, revealed) = admin_get(&app, &format!("/admin/jobs/{id}?reveal=true")).await;
    assert_eq!(revealed["payload"]["email"], "l-1@example.com");

    // Bad input gets the one error shape, naming the value and the fix.
    let (status, bad) = admin_get(&app, "/admin/jobs?state=failed").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["error"], "bad_state");
    assert!(bad["message"].as_str().unwrap().contains("`failed`"));
    let (status, bad) = admin_send(
        &app,
        reqwest::Method::POST,
        "/admin/replay",
        Some(json!({ "stat": "dead" })),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a misspelt filter must not replay everything"
    );
    assert_eq!(bad["error"], "bad_body");

    // Delete, then it is gone.
    let (status, deleted) = admin_send(
        &app,
        reqwest::Method::DELETE,
        &format!("/admin/jobs/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, deleted["status"].as_str()),
        (StatusCode::OK, Some("deleted"))
    );
    let (status, gone) = admin_get(&app, &format!("/admin/jobs/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gone["error"], "not_found");
    assert!(app.store.job(JobId(id)).await.unwrap().is_none());
}

#[tokio::test]
async fn dead_jobs_are_delivered_when_replayed_after_the_route_config_is_fixed() {
    // Arrange: route `multi` knows no location for acme.myshopify.com, so both park dead.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bridge.db", dir.path().display());
    let store_at = |c: &mut Config| {
        c.store.url = url.clone();
        with_admin_token(c);
    };
    let app = spawn_app_with(store_at).await;
    for (id, contact) in [("dead-1", 7001), ("dead-2", 7002)] {
        let body = customer(
            contact,
            &format!("{id}@example.com"),
            "2026-12-01T10:00:00-05:00",
        );
        app.post_shopify("multi", "customers/create", id, &body)
            .await;
    }
    let job = app.settled("multi", "dead-1").await;
    assert_eq!(
        (job.state, job.outcome.as_deref()),
        (JobState::Dead, Some("no_location"))
    );
    app.settled("multi", "dead-2").await;
    app.stop().await.unwrap();

    // Act: restart on the same store with the shop mapped, then replay.
    let app = spawn_app_with(|c| {
        store_at(c);
        c.routes[1]
            .tenant_locations
            .insert("acme.myshopify.com".into(), "AG-ACME".into());
    })
    .await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-ACME:CUSTOMER-R"))
        .expect(2)
        .mount(&app.vendasta)
        .await;
    let (status, body) = admin_send(
        &app,
        reqwest::Method::POST,
        &format!("/admin/jobs/{}/replay", job.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let delivered = eventually(Duration::from_secs(15), || async {
        app.job("multi", "dead-1")
            .await
            .filter(|j| j.state == JobState::Done)
    })
    .await
    .expect("the replayed job is delivered");
    // The rest, by filter.
    let (status, body) = admin_send(
        &app,
        reqwest::Method::POST,
        "/admin/replay",
        Some(json!({ "state": "dead", "route": "multi" })),
    )
    .await;
    assert_eq!(
        (status, body["count"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{body}"
    );
    let other = eventually(Duration::from_secs(15), || async {
        app.job("multi", "dead-2")
            .await
            .filter(|j| j.state == JobState::Done)
    })
    .await
    .expect("the bulk-replayed job is delivered");

    // Assert: delivered with the fixed location, on a fresh retry schedule.
    assert_eq!(delivered.outcome.as_deref(), Some("created"));
    assert_eq!(
        delivered.attempts, 1,
        "replay starts a fresh retry schedule"
    );
    assert!(delivered.replayed_at.is_some());
    assert_eq!(other.customer_id.as_deref(), Some("AG-ACME:CUSTOMER-R"));
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(
            json_body(request)["data"]["relationships"]["businessLocation"]["data"]["id"],
            "AG-ACME"
        );
    }
}

fn cli_config(dir: &Path, store_url: &str) -> std::path::PathBuf {
    let file = dir.join("cli.toml");
    std::fs::write(
        &file,
        format!(
            r#"
            [store]
            url = "{store_url}"
            [vendasta]
            token = "cli-test-token"
            [[routes]]
            name = "multi"
            source = "shopify"
            secrets = ["{SECRET}"]
            business_location = "AG-1"
            "#
        ),
    )
    .unwrap();
    file
}

fn jobs_cli(config: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(BIN)
        .arg("jobs")
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("BRIDGE_CONFIG")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_jobs_cli_lists_shows_replays_and_deletes_while_the_server_is_down() {
    // Arrange: one dead job, then the server stops.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/bridge.db", dir.path().display());
    let app = spawn_app_with(|c| c.store.url = url.clone()).await;
    let body = customer(8001, "cli@example.com", "2026-12-01T10:00:00-05:00");
    app.post_shopify("multi", "customers/create", "cli-1", &body)
        .await;
    let job = app.settled("multi", "cli-1").await;
    app.stop().await.unwrap();
    let config = cli_config(dir.path(), &url);
    let id = job.id.to_string();

    // Act + Assert
    let (code, table, stderr) = jobs_cli(&config, &["list", "--state", "dead"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(table.lines().next().unwrap().contains("STATE"), "{table}");
    assert!(table.contains("cli-1") && table.contains("dead"), "{table}");
    let (code, listed, _) = jobs_cli(&config, &["list", "--json", "--route", "multi"]);
    assert_eq!(code, Some(0));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["jobs"][0]["id"].as_i64(), Some(job.id.0));
    let (code, shown, _) = jobs_cli(&config, &["show", &id]);
    assert_eq!(code, Some(0));
    let shown: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["payload"]["email"], "[redacted]");
    assert_eq!(shown["outcome"], "no_location");

    let (code, out, stderr) = jobs_cli(&config, &["replay", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(out.contains("replayed job"), "{out}");
    let (code, _, stderr) = jobs_cli(&config, &["list", "--state", "failed"]);
    assert_eq!(code, Some(2), "a bad filter is a usage error");
    assert!(stderr.contains("`failed`"), "{stderr}");
    let (code, _, stderr) = jobs_cli(&config, &["show", "999999"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no job has id 999999"), "{stderr}");

    let store = vendasta_bridge::store::Store::open(&url).await.unwrap();
    let replayed = store.job(job.id).await.unwrap().unwrap();
    assert_eq!((replayed.state, replayed.attempts), (JobState::Pending, 0));
    assert!(replayed.replayed_at.is_some());
    store.close().await;

    // With no config at all (the defaults alone do not load: no token, no routes),
    // --store still reaches the jobs.
    let output = Command::new(BIN)
        .args(["jobs", "list", "--json", "--store", &url])
        .env_remove("BRIDGE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed["jobs"][0]["state"], "pending");

    let (code, _, stderr) = jobs_cli(&config, &["delete", &id]);
    assert_eq!(code, Some(0), "{stderr}");
    let store = vendasta_bridge::store::Store::open(&url).await.unwrap();
    assert!(store.job(job.id).await.unwrap().is_none());
    store.close().await;
}

#[tokio::test]
async fn every_admin_route_is_in_the_openapi_file_and_every_documented_operation_is_served() {
    let text = std::fs::read_to_string(format!(
        "{}/docs/admin-openapi.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let spec: Value = serde_norway::from_str(&text).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    for route in vendasta_bridge::http::admin_api::ROUTES
        .iter()
        .chain(&["/healthz", "/readyz", "/metrics"])
    {
        assert!(
            paths.contains_key(*route),
            "{route} is not in docs/admin-openapi.yaml"
        );
    }
    // The other way round: each documented operation reaches a handler of the real
    // router (axum answers an unrouted path with an empty 404 and a wrong method with 405).
    let app = spawn_app_with(with_admin_token).await;
    for (path_template, operations) in paths {
        for verb in operations.as_object().unwrap().keys() {
            let verb = match verb.as_str() {
                "get" => reqwest::Method::GET,
                "post" => reqwest::Method::POST,
                "delete" => reqwest::Method::DELETE,
                "parameters" => continue,
                other => panic!("unexpected operation {other} on {path_template}"),
            };
            let url = format!("{}{}", app.admin, path_template.replace("{id}", "1"));
            let response = app
                .http
                .request(verb.clone(), &url)
                .bearer_auth(ADMIN_TOKEN)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{verb} {path_template}"
            );
            assert!(
                !body.is_empty(),
                "{verb} {path_template} answered {status} with no body: not routed"
            );
        }
    }
}

#[tokio::test]
async fn a_bulk_replay_walks_every_match_in_batches_once_and_skips_other_states() {
    use std::{collections::BTreeMap, time::SystemTime};

    use vendasta_bridge::store::{Finish, JobFilter, NewJob, Store};

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/b.db", dir.path().display()))
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    for i in 0..7 {
        store
            .enqueue(NewJob {
                route: if i < 5 { "a".into() } else { "b".into() },
                source: "shopify".into(),
                delivery_id: format!("d{i}"),
                topic: "customers/create".into(),
                contact_id: Some(format!("c{i}")),
                contact_updated_at: None,
                meta: BTreeMap::new(),
                payload: bytes::Bytes::from_static(b"{}"),
            })
            .await
            .unwrap();
        let job = store
            .claim(SystemTime::now(), lease)
            .await
            .unwrap()
            .unwrap();
        // d0 ends done, every other job dead.
        let finish = if i == 0 {
            Finish::Done {
                outcome: "created",
                link: None,
                applied: false,
                note: None,
            }
        } else {
            Finish::Dead {
                outcome: "rejected",
                reason: "x".into(),
            }
        };
        assert!(store.finish(&job, finish, SystemTime::now()).await.unwrap());
    }
    let dead_on_a = JobFilter {
        state: Some(JobState::Dead),
        route: Some("a".into()),
        since: None,
    };

    let replayed = store
        .replay_matching(&dead_on_a, SystemTime::now(), 2)
        .await
        .unwrap();

    assert_eq!(replayed, 4, "d1..d4: dead on route a");
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.dead, counts.done), (4, 2, 1));
    // Replaying pending jobs matches what it just replayed: each is visited once.
    let pending = JobFilter {
        state: Some(JobState::Pending),
        ..JobFilter::default()
    };
    assert_eq!(
        store
            .replay_matching(&pending, SystemTime::now(), 1)
            .await
            .unwrap(),
        4
    );
}

#[test]
fn retention_below_the_dedupe_window_and_a_short_admin_token_are_config_errors() {
    let file = r#"
        [admin]
        token = "short"
        [store]
        retention_days = 3
        [vendasta]
        token = "t"
        [[routes]]
        name = "a"
        source = "shopify"
        secrets = ["s"]
        business_location = "AG-1"
    "#;
    let error = Config::from_sources(Some(file), None, &Default::default()).unwrap_err();
    let text = error.to_string();
    assert_eq!(error.problems.len(), 2, "{text}");
    assert!(
        text.contains("store.retention_days is 3: use at least 7"),
        "{text}"
    );
    assert!(
        text.contains("admin.token is shorter than 16 characters"),
        "{text}"
    );
}
