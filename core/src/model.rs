//! The records kept in etcd. A host's prefix, a tenant's CIDR and a segment's CIDR are never
//! stored: they are derived from the numbers here through [`crate::Layout`], so they cannot
//! disagree with the layout.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use crate::names::{validate_name, NameError, MAX_NAME_LEN};
pub use crate::pod::Pod;

/// A host: a machine with an agent, owning the prefix of its index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    /// The host's own address on the fabric; other hosts route its prefix via this address.
    pub ip: IpAddr,
    /// The rack (leaf) the host is attached to; 0 when racks are not configured.
    #[serde(default)]
    pub rack: u32,
    /// The host index in the layout, stable for the life of the host.
    pub index: u32,
    /// Dual-stack: the host's fabric address of the other IP family, via which other hosts
    /// route its prefix of that family (Linux routes no IPv6 prefix via an IPv4 next hop).
    /// Not written when absent, so records of single-address hosts stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_ip: Option<IpAddr>,
}

impl Host {
    /// The host's fabric address of `addr`'s family (its ip or its second_ip), if it has one.
    pub fn ip_like(&self, addr: IpAddr) -> Option<IpAddr> {
        self.ips().find(|ip| same_family(*ip, addr))
    }

    /// Every fabric address of the host: `ip`, then `second_ip`.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        std::iter::once(self.ip).chain(self.second_ip)
    }
}

/// Whether `a` and `b` are of one IP family, an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
/// counting as IPv4, as [`crate::validate_host_ip`] reads it.
pub fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical().is_ipv4() == b.to_canonical().is_ipv4()
}

/// How a tenant is isolated when no Kubernetes NetworkPolicy selects an endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Only endpoints of the same tenant and segment talk (the Romana promise).
    #[default]
    Segment,
    /// The whole tenant talks; other tenants are dropped.
    Tenant,
    /// Open, as Kubernetes is for a namespace no policy selects.
    None,
}

/// A tenant (a Kubernetes namespace, a Neutron project).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    /// The tenant number in the layout.
    pub id: u32,
    #[serde(default)]
    pub isolation: Isolation,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A segment of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub tenant: String,
    pub name: String,
    /// The segment number in the layout, unique within the tenant.
    pub id: u32,
}

/// A named port of an endpoint (Kubernetes container ports), used by policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedPort {
    pub name: String,
    pub protocol: String,
    pub port: u16,
}

/// An endpoint holding one address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Caller-chosen id: container id plus interface name for CNI, port id for Neutron.
    pub id: String,
    pub address: IpAddr,
    pub host: String,
    pub tenant: String,
    pub segment: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<NamedPort>,
    /// The host-side interface when the caller names it (Nova's `tap` + the first 11
    /// characters of the port id); empty: the name derived from the id, `rmn` + hash, the
    /// CNI plugin's veth. See [`crate::interface`]. Not written when empty, so records
    /// of derived endpoints stay as they were.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// The Kubernetes pod, when the runtime named one ([`crate::pod`]). Not written when
    /// absent, so records of other endpoints stay as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
    /// Dual-stack: the endpoint's address in the second address space (the other family),
    /// with the same endpoint number as `address`. Not written when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_address: Option<IpAddr>,
}

impl Endpoint {
    /// Every address the endpoint holds: `address`, then the second family's.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        std::iter::once(self.address).chain(self.second_address)
    }

    /// Whether `addr` is one of the endpoint's addresses.
    pub fn holds(&self, addr: IpAddr) -> bool {
        self.addresses().any(|a| a == addr)
    }
}

/// A running service instance, registered under an etcd lease so that it disappears when the
/// process dies. Clients ask root-service for these instead of being configured with addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// `root`, `topology`, `tenant`, `ipam` or `policy`.
    pub kind: String,
    /// Unique per process (e.g. `hostname-pid`), so that replicas do not overwrite each other.
    pub instance: String,
    /// The gRPC URL clients should use, e.g. `http://127.0.0.1:9601`.
    pub url: String,
}

/// What a host's agent last applied, written by the agent after every apply that changed
/// it, so that operators (`romanactl host status`) and tests see an agent's view of its
/// kernel without logging into the host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub host: String,
    /// The last etcd revision whose state has been applied to the kernel.
    pub revision: i64,
    /// The etcd revision of the last policy change this apply included (0: no policy yet).
    #[serde(default)]
    pub policy_revision: i64,
    /// Our routes as read back from the kernel after the apply, e.g. `10.1.0.0/16 via 192.168.0.12`.
    pub routes: Vec<String>,
    /// Rules in the agent's nftables table.
    pub nft_rules: usize,
    pub nft_sets: usize,
    pub nft_elements: usize,
    /// True when reading the kernel back after the apply showed nothing left to do.
    pub converged: bool,
    /// Routes waiting for their endpoint interface to appear.
    #[serde(default)]
    pub blocked: Vec<String>,
    /// What the agent could not express and what the kernel refused, in words.
    #[serde(default)]
    pub problems: Vec<String>,
    /// Unix seconds of the apply (written by the agent; core itself never reads a clock).
    pub applied_at: u64,
    /// Unix seconds of the agent's last heartbeat: it rewrites its status at least every
    /// [`AgentStatus::HEARTBEAT_SECS`], so an old value means the agent is gone.
    #[serde(default)]
    pub alive_at: u64,
}

