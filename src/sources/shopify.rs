//! Shopify: `X-Shopify-Hmac-Sha256` verification, the envelope from Shopify's headers, and
//! the REST customer payload of `customers/create` and `customers/update`.
//!
//! Facts (reference/providers.md §1): the HMAC is base64 HMAC-SHA256 of the raw body with
//! the app's client secret; `X-Shopify-Webhook-Id` is the per-delivery dedupe key; ids
//! exceed 2^53, so they are read as integers or strings, never as floats; since API version
//! 2025-01 the customer payload carries no tags and no marketing consent, while older
//! versions do (`tags` as a comma-separated string, `accepts_marketing`,
//! `email_marketing_consent`), and both shapes are read.
//!
//! Since 2025-01 tags and consent arrive as their own topics, read here as partial
//! updates (`customer.tags_added`, `customer.tags_removed`,
//! `customers/email_marketing_consent/update`, `customers/marketing_consent/update`),
//! whose GraphQL ids (`gid://shopify/Customer/1`) are reduced to the REST id (`1`) so they
//! reach the same contact. The mandatory privacy topics (`customers/redact`, `shop/redact`,
//! `customers/data_request`) become [`PrivacyRequest`]s carried out at ingest, and
//! `customers/delete` is delivered only when the route's `on_delete` is `delete`. Headers
//! come as `X-Shopify-*` (webhooks) or un-prefixed `shopify-*` (the newer Events delivery).

use std::{collections::BTreeMap, time::SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;

use serde_json::Value;

use super::{
    Action, Disposition, Envelope, ParsedEvent, PartialChange, PayloadError, PrivacyRequest,
    SignatureError, Source, StoredEvent, Verified, body_digest_id, header, rfc3339_millis,
    signing::check_base64_sha256, unreadable_header,
};
use crate::{
    config::{OnDelete, RouteConfig, Secret},
    contact::{Contact, Phone, PostalAddress},
};

const PROVIDER: &str = "Shopify";
/// A header's two names: `x-shopify-{name}` (webhooks) and `shopify-{name}` (Events).
/// Spelled out at compile time, so that a lookup on the ingest path builds no string.
macro_rules! shopify_names {
    ($name:literal) => {
        [concat!("x-shopify-", $name), concat!("shopify-", $name)]
    };
}
const HMAC_HEADER: [&str; 2] = shopify_names!("hmac-sha256");
const TOPIC_HEADER: [&str; 2] = shopify_names!("topic");
const WEBHOOK_ID_HEADER: [&str; 2] = shopify_names!("webhook-id");
const EVENT_ID_HEADER: [&str; 2] = shopify_names!("event-id");
const SHOP_HEADER: [&str; 2] = shopify_names!("shop-domain");
const API_VERSION_HEADER: [&str; 2] = shopify_names!("api-version");
const TRIGGERED_AT_HEADER: [&str; 2] = shopify_names!("triggered-at");

/// Meta keys stored with a job.
const META_TOPIC: &str = "topic";
const META_SHOP: &str = "shop_domain";
const META_API_VERSION: &str = "api_version";
const META_TRIGGERED_AT: &str = "triggered_at";

/// Topics whose payload is a full customer.
const CUSTOMER_TOPICS: &[&str] = &["customers/create", "customers/update"];
const TAGS_ADDED: &str = "customer.tags_added";
const TAGS_REMOVED: &str = "customer.tags_removed";
const EMAIL_CONSENT: &str = "customers/email_marketing_consent/update";
const SMS_CONSENT: &str = "customers/marketing_consent/update";
/// Topics that change one attribute of an existing customer.
const PARTIAL_TOPICS: &[&str] = &[TAGS_ADDED, TAGS_REMOVED, EMAIL_CONSENT, SMS_CONSENT];
const DELETE_TOPIC: &str = "customers/delete";
const REDACT_CUSTOMER: &str = "customers/redact";
const REDACT_SHOP: &str = "shop/redact";
const DATA_REQUEST: &str = "customers/data_request";

/// A Shopify route's verifier and parser.
#[derive(Debug)]
pub struct Shopify {
    secrets: Vec<Secret>,
    on_delete: OnDelete,
}

impl Shopify {
    pub fn new(secrets: &[Secret]) -> Self {
        Self {
            secrets: secrets.to_vec(),
            on_delete: OnDelete::Ignore,
        }
    }

    pub fn from_route(route: &RouteConfig) -> Self {
        Self {
            secrets: route.secrets.to_vec(),
            on_delete: route.on_delete,
        }
    }
}

/// A Shopify header under either of its names (`X-Shopify-Topic` or `shopify-topic`).
fn shopify_header<'a>(headers: &'a HeaderMap, [x, plain]: [&str; 2]) -> Option<&'a str> {
    header(headers, x).or_else(|| header(headers, plain))
}

