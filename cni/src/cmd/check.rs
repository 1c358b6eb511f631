//! CHECK (0.4.0 and later): the endpoint is still as ADD left it. ipam-service must hold
//! its address for this host; `prevResult`, when given, must list that address; and the
//! kernel must show both links, the addresses and the container's routes. Every
//! difference is listed in the one error (code 120). The host's /32 to the endpoint is the
//! agent's (see `romana_core::datapath::ROUTE_PROTOCOL`), so it is not CHECK's to judge.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::{machine_hostname, NetConf};
use crate::env::Env;
use crate::error::CniError;
use crate::ipam::Ipam;
use crate::netlink::{self, Family, LinkState, Observed, Wiring, SCOPE_LINK};

use super::wiring;

pub async fn run(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    if !conf.version_at_least("0.4.0") {
        return Err(CniError::VerbNeedsVersion {
            verb: "CHECK",
            min: "0.4.0",
            version: conf.cni_version.clone(),
        });
    }
    let id = env.endpoint_id()?;
    let netns = env.netns()?;
    let ifname = env.ifname()?;
    let host = conf.host(machine_hostname)?;
    let prev = super::prev_result(conf)?;
    netlink::netns_exists(netns)?;

    let mut ipam = Ipam::connect(conf).await?;
    let failed = |mismatches: Vec<String>| CniError::Check {
        endpoint: id.clone(),
        mismatches,
    };
    let Some(endpoint) = ipam.get(&id).await? else {
        return Err(failed(vec!["ipam-service holds no address for it".into()]));
    };
    let w = wiring(&id, ifname, netns, &endpoint)?;

    let mut mismatches = Vec::new();
    if endpoint.host != host {
        mismatches.push(format!(
            "ipam-service places it on host {}, this is host {host}",
            endpoint.host
        ));
    }
    if let Some(prev) = &prev {
        for f in &w.families {
            if !prev.ips.iter().any(|ip| ip.address.addr() == f.address) {
                mismatches.push(format!(
                    "prevResult does not list its address {}",
                    f.address
                ));
            }
        }
    }
    let observed = netlink::observe(&w).await?;
    mismatches.extend(verify(&w, &observed));
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(failed(mismatches))
    }
}

/// Every way `observed` differs from `w` wired, in words.
pub fn verify(w: &Wiring, observed: &Observed) -> Vec<String> {
    let mut out = Vec::new();
    match &observed.host {
        None => out.push(format!("host link {} is missing", w.host_ifname)),
        Some(host) => {
            if !host.veth {
                out.push(format!("host link {} is not a veth", w.host_ifname));
            }
            if !host.up {
                out.push(format!("host link {} is down", w.host_ifname));
            }
            for gateway in w.families.iter().map(|f| full(f.gateway)) {
                if !observed.host_addresses.contains(&gateway) {
                    out.push(format!(
                        "host link {} lacks the gateway address {gateway}",
                        w.host_ifname
                    ));
                }
            }
        }
    }

    let Some(container) = &observed.container else {
        out.push(format!(
            "interface {} is missing in {}",
            w.ifname,
            w.netns.display()
        ));
        return out;
    };
    if let Some(host) = &observed.host {
        if container.peer_index != Some(host.index) {
            out.push(format!(
                "interface {} is not the peer of host link {}",
                w.ifname, w.host_ifname
            ));
        }
    }
    if !container.up {
        out.push(format!("interface {} is down", w.ifname));
    }
    for f in &w.families {
        out.extend(verify_family(w, f, container, observed));
    }
    out
}

/// How one family's address and routes in the container differ from `f` wired.
fn verify_family(
    w: &Wiring,
    f: &Family,
    container: &LinkState,
    observed: &Observed,
) -> Vec<String> {
    let mut out = Vec::new();
    let v4 = f.address.is_ipv4();
    let (address, gateway) = (full(f.address), full(f.gateway));
    if !observed.container_addresses.contains(&address) {
        out.push(format!("interface {} lacks address {address}", w.ifname));
    }
    let to_gateway = observed.container_routes.iter().any(|r| {
        r.dst == gateway
            && r.oif == Some(container.index)
            && r.gateway.is_none()
            && (!v4 || r.scope == SCOPE_LINK)
    });
    if !to_gateway {
        out.push(format!("container has no route {gateway} dev {}", w.ifname));
    }
    let default = observed.container_routes.iter().any(|r| {
        r.dst.prefix_len() == 0 && r.gateway == Some(f.gateway) && r.oif == Some(container.index)
    });
    if !default {
        out.push(format!(
            "container has no default route via {} dev {}",
            f.gateway, w.ifname
        ));
    }
    out
}

fn full(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::{LinkState, RouteState, PROTOCOL_STATIC};

    fn mk_wiring() -> Wiring {
        Wiring {
            host_ifname: "rmn0123456789ab".into(),
            ifname: "eth0".into(),
            netns: "/var/run/netns/c1".into(),
            families: vec![Family {
                address: "10.0.0.2".parse().unwrap(),
                gateway: "10.0.0.1".parse().unwrap(),
            }],
        }
    }

    fn mk_link(index: u32, name: &str, peer: u32) -> LinkState {
        LinkState {
            index,
            name: name.into(),
            mac: "0a:00:00:00:00:01".into(),
            up: true,
            veth: true,
            peer_index: Some(peer),
        }
    }

    fn mk_route(dst: &str, gateway: Option<&str>, oif: u32, scope: u8, protocol: u8) -> RouteState {
        RouteState {
            dst: dst.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            oif: Some(oif),
            scope,
            protocol,
        }
    }

    /// What `wire` leaves: host link 7, container link 2.
    fn mk_wired() -> Observed {
        Observed {
            host: Some(mk_link(7, "rmn0123456789ab", 2)),
            host_addresses: vec!["10.0.0.1/32".parse().unwrap()],
            container: Some(mk_link(2, "eth0", 7)),
            container_addresses: vec!["10.0.0.2/32".parse().unwrap()],
            container_routes: vec![
                mk_route("10.0.0.1/32", None, 2, SCOPE_LINK, PROTOCOL_STATIC),
                mk_route("0.0.0.0/0", Some("10.0.0.1"), 2, 0, PROTOCOL_STATIC),
            ],
        }
    }

    #[test]
    fn a_wired_endpoint_passes() {
        assert_eq!(verify(&mk_wiring(), &mk_wired()), Vec::<String>::new());
    }

    #[test]
    fn missing_host_link_and_container_are_both_reported() {
        let observed = Observed::default();
        assert_eq!(
            verify(&mk_wiring(), &observed),
            vec![
                "host link rmn0123456789ab is missing".to_string(),
                "interface eth0 is missing in /var/run/netns/c1".to_string()
            ]
        );
    }

    #[test]
    fn a_foreign_default_route_and_lost_address_are_reported() {
        let mut observed = mk_wired();
        observed.container_routes[1].gateway = Some("10.9.9.9".parse().unwrap());
        observed.container_addresses.clear();
        observed.container.as_mut().unwrap().peer_index = Some(99);
        let found = verify(&mk_wiring(), &observed);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("not the peer"));
        assert!(found[1].contains("lacks address 10.0.0.2/32"));
        assert!(found[2].contains("no default route via 10.0.0.1"));
    }
}
