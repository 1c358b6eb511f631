//! Prometheus metrics: `--metrics-listen ADDR:PORT` serves `/metrics`; every gRPC call is
//! counted by method and status code and timed ([`crate::grpc_layer`]).
//!
//! Metrics go to a process-wide recorder; without `--metrics-listen` none is installed and
//! recording costs next to nothing.

use std::net::SocketAddr;

/// Installs the Prometheus exporter on `listen` (needs a running tokio runtime).
pub fn install(listen: SocketAddr) -> Result<(), metrics_exporter_prometheus::BuildError> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()?;
    tracing::info!(%listen, "serving Prometheus metrics on /metrics");
    Ok(())
}
