//! `vendasta-bridge backfill`, run as the built binary against a real store, and the
//! worker delivering what it queued to the Vendasta stand-in.

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    net::SocketAddr,
    path::Path,
    process::{Command, Output},
};

use vendasta_bridge::{
    http::mock_vendasta::{MockOptions, MockVendasta},
    store::{JobState, Store},
};

use crate::{
    helpers::{LOCATION, spawn_app_with},
    schema,
};

const BIN: &str = env!("CARGO_BIN_EXE_vendasta-bridge");

/// Shopify's customer export header (see `sources::backfill::ShopifyCsvColumns`).
const SHOPIFY_HEADER: &str = "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Company,Default Address Address1,Default Address Address2,Default Address City,Default Address Province Code,Default Address Country Code,Default Address Zip,Default Address Phone,Phone,Accepts SMS Marketing,Total Spent,Total Orders,Note,Tax Exempt,Tags";

fn config_file(dir: &Path, store_url: &str) -> std::path::PathBuf {
    let path = dir.join("bridge.toml");
    std::fs::write(
        &path,
        format!(
            r#"
            [store]
            url = "{store_url}"
            [vendasta]
            token = "unused-by-backfill"
            [[routes]]
            name = "acme"
            source = "shopify"
            secrets = ["s"]
            business_location = "{LOCATION}"
            "#
        ),
    )
    .unwrap();
    path
}

fn backfill(config: &Path, file: &Path) -> Output {
    Command::new(BIN)
        .args(["backfill", "--route", "acme", "--file"])
        .arg(file)
        .arg("--config")
        .arg(config)
        .env_remove("BRIDGE_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Line numbers named by `line N: skipped: …` reports.
fn reported_lines(stderr: &str) -> BTreeSet<u64> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("line ")?.split(':').next()?.parse().ok())
        .collect()
}

#[tokio::test]
async fn a_10000_row_export_with_3_bad_rows_queues_9997_jobs_and_a_rerun_adds_nothing() {
    // Arrange: line 1 is the header, so row n is on line n + 1.
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}/bridge.db", dir.path().display());
    let config = config_file(dir.path(), &store_url);
    let bad = BTreeSet::from([101_u64, 5002, 9999]);
    let mut csv = format!("{SHOPIFY_HEADER}\n");
    for n in 1..=10_000_u64 {
        let line = n + 1;
        let row = match line {
            101 => format!("{n},No,Contact,,no,,1 Main St,,Ottawa,ON,CA,K1A 0B1,,,no,0.00,0,,no,"),
            5002 => format!("{n},Too,Many,t{n}@example.com,no,extra-field"),
            9999 => format!(
                "{n},Bad,Country,c{n}@example.com,no,,1 Main St,,Ottawa,ON,Canada,K1A 0B1,,,no,0.00,0,,no,"
            ),
            _ => format!(
                "'{n},First{n},Last,person{n}@example.com,yes,,{n} Main St,,Ottawa,ON,CA,K1A 0B1,,+1613555{:04},no,10.00,1,,no,\"vip, imported\"",
                n % 10_000
            ),
        };
        writeln!(csv, "{row}").unwrap();
    }
    let file = dir.path().join("customers_export.csv");
    std::fs::write(&file, csv).unwrap();

    // Act
    let first = backfill(&config, &file);
    let second = backfill(&config, &file);

    // Assert
    let (stdout, stderr) = (text(&first.stdout), text(&first.stderr));
    assert!(first.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(reported_lines(&stderr), bad, "{stderr}");
    assert_eq!(stderr.matches("skipped").count(), 3, "{stderr}");
    assert!(
        !stderr.contains("@example.com"),
        "row reports never quote values: {stderr}"
    );
    assert!(stdout.contains("9997 contacts queued"), "{stdout}");
    assert!(
        stdout.contains("3 bad rows skipped (lines 101, 5002, 9999)"),
        "{stdout}"
    );

    let (stdout, stderr) = (text(&second.stdout), text(&second.stderr));
    assert!(
        second.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("0 contacts queued, 9997 already queued"),
        "{stdout}"
    );
    assert_eq!(reported_lines(&stderr), bad);

    let store = Store::open(&store_url).await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!(
        counts.pending + counts.in_flight + counts.done + counts.dead,
        9997
    );
    let job = store
        .job_by_delivery("acme", "backfill:42")
        .await
        .unwrap()
        .expect("row 42 is queued under its Shopify customer id");
    assert_eq!(job.topic, "bridge/backfill");
    assert_eq!(job.contact_id.as_deref(), Some("42"));
    assert_eq!(job.state, JobState::Pending);
    store.close().await;
}

