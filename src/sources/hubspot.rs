//! HubSpot: `X-HubSpot-Signature-v3` verification, one job per event of a batched
//! request, and the CRM contact that the worker fetches for each event.
//!
//! Facts (reference/providers.md §5): the v3 signature is base64 HMAC-SHA256 with the
//! app's client secret over `method + URI + body + timestamp`, where the URI is the full
//! URL HubSpot called (so the route names it in `public_url`) and the timestamp is
//! `X-HubSpot-Request-Timestamp` in milliseconds, rejected when older than 5 minutes. The
//! body is a JSON array of events that carry no contact data, only `objectId`; the worker
//! reads the contact from the CRM API and [`contact_from_crm`] maps the answer. No I/O
//! happens here.

use std::{collections::BTreeMap, time::SystemTime};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{
    Action, Disposition, Envelope, ParsedEvent, PayloadError, SignatureError, Source, StoredEvent,
    Verified, body_digest_id, header, non_blank,
    signing::{HmacAlgorithm, any_matches, check_timestamp, decode_hex},
    unreadable_header,
};
use crate::{
    config::{RouteConfig, Secret},
    contact::{Contact, Phone, PostalAddress},
};

const PROVIDER: &str = "HubSpot";
const SIGNATURE_HEADER: &str = "x-hubspot-signature-v3";
const TIMESTAMP_HEADER: &str = "x-hubspot-request-timestamp";
/// Legacy (v1/v2) signature and its version header.
const LEGACY_SIGNATURE_HEADER: &str = "x-hubspot-signature";
const LEGACY_VERSION_HEADER: &str = "x-hubspot-signature-version";
/// HubSpot's documented freshness window.
/// Webhooks are always POSTed; the method is part of the signed string.
const METHOD: &str = "POST";

/// Meta keys stored with a job.
const META_EVENT_INDEX: &str = "event_index";
const META_PORTAL: &str = "portal_id";

/// Event types whose contact is fetched and delivered.
const CONTACT_EVENTS: &[&str] = &["contact.creation", "contact.propertyChange"];

/// The contact properties the worker asks the CRM API for.
pub const CONTACT_PROPERTIES: &str =
    "firstname,lastname,email,phone,address,city,state,country,zip";

/// A HubSpot route's verifier and event reader.
#[derive(Debug)]
pub struct HubSpot {
    secrets: Vec<Secret>,
    /// The URI part of the signed string, decoded as HubSpot's recipe requires.
    signed_uri: String,
    /// `routes[].timestamp_tolerance_seconds` (HubSpot documents 5 minutes).
    tolerance_seconds: u64,
}

impl HubSpot {
    /// Config validation has checked that `public_url` is set.
    pub fn from_route(route: &RouteConfig) -> Self {
        Self::new(
            &route.secrets,
            route.public_url.as_deref().unwrap_or(""),
            route.timestamp_tolerance_seconds,
        )
    }

    pub fn new(secrets: &[Secret], public_url: &str, tolerance_seconds: u64) -> Self {
        Self {
            secrets: secrets.to_vec(),
            signed_uri: decode_uri(public_url),
            tolerance_seconds,
        }
    }
}

impl HubSpot {
    /// The legacy `X-HubSpot-Signature`: hex SHA-256 (a plain hash, not an HMAC) of the
    /// client secret + body (v1), or + method + URI + body (v2). Neither signs a time, so
    /// a replay is caught only by dedupe on the event id; v3 is preferred when present.
    fn verify_legacy(
        &self,
        headers: &HeaderMap,
        given: &str,
        body: Bytes,
    ) -> Result<Verified, SignatureError> {
        let version = header(headers, LEGACY_VERSION_HEADER).unwrap_or("v1");
        let given = decode_hex(given).ok_or(SignatureError::Malformed {
            header: "X-HubSpot-Signature",
            encoding: "hex",
            provider: PROVIDER,
        })?;
        let matched = self.secrets.iter().fold(false, |matched, secret| {
            let mut digest = Sha256::new();
            digest.update(secret.expose().as_bytes());
            if version.eq_ignore_ascii_case("v2") {
                digest.update(METHOD.as_bytes());
                digest.update(self.signed_uri.as_bytes());
            }
            digest.update(&body);
            let this: bool = digest.finalize().as_slice().ct_eq(&given).into();
            matched | this
        });
        if matched {
            Ok(Verified(body))
        } else {
            Err(SignatureError::Mismatch {
                header: "X-HubSpot-Signature",
                provider: PROVIDER,
            })
        }
    }
}

