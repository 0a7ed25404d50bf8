//! The tracing subscriber: JSON lines by default, human-readable on request, and, in a
//! binary built with `--features otel`, OpenTelemetry traces over OTLP/HTTP.
//!
//! The level comes from `RUST_LOG`; without it the bridge logs at `info` and keeps
//! chatty dependencies at `warn`. Spans (one per webhook, one per delivery attempt) are
//! plain `tracing` spans created by `http::ingest` and `delivery::worker`; this module
//! only decides where they go. It never adds span fields of its own.

use tracing_subscriber::{
    EnvFilter, Layer, Registry, filter, fmt, layer::Layered, layer::SubscriberExt,
    util::SubscriberInitExt,
};

use crate::config::{LogFormat, TelemetryConfig};

#[cfg(feature = "otel")]
mod otlp;

/// The filter used when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,reqwest=warn";

/// The subscriber every output layer sits on: the registry behind the level filter.
type Filtered = Layered<EnvFilter, Registry>;
/// One output (log lines, trace export), boxed so the formats share one type.
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

/// Why traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter (or the thread-local runtime its client runs on) could not be built.
    #[error(
        "cannot set up OpenTelemetry trace export to telemetry.otlp_endpoint `{endpoint}`: {reason}"
    )]
    Exporter { endpoint: String, reason: String },
    /// An endpoint is configured but the binary cannot export.
    #[error(
        "telemetry.otlp_endpoint is set but this binary was built without OpenTelemetry support: rebuild with `--features otel`, or set telemetry.otlp_endpoint = \"\""
    )]
    FeatureMissing,
}

impl TelemetryError {
    /// Bounded code for logs.
    pub fn code(&self) -> &'static str {
        match self {
            TelemetryError::Exporter { .. } => "otlp_exporter",
            TelemetryError::FeatureMissing => "otel_feature_missing",
        }
    }
}

/// The trace pipeline, if any; [`Traces::shutdown`] sends the spans still buffered.
#[must_use = "call shutdown() when serving ends, or buffered spans are lost"]
#[derive(Debug, Default)]
pub struct Traces {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Traces {
    /// Exports what is still buffered and stops the exporter. Blocks for at most the
    /// export timeout; call it outside the async runtime.
    pub fn shutdown(self) {
        #[cfg(feature = "otel")]
        if let Some(provider) = self.provider {
            otlp::shutdown(&provider);
        }
    }
}

/// Installs the global subscriber with logs only. Call once, at startup.
pub fn init(format: LogFormat) {
    install(format, None);
}

/// Installs the global subscriber with logs, and with trace export when
/// `telemetry.otlp_endpoint` is set (config validation has already refused an endpoint
/// in a build without the `otel` feature). Call once, at startup of `serve`.
pub fn init_with_traces(
    format: LogFormat,
    telemetry: &TelemetryConfig,
) -> Result<Traces, TelemetryError> {
    let Some(url) = telemetry.traces_url() else {
        init(format);
        return Ok(Traces::default());
    };
    #[cfg(feature = "otel")]
    {
        let (provider, layer) = otlp::pipeline(&url, &telemetry.service_name)?;
        install(format, Some(layer));
        tracing::info!(
            collector = otlp::collector(&url),
            service_name = %telemetry.service_name,
            "Exporting traces over OTLP."
        );
        Ok(Traces {
            provider: Some(provider),
        })
    }
    #[cfg(not(feature = "otel"))]
    {
        // Config validation refuses this first; kept so a caller that skips it is told.
        let _ = (format, url);
        Err(TelemetryError::FeatureMissing)
    }
}

fn install(format: LogFormat, traces: Option<Output>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let logs: Output = match format {
        LogFormat::Json => fmt::layer()
            .with_writer(std::io::stdout)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            // Events only: the JSON lines carry no span context (above), yet a layer that
            // sees spans formats every span's fields into a JSON string when the span is
            // created and parses and re-writes that string on each `record` — four times
            // per webhook, for nothing. Spans still reach the trace exporter, which has
            // no such filter.
            .with_filter(filter::filter_fn(|metadata| metadata.is_event()))
            .boxed(),
        LogFormat::Pretty => fmt::layer().with_writer(std::io::stdout).boxed(),
    };
    let mut outputs = vec![logs];
    outputs.extend(traces);
    // A second init (tests) is harmless: keep the first subscriber.
    let _already_set = tracing_subscriber::registry()
        .with(filter)
        .with(outputs)
        .try_init();
}
