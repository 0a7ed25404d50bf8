//! The HTTP/1 server of both listeners (public and admin): accepts connections, gives
//! each one a deadline for its request headers, and drains on shutdown.
//!
//! `axum::serve` cannot set hyper's header-read timeout, and without a timer hyper applies
//! none, so a client that drips its headers a byte at a time would hold a connection and a
//! task for as long as it liked (slowloris). Here each connection is served by hyper's
//! HTTP/1 builder with a timer and `server.request_read_timeout_seconds` as that timeout:
//! late headers close the connection (hyper has no response to give for a request it never
//! read). The body deadline is the ingest handler's, because only there can a late body
//! still be answered 408. On shutdown the server stops accepting, asks every connection to
//! finish the request it is on and close, and returns once all have.

use std::{io, pin::pin, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_util::sync::CancellationToken;

/// How long to wait before accepting again after an error that is not one connection's
/// fault (out of file descriptors, usually): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` is cancelled, then drains.
///
/// `header_read_timeout` bounds how long a connection may take to send a request's
/// headers; it also closes a keep-alive connection that stays idle that long.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) -> io::Result<()> {
    // Each connection task holds a clone of `open`; `recv` returns `None` once the last
    // one is dropped, which is how the drain learns every connection has closed.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) if is_connection_error(&error) => continue,
                Err(error) => {
                    tracing::warn!(error = %error, "Failed to accept a connection; accepting again in 1 s.");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            },
            () = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    // Finish the request in progress (if any), then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                // Late headers, a client that went away, a malformed request: the client's
                // business, and hyper already answered what could be answered.
                tracing::debug!(error = %error, "A connection ended with an error.");
            }
            drop(open);
        });
    }
    // Stop accepting before waiting: new connections are refused from here on.
    drop(listener);
    drop(open);
    let _none = all_closed.recv().await;
    Ok(())
}

/// Errors that concern one connection only; accepting the next one is fine.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