impl Source for HubSpot {
    fn kind(&self) -> &'static str {
        "hubspot"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        // Apps created before v3 existed may still send only the legacy signature.
        if header(headers, SIGNATURE_HEADER).is_none()
            && let Some(legacy) = header(headers, LEGACY_SIGNATURE_HEADER)
        {
            return self.verify_legacy(headers, legacy, body);
        }
        let given = header(headers, SIGNATURE_HEADER).ok_or_else(|| {
            unreadable_header(
                headers,
                SIGNATURE_HEADER,
                "X-HubSpot-Signature-v3",
                PROVIDER,
            )
        })?;
        let timestamp = header(headers, TIMESTAMP_HEADER).ok_or_else(|| {
            unreadable_header(
                headers,
                TIMESTAMP_HEADER,
                "X-HubSpot-Request-Timestamp",
                PROVIDER,
            )
        })?;
        let millis: u64 = timestamp.parse().map_err(|_| SignatureError::Malformed {
            header: "X-HubSpot-Request-Timestamp",
            encoding: "integer (milliseconds since 1970)",
            provider: PROVIDER,
        })?;
        let given = BASE64
            .decode(given)
            .map_err(|_| SignatureError::Malformed {
                header: "X-HubSpot-Signature-v3",
                encoding: "base64",
                provider: PROVIDER,
            })?;
        // Freshness first: a replayed request with a valid signature is still refused.
        // HubSpot sends milliseconds; the shared check works in seconds.
        check_timestamp(
            "X-HubSpot-Request-Timestamp",
            i64::try_from(millis / 1000).unwrap_or(i64::MAX),
            now,
            self.tolerance_seconds,
        )?;
        let keys: Vec<&[u8]> = self.secrets.iter().map(|s| s.expose().as_bytes()).collect();
        let parts: [&[u8]; 4] = [
            METHOD.as_bytes(),
            self.signed_uri.as_bytes(),
            &body,
            timestamp.as_bytes(),
        ];
        if any_matches(HmacAlgorithm::Sha256, &keys, &parts, &[given]) {
            Ok(Verified(body))
        } else {
            Err(SignatureError::Mismatch {
                header: "X-HubSpot-Signature-v3",
                provider: PROVIDER,
            })
        }
    }

    fn envelope(&self, headers: &HeaderMap, body: &Verified) -> Envelope {
        // A request always yields at least one envelope (see `envelopes`).
        self.envelopes(headers, body)
            .into_iter()
            .next()
            .unwrap_or_else(|| unreadable(body))
    }

    /// One job per event. HubSpot says `eventId` alone "is not guaranteed to be unique",
    /// and one change fans out to every subscription that matches it, so the dedupe key is
    /// `eventId:subscriptionId:occurredAt`: a retry of the same notification repeats all
    /// three, two different notifications do not.
    fn envelopes(&self, _headers: &HeaderMap, body: &Verified) -> Vec<Envelope> {
        let Ok(events) = serde_json::from_slice::<Vec<Value>>(body.body()) else {
            // Stored anyway, so the worker parks it as dead with the reason.
            return vec![unreadable(body)];
        };
        if events.is_empty() {
            return vec![Envelope {
                topic: String::new(),
                disposition: Disposition::Ignore,
                delivery_id: body_digest_id(body.body()),
                contact_id: None,
                updated_at: None,
                meta: BTreeMap::new(),
            }];
        }
        events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                let head = serde_json::from_value::<Event>(event.clone()).unwrap_or_default();
                let topic = head.event_type().unwrap_or_default().to_string();
                let disposition = if CONTACT_EVENTS.contains(&topic.as_str()) {
                    Disposition::Deliver
                } else {
                    Disposition::Ignore
                };
                let delivery_id = match (&head.event_id, &head.subscription_id, head.occurred_at) {
                    (Some(event), Some(subscription), Some(at)) => {
                        format!("{}:{}:{at}", id_text(event), id_text(subscription))
                    }
                    // Without the three ids, identical events are the same delivery.
                    _ => body_digest_id(event.to_string().as_bytes()),
                };
                let mut meta = BTreeMap::new();
                meta.insert(META_EVENT_INDEX.to_string(), index.to_string());
                if let Some(portal) = &head.portal_id {
                    meta.insert(META_PORTAL.to_string(), id_text(portal));
                }
                Envelope {
                    topic,
                    disposition,
                    delivery_id,
                    contact_id: non_blank(head.object_id.as_ref().map(id_text)),
                    updated_at: head.occurred_at,
                    meta,
                }
            })
            .collect()
    }

    fn parse(&self, event: &StoredEvent<'_>) -> Result<ParsedEvent, PayloadError> {
        // HubSpot events carry no contact; the worker asks `plan` and fetches it.
        Err(PayloadError::UnsupportedTopic(event.topic.to_string()))
    }

    fn plan(&self, event: &StoredEvent<'_>) -> Result<Action, PayloadError> {
        let events: Vec<Value> = serde_json::from_slice(event.body)
            .map_err(|error| PayloadError::from_json(&error, PROVIDER))?;
        let index: usize = event
            .meta
            .get(META_EVENT_INDEX)
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        let raw = events.get(index).cloned().ok_or(PayloadError::Shape {
            provider: PROVIDER,
            detail: format!("the batch has no event number {index}"),
        })?;
        let head: Event = serde_json::from_value(raw)
            .map_err(|error| PayloadError::from_json(&error, PROVIDER))?;
        let topic = head.event_type().unwrap_or_default();
        if !CONTACT_EVENTS.contains(&topic) {
            return Err(PayloadError::UnsupportedTopic(topic.to_string()));
        }
        let contact_id =
            non_blank(head.object_id.as_ref().map(id_text)).ok_or(PayloadError::Shape {
                provider: PROVIDER,
                detail: "`objectId` is missing or blank".into(),
            })?;
        Ok(Action::Fetch {
            contact_id,
            tenant: head.portal_id.as_ref().map(id_text),
        })
    }
}

