//! Vendasta upstream: the wire model (`model`) and the HTTP client (`client`).
//!
//! Owns every byte sent to or read from Vendasta and the classification of its answers
//! into an [`Outcome`]. It decides nothing about retries or storage; `delivery` does.
//! Only this module imports reqwest.

pub mod client;
pub mod model;

use std::time::Duration;

pub use client::Client;

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
        }
    }
}
