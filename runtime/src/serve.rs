//! Serving one service: its routes plus the standard gRPC health service, registration in
//! etcd under a lease, and a graceful drain on shutdown. The one path every service is
//! served by, in its binary and in tests: TCP_NODELAY, the request limit and the per-call
//! span and metrics are set here and nowhere else.

use romana_core::ServiceRecord;
use romana_store::Store;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
pub use tonic::service::Routes;
use tonic::transport::ServerTlsConfig;
use tonic_health::ServingStatus;

use crate::error::ServeError;
use crate::listings::{draining, Draining};
use crate::Shutdown;

/// Lease TTL of service registrations: a dead process disappears from discovery this fast.
const REGISTRATION_TTL_SECS: i64 = 10;

/// Largest request a service decodes (tonic's default, set on purpose): big enough that an
/// oversized field (a 1 MiB+ policy document, a 3 MB label) reaches validation and gets an
/// INVALID_ARGUMENT naming the limit, small enough to bound what one call makes a replica
/// hold. Requests above it get RESOURCE_EXHAUSTED from tonic.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// The routes of one generated gRPC server, decoding requests up to [`MAX_REQUEST_BYTES`]:
/// `grpc_routes!(ipam_server::IpamServer::new(service))`. (A macro: the generated servers
/// share the method but no trait.)
#[macro_export]
macro_rules! grpc_routes {
    ($server:expr) => {
        $crate::serve::Routes::new($server.max_decoding_message_size($crate::MAX_REQUEST_BYTES))
    };
}

/// What a service is, for [`serve`]: what it registers as, and how its handlers are built.
#[derive(Clone, Copy, Debug)]
pub struct Serving {
    /// `root`, `topology`, `tenant`, `ipam` or `policy`.
    pub kind: &'static str,
    /// The fully qualified gRPC service name, e.g. `romana.v1.Root` (for health).
    pub grpc_name: &'static str,
    /// The service's routes (see [`grpc_routes!`]), given the store and the signal on which
    /// its open watch streams end.
    pub routes: fn(&Store, Draining) -> Routes,
}

/// Serves `serving` on `listener` (over TLS when `tls` is given: mutual TLS when it names a
/// client CA), registered for discovery at `url`, until `shutdown` resolves; then reports
/// NOT_SERVING, ends watch streams, withdraws the registration and lets in-flight requests
/// finish.
pub async fn serve(
    serving: Serving,
    url: String,
    listener: TcpListener,
    store: Store,
    tls: Option<ServerTlsConfig>,
    shutdown: Shutdown,
) -> Result<(), ServeError> {
    let mut server = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls)?;
    }
    let local = listener.local_addr().map_err(ServeError::Listener)?;
    let (draining, shutdown) = draining(shutdown);
    let routes = (serving.routes)(&store, draining);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status(serving.grpc_name, ServingStatus::Serving)
        .await;

    let record = ServiceRecord {
        kind: serving.kind.to_string(),
        instance: instance_name(local.port()),
        url: url.clone(),
    };
    let registration = store
        .register(record, REGISTRATION_TTL_SECS)
        .await
        .map_err(|source| ServeError::Register {
            kind: serving.kind.to_string(),
            source,
        })?;
    tracing::info!(kind = serving.kind, %local, %url, "serving");

    let drain = async {
        shutdown.await;
        tracing::info!(kind = serving.kind, "shutting down: draining requests");
        health
            .set_service_status(serving.grpc_name, ServingStatus::NotServing)
            .await;
    };
    let result = server
        .layer(crate::grpc_layer::GrpcLayer)
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
