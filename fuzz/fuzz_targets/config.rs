//! Fuzzes config loading: any file text, layered over the compiled-in defaults and
//! validated, must give a config or a list of problems, never a panic.
#![no_main]

use std::collections::BTreeMap;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut env = BTreeMap::new();
        env.insert("FUZZ_VAR".to_string(), "value".to_string());
        let _ = vendasta_bridge::config::Config::from_sources(Some(text), Some("fuzz input"), &env);
    }
});
