//! What this host's dataplane should be, computed from the cluster state and what the agent
//! knows of its own host. Pure: the same inputs always give the same [`Desired`], whatever
//! order the events arrived in ("depend only on current state, not on history").
//!
//! # Routes (table main, protocol [`ROUTE_PROTOCOL`])
//! - Every other host H, when racks are not configured or H is in my rack: H's host prefix
//!   via H's address when that address is on-link (inside one of my connected subnets),
//!   otherwise via my gateway.
//! - Every other rack with at least one host: that rack's aggregate via my gateway (the
//!   leaf of my rack). Never per-host routes into other racks: the leaf aggregates them.
//! - Every local endpoint: its address as a /32 (/128) on its host-side interface, scope
//!   link; the interface is [`host_interface`]'s: the record's tap when it names one, else
//!   [`crate::endpoint_ifname`] of the endpoint id. A record naming an interface that is
//!   not a tap is not routed (a problem, closed).
//!
//! # Taps
//! Every local endpoint naming a tap: the gateway of its segment on that tap
//! ([`crate::taps`], what the CNI plugin does for a veth).
//!
//! What cannot be routed (no gateway, a gateway of the other family, a record outside the
//! layout) is left out and reported in [`Desired::problems`], never guessed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use romana_core::model::same_family;
use romana_core::Layout;

use crate::compile::compile_with_recipes;
use crate::ifname::host_interface;
use crate::nft::{Family, NftProgram};
use crate::recipe::Recipes;
use crate::state::ClusterState;
use crate::taps::{wiring, TapWiring};

/// The route protocol number marking our routes (`ip route show proto 124`), shared with
/// the CNI plugin through `romana_core::datapath`. The /32 (/128) to a local endpoint is the
/// agent's alone: the plugin never adds it, so an endpoint is routed only once the agent
/// has programmed its isolation (fail closed). Routes with any other protocol are never
/// touched, and after a restart every route with this one in the main table is ours to
/// keep or sweep. 124 is in neither iproute2's `rt_protos` nor
/// the kernel's `RTPROT_*` list (0-4, 8-18, 42, 99, 186-192); operators may name it with
/// `echo "124 romana" > /etc/iproute2/rt_protos.d/romana.conf`.
pub use romana_core::datapath::ROUTE_PROTOCOL;

/// The routing table our routes live in (main).
pub const ROUTE_TABLE: u32 = 254;

/// What the agent knows of its own host besides the cluster state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostView {
    /// This host's name as registered with topology (`--host`).
    pub name: String,
    /// The next hops for other racks and non-adjacent hosts: the leaf of my rack
    /// (`--gateway`), one per IP family the cluster has.
    pub gateways: Vec<IpAddr>,
    /// Subnets of the addresses configured on this host, observed from the kernel. Subnets
    /// inside the cluster address space are endpoint-side and do not count as on-link.
    pub connected: Vec<IpNet>,
}

/// Where a route sends traffic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteTarget {
    /// Via a next hop (a host's address or the gateway).
    Via(IpAddr),
    /// Directly out of an interface, scope link (an endpoint's host-side interface).
    Link(String),
}

/// A kernel setting under `/proc/sys`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sysctl {
    /// Path below `/proc/sys`, e.g. `net/ipv4/ip_forward`.
    pub path: String,
    pub value: String,
}

/// The whole dataplane this host should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Destination -> target; one route per destination.
    pub routes: BTreeMap<IpNet, RouteTarget>,
    pub nft: NftProgram,
    pub sysctls: Vec<Sysctl>,
    /// What the taps of local endpoints hold.
    pub taps: TapWiring,
    /// Why something wanted could not be expressed; logged and put in the status.
    pub problems: Vec<String>,
}

impl RouteTarget {
    pub fn describe(&self, dst: &IpNet) -> String {
        match self {
            RouteTarget::Via(gw) => format!("{dst} via {gw}"),
            RouteTarget::Link(dev) => format!("{dst} dev {dev} scope link"),
        }
    }
}

/// The desired dataplane of host `me` (see the module docs).
pub fn desired(state: &ClusterState, me: &HostView) -> Desired {
    desired_with_recipes(state, me).0
}

/// [`desired`], and how the program's endpoint-dependent sets were filled, for updating
/// them when only endpoints change ([`crate::incremental`]).
pub fn desired_with_recipes(state: &ClusterState, me: &HostView) -> (Desired, Recipes) {
    let mut problems = Vec::new();
    let layout = match state.config.as_ref().map(|c| c.layout()) {
        Some(Ok(layout)) => Some(layout),
        Some(Err(e)) => {
            problems.push(format!("cluster config is invalid: {e}"));
            None
        }
        None => None,
    };
    for (key, u) in &state.unreadable {
        let consequence = match &u.tenant {
            Some(t) => format!("endpoints of tenant {t} on this host pass nothing until it reads"),
            None => "left out".to_string(),
        };
        problems.push(format!(
            "record {key} cannot be read ({}): {consequence}",
            u.error
        ));
    }
    let routes = match &layout {
        Some(layout) => routes(state, layout, me, &mut problems),
        None => BTreeMap::new(),
    };
    let mut sysctls = vec![Sysctl {
        path: "net/ipv4/ip_forward".into(),
        value: "1".into(),
    }];
    let v6 = layout
        .iter()
        .flat_map(|l| l.families())
        .any(|l| Family::of(l) == Family::V6);
    if v6 {
        sysctls.push(Sysctl {
            path: "net/ipv6/conf/all/forwarding".into(),
            value: "1".into(),
        });
    }
    let (nft, recipes) = compile_with_recipes(state, layout.as_ref(), &me.name);
    let desired = Desired {
        routes,
        nft,
        sysctls,
        taps: wiring(state, layout.as_ref(), &me.name),
        problems,
    };
    (desired, recipes)
}

