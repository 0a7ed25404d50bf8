//! HTTP client for Vendasta's customers API (`vendasta.customers_url`).
//!
//! Owns the wire: it builds every request (JSON:API media type, bearer token), sends it
//! with connect and request timeouts, checks every status and turns whatever comes back
//! (a status, a body, a transport error) into an [`Outcome`]. It never retries, sleeps or
//! stores anything: `delivery` decides what an outcome means for a job. The reasons it
//! returns are short and bounded, never contain the token or the request body, and are
//! scrubbed of e-mail addresses and phone numbers ([`redact_pii`]), because they are
//! logged and stored.

use std::{
    error::Error as _,
    io,
    time::{Duration, SystemTime},
};

use reqwest::{
    Method, StatusCode, Url,
    header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER},
};
use serde_json::Value;

use crate::{
    config::{Secret, VendastaConfig},
    vendasta::{
        Outcome,
        model::{CreateRequest, CustomerAttributes, UpdateRequest},
    },
};

/// JSON:API media type, sent as both `Content-Type` and `Accept`.
const JSON_API: &str = "application/vnd.api+json";
/// `User-Agent` of every request, so Vendasta can tell the bridge apart.
const USER_AGENT: &str = concat!(env!("CARGO_PKG_NAME"), "/", env!("CARGO_PKG_VERSION"));
/// Bytes of a response body read at most; the rest is not needed to classify it.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Characters of upstream text considered before redaction (redacting before cutting to
/// [`MAX_TEXT_CHARS`] means a cut can never leave half an e-mail or phone number behind).
const MAX_SCAN_CHARS: usize = 2_000;
/// Characters of Vendasta's error text kept in a reason.
const MAX_TEXT_CHARS: usize = 500;
/// JSON:API errors described in a reason; the rest are counted.
const MAX_ERRORS: usize = 3;
/// What replaces an e-mail address or a phone number in a reason.
const REDACTED: &str = "[redacted]";

/// Failure to set up the HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// reqwest refused the builder's settings (in practice: the TLS backend failed to load).
    #[error("could not build the http client")]
    Build(#[source] reqwest::Error),
}

impl ClientError {
    /// Bounded code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ClientError::Build(_) => "http_client_build",
        }
    }
}

/// Builds the one kind of reqwest client the bridge uses: connect and request timeouts of
/// `timeout`, no redirects (a redirected POST would silently turn into a GET), and a
/// `User-Agent` naming the bridge.
///
/// The only place allowed to build a reqwest client (`clippy.toml` disallows
/// `reqwest::Client::new`, which has no timeouts and panics on failure).
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(ClientError::Build)
}

/// Talks to `vendasta.customers_url`; the bearer token is passed with each call (it comes
/// from [`crate::vendasta::auth`]).
///
/// Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    customers_url: String,
    /// The request budget, for the "timed out after …" reason.
    timeout: Duration,
}

/// Which call a response answers; the same status can mean different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Create,
    Update,
    Delete,
}

impl Operation {
    fn method(self) -> Method {
        match self {
            Operation::Create => Method::POST,
            Operation::Update => Method::PATCH,
            Operation::Delete => Method::DELETE,
        }
    }
}

/// What came back for one request, before classification.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) retry_after: Option<Duration>,
    /// The body (at most [`MAX_BODY_BYTES`]), or why it could not be read.
    pub(super) body: Result<Vec<u8>, String>,
}

impl Client {
    /// Prepares the client; does no I/O. Fails only if the TLS backend cannot load, which
    /// the bridge reports at startup rather than retrying every delivery forever.
    pub fn new(config: &VendastaConfig) -> Result<Self, ClientError> {
        let timeout = config.request_timeout();
        Ok(Self {
            http: http_client(timeout)?,
            customers_url: config.customers_url.clone(),
            timeout,
        })
    }

    /// `POST {customers_url}`: creates a customer in `business_location` (`AG-…`).
    ///
    /// 200/201 → `Created` (id from `data.id` or a bare `id`, prefixed with the location if
    /// Vendasta left that out), 409 → `Conflict`, transport errors, 408, 429 and 5xx except
    /// 501 → `Retry`, anything else → `Reject` with Vendasta's error text.
    pub async fn create(
        &self,
        token: &Secret,
        business_location: &str,
        attributes: &CustomerAttributes,
    ) -> Outcome {
        let body = match json_body(&CreateRequest::new(business_location, attributes)) {
            Ok(body) => body,
            Err(outcome) => return outcome,
        };
        let url = self.collection_url();
        self.exchange(token, Operation::Create, url, body, business_location)
            .await
    }

    /// `PATCH {customers_url}/{customer_id}`: attributes left out keep their value.
    ///
    /// The id (`AG-…:CUSTOMER-…`) goes into the path with its `:` unencoded. 2xx →
    /// `Updated`, 404 → `NotFound`, 409 → `Conflict` (another customer already has the
    /// e-mail or phone), the rest as for [`Client::create`].
    pub async fn update(
        &self,
        token: &Secret,
        business_location: &str,
        customer_id: &str,
        attributes: &CustomerAttributes,
    ) -> Outcome {
        let body = match json_body(&UpdateRequest::new(customer_id, attributes)) {
            Ok(body) => body,
            Err(outcome) => return outcome,
        };
        let url = self.member_url(customer_id, "update");
        self.exchange(token, Operation::Update, url, body, business_location)
            .await
    }

