//! Generic HMAC source: any provider whose signature scheme and JSON body can be described
//! in the route's config (`[routes.signature]`, `[routes.mapping]`), with no code.
//!
//! The signature is an HMAC (SHA-256, SHA-512 or SHA-1) of the raw body, or of
//! `{timestamp}.{body}` with the timestamp taken from a header (Unix seconds, checked
//! against `timestamp_tolerance_seconds`), written in hex or base64 after an optional
//! prefix such as `sha256=`; the secret's UTF-8 bytes are the key, as almost every provider
//! does it. The envelope and the contact come from JSON Pointers (`mapping.rs`).

use std::{collections::BTreeMap, time::SystemTime};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use super::{
    Envelope, ParsedEvent, PayloadError, SignatureError, Source, StoredEvent, Verified,
    body_digest_id, header, mapping,
    signing::{any_matches, check_timestamp, decode_hex, unix_seconds},
    unreadable_header,
};
use crate::config::{MappingConfig, Secret, SignatureConfig, SignatureEncoding, SignedContent};

const PROVIDER: &str = "the provider";

/// A generic route's verifier and parser.
#[derive(Debug)]
pub struct Generic {
    secrets: Vec<Secret>,
    tolerance_seconds: u64,
    signature: SignatureConfig,
    /// Header names for error messages, which carry `&'static str`: leaked once per route
    /// at startup (a few bytes), so the shared error type stays allocation-free.
    signature_header: &'static str,
    timestamp_header: Option<&'static str>,
    mapping: MappingConfig,
}

impl Generic {
    pub fn new(
        secrets: &[Secret],
        tolerance_seconds: u64,
        signature: SignatureConfig,
        mapping: MappingConfig,
    ) -> Self {
        let leak = |name: &str| -> &'static str { Box::leak(name.to_string().into_boxed_str()) };
        Self {
            secrets: secrets.to_vec(),
            tolerance_seconds,
            signature_header: leak(&signature.header),
            timestamp_header: signature.timestamp_header.as_deref().map(leak),
            signature,
            mapping,
        }
    }

    fn decode(&self, text: &str) -> Option<Vec<u8>> {
        match self.signature.encoding {
            SignatureEncoding::Hex => decode_hex(text),
            SignatureEncoding::Base64 => BASE64.decode(text.trim()).ok(),
        }
    }
}

impl Source for Generic {
    fn kind(&self) -> &'static str {
        "generic"
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Result<Verified, SignatureError> {
        let value = header(headers, self.signature_header).ok_or_else(|| {
            unreadable_header(
                headers,
                self.signature_header,
                self.signature_header,
                PROVIDER,
            )
        })?;
        let encoding = match self.signature.encoding {
            SignatureEncoding::Hex => "hex",
            SignatureEncoding::Base64 => "base64",
        };
        let malformed = SignatureError::Malformed {
            header: self.signature_header,
            encoding,
            provider: PROVIDER,
        };
        let offered = value
            .strip_prefix(self.signature.prefix.as_str())
            .and_then(|rest| self.decode(rest))
            .ok_or(malformed)?;
        let timestamp = match self.timestamp_header {
            Some(name) => {
                let text = header(headers, name)
                    .ok_or_else(|| unreadable_header(headers, name, name, PROVIDER))?;
                Some((name, text, unix_seconds(name, text, PROVIDER)?))
            }
            None => None,
        };
        let keys: Vec<&[u8]> = self.secrets.iter().map(|s| s.expose().as_bytes()).collect();
        let parts: Vec<&[u8]> = match (self.signature.signed_content, &timestamp) {
            (SignedContent::TimestampDotBody, Some((_, text, _))) => {
                vec![text.as_bytes(), b".", &body]
            }
            _ => vec![&body],
        };
        if !any_matches(self.signature.algorithm, &keys, &parts, &[offered]) {
            return Err(SignatureError::Mismatch {
                header: self.signature_header,
                provider: PROVIDER,
            });
        }
        if let Some((name, _, seconds)) = timestamp {
            check_timestamp(name, seconds, now, self.tolerance_seconds)?;
        }
        Ok(Verified(body))
    }

    fn envelope(&self, _headers: &HeaderMap, body: &Verified) -> Envelope {
        let json = serde_json::from_slice::<Value>(body.body()).unwrap_or(Value::Null);
        let topic = mapping::text_at(&json, self.mapping.event_type.as_deref()).unwrap_or_default();
        Envelope {
            disposition: mapping::disposition(&self.mapping, &topic),
            delivery_id: mapping::text_at(&json, self.mapping.delivery_id.as_deref())
                .unwrap_or_else(|| body_digest_id(body.body())),
            contact_id: mapping::text_at(&json, self.mapping.contact_id.as_deref()),
            updated_at: mapping::millis_at(&json, self.mapping.updated_at.as_deref()),
            topic,
            meta: BTreeMap::new(),
        }
    }

