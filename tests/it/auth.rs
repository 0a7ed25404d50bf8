//! Service-account tokens and the CRM adapter against real HTTP servers on 127.0.0.1: a
//! mock token endpoint that verifies every assertion with the test key's public half, and
//! the mock Vendasta of `helpers`.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use vendasta_bridge::{
    config::{Secret, UpstreamApi},
    store::JobState,
};
use wiremock::{
    Mock, Request, Respond, ResponseTemplate,
    matchers::{method, path},
};

use crate::helpers::{
    CUSTOMERS_PATH, TestApp, created, customer, eventually, fixture, json_body, log_lines,
    spawn_app_with,
};

const TOKEN_PATH: &str = "/oauth2/token";
const CRM_PATH: &str = "/org/AG-123/contacts";
const ACCOUNT: &str = "bridge-test@partner-service-account.apigateway.co";
const AUDIENCE: &str = "https://iam-prod.apigateway.co";
const KID: &str = "c0273fce-79b7-4104-8a8c-ea489abb3979";

/// The test-only key pair in tests/fixtures/auth (see its README: grants nothing anywhere).
fn private_key() -> String {
    String::from_utf8(fixture("auth/test-only-rsa.pem")).unwrap()
}

/// A Partner Center credential file for the test key, pointing at `token_uri`.
fn credentials_json(token_uri: &str) -> String {
    credentials_json_for(token_uri, AUDIENCE)
}

fn credentials_json_for(token_uri: &str, audience: &str) -> String {
    json!({
        "type": "service_account",
        "private_key_id": KID,
        "private_key": private_key(),
        "client_email": ACCOUNT,
        "token_uri": token_uri,
        "assertionHeaderData": { "alg": "RS256", "kid": KID },
        "assertionPayloadData": { "aud": audience, "iss": ACCOUNT, "sub": ACCOUNT }
    })
    .to_string()
}

/// A token endpoint that checks each assertion's signature and claims, counts mints and
/// answers `minted-N`; `down` makes it answer 503.
#[derive(Clone)]
struct TokenEndpoint {
    mints: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    expires_in: u64,
    problems: Arc<Mutex<Vec<String>>>,
}

impl TokenEndpoint {
    fn new(expires_in: u64) -> Self {
        Self {
            mints: Arc::default(),
            down: Arc::default(),
            expires_in,
            problems: Arc::default(),
        }
    }

    fn mints(&self) -> usize {
        self.mints.load(Ordering::SeqCst)
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().unwrap().clone()
    }

    fn check(&self, request: &Request) -> Result<(), String> {
        let content_type = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type != "application/x-www-form-urlencoded" {
            return Err(format!("content-type is {content_type}"));
        }
        let form = parse_form(&request.body);
        if form.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            return Err(format!("grant_type is {:?}", form.get("grant_type")));
        }
        let assertion = form.get("assertion").ok_or("no assertion")?;
        let public = DecodingKey::from_rsa_pem(&fixture("auth/test-only-rsa.pub.pem"))
            .map_err(|e| e.to_string())?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ACCOUNT]);
        validation.sub = Some(ACCOUNT.into());
        validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Value>(assertion, &public, &validation)
            .map_err(|e| format!("assertion does not verify: {e}"))?;
        if data.header.kid.as_deref() != Some(KID) {
            return Err(format!("kid is {:?}", data.header.kid));
        }
        let claims = data.claims;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let iat = claims["iat"].as_u64().ok_or("no iat")?;
        let exp = claims["exp"].as_u64().ok_or("no exp")?;
        if iat + 60 < now || iat > now + 5 {
            return Err(format!("iat {iat} is not now ({now})"));
        }
        if exp <= iat || exp - iat > 600 {
            return Err(format!("exp - iat is {} s, must be 1..=600", exp - iat));
        }
        if claims["scope"] != "customers" {
            return Err(format!("scope is {}", claims["scope"]));
        }
        Ok(())
    }
}

impl Respond for TokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.down.load(Ordering::SeqCst) {
            return ResponseTemplate::new(503).set_body_string("upstream connect error");
        }
        if let Err(problem) = self.check(request) {
            self.problems.lock().unwrap().push(problem.clone());
            return ResponseTemplate::new(400)
                .set_body_json(json!({ "error": "invalid_grant", "error_description": problem }));
        }
        let n = self.mints.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("minted-{n}"),
            "token_type": "Bearer",
            "expires_in": self.expires_in
        }))
    }
}

