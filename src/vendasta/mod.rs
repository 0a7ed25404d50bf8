//! Vendasta upstream: credentials (`auth`), the wire models (`model`), and the two API
//! adapters (`client` for the customers API, `crm` for the CRM API) behind one
//! [`Upstream`].
//!
//! Owns every byte sent to or read from Vendasta and the classification of its answers
//! into an [`Outcome`]. It decides nothing about retries or storage; `delivery` does.
//! Only this module imports reqwest.

pub mod auth;
pub mod client;
pub mod crm;
pub mod model;

use std::time::Duration;

pub use client::Client;

use crate::{
    config::{Config, UpstreamApi},
    health::Health,
    vendasta::{
        auth::{AuthError, Credentials},
        client::ClientError,
        crm::CrmClient,
        model::CustomerAttributes,
    },
};

/// What one request to Vendasta told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 201/200 on create: the new customer's id (`AG-…:CUSTOMER-…`).
    Created { customer_id: String },
    /// 200/204 on update.
    Updated,
    /// 409: a customer with the same email or phone already exists in the location.
    Conflict { existing_id: String },
    /// 404 on update: the linked customer no longer exists upstream.
    NotFound,
    /// Worth trying again: transport error, timeout, 408, 429, 5xx except 501.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will never succeed as sent: other 4xx (Vendasta's error text kept) or an unusable 2xx.
    Reject { reason: String },
    /// 401: the token was refused. [`Upstream`] re-mints once and retries; the worker sees
    /// it only when a static token, or a freshly minted one, is refused.
    Unauthorized { reason: String },
    /// No token could be had (the token endpoint is down or refuses the credential). The
    /// job waits for it and is never parked as dead for it.
    AuthUnavailable { reason: String },
}

impl Outcome {
    /// Bounded label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Created { .. } => "created",
            Outcome::Updated => "updated",
            Outcome::Conflict { .. } => "conflict",
            Outcome::NotFound => "not_found",
            Outcome::Retry { .. } => "retry",
            Outcome::Reject { .. } => "rejected",
            Outcome::Unauthorized { .. } => "unauthorized",
            Outcome::AuthUnavailable { .. } => "auth_unavailable",
        }
    }
}

/// Everything an adapter needs to send one contact.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The route's name (part of the CRM `external_id`; picks the credential).
    pub route: &'a str,
    /// The provider's id for the contact, when it has one.
    pub source_contact_id: Option<&'a str>,
    /// `AG-…`.
    pub business_location: &'a str,
    /// The Vendasta id this contact is linked to, if any.
    pub linked_id: Option<&'a str>,
    pub attributes: &'a CustomerAttributes,
}

/// One request the worker asks of the upstream.
#[derive(Debug, Clone, Copy)]
enum Call<'a> {
    /// Create or update the contact (the adapter picks by `linked_id`).
    Upsert(&'a Delivery<'a>),
    /// Delete the linked customer.
    Delete {
        business_location: &'a str,
        customer_id: &'a str,
    },
}

/// Failure to set up the upstream at startup.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Auth(#[from] AuthError),
}

impl UpstreamError {
    /// Bounded code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::Client(error) => error.code(),
            UpstreamError::Auth(error) => error.code(),
        }
    }
}

/// The API adapter `vendasta.api` picked.
#[derive(Debug, Clone)]
enum Adapter {
    Customers(Client),
    Crm(CrmClient),
}

/// The one interface the worker uses: authenticate for the route, send the contact
/// through the configured API, and re-mint once on a 401. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Upstream {
    adapter: Adapter,
    credentials: Credentials,
}

impl Upstream {
    /// Loads every credential (reading credential files) and builds the adapter; no
    /// network I/O. `health` receives token-minting failures for `/readyz`.
    pub fn new(config: &Config, health: &Health) -> Result<Self, UpstreamError> {
        let adapter = match config.vendasta.api {
            UpstreamApi::Customers => Adapter::Customers(Client::new(&config.vendasta)?),
            UpstreamApi::Crm => Adapter::Crm(CrmClient::new(&config.vendasta)?),
        };
        Ok(Self {
            adapter,
            credentials: Credentials::load(config, health)?,
        })
    }

    /// Sends one contact and classifies the answer.
    pub async fn deliver(&self, delivery: &Delivery<'_>) -> Outcome {
        self.authorized(
            delivery.route,
            delivery.business_location,
            Call::Upsert(delivery),
        )
        .await
    }

    /// Deletes a linked customer (`routes[].on_delete = "delete"`).
    pub async fn delete(&self, route: &str, business_location: &str, customer_id: &str) -> Outcome {
        let call = Call::Delete {
            business_location,
            customer_id,
        };
        self.authorized(route, business_location, call).await
    }

    /// Runs `call` with the route's token, re-minting once if Vendasta refuses it.
    async fn authorized(&self, route: &str, business_location: &str, call: Call<'_>) -> Outcome {
        let Some(auth) = self.credentials.for_route(route) else {
            return Outcome::Reject {
                reason: format!(
                    "route `{route}` has no vendasta credentials: set vendasta.token or vendasta.credentials_file, or routes[].vendasta_credentials, then replay the job"
                ),
            };
        };
        let token = match auth.bearer().await {
            Ok(token) => token,
            Err(error) => {
                return Outcome::AuthUnavailable {
                    reason: error.to_string(),
                };
            }
        };
        let outcome = self.send(&token, call).await;
        let Outcome::Unauthorized { reason } = outcome else {
            return outcome;
        };
        match auth.renew(&token).await {
            None => Outcome::Unauthorized {
                reason: format!(
                    "{reason} (the static vendasta.token was refused: set a valid token and replay the job)"
                ),
            },
            Some(Err(error)) => Outcome::AuthUnavailable {
                reason: error.to_string(),
            },
            Some(Ok(fresh)) => {
                tracing::info!(
                    route,
                    "Vendasta refused the access token; minted a new one and retrying once."
                );
                match self.send(&fresh, call).await {
                    Outcome::Unauthorized { reason } => Outcome::Unauthorized {
                        reason: format!(
                            "{reason} (a freshly minted token was refused too: check that the service account has the scopes in vendasta.scopes and access to {business_location})"
                        ),
                    },
                    outcome => outcome,
                }
            }
        }
    }

    async fn send(&self, token: &crate::config::Secret, call: Call<'_>) -> Outcome {
        let delivery = match call {
            Call::Upsert(delivery) => delivery,
            Call::Delete {
                business_location,
                customer_id,
            } => {
                return match &self.adapter {
                    Adapter::Customers(client) => {
                        client.delete(token, business_location, customer_id).await
                    }
                    Adapter::Crm(_) => Outcome::Reject {
                        reason: "deleting customers is not supported with vendasta.api = \"crm\"; set routes[].on_delete = \"ignore\"".into(),
                    },
                };
            }
        };
        match &self.adapter {
            Adapter::Customers(client) => match delivery.linked_id {
                Some(id) => {
                    client
                        .update(token, delivery.business_location, id, delivery.attributes)
                        .await
                }
                None => {
                    client
                        .create(token, delivery.business_location, delivery.attributes)
                        .await
                }
            },
            Adapter::Crm(crm) => crm.upsert(token, delivery).await,
        }
    }
}
