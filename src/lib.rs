//! vendasta-bridge: signed POS/CRM contact webhooks in, Vendasta customers out.
//!
//! A provider (Shopify first) POSTs a signed "customer created/updated" webhook. The
//! bridge verifies the signature over the raw body, stores the event durably and answers
//! at once; a delivery worker later turns the contact into a Vendasta customer and creates
//! or updates it upstream. A 409 Conflict is resolved by logging the existing customer's
//! id, remembering the link and acknowledging.
//!
//! # Layout
//!
//! - [`config`]: typed config, layering, validation, the `Secret` type.
//! - [`http`]: the public ingest router and the admin router (health). Only module that
//!   imports axum.
//! - [`sources`]: one file per provider: signature check, envelope, payload parsing.
//! - [`contact`]: the neutral contact model every source parses into.
//! - [`transform`]: pure `Contact` → Vendasta customer attributes (normalisation).
//! - [`vendasta`]: the upstream's wire model and HTTP client. Only module that imports reqwest.
//! - [`store`]: the durable queue, dedupe keys and contact links, on SQLite (one replica) or
//!   PostgreSQL (several). Only module that imports sqlx.
//! - [`delivery`]: the worker that claims jobs and delivers them; pure retry maths.
//! - [`health`]: readiness state shared by the worker, the store and `/readyz`.
//! - [`app`]: wires everything together and runs it until shutdown.
//! - [`cli`]: the subcommands beyond `serve` and `check-config`.
//! - [`telemetry`]: the tracing subscriber.
//!
//! Dependency direction: `http → sources → store ← delivery → (transform, vendasta)`.

pub mod app;
pub mod cli;
pub mod config;
pub mod contact;
pub mod delivery;
pub mod health;
pub mod http;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod transform;
pub mod vendasta;
