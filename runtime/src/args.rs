//! Flags every service takes, named as in CONVENTIONS.md.

use std::net::SocketAddr;
use std::path::PathBuf;

use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use romana_store::{EtcdTlsArgs, Keys, Store};

use crate::error::MainError;
use crate::tls::{check_etcd_endpoints, read_pem, TlsArgsError};

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

    #[command(flatten)]
    pub etcd_tls: EtcdTlsArgs,

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
    /// Defaults to http://<listen address> (https:// when serving TLS); for 0.0.0.0 or ::,
    /// the address this machine's default route leaves from (127.0.0.1 without one).
    #[arg(long, env = "ROMANA_ADVERTISE")]
    pub advertise: Option<String>,

    /// PEM certificate (chain) to serve gRPC over TLS with; needs --tls-key.
    #[arg(long, env = "ROMANA_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "ROMANA_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s): clients must present a certificate signed by one (mutual TLS).
    /// Needs --tls-cert and --tls-key.
    #[arg(long, env = "ROMANA_TLS_CA", value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,

    /// Export `tracing` spans as OpenTelemetry traces over OTLP/gRPC to this collector URL
    /// (e.g. http://127.0.0.1:4317). Without it nothing is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,

    /// Allow plaintext: serve gRPC without --tls-cert/--tls-key, and talk to `http://` etcd
    /// endpoints. Without it a service refuses to start on either.
    #[arg(long)]
    pub insecure: bool,
}

impl ServiceArgs {
    /// The server TLS configuration the flags ask for: `None` for plaintext (only with
    /// `--insecure`), an error naming the flag when they are incomplete or unreadable.
    pub fn server_tls(&self) -> Result<Option<ServerTlsConfig>, TlsArgsError> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => {
                if self.tls_ca.is_some() {
                    return Err(TlsArgsError::Missing {
                        given: "tls-ca",
                        missing: "tls-cert",
                    });
                }
                if self.insecure {
                    Ok(None)
                } else {
                    Err(TlsArgsError::PlaintextNotAllowed)
                }
            }
            (Some(_), None) => Err(TlsArgsError::Missing {
                given: "tls-cert",
                missing: "tls-key",
            }),
            (None, Some(_)) => Err(TlsArgsError::Missing {
                given: "tls-key",
                missing: "tls-cert",
            }),
            // --insecure with a certificate only allows plaintext etcd: gRPC is TLS.
            (Some(cert), Some(key)) => {
                let cert = read_pem("tls-cert", cert, "CERTIFICATE")?;
                let key = read_pem("tls-key", key, "PRIVATE KEY")?;
                let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
                if let Some(ca) = &self.tls_ca {
                    let ca = read_pem("tls-ca", ca, "CERTIFICATE")?;
                    config = config.client_ca_root(Certificate::from_pem(ca));
                }
                Ok(Some(config))
            }
        }
    }

    /// Refuses plaintext etcd endpoints unless `--insecure` was given, as for gRPC.
    pub fn check_etcd(&self) -> Result<(), TlsArgsError> {
        check_etcd_endpoints(&self.etcd_endpoints, self.insecure)
    }

    /// Whether the flags ask for TLS (cert and key given).
    pub fn serves_tls(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }
}

impl ServiceArgs {
    /// The store, over TLS when --etcd-ca/--etcd-cert/--etcd-key are given.
    pub async fn connect(&self) -> Result<Store, MainError> {
        let tls = self.etcd_tls.read().map_err(MainError::EtcdTls)?;
        Ok(Store::connect_with_tls(
            &self.etcd_endpoints,
            Keys::new(&self.etcd_prefix),
            tls.as_ref(),
        )
        .await?)
    }

    /// The URL to register for a listener bound to `local`.
    /// The URL registered with root: `--advertise`, else the listening address, where "every
    /// address" (0.0.0.0, ::) stands for the address this machine's default route leaves from,
    /// which other machines can reach.
    pub fn advertised_url(&self, local: SocketAddr) -> String {
        if let Some(url) = &self.advertise {
            return url.clone();
        }
        let ip = if local.ip().is_unspecified() {
            outward_ip(local.ip()).unwrap_or_else(|| {
                tracing::warn!(
                    "listening on every address but no route leads off this machine; \
                     registering 127.0.0.1, which only this machine can reach (give --advertise)"
                );
                std::net::IpAddr::from([127, 0, 0, 1])
            })
        } else {
            local.ip()
        };
        let scheme = if self.serves_tls() { "https" } else { "http" };
        format!("{scheme}://{}", SocketAddr::new(ip, local.port()))
    }
}

