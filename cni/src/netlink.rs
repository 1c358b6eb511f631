//! Every kernel operation of the plugin, over rtnetlink: wiring an endpoint's veth pair,
//! removing it, and reading back what is there for CHECK.
//!
//! The host side is worked on in the plugin's own network namespace (the host's). The
//! container side is worked on from a dedicated thread that enters `CNI_NETNS` with
//! `setns(2)` and opens its own netlink socket there; the thread is never reused, so no other
//! code ever runs in the container's namespace by accident.
//!
//! What an endpoint looks like when wired (`A` its address, `G` its segment's gateway):
//! ```text
//! host:      rmn<hash> up, G/32 (G/128 nodad) on it
//! container: <CNI_IFNAME> up, A/32 (A/128 nodad); G/32 dev <CNI_IFNAME> scope link;
//!            default via G dev <CNI_IFNAME>
//! ```
//! The host's route to the endpoint (`A/32 dev rmn<hash> scope link proto 124`) is not the
//! plugin's: the host's agent adds it once it has programmed the endpoint's isolation, so a
//! new endpoint is not even routed before it is filtered (and the agent's table drops any
//! `rmn*` interface it does not know yet, should someone route to it anyway).
//! The gateway address on every host-side veth makes the host answer ARP/ND for G on each
//! endpoint link without any L2 between endpoints, whatever routes the host has.
//!
//! What has bitten us:
//! - A netlink socket belongs to the namespace of the thread that opened it: the container
//!   side needs its own socket, opened after `setns`.
//! - The veth peer is created directly inside the container namespace under its final name
//!   (`peer name eth0 netns X`): a temporary name in the host could collide, and a crash
//!   between create and move would leave it behind in the host.
//! - A veth's `IFLA_LINK` is the peer's index in the peer's namespace; together with the
//!   name it tells our pair from a stale one after a retried ADD.
//! - IPv6 addresses need `nodad`, or they are unusable (tentative) for a second or more.
//! - IPv6 reports every route with universe scope, whatever was asked.

use std::fs::File;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage,
};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};
use netlink_packet_route::AddressFamily;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// `RT_SCOPE_LINK`.
pub const SCOPE_LINK: u8 = 253;
/// `RTPROT_STATIC`: the protocol of the container-side routes (ours is only for the host).
pub const PROTOCOL_STATIC: u8 = 4;

const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const ENOENT: i32 = 2;

/// What an endpoint's wiring must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wiring {
    /// `endpoint_ifname(endpoint id)`, in the host namespace.
    pub host_ifname: String,
    /// `CNI_IFNAME`, in the container namespace.
    pub ifname: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
    pub address: IpAddr,
    pub gateway: IpAddr,
}

/// What [`wire`] made: the two ends' MAC addresses, for the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wired {
    pub host_mac: String,
    pub container_mac: String,
}

/// A link as read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub mac: String,
    pub up: bool,
    pub veth: bool,
    /// `IFLA_LINK`: for a veth, the peer's index in the peer's namespace.
    pub peer_index: Option<u32>,
}

/// A main-table route as read from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteState {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub scope: u8,
    pub protocol: u8,
}

/// Everything CHECK compares, read from both namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub host: Option<LinkState>,
    pub host_addresses: Vec<IpNet>,
    pub container: Option<LinkState>,
    pub container_addresses: Vec<IpNet>,
    /// Every main-table route of the endpoint's family in the container.
    pub container_routes: Vec<RouteState>,
}

/// A kernel operation that failed. Retrying may help when another process raced us; the
/// message names the step and the interface or namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("network namespace {} does not exist", path.display())]
    NetnsMissing { path: PathBuf },
    #[error("cannot open network namespace {}: {source}", path.display())]
    NetnsOpen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot enter network namespace {}: {source}", path.display())]
    NetnsEnter {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("cannot start a worker for network namespace {}: {source}", path.display())]
    Worker {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the worker in network namespace {} panicked", path.display())]
    WorkerPanicked { path: PathBuf },
    #[error("{step}: {}", describe(source))]
    Request {
        step: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{what} disappeared while being configured")]
    Vanished { what: String },
    #[error(
        "interface {ifname} already exists in network namespace {} and is not romana's",
        netns.display()
    )]
    IfnameTaken { ifname: String, netns: PathBuf },
    #[error(
        "network namespace {} already has a default route ({existing}); not replacing it",
        netns.display()
    )]
    DefaultRouteTaken { netns: PathBuf, existing: String },
}

// === impl NetlinkError ===

impl NetlinkError {
    /// Conflicts with something in the container that romana did not make.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            NetlinkError::IfnameTaken { .. } | NetlinkError::DefaultRouteTaken { .. }
        )
    }
}

fn request(step: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let step = step.into();
    move |source| NetlinkError::Request { step, source }
}

