//! Standard Webhooks (spec 1.0.0): `webhook-id` / `webhook-timestamp` /
//! `webhook-signature` verification, dedupe on `webhook-id`, and the contact read through
//! the route's `[routes.mapping]` JSON Pointers.
//!
//! Facts (reference/providers.md §7): the signed content is `id.timestamp.body`; the
//! signature header is a space-separated list of `v1,<base64>` entries (one per active
//! secret during rotation; `v1a` asymmetric entries are ignored); the secret is `whsec_`
//! followed by base64 and the HMAC key is the decoded bytes; the timestamp must be within
//! the tolerance in both directions. The event type (`/type` unless mapped elsewhere)
//! decides, through `mapping.event_types`, whether an event is delivered.

use std::{collections::BTreeMap, time::SystemTime};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::{
    Envelope, ParsedEvent, PayloadError, SignatureError, Source, StoredEvent, Verified,
    body_digest_id, header, mapping,
    signing::{HmacAlgorithm, any_matches, check_timestamp, unix_seconds},
    unreadable_header,
};
use crate::config::{MappingConfig, Secret};

const PROVIDER: &str = "the Standard Webhooks sender";
const ID_HEADER: &str = "webhook-id";
const TIMESTAMP_HEADER: &str = "webhook-timestamp";
const SIGNATURE_HEADER: &str = "webhook-signature";
/// Where the event type is when the mapping does not say.
const DEFAULT_EVENT_TYPE: &str = "/type";

/// A Standard Webhooks route's verifier and parser.
#[derive(Debug)]
pub struct Standard {
    /// Secrets as configured (`whsec_<base64>`), kept as `Secret` so `Debug` never shows
    /// them; decoded per request (config validation has checked that each decodes).
    keys: Vec<Secret>,
    tolerance_seconds: u64,
    mapping: MappingConfig,
}

impl Standard {
    pub fn new(secrets: &[Secret], tolerance_seconds: u64, mut mapping: MappingConfig) -> Self {
        mapping
            .event_type
            .get_or_insert_with(|| DEFAULT_EVENT_TYPE.to_string());
        Self {
            keys: secrets.to_vec(),
            tolerance_seconds,
            mapping,
        }
    }

    fn decoded_keys(&self) -> Vec<Vec<u8>> {
        self.keys
            .iter()
            .filter_map(|secret| {
                let text = secret.expose();
                BASE64
                    .decode(text.strip_prefix("whsec_").unwrap_or(text))
                    .ok()
            })
            .collect()
    }
}

