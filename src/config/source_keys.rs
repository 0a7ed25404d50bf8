//! Route keys that only some sources use, and the startup check that each route has the
//! keys its `source` needs.
//!
//! Kept apart from `config.rs` so that adding a source touches one table here, not the
//! general loader. Every problem names the full key (`routes[2].mapping.fields.email`) and
//! says what to put there; JSON Pointers are checked against RFC 6901 here, so a typo
//! stops startup instead of silently mapping nothing.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use serde::{Deserialize, Serialize};

use super::{Config, RouteConfig, check_http_url};

/// Default for `routes[].timestamp_tolerance_seconds`: Stripe's and Standard Webhooks'
/// libraries use five minutes.
pub(super) fn default_timestamp_tolerance_seconds() -> u64 {
    300
}

/// How a generic provider signs requests (`[routes.signature]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SignatureConfig {
    /// Header carrying the signature (`X-Acme-Signature`).
    pub header: String,
    /// Text before the signature in the header value (`sha256=`); empty for none.
    #[serde(default)]
    pub prefix: String,
    /// HMAC hash function.
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    /// How the MAC is written in the header.
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// What is signed: the raw body, or `{timestamp}.{body}` with the timestamp header.
    #[serde(default)]
    pub signed_content: SignedContent,
    /// Header with the Unix-seconds timestamp; required with `{timestamp}.{body}`.
    #[serde(default)]
    pub timestamp_header: Option<String>,
}

/// HMAC hash function of a generic route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    #[default]
    Sha256,
    Sha512,
    /// Only for providers that still sign this way; SHA-1 HMAC is not broken but dated.
    Sha1,
}

/// How a generic route's MAC is encoded in its header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

/// The bytes a generic provider signs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum SignedContent {
    /// The raw body.
    #[default]
    #[serde(rename = "body")]
    Body,
    /// The timestamp header's value, a `.`, then the raw body (Stripe's shape).
    #[serde(rename = "{timestamp}.{body}")]
    TimestampDotBody,
}

/// Where a JSON body keeps the envelope and the contact (`[routes.mapping]`); every value
/// is an RFC 6901 JSON Pointer such as `/data/email`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct MappingConfig {
    /// Event type (`/type`). Standard Webhooks defaults to `/type`; generic requires it.
    #[serde(default)]
    pub event_type: Option<String>,
    /// Delivery id for dedupe (generic only; Standard Webhooks uses `webhook-id`).
    #[serde(default)]
    pub delivery_id: Option<String>,
    /// The provider's id of the contact (required).
    #[serde(default)]
    pub contact_id: Option<String>,
    /// When the contact last changed: RFC 3339 text, or a Unix timestamp in seconds
    /// (values above 10^11 are read as milliseconds). Orders updates of one contact.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// Tenant key looked up in `tenant_locations`.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Event type → `upsert` (deliver the contact) or `ignore`; unlisted types are ignored.
    #[serde(default)]
    pub event_types: BTreeMap<String, EventAction>,
    /// ISO 3166-1 country used to read phone numbers written without `+country`.
    #[serde(default)]
    pub default_region: Option<String>,
    /// Where each contact field is.
    #[serde(default)]
    pub fields: FieldsConfig,
}

/// What a mapped route does with an event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    /// Create or update the customer.
    Upsert,
    /// Acknowledge and store nothing.
    Ignore,
}

/// JSON Pointers of the contact fields (`[routes.mapping.fields]`); each is optional.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FieldsConfig {
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// One string split into first and last name (last word is the family name); used
    /// only when `first_name` and `last_name` find nothing.
    #[serde(default)]
    pub full_name: Option<String>,
    /// A string or an array of strings.
    #[serde(default)]
    pub email: Option<String>,
    /// A string or an array of strings.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub address_line1: Option<String>,
    #[serde(default)]
    pub address_line2: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    /// Subdivision code within the country (`MI`).
    #[serde(default)]
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default)]
    pub country: Option<String>,
    /// An array of strings or one comma-separated string.
    #[serde(default)]
    pub tags: Option<String>,
    /// A boolean, or text `true`/`yes`/`subscribed`/`opted_in` (anything else is false).
    #[serde(default)]
    pub consent: Option<String>,
}

