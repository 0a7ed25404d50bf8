//! `vendasta-bridge mock-vendasta`: runs the Vendasta stand-in
//! ([`crate::http::mock_vendasta`]) alone until Ctrl-C or SIGTERM, so a staging bridge
//! can be pointed at it. Prints the URL to use as `vendasta.customers_url`.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use super::{EXIT_CONFIG, EXIT_RUNTIME, say};
use crate::http::mock_vendasta::{MockError, MockOptions, MockVendasta};

/// Arguments of `mock-vendasta`.
#[derive(Debug, Clone, clap::Args)]
pub struct MockArgs {
    /// Address to listen on, e.g. 127.0.0.1:8089 (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// Milliseconds every request takes before it is answered.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests (0.0–1.0) answered 503 Service Unavailable.
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub failure_rate: f64,
    /// Seed for the failures and generated ids; the same seed repeats a run exactly.
    #[arg(long, value_name = "N", default_value_t = MockOptions::default().seed)]
    pub seed: u64,
}

/// Runs the stand-in until a stop signal.
pub fn run(args: MockArgs) -> ExitCode {
    let runtime = match super::runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vendasta-bridge: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let options = MockOptions {
        latency: Duration::from_millis(args.latency_ms),
        failure_rate: args.failure_rate,
        seed: args.seed,
        // A long-running stand-in would otherwise keep every request body in memory.
        record_requests: false,
    };
    runtime.block_on(async {
        let stop = super::StopSignals::listen();
        let mock = match MockVendasta::start(args.listen, options).await {
            Ok(mock) => mock,
            Err(error) => {
                eprintln!("vendasta-bridge mock-vendasta: {error}");
                return ExitCode::from(match error {
                    MockError::FailureRate(_) => EXIT_CONFIG,
                    MockError::Bind { .. } => EXIT_RUNTIME,
                });
            }
        };
        say(&format!("Vendasta stand-in listening on http://{}", mock.addr()));
        say(&format!(
            "Point a bridge at it with:  vendasta.customers_url = \"{}\"  (any bearer token is accepted)",
            mock.customers_url()
        ));
        say("Stop it with Ctrl-C.");
        stop.recv().await;
        let customers = mock.customers().len();
        let requests = mock.answered();
        mock.stop().await;
        say(&format!(
            "Stopped after {requests} requests; it held {customers} customers."
        ));
        ExitCode::SUCCESS
    })
}
