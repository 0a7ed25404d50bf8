//! A Vendasta stand-in: an in-memory customers API that answers as Vendasta's does.
//!
//! Used by `vendasta-bridge demo`, by `vendasta-bridge mock-vendasta` (point a staging
//! bridge at it), by the integration tests and by benchmarks. It serves
//! `POST {base}/business/customers` (201 with a `AG-…:CUSTOMER-<uuid>` id; 409 in the shape
//! of business.yaml's example — bare `conflictingCustomerID` — when an email, compared
//! case-insensitively, or a phone already exists in the same business location; 422
//! JSON:API errors for what Vendasta's schema forbids) and `PATCH {base}/business/customers/{id}`
//! (200 or 404), all behind `Authorization: Bearer …` (401 otherwise). Facts:
//! `/work/shared/reference/vendasta.md` §3–4 and `tests/fixtures/openapi/`.
//!
//! Knobs for load tests: a fixed latency per request and a seeded (so repeatable) rate of
//! 503s. It records every request and, per contact email, the most requests in flight at
//! once, so multi-replica tests can assert that one contact never overlaps itself.
//! No I/O beyond its listener; state lives in memory behind a `Mutex` that is never held
//! across an `.await`. Customers are indexed by id and by (location, email or phone), so
//! a request costs the same with a million customers as with ten: a benchmark measures
//! the bridge, not the stand-in. `vendasta-bridge mock-vendasta` keeps no request log
//! (`record_requests`), so a long load test does not grow it without bound.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{patch, post},
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// Path of the customers collection, as Vendasta ships it.
pub const CUSTOMERS_PATH: &str = "/business/customers";

/// How the stand-in misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MockOptions {
    /// Time every request takes before it is answered.
    pub latency: Duration,
    /// Share of requests (0.0–1.0) answered 503, drawn from a seeded generator.
    pub failure_rate: f64,
    /// Seed for failures and generated ids: the same seed gives the same run.
    pub seed: u64,
    /// Keep every request for [`MockVendasta::requests`] (tests); off, only count them.
    pub record_requests: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            failure_rate: 0.0,
            seed: 0x5eed,
            record_requests: true,
        }
    }
}

/// A customer the stand-in holds.
#[derive(Debug, Clone, PartialEq)]
pub struct MockCustomer {
    /// Full id, `AG-…:CUSTOMER-…`.
    pub id: String,
    pub business_location: String,
    /// The attributes as last written (create, then merged PATCHes).
    pub attributes: serde_json::Map<String, Value>,
}

/// One request the stand-in received.
#[derive(Debug, Clone, PartialEq)]
pub struct MockRequest {
    pub method: String,
    pub path: String,
    /// The status it was answered with.
    pub status: u16,
    /// The body, parsed; `Null` when it was not JSON.
    pub body: Value,
}

/// Why the stand-in could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    #[error("cannot listen on {addr}: {source}; pick a free address with --listen")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("--failure-rate must be between 0.0 and 1.0, got {0}")]
    FailureRate(f64),
}

impl MockError {
    pub fn code(&self) -> &'static str {
        match self {
            MockError::Bind { .. } => "mock_bind",
            MockError::FailureRate(_) => "mock_failure_rate",
        }
    }
}

#[derive(Debug)]
struct Inner {
    options: MockOptions,
    state: Mutex<MockState>,
}

