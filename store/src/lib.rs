//! The etcd adapter of romana-rs and the only crate that names etcd-client. Services and the
//! agent see typed keys, JSON values of `romana-core` types, all-or-nothing transactions that
//! say which key conflicted, one watch loop that resumes or re-lists on its own, and service
//! registration under a lease. Backoff and retry policy stay with the callers.
//!
//! # Layout
//! - [`keys`]: the documented, versioned key layout and typed [`Key`]/[`Prefix`] builders;
//!   [`Keys::parse`] tells what a watched key is.
//! - [`store`](crate::Store): connection, typed get/list/put/delete, conditional writes,
//!   revision and compaction.
//! - `txn`: [`Txn`], multi-key conditional writes that report the first failing compare.
//! - `group`: group commit, concurrent [`Txn::grouped`] transactions sent as one.
//! - `watch`: [`Watcher`], list-then-watch with resume and resync after compaction.
//! - `endpoints`: creating and releasing an endpoint with its address claim and indexes,
//!   always as one transaction.
//! - `lease`: [`Registration`], a service record kept alive under a lease.
//! - `errors`: [`StoreError`], the one error type, with `is_retryable`/`is_conflict`.
#![forbid(unsafe_code)]

mod endpoints;
mod errors;
mod group;
pub mod keys;
mod lease;
mod members;
mod store;
mod txn;
mod watch;

pub use endpoints::{Claim, EndpointIndex, EndpointPage};
pub use errors::StoreError;
pub use keys::{Key, KeyRef, Keys, Prefix, DEFAULT_PREFIX};
pub use lease::Registration;
#[cfg(feature = "clap")]
pub use store::EtcdTlsArgs;
pub use store::{EtcdTls, Listing, Store, Versioned};
pub use txn::{Taken, Txn};

/// Most bytes of keys and values one write (a put or a transaction) sends to etcd: below
/// etcd's default request limit (`--max-request-bytes`, 1.5 MiB) with room for compares.
pub const MAX_WRITE_BYTES: usize = 1 << 20;
pub use watch::{Kv, WatchEvent, Watcher};