fn routes(
    state: &ClusterState,
    layout: &Layout,
    me: &HostView,
    problems: &mut Vec<String>,
) -> BTreeMap<IpNet, RouteTarget> {
    let mut routes = BTreeMap::new();
    let Some(my_host) = state.hosts.get(&me.name) else {
        problems.push(format!(
            "host {} is not registered with topology: no routes to other hosts",
            me.name
        ));
        return routes;
    };
    for g in &me.gateways {
        if layout
            .families()
            .all(|f| !same_family(*g, f.address_space().addr()))
        {
            problems.push(format!(
                "gateway {g} is of no address space's family ({}); it is not used",
                spaces(layout)
            ));
        }
    }
    for (i, family) in layout.families().enumerate() {
        let routed = FamilyRoutes {
            layout: family,
            first: i == 0,
            spaces: layout,
        };
        routed.routes(state, me, my_host, &mut routes, problems);
    }
    routes
}

/// The routes of one IP family's space: its host prefixes, rack aggregates and the local
/// endpoints' addresses of that family (see the module docs).
struct FamilyRoutes<'a> {
    /// The layout of this family's space alone.
    layout: &'a Layout,
    /// The first space: the one every endpoint has an address in.
    first: bool,
    /// The whole layout (every space), to tell the fabric from endpoint-side subnets.
    spaces: &'a Layout,
}

impl FamilyRoutes<'_> {
    fn routes(
        &self,
        state: &ClusterState,
        me: &HostView,
        my_host: &romana_core::Host,
        routes: &mut BTreeMap<IpNet, RouteTarget>,
        problems: &mut Vec<String>,
    ) {
        let layout = self.layout;
        let space = layout.address_space();
        let racks = layout.config().rack_bits > 0;
        let my_rack = layout.rack_of(my_host.index);
        // The fabric is what is outside every address space; endpoint-side subnets are not.
        let on_link = |ip: &IpAddr| {
            me.connected.iter().any(|n| {
                n.contains(ip)
                    && self
                        .spaces
                        .families()
                        .map(|f| f.address_space())
                        .all(|s| !s.contains(n) && !n.contains(&s.addr()))
            })
        };
        let gateway = me
            .gateways
            .iter()
            .copied()
            .find(|g| same_family(*g, space.addr()));

        let mut other_racks = std::collections::BTreeSet::new();
        for host in state.hosts.values().filter(|h| h.name != me.name) {
            let Ok(prefix) = layout.host_prefix(host.index) else {
                // Every space has the same host bits: reported once, with the first.
                if self.first {
                    problems.push(format!(
                        "host {} has index {} outside the layout",
                        host.name, host.index
                    ));
                }
                continue;
            };
            let rack = layout.rack_of(host.index);
            if racks && rack != my_rack {
                other_racks.insert(rack);
                continue;
            }
            // Linux routes a prefix only via a next hop of its own family.
            let target = host.ip_like(space.addr()).filter(on_link).or(gateway);
            match target {
                Some(via) => {
                    routes.insert(prefix, RouteTarget::Via(via));
                }
                None => problems.push(format!(
                    "host {} ({}) is not on-link and no usable --gateway of {space}'s family \
                     is set: {prefix} is not routed",
                    host.name,
                    host.ips()
                        .map(|ip| ip.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )),
            }
        }
        for rack in other_racks {
            let Ok(aggregate) = layout.rack_aggregate(rack) else {
                continue;
            };
            match gateway {
                Some(gw) => {
                    routes.insert(aggregate, RouteTarget::Via(gw));
                }
                None => problems.push(format!(
                    "rack {rack} has hosts but no usable --gateway of {space}'s family is set: \
                     {aggregate} is not routed"
                )),
            }
        }

        let my_prefix = layout.host_prefix(my_host.index).ok();
        for endpoint in state.endpoints.values().filter(|e| e.host == me.name) {
            // Every endpoint has a first address; a second only in a dual-stack cluster.
            let address = if self.first {
                endpoint.address
            } else {
                match endpoint.second_address {
                    Some(a) => a,
                    None => continue,
                }
            };
            if !space.contains(&address) {
                problems.push(format!(
                    "endpoint {} has address {address} outside the address space {space}",
                    endpoint.id
                ));
                continue;
            }
            if !my_prefix.is_some_and(|p| p.contains(&address)) {
                // Still routed: it is here, and a /32 wins over the owner's prefix route.
                problems.push(format!(
                    "endpoint {} has address {address} outside this host's prefix",
                    endpoint.id
                ));
            }
            let ifname = match host_interface(endpoint) {
                Ok(name) => name,
                Err(e) => {
                    // Reported once, with the first family.
                    if self.first {
                        problems.push(format!("endpoint {} is not routed: {e}", endpoint.id));
                    }
                    continue;
                }
            };
            routes.insert(IpNet::from(address), RouteTarget::Link(ifname));
        }
    }
}

/// Every address space of `layout`, for messages.
fn spaces(layout: &Layout) -> String {
    layout
        .families()
        .map(|f| f.address_space().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