impl Source for Standard {
    fn kind(&self) -> &'static str {
        "standard"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let required = |name| {
            header(headers, name).ok_or_else(|| unreadable_header(headers, name, name, PROVIDER))
        };
        let id = required(ID_HEADER)?;
        let timestamp = required(TIMESTAMP_HEADER)?;
        let list = required(SIGNATURE_HEADER)?;
        let seconds = unix_seconds(TIMESTAMP_HEADER, timestamp, PROVIDER)?;
        let offered: Vec<Vec<u8>> = list
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|encoded| BASE64.decode(encoded).ok())
            .filter(|signature| !signature.is_empty())
            .collect();
        if offered.is_empty() {
            return Err(SignatureError::Malformed {
                header: SIGNATURE_HEADER,
                encoding: "space-separated `v1,<base64>`",
                provider: PROVIDER,
            });
        }
        let keys = self.decoded_keys();
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let parts: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", &body];
        if !any_matches(HmacAlgorithm::Sha256, &keys, &parts, &offered) {
            return Err(SignatureError::Mismatch {
                header: SIGNATURE_HEADER,
                provider: PROVIDER,
            });
        }
        check_timestamp(TIMESTAMP_HEADER, seconds, now, self.tolerance_seconds)?;
        Ok(Verified(body))
    }

    fn envelope(&self, headers: &HeaderMap, body: &Verified) -> Envelope {
        let json = serde_json::from_slice::<Value>(body.body()).unwrap_or(Value::Null);
        let topic = mapping::text_at(&json, self.mapping.event_type.as_deref()).unwrap_or_default();
        Envelope {
            disposition: mapping::disposition(&self.mapping, &topic),
            delivery_id: header(headers, ID_HEADER)
                .map(str::to_string)
                .unwrap_or_else(|| body_digest_id(body.body())),
            contact_id: mapping::text_at(&json, self.mapping.contact_id.as_deref()),
            updated_at: mapping::millis_at(&json, self.mapping.updated_at.as_deref()),
            topic,
            meta: BTreeMap::new(),
        }
    }

    fn parse(&self, event: &StoredEvent<'_>) -> Result<ParsedEvent, PayloadError> {
        let (contact, tenant) =
            mapping::parse(&self.mapping, event.topic, event.body, "Standard Webhooks")?;
        Ok(ParsedEvent { contact, tenant })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use http::HeaderValue;

    use super::*;
    use crate::{
        config::{EventAction, FieldsConfig},
        sources::Disposition,
    };

    fn mapping() -> MappingConfig {
        MappingConfig {
            contact_id: Some("/data/id".into()),
            default_region: Some("US".into()),
            event_types: [("contact.created".to_string(), EventAction::Upsert)].into(),
            fields: FieldsConfig {
                full_name: Some("/data/fullName".into()),
                phone: Some("/data/phoneNumber".into()),
                ..FieldsConfig::default()
            },
            ..MappingConfig::default()
        }
    }

    fn standard(secret: &str) -> Standard {
        Standard::new(
            &[Secret::new("whsec_b2xkLXNlY3JldA=="), Secret::new(secret)],
            300,
            mapping(),
        )
    }

    fn headers(value: &Value) -> HeaderMap {
        let mut map = HeaderMap::new();
        for name in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
            map.insert(
                name,
                HeaderValue::from_str(value[name].as_str().unwrap()).unwrap(),
            );
        }
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
            .filter(|v| v["provider"] == "standard-webhooks")
            .cloned()
            .collect()
    }

    fn at(v: &Value, offset: i64) -> SystemTime {
        let t: i64 = v["headers"][TIMESTAMP_HEADER]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        UNIX_EPOCH + Duration::from_secs(u64::try_from(t + offset).unwrap())
    }

    #[test]
    fn every_standard_webhooks_vector_verifies() {
        let vectors = vectors();
        assert_eq!(vectors.len(), 2);
        for v in vectors {
            let source = standard(v["secret"].as_str().unwrap());
            let body = Bytes::from(v["body"].as_str().unwrap().to_string());
            assert!(
                source
                    .verify(&headers(&v["headers"]), body, at(&v, 0))
                    .is_ok(),
                "{v}"
            );
        }
    }

    #[test]
    fn the_published_negative_cases_fail() {
        let v = &vectors()[0];
        let source = standard(v["secret"].as_str().unwrap());
        let body = || Bytes::from(v["body"].as_str().unwrap().to_string());
        let code = |h: &HeaderMap, b: Bytes, now| source.verify(h, b, now).unwrap_err().code();
        let good = headers(&v["headers"]);
        assert_eq!(code(&good, body(), at(v, 301)), "stale_timestamp");
        assert_eq!(code(&good, body(), at(v, -301)), "future_timestamp");
        assert_eq!(
            code(&good, Bytes::from_static(b"{\"email\":\"x\"}"), at(v, 0)),
            "signature_mismatch"
        );
        let wrong_key = standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(
            wrong_key
                .verify(&good, body(), at(v, 0))
                .unwrap_err()
                .code(),
            "signature_mismatch"
        );
        for (name, value, expected) in [
            (SIGNATURE_HEADER, "v1,", "malformed_signature"),
            (
                SIGNATURE_HEADER,
                "v1,dawfeoifkpqwoekfpqoekf",
                "malformed_signature",
            ),
            (TIMESTAMP_HEADER, "soon", "malformed_signature"),
        ] {
            let mut h = good.clone();
            h.insert(name, HeaderValue::from_static(value));
            assert_eq!(code(&h, body(), at(v, 0)), expected, "{name}: {value}");
        }
        let mut no_id = good.clone();
        no_id.remove(ID_HEADER);
        assert_eq!(code(&no_id, body(), at(v, 0)), "missing_signature");
        // A value with bytes above ASCII is there but unreadable, and said to be so.
        let mut not_text = good.clone();
        not_text.insert(ID_HEADER, HeaderValue::from_bytes(b"msg_\xc3\xa9").unwrap());
        let error = standard(v["secret"].as_str().unwrap())
            .verify(&not_text, body(), at(v, 0))
            .unwrap_err();
        assert_eq!(error.code(), "malformed_signature");
        assert!(
            error
                .to_string()
                .starts_with("the webhook-id header is present but is not plain ASCII text"),
            "{error}"
        );
    }

    #[test]
    fn a_rotation_list_with_several_entries_verifies_if_any_matches() {
        let v = &vectors()[0];
        let mut h = headers(&v["headers"]);
        let list = format!(
            "v1a,abc v1,AAAA {}",
            v["headers"][SIGNATURE_HEADER].as_str().unwrap()
        );
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(&list).unwrap());
        let body = Bytes::from(v["body"].as_str().unwrap().to_string());
        assert!(
            standard(v["secret"].as_str().unwrap())
                .verify(&h, body, at(v, 0))
                .is_ok()
        );
    }

    #[test]
    fn the_envelope_uses_webhook_id_and_the_mapped_type() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/standard/standardwebhooks-contact.created.full.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert(ID_HEADER, HeaderValue::from_static("msg_1"));
        let envelope = standard("whsec_AAAA").envelope(&h, &Verified(Bytes::from(body.clone())));
        assert_eq!(envelope.delivery_id, "msg_1");
        assert_eq!(envelope.topic, "contact.created");
        assert_eq!(envelope.disposition, Disposition::Deliver);
        assert_eq!(
            envelope.contact_id.as_deref(),
            Some("1f81eb52-5198-4599-803e-771906343485")
        );
        let parsed = standard("whsec_AAAA")
            .parse(&StoredEvent {
                topic: "contact.created",
                meta: &BTreeMap::new(),
                body: &body,
            })
            .unwrap();
        assert_eq!(parsed.contact.last_name.as_deref(), Some("Smith"));
        assert_eq!(parsed.contact.phones[0].number, "(281) 332-2575");
    }
}