    fn parse(&self, event: &StoredEvent<'_>) -> Result<ParsedEvent, PayloadError> {
        let (contact, tenant) =
            mapping::parse(&self.mapping, event.topic, event.body, "generic-route")?;
        Ok(ParsedEvent { contact, tenant })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use http::HeaderValue;

    use super::*;
    use crate::{
        config::{EventAction, FieldsConfig, HmacAlgorithm},
        sources::{
            Disposition,
            signing::{encode_hex, mac},
        },
    };

    fn signature(
        algorithm: HmacAlgorithm,
        encoding: SignatureEncoding,
        stamped: bool,
    ) -> SignatureConfig {
        SignatureConfig {
            header: "X-Acme-Signature".into(),
            prefix: "sha=".into(),
            algorithm,
            encoding,
            signed_content: if stamped {
                SignedContent::TimestampDotBody
            } else {
                SignedContent::Body
            },
            timestamp_header: stamped.then(|| "X-Acme-Time".to_string()),
        }
    }

    fn mapping() -> MappingConfig {
        MappingConfig {
            event_type: Some("/event".into()),
            delivery_id: Some("/id".into()),
            contact_id: Some("/person/id".into()),
            event_types: [("person.saved".to_string(), EventAction::Upsert)].into(),
            fields: FieldsConfig {
                email: Some("/person/mail".into()),
                ..FieldsConfig::default()
            },
            ..MappingConfig::default()
        }
    }

    fn generic(signature: SignatureConfig) -> Generic {
        Generic::new(
            &[Secret::new("old"), Secret::new("acme-secret")],
            300,
            signature,
            mapping(),
        )
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const BODY: &[u8] = br#"{"id":"d-1","event":"person.saved","person":{"id":7,"mail":"a@b.co"}}"#;

    #[test]
    fn every_algorithm_and_encoding_verifies_and_a_wrong_key_or_body_fails() {
        for algorithm in [
            HmacAlgorithm::Sha256,
            HmacAlgorithm::Sha512,
            HmacAlgorithm::Sha1,
        ] {
            for encoding in [SignatureEncoding::Hex, SignatureEncoding::Base64] {
                let raw = mac(algorithm, b"acme-secret", &[BODY]);
                let text = match encoding {
                    SignatureEncoding::Hex => encode_hex(&raw),
                    SignatureEncoding::Base64 => BASE64.encode(&raw),
                };
                let source = generic(signature(algorithm, encoding, false));
                let h = headers(&[("x-acme-signature", format!("sha={text}"))]);
                assert!(
                    source
                        .verify(&h, Bytes::from_static(BODY), SystemTime::now())
                        .is_ok()
                );
                let tampered = source
                    .verify(&h, Bytes::from_static(b"{}"), SystemTime::now())
                    .unwrap_err();
                assert_eq!(tampered.code(), "signature_mismatch");
                let unprefixed = headers(&[("x-acme-signature", text)]);
                let error = source
                    .verify(&unprefixed, Bytes::from_static(BODY), SystemTime::now())
                    .unwrap_err();
                assert_eq!(error.code(), "malformed_signature");
                assert!(error.to_string().contains("X-Acme-Signature"));
            }
        }
    }

    #[test]
    fn a_timestamped_signature_is_checked_against_the_tolerance() {
        let source = generic(signature(
            HmacAlgorithm::Sha256,
            SignatureEncoding::Hex,
            true,
        ));
        let sig = encode_hex(&mac(
            HmacAlgorithm::Sha256,
            b"acme-secret",
            &[b"1000.", BODY],
        ));
        let h = headers(&[
            ("x-acme-signature", format!("sha={sig}")),
            ("x-acme-time", "1000".into()),
        ]);
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert!(
            source
                .verify(&h, Bytes::from_static(BODY), at(1200))
                .is_ok()
        );
        let stale = source
            .verify(&h, Bytes::from_static(BODY), at(1301))
            .unwrap_err();
        assert_eq!(stale.code(), "stale_timestamp");
        assert!(stale.to_string().contains("X-Acme-Time"));
        let mut moved = h.clone();
        moved.insert("x-acme-time", HeaderValue::from_static("1001"));
        let replayed = source
            .verify(&moved, Bytes::from_static(BODY), at(1001))
            .unwrap_err();
        assert_eq!(replayed.code(), "signature_mismatch");
    }

    #[test]
    fn the_envelope_and_contact_come_from_the_pointers() {
        let source = generic(signature(
            HmacAlgorithm::Sha256,
            SignatureEncoding::Hex,
            false,
        ));
        let envelope = source.envelope(&HeaderMap::new(), &Verified(Bytes::from_static(BODY)));
        assert_eq!(envelope.delivery_id, "d-1");
        assert_eq!(envelope.contact_id.as_deref(), Some("7"));
        assert_eq!(envelope.topic, "person.saved");
        assert_eq!(envelope.disposition, Disposition::Deliver);
        let parsed = source
            .parse(&StoredEvent {
                topic: "person.saved",
                meta: &BTreeMap::new(),
                body: BODY,
            })
            .unwrap();
        assert_eq!(parsed.contact.emails, vec!["a@b.co"]);
    }
}
