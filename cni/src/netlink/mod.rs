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
//!
//! # Layout
//! - this module: the verbs (`wire`, `unwire`, `observe`) and their types and errors.
//! - `thread`: netlink sockets, in the host namespace or on a thread inside `CNI_NETNS`.
//! - `link`: the veth pair and the links' state.
//! - `address`: addresses and routes, set and read back.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

mod address;
mod link;
mod thread;

use address::{add_address, addresses, routes};
use link::{configure_container, create_veth, delete_link, link_by_name, set_up};
use thread::{connect, in_netns, open_netns, worker};

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
    /// One address (and its gateway) per IP family the endpoint holds: two in a dual-stack
    /// cluster, the first space's first.
    pub families: Vec<Family>,
}

/// An endpoint's address in one IP family and that family's segment gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Family {
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
    /// Every main-table route of the endpoint's families in the container.
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
    for f in &w.families {
        add_address(&h, host, f.gateway).await?;
    }

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
    let (ifname, families) = (w.ifname.clone(), w.families.clone());
    let (container, container_addresses, container_routes) =
        in_netns(&w.netns, move |h| async move {
            let Some(link) = link_by_name(&h, &ifname).await? else {
                return Ok((None, Vec::new(), Vec::new()));
            };
            let addrs = addresses(&h, link.index).await?;
            let mut all = Vec::new();
            for f in &families {
                all.extend(routes(&h, f.address).await?);
            }
            Ok((Some(link), addrs, all))
        })
        .await?;
    observed.container = container;
    observed.container_addresses = container_addresses;
    observed.container_routes = container_routes;
    Ok(observed)
}
