//! The command tree. Each verb group is one module with a clap `Subcommand` enum and an
//! `apply(self, &Ctx) -> Result<String, Error>` that makes the calls and renders the
//! answer; nothing here prints, so commands are testable as functions.

pub mod certs;
pub mod completion;
pub mod config;
pub mod context;
pub mod etcd_auth;
pub mod health;
pub mod host;
pub mod ipam;
pub mod policy;
pub mod segment;
pub mod status;
pub mod tenant;
pub mod topology;

use clap::{Parser, Subcommand};
use romana_proto::{discover, pb};
use tonic::transport::Channel;

use crate::{Error, Format};

/// The default root URL: root-service's default `--listen` on this machine.
pub const DEFAULT_ROOT: &str = "http://127.0.0.1:9600";

/// romanactl: manage a romana-rs cluster (layout, hosts, tenants, segments, addresses).
#[derive(Debug, Parser)]
#[command(name = "romanactl", version, about, propagate_version = true)]
pub struct Cli {
    /// root-service URL, or several separated by commas, tried in turn; every other service
    /// is found through it [default: the context's, else http://127.0.0.1:9600].
    #[arg(long, global = true, env = "ROMANA_ROOT", value_name = "URL[,URL...]")]
    pub root: Option<String>,

    /// Output format [default: the context's, else table].
    #[arg(short = 'o', long, global = true, value_enum)]
    pub output: Option<Format>,

    /// Seconds a call may take before it fails (connects take at most 3 s each).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,

    /// PEM CA certificate that signed the services' certificates; needed for https:// URLs.
    #[arg(long, global = true, env = "ROMANA_TLS_CA", value_name = "PEM")]
    pub tls_ca: Option<std::path::PathBuf>,

    /// PEM client certificate, for services that require one (mutual TLS); needs --tls-key.
    #[arg(long, global = true, env = "ROMANA_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, global = true, env = "ROMANA_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Use this context of the contexts file for this call, instead of the current one.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The contexts file [default: $XDG_CONFIG_HOME/romanactl/config.yaml, else
    /// ~/.config/romanactl/config.yaml].
    #[arg(long, global = true, env = "ROMANACTL_CONFIG", value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The cluster address layout.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Hosts and their prefixes.
    #[command(subcommand)]
    Host(host::HostCommand),
    /// Tenants (Kubernetes namespaces, Neutron projects).
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Segments of tenants.
    #[command(subcommand)]
    Segment(segment::SegmentCommand),
    /// Endpoint addresses.
    #[command(subcommand)]
    Ipam(ipam::IpamCommand),
    /// The routed-access fabric.
    #[command(subcommand)]
    Topology(topology::TopologyCommand),
    /// Network policies (Romana form and Kubernetes NetworkPolicy), and explain.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Layout, registered services and counts of what the cluster holds.
    Status(status::Status),
    /// Whether service instances serve (the gRPC health service), asked directly by URL.
    Health(health::Health),
    /// A development CA and client/server certificates (local files; no service is called).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// etcd's own users and roles for the services and agents (talks to etcd, not root).
    #[command(subcommand)]
    EtcdAuth(etcd_auth::EtcdAuthCommand),
    /// Named connection settings (root, TLS files, output) in the contexts file.
    #[command(subcommand)]
    Context(context::ContextCommand),
    /// The shell completion script for bash, zsh or fish (see README for installing it).
    Completion(completion::Completion),
}

/// What every command needs: where root is, how to reach it and how to print.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub root: String,
    pub format: Format,
    pub timeouts: discover::Timeouts,
    /// TLS for https:// URLs; `None` when no --tls-* flag was given.
    pub tls: Option<discover::ClientTls>,
}

// === impl Command ===

impl Command {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        match self {
            Command::Config(c) => c.apply(ctx).await,
            Command::Host(c) => c.apply(ctx).await,
            Command::Tenant(c) => c.apply(ctx).await,
            Command::Segment(c) => c.apply(ctx).await,
            Command::Ipam(c) => c.apply(ctx).await,
            Command::Topology(c) => c.apply(ctx).await,
            Command::Policy(c) => c.apply(ctx).await,
            Command::Status(c) => c.apply(ctx).await,
            Command::Health(c) => c.apply(ctx).await,
            Command::Certs(c) => c.apply(),
            Command::EtcdAuth(c) => c.apply().await,
            Command::Completion(c) => c.apply(),
            Command::Context(_) => Err(Error::Usage(
                "context commands run before any service is resolved".into(),
            )),
        }
    }
}

// === impl Ctx ===

impl Ctx {
    async fn channel(&self, kind: &str) -> Result<Channel, Error> {
        Ok(discover::channel_with_tls(&self.root, kind, self.timeouts, self.tls.as_ref()).await?)
    }

    pub async fn root(&self) -> Result<pb::root_client::RootClient<Channel>, Error> {
        Ok(pb::root_client::RootClient::new(
            self.channel("root").await?,
        ))
    }

    pub async fn topology(&self) -> Result<pb::topology_client::TopologyClient<Channel>, Error> {
        Ok(pb::topology_client::TopologyClient::new(
            self.channel("topology").await?,
        ))
    }

    pub async fn tenants(&self) -> Result<pb::tenants_client::TenantsClient<Channel>, Error> {
        Ok(pb::tenants_client::TenantsClient::new(
            self.channel("tenant").await?,
        ))
    }

    pub async fn ipam(&self) -> Result<pb::ipam_client::IpamClient<Channel>, Error> {
        Ok(pb::ipam_client::IpamClient::new(
            self.channel("ipam").await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    fn mk_cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("romanactl").chain(args.iter().copied()))
    }

    #[test]
    fn output_and_root_are_accepted_after_the_subcommand() {
        let cli = mk_cli(&["host", "list", "-o", "json", "--root", "http://r:1"]).unwrap();
        assert_eq!(cli.output, Some(Format::Json));
        assert_eq!(cli.root.as_deref(), Some("http://r:1"));
        let cli = mk_cli(&["-o", "yaml", "status"]).unwrap();
        assert_eq!(cli.output, Some(Format::Yaml));
    }

    #[test]
    fn tls_flags_are_global() {
        let cli = mk_cli(&["status", "--tls-ca", "ca.pem", "--tls-cert", "c.pem"]).unwrap();
        assert_eq!(cli.tls_ca.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert_eq!(cli.tls_cert.as_deref(), Some(std::path::Path::new("c.pem")));
        assert_eq!(cli.tls_key, None);
    }

    #[test]
    fn unknown_output_format_is_a_usage_error() {
        let err = mk_cli(&["status", "-o", "xml"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
