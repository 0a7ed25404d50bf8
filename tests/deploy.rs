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

/// Every YAML file under `dir`, recursively.
fn manifests(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            manifests(&path, found);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            found.push(path);
        }
    }
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let selector = selector.as_object().unwrap();
    !selector.is_empty() && selector.iter().all(|(k, v)| &labels[k] == v)
}

#[test]
fn every_kubernetes_manifest_parses_and_every_kustomization_resource_exists() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files = Vec::new();
    manifests(&root, &mut files);
    assert!(files.len() >= 7, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let doc: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
        assert!(
            doc["apiVersion"].is_string(),
            "{} has no apiVersion",
            file.display()
        );
        assert!(doc["kind"].is_string(), "{} has no kind", file.display());
        if doc["kind"] == "Kustomization" {
            let dir = file.parent().unwrap();
            for resource in doc["resources"].as_array().unwrap() {
                let path = dir.join(resource.as_str().unwrap());
                assert!(
                    path.exists(),
                    "{} lists missing {}",
                    file.display(),
                    path.display()
                );
            }
            for generator in doc["configMapGenerator"].as_array().into_iter().flatten() {
                for f in generator["files"].as_array().unwrap() {
                    assert!(dir.join(f.as_str().unwrap()).exists());
                }
            }
        }
    }
}

#[test]
fn pods_are_scraped_on_the_admin_port_ask_for_resources_and_are_selected_by_the_pdb() {
    let admin_port = defaults().admin.listen_address.port().to_string();
    let pdb = yaml("deploy/kubernetes/pdb.yaml");
    assert_eq!(pdb["kind"], "PodDisruptionBudget");
    assert_eq!(
        pdb["spec"]["maxUnavailable"], 1,
        "must not block node drains"
    );
    let base = yaml("deploy/kubernetes/kustomization.yaml");
    assert!(
        base["resources"]
            .as_array()
            .unwrap()
            .contains(&Value::from("pdb.yaml"))
    );
    for path in [
        "deploy/kubernetes/statefulset.yaml",
        "deploy/kubernetes/postgres/deployment.yaml",
    ] {
        let workload = yaml(path);
        let template = &workload["spec"]["template"];
        let labels = &template["metadata"]["labels"];
        assert!(
            labels_match(&pdb["spec"]["selector"]["matchLabels"], labels),
            "the PDB does not select the pods of {path}"
        );
        assert!(
            labels_match(&workload["spec"]["selector"]["matchLabels"], labels),
            "{path}"
        );
        let annotations = &template["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{path}");
        assert_eq!(
            annotations["prometheus.io/port"],
            admin_port.as_str(),
            "{path}"
        );
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{path}");
        let container = &template["spec"]["containers"][0];
        assert!(
            container["resources"]["requests"]["cpu"].is_string(),
            "{path}"
        );
        assert!(
            container["resources"]["requests"]["memory"].is_string(),
            "{path}"
        );
        assert_eq!(
            container["envFrom"][0]["secretRef"]["name"],
            "vendasta-bridge"
        );
    }
}

#[test]
fn the_postgres_overlay_runs_several_replicas_with_the_store_url_from_the_secret() {
    let overlay = yaml("deploy/kubernetes/postgres/kustomization.yaml");
    assert!(
        overlay["resources"]
            .as_array()
            .unwrap()
            .contains(&Value::from("../"))
    );
    let patch = overlay["patches"][0]["patch"].as_str().unwrap();
    assert!(patch.contains("$patch: delete") && patch.contains("StatefulSet"));
    let deployment = yaml("deploy/kubernetes/postgres/deployment.yaml");
    assert_eq!(deployment["kind"], "Deployment");
    assert!(deployment["spec"]["replicas"].as_u64().unwrap() > 1);
    let pod = &deployment["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(grace > defaults().server.shutdown_timeout_seconds);
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["readinessProbe"]["httpGet"]["port"], "admin");
    let admin = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap();
    assert_eq!(
        admin["containerPort"].as_u64().unwrap(),
        u64::from(defaults().admin.listen_address.port())
    );
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.get("persistentVolumeClaim").is_none())
    );

    let text = std::fs::read_to_string(format!(
        "{}/deploy/kubernetes/postgres/bridge.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let toml: toml::Table = text.parse().unwrap();
    assert_eq!(toml["store"]["url"].as_str(), Some("${DATABASE_URL}"));
    let secret = yaml("deploy/kubernetes/secret.example.yaml");
    assert_eq!(secret["kind"], "Secret");
    let keys = secret["stringData"].as_object().unwrap();
    for key in [
        "DATABASE_URL",
        "VENDASTA_TOKEN",
        "SHOPIFY_WEBHOOK_SECRET",
        "BRIDGE_ADMIN__TOKEN",
    ] {
        assert!(keys.contains_key(key), "the Secret example lacks {key}");
    }
    assert!(
        keys.values()
            .all(|v| v.as_str().unwrap().contains("replace-me")),
        "the example must hold placeholders only"
    );
    // With the Secret's variables set, the only problems left are the placeholder
    // location and (until the PostgreSQL store lands) the postgres:// URL.
    let env: BTreeMap<String, String> = [
        ("VENDASTA_TOKEN", "t"),
        ("SHOPIFY_WEBHOOK_SECRET", "s"),
        ("DATABASE_URL", "postgres://bridge:pw@postgres:5432/bridge"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let error = Config::from_sources(Some(&text), None, &env).unwrap_err();
    assert!(
        error
            .problems
            .iter()
            .all(|p| p.contains("AG-REPLACE-ME") || p.contains("store.url")),
        "{error}"
    );
}

#[test]
fn the_image_checks_its_own_health_with_the_binary() {
    let dockerfile =
        std::fs::read_to_string(format!("{}/Dockerfile", env!("CARGO_MANIFEST_DIR"))).unwrap();
    assert!(
        dockerfile.contains(r#"CMD ["/usr/local/bin/vendasta-bridge", "healthcheck"]"#),
        "HEALTHCHECK must use the exec form and the healthcheck subcommand"
    );
    assert!(dockerfile.contains("HEALTHCHECK --interval="));
}
