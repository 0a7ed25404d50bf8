//! `POST /webhooks/{route}`: signatures, dedupe, refusals, and what is (not) stored.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use vendasta_bridge::store::JobState;
use wiremock::{Mock, matchers::method};

use crate::helpers::{
    SECRET, created, eventually, fixture, shopify_headers, sign, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn the_published_shopify_vector_verifies_and_its_topic_is_ignored() {
    // Arrange
    let app = spawn_app().await;
    let vectors: Value = serde_json::from_slice(&fixture("test-vectors.json")).unwrap();
    let vector = &vectors["vectors"][0];
    let body = vector["body"].as_str().unwrap().as_bytes();
    let headers: Vec<(String, String)> = vector["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();

    // Act
    let response = app.post("acme", body, &headers).await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["status"], "ignored");
    assert_eq!(json["topic"], "products/create");
    assert_eq!(app.store.counts().await.unwrap().pending, 0);
}

#[tokio::test]
async fn the_computed_customer_vector_is_accepted_and_stored() {
    let app = spawn_app().await;
    let body = fixture("shopify/shopify-customers-create.json");
    let headers = shopify_headers(
        "customers/create",
        "wh-vector",
        Some("87MzYX5UVtGJjQjELNysjVHs/an56q0sQU9+OJpQpNU="),
    );

    let response = app.post("acme", &body, &headers).await;

    assert_eq!(response.status(), StatusCode::OK);
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["status"], "accepted");
    let job = app.job("acme", "wh-vector").await.expect("stored");
    assert_eq!(json["id"], job.id.to_string());
    assert_eq!(
        job.payload.as_ref(),
        body.as_slice(),
        "the exact bytes are stored"
    );
    assert_eq!(job.contact_id.as_deref(), Some("706405506930370084"));
}

#[tokio::test]
async fn bad_signatures_get_401_naming_the_problem_and_store_nothing() {
    // The upstream must never be called for an unsigned request.
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(created("AG-123:CUSTOMER-1"))
        .expect(0)
        .mount(&app.vendasta)
        .await;
    let body = fixture("shopify/shopify-customers-create.json");
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let cases = [
        (
            "tampered",
            tampered.clone(),
            Some(sign(SECRET, &body)),
            "signature_mismatch",
        ),
        (
            "wrong secret",
            body.clone(),
            Some(sign("not-the-secret", &body)),
            "signature_mismatch",
        ),
        ("missing header", body.clone(), None, "missing_signature"),
        (
            "not base64",
            body.clone(),
            Some("***".to_string()),
            "malformed_signature",
        ),
        // Re-encoded on the way (bytes above ASCII): there, not missing.
        (
            "not ASCII",
            body.clone(),
            Some("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=é".to_string()),
            "malformed_signature",
        ),
    ];

    for (name, payload, hmac, code) in cases {
        let headers = shopify_headers("customers/create", &format!("wh-{name}"), hmac.as_deref());
        let response = app.post("acme", &payload, &headers).await;

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"], code, "{name}");
        assert!(
            json["message"]
                .as_str()
                .unwrap()
                .contains("X-Shopify-Hmac-Sha256"),
            "{name}: {json}"
        );
        let message = json["message"].as_str().unwrap();
        assert_eq!(
            message.contains("is missing"),
            name == "missing header",
            "{name}: {message}"
        );
        assert_eq!(
            message.contains("is present but is not plain ASCII text"),
            name == "not ASCII",
            "{name}: {message}"
        );
        assert!(
            app.job("acme", &format!("wh-{name}")).await.is_none(),
            "{name}"
        );
    }
    assert_eq!(app.store.counts().await.unwrap(), Default::default());
}

#[tokio::test]
async fn either_of_two_secrets_is_accepted_during_rotation() {
    let app = spawn_app().await;
    let body = fixture("shopify/shopify-customers-create.json");
    for (id, secret) in [("wh-old", SECRET), ("wh-new", "second-secret")] {
        let headers = shopify_headers("customers/create", id, Some(&sign(secret, &body)));
        let response = app.post("acme", &body, &headers).await;
        assert_eq!(response.status(), StatusCode::OK, "{secret}");
    }
}

