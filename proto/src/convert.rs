//! Conversions between the wire types and the core model. Parsing requests returns
//! [`Invalid`] naming the field, so a service can answer INVALID_ARGUMENT with a message a
//! person can act on.

use std::net::IpAddr;

use ipnet::IpNet;
use romana_core::fabric::Fabric;
use romana_core::text::quote;
use romana_core::{model, AgentStatus, ClusterConfig, Isolation, Layout};

use crate::pb;

/// A request field that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: &'static str,
    pub reason: String,
}

impl Invalid {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// Parses an IP address field.
pub fn parse_ip(field: &'static str, text: &str) -> Result<IpAddr, Invalid> {
    text.trim()
        .parse()
        .map_err(|_| Invalid::new(field, format!("{} is not an IP address", quote(text))))
}

/// Parses a CIDR field (not necessarily canonical; callers check where it matters).
pub fn parse_cidr(field: &'static str, text: &str) -> Result<IpNet, Invalid> {
    text.trim().parse().map_err(|_| {
        Invalid::new(
            field,
            format!(
                "{} is not a CIDR (expected e.g. 10.0.0.0/8 or fd00:10::/48)",
                quote(text)
            ),
        )
    })
}

fn narrow_bits(field: &'static str, bits: u32) -> Result<u8, Invalid> {
    u8::try_from(bits).map_err(|_| Invalid::new(field, format!("{bits} bits is too many")))
}

impl TryFrom<&pb::ClusterConfig> for ClusterConfig {
    type Error = Invalid;

    fn try_from(c: &pb::ClusterConfig) -> Result<Self, Invalid> {
        Ok(ClusterConfig {
            address_space: parse_cidr("address_space", &c.address_space)?,
            host_bits: narrow_bits("host_bits", c.host_bits)?,
            rack_bits: narrow_bits("rack_bits", c.rack_bits)?,
            tenant_bits: narrow_bits("tenant_bits", c.tenant_bits)?,
            segment_bits: narrow_bits("segment_bits", c.segment_bits)?,
            single_tenant: c.single_tenant,
            second_address_space: match c.second_address_space.trim() {
                "" => None,
                space => Some(parse_cidr("second_address_space", space)?),
            },
        })
    }
}

impl From<&ClusterConfig> for pb::ClusterConfig {
    fn from(c: &ClusterConfig) -> Self {
        pb::ClusterConfig {
            address_space: c.address_space.to_string(),
            host_bits: c.host_bits.into(),
            rack_bits: c.rack_bits.into(),
            tenant_bits: c.tenant_bits.into(),
            segment_bits: c.segment_bits.into(),
            single_tenant: c.single_tenant,
            endpoint_bits: c.endpoint_bits().into(),
            second_address_space: c
                .second_address_space
                .map(|s| s.to_string())
                .unwrap_or_default(),
            second_endpoint_bits: c.second_endpoint_bits().unwrap_or(0).into(),
        }
    }
}

/// The wire isolation mode as the model's; `None` for "unspecified".
pub fn isolation_from_pb(value: i32) -> Result<Option<Isolation>, Invalid> {
    match pb::Isolation::try_from(value) {
        Ok(pb::Isolation::Unspecified) => Ok(None),
        Ok(pb::Isolation::Segment) => Ok(Some(Isolation::Segment)),
        Ok(pb::Isolation::Tenant) => Ok(Some(Isolation::Tenant)),
        Ok(pb::Isolation::None) => Ok(Some(Isolation::None)),
        Err(_) => Err(Invalid::new(
            "isolation",
            format!("{value} is not an isolation mode"),
        )),
    }
}

impl From<Isolation> for pb::Isolation {
    fn from(i: Isolation) -> Self {
        match i {
            Isolation::Segment => pb::Isolation::Segment,
            Isolation::Tenant => pb::Isolation::Tenant,
            Isolation::None => pb::Isolation::None,
        }
    }
}

/// A host with its prefix, derived from its index in `layout`.
impl From<(&model::Host, &Layout)> for pb::Host {
    fn from((h, layout): (&model::Host, &Layout)) -> Self {
        pb::Host {
            name: h.name.clone(),
            ip: h.ip.to_string(),
            rack: h.rack,
            index: h.index,
            prefix: derived(layout.host_prefix(h.index)),
            second_ip: h.second_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        }
    }
}

/// A host back from the wire (the derived prefix is dropped); an empty `second_ip` is none.
impl TryFrom<&pb::Host> for model::Host {
    type Error = Invalid;

