//! Adapter for Vendasta's CRM API (`vendasta.api = "crm"`): one upsert per contact.
//!
//! Owns the CRM wire format: `PATCH {crm_url}/{AG-…}/contacts` with `application/json`,
//! `searchExisting = ["external_id", "standard__email"]` so a contact is found by the
//! bridge's own id first and by e-mail second, `external_id = "{route}:{source contact
//! id}"`, and one `{id, value, operation}` per field (`always_overwrite` unless
//! `vendasta.crm_field_operations` says otherwise). It reads the same
//! [`CustomerAttributes`] the customers adapter sends, so `transform` stays the single
//! place where contacts are normalised. A 409 (reference/vendasta.md §6:
//! `metadata.<field> = "Already used by: ContactID-…"`) becomes `Conflict` with that id.

use std::{collections::BTreeMap, time::Duration};

use reqwest::{Method, Url};
use serde::Serialize;
use serde_json::Value;

use crate::{
    config::{Secret, VendastaConfig},
    vendasta::{
        Delivery, Outcome,
        client::{ClientError, classify_failure, http_client, send, with_text},
    },
};

/// The CRM API takes plain JSON.
const JSON: &str = "application/json";
/// Used for every field `vendasta.crm_field_operations` does not name.
const DEFAULT_OPERATION: &str = "always_overwrite";
/// Match on the bridge's id first, then on e-mail (the CRM's default match key).
const SEARCH_EXISTING: [&str; 2] = ["external_id", "standard__email"];
/// Asked back so a 200 carries the contact's id for the link.
const RETURN_FIELDS: [&str; 1] = ["system__id"];

/// Body of the upsert.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpsertRequest<'a> {
    pub fields: Vec<Field<'a>>,
    pub search_existing: [&'static str; 2],
    pub return_fields: [&'static str; 1],
}

/// One `{id, value, operation}` entry.
#[derive(Debug, Serialize)]
pub struct Field<'a> {
    pub id: &'static str,
    pub value: String,
    pub operation: &'a str,
}

/// Talks to `vendasta.crm_url`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct CrmClient {
    http: reqwest::Client,
    crm_url: String,
    operations: BTreeMap<String, String>,
    timeout: Duration,
}

impl CrmClient {
    /// Prepares the client; does no I/O.
    pub fn new(config: &VendastaConfig) -> Result<Self, ClientError> {
        let timeout = config.request_timeout();
        Ok(Self {
            http: http_client(timeout)?,
            crm_url: config.crm_url.clone(),
            operations: config.crm_field_operations.clone(),
            timeout,
        })
    }

