//! Webhook sources: one file per provider behind the [`Source`] trait, and the registry
//! of configured routes.
//!
//! A source owns three things about its provider and nothing else: how a request is
//! signed ([`Source::verify`], over the raw bytes), what the envelope says (delivery id for
//! dedupe, topic, contact id, `updated_at`; [`Source::envelope`]), and how a stored payload
//! becomes a neutral [`Contact`] ([`Source::parse`], run later by the worker so that a
//! payload the bridge cannot read is parked, never refused). No I/O happens here.

pub mod backfill;
pub mod generic;
pub mod hubspot;
pub mod mapping;
pub mod pipedrive;
pub mod shopify;
pub mod signing;
pub mod square;
pub mod standard;
pub mod stripe;
pub mod woocommerce;

use std::{collections::BTreeMap, fmt, sync::Arc, time::SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::{
    config::{Config, RouteConfig},
    contact::Contact,
};

/// Proof that a body passed its provider's signature check; only sources construct it.
#[derive(Debug, Clone)]
pub struct Verified(Bytes);

impl Verified {
    pub fn body(&self) -> &Bytes {
        &self.0
    }
    pub fn into_body(self) -> Bytes {
        self.0
    }
}

/// Why a request was refused as unsigned. Messages name the header and the fix, and
/// never contain a secret or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "the {header} header is missing: {provider} signs every webhook with it, so this request did not come from {provider} (or a proxy removed the header)"
    )]
    MissingHeader {
        header: &'static str,
        provider: &'static str,
    },
    /// The header is there but its value is not visible ASCII, so it cannot be read as
    /// text at all; told apart from a missing header so nobody looks for a proxy that
    /// strips it.
    #[error(
        "the {header} header is present but is not plain ASCII text: {provider} sends it as ASCII, so something between {provider} and the bridge re-encoded it (or the request did not come from {provider})"
    )]
    NotText {
        header: &'static str,
        provider: &'static str,
    },
    #[error(
        "the {header} header is not valid {encoding}: expected the {encoding} HMAC that {provider} sends"
    )]
    Malformed {
        header: &'static str,
        encoding: &'static str,
        provider: &'static str,
    },
    #[error(
        "the {header} signature does not match any of this route's secrets: check that routes[].secrets holds the webhook signing secret shown by {provider}, and that nothing rewrote the body"
    )]
    Mismatch {
        header: &'static str,
        provider: &'static str,
    },
    #[error(
        "the {header} timestamp is {age_seconds} s old, more than this route's timestamp_tolerance_seconds ({tolerance_seconds}): the request was replayed or delayed; if the clocks disagree, fix this host's time (NTP) or raise routes[].timestamp_tolerance_seconds"
    )]
    StaleTimestamp {
        header: &'static str,
        age_seconds: u64,
        tolerance_seconds: u64,
    },
    #[error(
        "the {header} timestamp is {ahead_seconds} s in the future, more than this route's timestamp_tolerance_seconds ({tolerance_seconds}): fix the sender's or this host's clock (NTP)"
    )]
    FutureTimestamp {
        header: &'static str,
        ahead_seconds: u64,
        tolerance_seconds: u64,
    },
    #[error(
        "the Authorization header's Basic credentials match none of this route's routes[].secrets `user:password` pairs: give {provider} the same user and password as the route"
    )]
    BadCredentials { provider: &'static str },
}

impl SignatureError {
    /// Bounded code for the response body and logs.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader { .. } => "missing_signature",
            SignatureError::Malformed { .. } | SignatureError::NotText { .. } => {
                "malformed_signature"
            }
            SignatureError::Mismatch { .. } => "signature_mismatch",
            SignatureError::StaleTimestamp { .. } => "stale_timestamp",
            SignatureError::FutureTimestamp { .. } => "future_timestamp",
            SignatureError::BadCredentials { .. } => "bad_credentials",
        }
    }
}

/// What a verified request is about, read at ingest time (cheaply, never failing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The provider's event name (`customers/create`).
    pub topic: String,
    /// Whether the event is queued for delivery or acknowledged and dropped.
    pub disposition: Disposition,
    /// Dedupe key: the provider's delivery id, or a hash of the body when it sends none.
    pub delivery_id: String,
    /// The provider's id of the contact, exact (Shopify ids exceed 2^53); `None` when the
    /// body cannot be read (the worker then parks the job with the reason).
    pub contact_id: Option<String>,
    /// When the provider last changed the contact, in Unix milliseconds; orders updates.
    pub updated_at: Option<i64>,
    /// Headers the worker needs later (shop domain, API version), kept with the job.
    pub meta: BTreeMap<String, String>,
}

