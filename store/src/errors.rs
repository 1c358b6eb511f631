//! The one error type of the store boundary. Services map it to gRPC statuses: `Conflict` is
//! the answer to a race (re-read and decide again), `is_retryable` errors are worth the same
//! call again after a backoff, anything else is a bug or bad data.

use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// etcd could not be reached or the connection broke (etcd down, restarting, no leader).
    #[error("etcd at {endpoints} is unavailable: {detail}")]
    Unavailable { endpoints: String, detail: String },

    /// etcd answered with an error that a retry will not fix.
    #[error("etcd {op} of {key} failed: {}", describe(.source))]
    Etcd {
        op: &'static str,
        key: String,
        #[source]
        source: etcd_client::Error,
    },

    #[error("value of {key} is not the expected JSON")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("value for {key} cannot be encoded as JSON")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },

    /// A compare of a conditional write failed: someone else wrote first.
    #[error("conflict on {key}: expected {expected}, found {found}")]
    Conflict {
        key: String,
        expected: String,
        found: String,
    },

    /// A write bigger than [`crate::MAX_WRITE_BYTES`]: etcd would refuse it (its request
    /// limit is 1.5 MiB by default), so it is not sent. The caller's input was too big.
    #[error(
        "writing {key} would send {size} bytes to etcd; at most {limit} are sent in one request"
    )]
    TooLarge {
        key: String,
        size: usize,
        limit: usize,
    },

    /// A read asked for history etcd has already discarded; `compacted` is 0 when etcd did not
    /// say up to where.
    #[error("revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted { requested: i64, compacted: i64 },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        match self {
            // A list retried now reads at the newest revision, which is not compacted.
            StoreError::Unavailable { .. } | StoreError::Compacted { .. } => true,
            StoreError::Etcd { source, .. } => is_transient(source),
            _ => false,
        }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Sorts an etcd-client error into `Unavailable` (retryable) or `Etcd`.
    pub(crate) fn from_etcd(
        op: &'static str,
        key: &str,
        endpoints: &str,
        source: etcd_client::Error,
    ) -> StoreError {
        if is_transient(&source) {
            StoreError::Unavailable {
                endpoints: endpoints.to_string(),
                detail: format!("{op} {key}: {}", describe(&source)),
            }
        } else {
            StoreError::Etcd {
                op,
                key: key.to_string(),
                source,
            }
        }
    }
}

/// Whether the same request may succeed later. etcd dying mid-stream shows up as `Unknown`
/// ("h2 protocol error"), not `Unavailable`; a leader election as `Unavailable` with an
/// etcdserver message; a lost stream sender as `WatchError`.
pub(crate) fn is_transient(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_)
        | etcd_client::Error::IoError(_)
        | etcd_client::Error::WatchError(_) => true,
        etcd_client::Error::GRpcStatus(status) => matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled
        ),
        _ => false,
    }
}

/// One readable line for an etcd-client error: etcd's own message, or the chain of causes
/// of a transport failure, without the status's metadata and details.
pub(crate) fn describe(e: &etcd_client::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |text: String| {
        let text = text.trim().to_string();
        // hyper and tonic repeat their cause inside their own message.
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = match e {
        etcd_client::Error::GRpcStatus(status) => {
            push(if status.message().is_empty() {
                format!("{:?}", status.code())
            } else {
                status.message().to_string()
            });
            std::error::Error::source(status)
        }
        etcd_client::Error::TransportError(t) => {
            push(t.to_string());
            std::error::Error::source(t)
        }
        other => {
            push(other.to_string());
            None
        }
    };
    while let Some(c) = cause {
        push(c.to_string());
        cause = c.source();
    }
    parts.join(": ")
}

/// etcd's answer to a read at a revision older than the last compaction.
pub(crate) fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.code() == Code::OutOfRange && s.message().contains("compacted"))
}

/// Whether an answer was refused for its size: tonic's decoder limits a message to 4 MiB
/// ("decoded message length too large").
pub(crate) fn too_large(e: &etcd_client::Error) -> bool {
    describe(e).contains("message length too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflict_message_names_key_expected_and_found() {
        let e = StoreError::Conflict {
            key: "/romana/v1/hosts/h1".into(),
            expected: "absent".into(),
            found: "mod_revision 42".into(),
        };
        assert_eq!(
            e.to_string(),
            "conflict on /romana/v1/hosts/h1: expected absent, found mod_revision 42"
        );
        assert!(e.is_conflict());
        assert!(!e.is_retryable());
    }

    #[test]
    fn broken_streams_and_elections_are_retryable_but_bad_requests_are_not() {
        let status =
            |code, msg: &str| etcd_client::Error::GRpcStatus(tonic::Status::new(code, msg));
        let sort = |e| StoreError::from_etcd("get", "/k", "http://e:1", e);
        assert!(sort(status(Code::Unknown, "h2 protocol error")).is_retryable());
        assert!(sort(status(Code::Unavailable, "etcdserver: leader changed")).is_retryable());
        let bad = sort(status(
            Code::InvalidArgument,
            "etcdserver: key is not provided",
        ));
        assert!(!bad.is_retryable());
        assert_eq!(
            bad.to_string(),
            "etcd get of /k failed: etcdserver: key is not provided"
        );
        assert!(is_compacted(&status(
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted"
        )));
    }
}
