//! Typed configuration: loading, layering and validation.
//!
//! Layers, lowest first: the compiled-in `config/default.toml`, the file named by
//! `--config`/`BRIDGE_CONFIG`, then `BRIDGE_<SECTION>__<KEY>` environment variables.
//! After layering, `${VAR}` references are expanded. Each section (and each route) is
//! deserialized on its own and then validated, so one run reports every problem it can
//! find, each naming the key and what to do, instead of stopping at the first. This module
//! never touches the network or the store.

use std::{
    collections::{BTreeMap, HashSet},
    fmt,
    net::SocketAddr,
    path::Path,
    time::Duration,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};
use toml::{Table, Value};

mod source_keys;
mod telemetry;

use source_keys::default_timestamp_tolerance_seconds;
pub use source_keys::{
    EventAction, FieldsConfig, HmacAlgorithm, MappingConfig, SignatureConfig, SignatureEncoding,
    SignedContent, check_pointer,
};

/// The compiled-in defaults; also the documentation of every key.
pub const DEFAULTS: &str = include_str!("../config/default.toml");

/// Prefix of environment variables that override config keys.
const ENV_PREFIX: &str = "BRIDGE_";

/// Source kinds a route may name. One entry per file in `src/sources/`.
pub const SOURCES: &[&str] = &[
    "shopify",
    "hubspot",
    "square",
    "woocommerce",
    "stripe",
    "standard",
    "pipedrive",
    "generic",
];

/// The whole effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub store: StoreConfig,
    pub vendasta: VendastaConfig,
    pub delivery: DeliveryConfig,
    pub telemetry: TelemetryConfig,
    pub routes: Vec<RouteConfig>,
}

/// The public listener that receives webhooks.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerConfig {
    /// Address the public listener binds.
    pub listen_address: SocketAddr,
    /// Requests with a larger body get 413 before anything else is done with them.
    pub max_body_bytes: usize,
    /// Drain budget after SIGTERM; must stay below the orchestrator's grace period.
    pub shutdown_timeout_seconds: u64,
    /// How long a client may take to send a request's headers, and then its body. A
    /// slower one is cut off (headers: the connection is closed; body: 408, then closed),
    /// so slow or stalled senders cannot hold connections open.
    pub request_read_timeout_seconds: u64,
}

/// The admin listener: health, readiness (and later metrics and the admin API).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AdminConfig {
    /// Address the admin listener binds; keep it off the public network.
    pub listen_address: SocketAddr,
    /// Bearer token for `/admin/*`; without it the admin API is off (health and metrics
    /// stay on).
    #[serde(default)]
    pub token: Option<Secret>,
}

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LogConfig {
    /// `json` for log shippers, `pretty` for a terminal.
    pub format: LogFormat,
}

/// OpenTelemetry traces (only in a binary built with `--features otel`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TelemetryConfig {
    /// OTLP/HTTP collector base URL, e.g. `http://otel-collector:4318`; spans go to
    /// `<base>/v1/traces`. Empty turns traces off.
    pub otlp_endpoint: String,
    /// `service.name` on every exported span.
    pub service_name: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The durable queue.
#[derive(Clone, Deserialize, Serialize)]
pub struct StoreConfig {
    /// `sqlite://PATH` (one replica; the file and its directory are created if missing)
    /// or `postgres://USER:PASSWORD@HOST:PORT/DATABASE` (several replicas share it).
    /// Printed and logged only with the password redacted.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    /// Most connections one replica opens to PostgreSQL; ignored for SQLite.
    pub pool_size: u32,
    /// Done jobs (payload and dedupe key included) are deleted this many days after they
    /// finished; at least 7 so dedupe keys outlive providers' retry windows.
    pub retention_days: u64,
}

// Hand-written so that `{:?}` of the config can never print a database password.
impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &crate::store::redact_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

fn serialize_redacted_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&crate::store::redact_url(url))
}

impl StoreConfig {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_days.saturating_mul(86_400))
    }

    fn validate_store(&self, problems: &mut Vec<String>) {
        let url = crate::store::redact_url(&self.url);
        if !self.url.starts_with("sqlite:") && !crate::store::is_postgres_url(&self.url) {
            problems.push(format!(
                "store.url `{url}` is not supported: use sqlite://PATH (e.g. sqlite://data/bridge.db) for one replica, or postgres://USER:PASSWORD@HOST:PORT/DATABASE for several"
            ));
        }
        if crate::store::is_postgres_url(&self.url) && self.pool_size == 0 {
            problems.push(
                "store.pool_size is 0: set it to the most PostgreSQL connections one replica may open, e.g. 10"
                    .into(),
            );
        }
    }
}

