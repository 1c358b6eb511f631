//! The rules of one Romana policy: behind the set of the local endpoints it applies to,
//! its peers times its rules, each `return`.

use romana_core::policy::eval::applies_to;
use romana_core::policy::k8s;
use romana_core::policy::romana::{self, Target, PEER_ANY, PEER_HOST};
use romana_core::policy::Protocol;

use super::{family_of_net, proto_number, Alt, Compiler};
use crate::nft::{Atom, Match, Part, Rule, SetElement, SetKey, Side, Verdict};

impl Compiler<'_> {
    /// The rules of Romana policy number `n` (in policy order), behind `@rpN`.
    pub(super) fn romana_policy(
        &mut self,
        n: usize,
        p: &romana::RomanaPolicy,
        me: Side,
        peer: Side,
    ) -> Vec<Rule> {
        let elements = self
            .local
            .iter()
            .filter(|e| p.applied_to.iter().any(|t| applies_to(t, self.view, e)))
            .map(|e| SetElement::Addr(e.address))
            .collect();
        let name = self.name(&format!("rp{n}"));
        self.add_set(&name, SetKey::Addr(self.family), elements);
        let applied = Match::InSet(vec![self.addr(me, None)], name);
        let peer_alts: Vec<Alt> = p
            .peers
            .iter()
            .flat_map(|t| self.romana_peer(t, peer))
            .collect();
        let rule_alts: Vec<Alt> = p.rules.iter().filter_map(|r| self.romana_rule(r)).collect();
        let mut out = Vec::new();
        for a in &peer_alts {
            for b in &rule_alts {
                let mut matches = vec![applied.clone()];
                matches.extend(a.iter().chain(b).cloned());
                out.push(Rule::new(matches, Verdict::Return));
            }
        }
        out
    }

    pub(super) fn romana_peer(&self, t: &Target, side: Side) -> Vec<Alt> {
        match t.peer.as_deref() {
            Some(PEER_ANY) => return vec![Vec::new()],
            // Own-host traffic never crosses the forward hook, and is always allowed.
            Some(PEER_HOST) => return Vec::new(),
            Some(_) => return Vec::new(),
            None => {}
        }
        if let Some(cidr) = &t.cidr {
            return match k8s::parse_cidr(cidr) {
                Some(c) if family_of_net(&c) == self.family => {
                    vec![vec![Match::Eq(self.addr(side, None), Atom::Net(c))]]
                }
                _ => Vec::new(),
            };
        }
        let Some(tenant) = t.tenant.as_ref().and_then(|n| self.state.tenants.get(n)) else {
            return Vec::new();
        };
        let m = match &t.segment {
            Some(segment) => self
                .state
                .segments
                .get(&(tenant.name.clone(), segment.clone()))
                .and_then(|s| self.layout.segment_match(tenant.id, s.id).ok()),
            None => self.layout.tenant_match(tenant.id).ok(),
        };
        match m {
            Some(m) => vec![vec![Match::Eq(
                self.addr(side, Some(m.mask)),
                Atom::Addr(m.value),
            )]],
            None => Vec::new(),
        }
    }

    /// The matches of one Romana rule; `None` when it can never match.
    pub(super) fn romana_rule(&self, r: &romana::Rule) -> Option<Alt> {
        let protocol = r.protocol.to_ascii_lowercase();
        if protocol == "any" {
            return Some(Vec::new());
        }
        let protocol: Protocol = protocol.parse().ok()?;
        let proto = proto_number(protocol, self.family);
        if protocol == Protocol::Icmp {
            let Some(t) = r.icmp_type else {
                return Some(vec![Match::Eq(Part::L4proto, Atom::Proto(proto))]);
            };
            let mut alt = vec![Match::Eq(
                Part::IcmpType(self.family),
                Atom::Num(u8::try_from(t).ok()?),
            )];
            if let Some(c) = r.icmp_code {
                alt.push(Match::Eq(
                    Part::IcmpCode(self.family),
                    Atom::Num(u8::try_from(c).ok()?),
                ));
            }
            return Some(alt);
        }
        if r.ports.is_empty() && r.port_ranges.is_empty() {
            return Some(vec![Match::Eq(Part::L4proto, Atom::Proto(proto))]);
        }
        let in_range = |n: i64| (0..=65535).contains(&n);
        let mut ranges: Vec<(u8, u16, u16)> = r
            .ports
            .iter()
            .filter(|n| in_range(**n))
            .map(|n| (proto, *n as u16, *n as u16))
            .collect();
        for [lo, hi] in &r.port_ranges {
            let (lo, hi) = ((*lo).max(0), (*hi).min(65535));
            if lo <= hi {
                ranges.push((proto, lo as u16, hi as u16));
            }
        }
        if ranges.is_empty() {
            return None;
        }
        Some(vec![self.port_ranges(ranges)])
    }
}