    /// `DELETE {customers_url}/{customer_id}`. 2xx → `Updated` (deleted), 404 →
    /// `NotFound` (already gone: just as done), the rest as for [`Client::create`].
    pub async fn delete(
        &self,
        token: &Secret,
        business_location: &str,
        customer_id: &str,
    ) -> Outcome {
        let url = self.member_url(customer_id, "delete");
        self.exchange(token, Operation::Delete, url, Vec::new(), business_location)
            .await
    }

    /// Sends one request of `operation` and classifies the answer.
    async fn exchange(
        &self,
        token: &Secret,
        operation: Operation,
        url: Result<Url, Outcome>,
        body: Vec<u8>,
        business_location: &str,
    ) -> Outcome {
        let url = match url {
            Ok(url) => url,
            Err(outcome) => return outcome,
        };
        match self.send(token, operation.method(), url, body).await {
            Ok(reply) => classify(operation, reply, business_location),
            Err(outcome) => outcome,
        }
    }

    fn collection_url(&self) -> Result<Url, Outcome> {
        Url::parse(&self.customers_url).map_err(|_| bad_url())
    }

    /// `{customers_url}/{id}`. The id is one path segment: `/`, `?`, `#`, `%` and spaces are
    /// percent-encoded, `:` is not (it is legal in a path and Vendasta's ids contain one).
    fn member_url(&self, customer_id: &str, verb: &str) -> Result<Url, Outcome> {
        if customer_id.trim().is_empty() {
            return Err(Outcome::Reject {
                reason: format!("no vendasta customer id to {verb}"),
            });
        }
        let mut url = self.collection_url()?;
        url.path_segments_mut()
            .map_err(|()| bad_url())?
            .pop_if_empty()
            .push(customer_id);
        Ok(url)
    }

    /// Sends one request; `Err` is the outcome of a request that got no status back.
    async fn send(
        &self,
        token: &Secret,
        method: Method,
        url: Url,
        body: Vec<u8>,
    ) -> Result<Reply, Outcome> {
        send(&self.http, self.timeout, token, method, url, JSON_API, body).await
    }
}

/// Sends one request with `content_type` as both `Content-Type` and `Accept`; `Err` is the
/// outcome of a request that got no status back. Shared by both upstream adapters.
pub(super) async fn send(
    http: &reqwest::Client,
    timeout: Duration,
    token: &Secret,
    method: Method,
    url: Url,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Reply, Outcome> {
    let started = std::time::Instant::now();
    let reply = send_untimed(
        http,
        timeout,
        token,
        method.clone(),
        url,
        content_type,
        body,
    )
    .await;
    crate::metrics::upstream_request(method_label(&method), started.elapsed());
    reply
}

/// Bounded label for the request-duration histogram.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

async fn send_untimed(
    http: &reqwest::Client,
    timeout: Duration,
    token: &Secret,
    method: Method,
    url: Url,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Reply, Outcome> {
    let response = http
        .request(method.clone(), url)
        .header(CONTENT_TYPE, content_type)
        .header(ACCEPT, content_type)
        .bearer_auth(token.expose())
        .body(body)
        .send()
        .await
        .map_err(|error| Outcome::Retry {
            reason: transport_reason(&error, timeout),
            retry_after: None,
        })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()));
    let body = read_body(response)
        .await
        .map_err(|error| transport_reason(&error, timeout));
    tracing::debug!(%method, status = status.as_u16(), "Vendasta answered.");
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

/// A short reason for a request that failed below HTTP; never the URL or the body.
fn transport_reason(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        format!("timed out after {}", human(timeout))
    } else if error.is_connect() {
        match io_error_kind(error) {
            Some(kind) => format!("connection failed ({kind})"),
            None => "connection failed".into(),
        }
    } else if error.is_builder() {
        "the request could not be built (check the vendasta url and token settings)".into()
    } else if error.is_body() || error.is_decode() {
        "reading the response failed".into()
    } else {
        "the request failed".into()
    }
}

fn bad_url() -> Outcome {
    Outcome::Retry {
        reason: "vendasta.customers_url is not a usable http(s) url".into(),
        retry_after: None,
    }
}

/// The request body as JSON; a failure (which serde_json does not produce for these
/// types) is a rejection rather than a panic.
fn json_body<T: serde::Serialize>(request: &T) -> Result<Vec<u8>, Outcome> {
    serde_json::to_vec(request).map_err(|_| Outcome::Reject {
        reason: "the customer could not be serialised as json".into(),
    })
}

/// The kind of the I/O error under a connect failure, when it says something useful.
fn io_error_kind(error: &reqwest::Error) -> Option<io::ErrorKind> {
    let mut source = error.source();
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return match io.kind() {
                kind @ (io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::AddrNotAvailable) => Some(kind),
                _ => None,
            };
        }
        source = current.source();
    }
    None
}