/// Vendasta's customers API.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct VendastaConfig {
    /// Collection URL: POST creates, PATCH `{url}/{id}` updates.
    pub customers_url: String,
    /// Static bearer token. Exactly one of `token`, `credentials_file` and
    /// `credentials_json`; when none is set, `VENDASTA_TOKEN` from the environment is used.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Path of the service-account JSON file exactly as Partner Center downloads it.
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// The same JSON as `credentials_file`, inline (for an environment variable).
    #[serde(default)]
    pub credentials_json: Option<Secret>,
    /// OAuth scopes asked for when minting a service-account token, space-separated.
    pub scopes: String,
    /// Connect + response budget for one request.
    pub request_timeout_seconds: u64,
    /// Upper bound on requests in flight to Vendasta.
    pub concurrency: usize,
    /// Which API receives contacts: the (deprecated) customers API or the CRM API.
    pub api: UpstreamApi,
    /// CRM API base: contacts are upserted with `PATCH {crm_url}/{AG-…}/contacts`.
    pub crm_url: String,
    /// CRM field id → upsert operation, overriding `always_overwrite` for that field.
    #[serde(default)]
    pub crm_field_operations: BTreeMap<String, String>,
    /// Named credentials a route can pick with `routes[].vendasta_credentials`; each table
    /// takes exactly one of `token`, `credentials_file`, `credentials_json`.
    #[serde(default)]
    pub credentials: BTreeMap<String, CredentialConfig>,
}

/// One way to authenticate to Vendasta: a static token or a service account.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct CredentialConfig {
    /// Static bearer token.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Path of a Partner Center service-account JSON file.
    #[serde(default)]
    pub credentials_file: Option<String>,
    /// The service-account JSON itself.
    #[serde(default)]
    pub credentials_json: Option<Secret>,
}

/// The Vendasta API contacts are sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamApi {
    /// `POST/PATCH {customers_url}` (JSON:API; deprecated by Vendasta).
    Customers,
    /// `PATCH {crm_url}/{AG-…}/contacts` upserts (application/json).
    Crm,
}

/// CRM upsert operations Vendasta accepts (reference/vendasta.md §6).
pub const CRM_OPERATIONS: &[&str] = &[
    "always_overwrite",
    "overwrite_if_empty",
    "overwrite_if_newer",
    "combine",
];

/// Retry policy and worker timing.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DeliveryConfig {
    /// Delay before retry N (jittered ±20%); past the end the job is dead.
    pub retry_schedule_seconds: Vec<u64>,
    /// Jobs older than this are dead rather than retried.
    pub max_age_hours: u64,
    /// How long a claimed job belongs to one worker before another may take it.
    pub lease_seconds: u64,
    /// Idle poll period for due retries; new webhooks wake the worker at once.
    pub poll_interval_milliseconds: u64,
}

/// One webhook subscription: `POST /webhooks/{name}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RouteConfig {
    /// Path segment of the route's URL.
    pub name: String,
    /// Which provider signs and shapes the webhooks (`shopify`).
    pub source: String,
    /// Signing secrets; any one that matches accepts the request (rotation).
    #[serde(deserialize_with = "one_or_many")]
    pub secrets: Vec<Secret>,
    /// Vendasta business location (account group id, `AG-…`) for this route's customers.
    #[serde(default)]
    pub business_location: Option<String>,
    /// Tags added to every customer from this route.
    #[serde(default, deserialize_with = "one_or_many")]
    pub tags: Vec<String>,
    /// Tenant key → business location, for one route serving several provider accounts
    /// (Shopify shop domain, Square `merchant_id`, WooCommerce store URL, Stripe Connect
    /// account, Pipedrive company id, or the generic `mapping.tenant` value); matched
    /// case-insensitively; falls back to `business_location`. `shop_locations` is the
    /// older name and still accepted.
    #[serde(default, alias = "shop_locations")]
    pub tenant_locations: BTreeMap<String, String>,
    /// Square: the notification URL exactly as entered in the subscription; Square signs
    /// it together with the body.
    #[serde(default)]
    pub notification_url: Option<String>,
    /// Stripe, Standard Webhooks and timestamped generic routes: a signed timestamp older
    /// or further in the future than this is refused (replay protection).
    #[serde(default = "default_timestamp_tolerance_seconds")]
    pub timestamp_tolerance_seconds: u64,
    /// Generic routes: how the provider signs its requests.
    #[serde(default)]
    pub signature: Option<SignatureConfig>,
    /// Standard Webhooks and generic routes: where the envelope and the contact's fields
    /// sit in the JSON body (JSON Pointers) and which event types are delivered.
    #[serde(default)]
    pub mapping: Option<MappingConfig>,
    /// Name of a `[vendasta.credentials.<name>]` table to use instead of the default
    /// `vendasta.token` / `vendasta.credentials_file` (one bridge serving several partners).
    #[serde(default)]
    pub vendasta_credentials: Option<String>,
    /// Shopify `customers/delete`: `ignore` (acknowledge, keep the Vendasta customer) or
    /// `delete` (delete the linked Vendasta customer).
    #[serde(default)]
    pub on_delete: OnDelete,
    /// HubSpot: the exact public URL HubSpot calls (its v3 signature covers it); the
    /// bridge cannot know it behind a proxy.
    #[serde(default)]
    pub public_url: Option<String>,
    /// HubSpot: the private app or OAuth access token used to read contacts
    /// (scope `crm.objects.contacts.read`).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// HubSpot: base URL of HubSpot's API.
    #[serde(default = "default_hubspot_api_base_url")]
    pub api_base_url: String,
}

/// What a route does when the provider reports a deleted contact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDelete {
    /// Acknowledge and keep the Vendasta customer (the safe default).
    #[default]
    Ignore,
    /// Delete the linked Vendasta customer.
    Delete,
}

fn default_hubspot_api_base_url() -> String {
    "https://api.hubapi.com".into()
}

