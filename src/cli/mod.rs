//! Implementations of the CLI subcommands other than `serve` and `check-config`.
//!
//! `main.rs` parses arguments and dispatches here; each subcommand lives in its own file
//! (`jobs.rs`, `backfill.rs`, …) and returns an exit code, so `main` stays thin.

pub mod healthcheck;
pub mod jobs;

/// Exit code for a usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure at run time.
pub const EXIT_RUNTIME: u8 = 1;
