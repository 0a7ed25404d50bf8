//! Fuzzes the generic source: signature check, envelope, parse, transform and the Vendasta
//! request bodies (see src/lib.rs), through two routes that differ in every signature
//! setting (SHA-512 hex with a prefix over `{timestamp}.{body}`, SHA-1 base64 over the body).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    vendasta_bridge_fuzz::exercise("generic", data);
    vendasta_bridge_fuzz::exercise("generic-b64", data);
});