impl RouteConfig {
    /// The business location for a webhook from `tenant` (e.g. a shop domain).
    pub fn location_for(&self, tenant: Option<&str>) -> Option<&str> {
        tenant
            .and_then(|t| {
                self.tenant_locations
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(t))
                    .map(|(_, location)| location)
            })
            .or(self.business_location.as_ref())
            .map(String::as_str)
    }
}

impl ServerConfig {
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_seconds)
    }

    pub fn request_read_timeout(&self) -> Duration {
        Duration::from_secs(self.request_read_timeout_seconds)
    }
}

impl VendastaConfig {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    /// The default credential (the `vendasta.token` / `credentials_*` keys).
    pub fn default_credential(&self) -> CredentialConfig {
        CredentialConfig {
            token: self.token.clone(),
            credentials_file: self.credentials_file.clone(),
            credentials_json: self.credentials_json.clone(),
        }
    }

    /// Checks the auth, API and CRM keys.
    fn validate_auth(&self, routes: &[RouteConfig], problems: &mut Vec<String>) {
        let default = self.default_credential();
        // The default is needed unless every route names its own credential.
        let default_used = routes.is_empty()
            || routes
                .iter()
                .any(|route| route.vendasta_credentials.is_none());
        let default_set = default.token.is_some()
            || default.credentials_file.is_some()
            || default.credentials_json.is_some();
        if default_used || default_set {
            default.validate(
                "vendasta",
                " (or set the environment variable VENDASTA_TOKEN)",
                problems,
            );
        }
        for (name, credential) in &self.credentials {
            credential.validate(&format!("vendasta.credentials.{name}"), "", problems);
        }
        if self.scopes.split_whitespace().next().is_none() {
            problems.push("vendasta.scopes is empty: list the OAuth scopes to ask for, space-separated, e.g. \"customers\"".into());
        }
        if self.api == UpstreamApi::Crm {
            check_http_url("vendasta.crm_url", &self.crm_url, problems);
        }
        for (field, operation) in &self.crm_field_operations {
            if !CRM_OPERATIONS.contains(&operation.as_str()) {
                problems.push(format!(
                    "vendasta.crm_field_operations.{field} is `{operation}`: use one of {}",
                    CRM_OPERATIONS.join(", ")
                ));
            }
        }
        for (i, route) in routes.iter().enumerate() {
            if let Some(name) = &route.vendasta_credentials
                && !self.credentials.contains_key(name)
            {
                problems.push(format!(
                    "routes[{i}].vendasta_credentials names `{name}`, but there is no [vendasta.credentials.{name}] table: add it or fix the name"
                ));
            }
        }
    }
}

impl CredentialConfig {
    /// Exactly one of the three keys must be set and non-empty.
    fn validate(&self, key: &str, hint: &str, problems: &mut Vec<String>) {
        let set: Vec<&str> = [
            ("token", self.token.as_ref().map(Secret::expose)),
            ("credentials_file", self.credentials_file.as_deref()),
            (
                "credentials_json",
                self.credentials_json.as_ref().map(Secret::expose),
            ),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|_| name))
        .collect();
        match set.as_slice() {
            [] => problems.push(format!(
                "{key} has no Vendasta credentials: set {key}.token to an API token{hint}, or {key}.credentials_file to the service-account JSON file from Partner Center (or {key}.credentials_json to its content)"
            )),
            [one] => {
                let empty = match *one {
                    "token" => self.token.as_ref().is_some_and(|t| t.expose().trim().is_empty()),
                    "credentials_file" => self.credentials_file.as_deref().is_some_and(|f| f.trim().is_empty()),
                    _ => self.credentials_json.as_ref().is_some_and(|j| j.expose().trim().is_empty()),
                };
                if empty {
                    problems.push(format!(
                        "{key}.{one} is empty: set it (if it comes from ${{VAR}}, that variable is set but empty)"
                    ));
                }
            }
            many => problems.push(format!(
                "{key} sets {}: use exactly one of {key}.token, {key}.credentials_file and {key}.credentials_json",
                many.iter().map(|name| format!("{key}.{name}")).collect::<Vec<_>>().join(" and ")
            )),
        }
    }
}

impl DeliveryConfig {
    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_milliseconds)
    }
    pub fn max_age(&self) -> Duration {
        Duration::from_secs(self.max_age_hours * 3600)
    }
}

/// A secret value: its `Debug` and `Serialize` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value itself, for the one place that needs it (signing, the auth header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // An environment override like BRIDGE_VENDASTA__TOKEN=123456 arrives as a TOML
        // integer; a secret is still a string.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(i64),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => Secret(text),
            Raw::Number(number) => Secret(number.to_string()),
        })
    }
}

/// Accepts a single value where a list is expected (`secrets = "x"` or an env override).
fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany<T> {
        Many(Vec<T>),
        One(T),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::Many(values) => values,
        OneOrMany::One(value) => vec![value],
    })
}