impl AgentStatus {
    /// How often a running agent rewrites its status.
    pub const HEARTBEAT_SECS: u64 = 10;
    /// Heartbeats missed before an agent counts as gone.
    pub const MISSED_HEARTBEATS: u64 = 3;

    /// Equal but for the times: no need to write it again (but for the heartbeat).
    pub fn same_as(&self, other: &AgentStatus) -> bool {
        let timeless = |s: &AgentStatus| AgentStatus {
            applied_at: 0,
            alive_at: 0,
            ..s.clone()
        };
        timeless(self) == timeless(other)
    }

    /// Whether the agent that wrote this is running and has applied all it knows, at Unix
    /// time `now` (by the same host's clock: the CNI plugin asks on the agent's host);
    /// otherwise why not, in words.
    pub fn ready(&self, now: u64) -> Result<(), String> {
        let silent = now.saturating_sub(self.alive_at);
        if silent > Self::HEARTBEAT_SECS * Self::MISSED_HEARTBEATS {
            return Err(format!(
                "the agent of host {} has not reported for {silent} s (it rewrites its status every {} s): is romana-agent running?",
                self.host,
                Self::HEARTBEAT_SECS
            ));
        }
        if !self.converged {
            return Err(format!(
                "the agent of host {} has not converged: {}",
                self.host,
                if self.problems.is_empty() {
                    "its last apply left work to do".to_string()
                } else {
                    self.problems.join("; ")
                }
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_host(second_ip: Option<&str>) -> Host {
        Host {
            name: "h1".into(),
            ip: "192.168.0.1".parse().unwrap(),
            rack: 0,
            index: 3,
            second_ip: second_ip.map(|ip| ip.parse().unwrap()),
        }
    }

    #[test]
    fn a_host_has_a_fabric_address_of_each_family_it_was_given() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let dual = mk_host(Some("fd00:ff::1"));
        assert_eq!(
            dual.ips().collect::<Vec<_>>(),
            [ip("192.168.0.1"), ip("fd00:ff::1")]
        );
        assert_eq!(dual.ip_like(ip("10.3.82.7")), Some(ip("192.168.0.1")));
        assert_eq!(dual.ip_like(ip("fd00:10:0:352::7")), Some(ip("fd00:ff::1")));
        let single = mk_host(None);
        assert_eq!(single.ips().collect::<Vec<_>>(), [ip("192.168.0.1")]);
        assert_eq!(single.ip_like(ip("fd00:10:0:352::7")), None);
        assert_eq!(single.ip_like(ip("10.0.0.1")), Some(ip("192.168.0.1")));
        // An IPv4-mapped address is IPv4: no IPv6 next hop.
        assert_eq!(
            mk_host(Some("::ffff:192.168.0.2")).ip_like(ip("fd00::7")),
            None
        );
    }

    #[test]
    fn a_host_record_without_a_second_ip_reads_and_writes_as_before() {
        let old = r#"{"name":"h1","ip":"192.168.0.1","rack":0,"index":3}"#;
        let host: Host = serde_json::from_str(old).unwrap();
        assert_eq!(host, mk_host(None));
        assert_eq!(serde_json::to_string(&host).unwrap(), old);
        let dual = mk_host(Some("fd00:ff::1"));
        let text = serde_json::to_string(&dual).unwrap();
        assert_eq!(
            text,
            r#"{"name":"h1","ip":"192.168.0.1","rack":0,"index":3,"second_ip":"fd00:ff::1"}"#
        );
        assert_eq!(serde_json::from_str::<Host>(&text).unwrap(), dual);
    }

    #[test]
    fn isolation_is_lowercase_in_json_and_defaults_to_segment() {
        let t: Tenant = serde_json::from_str(r#"{"name":"t","id":1}"#).unwrap();
        assert_eq!(t.isolation, Isolation::Segment);
        assert_eq!(
            serde_json::to_string(&Isolation::None).unwrap(),
            r#""none""#
        );
    }

    #[test]
    fn an_agent_is_ready_while_it_beats_and_has_converged() {
        let st = AgentStatus {
            host: "h1".into(),
            converged: true,
            alive_at: 1_000,
            ..AgentStatus::default()
        };
        assert_eq!(st.ready(1_000), Ok(()));
        assert_eq!(st.ready(1_030), Ok(()));
        assert!(st
            .ready(1_031)
            .unwrap_err()
            .contains("has not reported for 31 s"));
        let busy = AgentStatus {
            converged: false,
            problems: vec!["kernel refused".into()],
            ..st.clone()
        };
        assert!(busy.ready(1_000).unwrap_err().contains("kernel refused"));
        // A record from before heartbeats (alive_at 0) is an agent gone.
        let old: AgentStatus = serde_json::from_str(
            r#"{"host":"h1","revision":1,"routes":[],"nft_rules":0,"nft_sets":0,"nft_elements":0,"converged":true,"applied_at":5}"#,
        )
        .unwrap();
        assert!(old.ready(1_000).is_err());
        assert!(st.same_as(&AgentStatus {
            alive_at: 7,
            applied_at: 9,
            ..st.clone()
        }));
    }
}
