//! HubSpot end to end: v3-signed batches over real HTTP, a mock HubSpot CRM API and a
//! mock Vendasta, both on 127.0.0.1.

use std::{
    collections::BTreeMap,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use vendasta_bridge::{
    config::{Config, RouteConfig},
    store::JobState,
};
use wiremock::{
    Mock, MockServer, ResponseTemplate,
    matchers::{header, method, path, path_regex, query_param},
};

use crate::{
    helpers::{CUSTOMERS_PATH, LOCATION, TestApp, created, json_body, log_text, spawn_app_with},
    schema,
};

const CLIENT_SECRET: &str = "hubspot-client-secret";
const ACCESS_TOKEN: &str = "pat-na1-test-token";
/// What HubSpot is configured to call: a proxy's URL, not the bridge's own address.
const PUBLIC_URL: &str = "https://bridge.example.com/webhooks/hub";
const PORTAL: u64 = 62515;

fn hubspot_route(api_base_url: &str) -> RouteConfig {
    toml::from_str(&format!(
        r#"
        name = "hub"
        source = "hubspot"
        secrets = ["{CLIENT_SECRET}"]
        business_location = "{LOCATION}"
        public_url = "{PUBLIC_URL}"
        access_token = "{ACCESS_TOKEN}"
        api_base_url = "{api_base_url}"
        "#
    ))
    .expect("route parses")
}

async fn spawn_with_hubspot() -> (TestApp, MockServer) {
    let hubspot = MockServer::start().await;
    let route = hubspot_route(&hubspot.uri());
    let app = spawn_app_with(|config| config.routes.push(route)).await;
    (app, hubspot)
}

fn now_millis() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Headers HubSpot sends: v3 signature over method + URI + body + timestamp (ms).
fn signed_headers(body: &[u8], timestamp_ms: u64) -> Vec<(String, String)> {
    let timestamp = timestamp_ms.to_string();
    let mut mac = Hmac::<Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
    mac.update(b"POST");
    mac.update(PUBLIC_URL.as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    vec![
        (
            "X-HubSpot-Signature-v3".into(),
            BASE64.encode(mac.finalize().into_bytes()),
        ),
        ("X-HubSpot-Request-Timestamp".into(), timestamp),
        ("X-HubSpot-Signature-Version".into(), "v3".into()),
    ]
}

fn event(event_id: u64, object_id: u64, kind: &str) -> Value {
    json!({
        "eventId": event_id, "subscriptionId": 12345, "portalId": PORTAL,
        "occurredAt": 1_764_000_000_000_u64, "subscriptionType": kind, "attemptNumber": 0,
        "objectId": object_id, "changeSource": "CRM", "appId": 54321
    })
}

/// A contact as `GET /crm/v3/objects/contacts/{id}` returns it.
fn crm_contact(id: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": id.to_string(),
        "properties": {
            "firstname": format!("Ada{id}"), "lastname": "Lovelace",
            "email": format!("ada{id}@example.com"), "phone": "(616) 555-0100",
            "address": "1 Main St", "city": "Grand Rapids", "state": "MI", "country": "US",
            "zip": "49503", "hs_object_id": id.to_string()
        },
        "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z", "archived": false
    }))
}

fn contact_path(id: u64) -> String {
    format!("/crm/v3/objects/contacts/{id}")
}

#[tokio::test]
async fn a_batch_of_three_events_is_committed_together_and_yields_three_customers() {
    // Arrange
    let (app, hubspot) = spawn_with_hubspot().await;
    for id in [101, 102, 103] {
        Mock::given(method("GET"))
            .and(path(contact_path(id)))
            .and(header(
                "authorization",
                format!("Bearer {ACCESS_TOKEN}").as_str(),
            ))
            .and(query_param(
                "properties",
                "firstname,lastname,email,phone,address,city,state,country,zip",
            ))
            .respond_with(crm_contact(id))
            .expect(1)
            .mount(&hubspot)
            .await;
    }
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-H"))
        .expect(3)
        .mount(&app.vendasta)
        .await;
    let body = serde_json::to_vec(&json!([
        event(1, 101, "contact.creation"),
        event(2, 102, "contact.creation"),
        event(3, 103, "contact.propertyChange"),
        event(4, 104, "contact.deletion"),
    ]))
    .unwrap();

    // Act
    let response = app
        .post("hub", &body, &signed_headers(&body, now_millis()))
        .await;
    let status = response.status();
    let ack: Value = response.json().await.unwrap();
    let again = app
        .post("hub", &body, &signed_headers(&body, now_millis()))
        .await;
    let again: Value = again.json().await.unwrap();

    // Assert: one 200 for the three deliverable events (the deletion is not queued),
    // a redelivery is all duplicates, and each event became its own customer.
    assert_eq!(status, 200);
    assert_eq!(ack["status"], "accepted");
    assert_eq!(ack["ids"].as_array().unwrap().len(), 3, "{ack}");
    assert_eq!(again["status"], "duplicate", "{again}");
    assert_eq!(again["duplicate_ids"], ack["ids"]);
    for event_id in [1, 2, 3] {
        let job = app
            .settled("hub", &format!("{event_id}:12345:1764000000000"))
            .await;
        assert_eq!(job.state, JobState::Done, "{:?}", job.last_error);
        assert_eq!(job.outcome.as_deref(), Some("created"));
    }
    assert!(app.job("hub", "4:12345:1764000000000").await.is_none());
    let mut sent: Vec<Value> = app
        .upstream_requests()
        .await
        .iter()
        .map(json_body)
        .collect();
    sent.sort_by_key(|body| body["data"]["attributes"]["givenName"].to_string());
    assert_eq!(sent.len(), 3);
    assert_eq!(
        sent[0],
        json!({
            "data": {
                "type": "customers",
                "attributes": {
                    "givenName": "Ada101",
                    "familyName": "Lovelace",
                    "address": {
                        "streetAddress": "1 Main St",
                        "city": "Grand Rapids",
                        "regionCode": "US-MI",
                        "countryCode": "US"
                    },
                    "phoneNumbers": ["+16165550100"],
                    "emailAddresses": ["ada101@example.com"]
                },
                "relationships": { "businessLocation": { "data": { "id": LOCATION } } }
            }
        })
    );
    for body in &sent {
        schema::assert_valid_create(body);
    }
    let link = app.store.contact("hub", "102").await.unwrap();
    assert_eq!(link.customer_id.as_deref(), Some("AG-123:CUSTOMER-H"));
    let logs = log_text();
    assert!(
        logs.contains("1:12345:1764000000000"),
        "the flow was logged"
    );
    for secret_or_pii in [
        ACCESS_TOKEN,
        CLIENT_SECRET,
        "ada101@example.com",
        "555-0100",
    ] {
        assert!(
            !logs.contains(secret_or_pii),
            "a log line contains {secret_or_pii}"
        );
    }
}

