//! The two-tier evaluation of one packet (see [the module docs](super)). This is the
//! meaning of policy: `romanactl policy explain` answers with it, and the agent's compiled
//! nftables program is tested against it.
//!
//! Addresses decide, as in the dataplane: an address is an endpoint's when an endpoint holds
//! it, a host's own when it is the host's fabric address or a segment gateway on that host
//! (endpoint number 1 of a segment under the host's prefix), and "in tenant T" or "in segment
//! T/S" when the cluster-wide masked match of [`Layout::tenant_match`] /
//! [`Layout::segment_match`] says so, exactly as the agent's sets match.
//!
//! What has bitten us:
//! - A NetworkPolicy that selects an endpoint takes the whole direction away from the
//!   baseline: an `Ingress` policy with no rules isolates even from the endpoint's own
//!   segment, and Romana allows no longer apply to that direction.
//! - Pod and namespace selectors only ever match endpoints; an outside address is matched
//!   by `ipBlock` alone, which also matches endpoints' addresses.
//! - A named port is resolved on the destination endpoint in both directions; toward an
//!   address that is no endpoint it matches nothing.
//! - A rule with ports never matches ICMP, nor a TCP/UDP/SCTP packet whose port is unknown.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::k8s::{self, IntOrString, LabelSelector, NAMESPACE_NAME_LABEL};
use super::romana::{self, Target, PEER_ANY, PEER_HOST};
use super::{Direction, NetworkPolicy, PolicyId, PolicySet, Protocol};
use crate::{Endpoint, Host, Isolation, Layout, Segment, Tenant};

/// What evaluation needs to know of the cluster, indexed for lookups by name and address.
#[derive(Clone, Debug)]
pub struct ClusterView {
    layout: Layout,
    hosts: BTreeMap<String, Host>,
    host_by_index: BTreeMap<u32, String>,
    tenants: BTreeMap<String, Tenant>,
    segments: BTreeMap<(String, String), Segment>,
    endpoints: BTreeMap<String, Endpoint>,
    by_address: BTreeMap<IpAddr, String>,
}

/// One packet opening a connection (established and related packets are always allowed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    pub from: IpAddr,
    pub to: IpAddr,
    pub protocol: Protocol,
    /// The destination port (TCP, UDP, SCTP); `None` matches only rules without ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

/// Which tier decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Kubernetes NetworkPolicies selecting the endpoint for the direction.
    NetworkPolicy,
    /// Tenant isolation plus Romana-form allows.
    Baseline,
    /// Endpoint <-> its own host, always allowed.
    Host,
}

/// The decision for one direction of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub direction: Direction,
    /// The endpoint whose direction this is.
    pub endpoint: String,
    pub verdict: Verdict,
    pub tier: Tier,
    /// The policy whose rule allowed it (`TENANT/NAME` or a Romana `NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The index of that rule in the policy's `ingress`/`egress`/`rules` list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    /// NetworkPolicies selecting the endpoint for this direction (tier `network_policy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selected_by: Vec<String>,
    pub reason: String,
}

/// The decision for a packet: the deciding step's tier, policy and rule, and each checked
/// direction in full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub tier: Tier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
    pub reason: String,
    /// The source endpoint's egress; `None` when the source is no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Step>,
    /// The destination endpoint's ingress; `None` when the destination is no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Step>,
}

// === impl ClusterView ===

