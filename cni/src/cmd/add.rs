//! ADD: allocate the endpoint's address, wire its veth pair, print the result.
//!
//! Idempotent: ipam returns the address the endpoint id already holds, and the wiring
//! reuses the links a previous ADD made. The container namespace is checked before
//! allocating, so a missing one (code 3, "nothing to clean up") costs no address. The veth
//! pair is made while ipam allocates (it needs no address); addresses and routes follow.
//! When allocating or wiring fails, what this call made is undone before the error is
//! returned.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use romana_core::datapath::endpoint_ifname;
use romana_proto::pb;

use crate::config::{machine_hostname, NetConf};
use crate::env::Env;
use crate::error::CniError;
use crate::ipam::Ipam;
use crate::netlink::{self, Family, Wired, Wiring};
use crate::result::{CniResult, Interface, IpConfig, Route};

use super::{wiring, NETWORK_LABEL};

pub async fn run(env: &Env, conf: &NetConf) -> Result<CniResult, CniError> {
    let id = env.endpoint_id()?;
    let netns = env.netns()?;
    let ifname = env.ifname()?;
    let placement = conf.placement(&env.args, machine_hostname)?;
    let mut labels = env.args.labels()?;
    let ports = env.args.ports()?;
    let pod = env.args.pod()?;
    labels.insert(NETWORK_LABEL.to_string(), conf.name.clone());
    let prev = super::prev_result(conf)?;
    netlink::netns_exists(netns)?;

    // The veth pair needs no address: it is made on a thread of its own while ipam
    // allocates (discovery and Allocate are round trips the plugin only waits on).
    let host_ifname = endpoint_ifname(&id);
    let links = {
        let (host_ifname, ifname, netns) =
            (host_ifname.clone(), ifname.to_string(), netns.to_path_buf());
        netlink::on_thread(
            move || async move { netlink::prepare(&host_ifname, &ifname, &netns).await },
        )
    };
    let request = pb::AllocateRequest {
        endpoint: id.clone(),
        host: placement.host,
        tenant: placement.tenant,
        segment: placement.segment.unwrap_or_default(),
        labels: labels.into_iter().collect(),
        ports: ports
            .iter()
            .map(romana_proto::pb::NamedPort::from)
            .collect(),
        pod: pod.as_ref().map(pb::Pod::from),
        ..Default::default()
    };
    let allocation = Ipam::first_call(conf, |mut ipam| {
        let request = request.clone();
        async move { ipam.allocate(request).await }
    });
    let (links, allocation) = tokio::join!(links, allocation);
    let (mut ipam, endpoint) = match allocation {
        Ok(allocated) => allocated,
        Err(e) => {
            // Nothing is allocated: the links made meanwhile must not outlive this call.
            if links.is_ok() {
                unlink(&id, &host_ifname).await;
            }
            return Err(e);
        }
    };
    tracing::debug!(endpoint = %id, address = %endpoint.address, "allocated");

    let w = match wiring(&id, ifname, netns, &endpoint) {
        Ok(w) => w,
        Err(e) => {
            // The links were made while allocating: a bad record must not leave them behind.
            unlink(&id, &host_ifname).await;
            return Err(e);
        }
    };
    let wired = match links {
        Ok(host) => netlink::finish(&host, &w).await,
        Err(e) => Err(e),
    };
    let wired = match wired {
        Ok(wired) => wired,
        Err(e) => {
            undo(&mut ipam, &id, &w).await;
            return Err(e.into());
        }
    };

    let ours = mk_result(&w, &wired);
    let result = match prev {
        Some(mut prev) => {
            prev.append(ours);
            prev
        }
        None => ours,
    };
    Ok(result.into_version(&conf.cni_version))
}

/// Best effort: the runtime calls DEL after a failed ADD anyway, which does the same.
async fn undo(ipam: &mut Ipam, id: &str, w: &Wiring) {
    unlink(id, &w.host_ifname).await;
    if let Err(e) = ipam.release(id).await {
        tracing::warn!(endpoint = %id, error = %e, "undoing a failed ADD: releasing the address");
    }
}

