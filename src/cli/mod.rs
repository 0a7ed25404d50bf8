//! Implementations of the CLI subcommands other than `serve` and `check-config`.
//!
//! `main.rs` parses arguments and dispatches here; each subcommand lives in its own file
//! (`jobs.rs`, `backfill.rs`, …) and returns an exit code, so `main` stays thin.

pub mod backfill;
pub mod credentials;
pub mod demo;
pub mod healthcheck;
pub mod jobs;
pub mod mock;

/// Exit code for a usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure at run time.
pub const EXIT_RUNTIME: u8 = 1;

/// Resolves on SIGTERM (orchestrators) or SIGINT (Ctrl-C), for subcommands that run until
/// stopped. A signal that cannot be listened for is treated as never arriving.
pub async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Prints one line to stdout. A closed stdout (the reader went away) is not worth
/// crashing a subcommand over, unlike `println!`, which panics then.
pub fn say(line: &str) {
    use std::io::Write;
    if writeln!(std::io::stdout(), "{line}").is_err() {
        // Nobody is reading; carry on so the subcommand still shuts down cleanly.
    }
}

/// A multi-threaded runtime for a subcommand; failing to build one is a runtime error.
fn runtime() -> Result<tokio::runtime::Runtime, std::io::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
