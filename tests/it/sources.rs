//! Every non-Shopify source through the real router and worker against a wiremock
//! Vendasta: each provider's sample payload, signed the provider's way, becomes exactly the
//! expected Vendasta body (validated against Vendasta's schema); tenant routing; the
//! WooCommerce ping; stale timestamps; and an imaginary CRM described only in config.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Sha256, Sha512};
use vendasta_bridge::store::JobState;
use wiremock::{Mock, matchers::method};

use crate::{
    helpers::{TestApp, created, fixture, json_body, log_text, spawn_app_with, test_config},
    schema,
};

const SQUARE_KEY: &str = "sq-signature-key";
const SQUARE_URL: &str = "https://bridge.example.com/webhooks/square";
const WOO_SECRET: &str = "wc_test_secret";
const WOO_STORE: &str = "https://shop.example.com/";
const STRIPE_SECRET: &str = "whsec_test_secret";
/// `whsec_` + base64 of 24 bytes, as a Standard Webhooks sender shows it.
const STANDARD_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const ORBIT_SECRET: &str = "orbit-signing-secret";

/// One route per source, each routing its tenant to its own business location.
const ROUTES: &str = r#"
[[routes]]
name = "square"
source = "square"
secrets = ["rotated-out", "sq-signature-key"]
notification_url = "https://bridge.example.com/webhooks/square"
[routes.tenant_locations]
"G7MMEBVW021Q4" = "AG-SQUARE"

[[routes]]
name = "woo"
source = "woocommerce"
secrets = ["wc_test_secret"]
[routes.tenant_locations]
"https://shop.example.com/" = "AG-WOO"

[[routes]]
name = "stripe"
source = "stripe"
secrets = ["whsec_test_secret"]
business_location = "AG-STRIPE"

[[routes]]
name = "standard"
source = "standard"
secrets = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]
business_location = "AG-STANDARD"
[routes.mapping]
contact_id = "/data/id"
updated_at = "/timestamp"
default_region = "US"
event_types = { "contact.created" = "upsert", "contact.updated" = "upsert", "contact.deleted" = "ignore" }
[routes.mapping.fields]
full_name = "/data/fullName"
phone = "/data/phoneNumber"
address_line1 = "/data/address"

[[routes]]
name = "pipedrive"
source = "pipedrive"
secrets = ["bridge:correct-horse"]
[routes.tenant_locations]
"8087566" = "AG-PIPEDRIVE"

# Orbit CRM, an imaginary provider described only here: SHA-512 hex HMAC of
# "{timestamp}.{body}" after a "sha512=" prefix, and its own JSON shape.
[[routes]]
name = "orbit"
source = "generic"
secrets = ["orbit-signing-secret"]
[routes.tenant_locations]
"ws-42" = "AG-ORBIT"
[routes.signature]
header = "X-Orbit-Signature"
prefix = "sha512="
algorithm = "sha512"
encoding = "hex"
signed_content = "{timestamp}.{body}"
timestamp_header = "X-Orbit-Timestamp"
[routes.mapping]
event_type = "/kind"
delivery_id = "/delivery"
contact_id = "/member/uid"
updated_at = "/occurred"
tenant = "/workspace"
event_types = { "member.joined" = "upsert", "member.changed" = "upsert", "member.left" = "ignore" }
[routes.mapping.fields]
first_name = "/member/profile/given"
last_name = "/member/profile/family"
email = "/member/profile/emails"
phone = "/member/profile/mobile"
address_line1 = "/member/postal/street"
city = "/member/postal/town"
country = "/member/postal/country"
tags = "/member/labels"
consent = "/member/marketing"
"#;