#[tokio::test]
async fn the_same_webhook_id_twice_is_one_job_and_one_upstream_request() {
    // Arrange
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(created("AG-123:CUSTOMER-1"))
        .expect(1)
        .mount(&app.vendasta)
        .await;
    let body = fixture("shopify/shopify-customers-create.json");

    // Act
    let first = app
        .post_shopify("acme", "customers/create", "wh-dup", &body)
        .await;
    let first: Value = first.json().await.unwrap();
    app.settled("acme", "wh-dup").await;
    let second = app
        .post_shopify("acme", "customers/create", "wh-dup", &body)
        .await;

    // Assert
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["status"], "duplicate");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(app.store.counts().await.unwrap().done, 1);
    app.stop().await.unwrap();
    // wiremock verifies `.expect(1)` when the server drops.
}

#[tokio::test]
async fn unknown_routes_get_404_and_oversized_bodies_get_413() {
    let app = spawn_app_with(|config| config.server.max_body_bytes = 64).await;
    let body = fixture("shopify/shopify-customers-create.json");

    let unknown = app
        .post_shopify("nope", "customers/create", "wh-1", &body)
        .await;
    let large = app
        .post_shopify("acme", "customers/create", "wh-2", &body)
        .await;

    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let json: Value = unknown.json().await.unwrap();
    assert_eq!(json["error"], "unknown_route");
    assert_eq!(large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let json: Value = large.json().await.unwrap();
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("server.max_body_bytes")
    );
    assert_eq!(app.store.counts().await.unwrap(), Default::default());
}

#[tokio::test]
async fn a_store_that_cannot_commit_gives_503_with_retry_after_never_200() {
    let app = spawn_app().await;
    app.store.close().await;
    let body = fixture("shopify/shopify-customers-create.json");

    let response = app
        .post_shopify("acme", "customers/create", "wh-down", &body)
        .await;

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
    let json: Value = response.json().await.unwrap();
    assert_eq!(json["error"], "store_unavailable");
    let ready = app
        .http
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["checks"]["store"]["ok"], false);
}

#[tokio::test]
async fn a_signed_malformed_body_is_stored_and_parked_as_dead_with_its_reason() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(created("AG-123:CUSTOMER-1"))
        .expect(0)
        .mount(&app.vendasta)
        .await;
    let body = br#"{"id": 42, "email": "broken@example.com", "first_name": "#;

    let response = app
        .post_shopify("acme", "customers/create", "wh-bad", body)
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let job = app.settled("acme", "wh-bad").await;
    assert_eq!(job.state, JobState::Dead);
    let reason = job.last_error.unwrap();
    assert!(reason.contains("not valid JSON"), "{reason}");
    assert!(!reason.contains("broken@example.com"), "{reason}");
}

#[tokio::test]
async fn health_and_readiness_answer_on_the_admin_listener() {
    let app = spawn_app().await;

    let live = app
        .http
        .get(format!("{}/healthz", app.admin))
        .send()
        .await
        .unwrap();
    let ready = eventually(Duration::from_secs(5), || async {
        let response = app
            .http
            .get(format!("{}/readyz", app.admin))
            .send()
            .await
            .ok()?;
        (response.status() == StatusCode::OK).then_some(response)
    })
    .await
    .expect("ready");

    assert_eq!(live.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    for check in ["store", "worker", "draining"] {
        assert_eq!(body["checks"][check]["ok"], true, "{check}: {body}");
    }
    let public = app
        .http
        .get(format!("{}/readyz", app.ingest))
        .send()
        .await
        .unwrap();
    assert_eq!(
        public.status(),
        StatusCode::NOT_FOUND,
        "health stays off the public listener"
    );
}
