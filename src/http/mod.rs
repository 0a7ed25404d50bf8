//! HTTP: the public ingest router and the admin router. The only module that imports axum.
//!
//! Handlers translate between HTTP and the layers below; every error-to-status decision
//! lives in one `match` in [`error`].

pub mod admin;
pub mod error;
pub mod ingest;
pub mod privacy;

pub use admin::{AdminState, admin_router};
pub use ingest::{IngestState, ingest_router};