/// An app whose default credential is the service account, with `endpoint` mounted.
async fn spawn_with_service_account(endpoint: &TokenEndpoint, crm: bool) -> TestApp {
    spawn_with_audience(endpoint, crm, AUDIENCE).await
}

async fn spawn_with_audience(endpoint: &TokenEndpoint, crm: bool, audience: &str) -> TestApp {
    let app = spawn_app_with(|config| {
        let base = config
            .vendasta
            .customers_url
            .trim_end_matches(CUSTOMERS_PATH)
            .to_owned();
        config.vendasta.token = None;
        config.vendasta.credentials_json = Some(Secret::new(credentials_json_for(
            &format!("{base}{TOKEN_PATH}"),
            audience,
        )));
        if crm {
            config.vendasta.api = UpstreamApi::Crm;
            config.vendasta.crm_url = format!("{base}/org");
        }
    })
    .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(endpoint.clone())
        .mount(&app.vendasta)
        .await;
    app
}

async fn requests_to(app: &TestApp, wanted: &str) -> Vec<Request> {
    app.upstream_requests()
        .await
        .into_iter()
        .filter(|request| request.url.path() == wanted)
        .collect()
}

fn bearer(request: &Request) -> String {
    request.headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned()
}

async fn post_customer(app: &TestApp, id: u64, webhook_id: &str) {
    let body = customer(
        id,
        &format!("c{id}@example.com"),
        "2026-01-01T00:00:00-05:00",
    );
    let response = app
        .post_shopify("acme", "customers/create", webhook_id, &body)
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn every_assertion_verifies_with_the_public_key_and_n_deliveries_share_one_minted_token() {
    // Arrange
    let endpoint = TokenEndpoint::new(3600);
    let app = spawn_with_service_account(&endpoint, false).await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-1"))
        .expect(4)
        .mount(&app.vendasta)
        .await;

    // Act
    for n in 1..=4 {
        post_customer(&app, n, &format!("wh-share-{n}")).await;
    }
    for n in 1..=4 {
        assert_eq!(
            app.settled("acme", &format!("wh-share-{n}")).await.state,
            JobState::Done
        );
    }

    // Assert
    assert_eq!(endpoint.problems(), Vec::<String>::new());
    assert_eq!(endpoint.mints(), 1);
    let sent = requests_to(&app, CUSTOMERS_PATH).await;
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|r| bearer(r) == "Bearer minted-1"));
    assert!(!crate::helpers::log_text().contains("minted-"));
}

#[tokio::test]
async fn a_wrong_audience_is_refused_and_the_reason_reaches_the_log_and_readyz_without_the_key() {
    // Arrange
    let endpoint = TokenEndpoint::new(3600);
    let app = spawn_with_audience(&endpoint, false, "https://iam-demo.apigateway.co").await;

    // Act
    post_customer(&app, 11, "wh-aud").await;

    // Assert
    let why = eventually(Duration::from_secs(10), || async {
        let body: Value = app
            .http
            .get(format!("{}/readyz", app.admin))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["checks"]["vendasta_auth"]["error"]["default"]
            .as_str()
            .map(str::to_owned)
    })
    .await
    .expect("readyz reports the refused credential");
    assert!(
        why.contains("invalid_grant") && why.contains("InvalidAudience"),
        "{why}"
    );
    assert_eq!(endpoint.mints(), 0);
    // Claimed jobs are briefly in flight; wait for one of the moments it is put back.
    let job = eventually(Duration::from_secs(10), || async {
        app.job("acme", "wh-aud")
            .await
            .filter(|job| job.state == JobState::Pending)
    })
    .await
    .expect("the job waits as pending");
    assert_eq!(job.attempts, 0, "waiting for a token is not an attempt");
    let logs = crate::helpers::log_text();
    assert!(
        logs.contains("InvalidAudience"),
        "the log says what is wrong"
    );
    assert!(
        !logs.contains("PRIVATE KEY") && !logs.contains("eyJ"),
        "no key or assertion is logged"
    );
}

