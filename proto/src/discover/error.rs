//! Why discovery failed, with every URL tried, on one line.

use std::error::Error as StdError;

use crate::error_text::causes;

/// Why no channel to a service could be made. Each message names root's URL or the
/// instance URLs tried, so a person can tell a typo from a service that is down.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// The URL cannot be parsed, or has no scheme. Not retryable.
    #[error("{url:?} is not a usable URL ({reason}); expected e.g. http://127.0.0.1:9600")]
    BadUrl { url: String, reason: String },
    /// Root's URL is https:// but no CA certificate was given to verify it. Not retryable.
    #[error("{root} is https:// but no CA certificate was given to verify it; give --tls-ca")]
    NoTlsCa { root: String },
    /// Root did not accept a connection. Retryable: root may be starting.
    #[error("cannot reach root-service at {root}: {}", causes(source))]
    RootUnreachable {
        root: String,
        #[source]
        source: tonic::transport::Error,
    },
    /// Root answered ListServices with an error (etcd down, usually), or not in time.
    /// Retryable when the status is UNAVAILABLE, ABORTED or a timeout.
    #[error("root-service at {root} could not list services: {}", status_text(.status))]
    Registry {
        root: String,
        #[source]
        status: tonic::Status,
    },
    /// Root knows no instance of the kind. Retryable: the service may be starting.
    #[error("no {kind}-service is registered with root at {root}; is romana-{kind} running?")]
    NotRegistered { kind: String, root: String },
    /// Instances are registered but none accepted a connection. Retryable: a registration
    /// outlives its process until its lease expires.
    #[error(
        "no registered {kind}-service is reachable (root at {root} lists {}): {}",
        .tried.len(),
        .tried.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Unreachable {
        kind: String,
        root: String,
        tried: Vec<Attempt>,
    },
    /// Several root-service URLs were given and none could list the service. Retryable.
    #[error(
        "no {kind}-service could be found through any of the {} root-services given: {}",
        .tried.len(),
        .tried.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    NoRoot { kind: String, tried: Vec<Attempt> },
}

/// One instance that was tried and did not connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub url: String,
    pub reason: String,
}

// === impl DiscoverError ===

impl DiscoverError {
    /// Whether trying again later can succeed without anyone changing the configuration.
    pub fn is_retryable(&self) -> bool {
        match self {
            DiscoverError::BadUrl { .. } | DiscoverError::NoTlsCa { .. } => false,
            DiscoverError::Registry { status, .. } => matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::Aborted
                    | tonic::Code::Cancelled
                    | tonic::Code::DeadlineExceeded
            ),
            DiscoverError::RootUnreachable { .. }
            | DiscoverError::NoRoot { .. }
            | DiscoverError::NotRegistered { .. }
            | DiscoverError::Unreachable { .. } => true,
        }
    }
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.url, self.reason)
    }
}

/// A status from root on one line. tonic reports its own client-side deadline as
/// CANCELLED "Timeout expired", which reads like someone cancelled something.
pub(super) fn status_text(status: &tonic::Status) -> String {
    if status.code() == tonic::Code::Cancelled && status.message() == "Timeout expired" {
        return "no answer in time".into();
    }
    // Status's own Display is a debug form ("code: '...', message: ..."); use its parts.
    let mut text = status.message().trim().to_string();
    if let Some(source) = StdError::source(status) {
        let source = causes(source);
        if !text.contains(&source) {
            text = if text.is_empty() {
                source
            } else {
                format!("{text}: {source}")
            };
        }
    }
    if text.is_empty() {
        text = status.code().description().to_string();
    }
    text.replace('\n', " ")
}
