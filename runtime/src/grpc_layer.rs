//! One tower layer around every gRPC call a service answers: a server span named after the
//! method, and the Prometheus counter and histogram of [`crate::metrics`].
//!
//! The span is `grpc`, with `otel.name` (`romana.v1.Root/GetConfig`), `otel.kind = server`,
//! `rpc.system`, `rpc.service`, `rpc.method`, the resulting `rpc.grpc.status_code`, and
//! `otel.status_code = error` for a server-side failure; the handler's own spans and events
//! nest under it. The metrics are `romana_grpc_requests_total{method,code}` and
//! `romana_grpc_request_duration_seconds{method}`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::Instrument;

#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcLayer;

impl<S> tower::Layer<S> for GrpcLayer {
    type Service = Grpc<S>;

    fn layer(&self, inner: S) -> Grpc<S> {
        Grpc { inner }
    }
}

#[derive(Clone, Debug)]
pub struct Grpc<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for Grpc<S>
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
        let path = request.uri().path().to_string();
        let name = path.trim_start_matches('/');
        let (service, method) = name.split_once('/').unwrap_or((name, ""));
        let span = tracing::info_span!(
            "grpc",
            otel.name = name,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        let started = Instant::now();
        let call = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                let response = call.await;
                let span = tracing::Span::current();
                // A failed unary call is answered "trailers-only", with grpc-status in the
                // headers; a successful one carries it in trailers: no header means OK so far.
                let code = match &response {
                    Ok(r) => {
                        let code = r
                            .headers()
                            .get("grpc-status")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("0")
                            .to_string();
                        let number = code.parse::<i64>().unwrap_or(0);
                        span.record("rpc.grpc.status_code", number);
                        if is_server_error(number) {
                            span.record("otel.status_code", "error");
                        }
                        code
                    }
                    Err(_) => {
                        span.record("otel.status_code", "error");
                        "transport".to_string()
                    }
                };
                metrics::counter!("romana_grpc_requests_total", "method" => path.clone(), "code" => code)
                    .increment(1);
                metrics::histogram!("romana_grpc_request_duration_seconds", "method" => path)
                    .record(started.elapsed().as_secs_f64());
                response
            }
            .instrument(span),
        )
    }
}

/// The codes OpenTelemetry's RPC conventions count as a server-side error: UNKNOWN,
/// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
fn is_server_error(code: i64) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}
