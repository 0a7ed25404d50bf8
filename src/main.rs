//! The `vendasta-bridge` command line: parses arguments, loads config, installs logging,
//! turns SIGTERM/SIGINT into a cancellation, and hands over to `app`. Nothing else.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vendasta_bridge::{
    app::{App, Listeners},
    cli::{self, EXIT_CONFIG, EXIT_RUNTIME},
    config::Config,
    telemetry,
};

/// Signed POS/CRM contact webhooks in, durable queue, Vendasta customers out.
#[derive(Debug, Parser)]
#[command(name = "vendasta-bridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive webhooks and deliver them to Vendasta until SIGTERM or Ctrl-C.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate the configuration and print it with secrets redacted; exit 2 on any problem.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show the whole flow on this machine: a bridge, a Vendasta stand-in, narrated webhooks.
    Demo,
    /// Run the Vendasta stand-in alone, to point a staging bridge at.
    MockVendasta(cli::mock::MockArgs),
    /// Enqueue existing contacts (Shopify CSV export or JSON lines) as creates.
    Backfill(cli::backfill::BackfillArgs),
    /// List, show, replay or delete stored jobs directly in the store (works while the
    /// server is down).
    Jobs {
        #[command(flatten)]
        config: ConfigArg,
        /// Store URL (e.g. sqlite://data/bridge.db) to use instead of loading the config,
        /// for when the config itself is what keeps the server down.
        #[arg(long, value_name = "URL", global = true)]
        store: Option<String>,
        #[command(subcommand)]
        action: cli::jobs::Action,
    },
    /// Exit 0 when the bridge's /readyz answers 200, 1 otherwise (for container HEALTHCHECKs).
    Healthcheck {
        #[command(flatten)]
        config: ConfigArg,
        /// Full readiness URL to check instead of the config's admin.listen_address.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Mint a Vendasta token from each configured credential and print its subject, scopes
    /// and expiry (never the token); exit 2 for a config problem, 1 if minting fails.
    CheckCredentials {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, clap::Args)]
struct ConfigArg {
    /// TOML file layered over the compiled-in defaults (see config/default.toml).
    #[arg(
        long = "config",
        short = 'c',
        env = "BRIDGE_CONFIG",
        value_name = "FILE",
        global = true
    )]
    path: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    match args.command {
        Command::Demo => cli::demo::run(),
        Command::MockVendasta(args) => cli::mock::run(args),
        Command::Backfill(args) => cli::backfill::run(args),
        Command::CheckCredentials { config } => cli::credentials::run(config.path.as_deref()),
        Command::CheckConfig { config } => match Config::load(config.path.as_deref()) {
            Ok(config) => {
                if let Err(error) = cli::credentials::check_files(&config) {
                    eprintln!("{error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
                print!("{}", config.to_redacted_toml());
                eprintln!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprint!("{error}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Healthcheck { config, url } => {
            cli::healthcheck::run(config.path.as_deref(), url.as_deref())
        }
        Command::Jobs {
            config,
            store: Some(url),
            action,
        } if config.path.is_none() => cli::jobs::run(&url, action),
        Command::Jobs {
            config,
            store: None,
            action,
        } => match Config::load(config.path.as_deref()) {
            Ok(config) => cli::jobs::run(&config.store.url, action),
            Err(error) => {
                eprint!("vendasta-bridge jobs: {error}");
                eprintln!("(or pass --store sqlite://PATH to skip the config)");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Jobs { .. } => {
            eprintln!("vendasta-bridge jobs: give --config or --store, not both");
            ExitCode::from(EXIT_CONFIG)
        }
        Command::Serve { config } => {
            let config = match Config::load(config.path.as_deref()) {
                Ok(config) => config,
                Err(error) => {
                    eprint!("vendasta-bridge: cannot start: {error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            // A credential file that is missing or holds no usable key is a config error.
            if let Err(error) = cli::credentials::check_files(&config) {
                eprintln!("vendasta-bridge: cannot start: {error}");
                return ExitCode::from(EXIT_CONFIG);
            }
            let traces = match telemetry::init_with_traces(config.log.format, &config.telemetry) {
                Ok(traces) => traces,
                Err(error) => {
                    eprintln!("vendasta-bridge: cannot start: {error}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match serve(config, traces) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "The bridge stopped with an error."
                    );
                    eprintln!("vendasta-bridge: {error:#}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
    }
}

fn serve(config: Config, traces: telemetry::Traces) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(
            cli::StopSignals::listen(),
            shutdown.clone(),
        ));
        let listeners = Listeners::bind(&config).await?;
        let app = App::build(config).await?;
        app.run(listeners, shutdown).await
    });
    // Tasks still running end (and close their spans) with the runtime; then the
    // buffered spans are sent, outside the runtime because the flush blocks.
    drop(runtime);
    traces.shutdown();
    result
}

/// Cancels `shutdown` on SIGTERM (orchestrators) or SIGINT (Ctrl-C).
async fn cancel_on_signal(signals: cli::StopSignals, shutdown: CancellationToken) {
    let signal = signals.recv().await;
    tracing::info!(signal, "Shutdown requested.");
    shutdown.cancel();
}
