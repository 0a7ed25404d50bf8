//! The harness the source fuzz targets (fuzz_targets/<source>.rs) share: one configured
//! route per source, a signer per scheme, and the whole in-process path a webhook takes,
//! in the order the bridge takes it: `verify` (http/ingest.rs), then `privacy` or
//! `envelopes` and the disposition, then the stored job as the worker reads it back,
//! `Route::plan`, the business location, `transform::to_customer` and the request bodies
//! of both Vendasta adapters (delivery/worker.rs, delivery/actions.rs). Only the I/O is left out (store, Vendasta,
//! HubSpot's CRM API); the CRM answer HubSpot jobs fetch is fuzzed as its own input.
//!
//! Input layout: `[n][n bytes of header text][body]`. The header text is used several
//! ways, each a separate request with the same body:
//! 1. as the signature header (absent when the text is empty): header parsing and the
//!    refusal paths, and WooCommerce's unsigned ping;
//! 2. as the timestamp, correctly signed over it (sources with a signed timestamp):
//!    timestamp parsing and the replay window;
//! 3. split on `|` into topic, tenant and delivery id headers of a correctly signed
//!    request, so every mutation of the body reaches the parsers.
//!
//! Nothing may panic, a correctly signed request must verify, no stored job may have a
//! blank delivery id (the dedupe key) or contact id (the link's key), and every create or
//! update body sent to Vendasta's customers API must pass Vendasta's own schema
//! (tests/support/schema.rs): a body Vendasta refuses is a contact the bridge loses.

#[path = "../../tests/support/schema.rs"]
mod schema;

use std::{
    collections::BTreeMap,
    sync::LazyLock,
    time::{Duration, SystemTime},
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use vendasta_bridge::{
    config::Config,
    sources::{
        Action, Disposition, Envelope, ParsedEvent, PartialChange, Registry, Route, StoredEvent,
        Verified, hubspot,
        signing::{self, HmacAlgorithm},
    },
    transform,
    vendasta::{
        Delivery,
        crm::CrmClient,
        model::{CreateRequest, CustomerAttributes, UpdateRequest},
    },
};

/// One route per source, configured the way a deployment would: route tags, a per-tenant
/// location next to the default one, Shopify deletes delivered, and two generic routes
/// that differ in every signature setting.
const ROUTES: &str = r#"
[vendasta]
token = "fuzz-token"

[[routes]]
name = "shopify"
source = "shopify"
secrets = ["shopify-secret"]
business_location = "AG-FUZZ"
tags = ["shopify", " from-bridge "]
on_delete = "delete"
[routes.tenant_locations]
"Fuzz.myshopify.com" = "AG-TENANT"

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
[routes.tenant_locations]
"https://shop.example.com/" = "AG-TENANT"

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
[routes.tenant_locations]
"ws-42" = "AG-TENANT"
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

[[routes]]
name = "generic-b64"
source = "generic"
secrets = ["generic-secret"]
business_location = "AG-FUZZ"
[routes.signature]
header = "X-Orbit-Signature"
algorithm = "sha1"
encoding = "base64"
[routes.mapping]
event_type = "/kind"
delivery_id = "/delivery"
contact_id = "/member/uid"
updated_at = "/occurred"
event_types = { "member.joined" = "upsert", "member.changed" = "upsert" }
[routes.mapping.fields]
full_name = "/member/name"
email = "/member/profile/emails"
phone = "/member/profile/mobile"
"#;

/// The routes, and the CRM adapter whose body the worker sends when `vendasta.api = "crm"`.
static BRIDGE: LazyLock<(Registry, CrmClient)> = LazyLock::new(|| {
    let config = Config::from_sources(Some(ROUTES), Some("fuzz routes"), &BTreeMap::new())
        .unwrap_or_else(|e| panic!("fuzz config: {e}"));
    let registry = Registry::from_config(&config).unwrap_or_else(|e| panic!("fuzz routes: {e}"));
    let crm = CrmClient::new(&config.vendasta).unwrap_or_else(|e| panic!("fuzz crm: {e}"));
    (registry, crm)
});

/// A fixed clock, so signed timestamps are always within tolerance and runs repeat.
const NOW_SECS: u64 = 1_764_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// HMAC-SHA256; signing goes through the crate's own `signing::mac`, the helper for tools
/// that sign sample requests.
fn mac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    signing::mac(HmacAlgorithm::Sha256, key, parts)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sets a header when the value is one HTTP allows (the server would refuse the rest).
fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// The headers of a request beyond its signature, from the input's `|`-separated text.
#[derive(Default)]
struct Extra<'a> {
    topic: Option<&'a str>,
    tenant: Option<&'a str>,
    delivery_id: Option<&'a str>,
}

