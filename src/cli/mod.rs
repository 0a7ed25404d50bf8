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

/// SIGTERM (orchestrators) and SIGINT (Ctrl-C), for `serve` and the subcommands that run
/// until stopped.
///
/// Listening starts when [`StopSignals::listen`] returns, not when [`StopSignals::recv`]
/// is first polled: a process that announces it is up and only then starts listening can
/// be sent SIGTERM in between, and the signal's default action kills it instead of
/// stopping it cleanly with exit code 0. So make this before saying "started". A signal
/// that cannot be listened for is logged and treated as never arriving.
pub struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Starts listening. Call it inside the Tokio runtime.
    pub fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(error = %error, signal = name, "Cannot listen for a stop signal.");
                    None
                }
            };
            StopSignals {
                terminate: listen(SignalKind::terminate(), "SIGTERM"),
                interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Resolves on the first stop signal with its name.
    pub async fn recv(self) -> &'static str {
        #[cfg(unix)]
        {
            async fn next(signal: Option<tokio::signal::unix::Signal>) {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                () = next(self.terminate) => "SIGTERM",
                () = next(self.interrupt) => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(error = %error, "Cannot listen for Ctrl-C.");
                std::future::pending::<()>().await;
            }
            "SIGINT"
        }
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
