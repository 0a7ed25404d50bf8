//! Shopify beyond create/update: partial tags and consent updates, deferral of a partial
//! update until its contact's create lands, the privacy topics (asserted on the database
//! itself), `customers/delete`, and the un-prefixed Events headers.

use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row, sqlite::SqlitePoolOptions};
use vendasta_bridge::{config::OnDelete, store::JobState};
use wiremock::{
    Mock, ResponseTemplate,
    matchers::{method, path},
};

use crate::{
    helpers::{
        CUSTOMERS_PATH, SECRET, TestApp, created, customer, eventually, fixture, json_body, sign,
        spawn_app, spawn_app_with,
    },
    schema,
};

const CUSTOMER_ID: &str = "AG-123:CUSTOMER-9";
/// The id of the create fixture, which the consent fixtures share.
const SHOPIFY_ID: &str = "706405506930370084";

async fn mount_create_and_patch(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created(CUSTOMER_ID))
        .mount(&app.vendasta)
        .await;
    Mock::given(method("PATCH"))
        .and(path(format!("{CUSTOMERS_PATH}/{CUSTOMER_ID}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": {} })))
        .mount(&app.vendasta)
        .await;
}

/// Creates the fixture customer and waits until it is linked.
async fn create_linked(app: &TestApp, webhook_id: &str, body: &[u8]) {
    app.post_shopify("acme", "customers/create", webhook_id, body)
        .await;
    let job = app.settled("acme", webhook_id).await;
    assert_eq!(job.state, JobState::Done, "{:?}", job.last_error);
}

/// Bodies of the PATCH requests Vendasta received, in order.
async fn patches(app: &TestApp) -> Vec<Value> {
    app.upstream_requests()
        .await
        .iter()
        .filter(|r| r.method.as_str() == "PATCH")
        .map(json_body)
        .collect()
}

fn update_body(attributes: Value) -> Value {
    json!({ "data": { "type": "customers", "id": CUSTOMER_ID, "attributes": attributes } })
}

#[tokio::test]
async fn consent_topics_patch_a_linked_customer_with_only_permission_to_contact() {
    // Arrange
    let app = spawn_app().await;
    mount_create_and_patch(&app).await;
    create_linked(
        &app,
        "wh-c",
        &fixture("shopify/shopify-customers-create.json"),
    )
    .await;
    let subscribed = serde_json::to_vec(&json!({
        "customer_id": 706405506930370084_u64,
        "email_address": "bob@biller.com",
        "email_marketing_consent": { "state": "subscribed", "opt_in_level": "single_opt_in" }
    }))
    .unwrap();

    // Act
    app.post_shopify(
        "acme",
        "customers/email_marketing_consent/update",
        "wh-consent-1",
        &fixture("shopify/shopify-customers_email_marketing_consent-update.json"),
    )
    .await;
    let first = app.settled("acme", "wh-consent-1").await;
    app.post_shopify(
        "acme",
        "customers/email_marketing_consent/update",
        "wh-consent-2",
        &subscribed,
    )
    .await;
    let second = app.settled("acme", "wh-consent-2").await;

    // Assert
    assert_eq!(first.outcome.as_deref(), Some("updated"));
    assert_eq!(second.outcome.as_deref(), Some("updated"));
    let sent = patches(&app).await;
    assert_eq!(
        sent,
        vec![
            update_body(json!({ "permissionToContact": false })),
            update_body(json!({ "permissionToContact": true })),
        ]
    );
    for body in &sent {
        schema::assert_valid_update(body);
    }
}

#[tokio::test]
async fn a_consent_event_that_states_nothing_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    mount_create_and_patch(&app).await;
    create_linked(
        &app,
        "wh-c",
        &fixture("shopify/shopify-customers-create.json"),
    )
    .await;

    // Act: the SMS consent fixture has `state: null`.
    app.post_shopify(
        "acme",
        "customers/marketing_consent/update",
        "wh-sms",
        &fixture("shopify/shopify-customers_marketing_consent-update.json"),
    )
    .await;
    let job = app.settled("acme", "wh-sms").await;

    // Assert
    assert_eq!(job.outcome.as_deref(), Some("nothing_to_change"));
    assert!(patches(&app).await.is_empty());
}

