//! Addresses and routes on a link: added, and read back for CHECK.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{request, LinkState, NetlinkError, RouteState};

/// Adds `address` with its full prefix length; replacing makes a retry a no-op.
pub(super) async fn add_address(
    h: &Handle,
    link: &LinkState,
    address: IpAddr,
) -> Result<(), NetlinkError> {
    let mut add = h
        .address()
        .add(link.index, address, host_prefix_len(address))
        .replace();
    if address.is_ipv6() {
        let message = add.message_mut();
        message.header.flags |= AddressHeaderFlags::Nodad;
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    add.execute().await.map_err(request(format!(
        "adding address {address}/{} to {}",
        host_prefix_len(address),
        link.name
    )))
}

pub(super) async fn addresses(h: &Handle, index: u32) -> Result<Vec<IpNet>, NetlinkError> {
    let messages: Vec<AddressMessage> = h
        .address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(request(format!("listing addresses of link {index}")))?;
    Ok(messages
        .iter()
        .filter(|m| m.header.index == index)
        .filter_map(|m| {
            let mut local = None;
            let mut address = None;
            for attribute in &m.attributes {
                match attribute {
                    AddressAttribute::Local(ip) => local = Some(*ip),
                    AddressAttribute::Address(ip) => address = Some(*ip),
                    _ => {}
                }
            }
            IpNet::new(local.or(address)?, m.header.prefix_len).ok()
        })
        .collect())
}

/// Main-table unicast routes of `like`'s family. The kernel ignores dump filters without
/// strict checking, so filtering happens here.
pub(super) async fn routes(h: &Handle, like: IpAddr) -> Result<Vec<RouteState>, NetlinkError> {
    let query = match like {
        IpAddr::V4(_) => RouteMessageBuilder::<Ipv4Addr>::new().build(),
        IpAddr::V6(_) => RouteMessageBuilder::<Ipv6Addr>::new().build(),
    };
    let messages: Vec<RouteMessage> = h
        .route()
        .get(query)
        .execute()
        .try_collect()
        .await
        .map_err(request("listing routes"))?;
    Ok(messages.iter().filter_map(route_state).collect())
}

pub(super) fn route_state(m: &RouteMessage) -> Option<RouteState> {
    let mut table = u32::from(m.header.table);
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    for attribute in &m.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(a) => dst = route_ip(a),
            RouteAttribute::Gateway(a) => gateway = route_ip(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    let dst = match (dst, m.header.address_family) {
        (Some(ip), _) => ip,
        (None, AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        (None, _) => return None,
    };
    Some(RouteState {
        dst: IpNet::new(dst, m.header.destination_prefix_length).ok()?,
        gateway,
        oif,
        scope: u8::from(m.header.scope),
        protocol: u8::from(m.header.protocol),
    })
}

pub(super) fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

pub(super) fn host_prefix_len(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}
