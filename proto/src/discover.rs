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

use std::error::Error as StdError;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::pb;

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

/// How to verify `https://` services and, for mutual TLS, who this client is. Applied to
/// root and to every discovered instance whose URL is `https://`; `http://` URLs stay
/// plaintext.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM CA certificate(s) that signed the services' certificates. Required for https://:
    /// this build trusts no system roots.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate and private key, for services that require client certificates.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads `--tls-ca`, `--tls-cert` and `--tls-key` files. `Ok(None)` when none is given;
    /// a certificate without its key (or the reverse) is an error naming the missing flag.
    pub fn from_files(
        ca: Option<&std::path::Path>,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
    ) -> Result<Option<ClientTls>, String> {
        let read = |flag: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("cannot read --{flag} {}: {e}", path.display()))
        };
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(_), None) => return Err("--tls-cert needs --tls-key".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert".into()),
            (Some(cert), Some(key)) => Some((read("tls-cert", cert)?, read("tls-key", key)?)),
        };
        let ca = ca.map(|ca| read("tls-ca", ca)).transpose()?;
        if ca.is_none() && identity.is_none() {
            return Ok(None);
        }
        Ok(Some(ClientTls { ca, identity }))
    }
}

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
fn status_text(status: &tonic::Status) -> String {
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

/// A transport error and its causes on one line. tonic's own text is only "transport
/// error"; what a person needs ("Connection refused", "timed out") is further down.
fn causes(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        // Wrappers often repeat their source's text; keep each piece once.
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.len() > 1 && parts[0] == "transport error" {
        parts.remove(0);
    }
    parts.join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn causes_drop_the_generic_top_and_repeated_text() {
        let err = Layer(
            "transport error",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(Layer("Connection refused (os error 111)", None))),
            ))),
        );
        assert_eq!(
            causes(&err),
            "tcp connect error: Connection refused (os error 111)"
        );
        let repeated = Layer(
            "dns error: no such host",
            Some(Box::new(Layer("no such host", None))),
        );
        assert_eq!(causes(&repeated), "dns error: no such host");
    }

    #[tokio::test]
    async fn https_without_a_ca_is_refused_before_connecting() {
        let err = channel_with_tls("https://127.0.0.1:1", "root", Timeouts::default(), None)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "https://127.0.0.1:1 is https:// but no CA certificate was given to verify it; \
             give --tls-ca"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn client_tls_files_come_in_pairs() {
        let p = std::path::Path::new("x.pem");
        assert_eq!(ClientTls::from_files(None, None, None), Ok(None));
        assert_eq!(
            ClientTls::from_files(None, Some(p), None),
            Err("--tls-cert needs --tls-key".to_string())
        );
        assert_eq!(
            ClientTls::from_files(None, None, Some(p)),
            Err("--tls-key needs --tls-cert".to_string())
        );
        let err = ClientTls::from_files(
            Some(std::path::Path::new("/nonexistent/ca.pem")),
            None,
            None,
        )
        .unwrap_err();
        assert!(
            err.starts_with("cannot read --tls-ca /nonexistent/ca.pem: "),
            "{err}"
        );
    }

    #[test]
    fn not_registered_says_which_service_to_start() {
        let err = DiscoverError::NotRegistered {
            kind: "ipam".into(),
            root: "http://127.0.0.1:9600".into(),
        };
        assert_eq!(
            err.to_string(),
            "no ipam-service is registered with root at http://127.0.0.1:9600; \
             is romana-ipam running?"
        );
        assert!(err.is_retryable());
    }

    #[test]
    fn registry_errors_show_the_message_not_the_status_struct() {
        let err = DiscoverError::Registry {
            root: "http://r:9600".into(),
            status: tonic::Status::unavailable("etcd unavailable: no leader"),
        };
        assert_eq!(
            err.to_string(),
            "root-service at http://r:9600 could not list services: etcd unavailable: no leader"
        );
        assert!(err.is_retryable());
        let timed_out = DiscoverError::Registry {
            root: "http://r:9600".into(),
            status: tonic::Status::cancelled("Timeout expired"),
        };
        assert!(timed_out
            .to_string()
            .ends_with("could not list services: no answer in time"));
    }

    #[test]
    fn unreachable_lists_every_url_tried() {
        let err = DiscoverError::Unreachable {
            kind: "tenant".into(),
            root: "http://r:9600".into(),
            tried: vec![
                Attempt {
                    url: "http://a:1".into(),
                    reason: "Connection refused".into(),
                },
                Attempt {
                    url: "http://b:2".into(),
                    reason: "timed out".into(),
                },
            ],
        };
        assert_eq!(
            err.to_string(),
            "no registered tenant-service is reachable (root at http://r:9600 lists 2): \
             http://a:1: Connection refused; http://b:2: timed out"
        );
    }
}
