//! The fabric view: the static routes a routed-access fabric needs for the hosts that exist.
//! Pure, so that the harness that builds leaves and spines in namespaces and an operator
//! configuring real switches get exactly the same routes.
//!
//! Hosts are grouped by the rack of their index bits ([`Layout::rack_of`]), the one function
//! the agent's routes use too: the host's prefix lies in that rack's aggregate, so its leaf
//! is the one the spine's aggregate points at. Topology assigns every index inside its
//! recorded rack's range, so for its records the two agree; a hand-written record where
//! they differ still gets routes that reach it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::{AddrError, Host, Layout};

/// Every leaf with hosts, and the spine's routes to them, ordered by rack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fabric {
    pub leaves: Vec<Leaf>,
    pub spine: Vec<SpineRoute>,
}

/// A leaf (one per rack) and the routes it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub rack: u32,
    /// The aggregate of every host prefix in the rack.
    pub aggregate: IpNet,
    /// One per host of the rack, by host index.
    pub routes: Vec<LeafRoute>,
}

/// A host's prefix via the host's fabric address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRoute {
    pub prefix: IpNet,
    pub via: IpAddr,
    pub host: String,
}

/// A rack aggregate via that rack's leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpineRoute {
    pub prefix: IpNet,
    pub rack: u32,
}

/// Per rack with hosts: a leaf routing each host prefix via the host's address; on the spine
/// one route per such rack, its aggregate via that rack's leaf. Dual-stack: the same for the
/// second space, each host prefix via the host's fabric address of that family (a host
/// without one gets no route of that family: Linux and switches route a prefix only via a
/// next hop of its own family); each leaf's `aggregate` is its first-space one.
pub fn view(hosts: &[Host], layout: &Layout) -> Result<Fabric, AddrError> {
    let mut racks: BTreeMap<u32, Vec<&Host>> = BTreeMap::new();
    for h in hosts {
        racks.entry(layout.rack_of(h.index)).or_default().push(h);
    }
    let mut fabric = Fabric::default();
    for (rack, mut members) in racks {
        members.sort_by_key(|h| h.index);
        let mut routes = Vec::new();
        for family in layout.families() {
            let space = family.address_space();
            for h in &members {
                let Some(via) = h.ip_like(space.addr()) else {
                    continue;
                };
                routes.push(LeafRoute {
                    prefix: family.host_prefix(h.index)?,
                    via,
                    host: h.name.clone(),
                });
            }
            fabric.spine.push(SpineRoute {
                prefix: family.rack_aggregate(rack)?,
                rack,
            });
        }
        fabric.leaves.push(Leaf {
            rack,
            aggregate: layout.rack_aggregate(rack)?,
            routes,
        });
    }
    Ok(fabric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterConfig;

    fn mk_layout(rack_bits: u8) -> Layout {
        ClusterConfig {
            address_space: "10.0.0.0/8".parse().unwrap(),
            host_bits: 8,
            rack_bits,
            tenant_bits: 4,
            segment_bits: 4,
            single_tenant: false,
            second_address_space: None,
        }
        .layout()
        .unwrap()
    }

    fn mk_host(name: &str, ip: &str, rack: u32, index: u32) -> Host {
        Host {
            name: name.into(),
            ip: ip.parse().unwrap(),
            rack,
            index,
            second_ip: None,
        }
    }

    #[test]
    fn a_host_is_on_the_leaf_of_its_index_which_the_spine_aggregate_points_at() {
        let layout = mk_layout(2);
        // Recorded in rack 0 by hand, but index 64 is rack 1's: its prefix 10.64.0.0/16 is
        // in rack 1's aggregate, so only rack 1's leaf can carry its route.
        let f = view(&[mk_host("b1", "192.168.1.11", 0, 64)], &layout).unwrap();
        assert_eq!(f.spine.len(), 1);
        assert_eq!(
            (f.spine[0].prefix.to_string(), f.spine[0].rack),
            ("10.64.0.0/10".to_string(), 1)
        );
        assert_eq!(f.leaves.len(), 1);
        assert_eq!(f.leaves[0].rack, 1);
        assert_eq!(f.leaves[0].routes[0].prefix.to_string(), "10.64.0.0/16");
    }

    #[test]
    fn two_racks_give_one_spine_route_each_and_host_routes_on_leaves() {
        let layout = mk_layout(2);
        let hosts = [
            mk_host("b1", "192.168.1.11", 1, 64),
            mk_host("a2", "192.168.0.12", 0, 1),
            mk_host("a1", "192.168.0.11", 0, 0),
        ];
        let f = view(&hosts, &layout).unwrap();
        let spine: Vec<_> = f
            .spine
            .iter()
            .map(|r| (r.prefix.to_string(), r.rack))
            .collect();
        assert_eq!(
            spine,
            [
                ("10.0.0.0/10".to_string(), 0),
                ("10.64.0.0/10".to_string(), 1)
            ]
        );
        let leaf0: Vec<_> = f.leaves[0]
            .routes
            .iter()
            .map(|r| (r.prefix.to_string(), r.via.to_string(), r.host.as_str()))
            .collect();
        assert_eq!(
            leaf0,
            [
                ("10.0.0.0/16".to_string(), "192.168.0.11".to_string(), "a1"),
                ("10.1.0.0/16".to_string(), "192.168.0.12".to_string(), "a2")
            ]
        );
        assert_eq!(f.leaves[1].aggregate.to_string(), "10.64.0.0/10");
        assert_eq!(f.leaves[1].routes[0].prefix.to_string(), "10.64.0.0/16");
    }

    #[test]
    fn dual_stack_routes_each_space_via_the_hosts_address_of_its_family() {
        let layout = ClusterConfig {
            second_address_space: Some("fd00:10::/48".parse().unwrap()),
            ..mk_layout(2).config().clone()
        }
        .layout()
        .unwrap();
        let mut a1 = mk_host("a1", "192.168.0.11", 0, 0);
        a1.second_ip = Some("fd00:ff::11".parse().unwrap());
        // a2 has no IPv6 fabric address: its IPv6 prefix cannot be routed.
        let a2 = mk_host("a2", "192.168.0.12", 0, 1);
        let f = view(&[a1, a2], &layout).unwrap();
        let leaf: Vec<_> = f.leaves[0]
            .routes
            .iter()
            .map(|r| (r.prefix.to_string(), r.via.to_string()))
            .collect();
        assert_eq!(
            leaf,
            [
                ("10.0.0.0/16".to_string(), "192.168.0.11".to_string()),
                ("10.1.0.0/16".to_string(), "192.168.0.12".to_string()),
                ("fd00:10::/56".to_string(), "fd00:ff::11".to_string()),
            ]
        );
        let spine: Vec<_> = f.spine.iter().map(|r| r.prefix.to_string()).collect();
        assert_eq!(spine, ["10.0.0.0/10", "fd00:10::/50"]);
        assert_eq!(f.leaves[0].aggregate.to_string(), "10.0.0.0/10");
    }

    #[test]
    fn no_hosts_means_no_routes() {
        let layout = mk_layout(0);
        assert_eq!(view(&[], &layout).unwrap(), Fabric::default());
    }
}
