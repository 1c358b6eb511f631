//! Errors as gRPC statuses. Every message names what failed so that an operator can act on it
//! without reading logs.

use romana_core::labels::{self, MAX_LABELS, MAX_LABEL_KEY_LEN};
use romana_core::text::quote;
use romana_core::{model::NamedPort, NameError};
use romana_proto::Invalid;
use romana_store::StoreError;
use tonic::Status;

/// A store error as a status. A conflict that reaches a client means another writer won a
/// race we did not retry: ABORTED tells the client that retrying is safe.
pub fn store_status(err: StoreError) -> Status {
    match &err {
        StoreError::Unavailable { .. } => Status::unavailable(format!("etcd unavailable: {err}")),
        StoreError::Conflict { .. } => Status::aborted(format!("concurrent change, retry: {err}")),
        StoreError::Compacted { .. } => Status::aborted(err.to_string()),
        // Input that passed field checks but is still too big for one etcd request.
        StoreError::TooLarge { .. } => Status::invalid_argument(err.to_string()),
        StoreError::Decode { .. } | StoreError::Encode { .. } => Status::internal(err.to_string()),
        StoreError::Etcd { .. } if err.is_retryable() => Status::unavailable(err.to_string()),
        StoreError::Etcd { .. } => Status::internal(err.to_string()),
    }
}

/// How often a write that lost a race to another replica is retried before giving up.
pub const MAX_ATTEMPTS: usize = 20;

/// Attempts of an endpoint write (ipam) before it gives up: allocators of one segment race
/// for the same lowest free addresses, so losing a race is routine there, not a sign of
/// trouble.
pub const MAX_ENDPOINT_ATTEMPTS: usize = 64;

/// ABORTED for a write that lost [`MAX_ATTEMPTS`] races in a row: retrying is safe.
pub fn contended(what: &str, name: &str) -> Status {
    contended_after(MAX_ATTEMPTS, what, name)
}

/// ABORTED for a write that lost `attempts` races in a row: retrying is safe.
pub fn contended_after(attempts: usize, what: &str, name: &str) -> Status {
    Status::aborted(format!(
        "{what} {name}: lost {attempts} races in a row against concurrent changes; retry"
    ))
}

/// Refuses labels Kubernetes would refuse (see `romana_core::labels`): they could not be
/// selected by a NetworkPolicy or round-trip through CNI_ARGS.
pub fn check_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), Status> {
    labels::validate_labels(labels).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Label keys a request removes: bounded in count and size, but not held to the key syntax,
/// so that a label stored before the rules were tightened can still be removed.
pub fn check_removed_labels(keys: &[String]) -> Result<(), Status> {
    if keys.len() > MAX_LABELS {
        return Err(Status::invalid_argument(format!(
            "{} labels to remove; an object has at most {MAX_LABELS}",
            keys.len()
        )));
    }
    match keys.iter().find(|k| k.len() > MAX_LABEL_KEY_LEN) {
        Some(k) => Err(Status::invalid_argument(format!(
            "label key {} to remove is longer than any label key ({MAX_LABEL_KEY_LEN} bytes)",
            quote(k)
        ))),
        None => Ok(()),
    }
}

/// The labels an update leaves on an object: at most [`MAX_LABELS`].
pub fn check_label_count(what: &str, count: usize) -> Result<(), Status> {
    if count > MAX_LABELS {
        return Err(Status::invalid_argument(format!(
            "{what} would carry {count} labels; at most {MAX_LABELS} are allowed, remove some"
        )));
    }
    Ok(())
}

/// Refuses named ports Kubernetes would refuse, too many, or a name given twice.
pub fn check_ports(ports: &[NamedPort]) -> Result<(), Status> {
    labels::validate_ports(ports).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A name refused by `romana_core::names`.
pub fn bad_name(err: NameError) -> Status {
    Status::invalid_argument(err.to_string())
}

/// Refuses a name that could not be a key (a lookup, a removal, an endpoint id) before etcd
/// is asked: nothing of that name can exist.
pub fn check_name(kind: &'static str, name: &str) -> Result<(), Status> {
    romana_core::model::validate_name(kind, name).map_err(bad_name)
}

/// A malformed request field.
pub fn invalid(err: Invalid) -> Status {
    Status::invalid_argument(err.to_string())
}

/// The first few names of a list, for error messages that stay one line. Each is cut as
/// `romana_core::text::quote` cuts input (stored names are short, but say so anyway).
pub fn preview(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| romana_core::text::cut(n, romana_core::text::QUOTE_MAX))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", and {} more", names.len() - SHOWN));
    }
    s
}