impl<'a> Extra<'a> {
    /// Fields that are not visible ASCII are left at their defaults: hyper trims header
    /// values and the sources read only visible ASCII, so a real sender could not sign
    /// such a value and have it verify.
    fn from_text(text: &'a str) -> Self {
        let mut fields = text
            .split('|')
            .map(|f| Some(f).filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_graphic())));
        Self {
            topic: fields.next().flatten(),
            tenant: fields.next().flatten(),
            delivery_id: fields.next().flatten(),
        }
    }
}

/// The headers a correct sender of `route` would attach to `body`, signed at `t` (the
/// text of a Unix-seconds timestamp; milliseconds are appended for HubSpot).
fn signed(route: &str, body: &[u8], t: &str, extra: &Extra<'_>) -> HeaderMap {
    let mut h = HeaderMap::new();
    match route {
        "shopify" => {
            put(
                &mut h,
                "x-shopify-hmac-sha256",
                &BASE64.encode(mac256(b"shopify-secret", &[body])),
            );
            put(
                &mut h,
                "x-shopify-topic",
                extra.topic.unwrap_or("customers/create"),
            );
            put(
                &mut h,
                "x-shopify-webhook-id",
                extra.delivery_id.unwrap_or("fuzz-1"),
            );
            put(
                &mut h,
                "x-shopify-shop-domain",
                extra.tenant.unwrap_or("fuzz.myshopify.com"),
            );
            put(&mut h, "x-shopify-api-version", "2025-01");
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
            put(
                &mut h,
                "x-wc-webhook-signature",
                &BASE64.encode(mac256(b"woo-secret", &[body])),
            );
            put(
                &mut h,
                "x-wc-webhook-topic",
                extra.topic.unwrap_or("customer.created"),
            );
            put(&mut h, "x-wc-webhook-resource", "customer");
            put(
                &mut h,
                "x-wc-webhook-source",
                extra.tenant.unwrap_or("https://shop.example.com/"),
            );
            put(
                &mut h,
                "x-wc-webhook-delivery-id",
                extra.delivery_id.unwrap_or("7"),
            );
        }
        "stripe" => put(
            &mut h,
            "stripe-signature",
            &format!(
                "t={t},v1={}",
                hex(&mac256(b"whsec_stripe", &[t.as_bytes(), b".", body]))
            ),
        ),
        "standard" => {
            let key = BASE64
                .decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD")
                .expect("key");
            let id = extra.delivery_id.unwrap_or("msg_fuzz");
            put(&mut h, "webhook-id", id);
            put(&mut h, "webhook-timestamp", t);
            put(
                &mut h,
                "webhook-signature",
                &format!(
                    "v1,{}",
                    BASE64.encode(mac256(
                        &key,
                        &[id.as_bytes(), b".", t.as_bytes(), b".", body]
                    ))
                ),
            );
        }
        "pipedrive" => put(
            &mut h,
            "authorization",
            &format!("Basic {}", BASE64.encode("bridge:correct-horse")),
        ),
        "hubspot" => {
            let ms = format!("{t}000");
            let sig = mac256(
                b"hubspot-secret",
                &[
                    b"POST",
                    b"https://bridge.example.com/webhooks/hub",
                    body,
                    ms.as_bytes(),
                ],
            );
            put(&mut h, "x-hubspot-signature-v3", &BASE64.encode(sig));
            put(&mut h, "x-hubspot-request-timestamp", &ms);
        }
        "generic" => {
            let sig = signing::mac(
                HmacAlgorithm::Sha512,
                b"generic-secret",
                &[t.as_bytes(), b".", body],
            );
            put(
                &mut h,
                "x-orbit-signature",
                &format!("sha512={}", hex(&sig)),
            );
            put(&mut h, "x-orbit-timestamp", t);
        }
        "generic-b64" => put(
            &mut h,
            "x-orbit-signature",
            &BASE64.encode(signing::mac(
                HmacAlgorithm::Sha1,
                b"generic-secret",
                &[body],
            )),
        ),
        _ => panic!("no signer for route {route}"),
    }
    h
}

