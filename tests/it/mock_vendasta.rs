//! The Vendasta stand-in answers as Vendasta's customers API does, over real HTTP.

use std::{net::SocketAddr, time::Duration};

use serde_json::{Value, json};
use vendasta_bridge::http::mock_vendasta::{MockOptions, MockVendasta};

const JSONAPI: &str = "application/vnd.api+json";

async fn start(options: MockOptions) -> MockVendasta {
    MockVendasta::start(SocketAddr::from(([127, 0, 0, 1], 0)), options)
        .await
        .expect("stand-in starts")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn create_body(location: &str, attributes: Value) -> Value {
    json!({ "data": { "type": "customers", "attributes": attributes,
        "relationships": { "businessLocation": { "data": { "id": location } } } } })
}

async fn send(
    mock: &MockVendasta,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) -> (u16, Value) {
    let response = client()
        .request(method, format!("http://{}{path}", mock.addr()))
        .header("authorization", "Bearer t")
        .header("content-type", JSONAPI)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create(mock: &MockVendasta, location: &str, attributes: Value) -> (u16, Value) {
    send(
        mock,
        reqwest::Method::POST,
        "/business/customers",
        &create_body(location, attributes),
    )
    .await
}

#[tokio::test]
async fn a_create_answers_201_with_a_vendasta_style_id_and_the_customer_is_kept() {
    // Arrange
    let mock = start(MockOptions::default()).await;
    // Act
    let (status, body) = create(
        &mock,
        "AG-1",
        json!({ "givenName": "Ada", "emailAddresses": ["ada@example.com"] }),
    )
    .await;
    // Assert
    assert_eq!(status, 201);
    let id = body["data"]["id"].as_str().unwrap();
    assert!(id.starts_with("AG-1:CUSTOMER-"), "{id}");
    assert_eq!(id.len(), "AG-1:CUSTOMER-".len() + 36, "uuid-like: {id}");
    assert_eq!(body["data"]["type"], "customers");
    assert_eq!(
        body["data"]["relationships"]["businessLocation"]["data"]["id"],
        "AG-1"
    );
    let customers = mock.customers();
    assert_eq!(customers.len(), 1);
    assert_eq!(customers[0].id, id);
    assert_eq!(customers[0].attributes["givenName"], "Ada");
}

#[tokio::test]
async fn a_matching_email_or_phone_in_the_same_location_is_a_409_in_vendastas_shape() {
    // Arrange
    let mock = start(MockOptions::default()).await;
    let (_, first) = create(
        &mock,
        "AG-1",
        json!({ "emailAddresses": ["Ada@Example.com"], "phoneNumbers": ["+13065551234"] }),
    )
    .await;
    let existing = first["data"]["id"].as_str().unwrap().to_string();
    let bare = existing.strip_prefix("AG-1:").unwrap();

    // Act
    let (email_status, email_conflict) = create(
        &mock,
        "AG-1",
        json!({ "emailAddresses": ["ada@EXAMPLE.com"] }),
    )
    .await;
    let (phone_status, phone_conflict) =
        create(&mock, "AG-1", json!({ "phoneNumbers": ["+13065551234"] })).await;
    let (other_location, _) = create(
        &mock,
        "AG-2",
        json!({ "emailAddresses": ["ada@example.com"] }),
    )
    .await;

    // Assert
    assert_eq!(email_status, 409);
    let error = &email_conflict["errors"][0];
    assert_eq!(error["status"], "409");
    assert_eq!(error["code"], "ResourceAlreadyExists");
    assert_eq!(error["meta"]["conflictingCustomerID"], bare);
    assert_eq!(error["meta"]["field"], "emailAddresses");
    assert_eq!(phone_status, 409);
    assert_eq!(phone_conflict["errors"][0]["meta"]["field"], "phoneNumbers");
    assert_eq!(
        phone_conflict["errors"][0]["meta"]["conflictingCustomerID"],
        bare
    );
    assert_eq!(other_location, 201, "uniqueness is per business location");
    assert_eq!(mock.customers().len(), 2);
}

#[tokio::test]
async fn schema_violations_are_422_json_api_errors_and_a_missing_token_is_401() {
    // Arrange
    let mock = start(MockOptions::default()).await;
    let ok = json!({ "emailAddresses": ["a@b.co"] });
    let cases = [
        (
            "empty string",
            create_body(
                "AG-1",
                json!({ "givenName": "", "emailAddresses": ["a@b.co"] }),
            ),
        ),
        (
            "no email or phone",
            create_body("AG-1", json!({ "givenName": "Ada" })),
        ),
        (
            "three-letter country",
            create_body(
                "AG-1",
                json!({ "emailAddresses": ["a@b.co"], "address": { "countryCode": "USA" } }),
            ),
        ),
        (
            "no business location",
            json!({ "data": { "type": "customers", "attributes": ok } }),
        ),
        (
            "phone not E.164",
            create_body("AG-1", json!({ "phoneNumbers": ["306-555-1234"] })),
        ),
    ];
    // Act / Assert
    for (name, body) in cases {
        let (status, answer) =
            send(&mock, reqwest::Method::POST, "/business/customers", &body).await;
        assert_eq!(status, 422, "{name}: {answer}");
        assert_eq!(answer["errors"][0]["status"], "422", "{name}");
        assert!(answer["errors"][0]["detail"].is_string(), "{name}");
    }
    let url = format!("http://{}/business/customers", mock.addr());
    let wrong_type = client()
        .post(&url)
        .header("authorization", "Bearer t")
        .header("content-type", "application/json")
        .json(&create_body("AG-1", ok.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 422);
    let no_token = client()
        .post(&url)
        .header("content-type", JSONAPI)
        .json(&create_body("AG-1", ok))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    assert!(mock.customers().is_empty());
}

#[tokio::test]
async fn a_patch_updates_the_named_customer_and_an_unknown_id_is_404() {
    // Arrange
    let mock = start(MockOptions::default()).await;
    let (_, created) = create(
        &mock,
        "AG-1",
        json!({ "givenName": "Ada", "familyName": "Lovelace", "emailAddresses": ["a@b.co"] }),
    )
    .await;
    let id = created["data"]["id"].as_str().unwrap().to_string();
    let patch = |id: &str| json!({ "data": { "type": "customers", "id": id, "attributes": { "familyName": "King" } } });
    // Act
    let (status, body) = send(
        &mock,
        reqwest::Method::PATCH,
        &format!("/business/customers/{id}"),
        &patch(&id),
    )
    .await;
    let missing = "AG-1:CUSTOMER-00000000-0000-4000-a000-000000000000";
    let (missing_status, _) = send(
        &mock,
        reqwest::Method::PATCH,
        &format!("/business/customers/{missing}"),
        &patch(missing),
    )
    .await;
    // Assert
    assert_eq!(status, 200);
    assert_eq!(body["data"]["attributes"]["familyName"], "King");
    assert_eq!(
        body["data"]["attributes"]["givenName"], "Ada",
        "omitted attributes keep their value"
    );
    assert_eq!(missing_status, 404);
    let methods: Vec<(String, u16)> = mock
        .requests()
        .into_iter()
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(
        methods,
        vec![
            ("POST".to_string(), 201),
            ("PATCH".to_string(), 200),
            ("PATCH".to_string(), 404)
        ]
    );
}

#[tokio::test]
async fn the_failure_rate_is_seeded_so_two_runs_fail_the_same_requests() {
    // Arrange
    let options = MockOptions {
        failure_rate: 0.5,
        seed: 42,
        ..MockOptions::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mock = start(options).await;
        let mut statuses = Vec::new();
        // Act
        for n in 0..20 {
            let email = format!("c{n}@example.com");
            statuses.push(
                create(&mock, "AG-1", json!({ "emailAddresses": [email] }))
                    .await
                    .0,
            );
        }
        runs.push(statuses);
    }
    // Assert
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&503) && runs[0].contains(&201),
        "{:?}",
        runs[0]
    );
    let always = start(MockOptions {
        failure_rate: 1.0,
        ..MockOptions::default()
    })
    .await;
    let (status, _) = create(&always, "AG-1", json!({ "emailAddresses": ["a@b.co"] })).await;
    assert_eq!(status, 503);
    assert!(always.customers().is_empty());
}

#[tokio::test]
async fn overlapping_requests_for_one_email_are_recorded_per_email() {
    // Arrange: a latency long enough that requests sent together are in flight together.
    let mock = start(MockOptions {
        latency: Duration::from_secs(2),
        ..MockOptions::default()
    })
    .await;
    // Act
    let same = |_| {
        create(
            &mock,
            "AG-1",
            json!({ "emailAddresses": ["Same@example.com"] }),
        )
    };
    let (a, b, c, alone) = tokio::join!(
        same(0),
        same(1),
        same(2),
        create(
            &mock,
            "AG-1",
            json!({ "emailAddresses": ["alone@example.com"] })
        )
    );
    // Assert
    let mut statuses = [a.0, b.0, c.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409]);
    assert_eq!(alone.0, 201);
    let overlap = mock.max_overlap();
    assert_eq!(overlap.get("same@example.com"), Some(&3));
    assert_eq!(overlap.get("alone@example.com"), Some(&1));
}
