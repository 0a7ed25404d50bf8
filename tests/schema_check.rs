//! Proves that `support/schema.rs` accepts what Vendasta documents and bites on what
//! Vendasta rejects, so the integration tests that rely on it can trust a pass.

#[path = "support/schema.rs"]
mod schema;

use serde_json::{Value, json};
use vendasta_bridge::contact::{Contact, Phone, PostalAddress};
use vendasta_bridge::transform::to_customer;
use vendasta_bridge::vendasta::model::{CreateRequest, UpdateRequest};

/// The create request of Vendasta's guide (reference/vendasta.md §3), verbatim.
fn guide_create_body() -> Value {
    json!({ "data": { "type": "customers",
        "attributes": {
          "givenName": "William", "familyName": "Smith",
          "address": { "streetAddress": "123 Fake St.", "city": "Kalamazoo", "regionCode": "US-MI", "countryCode": "US" },
          "phoneNumbers": ["+13065551234"], "emailAddresses": ["example@email.com"],
          "tags": ["2021 Christmas Campaign"], "permissionToContact": true },
        "relationships": { "businessLocation": { "data": { "id": "AG-123" } } } } })
}

/// The guide's body with one member replaced (`value: None` removes it).
fn guide_create_body_with(pointer: &str, member: &str, value: Option<Value>) -> Value {
    let mut body = guide_create_body();
    let Some(parent) = body.pointer_mut(pointer).and_then(Value::as_object_mut) else {
        panic!("the guide's body has no object at {pointer}");
    };
    match value {
        Some(value) => parent.insert(member.to_owned(), value),
        None => parent.remove(member),
    };
    body
}

fn create_violations(body: &Value) -> Vec<String> {
    match schema::check_create(body) {
        Ok(()) => panic!("the body should have been rejected: {body:#}"),
        Err(violations) => violations,
    }
}

fn assert_violation_at(violations: &[String], path: &str) {
    assert!(
        violations
            .iter()
            .any(|violation| violation.starts_with(&format!("{path}: "))),
        "expected a violation at {path}, got {violations:#?}"
    );
}

#[test]
fn the_guides_create_request_is_valid() {
    schema::assert_valid_create(&guide_create_body());
}

#[test]
fn the_example_request_in_vendastas_openapi_file_is_valid() {
    // Arrange: the example shipped next to the schema, read-only timestamps included.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openapi/vendasta-business-customers.yaml"
    );
    let openapi: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let example = openapi
        .pointer(
            "/paths/~1customers/post/requestBody/content/application~1vnd.api+json\
             /examples/Example Request/value",
        )
        .unwrap();

    // Act + Assert
    assert_eq!(
        example["data"]["attributes"]["createdAt"],
        "2019-08-24T14:15:22Z"
    );
    schema::assert_valid_create(example);
}

#[test]
fn an_empty_given_name_is_rejected() {
    let body = guide_create_body_with("/data/attributes", "givenName", Some(json!("")));

    assert_violation_at(&create_violations(&body), "/data/attributes/givenName");
}

#[test]
fn a_misspelt_attribute_is_rejected() {
    let body = guide_create_body_with(
        "/data/attributes",
        "emailAddress",
        Some(json!(["example@email.com"])),
    );

    let violations = create_violations(&body);

    assert_violation_at(&violations, "/data/attributes");
    assert!(
        violations
            .iter()
            .any(|violation| violation.contains("'emailAddress'")),
        "{violations:#?}"
    );
}

#[test]
fn a_three_letter_country_code_is_rejected() {
    let body = guide_create_body_with(
        "/data/attributes/address",
        "countryCode",
        Some(json!("USA")),
    );

    assert_violation_at(
        &create_violations(&body),
        "/data/attributes/address/countryCode",
    );
}

#[test]
fn a_malformed_email_address_is_rejected() {
    let body = guide_create_body_with(
        "/data/attributes",
        "emailAddresses",
        Some(json!(["not an email"])),
    );

    assert_violation_at(
        &create_violations(&body),
        "/data/attributes/emailAddresses/0",
    );
}

#[test]
fn a_create_with_neither_email_nor_phone_is_rejected() {
    let mut body = guide_create_body_with("/data/attributes", "emailAddresses", None);
    body["data"]["attributes"]["phoneNumbers"] = json!([]);

    let violations = create_violations(&body);

    assert_eq!(violations.len(), 1, "{violations:#?}");
    assert_violation_at(&violations, "/data/attributes");
}

#[test]
fn a_create_without_a_business_location_is_rejected() {
    let body = guide_create_body_with("/data", "relationships", None);

    assert_violation_at(
        &create_violations(&body),
        "/data/relationships/businessLocation/data/id",
    );
}

#[test]
fn the_panic_lists_every_violation_with_its_path() {
    let mut body = guide_create_body_with("/data/attributes", "givenName", Some(json!("")));
    body["data"]["attributes"]["address"]["countryCode"] = json!("USA");

    let panic = std::panic::catch_unwind(|| schema::assert_valid_create(&body)).unwrap_err();

    let message = panic.downcast_ref::<String>().unwrap();
    assert!(message.contains("2 violation(s)"), "{message}");
    assert!(
        message.contains("/data/attributes/givenName: "),
        "{message}"
    );
    assert!(
        message.contains("/data/attributes/address/countryCode: "),
        "{message}"
    );
}

#[test]
fn a_create_body_built_by_the_bridge_is_valid() {
    // Arrange
    let contact = Contact {
        first_name: Some(" William ".to_owned()),
        last_name: Some("Smith".to_owned()),
        emails: vec![
            " Example@Email.com ".to_owned(),
            "example@email.com".to_owned(),
        ],
        phones: vec![Phone {
            number: "(306) 555-1234".to_owned(),
            default_region: Some("ca".to_owned()),
        }],
        address: Some(PostalAddress {
            line1: Some("123 Fake St.".to_owned()),
            line2: Some(" ".to_owned()),
            city: Some("Kalamazoo".to_owned()),
            province_code: Some("mi".to_owned()),
            country_code: Some("us".to_owned()),
        }),
        tags: vec!["vip".to_owned(), String::new()],
        marketing_consent: Some(true),
    };
    let attributes = to_customer(&contact, &["shopify".to_owned()])
        .unwrap()
        .attributes;

    // Act
    let body = serde_json::to_value(CreateRequest::new("AG-123", &attributes)).unwrap();

    // Assert
    schema::assert_valid_create(&body);
    assert_eq!(body["data"]["attributes"]["address"]["regionCode"], "US-MI");
}

#[test]
fn an_update_body_built_by_the_bridge_is_valid_and_one_without_id_is_not() {
    let contact = Contact {
        emails: vec!["example@email.com".to_owned()],
        ..Contact::default()
    };
    let attributes = to_customer(&contact, &[]).unwrap().attributes;
    let body =
        serde_json::to_value(UpdateRequest::new("AG-123:CUSTOMER-123", &attributes)).unwrap();

    schema::assert_valid_update(&body);

    let mut without_id = body.clone();
    without_id["data"].as_object_mut().unwrap().remove("id");
    let violations = schema::check_update(&without_id).unwrap_err();
    assert_violation_at(&violations, "/data/id");
}