/// Reads at most [`MAX_BODY_BYTES`] of the body.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

/// Turns a response into an [`Outcome`]. Every status is looked at; only a 2xx succeeds.
fn classify(operation: Operation, reply: Reply, business_location: &str) -> Outcome {
    let Reply {
        status,
        retry_after,
        body,
    } = reply;
    let code = status.as_u16();
    if status.is_success() {
        return match operation {
            Operation::Update | Operation::Delete => Outcome::Updated,
            Operation::Create => match body {
                Err(reason) => Outcome::Retry {
                    reason: format!("vendasta answered {code} but {reason}"),
                    retry_after,
                },
                Ok(body) => match created_id(&body) {
                    Some(id) => Outcome::Created {
                        customer_id: qualify(&id, business_location),
                    },
                    None => Outcome::Reject {
                        reason: format!(
                            "vendasta answered {code} without a customer id (no data.id or id \
                             in the body)"
                        ),
                    },
                },
            },
        };
    }
    match code {
        409 => match body {
            Err(reason) => Outcome::Retry {
                reason: format!("vendasta answered 409 but {reason}"),
                retry_after,
            },
            Ok(body) => match conflicting_id(&body) {
                Some(id) => Outcome::Conflict {
                    existing_id: qualify(&id, business_location),
                },
                None => Outcome::Reject {
                    reason: with_text(
                        "vendasta answered 409 without a conflicting customer id",
                        &Ok(body),
                    ),
                },
            },
        },
        404 if operation != Operation::Create => Outcome::NotFound,
        _ => classify_failure(code, retry_after, body),
    }
}

/// The statuses both adapters read the same way: 401 (the token was refused), 408, 429
/// and 5xx except 501 (retry), anything else (reject, with Vendasta's text).
pub(super) fn classify_failure(
    code: u16,
    retry_after: Option<Duration>,
    body: Result<Vec<u8>, String>,
) -> Outcome {
    match code {
        401 => Outcome::Unauthorized {
            reason: with_text("vendasta answered 401", &body),
        },
        408 | 429 => Outcome::Retry {
            reason: format!("vendasta answered {code}"),
            retry_after,
        },
        500..=599 if code != 501 => Outcome::Retry {
            reason: format!("vendasta answered {code}"),
            retry_after,
        },
        _ => Outcome::Reject {
            reason: with_text(&format!("vendasta answered {code}"), &body),
        },
    }
}

/// `prefix: <Vendasta's error text>`, or the prefix alone when there is no text.
pub(super) fn with_text(prefix: &str, body: &Result<Vec<u8>, String>) -> String {
    match body {
        Ok(body) => match error_text(body) {
            Some(text) => format!("{prefix}: {text}"),
            None => prefix.to_owned(),
        },
        Err(reason) => format!("{prefix} ({reason})"),
    }
}

/// `data.id` of a created customer, or `id` of a bare customer object.
fn created_id(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let customer = value
        .get("data")
        .filter(|data| data.is_object())
        .unwrap_or(&value);
    non_empty(customer.get("id")?.as_str()?)
}

/// `errors[].meta.conflictingCustomerId` (or `…ID`, or any other capitalisation); the
/// first error that has one wins.
fn conflicting_id(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("errors")?
        .as_array()?
        .iter()
        .filter_map(|error| error.get("meta")?.as_object())
        .flat_map(|meta| meta.iter())
        .find(|(key, _)| key.eq_ignore_ascii_case("conflictingCustomerId"))
        .and_then(|(_, id)| non_empty(id.as_str()?))
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A full customer id: `CUSTOMER-…` becomes `{business_location}:CUSTOMER-…`; an id that
/// already has its `AG-…:` prefix is kept as it is.
fn qualify(id: &str, business_location: &str) -> String {
    match id.split_once(':') {
        Some((prefix, _)) if !prefix.is_empty() => id.to_owned(),
        _ => format!("{business_location}:{}", id.trim_start_matches(':')),
    }
}

/// Vendasta's error text: the JSON:API errors described, or else the start of the body;
/// one line, redacted, at most [`MAX_TEXT_CHARS`] characters.
fn error_text(body: &[u8]) -> Option<String> {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| describe_errors(&value))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text = one_line(&text, MAX_SCAN_CHARS);
    let text = cut(&redact_pii(&text), MAX_TEXT_CHARS);
    (!text.is_empty()).then_some(text)
}

/// `title: detail (code …, source …)` for each of the first errors of a JSON:API body.
fn describe_errors(value: &Value) -> Option<String> {
    let errors = value.get("errors")?.as_array()?;
    let described: Vec<String> = errors.iter().filter_map(describe_error).collect();
    if described.is_empty() {
        return None;
    }
    let mut text = described
        .iter()
        .take(MAX_ERRORS)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ");
    if described.len() > MAX_ERRORS {
        text.push_str(&format!("; and {} more", described.len() - MAX_ERRORS));
    }
    Some(text)
}

