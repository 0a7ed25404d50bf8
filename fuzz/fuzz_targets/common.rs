//! Shared harness of the source fuzz targets: one route per source, a signer per scheme,
//! and the whole in-process path a webhook takes (verify → envelope → privacy → plan →
//! transform → create body). Each input is used twice: once with its first bytes as the
//! signature header (to fuzz the header parsing and the refusal path) and once signed
//! correctly (so the body gets past `verify` and the parsers see every mutation).
//! Nothing may panic: a panic is a crash found.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    sync::LazyLock,
    time::{Duration, SystemTime},
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Sha256, Sha512};
use vendasta_bridge::{
    config::Config,
    sources::{Action, Registry, StoredEvent},
    transform,
    vendasta::model::CreateRequest,
};

const ROUTES: &str = r#"
[vendasta]
token = "fuzz-token"

[[routes]]
name = "shopify"
source = "shopify"
secrets = ["shopify-secret"]
business_location = "AG-FUZZ"

[[routes]]
name = "square"
source = "square"
secrets = ["square-key"]
notification_url = "https://bridge.example.com/webhooks/square"
business_location = "AG-FUZZ"

[[routes]]
name = "woocommerce"
source = "woocommerce"
secrets = ["woo-secret"]
business_location = "AG-FUZZ"

[[routes]]
name = "stripe"
source = "stripe"
secrets = ["whsec_stripe"]
business_location = "AG-FUZZ"

[[routes]]
name = "standard"
source = "standard"
secrets = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]
business_location = "AG-FUZZ"
[routes.mapping]
contact_id = "/data/id"
updated_at = "/timestamp"
default_region = "US"
event_types = { "contact.created" = "upsert", "contact.updated" = "upsert", "contact.deleted" = "ignore" }
[routes.mapping.fields]
full_name = "/data/fullName"
phone = "/data/phoneNumber"
address_line1 = "/data/address"

[[routes]]
name = "pipedrive"
source = "pipedrive"
secrets = ["bridge:correct-horse"]
business_location = "AG-FUZZ"

[[routes]]
name = "hubspot"
source = "hubspot"
secrets = ["hubspot-secret"]
business_location = "AG-FUZZ"
public_url = "https://bridge.example.com/webhooks/hub"
access_token = "pat-fuzz"
api_base_url = "http://127.0.0.1:9"

[[routes]]
name = "generic"
source = "generic"
secrets = ["generic-secret"]
business_location = "AG-FUZZ"
[routes.signature]
header = "X-Orbit-Signature"
prefix = "sha512="
algorithm = "sha512"
encoding = "hex"
signed_content = "{timestamp}.{body}"
timestamp_header = "X-Orbit-Timestamp"
[routes.mapping]
event_type = "/kind"
delivery_id = "/delivery"
contact_id = "/member/uid"
updated_at = "/occurred"
tenant = "/workspace"
event_types = { "member.joined" = "upsert", "member.changed" = "upsert" }
[routes.mapping.fields]
first_name = "/member/profile/given"
last_name = "/member/profile/family"
email = "/member/profile/emails"
phone = "/member/profile/mobile"
address_line1 = "/member/postal/street"
city = "/member/postal/town"
country = "/member/postal/country"
tags = "/member/labels"
consent = "/member/marketing"
"#;

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let config = Config::from_sources(Some(ROUTES), Some("fuzz routes"), &BTreeMap::new())
        .unwrap_or_else(|e| panic!("fuzz config: {e}"));
    Registry::from_config(&config).unwrap_or_else(|e| panic!("fuzz routes: {e:?}"))
});

/// A fixed clock, so signed timestamps are always within tolerance and runs repeat.
fn now() -> (SystemTime, u64) {
    let secs = 1_764_000_000;
    (SystemTime::UNIX_EPOCH + Duration::from_secs(secs), secs)
}

