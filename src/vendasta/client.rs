//! HTTP client for the customers API. Owned by the client helper; placeholder.

use std::time::Duration;

use crate::{config::VendastaConfig, vendasta::{Outcome, model::CustomerAttributes}};

/// Builds the one reqwest client the bridge uses, always with timeouts.
#[allow(clippy::disallowed_methods)]
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Talks to `vendasta.customers_url` with a static bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    pub fn new(config: &VendastaConfig) -> Self {
        Self { http: http_client(config.request_timeout()) }
    }

    /// `POST {customers_url}`.
    pub async fn create(&self, _business_location: &str, _attributes: &CustomerAttributes) -> Outcome {
        let _ = &self.http;
        Outcome::Retry { reason: "not yet written".into(), retry_after: None }
    }

    /// `PATCH {customers_url}/{customer_id}`.
    pub async fn update(&self, _business_location: &str, _customer_id: &str, _attributes: &CustomerAttributes) -> Outcome {
        Outcome::Retry { reason: "not yet written".into(), retry_after: None }
    }
}