fn describe_error(error: &Value) -> Option<String> {
    if let Some(text) = error.as_str() {
        return non_empty(text);
    }
    let member = |name: &str| error.get(name).and_then(scalar).and_then(|s| non_empty(&s));
    let title = member("title");
    let detail = member("detail").or_else(|| member("details"));
    let mut text = match (title, detail) {
        (Some(title), Some(detail)) if title != detail => format!("{title}: {detail}"),
        (Some(text), _) | (None, Some(text)) => text,
        (None, None) => String::new(),
    };
    let mut extras = Vec::new();
    if let Some(code) = member("code") {
        extras.push(format!("code {code}"));
    }
    if let Some(source) = error.get("source").and_then(describe_source) {
        extras.push(format!("source {source}"));
    }
    if !extras.is_empty() {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&format!("({})", extras.join(", ")));
    }
    (!text.is_empty()).then_some(text)
}

/// `source` is a string in Vendasta's model and an object (`pointer`, `parameter`,
/// `header`) in JSON:API; both are rendered as short text.
fn describe_source(source: &Value) -> Option<String> {
    if let Some(object) = source.as_object() {
        let parts: Vec<String> = object
            .iter()
            .filter_map(|(key, value)| Some(format!("{key} {}", scalar(value)?)))
            .collect();
        return (!parts.is_empty()).then(|| parts.join(", "));
    }
    scalar(source).and_then(|text| non_empty(&text))
}

/// A string, number or boolean as text (so `"status": 409` and `"409"` read the same).
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// Whitespace and control characters collapsed to single spaces; at most `max` chars.
fn one_line(text: &str, max: usize) -> String {
    let mut line = String::new();
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
    {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        if line.chars().count() >= max {
            break;
        }
    }
    line.chars().take(max).collect()
}