async fn spawn() -> TestApp {
    let app = spawn_app_with(|config| {
        // The shared test config plus this file's routes, validated like a real file.
        let extra = test_config("http://127.0.0.1:9", "sqlite://unused.db", ROUTES);
        config.routes.extend(extra.routes.into_iter().skip(2));
    })
    .await;
    Mock::given(method("POST"))
        .respond_with(created("AG-X:CUSTOMER-1"))
        .mount(&app.vendasta)
        .await;
    app
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    parts.iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn h(pairs: &[(&str, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn square_headers(body: &[u8]) -> Vec<(String, String)> {
    let signature = BASE64.encode(hmac256(
        SQUARE_KEY.as_bytes(),
        &[SQUARE_URL.as_bytes(), body],
    ));
    h(&[("x-square-hmacsha256-signature", signature)])
}

fn woo_headers(body: &[u8], topic: &str) -> Vec<(String, String)> {
    h(&[
        (
            "X-WC-Webhook-Signature",
            BASE64.encode(hmac256(WOO_SECRET.as_bytes(), &[body])),
        ),
        ("X-WC-Webhook-Topic", topic.into()),
        ("X-WC-Webhook-Resource", "customer".into()),
        ("X-WC-Webhook-Source", WOO_STORE.into()),
        ("X-WC-Webhook-Delivery-ID", format!("fresh-{}", now())),
    ])
}

fn stripe_headers(body: &[u8], t: u64) -> Vec<(String, String)> {
    let stamp = t.to_string();
    let v1 = hex(&hmac256(
        STRIPE_SECRET.as_bytes(),
        &[stamp.as_bytes(), b".", body],
    ));
    h(&[("Stripe-Signature", format!("t={t},v1={v1},v0=00"))])
}

fn standard_headers(body: &[u8], id: &str) -> Vec<(String, String)> {
    let key = BASE64
        .decode(STANDARD_SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let t = now().to_string();
    let signature = BASE64.encode(hmac256(
        &key,
        &[id.as_bytes(), b".", t.as_bytes(), b".", body],
    ));
    h(&[
        ("webhook-id", id.into()),
        ("webhook-timestamp", t),
        ("webhook-signature", format!("v1,{signature}")),
    ])
}

fn pipedrive_headers() -> Vec<(String, String)> {
    h(&[(
        "Authorization",
        format!("Basic {}", BASE64.encode("bridge:correct-horse")),
    )])
}

fn orbit_headers(body: &[u8]) -> Vec<(String, String)> {
    let t = now().to_string();
    let mut mac = Hmac::<Sha512>::new_from_slice(ORBIT_SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    h(&[
        (
            "X-Orbit-Signature",
            format!("sha512={}", hex(&mac.finalize().into_bytes())),
        ),
        ("X-Orbit-Timestamp", t),
    ])
}

/// Pipedrive's published samples have empty `emails`/`phones`, which Vendasta would refuse;
/// the table case adds them in Pipedrive's v2 `{value, primary, label}` shape.
fn pipedrive_person() -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&fixture("pipedrive/pipedrive-person.create.v2.json")).unwrap();
    body["data"]["emails"] = json!([
        {"value": "sample.work@example.com", "primary": false, "label": "work"},
        {"value": "sample@example.com", "primary": true, "label": "home"}
    ]);
    body["data"]["phones"] =
        json!([{"value": "+1 212 555 0175", "primary": true, "label": "mobile"}]);
    serde_json::to_vec(&body).unwrap()
}

fn orbit_member() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "delivery": "dlv_0001",
        "kind": "member.joined",
        "occurred": "2026-03-01T10:00:00Z",
        "workspace": "ws-42",
        "member": {
            "uid": "m-9",
            "profile": {
                "given": "Ana",
                "family": "Silva",
                "emails": ["ana@orbit.example"],
                "mobile": "+351 912 345 678"
            },
            "postal": {"street": "Rua Augusta 1", "town": "Lisboa", "country": "pt"},
            "labels": ["vip", "lisbon"],
            "marketing": "opted_in"
        }
    }))
    .unwrap()
}

/// Route, body, headers, expected delivery id, expected Vendasta body.
type Case<'a> = (&'a str, &'a [u8], Vec<(String, String)>, &'a str, Value);

fn create_body(location: &str, attributes: Value) -> Value {
    json!({
        "data": {
            "type": "customers",
            "attributes": attributes,
            "relationships": { "businessLocation": { "data": { "id": location } } }
        }
    })
}