/// Why [`shopify_header`] found none of `names` (shown as `display`): a value that is not
/// ASCII under either name, or neither there.
fn unreadable_shopify_header(
    headers: &HeaderMap,
    [x, plain]: [&str; 2],
    display: &'static str,
) -> SignatureError {
    match unreadable_header(headers, x, display, PROVIDER) {
        SignatureError::MissingHeader { .. } => {
            unreadable_header(headers, plain, display, PROVIDER)
        }
        not_text => not_text,
    }
}

impl Source for Shopify {
    fn kind(&self) -> &'static str {
        "shopify"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        _now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let given = shopify_header(headers, HMAC_HEADER).ok_or_else(|| {
            unreadable_shopify_header(headers, HMAC_HEADER, "X-Shopify-Hmac-Sha256")
        })?;
        check_base64_sha256(
            given,
            &self.secrets,
            &[&body],
            "X-Shopify-Hmac-Sha256",
            PROVIDER,
        )?;
        Ok(Verified(body))
    }

    fn envelope(&self, headers: &HeaderMap, body: &Verified) -> Envelope {
        let topic = shopify_header(headers, TOPIC_HEADER)
            .unwrap_or_default()
            .to_string();
        // A missing topic is still delivered, so the worker parks it with a reason
        // rather than the bridge silently dropping a signed webhook.
        let deliver = topic.is_empty()
            || CUSTOMER_TOPICS.contains(&topic.as_str())
            || PARTIAL_TOPICS.contains(&topic.as_str())
            || (topic == DELETE_TOPIC && self.on_delete == OnDelete::Delete);
        let disposition = if deliver {
            Disposition::Deliver
        } else {
            Disposition::Ignore
        };
        let delivery_id = match (
            shopify_header(headers, WEBHOOK_ID_HEADER),
            shopify_header(headers, EVENT_ID_HEADER),
        ) {
            (Some(id), _) => id.to_string(),
            // Event-Id is shared by every topic of one merchant action: scope it.
            (None, Some(event)) => format!("event:{event}:{topic}"),
            (None, None) => body_digest_id(body.body()),
        };
        let mut meta = BTreeMap::new();
        meta.insert(META_TOPIC.to_string(), topic.clone());
        for (name, key) in [
            (SHOP_HEADER, META_SHOP),
            (API_VERSION_HEADER, META_API_VERSION),
            (TRIGGERED_AT_HEADER, META_TRIGGERED_AT),
        ] {
            if let Some(value) = shopify_header(headers, name) {
                meta.insert(key.to_string(), value.to_string());
            }
        }
        let head = serde_json::from_slice::<Head>(body.body()).ok();
        let contact_id = head.as_ref().and_then(|head| {
            id_of([&head.id, &head.customer_id, &head.customer_id_graphql].map(Option::as_ref))
        });
        // Partial updates and deletes carry no `updated_at` of the whole customer, so
        // they are never skipped as stale and never move the contact's clock.
        let updated_at = if CUSTOMER_TOPICS.contains(&topic.as_str()) {
            head.as_ref()
                .and_then(|h| h.updated_at.as_ref())
                .and_then(Value::as_str)
                .and_then(rfc3339_millis)
        } else {
            None
        };
        Envelope {
            topic,
            disposition,
            delivery_id,
            contact_id,
            updated_at,
            meta,
        }
    }

    fn plan(&self, event: &StoredEvent<'_>) -> Result<Action, PayloadError> {
        let tenant = event
            .meta
            .get(META_SHOP)
            .map(|shop| shop.to_ascii_lowercase());
        if !PARTIAL_TOPICS.contains(&event.topic) && event.topic != DELETE_TOPIC {
            return self.parse(event).map(Action::Upsert);
        }
        let body: Value = serde_json::from_slice(event.body)
            .map_err(|error| PayloadError::from_json(&error, PROVIDER))?;
        if customer_id(&body).is_none() {
            return Err(PayloadError::Shape {
                provider: PROVIDER,
                detail: "no customer id (`id`, `customer_id` or `customerId`)".into(),
            });
        }
        let change = match event.topic {
            DELETE_TOPIC => return Ok(Action::Delete { tenant }),
            TAGS_ADDED | TAGS_REMOVED => {
                let tags: Vec<String> = body
                    .get("tags")
                    .and_then(Value::as_array)
                    .ok_or(PayloadError::Shape {
                        provider: PROVIDER,
                        detail: "`tags` is not a list".into(),
                    })?
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
                if event.topic == TAGS_ADDED {
                    PartialChange::TagsAdded(tags)
                } else {
                    PartialChange::TagsRemoved(tags)
                }
            }
            EMAIL_CONSENT => {
                PartialChange::Consent(consent_state(&body, "email_marketing_consent"))
            }
            _ => PartialChange::Consent(consent_state(&body, "sms_marketing_consent")),
        };
        Ok(Action::Partial { change, tenant })
    }

    fn privacy(
        &self,
        headers: &HeaderMap,
        body: &Verified,
    ) -> Option<Result<PrivacyRequest, PayloadError>> {
        let topic = shopify_header(headers, TOPIC_HEADER)?;
        if ![REDACT_CUSTOMER, REDACT_SHOP, DATA_REQUEST].contains(&topic) {
            return None;
        }
        let unreadable = |detail: &str| PayloadError::Privacy {
            topic: topic.to_string(),
            detail: detail.to_string(),
        };
        let Ok(payload) = serde_json::from_slice::<Value>(body.body()) else {
            return Some(Err(unreadable("the body is not JSON")));
        };
        let tenant = payload
            .get("shop_domain")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .or_else(|| shopify_header(headers, SHOP_HEADER).map(str::to_ascii_lowercase));
        let customer = payload.get("customer").and_then(customer_id);
        Some(match topic {
            REDACT_SHOP => match tenant {
                Some(tenant) => Ok(PrivacyRequest::RedactTenant { tenant }),
                None => Err(unreadable("no `shop_domain`")),
            },
            REDACT_CUSTOMER => match customer {
                Some(id) => Ok(PrivacyRequest::RedactContacts {
                    tenant,
                    contact_ids: vec![id],
                }),
                None => Err(unreadable("no `customer.id`")),
            },
            _ => Ok(PrivacyRequest::DataRequest {
                tenant,
                contact_ids: customer.into_iter().collect(),
                request_id: payload
                    .get("data_request")
                    .and_then(|r| r.get("id"))
                    .map(id_text),
            }),
        })
    }

    fn parse(&self, event: &StoredEvent<'_>) -> Result<ParsedEvent, PayloadError> {
        if event.topic.is_empty() {
            return Err(PayloadError::NoTopic {
                header: "X-Shopify-Topic",
            });
        }
        if !CUSTOMER_TOPICS.contains(&event.topic) {
            return Err(PayloadError::UnsupportedTopic(event.topic.to_string()));
        }
        let customer: Customer = serde_json::from_slice(event.body)
            .map_err(|error| PayloadError::from_json(&error, PROVIDER))?;
        if customer.id.is_none() {
            return Err(PayloadError::Shape {
                provider: PROVIDER,
                detail: "`id` is missing".into(),
            });
        }
        Ok(ParsedEvent {
            contact: customer.into_contact(),
            tenant: event
                .meta
                .get(META_SHOP)
                .map(|shop| shop.to_ascii_lowercase()),
        })
    }
}

