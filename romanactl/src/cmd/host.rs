//! `romanactl host add|list|show|status|remove`: hosts, kept by topology-service, and what
//! their agents last applied.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use romana_core::model::same_family;
use romana_proto::pb;

use super::Ctx;
use crate::{output, view, Error, Format};

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Adds a host; it gets the lowest free index (and so prefix) in its rack.
    Add(Add),
    /// Lists hosts, ordered by index.
    List(List),
    /// Shows one host.
    Show(Show),
    /// What each host's agent last applied: revision, routes, nftables, convergence.
    Status(Status),
    /// Removes a host. Refused while it has endpoints, unless --force releases them.
    Remove(Remove),
}

#[derive(Debug, Args)]
pub struct Add {
    /// The host name, as its agent is started with (--host NAME).
    pub name: String,
    /// The host's fabric address; other hosts route its prefix via it. Give it twice, one
    /// address per IP family, in a dual-stack cluster: other hosts route the host's prefix
    /// of each family via its address of that family.
    #[arg(long, required = true, num_args = 1, action = clap::ArgAction::Append)]
    pub ip: Vec<IpAddr>,
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
pub struct Status {
    /// Only this host, with its routes (and blocked routes and problems) one per line.
    pub name: Option<String>,
    /// Print the listing, then again each time it changes, until interrupted.
    #[arg(long, short = 'w')]
    pub watch: bool,
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
        match self {
            HostCommand::Add(add) => {
                // Flags are checked before connecting: a usage error should not wait on the
                // network.
                let request = add.request()?;
                let host = ctx.topology().await?.add_host(request).await?.into_inner();
                output::one(&view::Host::from(host), ctx.format)
            }
            HostCommand::List(List { rack }) => {
                let hosts = ctx
                    .topology()
                    .await?
                    .list_hosts(pb::ListHostsRequest { rack })
                    .await?
                    .into_inner()
                    .hosts;
                let hosts: Vec<view::Host> = hosts.into_iter().map(Into::into).collect();
                output::list(&hosts, ctx.format)
            }
            HostCommand::Show(Show { name }) => {
                let host = ctx
                    .topology()
                    .await?
                    .get_host(pb::GetHostRequest { name })
                    .await?
                    .into_inner();
                output::one(&view::Host::from(host), ctx.format)
            }
            HostCommand::Status(Status {
                name: Some(host), ..
            }) => {
                let status = ctx
                    .topology()
                    .await?
                    .get_host_status(pb::GetHostStatusRequest { host })
                    .await?
                    .into_inner();
                let status = view::HostStatus::from(status);
                match ctx.format {
                    Format::Table => Ok(status_detail(&status, unix_now())),
                    format => output::encode(&status, format),
                }
            }
            HostCommand::Status(Status { name: None, .. }) => {
                let hosts = ctx
                    .topology()
                    .await?
                    .list_host_status(pb::ListHostStatusRequest {})
                    .await?
                    .into_inner()
                    .hosts;
                let hosts: Vec<view::HostStatus> = hosts.into_iter().map(Into::into).collect();
                match ctx.format {
                    Format::Table => Ok(status_table(&hosts, unix_now())),
                    format => output::encode(&hosts, format),
                }
            }
            HostCommand::Remove(Remove { name, force }) => {
                let answer = ctx
                    .topology()
                    .await?
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

// === impl Add ===

impl Add {
    /// The AddHost call: the first `--ip` is the host's ip, a second one (of the other IP
    /// family) its second_ip. More, or two of one family, is a usage error.
    fn request(&self) -> Result<pb::AddHostRequest, Error> {
        let (ip, second_ip) = match self.ip[..] {
            [ip] => (ip, None),
            [ip, second] if !same_family(ip, second) => (ip, Some(second)),
            [ip, second] => {
                return Err(Error::Usage(format!(
                    "--ip {ip} and --ip {second} are of the same IP family; a host has at most \
                     one fabric address per family"
                )))
            }
            _ => {
                return Err(Error::Usage(format!(
                    "--ip is given {} times; a host has one fabric address, or one per IP \
                     family (dual-stack)",
                    self.ip.len()
                )))
            }
        };
        Ok(pb::AddHostRequest {
            name: self.name.clone(),
            ip: ip.to_string(),
            rack: self.rack,
            second_ip: second_ip.map(|s| s.to_string()).unwrap_or_default(),
        })
    }
}

/// The operator's clock, for the AGE column. A clock before 1970 shows every age as 0s
/// rather than failing the command.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn status_table(hosts: &[view::HostStatus], now: u64) -> String {
    let rows: Vec<Vec<String>> = hosts.iter().map(|h| h.row_at(now)).collect();
    output::table(view::HostStatus::HEADERS, &rows)
}

/// One host: its row, then what the counts stand for, one per line, in sections as
/// `romanactl status` prints them. Blocked routes and problems appear only when there are
/// some; a host whose agent has not reported gets a hint instead.
pub(crate) fn status_detail(status: &view::HostStatus, now: u64) -> String {
    let mut sections = vec![status_table(std::slice::from_ref(status), now)];
    if !status.reported {
        sections.push(format!(
            "no report from the agent of host {0} since the host was added; \
             is `romana-agent --host {0}` running and reaching etcd?\n",
            status.host
        ));
        return sections.join("\n");
    }
    sections.push(column("ROUTE", &status.routes));
    if !status.blocked.is_empty() {
        sections.push(column("BLOCKED", &status.blocked));
    }
    if !status.problems.is_empty() {
        sections.push(column("PROBLEM", &status.problems));
    }
    sections.join("\n")
}

fn column(header: &str, lines: &[String]) -> String {
    let rows: Vec<Vec<String>> = lines.iter().map(|l| vec![l.clone()]).collect();
    output::table(&[header], &rows)
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
        host.name,
        host.ips_cell(),
        host.prefix
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_status(host: &str) -> view::HostStatus {
        view::HostStatus {
            host: host.into(),
            reported: true,
            revision: 42,
            policy_revision: 0,
            converged: false,
            routes: vec![
                "10.1.0.0/16 via 192.168.0.12".into(),
                "10.0.0.5 dev romana-e1".into(),
            ],
            nft_rules: 12,
            nft_sets: 3,
            nft_elements: 40,
            blocked: vec!["10.0.0.6 dev romana-e2".into()],
            problems: vec![],
            applied_at: 1_000,
            alive_at: 1_120,
        }
    }

    #[test]
    fn status_of_one_host_lists_routes_and_blocked_routes_below_its_row() {
        assert_eq!(
            status_detail(&mk_status("h1"), 1_130),
            "HOST   REVISION   CONVERGED   AGENT   ROUTES   NFT       AGE   PROBLEMS\n\
             h1     42         false       up      2        12/3/40   2m    0\n\
             \n\
             ROUTE\n\
             10.1.0.0/16 via 192.168.0.12\n\
             10.0.0.5 dev romana-e1\n\
             \n\
             BLOCKED\n\
             10.0.0.6 dev romana-e2\n"
        );
    }

    #[test]
    fn status_of_a_host_that_never_reported_says_what_to_check() {
        let status = view::HostStatus {
            reported: false,
            revision: 0,
            routes: vec![],
            nft_rules: 0,
            nft_sets: 0,
            nft_elements: 0,
            blocked: vec![],
            applied_at: 0,
            ..mk_status("h2")
        };
        let text = status_detail(&status, 1_000);
        assert!(
            text.starts_with(
                "HOST   REVISION   CONVERGED   AGENT    ROUTES   NFT      AGE     PROBLEMS\n\
                 h2     <none>     <none>      <none>   <none>   <none>   never   <none>\n\n"
            ),
            "{text}"
        );
        assert!(text.contains("`romana-agent --host h2` running"), "{text}");
        assert!(!text.contains("ROUTE\n"), "{text}");
    }

    #[test]
    fn status_list_is_one_row_per_host() {
        let hosts = [mk_status("h1"), mk_status("h2")];
        let table = status_table(&hosts, 1_005);
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(table.lines().nth(2).unwrap().starts_with("h2 "), "{table}");
    }

    #[test]
    fn removal_says_how_many_endpoints_went_with_the_host() {
        let mut removed = view::HostRemoved {
            removed: view::Host {
                name: "h1".into(),
                ip: "192.168.0.1".into(),
                rack: 0,
                index: 1,
                prefix: "10.1.0.0/16".into(),
                second_ip: String::new(),
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
        removed.removed.second_ip = "fd00:ff::1".into();
        removed.released_endpoints = 0;
        assert_eq!(
            removed_text(&removed),
            "removed host h1 (192.168.0.1,fd00:ff::1, prefix 10.1.0.0/16)"
        );
    }

    fn mk_add(args: &[&str]) -> Result<pb::AddHostRequest, Error> {
        use clap::Parser;
        let argv = ["romanactl", "host", "add", "h1"].iter().chain(args);
        match crate::cmd::Cli::try_parse_from(argv).map(|cli| cli.command) {
            Ok(crate::cmd::Command::Host(HostCommand::Add(add))) => add.request(),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn add_takes_one_ip_or_one_per_family() {
        let one = mk_add(&["--ip", "192.168.0.1"]).unwrap();
        assert_eq!(
            (one.ip.as_str(), one.second_ip.as_str()),
            ("192.168.0.1", "")
        );
        let two = mk_add(&["--ip", "fd00:ff::1", "--ip", "192.168.0.1", "--rack", "1"]).unwrap();
        assert_eq!(
            two,
            pb::AddHostRequest {
                name: "h1".into(),
                ip: "fd00:ff::1".into(),
                rack: Some(1),
                second_ip: "192.168.0.1".into(),
            }
        );
        let same = mk_add(&["--ip", "192.168.0.1", "--ip", "192.168.0.2"]).unwrap_err();
        assert_eq!(same.exit_code(), 2);
        assert!(
            same.line()
                .contains("at most one fabric address per family"),
            "{same}"
        );
        let three = ["--ip", "192.168.0.1", "--ip", "fd00::1", "--ip", "fd00::2"];
        let three = mk_add(&three).unwrap_err();
        assert_eq!(three.exit_code(), 2);
        assert!(three.line().contains("--ip is given 3 times"), "{three}");
    }
}
