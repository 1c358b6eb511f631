//! The errors of serving and of a service binary's start-up, in one home that the flags
//! ([`crate::args`]), [`crate::serve`] and [`crate::process`] all use.

use std::net::SocketAddr;

use romana_store::StoreError;

use crate::tls::TlsArgsError;

/// Why [`crate::serve`] stopped other than by a shutdown.
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

/// Why a service binary could not start, or stopped.
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
    Tls(#[from] TlsArgsError),
}