/// The customer id of any customer topic: `id` (REST customers, `customers/delete`,
/// SMS consent), `customer_id` (email consent) or `customerId` (tags events, a GraphQL id
/// such as `gid://shopify/Customer/1`, reduced to `1`). Numbers keep every digit.
fn customer_id(body: &Value) -> Option<String> {
    id_of(["id", "customer_id", "customerId"].map(|key| body.get(key)))
}

/// [`customer_id`] of the values of `id`, `customer_id` and `customerId`, in that order.
fn id_of(candidates: [Option<&Value>; 3]) -> Option<String> {
    let value = candidates.into_iter().flatten().find(|v| !v.is_null())?;
    let text = id_text(value);
    let id = match text.strip_prefix("gid://shopify/Customer/") {
        Some(rest) => rest.split('?').next().unwrap_or(rest).to_string(),
        None => text,
    };
    (!id.trim().is_empty()).then_some(id)
}

fn id_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// `subscribed` → yes, any other stated state → no, no state → the event says nothing.
fn consent_state(body: &Value, key: &str) -> Option<bool> {
    let state = body.get(key)?.get("state")?.as_str()?;
    Some(state == "subscribed")
}

/// What ingest reads from any customer topic's body: the keys [`customer_id`] looks at
/// and `updated_at`, each kept as whatever JSON it is. Everything else is skipped
/// without being built: parsing the whole body into a `Value` for these four keys was
/// 13% of the bridge's CPU under ingest load (profiled).
#[derive(Debug, Deserialize)]
struct Head {
    id: Option<Value>,
    customer_id: Option<Value>,
    #[serde(rename = "customerId")]
    customer_id_graphql: Option<Value>,
    updated_at: Option<Value>,
}

