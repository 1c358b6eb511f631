//! TLS settings of the etcd connection, read from the `--etcd-*` files, and (with the `clap`
//! feature) those flags, which the services, the agent and `romanactl etcd-auth` share.

/// TLS to etcd: the CA that signed etcd's certificate and, when etcd requires client
/// certificates (`--client-cert-auth`), this process's certificate and key (PEM).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdTls {
    pub ca: Option<Vec<u8>>,
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl EtcdTls {
    /// The client's TLS settings: trust `ca`, present `identity`.
    pub fn client_options(&self) -> etcd_client::TlsOptions {
        let mut config = etcd_client::TlsOptions::new();
        if let Some(ca) = &self.ca {
            config = config.ca_certificate(etcd_client::Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &self.identity {
            config = config.identity(etcd_client::Identity::from_pem(cert, key));
        }
        config
    }

    /// Reads the PEM files named by `--etcd-ca`, `--etcd-cert`, `--etcd-key`; `Ok(None)` when
    /// none is given. Errors name the flag.
    pub fn from_files(
        ca: Option<&std::path::Path>,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
    ) -> Result<Option<EtcdTls>, String> {
        let read = |flag: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("cannot read --{flag} {}: {e}", path.display()))
        };
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(_), None) => return Err("--etcd-cert needs --etcd-key".into()),
            (None, Some(_)) => return Err("--etcd-key needs --etcd-cert".into()),
            (Some(c), Some(k)) => Some((read("etcd-cert", c)?, read("etcd-key", k)?)),
        };
        let ca = ca.map(|p| read("etcd-ca", p)).transpose()?;
        Ok((ca.is_some() || identity.is_some()).then_some(EtcdTls { ca, identity }))
    }
}

/// `--etcd-ca`, `--etcd-cert`, `--etcd-key` (and their `ROMANA_ETCD_*` variables), for a
/// process's `clap` parser to flatten.
#[cfg(feature = "clap")]
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct EtcdTlsArgs {
    /// CA (PEM) that signed etcd's certificate; talks TLS to `https://` etcd endpoints.
    #[arg(long, env = "ROMANA_ETCD_CA", value_name = "PEM")]
    pub etcd_ca: Option<std::path::PathBuf>,

    /// Client certificate (PEM) for an etcd that requires client certificates; its common
    /// name is the etcd user.
    #[arg(
        long,
        env = "ROMANA_ETCD_CERT",
        value_name = "PEM",
        requires = "etcd_key"
    )]
    pub etcd_cert: Option<std::path::PathBuf>,

    /// Key (PEM) of --etcd-cert.
    #[arg(
        long,
        env = "ROMANA_ETCD_KEY",
        value_name = "PEM",
        requires = "etcd_cert"
    )]
    pub etcd_key: Option<std::path::PathBuf>,
}

#[cfg(feature = "clap")]
impl EtcdTlsArgs {
    /// The files the flags name, read ([`EtcdTls::from_files`]).
    pub fn read(&self) -> Result<Option<EtcdTls>, String> {
        EtcdTls::from_files(
            self.etcd_ca.as_deref(),
            self.etcd_cert.as_deref(),
            self.etcd_key.as_deref(),
        )
    }
}
