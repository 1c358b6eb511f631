//! The diff between [`Desired`] and what the kernel has ([`Observed`]): an ordered list of
//! operations, pure data like felix's delta tracker. The kernel adapters carry it out; the
//! unit tests carry it out on a model and check `apply(plan(d, o)) == d`.
//!
//! Rules the diff keeps:
//! - Only routes with protocol [`ROUTE_PROTOCOL`] in table [`ROUTE_TABLE`] are ours. Other
//!   routes of the main table are observed only to be avoided: a replace hits whatever
//!   route has the same destination and metric, so where a foreign route holds the slot we
//!   want, nothing is planned and the conflict is reported instead.
//! - One route per destination at the default metric. Ours at another metric, duplicates,
//!   and destinations no longer wanted are deleted.
//! - Order: duplicate cleanups, then adds/replaces (ascending destination), then deletes
//!   (descending): new paths exist before old ones go.
//! - A route to an endpoint interface that does not exist yet is not planned but reported
//!   as blocked (the CNI plugin or libvirt creates the interface; its link event wakes
//!   the agent).
//! - Taps: gateways on, up, stale gateways off ([`crate::taps::plan`]).
//! - nftables: nothing when the table reads back equal; element adds/deletes when only set
//!   membership differs; the rules of the chains that differ (and the elements) when only
//!   rules do, in an intact table of ours ([`crate::nft::render_patch`]); otherwise one
//!   transaction replacing the whole table.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::desired::{Desired, RouteTarget, Sysctl, ROUTE_PROTOCOL, ROUTE_TABLE};
use crate::nft::{
    element_changes, render_elements, render_patch, Chain, ElementOps, NftProgram, TableView,
};
use crate::taps::{TapLink, TapOp};

/// A route as the kernel reports it, reduced to what we compare.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObservedRoute {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    /// The metric (0 when the kernel reports none).
    pub priority: u32,
    pub table: u32,
    pub protocol: u8,
}

/// The state of our nftables table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NftObserved {
    Absent,
    Table(TableView),
    /// Present but not readable as ours (parse error): replaced whole.
    Unreadable(String),
}

/// Everything the planner needs from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Routes of the main table, ours and foreign.
    pub routes: Vec<ObservedRoute>,
    /// Interface name -> index.
    pub links: BTreeMap<String, u32>,
    /// Every `tap*` link, by name.
    pub taps: BTreeMap<String, TapLink>,
    /// Subnets of the host's addresses (for [`crate::HostView::connected`]).
    pub connected: Vec<IpNet>,
    pub nft: NftObserved,
    /// `/proc/sys` path -> current value, for the sysctls we want.
    pub sysctls: BTreeMap<String, String>,
}

/// One route change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteOp {
    /// Add or replace the route to `dst` at the default metric (NLM_F_REPLACE).
    Replace {
        dst: IpNet,
        gateway: Option<IpAddr>,
        /// Set for link routes (scope link).
        oif: Option<u32>,
    },
    /// Delete exactly this route.
    Delete(ObservedRoute),
}

/// The nftables change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NftOp {
    Keep,
    Replace(NftProgram),
    Elements {
        add: ElementOps,
        delete: ElementOps,
    },
    /// These chains' rules anew (flush, add), and element changes.
    Patch {
        chains: Vec<Chain>,
        add: ElementOps,
        delete: ElementOps,
    },
}

/// What to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub routes: Vec<RouteOp>,
    pub nft: NftOp,
    pub sysctls: Vec<Sysctl>,
    pub taps: Vec<TapOp>,
    /// Wanted routes that wait for their interface (`dst dev name`).
    pub blocked: Vec<String>,
    /// Wanted routes whose destination and metric a foreign route holds; left alone.
    pub conflicts: Vec<String>,
}

// === impl Plan ===

impl Plan {
    /// Nothing to change (blocked routes are not changes: they wait for the CNI plugin).
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.nft == NftOp::Keep
            && self.sysctls.is_empty()
            && self.taps.is_empty()
    }
}

impl NftOp {
    /// The `nft -f -` script, or `None` for `Keep`.
    pub fn script(&self) -> Option<String> {
        match self {
            NftOp::Keep => None,
            NftOp::Replace(program) => Some(program.render_replace()),
            NftOp::Elements { add, delete } => Some(render_elements(add, delete)),
            NftOp::Patch {
                chains,
                add,
                delete,
            } => Some(render_patch(chains, add, delete)),
        }
    }
}

impl RouteOp {
    pub fn describe(&self) -> String {
        match self {
            RouteOp::Replace { dst, gateway, oif } => match (gateway, oif) {
                (Some(gw), _) => format!("replace {dst} via {gw}"),
                (None, Some(oif)) => format!("replace {dst} dev #{oif}"),
                (None, None) => format!("replace {dst}"),
            },
            RouteOp::Delete(r) => format!("delete {}", r.describe()),
        }
    }
}

