//! Shopify: `X-Shopify-Hmac-Sha256` verification, the envelope from Shopify's headers, and
//! the REST customer payload of `customers/create` and `customers/update`.
//!
//! Facts (reference/providers.md §1): the HMAC is base64 HMAC-SHA256 of the raw body with
//! the app's client secret; `X-Shopify-Webhook-Id` is the per-delivery dedupe key; ids
//! exceed 2^53, so they are read as integers or strings, never as floats; since API version
//! 2025-01 the customer payload carries no tags and no marketing consent, while older
//! versions do (`tags` as a comma-separated string, `accepts_marketing`,
//! `email_marketing_consent`), and both shapes are read.

use std::{collections::BTreeMap, time::SystemTime};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde::Deserialize;
use sha2::Sha256;

use super::{
    Disposition, Envelope, ParsedEvent, PayloadError, SignatureError, Source, StoredEvent,
    Verified, body_digest_id, header, rfc3339_millis,
};
use crate::{
    config::Secret,
    contact::{Contact, Phone, PostalAddress},
};

const PROVIDER: &str = "Shopify";
const HMAC_HEADER: &str = "x-shopify-hmac-sha256";
const TOPIC_HEADER: &str = "x-shopify-topic";
const WEBHOOK_ID_HEADER: &str = "x-shopify-webhook-id";
const EVENT_ID_HEADER: &str = "x-shopify-event-id";
const SHOP_HEADER: &str = "x-shopify-shop-domain";
const API_VERSION_HEADER: &str = "x-shopify-api-version";
const TRIGGERED_AT_HEADER: &str = "x-shopify-triggered-at";

/// Meta keys stored with a job.
const META_TOPIC: &str = "topic";
const META_SHOP: &str = "shop_domain";
const META_API_VERSION: &str = "api_version";
const META_TRIGGERED_AT: &str = "triggered_at";

/// Topics whose payload is a full customer.
const CUSTOMER_TOPICS: &[&str] = &["customers/create", "customers/update"];

/// A Shopify route's verifier and parser.
#[derive(Debug)]
pub struct Shopify {
    secrets: Vec<Secret>,
}

impl Shopify {
    pub fn new(secrets: &[Secret]) -> Self {
        Self {
            secrets: secrets.to_vec(),
        }
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
        let given = header(headers, HMAC_HEADER).ok_or(SignatureError::MissingHeader {
            header: "X-Shopify-Hmac-Sha256",
            provider: PROVIDER,
        })?;
        let given = BASE64
            .decode(given)
            .map_err(|_| SignatureError::Malformed {
                header: "X-Shopify-Hmac-Sha256",
                encoding: "base64",
                provider: PROVIDER,
            })?;
        // Every secret is tried (no early exit on length or prefix); `verify_slice`
        // compares in constant time.
        let matched = self.secrets.iter().fold(false, |matched, secret| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
                return matched;
            };
            mac.update(&body);
            mac.verify_slice(&given).is_ok() | matched
        });
        if matched {
            Ok(Verified(body))
        } else {
            Err(SignatureError::Mismatch {
                header: "X-Shopify-Hmac-Sha256",
                provider: PROVIDER,
            })
        }
    }

    fn envelope(&self, headers: &HeaderMap, body: &Verified) -> Envelope {
        let topic = header(headers, TOPIC_HEADER)
            .unwrap_or_default()
            .to_string();
        // A missing topic is still delivered, so the worker parks it with a reason
        // rather than the bridge silently dropping a signed webhook.
        let disposition = if topic.is_empty() || CUSTOMER_TOPICS.contains(&topic.as_str()) {
            Disposition::Deliver
        } else {
            Disposition::Ignore
        };
        let delivery_id = match (
            header(headers, WEBHOOK_ID_HEADER),
            header(headers, EVENT_ID_HEADER),
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
            if let Some(value) = header(headers, name) {
                meta.insert(key.to_string(), value.to_string());
            }
        }
        let head = serde_json::from_slice::<Head>(body.body()).ok();
        Envelope {
            topic,
            disposition,
            delivery_id,
            contact_id: head
                .as_ref()
                .and_then(|h| h.id.as_ref())
                .map(ShopifyId::to_text),
            updated_at: head
                .as_ref()
                .and_then(|h| h.updated_at.as_deref())
                .and_then(rfc3339_millis),
            meta,
        }
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

/// The two fields ingest needs, read without building the whole customer.
#[derive(Deserialize)]
struct Head {
    id: Option<ShopifyId>,
    updated_at: Option<String>,
}

/// Shopify ids are JSON integers above 2^53 (or strings in some payloads).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ShopifyId {
    Number(u64),
    Text(String),
}

impl ShopifyId {
    fn to_text(&self) -> String {
        match self {
            ShopifyId::Number(n) => n.to_string(),
            ShopifyId::Text(text) => text.clone(),
        }
    }
}

/// The REST customer as `customers/create|update` sends it (every API version).
#[derive(Debug, Deserialize)]
struct Customer {
    id: Option<ShopifyId>,
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
        let h = headers(&[(HMAC_HEADER, "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=")]);
        assert!(
            shopify(&["test_secret_key"])
                .verify(&h, body, SystemTime::now())
                .is_ok()
        );
    }

    #[test]
    fn the_customer_fixture_vector_verifies_with_either_of_two_secrets() {
        let body = Bytes::from(fixture("shopify-customers-create.json"));
        let h = headers(&[(HMAC_HEADER, "87MzYX5UVtGJjQjELNysjVHs/an56q0sQU9+OJpQpNU=")]);
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
                Some(sig) => headers(&[(HMAC_HEADER, sig)]),
                None => HeaderMap::new(),
            };
            let error = shopify(secrets)
                .verify(&h, Bytes::from(body.to_string()), SystemTime::now())
                .unwrap_err();
            assert_eq!(error.code(), *code, "{body} {secrets:?} {signature:?}");
            assert!(error.to_string().contains("X-Shopify-Hmac-Sha256"));
        }
    }

    #[test]
    fn the_envelope_keeps_ids_above_2_pow_53_exact() {
        let body = fixture("shopify-customers-create.json");
        let verified = Verified(Bytes::from(body));
        let h = headers(&[
            (TOPIC_HEADER, "customers/create"),
            (WEBHOOK_ID_HEADER, "wh-1"),
            (SHOP_HEADER, "acme.myshopify.com"),
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
        let h = headers(&[(TOPIC_HEADER, "products/create"), (EVENT_ID_HEADER, "e1")]);
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
}
