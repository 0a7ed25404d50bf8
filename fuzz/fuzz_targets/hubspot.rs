//! Fuzzes the hubspot source: signature check, envelope, parse, transform and the Vendasta
//! request bodies (see src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vendasta_bridge_fuzz::exercise("hubspot", data));
