//! The machine's ceiling for `scripts/bench`: a bare axum server that reads the request
//! body and answers 200, with no verification and no store. The bridge's ingest rate is
//! divided by this server's rate under the same load generator, body and connections.
//!
//! Usage: `bench_ceiling ADDR` (e.g. 127.0.0.1:18090). Runs until killed.

use axum::{Router, body::Bytes, http::StatusCode, routing::post};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".to_string());
    // The same route shape as the bridge, and the body is read in full, as ingest must
    // before it can check a signature.
    let app = Router::new().route(
        "/webhooks/{route}",
        post(|body: Bytes| async move {
            std::hint::black_box(body.len());
            (StatusCode::OK, r#"{"status":"accepted"}"#)
        }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
