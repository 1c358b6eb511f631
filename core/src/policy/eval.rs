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
//! - Dual-stack: an endpoint is the same endpoint at either of its addresses, so selection,
//!   pod and namespace selectors and Romana targets by name hold in both families; a CIDR
//!   (ipBlock, a Romana `cidr` peer) matches the packet's address of its own family only,
//!   and isolation compares the packet's two addresses in the space of their family.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::{Direction, NetworkPolicy, PolicyId, PolicySet, Protocol};
use crate::{Endpoint, Isolation};
mod matchers;
mod view;

pub use matchers::{applies_to, k8s_peer_matches, selects};
pub use view::{address_owners, ClusterView, End, ResolveError};

use matchers::{k8s_port_matches, romana_peer_matches, romana_rule_matches};

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

#[cfg(test)]
mod tests;