#[derive(Debug)]
struct MockState {
    rng: fastrand::Rng,
    customers: Vec<MockCustomer>,
    /// Customer id → index in `customers`.
    by_id: HashMap<String, usize>,
    /// (business location, `emailAddresses`|`phoneNumbers`, value) → the customers
    /// holding it, in creation order. Emails are lower case: Vendasta compares them
    /// case-insensitively.
    by_contact: HashMap<(String, &'static str, String), Vec<usize>>,
    requests: Vec<MockRequest>,
    answered: u64,
    in_flight: BTreeMap<String, usize>,
    max_overlap: BTreeMap<String, usize>,
}

/// A running stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct MockVendasta {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MockVendasta {
    /// Binds `addr` (port 0 picks a free one) and serves until [`MockVendasta::stop`] or drop.
    pub async fn start(addr: SocketAddr, options: MockOptions) -> Result<Self, MockError> {
        if !(0.0..=1.0).contains(&options.failure_rate) {
            return Err(MockError::FailureRate(options.failure_rate));
        }
        let bind_error = |source| MockError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let inner = Arc::new(Inner {
            options,
            state: Mutex::new(MockState {
                rng: fastrand::Rng::with_seed(options.seed),
                customers: Vec::new(),
                by_id: HashMap::new(),
                by_contact: HashMap::new(),
                requests: Vec::new(),
                answered: 0,
                in_flight: BTreeMap::new(),
                max_overlap: BTreeMap::new(),
            }),
        });
        let router = Router::new()
            .route(CUSTOMERS_PATH, post(create))
            .route(&format!("{CUSTOMERS_PATH}/{{id}}"), patch(update))
            .fallback(not_found)
            .with_state(Arc::clone(&inner));
        let stop = CancellationToken::new();
        let serve =
            axum::serve(listener, router).with_graceful_shutdown(stop.clone().cancelled_owned());
        let task = tokio::spawn(async move {
            if let Err(error) = serve.await {
                tracing::warn!(error = %error, "The Vendasta stand-in stopped with an error.");
            }
        });
        Ok(Self {
            addr,
            inner,
            stop,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to use as `vendasta.customers_url`.
    pub fn customers_url(&self) -> String {
        format!("http://{}{CUSTOMERS_PATH}", self.addr)
    }

    /// Every customer held, in creation order.
    pub fn customers(&self) -> Vec<MockCustomer> {
        self.inner.lock().customers.clone()
    }

    /// Every request received, in arrival order (recorded when answered); empty when
    /// started without `record_requests`.
    pub fn requests(&self) -> Vec<MockRequest> {
        self.inner.lock().requests.clone()
    }

    /// How many requests were answered.
    pub fn answered(&self) -> u64 {
        self.inner.lock().answered
    }

    /// Per contact email (lower case), the most requests that were in flight at once.
    pub fn max_overlap(&self) -> BTreeMap<String, usize> {
        self.inner.lock().max_overlap.clone()
    }

    /// Adds a customer as if someone had created it in Vendasta already; returns its id.
    pub fn seed_customer(
        &self,
        business_location: &str,
        attributes: serde_json::Map<String, Value>,
    ) -> String {
        let mut state = self.inner.lock();
        let id = format!("{business_location}:{}", new_customer_id(&mut state.rng));
        state.insert(MockCustomer {
            id: id.clone(),
            business_location: business_location.to_string(),
            attributes,
        });
        id
    }

    /// Stops accepting, finishes requests in flight and waits for the server task.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take()
            && let Err(error) = task.await
        {
            tracing::warn!(error = %error, "The Vendasta stand-in task panicked.");
        }
    }
}

impl Drop for MockVendasta {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, MockState> {
        // A handler that panicked mid-update leaves plain data behind; keep serving it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts a request as in flight for each of its emails until dropped, so the overlap
/// record stays right even when the handler returns early.
struct InFlight {
    inner: Arc<Inner>,
    emails: Vec<String>,
}

impl InFlight {
    fn enter(inner: &Arc<Inner>, emails: Vec<String>) -> Self {
        let mut state = inner.lock();
        for email in &emails {
            let now = {
                let count = state.in_flight.entry(email.clone()).or_default();
                *count += 1;
                *count
            };
            let max = state.max_overlap.entry(email.clone()).or_default();
            *max = (*max).max(now);
        }
        drop(state);
        Self {
            inner: Arc::clone(inner),
            emails,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        for email in &self.emails {
            if let Some(count) = state.in_flight.get_mut(email) {
                *count = count.saturating_sub(1);
            }
        }
    }
}

async fn create(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    let path = CUSTOMERS_PATH.to_string();
    handle(&inner, Method::POST, path, &headers, &body, None).await
}

async fn update(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("{CUSTOMERS_PATH}/{id}");
    handle(&inner, Method::PATCH, path, &headers, &body, Some(id)).await
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        "Not found",
        "no such endpoint: the stand-in serves POST /business/customers and PATCH /business/customers/{id}",
    )
}

/// The last stretch of a wait, slept on a blocking thread with the kernel's timer.
const FINE_WAIT: Duration = Duration::from_millis(2);

/// Waits `latency` to within the kernel timer's slack (tens of microseconds). tokio's
/// timer ticks every millisecond and rounds each deadline up, so `sleep(20 ms)` took
/// 20–21 ms and more on a busy machine; a benchmark that divides by the nominal latency
/// then counted the stand-in's lateness as the bridge's. The coarse part still waits on
/// tokio's timer, so a slow stand-in (seconds) holds no thread.
async fn wait_exactly(latency: Duration) {
    let due = Instant::now() + latency;
    if let Some(coarse) = latency.checked_sub(FINE_WAIT) {
        tokio::time::sleep(coarse).await;
    }
    let rest = due.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        // A join error means the runtime is shutting down; the answer no longer matters.
        let _ignored = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// The shared request path: count overlap, wait the latency, maybe fail, then answer.
async fn handle(
    inner: &Arc<Inner>,
    method: Method,
    path: String,
    headers: &HeaderMap,
    body: &[u8],
    id: Option<String>,
) -> Response {
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut emails = emails_of(&parsed);
    if emails.is_empty()
        && let Some(id) = &id
    {
        // A PATCH without emails still belongs to the customer's contact.
        let state = inner.lock();
        if let Some(customer) = state.by_id.get(id).map(|&index| &state.customers[index]) {
            emails = emails_of_attributes(&customer.attributes);
        }
    }
    let guard = InFlight::enter(inner, emails);
    if !inner.options.latency.is_zero() {
        wait_exactly(inner.options.latency).await;
    }
    let response = {
        let mut state = inner.lock();
        let fail = inner.options.failure_rate > 0.0 && state.rng.f64() < inner.options.failure_rate;
        let response = if fail {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "Service unavailable",
                "the stand-in failed this request on purpose (--failure-rate)",
            )
        } else {
            match id {
                None => state.create(headers, &parsed),
                Some(id) => state.update(headers, &parsed, &id),
            }
        };
        state.answered += 1;
        if inner.options.record_requests {
            state.requests.push(MockRequest {
                method: method.to_string(),
                path,
                status: response.status().as_u16(),
                body: parsed,
            });
        }
        response
    };
    drop(guard);
    response
}

impl MockState {
    fn create(&mut self, headers: &HeaderMap, body: &Value) -> Response {
        if let Some(response) = check_request(headers) {
            return response;
        }
        let data = body.get("data").unwrap_or(&Value::Null);
        let mut problems = Vec::new();
        if let Some(kind) = data.get("type")
            && kind != "customers"
        {
            problems.push("data.type must be \"customers\"".to_string());
        }
        let location = data
            .pointer("/relationships/businessLocation/data/id")
            .and_then(Value::as_str)
            .unwrap_or("");
        if location.is_empty() {
            problems
                .push("relationships.businessLocation.data.id is required on create".to_string());
        }
        let attributes = data
            .get("attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        check_attributes(&attributes, &mut problems);
        let has = |member: &str| {
            attributes
                .get(member)
                .and_then(Value::as_array)
                .is_some_and(|values| !values.is_empty())
        };
        if !has("emailAddresses") && !has("phoneNumbers") {
            problems.push("attributes.emailAddresses or attributes.phoneNumbers must be populated during creation".to_string());
        }
        if !problems.is_empty() {
            return invalid(&problems);
        }
        if let Some(response) = self.conflict(location, &attributes, None) {
            return response;
        }
        let id = format!("{location}:{}", new_customer_id(&mut self.rng));
        let customer = MockCustomer {
            id,
            business_location: location.to_string(),
            attributes,
        };
        let body = resource(&customer);
        self.insert(customer);
        (StatusCode::CREATED, jsonapi(body)).into_response()
    }

    fn update(&mut self, headers: &HeaderMap, body: &Value, id: &str) -> Response {
        if let Some(response) = check_request(headers) {
            return response;
        }
        let data = body.get("data").unwrap_or(&Value::Null);
        let mut problems = Vec::new();
        if data.get("type").and_then(Value::as_str) != Some("customers") {
            problems.push("data.type must be \"customers\"".to_string());
        }
        if data.get("id").and_then(Value::as_str) != Some(id) {
            problems.push("data.id must equal the id in the path".to_string());
        }
        let attributes = data
            .get("attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        check_attributes(&attributes, &mut problems);
        if !problems.is_empty() {
            return invalid(&problems);
        }
        let Some(&index) = self.by_id.get(id) else {
            return error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "Not found",
                "no customer with this id",
            );
        };
        let location = self.customers[index].business_location.clone();
        if let Some(response) = self.conflict(&location, &attributes, Some(id)) {
            return response;
        }
        self.unindex(index);
        let customer = &mut self.customers[index];
        // "All others are optional and will keep their original value if omitted."
        customer.attributes.extend(attributes);
        let body = resource(customer);
        self.index(index);
        (StatusCode::OK, jsonapi(body)).into_response()
    }

    /// Adds a customer and indexes it.
    fn insert(&mut self, customer: MockCustomer) {
        let index = self.customers.len();
        self.by_id.insert(customer.id.clone(), index);
        self.customers.push(customer);
        self.index(index);
    }

    /// Makes the customer at `index` findable by each of its emails and phones.
    fn index(&mut self, index: usize) {
        let customer = &self.customers[index];
        for key in contact_keys(&customer.business_location, &customer.attributes) {
            let holders = self.by_contact.entry(key).or_default();
            // Creation order, so a conflict names the oldest holder as a scan would.
            let at = holders.partition_point(|&other| other < index);
            holders.insert(at, index);
        }
    }

    /// The inverse of [`MockState::index`], before the customer's attributes change.
    fn unindex(&mut self, index: usize) {
        let customer = &self.customers[index];
        for key in contact_keys(&customer.business_location, &customer.attributes) {
            if let Some(holders) = self.by_contact.get_mut(&key) {
                holders.retain(|&other| other != index);
                if holders.is_empty() {
                    self.by_contact.remove(&key);
                }
            }
        }
    }

    /// A 409 when another customer of `location` has one of the emails or phones.
    fn conflict(
        &self,
        location: &str,
        attributes: &serde_json::Map<String, Value>,
        except: Option<&str>,
    ) -> Option<Response> {
        // The oldest other customer of the location holding one of these emails or
        // phones; an email match names the email, as Vendasta checks emails first.
        let mut found: Option<(usize, &'static str, String)> = None;
        for (location, field, value) in contact_keys(location, attributes) {
            let Some(holders) = self.by_contact.get(&(location, field, value.clone())) else {
                continue;
            };
            let Some(&index) = holders
                .iter()
                .find(|&&index| Some(self.customers[index].id.as_str()) != except)
            else {
                continue;
            };
            let better = match &found {
                None => true,
                Some((best, best_field, _)) => {
                    index < *best || (index == *best && field < *best_field)
                }
            };
            if better {
                found = Some((index, field, value));
            }
        }
        if let Some((index, field, value)) = found {
            let customer = &self.customers[index];
            // business.yaml's example: the id without the `AG-…:` prefix.
            let bare = customer
                .id
                .split_once(':')
                .map_or(customer.id.as_str(), |(_, bare)| bare);
            let body = json!({
                "errors": [{
                    "code": "ResourceAlreadyExists",
                    "title": "Already exists",
                    "detail": "A customers already exists with matching values",
                    "status": "409",
                    "meta": {
                        "conflictingCustomerID": bare,
                        "field": field,
                        "fieldValue": value,
                        "resourceType": "customers"
                    }
                }],
                "meta": { "requestId": "mock" },
                "links": { "self": { "href": CUSTOMERS_PATH } }
            });
            return Some((StatusCode::CONFLICT, jsonapi(body)).into_response());
        }
        None
    }
}

/// 401 without a bearer token, 422 without the JSON:API content type; `None` when fine.
fn check_request(headers: &HeaderMap) -> Option<Response> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = authorization.strip_prefix("Bearer ").unwrap_or("").trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "Unauthenticated",
            "Unauthorized",
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/vnd.api+json")
    {
        return Some(invalid(&[
            "Content-Type must be application/vnd.api+json".to_string()
        ]));
    }
    None
}

/// What business.yaml's `customers` schema forbids in attributes (minLength 1 strings,
/// a two-letter country code, E.164 phones).
fn check_attributes(attributes: &serde_json::Map<String, Value>, problems: &mut Vec<String>) {
    for member in ["givenName", "familyName"] {
        match attributes.get(member) {
            None => {}
            Some(Value::String(text)) if !text.is_empty() => {}
            Some(_) => problems.push(format!("attributes.{member} must be a non-empty string")),
        }
    }
    for member in ["emailAddresses", "phoneNumbers", "tags"] {
        match attributes.get(member) {
            None => {}
            Some(Value::Array(values))
                if values
                    .iter()
                    .all(|v| v.as_str().is_some_and(|s| !s.is_empty())) => {}
            Some(_) => problems.push(format!(
                "attributes.{member} must be an array of non-empty strings"
            )),
        }
    }
    for phone in strings(attributes.get("phoneNumbers")) {
        let digits = phone.strip_prefix('+').unwrap_or("");
        let e164 = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !e164 {
            problems.push("attributes.phoneNumbers must be in E.164 format".to_string());
        }
    }
    if let Some(consent) = attributes.get("permissionToContact")
        && !consent.is_boolean()
    {
        problems.push("attributes.permissionToContact must be a boolean".to_string());
    }
    match attributes.get("address") {
        None => {}
        Some(Value::Object(address)) => {
            for (key, value) in address {
                if value.as_str().is_none_or(str::is_empty) {
                    problems.push(format!(
                        "attributes.address.{key} must be a non-empty string"
                    ));
                }
            }
            if let Some(code) = address.get("countryCode").and_then(Value::as_str)
                && !(code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                problems.push("attributes.address.countryCode must be two letters".to_string());
            }
        }
        Some(_) => problems.push("attributes.address must be an object".to_string()),
    }
}

fn resource(customer: &MockCustomer) -> Value {
    json!({
        "data": {
            "type": "customers",
            "id": customer.id,
            "attributes": customer.attributes,
            "relationships": {
                "businessLocation": {
                    "data": { "type": "businessLocation", "id": customer.business_location }
                }
            }
        }
    })
}

/// `CUSTOMER-` and a version-4-shaped UUID drawn from the seeded generator.
fn new_customer_id(rng: &mut fastrand::Rng) -> String {
    let hex = format!("{:032x}", rng.u128(..));
    format!(
        "CUSTOMER-{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn emails_of(body: &Value) -> Vec<String> {
    body.pointer("/data/attributes")
        .and_then(Value::as_object)
        .map(emails_of_attributes)
        .unwrap_or_default()
}

fn emails_of_attributes(attributes: &serde_json::Map<String, Value>) -> Vec<String> {
    strings(attributes.get("emailAddresses"))
        .into_iter()
        .map(|email| email.to_lowercase())
        .collect()
}

/// The index keys of a customer: (location, field, value) for each email (lower case)
/// and phone.
fn contact_keys(
    location: &str,
    attributes: &serde_json::Map<String, Value>,
) -> Vec<(String, &'static str, String)> {
    let emails = emails_of_attributes(attributes)
        .into_iter()
        .map(|email| (location.to_string(), "emailAddresses", email));
    let phones = strings(attributes.get("phoneNumbers"))
        .into_iter()
        .map(|phone| (location.to_string(), "phoneNumbers", phone));
    emails.chain(phones).collect()
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn invalid(problems: &[String]) -> Response {
    let errors: Vec<Value> = problems
        .iter()
        .map(|detail| {
            json!({
                "status": "422",
                "code": "MalformedRequestBody",
                "title": "Unprocessable Entity",
                "detail": detail
            })
        })
        .collect();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        jsonapi(json!({ "errors": errors })),
    )
        .into_response()
}

fn error(status: StatusCode, code: &str, title: &str, detail: &str) -> Response {
    let body = json!({
        "errors": [{ "status": status.as_str(), "code": code, "title": title, "detail": detail }]
    });
    (status, jsonapi(body)).into_response()
}

/// A JSON body with Vendasta's JSON:API content type.
fn jsonapi(body: Value) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/vnd.api+json")],
        Json(body),
    )
}
