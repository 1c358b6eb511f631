//! Errors as gRPC statuses. Every message names what failed so that an operator can act on it
//! without reading logs.

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
        StoreError::Decode { .. } | StoreError::Encode { .. } => Status::internal(err.to_string()),
        StoreError::Etcd { .. } if err.is_retryable() => Status::unavailable(err.to_string()),
        StoreError::Etcd { .. } => Status::internal(err.to_string()),
    }
}

/// How often a write that lost a race to another replica is retried before giving up.
pub const MAX_ATTEMPTS: usize = 20;

/// ABORTED for a write that lost [`MAX_ATTEMPTS`] races in a row: retrying is safe.
pub fn contended(what: &str, name: &str) -> Status {
    Status::aborted(format!(
        "{what} {name}: lost {MAX_ATTEMPTS} races in a row against concurrent changes; retry"
    ))
}

/// Refuses labels that could not round-trip through selectors and CNI_ARGS.
pub fn check_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), Status> {
    for (k, v) in labels {
        if k.is_empty() || k.contains(char::is_whitespace) || v.contains(char::is_whitespace) {
            return Err(Status::invalid_argument(format!(
                "label {k:?}={v:?}: keys must be non-empty and keys and values without spaces"
            )));
        }
    }
    Ok(())
}

/// A malformed request field.
pub fn invalid(err: Invalid) -> Status {
    Status::invalid_argument(err.to_string())
}

/// The first few names of a list, for error messages that stay one line.
pub fn preview(names: &[&str]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", and {} more", names.len() - SHOWN));
    }
    s
}
