//! The rules of one NetworkPolicy in one direction: each rule is its peer alternatives
//! times its port alternatives, each `return` when it allows.

use ipnet::IpNet;
use romana_core::policy::k8s::{self, IntOrString};
use romana_core::policy::{Direction, NetworkPolicy, Protocol};

use super::{family_of_net, proto_number, Alt, Compiler};
use crate::nft::{Atom, Match, Part, Rule, SetKey, Side, Verdict};
use crate::recipe::Recipe;

impl Compiler<'_> {
    /// The rules of NetworkPolicy `i` for `direction`, each `return` when it allows.
    pub(super) fn network_policy(
        &mut self,
        i: usize,
        p: &NetworkPolicy,
        direction: Direction,
        tag: &str,
        peer: Side,
    ) -> Vec<Rule> {
        let mut out = Vec::new();
        for (r, (peers, ports)) in p.rules(direction).enumerate() {
            let prefix = self.name(&format!("np{i}_{tag}{r}"));
            let peer_alts = self.k8s_peers(&prefix, p, peers, peer);
            let port_alts = self.k8s_ports(&prefix, ports);
            for a in &peer_alts {
                for b in &port_alts {
                    out.push(Rule::new(
                        a.iter().chain(b).cloned().collect(),
                        Verdict::Return,
                    ));
                }
            }
        }
        out
    }

    pub(super) fn k8s_peers(
        &mut self,
        prefix: &str,
        p: &NetworkPolicy,
        peers: &[k8s::Peer],
        side: Side,
    ) -> Vec<Alt> {
        if peers.is_empty() {
            return vec![Vec::new()];
        }
        let mut alts = Vec::new();
        let selectors: Vec<k8s::Peer> = peers
            .iter()
            .filter(|q| q.ip_block.is_none())
            .cloned()
            .collect();
        if !selectors.is_empty() {
            let name = format!("{prefix}_peers");
            let recipe = Recipe::Peers {
                namespace: p.namespace().to_string(),
                selectors,
            };
            self.add_recipe_set(&name, SetKey::Addr(self.family), recipe);
            alts.push(vec![Match::InSet(vec![self.addr(side, None)], name)]);
        }
        let mut nets = Vec::new();
        for block in peers.iter().filter_map(|q| q.ip_block.as_ref()) {
            let Some(cidr) = k8s::parse_cidr(&block.cidr) else {
                continue;
            };
            if family_of_net(&cidr) != self.family {
                continue;
            }
            let excepts: Vec<IpNet> = block
                .except
                .iter()
                .flatten()
                .filter_map(|e| k8s::parse_cidr(e))
                .filter(|e| family_of_net(e) == self.family)
                .collect();
            subtract(cidr, &excepts, &mut nets);
        }
        if !nets.is_empty() {
            let nets = IpNet::aggregate(&nets);
            alts.push(vec![Match::InAnon(
                vec![self.addr(side, None)],
                nets.into_iter().map(|n| vec![Atom::Net(n)]).collect(),
            )]);
        }
        alts
    }

    pub(super) fn k8s_ports(&mut self, prefix: &str, ports: &[k8s::Port]) -> Vec<Alt> {
        if ports.is_empty() {
            return vec![Vec::new()];
        }
        let mut ranges = Vec::new();
        let mut named: Vec<(&str, Protocol)> = Vec::new();
        for port in ports {
            let Some(protocol) = port
                .protocol
                .as_deref()
                .map_or(Some(Protocol::Tcp), Protocol::from_k8s)
            else {
                continue;
            };
            let proto = proto_number(protocol, self.family);
            match &port.port {
                None => ranges.push((proto, 0, 65535)),
                Some(IntOrString::Int(n)) => {
                    let (lo, hi) = (*n, port.end_port.unwrap_or(*n));
                    let (lo, hi) = (lo.max(0), hi.min(65535));
                    if lo <= hi {
                        ranges.push((proto, lo as u16, hi as u16));
                    }
                }
                Some(IntOrString::Str(name)) => named.push((name, protocol)),
            }
        }
        let mut alts = Vec::new();
        if !ranges.is_empty() {
            alts.push(vec![self.port_ranges(ranges)]);
        }
        if !named.is_empty() {
            // Resolved on the destination endpoint, which is the daddr in both directions.
            let named = named
                .into_iter()
                .map(|(name, protocol)| (name.to_string(), protocol))
                .collect();
            let name = format!("{prefix}_ports");
            self.add_recipe_set(
                &name,
                SetKey::AddrProtoPort(self.family),
                Recipe::Ports { named },
            );
            alts.push(vec![Match::InSet(
                vec![self.addr(Side::Dst, None), Part::L4proto, Part::Dport],
                name,
            )]);
        }
        alts
    }

    /// `meta l4proto . th dport { ... }` of merged, non-overlapping ranges.
    pub(super) fn port_ranges(&self, mut ranges: Vec<(u8, u16, u16)>) -> Match {
        ranges.sort();
        let mut merged: Vec<(u8, u16, u16)> = Vec::new();
        for (p, lo, hi) in ranges {
            match merged.last_mut() {
                Some((lp, _, lhi)) if *lp == p && u32::from(lo) <= u32::from(*lhi) + 1 => {
                    *lhi = (*lhi).max(hi);
                }
                _ => merged.push((p, lo, hi)),
            }
        }
        Match::InAnon(
            vec![Part::L4proto, Part::Dport],
            merged
                .into_iter()
                .map(|(p, lo, hi)| {
                    let port = if lo == hi {
                        Atom::Port(lo)
                    } else {
                        Atom::PortRange(lo, hi)
                    };
                    vec![Atom::Proto(p), port]
                })
                .collect(),
        )
    }
}

/// `net` minus every `except`, as CIDRs appended to `out`.
pub(super) fn subtract(net: IpNet, excepts: &[IpNet], out: &mut Vec<IpNet>) {
    if excepts.iter().any(|e| e.contains(&net)) {
        return;
    }
    if !excepts.iter().any(|e| net.contains(e)) {
        out.push(net);
        return;
    }
    match net.subnets(net.prefix_len() + 1) {
        Ok(halves) => {
            for half in halves {
                subtract(half, excepts, out);
            }
        }
        Err(_) => out.push(net),
    }
}