/// The kernel's errno of a failed request, if it was one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
        _ => None,
    }
}

/// rtnetlink's own text for a kernel error is a debug form; the errno's text is what a
/// person needs ("File exists (os error 17)").
fn describe(e: &rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io().to_string(),
        other => other.to_string(),
    }
}

// === the verbs ===

/// Fails with [`NetlinkError::NetnsMissing`] unless `netns` can be opened. ADD asks before
/// allocating, so a missing namespace costs no address.
pub fn netns_exists(netns: &Path) -> Result<(), NetlinkError> {
    open_netns(netns).map(drop)
}

/// Makes the endpoint's wiring exist, reusing whatever a previous ADD of the same endpoint
/// left. Run in the host namespace. [`prepare`] then [`finish`].
pub async fn wire(w: &Wiring) -> Result<Wired, NetlinkError> {
    let host = prepare(&w.host_ifname, &w.ifname, &w.netns).await?;
    finish(&host, w).await
}

/// The first half of [`wire`], which needs no address: makes the veth pair `host_ifname` -
/// `ifname` (in `netns`) exist, reusing ours from a previous ADD, and returns the host side.
/// ADD runs it while ipam allocates the address.
pub async fn prepare(
    host_ifname: &str,
    ifname: &str,
    netns: &Path,
) -> Result<LinkState, NetlinkError> {
    let ns = open_netns(netns)?;
    let h = connect()?;

    if let Some(host) = link_by_name(&h, host_ifname).await? {
        let peer_name = ifname.to_string();
        let peer = in_netns(
            netns,
            move |h| async move { link_by_name(&h, &peer_name).await },
        )
        .await?;
        let ours = host.veth && peer.is_some_and(|p| p.peer_index == Some(host.index));
        if ours {
            return Ok(host);
        }
        // A pair left by an ADD into another namespace (or half made): start over.
        tracing::info!(link = %host_ifname, "replacing a stale endpoint link");
        delete_link(&h, &host).await?;
    }
    create_veth(&h, host_ifname, ifname, netns, &ns).await?;
    link_by_name(&h, host_ifname)
        .await?
        .ok_or_else(|| NetlinkError::Vanished {
            what: format!("host link {host_ifname}"),
        })
}

/// The second half of [`wire`]: addresses and routes on the pair [`prepare`] made.
pub async fn finish(host: &LinkState, w: &Wiring) -> Result<Wired, NetlinkError> {
    let h = connect()?;
    set_up(&h, host).await?;
    add_address(&h, host, w.gateway).await?;

    let wc = w.clone();
    let container = in_netns(&w.netns, move |h| async move {
        configure_container(&h, &wc).await
    })
    .await?;
    Ok(Wired {
        host_mac: host.mac.clone(),
        container_mac: container.mac,
    })
}

/// Runs `f` in the host namespace on a thread of its own. Creating or deleting a veth
/// holds the netlink request's syscall for milliseconds of kernel work; on the plugin's
/// one-thread runtime that would stall its RPCs, on this thread it overlaps them.
pub async fn on_thread<T, F, Fut>(f: F) -> Result<T, NetlinkError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    worker(None, PathBuf::from("(host)"), move |_| f()).await
}

/// Removes an endpoint's host link (its peer goes with it, and so do the routes through
/// it). `Ok(false)` when there was nothing to remove.
pub async fn unwire(host_ifname: &str) -> Result<bool, NetlinkError> {
    let h = connect()?;
    match link_by_name(&h, host_ifname).await? {
        None => Ok(false),
        Some(link) => {
            delete_link(&h, &link).await?;
            Ok(true)
        }
    }
}

/// Reads what CHECK compares with the wiring.
pub async fn observe(w: &Wiring) -> Result<Observed, NetlinkError> {
    let h = connect()?;
    let mut observed = Observed::default();
    if let Some(host) = link_by_name(&h, &w.host_ifname).await? {
        observed.host_addresses = addresses(&h, host.index).await?;
        observed.host = Some(host);
    }
    let (ifname, address) = (w.ifname.clone(), w.address);
    let (container, container_addresses, container_routes) =
        in_netns(&w.netns, move |h| async move {
            let Some(link) = link_by_name(&h, &ifname).await? else {
                return Ok((None, Vec::new(), Vec::new()));
            };
            let addrs = addresses(&h, link.index).await?;
            let routes = routes(&h, address).await?;
            Ok((Some(link), addrs, routes))
        })
        .await?;
    observed.container = container;
    observed.container_addresses = container_addresses;
    observed.container_routes = container_routes;
    Ok(observed)
}

// === steps ===

