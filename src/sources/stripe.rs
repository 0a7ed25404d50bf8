//! Stripe: `Stripe-Signature` verification with its replay window, the event envelope, and
//! the customer of `customer.created` / `customer.updated`.
//!
//! Facts (reference/providers.md §4): the header is `t=<unix seconds>,v1=<hex>[,v1=…]`
//! (one `v1` per active secret while a secret is rolled; `v0` is a fake scheme and is
//! ignored to prevent downgrades); the MAC is hex HMAC-SHA256 of `t.body` keyed with the
//! whole `whsec_…` string's bytes (not base64-decoded); the event `id` dedupes; Stripe
//! sends no reliable change time, so updates are not ordered by time here; the Connect
//! `account` is the tenant.

use std::{collections::BTreeMap, time::SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;

use super::{
    Disposition, Envelope, ParsedEvent, PayloadError, SignatureError, Source, StoredEvent,
    Verified, body_digest_id, header,
    mapping::split_name,
    non_blank,
    signing::{HmacAlgorithm, any_matches, check_timestamp, decode_hex, unix_seconds},
    unreadable_header,
};
use crate::{
    config::Secret,
    contact::{Contact, Phone, PostalAddress},
};

const PROVIDER: &str = "Stripe";
const SIGNATURE_HEADER: &str = "stripe-signature";
const DISPLAY_HEADER: &str = "Stripe-Signature";
const CUSTOMER_TYPES: &[&str] = &["customer.created", "customer.updated"];

/// A Stripe route's verifier and parser.
#[derive(Debug)]
pub struct Stripe {
    secrets: Vec<Secret>,
    tolerance_seconds: u64,
}

impl Stripe {
    pub fn new(secrets: &[Secret], tolerance_seconds: u64) -> Self {
        Self {
            secrets: secrets.to_vec(),
            tolerance_seconds,
        }
    }
}

/// The timestamp and every `v1` signature of a `Stripe-Signature` header.
fn parse_header(value: &str) -> Result<(i64, Vec<Vec<u8>>), SignatureError> {
    let malformed = SignatureError::Malformed {
        header: DISPLAY_HEADER,
        encoding: "`t=<unix seconds>,v1=<hex>`",
        provider: PROVIDER,
    };
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(unix_seconds(DISPLAY_HEADER, t, PROVIDER)?),
            Some(("v1", hex)) => signatures.push(decode_hex(hex).ok_or(malformed.clone())?),
            // v0 and future schemes are ignored on purpose (downgrade protection).
            _ => {}
        }
    }
    match timestamp {
        Some(t) if !signatures.is_empty() => Ok((t, signatures)),
        _ => Err(malformed),
    }
}

impl Source for Stripe {
    fn kind(&self) -> &'static str {
        "stripe"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let value = header(headers, SIGNATURE_HEADER).ok_or_else(|| {
            unreadable_header(headers, SIGNATURE_HEADER, DISPLAY_HEADER, PROVIDER)
        })?;
        let (timestamp, offered) = parse_header(value)?;
        let keys: Vec<&[u8]> = self.secrets.iter().map(|s| s.expose().as_bytes()).collect();
        let t = timestamp.to_string();
        let parts: [&[u8]; 3] = [t.as_bytes(), b".", &body];
        if !any_matches(HmacAlgorithm::Sha256, &keys, &parts, &offered) {
            return Err(SignatureError::Mismatch {
                header: DISPLAY_HEADER,
                provider: PROVIDER,
            });
        }
        // Checked after the MAC so that only a genuine but old request is called stale.
        check_timestamp(DISPLAY_HEADER, timestamp, now, self.tolerance_seconds)?;
        Ok(Verified(body))
    }

    fn envelope(&self, _headers: &HeaderMap, body: &Verified) -> Envelope {
        let event = serde_json::from_slice::<Event>(body.body()).ok();
        let topic = event
            .as_ref()
            .and_then(|e| e.kind.clone())
            .unwrap_or_default();
        let disposition = if topic.is_empty() || CUSTOMER_TYPES.contains(&topic.as_str()) {
            Disposition::Deliver
        } else {
            Disposition::Ignore
        };
        Envelope {
            delivery_id: non_blank(event.as_ref().and_then(|e| e.id.clone()))
                .unwrap_or_else(|| body_digest_id(body.body())),
            contact_id: non_blank(
                event
                    .as_ref()
                    .and_then(|e| e.data.as_ref())
                    .and_then(|d| d.object.id.clone()),
            ),
            updated_at: None,
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
            .map(|d| d.object)
            .filter(|c| c.id.is_some())
            .ok_or_else(|| PayloadError::Shape {
                provider: PROVIDER,
                detail: "`data.object.id` is missing".into(),
            })?;
        Ok(ParsedEvent {
            contact: customer.into_contact(),
            tenant: parsed.account,
        })
    }
}