impl ClusterView {
    pub fn new(
        layout: Layout,
        hosts: impl IntoIterator<Item = Host>,
        tenants: impl IntoIterator<Item = Tenant>,
        segments: impl IntoIterator<Item = Segment>,
        endpoints: impl IntoIterator<Item = Endpoint>,
    ) -> ClusterView {
        let hosts: BTreeMap<String, Host> =
            hosts.into_iter().map(|h| (h.name.clone(), h)).collect();
        let host_by_index = hosts.values().map(|h| (h.index, h.name.clone())).collect();
        let endpoints: BTreeMap<String, Endpoint> =
            endpoints.into_iter().map(|e| (e.id.clone(), e)).collect();
        let by_address = endpoints
            .values()
            .map(|e| (e.address, e.id.clone()))
            .collect();
        ClusterView {
            layout,
            hosts,
            host_by_index,
            tenants: tenants.into_iter().map(|t| (t.name.clone(), t)).collect(),
            segments: segments
                .into_iter()
                .map(|s| ((s.tenant.clone(), s.name.clone()), s))
                .collect(),
            endpoints,
            by_address,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.get(id)
    }

    pub fn endpoint_at(&self, addr: IpAddr) -> Option<&Endpoint> {
        self.by_address
            .get(&addr)
            .and_then(|id| self.endpoints.get(id))
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }

    /// An endpoint id or an IP address, as `policy explain --from/--to` take them.
    pub fn resolve(&self, text: &str) -> Option<IpAddr> {
        if let Some(e) = self.endpoints.get(text) {
            return Some(e.address);
        }
        text.parse().ok()
    }

    /// Whether `addr` is host `host`'s own: its fabric address or a segment gateway under
    /// its prefix.
    pub fn is_host_of(&self, addr: IpAddr, host: &str) -> bool {
        let Some(h) = self.hosts.get(host) else {
            return false;
        };
        if h.ip == addr {
            return true;
        }
        self.layout
            .decode(addr)
            .is_some_and(|d| d.endpoint == 1 && d.host == h.index)
    }

    /// The host whose own address `addr` is, if any.
    pub fn host_at(&self, addr: IpAddr) -> Option<&Host> {
        if let Some(h) = self.hosts.values().find(|h| h.ip == addr) {
            return Some(h);
        }
        let d = self.layout.decode(addr).filter(|d| d.endpoint == 1)?;
        self.host_by_index
            .get(&d.host)
            .and_then(|n| self.hosts.get(n))
    }

    /// A tenant's labels for `namespaceSelector`, with `kubernetes.io/metadata.name` always
    /// set to its name, as Kubernetes sets it on every namespace.
    pub fn tenant_labels(&self, tenant: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .tenants
            .get(tenant)
            .map(|t| t.labels.clone())
            .unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), tenant.to_string());
        labels
    }

    fn tenant_contains(&self, tenant: &str, addr: IpAddr) -> bool {
        self.tenants
            .get(tenant)
            .and_then(|t| self.layout.tenant_match(t.id).ok())
            .is_some_and(|m| m.matches(addr))
    }

    fn segment_contains(&self, tenant: &str, segment: &str, addr: IpAddr) -> bool {
        let Some(t) = self.tenants.get(tenant) else {
            return false;
        };
        self.segments
            .get(&(tenant.to_string(), segment.to_string()))
            .and_then(|s| self.layout.segment_match(t.id, s.id).ok())
            .is_some_and(|m| m.matches(addr))
    }
}

// === evaluation ===

/// The decision for `packet` under `policies` in the cluster `view` (see the module docs).
pub fn evaluate(policies: &PolicySet, view: &ClusterView, packet: &Packet) -> Decision {
    let src = view.endpoint_at(packet.from);
    let dst = view.endpoint_at(packet.to);
    let at_own_host = dst
        .filter(|d| view.is_host_of(packet.from, &d.host))
        .or_else(|| src.filter(|s| view.is_host_of(packet.to, &s.host)));
    if let Some(e) = at_own_host {
        return Decision {
            verdict: Verdict::Allow,
            tier: Tier::Host,
            direction: None,
            policy: None,
            rule: None,
            reason: format!("endpoint {} and its own host {} always talk", e.id, e.host),
            egress: None,
            ingress: None,
        };
    }
    let egress = src.map(|s| decide(policies, view, Direction::Egress, s, packet.to, packet));
    let ingress = dst.map(|d| decide(policies, view, Direction::Ingress, d, packet.from, packet));
    let denied = egress
        .iter()
        .chain(ingress.iter())
        .find(|s| s.verdict == Verdict::Deny);
    // An allow is reported by its most specific step: one a policy decided, ingress first.
    let by_policy = ingress
        .iter()
        .chain(egress.iter())
        .find(|s| s.policy.is_some());
    let deciding = denied
        .or(by_policy)
        .or(ingress.as_ref())
        .or(egress.as_ref());
    let Some(step) = deciding.cloned() else {
        return Decision {
            verdict: Verdict::Allow,
            tier: Tier::Baseline,
            direction: None,
            policy: None,
            rule: None,
            reason: format!(
                "neither {} nor {} is an endpoint; romana does not filter this traffic",
                packet.from, packet.to
            ),
            egress,
            ingress,
        };
    };
    let reason = if step.verdict == Verdict::Deny {
        format!("{} of {}: {}", step.direction, step.endpoint, step.reason)
    } else {
        egress
            .iter()
            .chain(ingress.iter())
            .map(|s| format!("{} of {}: {}", s.direction, s.endpoint, s.reason))
            .collect::<Vec<_>>()
            .join("; ")
    };
    Decision {
        verdict: step.verdict,
        tier: step.tier,
        direction: Some(step.direction),
        policy: step.policy,
        rule: step.rule,
        reason,
        egress,
        ingress,
    }
}