#[tokio::test]
async fn a_429_from_hubspot_is_retried_and_then_delivered() {
    // Arrange
    let (app, hubspot) = spawn_with_hubspot().await;
    Mock::given(method("GET"))
        .and(path(contact_path(201)))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path(contact_path(201)))
        .respond_with(crm_contact(201))
        .mount(&hubspot)
        .await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-R"))
        .expect(1)
        .mount(&app.vendasta)
        .await;
    let body = serde_json::to_vec(&json!([event(7, 201, "contact.creation")])).unwrap();

    // Act
    let response = app
        .post("hub", &body, &signed_headers(&body, now_millis()))
        .await;
    let job = app.settled("hub", "7:12345:1764000000000").await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(job.state, JobState::Done, "{:?}", job.last_error);
    assert_eq!(job.attempts, 2, "the 429 used one attempt");
    let fetches = hubspot.received_requests().await.unwrap();
    assert_eq!(fetches.len(), 2);
}

#[tokio::test]
async fn a_contact_deleted_in_hubspot_or_a_bad_token_parks_the_job_with_the_reason() {
    // Arrange
    let (app, hubspot) = spawn_with_hubspot().await;
    Mock::given(method("GET"))
        .and(path(contact_path(301)))
        .respond_with(ResponseTemplate::new(404))
        .mount(&hubspot)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("/crm/v3/objects/contacts/302"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&hubspot)
        .await;
    let body = serde_json::to_vec(&json!([
        event(8, 301, "contact.creation"),
        event(9, 302, "contact.creation")
    ]))
    .unwrap();

    // Act
    app.post("hub", &body, &signed_headers(&body, now_millis()))
        .await;
    let deleted = app.settled("hub", "8:12345:1764000000000").await;
    let unauthorised = app.settled("hub", "9:12345:1764000000000").await;

    // Assert
    assert_eq!(deleted.state, JobState::Dead);
    assert!(
        deleted
            .last_error
            .as_deref()
            .unwrap()
            .contains("deleted in HubSpot")
    );
    assert_eq!(unauthorised.state, JobState::Dead);
    assert!(
        unauthorised
            .last_error
            .as_deref()
            .unwrap()
            .contains("routes[].access_token")
    );
    assert!(
        app.upstream_requests().await.is_empty(),
        "nothing reached Vendasta"
    );
}

#[tokio::test]
async fn a_request_signed_more_than_five_minutes_ago_is_refused_and_not_stored() {
    // Arrange
    let (app, _hubspot) = spawn_with_hubspot().await;
    let body = serde_json::to_vec(&json!([event(10, 401, "contact.creation")])).unwrap();
    let stale = now_millis() - 6 * 60 * 1000;

    // Act
    let response = app.post("hub", &body, &signed_headers(&body, stale)).await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();

    // Assert
    assert_eq!(status, 401);
    assert_eq!(answer["error"], "stale_timestamp");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("X-HubSpot-Request-Timestamp")
    );
    assert!(app.job("hub", "10:12345:1764000000000").await.is_none());
}

#[tokio::test]
async fn a_body_signed_for_another_url_is_refused() {
    // Arrange: signed as if HubSpot had called the bridge's own address.
    let (app, _hubspot) = spawn_with_hubspot().await;
    let body = serde_json::to_vec(&json!([event(11, 501, "contact.creation")])).unwrap();
    let mut headers = signed_headers(&body, now_millis());
    let timestamp = headers[1].1.clone();
    let mut mac = Hmac::<Sha256>::new_from_slice(CLIENT_SECRET.as_bytes()).unwrap();
    mac.update(format!("POST{}/webhooks/hub", app.ingest).as_bytes());
    mac.update(&body);
    mac.update(timestamp.as_bytes());
    headers[0].1 = BASE64.encode(mac.finalize().into_bytes());

    // Act
    let response = app.post("hub", &body, &headers).await;

    // Assert
    assert_eq!(response.status(), 401);
}

#[test]
fn a_hubspot_route_without_public_url_or_access_token_is_a_startup_error_naming_the_keys() {
    let file = r#"
        [vendasta]
        token = "t"
        [[routes]]
        name = "hub"
        source = "hubspot"
        secrets = ["s"]
        business_location = "AG-1"
    "#;
    let error = Config::from_sources(Some(file), None, &BTreeMap::new()).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("routes[0].public_url is missing"), "{text}");
    assert!(
        text.contains("routes[0].access_token is missing or empty"),
        "{text}"
    );
    assert_eq!(error.problems.len(), 2, "{text}");
}