impl FieldsConfig {
    /// Every configured pointer with its key name.
    pub fn pointers(&self) -> Vec<(&'static str, &str)> {
        [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("full_name", &self.full_name),
            ("email", &self.email),
            ("phone", &self.phone),
            ("address_line1", &self.address_line1),
            ("address_line2", &self.address_line2),
            ("city", &self.city),
            ("region", &self.region),
            ("country", &self.country),
            ("tags", &self.tags),
            ("consent", &self.consent),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (name, v)))
        .collect()
    }
}

/// Checks that `pointer` is a JSON Pointer (RFC 6901) that selects something inside the
/// body: it starts with `/`, and every `~` is followed by `0` or `1`.
pub fn check_pointer(key: &str, pointer: &str, problems: &mut Vec<String>) {
    let mut chars = pointer.chars();
    let bad_escape = pointer
        .match_indices('~')
        .any(|(at, _)| !matches!(pointer.as_bytes().get(at + 1), Some(b'0' | b'1')));
    if chars.next() != Some('/') {
        problems.push(format!(
            "{key} `{pointer}` is not a JSON Pointer: it must start with `/`, e.g. \"/data/email\" (RFC 6901)"
        ));
    } else if bad_escape {
        problems.push(format!(
            "{key} `{pointer}` has a bad escape: in a JSON Pointer `~` must be written `~0` and `/` inside a name `~1` (RFC 6901)"
        ));
    }
}

impl Config {
    /// Each route has the keys its `source` needs, and no key its source would ignore.
    pub(super) fn validate_source_keys(&self, problems: &mut Vec<String>) {
        for (i, route) in self.routes.iter().enumerate() {
            route.validate_source_keys(&format!("routes[{i}]"), problems);
        }
    }
}

impl RouteConfig {
    fn validate_source_keys(&self, key: &str, problems: &mut Vec<String>) {
        let source = self.source.as_str();
        let unused = |name: &str, used_by: &str, problems: &mut Vec<String>| {
            problems.push(format!(
                "{key}.{name} is set but source `{source}` does not use it (only {used_by} does): remove it"
            ));
        };
        match (source, &self.notification_url) {
            ("square", None) => problems.push(format!(
                "{key}.notification_url is missing: source `square` signs the notification URL with the body, so set it to the URL exactly as entered in Square's webhook subscription, e.g. \"https://bridge.example.com/webhooks/{}\"",
                self.name
            )),
            ("square", Some(url)) => check_http_url(&format!("{key}.notification_url"), url, problems),
            (_, Some(_)) => unused("notification_url", "square", problems),
            _ => {}
        }
        let timestamped = matches!(source, "stripe" | "standard")
            || self.signature.as_ref().is_some_and(|s| {
                s.signed_content == SignedContent::TimestampDotBody || s.timestamp_header.is_some()
            });
        if timestamped && self.timestamp_tolerance_seconds == 0 {
            problems.push(format!(
                "{key}.timestamp_tolerance_seconds is 0, which would refuse every request: use the provider's recommendation, e.g. 300"
            ));
        }
        for (j, secret) in self.secrets.iter().enumerate() {
            let secret = secret.expose();
            match source {
                "stripe" if !secret.starts_with("whsec_") => problems.push(format!(
                    "{key}.secrets[{j}] does not start with `whsec_`: paste the endpoint's whole signing secret from Stripe, prefix included (Stripe uses all of it as the key)"
                )),
                "standard" => {
                    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
                    if encoded.is_empty() || BASE64.decode(encoded).is_err() {
                        problems.push(format!(
                            "{key}.secrets[{j}] is not a Standard Webhooks secret: use `whsec_` followed by the base64 key the sender shows"
                        ));
                    }
                }
                "pipedrive"
                    if !secret
                        .split_once(':')
                        .is_some_and(|(user, pass)| !user.is_empty() && !pass.is_empty()) =>
                {
                    problems.push(format!(
                        "{key}.secrets[{j}] is not a `user:password` pair: source `pipedrive` checks HTTP Basic credentials, so write the http_auth_user and http_auth_password given to Pipedrive as \"user:password\""
                    ));
                }
                _ => {}
            }
        }
        match (source, &self.signature) {
            ("generic", None) => problems.push(format!(
                "{key}.signature is missing: source `generic` needs [routes.signature] with at least `header` (see config/default.toml)"
            )),
            ("generic", Some(signature)) => {
                if signature.header.trim().is_empty()
                    || http::HeaderName::from_bytes(signature.header.as_bytes()).is_err()
                {
                    problems.push(format!(
                        "{key}.signature.header `{}` is not a header name: set the name of the header carrying the signature, e.g. \"X-Acme-Signature\"",
                        signature.header
                    ));
                }
                if signature.signed_content == SignedContent::TimestampDotBody
                    && signature.timestamp_header.is_none()
                {
                    problems.push(format!(
                        "{key}.signature.timestamp_header is missing: signed_content = \"{{timestamp}}.{{body}}\" needs the header that carries the timestamp, e.g. \"X-Acme-Timestamp\""
                    ));
                }
                if let Some(name) = &signature.timestamp_header
                    && http::HeaderName::from_bytes(name.as_bytes()).is_err()
                {
                    problems.push(format!(
                        "{key}.signature.timestamp_header `{name}` is not a header name: e.g. \"X-Acme-Timestamp\""
                    ));
                }
            }
            (_, Some(_)) => unused("signature", "generic", problems),
            _ => {}
        }
        match (source, &self.mapping) {
            ("generic" | "standard", None) => problems.push(format!(
                "{key}.mapping is missing: source `{source}` needs [routes.mapping] with `contact_id`, `event_types` and [routes.mapping.fields] (see config/default.toml)"
            )),
            ("generic" | "standard", Some(mapping)) => {
                mapping.validate(&format!("{key}.mapping"), source, problems)
            }
            (_, Some(_)) => unused("mapping", "standard and generic", problems),
            _ => {}
        }
    }
}