#[tokio::test]
async fn tags_added_and_removed_patch_the_merged_tag_list_and_nothing_else() {
    // Arrange: customer 1, the id of the tags fixture's `gid://shopify/Customer/1`.
    let app = spawn_app().await;
    mount_create_and_patch(&app).await;
    create_linked(
        &app,
        "wh-c1",
        &customer(1, "tags@example.com", "2026-01-01T00:00:00Z"),
    )
    .await;
    let removed = serde_json::to_vec(&json!({
        "customerId": "gid://shopify/Customer/1", "tags": ["tag1"],
        "occurredAt": "2026-01-02T00:00:00.000Z"
    }))
    .unwrap();

    // Act
    app.post_shopify(
        "acme",
        "customer.tags_added",
        "wh-tags-1",
        &fixture("shopify/shopify-customer.tags_added.json"),
    )
    .await;
    app.settled("acme", "wh-tags-1").await;
    app.post_shopify("acme", "customer.tags_removed", "wh-tags-2", &removed)
        .await;
    app.settled("acme", "wh-tags-2").await;

    // Assert: the route's own tag is kept in every list.
    let sent = patches(&app).await;
    assert_eq!(
        sent,
        vec![
            update_body(json!({ "tags": ["tag1", "tag2", "from-shopify"] })),
            update_body(json!({ "tags": ["tag2", "from-shopify"] })),
        ]
    );
    for body in &sent {
        schema::assert_valid_update(body);
    }
}

#[tokio::test]
async fn tags_added_merge_into_the_tags_a_legacy_payload_stated() {
    // Arrange: a pre-2025-01 payload states the customer's whole tag set; the bridge
    // remembers it while the create goes upstream.
    let app = spawn_app().await;
    mount_create_and_patch(&app).await;
    let mut legacy: Value =
        serde_json::from_slice(&customer(1, "legacy@example.com", "2026-01-01T00:00:00Z")).unwrap();
    legacy["tags"] = json!("vip, wholesale");
    create_linked(&app, "wh-legacy", &serde_json::to_vec(&legacy).unwrap()).await;

    // Act
    app.post_shopify(
        "acme",
        "customer.tags_added",
        "wh-tags-after-legacy",
        &fixture("shopify/shopify-customer.tags_added.json"),
    )
    .await;
    app.settled("acme", "wh-tags-after-legacy").await;

    // Assert: the added tags join the stated ones instead of replacing them.
    let sent = patches(&app).await;
    assert_eq!(
        sent,
        vec![update_body(
            json!({ "tags": ["vip", "wholesale", "tag1", "tag2", "from-shopify"] })
        )]
    );
    schema::assert_valid_update(&sent[0]);
}

#[tokio::test]
async fn a_partial_update_of_an_unlinked_contact_waits_for_its_create_without_using_attempts() {
    // Arrange
    let app = spawn_app().await;
    mount_create_and_patch(&app).await;

    // Act: the tags event arrives before the customer exists upstream.
    let response = app
        .post_shopify(
            "acme",
            "customer.tags_added",
            "wh-early-tags",
            &fixture("shopify/shopify-customer.tags_added.json"),
        )
        .await;
    let deferred = eventually(std::time::Duration::from_secs(10), || async {
        app.job("acme", "wh-early-tags")
            .await
            .filter(|job| job.outcome.as_deref() == Some("deferred"))
    })
    .await
    .expect("the partial update was deferred");
    app.post_shopify(
        "acme",
        "customers/create",
        "wh-late-create",
        &customer(1, "late@example.com", "2026-01-01T00:00:00Z"),
    )
    .await;
    let create = app.settled("acme", "wh-late-create").await;
    let tags = app.settled("acme", "wh-early-tags").await;

    // Assert: the deferral counted no attempt and held the create back for nothing; the
    // tags went out after the create, as a PATCH of the new customer.
    assert_eq!(response.status(), 200);
    assert_eq!(deferred.state, JobState::Pending);
    assert_eq!(deferred.attempts, 0);
    assert_eq!(create.outcome.as_deref(), Some("created"));
    assert_eq!(tags.state, JobState::Done, "{:?}", tags.last_error);
    assert_eq!(tags.outcome.as_deref(), Some("updated"));
    assert_eq!(tags.attempts, 1);
    let methods: Vec<String> = app
        .upstream_requests()
        .await
        .iter()
        .map(|r| r.method.to_string())
        .collect();
    assert_eq!(methods, ["POST", "PATCH"]);
    assert_eq!(
        patches(&app).await,
        vec![update_body(
            json!({ "tags": ["tag1", "tag2", "from-shopify"] })
        )]
    );
}

