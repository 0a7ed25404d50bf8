//! The tracing subscriber: JSON lines by default, human-readable on request.
//!
//! The level comes from `RUST_LOG`; without it the bridge logs at `info` and keeps
//! chatty dependencies at `warn`.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,reqwest=warn";

/// Installs the global subscriber. Call once, at startup.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stdout);
    // A second init (tests) is harmless: keep the first subscriber.
    let _already_set = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
