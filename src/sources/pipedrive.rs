//! Pipedrive (webhooks v2): HTTP Basic credentials instead of a signature, the envelope
//! from the body's `meta`, and the person of `create` / `change` events.
//!
//! Facts (reference/providers.md §6): Pipedrive signs nothing; a webhook created with
//! `http_auth_user` / `http_auth_password` sends them as `Authorization: Basic` on every
//! request. The route's `secrets` hold `user:password` pairs, so a rotation is adding the
//! new pair, updating the webhook in Pipedrive, then removing the old pair; user and
//! password are both compared in constant time against every pair. `meta.id` is the event
//! id (retries repeat it), `meta.entity`/`meta.action` say what happened, `meta.company_id`
//! is the tenant, and `data` holds the person, whose `emails[]`/`phones[]` are
//! `{value, primary, label}` objects (primary first here).

use std::{collections::BTreeMap, time::SystemTime};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{
    Disposition, Envelope, ParsedEvent, PayloadError, SignatureError, Source, StoredEvent,
    Verified, body_digest_id, header,
    mapping::{millis_at, split_name, text_at},
    unreadable_header,
};
use crate::{
    config::Secret,
    contact::{Contact, Phone},
};

const PROVIDER: &str = "Pipedrive";
/// `entity.action` values that carry a person to deliver.
const PERSON_TOPICS: &[&str] = &["person.create", "person.change"];

/// A Pipedrive route's credential check and parser.
#[derive(Debug)]
pub struct Pipedrive {
    /// `(user, password)` pairs; config validation checked each secret has both.
    credentials: Vec<(Secret, Secret)>,
}

impl Pipedrive {
    pub fn new(secrets: &[Secret]) -> Self {
        Self {
            credentials: secrets
                .iter()
                .filter_map(|secret| secret.expose().split_once(':'))
                .map(|(user, password)| (Secret::new(user), Secret::new(password)))
                .collect(),
        }
    }
}

/// Equality of two strings in time that depends on neither their content nor their length:
/// both are hashed first, then every byte of the digests is compared.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

impl Source for Pipedrive {
    fn kind(&self) -> &'static str {
        "pipedrive"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        _now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let value = header(headers, "authorization").ok_or_else(|| {
            unreadable_header(headers, "authorization", "Authorization", PROVIDER)
        })?;
        let malformed = SignatureError::Malformed {
            header: "Authorization",
            encoding: "`Basic base64(user:password)`",
            provider: PROVIDER,
        };
        let encoded = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, encoded)| encoded.trim())
            .ok_or(malformed.clone())?;
        let decoded = BASE64
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(malformed.clone())?;
        let (user, password) = decoded.split_once(':').ok_or(malformed)?;
        // No early exit: every pair is compared, user and password alike.
        let matched = self.credentials.iter().fold(false, |matched, (u, p)| {
            (same(user, u.expose()) & same(password, p.expose())) | matched
        });
        if matched {
            Ok(Verified(body))
        } else {
            Err(SignatureError::BadCredentials { provider: PROVIDER })
        }
    }

    fn envelope(&self, _headers: &HeaderMap, body: &Verified) -> Envelope {
        let json = serde_json::from_slice::<Value>(body.body()).unwrap_or(Value::Null);
        let topic = topic(&json);
        let disposition = if topic.is_empty() || PERSON_TOPICS.contains(&topic.as_str()) {
            Disposition::Deliver
        } else {
            Disposition::Ignore
        };
        Envelope {
            disposition,
            delivery_id: text_at(&json, Some("/meta/id"))
                .unwrap_or_else(|| body_digest_id(body.body())),
            contact_id: text_at(&json, Some("/data/id"))
                .or_else(|| text_at(&json, Some("/meta/entity_id"))),
            updated_at: millis_at(&json, Some("/meta/timestamp"))
                .or_else(|| millis_at(&json, Some("/data/update_time"))),
            topic,
            meta: BTreeMap::new(),
        }
    }

    fn parse(&self, event: &StoredEvent<'_>) -> Result<ParsedEvent, PayloadError> {
        if !PERSON_TOPICS.contains(&event.topic) {
            return Err(PayloadError::UnsupportedTopic(event.topic.to_string()));
        }
        let json: Value = serde_json::from_slice(event.body)
            .map_err(|error| PayloadError::from_json(&error, PROVIDER))?;
        let person =
            json.get("data")
                .filter(|d| d.is_object())
                .ok_or_else(|| PayloadError::Shape {
                    provider: PROVIDER,
                    detail: "`data` is not a person object".into(),
                })?;
        let (mut first_name, mut last_name) = (
            text_at(person, Some("/first_name")),
            text_at(person, Some("/last_name")),
        );
        if first_name.is_none()
            && last_name.is_none()
            && let Some(name) = text_at(person, Some("/name"))
        {
            (first_name, last_name) = split_name(&name);
        }
        Ok(ParsedEvent {
            contact: Contact {
                first_name,
                last_name,
                emails: values(person.get("emails")),
                phones: values(person.get("phones"))
                    .into_iter()
                    .map(|number| Phone {
                        number,
                        default_region: None,
                    })
                    .collect(),
                address: None,
                tags: Vec::new(),
                marketing_consent: None,
            },
            tenant: text_at(&json, Some("/meta/company_id")),
        })
    }
}

