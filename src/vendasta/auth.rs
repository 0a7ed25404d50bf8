//! Vendasta credentials: a static bearer token, or a Partner Center service account whose
//! short-lived access tokens are minted, cached and refreshed here.
//!
//! Owns reading the service-account JSON (`vendasta.credentials_file` /
//! `credentials_json`, exactly as Partner Center downloads it), signing the JWT assertion
//! (`alg`/`kid` from `assertionHeaderData`; `aud`/`iss`/`sub` from `assertionPayloadData`),
//! exchanging it at `token_uri`, and caching one token per credential for every worker.
//! A token is replaced [`REFRESH_MARGIN`] before it expires, by whichever caller finds it
//! due while the others wait for that one request (single flight). It never logs or
//! returns a key, an assertion or a token in any message; failures are reported to
//! [`Health`] so `/readyz` can say why deliveries wait. It decides nothing about jobs.

use std::{
    collections::BTreeMap,
    fmt,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::{
    config::{Config, CredentialConfig, Secret},
    health::Health,
    vendasta::client::{http_client, redact_pii},
};

/// Name of the credential made of the top-level `vendasta.token` / `credentials_*` keys.
pub const DEFAULT_CREDENTIAL: &str = "default";
/// `exp - iat` of an assertion: Vendasta recommends 10 minutes or less.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);
/// Lifetime assumed when the token endpoint sends no `expires_in`: Vendasta documents none,
/// so a short one, which at worst costs one extra mint every 9 minutes.
pub const ASSUMED_TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// A token with less than this left is replaced before it is used.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// After a failed mint, callers within this window get the same error without a new
/// request, so a down token endpoint sees one request per second, not one per job.
const FAILURE_HOLD: Duration = Duration::from_secs(1);
/// Characters of the token endpoint's error text kept in a message.
const MAX_TEXT_CHARS: usize = 300;
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Why a credential cannot be loaded or a token cannot be minted. Messages name the key
/// or the endpoint and never contain the key, the assertion or a token.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read {key} `{path}`: {reason}; check the path and that the file is mounted")]
    Read {
        key: String,
        path: String,
        reason: String,
    },
    #[error(
        "{key} is not a Partner Center service-account file ({reason}); use the JSON file exactly as downloaded from Partner Center (Administration → Service Accounts → Manage Keys)"
    )]
    Malformed { key: String, reason: String },
    #[error(
        "{key}: the private key cannot be used for {alg} ({reason}); generate a new key in Partner Center (Service Accounts → Manage Keys) and replace the file"
    )]
    BadKey {
        key: String,
        alg: String,
        reason: String,
    },
    #[error("signing the token assertion failed: {0}")]
    Sign(String),
    #[error("could not build the http client for the token endpoint")]
    HttpClient,
    #[error("the token endpoint {uri} is unreachable: {reason}")]
    Unreachable { uri: String, reason: String },
    #[error(
        "the token endpoint {uri} refused the assertion with {status}: {text}; check that the key is still active in Partner Center and that the file's assertionPayloadData (aud, iss, sub) and the scopes (vendasta.scopes) are right"
    )]
    Refused {
        uri: String,
        status: u16,
        text: String,
    },
    #[error("the token endpoint {uri} answered {status} without a usable access_token")]
    BadResponse { uri: String, status: u16 },
}

impl AuthError {
    /// Bounded code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Read { .. } => "credentials_unreadable",
            AuthError::Malformed { .. } => "credentials_malformed",
            AuthError::BadKey { .. } => "bad_key",
            AuthError::Sign(_) => "sign_failed",
            AuthError::HttpClient => "http_client_build",
            AuthError::Unreachable { .. } => "token_endpoint_unreachable",
            AuthError::Refused { .. } => "token_refused",
            AuthError::BadResponse { .. } => "token_response_unusable",
        }
    }

    /// A problem with the configured credential itself (exit 2), not with the endpoint.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            AuthError::Read { .. } | AuthError::Malformed { .. } | AuthError::BadKey { .. }
        )
    }
}

