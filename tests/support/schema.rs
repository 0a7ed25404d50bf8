//! Validates request bodies against Vendasta's own OpenAPI schema for customers.
//!
//! The schema is `components.schemas.customers` of
//! `tests/fixtures/openapi/vendasta-business-customers.yaml`, a copy of Vendasta's file,
//! wrapped as the request body `{"data": <customers>}`. It is made stricter where Vendasta
//! rejects what the file merely does not forbid: every object schema with `properties`
//! gets `additionalProperties: false`, so a misspelt member fails instead of being
//! silently ignored upstream. On top of the schema, the create and update rules that
//! Vendasta documents only in prose are checked by hand.
//!
//! `readOnly` (on `type`, `id`, `createdAt`, …) is only an annotation in JSON Schema, so
//! members the bridge must send despite the marking are accepted.
//!
//! Include it with `#[path = "support/schema.rs"] mod schema;`. Test-only: it panics.

// Each test binary that includes this file uses only some of it.
#![allow(dead_code)]

use std::sync::LazyLock;

use serde_json::Value;

/// Named in error messages.
const OPENAPI: &str = "tests/fixtures/openapi/vendasta-business-customers.yaml";
/// Compiled in, relative to this file, so that crates outside the main one (the fuzz
/// targets in fuzz/) can include this module too.
const OPENAPI_TEXT: &str = include_str!("../fixtures/openapi/vendasta-business-customers.yaml");

/// Built once per test binary; an error (missing file, bad schema) is reported by every
/// check instead of aborting the first test that happens to touch it.
static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(build_validator);

/// Panics with every violation if `body` (a full request body like {"data": {...}}) is not a valid create request.
pub fn assert_valid_create(body: &Value) {
    if let Err(violations) = check_create(body) {
        panic!("{}", report("create", body, &violations));
    }
}

/// Same for a PATCH body ({"data":{"type":"customers","id":…,"attributes":{…}}}).
pub fn assert_valid_update(body: &Value) {
    if let Err(violations) = check_update(body) {
        panic!("{}", report("update", body, &violations));
    }
}

/// Every violation of a create body, each prefixed with its JSON pointer.
///
/// Besides the schema: `data.type` is `customers`, `relationships.businessLocation.data.id`
/// is present and non-empty, and at least one email address or phone number is sent
/// (Vendasta's "must be populated during creation" rules).
pub fn check_create(body: &Value) -> Result<(), Vec<String>> {
    let mut violations = schema_violations(body);
    let data = body.get("data");

    if data.and_then(|data| data.get("type")) != Some(&Value::from("customers")) {
        violations.push("/data/type: must be \"customers\" on create".to_owned());
    }

    let location = data.and_then(|data| data.pointer("/relationships/businessLocation/data/id"));
    if !is_non_empty_string(location) {
        violations.push(
            "/data/relationships/businessLocation/data/id: a non-empty business location id is \
             required on create"
                .to_owned(),
        );
    }

    let attributes = data.and_then(|data| data.get("attributes"));
    let has_contact_point = ["emailAddresses", "phoneNumbers"].iter().any(|member| {
        attributes
            .and_then(|attributes| attributes.get(member))
            .and_then(Value::as_array)
            .is_some_and(|values| !values.is_empty())
    });
    if !has_contact_point {
        violations.push(
            "/data/attributes: emailAddresses or phoneNumbers must be non-empty on create"
                .to_owned(),
        );
    }

    into_result(violations)
}

/// Every violation of an update (PATCH) body, each prefixed with its JSON pointer.
///
/// Besides the schema: `data.id` and `data.type` are required ("Only the root ID and type
/// fields are required").
pub fn check_update(body: &Value) -> Result<(), Vec<String>> {
    let mut violations = schema_violations(body);
    let data = body.get("data");

    if !is_non_empty_string(data.and_then(|data| data.get("id"))) {
        violations.push("/data/id: the customer id is required on update".to_owned());
    }
    if data.and_then(|data| data.get("type")).is_none() {
        violations.push("/data/type: is required on update".to_owned());
    }

    into_result(violations)
}

fn schema_violations(body: &Value) -> Vec<String> {
    match &*VALIDATOR {
        Ok(validator) => validator
            .iter_errors(body)
            .map(|error| format!("{}: {error}", pointer(&error.instance_path().to_string())))
            .collect(),
        Err(problem) => vec![format!("(schema) {problem}")],
    }
}

fn build_validator() -> Result<jsonschema::Validator, String> {
    let openapi: Value = serde_norway::from_str(OPENAPI_TEXT)
        .map_err(|error| format!("cannot parse {OPENAPI} as YAML: {error}"))?;
    let customers = openapi
        .pointer("/components/schemas/customers")
        .cloned()
        .ok_or_else(|| format!("{OPENAPI} has no components.schemas.customers"))?;

    let mut schema = serde_json::json!({
        "type": "object",
        "properties": { "data": customers },
        "required": ["data"],
    });
    forbid_unknown_members(&mut schema);

    // OpenAPI 3.0 schemas are a dialect of JSON Schema draft 4/5; formats are opt-in, and
    // `format: email` is one of the rules Vendasta enforces.
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|error| format!("cannot compile the customers schema: {error}"))
}

/// Sets `additionalProperties: false` on every object schema that lists `properties`
/// (unless the file already says something), walking only schema keywords so that
/// property names and examples are never mistaken for schemas.
fn forbid_unknown_members(schema: &mut Value) {
    let Some(schema) = schema.as_object_mut() else {
        return;
    };
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.values_mut().for_each(forbid_unknown_members);
        schema
            .entry("additionalProperties")
            .or_insert(Value::Bool(false));
    }
    for keyword in ["items", "additionalProperties", "not"] {
        if let Some(subschema) = schema.get_mut(keyword) {
            forbid_unknown_members(subschema);
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if let Some(subschemas) = schema.get_mut(keyword).and_then(Value::as_array_mut) {
            subschemas.iter_mut().for_each(forbid_unknown_members);
        }
    }
}

fn is_non_empty_string(value: Option<&Value>) -> bool {
    value.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

fn pointer(path: &str) -> &str {
    if path.is_empty() { "/" } else { path }
}

fn into_result(violations: Vec<String>) -> Result<(), Vec<String>> {
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

fn report(kind: &str, body: &Value, violations: &[String]) -> String {
    let body = serde_json::to_string_pretty(body).unwrap_or_else(|_| body.to_string());
    format!(
        "not a valid Vendasta {kind} request ({} violation(s)):\n  - {}\nbody:\n{body}",
        violations.len(),
        violations.join("\n  - ")
    )
}
