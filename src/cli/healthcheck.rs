//! `vendasta-bridge healthcheck`: exits 0 when the bridge's `/readyz` answers 200, and 1
//! with the reason otherwise, so a container `HEALTHCHECK` needs no curl in the image.
//!
//! The URL comes from `--url`, or else from `admin.listen_address` in the config, with a
//! wildcard bind address (`0.0.0.0`, `::`) replaced by loopback, since that is where the
//! check runs: inside the bridge's own container.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
    process::ExitCode,
    time::Duration,
};

use crate::{config::Config, vendasta::client::http_client};

/// Well under Docker's default HEALTHCHECK timeout of 30 s; readiness answers in ms.
const TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the check; prints one line on stdout (ready) or stderr (why not).
pub fn run(config: Option<&Path>, url: Option<&str>) -> ExitCode {
    let url = match url {
        Some(url) => url.to_string(),
        None => match Config::load(config) {
            Ok(config) => readyz_url(config.admin.listen_address),
            Err(error) => {
                eprint!("vendasta-bridge healthcheck: cannot read the config: {error}");
                eprintln!("(or pass --url http://HOST:PORT/readyz)");
                return ExitCode::from(super::EXIT_CONFIG);
            }
        },
    };
    match check(&url) {
        Ok(()) => {
            println!("ready: {url} answered 200");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("not ready: {reason}");
            ExitCode::from(super::EXIT_RUNTIME)
        }
    }
}

/// The readiness URL for an admin listener bound to `address`.
pub fn readyz_url(address: SocketAddr) -> String {
    let ip = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/readyz", SocketAddr::new(ip, address.port()))
}

fn check(url: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the async runtime: {error}"))?;
    runtime.block_on(async {
        let client = http_client(TIMEOUT).map_err(|error| error.to_string())?;
        let response = client
            .get(url)
            .send()
            .await
            .map_err(|error| format!("cannot reach {url}: {error}"))?;
        let status = response.status();
        if status.is_success() && status.as_u16() == 200 {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        let body: String = body.chars().take(500).collect();
        Err(format!("{url} answered {status}: {body}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_admin_addresses_are_checked_on_loopback() {
        let url = |a: &str| readyz_url(a.parse().unwrap());
        assert_eq!(url("0.0.0.0:9090"), "http://127.0.0.1:9090/readyz");
        assert_eq!(url("[::]:9090"), "http://[::1]:9090/readyz");
        assert_eq!(url("10.0.0.5:9191"), "http://10.0.0.5:9191/readyz");
    }
}