/// The service-account file as Partner Center writes it (reference/vendasta.md §2).
#[derive(Deserialize)]
struct ServiceAccountFile {
    private_key: String,
    token_uri: String,
    #[serde(rename = "assertionHeaderData")]
    header: AssertionHeader,
    #[serde(rename = "assertionPayloadData")]
    payload: AssertionPayload,
}

#[derive(Deserialize)]
struct AssertionHeader {
    alg: String,
    kid: Option<String>,
}

#[derive(Deserialize)]
struct AssertionPayload {
    aud: String,
    iss: String,
    sub: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
    scope: &'a str,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    /// A number in RFC 6749; some servers send a string.
    expires_in: Option<Value>,
}

/// A freshly minted token and what is known about it.
#[derive(Debug, Clone)]
pub struct Minted {
    pub token: Secret,
    /// `expires_in` as the endpoint sent it, if it did.
    pub expires_in: Option<Duration>,
    /// The lifetime used for caching: `expires_in`, or [`ASSUMED_TOKEN_LIFETIME`].
    pub lifetime: Duration,
}

struct Cached {
    token: Secret,
    refresh_at: Instant,
    expires_at: Instant,
}

#[derive(Default)]
struct State {
    token: Option<Cached>,
    failure: Option<(Instant, AuthError)>,
}

/// One service account: its signing key and its cached access token.
pub struct ServiceAccount {
    name: String,
    key: EncodingKey,
    header: Header,
    aud: String,
    iss: String,
    sub: String,
    scopes: String,
    token_uri: String,
    http: reqwest::Client,
    health: Health,
    state: Mutex<State>,
}