/// Every problem found while loading, each a full sentence naming the key and the fix.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "the configuration has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Loads defaults, then `file` (if any), then `BRIDGE_*` variables from the process
    /// environment, expanding `${VAR}` from the same environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => Some(std::fs::read_to_string(path).map_err(|error| ConfigError {
                problems: vec![format!(
                    "cannot read config file {}: {error}; check the --config path or BRIDGE_CONFIG",
                    path.display()
                )],
            })?),
            None => None,
        };
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let origin = file.map(|p| p.display().to_string());
        Self::from_sources(text.as_deref(), origin.as_deref(), &env)
    }

    /// Builds a config from the defaults, an optional file body and an explicit environment,
    /// without touching the process environment (tests use this).
    pub fn from_sources(
        file: Option<&str>,
        origin: Option<&str>,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut root: Table = DEFAULTS.parse().map_err(|error| ConfigError {
            problems: vec![format!("the compiled-in defaults do not parse: {error}")],
        })?;
        if let Some(text) = file {
            match text.parse::<Table>() {
                Ok(overlay) => merge(&mut root, overlay),
                Err(error) => {
                    let name = origin.unwrap_or("the config file");
                    return Err(ConfigError {
                        problems: vec![format!("{name} is not valid TOML: {error}")],
                    });
                }
            }
        }
        apply_env_overrides(&mut root, env, &mut problems);
        default_token_from_env(&mut root, env);
        expand_table(&mut root, "", env, &mut problems);
        let config = deserialize_sections(root, &mut problems);
        if let Some(config) = &config {
            config.validate(&mut problems);
        }
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError { problems }),
        }
    }

    /// Checks the keys that issue 6 (operations) added.
    fn validate_operations(&self, problems: &mut Vec<String>) {
        if let Some(token) = &self.admin.token
            && token.expose().trim().len() < 16
        {
            problems.push("admin.token is shorter than 16 characters: use a long random value (e.g. `openssl rand -hex 32`), or remove the key to turn the admin API off".into());
        }
        if self.store.retention_days < 7 {
            problems.push(format!(
                "store.retention_days is {}: use at least 7, because a done job is also its webhook's dedupe key and providers retry for up to days (Shopify: 48 hours)",
                self.store.retention_days
            ));
        }
    }

    /// The effective config as TOML, secrets shown as `[redacted]`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|error| format!("# cannot render config: {error}\n"))
    }

    fn validate(&self, problems: &mut Vec<String>) {
        self.validate_operations(problems);
        self.validate_telemetry(problems);
        if self.server.max_body_bytes == 0 {
            problems.push(
                "server.max_body_bytes is 0: set it to the largest body to accept, e.g. 1048576"
                    .into(),
            );
        }
        if self.server.request_read_timeout_seconds == 0 {
            problems.push(
                "server.request_read_timeout_seconds is 0: use at least 1, e.g. 10 (a provider sends a webhook's headers and body within a second or two)"
                    .into(),
            );
        }
        if self.server.listen_address == self.admin.listen_address
            && self.server.listen_address.port() != 0
        {
            problems.push(format!(
                "server.listen_address and admin.listen_address are both {}: give the admin listener its own port",
                self.server.listen_address
            ));
        }
        self.store.validate_store(problems);
        check_http_url(
            "vendasta.customers_url",
            &self.vendasta.customers_url,
            problems,
        );
        self.vendasta.validate_auth(&self.routes, problems);
        if self.vendasta.request_timeout_seconds == 0 {
            problems.push("vendasta.request_timeout_seconds is 0: use at least 1, e.g. 10".into());
        }
        if !(1..=1024).contains(&self.vendasta.concurrency) {
            problems.push(format!(
                "vendasta.concurrency is {}: use a number from 1 to 1024, e.g. 8",
                self.vendasta.concurrency
            ));
        }
        if self.delivery.retry_schedule_seconds.is_empty() {
            problems.push("delivery.retry_schedule_seconds is empty: list at least one delay, e.g. [5, 30, 120]".into());
        }
        if self.delivery.max_age_hours == 0 {
            problems.push("delivery.max_age_hours is 0: use at least 1, e.g. 72".into());
        }
        if self.delivery.lease_seconds <= self.vendasta.request_timeout_seconds {
            problems.push(format!(
                "delivery.lease_seconds ({}) must exceed vendasta.request_timeout_seconds ({}), or a slow request could be delivered twice: raise it, e.g. to {}",
                self.delivery.lease_seconds,
                self.vendasta.request_timeout_seconds,
                self.vendasta.request_timeout_seconds * 2 + 30
            ));
        }
        if self.delivery.poll_interval_milliseconds == 0 {
            problems.push(
                "delivery.poll_interval_milliseconds is 0: use at least 10, e.g. 1000".into(),
            );
        }
        if self.routes.is_empty() {
            problems.push("no routes are configured: add a [[routes]] table to the config file (see config/example.toml) or set BRIDGE_ROUTES__0__NAME, __SOURCE, __SECRETS and __BUSINESS_LOCATION".into());
        }
        let mut names = HashSet::new();
        for (i, route) in self.routes.iter().enumerate() {
            route.validate(&format!("routes[{i}]"), &mut names, problems);
        }
        self.validate_source_keys(problems);
        self.validate_hubspot_routes(problems);
        for (i, route) in self.routes.iter().enumerate() {
            if route.on_delete == OnDelete::Delete && self.vendasta.api == UpstreamApi::Crm {
                problems.push(format!(
                    "routes[{i}].on_delete = \"delete\" needs vendasta.api = \"customers\": the bridge does not delete CRM contacts; set on_delete = \"ignore\""
                ));
            }
        }
    }

    /// HubSpot routes need the URL HubSpot signs and a token to read contacts with.
    fn validate_hubspot_routes(&self, problems: &mut Vec<String>) {
        for (i, route) in self.routes.iter().enumerate() {
            if route.source != "hubspot" {
                continue;
            }
            let key = format!("routes[{i}]");
            match &route.public_url {
                None => problems.push(format!(
                    "{key}.public_url is missing: HubSpot signs the full URL it calls, so set it to the exact target URL configured in the HubSpot app, e.g. https://bridge.example.com/webhooks/{}",
                    route.name
                )),
                Some(url) => check_http_url(&format!("{key}.public_url"), url, problems),
            }
            if route
                .access_token
                .as_ref()
                .is_none_or(|token| token.expose().trim().is_empty())
            {
                problems.push(format!(
                    "{key}.access_token is missing or empty: set it to the HubSpot app's access token with scope crm.objects.contacts.read (webhooks carry only the contact id; the bridge reads the contact with it)"
                ));
            }
            check_http_url(
                &format!("{key}.api_base_url"),
                &route.api_base_url,
                problems,
            );
        }
    }
}

