//! WooCommerce: `X-WC-Webhook-Signature` verification, the unsigned creation ping, the
//! envelope from WooCommerce's headers, and the REST v3 customer payload.
//!
//! Facts (reference/providers.md §3): the signature is base64 HMAC-SHA256 of the raw body
//! with the webhook secret; on creation WooCommerce POSTs an unsigned form body
//! `webhook_id=<n>` and disables the webhook unless it gets 200, so exactly that shape is
//! acknowledged (and nothing stored) while anything else unsigned is 401. WooCommerce sends
//! no stable event id (`X-WC-Webhook-Delivery-ID` is new on every attempt) and builds the
//! payload at delivery time from the customer's current state, so the dedupe key is the
//! store, the customer `id` and its `date_modified_gmt`: two deliveries of the same state
//! of the same customer are the same delivery, whichever topic carried them. The tenant
//! is `X-WC-Webhook-Source`, the store's URL.

use std::{collections::BTreeMap, time::SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;

use super::{
    Disposition, Envelope, ParsedEvent, PayloadError, SignatureError, Source, StoredEvent,
    Verified, body_digest_id, header, rfc3339_millis, signing::check_base64_sha256,
    unreadable_header,
};
use crate::{
    config::Secret,
    contact::{Contact, Phone, PostalAddress},
};

const PROVIDER: &str = "WooCommerce";
const SIGNATURE_HEADER: &str = "x-wc-webhook-signature";
const TOPIC_HEADER: &str = "x-wc-webhook-topic";
const SOURCE_HEADER: &str = "x-wc-webhook-source";
/// The topic recorded for the creation ping.
pub const PING_TOPIC: &str = "ping";
const META_SOURCE: &str = "store_url";
const CUSTOMER_TOPICS: &[&str] = &["customer.created", "customer.updated"];

/// A WooCommerce route's verifier and parser.
#[derive(Debug)]
pub struct WooCommerce {
    secrets: Vec<Secret>,
}

impl WooCommerce {
    pub fn new(secrets: &[Secret]) -> Self {
        Self {
            secrets: secrets.to_vec(),
        }
    }
}

/// `webhook_id=<digits>` and nothing else: the only unsigned request WooCommerce sends.
fn is_ping(body: &[u8]) -> bool {
    body.strip_prefix(b"webhook_id=")
        .is_some_and(|id| !id.is_empty() && id.len() <= 20 && id.iter().all(u8::is_ascii_digit))
}

impl Source for WooCommerce {
    fn kind(&self) -> &'static str {
        "woocommerce"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        _now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let Some(given) = header(headers, SIGNATURE_HEADER) else {
            // The ping carries no customer data and must get 200 or WooCommerce marks
            // the webhook as failing; `envelope` acknowledges it without storing it.
            if is_ping(&body) {
                return Ok(Verified(body));
            }
            return Err(unreadable_header(
                headers,
                SIGNATURE_HEADER,
                "X-WC-Webhook-Signature",
                PROVIDER,
            ));
        };
        check_base64_sha256(
            given,
            &self.secrets,
            &[&body],
            "X-WC-Webhook-Signature",
            PROVIDER,
        )?;
        Ok(Verified(body))
    }

    fn envelope(&self, headers: &HeaderMap, body: &Verified) -> Envelope {
        if header(headers, SIGNATURE_HEADER).is_none() && is_ping(body.body()) {
            return Envelope {
                topic: PING_TOPIC.into(),
                disposition: Disposition::Ignore,
                delivery_id: body_digest_id(body.body()),
                contact_id: None,
                updated_at: None,
                meta: BTreeMap::new(),
            };
        }
        let topic = header(headers, TOPIC_HEADER)
            .unwrap_or_default()
            .to_string();
        let disposition = if topic.is_empty() || CUSTOMER_TOPICS.contains(&topic.as_str()) {
            Disposition::Deliver
        } else {
            Disposition::Ignore
        };
        let store = header(headers, SOURCE_HEADER).unwrap_or_default();
        let head = serde_json::from_slice::<Head>(body.body()).ok();
        let id = head.as_ref().and_then(|h| h.id);
        let modified = head.as_ref().and_then(|h| h.date_modified_gmt.clone());
        let delivery_id = match (id, &modified) {
            (Some(id), Some(modified)) => format!("{store}|customer:{id}|{modified}"),
            _ => body_digest_id(body.body()),
        };
        let mut meta = BTreeMap::new();
        if !store.is_empty() {
            meta.insert(META_SOURCE.to_string(), store.to_string());
        }
        Envelope {
            topic,
            disposition,
            delivery_id,
            contact_id: id.map(|id| id.to_string()),
            updated_at: modified.as_deref().and_then(gmt_millis),
            meta,
        }
    }

    fn parse(&self, event: &StoredEvent<'_>) -> Result<ParsedEvent, PayloadError> {
        if event.topic.is_empty() {
            return Err(PayloadError::NoTopic {
                header: "X-WC-Webhook-Topic",
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
            tenant: event.meta.get(META_SOURCE).cloned(),
        })
    }
}

/// `date_modified_gmt` is UTC without an offset (`2017-03-21T19:09:30`).
fn gmt_millis(value: &str) -> Option<i64> {
    rfc3339_millis(&format!("{value}Z")).or_else(|| rfc3339_millis(value))
}

#[derive(Deserialize)]
struct Head {
    id: Option<u64>,
    date_modified_gmt: Option<String>,
}

#[derive(Deserialize)]
struct Customer {
    id: Option<u64>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    billing: Option<Billing>,
}

#[derive(Deserialize)]
struct Billing {
    first_name: Option<String>,
    last_name: Option<String>,
    address_1: Option<String>,
    address_2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    country: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

impl Customer {
    fn into_contact(self) -> Contact {
        let billing = self.billing;
        let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let (billing_first, billing_last, billing_email, phone, address) = match billing {
            Some(b) => {
                let country = nonempty(b.country);
                (
                    b.first_name,
                    b.last_name,
                    b.email,
                    nonempty(b.phone).map(|number| Phone {
                        number,
                        default_region: country.clone(),
                    }),
                    Some(PostalAddress {
                        line1: nonempty(b.address_1),
                        line2: nonempty(b.address_2),
                        city: nonempty(b.city),
                        province_code: nonempty(b.state),
                        country_code: country,
                    })
                    .filter(|a| *a != PostalAddress::default()),
                )
            }
            None => (None, None, None, None, None),
        };
        Contact {
            // The account's own name first; a guest-style account may have it only on
            // the billing address.
            first_name: nonempty(self.first_name).or(billing_first),
            last_name: nonempty(self.last_name).or(billing_last),
            // The account email is the login; the billing email may differ and is kept second.
            emails: [self.email, billing_email].into_iter().flatten().collect(),
            phones: phone.into_iter().collect(),
            address,
            tags: Vec::new(),
            // WooCommerce core has no marketing consent on the customer.
            marketing_consent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::Value;

    use super::*;

    fn woo() -> WooCommerce {
        WooCommerce::new(&[Secret::new("old"), Secret::new("wc_test_secret")])
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn vector() -> Value {
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
            .find(|v| v["provider"] == "woocommerce")
            .cloned()
            .unwrap()
    }

    #[test]
    fn the_woocommerce_vector_verifies_and_tampering_or_a_wrong_key_fails() {
        let v = vector();
        let body = v["body"].as_str().unwrap();
        let signature = v["headers"]["X-WC-Webhook-Signature"].as_str().unwrap();
        let h = headers(&[(SIGNATURE_HEADER, signature)]);
        assert!(
            woo()
                .verify(&h, Bytes::from(body.to_string()), SystemTime::now())
                .is_ok()
        );
        let tampered = body.replace("John", "Jon");
        let error = woo()
            .verify(&h, Bytes::from(tampered), SystemTime::now())
            .unwrap_err();
        assert_eq!(error.code(), "signature_mismatch");
        let wrong_key = WooCommerce::new(&[Secret::new("other")])
            .verify(&h, Bytes::from(body.to_string()), SystemTime::now())
            .unwrap_err();
        assert!(wrong_key.to_string().contains("X-WC-Webhook-Signature"));
    }

    #[test]
    fn only_the_exact_unsigned_ping_is_accepted_and_it_is_ignored() {
        let ping = woo()
            .verify(
                &HeaderMap::new(),
                Bytes::from_static(b"webhook_id=17"),
                SystemTime::now(),
            )
            .unwrap();
        let envelope = woo().envelope(&HeaderMap::new(), &ping);
        assert_eq!(envelope.disposition, Disposition::Ignore);
        assert_eq!(envelope.topic, PING_TOPIC);
        for body in [&b"webhook_id="[..], b"webhook_id=1&x=2", b"{\"id\":1}", b""] {
            let error = woo()
                .verify(
                    &HeaderMap::new(),
                    Bytes::from(body.to_vec()),
                    SystemTime::now(),
                )
                .unwrap_err();
            assert_eq!(error.code(), "missing_signature", "{body:?}");
        }
    }

    #[test]
    fn the_dedupe_key_is_store_customer_and_modification_time() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/woocommerce/woocommerce-customer.created.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let h = headers(&[
            (TOPIC_HEADER, "customer.created"),
            (SOURCE_HEADER, "https://shop.example.com/"),
        ]);
        let envelope = woo().envelope(&h, &Verified(Bytes::from(body.clone())));
        assert_eq!(
            envelope.delivery_id,
            "https://shop.example.com/|customer:25|2017-03-21T19:09:30"
        );
        assert_eq!(envelope.contact_id.as_deref(), Some("25"));
        assert_eq!(envelope.updated_at, rfc3339_millis("2017-03-21T19:09:30Z"));
        assert_eq!(envelope.disposition, Disposition::Deliver);

        let parsed = woo()
            .parse(&StoredEvent {
                topic: "customer.created",
                meta: &envelope.meta,
                body: &body,
            })
            .unwrap();
        assert_eq!(parsed.tenant.as_deref(), Some("https://shop.example.com/"));
        let contact = parsed.contact;
        assert_eq!(
            contact.emails,
            vec!["john.doe@example.com", "john.doe@example.com"]
        );
        assert_eq!(contact.phones[0].default_region.as_deref(), Some("US"));
        let address = contact.address.unwrap();
        assert_eq!(address.line1.as_deref(), Some("969 Market"));
        assert_eq!(address.line2, None);
    }
}
