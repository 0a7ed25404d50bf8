//! Validates CRM upsert bodies against Vendasta's own OpenAPI file for the CRM API.
//!
//! The schema is the "Body V1" request schema of `PATCH /{namespace}/{resourceTypeCode}` in
//! `tests/fixtures/openapi/vendasta-crm.json` (a copy of Vendasta's file), made stricter:
//! no members beyond the ones it lists, and every field entry needs `id`, `value` and
//! `operation`. On top of it, each field id must be a property of `CRMContact` (or the
//! root `external_id` the CRM guide documents), not read-only, and each operation one of
//! the four the schema's prose names. Test-only: it panics.

#![allow(dead_code)]

use serde_json::{Value, json};

const OPENAPI: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/openapi/vendasta-crm.json"
);
const OPERATIONS: [&str; 4] = [
    "always_overwrite",
    "overwrite_if_empty",
    "overwrite_if_newer",
    "combine",
];

/// Panics with every violation if `body` is not a valid contacts upsert.
pub fn assert_valid_upsert(body: &Value) {
    let violations = upsert_violations(body);
    assert!(
        violations.is_empty(),
        "invalid CRM upsert body:\n  {}\nbody: {body:#}",
        violations.join("\n  ")
    );
}

pub fn upsert_violations(body: &Value) -> Vec<String> {
    let openapi: Value =
        serde_json::from_str(&std::fs::read_to_string(OPENAPI).expect("crm openapi file"))
            .expect("crm openapi is json");
    let mut schema = openapi
        .pointer("/paths/~1{namespace}~1{resourceTypeCode}/patch/requestBody/content/application~1json/schema/oneOf/0")
        .expect("Body V1 schema")
        .clone();
    schema["type"] = json!("object");
    schema["additionalProperties"] = json!(false);
    schema["properties"]["fields"]["items"]["additionalProperties"] = json!(false);
    schema["properties"]["fields"]["items"]["required"] = json!(["id", "value", "operation"]);
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let mut violations: Vec<String> = validator
        .iter_errors(body)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect();
    let contact = openapi
        .pointer("/components/schemas/CRMContact/properties")
        .and_then(Value::as_object)
        .expect("CRMContact properties");
    for (i, field) in body["fields"].as_array().into_iter().flatten().enumerate() {
        let id = field["id"].as_str().unwrap_or_default();
        match contact.get(id) {
            None if id != "external_id" => {
                violations.push(format!("/fields/{i}/id: `{id}` is not a CRMContact field"))
            }
            Some(property) if property["readOnly"] == json!(true) => {
                violations.push(format!("/fields/{i}/id: `{id}` is read-only"))
            }
            _ => {}
        }
        let operation = field["operation"].as_str().unwrap_or_default();
        if !OPERATIONS.contains(&operation) {
            violations.push(format!(
                "/fields/{i}/operation: `{operation}` is not an operation"
            ));
        }
        if field["value"].as_str().is_some_and(|v| v.trim().is_empty()) {
            violations.push(format!("/fields/{i}/value: empty"));
        }
    }
    for key in body["searchExisting"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap_or_default();
        if key != "external_id" && !contact.contains_key(key) {
            violations.push(format!(
                "/searchExisting: `{key}` is not a CRMContact field"
            ));
        }
    }
    violations
}

#[test]
fn a_misspelt_field_and_an_unknown_operation_are_violations() {
    let body = json!({
        "fields": [{ "id": "standard__emial", "value": "x", "operation": "overwrite" }],
        "searchExisting": ["standard__email"],
        "extra": 1
    });
    let violations = upsert_violations(&body);
    assert_eq!(violations.len(), 3, "{violations:?}");
}
