//! The worker against a mock Vendasta: exact bodies, conflicts, retries, dead letters.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use vendasta_bridge::store::JobState;
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::{
    helpers::{
        CUSTOMERS_PATH, LOCATION, SECRET, TOKEN, created, customer, eventually, fixture, json_body,
        log_lines, log_text, shopify_headers, sign, spawn_app, spawn_app_with,
    },
    schema,
};

#[tokio::test]
async fn a_customer_create_reaches_vendasta_as_exactly_the_expected_json_api_body() {
    // Arrange
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-9"))
        .expect(1)
        .mount(&app.vendasta)
        .await;

    // Act
    let body = fixture("shopify/shopify-customers-create.json");
    app.post_shopify("acme", "customers/create", "wh-create", &body)
        .await;
    let job = app.settled("acme", "wh-create").await;

    // Assert
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.outcome.as_deref(), Some("created"));
    let requests = app.upstream_requests().await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
    assert_eq!(request.headers["content-type"], "application/vnd.api+json");
    let sent = json_body(request);
    assert_eq!(
        sent,
        json!({
            "data": {
                "type": "customers",
                "attributes": {
                    "givenName": "Bob",
                    "familyName": "Biller",
                    "address": {
                        "streetAddress": "151 O'Connor Street",
                        "city": "Ottawa",
                        "regionCode": "CA-ON",
                        "countryCode": "CA"
                    },
                    "emailAddresses": ["bob@biller.com"],
                    "tags": ["from-shopify"]
                },
                "relationships": { "businessLocation": { "data": { "id": LOCATION } } }
            }
        })
    );
    schema::assert_valid_create(&sent);
    let link = app
        .store
        .contact("acme", "706405506930370084")
        .await
        .unwrap();
    assert_eq!(link.customer_id.as_deref(), Some("AG-123:CUSTOMER-9"));
}

#[tokio::test]
async fn a_409_is_logged_linked_and_acknowledged_and_the_next_update_patches_that_id() {
    // Arrange: Vendasta's own 409 example, with the bare CUSTOMER-… id.
    let app = spawn_app().await;
    let conflict = json!({
        "errors": [{
            "code": "ResourceAlreadyExists", "title": "Already exists",
            "detail": "A customers already exists with matching values", "status": "409",
            "meta": { "conflictingCustomerID": "CUSTOMER-7e5cda73", "field": "emailAddresses",
                      "fieldValue": "conflict@example.com", "resourceType": "customers" }
        }],
        "meta": { "requestId": "pLSjFbcXoEFfRsWx" }
    });
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409).set_body_json(conflict))
        .expect(1)
        .mount(&app.vendasta)
        .await;
    let existing = "AG-123:CUSTOMER-7e5cda73";
    Mock::given(method("PATCH"))
        .and(path(format!("{CUSTOMERS_PATH}/{existing}")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "data": { "id": existing } })),
        )
        .expect(1)
        .mount(&app.vendasta)
        .await;

    // Act
    let create = customer(
        9_007_199_254_740_993,
        "conflict@example.com",
        "2026-01-01T00:00:00Z",
    );
    app.post_shopify("acme", "customers/create", "wh-409", &create)
        .await;
    let first = app.settled("acme", "wh-409").await;
    let update = customer(
        9_007_199_254_740_993,
        "conflict@example.com",
        "2026-01-02T00:00:00Z",
    );
    app.post_shopify("acme", "customers/update", "wh-409-update", &update)
        .await;
    let second = app.settled("acme", "wh-409-update").await;

    // Assert
    assert_eq!(
        (first.state, first.outcome.as_deref()),
        (JobState::Done, Some("conflict"))
    );
    assert_eq!(first.customer_id.as_deref(), Some(existing));
    assert_eq!(
        (second.state, second.outcome.as_deref()),
        (JobState::Done, Some("updated"))
    );
    let warning = log_lines()
        .into_iter()
        .find(|line| {
            line["conflicting_customer_id"] == existing
                && line["source_contact_id"] == "9007199254740993"
        })
        .expect("a log line names the conflicting customer");
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["route"], "acme");
    let patch = app
        .upstream_requests()
        .await
        .into_iter()
        .find(|r| r.method.as_str() == "PATCH")
        .expect("a PATCH was sent");
    let sent = json_body(&patch);
    assert_eq!(sent["data"]["id"], existing);
    assert!(sent["data"].get("relationships").is_none());
    schema::assert_valid_update(&sent);
}

