//! Routes, links and addresses over rtnetlink: the only netlink code of the agent.
//!
//! What has bitten us (rtnetlink 0.24, netlink-packet-route 0.34, kernel 6.x):
//! - A route dump ignores the table/protocol in the request unless the socket has
//!   `NETLINK_GET_STRICT_CHK` on; we set it *and* filter on our side (table here, protocol
//!   in the planner), because an older kernel or a change of the crate would otherwise hand
//!   us every route of every table.
//! - We dump the whole main table, not only our protocol: `NLM_F_REPLACE` replaces whatever
//!   route has the same destination and metric, foreign or not, so the planner must see
//!   foreign routes to leave their slots alone.
//! - With strict checking, the header of an IPv4 dump request must have dst/src length,
//!   tos and scope 0 (`Invalid values in header for FIB dump request`), and the type must be
//!   unspec or the dump is filtered to that type.
//! - The table id may be in the header (< 256) or in `RTA_TABLE`; the attribute wins.
//! - A delete matches on scope unless the scope is `NOWHERE` (what `ip route del` sends), so
//!   a scope-link route is not found by a delete built with the default scope universe.
//! - IPv6 routes added without a metric come back with metric 1024 (IPv4: none, i.e. 0);
//!   see [`crate::plan::default_priority`].
//! - A route to an interface that does not exist fails with ENODEV; the planner never asks
//!   for one (it reports it blocked instead). A `via` to an address that is not on-link
//!   fails with ENETUNREACH; that is a real error (wrong `--gateway`) and is reported.
//! - The socket belongs to the namespace it was opened in. With `--netns` it is opened on a
//!   thread inside the namespace; registering it with tokio needs the runtime handle
//!   entered on that thread.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressScope};
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::netns::run_in;
use super::{netlink_failed, KernelError};
use crate::desired::{ROUTE_PROTOCOL, ROUTE_TABLE};
use crate::plan::{default_priority, ObservedRoute};

/// A netlink connection in the agent's namespace.
#[derive(Clone, Debug)]
pub struct Netlink {
    pub(super) handle: Handle,
}