    /// The upsert body for one contact; fields without a value are left out (an empty
    /// value would overwrite what the CRM has).
    pub fn upsert_request<'a>(&'a self, delivery: &Delivery<'_>) -> UpsertRequest<'a> {
        let attributes = delivery.attributes;
        let address = attributes.address.as_ref();
        let candidates: [(&'static str, Option<String>); 9] = [
            (
                "external_id",
                delivery
                    .source_contact_id
                    .map(|id| format!("{}:{id}", delivery.route)),
            ),
            ("standard__first_name", attributes.given_name.clone()),
            ("standard__last_name", attributes.family_name.clone()),
            (
                "standard__email",
                attributes.email_addresses.first().cloned(),
            ),
            (
                "standard__phone_number",
                attributes.phone_numbers.first().cloned(),
            ),
            (
                "standard__contact_primary_location_street_address_1",
                address.and_then(|a| a.street_address.clone()),
            ),
            (
                "standard__contact_primary_location_city_locality",
                address.and_then(|a| a.city.clone()),
            ),
            (
                "standard__contact_primary_location_state_province_region",
                address.and_then(|a| a.region_code.clone()),
            ),
            (
                "standard__contact_primary_location_country",
                address.and_then(|a| a.country_code.clone()),
            ),
        ];
        let fields = candidates
            .into_iter()
            .filter_map(|(id, value)| {
                let value = value.filter(|v| !v.trim().is_empty())?;
                let operation = self
                    .operations
                    .get(id)
                    .map_or(DEFAULT_OPERATION, String::as_str);
                Some(Field {
                    id,
                    value,
                    operation,
                })
            })
            .collect();
        UpsertRequest {
            fields,
            search_existing: SEARCH_EXISTING,
            return_fields: RETURN_FIELDS,
        }
    }

    /// `PATCH {crm_url}/{business_location}/contacts`.
    ///
    /// 2xx → `Created` with `system__id` when the CRM returns it (else `Updated`), 409 →
    /// `Conflict` with the `ContactID-…` from `metadata`, 401 → `Unauthorized`, the rest as
    /// for the customers API.
    pub async fn upsert(&self, token: &Secret, delivery: &Delivery<'_>) -> Outcome {
        let Some(url) = self.contacts_url(delivery.business_location) else {
            return Outcome::Retry {
                reason: "vendasta.crm_url is not a usable http(s) url".into(),
                retry_after: None,
            };
        };
        let Ok(body) = serde_json::to_vec(&self.upsert_request(delivery)) else {
            return Outcome::Reject {
                reason: "the contact could not be serialised as json".into(),
            };
        };
        let reply = match send(
            &self.http,
            self.timeout,
            token,
            Method::PATCH,
            url,
            JSON,
            body,
        )
        .await
        {
            Ok(reply) => reply,
            Err(outcome) => return outcome,
        };
        let code = reply.status.as_u16();
        if reply.status.is_success() {
            return match reply.body.ok().as_deref().and_then(returned_id) {
                Some(customer_id) => Outcome::Created { customer_id },
                None => Outcome::Updated,
            };
        }
        if code == 409 {
            return match &reply.body {
                Ok(body) => match conflicting_contact(body) {
                    Some(existing_id) => Outcome::Conflict { existing_id },
                    None => Outcome::Reject {
                        reason: with_text(
                            "the crm answered 409 without a conflicting contact id",
                            &reply.body,
                        ),
                    },
                },
                Err(reason) => Outcome::Retry {
                    reason: format!("the crm answered 409 but {reason}"),
                    retry_after: reply.retry_after,
                },
            };
        }
        classify_failure(code, reply.retry_after, reply.body)
    }

    /// `{crm_url}/{AG-…}/contacts`, the location as one encoded path segment.
    fn contacts_url(&self, business_location: &str) -> Option<Url> {
        let mut url = Url::parse(&self.crm_url).ok()?;
        url.path_segments_mut()
            .ok()?
            .pop_if_empty()
            .push(business_location)
            .push("contacts");
        Some(url)
    }
}

/// `system__id` from the returned `fields`, if the CRM sent it.
fn returned_id(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("fields")?
        .as_array()?
        .iter()
        .find(|field| field.get("id").and_then(Value::as_str) == Some("system__id"))
        .and_then(|field| field.get("value")?.as_str())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// The `ContactID-…` in `metadata` ("Already used by: ContactID-….", §6); the record that
/// holds our `external_id` wins over the one that holds the e-mail, as it is this contact.
fn conflicting_contact(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let metadata = value.get("metadata")?.as_object()?;
    let preferred = ["external_id", "standard__email"]
        .iter()
        .filter_map(|key| metadata.get(*key));
    preferred
        .chain(metadata.values())
        .filter_map(Value::as_str)
        .find_map(contact_id_in)
}

fn contact_id_in(text: &str) -> Option<String> {
    let start = text.find("ContactID-")?;
    let id: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (id.len() > "ContactID-".len()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflicting_contact_prefers_the_external_id_holder_and_drops_the_full_stop() {
        let body = br#"{"error":"conflict","metadata":{
            "standard__email":"Already used by: ContactID-00000000-0000-4000-8000-000000000002.",
            "external_id":"Already used by: ContactID-00000000-0000-4000-8000-000000000001."}}"#;
        assert_eq!(
            conflicting_contact(body).as_deref(),
            Some("ContactID-00000000-0000-4000-8000-000000000001")
        );
        let email_only = br#"{"metadata":{"standard__email":"Already used by: ContactID-abc."}}"#;
        assert_eq!(
            conflicting_contact(email_only).as_deref(),
            Some("ContactID-abc")
        );
        assert_eq!(conflicting_contact(br#"{"metadata":{"x":"no id"}}"#), None);
    }

    #[test]
    fn the_returned_system_id_is_read_from_fields() {
        let body = br#"{"fields":[{"id":"system__id","value":"ContactID-9"}]}"#;
        assert_eq!(returned_id(body).as_deref(), Some("ContactID-9"));
        assert_eq!(returned_id(br#"{"fields":[]}"#), None);
    }
}