#[tokio::test]
async fn two_503s_then_a_201_deliver_the_customer_once() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&app.vendasta)
        .await;
    Mock::given(method("POST"))
        .respond_with(created("AG-123:CUSTOMER-1"))
        .expect(1)
        .with_priority(2)
        .mount(&app.vendasta)
        .await;

    let body = fixture("shopify/shopify-customers-create.json");
    app.post_shopify("acme", "customers/create", "wh-503", &body)
        .await;
    let job = app.settled("acme", "wh-503").await;

    assert_eq!((job.state, job.attempts), (JobState::Done, 3));
    assert_eq!(app.upstream_requests().await.len(), 3);
}

#[tokio::test]
async fn a_429_with_retry_after_waits_that_long_not_the_schedule_step() {
    // The schedule's first step is 10 s; Retry-After says 2 s.
    let app = spawn_app_with(|config| config.delivery.retry_schedule_seconds = vec![10, 20]).await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "2"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.vendasta)
        .await;
    Mock::given(method("POST"))
        .respond_with(created("AG-123:CUSTOMER-1"))
        .with_priority(2)
        .mount(&app.vendasta)
        .await;

    let body = fixture("shopify/shopify-customers-create.json");
    app.post_shopify("acme", "customers/create", "wh-429", &body)
        .await;
    let waiting = eventually(Duration::from_secs(5), || async {
        app.job("acme", "wh-429")
            .await
            .filter(|job| job.state == JobState::Pending && job.attempts == 1)
    })
    .await
    .expect("the job is waiting for its retry");

    let wait = waiting
        .next_attempt_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait > Duration::from_millis(1000) && wait <= Duration::from_secs(2),
        "{wait:?}"
    );
    assert!(waiting.last_error.unwrap().contains("429"));
    let job = app.settled("acme", "wh-429").await;
    assert_eq!((job.state, job.attempts), (JobState::Done, 2));
}

#[tokio::test]
async fn a_400_parks_the_job_as_dead_with_vendastas_reason() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errors": [{ "status": "400", "code": "MalformedRequestBody", "title": "Bad Request",
                         "detail": "regionCode CA-ZZ is not a valid region" }]
        })))
        .expect(1)
        .mount(&app.vendasta)
        .await;

    let body = fixture("shopify/shopify-customers-create.json");
    app.post_shopify("acme", "customers/create", "wh-400", &body)
        .await;
    let job = app.settled("acme", "wh-400").await;

    assert_eq!(job.state, JobState::Dead);
    let reason = job.last_error.unwrap();
    assert!(
        reason.contains("400") && reason.contains("regionCode CA-ZZ is not a valid region"),
        "{reason}"
    );
}