#[tokio::test]
async fn backfilled_contacts_are_delivered_to_the_stand_in_as_valid_creates() {
    // Arrange: a running bridge whose Vendasta is the stand-in, on a store we can name.
    let mock = MockVendasta::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        MockOptions::default(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}/bridge.db", dir.path().display());
    let (url, customers_url) = (store_url.clone(), mock.customers_url());
    let app = spawn_app_with(move |config| {
        config.store.url = url;
        config.vendasta.customers_url = customers_url;
    })
    .await;
    let config = config_file(dir.path(), &store_url);
    let csv = dir.path().join("customers_export.csv");
    std::fs::write(
        &csv,
        format!(
            "{SHOPIFY_HEADER}\n'7011,Ada,Lovelace,Ada@Example.com,yes,Analytical Ltd,1 Main St,Unit 2,Ottawa,ON,ca,K1A 0B1,+16135550100,,no,10.00,1,,no,\"vip, imported\"\n"
        ),
    )
    .unwrap();
    let jsonl = dir.path().join("contacts.jsonl");
    std::fs::write(
        &jsonl,
        r#"{"id": "j-1", "first_name": "Grace", "phone": "+1 306 555 1234", "address": {"country_code": "CA", "province_code": "SK", "city": "Regina"}, "tags": ["navy"], "marketing_consent": false}
"#,
    )
    .unwrap();

    // Act
    let from_csv = backfill(&config, &csv);
    let from_jsonl = backfill(&config, &jsonl);
    let ada = app.settled("acme", "backfill:7011").await;
    let grace = app.settled("acme", "backfill:j-1").await;

    // Assert
    assert!(from_csv.status.success(), "{}", text(&from_csv.stderr));
    assert!(from_jsonl.status.success(), "{}", text(&from_jsonl.stderr));
    assert_eq!(
        (ada.state, ada.outcome.as_deref()),
        (JobState::Done, Some("created"))
    );
    assert_eq!(
        (grace.state, grace.outcome.as_deref()),
        (JobState::Done, Some("created"))
    );
    let customers = mock.customers();
    assert_eq!(customers.len(), 2);
    // The two jobs are delivered concurrently, so the stand-in may have seen either first.
    for job in [&ada, &grace] {
        assert!(
            customers
                .iter()
                .any(|c| Some(c.id.as_str()) == job.customer_id.as_deref()),
            "{:?} is not among {customers:?}",
            job.customer_id
        );
    }
    let bodies: Vec<_> = mock.requests().into_iter().map(|r| r.body).collect();
    for body in &bodies {
        schema::assert_valid_create(body);
    }
    let by_name = |name: &str| {
        bodies
            .iter()
            .find(|b| b["data"]["attributes"]["givenName"] == name)
            .unwrap_or_else(|| panic!("no request for {name}"))
    };
    let ada_body = &by_name("Ada")["data"];
    assert_eq!(
        ada_body["relationships"]["businessLocation"]["data"]["id"],
        LOCATION
    );
    let attributes = &ada_body["attributes"];
    assert_eq!(attributes["givenName"], "Ada");
    assert_eq!(attributes["familyName"], "Lovelace");
    assert_eq!(
        attributes["emailAddresses"],
        serde_json::json!(["Ada@Example.com"])
    );
    assert_eq!(
        attributes["phoneNumbers"],
        serde_json::json!(["+16135550100"])
    );
    assert_eq!(attributes["permissionToContact"], true);
    assert_eq!(attributes["address"]["streetAddress"], "1 Main St, Unit 2");
    assert_eq!(attributes["address"]["regionCode"], "CA-ON");
    assert_eq!(attributes["address"]["countryCode"], "CA");
    let tags: BTreeSet<&str> = attributes["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(
        tags.is_superset(&BTreeSet::from(["vip", "imported", "from-shopify"])),
        "{tags:?}"
    );
    let grace_attributes = &by_name("Grace")["data"]["attributes"];
    assert_eq!(
        grace_attributes["phoneNumbers"],
        serde_json::json!(["+13065551234"])
    );
    assert_eq!(grace_attributes["permissionToContact"], false);
    assert_eq!(grace_attributes["address"]["regionCode"], "CA-SK");

    app.stop().await.unwrap();
    mock.stop().await;
}

#[test]
fn an_unknown_route_or_file_type_is_a_usage_error_that_names_it() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let store_url = format!("sqlite://{}/bridge.db", dir.path().display());
    let config = config_file(dir.path(), &store_url);
    let csv = dir.path().join("customers.csv");
    std::fs::write(&csv, "Email\na@b.co\n").unwrap();
    // Act
    let unknown_route = Command::new(BIN)
        .args(["backfill", "--route", "nope", "--file"])
        .arg(&csv)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let wrong_type = backfill(&config, &dir.path().join("contacts.xlsx"));
    // Assert
    assert_eq!(unknown_route.status.code(), Some(2));
    let stderr = text(&unknown_route.stderr);
    assert!(
        stderr.contains("--route nope") && stderr.contains("known: acme"),
        "{stderr}"
    );
    assert_eq!(wrong_type.status.code(), Some(2));
    assert!(
        text(&wrong_type.stderr).contains(".csv"),
        "{}",
        text(&wrong_type.stderr)
    );
}