/// Rows of `jobs` that still mention the customer, by id or by anything in the payload,
/// and rows of `contacts` for it: read from the app's database itself, on either backend.
async fn stored_traces(app: &TestApp, contact_id: &str, email: &str) -> (i64, i64) {
    if vendasta_bridge::store::is_postgres_url(&app.store_url) {
        let mut db = PgConnection::connect(&app.store_url).await.unwrap();
        let jobs: i64 = sqlx::query_scalar(
            r#"SELECT COUNT(*) FROM jobs
                WHERE contact_id = $1 OR position(convert_to($2, 'UTF8') IN payload) > 0"#,
        )
        .bind(contact_id)
        .bind(email)
        .fetch_one(&mut db)
        .await
        .unwrap();
        let links: i64 =
            sqlx::query_scalar(r#"SELECT COUNT(*) FROM contacts WHERE contact_id = $1"#)
                .bind(contact_id)
                .fetch_one(&mut db)
                .await
                .unwrap();
        db.close().await.unwrap();
        return (jobs, links);
    }
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&app.store_url)
        .await
        .unwrap();
    let jobs = sqlx::query(
        r#"SELECT COUNT(*) AS n FROM jobs WHERE contact_id = ?1 OR instr(CAST(payload AS TEXT), ?2) > 0"#,
    )
    .bind(contact_id)
    .bind(email)
    .fetch_one(&pool)
    .await
    .unwrap()
    .get::<i64, _>("n");
    let links = sqlx::query(r#"SELECT COUNT(*) AS n FROM contacts WHERE contact_id = ?1"#)
        .bind(contact_id)
        .fetch_one(&pool)
        .await
        .unwrap()
        .get::<i64, _>("n");
    pool.close().await;
    (jobs, links)
}

#[tokio::test]
async fn customers_redact_leaves_no_payload_or_link_of_that_customer_in_the_database() {
    // Arrange: two customers delivered and linked.
    let app = spawn_app().await;
    mount_create_and_patch(&app).await;
    create_linked(
        &app,
        "wh-bob",
        &fixture("shopify/shopify-customers-create.json"),
    )
    .await;
    create_linked(
        &app,
        "wh-eve",
        &customer(2, "eve@example.com", "2026-01-01T00:00:00Z"),
    )
    .await;
    assert_eq!(
        stored_traces(&app, SHOPIFY_ID, "bob@biller.com").await,
        (1, 1)
    );
    let redact = serde_json::to_vec(&json!({
        "shop_id": 954889, "shop_domain": "acme.myshopify.com",
        "customer": { "id": 706405506930370084_u64, "email": "bob@biller.com", "phone": "555-625-1199" },
        "orders_to_redact": [299938, 280263]
    }))
    .unwrap();

    // Act
    let response = app
        .post_shopify("acme", "customers/redact", "wh-redact", &redact)
        .await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();

    // Assert: answered after the deletion; the other customer is untouched.
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "redacted");
    assert_eq!(
        stored_traces(&app, SHOPIFY_ID, "bob@biller.com").await,
        (0, 0)
    );
    assert_eq!(stored_traces(&app, "2", "eve@example.com").await, (1, 1));
    assert!(
        app.job("acme", "wh-redact").await.is_none(),
        "the request itself is not stored"
    );
}