fn mac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    parts.iter().for_each(|p| mac.update(p));
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// The headers a correct sender of `route` would attach to `body`.
fn signed(route: &str, body: &[u8], extra: &str) -> HeaderMap {
    let (_, secs) = now();
    let t = secs.to_string();
    let mut h = HeaderMap::new();
    match route {
        "shopify" => {
            put(&mut h, "x-shopify-hmac-sha256", &BASE64.encode(mac256(b"shopify-secret", &[body])));
            put(&mut h, "x-shopify-topic", if extra.is_empty() { "customers/create" } else { extra });
            put(&mut h, "x-shopify-webhook-id", "fuzz-1");
            put(&mut h, "x-shopify-shop-domain", "fuzz.myshopify.com");
        }
        "square" => put(
            &mut h,
            "x-square-hmacsha256-signature",
            &BASE64.encode(mac256(
                b"square-key",
                &[b"https://bridge.example.com/webhooks/square", body],
            )),
        ),
        "woocommerce" => {
            put(&mut h, "x-wc-webhook-signature", &BASE64.encode(mac256(b"woo-secret", &[body])));
            put(&mut h, "x-wc-webhook-topic", if extra.is_empty() { "customer.created" } else { extra });
            put(&mut h, "x-wc-webhook-resource", "customer");
            put(&mut h, "x-wc-webhook-source", "https://shop.example.com/");
        }
        "stripe" => put(
            &mut h,
            "stripe-signature",
            &format!("t={t},v1={}", hex(&mac256(b"whsec_stripe", &[t.as_bytes(), b".", body]))),
        ),
        "standard" => {
            let key = BASE64.decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").expect("key");
            let id = "msg_fuzz";
            put(&mut h, "webhook-id", id);
            put(&mut h, "webhook-timestamp", &t);
            put(
                &mut h,
                "webhook-signature",
                &format!(
                    "v1,{}",
                    BASE64.encode(mac256(&key, &[id.as_bytes(), b".", t.as_bytes(), b".", body]))
                ),
            );
        }
        "pipedrive" => put(
            &mut h,
            "authorization",
            &format!("Basic {}", BASE64.encode("bridge:correct-horse")),
        ),
        "hubspot" => {
            let ms = (secs * 1000).to_string();
            let sig = mac256(
                b"hubspot-secret",
                &[b"POST", b"https://bridge.example.com/webhooks/hub", body, ms.as_bytes()],
            );
            put(&mut h, "x-hubspot-signature-v3", &BASE64.encode(sig));
            put(&mut h, "x-hubspot-request-timestamp", &ms);
            put(&mut h, "x-hubspot-signature-version", "v3");
        }
        "generic" => {
            let mut mac = Hmac::<Sha512>::new_from_slice(b"generic-secret").expect("key");
            mac.update(t.as_bytes());
            mac.update(b".");
            mac.update(body);
            put(&mut h, "x-orbit-signature", &format!("sha512={}", hex(&mac.finalize().into_bytes())));
            put(&mut h, "x-orbit-timestamp", &t);
        }
        _ => {}
    }
    h
}

/// The signature header each source reads, for the unsigned pass.
fn signature_header(route: &str) -> &'static str {
    match route {
        "shopify" => "x-shopify-hmac-sha256",
        "square" => "x-square-hmacsha256-signature",
        "woocommerce" => "x-wc-webhook-signature",
        "stripe" => "stripe-signature",
        "standard" => "webhook-signature",
        "pipedrive" => "authorization",
        "hubspot" => "x-hubspot-signature-v3",
        _ => "x-orbit-signature",
    }
}

/// Runs one fuzz input through route `name`.
pub fn exercise(name: &str, data: &[u8]) {
    let Some(route) = REGISTRY.get(name) else {
        panic!("fuzz route {name} is not configured");
    };
    let (now, _) = now();
    // Layout: [n][n bytes of header text][body]. The header text is both the forged
    // signature of the first pass and the topic of the second.
    let n = data.first().map_or(0, |&n| usize::from(n % 64));
    let header = data.get(1..1 + n).map(String::from_utf8_lossy).unwrap_or_default();
    let body = Bytes::copy_from_slice(data.get(1 + n..).unwrap_or_default());

    // Pass 1: whatever signature the input carries; must be refused or accepted, never panic.
    let mut forged = signed(name, &body, "");
    if let Ok(value) = HeaderValue::from_str(&header) {
        forged.insert(HeaderName::from_static(signature_header(name)), value);
    }
    let _ = route.source.verify(&forged, body.clone(), now);

    // Pass 2: correctly signed, so the body reaches every parser.
    let topic = if header.chars().all(|c| c.is_ascii_graphic()) { header.as_ref() } else { "" };
    let headers = signed(name, &body, topic);
    let Ok(verified) = route.source.verify(&headers, body, now) else {
        panic!("{name}: a correctly signed body was refused");
    };
    let _ = route.source.privacy(&headers, &verified);
    for envelope in route.source.envelopes(&headers, &verified) {
        let event = StoredEvent {
            topic: &envelope.topic,
            meta: &envelope.meta,
            body: verified.body(),
        };
        if let Ok(Action::Upsert(parsed)) = route.plan(&event)
            && let Ok(customer) = transform::to_customer(&parsed.contact, &route.config.tags)
        {
            let _ = serde_json::to_vec(&CreateRequest::new("AG-FUZZ", &customer.attributes));
        }
    }
}