/// At most `max` characters, with `…` when something was cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Parses `Retry-After` as delta-seconds or an HTTP date; a date in the past is zero.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits, so only an overflow can fail: that is "very long", capped later.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `10s`, or `1500ms` for a budget that is not whole seconds.
fn human(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// Replaces anything that looks like an e-mail address or a phone number with
/// `[redacted]`.
///
/// Vendasta's error details can echo what we sent ("A Customer with the phone number
/// +13065551234 already exists"), and reasons are logged and stored. An e-mail is
/// `local@domain`; a phone number is a run of 7 or more digits with optional `+`, spaces,
/// dashes, dots and parentheses, not glued to a preceding letter or digit. Errs on the side
/// of redacting: a long number that is not a phone (a date, an `AG-1234567` id) goes too.
pub(crate) fn redact_pii(text: &str) -> String {
    redact_phone_numbers(&redact_emails(text))
}

fn redact_emails(text: &str) -> String {
    let is_local = |c: char| c.is_alphanumeric() || "._%+-".contains(c);
    let is_domain = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while at < chars.len() {
        if chars[at] != '@' {
            at += 1;
            continue;
        }
        let mut start = at;
        while start > copied && is_local(chars[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < chars.len() && is_domain(chars[end]) {
            end += 1;
        }
        // A sentence's full stop after the address is not part of it.
        while end > at + 1 && matches!(chars[end - 1], '.' | '-') {
            end -= 1;
        }
        if start < at && end > at + 1 {
            out.extend(&chars[copied..start]);
            out.push_str(REDACTED);
            copied = end;
            at = end;
        } else {
            at += 1;
        }
    }
    out.extend(&chars[copied..]);
    out
}

fn redact_phone_numbers(text: &str) -> String {
    let is_phone = |c: char| c.is_ascii_digit() || " +-().".contains(c);
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        let glued = at > 0 && chars[at - 1].is_alphanumeric();
        if !(c.is_ascii_digit() || c == '+' || c == '(') || glued {
            out.push(c);
            at += 1;
            continue;
        }
        let mut end = at;
        while end < chars.len() && is_phone(chars[end]) {
            end += 1;
        }
        let digits = chars[at..end].iter().filter(|c| c.is_ascii_digit()).count();
        if digits >= 7 {
            // Separators after the last digit (a space, a full stop) stay in the text.
            while !chars[end - 1].is_ascii_digit() {
                end -= 1;
            }
            out.push_str(REDACTED);
        } else {
            // No part of a run with fewer than 7 digits can hold 7 digits: copy it whole.
            out.extend(&chars[at..end]);
        }
        at = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{body_json, header, method, path},
    };

    use super::*;
    use crate::vendasta::model::Address;

    const LOCATION: &str = "AG-123";
    const TOKEN: &str = "t0ken-that-must-never-leak";
    const COLLECTION: &str = "/business/customers";

    fn config(base: &str, timeout_seconds: u64) -> VendastaConfig {
        let file = "[vendasta]\ntoken = \"t\"\n[[routes]]\nname = \"a\"\nsource = \"shopify\"\nsecrets = [\"s\"]\nbusiness_location = \"AG-1\"";
        let mut config = crate::config::Config::from_sources(Some(file), None, &Default::default())
            .unwrap()
            .vendasta;
        config.customers_url = format!("{base}{COLLECTION}");
        config.request_timeout_seconds = timeout_seconds;
        config
    }

    fn token() -> Secret {
        Secret::new(TOKEN)
    }

    async fn start() -> (MockServer, Client) {
        let server = MockServer::start().await;
        let client = Client::new(&config(&server.uri(), 5)).unwrap();
        (server, client)
    }

    /// The guide's example customer (reference/vendasta.md §3).
    fn attributes() -> CustomerAttributes {
        CustomerAttributes {
            given_name: Some("William".into()),
            family_name: Some("Smith".into()),
            address: Some(Address {
                street_address: Some("123 Fake St.".into()),
                city: Some("Kalamazoo".into()),
                region_code: Some("US-MI".into()),
                country_code: Some("US".into()),
            }),
            phone_numbers: vec!["+13065551234".into()],
            email_addresses: vec!["example@email.com".into()],
            tags: vec!["2021 Christmas Campaign".into()],
            permission_to_contact: Some(true),
        }
    }

    fn expected_attributes() -> Value {
        json!({
            "givenName": "William",
            "familyName": "Smith",
            "address": {
                "streetAddress": "123 Fake St.",
                "city": "Kalamazoo",
                "regionCode": "US-MI",
                "countryCode": "US"
            },
            "phoneNumbers": ["+13065551234"],
            "emailAddresses": ["example@email.com"],
            "tags": ["2021 Christmas Campaign"],
            "permissionToContact": true
        })
    }

    fn json_api(status: u16, body: &str) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_raw(body.to_owned(), JSON_API)
    }

    /// Answers any POST with `template` and returns what `create` made of it.
    async fn create_answered(template: ResponseTemplate) -> Outcome {
        let (server, client) = start().await;
        Mock::given(method("POST"))
            .respond_with(template)
            .expect(1)
            .mount(&server)
            .await;
        client.create(&token(), LOCATION, &attributes()).await
    }

    /// Answers any PATCH with `template` and returns what `update` made of it.
    async fn update_answered(template: ResponseTemplate) -> Outcome {
        let (server, client) = start().await;
        Mock::given(method("PATCH"))
            .respond_with(template)
            .expect(1)
            .mount(&server)
            .await;
        client
            .update(&token(), LOCATION, "AG-123:CUSTOMER-456", &attributes())
            .await
    }

    fn reject_reason(outcome: Outcome) -> String {
        match outcome {
            Outcome::Reject { reason } => reason,
            other => panic!("expected a reject, got {other:?}"),
        }
    }

    fn retry(outcome: Outcome) -> (String, Option<Duration>) {
        match outcome {
            Outcome::Retry {
                reason,
                retry_after,
            } => (reason, retry_after),
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    // 409 bodies, verbatim from reference/vendasta.md §4.
    const CONFLICT_A: &str = r#"{ "errors": [ { "status": "409", "title": "Already exists",
          "details": "A customers already exists with matching values",
          "meta": { "conflictingCustomerId": "AG-123:CUSTOMER-456", "field": "emailAddresses",
                    "fieldValue": "example@email.com", "resourceType": "customers" } } ],
      "meta": { "requestId": "123" }, "links": { "self": { "href": "/business/customers" } } }"#;
    const CONFLICT_B: &str = r#"{"errors":[{"code":"ResourceAlreadyExists","title":"Already exists",
        "detail":"A customers already exists with matching values","status":"409",
        "meta":{"conflictingCustomerID":"CUSTOMER-7e5cda73-1d01-42ee-a44a-622b8c3c7c04",
        "field":"emailAddresses","fieldValue":"tdewald+test@vendasta.com","resourceType":"customers"}}],
        "meta":{"requestId":"pLSjFbcXoEFfRsWx"},"links":{"self":{"href":"/business/customers"}}}"#;
    const CONFLICT_C: &str = r#"{"errors":[{"status":409,"title":"Conflict","details":"A Customer with the phone number +13065551234 already exists","meta":{"conflictingCustomerId":"AG-123:CUSTOMER-456"}}],"meta":{"requestId":"123"},"links":{"self":{"href":"/platform/customers"}}}"#;

    #[tokio::test]
    async fn create_posts_a_json_api_body_with_the_bearer_token() {
        // Arrange
        let (server, client) = start().await;
        let created = r#"{"data":{"type":"customers","id":"AG-123:CUSTOMER-123",
            "attributes":{"givenName":"William"},
            "relationships":{"businessLocation":{"data":{"type":"businessLocation","id":"AG-123"}}}}}"#;
        Mock::given(method("POST"))
            .and(path(COLLECTION))
            .and(header("content-type", JSON_API))
            .and(header("accept", JSON_API))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(body_json(json!({
                "data": {
                    "type": "customers",
                    "attributes": expected_attributes(),
                    "relationships": { "businessLocation": { "data": { "id": "AG-123" } } }
                }
            })))
            .respond_with(json_api(201, created))
            .expect(1)
            .mount(&server)
            .await;

        // Act
        let outcome = client.create(&token(), LOCATION, &attributes()).await;

        // Assert
        assert_eq!(
            outcome,
            Outcome::Created {
                customer_id: "AG-123:CUSTOMER-123".into()
            }
        );
        let requests = server.received_requests().await.expect("recording is on");
        let request = &requests[0];
        let content_types: Vec<_> = request.headers.get_all(CONTENT_TYPE).iter().collect();
        assert_eq!(content_types, [JSON_API], "exactly one content type");
        assert!(request.url.query().is_none());
    }

    #[tokio::test]
    async fn create_accepts_a_bare_customer_object() {
        let outcome = create_answered(json_api(
            201,
            r#"{"type":"customers","id":"AG-123:CUSTOMER-9","attributes":{}}"#,
        ))
        .await;
        assert_eq!(
            outcome,
            Outcome::Created {
                customer_id: "AG-123:CUSTOMER-9".into()
            }
        );
    }

    #[tokio::test]
    async fn create_accepts_a_200_and_prefixes_a_bare_customer_id() {
        let outcome = create_answered(json_api(200, r#"{"data":{"id":"CUSTOMER-9"}}"#)).await;
        assert_eq!(
            outcome,
            Outcome::Created {
                customer_id: "AG-123:CUSTOMER-9".into()
            }
        );
    }

    #[tokio::test]
    async fn a_2xx_create_without_a_usable_id_is_rejected() {
        for template in [
            json_api(201, r#"{"data":{"type":"customers"}}"#),
            json_api(201, r#"{"data":{"id":""}}"#),
            json_api(201, r#"{"data":{"id":42}}"#),
            json_api(201, "not json"),
            ResponseTemplate::new(204),
        ] {
            let reason = reject_reason(create_answered(template).await);
            assert!(reason.contains("without a customer id"), "{reason}");
        }
    }

    #[tokio::test]
    async fn update_patches_the_customer_path_with_the_colon_unencoded() {
        // Arrange
        let (server, client) = start().await;
        Mock::given(method("PATCH"))
            .and(path("/business/customers/AG-123:CUSTOMER-456"))
            .and(header("content-type", JSON_API))
            .and(header("accept", JSON_API))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(body_json(json!({
                "data": {
                    "type": "customers",
                    "id": "AG-123:CUSTOMER-456",
                    "attributes": expected_attributes()
                }
            })))
            .respond_with(json_api(200, r#"{"data":{"id":"AG-123:CUSTOMER-456"}}"#))
            .expect(1)
            .mount(&server)
            .await;

        // Act
        let outcome = client
            .update(&token(), LOCATION, "AG-123:CUSTOMER-456", &attributes())
            .await;

        // Assert
        assert_eq!(outcome, Outcome::Updated);
        let requests = server.received_requests().await.expect("recording is on");
        assert_eq!(
            requests[0].url.path(),
            "/business/customers/AG-123:CUSTOMER-456"
        );
    }

    #[tokio::test]
    async fn update_treats_204_as_updated() {
        assert_eq!(
            update_answered(ResponseTemplate::new(204)).await,
            Outcome::Updated
        );
    }

    #[tokio::test]
    async fn update_of_a_missing_customer_is_not_found() {
        let outcome = update_answered(json_api(
            404,
            r#"{"errors":[{"status":"404","title":"Not found"}]}"#,
        ))
        .await;
        assert_eq!(outcome, Outcome::NotFound);
    }

    #[tokio::test]
    async fn update_without_a_customer_id_is_rejected_without_a_request() {
        let (_server, client) = start().await;
        let reason = reject_reason(client.update(&token(), LOCATION, " ", &attributes()).await);
        assert_eq!(reason, "no vendasta customer id to update");
    }

    #[tokio::test]
    async fn a_404_on_create_is_rejected() {
        let reason = reject_reason(create_answered(ResponseTemplate::new(404)).await);
        assert_eq!(reason, "vendasta answered 404");
    }

    #[tokio::test]
    async fn conflict_from_the_current_guide_gives_the_existing_id() {
        let outcome = create_answered(json_api(409, CONFLICT_A)).await;
        assert_eq!(
            outcome,
            Outcome::Conflict {
                existing_id: "AG-123:CUSTOMER-456".into()
            }
        );
    }

    #[tokio::test]
    async fn conflict_from_the_openapi_example_gets_the_location_prefix() {
        let outcome = create_answered(json_api(409, CONFLICT_B)).await;
        assert_eq!(
            outcome,
            Outcome::Conflict {
                existing_id: "AG-123:CUSTOMER-7e5cda73-1d01-42ee-a44a-622b8c3c7c04".into()
            }
        );
    }

    #[tokio::test]
    async fn conflict_from_the_draft_with_a_numeric_status_gives_the_existing_id() {
        let outcome = create_answered(json_api(409, CONFLICT_C)).await;
        assert_eq!(
            outcome,
            Outcome::Conflict {
                existing_id: "AG-123:CUSTOMER-456".into()
            }
        );
    }

    #[tokio::test]
    async fn conflict_on_update_gives_the_other_customer() {
        let outcome = update_answered(json_api(409, CONFLICT_B)).await;
        assert_eq!(
            outcome,
            Outcome::Conflict {
                existing_id: "AG-123:CUSTOMER-7e5cda73-1d01-42ee-a44a-622b8c3c7c04".into()
            }
        );
    }

    #[tokio::test]
    async fn conflict_without_an_id_is_rejected_with_vendastas_text() {
        let body = r#"{"errors":[{"status":409,"title":"Conflict",
            "details":"A Customer with the phone number +13065551234 already exists"}]}"#;
        let reason = reject_reason(create_answered(json_api(409, body)).await);
        assert_eq!(
            reason,
            "vendasta answered 409 without a conflicting customer id: Conflict: A Customer \
             with the phone number [redacted] already exists"
        );
    }

    #[tokio::test]
    async fn a_503_is_retried() {
        let (reason, retry_after) = retry(create_answered(ResponseTemplate::new(503)).await);
        assert_eq!(reason, "vendasta answered 503");
        assert_eq!(retry_after, None);
    }

    #[tokio::test]
    async fn a_429_with_retry_after_seconds_is_retried_after_them() {
        let template = ResponseTemplate::new(429).insert_header("Retry-After", "2");
        let (reason, retry_after) = retry(create_answered(template).await);
        assert_eq!(reason, "vendasta answered 429");
        assert_eq!(retry_after, Some(Duration::from_secs(2)));
    }

    #[tokio::test]
    async fn retry_after_as_an_http_date_becomes_a_duration() {
        let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let template = ResponseTemplate::new(503).insert_header("Retry-After", at.as_str());
        let (_, retry_after) = retry(update_answered(template).await);
        let wait = retry_after.expect("a retry-after");
        assert!(
            wait >= Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
    }

    #[tokio::test]
    async fn timeouts_throttling_and_server_errors_are_retried() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            let (reason, _) = retry(create_answered(ResponseTemplate::new(status)).await);
            assert_eq!(reason, format!("vendasta answered {status}"));
        }
    }

    #[tokio::test]
    async fn a_501_is_rejected() {
        let reason = reject_reason(create_answered(ResponseTemplate::new(501)).await);
        assert!(reason.starts_with("vendasta answered 501"), "{reason}");
    }

    #[tokio::test]
    async fn other_4xx_and_redirects_are_rejected_not_followed() {
        for status in [400, 403, 405, 410, 413, 415, 422, 301, 302, 307] {
            let template = ResponseTemplate::new(status).insert_header("Location", "/elsewhere");
            let reason = reject_reason(create_answered(template).await);
            assert_eq!(reason, format!("vendasta answered {status}"));
        }
    }

    #[tokio::test]
    async fn a_401_is_unauthorized_so_the_token_can_be_renewed() {
        let outcome =
            create_answered(json_api(401, r#"{"errors":[{"title":"Unauthenticated"}]}"#)).await;
        assert_eq!(
            outcome,
            Outcome::Unauthorized {
                reason: "vendasta answered 401: Unauthenticated".into()
            }
        );
        let outcome = update_answered(ResponseTemplate::new(401)).await;
        assert!(
            matches!(outcome, Outcome::Unauthorized { .. }),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_400_keeps_the_json_api_error_text() {
        let body = r#"{"errors":[{"status":"400","code":"QueryParameterBadValue",
            "title":"Bad value","detail":"regionCode US-XX is not a region of US",
            "source":{"pointer":"/data/attributes/address/regionCode"}}]}"#;
        let reason = reject_reason(create_answered(json_api(400, body)).await);
        assert_eq!(
            reason,
            "vendasta answered 400: Bad value: regionCode US-XX is not a region of US \
             (code QueryParameterBadValue, source pointer /data/attributes/address/regionCode)"
        );
    }

    #[tokio::test]
    async fn a_422_detail_with_an_email_is_redacted() {
        let body = r#"{"errors":[{"status":"422","code":"MalformedRequestBody",
            "title":"Unprocessable","detail":"emailAddresses: example@email.com is not valid"}]}"#;
        let reason = reject_reason(update_answered(json_api(422, body)).await);
        assert!(reason.starts_with("vendasta answered 422: "), "{reason}");
        assert!(
            reason.contains("emailAddresses: [redacted] is not valid"),
            "{reason}"
        );
        assert!(!reason.contains("example@email.com"), "{reason}");
    }

    #[tokio::test]
    async fn a_non_json_error_keeps_the_start_of_the_body_on_one_line() {
        let body = format!(
            "<html>\n  <h1>Bad gateway config</h1>\n{}</html>",
            "x".repeat(2000)
        );
        let reason =
            reject_reason(create_answered(ResponseTemplate::new(400).set_body_string(body)).await);
        assert!(
            reason.starts_with("vendasta answered 400: <html> <h1>Bad gateway config</h1> xxx"),
            "{reason}"
        );
        assert!(reason.ends_with('…'), "{reason}");
        assert!(!reason.contains('\n'));
        assert!(reason.chars().count() <= "vendasta answered 400: ".len() + MAX_TEXT_CHARS);
    }

    #[tokio::test]
    async fn a_timeout_is_retried() {
        // Arrange
        let server = MockServer::start().await;
        let client = Client::new(&config(&server.uri(), 1)).unwrap();
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_delay(Duration::from_secs(30)))
            .mount(&server)
            .await;

        // Act
        let outcome = client.create(&token(), LOCATION, &attributes()).await;

        // Assert
        let (reason, retry_after) = retry(outcome);
        assert_eq!(reason, "timed out after 1s");
        assert_eq!(retry_after, None);
    }

    #[tokio::test]
    async fn a_closed_port_is_retried() {
        // Arrange: a port bound but not listening refuses connections, and stays this
        // test's own (a port merely closed could be handed to another test's server).
        let closed = tokio::net::TcpSocket::new_v4().expect("socket");
        closed.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let port = closed.local_addr().expect("address").port();
        let client = Client::new(&config(&format!("http://127.0.0.1:{port}"), 5)).unwrap();

        // Act
        let outcome = client.create(&token(), LOCATION, &attributes()).await;

        // Assert
        let (reason, retry_after) = retry(outcome);
        assert_eq!(reason, "connection failed (connection refused)");
        assert_eq!(retry_after, None);
    }

    #[tokio::test]
    async fn an_unusable_customers_url_is_retried_without_a_request() {
        let client = Client::new(&config("not a url", 5)).unwrap();
        let (reason, _) = retry(client.create(&token(), LOCATION, &attributes()).await);
        assert_eq!(reason, "vendasta.customers_url is not a usable http(s) url");
    }

    #[test]
    fn member_urls_keep_the_colon_and_encode_path_breakers() {
        let client = Client::new(&VendastaConfig {
            customers_url: "https://prod.apigateway.co/business/customers/".into(),
            ..config("", 5)
        })
        .unwrap();
        let url = client.member_url("AG-1:CUSTOMER-2", "update").expect("url");
        assert_eq!(
            url.as_str(),
            "https://prod.apigateway.co/business/customers/AG-1:CUSTOMER-2"
        );
        let url = client.member_url("AG-1:C/../x?y#z", "update").expect("url");
        assert_eq!(url.path(), "/business/customers/AG-1:C%2F..%2Fx%3Fy%23z");
        assert_eq!(url.query(), None);
    }

    #[test]
    fn http_client_builds() {
        assert!(http_client(Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let in_90s = httpdate::fmt_http_date(now + Duration::from_secs(90));
        let ago_90s = httpdate::fmt_http_date(now - Duration::from_secs(90));
        let cases: [(&str, Option<Duration>); 8] = [
            ("2", Some(Duration::from_secs(2))),
            (" 120 ", Some(Duration::from_secs(120))),
            ("0", Some(Duration::ZERO)),
            (
                "99999999999999999999999",
                Some(Duration::from_secs(u64::MAX)),
            ),
            (&in_90s, Some(Duration::from_secs(90))),
            (&ago_90s, Some(Duration::ZERO)),
            ("-5", None),
            ("soon", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_retry_after(value, now), expected, "{value:?}");
        }
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn redact_pii_scrubs_emails_and_phone_numbers() {
        let cases = [
            (
                "A Customer with the phone number +13065551234 already exists",
                "A Customer with the phone number [redacted] already exists",
            ),
            ("call (306) 555-1234.", "call [redacted]."),
            ("+1 306 555 1234", "[redacted]"),
            (
                "tel 306.555.1234, fax 555-1234",
                "tel [redacted], fax [redacted]",
            ),
            ("example@email.com", "[redacted]"),
            (
                "emailAddresses tdewald+test@vendasta.com exists.",
                "emailAddresses [redacted] exists.",
            ),
            (
                r#""fieldValue":"a.b-c@mail.example.co.uk","#,
                r#""fieldValue":"[redacted]","#,
            ),
            (
                "mailto:x@y.io; +44 20 7946 0958",
                "mailto:[redacted]; [redacted]",
            ),
            ("13065551234@sms.example", "[redacted]"),
            // Left alone: short numbers, ids, lone at-signs.
            ("vendasta answered 422", "vendasta answered 422"),
            ("page[size] must be 1-100", "page[size] must be 1-100"),
            ("requestId 123456", "requestId 123456"),
            (
                "CUSTOMER-7e5cda73-1d01-42ee-a44a-622b8c3c7c04",
                "CUSTOMER-7e5cda73-1d01-42ee-a44a-622b8c3c7c04",
            ),
            ("hash abc1234567890", "hash abc1234567890"),
            ("meet @ noon, or user@", "meet @ noon, or user@"),
            ("(see above)", "(see above)"),
            ("", ""),
            ("héllo wörld ☎", "héllo wörld ☎"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_pii(input), expected, "{input:?}");
        }
    }

    #[test]
    fn more_than_three_errors_are_counted_not_listed() {
        let body = json!({"errors": [
            {"title": "one"}, {"title": "two"}, {"detail": "three"}, {"code": "Four"}, "five"
        ]});
        let text = error_text(body.to_string().as_bytes()).expect("text");
        assert_eq!(text, "one; two; three; and 2 more");
    }
}
