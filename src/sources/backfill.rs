//! Backfilled contacts: the bridge's own neutral record, how a Shopify customer CSV row
//! becomes one, and how the worker turns a stored one into a [`Contact`].
//!
//! `vendasta-bridge backfill` stores each contact as an ordinary job on the route, with
//! topic [`TOPIC`] and a [`BackfillRecord`] as JSON for payload. Why this shape: the job
//! goes through the same queue, ordering, links, retries and dead-letter parking as a
//! webhook, and the only change to the delivery path is that [`super::Route::parse`] sends
//! this topic here instead of to the route's provider. The provider formats (a CSV export,
//! JSON lines) are read once, at backfill time, so a bad row is reported by line number to
//! the person running the command rather than parked later. No I/O happens here.
//!
//! The JSON lines format, one object per line (every member optional except that an email
//! or a phone is required):
//!
//! ```json
//! {"id": "7011", "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
//!  "phone": "+16135550199", "tags": ["vip"], "marketing_consent": true,
//!  "address": {"address1": "1 Main St", "address2": "Unit 2", "city": "Ottawa",
//!              "province_code": "ON", "country_code": "CA", "phone": "+16135550100"}}
//! ```
//!
//! `id` is the provider's id of the contact (a Shopify customer id), so later webhooks of
//! the same contact update the customer the backfill created. Without one, the id is a
//! hash of the email (or phone), never the value itself, because ids appear in logs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ParsedEvent, PayloadError, StoredEvent};
use crate::contact::{Contact, Phone, PostalAddress};

/// The topic of a backfilled job.
pub const TOPIC: &str = "bridge/backfill";

/// The provider name used in payload errors.
const PROVIDER: &str = "backfill";

/// One contact to backfill: the JSON lines schema and the stored payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRecord {
    /// The provider's contact id; numbers are accepted and kept exact.
    #[serde(
        default,
        deserialize_with = "id_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<BackfillAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marketing_consent: Option<bool>,
}

/// The primary postal address of a [`BackfillRecord`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Subdivision code without the country prefix (`ON`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub province_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// Why a row cannot be backfilled. Messages name the column or member, never its value
/// (it may be an email or a phone number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    #[error("the row has neither an email nor a phone; Vendasta needs one of them")]
    NoContactPoint,
    #[error("{field} must be a two-letter ISO country code (like `US`)")]
    CountryCode { field: &'static str },
    #[error("{field} must be yes/no or true/false")]
    Consent { field: &'static str },
    #[error("the line is not a contact record: {0}")]
    Json(String),
    #[error("the row cannot be read as CSV: {0}")]
    Csv(String),
}

impl RowError {
    pub fn code(&self) -> &'static str {
        match self {
            RowError::NoContactPoint => "no_contact_point",
            RowError::CountryCode { .. } => "bad_country_code",
            RowError::Consent { .. } => "bad_consent",
            RowError::Json(_) => "bad_json",
            RowError::Csv(_) => "bad_csv",
        }
    }
}

impl BackfillRecord {
    /// Reads one JSON line and checks it.
    pub fn from_json_line(line: &str) -> Result<Self, RowError> {
        let record: Self = serde_json::from_str(line).map_err(|error| {
            // serde's message may quote a value; keep only its category and position.
            let detail = match error.classify() {
                serde_json::error::Category::Data => {
                    let message = error.to_string();
                    if message.starts_with("unknown field") {
                        // Names the member, which is a schema word, not data.
                        message
                            .split(", expected")
                            .next()
                            .unwrap_or("unknown field")
                            .to_string()
                    } else {
                        format!("a member has the wrong type at column {}", error.column())
                    }
                }
                _ => format!("invalid JSON at column {}", error.column()),
            };
            RowError::Json(detail)
        })?;
        record.checked("country_code")
    }

