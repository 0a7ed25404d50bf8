//! Property tests for `transform::to_customer`: whatever a source hands it, the result is
//! either a create body that passes Vendasta's own schema (`support/schema.rs`) or a
//! `TransformError` that says why. Inputs mix realistic values (emails, phone numbers in
//! national and E.164 form, ISO codes) with arbitrary Unicode, whitespace and garbage,
//! because sources pass payload values through untrimmed and unvalidated.

#[path = "support/schema.rs"]
mod schema;

use proptest::{option, prelude::*};
use vendasta_bridge::{
    contact::{Contact, Phone, PostalAddress},
    transform::{self, TransformError},
    vendasta::model::CreateRequest,
};

/// Any short string: Unicode, control characters, whitespace-only and empty included.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,24}",
        "[ \t\r\n]{0,4}",
        "[ ]{0,2}[A-Za-zÀ-ÿ' -]{1,16}[ ]{0,2}",
    ]
}

fn email() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ ]{0,2}[a-zA-Z0-9._%+-]{1,12}@[a-z0-9-]{1,10}\\.[a-z]{2,6}[ ]{0,2}",
        "[a-z]{1,6}@",
        "@[a-z]{1,6}\\.com",
        any_text(),
    ]
}

fn phone() -> impl Strategy<Value = Phone> {
    let number = prop_oneof![
        "\\+1 ?[2-9][0-9]{2} ?[2-9][0-9]{2} ?[0-9]{4}",
        "\\+44 ?7[0-9]{3} ?[0-9]{6}",
        "\\(?[2-9][0-9]{2}\\)? ?[2-9][0-9]{2}-[0-9]{4}",
        "[0-9 +()-]{0,18}",
        any_text(),
    ];
    let region = option::of(prop_oneof![
        Just("US".to_string()),
        Just("ca".to_string()),
        Just("GB".to_string()),
        Just("DE".to_string()),
        "[A-Za-z]{0,3}",
    ]);
    (number, region).prop_map(|(number, default_region)| Phone {
        number,
        default_region,
    })
}

fn address() -> impl Strategy<Value = PostalAddress> {
    (
        option::of(any_text()),
        option::of(any_text()),
        option::of(any_text()),
        option::of(prop_oneof!["[A-Z]{2}", "[a-z0-9]{0,4}", any_text()]),
        option::of(prop_oneof![
            "[A-Z]{2}",
            "[a-z]{2}",
            "[A-Za-z ]{0,4}",
            any_text()
        ]),
    )
        .prop_map(
            |(line1, line2, city, province_code, country_code)| PostalAddress {
                line1,
                line2,
                city,
                province_code,
                country_code,
            },
        )
}

prop_compose! {
    fn contact()(
        first_name in option::of(any_text()),
        last_name in option::of(any_text()),
        emails in prop::collection::vec(email(), 0..4),
        phones in prop::collection::vec(phone(), 0..4),
        address in option::of(address()),
        tags in prop::collection::vec(any_text(), 0..5),
        marketing_consent in option::of(any::<bool>()),
    ) -> Contact {
        Contact { first_name, last_name, emails, phones, address, tags, marketing_consent }
    }
}

/// Route tags come from config, where they are plain words.
fn route_tags() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z][a-z0-9-]{0,11}", 0..3)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_contact_becomes_a_create_body_vendasta_accepts_or_a_clear_reason(
        contact in contact(),
        tags in route_tags(),
    ) {
        match transform::to_customer(&contact, &tags) {
            Ok(customer) => {
                let body = serde_json::to_value(CreateRequest::new("AG-PROPTEST", &customer.attributes))
                    .expect("attributes serialise");
                if let Err(violations) = schema::check_create(&body) {
                    prop_assert!(false, "create body refused by the schema: {violations:?}\nbody: {body}");
                }
            }
            Err(error) => {
                // The only refusal is "nothing to identify the customer by", and then
                // no email is a plain `word@word.word` address.
                prop_assert_eq!(&error, &TransformError::NoEmailOrPhone);
                prop_assert_eq!(error.code(), "no_email_or_phone");
                prop_assert!(error.to_string().contains("email"));
                let plain = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric());
                let usable_email = contact.emails.iter().any(|e| {
                    e.trim().split_once('@').is_some_and(|(local, domain)| {
                        plain(local) && domain.split('.').count() >= 2 && domain.split('.').all(plain)
                    })
                });
                prop_assert!(!usable_email, "refused a contact with a plain email: {:?}", contact.emails);
            }
        }
    }

    #[test]
    fn a_contact_with_one_plain_email_is_never_refused(
        mut contact in contact(),
        local in "[a-z0-9]{1,10}",
        domain in "[a-z0-9]{1,10}\\.[a-z]{2,5}",
    ) {
        contact.emails.push(format!("{local}@{domain}"));
        let customer = transform::to_customer(&contact, &[]);
        prop_assert!(customer.is_ok(), "refused: {:?}", customer.err());
    }
}
