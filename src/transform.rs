//! Contact → Vendasta customer attributes: the mapping contract of DESIGN.md
//! ("Shopify → Vendasta mapping").
//!
//! Owns every normalisation between what a source sends and what Vendasta accepts:
//! trimming, ISO country and region codes, E.164 phone numbers, de-duplication, and the
//! rule that a customer needs an email address or a phone number. It is pure: no I/O, no
//! async, no logging (the caller logs counts, never a person's data), so a table of
//! contacts pins the whole contract down in unit tests. It must never emit an empty
//! string, because Vendasta rejects one (minLength 1) and a rejected body is a dead job.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::str::FromStr;

use crate::{
    contact::{Contact, Phone, PostalAddress},
    vendasta::model::{Address, CustomerAttributes},
};

/// The attributes to send, plus what was dropped on the way (for counting and logging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// What Vendasta receives in `data.attributes`.
    pub attributes: CustomerAttributes,
    /// Phone numbers that could not be read as valid E.164 numbers and were left out.
    pub dropped_phones: usize,
}

/// Why a contact cannot become a Vendasta customer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    /// Vendasta requires at least one email address or phone number on create.
    #[error(
        "the contact has neither a usable email address nor a valid phone number; Vendasta requires one"
    )]
    NoEmailOrPhone,
}

impl TransformError {
    /// Bounded code for the dead job's reason and for metric labels.
    pub fn code(&self) -> &'static str {
        match self {
            TransformError::NoEmailOrPhone => "no_email_or_phone",
        }
    }
}

/// Maps a contact to Vendasta attributes; `route_tags` are appended to the contact's tags.
///
/// Fails only when nothing is left to identify the customer by (no email address and no
/// valid phone number), because Vendasta would refuse the create anyway.
pub fn to_customer(contact: &Contact, route_tags: &[String]) -> Result<Customer, TransformError> {
    let (phone_numbers, dropped_phones) = to_phone_numbers(&contact.phones);
    let email_addresses = to_email_addresses(&contact.emails);
    if phone_numbers.is_empty() && email_addresses.is_empty() {
        return Err(TransformError::NoEmailOrPhone);
    }

    let attributes = CustomerAttributes {
        given_name: trimmed(contact.first_name.as_deref()),
        family_name: trimmed(contact.last_name.as_deref()),
        address: contact.address.as_ref().and_then(to_address),
        phone_numbers,
        email_addresses,
        tags: to_tags(&contact.tags, route_tags),
        // `None` stays `None`: an omitted attribute keeps Vendasta's value on PATCH,
        // whereas `false` would revoke a consent the payload merely did not mention.
        permission_to_contact: contact.marketing_consent,
    };
    Ok(Customer {
        attributes,
        dropped_phones,
    })
}

/// The trimmed value, or `None` when nothing is left (Vendasta rejects empty strings).
fn trimmed(value: Option<&str>) -> Option<String> {
    let value = value?.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// The Vendasta address, or `None` when no member survives normalisation.
fn to_address(address: &PostalAddress) -> Option<Address> {
    let country_code = country_code(address.country_code.as_deref());
    let region_code = country_code
        .as_deref()
        .and_then(|country| region_code(country, address.province_code.as_deref()));
    let address = Address {
        street_address: street_address(address.line1.as_deref(), address.line2.as_deref()),
        city: trimmed(address.city.as_deref()),
        region_code,
        country_code,
    };
    (!address.is_empty()).then_some(address)
}

/// Vendasta has a single street line, so the second line is appended to the first.
fn street_address(line1: Option<&str>, line2: Option<&str>) -> Option<String> {
    match (trimmed(line1), trimmed(line2)) {
        (Some(line1), Some(line2)) => Some(format!("{line1}, {line2}")),
        (line1, line2) => line1.or(line2),
    }
}

/// ISO 3166-1 alpha-2 in upper case. Anything else is left out rather than sent, because
/// Vendasta validates the code against its country list and would refuse the customer.
fn country_code(code: Option<&str>) -> Option<String> {
    let code = code?.trim().to_ascii_uppercase();
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())).then_some(code)
}

