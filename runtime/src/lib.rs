//! What every romana-rs process shares, so that the five services and the agent behave alike
//! for an operator: the same logs and traces, the same TLS flag checks and the same shutdown
//! on SIGTERM. With the `service` feature (on by default), what a gRPC service adds: the same
//! flags and one-line exit, one serve path with health, metrics and registration in etcd
//! under a lease, authorization, and the same mapping of store errors to gRPC codes. The
//! agent leaves `service` off and so links no health service or Prometheus exporter.
//!
//! # Layout
//! Every process:
//! - [`telemetry`]: `tracing` setup and OTLP trace export (`--otlp-endpoint`).
//! - [`shutdown`]: the SIGTERM / Ctrl-C trigger.
//! - [`tls`]: PEM files and the plaintext checks of the TLS flags.
//!
//! A gRPC service (`service` feature):
//! - [`args`]: the common flags (`--etcd-endpoints`, `--listen`, ...).
//! - [`error`]: why serving or a service binary stopped.
//! - [`serve`]: serve a service's routes with health and registration until shutdown.
//! - [`process`]: a service binary's `main` after flag parsing.
//! - [`exit`]: the exit code and its one `error: ...` line.
//! - [`grpc_layer`]: the per-call span and metrics.
//! - [`metrics`]: Prometheus `/metrics`.
//! - [`authz`]: the caller's identity from its client certificate, and `require(..)`.
//! - [`cluster`]: the current cluster layout, as every service needs it.
//! - [`listings`]: the server streams of the Watch* RPCs (a listing, then one per change).
//! - [`status`]: store and core errors as `tonic::Status` a person can act on.
#![forbid(unsafe_code)]

pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use shutdown::{shutdown_signal, Shutdown};

#[cfg(feature = "service")]
mod service {
    pub use crate::args::ServiceArgs;
    pub use crate::cluster::current_layout;
    pub use crate::exit::exit_code;
    pub use crate::serve::{serve, Serving, MAX_REQUEST_BYTES};
    pub use crate::status::{
        bad_name, check_label_count, check_labels, check_name, check_ports, check_removed_labels,
        contended, contended_after, invalid, preview, store_status, MAX_ATTEMPTS,
        MAX_ENDPOINT_ATTEMPTS,
    };
}
#[cfg(feature = "service")]
pub use service::*;

#[cfg(feature = "service")]
pub mod args;
#[cfg(feature = "service")]
pub mod authz;
#[cfg(feature = "service")]
pub mod cluster;
#[cfg(feature = "service")]
pub mod error;
#[cfg(feature = "service")]
pub mod exit;
#[cfg(feature = "service")]
pub mod grpc_layer;
#[cfg(feature = "service")]
pub mod listings;
#[cfg(feature = "service")]
pub mod metrics;
#[cfg(feature = "service")]
pub mod process;
#[cfg(feature = "service")]
pub mod serve;
#[cfg(feature = "service")]
pub mod status;
