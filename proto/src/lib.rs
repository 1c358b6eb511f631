//! The romana-rs gRPC API (package `romana.v1`), generated from `proto/romana/v1/*.proto`,
//! and its conversions to and from the pure model in `romana-core`. Services and clients
//! convert at the edge with these functions so that `romana-core` never sees prost.
//!
//! # Layout
//! - [`pb`]: generated messages, clients and servers.
//! - [`convert`]: proto <-> core conversions; derived fields (prefixes, CIDRs, matches)
//!   are filled from a [`romana_core::Layout`].
//! - [`discover`]: a channel to a service kind found through root's registry, with
//!   connect and request timeouts; what clients (romanactl, the CNI plugin) use.
//! - [`error_text`]: an error and its causes on one line.
//! - [`pages`]: reading a paginated listing to its end.
//! - `requests`: shorthand constructors, e.g. `pb::ReleaseRequest::endpoint(id)`.
//! - [`FILE_DESCRIPTOR_SET`]: the compiled API, for gRPC reflection.
#![forbid(unsafe_code)]

pub mod convert;
pub mod discover;
pub mod error_text;
pub mod pages;
mod requests;

/// Generated code of package `romana.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("romana.v1");
}

/// The encoded `FileDescriptorSet` of the API.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/romana_descriptor.bin"));

pub use convert::Invalid;
