//! What every romana-rs service process shares, so that the five services behave alike for
//! an operator: the same flags, the same logs, the same health service, registration in
//! etcd under a lease, graceful shutdown on SIGTERM, and the same mapping of store errors to
//! gRPC codes.
//!
//! # Layout
//! - [`authz`]: the caller's identity from its client certificate, and `require(..)`.
//! - [`args`]: the common flags (`--etcd-endpoints`, `--listen`, ...).
//! - [`telemetry`]: `tracing` setup, OTLP trace export (`--otlp-endpoint`) and per-call gRPC spans.
//! - [`metrics`]: Prometheus `/metrics` and per-call gRPC metrics.
//! - [`serve`]: serve a service's routes with health and registration until shutdown.
//! - [`cluster`]: the current cluster layout, as every service needs it.
//! - [`listings`]: the server streams of the Watch* RPCs (a listing, then one per change).
//! - [`status`]: store and core errors as `tonic::Status` a person can act on.
#![forbid(unsafe_code)]

pub mod args;
pub mod authz;
pub mod cluster;
pub mod listings;
pub mod metrics;
pub mod serve;
pub mod status;
pub mod telemetry;

pub use args::ServiceArgs;

/// Largest request a service decodes (tonic's default, set on purpose): big enough that an
/// oversized field (a 1 MiB+ policy document, a 3 MB label) reaches validation and gets an
/// INVALID_ARGUMENT naming the limit, small enough to bound what one call makes a replica
/// hold. Requests above it get RESOURCE_EXHAUSTED from tonic.
pub const MAX_REQUEST_BYTES: usize = 4 << 20;
pub use cluster::current_layout;
pub use serve::{serve, serve_tls, shutdown_signal, Serving, Shutdown};
pub use status::{
    bad_name, check_label_count, check_labels, check_name, check_ports, check_removed_labels,
    contended, invalid, preview, store_status, MAX_ATTEMPTS,
};
