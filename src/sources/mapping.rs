//! Reading a JSON body through configured JSON Pointers (RFC 6901): the envelope fields
//! and the contact of the `standard` and `generic` sources.
//!
//! The pointers were checked at startup (`config::check_pointer`); here a pointer that
//! finds nothing simply yields no value. Strings and numbers are read as text (ids are
//! often numbers), arrays where a list is allowed. Nothing here knows a provider.

use serde_json::Value;

use super::{Disposition, PayloadError, rfc3339_millis};
use crate::{
    config::{EventAction, MappingConfig},
    contact::{Contact, Phone, PostalAddress},
};

/// The text at `pointer`: a non-empty string, or a number or boolean written as text.
pub fn text_at(body: &Value, pointer: Option<&str>) -> Option<String> {
    match body.pointer(pointer?)? {
        Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Every string at `pointer`: one string, or an array of strings (other members skipped).
pub fn texts_at(body: &Value, pointer: Option<&str>) -> Vec<String> {
    let Some(pointer) = pointer else {
        return Vec::new();
    };
    match body.pointer(pointer) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| match item {
                Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
                _ => None,
            })
            .collect(),
        Some(Value::String(_)) | Some(Value::Number(_)) => {
            text_at(body, Some(pointer)).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

/// A timestamp in Unix milliseconds: RFC 3339 text, or a Unix number in seconds (values
/// above 10^11, which would be after the year 5138 in seconds, are taken as milliseconds).
pub fn millis_at(body: &Value, pointer: Option<&str>) -> Option<i64> {
    match body.pointer(pointer?)? {
        Value::String(text) => rfc3339_millis(text.trim()),
        Value::Number(number) => {
            let n = number.as_i64()?;
            // `unsigned_abs`: `abs` of i64::MIN overflows (a panic in debug builds, a wrong
            // timestamp in release ones); fuzz/corpus/standard/timestamp-i64-min keeps the
            // fuzz target on it.
            Some(if n.unsigned_abs() > 100_000_000_000 {
                n
            } else {
                n * 1000
            })
        }
        _ => None,
    }
}

/// Whether a mapped event type is delivered. A body whose type cannot be read is
/// delivered, so the worker parks it with a reason instead of the bridge dropping it.
pub fn disposition(mapping: &MappingConfig, event_type: &str) -> Disposition {
    if event_type.is_empty() {
        return Disposition::Deliver;
    }
    match mapping.event_types.get(event_type) {
        Some(EventAction::Upsert) => Disposition::Deliver,
        Some(EventAction::Ignore) | None => Disposition::Ignore,
    }
}

/// Checks that a stored event is one the mapping delivers, and reads its contact.
pub fn parse(
    mapping: &MappingConfig,
    topic: &str,
    body: &[u8],
    provider: &'static str,
) -> Result<(Contact, Option<String>), PayloadError> {
    if topic.is_empty() {
        return Err(PayloadError::Shape {
            provider,
            detail: format!(
                "routes.mapping.event_type `{}` finds no event type in the body",
                mapping.event_type.as_deref().unwrap_or("/type")
            ),
        });
    }
    if disposition(mapping, topic) != Disposition::Deliver {
        return Err(PayloadError::UnsupportedTopic(topic.to_string()));
    }
    let body: Value =
        serde_json::from_slice(body).map_err(|error| PayloadError::from_json(&error, provider))?;
    if text_at(&body, mapping.contact_id.as_deref()).is_none() {
        return Err(PayloadError::Shape {
            provider,
            detail: format!(
                "routes.mapping.contact_id `{}` finds no id in the body",
                mapping.contact_id.as_deref().unwrap_or("")
            ),
        });
    }
    let tenant = text_at(&body, mapping.tenant.as_deref());
    Ok((to_contact(mapping, &body), tenant))
}

/// The contact described by `mapping.fields`.
pub fn to_contact(mapping: &MappingConfig, body: &Value) -> Contact {
    let fields = &mapping.fields;
    let text = |pointer: &Option<String>| text_at(body, pointer.as_deref());
    let (mut first_name, mut last_name) = (text(&fields.first_name), text(&fields.last_name));
    if first_name.is_none()
        && last_name.is_none()
        && let Some(full) = text(&fields.full_name)
    {
        (first_name, last_name) = split_name(&full);
    }
    let country = text(&fields.country);
    let region = country.clone().or_else(|| mapping.default_region.clone());
    let address = PostalAddress {
        line1: text(&fields.address_line1),
        line2: text(&fields.address_line2),
        city: text(&fields.city),
        province_code: text(&fields.region),
        country_code: country,
    };
    let tags = match fields.tags.as_deref().and_then(|p| body.pointer(p)) {
        Some(Value::String(joined)) => joined.split(',').map(str::to_string).collect(),
        _ => texts_at(body, fields.tags.as_deref()),
    };
    Contact {
        first_name,
        last_name,
        emails: texts_at(body, fields.email.as_deref()),
        phones: texts_at(body, fields.phone.as_deref())
            .into_iter()
            .map(|number| Phone {
                number,
                default_region: region.clone(),
            })
            .collect(),
        address: (address != PostalAddress::default()).then_some(address),
        tags,
        marketing_consent: fields
            .consent
            .as_deref()
            .and_then(|p| body.pointer(p))
            .and_then(consent),
    }
}

/// A consent value: a boolean, or text naming an opt-in.
fn consent(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) => Some(matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "true" | "yes" | "subscribed" | "opted_in" | "opt_in" | "1"
        )),
        Value::Number(number) => Some(number.as_i64() == Some(1)),
        _ => None,
    }
}