impl ObservedRoute {
    pub fn is_ours(&self) -> bool {
        self.protocol == ROUTE_PROTOCOL && self.table == ROUTE_TABLE
    }

    pub fn describe(&self) -> String {
        let mut s = self.dst.to_string();
        if let Some(gw) = self.gateway {
            s += &format!(" via {gw}");
        }
        if let Some(oif) = self.oif {
            s += &format!(" dev #{oif}");
        }
        if self.priority != 0 {
            s += &format!(" metric {}", self.priority);
        }
        s
    }
}

/// The metric the kernel gives a route added without one: 0 for IPv4, 1024 for IPv6.
pub fn default_priority(dst: &IpNet) -> u32 {
    match dst {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1024,
    }
}

/// The ordered operations that make `observed` match `desired`.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    plan_with_view(desired, &desired.nft.view(), observed)
}

/// [`plan`] with `desired.nft.view()` computed once by the caller: at 100k set elements
/// the view is a copy of all of them, and a round plans twice.
pub fn plan_with_view(desired: &Desired, want: &TableView, observed: &Observed) -> Plan {
    let mut by_dst: BTreeMap<IpNet, Vec<&ObservedRoute>> = BTreeMap::new();
    for r in observed.routes.iter().filter(|r| r.is_ours()) {
        by_dst.entry(r.dst).or_default().push(r);
    }
    let foreign: BTreeMap<(IpNet, u32), &ObservedRoute> = observed
        .routes
        .iter()
        .filter(|r| !r.is_ours() && r.table == ROUTE_TABLE)
        .map(|r| ((r.dst, r.priority), r))
        .collect();
    let mut conflicts = Vec::new();

    let (mut cleanups, mut replaces, mut deletes) = (Vec::new(), Vec::new(), Vec::new());
    let mut blocked = Vec::new();
    let mut wanted = BTreeSet::new();
    for (dst, target) in &desired.routes {
        let (gateway, oif) = match target {
            RouteTarget::Via(gw) => (Some(*gw), None),
            RouteTarget::Link(name) => match observed.links.get(name) {
                Some(&index) => (None, Some(index)),
                None => {
                    blocked.push(target.describe(dst));
                    continue;
                }
            },
        };
        let default = default_priority(dst);
        if let Some(other) = foreign.get(&(*dst, default)) {
            conflicts.push(format!(
                "{} is held by a route of protocol {}: {}",
                target.describe(dst),
                other.protocol,
                other.describe()
            ));
            continue;
        }
        wanted.insert(*dst);
        let at_default: Vec<&ObservedRoute> = by_dst
            .get(dst)
            .into_iter()
            .flatten()
            .copied()
            .filter(|r| r.priority == default)
            .collect();
        let matches = |r: &ObservedRoute| match oif {
            Some(oif) => r.gateway.is_none() && r.oif == Some(oif),
            None => r.gateway == gateway,
        };
        match at_default.as_slice() {
            [only] if matches(only) => continue,
            [] | [_] => {}
            // Duplicates (`ip route append`, a v6 multipath merge): which one a replace
            // would hit is the kernel's choice, so remove them all and add ours afresh.
            many => cleanups.extend(many.iter().map(|r| RouteOp::Delete((*r).clone()))),
        }
        replaces.push(RouteOp::Replace {
            dst: *dst,
            gateway,
            oif,
        });
    }
    for routes in by_dst.values().rev() {
        for r in routes {
            if !wanted.contains(&r.dst) || r.priority != default_priority(&r.dst) {
                deletes.push(RouteOp::Delete((*r).clone()));
            }
        }
    }

    let mut routes = cleanups;
    routes.extend(replaces);
    routes.extend(deletes);

    let nft = match &observed.nft {
        NftObserved::Table(have) if have == want => NftOp::Keep,
        NftObserved::Table(have) if have.same_structure(want) => {
            let (add, delete) = element_changes(have, want);
            NftOp::Elements { add, delete }
        }
        NftObserved::Table(have) => match have.patchable(want) {
            Some(names) => {
                let (add, delete) = element_changes(have, want);
                let chains = desired
                    .nft
                    .chains
                    .iter()
                    .filter(|c| names.contains(&c.name))
                    .cloned()
                    .collect();
                NftOp::Patch {
                    chains,
                    add,
                    delete,
                }
            }
            None => NftOp::Replace(desired.nft.clone()),
        },
        _ => NftOp::Replace(desired.nft.clone()),
    };

    let sysctls = desired
        .sysctls
        .iter()
        .filter(|s| observed.sysctls.get(&s.path).map(|v| v.trim()) != Some(s.value.as_str()))
        .cloned()
        .collect();

    Plan {
        routes,
        nft,
        sysctls,
        taps: crate::taps::plan(&desired.taps, &observed.taps),
        blocked,
        conflicts,
    }
}

#[cfg(test)]
mod tests;