fn open_netns(path: &Path) -> Result<File, NetlinkError> {
    File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            NetlinkError::NetnsMissing {
                path: path.to_path_buf(),
            }
        } else {
            NetlinkError::NetnsOpen {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn connect() -> Result<Handle, NetlinkError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
    tokio::spawn(connection);
    Ok(handle)
}

/// Runs `f` with a netlink handle inside `netns`, on a thread of its own.
async fn in_netns<T, F, Fut>(netns: &Path, f: F) -> Result<T, NetlinkError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    let ns = open_netns(netns)?;
    worker(Some(ns), netns.to_path_buf(), move |h| {
        f(h.expect("opened in the namespace"))
    })
    .await
}

/// Runs `f` on a new thread with a runtime of its own: inside `ns` (entered with setns,
/// then given a netlink handle opened there) when given, else in the host namespace with
/// no handle. `path` names the namespace in errors.
async fn worker<T, F, Fut>(ns: Option<File>, path: PathBuf, f: F) -> Result<T, NetlinkError>
where
    T: Send + 'static,
    F: FnOnce(Option<Handle>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let worker_path = path.clone();
    std::thread::Builder::new()
        .name("romana-cni-netns".into())
        .spawn(move || {
            let run = || -> Result<T, NetlinkError> {
                let entered = ns.is_some();
                if let Some(ns) = ns {
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |source| NetlinkError::NetnsEnter {
                            path: worker_path.clone(),
                            source,
                        },
                    )?;
                }
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .map_err(|source| NetlinkError::Worker {
                        path: worker_path.clone(),
                        source,
                    })?;
                runtime.block_on(async move {
                    let handle = if entered { Some(connect()?) } else { None };
                    f(handle).await
                })
            };
            let _ = tx.send(run());
        })
        .map_err(|source| NetlinkError::Worker {
            path: path.clone(),
            source,
        })?;
    rx.await
        .map_err(|_| NetlinkError::WorkerPanicked { path })?
}

async fn create_veth(
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

async fn configure_container(h: &Handle, w: &Wiring) -> Result<LinkState, NetlinkError> {
    let link = link_by_name(h, &w.ifname)
        .await?
        .ok_or_else(|| NetlinkError::Vanished {
            what: format!("container interface {}", w.ifname),
        })?;
    set_up(h, &link).await?;
    add_address(h, &link, w.address).await?;

    let mut to_gateway = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(w.gateway, host_prefix_len(w.gateway))
        .expect("an address with its full prefix length is a valid destination")
        .output_interface(link.index)
        .protocol(RouteProtocol::Static);
    if w.gateway.is_ipv4() {
        to_gateway = to_gateway.scope(RouteScope::Link);
    }
    h.route()
        .add(to_gateway.build())
        .replace()
        .execute()
        .await
        .map_err(request(format!(
            "adding route {} dev {} in {}",
            w.gateway,
            w.ifname,
            w.netns.display()
        )))?;

    let unspecified = match w.gateway {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let default = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(unspecified, 0)
        .expect("the unspecified address is a valid destination")
        .gateway(w.gateway)
        .expect("the gateway has the destination's family")
        .output_interface(link.index)
        .protocol(RouteProtocol::Static)
        .build();
    match h.route().add(default).execute().await {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(EEXIST) => {
            // Ours from a previous ADD is fine; anybody else's is not ours to replace.
            let existing: Vec<RouteState> = routes(h, w.gateway)
                .await?
                .into_iter()
                .filter(|r| r.dst.prefix_len() == 0)
                .collect();
            let ours = existing
                .iter()
                .any(|r| r.oif == Some(link.index) && r.gateway == Some(w.gateway));
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
                w.gateway,
                w.ifname,
                w.netns.display()
            ))(e))
        }
    }
    Ok(link)
}

fn host_prefix_len(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkState>, NetlinkError> {
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

fn link_state(message: &LinkMessage) -> LinkState {
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

fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

async fn set_up(h: &Handle, link: &LinkState) -> Result<(), NetlinkError> {
    h.link()
        .change(LinkUnspec::new_with_index(link.index).up().build())
        .execute()
        .await
        .map_err(request(format!("setting link {} up", link.name)))
}

async fn delete_link(h: &Handle, link: &LinkState) -> Result<(), NetlinkError> {
    match h.link().del(link.index).execute().await {
        Ok(()) => Ok(()),
        // Gone meanwhile (its peer's namespace was deleted): what we wanted.
        Err(e) if matches!(errno(&e), Some(ENODEV) | Some(ENOENT)) => Ok(()),
        Err(e) => Err(request(format!("deleting link {}", link.name))(e)),
    }
}

/// Adds `address` with its full prefix length; replacing makes a retry a no-op.
async fn add_address(h: &Handle, link: &LinkState, address: IpAddr) -> Result<(), NetlinkError> {
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

async fn addresses(h: &Handle, index: u32) -> Result<Vec<IpNet>, NetlinkError> {
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
async fn routes(h: &Handle, like: IpAddr) -> Result<Vec<RouteState>, NetlinkError> {
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

fn route_state(m: &RouteMessage) -> Option<RouteState> {
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

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
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
