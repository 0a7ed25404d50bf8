//! Square: `x-square-hmacsha256-signature` verification, the envelope from the event
//! body, and the customer of `customer.created` / `customer.updated`.
//!
//! Facts (reference/providers.md §2): the signature is base64 HMAC-SHA256 with the
//! signature key's UTF-8 bytes over the subscription's notification URL followed by the raw
//! body, so the URL is a route key and must match the subscription exactly; no timestamp
//! is signed (replays are caught by dedupe on the body's `event_id`); the tenant is the
//! body's `merchant_id`; the customer's `updated_at` orders updates (its `version` is
//! stricter but has no meaning across contacts, and `updated_at` is what the job stores).

use std::{collections::BTreeMap, time::SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;

use super::{
    Disposition, Envelope, ParsedEvent, PayloadError, SignatureError, Source, StoredEvent,
    Verified, body_digest_id, header, non_blank, rfc3339_millis, signing::check_base64_sha256,
    unreadable_header,
};
use crate::{
    config::Secret,
    contact::{Contact, Phone, PostalAddress},
};

const PROVIDER: &str = "Square";
const SIGNATURE_HEADER: &str = "x-square-hmacsha256-signature";
/// Event types whose `data.object.customer` is delivered.
const CUSTOMER_TYPES: &[&str] = &["customer.created", "customer.updated"];

/// A Square route's verifier and parser.
#[derive(Debug)]
pub struct Square {
    secrets: Vec<Secret>,
    notification_url: String,
}

impl Square {
    pub fn new(secrets: &[Secret], notification_url: &str) -> Self {
        Self {
            secrets: secrets.to_vec(),
            notification_url: notification_url.to_string(),
        }
    }
}

impl Source for Square {
    fn kind(&self) -> &'static str {
        "square"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        _now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let given = header(headers, SIGNATURE_HEADER).ok_or_else(|| {
            unreadable_header(headers, SIGNATURE_HEADER, SIGNATURE_HEADER, PROVIDER)
        })?;
        let parts: [&[u8]; 2] = [self.notification_url.as_bytes(), &body];
        check_base64_sha256(given, &self.secrets, &parts, SIGNATURE_HEADER, PROVIDER).map_err(
            |error| match error {
                // Most mismatches on Square are a notification_url that differs from the
                // subscription's (scheme, trailing slash, query), so the message says so.
                SignatureError::Mismatch { header, .. } => SignatureError::Mismatch {
                    header,
                    provider: "Square (check also that routes[].notification_url is exactly the subscription's URL)",
                },
                other => other,
            },
        )?;
        Ok(Verified(body))
    }

    fn envelope(&self, _headers: &HeaderMap, body: &Verified) -> Envelope {
        let event = serde_json::from_slice::<Event>(body.body()).ok();
        let topic = event
            .as_ref()
            .and_then(|e| e.kind.clone())
            .unwrap_or_default();
        // An unreadable body is still delivered, so the worker parks it with a reason.
        let disposition = if topic.is_empty() || CUSTOMER_TYPES.contains(&topic.as_str()) {
            Disposition::Deliver
        } else {
            Disposition::Ignore
        };
        let customer = event
            .as_ref()
            .and_then(|e| e.data.as_ref())
            .and_then(|d| d.object.as_ref())
            .and_then(|o| o.customer.as_ref());
        Envelope {
            delivery_id: non_blank(event.as_ref().and_then(|e| e.event_id.clone()))
                .unwrap_or_else(|| body_digest_id(body.body())),
            contact_id: non_blank(
                event
                    .as_ref()
                    .and_then(|e| e.data.as_ref())
                    .and_then(|d| d.id.clone()),
            )
            .or_else(|| non_blank(customer.and_then(|c| c.id.clone()))),
            updated_at: customer
                .and_then(|c| c.updated_at.as_deref())
                .and_then(rfc3339_millis),
            topic,
            disposition,
            meta: BTreeMap::new(),
        }
    }

    fn parse(&self, event: &StoredEvent<'_>) -> Result<ParsedEvent, PayloadError> {
        if !CUSTOMER_TYPES.contains(&event.topic) {
            return Err(PayloadError::UnsupportedTopic(event.topic.to_string()));
        }
        let parsed: Event = serde_json::from_slice(event.body)
            .map_err(|error| PayloadError::from_json(&error, PROVIDER))?;
        let customer = parsed
            .data
            .and_then(|d| d.object)
            .and_then(|o| o.customer)
            .ok_or_else(|| PayloadError::Shape {
                provider: PROVIDER,
                detail: "`data.object.customer` is missing".into(),
            })?;
        Ok(ParsedEvent {
            contact: customer.into_contact(),
            tenant: parsed.merchant_id,
        })
    }
}

