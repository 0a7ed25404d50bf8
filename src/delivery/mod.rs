//! (being written)
pub mod retry;
