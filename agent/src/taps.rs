//! Named taps: what the agent puts on the tap of an endpoint whose record names one (a
//! VM's tap, made by libvirt for Nova), as pure data and a diff, like routes.
//!
//! For a veth the CNI plugin wires both ends: the segment gateway `G/32` (`G/128` nodad)
//! on the host side makes the host answer ARP/ND for `G`, which every endpoint routes
//! through. A tap is made by somebody who knows nothing of Romana, so the agent does that
//! part: for every local endpoint naming a tap, once the tap exists, `G` goes on it and it
//! is brought up; then (in the same round, after nftables) its `A/32` route goes to it as
//! for any endpoint. The VM inside is configured like a container (`A/32`, a link route
//! to `G`, default via `G`).
//!
//! The diff ([`plan`]) keeps these rules:
//! - A tap that does not exist (the VM is not running) gets nothing; its route is
//!   blocked and waits, as a veth's does, and the link event of its creation wakes the
//!   agent ([`crate::kernel::links`]).
//! - Several endpoints on one tap (a Neutron port with fixed IPs in several subnets) want
//!   the gateways of all their segments; two taps in one segment both hold its `G`.
//! - On every `tap*` link, a full-length address that is a segment gateway of this
//!   layout and that no local endpoint wants is ours to remove: the endpoint was released
//!   or moved while the tap lives on. Nothing else on a tap is touched, and the tap itself
//!   is never deleted (libvirt deletes it when the VM stops; the kernel drops its
//!   addresses and routes with it).
//! - Without a layout (no config yet) nothing is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use romana_core::Layout;

use crate::ifname::{host_interface, TAP_IFNAME_PREFIX};
use crate::state::ClusterState;

/// What the taps of this host should hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TapWiring {
    /// Tap name -> the gateways it must hold.
    pub wanted: BTreeMap<String, BTreeSet<IpAddr>>,
    /// To recognise gateways on taps that are ours to remove; `None` removes nothing.
    pub layout: Option<Layout>,
}

/// A `tap*` link as the kernel reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TapLink {
    pub index: u32,
    /// Administratively up (`IFF_UP`); carrier does not matter (a tap without its VM has
    /// none, and routes to it are still accepted).
    pub up: bool,
    /// Every address on it, with its prefix length.
    pub addresses: BTreeSet<IpNet>,
}

/// One change to a tap.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TapOp {
    /// `ip addr replace G/32 dev TAP` (`G/128 nodad` for IPv6).
    AddGateway {
        ifname: String,
        index: u32,
        gateway: IpAddr,
    },
    /// `ip link set TAP up`.
    SetUp { ifname: String, index: u32 },
    /// `ip addr del G/32 dev TAP`: a gateway nobody here wants any more.
    DeleteGateway {
        ifname: String,
        index: u32,
        address: IpNet,
    },
}

impl TapOp {
    pub fn ifname(&self) -> &str {
        match self {
            TapOp::AddGateway { ifname, .. }
            | TapOp::SetUp { ifname, .. }
            | TapOp::DeleteGateway { ifname, .. } => ifname,
        }
    }

    pub fn index(&self) -> u32 {
        match self {
            TapOp::AddGateway { index, .. }
            | TapOp::SetUp { index, .. }
            | TapOp::DeleteGateway { index, .. } => *index,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TapOp::AddGateway {
                ifname, gateway, ..
            } => format!("add {} dev {ifname}", IpNet::from(*gateway)),
            TapOp::SetUp { ifname, .. } => format!("set {ifname} up"),
            TapOp::DeleteGateway {
                ifname, address, ..
            } => format!("delete {address} dev {ifname}"),
        }
    }
}

/// Whether `name` is a link [`plan`] looks at: the kernel adapter reports these only.
pub fn is_tap(name: &str) -> bool {
    name.starts_with(TAP_IFNAME_PREFIX)
}

/// The wiring of host `host`'s taps: the gateway of every local endpoint that names a tap
/// (see the module docs). Endpoints whose name is refused, or whose address is outside
/// the layout, are left out here as their routes are in [`crate::desired`] (which reports
/// them).
pub fn wiring(state: &ClusterState, layout: Option<&Layout>, host: &str) -> TapWiring {
    let mut wanted: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    if let Some(layout) = layout {
        for e in state.endpoints.values().filter(|e| e.host == host) {
            if e.interface.is_empty() {
                continue;
            }
            let Ok(ifname) = host_interface(e) else {
                continue;
            };
            // Dual-stack: the gateway of each family the endpoint has an address of.
            let gateways = e.addresses().filter_map(|a| layout.gateway_of(a));
            wanted.entry(ifname).or_default().extend(gateways);
        }
    }
    TapWiring {
        wanted,
        layout: layout.cloned(),
    }
}

/// The changes that make `taps` (every `tap*` link, by name) hold what `wiring` wants:
/// per tap in name order, gateway adds, then up, then deletes.
pub fn plan(wiring: &TapWiring, taps: &BTreeMap<String, TapLink>) -> Vec<TapOp> {
    let mut ops = Vec::new();
    for (ifname, link) in taps {
        let want = wiring.wanted.get(ifname);
        for &gateway in want.into_iter().flatten() {
            if !link.addresses.contains(&IpNet::from(gateway)) {
                ops.push(TapOp::AddGateway {
                    ifname: ifname.clone(),
                    index: link.index,
                    gateway,
                });
            }
        }
        if want.is_some() && !link.up {
            ops.push(TapOp::SetUp {
                ifname: ifname.clone(),
                index: link.index,
            });
        }
        let Some(layout) = &wiring.layout else {
            continue;
        };
        for address in &link.addresses {
            let full = address.prefix_len() == address.max_prefix_len();
            let wanted = want.is_some_and(|w| w.contains(&address.addr()));
            if full && !wanted && layout.is_gateway(address.addr()) {
                ops.push(TapOp::DeleteGateway {
                    ifname: ifname.clone(),
                    index: link.index,
                    address: *address,
                });
            }
        }
    }
    ops
}

#[cfg(test)]
mod tests;
