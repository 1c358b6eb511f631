//! Prometheus metrics: `--metrics-listen ADDR:PORT` serves `/metrics`, and every gRPC call is
//! counted by method and status code and timed.
//!
//! Metrics go to a process-wide recorder; without `--metrics-listen` none is installed and
//! recording costs next to nothing.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Installs the Prometheus exporter on `listen` (needs a running tokio runtime).
pub fn install(listen: SocketAddr) -> Result<(), metrics_exporter_prometheus::BuildError> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(listen)
        .install()?;
    tracing::info!(%listen, "serving Prometheus metrics on /metrics");
    Ok(())
}

/// A tower layer that records `romana_grpc_requests_total{method,code}` and
/// `romana_grpc_request_duration_seconds{method}`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_string();
        let started = Instant::now();
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await;
            // A failed unary call is answered "trailers-only", with grpc-status in the
            // headers; a successful one carries it in trailers, i.e. status 0 here.
            let code = match &response {
                Ok(r) => r
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("0")
                    .to_string(),
                Err(_) => "transport".to_string(),
            };
            metrics::counter!("romana_grpc_requests_total", "method" => method.clone(), "code" => code)
                .increment(1);
            metrics::histogram!("romana_grpc_request_duration_seconds", "method" => method)
                .record(started.elapsed().as_secs_f64());
            response
        })
    }
}
