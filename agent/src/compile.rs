//! The policy compiler: (policies, endpoints, tenants, layout, this host) -> the nftables
//! program of this host ([`NftProgram`], an IR of chains, rules and named sets). Pure. The
//! meaning it must keep is [`romana_core::policy::evaluate`]: the test interpreter
//! ([`interp`]) runs the IR on packets and the property tests hold it to the evaluator.
//!
//! # Where each direction is enforced
//! Ingress of an endpoint is enforced on its host, where the packet leaves through the
//! endpoint's interface (`oifname { "rmn*", "tap*" }`: a veth or a VM's tap); egress on
//! its host, where the packet enters from that interface (`iifname`). Between two local
//! endpoints the packet passes both. Either way the endpoint a direction belongs to is
//! local, so "which endpoint" is one lookup of its address in a set or map of them.
//!
//! # Before any tier: the packet's interface vouches for its address
//! Every packet entering through an endpoint interface goes (prerouting, before conntrack)
//! through `from_endpoint`: its source must be the `ifname . addr` element of that
//! endpoint in `@endpoints`, else it is dropped. Every packet routed out of one goes
//! (first in forward) through `to_endpoint`: its destination must be that interface's
//! element. So egress identity taken from `saddr` is the endpoint's own, whatever it
//! puts on its eth0, and an interface the agent has not programmed yet (an endpoint
//! between CNI ADD and this host's agent catching up) passes nothing either way. Tenants
//! with a record the agent cannot read are dropped next (`@quarantine`).
//!
//! # The parts of one direction chain (`ingress`; `egress` swaps saddr and daddr)
//! 1. **Host tier**: needs no rule. Traffic between an endpoint and its own host uses
//!    the input and output hooks, never forward; a packet in forward that claims to be
//!    from this host's address is forged, and is judged like any other.
//! 2. **NetworkPolicy tier**: `ip daddr vmap @ingress_np` sends an endpoint that
//!    NetworkPolicies select to the chain of its *selection group* (the list of policies
//!    selecting it), by `goto`. The group chain holds the rules of those policies, each
//!    `return` when it matches, and ends in `drop`.
//! 3. **Baseline**: the isolation sets as before (masked `me . peer` pairs), then each
//!    Romana policy's rules behind `ip daddr @rpN` (the local endpoints it applies to),
//!    each `return`; then `drop`.
//!
//! Endpoints only ever appear as set or map elements: a selected endpoint is a map
//! element, a peer picked by a pod/namespace selector is an element of the rule's peers
//! set, a named port is an `addr . proto . port` element resolved on the destination
//! endpoint. So endpoint churn changes elements only, and the rule count grows with the
//! policies and the number of distinct selection groups, never with endpoints or hosts.
//! Policy-static values (CIDRs of `ipBlock` minus `except`, port numbers and ranges) are
//! anonymous interval sets inside the rules, merged first so no two intervals overlap
//! (nft 1.0.6 refuses overlaps).
//!
//! What has bitten us:
//! - `return` from a chain entered by `goto` goes back to the last `jump` (forward), which
//!   is what makes "a NetworkPolicy allowed egress" skip the egress baseline but still go
//!   on to the destination's ingress when both endpoints are local.
//! - Adding a map key that exists with another verdict fails the batch: element scripts
//!   delete before they add ([`crate::nft::render_elements`]).
//! - A rule with ports never matches ICMP; a NetworkPolicy rule without ports matches it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;
use romana_core::policy::eval::{applies_to, selects};
use romana_core::policy::k8s::{self, IntOrString};
use romana_core::policy::romana::{self, Target, PEER_ANY, PEER_HOST};
use romana_core::policy::{ClusterView, Direction, NetworkPolicy, Protocol};
use romana_core::{Endpoint, Isolation, Layout};

