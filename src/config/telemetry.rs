//! The `[telemetry]` keys: where OpenTelemetry traces go, and the startup check that the
//! binary can send them at all.
//!
//! Kept apart from `config.rs` so the optional `otel` feature touches one small file of
//! the loader. The check runs in every build: an endpoint set in a binary built without
//! `--features otel` would otherwise be silently ignored, and the operator would look for
//! traces that never come.

use super::{Config, url_parses};

/// The OTLP/HTTP path for traces, appended to `telemetry.otlp_endpoint`.
pub const TRACES_PATH: &str = "/v1/traces";

impl super::TelemetryConfig {
    /// The full URL spans are POSTed to, or `None` when traces are off.
    ///
    /// The key holds the collector's base URL (as `OTEL_EXPORTER_OTLP_ENDPOINT` does);
    /// a URL that already ends in `/v1/traces` is used as it is.
    pub fn traces_url(&self) -> Option<String> {
        let base = self.otlp_endpoint.trim();
        if base.is_empty() {
            return None;
        }
        if base.trim_end_matches('/').ends_with(TRACES_PATH) {
            return Some(base.trim_end_matches('/').to_string());
        }
        Some(format!("{}{TRACES_PATH}", base.trim_end_matches('/')))
    }
}

impl Config {
    /// An endpoint needs the `otel` feature, an http(s) URL and a service name.
    pub(super) fn validate_telemetry(&self, problems: &mut Vec<String>) {
        let telemetry = &self.telemetry;
        let endpoint = telemetry.otlp_endpoint.trim();
        if endpoint.is_empty() {
            return;
        }
        if !cfg!(feature = "otel") {
            problems.push(format!(
                "telemetry.otlp_endpoint is set to `{endpoint}` but this binary was built without OpenTelemetry support: rebuild with `cargo build --release --features otel`, or set telemetry.otlp_endpoint = \"\" to turn traces off"
            ));
            return;
        }
        let (scheme, _) = endpoint.split_once("://").unwrap_or(("", ""));
        if !matches!(scheme, "http" | "https")
            || endpoint.chars().any(char::is_whitespace)
            || !url_parses(endpoint)
        {
            problems.push(format!(
                "telemetry.otlp_endpoint `{endpoint}` is not a valid http(s) URL: use the OTLP/HTTP collector's base URL, e.g. http://otel-collector:4318"
            ));
        }
        if telemetry.service_name.trim().is_empty() {
            problems.push(
                "telemetry.service_name is empty: name the service traces belong to, e.g. \"vendasta-bridge\"".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{Config, TelemetryConfig};

    const ROUTE: &str = r#"
        [[routes]]
        name = "acme"
        source = "shopify"
        secrets = ["s3cr3t"]
        business_location = "AG-123"
        [vendasta]
        token = "tok"
    "#;

    fn load(telemetry: &str) -> Result<Config, Vec<String>> {
        let file = format!("{ROUTE}\n[telemetry]\n{telemetry}\n");
        Config::from_sources(Some(&file), None, &BTreeMap::new()).map_err(|e| e.problems)
    }

    fn telemetry(endpoint: &str) -> TelemetryConfig {
        TelemetryConfig {
            otlp_endpoint: endpoint.into(),
            service_name: "vendasta-bridge".into(),
        }
    }

    #[test]
    fn traces_are_off_by_default_and_named_after_the_bridge() {
        let config = load("").unwrap();
        assert_eq!(config.telemetry.traces_url(), None);
        assert_eq!(config.telemetry.service_name, "vendasta-bridge");
    }

    #[test]
    fn the_traces_path_is_appended_to_the_collector_base_url_once() {
        assert_eq!(
            telemetry("http://otel-collector:4318")
                .traces_url()
                .as_deref(),
            Some("http://otel-collector:4318/v1/traces")
        );
        assert_eq!(
            telemetry("http://otel-collector:4318/")
                .traces_url()
                .as_deref(),
            Some("http://otel-collector:4318/v1/traces")
        );
        assert_eq!(
            telemetry("https://collector.example/otlp/v1/traces")
                .traces_url()
                .as_deref(),
            Some("https://collector.example/otlp/v1/traces")
        );
    }

    #[test]
    fn an_unknown_telemetry_key_is_an_error() {
        let problems = load("otlp_endpoint_url = \"http://x:4318\"").unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("unknown key `telemetry.otlp_endpoint_url`")),
            "{problems:?}"
        );
    }

    #[cfg(not(feature = "otel"))]
    #[test]
    fn an_endpoint_without_the_otel_feature_says_to_rebuild_with_it() {
        let problems = load("otlp_endpoint = \"http://otel-collector:4318\"").unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("telemetry.otlp_endpoint")
                && problems[0].contains("--features otel"),
            "{problems:?}"
        );
    }

    #[cfg(feature = "otel")]
    #[test]
    fn a_bad_endpoint_and_an_empty_service_name_are_both_reported() {
        let problems =
            load("otlp_endpoint = \"otel-collector:4318\"\nservice_name = \" \"").unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("telemetry.otlp_endpoint `otel-collector:4318`")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("telemetry.service_name is empty")),
            "{problems:?}"
        );
    }

    #[cfg(feature = "otel")]
    #[test]
    fn an_http_endpoint_is_accepted_with_the_otel_feature() {
        let config = load("otlp_endpoint = \"http://127.0.0.1:4318\"").unwrap();
        assert_eq!(
            config.telemetry.traces_url().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
    }
}