/// The envelope of a body that is not a batch of events.
fn unreadable(body: &Verified) -> Envelope {
    Envelope {
        topic: String::new(),
        disposition: Disposition::Deliver,
        delivery_id: body_digest_id(body.body()),
        contact_id: None,
        updated_at: None,
        meta: BTreeMap::new(),
    }
}

/// One notification. The guide calls the type `eventType`, deliveries send
/// `subscriptionType`; both are read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    event_id: Option<Value>,
    subscription_id: Option<Value>,
    portal_id: Option<Value>,
    object_id: Option<Value>,
    occurred_at: Option<i64>,
    subscription_type: Option<String>,
    event_type: Option<String>,
}

impl Event {
    fn event_type(&self) -> Option<&str> {
        self.subscription_type
            .as_deref()
            .or(self.event_type.as_deref())
    }
}

/// Ids arrive as JSON numbers (possibly beyond 2^53) or strings; keep their digits.
fn id_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// URL-decodes the characters HubSpot's v3 recipe lists, and only those.
fn decode_uri(uri: &str) -> String {
    const PAIRS: &[(&str, &str)] = &[
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    'outer: while !rest.is_empty() {
        if rest.starts_with('%') {
            for (encoded, plain) in PAIRS {
                if rest
                    .get(..3)
                    .is_some_and(|head| head.eq_ignore_ascii_case(encoded))
                {
                    out.push_str(plain);
                    rest = &rest[3..];
                    continue 'outer;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

/// `GET /crm/v3/objects/contacts/{id}` as HubSpot answers it.
#[derive(Debug, Deserialize)]
struct CrmContact {
    #[serde(default)]
    properties: BTreeMap<String, Option<String>>,
}

/// Maps HubSpot's CRM contact into a [`Contact`]. HubSpot's `state` and `country` are
/// free text ("Michigan", "United States"), so they are used as codes only when they
/// look like codes (2 letters for a country, up to 3 for a subdivision); the phone is
/// then read in that country.
pub fn contact_from_crm(body: &[u8]) -> Result<Contact, PayloadError> {
    let crm: CrmContact =
        serde_json::from_slice(body).map_err(|error| PayloadError::from_json(&error, PROVIDER))?;
    let property = |name: &str| {
        crm.properties
            .get(name)
            .cloned()
            .flatten()
            .filter(|value| !value.trim().is_empty())
    };
    let country = property("country")
        .map(|c| c.trim().to_string())
        .filter(|c| c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()));
    let province = property("state")
        .map(|s| s.trim().to_string())
        .filter(|s| (1..=3).contains(&s.len()) && s.chars().all(|ch| ch.is_ascii_alphanumeric()));
    let address = PostalAddress {
        line1: property("address"),
        line2: None,
        city: property("city"),
        province_code: province.filter(|_| country.is_some()),
        country_code: country.clone(),
    };
    let has_address = address != PostalAddress::default();
    Ok(Contact {
        first_name: property("firstname"),
        last_name: property("lastname"),
        emails: property("email").into_iter().collect(),
        phones: property("phone")
            .map(|number| Phone {
                number,
                default_region: country,
            })
            .into_iter()
            .collect(),
        address: has_address.then_some(address),
        tags: Vec::new(),
        marketing_consent: None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use http::HeaderValue;

    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const URI: &str = "https://www.example.com/webhook_uri";
    const BODY: &str = "{'example_field':'example_value'}";
    const SIGNATURE: &str = "HPW73RUtKmcYoEDADG0s6MmGFWUzWJKAW07r8RDgcQw=";
    const TIMESTAMP_MS: u64 = 15_000_000;

    fn headers(signature: &str, timestamp: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(SIGNATURE_HEADER, HeaderValue::from_str(signature).unwrap());
        map.insert(TIMESTAMP_HEADER, HeaderValue::from_str(timestamp).unwrap());
        map
    }

    fn legacy_headers(version: &str, signature: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            LEGACY_VERSION_HEADER,
            HeaderValue::from_str(version).unwrap(),
        );
        map.insert(
            LEGACY_SIGNATURE_HEADER,
            HeaderValue::from_str(signature).unwrap(),
        );
        map
    }

    #[test]
    fn the_published_legacy_v1_and_v2_vectors_verify_and_tampering_fails() {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/test-vectors.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let vectors: Value = serde_json::from_str(&text).unwrap();
        let hubspot: Vec<&Value> = vectors["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["provider"] == "hubspot")
            .collect();
        let text = |v: &Value| v.as_str().unwrap().to_string();
        // (secret, uri, body, version, signature) for every POST vector of the legacy scheme.
        let mut cases = Vec::new();
        for vector in &hubspot {
            let secret = text(&vector["client_secret"]);
            let body = text(&vector["body"]);
            let uri = vector["uri"].as_str().unwrap_or("https://example.invalid/");
            if let Some(signature) = vector["headers"]["X-HubSpot-Signature"].as_str() {
                cases.push((
                    secret.clone(),
                    uri.to_string(),
                    body.clone(),
                    "v1",
                    signature.to_string(),
                ));
            }
            if let Some(signature) = vector["v1"]["X-HubSpot-Signature"].as_str() {
                cases.push((
                    secret.clone(),
                    uri.to_string(),
                    body.clone(),
                    "v1",
                    signature.to_string(),
                ));
            }
            if let Some(signature) = vector["v2_POST"]["X-HubSpot-Signature"].as_str() {
                cases.push((
                    secret.clone(),
                    uri.to_string(),
                    body.clone(),
                    "v2",
                    signature.to_string(),
                ));
            }
        }
        assert_eq!(
            cases.len(),
            3,
            "the docs v1, the SDK v1 and the SDK v2 POST vectors"
        );
        for (secret, uri, body, version, signature) in cases {
            let ok = source(&["other", &secret], &uri).verify(
                &legacy_headers(version, &signature),
                Bytes::from(body.clone()),
                SystemTime::now(),
            );
            assert!(ok.is_ok(), "{version} {signature}: {ok:?}");
            let tampered = source(&[&secret], &uri)
                .verify(
                    &legacy_headers(version, &signature),
                    Bytes::from(format!("{body} ")),
                    SystemTime::now(),
                )
                .unwrap_err();
            assert_eq!(tampered.code(), "signature_mismatch");
            assert!(tampered.to_string().contains("X-HubSpot-Signature"));
        }
    }

    fn at(millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(millis)
    }

    fn source(secrets: &[&str], uri: &str) -> HubSpot {
        HubSpot::new(
            &secrets.iter().map(|s| Secret::new(*s)).collect::<Vec<_>>(),
            uri,
            300,
        )
    }

    /// The v3 vector of `tests/fixtures/test-vectors.json` (HubSpot's Python SDK test):
    /// secret, URI, body, timestamp and signature, read from the file.
    fn published_v3_vector() -> (String, String, String, String, String) {
        let text = std::fs::read_to_string(format!(
            "{}/tests/fixtures/test-vectors.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let vectors: Value = serde_json::from_str(&text).unwrap();
        let vector = vectors["vectors"]
            .as_array()
            .or_else(|| vectors.as_array())
            .unwrap()
            .iter()
            .find(|v| v["provider"] == "hubspot" && v.get("v3").is_some())
            .unwrap()
            .clone();
        let text = |v: &Value| v.as_str().unwrap().to_string();
        (
            text(&vector["client_secret"]),
            text(&vector["uri"]),
            text(&vector["body"]),
            text(&vector["v3"]["X-HubSpot-Request-Timestamp"]),
            text(&vector["v3"]["X-HubSpot-Signature-v3"]),
        )
    }

    #[test]
    fn the_published_v3_vector_verifies_with_the_clock_pinned_to_its_timestamp() {
        let (secret, uri, body, timestamp, signature) = published_v3_vector();
        assert_eq!(
            (timestamp.as_str(), signature.as_str()),
            ("15000000", SIGNATURE)
        );
        let millis: u64 = timestamp.parse().unwrap();
        let result = source(&["other", &secret], &uri).verify(
            &headers(&signature, &timestamp),
            Bytes::from(body),
            at(millis + 299_000),
        );
        assert!(result.is_ok(), "{result:?}");
    }

    #[test]
    fn a_request_older_or_newer_than_five_minutes_is_refused() {
        for (now, code) in [
            (at(TIMESTAMP_MS + 301_000), "stale_timestamp"),
            (at(TIMESTAMP_MS - 301_000), "future_timestamp"),
        ] {
            let error = source(&[SECRET], URI)
                .verify(
                    &headers(SIGNATURE, "15000000"),
                    Bytes::from_static(BODY.as_bytes()),
                    now,
                )
                .unwrap_err();
            assert_eq!(error.code(), code);
            assert!(error.to_string().contains("X-HubSpot-Request-Timestamp"));
            assert!(
                error
                    .to_string()
                    .contains("timestamp_tolerance_seconds (300)")
            );
        }
    }

    #[test]
    fn a_wrong_url_secret_body_or_header_is_refused_with_a_reason() {
        let now = at(TIMESTAMP_MS);
        let cases: &[(&str, &str, &str, HeaderMap, &str)] = &[
            (
                SECRET,
                "https://www.example.com/other",
                BODY,
                headers(SIGNATURE, "15000000"),
                "signature_mismatch",
            ),
            (
                "wrong",
                URI,
                BODY,
                headers(SIGNATURE, "15000000"),
                "signature_mismatch",
            ),
            (
                SECRET,
                URI,
                "{'example_field':'tampered'}",
                headers(SIGNATURE, "15000000"),
                "signature_mismatch",
            ),
            (
                SECRET,
                URI,
                BODY,
                headers(SIGNATURE, "15000001"),
                "signature_mismatch",
            ),
            (
                SECRET,
                URI,
                BODY,
                headers("%%%", "15000000"),
                "malformed_signature",
            ),
            (
                SECRET,
                URI,
                BODY,
                headers(SIGNATURE, "yesterday"),
                "malformed_signature",
            ),
            (SECRET, URI, BODY, HeaderMap::new(), "missing_signature"),
        ];
        for (secret, uri, body, headers, code) in cases {
            let error = source(&[secret], uri)
                .verify(headers, Bytes::from(body.to_string()), now)
                .unwrap_err();
            assert_eq!(error.code(), *code, "{secret} {uri} {body}");
        }
    }

    #[test]
    fn the_signed_uri_decodes_only_the_characters_hubspot_lists() {
        assert_eq!(
            decode_uri("https://h.example/a%3Ab%2fc?x=%40%20"),
            "https://h.example/a:b/c?x=@%20"
        );
    }

    #[test]
    fn a_batch_yields_one_envelope_per_event_with_its_own_dedupe_key() {
        let body = std::fs::read(format!(
            "{}/tests/fixtures/hubspot/hubspot-contact.propertyChange-and-creation-batch.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let envelopes =
            source(&[SECRET], URI).envelopes(&HeaderMap::new(), &Verified(Bytes::from(body)));
        assert_eq!(envelopes.len(), 2);
        assert_eq!(envelopes[0].topic, "contact.propertyChange");
        assert_eq!(envelopes[0].delivery_id, "3816279340:25:1462216307945");
        assert_eq!(envelopes[0].contact_id.as_deref(), Some("1246965"));
        assert_eq!(envelopes[1].topic, "contact.creation");
        assert_eq!(envelopes[1].contact_id.as_deref(), Some("1246978"));
        assert_eq!(
            envelopes[1].meta.get(META_EVENT_INDEX).map(String::as_str),
            Some("1")
        );
        assert_eq!(
            envelopes[1].meta.get(META_PORTAL).map(String::as_str),
            Some("33")
        );
        assert!(
            envelopes
                .iter()
                .all(|e| e.disposition == Disposition::Deliver)
        );
    }

    #[test]
    fn other_event_types_are_ignored_and_an_unreadable_body_is_kept_for_the_worker() {
        let body = br#"[{"eventId":1,"subscriptionId":2,"occurredAt":3,"subscriptionType":"contact.deletion","objectId":4}]"#;
        let envelopes = source(&[SECRET], URI)
            .envelopes(&HeaderMap::new(), &Verified(Bytes::from_static(body)));
        assert_eq!(envelopes[0].disposition, Disposition::Ignore);

        let envelopes = source(&[SECRET], URI)
            .envelopes(&HeaderMap::new(), &Verified(Bytes::from_static(b"{}")));
        assert_eq!(envelopes.len(), 1);
        assert_eq!(envelopes[0].disposition, Disposition::Deliver);
        assert_eq!(envelopes[0].contact_id, None);
    }

    #[test]
    fn plan_asks_the_worker_to_fetch_the_contact_of_the_indexed_event() {
        let body = br#"[{"objectId":1,"portalId":7,"subscriptionType":"contact.creation"},{"objectId":2,"portalId":7,"eventType":"contact.propertyChange"}]"#;
        let meta = BTreeMap::from([(META_EVENT_INDEX.to_string(), "1".to_string())]);
        let action = source(&[SECRET], URI)
            .plan(&StoredEvent {
                topic: "contact.propertyChange",
                meta: &meta,
                body,
            })
            .unwrap();
        assert_eq!(
            action,
            Action::Fetch {
                contact_id: "2".into(),
                tenant: Some("7".into())
            }
        );
    }

    #[test]
    fn a_crm_contact_maps_codes_only_when_they_look_like_codes() {
        let body = br#"{"id":"51","properties":{"firstname":"Ada","lastname":"Lovelace","email":"ada@example.com",
            "phone":"(616) 555-0100","address":"1 Main St","city":"Grand Rapids","state":"MI","country":"US","zip":"49503",
            "hs_object_id":"51"}}"#;
        let contact = contact_from_crm(body).unwrap();
        assert_eq!(contact.first_name.as_deref(), Some("Ada"));
        assert_eq!(contact.emails, vec!["ada@example.com"]);
        assert_eq!(contact.phones[0].default_region.as_deref(), Some("US"));
        let address = contact.address.unwrap();
        assert_eq!(address.province_code.as_deref(), Some("MI"));
        assert_eq!(address.country_code.as_deref(), Some("US"));

        let body = br#"{"properties":{"email":"a@b.co","state":"Michigan","country":"United States","phone":null}}"#;
        let contact = contact_from_crm(body).unwrap();
        assert!(contact.phones.is_empty());
        assert_eq!(contact.address, None);
    }

    #[test]
    fn a_blank_object_id_is_no_contact_id() {
        let body = br#"[{"eventId":1,"subscriptionId":2,"occurredAt":3,"subscriptionType":"contact.creation","objectId":" "}]"#;
        let source = source(&[SECRET], URI);
        let envelopes = source.envelopes(&HeaderMap::new(), &Verified(Bytes::from_static(body)));
        assert_eq!(envelopes[0].contact_id, None);
        let error = source
            .plan(&StoredEvent {
                topic: "contact.creation",
                meta: &BTreeMap::new(),
                body,
            })
            .unwrap_err();
        assert!(error.to_string().contains("objectId"), "{error}");
    }
}
