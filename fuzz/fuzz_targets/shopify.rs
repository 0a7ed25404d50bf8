//! Fuzzes the shopify source: signature check, envelope, parse and transform (see common.rs).
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::exercise("shopify", data));
