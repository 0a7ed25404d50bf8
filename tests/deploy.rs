//! The deploy files agree with the binary: probes hit endpoints that exist on the admin
//! port, grace periods outlast the drain budget, the SQLite StatefulSet stays at one
//! replica, and the image's defaults validate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::Value;
use vendasta_bridge::config::Config;

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn defaults() -> Config {
    let env: BTreeMap<String, String> = [
        ("VENDASTA_TOKEN", "t"),
        ("BRIDGE_ROUTES__0__NAME", "shop"),
        ("BRIDGE_ROUTES__0__SOURCE", "shopify"),
        ("BRIDGE_ROUTES__0__SECRETS", "s"),
        ("BRIDGE_ROUTES__0__BUSINESS_LOCATION", "AG-1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Config::from_sources(None, None, &env).unwrap()
}

#[test]
fn the_statefulset_probes_the_admin_port_and_outlasts_the_drain_budget() {
    let set = yaml("deploy/kubernetes/statefulset.yaml");
    let spec = &set["spec"];
    assert_eq!(spec["replicas"], 1, "SQLite allows one writer");
    let pod = &spec["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > defaults().server.shutdown_timeout_seconds);
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let admin_port = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap()["containerPort"]
        .as_u64()
        .unwrap();
    assert_eq!(
        admin_port,
        u64::from(defaults().admin.listen_address.port())
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
}

#[test]
fn the_kubernetes_config_file_is_valid_with_its_secret_variables() {
    let text = std::fs::read_to_string(format!(
        "{}/deploy/kubernetes/bridge.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let env: BTreeMap<String, String> = [("VENDASTA_TOKEN", "t"), ("SHOPIFY_WEBHOOK_SECRET", "s")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let error = Config::from_sources(Some(&text), None, &env).unwrap_err();
    // The placeholder location must be replaced before deploying, and says so.
    assert_eq!(error.problems.len(), 1, "{error}");
    assert!(error.problems[0].contains("AG-REPLACE-ME"), "{error}");
}

#[test]
fn compose_gives_the_bridge_time_to_drain_and_a_volume_for_its_queue() {
    let compose = yaml("deploy/compose.yaml");
    let bridge = &compose["services"]["bridge"];
    let grace = bridge["stop_grace_period"].as_str().unwrap();
    let grace: u64 = grace.trim_end_matches('s').parse().unwrap();
    assert!(grace > defaults().server.shutdown_timeout_seconds);
    assert!(
        bridge["volumes"][0].as_str().unwrap().ends_with(":/data"),
        "the queue survives restarts"
    );
}

#[test]
fn the_image_store_url_points_at_its_volume() {
    let dockerfile =
        std::fs::read_to_string(format!("{}/Dockerfile", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(dockerfile.contains("ENV BRIDGE_STORE__URL=sqlite:///data/bridge.db"));
    assert!(dockerfile.contains("VOLUME [\"/data\"]"));
    assert!(dockerfile.contains("USER 65532:65532"));
}

#[test]
fn the_postgres_compose_file_runs_two_replicas_on_one_database_after_it_is_healthy() {
    let compose = yaml("deploy/compose.postgres.yaml");
    let services = &compose["services"];
    assert!(services["postgres"]["healthcheck"]["test"].is_array());
    let mut urls = Vec::new();
    for name in ["bridge-a", "bridge-b"] {
        let bridge = &services[name];
        assert_eq!(
            bridge["depends_on"]["postgres"]["condition"], "service_healthy",
            "{name} waits for the database"
        );
        let grace: u64 = bridge["stop_grace_period"]
            .as_str()
            .unwrap()
            .trim_end_matches('s')
            .parse()
            .unwrap();
        assert!(grace > defaults().server.shutdown_timeout_seconds);
        // Its environment, with each `${VAR:?…}` filled in (AG-1 suits every one), is a valid config.
        let env: BTreeMap<String, String> = bridge["environment"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(key, value)| {
                let value = value.as_str().unwrap();
                let filled = match value.split_once("${") {
                    Some((head, rest)) => {
                        let (_, tail) = rest.split_once('}').unwrap();
                        format!("{head}AG-1{tail}")
                    }
                    None => value.to_string(),
                };
                (key.clone(), filled)
            })
            .collect();
        let config = Config::from_sources(None, None, &env).unwrap();
        assert!(config.store.url.starts_with("postgres://"));
        urls.push(config.store.url);
    }
    assert_eq!(urls[0], urls[1], "both replicas share one queue");
}
