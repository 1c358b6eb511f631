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
//! # Dual-stack
//! Each address space's family is compiled on its own ([`Compiler`]), every endpoint by its
//! address of that family: the second family's sets and chains carry its suffix (`_v6`),
//! `from_endpoint` and `to_endpoint` hold one rule per family, and forward sends each
//! packet to its own family's direction chains by `meta nfproto` (a direction chain ends in
//! `drop`, so a packet of the other family must never enter it). Traffic of a family the
//! cluster has no space for matches no `endpoints` element and is dropped, as before.
//!
//! What has bitten us:
//! - `return` from a chain entered by `goto` goes back to the last `jump` (forward), which
//!   is what makes "a NetworkPolicy allowed egress" skip the egress baseline but still go
//!   on to the destination's ingress when both endpoints are local.
//! - Adding a map key that exists with another verdict fails the batch: element scripts
//!   delete before they add ([`crate::nft::render_elements`]).
//! - A rule with ports never matches ICMP; a NetworkPolicy rule without ports matches it.

//!
//! # Layout
//! - this file: the program's skeleton, the isolation sets and the direction chains.
//! - [`guard`]: the chains that tie each endpoint interface to its address, and quarantine.
//! - [`network_policy`]: the rules of one NetworkPolicy (peers, ipBlocks, ports).
//! - [`romana_policy`]: the rules of one Romana policy.
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use romana_core::policy::eval::{address_owners, selects};
use romana_core::policy::romana;
use romana_core::policy::{ClusterView, Direction, NetworkPolicy, Protocol};
use romana_core::{Endpoint, Isolation, Layout};

use crate::nft::{
    Chain, Family, Hook, Match, NftProgram, NftSet, Part, Rule, SetElement, SetKey, Side, Verdict,
    CHAIN_EGRESS, CHAIN_FROM_ENDPOINT, CHAIN_INGRESS, CHAIN_NAME, CHAIN_PREROUTING,
    CHAIN_TO_ENDPOINT, MAP_EGRESS, MAP_INGRESS, PROTO_SCTP, PROTO_TCP, PROTO_UDP, SET_OPEN_TENANT,
    SET_SAME_SEGMENT, SET_SAME_TENANT,
};
use crate::recipe::{Recipe, Recipes};
use crate::state::ClusterState;

mod guard;
#[cfg(test)]
pub(crate) mod interp;
mod network_policy;
mod romana_policy;

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
    let view = state.view_without_endpoints(layout);
    let owners = address_owners(state.endpoints.values());
    let dual = layout.second_family().is_some();
    let parts: Vec<FamilyPart> = layout
        .families()
        .enumerate()
        .map(|(i, l)| {
            let suffix = if i == 0 { "" } else { Family::of(l).suffix() };
            Compiler::new(state, l, &view, &owners, host, suffix).build()
        })
        .collect();
    // Each family dispatches to its own direction chains; in a single-family cluster the
    // chains' own address matches already pass nothing of the other family.
    let dispatch = |family: Family, first: Match, chain: &str| {
        let mut matches = vec![first];
        if dual {
            matches.push(Match::Nfproto(family));
        }
        Rule::new(matches, Verdict::Jump(chain.to_string()))
    };
    let mut from_endpoint: Vec<Rule> = parts.iter().map(|p| p.source.clone()).collect();
    from_endpoint.extend(guard::neighbour_discovery());
    from_endpoint.push(Rule::new(Vec::new(), Verdict::Drop));
    let mut to_endpoint: Vec<Rule> = parts.iter().map(|p| p.destination.clone()).collect();
    to_endpoint.push(Rule::new(Vec::new(), Verdict::Drop));
    let mut forward = vec![Rule::new(
        vec![Match::ToEndpoint],
        Verdict::Jump(CHAIN_TO_ENDPOINT.into()),
    )];
    forward.extend(parts.iter().flat_map(|p| p.quarantine.iter().cloned()));
    forward.push(Rule::new(vec![Match::Established], Verdict::Accept));
    forward.extend(
        parts
            .iter()
            .map(|p| dispatch(p.family, Match::FromEndpoint, &p.egress.name)),
    );
    forward.extend(
        parts
            .iter()
            .map(|p| dispatch(p.family, Match::ToEndpoint, &p.ingress.name)),
    );
    let mut program = NftProgram {
        sets: BTreeMap::new(),
        chains: Vec::new(),
    };
    let mut recipes = Vec::new();
    let mut directions = Vec::new();
    for p in parts {
        program.sets.extend(p.sets);
        program.chains.extend(p.group_chains);
        recipes.extend(p.recipes);
        directions.extend([p.egress, p.ingress]);
    }
    program.chains.extend([
        guard_chain(CHAIN_FROM_ENDPOINT, from_endpoint),
        guard_chain(CHAIN_TO_ENDPOINT, to_endpoint),
    ]);
    program.chains.extend(directions);
    program.chains.push(base(
        CHAIN_PREROUTING,
        Hook::Prerouting,
        vec![Rule::new(
            vec![Match::FromEndpoint],
            Verdict::Jump(CHAIN_FROM_ENDPOINT.into()),
        )],
    ));
    program
        .chains
        .push(base(CHAIN_NAME, Hook::Forward, forward));
    (program, recipes)
}

fn guard_chain(name: &str, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.into(),
        hook: None,
        rules,
    }
}

fn base(name: &str, hook: Hook, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.into(),
        hook: Some(hook),
        rules,
    }
}