    /// Checks what Vendasta would refuse so the row is reported now, not parked later.
    fn checked(self, country_field: &'static str) -> Result<Self, RowError> {
        let present =
            |value: &Option<String>| value.as_deref().is_some_and(|v| !v.trim().is_empty());
        let address_phone = self.address.as_ref().is_some_and(|a| present(&a.phone));
        if !present(&self.email) && !present(&self.phone) && !address_phone {
            return Err(RowError::NoContactPoint);
        }
        if let Some(code) = self
            .address
            .as_ref()
            .and_then(|a| a.country_code.as_deref())
            .map(str::trim)
            .filter(|c| !c.is_empty())
            && !(code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(RowError::CountryCode {
                field: country_field,
            });
        }
        Ok(self)
    }

    /// The contact id to store: the given id, else a hash of the email or phone.
    pub fn contact_id(&self) -> String {
        if let Some(id) = self
            .id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
        {
            return id.to_string();
        }
        let key = self
            .email
            .as_deref()
            .map(|e| format!("email:{}", e.trim().to_lowercase()))
            .or_else(|| self.phone.as_deref().map(|p| format!("phone:{}", p.trim())))
            .or_else(|| {
                self.address
                    .as_ref()
                    .and_then(|a| a.phone.as_deref())
                    .map(|p| format!("phone:{}", p.trim()))
            })
            .unwrap_or_default();
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("h-{hex}")
    }

    fn into_contact(self) -> Contact {
        let region = self.address.as_ref().and_then(|a| a.country_code.clone());
        let mut phones = Vec::new();
        for number in [
            self.phone,
            self.address.as_ref().and_then(|a| a.phone.clone()),
        ]
        .into_iter()
        .flatten()
        .filter(|n| !n.trim().is_empty())
        {
            phones.push(Phone {
                number,
                default_region: region.clone(),
            });
        }
        Contact {
            first_name: self.first_name,
            last_name: self.last_name,
            emails: self.email.into_iter().collect(),
            phones,
            address: self.address.map(|a| PostalAddress {
                line1: a.address1,
                line2: a.address2,
                city: a.city,
                province_code: a.province_code,
                country_code: a.country_code,
            }),
            tags: self.tags,
            marketing_consent: self.marketing_consent,
        }
    }
}

/// The columns of a Shopify customer CSV export the bridge reads, by index.
///
/// Shopify admin's Customers → Export writes this header (20 columns, in this order):
/// `Customer ID, First Name, Last Name, Email, Accepts Email Marketing, Default Address
/// Company, Default Address Address1, Default Address Address2, Default Address City,
/// Default Address Province Code, Default Address Country Code, Default Address Zip,
/// Default Address Phone, Phone, Accepts SMS Marketing, Total Spent, Total Orders, Note,
/// Tax Exempt, Tags`, with ids and phones written as `'8779761975521` so spreadsheets keep
/// them as text, and consent as `yes`/`no`. Source: the code-search corpus available here
/// (several independent public importers of Shopify's export declare exactly this header
/// and strip the leading `'`), consistent with Shopify's Help Center page "Customer CSV
/// file format"; third-party exporters (Matrixify, Excelify, per their column docs) call
/// the id column `ID`. Older Shopify exports used `Address1`, `Address2`, `City`,
/// `Province Code`, `Country Code` and `Accepts Marketing`. All of these are accepted;
/// matching ignores case and surrounding spaces, and other columns (totals, notes, zip —
/// Vendasta has no postal code field) are ignored.
#[derive(Debug, Clone, Default)]
pub struct ShopifyCsvColumns {
    columns: BTreeMap<&'static str, usize>,
}