/// The REST customer as `customers/create|update` sends it (every API version).
#[derive(Debug, Deserialize)]
struct Customer {
    /// Only checked for presence; ingest already read it exactly (ids exceed 2^53).
    id: Option<Value>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    /// Before 2025-01: one comma-separated string.
    tags: Option<String>,
    /// Deprecated in 2022-04 in favour of `email_marketing_consent`, still sent by old versions.
    accepts_marketing: Option<bool>,
    email_marketing_consent: Option<Consent>,
    sms_marketing_consent: Option<Consent>,
    default_address: Option<Address>,
    #[serde(default)]
    addresses: Vec<Address>,
}

#[derive(Debug, Deserialize)]
struct Consent {
    state: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Address {
    address1: Option<String>,
    address2: Option<String>,
    city: Option<String>,
    province_code: Option<String>,
    country_code: Option<String>,
    phone: Option<String>,
    #[serde(default)]
    default: bool,
}

impl Customer {
    fn into_contact(self) -> Contact {
        let primary = self
            .default_address
            .clone()
            .or_else(|| self.addresses.iter().find(|a| a.default).cloned())
            .or_else(|| self.addresses.first().cloned());
        let home_country = primary.as_ref().and_then(|a| a.country_code.clone());

        let mut phones = Vec::new();
        let mut push_phone = |number: &Option<String>, region: &Option<String>| {
            if let Some(number) = number.as_ref().filter(|n| !n.trim().is_empty()) {
                phones.push(Phone {
                    number: number.clone(),
                    default_region: region.clone(),
                });
            }
        };
        push_phone(&self.phone, &home_country);
        if let Some(address) = &self.default_address {
            push_phone(&address.phone, &address.country_code);
        }
        for address in &self.addresses {
            push_phone(&address.phone, &address.country_code);
        }

        Contact {
            first_name: self.first_name,
            last_name: self.last_name,
            emails: self.email.into_iter().collect(),
            phones,
            address: primary.map(|a| PostalAddress {
                line1: a.address1,
                line2: a.address2,
                city: a.city,
                province_code: a.province_code,
                country_code: a.country_code,
            }),
            tags: self
                .tags
                .as_deref()
                .map(|tags| tags.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            marketing_consent: consent(
                [&self.email_marketing_consent, &self.sms_marketing_consent],
                self.accepts_marketing,
            ),
        }
    }
}

/// Subscribed by email or SMS means yes; any other stated consent means no; with no
/// consent objects the legacy `accepts_marketing` decides; otherwise the payload is silent.
fn consent(objects: [&Option<Consent>; 2], accepts_marketing: Option<bool>) -> Option<bool> {
    let states: Vec<&str> = objects
        .iter()
        .filter_map(|c| c.as_ref().and_then(|c| c.state.as_deref()))
        .collect();
    if states.contains(&"subscribed") {
        Some(true)
    } else if !states.is_empty() {
        Some(false)
    } else {
        accepts_marketing
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn shopify(secrets: &[&str]) -> Shopify {
        Shopify::new(&secrets.iter().map(|s| Secret::new(*s)).collect::<Vec<_>>())
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/shopify/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn parse(topic: &str, body: &[u8], shop: Option<&str>) -> Result<ParsedEvent, PayloadError> {
        let mut meta = BTreeMap::new();
        if let Some(shop) = shop {
            meta.insert(META_SHOP.to_string(), shop.to_string());
        }
        shopify(&["k"]).parse(&StoredEvent {
            topic,
            meta: &meta,
            body,
        })
    }

    #[test]
    fn the_published_shopify_vector_verifies() {
        let body = Bytes::from_static(br#"{"foo": "bar"}"#);
        let h = headers(&[(
            "x-shopify-hmac-sha256",
            "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=",
        )]);
        assert!(
            shopify(&["test_secret_key"])
                .verify(&h, body, SystemTime::now())
                .is_ok()
        );
    }

    #[test]
    fn the_customer_fixture_vector_verifies_with_either_of_two_secrets() {
        let body = Bytes::from(fixture("shopify-customers-create.json"));
        let h = headers(&[(
            "x-shopify-hmac-sha256",
            "87MzYX5UVtGJjQjELNysjVHs/an56q0sQU9+OJpQpNU=",
        )]);
        let source = shopify(&["old-secret", "test_secret_key"]);
        assert!(source.verify(&h, body, SystemTime::now()).is_ok());
    }

    #[test]
    fn tampering_wrong_secrets_and_bad_headers_are_refused_with_a_reason() {
        let good = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=";
        let cases: &[(&str, &[&str], Option<&str>, &str)] = &[
            (
                r#"{"foo": "baz"}"#,
                &["test_secret_key"],
                Some(good),
                "signature_mismatch",
            ),
            (
                r#"{"foo": "bar"}"#,
                &["wrong"],
                Some(good),
                "signature_mismatch",
            ),
            (
                r#"{"foo": "bar"}"#,
                &["test_secret_key"],
                None,
                "missing_signature",
            ),
            (
                r#"{"foo": "bar"}"#,
                &["test_secret_key"],
                Some("%%%"),
                "malformed_signature",
            ),
        ];
        for (body, secrets, signature, code) in cases {
            let h = match signature {
                Some(sig) => headers(&[("x-shopify-hmac-sha256", sig)]),
                None => HeaderMap::new(),
            };
            let error = shopify(secrets)
                .verify(&h, Bytes::from(body.to_string()), SystemTime::now())
                .unwrap_err();
            assert_eq!(error.code(), *code, "{body} {secrets:?} {signature:?}");
            assert!(error.to_string().contains("X-Shopify-Hmac-Sha256"));
        }
        // A value that is not ASCII is reported as such under either of the header's
        // names (Shopify also sends it without the `X-` prefix).
        for name in ["x-shopify-hmac-sha256", "shopify-hmac-sha256"] {
            let mut h = HeaderMap::new();
            h.insert(
                http::HeaderName::from_static(name),
                HeaderValue::from_bytes(b"B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7\xc3\xa9")
                    .unwrap(),
            );
            let error = shopify(&["test_secret_key"])
                .verify(
                    &h,
                    Bytes::from_static(br#"{"foo": "bar"}"#),
                    SystemTime::now(),
                )
                .unwrap_err();
            assert!(
                matches!(error, SignatureError::NotText { .. }),
                "{name}: {error}"
            );
            assert_eq!(error.code(), "malformed_signature");
        }
    }

    #[test]
    fn the_envelope_keeps_ids_above_2_pow_53_exact() {
        let body = fixture("shopify-customers-create.json");
        let verified = Verified(Bytes::from(body));
        let h = headers(&[
            ("x-shopify-topic", "customers/create"),
            ("x-shopify-webhook-id", "wh-1"),
            ("x-shopify-shop-domain", "acme.myshopify.com"),
        ]);
        let envelope = shopify(&["k"]).envelope(&h, &verified);
        assert_eq!(envelope.contact_id.as_deref(), Some("706405506930370084"));
        assert_eq!(envelope.delivery_id, "wh-1");
        assert_eq!(envelope.disposition, Disposition::Deliver);
        assert_eq!(envelope.updated_at, Some(1_640_995_200_000));
        assert_eq!(
            envelope.meta.get(META_SHOP).map(String::as_str),
            Some("acme.myshopify.com")
        );
    }

    #[test]
    fn other_topics_are_ignored_and_missing_ids_fall_back() {
        let verified = Verified(Bytes::from_static(b"not json"));
        let h = headers(&[
            ("x-shopify-topic", "products/create"),
            ("x-shopify-event-id", "e1"),
        ]);
        let envelope = shopify(&["k"]).envelope(&h, &verified);
        assert_eq!(envelope.disposition, Disposition::Ignore);
        assert_eq!(envelope.delivery_id, "event:e1:products/create");
        assert_eq!(envelope.contact_id, None);

        let bare = shopify(&["k"]).envelope(&HeaderMap::new(), &verified);
        assert!(bare.delivery_id.starts_with("sha256:"));
        assert_eq!(bare.disposition, Disposition::Deliver);
    }

    #[test]
    fn the_2025_payload_parses_into_a_contact() {
        let parsed = parse(
            "customers/create",
            &fixture("shopify-customers-create.json"),
            Some("Acme.myshopify.com"),
        )
        .unwrap();
        let contact = parsed.contact;
        assert_eq!(parsed.tenant.as_deref(), Some("acme.myshopify.com"));
        assert_eq!(contact.first_name.as_deref(), Some("Bob"));
        assert_eq!(contact.emails, vec!["bob@biller.com"]);
        assert_eq!(
            contact.phones,
            vec![Phone {
                number: "555-555-5555".into(),
                default_region: Some("CA".into())
            }]
        );
        let address = contact.address.unwrap();
        assert_eq!(address.line1.as_deref(), Some("151 O'Connor Street"));
        assert_eq!(address.province_code.as_deref(), Some("ON"));
        assert_eq!(address.country_code.as_deref(), Some("CA"));
        assert!(contact.tags.is_empty());
        assert_eq!(contact.marketing_consent, None);
    }

    #[test]
    fn the_legacy_payload_keeps_tags_and_consent() {
        let body = r#"{"id": 1, "email": "a@b.co", "tags": "vip, Léon,  ",
            "accepts_marketing": true, "email_marketing_consent": null}"#;
        let contact = parse("customers/update", body.as_bytes(), None)
            .unwrap()
            .contact;
        assert_eq!(contact.tags, vec!["vip", " Léon", "  "]);
        assert_eq!(contact.marketing_consent, Some(true));
    }

    #[test]
    fn consent_reads_email_and_sms_states() {
        let sub = Some(Consent {
            state: Some("subscribed".into()),
        });
        let unsub = Some(Consent {
            state: Some("unsubscribed".into()),
        });
        let silent = Some(Consent { state: None });
        assert_eq!(consent([&unsub, &sub], Some(false)), Some(true));
        assert_eq!(consent([&unsub, &None], Some(true)), Some(false));
        assert_eq!(consent([&silent, &None], Some(true)), Some(true));
        assert_eq!(consent([&None, &None], None), None);
    }

    #[test]
    fn unreadable_payloads_are_reported_without_quoting_values() {
        let error = parse("customers/create", b"{\"id\": 1, \"email\": 5}", None).unwrap_err();
        assert!(matches!(error, PayloadError::Shape { .. }), "{error}");
        let error = parse("customers/create", b"{\"email\": \"x@y.z\"", None).unwrap_err();
        assert!(matches!(error, PayloadError::NotJson(_)));
        assert!(!error.to_string().contains("x@y.z"));
        assert!(matches!(
            parse("", b"{}", None).unwrap_err(),
            PayloadError::NoTopic { .. }
        ));
    }

    #[test]
    fn partial_topics_reach_the_rest_contact_id_and_carry_no_updated_at() {
        let cases = [
            (
                "customer.tags_added",
                "shopify-customer.tags_added.json",
                "1",
            ),
            (
                "customers/email_marketing_consent/update",
                "shopify-customers_email_marketing_consent-update.json",
                "706405506930370084",
            ),
            (
                "customers/marketing_consent/update",
                "shopify-customers_marketing_consent-update.json",
                "706405506930370084",
            ),
        ];
        for (topic, file, id) in cases {
            let verified = Verified(Bytes::from(fixture(file)));
            let h = headers(&[("shopify-topic", topic), ("shopify-webhook-id", "w")]);
            let envelope = shopify(&["k"]).envelope(&h, &verified);
            assert_eq!(envelope.contact_id.as_deref(), Some(id), "{topic}");
            assert_eq!(envelope.disposition, Disposition::Deliver, "{topic}");
            assert_eq!(envelope.updated_at, None, "{topic}");
        }
    }

    #[test]
    fn plans_read_tags_consent_and_deletes() {
        let plan = |topic: &str, body: &[u8]| {
            shopify(&["k"])
                .plan(&StoredEvent {
                    topic,
                    meta: &BTreeMap::new(),
                    body,
                })
                .unwrap()
        };
        assert_eq!(
            plan(
                "customer.tags_added",
                &fixture("shopify-customer.tags_added.json")
            ),
            Action::Partial {
                change: PartialChange::TagsAdded(vec!["tag1".into(), "tag2".into()]),
                tenant: None
            }
        );
        assert_eq!(
            plan(
                "customers/email_marketing_consent/update",
                &fixture("shopify-customers_email_marketing_consent-update.json")
            ),
            Action::Partial {
                change: PartialChange::Consent(Some(false)),
                tenant: None
            }
        );
        assert_eq!(
            plan("customers/delete", br#"{"id": 5}"#),
            Action::Delete { tenant: None }
        );
    }

    #[test]
    fn privacy_topics_become_requests_and_other_topics_do_not() {
        let body = Verified(Bytes::from_static(
            br#"{"shop_domain":"Acme.myshopify.com","customer":{"id":706405506930370084,"email":"x@y.z"},"data_request":{"id":9}}"#,
        ));
        let request =
            |topic: &str| shopify(&["k"]).privacy(&headers(&[("x-shopify-topic", topic)]), &body);
        assert_eq!(
            request("customers/redact"),
            Some(Ok(PrivacyRequest::RedactContacts {
                tenant: Some("acme.myshopify.com".into()),
                contact_ids: vec!["706405506930370084".into()]
            }))
        );
        assert_eq!(
            request("shop/redact"),
            Some(Ok(PrivacyRequest::RedactTenant {
                tenant: "acme.myshopify.com".into()
            }))
        );
        assert!(matches!(
            request("customers/data_request"),
            Some(Ok(PrivacyRequest::DataRequest { request_id: Some(ref id), .. })) if id == "9"
        ));
        assert_eq!(request("customers/update"), None);
        let empty = Verified(Bytes::from_static(b"{}"));
        let error = shopify(&["k"])
            .privacy(&headers(&[("x-shopify-topic", "customers/redact")]), &empty)
            .unwrap()
            .unwrap_err();
        assert!(error.to_string().contains("customer.id"), "{error}");
    }

    #[test]
    fn a_blank_customer_id_is_no_contact_id() {
        let h = headers(&[("x-shopify-topic", "customers/create")]);
        for body in [
            &br#"{"id":" "}"#[..],
            br#"{"customerId":"gid://shopify/Customer/ "}"#,
        ] {
            let envelope = shopify(&["k"]).envelope(&h, &Verified(Bytes::from_static(body)));
            assert_eq!(envelope.contact_id, None);
        }
    }
}
