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
//! - [`config`]: typed config, layering, validation, the `Secret` type; `config/source_keys.rs`
//!   holds the keys only some sources use and checks each route has what its source needs.
//! - [`http`]: the public ingest router, the admin router (health, `/metrics`, the `/admin`
//!   jobs API), and the in-memory Vendasta stand-in used by `demo`, `mock-vendasta` and the
//!   tests. Only module that imports axum.
//! - [`sources`]: one file per provider (Shopify, Square, WooCommerce, Stripe, Standard
//!   Webhooks, Pipedrive, generic HMAC): signature check, envelope, payload parsing;
//!   `signing.rs` (shared HMAC and timestamp checks) and `mapping.rs` (JSON Pointer mapping).
//! - [`contact`]: the neutral contact model every source parses into.
//! - [`transform`]: pure `Contact` → Vendasta customer attributes (normalisation).
//! - [`vendasta`]: credentials and token minting (`auth`), the customers and CRM adapters
//!   behind one `Upstream`, their wire models. Only module that imports reqwest.
//! - [`store`]: the durable queue, dedupe keys and contact links, on SQLite (one replica) or
//!   PostgreSQL (several). Only module that imports sqlx.
//! - [`delivery`]: the worker that claims jobs and delivers them; pure retry maths.
//! - [`hubspot`]: HubSpot's CRM API client (reads the contact a HubSpot webhook names).
//! - [`health`]: readiness state shared by the worker, the store and `/readyz`.
//! - [`metrics`]: every Prometheus metric name, typed record functions, the text encoding.
//! - [`retention`]: the background task that purges done jobs after `store.retention_days`.
//! - [`inspect`]: operator views of stored jobs (admin API and `jobs` CLI), redaction.
//! - [`app`]: wires everything together and runs it until shutdown.
//! - [`cli`]: the subcommands beyond `serve` and `check-config` (`demo`, `mock-vendasta`,
//!   `backfill`, `jobs`, `healthcheck`, `check-credentials`).
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
pub mod hubspot;
pub mod inspect;
pub mod metrics;
pub mod retention;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod transform;
pub mod vendasta;