#[tokio::test]
async fn a_token_that_is_about_to_expire_is_replaced_before_the_next_delivery() {
    // Arrange: 30 s left is inside the 60 s refresh margin, so the next use re-mints.
    let endpoint = TokenEndpoint::new(30);
    let app = spawn_with_service_account(&endpoint, false).await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-1"))
        .mount(&app.vendasta)
        .await;

    // Act
    post_customer(&app, 1, "wh-exp-1").await;
    app.settled("acme", "wh-exp-1").await;
    post_customer(&app, 2, "wh-exp-2").await;
    app.settled("acme", "wh-exp-2").await;

    // Assert
    assert_eq!(endpoint.mints(), 2);
    let sent = requests_to(&app, CUSTOMERS_PATH).await;
    assert_eq!(
        sent.iter().map(bearer).collect::<Vec<_>>(),
        vec!["Bearer minted-1", "Bearer minted-2"]
    );
}

#[tokio::test]
async fn a_401_causes_exactly_one_re_mint_and_the_delivery_succeeds() {
    // Arrange
    let endpoint = TokenEndpoint::new(3600);
    let app = spawn_with_service_account(&endpoint, false).await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&app.vendasta)
        .await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-7"))
        .mount(&app.vendasta)
        .await;

    // Act
    post_customer(&app, 7, "wh-401").await;
    let job = app.settled("acme", "wh-401").await;

    // Assert
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.outcome.as_deref(), Some("created"));
    assert_eq!(
        job.attempts, 1,
        "the re-mint and retry happen within one attempt"
    );
    assert_eq!(endpoint.mints(), 2);
    let sent = requests_to(&app, CUSTOMERS_PATH).await;
    assert_eq!(
        sent.iter().map(bearer).collect::<Vec<_>>(),
        vec!["Bearer minted-1", "Bearer minted-2"]
    );
}

#[tokio::test]
async fn with_the_token_endpoint_down_jobs_wait_ingest_acks_readyz_says_why_and_all_deliver_later()
{
    // Arrange
    let endpoint = TokenEndpoint::new(3600);
    endpoint.down.store(true, Ordering::SeqCst);
    let app = spawn_with_service_account(&endpoint, false).await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-1"))
        .mount(&app.vendasta)
        .await;

    // Act: ingest keeps acknowledging while no token can be had.
    post_customer(&app, 1, "wh-down-1").await;
    post_customer(&app, 2, "wh-down-2").await;

    // Assert: the token endpoint was tried more often than the 3-step schedule allows
    // attempts, and both jobs still wait, with no attempt used up.
    let tried = eventually(Duration::from_secs(15), || async {
        (requests_to(&app, TOKEN_PATH).await.len() > 4).then_some(())
    })
    .await;
    assert!(tried.is_some(), "the token endpoint was not retried");
    for id in ["wh-down-1", "wh-down-2"] {
        let job = eventually(Duration::from_secs(10), || async {
            app.job("acme", id)
                .await
                .filter(|job| job.state == JobState::Pending)
        })
        .await
        .unwrap_or_else(|| panic!("{id} is not pending"));
        assert_eq!(job.attempts, 0, "waiting for a token is not an attempt");
        assert!(
            job.last_error
                .as_deref()
                .unwrap_or("")
                .contains("waiting for a vendasta access token"),
            "{:?}",
            job.last_error
        );
    }
    let readyz = app
        .http
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    let body: Value = readyz.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["vendasta_auth"]["ok"], false);
    let why = body["checks"]["vendasta_auth"]["error"]["default"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        why.contains("token endpoint") && why.contains("503"),
        "{body}"
    );
    assert!(requests_to(&app, CUSTOMERS_PATH).await.is_empty());

    // Act: the endpoint comes back.
    endpoint.down.store(false, Ordering::SeqCst);

    // Assert: everything is delivered and readiness reports auth as fine again.
    for id in ["wh-down-1", "wh-down-2"] {
        let job = app.settled("acme", id).await;
        assert_eq!(job.state, JobState::Done, "{:?}", job.last_error);
        assert_eq!(job.attempts, 1);
    }
    assert_eq!(requests_to(&app, CUSTOMERS_PATH).await.len(), 2);
    let body: Value = app
        .http
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["checks"]["vendasta_auth"]["ok"], true, "{body}");
}

