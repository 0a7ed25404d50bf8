//! `vendasta-bridge check-credentials`: mints a token from every configured Vendasta
//! credential and prints its subject, scopes and expiry, never the token itself.
//!
//! Exit codes: 0 every credential works (or is a static token, which cannot be checked
//! without calling Vendasta), 2 the config or a credential file is unusable, 1 a token
//! endpoint refused or could not be reached.

use std::{path::Path, process::ExitCode, time::Duration};

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    config::Config,
    health::Health,
    vendasta::auth::{Auth, AuthError, Credentials},
};

const EXIT_CONFIG: u8 = 2;
const EXIT_RUNTIME: u8 = 1;

/// Loads every credential (reading files, parsing keys) without any network I/O.
pub fn check_files(config: &Config) -> Result<(), AuthError> {
    Credentials::load(config, &Health::new(Duration::from_secs(30))).map(|_| ())
}

/// Runs the subcommand.
pub fn run(path: Option<&Path>) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprint!("{error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let credentials = match Credentials::load(&config, &Health::new(Duration::from_secs(30))) {
        Ok(credentials) => credentials,
        Err(error) => {
            eprintln!("vendasta-bridge: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("vendasta-bridge: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let failed = runtime.block_on(async {
        let mut failed = false;
        for (name, auth) in credentials.iter() {
            match auth {
                Auth::Static(_) => println!(
                    "{name}: static token (vendasta.token); it cannot be checked without calling Vendasta"
                ),
                Auth::ServiceAccount(account) => match account.mint().await {
                    Ok(minted) => {
                        let expires = OffsetDateTime::now_utc() + minted.lifetime;
                        let expires = expires
                            .format(&Rfc3339)
                            .unwrap_or_else(|_| "unknown".into());
                        let note = if minted.expires_in.is_some() {
                            ""
                        } else {
                            " (assumed: the endpoint sent no expires_in)"
                        };
                        println!(
                            "{name}: ok; subject {}, scopes \"{}\", expires {expires} (in {} s){note}",
                            account.subject(),
                            account.scopes(),
                            minted.lifetime.as_secs()
                        );
                    }
                    Err(error) => {
                        eprintln!("{name}: cannot mint a token: {error}");
                        failed = true;
                    }
                },
            }
        }
        failed
    });
    if failed {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    }
}
