//! `romanactl host add|list|show|remove`: hosts, kept by topology-service.

use std::net::IpAddr;

use clap::{Args, Subcommand};
use romana_proto::pb;

use super::Ctx;
use crate::{output, view, Error};

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Adds a host; it gets the lowest free index (and so prefix) in its rack.
    Add(Add),
    /// Lists hosts, ordered by index.
    List(List),
    /// Shows one host.
    Show(Show),
    /// Removes a host. Refused while it has endpoints, unless --force releases them.
    Remove(Remove),
}

#[derive(Debug, Args)]
pub struct Add {
    /// The host name, as its agent is started with (--host NAME).
    pub name: String,
    /// The host's fabric address; other hosts route its prefix via it.
    #[arg(long)]
    pub ip: IpAddr,
    /// The rack (leaf) the host is attached to; 0 when racks are not configured.
    #[arg(long)]
    pub rack: Option<u32>,
}

#[derive(Debug, Args)]
pub struct List {
    /// Only hosts of this rack.
    #[arg(long)]
    pub rack: Option<u32>,
}

#[derive(Debug, Args)]
pub struct Show {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct Remove {
    pub name: String,
    /// Also release the host's endpoints instead of refusing.
    #[arg(long)]
    pub force: bool,
}

// === impl HostCommand ===

impl HostCommand {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        let mut topology = ctx.topology().await?;
        match self {
            HostCommand::Add(Add { name, ip, rack }) => {
                let host = topology
                    .add_host(pb::AddHostRequest {
                        name,
                        ip: ip.to_string(),
                        rack,
                    })
                    .await?
                    .into_inner();
                output::one(&view::Host::from(host), ctx.format)
            }
            HostCommand::List(List { rack }) => {
                let hosts = topology
                    .list_hosts(pb::ListHostsRequest { rack })
                    .await?
                    .into_inner()
                    .hosts;
                let hosts: Vec<view::Host> = hosts.into_iter().map(Into::into).collect();
                output::list(&hosts, ctx.format)
            }
            HostCommand::Show(Show { name }) => {
                let host = topology
                    .get_host(pb::GetHostRequest { name })
                    .await?
                    .into_inner();
                output::one(&view::Host::from(host), ctx.format)
            }
            HostCommand::Remove(Remove { name, force }) => {
                let answer = topology
                    .remove_host(pb::RemoveHostRequest { name, force })
                    .await?
                    .into_inner();
                let host = answer.host.ok_or(Error::Incomplete {
                    service: "topology-service",
                    call: "RemoveHost",
                    field: "host",
                })?;
                let removed = view::HostRemoved {
                    removed: host.into(),
                    released_endpoints: answer.released_endpoints,
                };
                output::message(&removed_text(&removed), &removed, ctx.format)
            }
        }
    }
}

fn removed_text(r: &view::HostRemoved) -> String {
    let host = &r.removed;
    let released = match r.released_endpoints {
        0 => String::new(),
        1 => "; released 1 endpoint".to_string(),
        n => format!("; released {n} endpoints"),
    };
    format!(
        "removed host {} ({}, prefix {}){released}",
        host.name, host.ip, host.prefix
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_says_how_many_endpoints_went_with_the_host() {
        let mut removed = view::HostRemoved {
            removed: view::Host {
                name: "h1".into(),
                ip: "192.168.0.1".into(),
                rack: 0,
                index: 1,
                prefix: "10.1.0.0/16".into(),
            },
            released_endpoints: 0,
        };
        assert_eq!(
            removed_text(&removed),
            "removed host h1 (192.168.0.1, prefix 10.1.0.0/16)"
        );
        removed.released_endpoints = 2;
        assert_eq!(
            removed_text(&removed),
            "removed host h1 (192.168.0.1, prefix 10.1.0.0/16); released 2 endpoints"
        );
    }
}