#[tokio::test]
async fn shop_redact_removes_the_shop_and_data_request_is_acknowledged_without_storing() {
    // Arrange
    let app = spawn_app().await;
    mount_create_and_patch(&app).await;
    create_linked(
        &app,
        "wh-bob",
        &fixture("shopify/shopify-customers-create.json"),
    )
    .await;
    let data_request = serde_json::to_vec(&json!({
        "shop_id": 954889, "shop_domain": "acme.myshopify.com", "orders_requested": [],
        "customer": { "id": 706405506930370084_u64, "email": "bob@biller.com" },
        "data_request": { "id": 9999 }
    }))
    .unwrap();
    let shop_redact =
        serde_json::to_vec(&json!({ "shop_id": 954889, "shop_domain": "acme.myshopify.com" }))
            .unwrap();

    // Act
    let asked = app
        .post_shopify("acme", "customers/data_request", "wh-dr", &data_request)
        .await;
    let asked: Value = asked.json().await.unwrap();
    let before = stored_traces(&app, SHOPIFY_ID, "bob@biller.com").await;
    let redacted = app
        .post_shopify("acme", "shop/redact", "wh-shop", &shop_redact)
        .await;
    let redacted_status = redacted.status();

    // Assert
    assert_eq!(asked["status"], "logged");
    assert_eq!(before, (1, 1), "a data request deletes nothing");
    assert_eq!(redacted_status, 200);
    assert_eq!(
        stored_traces(&app, SHOPIFY_ID, "bob@biller.com").await,
        (0, 0)
    );
}

#[tokio::test]
async fn customers_delete_sends_delete_upstream_when_the_route_says_so() {
    // Arrange
    let app = spawn_app_with(|config| config.routes[0].on_delete = OnDelete::Delete).await;
    mount_create_and_patch(&app).await;
    Mock::given(method("DELETE"))
        .and(path(format!("{CUSTOMERS_PATH}/{CUSTOMER_ID}")))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&app.vendasta)
        .await;
    create_linked(
        &app,
        "wh-c",
        &fixture("shopify/shopify-customers-create.json"),
    )
    .await;
    let deleted = serde_json::to_vec(&json!({ "id": 706405506930370084_u64, "phone": null, "addresses": [], "tax_exemptions": [] })).unwrap();

    // Act
    app.post_shopify("acme", "customers/delete", "wh-del", &deleted)
        .await;
    let job = app.settled("acme", "wh-del").await;

    // Assert
    assert_eq!(job.state, JobState::Done, "{:?}", job.last_error);
    assert_eq!(job.outcome.as_deref(), Some("deleted"));
    let methods: Vec<String> = app
        .upstream_requests()
        .await
        .iter()
        .map(|r| r.method.to_string())
        .collect();
    assert_eq!(methods, ["POST", "DELETE"]);
}

#[tokio::test]
async fn customers_delete_is_acknowledged_and_ignored_by_default() {
    // Arrange
    let app = spawn_app().await;
    let deleted = serde_json::to_vec(&json!({ "id": 706405506930370084_u64 })).unwrap();

    // Act
    let response = app
        .post_shopify("acme", "customers/delete", "wh-del", &deleted)
        .await;
    let answer: Value = response.json().await.unwrap();

    // Assert
    assert_eq!(answer["status"], "ignored");
    assert!(app.job("acme", "wh-del").await.is_none());
}

#[tokio::test]
async fn the_unprefixed_events_headers_are_accepted_like_the_x_shopify_ones() {
    // Arrange
    let app = spawn_app().await;
    mount_create_and_patch(&app).await;
    let body = fixture("shopify/shopify-customers-create.json");
    let headers: Vec<(String, String)> = [
        ("shopify-hmac-sha256", sign(SECRET, &body)),
        ("shopify-topic", "customers/create".to_string()),
        ("shopify-webhook-id", "evt-delivery-1".to_string()),
        ("shopify-shop-domain", "acme.myshopify.com".to_string()),
        ("shopify-api-version", "unstable".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();

    // Act
    let response = app.post("acme", &body, &headers).await;
    let job = app.settled("acme", "evt-delivery-1").await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(job.outcome.as_deref(), Some("created"));
    assert_eq!(
        job.meta.get("shop_domain").map(String::as_str),
        Some("acme.myshopify.com")
    );
}
