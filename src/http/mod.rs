//! HTTP: the public ingest router, the admin router, and the Vendasta stand-in
//! ([`mock_vendasta`]). The only module that imports axum.
//!
//! Handlers translate between HTTP and the layers below; every error-to-status decision
//! lives in one `match` in [`error`].

pub mod admin;
pub mod admin_api;
pub mod error;
pub mod ingest;
pub mod mock_vendasta;
pub mod privacy;
pub mod scrape;
pub mod server;

pub use admin::{AdminState, admin_router};
pub use ingest::{IngestState, ingest_router};
pub use server::serve;