/// One direction of endpoint `me`, with `peer` the address on the other side.
fn decide(
    policies: &PolicySet,
    view: &ClusterView,
    direction: Direction,
    me: &Endpoint,
    peer: IpAddr,
    packet: &Packet,
) -> Step {
    let step = |verdict, tier, policy: Option<String>, rule, reason: String| Step {
        direction,
        endpoint: me.id.clone(),
        verdict,
        tier,
        policy,
        rule,
        selected_by: Vec::new(),
        reason,
    };
    let peer_ep = view.endpoint_at(peer);
    // Named ports live on the destination: me for ingress, the peer for egress.
    let destination = match direction {
        Direction::Ingress => Some(me),
        Direction::Egress => peer_ep,
    };

    // --- NetworkPolicy tier ---
    let selecting: Vec<(&PolicyId, &NetworkPolicy)> = policies
        .kubernetes()
        .filter(|(_, p)| selects(p, direction, me))
        .collect();
    if !selecting.is_empty() {
        for (id, p) in &selecting {
            for (i, (peers, ports)) in p.rules(direction).enumerate() {
                let peers_ok = peers.is_empty()
                    || peers
                        .iter()
                        .any(|q| k8s_peer_matches(q, p.namespace(), view, peer, peer_ep));
                let ports_ok = ports.is_empty()
                    || ports
                        .iter()
                        .any(|port| k8s_port_matches(port, packet, destination));
                if peers_ok && ports_ok {
                    return step(
                        Verdict::Allow,
                        Tier::NetworkPolicy,
                        Some(id.to_string()),
                        Some(i),
                        format!("allowed by NetworkPolicy {id} {direction} rule {i}"),
                    );
                }
            }
        }
        let ids: Vec<String> = selecting.iter().map(|(id, _)| id.to_string()).collect();
        let mut s = step(
            Verdict::Deny,
            Tier::NetworkPolicy,
            None,
            None,
            format!(
                "selected for {direction} by NetworkPolicy {}; no rule of theirs allows it",
                ids.join(", ")
            ),
        );
        s.selected_by = ids;
        return s;
    }

    // --- Baseline tier: isolation mode ---
    let isolation = view
        .tenant(&me.tenant)
        .map(|t| t.isolation)
        .unwrap_or_default();
    let by_mode = match isolation {
        Isolation::None => Some(format!("tenant {} has isolation none (open)", me.tenant)),
        Isolation::Tenant => view
            .tenant_contains(&me.tenant, peer)
            .then(|| format!("same tenant {} (isolation tenant)", me.tenant)),
        Isolation::Segment => view
            .segment_contains(&me.tenant, &me.segment, peer)
            .then(|| {
                format!(
                    "same segment {}/{} (isolation segment)",
                    me.tenant, me.segment
                )
            }),
    };
    if let Some(reason) = by_mode {
        return step(Verdict::Allow, Tier::Baseline, None, None, reason);
    }

    // --- Baseline tier: Romana-form allows ---
    for (id, p) in policies.romana() {
        if p.direction != direction || !p.applied_to.iter().any(|t| applies_to(t, view, me)) {
            continue;
        }
        if !p
            .peers
            .iter()
            .any(|t| romana_peer_matches(t, view, me, peer))
        {
            continue;
        }
        if let Some(i) = p.rules.iter().position(|r| romana_rule_matches(r, packet)) {
            return step(
                Verdict::Allow,
                Tier::Baseline,
                Some(id.to_string()),
                Some(i),
                format!("allowed by policy {id} rule {i} (baseline)"),
            );
        }
    }
    let scope = match isolation {
        Isolation::Segment => format!("segment {}/{}", me.tenant, me.segment),
        _ => format!("tenant {}", me.tenant),
    };
    let isolation = match isolation {
        Isolation::Segment => "segment",
        Isolation::Tenant => "tenant",
        Isolation::None => "none",
    };
    step(
        Verdict::Deny,
        Tier::Baseline,
        None,
        None,
        format!(
            "tenant {} has isolation {isolation}: {peer} is not in {scope} and no Romana \
             policy allows it",
            me.tenant
        ),
    )
}

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

fn k8s_port_matches(port: &k8s::Port, packet: &Packet, destination: Option<&Endpoint>) -> bool {
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
        return k8s::parse_cidr(cidr).is_some_and(|c| c.contains(&me.address));
    }
    match (&t.tenant, &t.segment) {
        (Some(tenant), Some(segment)) => view.segment_contains(tenant, segment, me.address),
        (Some(tenant), None) => view.tenant_contains(tenant, me.address),
        _ => false,
    }
}

fn romana_peer_matches(t: &Target, view: &ClusterView, me: &Endpoint, peer: IpAddr) -> bool {
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

fn romana_rule_matches(r: &romana::Rule, packet: &Packet) -> bool {
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

#[cfg(test)]
mod tests;