impl MappingConfig {
    fn validate(&self, key: &str, source: &str, problems: &mut Vec<String>) {
        let mut required = vec![("contact_id", &self.contact_id)];
        if source == "generic" {
            required.push(("event_type", &self.event_type));
            required.push(("delivery_id", &self.delivery_id));
        } else if self.delivery_id.is_some() {
            problems.push(format!(
                "{key}.delivery_id is set but Standard Webhooks dedupes on the webhook-id header: remove it"
            ));
        }
        for (name, value) in required {
            if value.is_none() {
                problems.push(format!(
                    "{key}.{name} is missing: set it to the JSON Pointer of the {} in the body, e.g. \"/data/id\"",
                    name.replace('_', " ")
                ));
            }
        }
        for (name, value) in [
            ("event_type", &self.event_type),
            ("delivery_id", &self.delivery_id),
            ("contact_id", &self.contact_id),
            ("updated_at", &self.updated_at),
            ("tenant", &self.tenant),
        ] {
            if let Some(pointer) = value {
                check_pointer(&format!("{key}.{name}"), pointer, problems);
            }
        }
        for (name, pointer) in self.fields.pointers() {
            check_pointer(&format!("{key}.fields.{name}"), pointer, problems);
        }
        if self.fields.email.is_none() && self.fields.phone.is_none() {
            problems.push(format!(
                "{key}.fields has neither `email` nor `phone`: Vendasta needs one of them, so point at least one at the body, e.g. email = \"/data/email\""
            ));
        }
        if !self.event_types.values().any(|a| *a == EventAction::Upsert) {
            problems.push(format!(
                "{key}.event_types delivers nothing: map the contact events to \"upsert\", e.g. event_types = {{ \"contact.created\" = \"upsert\", \"contact.updated\" = \"upsert\" }}"
            ));
        }
        if let Some(region) = &self.default_region
            && !(region.len() == 2 && region.chars().all(|c| c.is_ascii_alphabetic()))
        {
            problems.push(format!(
                "{key}.default_region `{region}` is not an ISO 3166-1 alpha-2 country code: use e.g. \"US\""
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(routes: &str) -> Result<Config, super::super::ConfigError> {
        let env = [("VENDASTA_TOKEN".to_string(), "t".to_string())].into();
        Config::from_sources(Some(routes), None, &env)
    }

    const GENERIC: &str = r#"
        [[routes]]
        name = "crm"
        source = "generic"
        secrets = ["s"]
        business_location = "AG-1"
        [routes.signature]
        header = "X-Crm-Signature"
        signed_content = "{timestamp}.{body}"
        timestamp_header = "X-Crm-Time"
        [routes.mapping]
        event_type = "/event"
        delivery_id = "/id"
        contact_id = "/contact/id"
        event_types = { "contact.saved" = "upsert" }
        [routes.mapping.fields]
        email = "/contact/email"
    "#;

    #[test]
    fn a_complete_generic_route_loads() {
        let config = load(GENERIC).unwrap();
        let route = &config.routes[0];
        assert_eq!(route.timestamp_tolerance_seconds, 300);
        let signature = route.signature.as_ref().unwrap();
        assert_eq!(signature.signed_content, SignedContent::TimestampDotBody);
        assert_eq!(signature.algorithm, HmacAlgorithm::Sha256);
        assert_eq!(
            route.mapping.as_ref().unwrap().event_types["contact.saved"],
            EventAction::Upsert
        );
    }

    #[test]
    fn a_bad_json_pointer_in_a_route_is_a_startup_error_naming_the_key() {
        let bad = GENERIC
            .replace(r#"email = "/contact/email""#, r#"email = "contact/email""#)
            .replace(
                r#"contact_id = "/contact/id""#,
                r#"contact_id = "/contact/~2id""#,
            );
        let text = load(&bad).unwrap_err().to_string();
        assert!(
            text.contains("routes[0].mapping.fields.email `contact/email` is not a JSON Pointer"),
            "{text}"
        );
        assert!(
            text.contains("routes[0].mapping.contact_id `/contact/~2id` has a bad escape"),
            "{text}"
        );
    }

    #[test]
    fn each_source_names_the_key_it_lacks() {
        let routes = r#"
            [[routes]]
            name = "sq"
            source = "square"
            secrets = ["k"]
            business_location = "AG-1"
            [[routes]]
            name = "st"
            source = "stripe"
            secrets = ["no-prefix"]
            business_location = "AG-1"
            timestamp_tolerance_seconds = 0
            [[routes]]
            name = "pd"
            source = "pipedrive"
            secrets = ["just-a-password"]
            business_location = "AG-1"
            [[routes]]
            name = "sw"
            source = "standard"
            secrets = ["whsec_%%%"]
            business_location = "AG-1"
            [[routes]]
            name = "g"
            source = "generic"
            secrets = ["s"]
            business_location = "AG-1"
            [[routes]]
            name = "sh"
            source = "shopify"
            secrets = ["s"]
            business_location = "AG-1"
            notification_url = "https://x.test/"
        "#;
        let text = load(routes).unwrap_err().to_string();
        for expected in [
            "routes[0].notification_url is missing",
            "routes[1].secrets[0] does not start with `whsec_`",
            "routes[1].timestamp_tolerance_seconds is 0",
            "routes[2].secrets[0] is not a `user:password` pair",
            "routes[3].secrets[0] is not a Standard Webhooks secret",
            "routes[3].mapping is missing",
            "routes[4].signature is missing",
            "routes[4].mapping is missing",
            "routes[5].notification_url is set but source `shopify` does not use it",
        ] {
            assert!(text.contains(expected), "{expected}\n{text}");
        }
    }

    #[test]
    fn shop_locations_still_loads_as_tenant_locations() {
        let routes = r#"
            [[routes]]
            name = "s"
            source = "shopify"
            secrets = ["s"]
            [routes.shop_locations]
            "A.myshopify.com" = "AG-7"
        "#;
        let config = load(routes).unwrap();
        assert_eq!(
            config.routes[0].location_for(Some("a.MyShopify.com")),
            Some("AG-7")
        );
    }

    fn problems(pointer: &str) -> Vec<String> {
        let mut problems = Vec::new();
        check_pointer("routes[0].mapping.fields.email", pointer, &mut problems);
        problems
    }

    #[test]
    fn json_pointers_are_checked_against_rfc_6901() {
        assert!(problems("/data/email").is_empty());
        assert!(problems("/a~1b/~0c/0").is_empty());
        let text = problems("data/email").join("");
        assert!(
            text.contains("routes[0].mapping.fields.email `data/email`") && text.contains("`/`"),
            "{text}"
        );
        assert!(problems("").join("").contains("must start with `/`"));
        assert!(problems("/a~2b").join("").contains("bad escape"));
        assert!(problems("/a~").join("").contains("bad escape"));
    }
}