use crate::ifname::host_interface;
use crate::nft::{
    Atom, Chain, Family, Hook, Match, NftProgram, NftSet, Part, Rule, SetElement, SetKey, Side,
    Verdict, CHAIN_EGRESS, CHAIN_FROM_ENDPOINT, CHAIN_INGRESS, CHAIN_NAME, CHAIN_PREROUTING,
    CHAIN_TO_ENDPOINT, MAP_EGRESS, MAP_INGRESS, PROTO_SCTP, PROTO_TCP, PROTO_UDP, SET_ENDPOINTS,
    SET_OPEN_TENANT, SET_QUARANTINE, SET_SAME_SEGMENT, SET_SAME_TENANT,
};
use crate::recipe::{Recipe, Recipes};
use crate::state::ClusterState;

#[cfg(test)]
pub(crate) mod interp;

/// The program of host `host` for the cluster in `state` (see the module docs). Without a
/// layout (no config yet) there can be no endpoints: every packet from or to an endpoint
/// interface is dropped, so the table is still fail-closed.
pub fn compile(state: &ClusterState, layout: Option<&Layout>, host: &str) -> NftProgram {
    compile_with_recipes(state, layout, host).0
}

/// [`compile`], and how its endpoint-dependent sets were filled ([`crate::recipe`]).
pub fn compile_with_recipes(
    state: &ClusterState,
    layout: Option<&Layout>,
    host: &str,
) -> (NftProgram, Recipes) {
    let Some(layout) = layout else {
        let program = NftProgram {
            sets: BTreeMap::new(),
            chains: vec![
                base(
                    CHAIN_PREROUTING,
                    Hook::Prerouting,
                    vec![Rule::new(vec![Match::FromEndpoint], Verdict::Drop)],
                ),
                base(
                    CHAIN_NAME,
                    Hook::Forward,
                    vec![Rule::new(vec![Match::ToEndpoint], Verdict::Drop)],
                ),
            ],
        };
        return (program, Vec::new());
    };
    let mut c = Compiler::new(state, layout, host);
    let from_endpoint = c.source_check();
    let to_endpoint = c.destination_check();
    let quarantine = c.quarantine();
    let egress = c.direction(Direction::Egress);
    let ingress = c.direction(Direction::Ingress);
    let mut chains = std::mem::take(&mut c.group_chains);
    chains.extend([from_endpoint, to_endpoint, egress, ingress]);
    chains.push(base(
        CHAIN_PREROUTING,
        Hook::Prerouting,
        vec![Rule::new(
            vec![Match::FromEndpoint],
            Verdict::Jump(CHAIN_FROM_ENDPOINT.into()),
        )],
    ));
    let mut forward = vec![Rule::new(
        vec![Match::ToEndpoint],
        Verdict::Jump(CHAIN_TO_ENDPOINT.into()),
    )];
    forward.extend(quarantine);
    forward.extend([
        Rule::new(vec![Match::Established], Verdict::Accept),
        Rule::new(
            vec![Match::FromEndpoint],
            Verdict::Jump(CHAIN_EGRESS.into()),
        ),
        Rule::new(vec![Match::ToEndpoint], Verdict::Jump(CHAIN_INGRESS.into())),
    ]);
    chains.push(base(CHAIN_NAME, Hook::Forward, forward));
    let program = NftProgram {
        sets: c.sets,
        chains,
    };
    (program, c.recipes)
}

fn base(name: &str, hook: Hook, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.into(),
        hook: Some(hook),
        rules,
    }
}

struct Compiler<'a> {
    state: &'a ClusterState,
    layout: &'a Layout,
    family: Family,
    view: ClusterView,
    policies: romana_core::policy::PolicySet,
    /// Every endpoint of the cluster of the layout's family, by address (peers, ports).
    endpoints: Vec<&'a Endpoint>,
    /// The endpoints of this host: the ones whose directions are enforced here.
    local: Vec<&'a Endpoint>,
    sets: BTreeMap<String, NftSet>,
    recipes: Recipes,
    group_chains: Vec<Chain>,
}

/// One alternative of a rule's peer or port part: the matches that make it hold.
type Alt = Vec<Match>;

