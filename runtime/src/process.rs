//! The whole of a service binary after flag parsing: TLS flags, tracing, metrics, etcd,
//! listener, then [`crate::serve`] until SIGTERM.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::transport::ServerTlsConfig;

use crate::error::{MainError, ServeError};
use crate::serve::Serving;
use crate::tls::TlsArgsError;
use crate::{shutdown_signal, ServiceArgs};

/// A service binary's whole `main`: the flags of `name` (`romana-ipam`, with `about` as its
/// `--help` summary), then [`main`] on a multi-threaded tokio runtime, then the exit code
/// of [`crate::exit_code`].
pub fn run_binary(
    name: &'static str,
    about: &'static str,
    default_port: u16,
    serving: Serving,
) -> std::process::ExitCode {
    use clap::{Args, FromArgMatches};
    // Every crate of the workspace shares one version: runtime's is the binary's.
    let command = clap::Command::new(name).version(env!("CARGO_PKG_VERSION"));
    // After the flags: they would otherwise give their own doc as the summary.
    let matches = ServiceArgs::augment_args(command)
        .about(about)
        .get_matches();
    let args = ServiceArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    crate::exit_code(runtime.block_on(main(args, default_port, serving)))
}

/// Runs `serving` as its binary does, listening on `--listen` or 127.0.0.1:`default_port`.
/// The server is plaintext only with `--insecure` (see [`ServiceArgs::server_tls`]).
pub async fn main(args: ServiceArgs, default_port: u16, serving: Serving) -> Result<(), MainError> {
    let tls = args.server_tls()?;
    args.check_etcd()?;
    if let Some(tls) = &tls {
        // Bad certificates or keys fail here, before etcd and the listener, not at serve.
        tonic::transport::Server::builder()
            .tls_config(tls.clone())
            .map_err(|e| {
                MainError::Tls(TlsArgsError::Invalid(romana_proto::error_text::causes(&e)))
            })?;
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
    let result = main_inner(args, default_port, tls, serving).await;
    telemetry.shutdown().await;
    result
}

async fn main_inner(
    args: ServiceArgs,
    default_port: u16,
    tls: Option<ServerTlsConfig>,
    serving: Serving,
) -> Result<(), MainError> {
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
    crate::serve(serving, url, listener, store, tls, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