impl Netlink {
    /// Opens the socket (inside `netns` when given) with strict checking on, and spawns its
    /// connection task on the current runtime.
    pub async fn connect(netns: Option<&str>) -> Result<Netlink, KernelError> {
        let runtime = tokio::runtime::Handle::current();
        let opened = run_in(netns, move || {
            let _entered = runtime.enter();
            rtnetlink::new_connection_with_strict_check()
        })
        .map_err(|source| KernelError::Netns {
            netns: netns.unwrap_or_default().to_string(),
            source,
        })?;
        let (connection, handle, _) = opened.map_err(KernelError::Socket)?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// The routes of the main table, both families, ours and foreign: the planner needs the
    /// foreign ones to avoid replacing them (see [`mod@crate::plan`]).
    pub async fn main_routes(&self) -> Result<Vec<ObservedRoute>, KernelError> {
        let mut routes = Vec::new();
        let filters = [
            filter(RouteMessageBuilder::<Ipv4Addr>::new()),
            filter(RouteMessageBuilder::<Ipv6Addr>::new()),
        ];
        for request in filters {
            let mut dump = self.handle.route().get(request).execute();
            while let Some(msg) = dump
                .try_next()
                .await
                .map_err(netlink_failed("dump", "routes"))?
            {
                if let Some(route) = parse_route(&msg) {
                    // The kernel filtered already; this keeps the promise if it did not.
                    if route.table == ROUTE_TABLE {
                        routes.push(route);
                    }
                }
            }
        }
        Ok(routes)
    }

    /// Interface name -> index.
    pub async fn links(&self) -> Result<BTreeMap<String, u32>, KernelError> {
        let mut links = BTreeMap::new();
        let mut dump = self.handle.link().get().execute();
        while let Some(msg) = dump
            .try_next()
            .await
            .map_err(netlink_failed("dump", "links"))?
        {
            for attr in &msg.attributes {
                if let LinkAttribute::IfName(name) = attr {
                    links.insert(name.clone(), msg.header.index);
                }
            }
        }
        Ok(links)
    }

    /// The subnets of the host's addresses, loopback and link-local scopes excluded.
    pub async fn connected(&self) -> Result<Vec<IpNet>, KernelError> {
        let mut nets = Vec::new();
        let mut dump = self.handle.address().get().execute();
        while let Some(msg) = dump
            .try_next()
            .await
            .map_err(netlink_failed("dump", "addresses"))?
        {
            if matches!(msg.header.scope, AddressScope::Host | AddressScope::Link) {
                continue;
            }
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
            // point-to-point links and equal to IFA_LOCAL otherwise.
            let local = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(ip) => Some(*ip),
                _ => None,
            });
            let address = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            if let Some(ip) = local.or(address) {
                if let Ok(net) = IpNet::new(ip, msg.header.prefix_len) {
                    nets.push(net.trunc());
                }
            }
        }
        nets.sort();
        nets.dedup();
        Ok(nets)
    }

    /// Adds or replaces our route to `dst` (NLM_F_CREATE | NLM_F_REPLACE: idempotent).
    pub async fn replace(
        &self,
        dst: IpNet,
        gateway: Option<IpAddr>,
        oif: Option<u32>,
    ) -> Result<(), KernelError> {
        let what = match (gateway, oif) {
            (Some(gw), _) => format!("{dst} via {gw}"),
            (None, oif) => format!("{dst} dev #{}", oif.unwrap_or_default()),
        };
        let invalid = invalid(&what);
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .map_err(&invalid)?
            .table_id(ROUTE_TABLE)
            .protocol(RouteProtocol::from(ROUTE_PROTOCOL));
        if let Some(gw) = gateway {
            builder = builder.gateway(gw).map_err(&invalid)?;
        }
        if let Some(oif) = oif {
            builder = builder.output_interface(oif);
            if gateway.is_none() {
                builder = builder.scope(RouteScope::Link);
            }
        }
        self.handle
            .route()
            .add(builder.build())
            .replace()
            .execute()
            .await
            .map_err(netlink_failed("replace route", &what))
    }

    /// Deletes exactly `route` (matched on destination, metric, next hop and protocol).
    pub async fn delete(&self, route: &ObservedRoute) -> Result<(), KernelError> {
        let what = route.describe();
        let invalid = invalid(&what);
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(route.dst.addr(), route.dst.prefix_len())
            .map_err(&invalid)?
            .table_id(route.table)
            .protocol(RouteProtocol::from(route.protocol))
            .scope(RouteScope::NoWhere);
        if route.priority != 0 {
            builder = builder.priority(route.priority);
        }
        if let Some(gw) = route.gateway {
            builder = builder.gateway(gw).map_err(&invalid)?;
        }
        if let Some(oif) = route.oif {
            builder = builder.output_interface(oif);
        }
        self.handle
            .route()
            .del(builder.build())
            .execute()
            .await
            .map_err(netlink_failed("delete route", &what))
    }
}

/// The builder's refusal (a prefix of the wrong family) as our error.
fn invalid<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> KernelError + '_ {
    move |e| KernelError::Invalid {
        what: what.to_string(),
        detail: e.to_string(),
    }
}

/// The dump request: table main, any protocol (0 filters nothing), any type.
fn filter<T>(builder: RouteMessageBuilder<T>) -> RouteMessage {
    builder
        .table_id(ROUTE_TABLE)
        .protocol(RouteProtocol::Unspec)
        .scope(RouteScope::Universe)
        .kind(RouteType::Unspec)
        .build()
}

/// A route message as an [`ObservedRoute`]; `None` for families and shapes we never add
/// (multipath, MPLS), which therefore can never be mistaken for ours.
fn parse_route(msg: &RouteMessage) -> Option<ObservedRoute> {
    let v6 = match msg.header.address_family {
        netlink_packet_route::AddressFamily::Inet => false,
        netlink_packet_route::AddressFamily::Inet6 => true,
        _ => return None,
    };
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    let mut priority = None;
    let mut table = msg.header.table as u32;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst = Some(addr(a)?),
            RouteAttribute::Gateway(a) => gateway = Some(addr(a)?),
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Priority(p) => priority = Some(*p),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    let dst = dst.unwrap_or(if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    let dst = IpNet::new(dst, msg.header.destination_prefix_length).ok()?;
    Some(ObservedRoute {
        priority: priority.unwrap_or(if v6 { default_priority(&dst) } else { 0 }),
        dst,
        gateway,
        oif,
        table,
        protocol: u8::from(msg.header.protocol),
    })
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}
