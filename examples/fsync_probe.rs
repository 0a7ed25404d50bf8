//! Fsync latency of a directory's filesystem, for `scripts/bench`: the group-commit limit
//! of ingest is `connections / fsync latency`, so it must be measured on the store's own
//! filesystem and in the same run as the throughput it bounds.
//!
//! Usage: `fsync_probe DIR [COUNT]`. Appends 4 KiB (one SQLite WAL page plus header, as a
//! commit writes) and calls `fdatasync` COUNT times (default 200), or for [`AT_MOST`] if
//! that comes first; prints `fsync_ms p50=… p90=… p99=… max=… mean=… samples=…` and
//! removes its file.
//!
//! The maximum is printed because on this host some fsyncs take 10–50 ms in bursts
//! while the median is ~0.1 ms: those set the tail of the ack latency, and a probe that
//! reports only percentiles of a short run does not show them.

use std::{
    fs::OpenOptions,
    io::Write,
    path::PathBuf,
    time::{Duration, Instant},
};

/// A slow disk must not stretch the benchmark: the probe stops after this long.
const AT_MOST: Duration = Duration::from_secs(2);

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
    let probing = Instant::now();
    for _ in 0..count {
        if probing.elapsed() > AT_MOST {
            break;
        }
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
        "fsync_ms p50={:.3} p90={:.3} p99={:.3} max={:.3} mean={:.3} samples={}",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
        mean,
        samples.len()
    );
    Ok(())
}
