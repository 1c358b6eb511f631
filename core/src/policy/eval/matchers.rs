//! Whether one policy part matches: selection, peers and ports of both forms.

use std::net::IpAddr;

use super::{ClusterView, Packet};
use crate::policy::k8s::{self, IntOrString, LabelSelector};
use crate::policy::romana::{self, Target, PEER_ANY, PEER_HOST};
use crate::policy::{Direction, NetworkPolicy, Protocol};
use crate::Endpoint;

/// Whether `p` selects `me` for `direction`.
pub fn selects(p: &NetworkPolicy, direction: Direction, me: &Endpoint) -> bool {
    let wanted = match direction {
        Direction::Ingress => k8s::POLICY_TYPE_INGRESS,
        Direction::Egress => k8s::POLICY_TYPE_EGRESS,
    };
    p.namespace() == me.tenant && p.has_type(wanted) && p.spec.pod_selector.matches(&me.labels)
}

pub fn k8s_peer_matches(
    peer: &k8s::Peer,
    namespace: &str,
    view: &ClusterView,
    addr: IpAddr,
    endpoint: Option<&Endpoint>,
) -> bool {
    if let Some(block) = &peer.ip_block {
        let Some(cidr) = k8s::parse_cidr(&block.cidr) else {
            return false;
        };
        return cidr.contains(&addr)
            && !block
                .except
                .iter()
                .flatten()
                .filter_map(|e| k8s::parse_cidr(e))
                .any(|e| e.contains(&addr));
    }
    let Some(ep) = endpoint else {
        return false;
    };
    let namespace_ok = match &peer.namespace_selector {
        Some(sel) => sel.matches(&view.tenant_labels(&ep.tenant)),
        None => ep.tenant == namespace,
    };
    namespace_ok
        && peer
            .pod_selector
            .as_ref()
            .is_none_or(|sel: &LabelSelector| sel.matches(&ep.labels))
}

pub(super) fn k8s_port_matches(
    port: &k8s::Port,
    packet: &Packet,
    destination: Option<&Endpoint>,
) -> bool {
    let protocol = port
        .protocol
        .as_deref()
        .map_or(Some(Protocol::Tcp), Protocol::from_k8s);
    if protocol != Some(packet.protocol) {
        return false;
    }
    match &port.port {
        None => true,
        Some(IntOrString::Int(n)) => {
            let end = port.end_port.unwrap_or(*n);
            packet
                .port
                .is_some_and(|p| (*n..=end).contains(&i64::from(p)))
        }
        Some(IntOrString::Str(name)) => destination.is_some_and(|d| {
            d.ports.iter().any(|np| {
                &np.name == name
                    && np.protocol.eq_ignore_ascii_case(packet.protocol.as_str())
                    && Some(np.port) == packet.port
            })
        }),
    }
}

/// Whether a Romana policy's `applied_to` entry covers endpoint `me`. Public so that the
/// agent's compiler selects exactly as evaluation does.
pub fn applies_to(t: &Target, view: &ClusterView, me: &Endpoint) -> bool {
    if let Some(id) = &t.endpoint {
        return *id == me.id;
    }
    if let Some(cidr) = &t.cidr {
        // The endpoint is applied to as a whole, by either of its addresses.
        return k8s::parse_cidr(cidr).is_some_and(|c| me.addresses().any(|a| c.contains(&a)));
    }
    match (&t.tenant, &t.segment) {
        (Some(tenant), Some(segment)) => view.segment_contains(tenant, segment, me.address),
        (Some(tenant), None) => view.tenant_contains(tenant, me.address),
        _ => false,
    }
}

pub(super) fn romana_peer_matches(
    t: &Target,
    view: &ClusterView,
    me: &Endpoint,
    peer: IpAddr,
) -> bool {
    match t.peer.as_deref() {
        Some(PEER_ANY) => return true,
        Some(PEER_HOST) => return view.is_host_of(peer, &me.host),
        Some(_) => return false,
        None => {}
    }
    if let Some(cidr) = &t.cidr {
        return k8s::parse_cidr(cidr).is_some_and(|c| c.contains(&peer));
    }
    match (&t.tenant, &t.segment) {
        (Some(tenant), Some(segment)) => view.segment_contains(tenant, segment, peer),
        (Some(tenant), None) => view.tenant_contains(tenant, peer),
        _ => false,
    }
}

pub(super) fn romana_rule_matches(r: &romana::Rule, packet: &Packet) -> bool {
    let protocol = r.protocol.to_ascii_lowercase();
    if protocol == "any" {
        return true;
    }
    if protocol != packet.protocol.as_str() {
        return false;
    }
    if packet.protocol == Protocol::Icmp {
        return match r.icmp_type {
            None => true,
            Some(t) => {
                packet.icmp_type.map(i64::from) == Some(t)
                    && r.icmp_code
                        .is_none_or(|c| packet.icmp_code.map(i64::from) == Some(c))
            }
        };
    }
    if r.ports.is_empty() && r.port_ranges.is_empty() {
        return true;
    }
    let Some(port) = packet.port.map(i64::from) else {
        return false;
    };
    r.ports.contains(&port)
        || r.port_ranges
            .iter()
            .any(|[lo, hi]| (*lo..=*hi).contains(&port))
}