/// ISO 3166-2 (`US-MI`): the country code, a hyphen and the subdivision code.
///
/// Sources usually send the bare subdivision (`MI`), some the full code (`US-MI`); the
/// prefix is stripped first so it is never doubled. A subdivision of another country
/// (`CA-ON` with `US`) keeps its hyphen and so fails the 1–3 alphanumerics rule.
fn region_code(country: &str, province: Option<&str>) -> Option<String> {
    let province = province?.trim().to_ascii_uppercase();
    let subdivision = province
        .strip_prefix(country)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(&province);
    let well_formed = (1..=3).contains(&subdivision.len())
        && subdivision.bytes().all(|b| b.is_ascii_alphanumeric());
    well_formed.then(|| format!("{country}-{subdivision}"))
}

/// Valid numbers in E.164, first occurrence first, and how many numbers were unusable.
///
/// A blank entry is not a number and is skipped without being counted; a repeat of a
/// number already kept (however it was written) is not a loss and is not counted either.
fn to_phone_numbers(phones: &[Phone]) -> (Vec<String>, usize) {
    let mut numbers = Vec::new();
    let mut dropped = 0;
    for phone in phones {
        if phone.number.trim().is_empty() {
            continue;
        }
        match to_e164(phone) {
            Some(number) if !numbers.contains(&number) => numbers.push(number),
            Some(_) => {}
            None => dropped += 1,
        }
    }
    (numbers, dropped)
}

/// The number in E.164 (`+16135550123`), or `None` if it cannot be read as a valid number.
fn to_e164(phone: &Phone) -> Option<String> {
    // An unknown region is not fatal: a number written with `+` does not need one.
    let region = phone.default_region.as_deref().and_then(|region| {
        phonenumber::country::Id::from_str(&region.trim().to_ascii_uppercase()).ok()
    });
    let number = phonenumber::parse(region, &phone.number).ok()?;
    if !phonenumber::is_valid(&number) {
        return None;
    }
    // `Formatter`'s `Display` can fail (unknown country metadata); `to_string` would panic.
    let mut e164 = String::new();
    write!(e164, "{}", number.format().mode(phonenumber::Mode::E164)).ok()?;
    Some(e164)
}

/// Trimmed addresses, de-duplicated case-insensitively, first spelling kept.
///
/// Not a full validation (Vendasta does that), only enough that an obviously broken value
/// (which `format: email` would reject, failing the whole customer) is left out: exactly
/// one `@`, something on each side, no whitespace.
fn to_email_addresses(emails: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    emails
        .iter()
        .map(|email| email.trim())
        .filter(|email| looks_like_email(email))
        .filter(|email| seen.insert(email.to_lowercase()))
        .map(str::to_owned)
        .collect()
}

/// Whether Vendasta's schema (`format: email`, RFC 5321 with an ASCII host name) accepts
/// the address. Anything it would refuse is dropped here, so one bad address does not make
/// Vendasta refuse the whole customer (and its phone numbers with it). Found by the
/// property test in `tests/transform_props.rs`: a looser check let `a@b--.c` through.
fn looks_like_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    is_dot_atom(local) && local.len() <= 64 && is_host_name(domain)
}

/// RFC 5321 dot-atom: atext runs separated by single dots.
fn is_dot_atom(local: &str) -> bool {
    const ATEXT_SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~";
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c))
        })
}

/// An ASCII host name: labels of letters, digits and inner hyphens, at most 63 each and
/// 253 in all; no `--` in the third and fourth place (reserved for IDNA A-labels).
fn is_host_name(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            let bytes = label.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= 63
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && bytes.first() != Some(&b'-')
                && bytes.last() != Some(&b'-')
                && !(bytes.len() >= 4 && bytes[2] == b'-' && bytes[3] == b'-')
        })
}