impl RouteConfig {
    fn validate(&self, key: &str, names: &mut HashSet<String>, problems: &mut Vec<String>) {
        let valid_name = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            problems.push(format!(
                "{key}.name `{}` is not a valid route name: use letters, digits, `-` and `_` only (it becomes /webhooks/<name>)",
                self.name
            ));
        } else if !names.insert(self.name.clone()) {
            problems.push(format!(
                "{key}.name `{}` is used by another route: give each route its own name",
                self.name
            ));
        }
        if !SOURCES.contains(&self.source.as_str()) {
            problems.push(format!(
                "{key}.source `{}` is not a known source: use one of {}",
                self.source,
                SOURCES.join(", ")
            ));
        }
        if self.secrets.is_empty() {
            problems.push(format!(
                "{key}.secrets is empty: a route must have at least one signing secret (the provider's webhook secret), or anyone could post to it"
            ));
        }
        for (j, secret) in self.secrets.iter().enumerate() {
            if secret.expose().trim().is_empty() {
                problems.push(format!(
                    "{key}.secrets[{j}] is empty: set it to the provider's webhook signing secret (if it comes from ${{VAR}}, that variable is set but empty)"
                ));
            }
        }
        if self.business_location.is_none() && self.tenant_locations.is_empty() {
            problems.push(format!(
                "{key} has no business location: set {key}.business_location = \"AG-…\" (or map tenants in {key}.tenant_locations)"
            ));
        }
        if let Some(location) = &self.business_location {
            check_location(&format!("{key}.business_location"), location, problems);
        }
        for (shop, location) in &self.tenant_locations {
            check_location(
                &format!("{key}.tenant_locations.\"{shop}\""),
                location,
                problems,
            );
        }
        for (j, tag) in self.tags.iter().enumerate() {
            if tag.trim().is_empty() {
                problems.push(format!(
                    "{key}.tags[{j}] is empty: Vendasta rejects empty tags; remove it"
                ));
            }
        }
    }
}

fn check_location(key: &str, value: &str, problems: &mut Vec<String>) {
    let ok = value
        .strip_prefix("AG-")
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()));
    if !ok {
        problems.push(format!(
            "{key} `{value}` is not a business location id: use the account group id from Partner Center, e.g. AG-1234567"
        ));
    }
}

fn check_http_url(key: &str, value: &str, problems: &mut Vec<String>) {
    let (scheme, rest) = value.split_once("://").unwrap_or(("", ""));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let ok = matches!(scheme, "http" | "https")
        && !host.is_empty()
        && !value.chars().any(char::is_whitespace)
        && url_parses(value);
    if !ok {
        problems.push(format!(
            "{key} `{value}` is not a valid http(s) URL: use a full URL such as https://prod.apigateway.co/business/customers"
        ));
    }
}

fn url_parses(value: &str) -> bool {
    value
        .parse::<http::Uri>()
        .is_ok_and(|uri| uri.host().is_some())
}

/// Overlays `overlay` onto `base`; tables merge key by key, anything else replaces.
fn merge(base: &mut Table, overlay: Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(base_table)), Value::Table(overlay_table)) => {
                merge(base_table, overlay_table)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// With no `vendasta.token`, `credentials_file` or `credentials_json` anywhere, the
/// token comes from `VENDASTA_TOKEN`: a token-only deployment needs nothing else, and a
/// deployment with a credentials file does not need that variable at all.
fn default_token_from_env(root: &mut Table, env: &BTreeMap<String, String>) {
    let Some(token) = env.get("VENDASTA_TOKEN") else {
        return;
    };
    let vendasta = root
        .entry("vendasta")
        .or_insert_with(|| Value::Table(Table::new()));
    if let Value::Table(vendasta) = vendasta
        && !["token", "credentials_file", "credentials_json"]
            .iter()
            .any(|key| vendasta.contains_key(*key))
    {
        vendasta.insert("token".into(), Value::String(token.clone()));
    }
}

/// Applies `BRIDGE_SECTION__KEY` (and `BRIDGE_ROUTES__N__KEY`) variables.
fn apply_env_overrides(
    root: &mut Table,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        // BRIDGE_CONFIG and other single-word variables are not key overrides.
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if let Err(problem) = set_path(root, &path, env_value(raw)) {
            problems.push(format!("{name}: {problem}"));
        }
    }
}

