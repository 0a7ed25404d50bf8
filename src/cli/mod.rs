//! Implementations of the CLI subcommands other than `serve` and `check-config`.
//!
//! `main.rs` parses arguments and dispatches here; each subcommand lives in its own file
//! (`jobs.rs`, `backfill.rs`, …) and returns an exit code, so `main` stays thin.

pub mod credentials;