async fn unlink(id: &str, host_ifname: &str) {
    if let Err(e) = netlink::unwire(host_ifname).await {
        tracing::warn!(endpoint = %id, error = %e, "undoing a failed ADD: removing the link");
    }
}

/// The result of a wired endpoint: host side first, then the container side (with its
/// sandbox), the address on the container side, and the default route via the gateway.
pub fn mk_result(w: &Wiring, wired: &Wired) -> CniResult {
    let per_family = |f: &Family| {
        let (full, any) = match f.address {
            IpAddr::V4(_) => (32, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            IpAddr::V6(_) => (128, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
        };
        let ip = IpConfig {
            version: None,
            address: IpNet::new(f.address, full).expect("full-length prefix is valid"),
            gateway: Some(f.gateway),
            interface: Some(1),
            extra: Default::default(),
        };
        let route = Route {
            dst: IpNet::new(any, 0).expect("zero-length prefix is valid"),
            gw: Some(f.gateway),
            extra: Default::default(),
        };
        (ip, route)
    };
    let (ips, routes) = w.families.iter().map(per_family).unzip();
    CniResult {
        interfaces: vec![
            Interface {
                name: w.host_ifname.clone(),
                mac: Some(wired.host_mac.clone()),
                ..Default::default()
            },
            Interface {
                name: w.ifname.clone(),
                mac: Some(wired.container_mac.clone()),
                sandbox: Some(w.netns.display().to_string()),
                ..Default::default()
            },
        ],
        ips,
        routes,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_of_an_ipv6_endpoint_uses_128_and_the_v6_default_route() {
        let w = Wiring {
            host_ifname: "rmn0123456789ab".into(),
            ifname: "eth0".into(),
            netns: "/var/run/netns/c1".into(),
            families: vec![Family {
                address: "fd00:10::2".parse().unwrap(),
                gateway: "fd00:10::1".parse().unwrap(),
            }],
        };
        let wired = Wired {
            host_mac: "0a:00:00:00:00:01".into(),
            container_mac: "0a:00:00:00:00:02".into(),
        };
        let value = serde_json::to_value(mk_result(&w, &wired).into_version("1.1.0")).unwrap();
        assert_eq!(value["ips"][0]["address"], "fd00:10::2/128");
        assert_eq!(value["routes"][0]["dst"], "::/0");
        assert_eq!(value["interfaces"][1]["sandbox"], "/var/run/netns/c1");
        assert_eq!(value["cniVersion"], "1.1.0");
    }

    #[test]
    fn result_of_a_dual_stack_endpoint_lists_an_address_and_a_default_route_per_family() {
        let w = Wiring {
            host_ifname: "rmn0123456789ab".into(),
            ifname: "eth0".into(),
            netns: "/var/run/netns/c1".into(),
            families: vec![
                Family {
                    address: "10.0.0.2".parse().unwrap(),
                    gateway: "10.0.0.1".parse().unwrap(),
                },
                Family {
                    address: "fd00:10::2".parse().unwrap(),
                    gateway: "fd00:10::1".parse().unwrap(),
                },
            ],
        };
        let wired = Wired {
            host_mac: "0a:00:00:00:00:01".into(),
            container_mac: "0a:00:00:00:00:02".into(),
        };
        let value = serde_json::to_value(mk_result(&w, &wired).into_version("1.0.0")).unwrap();
        assert_eq!(value["ips"][0]["address"], "10.0.0.2/32");
        assert_eq!(value["ips"][1]["address"], "fd00:10::2/128");
        assert_eq!(value["ips"][1]["gateway"], "fd00:10::1");
        assert_eq!(value["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(value["routes"][1]["dst"], "::/0");
        assert_eq!(value["routes"][1]["gw"], "fd00:10::1");
    }
}