#[tokio::test]
async fn each_sources_sample_payload_becomes_exactly_the_expected_vendasta_body() {
    // Arrange
    let app = spawn().await;
    let square = fixture("square/square-customer.created.json");
    let woo = fixture("woocommerce/woocommerce-customer.created.json");
    let stripe = fixture("stripe/stripe-customer.created.CONSTRUCTED.json");
    let standard = fixture("standard/standardwebhooks-contact.created.full.json");
    let pipedrive = pipedrive_person();
    let orbit = orbit_member();
    let cases: Vec<Case<'_>> = vec![
        (
            "square",
            &square,
            square_headers(&square),
            "e12b5591-e0b6-4967-810a-307c7efcb1a7",
            create_body(
                "AG-SQUARE",
                json!({
                    "givenName": "Jenkins",
                    "familyName": "Smorly",
                    "address": { "streetAddress": "1018 40th Street", "city": "Oakland" },
                    "phoneNumbers": ["+12126668929"],
                    "emailAddresses": ["jenkins+smorly@squareup.com"],
                    "permissionToContact": true
                }),
            ),
        ),
        (
            "woo",
            &woo,
            woo_headers(&woo, "customer.created"),
            "https://shop.example.com/|customer:25|2017-03-21T19:09:30",
            create_body(
                "AG-WOO",
                json!({
                    "givenName": "John",
                    "familyName": "Doe",
                    "address": {
                        "streetAddress": "969 Market",
                        "city": "San Francisco",
                        "regionCode": "US-CA",
                        "countryCode": "US"
                    },
                    "emailAddresses": ["john.doe@example.com"]
                }),
            ),
        ),
        (
            "stripe",
            &stripe,
            stripe_headers(&stripe, now()),
            "evt_1NG8Du2eZvKYlo2CUI79vXWy",
            create_body(
                "AG-STRIPE",
                json!({
                    "givenName": "Jenny",
                    "familyName": "Rosen",
                    "emailAddresses": ["jennyrosen@example.com"]
                }),
            ),
        ),
        (
            "standard",
            &standard,
            standard_headers(&standard, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            create_body(
                "AG-STANDARD",
                json!({
                    "givenName": "John",
                    "familyName": "Smith",
                    "address": { "streetAddress": "800 W NASA Pkwy, Webster, TX 77598, USA" },
                    "phoneNumbers": ["+12813322575"]
                }),
            ),
        ),
        (
            "pipedrive",
            &pipedrive,
            pipedrive_headers(),
            "5359a602-6d1b-4562-a385-ccaa762bd722",
            create_body(
                "AG-PIPEDRIVE",
                json!({
                    "givenName": "Sample",
                    "phoneNumbers": ["+12125550175"],
                    "emailAddresses": ["sample@example.com", "sample.work@example.com"]
                }),
            ),
        ),
        (
            "orbit",
            &orbit,
            orbit_headers(&orbit),
            "dlv_0001",
            create_body(
                "AG-ORBIT",
                json!({
                    "givenName": "Ana",
                    "familyName": "Silva",
                    "address": {
                        "streetAddress": "Rua Augusta 1",
                        "city": "Lisboa",
                        "countryCode": "PT"
                    },
                    "phoneNumbers": ["+351912345678"],
                    "emailAddresses": ["ana@orbit.example"],
                    "tags": ["vip", "lisbon"],
                    "permissionToContact": true
                }),
            ),
        ),
    ];

    for (route, body, headers, delivery_id, expected) in cases {
        // Act
        let response = app.post(route, body, &headers).await;
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        let job = app.settled(route, delivery_id).await;

        // Assert
        assert_eq!(status, StatusCode::OK, "{route}: {answer}");
        assert_eq!(answer["status"], "accepted", "{route}");
        assert_eq!(job.state, JobState::Done, "{route}: {:?}", job.last_error);
        assert_eq!(job.outcome.as_deref(), Some("created"), "{route}");
        let requests = app.upstream_requests().await;
        let sent = json_body(requests.last().unwrap());
        assert_eq!(sent, expected, "{route}");
        schema::assert_valid_create(&sent);
    }
    assert_eq!(app.upstream_requests().await.len(), 6);
    let logs = log_text();
    for personal in [
        "squareup.com",
        "john.doe@",
        "jennyrosen@",
        "orbit.example",
        "3322575",
        "912 345",
    ] {
        assert!(!logs.contains(personal), "a log line contains `{personal}`");
    }
}

#[tokio::test]
async fn an_unknown_tenant_without_a_route_default_is_parked_with_the_tenant_and_route_named() {
    // Arrange
    let app = spawn().await;
    let mut body: Value =
        serde_json::from_slice(&fixture("square/square-customer.updated.json")).unwrap();
    body["merchant_id"] = json!("UNMAPPED-MERCHANT");
    let body = serde_json::to_vec(&body).unwrap();

    // Act
    let response = app.post("square", &body, &square_headers(&body)).await;
    let job = app
        .settled("square", "b4ce4698-00de-4b5d-a771-4941b3913b34")
        .await;

    // Assert
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(job.state, JobState::Dead);
    let reason = job.last_error.unwrap();
    assert!(
        reason.contains("no business location for tenant `UNMAPPED-MERCHANT` on route `square`")
            && reason.contains("routes.tenant_locations"),
        "{reason}"
    );
    assert!(app.upstream_requests().await.is_empty());
}