impl fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("name", &self.name)
            .field("sub", &self.sub)
            .field("token_uri", &self.token_uri)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Parses the JSON and its private key; no I/O. `key` names the config key for messages.
    pub fn from_json(
        name: &str,
        key: &str,
        json: &str,
        scopes: &str,
        http: reqwest::Client,
        health: Health,
    ) -> Result<Self, AuthError> {
        // serde_json's messages name the member and position, never the values.
        let file: ServiceAccountFile =
            serde_json::from_str(json).map_err(|error| AuthError::Malformed {
                key: key.to_owned(),
                reason: error.to_string(),
            })?;
        let alg = match file.header.alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => {
                return Err(AuthError::Malformed {
                    key: key.to_owned(),
                    reason: format!(
                        "assertionHeaderData.alg is `{other}`, expected RS256 or ES256"
                    ),
                });
            }
        };
        let pem = file.private_key.as_bytes();
        let signing_key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            _ => EncodingKey::from_rsa_pem(pem),
        }
        .map_err(|error| AuthError::BadKey {
            key: format!("{key} private_key"),
            alg: file.header.alg.clone(),
            reason: error.to_string(),
        })?;
        for (member, value) in [
            ("token_uri", &file.token_uri),
            ("assertionPayloadData.aud", &file.payload.aud),
            ("assertionPayloadData.iss", &file.payload.iss),
            ("assertionPayloadData.sub", &file.payload.sub),
        ] {
            if value.trim().is_empty() {
                return Err(AuthError::Malformed {
                    key: key.to_owned(),
                    reason: format!("{member} is empty"),
                });
            }
        }
        let mut header = Header::new(alg);
        header.kid = file.header.kid;
        Ok(Self {
            name: name.to_owned(),
            key: signing_key,
            header,
            aud: file.payload.aud,
            iss: file.payload.iss,
            sub: file.payload.sub,
            scopes: scopes.split_whitespace().collect::<Vec<_>>().join(" "),
            token_uri: file.token_uri,
            http,
            health,
            state: Mutex::default(),
        })
    }

    /// The service account's subject (`assertionPayloadData.sub`).
    pub fn subject(&self) -> &str {
        &self.sub
    }

    /// The scopes asked for, space-separated.
    pub fn scopes(&self) -> &str {
        &self.scopes
    }

    /// A token valid for at least [`REFRESH_MARGIN`], from the cache or freshly minted.
    pub async fn bearer(&self) -> Result<Secret, AuthError> {
        // A tokio mutex held across the mint on purpose: it is the single-flight guard, so
        // N workers that find the token due cause one request to the token endpoint and
        // then all use its answer. Nothing else is awaited under it.
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(cached) = &state.token
            && now < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        if let Some((at, error)) = &state.failure
            && now < *at + FAILURE_HOLD
        {
            return Err(error.clone());
        }
        self.refresh(&mut state).await
    }

    /// After Vendasta answered 401 to `rejected`: a new token, unless another caller has
    /// already replaced it (then that one), so one refusal causes at most one mint.
    pub async fn renew(&self, rejected: &Secret) -> Result<Secret, AuthError> {
        let mut state = self.state.lock().await;
        if let Some(cached) = &state.token
            && cached.token != *rejected
            && Instant::now() < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        state.token = None;
        state.failure = None;
        self.refresh(&mut state).await
    }

    async fn refresh(&self, state: &mut State) -> Result<Secret, AuthError> {
        match self.mint().await {
            Ok(minted) => {
                let now = Instant::now();
                state.token = Some(Cached {
                    token: minted.token.clone(),
                    refresh_at: now + minted.lifetime.saturating_sub(REFRESH_MARGIN),
                    expires_at: now + minted.lifetime,
                });
                state.failure = None;
                self.health.set_vendasta_auth(&self.name, None);
                crate::metrics::token_mint("ok");
                tracing::info!(
                    credential = %self.name,
                    lifetime_seconds = minted.lifetime.as_secs(),
                    expires_in_sent = minted.expires_in.is_some(),
                    "Minted a Vendasta access token."
                );
                Ok(minted.token)
            }
            Err(error) => {
                // A token that is due for refresh but not yet expired still works.
                let previous = state
                    .token
                    .as_ref()
                    .filter(|cached| Instant::now() < cached.expires_at)
                    .map(|cached| cached.token.clone());
                tracing::warn!(
                    credential = %self.name, code = error.code(), error = %error,
                    using_previous_token = previous.is_some(),
                    "Cannot mint a Vendasta access token; deliveries without a valid token wait and are retried."
                );
                self.health
                    .set_vendasta_auth(&self.name, Some(error.to_string()));
                crate::metrics::token_mint(error.code());
                state.failure = Some((Instant::now(), error.clone()));
                previous.ok_or(error)
            }
        }
    }

    /// Signs an assertion and exchanges it at `token_uri`. Does not touch the cache.
    pub async fn mint(&self) -> Result<Minted, AuthError> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            aud: &self.aud,
            iss: &self.iss,
            sub: &self.sub,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
            scope: &self.scopes,
        };
        let assertion = jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|error| AuthError::Sign(error.to_string()))?;
        let response = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", GRANT_TYPE),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|error| AuthError::Unreachable {
                uri: self.token_uri.clone(),
                reason: transport_reason(&error),
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| AuthError::Unreachable {
                uri: self.token_uri.clone(),
                reason: transport_reason(&error),
            })?;
        if !status.is_success() {
            return Err(AuthError::Refused {
                uri: self.token_uri.clone(),
                status: status.as_u16(),
                text: oauth_error_text(&body),
            });
        }
        let bad = || AuthError::BadResponse {
            uri: self.token_uri.clone(),
            status: status.as_u16(),
        };
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|_| bad())?;
        let token = parsed
            .access_token
            .filter(|token| !token.trim().is_empty())
            .ok_or_else(bad)?;
        let expires_in = parsed
            .expires_in
            .and_then(|value| match value {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .map(Duration::from_secs);
        Ok(Minted {
            token: Secret::new(token),
            expires_in,
            lifetime: expires_in.unwrap_or(ASSUMED_TOKEN_LIFETIME),
        })
    }
}

