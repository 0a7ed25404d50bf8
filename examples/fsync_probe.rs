//! Fsync latency of a directory's filesystem, for `scripts/bench`: the group-commit limit
//! of ingest is `connections / fsync latency`, so it must be measured on the store's own
//! filesystem and in the same run as the throughput it bounds.
//!
//! Usage: `fsync_probe DIR [COUNT]`. Appends 4 KiB (one SQLite WAL page plus header, as a
//! commit writes) and calls `fdatasync` COUNT times (default 200); prints
//! `fsync_ms p50=… p90=… p99=… mean=…` and removes its file.

use std::{
    fs::OpenOptions,
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let path = dir.join(".fsync-probe");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let page = [0x5a_u8; 4096];
    let mut samples: Vec<Duration> = Vec::with_capacity(count);
    for _ in 0..count {
        file.write_all(&page)?;
        let started = Instant::now();
        file.sync_data()?;
        samples.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path)?;
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1e3
    };
    let mean = samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e3;
    println!(
        "fsync_ms p50={:.3} p90={:.3} p99={:.3} mean={:.3}",
        at(0.5),
        at(0.9),
        at(0.99),
        mean
    );
    Ok(())
}
