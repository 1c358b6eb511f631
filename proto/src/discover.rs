//! Finding a service through root. Clients are configured with root's URL only; every other
//! service registers itself with root (in etcd, under a lease), so its address can change
//! between two calls. [`channel`] asks root for the instances of one kind and returns a
//! connection to the first that answers: one that accepts a connection and answers a gRPC
//! health check within the connect timeout. A registration outlives its process until the
//! lease expires, and a frozen or wedged process still accepts TCP connections (the kernel
//! does), so a connect alone would hand out a channel on which every call hangs.
//! [`connected_with_tls`] leaves that proof to a one-shot caller's first call (which it
//! bounds, asking [`answers`] only when the call is slow), saving a round trip.
//!
//! Every step has a deadline: a client that hangs on a dead address is worse than one that
//! fails with a message naming the address.

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::error_text::causes;
use crate::pb;

mod error;
mod tls;
use error::status_text;
pub use error::{Attempt, DiscoverError};
pub use tls::ClientTls;

/// How long one TCP connect may take before the next instance is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one call on a returned channel may take. Services answer from etcd, so anything
/// slower than this means etcd or the service is stuck, not busy.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The deadlines of [`channel_with`]. A call that times out fails with CANCELLED
/// "Timeout expired" (tonic's wording).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Per connect attempt, to root and to each registered instance.
    pub connect: Duration,
    /// Per call, on root's channel (ListServices) and on the returned channel.
    pub request: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: CONNECT_TIMEOUT,
            request: REQUEST_TIMEOUT,
        }
    }
}

/// A channel to a running instance of `kind` ("root", "topology", "tenant", "ipam",
/// "policy"), found through root at `root`. Instances are tried in the order root lists
/// them; calls on the channel time out after [`REQUEST_TIMEOUT`].
pub async fn channel(root: &str, kind: &str) -> Result<Channel, DiscoverError> {
    channel_with(root, kind, Timeouts::default()).await
}

/// [`channel`] with other deadlines.
pub async fn channel_with(
    root: &str,
    kind: &str,
    timeouts: Timeouts,
) -> Result<Channel, DiscoverError> {
    channel_with_tls(root, kind, timeouts, None).await
}

/// [`channel_with`], with TLS for `https://` URLs (root's and the instances'). `roots` may
/// list several root-service URLs separated by commas: each is tried in turn until one
/// answers, and every URL is checked before any is tried.
pub async fn channel_with_tls(
    roots: &str,
    kind: &str,
    timeouts: Timeouts,
    tls: Option<&ClientTls>,
) -> Result<Channel, DiscoverError> {
    find(roots, kind, timeouts, tls, Check::Health).await
}

/// [`channel_with_tls`] without the health check of the instance: the first instance that
/// accepts a connection. For a one-shot client whose first call itself shows the instance
/// answers, which saves a round trip. A frozen instance accepts connections too, so the
/// caller must bound that first call: when it is slow, [`answers`] tells a busy instance
/// from a silent one, and [`channel_with_tls`] then finds one that answers.
pub async fn connected_with_tls(
    roots: &str,
    kind: &str,
    timeouts: Timeouts,
    tls: Option<&ClientTls>,
) -> Result<Channel, DiscoverError> {
    find(roots, kind, timeouts, tls, Check::Connect).await
}

/// Whether an instance is proven to answer before its channel is handed out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Health,
    Connect,
}

async fn find(
    roots: &str,
    kind: &str,
    timeouts: Timeouts,
    tls: Option<&ClientTls>,
    check: Check,
) -> Result<Channel, DiscoverError> {
    let urls: Vec<&str> = roots
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err(DiscoverError::BadUrl {
            url: roots.to_string(),
            reason: "no URL given".into(),
        });
    }
    for url in &urls {
        endpoint(url, timeouts, tls).map_err(|failure| root_error(url, failure))?;
    }
    let mut tried = Vec::with_capacity(urls.len());
    for url in &urls {
        match through_root(url, kind, timeouts, tls, check).await {
            Ok(channel) => return Ok(channel),
            Err(e) if urls.len() == 1 || !e.is_retryable() => return Err(e),
            Err(e) => {
                tried.push(Attempt {
                    url: url.to_string(),
                    reason: e.to_string(),
                });
            }
        }
    }
    Err(DiscoverError::NoRoot {
        kind: kind.to_string(),
        tried,
    })
}

fn root_error(root: &str, failure: ConnectFailure) -> DiscoverError {
    match failure {
        ConnectFailure::BadUrl(reason) => DiscoverError::BadUrl {
            url: root.to_string(),
            reason,
        },
        ConnectFailure::NoTlsCa => DiscoverError::NoTlsCa {
            root: root.to_string(),
        },
        ConnectFailure::Unreachable(source) => DiscoverError::RootUnreachable {
            root: root.to_string(),
            source,
        },
    }
}

