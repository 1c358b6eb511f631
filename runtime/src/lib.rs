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
//! - [`status`]: store and core errors as `tonic::Status` a person can act on.
#![forbid(unsafe_code)]

pub mod args;
pub mod authz;
pub mod cluster;
pub mod metrics;
pub mod serve;
pub mod status;
pub mod telemetry;

pub use args::ServiceArgs;
pub use cluster::current_layout;
pub use serve::{serve, serve_tls, shutdown_signal, Serving, Shutdown};
pub use status::{check_labels, contended, invalid, preview, store_status, MAX_ATTEMPTS};