/// What one IP family contributes to the program: its rules in the shared guard and base
/// chains, and its own sets and chains (named with the family's suffix).
struct FamilyPart {
    family: Family,
    /// `from_endpoint`'s rule returning for this family's endpoint addresses.
    source: Rule,
    /// `to_endpoint`'s rule returning for them.
    destination: Rule,
    quarantine: Vec<Rule>,
    egress: Chain,
    ingress: Chain,
    group_chains: Vec<Chain>,
    sets: BTreeMap<String, NftSet>,
    recipes: Recipes,
}

/// The compiler of one IP family's part. Dual-stack compiles each family on its own: an
/// endpoint takes part in each family by its address of that family, and the second
/// family's sets and chains carry its suffix.
struct Compiler<'a> {
    state: &'a ClusterState,
    /// The layout of this family's space alone.
    layout: &'a Layout,
    family: Family,
    /// "" for the first family, [`Family::suffix`] for the second.
    suffix: &'static str,
    /// Hosts, tenants and segments: what selectors and targets ask (no endpoints).
    view: &'a ClusterView,
    policies: romana_core::policy::PolicySet,
    /// Every endpoint of the cluster with an address of this family, as its address of this
    /// family (see [`in_family`]).
    endpoints: Vec<Cow<'a, Endpoint>>,
    /// The endpoints of this host: the ones whose directions are enforced here.
    local: Vec<Cow<'a, Endpoint>>,
    sets: BTreeMap<String, NftSet>,
    recipes: Recipes,
    group_chains: Vec<Chain>,
}

/// One alternative of a rule's peer or port part: the matches that make it hold.
type Alt = Vec<Match>;

impl<'a> Compiler<'a> {
    fn new(
        state: &'a ClusterState,
        layout: &'a Layout,
        view: &'a ClusterView,
        owners: &BTreeMap<IpAddr, &str>,
        host: &str,
        suffix: &'static str,
    ) -> Compiler<'a> {
        let family = Family::of(layout);
        // The endpoint an address means is the one the evaluator resolves it to.
        let endpoints: Vec<Cow<Endpoint>> = state
            .endpoints
            .values()
            .filter_map(|e| in_family(e, family))
            .filter(|e| owners.get(&e.address) == Some(&e.id.as_str()))
            .collect();
        let local = endpoints
            .iter()
            .filter(|e| e.host == host)
            .cloned()
            .collect();
        let mut c = Compiler {
            state,
            layout,
            family,
            suffix,
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

    /// The part of the program this family contributes.
    fn build(mut self) -> FamilyPart {
        let source = self.source_check();
        let destination = self.destination_check();
        let quarantine = self.quarantine();
        let egress = self.direction(Direction::Egress);
        let ingress = self.direction(Direction::Ingress);
        FamilyPart {
            family: self.family,
            source,
            destination,
            quarantine,
            egress,
            ingress,
            group_chains: self.group_chains,
            sets: self.sets,
            recipes: self.recipes,
        }
    }

    /// The name of this family's set or chain `base`.
    fn name(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
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
        self.add_set(&self.name(SET_SAME_SEGMENT), pair, same_segment);
        self.add_set(&self.name(SET_SAME_TENANT), pair, same_tenant);
        let open = self.name(SET_OPEN_TENANT);
        self.add_set(&open, SetKey::Addr(self.family), open_tenant);
    }

    /// Adds set `name` (already carrying the family's suffix).
    fn add_set(&mut self, name: &str, key: SetKey, elements: BTreeSet<SetElement>) {
        self.sets.insert(name.into(), NftSet::new(key, elements));
    }

    /// A set filled with what `recipe` takes from every endpoint, the recipe kept for
    /// [`crate::incremental`].
    fn add_recipe_set(&mut self, name: &str, key: SetKey, recipe: Recipe) {
        let elements = self
            .endpoints
            .iter()
            .flat_map(|e| recipe.elements(e, self.view, self.family))
            .collect();
        self.add_set(name, key, elements);
        self.recipes.push((name.to_string(), self.family, recipe));
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
        let (chain, map) = (self.name(chain), self.name(map));
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
            let name = self.name(&format!("np_{tag}_{g}"));
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
        self.add_set(&map, SetKey::VerdictMap(self.family), elements);
        rules.push(Rule::new(
            Vec::new(),
            Verdict::Vmap(self.addr(me, None), map),
        ));
        // 2. Baseline: isolation mode, decided by my tenant's elements.
        let seg = self.layout.segment_mask();
        let ten = self.layout.tenant_mask();
        for (mask, set) in [(seg, SET_SAME_SEGMENT), (ten, SET_SAME_TENANT)] {
            rules.push(Rule::new(
                vec![Match::InSet(
                    vec![self.addr(me, Some(mask)), self.addr(peer, Some(mask))],
                    self.name(set),
                )],
                Verdict::Return,
            ));
        }
        rules.push(Rule::new(
            vec![Match::InSet(
                vec![self.addr(me, Some(ten))],
                self.name(SET_OPEN_TENANT),
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
            name: chain,
            hook: None,
            rules,
        }
    }
}

/// `e` as it takes part in `family`: with its address of that family as `address` (and
/// its other one as `second_address`), or `None` when it has no address of that family.
fn in_family(e: &Endpoint, family: Family) -> Option<Cow<'_, Endpoint>> {
    let address = family.address_of(e)?;
    if address == e.address {
        return Some(Cow::Borrowed(e));
    }
    Some(Cow::Owned(Endpoint {
        address,
        second_address: Some(e.address),
        ..e.clone()
    }))
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

#[cfg(test)]
mod tests;