/// What ingest does with a verified event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A contact event: store it and deliver it.
    Deliver,
    /// A topic the bridge does not handle: acknowledge, store nothing.
    Ignore,
}

/// A stored event as the worker reads it back.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    pub topic: &'a str,
    pub meta: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
}

/// A parsed contact event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEvent {
    pub contact: Contact,
    /// The provider account the event came from (a Shopify shop domain), for
    /// per-shop business locations.
    pub tenant: Option<String>,
}

/// What the worker does with a stored event ([`Source::plan`]).
// One value per job, moved once: boxing the contact would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the contact, or update it when it is linked.
    Upsert(ParsedEvent),
    /// The payload only names the contact: fetch it from the provider's API (the worker
    /// does the I/O), then create or update it.
    Fetch {
        contact_id: String,
        tenant: Option<String>,
    },
    /// Change some attributes of a linked contact and leave the rest alone; an unlinked
    /// contact waits in the queue until its create lands.
    Partial {
        change: PartialChange,
        tenant: Option<String>,
    },
    /// The contact was deleted at the provider: delete the linked customer upstream.
    Delete { tenant: Option<String> },
}

/// The attribute a partial update touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartialChange {
    /// Tags added to the contact (only the added ones; the worker merges).
    TagsAdded(Vec<String>),
    /// Tags removed from the contact.
    TagsRemoved(Vec<String>),
    /// Marketing consent; `None` when the event states no consent either way.
    Consent(Option<bool>),
}

/// A privacy request a provider requires the bridge to carry out before it answers
/// (Shopify's mandatory compliance webhooks). Handled at ingest, never queued: its
/// payload holds the very personal data it asks to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivacyRequest {
    /// Delete every stored payload and link of these contacts.
    RedactContacts {
        tenant: Option<String>,
        contact_ids: Vec<String>,
    },
    /// Delete every stored payload and link of one tenant (a shop).
    RedactTenant { tenant: String },
    /// The merchant asked for a customer's data: logged (ids only) and acknowledged.
    DataRequest {
        tenant: Option<String>,
        contact_ids: Vec<String>,
        request_id: Option<String>,
    },
}

/// Why a stored payload cannot be turned into a contact. Messages never quote payload
/// values (they may be emails or phone numbers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not valid JSON ({0}); fix the sender, then replay the job")]
    NotJson(String),
    #[error(
        "the body does not have the shape of a {provider} customer ({detail}); replay the job after a fix"
    )]
    Shape {
        provider: &'static str,
        detail: String,
    },
    #[error("the webhook has no topic header ({header}), so the bridge cannot tell what it is")]
    NoTopic { header: &'static str },
    #[error("topic `{0}` carries no contact the bridge can deliver")]
    UnsupportedTopic(String),
    #[error(
        "the privacy request of topic `{topic}` cannot be read ({detail}); nothing was deleted, so the provider should retry after a fix"
    )]
    Privacy { topic: String, detail: String },
}

impl PayloadError {
    /// Describes a serde_json error by position only: its message can quote the value.
    pub fn from_json(error: &serde_json::Error, provider: &'static str) -> Self {
        let at = format!("line {} column {}", error.line(), error.column());
        match error.classify() {
            serde_json::error::Category::Data => PayloadError::Shape {
                provider,
                detail: format!("a field has an unexpected type at {at}"),
            },
            _ => PayloadError::NotJson(format!("syntax error at {at}")),
        }
    }
}

/// A webhook provider.
pub trait Source: Send + Sync + fmt::Debug {
    /// The `source` name used in config (`shopify`).
    fn kind(&self) -> &'static str;
    /// Checks the request's signature over the raw body, in constant time, against every
    /// configured secret.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: Bytes,
        now: SystemTime,
    ) -> Result<Verified, SignatureError>;
    /// Reads the envelope of a verified request. Never fails: what it cannot read is left
    /// `None` and the worker reports it.
    fn envelope(&self, headers: &HeaderMap, body: &Verified) -> Envelope;
    /// Turns a stored payload into a contact.
    fn parse(&self, event: &StoredEvent<'_>) -> Result<ParsedEvent, PayloadError>;
    /// Reads every event of a verified request, one job each. Most providers send one
    /// event per request; batching providers (HubSpot) override this, and ingest stores
    /// all of a request's jobs in one durable commit.
    fn envelopes(&self, headers: &HeaderMap, body: &Verified) -> Vec<Envelope> {
        vec![self.envelope(headers, body)]
    }
    /// Decides what the worker does with a stored event. Most sources carry the whole
    /// contact, so the default parses it for a create-or-update.
    fn plan(&self, event: &StoredEvent<'_>) -> Result<Action, PayloadError> {
        self.parse(event).map(Action::Upsert)
    }
    /// A privacy request to carry out at ingest, before answering. `None` for ordinary
    /// events (the default).
    fn privacy(
        &self,
        _headers: &HeaderMap,
        _body: &Verified,
    ) -> Option<Result<PrivacyRequest, PayloadError>> {
        None
    }
}