/// `person.create`, from `meta.entity` and `meta.action`; empty when either is missing.
fn topic(json: &Value) -> String {
    match (
        text_at(json, Some("/meta/entity")),
        text_at(json, Some("/meta/action")),
    ) {
        (Some(entity), Some(action)) => format!("{entity}.{action}"),
        _ => String::new(),
    }
}

/// The values of `emails[]`/`phones[]`, primary first; items may be objects with
/// `value` and `primary`, or plain strings.
fn values(list: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(items)) = list else {
        return Vec::new();
    };
    let mut found: Vec<(bool, String)> = items
        .iter()
        .filter_map(|item| match item {
            Value::String(text) => Some((false, text.clone())),
            Value::Object(fields) => match fields.get("value") {
                Some(Value::String(text)) => Some((
                    fields.get("primary").and_then(Value::as_bool) == Some(true),
                    text.clone(),
                )),
                _ => None,
            },
            _ => None,
        })
        .filter(|(_, text)| !text.trim().is_empty())
        .collect();
    // Stable: the primary moves to the front, the rest keep Pipedrive's order.
    found.sort_by_key(|(primary, _)| !primary);
    found.into_iter().map(|(_, text)| text).collect()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use serde_json::json;

    use super::*;

    fn pipedrive() -> Pipedrive {
        Pipedrive::new(&[Secret::new("old:pair"), Secret::new("user:pass")])
    }

    fn auth(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("authorization", HeaderValue::from_str(value).unwrap());
        map
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/pipedrive/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn the_pipedrive_vector_credentials_are_accepted_and_others_refused() {
        let ok = pipedrive().verify(&auth("Basic dXNlcjpwYXNz"), Bytes::new(), SystemTime::now());
        assert!(ok.is_ok());
        let cases = [
            (
                format!("Basic {}", BASE64.encode("user:wrong")),
                "bad_credentials",
            ),
            (
                format!("Basic {}", BASE64.encode("other:pass")),
                "bad_credentials",
            ),
            (
                format!("Basic {}", BASE64.encode("user")),
                "malformed_signature",
            ),
            ("Bearer dXNlcjpwYXNz".to_string(), "malformed_signature"),
            ("Basic %%%".to_string(), "malformed_signature"),
        ];
        for (value, code) in cases {
            let error = pipedrive()
                .verify(&auth(&value), Bytes::new(), SystemTime::now())
                .unwrap_err();
            assert_eq!(error.code(), code, "{value}");
        }
        let missing = pipedrive()
            .verify(&HeaderMap::new(), Bytes::new(), SystemTime::now())
            .unwrap_err();
        assert!(missing.to_string().contains("Authorization"));
    }

    #[test]
    fn the_v2_envelope_reads_meta() {
        let envelope = pipedrive().envelope(
            &HeaderMap::new(),
            &Verified(Bytes::from(fixture("pipedrive-person.change.v2.json"))),
        );
        assert_eq!(envelope.topic, "person.change");
        assert_eq!(envelope.delivery_id, "7c812ffd-8f50-45ea-a597-b8fcba2da9c0");
        assert_eq!(envelope.contact_id.as_deref(), Some("8"));
        assert_eq!(envelope.disposition, Disposition::Deliver);
        assert_eq!(
            envelope.updated_at,
            crate::sources::rfc3339_millis("2022-11-24T15:18:35.616Z")
        );
        let deal = json!({"meta": {"entity": "deal", "action": "create", "id": "x"}});
        let ignored =
            pipedrive().envelope(&HeaderMap::new(), &Verified(Bytes::from(deal.to_string())));
        assert_eq!(ignored.disposition, Disposition::Ignore);
    }

    #[test]
    fn the_person_parses_with_the_primary_email_and_phone_first() {
        let mut body: Value =
            serde_json::from_slice(&fixture("pipedrive-person.create.v2.json")).unwrap();
        body["data"]["emails"] = json!([
            {"value": "work@example.com", "primary": false, "label": "work"},
            {"value": "home@example.com", "primary": true, "label": "home"}
        ]);
        body["data"]["phones"] = json!([{"value": "+15555550100", "primary": true}]);
        let body = serde_json::to_vec(&body).unwrap();
        let parsed = pipedrive()
            .parse(&StoredEvent {
                topic: "person.create",
                meta: &BTreeMap::new(),
                body: &body,
            })
            .unwrap();
        assert_eq!(parsed.tenant.as_deref(), Some("8087566"));
        assert_eq!(parsed.contact.first_name.as_deref(), Some("Sample"));
        assert_eq!(
            parsed.contact.emails,
            vec!["home@example.com", "work@example.com"]
        );
        assert_eq!(parsed.contact.phones[0].number, "+15555550100");
    }
}