#[tokio::test]
async fn unusable_contacts_are_parked_without_calling_vendasta() {
    // Arrange: a shop with no location on a route without a default, and a contact
    // with neither email nor phone.
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(created("AG-1:CUSTOMER-1"))
        .expect(0)
        .mount(&app.vendasta)
        .await;
    let body = fixture("shopify/shopify-customers-create.json");
    let mut headers = shopify_headers("customers/create", "wh-noloc", Some(&sign(SECRET, &body)));
    headers.retain(|(name, _)| name != "X-Shopify-Shop-Domain");
    headers.push(("X-Shopify-Shop-Domain".into(), "south.myshopify.com".into()));
    let mut anonymous: Value = serde_json::from_slice(&body).unwrap();
    anonymous["email"] = Value::Null;
    anonymous["default_address"]["phone"] = Value::Null;
    let anonymous = serde_json::to_vec(&anonymous).unwrap();

    // Act
    app.post("multi", &body, &headers).await;
    app.post_shopify("acme", "customers/create", "wh-anon", &anonymous)
        .await;
    let no_location = app.settled("multi", "wh-noloc").await;
    let no_contact = app.settled("acme", "wh-anon").await;

    // Assert
    assert_eq!(no_location.state, JobState::Dead);
    let reason = no_location.last_error.unwrap();
    assert!(
        reason.contains("south.myshopify.com") && reason.contains("tenant_locations"),
        "{reason}"
    );
    assert_eq!(no_contact.state, JobState::Dead);
    assert_eq!(no_contact.outcome.as_deref(), Some("no_email_or_phone"));
}

#[tokio::test]
async fn a_mapped_shop_domain_picks_its_business_location() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(created("AG-NORTH:CUSTOMER-1"))
        .expect(1)
        .mount(&app.vendasta)
        .await;
    let body = fixture("shopify/shopify-customers-create.json");
    let mut headers = shopify_headers("customers/create", "wh-north", Some(&sign(SECRET, &body)));
    headers.retain(|(name, _)| name != "X-Shopify-Shop-Domain");
    headers.push(("X-Shopify-Shop-Domain".into(), "North.myshopify.com".into()));

    app.post("multi", &body, &headers).await;
    app.settled("multi", "wh-north").await;

    let sent = json_body(&app.upstream_requests().await[0]);
    assert_eq!(
        sent["data"]["relationships"]["businessLocation"]["data"]["id"],
        "AG-NORTH"
    );
}

#[tokio::test]
async fn an_update_older_than_the_applied_one_is_skipped_as_stale() {
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(created("AG-123:CUSTOMER-5"))
        .expect(1)
        .mount(&app.vendasta)
        .await;
    Mock::given(method("PATCH"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&app.vendasta)
        .await;

    let newer = customer(5, "five@example.com", "2026-03-02T00:00:00Z");
    let older = customer(5, "five@example.com", "2026-03-01T00:00:00Z");
    app.post_shopify("acme", "customers/update", "wh-new", &newer)
        .await;
    app.settled("acme", "wh-new").await;
    app.post_shopify("acme", "customers/update", "wh-old", &older)
        .await;
    let job = app.settled("acme", "wh-old").await;

    assert_eq!(
        (job.state, job.outcome.as_deref()),
        (JobState::Done, Some("stale"))
    );
}

#[tokio::test]
async fn no_log_line_at_any_level_contains_an_email_or_a_phone_number() {
    // Arrange: a full flow with a 409 and a rejection whose text echoes the email.
    let app = spawn_app().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "errors": [{ "status": "422", "code": "Invalid", "title": "Invalid",
                         "detail": "leak-check@example.com with phone +1 613 555 0123 is invalid" }]
        })))
        .mount(&app.vendasta)
        .await;
    let mut body: Value = serde_json::from_slice(&customer(
        77,
        "leak-check@example.com",
        "2026-01-01T00:00:00Z",
    ))
    .unwrap();
    body["phone"] = Value::from("+1 613 555 0123");
    let body = serde_json::to_vec(&body).unwrap();

    // Act
    app.post_shopify("acme", "customers/create", "wh-leak", &body)
        .await;
    let job = app.settled("acme", "wh-leak").await;

    // Assert: stored reasons and every log line of this binary are clean.
    assert_eq!(job.state, JobState::Dead);
    let reason = job.last_error.unwrap();
    assert!(!reason.contains("leak-check@example.com"), "{reason}");
    let logs = log_text();
    assert!(logs.contains("wh-leak"), "the flow was logged");
    for needle in [
        "leak-check@example.com",
        "6135550123",
        "613 555 0123",
        TOKEN,
        SECRET,
    ] {
        assert!(!logs.contains(needle), "a log line contains {needle}");
    }
}