    fn try_from(h: &pb::Host) -> Result<Self, Invalid> {
        Ok(model::Host {
            name: h.name.clone(),
            ip: parse_ip("ip", &h.ip)?,
            rack: h.rack,
            index: h.index,
            second_ip: match h.second_ip.trim() {
                "" => None,
                _ => Some(parse_ip("second_ip", &h.second_ip)?),
            },
        })
    }
}

/// A tenant with its cluster-wide match, derived from its id in `layout`.
impl From<(&model::Tenant, &Layout)> for pb::Tenant {
    fn from((t, layout): (&model::Tenant, &Layout)) -> Self {
        pb::Tenant {
            name: t.name.clone(),
            id: t.id,
            isolation: pb::Isolation::from(t.isolation).into(),
            labels: t.labels.clone().into_iter().collect(),
            r#match: derived(layout.tenant_match(t.id)),
        }
    }
}

/// A segment of the tenant with id `tenant_id`, with its cluster-wide match.
impl From<(&model::Segment, u32, &Layout)> for pb::Segment {
    fn from((s, tenant_id, layout): (&model::Segment, u32, &Layout)) -> Self {
        pb::Segment {
            tenant: s.tenant.clone(),
            name: s.name.clone(),
            id: s.id,
            r#match: derived(layout.segment_match(tenant_id, s.id)),
        }
    }
}

/// An endpoint with its segment's CIDR and gateway, decoded from its (first) address in
/// that address's family.
impl From<(&model::Endpoint, &Layout)> for pb::Endpoint {
    fn from((e, layout): (&model::Endpoint, &Layout)) -> Self {
        let family = layout.family_of(e.address).unwrap_or(layout);
        let decoded = family.decode(e.address);
        pb::Endpoint {
            id: e.id.clone(),
            address: e.address.to_string(),
            host: e.host.clone(),
            tenant: e.tenant.clone(),
            segment: e.segment.clone(),
            labels: e.labels.clone().into_iter().collect(),
            ports: e.ports.iter().map(pb::NamedPort::from).collect(),
            segment_cidr: decoded
                .map(|d| derived(family.segment_cidr(d.host, d.tenant, d.segment)))
                .unwrap_or_default(),
            gateway: decoded
                .map(|d| derived(family.gateway(d.host, d.tenant, d.segment)))
                .unwrap_or_default(),
            interface: e.interface.clone(),
            pod: e.pod.as_ref().map(pb::Pod::from),
            addresses: e.addresses().map(|a| a.to_string()).collect(),
            gateways: e
                .addresses()
                .filter_map(|a| layout.gateway_of(a))
                .map(|g| g.to_string())
                .collect(),
        }
    }
}

impl pb::Endpoint {
    /// Every address, `address` first; a service from before dual-stack sends no list, and
    /// then `address` is all there is.
    pub fn all_addresses(&self) -> Vec<&str> {
        first_or_list(&self.address, &self.addresses)
    }

    /// The gateway of each of [`pb::Endpoint::all_addresses`], read the same way.
    pub fn all_gateways(&self) -> Vec<&str> {
        first_or_list(&self.gateway, &self.gateways)
    }
}

fn first_or_list<'a>(first: &'a str, list: &'a [String]) -> Vec<&'a str> {
    if list.is_empty() {
        vec![first]
    } else {
        list.iter().map(String::as_str).collect()
    }
}

impl From<&model::Pod> for pb::Pod {
    fn from(p: &model::Pod) -> Self {
        pb::Pod {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
            infra_container_id: p.infra_container_id.clone(),
        }
    }
}

/// A pod checked by Kubernetes' name rules (`romana_core::pod`).
impl TryFrom<&pb::Pod> for model::Pod {
    type Error = Invalid;

    fn try_from(p: &pb::Pod) -> Result<Self, Invalid> {
        let pod = model::Pod {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
            infra_container_id: p.infra_container_id.clone(),
        };
        romana_core::validate_pod(&pod).map_err(|e| Invalid::new("pod", e.to_string()))?;
        Ok(pod)
    }
}

impl From<&model::NamedPort> for pb::NamedPort {
    fn from(p: &model::NamedPort) -> Self {
        pb::NamedPort {
            name: p.name.clone(),
            protocol: p.protocol.clone(),
            port: p.port.into(),
        }
    }
}

impl TryFrom<&pb::NamedPort> for model::NamedPort {
    type Error = Invalid;