/// An override is read as a TOML value when it is one (`8`, `true`, `["a", "b"]`,
/// `{ "a.myshopify.com" = "AG-1" }`) and as a plain string otherwise.
fn env_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut table| table.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

fn set_path(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (first, rest) = path.split_first().ok_or("names no key")?;
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    if first == "routes" {
        let (index, rest) = rest.split_first().ok_or("names no key")?;
        let index: usize = index
            .parse()
            .map_err(|_| format!("`{index}` is not a route index: use BRIDGE_ROUTES__0__NAME, BRIDGE_ROUTES__1__NAME, …"))?;
        let routes = table
            .entry("routes")
            .or_insert_with(|| Value::Array(Vec::new()));
        let Value::Array(routes) = routes else {
            return Err("`routes` is not a list of tables".into());
        };
        if index > routes.len() {
            return Err(format!(
                "there are {} routes before this one, so index {index} leaves a gap: number routes from 0 without gaps",
                routes.len()
            ));
        }
        if index == routes.len() {
            routes.push(Value::Table(Table::new()));
        }
        let Some(Value::Table(route)) = routes.get_mut(index) else {
            return Err(format!("routes[{index}] is not a table"));
        };
        if rest.is_empty() {
            return Err("names a route but no key: add __NAME, __SOURCE, …".into());
        }
        return set_path(route, rest, value);
    }
    let entry = table
        .entry(first.clone())
        .or_insert_with(|| Value::Table(Table::new()));
    match entry {
        Value::Table(inner) => set_path(inner, rest, value),
        _ => Err(format!("`{first}` is not a section, so it has no sub-keys")),
    }
}

/// Replaces `${VAR}` in every string, recording each missing variable with its key.
fn expand_table(
    table: &mut Table,
    prefix: &str,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        expand_value(value, &path, env, problems);
    }
}

fn expand_value(
    value: &mut Value,
    path: &str,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) {
    match value {
        Value::String(text) => match expand_vars(text, env) {
            Ok(expanded) => *text = expanded,
            Err(missing) => {
                for var in missing {
                    problems.push(format!(
                        "{path} refers to ${{{var}}}, but the environment variable {var} is not set: set it, or change {path}"
                    ));
                }
            }
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{path}[{i}]"), env, problems);
            }
        }
        Value::Table(table) => expand_table(table, path, env, problems),
        _ => {}
    }
}