#[derive(Deserialize)]
struct Event {
    merchant_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    event_id: Option<String>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    id: Option<String>,
    object: Option<Object>,
}

#[derive(Deserialize)]
struct Object {
    customer: Option<Customer>,
}

#[derive(Deserialize)]
struct Customer {
    id: Option<String>,
    updated_at: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    email_address: Option<String>,
    phone_number: Option<String>,
    address: Option<Address>,
    preferences: Option<Preferences>,
}

#[derive(Deserialize)]
struct Address {
    address_line_1: Option<String>,
    address_line_2: Option<String>,
    locality: Option<String>,
    administrative_district_level_1: Option<String>,
    country: Option<String>,
}

#[derive(Deserialize)]
struct Preferences {
    email_unsubscribed: Option<bool>,
}

impl Customer {
    fn into_contact(self) -> Contact {
        let country = self.address.as_ref().and_then(|a| a.country.clone());
        Contact {
            first_name: self.given_name,
            last_name: self.family_name,
            emails: self.email_address.into_iter().collect(),
            phones: self
                .phone_number
                .into_iter()
                .map(|number| Phone {
                    number,
                    default_region: country.clone(),
                })
                .collect(),
            address: self.address.map(|a| PostalAddress {
                line1: a.address_line_1,
                line2: a.address_line_2,
                city: a.locality,
                province_code: a.administrative_district_level_1,
                country_code: a.country,
            }),
            tags: Vec::new(),
            // Square records only an opt-out of marketing email; not unsubscribed is the
            // closest it comes to permission.
            marketing_consent: self
                .preferences
                .and_then(|p| p.email_unsubscribed)
                .map(|unsubscribed| !unsubscribed),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::Value;

    use super::*;

    fn square(key: &str, url: &str) -> Square {
        Square::new(&[Secret::new("rotated-out"), Secret::new(key)], url)
    }

    fn signed(signature: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        map
    }

    fn vectors() -> Vec<Value> {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/test-vectors.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let all: Value = serde_json::from_str(&text).unwrap();
        all["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["provider"] == "square" && v.get("body").is_some())
            .cloned()
            .collect()
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/square/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn every_published_square_vector_verifies() {
        let vectors = vectors();
        assert_eq!(vectors.len(), 2);
        for v in vectors {
            let source = square(
                v["signature_key"].as_str().unwrap(),
                v["notification_url"].as_str().unwrap(),
            );
            let h = signed(v["headers"][SIGNATURE_HEADER].as_str().unwrap());
            let body = Bytes::from(v["body"].as_str().unwrap().to_string());
            assert!(source.verify(&h, body, SystemTime::now()).is_ok(), "{v}");
        }
    }

    #[test]
    fn the_published_negative_cases_fail() {
        let v = &vectors()[0];
        let key = v["signature_key"].as_str().unwrap();
        let url = v["notification_url"].as_str().unwrap();
        let good = v["headers"][SIGNATURE_HEADER].as_str().unwrap();
        let body = v["body"].as_str().unwrap();
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<Value>(body).unwrap()).unwrap();
        let cases = [
            (
                key,
                "https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9",
                good,
                body.to_string(),
            ),
            ("MCmhFRxGX82xMwg5FsaoQA", url, good, body.to_string()),
            (key, url, "1z2n3DEJJiUPKcPzQo1ftvbxGdw=", body.to_string()),
            (key, url, good, body.replace("2022-07-13", "2022-06-13")),
            (key, url, good, pretty),
        ];
        for (key, url, signature, body) in cases {
            let error = square(key, url)
                .verify(&signed(signature), Bytes::from(body), SystemTime::now())
                .unwrap_err();
            assert_eq!(error.code(), "signature_mismatch");
            assert!(error.to_string().contains("notification_url"));
        }
        let missing = square(key, url)
            .verify(
                &HeaderMap::new(),
                Bytes::from(body.to_string()),
                SystemTime::now(),
            )
            .unwrap_err();
        assert!(missing.to_string().contains(SIGNATURE_HEADER));
    }

    #[test]
    fn the_envelope_reads_event_id_customer_id_and_updated_at_and_ignores_test_notifications() {
        let source = square("k", "https://x.test/");
        let created = source.envelope(
            &HeaderMap::new(),
            &Verified(Bytes::from(fixture("square-customer.created.json"))),
        );
        assert_eq!(created.delivery_id, "e12b5591-e0b6-4967-810a-307c7efcb1a7");
        assert_eq!(
            created.contact_id.as_deref(),
            Some("QPTXM8PQNX3Q726ZYHPMNP46XC")
        );
        assert_eq!(created.topic, "customer.created");
        assert_eq!(created.disposition, Disposition::Deliver);
        assert_eq!(created.updated_at, rfc3339_millis("2022-11-09T21:23:25Z"));
        let test = source.envelope(
            &HeaderMap::new(),
            &Verified(Bytes::from(fixture(
                "square-webhooks.test_notification.json",
            ))),
        );
        assert_eq!(test.disposition, Disposition::Ignore);
    }

    #[test]
    fn the_customer_parses_with_the_merchant_as_tenant_and_unsubscribe_as_no_consent() {
        let body = fixture("square-customer.created.json");
        let parsed = square("k", "https://x.test/")
            .parse(&StoredEvent {
                topic: "customer.created",
                meta: &BTreeMap::new(),
                body: &body,
            })
            .unwrap();
        assert_eq!(parsed.tenant.as_deref(), Some("G7MMEBVW021Q4"));
        let contact = parsed.contact;
        assert_eq!(contact.first_name.as_deref(), Some("Jenkins"));
        assert_eq!(contact.emails, vec!["jenkins+smorly@squareup.com"]);
        assert_eq!(contact.phones[0].number, "+12126668929");
        assert_eq!(contact.marketing_consent, Some(true));
        let address = contact.address.unwrap();
        assert_eq!(address.city.as_deref(), Some("Oakland"));
        assert_eq!(address.province_code.as_deref(), Some("CA"));

        let unsubscribed = br#"{"type":"customer.updated","data":{"id":"C","object":{"customer":
            {"email_address":"a@b.co","preferences":{"email_unsubscribed":true}}}}}"#;
        let parsed = square("k", "https://x.test/")
            .parse(&StoredEvent {
                topic: "customer.updated",
                meta: &BTreeMap::new(),
                body: unsubscribed,
            })
            .unwrap();
        assert_eq!(parsed.contact.marketing_consent, Some(false));
    }

    #[test]
    fn a_blank_event_or_customer_id_counts_as_none() {
        let body = br#"{"event_id":"","type":"customer.created","data":{"id":" ","object":{"customer":{"id":" "}}}}"#;
        let envelope = square("k", "https://x.example/")
            .envelope(&HeaderMap::new(), &Verified(Bytes::from_static(body)));
        assert!(
            envelope.delivery_id.starts_with("sha256:"),
            "{}",
            envelope.delivery_id
        );
        assert_eq!(envelope.contact_id, None);
    }
}