/// The signature header each route reads, for the forged pass.
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

/// Whether the route signs a timestamp that `signed` takes from its `t` argument.
fn signs_a_timestamp(route: &str) -> bool {
    matches!(route, "stripe" | "standard" | "hubspot" | "generic")
}

fn route(name: &str) -> &'static Route {
    BRIDGE
        .0
        .get(name)
        .unwrap_or_else(|| panic!("fuzz route {name} is not configured"))
}

/// Splits an input into its header text and body (see the module docs).
pub fn split(data: &[u8]) -> (String, Bytes) {
    let n = data.first().map_or(0, |&n| usize::from(n));
    let text = data
        .get(1..1 + n)
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let body = Bytes::copy_from_slice(data.get(1 + n..).unwrap_or_default());
    (text.into_owned(), body)
}

/// Runs one fuzz input through route `name`.
pub fn exercise(name: &str, data: &[u8]) {
    let route = route(name);
    let (text, body) = split(data);
    let t = NOW_SECS.to_string();

    // 1. The input's text as the signature; no signature header at all when it is empty.
    let mut forged = signed(name, &body, &t, &Extra::default());
    let header = HeaderName::from_static(signature_header(name));
    match HeaderValue::from_str(&text) {
        Ok(value) if !text.is_empty() => {
            forged.insert(header, value);
        }
        _ => {
            forged.remove(header);
        }
    }
    if name == "hubspot" && !text.is_empty() {
        // Without a v3 signature HubSpot's legacy v1/v2 header is read instead.
        forged.remove("x-hubspot-signature-v3");
        put(&mut forged, "x-hubspot-signature", &text);
        put(
            &mut forged,
            "x-hubspot-signature-version",
            if text.len() % 2 == 0 { "v1" } else { "v2" },
        );
    }
    webhook(route, &forged, body.clone());

    // 2. The input's text as a correctly signed timestamp.
    if signs_a_timestamp(name) && !text.is_empty() {
        let stamped = signed(name, &body, &text, &Extra::default());
        webhook(route, &stamped, body.clone());
    }

    // 3. Correctly signed, with the input's topic, tenant and delivery id.
    let headers = signed(name, &body, &t, &Extra::from_text(&text));
    if !webhook(route, &headers, body.clone()) {
        panic!("{name}: a correctly signed request was refused");
    }

    // The worker fetches each HubSpot contact from the CRM API; the body stands in for
    // HubSpot's answer.
    if name == "hubspot" {
        crm_answer(route, &body);
    }
}

/// One request as http/ingest.rs handles it; false when the signature check refused it.
fn webhook(route: &Route, headers: &HeaderMap, body: Bytes) -> bool {
    let source = &route.source;
    let verified = match source.verify(headers, body, now()) {
        Ok(verified) => verified,
        Err(error) => {
            // The refusal's message and code go into the response body and the logs.
            let _ = (error.to_string(), error.code());
            return false;
        }
    };
    ingest(route, headers, &verified);
    true
}

/// What ingest does with a verified request: a privacy request is carried out at once
/// (store I/O, left out), every other event is stored as a job unless it is ignored.
fn ingest(route: &Route, headers: &HeaderMap, verified: &Verified) {
    let source = &route.source;
    if let Some(request) = source.privacy(headers, verified) {
        let _topic = source.envelope(headers, verified).topic;
        if let Err(error) = request {
            let _ = error.to_string();
        }
        return;
    }
    for envelope in source.envelopes(headers, verified) {
        // The dedupe key and the contact link's key: a blank delivery id would make
        // unrelated deliveries duplicates, a blank contact id would link unrelated
        // contacts to one Vendasta customer.
        assert!(
            !envelope.delivery_id.trim().is_empty(),
            "{}: an envelope with a blank delivery id",
            route.config.name
        );
        assert!(
            envelope
                .contact_id
                .as_deref()
                .is_none_or(|id| !id.trim().is_empty()),
            "{}: an envelope with a blank contact id",
            route.config.name
        );
        if envelope.disposition == Disposition::Deliver {
            work(route, &envelope, verified.body());
        }
    }
}