/// Expands `${NAME}`; `$$` is a literal `$`; any other `$` stays as it is.
fn expand_vars(text: &str, env: &BTreeMap<String, String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{')
            && let Some(end) = body.find('}')
        {
            let name = &body[..end];
            match env.get(name) {
                Some(value) => out.push_str(value),
                None => missing.push(name.to_string()),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// Deserializes each section on its own so that one bad value does not hide the others.
fn deserialize_sections(mut root: Table, problems: &mut Vec<String>) -> Option<Config> {
    let server = section::<ServerConfig>(&mut root, "server", problems);
    let admin = section::<AdminConfig>(&mut root, "admin", problems);
    let log = section::<LogConfig>(&mut root, "log", problems);
    let store = section::<StoreConfig>(&mut root, "store", problems);
    let vendasta = section::<VendastaConfig>(&mut root, "vendasta", problems);
    let delivery = section::<DeliveryConfig>(&mut root, "delivery", problems);
    let telemetry = section::<TelemetryConfig>(&mut root, "telemetry", problems);
    let routes = match root.remove("routes") {
        None => Some(Vec::new()),
        Some(Value::Array(items)) => {
            let mut routes = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                if let Some(route) = typed::<RouteConfig>(item, &format!("routes[{i}]"), problems) {
                    routes.push(route);
                }
            }
            Some(routes)
        }
        Some(_) => {
            problems.push("routes must be a list of [[routes]] tables".into());
            None
        }
    };
    for key in root.keys() {
        problems.push(format!(
            "unknown section or key `{key}`: remove it or check its spelling against config/default.toml"
        ));
    }
    Some(Config {
        server: server?,
        admin: admin?,
        log: log?,
        store: store?,
        vendasta: vendasta?,
        delivery: delivery?,
        telemetry: telemetry?,
        routes: routes?,
    })
}

fn section<T: DeserializeOwned>(
    root: &mut Table,
    name: &str,
    problems: &mut Vec<String>,
) -> Option<T> {
    let value = root
        .remove(name)
        .unwrap_or_else(|| Value::Table(Table::new()));
    typed(value, name, problems)
}

/// Deserializes `value`, reporting unknown keys and the first type error with full key paths.
fn typed<T: DeserializeOwned>(value: Value, prefix: &str, problems: &mut Vec<String>) -> Option<T> {
    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = {
        let inner = serde_path_to_error::Deserializer::new(value, &mut track);
        serde_ignored::deserialize(inner, |path| unknown.push(path.to_string()))
    };
    for path in unknown {
        problems.push(format!(
            "unknown key `{prefix}.{path}`: remove it or check its spelling against config/default.toml"
        ));
    }
    match result {
        Ok(value) => Some(value),
        Err(error) => {
            let path = track.path().to_string();
            let key = if path == "." || path.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{path}")
            };
            problems.push(format!("{key}: {error}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const ROUTE: &str = r#"
        [[routes]]
        name = "acme"
        source = "shopify"
        secrets = ["${SHOPIFY_WEBHOOK_SECRET}"]
        business_location = "AG-123"
    "#;

    #[test]
    fn defaults_plus_a_route_and_variables_load() {
        let vars = env(&[("VENDASTA_TOKEN", "tok"), ("SHOPIFY_WEBHOOK_SECRET", "s3")]);
        let config = Config::from_sources(Some(ROUTE), None, &vars).unwrap();
        assert_eq!(config.server.listen_address.port(), 8080);
        assert_eq!(config.vendasta.token.as_ref().unwrap().expose(), "tok");
        assert_eq!(config.routes[0].secrets[0].expose(), "s3");
        assert_eq!(config.delivery.retry_schedule_seconds.len(), 8);
    }

    #[test]
    fn environment_overrides_sections_and_defines_routes() {
        let vars = env(&[
            ("BRIDGE_VENDASTA__TOKEN", "123456"),
            ("BRIDGE_VENDASTA__CONCURRENCY", "16"),
            ("BRIDGE_ROUTES__0__NAME", "shop"),
            ("BRIDGE_ROUTES__0__SOURCE", "shopify"),
            ("BRIDGE_ROUTES__0__SECRETS", "abc"),
            ("BRIDGE_ROUTES__0__BUSINESS_LOCATION", "AG-9"),
            (
                "BRIDGE_ROUTES__0__SHOP_LOCATIONS",
                r#"{ "a.myshopify.com" = "AG-7" }"#,
            ),
            ("BRIDGE_CONFIG", "ignored.toml"),
        ]);
        let config = Config::from_sources(None, None, &vars).unwrap();
        assert_eq!(config.vendasta.token.as_ref().unwrap().expose(), "123456");
        assert_eq!(config.vendasta.concurrency, 16);
        let route = &config.routes[0];
        assert_eq!(route.name, "shop");
        assert_eq!(route.secrets, vec![Secret::new("abc")]);
        assert_eq!(route.location_for(Some("A.myshopify.com")), Some("AG-7"));
        assert_eq!(
            route.location_for(Some("other.myshopify.com")),
            Some("AG-9")
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let file = r#"
            [server]
            listen_adress = "0.0.0.0:1"
            [vendasta]
            customers_url = "not a url"
            [[routes]]
            name = "acme"
            source = "shopify"
            secrets = [""]
            business_location = "AG-1"
            [[routes]]
            name = "b"
            source = "shopify"
            secrets = ["${MISSING_SECRET}"]
            business_location = "AG-2"
        "#;
        let error =
            Config::from_sources(Some(file), None, &env(&[("VENDASTA_TOKEN", "t")])).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("server.listen_adress"), "{text}");
        assert!(
            text.contains("vendasta.customers_url `not a url`"),
            "{text}"
        );
        assert!(text.contains("routes[0].secrets[0] is empty"), "{text}");
        assert!(
            text.contains("routes[1].secrets[0] refers to ${MISSING_SECRET}"),
            "{text}"
        );
        assert_eq!(error.problems.len(), 4, "{text}");
    }

    #[test]
    fn a_zero_request_read_timeout_is_refused_naming_the_key() {
        let vars = env(&[("VENDASTA_TOKEN", "t"), ("SHOPIFY_WEBHOOK_SECRET", "s")]);
        let defaults = Config::from_sources(Some(ROUTE), None, &vars).unwrap();
        assert_eq!(
            defaults.server.request_read_timeout(),
            Duration::from_secs(10)
        );

        let file = format!("[server]\nrequest_read_timeout_seconds = 0\n{ROUTE}");
        let error = Config::from_sources(Some(&file), None, &vars).unwrap_err();

        assert_eq!(error.problems.len(), 1, "{error}");
        assert!(
            error.problems[0].contains("server.request_read_timeout_seconds is 0"),
            "{error}"
        );
    }

    #[test]
    fn no_credentials_at_all_names_the_token_variable_and_the_credentials_file() {
        let error =
            Config::from_sources(Some(ROUTE), None, &env(&[("SHOPIFY_WEBHOOK_SECRET", "s")]))
                .unwrap_err();
        assert_eq!(error.problems.len(), 1, "{error}");
        assert!(error.problems[0].contains("vendasta.token"), "{error}");
        assert!(error.problems[0].contains("VENDASTA_TOKEN"), "{error}");
        assert!(
            error.problems[0].contains("vendasta.credentials_file"),
            "{error}"
        );
    }

    #[test]
    fn a_credentials_file_alone_needs_no_token_variable() {
        let file = format!("[vendasta]\ncredentials_file = \"/secrets/vendasta.json\"\n{ROUTE}");
        let config =
            Config::from_sources(Some(&file), None, &env(&[("SHOPIFY_WEBHOOK_SECRET", "s")]))
                .unwrap();
        assert!(config.vendasta.token.is_none());
        assert_eq!(
            config.vendasta.credentials_file.as_deref(),
            Some("/secrets/vendasta.json")
        );
    }

    #[test]
    fn the_credentials_json_can_come_whole_from_an_environment_variable() {
        let json = r#"{"type": "service_account", "private_key": "-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----\n", "assertionHeaderData": {"alg": "RS256"}}"#;
        let vars = env(&[
            ("BRIDGE_VENDASTA__CREDENTIALS_JSON", json),
            ("SHOPIFY_WEBHOOK_SECRET", "s"),
            ("VENDASTA_TOKEN", "ignored-when-credentials-are-set"),
        ]);
        let config = Config::from_sources(Some(ROUTE), None, &vars).unwrap();
        assert_eq!(config.vendasta.credentials_json.unwrap().expose(), json);
        assert!(config.vendasta.token.is_none());
    }

    #[test]
    fn a_token_and_a_credentials_file_together_are_an_error_naming_both_keys() {
        let file =
            format!("[vendasta]\ntoken = \"t\"\ncredentials_file = \"/secrets/v.json\"\n{ROUTE}");
        let error =
            Config::from_sources(Some(&file), None, &env(&[("SHOPIFY_WEBHOOK_SECRET", "s")]))
                .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("vendasta.token and vendasta.credentials_file"),
            "{text}"
        );
        assert_eq!(error.problems.len(), 1, "{text}");
    }

    #[test]
    fn routes_name_existing_credential_tables_and_crm_operations_are_checked() {
        let file = r#"
            [vendasta]
            token = "t"
            api = "crm"
            [vendasta.crm_field_operations]
            standard__email = "sometimes"
            [vendasta.credentials.partner_b]
            credentials_json = "{}"
            [[routes]]
            name = "a"
            source = "shopify"
            secrets = ["s"]
            business_location = "AG-1"
            vendasta_credentials = "partner_b"
            [[routes]]
            name = "b"
            source = "shopify"
            secrets = ["s"]
            business_location = "AG-1"
            vendasta_credentials = "partner_c"
        "#;
        let error = Config::from_sources(Some(file), None, &env(&[])).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("vendasta.crm_field_operations.standard__email"),
            "{text}"
        );
        assert!(
            text.contains("routes[1].vendasta_credentials names `partner_c`"),
            "{text}"
        );
        assert_eq!(error.problems.len(), 2, "{text}");
    }

    #[test]
    fn wrong_types_and_routes_without_secrets_are_errors() {
        let file = r#"
            [vendasta]
            concurrency = "many"
            [[routes]]
            name = "acme"
            source = "square-ish"
            business_location = "AG-1"
        "#;
        let error =
            Config::from_sources(Some(file), None, &env(&[("VENDASTA_TOKEN", "t")])).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("vendasta.concurrency"), "{text}");
        assert!(
            text.contains("routes[0]: missing field `secrets`"),
            "{text}"
        );
    }

    #[test]
    fn expansion_handles_escapes_and_plain_dollars() {
        let vars = env(&[("A", "x")]);
        assert_eq!(expand_vars("p$$q${A}$z", &vars).unwrap(), "p$qx$z");
        assert_eq!(expand_vars("${B}${C}", &vars).unwrap_err(), vec!["B", "C"]);
    }

    #[test]
    fn redacted_output_hides_secrets() {
        let vars = env(&[
            ("VENDASTA_TOKEN", "tok-abc"),
            ("SHOPIFY_WEBHOOK_SECRET", "s3cr3t"),
        ]);
        let config = Config::from_sources(Some(ROUTE), None, &vars).unwrap();
        let text = config.to_redacted_toml();
        assert!(
            !text.contains("tok-abc") && !text.contains("s3cr3t"),
            "{text}"
        );
        assert!(text.contains("[redacted]"));
        assert!(format!("{config:?}").contains("[redacted]"));
    }

    #[test]
    fn a_postgres_store_url_is_accepted_and_its_password_never_shown() {
        let vars = env(&[
            ("VENDASTA_TOKEN", "tok-abc"),
            ("SHOPIFY_WEBHOOK_SECRET", "s3cr3t"),
            (
                "BRIDGE_STORE__URL",
                "postgresql://bridge:pg-pass@db:5432/bridge",
            ),
            ("BRIDGE_STORE__POOL_SIZE", "4"),
        ]);
        let config = Config::from_sources(Some(ROUTE), None, &vars).unwrap();
        assert_eq!(config.store.pool_size, 4);
        let shown = [config.to_redacted_toml(), format!("{config:?}")];
        for text in shown {
            assert!(!text.contains("pg-pass"), "{text}");
            assert!(text.contains("bridge:[redacted]@db:5432/bridge"), "{text}");
        }
    }

    #[test]
    fn an_unsupported_store_url_and_an_empty_pool_are_reported_without_the_password() {
        let vars = env(&[
            ("VENDASTA_TOKEN", "tok-abc"),
            ("SHOPIFY_WEBHOOK_SECRET", "s3cr3t"),
            ("BRIDGE_STORE__URL", "mysql://bridge:pg-pass@db/bridge"),
        ]);
        let problems = Config::from_sources(Some(ROUTE), None, &vars)
            .unwrap_err()
            .problems;
        let text = problems.join("\n");
        assert!(
            text.contains("store.url `mysql://bridge:[redacted]@db/bridge` is not supported"),
            "{text}"
        );
        assert!(!text.contains("pg-pass"), "{text}");
        let vars = env(&[
            ("VENDASTA_TOKEN", "tok-abc"),
            ("SHOPIFY_WEBHOOK_SECRET", "s3cr3t"),
            ("BRIDGE_STORE__URL", "postgres://bridge@db/bridge"),
            ("BRIDGE_STORE__POOL_SIZE", "0"),
        ]);
        let problems = Config::from_sources(Some(ROUTE), None, &vars)
            .unwrap_err()
            .problems;
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("store.pool_size is 0")),
            "{problems:?}"
        );
    }
}