#[derive(Deserialize)]
struct Event {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    account: Option<String>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Data {
    object: Customer,
}

#[derive(Deserialize)]
struct Customer {
    id: Option<String>,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    address: Option<Address>,
}

#[derive(Deserialize)]
struct Address {
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    country: Option<String>,
}

impl Customer {
    fn into_contact(self) -> Contact {
        let (first_name, last_name) = self.name.as_deref().map(split_name).unwrap_or_default();
        let country = self.address.as_ref().and_then(|a| a.country.clone());
        Contact {
            first_name,
            last_name,
            emails: self.email.into_iter().collect(),
            phones: self
                .phone
                .into_iter()
                .map(|number| Phone {
                    number,
                    default_region: country.clone(),
                })
                .collect(),
            address: self.address.map(|a| PostalAddress {
                line1: a.line1,
                line2: a.line2,
                city: a.city,
                province_code: a.state,
                country_code: a.country,
            }),
            tags: Vec::new(),
            // A Stripe customer carries no marketing consent.
            marketing_consent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use http::HeaderValue;
    use serde_json::Value;

    use super::*;
    use crate::sources::signing::{encode_hex, mac};

    fn stripe() -> Stripe {
        Stripe::new(
            &[Secret::new("whsec_old"), Secret::new("whsec_test_secret")],
            300,
        )
    }

    fn signed(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(SIGNATURE_HEADER, HeaderValue::from_str(value).unwrap());
        map
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
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
            .filter(|v| v["provider"] == "stripe")
            .cloned()
            .collect()
    }

    #[test]
    fn the_stripe_vector_verifies_with_the_clock_at_its_timestamp() {
        let v = &vectors()[0];
        let body = Bytes::from(v["body"].as_str().unwrap().to_string());
        let h = signed(v["headers"]["Stripe-Signature"].as_str().unwrap());
        assert!(stripe().verify(&h, body, at(1_492_774_577)).is_ok());
    }

    #[test]
    fn stale_future_tampered_and_wrong_key_requests_fail_with_their_reason() {
        let v = &vectors()[0];
        let body = v["body"].as_str().unwrap().to_string();
        let h = signed(v["headers"]["Stripe-Signature"].as_str().unwrap());
        let stale = stripe()
            .verify(&h, Bytes::from(body.clone()), at(1_492_774_577 + 301))
            .unwrap_err();
        assert_eq!(stale.code(), "stale_timestamp");
        assert!(stale.to_string().contains("timestamp_tolerance_seconds"));
        let future = stripe()
            .verify(&h, Bytes::from(body.clone()), at(1_492_774_577 - 301))
            .unwrap_err();
        assert_eq!(future.code(), "future_timestamp");
        let tampered = stripe()
            .verify(
                &h,
                Bytes::from(body.replace("rdr_123", "rdr_124")),
                at(1_492_774_577),
            )
            .unwrap_err();
        assert_eq!(tampered.code(), "signature_mismatch");
        let wrong_key = Stripe::new(&[Secret::new("whsec_other")], 300)
            .verify(&h, Bytes::from(body), at(1_492_774_577))
            .unwrap_err();
        assert_eq!(wrong_key.code(), "signature_mismatch");
    }

    #[test]
    fn any_of_several_v1_signatures_may_match_and_v0_is_never_used() {
        let body = b"{}";
        let good = encode_hex(&mac(
            HmacAlgorithm::Sha256,
            b"whsec_test_secret",
            &[b"100.", body],
        ));
        let both = signed(&format!("t=100,v1={},v1={good}", "00".repeat(32)));
        assert!(
            stripe()
                .verify(&both, Bytes::from_static(body), at(100))
                .is_ok()
        );
        let only_v0 = signed(&format!("t=100,v0={good}"));
        assert_eq!(
            stripe()
                .verify(&only_v0, Bytes::from_static(body), at(100))
                .unwrap_err()
                .code(),
            "malformed_signature"
        );
    }

    #[test]
    fn the_docs_header_parses_into_its_timestamp_and_one_v1() {
        let v = &vectors()[1];
        let (t, signatures) =
            parse_header(v["headers"]["Stripe-Signature"].as_str().unwrap()).unwrap();
        assert_eq!(t, 1_492_774_577);
        assert_eq!(signatures.len(), 1);
        assert_eq!(signatures[0][0], 0x52);
    }

    #[test]
    fn the_customer_event_gives_its_ids_and_a_split_name() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/stripe/stripe-customer.created.CONSTRUCTED.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let envelope = stripe().envelope(&HeaderMap::new(), &Verified(Bytes::from(body.clone())));
        assert_eq!(envelope.delivery_id, "evt_1NG8Du2eZvKYlo2CUI79vXWy");
        assert_eq!(envelope.contact_id.as_deref(), Some("cus_NffrFeUfNV2Hib"));
        assert_eq!(envelope.disposition, Disposition::Deliver);
        let parsed = stripe()
            .parse(&StoredEvent {
                topic: "customer.created",
                meta: &BTreeMap::new(),
                body: &body,
            })
            .unwrap();
        assert_eq!(parsed.contact.first_name.as_deref(), Some("Jenny"));
        assert_eq!(parsed.contact.last_name.as_deref(), Some("Rosen"));
        assert_eq!(parsed.tenant, None);
    }

    #[test]
    fn a_blank_event_or_customer_id_counts_as_none() {
        let body = br#"{"id":" ","type":"customer.created","data":{"object":{"id":""}}}"#;
        let envelope = stripe().envelope(&HeaderMap::new(), &Verified(Bytes::from_static(body)));
        assert!(
            envelope.delivery_id.starts_with("sha256:"),
            "{}",
            envelope.delivery_id
        );
        assert_eq!(envelope.contact_id, None);
    }
}