/// Each field and the header names that carry it, preferred first.
const CSV_FIELDS: &[(&str, &[&str])] = &[
    ("id", &["customer id", "id"]),
    ("first_name", &["first name"]),
    ("last_name", &["last name"]),
    ("email", &["email"]),
    ("phone", &["phone"]),
    (
        "email_consent",
        &["accepts email marketing", "accepts marketing"],
    ),
    ("sms_consent", &["accepts sms marketing"]),
    ("address1", &["default address address1", "address1"]),
    ("address2", &["default address address2", "address2"]),
    ("city", &["default address city", "city"]),
    (
        "province_code",
        &["default address province code", "province code"],
    ),
    (
        "country_code",
        &["default address country code", "country code"],
    ),
    ("address_phone", &["default address phone"]),
    ("tags", &["tags"]),
];

impl ShopifyCsvColumns {
    /// Finds the known columns in a header row. Fails when neither `Email` nor `Phone` is
    /// there: such a file cannot be a customer export.
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let headers: Vec<String> = headers
            .into_iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        let mut columns = BTreeMap::new();
        for (field, names) in CSV_FIELDS {
            if let Some(index) = names
                .iter()
                .find_map(|name| headers.iter().position(|h| h == name))
            {
                columns.insert(*field, index);
            }
        }
        if !columns.contains_key("email") && !columns.contains_key("phone") {
            return Err(
                "the header row has neither an `Email` nor a `Phone` column: export the file from Shopify admin (Customers → Export) or use the bridge's JSON lines format"
                    .to_string(),
            );
        }
        Ok(Self { columns })
    }

    /// Turns one data row into a checked record.
    pub fn record(&self, row: &csv::StringRecord) -> Result<BackfillRecord, RowError> {
        let get = |field: &str| -> Option<String> {
            self.columns
                .get(field)
                .and_then(|index| row.get(*index))
                // Spreadsheet tools export ids and phones as `'123` to keep them text.
                .map(|value| value.trim().trim_start_matches('\'').trim().to_string())
                .filter(|value| !value.is_empty())
        };
        let yes_no =
            |field: &'static str, column: &'static str| -> Result<Option<bool>, RowError> {
                match get(field).map(|v| v.to_ascii_lowercase()).as_deref() {
                    None => Ok(None),
                    Some("yes" | "true" | "subscribed") => Ok(Some(true)),
                    Some("no" | "false" | "not_subscribed" | "unsubscribed") => Ok(Some(false)),
                    Some(_) => Err(RowError::Consent { field: column }),
                }
            };
        let email_consent = yes_no("email_consent", "Accepts Email Marketing")?;
        let sms_consent = yes_no("sms_consent", "Accepts SMS Marketing")?;
        let marketing_consent = match (email_consent, sms_consent) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (None, None) => None,
            _ => Some(false),
        };
        let address = BackfillAddress {
            address1: get("address1"),
            address2: get("address2"),
            city: get("city"),
            province_code: get("province_code"),
            country_code: get("country_code"),
            phone: get("address_phone"),
        };
        let record = BackfillRecord {
            id: get("id"),
            first_name: get("first_name"),
            last_name: get("last_name"),
            email: get("email"),
            phone: get("phone"),
            address: (address != BackfillAddress::default()).then_some(address),
            tags: get("tags")
                .map(|tags| {
                    tags.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            marketing_consent,
        };
        record.checked("Default Address Country Code")
    }
}

/// Turns a stored backfill job into a contact (run by the worker).
pub fn parse(event: &StoredEvent<'_>) -> Result<ParsedEvent, PayloadError> {
    let record: BackfillRecord =
        serde_json::from_slice(event.body).map_err(|e| PayloadError::from_json(&e, PROVIDER))?;
    Ok(ParsedEvent {
        contact: record.into_contact(),
        tenant: event.meta.get("shop").map(|shop| shop.to_ascii_lowercase()),
    })
}