#[tokio::test]
async fn the_crm_adapter_upserts_the_fixture_contact_with_exactly_this_schema_valid_body() {
    // Arrange
    let endpoint = TokenEndpoint::new(3600);
    let app = spawn_with_service_account(&endpoint, true).await;
    Mock::given(method("PATCH"))
        .and(path(CRM_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "fields": [{ "id": "system__id", "value": "ContactID-42" }]
        })))
        .expect(1)
        .mount(&app.vendasta)
        .await;

    // Act
    let body = fixture("shopify/shopify-customers-create.json");
    app.post_shopify("acme", "customers/create", "wh-crm", &body)
        .await;
    let job = app.settled("acme", "wh-crm").await;

    // Assert
    assert_eq!(job.state, JobState::Done, "{:?}", job.last_error);
    let sent = requests_to(&app, CRM_PATH).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].headers["content-type"], "application/json");
    assert_eq!(bearer(&sent[0]), "Bearer minted-1");
    let op = |id: &str, value: &str| json!({ "id": id, "value": value, "operation": "always_overwrite" });
    let sent_body = json_body(&sent[0]);
    assert_eq!(
        sent_body,
        json!({
            "fields": [
                op("external_id", "acme:706405506930370084"),
                op("standard__first_name", "Bob"),
                op("standard__last_name", "Biller"),
                op("standard__email", "bob@biller.com"),
                op("standard__contact_primary_location_street_address_1", "151 O'Connor Street"),
                op("standard__contact_primary_location_city_locality", "Ottawa"),
                op("standard__contact_primary_location_state_province_region", "CA-ON"),
                op("standard__contact_primary_location_country", "CA"),
            ],
            "searchExisting": ["external_id", "standard__email"],
            "returnFields": ["system__id"]
        })
    );
    crate::crm_schema::assert_valid_upsert(&sent_body);
    let link = app
        .store
        .contact("acme", "706405506930370084")
        .await
        .unwrap();
    assert_eq!(link.customer_id.as_deref(), Some("ContactID-42"));
}

#[tokio::test]
async fn a_crm_409_is_logged_with_the_existing_contact_id_and_acknowledged() {
    // Arrange
    let endpoint = TokenEndpoint::new(3600);
    let app = spawn_with_service_account(&endpoint, true).await;
    Mock::given(method("PATCH"))
        .and(path(CRM_PATH))
        .respond_with(ResponseTemplate::new(409).set_body_json(json!({
            "error": "The following field values are already used by other records in AG-123. Remove them from the request to continue.",
            "fieldViolations": { "uniqueness": {
                "description": "Values that violate a unique constraint and must be removed to proceed.",
                "values": ["standard__email"] } },
            "metadata": { "standard__email": "Already used by: ContactID-0000-crm-409." }
        })))
        .expect(1)
        .mount(&app.vendasta)
        .await;

    // Act
    post_customer(&app, 409, "wh-crm-409").await;
    let job = app.settled("acme", "wh-crm-409").await;

    // Assert
    assert_eq!(job.state, JobState::Done);
    assert_eq!(job.outcome.as_deref(), Some("conflict"));
    let link = app.store.contact("acme", "409").await.unwrap();
    assert_eq!(link.customer_id.as_deref(), Some("ContactID-0000-crm-409"));
    let logged = log_lines().into_iter().any(|line| {
        line["conflicting_customer_id"] == "ContactID-0000-crm-409" && line["level"] == "WARN"
    });
    assert!(logged, "no WARN line names the conflicting contact");
}

/// `application/x-www-form-urlencoded` decoding, enough for the token request.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |text: &str| {
        let bytes = text.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    };
    std::str::from_utf8(body)
        .unwrap()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (decode(key), decode(value)))
        .collect()
}

#[tokio::test]
async fn a_route_with_its_own_credential_uses_that_token_and_the_others_keep_the_default() {
    // Arrange: route `acme` names [vendasta.credentials.partner_b]; `multi` uses the
    // default static token.
    let endpoint = TokenEndpoint::new(3600);
    let app = spawn_app_with(|config| {
        let base = config
            .vendasta
            .customers_url
            .trim_end_matches(CUSTOMERS_PATH)
            .to_owned();
        config.vendasta.credentials.insert(
            "partner_b".into(),
            vendasta_bridge::config::CredentialConfig {
                credentials_json: Some(Secret::new(credentials_json(&format!(
                    "{base}{TOKEN_PATH}"
                )))),
                ..Default::default()
            },
        );
        config.routes[0].vendasta_credentials = Some("partner_b".into());
        config.routes[1].business_location = Some("AG-456".into());
    })
    .await;
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(endpoint.clone())
        .mount(&app.vendasta)
        .await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(created("AG-123:CUSTOMER-1"))
        .mount(&app.vendasta)
        .await;

    // Act
    post_customer(&app, 21, "wh-route-a").await;
    let body = customer(22, "c22@example.com", "2026-01-01T00:00:00-05:00");
    app.post_shopify("multi", "customers/create", "wh-route-m", &body)
        .await;
    app.settled("acme", "wh-route-a").await;
    app.settled("multi", "wh-route-m").await;

    // Assert
    let by_location: HashMap<String, String> = requests_to(&app, CUSTOMERS_PATH)
        .await
        .iter()
        .map(|request| {
            let location = json_body(request)["data"]["relationships"]["businessLocation"]["data"]
                ["id"]
                .as_str()
                .unwrap()
                .to_owned();
            (location, bearer(request))
        })
        .collect();
    assert_eq!(by_location["AG-123"], "Bearer minted-1");
    assert_eq!(
        by_location["AG-456"],
        format!("Bearer {}", crate::helpers::TOKEN)
    );
    assert_eq!(endpoint.mints(), 1);
}