/// Contact tags, then route tags: trimmed, blanks dropped, exact duplicates removed.
pub fn to_tags(contact_tags: &[String], route_tags: &[String]) -> Vec<String> {
    let mut seen = HashSet::new();
    contact_tags
        .iter()
        .chain(route_tags)
        .map(|tag| tag.trim())
        .filter(|tag| !tag.is_empty() && seen.insert(*tag))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn phone(number: &str, region: Option<&str>) -> Phone {
        Phone {
            number: number.to_owned(),
            default_region: region.map(str::to_owned),
        }
    }

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    /// A contact that passes the email-or-phone rule, so each test varies one thing.
    fn contact() -> Contact {
        Contact {
            emails: strings(&["ada@example.com"]),
            ..Contact::default()
        }
    }

    fn with_phones(phones: Vec<Phone>) -> Contact {
        Contact {
            phones,
            ..contact()
        }
    }

    fn with_address(address: PostalAddress) -> Contact {
        Contact {
            address: Some(address),
            ..contact()
        }
    }

    fn attributes(contact: &Contact) -> CustomerAttributes {
        to_customer(contact, &[]).unwrap().attributes
    }

    #[test]
    fn region_code_is_the_iso_3166_2_code_of_country_and_province() {
        let cases = [
            (Some("US"), Some("MI"), Some("US"), Some("US-MI")),
            (Some(" us "), Some(" mi "), Some("US"), Some("US-MI")),
            (Some("US"), Some("US-MI"), Some("US"), Some("US-MI")),
            (Some("us"), Some("us-mi"), Some("US"), Some("US-MI")),
            (Some("AU"), Some("NSW"), Some("AU"), Some("AU-NSW")),
            (Some("CA"), Some("sk"), Some("CA"), Some("CA-SK")),
            (Some("US"), Some("CA-ON"), Some("US"), None),
            (Some("US"), Some("ABCD"), Some("US"), None),
            (Some("US"), Some("  "), Some("US"), None),
            (Some("US"), None, Some("US"), None),
            (Some("USA"), Some("MI"), None, None),
            (Some("U1"), Some("MI"), None, None),
            (None, Some("MI"), None, None),
        ];
        for (country, province, expected_country, expected_region) in cases {
            let contact = with_address(PostalAddress {
                city: Some("Kalamazoo".to_owned()),
                country_code: country.map(str::to_owned),
                province_code: province.map(str::to_owned),
                ..PostalAddress::default()
            });

            let address = attributes(&contact).address.unwrap();

            assert_eq!(
                address.country_code.as_deref(),
                expected_country,
                "country {country:?}, province {province:?}"
            );
            assert_eq!(
                address.region_code.as_deref(),
                expected_region,
                "country {country:?}, province {province:?}"
            );
        }
    }

    #[test]
    fn a_national_number_is_read_in_its_default_region_and_sent_as_e164() {
        let cases = [
            ("(613) 555-0123", "CA", "+16135550123"),
            ("613-555-0123", "ca", "+16135550123"),
            ("(306) 555-1234", " CA ", "+13065551234"),
            ("269-555-0142", "US", "+12695550142"),
            ("020 7946 0958", "GB", "+442079460958"),
        ];
        for (number, region, expected) in cases {
            let contact = with_phones(vec![phone(number, Some(region))]);

            let customer = to_customer(&contact, &[]).unwrap();

            assert_eq!(
                customer.attributes.phone_numbers,
                [expected],
                "{number} in {region}"
            );
            assert_eq!(customer.dropped_phones, 0, "{number} in {region}");
        }
    }

    #[test]
    fn a_number_with_a_country_code_ignores_the_default_region() {
        let contact = with_phones(vec![
            phone("+44 20 7946 0958", Some("US")),
            phone("+1 613 555 0199", None),
        ]);

        let customer = to_customer(&contact, &[]).unwrap();

        assert_eq!(
            customer.attributes.phone_numbers,
            ["+442079460958", "+16135550199"]
        );
        assert_eq!(customer.dropped_phones, 0);
    }

    #[test]
    fn invalid_or_unreadable_phone_numbers_are_dropped_and_counted() {
        let contact = with_phones(vec![
            // NANP 555-5555 exchange numbers parse but are not valid numbers.
            phone("555-555-5555", Some("CA")),
            phone("+1 555 555 5555", None),
            phone("12345", Some("CA")),
            phone("not a number", Some("CA")),
            // A national number without a usable region cannot be placed in a country.
            phone("(613) 555-0123", None),
            phone("(613) 555-0123", Some("XX")),
            phone("(613) 555-0124", Some("CA")),
        ]);

        let customer = to_customer(&contact, &[]).unwrap();

        assert_eq!(customer.attributes.phone_numbers, ["+16135550124"]);
        assert_eq!(customer.dropped_phones, 6);
    }

    #[test]
    fn blank_phone_entries_are_skipped_without_being_counted() {
        let contact = with_phones(vec![phone("", Some("CA")), phone("   ", None)]);

        let customer = to_customer(&contact, &[]).unwrap();

        assert!(customer.attributes.phone_numbers.is_empty());
        assert_eq!(customer.dropped_phones, 0);
    }

    #[test]
    fn the_same_number_written_two_ways_is_sent_once_in_first_seen_order() {
        let contact = with_phones(vec![
            phone("(306) 555-1234", Some("CA")),
            phone("+1 613-555-0123", None),
            phone("613.555.0123", Some("CA")),
            phone("+13065551234", Some("GB")),
        ]);

        let customer = to_customer(&contact, &[]).unwrap();

        assert_eq!(
            customer.attributes.phone_numbers,
            ["+13065551234", "+16135550123"]
        );
        assert_eq!(customer.dropped_phones, 0);
    }

    #[test]
    fn empty_or_whitespace_names_are_omitted_and_others_trimmed() {
        let cases = [
            (None, None),
            (Some(""), None),
            (Some(" \t\n"), None),
            (Some("  Ada "), Some("Ada")),
            (Some("Mary Ann"), Some("Mary Ann")),
        ];
        for (name, expected) in cases {
            let contact = Contact {
                first_name: name.map(str::to_owned),
                last_name: name.map(str::to_owned),
                ..contact()
            };

            let attributes = attributes(&contact);

            assert_eq!(attributes.given_name.as_deref(), expected, "{name:?}");
            assert_eq!(attributes.family_name.as_deref(), expected, "{name:?}");
        }
    }

    #[test]
    fn contact_and_route_tags_are_merged_trimmed_and_deduplicated_in_order() {
        let contact = Contact {
            tags: strings(&[" vip ", "", "wholesale", "vip", "  "]),
            ..contact()
        };
        let route_tags = strings(&["shopify", " wholesale", "VIP"]);

        let attributes = to_customer(&contact, &route_tags).unwrap().attributes;

        assert_eq!(attributes.tags, ["vip", "wholesale", "shopify", "VIP"]);
    }

    #[test]
    fn marketing_consent_is_passed_through_and_unknown_stays_unknown() {
        for consent in [Some(true), Some(false), None] {
            let contact = Contact {
                marketing_consent: consent,
                ..contact()
            };

            let attributes = attributes(&contact);

            assert_eq!(attributes.permission_to_contact, consent);
        }
    }

    #[test]
    fn emails_are_trimmed_and_deduplicated_case_insensitively_keeping_the_first_spelling() {
        let contact = Contact {
            emails: strings(&[
                " Ada@Example.com ",
                "ada@example.com",
                "",
                "  ",
                "bob@example.com",
            ]),
            ..Contact::default()
        };

        let attributes = attributes(&contact);

        assert_eq!(
            attributes.email_addresses,
            ["Ada@Example.com", "bob@example.com"]
        );
    }

    #[test]
    fn malformed_emails_are_dropped_and_not_counted_as_dropped_phones() {
        let contact = Contact {
            emails: strings(&[
                "no-at-sign",
                "@example.com",
                "ada@",
                "ada@@example.com",
                "a@b@example.com",
                "ada lovelace@example.com",
                "ada@example-.com",
                "ada@ex--ample.com",
                "ada..lovelace@example.com",
                "ada@exämple.com",
                "ada@example.com",
            ]),
            ..Contact::default()
        };

        let customer = to_customer(&contact, &[]).unwrap();

        assert_eq!(customer.attributes.email_addresses, ["ada@example.com"]);
        assert_eq!(customer.dropped_phones, 0);
    }

    #[test]
    fn a_contact_without_email_and_with_only_invalid_phones_is_refused() {
        let contact = Contact {
            first_name: Some("Ada".to_owned()),
            emails: strings(&["", "not-an-email"]),
            phones: vec![phone("555-555-5555", Some("CA")), phone("12345", None)],
            ..Contact::default()
        };

        let error = to_customer(&contact, &strings(&["shopify"])).unwrap_err();

        assert_eq!(error, TransformError::NoEmailOrPhone);
        assert_eq!(error.code(), "no_email_or_phone");
    }

    #[test]
    fn a_valid_phone_alone_is_enough() {
        let contact = Contact {
            phones: vec![phone("(306) 555-1234", Some("CA"))],
            ..Contact::default()
        };

        let attributes = attributes(&contact);

        assert!(attributes.email_addresses.is_empty());
        assert_eq!(attributes.phone_numbers, ["+13065551234"]);
    }

    #[test]
    fn an_address_with_only_country_and_province_still_gives_country_and_region_codes() {
        let contact = with_address(PostalAddress {
            province_code: Some("MI".to_owned()),
            country_code: Some("us".to_owned()),
            ..PostalAddress::default()
        });

        let address = attributes(&contact).address.unwrap();

        assert_eq!(
            address,
            Address {
                country_code: Some("US".to_owned()),
                region_code: Some("US-MI".to_owned()),
                ..Address::default()
            }
        );
    }

    #[test]
    fn street_address_joins_both_lines_and_skips_blank_ones() {
        let cases = [
            (
                Some(" 123 Fake St. "),
                Some(" Unit 4 "),
                Some("123 Fake St., Unit 4"),
            ),
            (Some("123 Fake St."), Some("  "), Some("123 Fake St.")),
            (Some("123 Fake St."), None, Some("123 Fake St.")),
            (Some(" "), Some("Unit 4"), Some("Unit 4")),
            (None, None, None),
        ];
        for (line1, line2, expected) in cases {
            let contact = with_address(PostalAddress {
                line1: line1.map(str::to_owned),
                line2: line2.map(str::to_owned),
                city: Some("Kalamazoo".to_owned()),
                ..PostalAddress::default()
            });

            let address = attributes(&contact).address.unwrap();

            assert_eq!(
                address.street_address.as_deref(),
                expected,
                "{line1:?} {line2:?}"
            );
        }
    }

    #[test]
    fn an_address_with_nothing_usable_is_omitted() {
        let contact = with_address(PostalAddress {
            line1: Some(" ".to_owned()),
            line2: Some(String::new()),
            city: Some("\t".to_owned()),
            province_code: Some("MI".to_owned()),
            country_code: Some("USA".to_owned()),
        });

        assert_eq!(attributes(&contact).address, None);
    }

    fn empty_strings(value: &Value, path: &str, found: &mut Vec<String>) {
        match value {
            Value::String(s) if s.is_empty() => found.push(path.to_owned()),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    empty_strings(item, &format!("{path}/{i}"), found);
                }
            }
            Value::Object(members) => {
                for (key, member) in members {
                    empty_strings(member, &format!("{path}/{key}"), found);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn serialized_attributes_contain_no_empty_string_and_omit_absent_members() {
        // Arrange: every field present but blank or unusable, except one email.
        let contact = Contact {
            first_name: Some(" ".to_owned()),
            last_name: Some("  Lovelace ".to_owned()),
            emails: strings(&["", " ada@example.com "]),
            phones: vec![phone("", Some("CA")), phone("555-555-5555", Some("CA"))],
            address: Some(PostalAddress {
                line1: Some(String::new()),
                line2: Some(String::new()),
                city: Some(" London ".to_owned()),
                province_code: Some(String::new()),
                country_code: Some(" ".to_owned()),
            }),
            tags: strings(&["", " "]),
            marketing_consent: None,
        };

        // Act
        let json = serde_json::to_value(attributes(&contact)).unwrap();

        // Assert
        assert_eq!(
            json,
            json!({
                "familyName": "Lovelace",
                "address": {"city": "London"},
                "emailAddresses": ["ada@example.com"],
            })
        );
        let mut found = Vec::new();
        empty_strings(&json, "", &mut found);
        assert!(found.is_empty(), "empty strings at {found:?}");
    }
}