/// Builds the source a route names. Config validation has already checked the name and
/// the keys each source needs; `None` means one of them is missing.
pub fn build(route: &RouteConfig) -> Option<Arc<dyn Source>> {
    match route.source.as_str() {
        "shopify" => Some(Arc::new(shopify::Shopify::from_route(route))),
        "hubspot" => Some(Arc::new(hubspot::HubSpot::from_route(route))),
        "square" => Some(Arc::new(square::Square::new(
            &route.secrets,
            route.notification_url.as_deref()?,
        ))),
        "woocommerce" => Some(Arc::new(woocommerce::WooCommerce::new(&route.secrets))),
        "stripe" => Some(Arc::new(stripe::Stripe::new(
            &route.secrets,
            route.timestamp_tolerance_seconds,
        ))),
        "standard" => Some(Arc::new(standard::Standard::new(
            &route.secrets,
            route.timestamp_tolerance_seconds,
            route.mapping.clone()?,
        ))),
        "pipedrive" => Some(Arc::new(pipedrive::Pipedrive::new(&route.secrets))),
        "generic" => Some(Arc::new(generic::Generic::new(
            &route.secrets,
            route.timestamp_tolerance_seconds,
            route.signature.clone()?,
            route.mapping.clone()?,
        ))),
        _ => None,
    }
}

/// A configured route with its source.
#[derive(Debug, Clone)]
pub struct Route {
    pub config: RouteConfig,
    pub source: Arc<dyn Source>,
}

impl Route {
    /// Decides what the worker does with a stored job: backfilled jobs carry the bridge's
    /// own record (see [`backfill`]) and are always a create-or-update; everything else is
    /// planned by the route's provider.
    pub fn plan(&self, event: &StoredEvent<'_>) -> Result<Action, PayloadError> {
        if event.topic == backfill::TOPIC {
            backfill::parse(event).map(Action::Upsert)
        } else {
            self.source.plan(event)
        }
    }
}

/// Every configured route by name; shared by ingest and the worker.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    routes: BTreeMap<String, Route>,
}

impl Registry {
    /// Builds every route. Returns the names of routes whose source is unknown (config
    /// validation normally catches that first).
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let mut routes = BTreeMap::new();
        for route in &config.routes {
            let source = build(route).ok_or_else(|| {
                format!(
                    "routes: `{}` names unknown source `{}` or lacks a key it needs (run check-config)",
                    route.name, route.source
                )
            })?;
            routes.insert(
                route.name.clone(),
                Route {
                    config: route.clone(),
                    source,
                },
            );
        }
        Ok(Self { routes })
    }

    pub fn get(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }
}

/// A dedupe key for a provider that sent no delivery id: identical bodies are the same
/// delivery, which is exactly what a provider's retry of it looks like.
pub fn body_digest_id(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut id = String::with_capacity(7 + 64);
    id.push_str("sha256:");
    for byte in digest {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// An id read from a payload, or `None` when it is blank. A blank delivery id would make
/// unrelated deliveries duplicates of each other (dedupe), and a blank contact id would
/// link unrelated contacts to one Vendasta customer, so blank is treated as absent.
pub fn non_blank(id: Option<String>) -> Option<String> {
    id.filter(|id| !id.trim().is_empty())
}

/// Parses an RFC 3339 timestamp into Unix milliseconds.
pub fn rfc3339_millis(value: &str) -> Option<i64> {
    let parsed =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The first value of `name` as text, if it is valid visible ASCII.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// Why a required header `name` (shown as `display`) yielded no value through [`header`]:
/// present but not visible ASCII, or missing (or blank).
pub fn unreadable_header(
    headers: &HeaderMap,
    name: &str,
    display: &'static str,
    provider: &'static str,
) -> SignatureError {
    match headers.get(name) {
        Some(value) if value.to_str().is_err() => SignatureError::NotText {
            header: display,
            provider,
        },
        _ => SignatureError::MissingHeader {
            header: display,
            provider,
        },
    }
}