/// Splits one name field into given and family name.
///
/// Vendasta keeps them apart, and providers like Stripe store one `name`. The rule: the
/// last whitespace-separated word is the family name and everything before it the given
/// name(s); a single word is kept as the given name, so nothing is lost. It is wrong for
/// family-name-first cultures and compound surnames, which is why a source that has
/// separate fields never uses it.
pub fn split_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    match full.rsplit_once(char::is_whitespace) {
        Some((given, family)) => (Some(given.trim_end().to_string()), Some(family.to_string())),
        None if full.is_empty() => (None, None),
        None => (Some(full.to_string()), None),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::FieldsConfig;

    fn mapping() -> MappingConfig {
        MappingConfig {
            contact_id: Some("/c/id".into()),
            default_region: Some("US".into()),
            event_types: [("contact.created".to_string(), EventAction::Upsert)].into(),
            fields: FieldsConfig {
                full_name: Some("/c/name".into()),
                email: Some("/c/emails".into()),
                phone: Some("/c/phone".into()),
                city: Some("/c/city".into()),
                tags: Some("/c/tags".into()),
                consent: Some("/c/optin".into()),
                ..FieldsConfig::default()
            },
            ..MappingConfig::default()
        }
    }

    #[test]
    fn pointers_read_strings_numbers_and_lists() {
        let body = json!({"c": {"id": 42, "name": "Ada King Lovelace", "emails": ["a@x.io", 5, ""],
            "phone": "(281) 332-2575", "city": "London", "tags": "a, b", "optin": "Subscribed"}});
        let contact = to_contact(&mapping(), &body);
        assert_eq!(text_at(&body, Some("/c/id")).as_deref(), Some("42"));
        assert_eq!(contact.first_name.as_deref(), Some("Ada King"));
        assert_eq!(contact.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(contact.emails, vec!["a@x.io"]);
        assert_eq!(contact.phones[0].default_region.as_deref(), Some("US"));
        assert_eq!(contact.address.unwrap().city.as_deref(), Some("London"));
        assert_eq!(contact.tags, vec!["a", " b"]);
        assert_eq!(contact.marketing_consent, Some(true));
    }

    #[test]
    fn names_split_at_the_last_word_and_one_word_stays_the_given_name() {
        assert_eq!(
            split_name(" Jenny  Rosen "),
            (Some("Jenny".into()), Some("Rosen".into()))
        );
        assert_eq!(split_name("Cher"), (Some("Cher".into()), None));
        assert_eq!(split_name("  "), (None, None));
    }

    #[test]
    fn timestamps_read_rfc_3339_seconds_and_milliseconds() {
        let body =
            json!({"a": "2022-11-24T13:18:55Z", "s": 1_669_295_935, "ms": 1_669_295_935_000_i64});
        assert_eq!(millis_at(&body, Some("/a")), Some(1_669_295_935_000));
        assert_eq!(millis_at(&body, Some("/s")), Some(1_669_295_935_000));
        assert_eq!(millis_at(&body, Some("/ms")), Some(1_669_295_935_000));
    }

    #[test]
    fn timestamps_at_the_ends_of_i64_do_not_overflow() {
        let body = json!({"min": i64::MIN, "max": i64::MAX, "neg": -1_669_295_935});
        assert_eq!(millis_at(&body, Some("/min")), Some(i64::MIN));
        assert_eq!(millis_at(&body, Some("/max")), Some(i64::MAX));
        assert_eq!(millis_at(&body, Some("/neg")), Some(-1_669_295_935_000));
    }

    #[test]
    fn unlisted_and_ignored_types_are_not_delivered_and_parse_refuses_them() {
        let m = mapping();
        assert_eq!(disposition(&m, "contact.created"), Disposition::Deliver);
        assert_eq!(disposition(&m, "contact.deleted"), Disposition::Ignore);
        assert_eq!(disposition(&m, ""), Disposition::Deliver);
        assert!(matches!(
            parse(&m, "contact.deleted", b"{}", "X").unwrap_err(),
            PayloadError::UnsupportedTopic(_)
        ));
        assert!(matches!(
            parse(&m, "", b"{}", "X").unwrap_err(),
            PayloadError::Shape { .. }
        ));
        let error = parse(&m, "contact.created", br#"{"c":{}}"#, "X").unwrap_err();
        assert!(error.to_string().contains("/c/id"), "{error}");
    }
}