    fn try_from(p: &pb::NamedPort) -> Result<Self, Invalid> {
        let protocol = p.protocol.to_ascii_lowercase();
        if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
            return Err(Invalid::new(
                "ports",
                format!(
                    "port {}: protocol {} is not tcp, udp or sctp",
                    quote(&p.name),
                    quote(&p.protocol)
                ),
            ));
        }
        let port = u16::try_from(p.port)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                Invalid::new(
                    "ports",
                    format!("port {}: {} is not 1..=65535", quote(&p.name), p.port),
                )
            })?;
        Ok(model::NamedPort {
            name: p.name.clone(),
            protocol,
            port,
        })
    }
}

/// A host's status on the wire: `(host, status)`, `status` `None` when the host's agent has
/// not reported. The name is the host's, not the record's, so a record can never answer for
/// another host.
impl From<(&str, Option<&AgentStatus>)> for pb::HostStatus {
    fn from((host, status): (&str, Option<&AgentStatus>)) -> Self {
        let Some(status) = status else {
            return pb::HostStatus {
                host: host.to_string(),
                reported: false,
                ..Default::default()
            };
        };
        let AgentStatus {
            host: _,
            revision,
            policy_revision,
            routes,
            nft_rules,
            nft_sets,
            nft_elements,
            converged,
            blocked,
            problems,
            applied_at,
            alive_at,
        } = status;
        pb::HostStatus {
            host: host.to_string(),
            reported: true,
            revision: *revision,
            policy_revision: *policy_revision,
            converged: *converged,
            routes: routes.clone(),
            nft_rules: count(*nft_rules),
            nft_sets: count(*nft_sets),
            nft_elements: count(*nft_elements),
            blocked: blocked.clone(),
            problems: problems.clone(),
            applied_at: *applied_at,
            alive_at: *alive_at,
        }
    }
}

/// An agent whose heartbeat is older than this many seconds is gone (for clients that see
/// only the wire type).
pub const AGENT_SILENT_AFTER_SECS: u64 =
    AgentStatus::HEARTBEAT_SECS * AgentStatus::MISSED_HEARTBEATS;

/// The agent's record back from the wire; `None` when the agent has not reported.
pub fn agent_status_from_pb(pb: &pb::HostStatus) -> Option<AgentStatus> {
    pb.reported.then(|| AgentStatus {
        host: pb.host.clone(),
        revision: pb.revision,
        policy_revision: pb.policy_revision,
        routes: pb.routes.clone(),
        nft_rules: usize::try_from(pb.nft_rules).unwrap_or(usize::MAX),
        nft_sets: usize::try_from(pb.nft_sets).unwrap_or(usize::MAX),
        nft_elements: usize::try_from(pb.nft_elements).unwrap_or(usize::MAX),
        converged: pb.converged,
        blocked: pb.blocked.clone(),
        problems: pb.problems.clone(),
        applied_at: pb.applied_at,
        alive_at: pb.alive_at,
    })
}

impl From<&Fabric> for pb::Fabric {
    fn from(f: &Fabric) -> Self {
        pb::Fabric {
            leaves: f
                .leaves
                .iter()
                .map(|l| pb::Leaf {
                    rack: l.rack,
                    aggregate: l.aggregate.to_string(),
                    routes: l
                        .routes
                        .iter()
                        .map(|r| pb::LeafRoute {
                            prefix: r.prefix.to_string(),
                            via: r.via.to_string(),
                            host: r.host.clone(),
                        })
                        .collect(),
                })
                .collect(),
            spine: f
                .spine
                .iter()
                .map(|r| pb::SpineRoute {
                    prefix: r.prefix.to_string(),
                    rack: r.rack,
                })
                .collect(),
        }
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Derived fields come from numbers already validated against the layout; an error here
/// would mean a record disagrees with the layout, which we show rather than hide.
fn derived<T: ToString, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(v) => v.to_string(),
        Err(e) => format!("<{e}>"),
    }
}

mod policy;

#[cfg(test)]
mod tests;
