//! Hostile clients on the public listener: slowloris senders that drip their headers or
//! their body, and 10 MB bodies (with and without a Content-Length). Each is cut off —
//! late headers close the connection and a late body gets 408 and a close (both
//! `server.request_read_timeout_seconds`), an oversized body gets 413
//! (`server.max_body_bytes`) — while ordinary signed webhooks sent at the same time keep
//! getting 200. Slow headers are cut off on the admin listener too, while `/readyz` keeps
//! answering there. Correctness only: nothing here measures latency. Runs on the
//! in-process app, so on PostgreSQL too with `TEST_STORE=postgres`.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, tcp::OwnedReadHalf},
    task::JoinSet,
};

use crate::helpers::{TestApp, customer, spawn_app_with};

/// The bridge's read timeout in this test; short so the test is short.
const READ_TIMEOUT_SECONDS: u64 = 3;
const SLOW_HEADER_CONNECTIONS: usize = 40;
const SLOW_BODY_CONNECTIONS: usize = 40;
/// Each oversized body is sent once with a Content-Length and once chunked.
const OVERSIZED_BODIES: usize = 3;
const TEN_MB: usize = 10 * 1024 * 1024;
/// Pace of the slow senders: one byte per tick, so they always make *some* progress.
const DRIP: Duration = Duration::from_millis(250);
/// A hostile connection still open after this has not been cut off: the test fails.
const GIVE_UP: Duration = Duration::from_secs(30);

/// What a hostile client saw before its connection ended.
#[derive(Debug)]
struct Ending {
    kind: &'static str,
    /// Everything the server sent.
    response: String,
    /// False when the connection was still open at [`GIVE_UP`].
    closed: bool,
}

impl Ending {
    fn status_line(&self) -> &str {
        self.response.lines().next().unwrap_or("")
    }
}

