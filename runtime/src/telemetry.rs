//! Logging and tracing setup: human-readable `tracing` output on stderr, filtered by `RUST_LOG`
//! (default `info`), and with `--otlp-endpoint URL` the same spans and events exported as
//! OTLP/gRPC traces (batch exporter on the tokio runtime). Without an endpoint nothing is
//! exported and nothing is started.
//!
//! Export failures are logged (by the OpenTelemetry SDK, through `tracing` on stderr) and never
//! stop the process. [`Telemetry::shutdown`] flushes what is buffered.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// How long shutdown waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Targets whose spans are never exported: the exporter's own transport (exporting them
/// would feed back into the exporter) and the SDK's internal logs.
const NOT_EXPORTED: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
];

/// What [`init`] set up; [`Telemetry::shutdown`] flushes the trace exporter, if any.
#[must_use = "call shutdown() on exit so that buffered spans are exported"]
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the process-wide `tracing` subscriber: stderr logs, plus OTLP/gRPC trace export
/// to `otlp_endpoint` when given, with resource `service.name = service_name` and a
/// `service.instance.id` unique to this process. Must run inside a tokio runtime when an
/// endpoint is given.
///
/// A second call in one process (tests starting several services) changes nothing.
pub fn init(service_name: &str, otlp_endpoint: Option<&str>) -> Telemetry {
    if tracing::dispatcher::has_been_set() {
        return Telemetry::default();
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let (provider, otel_error) = match otlp_endpoint.map(|e| provider(service_name, e)) {
        None => (None, None),
        Some(Ok(p)) => (Some(p), None),
        Some(Err(e)) => (None, Some(e)),
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("romana"))
            .with_filter(filter_fn(|meta| {
                let target = meta.target();
                !NOT_EXPORTED.iter().any(|t| {
                    target
                        .strip_prefix(t)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
                })
            }))
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    if let Some(e) = otel_error {
        tracing::error!(error = %e, "cannot export traces over OTLP; continuing without");
    }
    match (installed, provider) {
        (true, Some(provider)) => {
            tracing::info!(
                endpoint = otlp_endpoint.unwrap_or_default(),
                service = service_name,
                "exporting traces over OTLP/gRPC"
            );
            Telemetry {
                provider: Some(provider),
            }
        }
        (_, provider) => {
            // Nothing uses it: shut it down off the runtime's threads (its shutdown blocks).
            if let Some(p) = provider {
                std::thread::spawn(move || drop(p.shutdown()));
            }
            Telemetry::default()
        }
    }
}

fn provider(service_name: &str, endpoint: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .map_err(|e| e.to_string())?;
    let processor =
        opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
            exporter,
            opentelemetry_sdk::runtime::Tokio,
        )
        .build();
    let resource = Resource::builder()
        .with_service_name(service_name.to_string())
        .with_attribute(KeyValue::new("service.instance.id", instance_id()))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .build())
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is buffered and stops the exporter (waits at most a few seconds; a
    /// failure is logged).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK's shutdown blocks until the batch task answers: keep it off the workers.
        let done = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(FLUSH_TIMEOUT, done).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not flush exported traces"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not flush exported traces"),
            Err(_) => tracing::warn!(
                timeout_secs = FLUSH_TIMEOUT.as_secs(),
                "gave up flushing exported traces"
            ),
        }
    }
}

/// The name this binary was started as (`romana-root`, `romana-agent`, ...): the
/// `service.name` of exported traces.
pub fn binary_name() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "romana".into())
}

/// `<hostname>-<pid>`: unique per running process.
fn instance_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}-{}", std::process::id())
}