impl<'a> Compiler<'a> {
    fn new(state: &'a ClusterState, layout: &'a Layout, host: &'a str) -> Compiler<'a> {
        let family = Family::of(layout);
        let view = state.view(layout);
        // The endpoint an address means is the one the evaluator resolves it to.
        let endpoints: Vec<&Endpoint> = state
            .endpoints
            .values()
            .filter(|e| Family::of_addr(&e.address) == family)
            .filter(|e| view.endpoint_at(e.address).is_some_and(|v| v.id == e.id))
            .collect();
        let local = endpoints
            .iter()
            .copied()
            .filter(|e| e.host == host)
            .collect();
        let mut c = Compiler {
            state,
            layout,
            family,
            view,
            policies: state.policy_set(),
            endpoints,
            local,
            sets: BTreeMap::new(),
            recipes: Vec::new(),
            group_chains: Vec::new(),
        };
        c.isolation_sets();
        c
    }

    fn addr(&self, side: Side, mask: Option<IpAddr>) -> Part {
        Part::Addr {
            family: self.family,
            side,
            mask,
        }
    }

    fn isolation_sets(&mut self) {
        let (mut same_segment, mut same_tenant, mut open_tenant) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for tenant in self.state.tenants.values() {
            match tenant.isolation {
                Isolation::Segment => {
                    for segment in self
                        .state
                        .segments
                        .values()
                        .filter(|s| s.tenant == tenant.name)
                    {
                        if let Ok(m) = self.layout.segment_match(tenant.id, segment.id) {
                            same_segment.insert(SetElement::Pair(m.value, m.value));
                        }
                    }
                }
                Isolation::Tenant => {
                    if let Ok(m) = self.layout.tenant_match(tenant.id) {
                        same_tenant.insert(SetElement::Pair(m.value, m.value));
                    }
                }
                Isolation::None => {
                    if let Ok(m) = self.layout.tenant_match(tenant.id) {
                        open_tenant.insert(SetElement::Addr(m.value));
                    }
                }
            }
        }
        let pair = SetKey::AddrPair(self.family);
        self.add_set(SET_SAME_SEGMENT, pair, same_segment);
        self.add_set(SET_SAME_TENANT, pair, same_tenant);
        self.add_set(SET_OPEN_TENANT, SetKey::Addr(self.family), open_tenant);
    }

    fn add_set(&mut self, name: &str, key: SetKey, elements: BTreeSet<SetElement>) {
        self.sets.insert(name.into(), NftSet::new(key, elements));
    }

    /// A set filled with what `recipe` takes from every endpoint, the recipe kept for
    /// [`crate::incremental`].
    fn add_recipe_set(&mut self, name: &str, key: SetKey, recipe: Recipe) {
        let elements = self
            .endpoints
            .iter()
            .flat_map(|e| recipe.elements(e, &self.view, self.family))
            .collect();
        self.add_set(name, key, elements);
        self.recipes.push((name.to_string(), recipe));
    }

    /// The `ingress` or `egress` chain, with the group chains and sets it needs.
    fn direction(&mut self, direction: Direction) -> Chain {
        let (me, peer, chain, map, tag) = match direction {
            Direction::Ingress => (Side::Dst, Side::Src, CHAIN_INGRESS, MAP_INGRESS, "in"),
            Direction::Egress => (Side::Src, Side::Dst, CHAIN_EGRESS, MAP_EGRESS, "eg"),
        };
        let mut rules = Vec::new();
        // 1. NetworkPolicy tier: selection groups. (The host tier needs no rule: traffic
        // between an endpoint and its own host never reaches the forward hook.)
        let k8s: Vec<NetworkPolicy> = self.policies.kubernetes().map(|(_, p)| p.clone()).collect();
        let mut groups: BTreeMap<Vec<usize>, Vec<IpAddr>> = BTreeMap::new();
        for e in &self.local {
            let selecting: Vec<usize> = k8s
                .iter()
                .enumerate()
                .filter(|(_, p)| selects(p, direction, e))
                .map(|(i, _)| i)
                .collect();
            if !selecting.is_empty() {
                groups.entry(selecting).or_default().push(e.address);
            }
        }
        let mut compiled: BTreeMap<usize, Vec<Rule>> = BTreeMap::new();
        let mut elements = BTreeSet::new();
        for (g, (selecting, members)) in groups.iter().enumerate() {
            let name = format!("np_{tag}_{g}");
            let mut group_rules = Vec::new();
            for &i in selecting {
                let policy_rules = match compiled.get(&i) {
                    Some(r) => r.clone(),
                    None => {
                        let r = self.network_policy(i, &k8s[i], direction, tag, peer);
                        compiled.insert(i, r.clone());
                        r
                    }
                };
                group_rules.extend(policy_rules);
            }
            group_rules.push(Rule::new(Vec::new(), Verdict::Drop));
            self.group_chains.push(Chain {
                name: name.clone(),
                hook: None,
                rules: group_rules,
            });
            elements.extend(members.iter().map(|a| SetElement::Goto(*a, name.clone())));
        }
        self.add_set(map, SetKey::VerdictMap(self.family), elements);
        rules.push(Rule::new(
            Vec::new(),
            Verdict::Vmap(self.addr(me, None), map.into()),
        ));
        // 2. Baseline: isolation mode, decided by my tenant's elements.
        let seg = self.layout.segment_mask();
        let ten = self.layout.tenant_mask();
        for (mask, set) in [(seg, SET_SAME_SEGMENT), (ten, SET_SAME_TENANT)] {
            rules.push(Rule::new(
                vec![Match::InSet(
                    vec![self.addr(me, Some(mask)), self.addr(peer, Some(mask))],
                    set.into(),
                )],
                Verdict::Return,
            ));
        }
        rules.push(Rule::new(
            vec![Match::InSet(
                vec![self.addr(me, Some(ten))],
                SET_OPEN_TENANT.into(),
            )],
            Verdict::Return,
        ));
        // ... plus Romana-form allows.
        let romana: Vec<(usize, romana::RomanaPolicy)> = self
            .policies
            .romana()
            .enumerate()
            .filter(|(_, (_, p))| p.direction == direction)
            .map(|(n, (_, p))| (n, p.clone()))
            .collect();
        for (n, p) in &romana {
            rules.extend(self.romana_policy(*n, p, me, peer));
        }
        rules.push(Rule::new(Vec::new(), Verdict::Drop));
        Chain {
            name: chain.into(),
            hook: None,
            rules,
        }
    }

    /// `from_endpoint` (from prerouting, for every packet entering through an endpoint
    /// interface): the source must be that endpoint's own address. IPv6 link-local and
    /// the unspecified source of duplicate address detection towards multicast are let
    /// through for neighbour discovery with the host; the kernel never forwards them.
    /// An interface the agent does not know (an endpoint being set up, or one whose record
    /// is gone) has no element, so all its traffic is dropped.
    fn source_check(&self) -> Chain {
        let v6 = |side, atom| Match::Eq(self.v6_addr(side), atom);
        let rules = vec![
            Rule::new(
                vec![Match::InSet(
                    vec![Part::Iifname, self.addr(Side::Src, None)],
                    SET_ENDPOINTS.into(),
                )],
                Verdict::Return,
            ),
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
            Rule::new(Vec::new(), Verdict::Drop),
        ];
        Chain {
            name: CHAIN_FROM_ENDPOINT.into(),
            hook: None,
            rules,
        }
    }

    /// `to_endpoint` (first in forward, before established): a packet routed out of an
    /// endpoint interface must be for that endpoint's address, and the interface must be
    /// one the agent has programmed.
    fn destination_check(&mut self) -> Chain {
        let local: BTreeSet<SetElement> = self
            .local
            .iter()
            .filter_map(|e| Some(SetElement::IfAddr(host_interface(e).ok()?, e.address)))
            .collect();
        self.add_set(SET_ENDPOINTS, SetKey::IfAddr(self.family), local);
        Chain {
            name: CHAIN_TO_ENDPOINT.into(),
            hook: None,
            rules: vec![
                Rule::new(
                    vec![Match::InSet(
                        vec![Part::Oifname, self.addr(Side::Dst, None)],
                        SET_ENDPOINTS.into(),
                    )],
                    Verdict::Return,
                ),
                Rule::new(Vec::new(), Verdict::Drop),
            ],
        }
    }

    /// Forward rules dropping everything from and to the local endpoints of tenants with a
    /// record this agent cannot read ([`ClusterState::quarantined_tenants`]): a
    /// NetworkPolicy it cannot read must not fall back to a more open baseline.
    fn quarantine(&mut self) -> Vec<Rule> {
        let tenants = self.state.quarantined_tenants();
        let elements = self
            .local
            .iter()
            .filter(|e| tenants.contains(e.tenant.as_str()))
            .map(|e| SetElement::Addr(e.address))
            .collect();
        self.add_set(SET_QUARANTINE, SetKey::Addr(self.family), elements);
        vec![
            Rule::new(
                vec![
                    Match::FromEndpoint,
                    Match::InSet(vec![self.addr(Side::Src, None)], SET_QUARANTINE.into()),
                ],
                Verdict::Drop,
            ),
            Rule::new(
                vec![
                    Match::ToEndpoint,
                    Match::InSet(vec![self.addr(Side::Dst, None)], SET_QUARANTINE.into()),
                ],
                Verdict::Drop,
            ),
        ]
    }

    fn v6_addr(&self, side: Side) -> Part {
        Part::Addr {
            family: Family::V6,
            side,
            mask: None,
        }
    }

    /// The rules of NetworkPolicy `i` for `direction`, each `return` when it allows.
    fn network_policy(
        &mut self,
        i: usize,
        p: &NetworkPolicy,
        direction: Direction,
        tag: &str,
        peer: Side,
    ) -> Vec<Rule> {
        let mut out = Vec::new();
        for (r, (peers, ports)) in p.rules(direction).enumerate() {
            let prefix = format!("np{i}_{tag}{r}");
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

    fn k8s_peers(
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

    fn k8s_ports(&mut self, prefix: &str, ports: &[k8s::Port]) -> Vec<Alt> {
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
    fn port_ranges(&self, mut ranges: Vec<(u8, u16, u16)>) -> Match {
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

    /// The rules of Romana policy number `n` (in policy order), behind `@rpN`.
    fn romana_policy(
        &mut self,
        n: usize,
        p: &romana::RomanaPolicy,
        me: Side,
        peer: Side,
    ) -> Vec<Rule> {
        let elements = self
            .local
            .iter()
            .filter(|e| p.applied_to.iter().any(|t| applies_to(t, &self.view, e)))
            .map(|e| SetElement::Addr(e.address))
            .collect();
        let name = format!("rp{n}");
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

    fn romana_peer(&self, t: &Target, side: Side) -> Vec<Alt> {
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
    fn romana_rule(&self, r: &romana::Rule) -> Option<Alt> {
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

/// The `meta l4proto` number of a policy protocol in `family` (ICMP is ICMPv6 in IPv6).
pub fn proto_number(p: Protocol, family: Family) -> u8 {
    match p {
        Protocol::Tcp => PROTO_TCP,
        Protocol::Udp => PROTO_UDP,
        Protocol::Sctp => PROTO_SCTP,
        Protocol::Icmp => family.icmp_proto(),
    }
}

fn family_of_net(n: &IpNet) -> Family {
    Family::of_addr(&n.addr())
}

/// `net` minus every `except`, as CIDRs appended to `out`.
fn subtract(net: IpNet, excepts: &[IpNet], out: &mut Vec<IpNet>) {
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

fn link_local() -> IpNet {
    "fe80::/10".parse().expect("a valid CIDR")
}

fn multicast_v6() -> IpNet {
    "ff02::/16".parse().expect("a valid CIDR")
}

#[cfg(test)]
mod tests;
