//! `romanactl etcd-auth setup`: etcd users and roles for the services and hosts, then
//! `auth enable`. Talks to etcd, not to root. See [`crate::etcd_auth`].

use clap::{Args, Subcommand};

use crate::etcd_auth;
use crate::Error;

#[derive(Debug, Subcommand)]
pub enum EtcdAuthCommand {
    /// Creates role romana-service (readwrite on the prefix) with users service:KIND, per
    /// --host a user host:NAME that reads the prefix and writes only its status key, users
    /// root and admin (role root), and enables auth. Run again to add hosts. Once auth is
    /// on, connect with the admin certificate.
    Setup(Setup),
}

#[derive(Debug, Args)]
pub struct Setup {
    /// etcd client URLs (https://), comma separated.
    #[arg(
        long,
        env = "ROMANA_ETCD_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    pub etcd_endpoints: Vec<String>,
    #[command(flatten)]
    pub etcd_tls: romana_store::EtcdTlsArgs,
    /// Key prefix of all romana state in etcd.
    #[arg(long, env = "ROMANA_ETCD_PREFIX", default_value = romana_store::DEFAULT_PREFIX)]
    pub etcd_prefix: String,
    /// Hosts whose agents get a user host:NAME (repeatable, or several after one flag).
    #[arg(long = "host", value_name = "NAME", num_args = 1..)]
    pub hosts: Vec<String>,
}

impl EtcdAuthCommand {
    pub async fn apply(self) -> Result<String, Error> {
        let EtcdAuthCommand::Setup(setup) = self;
        let steps = etcd_auth::plan(&setup.etcd_prefix, &setup.hosts)?;
        let tls = setup
            .etcd_tls
            .read()
            .map_err(etcd_auth::EtcdAuthError::Tls)?
            .unwrap_or_default();
        let mut client = etcd_auth::connect(&setup.etcd_endpoints, &tls).await?;
        Ok(etcd_auth::apply(&mut client, &steps).await?)
    }
}