/// Reads until the server closes the connection (EOF or reset), or gives up.
async fn read_until_closed(mut reader: OwnedReadHalf) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let closed = tokio::time::timeout(GIVE_UP, async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// Opens a connection, writes `head`, then keeps writing what `rest` yields (pacing it as
/// it likes) while reading whatever the server answers, until the server closes.
async fn hostile<F, Fut>(addr: SocketAddr, kind: &'static str, head: String, rest: F) -> Ending
where
    F: FnOnce(tokio::net::tcp::OwnedWriteHalf) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.expect("head sent");
    let sender = tokio::spawn(rest(writer));
    let (response, closed) = read_until_closed(reader).await;
    sender.abort();
    Ending {
        kind,
        response,
        closed,
    }
}

/// Headers of a request for `target` that never end: one more byte of an endless header
/// line per [`DRIP`].
async fn drip_headers(addr: SocketAddr, target: &str) -> Ending {
    let head = format!("POST {target} HTTP/1.1\r\nHost: bridge\r\nX-Slow: ");
    hostile(addr, "slow headers", head, |mut writer| async move {
        loop {
            tokio::time::sleep(DRIP).await;
            if writer.write_all(b"a").await.is_err() {
                return;
            }
        }
    })
    .await
}

/// Complete headers announcing 1,000 bytes, then one byte of body per [`DRIP`].
async fn drip_body(addr: SocketAddr) -> Ending {
    let head = "POST /webhooks/acme HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".to_string();
    hostile(addr, "slow body", head, |mut writer| async move {
        loop {
            tokio::time::sleep(DRIP).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    })
    .await
}

/// A 10 MB body sent as fast as the server takes it, announced or chunked.
async fn oversized(addr: SocketAddr, chunked: bool) -> Ending {
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {TEN_MB}")
    };
    let head = format!(
        "POST /webhooks/acme HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    );
    let kind = if chunked {
        "10 MB chunked"
    } else {
        "10 MB announced"
    };
    hostile(addr, kind, head, move |mut writer| async move {
        let block = vec![b' '; 64 * 1024];
        for _ in 0..TEN_MB / block.len() {
            let sent = if chunked {
                let mut chunk = format!("{:x}\r\n", block.len()).into_bytes();
                chunk.extend_from_slice(&block);
                chunk.extend_from_slice(b"\r\n");
                writer.write_all(&chunk).await
            } else {
                writer.write_all(&block).await
            };
            if sent.is_err() {
                return;
            }
        }
        if chunked {
            let _ignored = writer.write_all(b"0\r\n\r\n").await;
        }
    })
    .await
}

/// The app, with a read timeout of [`READ_TIMEOUT_SECONDS`] so the test is short.
async fn spawn_app_with_short_read_timeout() -> TestApp {
    spawn_app_with(|config| {
        config.server.request_read_timeout_seconds = READ_TIMEOUT_SECONDS;
    })
    .await
}

/// The address a raw TCP client connects to for one of the app's `http://host:port` URLs.
fn socket_address(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .parse()
        .unwrap_or_else(|_| panic!("{url} is not http://host:port"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_requests_are_cut_off_while_normal_webhooks_keep_getting_200() {
    // Arrange
    let app = spawn_app_with_short_read_timeout().await;
    let addr = socket_address(&app.ingest);

    // Act: open every hostile connection, then send ordinary webhooks until the last of
    // them has been dealt with.
    let open = Arc::new(AtomicUsize::new(0));
    let mut hostiles = JoinSet::new();
    let mut spawn = |ending: std::pin::Pin<Box<dyn Future<Output = Ending> + Send>>| {
        let open = Arc::clone(&open);
        open.fetch_add(1, Ordering::SeqCst);
        hostiles.spawn(async move {
            let ending = ending.await;
            open.fetch_sub(1, Ordering::SeqCst);
            ending
        });
    };
    for _ in 0..SLOW_HEADER_CONNECTIONS {
        spawn(Box::pin(drip_headers(addr, "/webhooks/acme")));
    }
    for _ in 0..SLOW_BODY_CONNECTIONS {
        spawn(Box::pin(drip_body(addr)));
    }
    for _ in 0..OVERSIZED_BODIES {
        spawn(Box::pin(oversized(addr, false)));
        spawn(Box::pin(oversized(addr, true)));
    }
    let mut normal = Vec::new();
    let mut while_slow_open = 0;
    let mut n = 0u64;
    while open.load(Ordering::SeqCst) > 0 {
        n += 1;
        let id = format!("wh-normal-{n}");
        let body = customer(
            900_000 + n,
            &format!("normal{n}@example.com"),
            "2026-01-01T00:00:00Z",
        );
        let response = app
            .post_shopify("acme", "customers/create", &id, &body)
            .await;
        let status = response.status().as_u16();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        if open.load(Ordering::SeqCst) > 0 {
            while_slow_open += 1;
        }
        normal.push((id, status, json));
    }
    let mut endings = Vec::new();
    while let Some(ending) = hostiles.join_next().await {
        endings.push(ending.expect("hostile client task"));
    }

    // Assert: every hostile connection was ended by the server, each in its own way.
    let count = |kind: &str| endings.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("slow headers"), SLOW_HEADER_CONNECTIONS);
    assert_eq!(count("slow body"), SLOW_BODY_CONNECTIONS);
    for ending in &endings {
        assert!(
            ending.closed,
            "a {} connection was still open after {GIVE_UP:?}; it received {:?}",
            ending.kind, ending.response
        );
        match ending.kind {
            // hyper has no request to answer: it just closes.
            "slow headers" => assert!(
                ending.response.is_empty() || ending.status_line().contains(" 408 "),
                "slow headers got {:?}",
                ending.response
            ),
            "slow body" => {
                assert!(
                    ending.status_line().starts_with("HTTP/1.1 408 "),
                    "slow body got {:?}",
                    ending.response
                );
                assert!(
                    ending.response.contains("request_read_timeout_seconds"),
                    "the 408 names the key: {:?}",
                    ending.response
                );
                assert!(
                    ending
                        .response
                        .to_ascii_lowercase()
                        .contains("connection: close"),
                    "{:?}",
                    ending.response
                );
            }
            _ => {
                assert!(
                    ending.status_line().starts_with("HTTP/1.1 413 "),
                    "{} got {:?}",
                    ending.kind,
                    ending.response
                );
                assert!(
                    ending.response.contains("server.max_body_bytes"),
                    "{:?}",
                    ending.response
                );
            }
        }
    }

    // Ordinary webhooks were answered 200 and stored, also while the hostile connections
    // were open.
    assert!(
        while_slow_open > 0,
        "no ordinary webhook completed while a hostile connection was open"
    );
    for (id, status, json) in &normal {
        assert_eq!(*status, 200, "{id}: {json}");
        assert_eq!(json["status"], "accepted", "{id}: {json}");
        assert!(app.job("acme", id).await.is_some(), "{id} was stored");
    }
    // Nothing a hostile client sent was stored.
    let counts = app.store.counts().await.expect("counts");
    assert_eq!(
        counts.pending + counts.in_flight + counts.done + counts.dead,
        normal.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_on_the_admin_listener_are_cut_off_while_readyz_keeps_answering() {
    // Arrange
    let app = spawn_app_with_short_read_timeout().await;
    let addr = socket_address(&app.admin);

    // Act: drip headers to the port the orchestrator probes, and probe it meanwhile.
    let mut hostiles = JoinSet::new();
    for _ in 0..SLOW_HEADER_CONNECTIONS {
        hostiles.spawn(drip_headers(addr, "/readyz"));
    }
    let readyz = app
        .http
        .get(format!("{}/readyz", app.admin))
        .send()
        .await
        .expect("readyz answers");
    let mut endings = Vec::new();
    while let Some(ending) = hostiles.join_next().await {
        endings.push(ending.expect("hostile client task"));
    }

    // Assert
    assert_eq!(readyz.status(), 200);
    assert_eq!(endings.len(), SLOW_HEADER_CONNECTIONS);
    for ending in &endings {
        assert!(
            ending.closed,
            "a slow-header connection to the admin listener was still open after {GIVE_UP:?}"
        );
        assert!(
            ending.response.is_empty() || ending.status_line().contains(" 408 "),
            "slow headers got {:?}",
            ending.response
        );
    }
}
