//! Per-webhook CPU cost: what one request costs the bridge between its raw bytes and the
//! JSON it sends to Vendasta, for each source's fixture in `tests/fixtures`.
//!
//! One iteration is the whole in-process path of a webhook: `Source::verify` (HMAC over
//! the raw body), `Source::envelope` (dedupe id, topic, contact id), the worker's
//! `Route::plan` (payload → `Contact`), `transform::to_customer` and the serialised
//! create body. No I/O: the store and the network are measured by `scripts/bench`.
//! Run with `cargo bench --bench webhook_cpu`.

// Set-up code, like a test: a broken fixture or config must stop the bench loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::{collections::BTreeMap, hint::black_box, time::SystemTime};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use vendasta_bridge::{
    config::Config,
    sources::{Action, Registry, StoredEvent},
    transform,
    vendasta::model::CreateRequest,
};

/// One route per source, with the secrets the requests below are signed with.
const ROUTES: &str = r#"
[vendasta]
token = "bench-token"

[[routes]]
name = "shopify"
source = "shopify"
secrets = ["shopify-secret"]
business_location = "AG-SHOPIFY"

[[routes]]
name = "square"
source = "square"
secrets = ["sq-signature-key"]
notification_url = "https://bridge.example.com/webhooks/square"
business_location = "AG-SQUARE"

[[routes]]
name = "woocommerce"
source = "woocommerce"
secrets = ["wc_test_secret"]
business_location = "AG-WOO"

[[routes]]
name = "stripe"
source = "stripe"
secrets = ["whsec_test_secret"]
business_location = "AG-STRIPE"

[[routes]]
name = "standard"
source = "standard"
secrets = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]
business_location = "AG-STANDARD"
[routes.mapping]
contact_id = "/data/id"
updated_at = "/timestamp"
default_region = "US"
event_types = { "contact.created" = "upsert", "contact.updated" = "upsert" }
[routes.mapping.fields]
full_name = "/data/fullName"
phone = "/data/phoneNumber"
address_line1 = "/data/address"

[[routes]]
name = "pipedrive"
source = "pipedrive"
secrets = ["bridge:correct-horse"]
business_location = "AG-PIPEDRIVE"
"#;

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}")))
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length works");
    parts.iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(v).expect("header value"),
            )
        })
        .collect()
}

/// (route, body, signed headers) for each source.
fn cases(now: u64) -> Vec<(&'static str, Bytes, HeaderMap)> {
    let shopify = fixture("shopify/shopify-customers-create.json");
    let square = fixture("square/square-customer.created.json");
    let woo = fixture("woocommerce/woocommerce-customer.created.json");
    let stripe = fixture("stripe/stripe-customer.created.CONSTRUCTED.json");
    let standard = fixture("standard/standardwebhooks-contact.created.full.json");
    let pipedrive = fixture("pipedrive/pipedrive-person.create.v2.json");
    let t = now.to_string();
    let standard_key = BASE64
        .decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
        .expect("base64 key");
    let standard_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    vec![
        (
            "shopify",
            shopify.clone(),
            headers(&[
                (
                    "X-Shopify-Hmac-Sha256",
                    BASE64.encode(hmac256(b"shopify-secret", &[&shopify])),
                ),
                ("X-Shopify-Topic", "customers/create".into()),
                ("X-Shopify-Webhook-Id", "b54557e4-bdd9-4b37-8a5f".into()),
                ("X-Shopify-Shop-Domain", "acme.myshopify.com".into()),
                ("X-Shopify-API-Version", "2026-07".into()),
            ]),
        ),
        (
            "square",
            square.clone(),
            headers(&[(
                "x-square-hmacsha256-signature",
                BASE64.encode(hmac256(
                    b"sq-signature-key",
                    &[b"https://bridge.example.com/webhooks/square", &square],
                )),
            )]),
        ),
        (
            "woocommerce",
            woo.clone(),
            headers(&[
                (
                    "X-WC-Webhook-Signature",
                    BASE64.encode(hmac256(b"wc_test_secret", &[&woo])),
                ),
                ("X-WC-Webhook-Topic", "customer.created".into()),
                ("X-WC-Webhook-Resource", "customer".into()),
                ("X-WC-Webhook-Source", "https://shop.example.com/".into()),
                ("X-WC-Webhook-Delivery-ID", "bench-1".into()),
            ]),
        ),
        (
            "stripe",
            stripe.clone(),
            headers(&[(
                "Stripe-Signature",
                format!(
                    "t={t},v1={}",
                    hex(&hmac256(
                        b"whsec_test_secret",
                        &[t.as_bytes(), b".", &stripe]
                    ))
                ),
            )]),
        ),
        (
            "standard",
            standard.clone(),
            headers(&[
                ("webhook-id", standard_id.into()),
                ("webhook-timestamp", t.clone()),
                (
                    "webhook-signature",
                    format!(
                        "v1,{}",
                        BASE64.encode(hmac256(
                            &standard_key,
                            &[standard_id.as_bytes(), b".", t.as_bytes(), b".", &standard],
                        ))
                    ),
                ),
            ]),
        ),
        (
            "pipedrive",
            pipedrive,
            headers(&[(
                "Authorization",
                format!("Basic {}", BASE64.encode("bridge:correct-horse")),
            )]),
        ),
    ]
}

fn per_webhook(c: &mut Criterion) {
    let config = Config::from_sources(Some(ROUTES), Some("bench routes"), &BTreeMap::new())
        .unwrap_or_else(|e| panic!("bench config: {e}"));
    let registry = Registry::from_config(&config).expect("every bench route builds");
    let now = SystemTime::now();
    let unix = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    for (name, body, headers) in cases(unix) {
        let route = registry.get(name).expect("route configured above");
        let location = route.config.business_location.clone().unwrap_or_default();
        // Fail loudly once, outside the timing, if the case is not a full delivery path:
        // a bench that measures a rejected signature would report a meaningless number.
        let verified = route
            .source
            .verify(&headers, body.clone(), now)
            .unwrap_or_else(|e| panic!("{name}: the bench request must verify: {e}"));
        let envelope = route.source.envelope(&headers, &verified);
        let event = StoredEvent {
            topic: &envelope.topic,
            meta: &envelope.meta,
            body: verified.body(),
        };
        assert!(
            matches!(route.plan(&event), Ok(Action::Upsert(_))),
            "{name}: the fixture must parse into a contact"
        );

        c.bench_function(&format!("verify_envelope_parse_transform/{name}"), |b| {
            b.iter(|| {
                let verified = route
                    .source
                    .verify(black_box(&headers), black_box(body.clone()), now)
                    .ok()?;
                let envelope = route.source.envelope(&headers, &verified);
                let event = StoredEvent {
                    topic: &envelope.topic,
                    meta: &envelope.meta,
                    body: verified.body(),
                };
                let Ok(Action::Upsert(parsed)) = route.plan(&event) else {
                    return None;
                };
                let customer = transform::to_customer(&parsed.contact, &route.config.tags).ok();
                let json = customer.and_then(|customer| {
                    serde_json::to_vec(&CreateRequest::new(&location, &customer.attributes)).ok()
                });
                black_box(json)
            })
        });
    }
}

criterion_group! {
    name = benches;
    // Short, bounded runs: scripts/bench runs this next to the load tests.
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = per_webhook
}
criterion_main!(benches);