/// What the worker does with the job stored for `envelope`.
fn work(route: &Route, envelope: &Envelope, payload: &[u8]) {
    let event = StoredEvent {
        topic: &envelope.topic,
        meta: &envelope.meta,
        body: payload,
    };
    let contact_id = envelope.contact_id.as_deref();
    match route.plan(&event) {
        Err(error) => {
            // Parked as dead with this reason.
            let _ = error.to_string();
        }
        Ok(Action::Upsert(parsed)) => upsert(route, contact_id, parsed),
        // The fetch is I/O; its answer is fuzzed by `crm_answer`.
        Ok(Action::Fetch { .. }) => {}
        Ok(Action::Partial { change, tenant }) => {
            let Some(location) = route.config.location_for(tenant.as_deref()) else {
                return;
            };
            let mut attributes = CustomerAttributes::default();
            match change {
                PartialChange::Consent(consent) => attributes.permission_to_contact = consent,
                PartialChange::TagsAdded(tags) | PartialChange::TagsRemoved(tags) => {
                    attributes.tags = transform::to_tags(&tags, &route.config.tags);
                }
            }
            // Sent only to a linked contact, and only when something is left to change.
            if attributes.permission_to_contact.is_some() || !attributes.tags.is_empty() {
                send(
                    route,
                    contact_id,
                    location,
                    Some("AG-FUZZ:CUSTOMER-1"),
                    &attributes,
                );
            }
        }
        Ok(Action::Delete { tenant }) => {
            let _ = route.config.location_for(tenant.as_deref());
        }
    }
}

/// HubSpot's CRM answer for a fetched contact, as the worker maps it.
fn crm_answer(route: &Route, body: &[u8]) {
    match hubspot::contact_from_crm(body) {
        Ok(contact) => upsert(
            route,
            Some("1"),
            ParsedEvent {
                contact,
                tenant: Some("99".into()),
            },
        ),
        Err(error) => {
            let _ = error.to_string();
        }
    }
}

/// The create-or-update of a whole contact (delivery/worker.rs).
fn upsert(route: &Route, contact_id: Option<&str>, parsed: ParsedEvent) {
    let Some(location) = route.config.location_for(parsed.tenant.as_deref()) else {
        return;
    };
    match transform::to_customer(&parsed.contact, &route.config.tags) {
        Ok(customer) => {
            send(route, contact_id, location, None, &customer.attributes);
            send(
                route,
                contact_id,
                location,
                Some("AG-FUZZ:CUSTOMER-1"),
                &customer.attributes,
            );
        }
        Err(error) => {
            let _ = (error.code(), error.to_string());
        }
    }
}

/// The bodies both upstream adapters would send. The customers API's must pass
/// Vendasta's schema: a refused body is a dead job, so a lost contact.
fn send(
    route: &Route,
    contact_id: Option<&str>,
    location: &str,
    linked_id: Option<&str>,
    attributes: &CustomerAttributes,
) {
    let to_json = |body: serde_json::Result<serde_json::Value>| {
        body.unwrap_or_else(|e| {
            panic!(
                "{}: the request body does not serialise: {e}",
                route.config.name
            )
        })
    };
    let check = match linked_id {
        None => schema::check_create(&to_json(serde_json::to_value(CreateRequest::new(
            location, attributes,
        )))),
        Some(id) => schema::check_update(&to_json(serde_json::to_value(UpdateRequest::new(
            id, attributes,
        )))),
    };
    if let Err(violations) = check {
        panic!(
            "{}: Vendasta's schema refuses the {} body: {violations:?}\nattributes: {attributes:?}",
            route.config.name,
            if linked_id.is_some() {
                "update"
            } else {
                "create"
            },
        );
    }
    let delivery = Delivery {
        route: &route.config.name,
        source_contact_id: contact_id,
        business_location: location,
        linked_id,
        attributes,
    };
    to_json(serde_json::to_value(BRIDGE.1.upsert_request(&delivery)));
}
