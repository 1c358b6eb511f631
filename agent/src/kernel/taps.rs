//! `tap*` links over rtnetlink: reading them (index, up, addresses) and carrying out
//! [`TapOp`]s. What to put where is decided in [`crate::taps`]; this only does it.
//!
//! What has bitten us (and the CNI plugin, which does the same to veths):
//! - IPv6 addresses need `nodad` (header flag and `IFA_FLAGS`), or they stay tentative
//!   for a second or more and the host does not answer ND for the gateway meanwhile.
//! - `replace` makes an add idempotent; deleting an address the kernel already dropped
//!   (the tap went away with its VM) is `EADDRNOTAVAIL` or `ENODEV`, which is what we
//!   wanted anyway.
//! - An IPv4 route to a link that is down is refused (`ENETDOWN`): the tap is brought up
//!   before its route is added (same round, see [`super::Kernel::apply`]). A tap without
//!   its VM has no carrier, which routes do not mind.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::{AddressMessageBuilder, LinkUnspec};

use super::{netlink_failed, KernelError, Netlink};
use crate::taps::{is_tap, TapLink, TapOp};

const ENODEV: i32 = 19;
const EADDRNOTAVAIL: i32 = 99;

impl Netlink {
    /// Every `tap*` link by name. The address dump is skipped when there is none, so a
    /// host without VMs pays one link dump.
    pub async fn taps(&self) -> Result<BTreeMap<String, TapLink>, KernelError> {
        let mut taps = BTreeMap::new();
        let mut dump = self.handle.link().get().execute();
        while let Some(msg) = dump
            .try_next()
            .await
            .map_err(netlink_failed("dump", "links"))?
        {
            let name = msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(name) => Some(name.clone()),
                _ => None,
            });
            if let Some(name) = name.filter(|n| is_tap(n)) {
                let link = TapLink {
                    index: msg.header.index,
                    up: msg.header.flags.contains(LinkFlags::Up),
                    addresses: Default::default(),
                };
                taps.insert(name, link);
            }
        }
        if taps.is_empty() {
            return Ok(taps);
        }
        let by_index: BTreeMap<u32, String> = taps
            .iter()
            .map(|(name, link)| (link.index, name.clone()))
            .collect();
        let mut dump = self.handle.address().get().execute();
        while let Some(msg) = dump
            .try_next()
            .await
            .map_err(netlink_failed("dump", "addresses"))?
        {
            let Some(name) = by_index.get(&msg.header.index) else {
                continue;
            };
            let ip = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let ip = ip.or_else(|| {
                msg.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })
            });
            if let Some(net) = ip.and_then(|ip| IpNet::new(ip, msg.header.prefix_len).ok()) {
                if let Some(link) = taps.get_mut(name) {
                    link.addresses.insert(net);
                }
            }
        }
        Ok(taps)
    }

    /// Carries out one tap change.
    pub async fn tap(&self, op: &TapOp) -> Result<(), KernelError> {
        let what = op.describe();
        match op {
            TapOp::AddGateway { index, gateway, .. } => {
                let mut add = self
                    .handle
                    .address()
                    .add(*index, *gateway, full_length(*gateway))
                    .replace();
                if gateway.is_ipv6() {
                    let message = add.message_mut();
                    message.header.flags |= AddressHeaderFlags::Nodad;
                    message
                        .attributes
                        .push(AddressAttribute::Flags(AddressFlags::Nodad));
                }
                add.execute()
                    .await
                    .map_err(netlink_failed("add address", &what))
            }
            TapOp::SetUp { index, .. } => self
                .handle
                .link()
                .change(LinkUnspec::new_with_index(*index).up().build())
                .execute()
                .await
                .map_err(netlink_failed("set link up", &what)),
            TapOp::DeleteGateway { index, address, .. } => {
                let message = match address.addr() {
                    IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
                        .index(*index)
                        .address(a, address.prefix_len())
                        .build(),
                    IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
                        .index(*index)
                        .address(a, address.prefix_len())
                        .build(),
                };
                match self.handle.address().del(message).execute().await {
                    Err(e) if matches!(errno(&e), Some(ENODEV | EADDRNOTAVAIL)) => Ok(()),
                    other => other.map_err(netlink_failed("delete address", &what)),
                }
            }
        }
    }
}

fn full_length(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}
