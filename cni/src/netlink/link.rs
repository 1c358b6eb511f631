//! The veth pair: created with its peer inside the container namespace, configured there,
//! and links read back as [`LinkState`].

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::address::host_prefix_len;
use super::address::{add_address, routes};
use super::thread::in_netns;
use super::{
    errno, request, Family, LinkState, NetlinkError, RouteState, Wiring, EEXIST, ENODEV, ENOENT,
};

pub(super) async fn create_veth(
    h: &Handle,
    host_ifname: &str,
    ifname: &str,
    netns: &Path,
    ns: &File,
) -> Result<(), NetlinkError> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(ifname.to_string())
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let message = LinkVeth::new(host_ifname, ifname)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    match h.link().add(message).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(EEXIST) => {
            let peer_name = ifname.to_string();
            let taken = in_netns(
                netns,
                move |h| async move { link_by_name(&h, &peer_name).await },
            )
            .await?
            .is_some();
            if taken {
                Err(NetlinkError::IfnameTaken {
                    ifname: ifname.to_string(),
                    netns: netns.to_path_buf(),
                })
            } else {
                Err(request(format!(
                    "creating veth {host_ifname} (another ADD of the same endpoint may be running)"
                ))(e))
            }
        }
        Err(e) => Err(request(format!(
            "creating veth {host_ifname} with peer {ifname} in {}",
            netns.display()
        ))(e)),
    }
}

pub(super) async fn configure_container(h: &Handle, w: &Wiring) -> Result<LinkState, NetlinkError> {
    let link = link_by_name(h, &w.ifname)
        .await?
        .ok_or_else(|| NetlinkError::Vanished {
            what: format!("container interface {}", w.ifname),
        })?;
    set_up(h, &link).await?;
    for f in &w.families {
        configure_family(h, &link, w, f).await?;
    }
    Ok(link)
}

/// One family's address, the route to its gateway and the default route via it.
async fn configure_family(
    h: &Handle,
    link: &LinkState,
    w: &Wiring,
    f: &Family,
) -> Result<(), NetlinkError> {
    add_address(h, link, f.address).await?;

    let mut to_gateway = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(f.gateway, host_prefix_len(f.gateway))
        .expect("an address with its full prefix length is a valid destination")
        .output_interface(link.index)
        .protocol(RouteProtocol::Static);
    if f.gateway.is_ipv4() {
        to_gateway = to_gateway.scope(RouteScope::Link);
    }
    h.route()
        .add(to_gateway.build())
        .replace()
        .execute()
        .await
        .map_err(request(format!(
            "adding route {} dev {} in {}",
            f.gateway,
            w.ifname,
            w.netns.display()
        )))?;

    let unspecified = match f.gateway {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let default = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(unspecified, 0)
        .expect("the unspecified address is a valid destination")
        .gateway(f.gateway)
        .expect("the gateway has the destination's family")
        .output_interface(link.index)
        .protocol(RouteProtocol::Static)
        .build();
    match h.route().add(default).execute().await {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(EEXIST) => {
            // Ours from a previous ADD is fine; anybody else's is not ours to replace.
            let existing: Vec<RouteState> = routes(h, f.gateway)
                .await?
                .into_iter()
                .filter(|r| r.dst.prefix_len() == 0)
                .collect();
            let ours = existing
                .iter()
                .any(|r| r.oif == Some(link.index) && r.gateway == Some(f.gateway));
            if !ours {
                return Err(NetlinkError::DefaultRouteTaken {
                    netns: w.netns.clone(),
                    existing: existing
                        .iter()
                        .map(|r| match r.gateway {
                            Some(g) => format!("via {g}"),
                            None => "without a gateway".to_string(),
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Err(e) => {
            return Err(request(format!(
                "adding default route via {} dev {} in {}",
                f.gateway,
                w.ifname,
                w.netns.display()
            ))(e))
        }
    }
    Ok(())
}

pub(super) async fn link_by_name(
    h: &Handle,
    name: &str,
) -> Result<Option<LinkState>, NetlinkError> {
    let result = h
        .link()
        .get()
        .match_name(name.to_string())
        .execute()
        .try_next()
        .await;
    match result {
        Ok(Some(message)) => Ok(Some(link_state(&message))),
        Ok(None) => Ok(None),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(request(format!("looking up link {name}"))(e)),
    }
}

pub(super) fn link_state(message: &LinkMessage) -> LinkState {
    let mut state = LinkState {
        index: message.header.index,
        name: String::new(),
        mac: String::new(),
        up: message.header.flags.contains(LinkFlags::Up),
        veth: false,
        peer_index: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => state.name = name.clone(),
            LinkAttribute::Address(mac) => state.mac = format_mac(mac),
            LinkAttribute::Link(index) => state.peer_index = Some(*index),
            LinkAttribute::LinkInfo(infos) => {
                state.veth = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)));
            }
            _ => {}
        }
    }
    state
}

pub(super) fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub(super) async fn set_up(h: &Handle, link: &LinkState) -> Result<(), NetlinkError> {
    h.link()
        .change(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(request(format!("setting link {} up", link.name)))
}

pub(super) async fn delete_link(h: &Handle, link: &LinkState) -> Result<(), NetlinkError> {
    match h.link().del(link.index).execute().await {
        Ok(()) => Ok(()),
        // Gone meanwhile (its peer's namespace was deleted): what we wanted.
        Err(e) if matches!(errno(&e), Some(ENODEV) | Some(ENOENT)) => Ok(()),
        Err(e) => Err(request(format!("deleting link {}", link.name))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_lowercase_colon_separated() {
        assert_eq!(
            format_mac(&[0x0a, 0xbc, 0, 1, 0xff, 0x10]),
            "0a:bc:00:01:ff:10"
        );
    }
}
