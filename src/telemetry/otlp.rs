//! OTLP/HTTP (protobuf) export of the bridge's spans, built only with `--features otel`.
//!
//! Spans are batched by the OpenTelemetry SDK on its own export thread. That thread polls
//! the exporter with a plain executor, outside Tokio, so the async reqwest client (built
//! by [`http_client`], with timeouts, on our one TLS stack) runs on a small current-thread
//! runtime owned by [`ExportClient`]. Only the bridge's own spans are exported: a span of
//! the HTTP stack the exporter itself uses would otherwise feed the next export.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing::Level;
use tracing_subscriber::{Layer, filter::Targets};

use super::{Output, TelemetryError};
use crate::vendasta::client::http_client;

/// Budget for one export request, and for the final flush at shutdown.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// A collector answers an export with a few bytes; more than this is not a collector.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Spans from this crate only (see the module doc).
const OWN_TARGET: &str = "vendasta_bridge";

/// Builds the tracer provider and the `tracing` layer that feeds it.
pub(super) fn pipeline(
    url: &str,
    service_name: &str,
) -> Result<(SdkTracerProvider, Output), TelemetryError> {
    let failed = |reason: String| TelemetryError::Exporter {
        endpoint: url.to_string(),
        reason,
    };
    let client = ExportClient::new().map_err(failed)?;
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|error| failed(error.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer(OWN_TARGET))
        .with_filter(Targets::new().with_target(OWN_TARGET, Level::INFO))
        .boxed();
    Ok((provider, layer))
}

/// Flushes buffered spans and stops the export thread; failures are logged, not fatal,
/// because the bridge's own work is already done when this runs.
pub(super) fn shutdown(provider: &SdkTracerProvider) {
    match provider.shutdown_with_timeout(EXPORT_TIMEOUT) {
        Ok(()) => tracing::info!("Traces flushed."),
        Err(error) => tracing::warn!(
            error = %error,
            "Failed to flush traces at shutdown; the last spans may be missing."
        ),
    }
}

/// The collector's `host:port`, for the startup log line: the URL itself may carry
/// credentials in its user-info part, which must never be logged.
pub(super) fn collector(url: &str) -> String {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|uri| {
            let host = uri.host()?.to_string();
            Some(match uri.port_u16() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_default()
}

/// Sends OTLP requests with the bridge's reqwest client from the SDK's export thread.
#[derive(Debug)]
struct ExportClient {
    http: reqwest::Client,
    /// Drives `http`: the export thread has no Tokio runtime of its own.
    runtime: tokio::runtime::Runtime,
}

impl ExportClient {
    fn new() -> Result<Self, String> {
        let http = http_client(EXPORT_TIMEOUT).map_err(|error| error.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| format!("cannot start the export runtime: {error}"))?;
        Ok(Self { http, runtime })
    }

    async fn send(
        http: reqwest::Client,
        request: Request<Bytes>,
    ) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let mut response = http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut received = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if received.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(format!(
                    "the collector's response is larger than {MAX_RESPONSE_BYTES} bytes"
                )
                .into());
            }
            received.extend_from_slice(&chunk);
        }
        let mut answer = Response::builder()
            .status(status)
            .body(Bytes::from(received))?;
        *answer.headers_mut() = headers;
        Ok(answer)
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // Blocking here is the point: this runs on the SDK's export thread, never on a
        // Tokio worker. Refuse rather than panic should that ever change.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err("OTLP export called from inside a Tokio runtime; spans dropped".into());
        }
        self.runtime
            .block_on(Self::send(self.http.clone(), request))
    }
}

#[cfg(test)]
mod tests {
    use super::collector;

    #[test]
    fn the_logged_collector_leaves_out_credentials_and_path() {
        assert_eq!(
            collector("https://user:token@collector.example:4318/v1/traces"),
            "collector.example:4318"
        );
        assert_eq!(collector("http://otel/v1/traces"), "otel");
    }
}