/// A channel to `kind` as one root-service at `root` lists it.
async fn through_root(
    root: &str,
    kind: &str,
    timeouts: Timeouts,
    tls: Option<&ClientTls>,
    check: Check,
) -> Result<Channel, DiscoverError> {
    let root_channel = connect(root, timeouts, tls)
        .await
        .map_err(|failure| root_error(root, failure))?;
    if kind == "root" {
        return Ok(root_channel);
    }

    let services = pb::root_client::RootClient::new(root_channel)
        .list_services(pb::ListServicesRequest {
            kind: kind.to_string(),
        })
        .await
        .map_err(|status| DiscoverError::Registry {
            root: root.to_string(),
            status,
        })?
        .into_inner()
        .services;
    // Root filters by kind already; filtering again keeps an older root that ignores the
    // filter from handing us the wrong service.
    let urls: Vec<String> = services
        .into_iter()
        .filter(|s| s.kind == kind)
        .map(|s| s.url)
        .collect();
    if urls.is_empty() {
        return Err(DiscoverError::NotRegistered {
            kind: kind.to_string(),
            root: root.to_string(),
        });
    }

    let mut tried = Vec::with_capacity(urls.len());
    for url in urls {
        let connected = match check {
            Check::Health => connect_answering(&url, timeouts, tls).await,
            Check::Connect => connect(&url, timeouts, tls)
                .await
                .map_err(|failure| failure.reason()),
        };
        match connected {
            Ok(channel) => return Ok(channel),
            Err(reason) => tried.push(Attempt { reason, url }),
        }
    }
    Err(DiscoverError::Unreachable {
        kind: kind.to_string(),
        root: root.to_string(),
        tried,
    })
}

enum ConnectFailure {
    BadUrl(String),
    NoTlsCa,
    Unreachable(tonic::transport::Error),
}

/// [`connect`], then [`answers`] within the connect timeout; the error is why the
/// instance is passed over.
async fn connect_answering(
    url: &str,
    timeouts: Timeouts,
    tls: Option<&ClientTls>,
) -> Result<Channel, String> {
    let channel = connect(url, timeouts, tls)
        .await
        .map_err(|failure| failure.reason())?;
    answers(&channel, timeouts.connect).await?;
    Ok(channel)
}

/// One health check (service `""`, the whole server) on `channel` within `within`; the
/// error says why the instance does not count as answering. A server without the health
/// service answers UNIMPLEMENTED, which proves it answers: that is all this asks.
pub async fn answers(channel: &Channel, within: Duration) -> Result<(), String> {
    use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let check = health.check(HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(within, check).await {
        Ok(Ok(r)) if r.get_ref().status() == ServingStatus::Serving => Ok(()),
        Ok(Err(status)) if status.code() == tonic::Code::Unimplemented => Ok(()),
        Ok(Ok(r)) => Err(format!(
            "health check says {}",
            r.get_ref().status().as_str_name()
        )),
        Ok(Err(status)) => Err(format!("health check failed: {}", status_text(&status))),
        Err(_) => Err(format!(
            "connected, but no answer to a health check within {within:?}"
        )),
    }
}

async fn connect(
    url: &str,
    timeouts: Timeouts,
    tls: Option<&ClientTls>,
) -> Result<Channel, ConnectFailure> {
    endpoint(url, timeouts, tls)?
        .connect()
        .await
        .map_err(ConnectFailure::Unreachable)
}

/// The endpoint for `url`, checked without connecting.
fn endpoint(
    url: &str,
    timeouts: Timeouts,
    tls: Option<&ClientTls>,
) -> Result<Endpoint, ConnectFailure> {
    let endpoint =
        Endpoint::from_shared(url.to_string()).map_err(|e| ConnectFailure::BadUrl(causes(&e)))?;
    // A URL without a scheme parses (as a relative URI) but can never connect; say so
    // instead of reporting it as unreachable.
    if endpoint.uri().scheme().is_none() || endpoint.uri().host().is_none() {
        return Err(ConnectFailure::BadUrl("no scheme or host".into()));
    }
    let mut endpoint = endpoint
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.request);
    if endpoint.uri().scheme_str() == Some("https") {
        let Some(ca) = tls.and_then(|t| t.ca.as_ref()) else {
            return Err(ConnectFailure::NoTlsCa);
        };
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert, key)) = tls.and_then(|t| t.identity.as_ref()) {
            config = config.identity(Identity::from_pem(cert, key));
        }
        endpoint = endpoint
            .tls_config(config)
            .map_err(ConnectFailure::Unreachable)?;
    }
    Ok(endpoint)
}

// === impl ConnectFailure ===

impl ConnectFailure {
    fn reason(&self) -> String {
        match self {
            ConnectFailure::BadUrl(reason) => format!("not a usable URL: {reason}"),
            ConnectFailure::NoTlsCa => "https:// but no CA certificate was given (--tls-ca)".into(),
            ConnectFailure::Unreachable(e) => causes(e),
        }
    }
}

#[cfg(test)]
mod tests;
