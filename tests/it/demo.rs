//! `vendasta-bridge demo` and `vendasta-bridge mock-vendasta`, run as the built binary.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_vendasta-bridge");

#[test]
fn the_demo_exits_0_and_narrates_created_updated_and_the_conflict_with_the_existing_id() {
    // Act
    let output = Command::new(BIN)
        .arg("demo")
        .env_remove("RUST_LOG")
        .output()
        .expect("binary runs");

    // Assert
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let line_with = |needle: &str| {
        stdout
            .lines()
            .find(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{stdout}"))
    };
    // The pre-seeded customer's id, as the stand-in generated it.
    let existing = line_with("Vendasta already has one customer")
        .split_whitespace()
        .find(|word| word.starts_with("AG-DEMO:CUSTOMER-"))
        .expect("the seeded id is named")
        .trim_end_matches('.')
        .to_string();
    let created = line_with("(outcome: created)");
    let new_id = created
        .split_whitespace()
        .find(|word| word.starts_with("AG-DEMO:CUSTOMER-"))
        .expect("the created id is named");
    assert_ne!(new_id, existing);
    assert!(line_with("(outcome: updated)").contains(new_id), "{stdout}");
    assert!(line_with(&format!("PATCH /business/customers/{new_id}")).contains("answered 200"));
    let conflict = line_with("(outcome: conflict)");
    assert!(conflict.contains("409"), "{conflict}");
    assert!(
        conflict.contains(&existing),
        "{conflict} should name {existing}"
    );
    assert!(line_with("\"duplicate\"").contains("job id 1"), "{stdout}");
    assert!(stdout.contains("3 jobs done, 0 dead"), "{stdout}");
    assert!(
        !stdout.contains("@example.com"),
        "the story never prints an email"
    );
}

#[tokio::test]
async fn mock_vendasta_runs_alone_prints_its_url_and_stops_on_sigterm() {
    // Arrange
    let mut child = Command::new(BIN)
        .args(["mock-vendasta", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let (found, url) = std::sync::mpsc::channel();
    // Keeps reading to the end, so the goodbye line has somewhere to go.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split('"').find(|part| part.starts_with("http://")) {
                found.send(url.to_string()).ok();
            }
        }
    });
    let url = tokio::task::spawn_blocking(move || url.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("it prints the customers_url");

    // Act
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .post(&url)
        .header("authorization", "Bearer anything")
        .header("content-type", "application/vnd.api+json")
        .json(&json!({ "data": { "type": "customers",
            "attributes": { "emailAddresses": ["a@b.co"] },
            "relationships": { "businessLocation": { "data": { "id": "AG-1" } } } } }))
        .send()
        .await
        .unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();

    // Assert
    assert_eq!(response.status(), 201);
    assert!(url.ends_with("/business/customers"), "{url}");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit.code();
        }
        assert!(
            Instant::now() < deadline,
            "mock-vendasta did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code, Some(0));
}
