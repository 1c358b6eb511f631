//! Serving one service: the service's routes plus the standard gRPC health service,
//! registration in etcd under a lease, and a graceful drain on shutdown.

use std::future::Future;
use std::net::SocketAddr;

use romana_core::ServiceRecord;
use romana_store::{Store, StoreError};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::ServerTlsConfig;
use tonic_health::ServingStatus;

use crate::ServiceArgs;

/// Lease TTL of service registrations: a dead process disappears from discovery this fast.
const REGISTRATION_TTL_SECS: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot read the listener address: {0}")]
    Listener(#[source] std::io::Error),
    #[error("cannot register {kind} in etcd: {source}")]
    Register {
        kind: String,
        #[source]
        source: StoreError,
    },
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// What a running service is: its kind, gRPC service name (for health) and advertised URL.
pub struct Serving {
    /// `root`, `topology`, `tenant`, `ipam` or `policy`.
    pub kind: &'static str,
    /// The fully qualified gRPC service name, e.g. `romana.v1.Root`.
    pub grpc_name: &'static str,
    /// The URL registered for discovery.
    pub url: String,
}

/// Serves `routes` in plaintext on `listener` until `shutdown` resolves, then reports
/// NOT_SERVING, withdraws the registration and lets in-flight requests finish.
pub async fn serve(
    serving: Serving,
    routes: Routes,
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_tls(serving, routes, listener, store, None, shutdown).await
}

/// [`serve`], over TLS when `tls` is given (mutual TLS when it names a client CA).
pub async fn serve_tls(
    serving: Serving,
    routes: Routes,
    listener: TcpListener,
    store: Store,
    tls: Option<ServerTlsConfig>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    let local = listener.local_addr().map_err(ServeError::Listener)?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(serving.grpc_name, ServingStatus::Serving)
        .await;

    let record = ServiceRecord {
        kind: serving.kind.to_string(),
        instance: instance_name(local.port()),
        url: serving.url.clone(),
    };
    let registration = store
        .register(record, REGISTRATION_TTL_SECS)
        .await
        .map_err(|source| ServeError::Register {
            kind: serving.kind.to_string(),
            source,
        })?;
    tracing::info!(kind = serving.kind, %local, url = %serving.url, "serving");

    let drain = async {
        shutdown.await;
        tracing::info!(kind = serving.kind, "shutting down: draining requests");
        health
            .set_service_status(serving.grpc_name, ServingStatus::NotServing)
            .await;
    };
    let result = server
        .layer(crate::telemetry::GrpcTraceLayer)
        .layer(crate::metrics::GrpcMetricsLayer)
        .add_routes(routes.add_service(health_service))
        .serve_with_incoming_shutdown(nodelay(TcpListenerStream::new(listener)), drain)
        .await;
    if let Err(e) = registration.revoke().await {
        tracing::warn!(error = %e, "could not withdraw registration; it expires with its lease");
    }
    result.map_err(ServeError::from)
}

/// Accepted connections without Nagle: serving from a bare listener stream bypasses tonic's
/// own `tcp_nodelay`, and small responses then wait ~40 ms for a delayed ACK.
fn nodelay(
    incoming: TcpListenerStream,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    incoming.map(|stream| {
        let stream = stream?;
        stream.set_nodelay(true)?;
        Ok(stream)
    })
}

/// A shutdown trigger: the server drains when it resolves.
pub type Shutdown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The whole of a service binary after flag parsing: TLS flags, tracing, etcd, listener,
/// then `run` until SIGTERM. `run` gets the server TLS configuration (`None`: plaintext,
/// which the flags allow only with `--insecure`).
pub async fn main<F, Fut>(args: ServiceArgs, default_port: u16, run: F) -> Result<(), MainError>
where
    F: FnOnce(TcpListener, Store, String, Option<ServerTlsConfig>, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), ServeError>>,
{
    let tls = args.server_tls()?;
    args.check_etcd()?;
    if let Some(tls) = &tls {
        // Bad certificates or keys fail here, before etcd and the listener, not at serve.
        tonic::transport::Server::builder()
            .tls_config(tls.clone())
            .map_err(|e| MainError::Tls(crate::args::TlsArgsError::Invalid(causes(&e))))?;
    }
    let telemetry = crate::telemetry::init(
        &crate::telemetry::binary_name(),
        args.otlp_endpoint.as_deref(),
    );
    if args.tls_ca.is_none() {
        // No client certificates, no identities: see crate::authz.
        tracing::warn!(
            "authorization is off: no --tls-ca; every caller is treated as admin (give --tls-ca for mutual TLS and roles)"
        );
    }
    let result = main_inner(args, default_port, tls, run).await;
    telemetry.shutdown().await;
    result
}

async fn main_inner<F, Fut>(
    args: ServiceArgs,
    default_port: u16,
    tls: Option<ServerTlsConfig>,
    run: F,
) -> Result<(), MainError>
where
    F: FnOnce(TcpListener, Store, String, Option<ServerTlsConfig>, Shutdown) -> Fut,
    Fut: Future<Output = Result<(), ServeError>>,
{
    if let Some(metrics) = args.metrics_listen {
        crate::metrics::install(metrics).map_err(|e| MainError::Metrics(e.to_string()))?;
    }
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)));
    let store = args.connect().await?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| MainError::Bind { listen, source })?;
    let url = args.advertised_url(listener.local_addr().map_err(ServeError::Listener)?);
    run(listener, store, url, tls, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum MainError {
    #[error("cannot connect to etcd: {0}")]
    Store(#[from] StoreError),
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot serve metrics: {0}")]
    Metrics(String),
    #[error("{0}")]
    EtcdTls(String),
    #[error(transparent)]
    Tls(#[from] crate::args::TlsArgsError),
}

/// A service binary's exit: 0, or 1 after one `error: ...` line on stderr (no backtrace,
/// whatever RUST_BACKTRACE says).
pub fn exit_code(result: Result<(), MainError>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", causes(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.len() > 1 && parts[0] == "transport error" {
        parts.remove(0);
    }
    parts.join(": ").replace('\n', " ")
}

/// Resolves on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> Shutdown {
    Box::pin(wait_for_signal())
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// Unique per process and listener, so replicas (and several in-process test servers) do not
/// overwrite each other's registration.
fn instance_name(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}-{}-{port}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    /// Without TCP_NODELAY every small response of a fresh connection waits for the client's
    /// delayed ACK (~40 ms on Linux); the wrapper is what sets it.
    #[tokio::test]
    async fn accepted_connections_have_nodelay_set() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(tokio::net::TcpStream::connect(addr));
        let mut incoming = Box::pin(nodelay(TcpListenerStream::new(listener)));
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());
        // The client side is the kernel's default: the wrapper changed it, not the kernel.
        assert!(!client.await.unwrap().unwrap().nodelay().unwrap());
    }
}
