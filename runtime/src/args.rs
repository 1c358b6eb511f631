//! Flags every service takes, named as in CONVENTIONS.md.

use std::net::SocketAddr;

use romana_store::{Keys, Store, StoreError};

/// Flags shared by all services. Each binary flattens this into its own `clap` parser and
/// picks its default `--listen` port.
#[derive(Clone, Debug, clap::Args)]
pub struct ServiceArgs {
    /// etcd client URLs, comma separated.
    #[arg(
        long,
        env = "ROMANA_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd_endpoints: Vec<String>,

    /// Key prefix of all romana state in etcd.
    #[arg(long, env = "ROMANA_ETCD_PREFIX", default_value = romana_store::DEFAULT_PREFIX)]
    pub etcd_prefix: String,

    /// gRPC listen address (each service has its own default port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,

    /// Serve Prometheus metrics on http://ADDR:PORT/metrics.
    #[arg(long, env = "ROMANA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// URL other processes should use to reach this service (registered in etcd).
    /// Defaults to http://<listen address>, with 127.0.0.1 for an unspecified address.
    #[arg(long, env = "ROMANA_ADVERTISE")]
    pub advertise: Option<String>,

    /// Serve plaintext gRPC. Plaintext is the only transport this build serves, so the flag
    /// is accepted for deploy files that state it explicitly.
    #[arg(long)]
    pub insecure: bool,
}

impl ServiceArgs {
    pub async fn connect(&self) -> Result<Store, StoreError> {
        Store::connect(&self.etcd_endpoints, Keys::new(&self.etcd_prefix)).await
    }

    /// The URL to register for a listener bound to `local`.
    pub fn advertised_url(&self, local: SocketAddr) -> String {
        if let Some(url) = &self.advertise {
            return url.clone();
        }
        let ip = if local.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            local.ip()
        };
        format!("http://{}", SocketAddr::new(ip, local.port()))
    }
}