#[tokio::test]
async fn the_woocommerce_ping_gets_200_and_stores_nothing_while_other_unsigned_bodies_get_401() {
    // Arrange
    let app = spawn().await;

    // Act
    let ping = app.post("woo", b"webhook_id=42", &[]).await;
    let ping_status = ping.status();
    let ping_body: Value = ping.json().await.unwrap();
    let unsigned = app
        .post(
            "woo",
            &fixture("woocommerce/woocommerce-customer.created.json"),
            &[],
        )
        .await;

    // Assert
    assert_eq!(ping_status, StatusCode::OK);
    assert_eq!(ping_body["status"], "ignored");
    assert_eq!(unsigned.status(), StatusCode::UNAUTHORIZED);
    assert!(
        unsigned
            .text()
            .await
            .unwrap()
            .contains("X-WC-Webhook-Signature")
    );
    let counts = app.store.counts().await.unwrap();
    assert_eq!((counts.pending, counts.done, counts.dead), (0, 0, 0));
}

#[tokio::test]
async fn a_stale_stripe_signature_is_refused_with_401_saying_so_and_nothing_is_stored() {
    // Arrange
    let app = spawn().await;
    let body = fixture("stripe/stripe-customer.created.CONSTRUCTED.json");

    // Act
    let response = app
        .post("stripe", &body, &stripe_headers(&body, now() - 3600))
        .await;

    // Assert
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("Stripe-Signature timestamp") && text.contains("timestamp_tolerance_seconds"),
        "{text}"
    );
    assert!(
        app.job("stripe", "evt_1NG8Du2eZvKYlo2CUI79vXWy")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn events_a_route_does_not_deliver_are_acknowledged_and_not_stored() {
    // Arrange
    let app = spawn().await;
    let square_test = fixture("square/square-webhooks.test_notification.json");
    let mut left: Value = serde_json::from_slice(&orbit_member()).unwrap();
    left["kind"] = json!("member.left");
    left["delivery"] = json!("dlv_0002");
    let left = serde_json::to_vec(&left).unwrap();

    // Act
    let square = app
        .post("square", &square_test, &square_headers(&square_test))
        .await;
    let orbit = app.post("orbit", &left, &orbit_headers(&left)).await;

    // Assert
    for response in [square, orbit] {
        assert_eq!(response.status(), StatusCode::OK);
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["status"], "ignored", "{json}");
    }
    assert!(app.job("orbit", "dlv_0002").await.is_none());
}

#[tokio::test]
async fn wrong_pipedrive_credentials_and_a_wrong_square_url_are_refused() {
    // Arrange
    let app = spawn().await;
    let person = pipedrive_person();
    let square = fixture("square/square-customer.created.json");
    let other_url = BASE64.encode(hmac256(
        SQUARE_KEY.as_bytes(),
        &[b"https://bridge.example.com/webhooks/other", &square],
    ));

    // Act
    let pipedrive = app
        .post(
            "pipedrive",
            &person,
            &h(&[(
                "Authorization",
                format!("Basic {}", BASE64.encode("bridge:wrong")),
            )]),
        )
        .await;
    let square = app
        .post(
            "square",
            &square,
            &h(&[("x-square-hmacsha256-signature", other_url)]),
        )
        .await;

    // Assert
    assert_eq!(pipedrive.status(), StatusCode::UNAUTHORIZED);
    assert!(pipedrive.text().await.unwrap().contains("user:password"));
    assert_eq!(square.status(), StatusCode::UNAUTHORIZED);
    assert!(square.text().await.unwrap().contains("notification_url"));
}

#[test]
fn the_binary_refuses_to_start_with_a_bad_json_pointer_or_a_missing_source_key() {
    // Arrange: the Orbit route with one pointer broken, and a Square route without its URL.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    let orbit = ROUTES
        .split("[[routes]]")
        .find(|route| route.contains("name = \"orbit\""))
        .unwrap()
        .replace(
            r#"contact_id = "/member/uid""#,
            r#"contact_id = "member/uid""#,
        );
    let text = format!(
        r#"
        [vendasta]
        token = "t"
        [[routes]]
        name = "sq"
        source = "square"
        secrets = ["k"]
        business_location = "AG-1"
        [[routes]]{orbit}"#
    );
    std::fs::write(&path, text).unwrap();

    // Act
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vendasta-bridge"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();

    // Assert
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(
        stderr.contains("routes[1].mapping.contact_id `member/uid` is not a JSON Pointer"),
        "{stderr}"
    );
    assert!(
        stderr.contains("routes[0].notification_url is missing"),
        "{stderr}"
    );
}
