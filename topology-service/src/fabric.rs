//! The fabric view: the static routes a routed-access fabric needs for the hosts that exist.
//! Pure, so that the harness that builds leaves and spines in namespaces and an operator
//! configuring real switches get exactly the same routes.

use std::collections::BTreeMap;

use romana_core::{AddrError, Host, Layout};
use romana_proto::pb;

/// Per rack with hosts: a leaf routing each host prefix via the host's address; on the spine
/// one route per such rack, its aggregate via that rack's leaf.
pub fn view(hosts: &[Host], layout: &Layout) -> Result<pb::Fabric, AddrError> {
    let mut racks: BTreeMap<u32, Vec<&Host>> = BTreeMap::new();
    for h in hosts {
        racks.entry(h.rack).or_default().push(h);
    }
    let mut fabric = pb::Fabric::default();
    for (rack, mut members) in racks {
        members.sort_by_key(|h| h.index);
        let aggregate = layout.rack_aggregate(rack)?.to_string();
        let routes = members
            .iter()
            .map(|h| {
                Ok(pb::LeafRoute {
                    prefix: layout.host_prefix(h.index)?.to_string(),
                    via: h.ip.to_string(),
                    host: h.name.clone(),
                })
            })
            .collect::<Result<_, AddrError>>()?;
        fabric.spine.push(pb::SpineRoute {
            prefix: aggregate.clone(),
            rack,
        });
        fabric.leaves.push(pb::Leaf {
            rack,
            aggregate,
            routes,
        });
    }
    Ok(fabric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use romana_core::ClusterConfig;

    fn mk_host(name: &str, ip: &str, rack: u32, index: u32) -> Host {
        Host {
            name: name.into(),
            ip: ip.parse().unwrap(),
            rack,
            index,
        }
    }

    #[test]
    fn two_racks_give_one_spine_route_each_and_host_routes_on_leaves() {
        let layout = ClusterConfig {
            address_space: "10.0.0.0/8".parse().unwrap(),
            host_bits: 8,
            rack_bits: 2,
            tenant_bits: 4,
            segment_bits: 4,
            single_tenant: false,
        }
        .layout()
        .unwrap();
        let hosts = [
            mk_host("b1", "192.168.1.11", 1, 64),
            mk_host("a2", "192.168.0.12", 0, 1),
            mk_host("a1", "192.168.0.11", 0, 0),
        ];
        let f = view(&hosts, &layout).unwrap();
        let spine: Vec<_> = f
            .spine
            .iter()
            .map(|r| (r.prefix.as_str(), r.rack))
            .collect();
        assert_eq!(spine, [("10.0.0.0/10", 0), ("10.64.0.0/10", 1)]);
        let leaf0: Vec<_> = f.leaves[0]
            .routes
            .iter()
            .map(|r| (r.prefix.as_str(), r.via.as_str(), r.host.as_str()))
            .collect();
        assert_eq!(
            leaf0,
            [
                ("10.0.0.0/16", "192.168.0.11", "a1"),
                ("10.1.0.0/16", "192.168.0.12", "a2")
            ]
        );
        assert_eq!(f.leaves[1].aggregate, "10.64.0.0/10");
        assert_eq!(f.leaves[1].routes[0].prefix, "10.64.0.0/16");
    }

    #[test]
    fn no_hosts_means_no_routes() {
        let layout = ClusterConfig {
            address_space: "10.0.0.0/8".parse().unwrap(),
            host_bits: 8,
            rack_bits: 0,
            tenant_bits: 4,
            segment_bits: 4,
            single_tenant: false,
        }
        .layout()
        .unwrap();
        assert_eq!(view(&[], &layout).unwrap(), pb::Fabric::default());
    }
}