fn id_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    Ok(Option::<Id>::deserialize(deserializer)?.map(|id| match id {
        Id::Number(n) => n.to_string(),
        Id::Text(text) => text,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(header: &str) -> ShopifyCsvColumns {
        ShopifyCsvColumns::from_headers(header.split(',')).unwrap()
    }

    fn row(fields: &str) -> csv::StringRecord {
        csv::StringRecord::from(fields.split(',').collect::<Vec<_>>())
    }

    const HEADER: &str = "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Address1,Default Address Address2,Default Address City,Default Address Province Code,Default Address Country Code,Default Address Phone,Phone,Accepts SMS Marketing,Tags";

    #[test]
    fn a_shopify_export_row_becomes_a_contact_with_its_address_consent_and_tags() {
        let record = columns(HEADER)
            .record(&row("'7011,Ada,Lovelace,ada@example.com,yes,1 Main St,Unit 2,Ottawa,ON,CA,+16135550100,,no,vip"))
            .unwrap();
        assert_eq!(record.contact_id(), "7011");
        assert_eq!(record.marketing_consent, Some(true));
        let contact = record.into_contact();
        assert_eq!(contact.first_name.as_deref(), Some("Ada"));
        assert_eq!(contact.emails, vec!["ada@example.com"]);
        assert_eq!(contact.phones.len(), 1);
        assert_eq!(contact.phones[0].default_region.as_deref(), Some("CA"));
        let address = contact.address.unwrap();
        assert_eq!(address.province_code.as_deref(), Some("ON"));
        assert_eq!(address.line2.as_deref(), Some("Unit 2"));
        assert_eq!(contact.tags, vec!["vip"]);
    }

    #[test]
    fn legacy_headers_are_read_and_rows_without_email_or_phone_are_refused() {
        let legacy = columns("First Name,Last Name,Email,Phone,Accepts Marketing,Country Code");
        let record = legacy.record(&row("Bo,,bo@example.com,,no,us")).unwrap();
        assert_eq!(record.marketing_consent, Some(false));
        assert!(record.contact_id().starts_with("h-"));
        assert!(!record.contact_id().contains("example"));
        assert_eq!(
            legacy.record(&row("Bo,,,,no,US")).unwrap_err(),
            RowError::NoContactPoint
        );
        assert_eq!(
            legacy
                .record(&row("Bo,,bo@example.com,,no,Canada"))
                .unwrap_err()
                .code(),
            "bad_country_code"
        );
        assert_eq!(
            legacy
                .record(&row("Bo,,bo@example.com,,maybe,US"))
                .unwrap_err()
                .code(),
            "bad_consent"
        );
    }

    #[test]
    fn a_header_without_email_or_phone_is_not_a_customer_export() {
        assert!(ShopifyCsvColumns::from_headers(["Handle", "Title"]).is_err());
    }

    #[test]
    fn json_lines_keep_big_ids_exact_and_errors_do_not_quote_values() {
        let record =
            BackfillRecord::from_json_line(r#"{"id": 9007199254740993, "email": "a@b.co"}"#)
                .unwrap();
        assert_eq!(record.contact_id(), "9007199254740993");
        let error =
            BackfillRecord::from_json_line(r#"{"email": 5, "phone": "+15555550100"}"#).unwrap_err();
        assert!(!error.to_string().contains("+1555"), "{error}");
        let error = BackfillRecord::from_json_line(r#"{"mail": "a@b.co"}"#).unwrap_err();
        assert!(
            error.to_string().contains("unknown field `mail`"),
            "{error}"
        );
        assert!(!error.to_string().contains("a@b.co"), "{error}");
    }

    #[test]
    fn a_stored_record_parses_back_into_the_same_contact() {
        let record = BackfillRecord {
            id: Some("1".into()),
            email: Some("x@y.co".into()),
            marketing_consent: Some(true),
            ..Default::default()
        };
        let body = serde_json::to_vec(&record).unwrap();
        let meta = BTreeMap::new();
        let parsed = parse(&StoredEvent {
            topic: TOPIC,
            meta: &meta,
            body: &body,
        })
        .unwrap();
        assert_eq!(parsed.contact, record.into_contact());
        assert_eq!(parsed.tenant, None);
    }
}
