//! `from_endpoint`, `to_endpoint` and quarantine: before any tier, the packet's interface
//! vouches for its address, and tenants with an unreadable record pass nothing.

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use ipnet::IpNet;

use super::Compiler;
use crate::ifname::host_interface;
use crate::nft::{
    Atom, Family, Match, Part, Rule, SetElement, SetKey, Side, Verdict, SET_ENDPOINTS,
    SET_QUARANTINE,
};

impl Compiler<'_> {
    /// This family's rule of `from_endpoint` (from prerouting, for every packet entering
    /// through an endpoint interface): the source must be that endpoint's own address. An
    /// interface the agent does not know (an endpoint being set up, or one whose record is
    /// gone) has no element, so all its traffic is dropped by the chain's end.
    pub(super) fn source_check(&self) -> Rule {
        Rule::new(
            vec![Match::InSet(
                vec![Part::Iifname, self.addr(Side::Src, None)],
                self.name(SET_ENDPOINTS),
            )],
            Verdict::Return,
        )
    }

    /// This family's rule of `to_endpoint` (first in forward, before established): a
    /// packet routed out of an endpoint interface must be for that endpoint's address of
    /// its family, and the interface must be one the agent has programmed.
    pub(super) fn destination_check(&mut self) -> Rule {
        let local: BTreeSet<SetElement> = self
            .local
            .iter()
            .filter_map(|e| Some(SetElement::IfAddr(host_interface(e).ok()?, e.address)))
            .collect();
        let name = self.name(SET_ENDPOINTS);
        self.add_set(&name, SetKey::IfAddr(self.family), local);
        Rule::new(
            vec![Match::InSet(
                vec![Part::Oifname, self.addr(Side::Dst, None)],
                name,
            )],
            Verdict::Return,
        )
    }

    /// Forward rules dropping everything from and to the local endpoints of tenants with a
    /// record this agent cannot read ([`ClusterState::quarantined_tenants`]): a
    /// NetworkPolicy it cannot read must not fall back to a more open baseline. Only while
    /// some endpoint is quarantined: every forwarded packet would pay for the two lookups
    /// (about 5% of a TCP stream, `romana-bench datapath`), and the program that starts a
    /// quarantine adds the rules in the same transaction as the set's elements.
    pub(super) fn quarantine(&mut self) -> Vec<Rule> {
        let tenants = self.state.quarantined_tenants();
        let elements: BTreeSet<SetElement> = self
            .local
            .iter()
            .filter(|e| tenants.contains(e.tenant.as_str()))
            .map(|e| SetElement::Addr(e.address))
            .collect();
        let name = self.name(SET_QUARANTINE);
        let none = elements.is_empty();
        self.add_set(&name, SetKey::Addr(self.family), elements);
        if none {
            return Vec::new();
        }
        vec![
            Rule::new(
                vec![
                    Match::FromEndpoint,
                    Match::InSet(vec![self.addr(Side::Src, None)], name.clone()),
                ],
                Verdict::Drop,
            ),
            Rule::new(
                vec![
                    Match::ToEndpoint,
                    Match::InSet(vec![self.addr(Side::Dst, None)], name),
                ],
                Verdict::Drop,
            ),
        ]
    }
}

/// The rules of `from_endpoint` after each family's own: IPv6 link-local sources and the
/// unspecified source of duplicate address detection towards multicast are let through for
/// neighbour discovery with the host (the kernel never forwards them); everything else
/// falls to the chain's final drop.
pub(super) fn neighbour_discovery() -> Vec<Rule> {
    let v6 = |side, atom| {
        Match::Eq(
            Part::Addr {
                family: Family::V6,
                side,
                mask: None,
            },
            atom,
        )
    };
    vec![
        Rule::new(
            vec![v6(Side::Src, Atom::Net(link_local()))],
            Verdict::Return,
        ),
        Rule::new(
            vec![
                v6(Side::Src, Atom::Addr(Ipv6Addr::UNSPECIFIED.into())),
                v6(Side::Dst, Atom::Net(multicast_v6())),
            ],
            Verdict::Return,
        ),
    ]
}

fn link_local() -> IpNet {
    "fe80::/10".parse().expect("a valid CIDR")
}

fn multicast_v6() -> IpNet {
    "ff02::/16".parse().expect("a valid CIDR")
}