/// Runs the built binary's `check-credentials` with a config whose credentials file
/// points at `token_uri`; returns (exit code, stdout, stderr).
async fn check_credentials(token_uri: &str, write_file: bool) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("vendasta.json");
    if write_file {
        std::fs::write(&credentials, credentials_json(token_uri)).unwrap();
    }
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            [vendasta]
            credentials_file = "{}"
            scopes = "customers"
            [[routes]]
            name = "acme"
            source = "shopify"
            secrets = ["s"]
            business_location = "AG-123"
            "#,
            credentials.display()
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_vendasta-bridge"))
            .args(["check-credentials", "--config"])
            .arg(&config)
            .env_remove("VENDASTA_TOKEN")
            .env_remove("BRIDGE_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_credentials_prints_subject_scopes_and_expiry_but_never_the_token() {
    // Arrange
    let server = wiremock::MockServer::start().await;
    let endpoint = TokenEndpoint::new(1800);
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(endpoint.clone())
        .mount(&server)
        .await;

    // Act
    let (code, stdout, stderr) =
        check_credentials(&format!("{}{TOKEN_PATH}", server.uri()), true).await;

    // Assert
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(endpoint.mints(), 1);
    assert!(stdout.contains(&format!("subject {ACCOUNT}")), "{stdout}");
    assert!(stdout.contains("scopes \"customers\""), "{stdout}");
    assert!(stdout.contains("(in 1800 s)"), "{stdout}");
    assert!(!stdout.contains("minted-") && !stderr.contains("minted-"));
}

#[tokio::test]
async fn check_credentials_exits_1_when_minting_fails_and_2_when_the_file_is_missing() {
    // Arrange
    let server = wiremock::MockServer::start().await;
    let endpoint = TokenEndpoint::new(1800);
    endpoint.down.store(true, Ordering::SeqCst);
    Mock::given(method("POST"))
        .and(path(TOKEN_PATH))
        .respond_with(endpoint.clone())
        .mount(&server)
        .await;
    let token_uri = format!("{}{TOKEN_PATH}", server.uri());

    // Act
    let (down_code, _, down_err) = check_credentials(&token_uri, true).await;
    let (missing_code, _, missing_err) = check_credentials(&token_uri, false).await;

    // Assert
    assert_eq!(down_code, 1, "{down_err}");
    assert!(
        down_err.contains("refused the assertion with 503"),
        "{down_err}"
    );
    assert_eq!(missing_code, 2, "{missing_err}");
    assert!(
        missing_err.contains("vendasta.credentials_file"),
        "{missing_err}"
    );
}

#[tokio::test]
async fn a_fresh_token_refused_too_parks_the_job_as_dead_after_exactly_one_re_mint() {
    // Arrange
    let endpoint = TokenEndpoint::new(3600);
    let app = spawn_with_service_account(&endpoint, false).await;
    Mock::given(method("POST"))
        .and(path(CUSTOMERS_PATH))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&app.vendasta)
        .await;

    // Act
    post_customer(&app, 31, "wh-401-twice").await;
    let job = app.settled("acme", "wh-401-twice").await;

    // Assert
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.outcome.as_deref(), Some("unauthorized"));
    let reason = job.last_error.unwrap_or_default();
    assert!(
        reason.contains("freshly minted token was refused too"),
        "{reason}"
    );
    assert_eq!(endpoint.mints(), 2);
}
