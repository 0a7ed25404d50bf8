//! Fuzzes config loading as `serve` and `check-config` do it: the compiled-in defaults,
//! then the file text, then `BRIDGE_<SECTION>__<KEY>` overrides and `${VAR}` expansion
//! from an environment, then validation. Any input must give a config or a list of
//! problems, never a panic; a config that validates must also build every route (startup's
//! next step) and render as redacted TOML (what `check-config` prints).
//!
//! Input layout: the file text, optionally followed by a line `#env` and then
//! `NAME=value` lines, the environment. It is passed to `Config::from_sources` as a map,
//! so the process environment is never touched.
#![no_main]

use std::collections::BTreeMap;

use vendasta_bridge::{config::Config, sources::Registry};

/// Separates the file from the environment; a TOML comment, so a seed stays valid TOML.
const ENV_MARKER: &str = "\n#env\n";

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (file, env_text) = input.split_once(ENV_MARKER).unwrap_or((input, ""));
    let mut env = BTreeMap::new();
    env.insert("FUZZ_VAR".to_string(), "value".to_string());
    for line in env_text.lines() {
        if let Some((name, value)) = line.split_once('=') {
            env.insert(name.to_string(), value.to_string());
        }
    }
    match Config::from_sources(Some(file), Some("fuzz input"), &env) {
        Ok(config) => {
            if let Err(error) = Registry::from_config(&config) {
                panic!("a config that validates cannot build its routes: {error}");
            }
            let _ = config.to_redacted_toml();
        }
        Err(error) => {
            assert!(
                !error.problems.is_empty(),
                "a refused config names no problem"
            );
            let _ = error.to_string();
        }
    }
});
