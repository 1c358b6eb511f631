//! `romanactl config init|show`: the cluster layout, kept by root-service.

use clap::{Args, Subcommand};
use romana_proto::pb;

use super::Ctx;
use crate::{output, view, Error};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Sets the address layout. Giving the current layout again changes nothing; changing
    /// it is refused once hosts exist.
    Init(Init),
    /// Shows the address layout.
    Show,
}

#[derive(Debug, Args)]
pub struct Init {
    /// The whole address space, e.g. 10.0.0.0/8 or fd00:10::/48. Give it twice, one space
    /// per IP family, for a dual-stack cluster: every host, tenant and segment then has a
    /// prefix in each, and every endpoint an address of each.
    #[arg(long, value_name = "CIDR", required = true, num_args = 1, action = clap::ArgAction::Append)]
    pub address_space: Vec<String>,
    /// Bits numbering hosts; each host owns a prefix that much longer than the space.
    #[arg(long, value_name = "N")]
    pub host_bits: u32,
    /// Bits numbering tenants (may be 0 with --single-tenant).
    #[arg(long, value_name = "N", required_unless_present = "single_tenant")]
    pub tenant_bits: Option<u32>,
    /// Bits numbering segments in a tenant (may be 0 with --single-tenant).
    #[arg(long, value_name = "N", required_unless_present = "single_tenant")]
    pub segment_bits: Option<u32>,
    /// Bits, taken from the top of the host bits, numbering racks; 0 for no racks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rack_bits: u32,
    /// A cluster of one tenant, which may use zero tenant and segment bits.
    #[arg(long)]
    pub single_tenant: bool,
}

// === impl ConfigCommand ===

impl ConfigCommand {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        match self {
            ConfigCommand::Init(init) => init.apply(ctx).await,
            ConfigCommand::Show => {
                let config = ctx
                    .root()
                    .await?
                    .get_config(pb::GetConfigRequest {})
                    .await?
                    .into_inner();
                output::one(&view::Config::from(config), ctx.format)
            }
        }
    }
}

// === impl Init ===

impl Init {
    fn request(&self) -> pb::InitConfigRequest {
        pb::InitConfigRequest {
            config: Some(pb::ClusterConfig {
                address_space: self.address_space[0].clone(),
                host_bits: self.host_bits,
                rack_bits: self.rack_bits,
                tenant_bits: self.tenant_bits.unwrap_or(0),
                segment_bits: self.segment_bits.unwrap_or(0),
                single_tenant: self.single_tenant,
                endpoint_bits: 0,
                second_address_space: self.address_space.get(1).cloned().unwrap_or_default(),
                second_endpoint_bits: 0,
            }),
        }
    }

    async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        if self.address_space.len() > 2 {
            return Err(Error::Usage(format!(
                "--address-space is given {} times; a cluster has one space, or one per IP \
                 family (dual-stack)",
                self.address_space.len()
            )));
        }
        let answer = ctx
            .root()
            .await?
            .init_config(self.request())
            .await?
            .into_inner();
        let config = answer.config.ok_or(Error::Incomplete {
            service: "root-service",
            call: "InitConfig",
            field: "config",
        })?;
        let init = view::ConfigInit {
            config: config.into(),
            changed: answer.changed,
        };
        output::one(&init, ctx.format)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cmd::{Cli, Command};

    fn mk_init(args: &[&str]) -> Result<Init, clap::Error> {
        let cli = Cli::try_parse_from(["romanactl", "config", "init"].iter().chain(args))?;
        match cli.command {
            Command::Config(ConfigCommand::Init(init)) => Ok(init),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn init_needs_tenant_and_segment_bits_unless_single_tenant() {
        let err = mk_init(&["--address-space", "10.0.0.0/8", "--host-bits", "8"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let init = mk_init(&[
            "--address-space",
            "10.0.0.0/8",
            "--host-bits",
            "8",
            "--single-tenant",
        ])
        .unwrap();
        let config = init.request().config.unwrap();
        assert_eq!((config.tenant_bits, config.segment_bits), (0, 0));
        assert!(config.single_tenant);
    }

    #[test]
    fn init_request_carries_every_flag() {
        let init = mk_init(&[
            "--address-space",
            "10.0.0.0/8",
            "--host-bits",
            "8",
            "--tenant-bits",
            "4",
            "--segment-bits",
            "4",
            "--rack-bits",
            "2",
        ])
        .unwrap();
        assert_eq!(
            init.request().config.unwrap(),
            pb::ClusterConfig {
                address_space: "10.0.0.0/8".into(),
                host_bits: 8,
                rack_bits: 2,
                tenant_bits: 4,
                segment_bits: 4,
                single_tenant: false,
                endpoint_bits: 0,
                second_address_space: String::new(),
                second_endpoint_bits: 0,
            }
        );
    }

    #[test]
    fn init_with_two_spaces_asks_for_a_dual_stack_cluster() {
        let init = mk_init(&[
            "--address-space",
            "10.0.0.0/8",
            "--address-space",
            "fd00:10::/48",
            "--host-bits",
            "8",
            "--tenant-bits",
            "4",
            "--segment-bits",
            "4",
        ])
        .unwrap();
        let config = init.request().config.unwrap();
        assert_eq!(
            (
                config.address_space.as_str(),
                config.second_address_space.as_str()
            ),
            ("10.0.0.0/8", "fd00:10::/48")
        );
        assert!(mk_init(&["--host-bits", "8", "--single-tenant"]).is_err());
    }
}