/// `error: error_description` of an OAuth error body, or the start of the body; redacted
/// (the description can echo the service account's e-mail) and cut short.
fn oauth_error_text(body: &[u8]) -> String {
    let text = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|value| {
            let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
            match (
                field("error"),
                field("error_description").or(field("message")),
            ) {
                (Some(error), Some(description)) => Some(format!("{error}: {description}")),
                (Some(text), None) | (None, Some(text)) => Some(text),
                (None, None) => None,
            }
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_TEXT_CHARS)
        .collect();
    let text = redact_pii(&text);
    if text.is_empty() {
        "no error text".into()
    } else {
        text
    }
}

fn transport_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".into()
    } else if error.is_connect() {
        "connection failed".into()
    } else {
        "the request failed".into()
    }
}

/// How requests for one route authenticate.
#[derive(Debug, Clone)]
pub enum Auth {
    /// `vendasta.token`: sent as it is; a 401 cannot be fixed by the bridge.
    Static(Secret),
    /// A service account: tokens minted, cached and refreshed.
    ServiceAccount(Arc<ServiceAccount>),
}

impl Auth {
    /// Reads one credential (the file, if it names one) and parses its key; no network.
    pub fn load(
        name: &str,
        prefix: &str,
        credential: &CredentialConfig,
        scopes: &str,
        http: &reqwest::Client,
        health: &Health,
    ) -> Result<Self, AuthError> {
        if let Some(token) = &credential.token {
            return Ok(Auth::Static(token.clone()));
        }
        let (key, json) = if let Some(path) = &credential.credentials_file {
            let key = format!("{prefix}.credentials_file");
            let json = std::fs::read_to_string(path).map_err(|error| AuthError::Read {
                key: key.clone(),
                path: path.clone(),
                reason: error.to_string(),
            })?;
            (key, json)
        } else if let Some(json) = &credential.credentials_json {
            (
                format!("{prefix}.credentials_json"),
                json.expose().to_owned(),
            )
        } else {
            return Err(AuthError::Malformed {
                key: prefix.to_owned(),
                reason: "none of token, credentials_file, credentials_json is set".into(),
            });
        };
        ServiceAccount::from_json(name, &key, &json, scopes, http.clone(), health.clone())
            .map(|account| Auth::ServiceAccount(Arc::new(account)))
    }

    /// The bearer token to send now.
    pub async fn bearer(&self) -> Result<Secret, AuthError> {
        match self {
            Auth::Static(token) => Ok(token.clone()),
            Auth::ServiceAccount(account) => account.bearer().await,
        }
    }

    /// A replacement for a token Vendasta refused; `None` for a static token.
    pub async fn renew(&self, rejected: &Secret) -> Option<Result<Secret, AuthError>> {
        match self {
            Auth::Static(_) => None,
            Auth::ServiceAccount(account) => Some(account.renew(rejected).await),
        }
    }
}

/// Every configured credential, by name, and which one each route uses.
#[derive(Debug, Clone)]
pub struct Credentials {
    by_name: BTreeMap<String, Auth>,
    by_route: BTreeMap<String, String>,
}

