//! Constant-rate load generator for `scripts/bench`: sends signed Shopify
//! `customers/create` webhooks at a fixed rate and reports the ack latency percentiles.
//!
//! Debian's `wrk` only runs closed loops (each connection waits for its answer), which
//! hides queueing: a slow answer delays the next request instead of showing up in the
//! latency. Here request i is due at `start + i / rate`, is sent then whatever is still in
//! flight, and its latency is measured from that due time, so a stall counts for every
//! request it held back (no coordinated omission).
//!
//! Usage: `bench_rate --url URL --body FILE --secret S [--rate 1000] [--seconds 10]
//! [--max-in-flight 2000]`. Prints one line:
//! `latency_ms p50=… p99=… p999=… max=… sent=… ok=… other=… errors=… rate=…`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::{sync::Semaphore, task::JoinSet};

struct Args {
    url: String,
    body: Vec<u8>,
    secret: String,
    rate: f64,
    seconds: f64,
    max_in_flight: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut url, mut body, mut secret) = (None, None, None);
    let (mut rate, mut seconds, mut max_in_flight) = (1000.0, 10.0, 2000);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<f64>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--url" => url = Some(value.clone()),
            "--body" => {
                body = Some(std::fs::read(&value).map_err(|e| format!("--body {value}: {e}"))?)
            }
            "--secret" => secret = Some(value.clone()),
            "--rate" => rate = number()?,
            "--seconds" => seconds = number()?,
            "--max-in-flight" => max_in_flight = number()? as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        url: url.ok_or("--url is required")?,
        body: body.ok_or("--body is required")?,
        secret: secret.ok_or("--secret is required")?,
        rate,
        seconds,
        max_in_flight,
    })
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    let client = vendasta_bridge::vendasta::client::http_client(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(args.secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(&args.body);
    let hmac = BASE64.encode(mac.finalize().into_bytes());
    let body = bytes::Bytes::from(args.body);
    let total = (args.rate * args.seconds).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let in_flight = Arc::new(Semaphore::new(args.max_in_flight));
    // Unique per run, so a second run against the same store is not answered "duplicate".
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_nanos();

    // Requests are paced on a thread of their own with `std::thread::sleep` (the kernel's
    // high-resolution timer, tens of µs late), not tokio's timer, whose 1 ms ticks sent
    // each request up to 1 ms after it was due: that lateness counted as the server's
    // latency and put the floor at ~1.3 ms p50 even for a bare axum handler.
    let runtime = tokio::runtime::Handle::current();
    let pacer = std::thread::spawn(move || -> Result<(JoinSet<_>, Instant), String> {
        let mut tasks = JoinSet::new();
        let start = Instant::now();
        for i in 0..total {
            let due = start + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            // A full in-flight window holds the next request back: that wait counts,
            // because it is measured from `due`.
            let permit = runtime
                .block_on(Arc::clone(&in_flight).acquire_owned())
                .map_err(|e| e.to_string())?;
            let request = client
                .post(&args.url)
                .header("Content-Type", "application/json")
                .header("X-Shopify-Topic", "customers/create")
                .header("X-Shopify-Hmac-Sha256", &hmac)
                .header("X-Shopify-Shop-Domain", "bench.myshopify.com")
                .header("X-Shopify-API-Version", "2026-07")
                .header("X-Shopify-Webhook-Id", format!("rate-{run}-{i}"))
                .body(body.clone());
            tasks.spawn_on(
                async move {
                    let outcome = request.send().await.map(|r| r.status().as_u16());
                    drop(permit);
                    (due.elapsed(), outcome)
                },
                &runtime,
            );
        }
        Ok((tasks, start))
    });
    let (mut tasks, start) = tokio::task::spawn_blocking(move || pacer.join())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|_| "the pacing thread panicked".to_string())??;
    let mut latencies = Vec::with_capacity(total as usize);
    let (mut ok, mut other, mut errors) = (0u64, 0u64, 0u64);
    while let Some(joined) = tasks.join_next().await {
        let (latency, outcome) = joined.map_err(|e| e.to_string())?;
        match outcome {
            Ok(200) => ok += 1,
            Ok(_) => other += 1,
            Err(_) => errors += 1,
        }
        latencies.push(latency);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[index].as_secs_f64() * 1e3
    };
    println!(
        "latency_ms p50={:.3} p99={:.3} p999={:.3} max={:.3} sent={total} ok={ok} other={other} errors={errors} rate={:.0}",
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0),
        total as f64 / elapsed
    );
    Ok(())
}
