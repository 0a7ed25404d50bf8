//! Delivery: the worker that claims stored jobs and sends them to Vendasta, and the pure
//! retry maths it uses.
//!
//! Depends on `store` (jobs), `sources` (payload parsing), `transform` (mapping) and
//! `vendasta` (the client); nothing depends on it but `app`.

mod actions;
pub mod retry;
pub mod worker;

pub use worker::{Tick, Worker};