impl Credentials {
    /// Loads the default credential and every `[vendasta.credentials.<name>]` table.
    pub fn load(config: &Config, health: &Health) -> Result<Self, AuthError> {
        let vendasta = &config.vendasta;
        let http = http_client(vendasta.request_timeout()).map_err(|_| AuthError::HttpClient)?;
        let mut by_name = BTreeMap::new();
        let default = vendasta.default_credential();
        // Routes that all name their own credential leave the default unset; that is valid.
        if default.token.is_some()
            || default.credentials_file.is_some()
            || default.credentials_json.is_some()
        {
            by_name.insert(
                DEFAULT_CREDENTIAL.to_owned(),
                Auth::load(
                    DEFAULT_CREDENTIAL,
                    "vendasta",
                    &default,
                    &vendasta.scopes,
                    &http,
                    health,
                )?,
            );
        }
        for (name, credential) in &vendasta.credentials {
            by_name.insert(
                name.clone(),
                Auth::load(
                    name,
                    &format!("vendasta.credentials.{name}"),
                    credential,
                    &vendasta.scopes,
                    &http,
                    health,
                )?,
            );
        }
        let by_route = config
            .routes
            .iter()
            .map(|route| {
                let name = route
                    .vendasta_credentials
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CREDENTIAL.to_owned());
                (route.name.clone(), name)
            })
            .collect();
        Ok(Self { by_name, by_route })
    }

    /// The credential of `route` (the default one for a route that names none).
    pub fn for_route(&self, route: &str) -> Option<&Auth> {
        let name = self
            .by_route
            .get(route)
            .map_or(DEFAULT_CREDENTIAL, String::as_str);
        self.by_name.get(name)
    }

    /// Every credential with its name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Auth)> {
        self.by_name
            .iter()
            .map(|(name, auth)| (name.as_str(), auth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health::new(Duration::from_secs(30))
    }

    fn file(alg: &str, key: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "private_key_id": "kid-1",
            "private_key": key,
            "client_email": "bridge@partner-service-account.apigateway.co",
            "token_uri": "http://127.0.0.1:1/oauth2/token",
            "assertionHeaderData": { "alg": alg, "kid": "kid-1" },
            "assertionPayloadData": {
                "aud": "https://iam-prod.apigateway.co",
                "iss": "bridge@partner-service-account.apigateway.co",
                "sub": "bridge@partner-service-account.apigateway.co"
            }
        })
        .to_string()
    }

    fn load(json: &str) -> Result<ServiceAccount, AuthError> {
        let http = http_client(Duration::from_secs(1)).unwrap();
        ServiceAccount::from_json(
            "default",
            "vendasta.credentials_json",
            json,
            "customers",
            http,
            health(),
        )
    }

    const TEST_KEY: &str = include_str!("../../tests/fixtures/auth/test-only-rsa.pem");

    #[test]
    fn a_partner_center_file_with_an_rsa_key_loads() {
        let account = load(&file("RS256", TEST_KEY)).unwrap();
        assert_eq!(account.header.alg, Algorithm::RS256);
        assert_eq!(account.header.kid.as_deref(), Some("kid-1"));
        assert!(!format!("{account:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_garbled_key_is_a_bad_key_error_that_does_not_echo_the_key() {
        let error = load(&file(
            "RS256",
            "-----BEGIN RSA PRIVATE KEY-----\nnotakey\n-----END RSA PRIVATE KEY-----\n",
        ))
        .unwrap_err();
        assert_eq!(error.code(), "bad_key");
        assert!(error.is_config());
        assert!(!error.to_string().contains("notakey"), "{error}");
    }

    #[test]
    fn an_unknown_algorithm_and_a_missing_member_are_named() {
        let error = load(&file("HS256", TEST_KEY)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("assertionHeaderData.alg is `HS256`"),
            "{error}"
        );
        let error = load(r#"{"private_key":"x"}"#).unwrap_err();
        assert!(error.to_string().contains("token_uri"), "{error}");
    }

    #[tokio::test]
    async fn twenty_concurrent_callers_of_a_stale_token_cause_one_mint() {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};
        // Arrange: a slow token endpoint, so every caller arrives while the mint is in flight.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"access_token": "tok-1", "expires_in": 3600}))
                    .set_delay(Duration::from_millis(300)),
            )
            .expect(1)
            .mount(&server)
            .await;
        let json = file("RS256", TEST_KEY).replace(
            "http://127.0.0.1:1/oauth2/token",
            &format!("{}/oauth2/token", server.uri()),
        );
        let account = Arc::new(load(&json).unwrap());

        // Act
        let mut callers = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let account = Arc::clone(&account);
            callers.spawn(async move { account.bearer().await });
        }
        let tokens: Vec<String> = callers
            .join_all()
            .await
            .into_iter()
            .map(|token| token.unwrap().expose().to_owned())
            .collect();

        // Assert (the mock's expect(1) is checked when the server drops)
        assert_eq!(tokens, vec!["tok-1".to_owned(); 20]);
    }

    #[tokio::test]
    async fn a_missing_expires_in_is_taken_as_the_assumed_lifetime() {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "t"})),
            )
            .mount(&server)
            .await;
        let json = file("RS256", TEST_KEY).replace(
            "http://127.0.0.1:1/oauth2/token",
            &format!("{}/oauth2/token", server.uri()),
        );
        let minted = load(&json).unwrap().mint().await.unwrap();
        assert_eq!(minted.expires_in, None);
        assert_eq!(minted.lifetime, ASSUMED_TOKEN_LIFETIME);
    }

    #[tokio::test]
    async fn an_unreachable_token_endpoint_is_named_in_the_error() {
        let error = load(&file("RS256", TEST_KEY))
            .unwrap()
            .mint()
            .await
            .unwrap_err();
        assert_eq!(error.code(), "token_endpoint_unreachable");
        assert!(
            error
                .to_string()
                .contains("http://127.0.0.1:1/oauth2/token"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_es256_file_mints_an_assertion_that_verifies_with_the_ec_public_key() {
        use std::sync::{Arc as StdArc, Mutex as StdMutex};

        use wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers::method};
        // Arrange: capture the assertion the endpoint receives.
        let server = MockServer::start().await;
        let seen: StdArc<StdMutex<Option<String>>> = StdArc::default();
        let capture = StdArc::clone(&seen);
        Mock::given(method("POST"))
            .respond_with(move |request: &Request| {
                let body = String::from_utf8_lossy(&request.body).into_owned();
                *capture.lock().unwrap() = body
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("assertion="))
                    .map(str::to_owned);
                ResponseTemplate::new(200).set_body_json(serde_json::json!({"access_token": "t"}))
            })
            .mount(&server)
            .await;
        let json = file(
            "ES256",
            include_str!("../../tests/fixtures/auth/test-only-ec.pem"),
        )
        .replace(
            "http://127.0.0.1:1/oauth2/token",
            &format!("{}/oauth2/token", server.uri()),
        );

        // Act
        load(&json).unwrap().mint().await.unwrap();

        // Assert
        let assertion = seen
            .lock()
            .unwrap()
            .clone()
            .expect("an assertion was posted");
        let public = jsonwebtoken::DecodingKey::from_ec_pem(include_bytes!(
            "../../tests/fixtures/auth/test-only-ec.pub.pem"
        ))
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.set_audience(&["https://iam-prod.apigateway.co"]);
        let data = jsonwebtoken::decode::<Value>(&assertion, &public, &validation).unwrap();
        assert_eq!(data.header.kid.as_deref(), Some("kid-1"));
        assert_eq!(data.claims["scope"], "customers");
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_using_the_token_until_it_actually_expires() {
        use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};
        // Arrange: the first token has 30 s left (inside the refresh margin), then the
        // endpoint fails.
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"access_token": "first", "expires_in": 30})),
            )
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let json = file("RS256", TEST_KEY).replace(
            "http://127.0.0.1:1/oauth2/token",
            &format!("{}/oauth2/token", server.uri()),
        );
        let health = health();
        let http = http_client(Duration::from_secs(1)).unwrap();
        let account =
            ServiceAccount::from_json("p", "k", &json, "customers", http, health.clone()).unwrap();

        // Act
        let first = account.bearer().await.unwrap();
        let second = account.bearer().await.unwrap();

        // Assert
        assert_eq!((first.expose(), second.expose()), ("first", "first"));
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
        assert!(health.vendasta_auth()["p"].contains("503"));
    }

    #[test]
    fn oauth_errors_are_summarised_and_redacted() {
        let text = oauth_error_text(
            br#"{"error":"invalid_grant","error_description":"unknown key for bridge@partner-service-account.apigateway.co"}"#,
        );
        assert_eq!(text, "invalid_grant: unknown key for [redacted]");
    }
}