/// The source address the kernel picks towards the rest of the world, found by connecting a
/// UDP socket (which sends nothing) to a documentation address of `family`'s family.
fn outward_ip(family: std::net::IpAddr) -> Option<std::net::IpAddr> {
    let (bind, probe): (SocketAddr, SocketAddr) = if family.is_ipv4() {
        (([0, 0, 0, 0], 0).into(), ([192, 0, 2, 1], 9).into())
    } else {
        (
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            (std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 9).into(),
        )
    };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    socket.connect(probe).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    fn args(flags: &[&str]) -> ServiceArgs {
        Cli::try_parse_from(std::iter::once("svc").chain(flags.iter().copied()))
            .unwrap()
            .service
    }

    fn tls_error(flags: &[&str]) -> String {
        args(flags).server_tls().unwrap_err().to_string()
    }

    #[test]
    fn plaintext_needs_insecure() {
        assert_eq!(
            tls_error(&[]),
            "refusing to serve plaintext gRPC without --insecure; \
             give --tls-cert/--tls-key or --insecure"
        );
        assert!(args(&["--insecure"]).server_tls().unwrap().is_none());
    }

    #[test]
    fn half_given_flags_name_the_missing_one() {
        assert_eq!(
            tls_error(&["--tls-cert", "c"]),
            "--tls-cert needs --tls-key"
        );
        assert_eq!(tls_error(&["--tls-key", "k"]), "--tls-key needs --tls-cert");
        assert_eq!(tls_error(&["--tls-ca", "ca"]), "--tls-ca needs --tls-cert");
        assert_eq!(
            tls_error(&["--tls-ca", "ca", "--insecure"]),
            "--tls-ca needs --tls-cert"
        );
    }

    #[test]
    fn plaintext_etcd_needs_insecure() {
        let err = args(&[]).check_etcd().unwrap_err().to_string();
        assert_eq!(
            err,
            "refusing plaintext etcd endpoint http://127.0.0.1:2379 without --insecure; \
             use https:// (with --etcd-ca) or give --insecure"
        );
        let mixed = ["--etcd-endpoints", "https://a:2379,b:2379"];
        assert!(args(&mixed)
            .check_etcd()
            .unwrap_err()
            .to_string()
            .contains("endpoint b:2379 "));
        assert!(args(&["--etcd-endpoints", "https://a:2379"])
            .check_etcd()
            .is_ok());
        assert!(args(&["--insecure"]).check_etcd().is_ok());
        // With a certificate, --insecure allows plaintext etcd only; gRPC stays TLS.
        let tls = args(&["--tls-cert", "c", "--tls-key", "k", "--insecure"]);
        assert!(tls.check_etcd().is_ok());
        assert!(
            tls_error(&["--tls-cert", "c", "--tls-key", "k", "--insecure"])
                .starts_with("cannot read --tls-cert c")
        );
    }

    #[test]
    fn unreadable_and_non_pem_files_are_named() {
        let dir = std::env::temp_dir().join(format!("romana-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let junk = junk.to_str().unwrap();
        let err = tls_error(&["--tls-cert", "/nonexistent/c.pem", "--tls-key", junk]);
        assert!(
            err.starts_with("cannot read --tls-cert /nonexistent/c.pem: "),
            "{err}"
        );
        let err = tls_error(&["--tls-cert", junk, "--tls-key", junk]);
        assert_eq!(err, format!("--tls-cert {junk} holds no PEM CERTIFICATE"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn advertised_scheme_follows_tls() {
        let local = SocketAddr::from(([127, 0, 0, 1], 9600));
        assert_eq!(
            args(&["--insecure"]).advertised_url(local),
            "http://127.0.0.1:9600"
        );
        assert_eq!(
            args(&["--tls-cert", "c", "--tls-key", "k"]).advertised_url(local),
            "https://127.0.0.1:9600"
        );
        // Every address: one other machines can reach, never 127.0.0.1 while a route exists.
        let any = SocketAddr::from(([0, 0, 0, 0], 9600));
        let url = args(&["--insecure"]).advertised_url(any);
        match outward_ip(any.ip()) {
            Some(ip) => assert_eq!(url, format!("http://{ip}:9600")),
            None => assert_eq!(url, "http://127.0.0.1:9600"),
        }
        assert!(!url.contains("0.0.0.0"), "{url}");
    }
}
