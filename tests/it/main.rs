//! Integration tests: the real router over real HTTP on 127.0.0.1, a real mock Vendasta
//! (wiremock) on port 0, and the built binary where process behaviour matters.

// Test helpers panic on purpose: a failed setup step should stop the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../support/schema.rs"]
mod schema;

#[path = "../support/crm_schema.rs"]
mod crm_schema;

mod auth;
mod backfill;
mod binary;
mod crash;
mod delivery;
mod demo;
mod helpers;
mod hostile_input;
mod hubspot;
mod ingest;
mod mock_vendasta;
mod ops;
mod outage;
mod pg;
mod replicas;
mod shopify_topics;
mod sources;
mod store_faults;
