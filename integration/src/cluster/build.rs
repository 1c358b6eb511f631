//! [`cluster()`]: the builder, and the fabric it wires (spine, leaves, host links and the
//! leaves' and spine's static routes).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;

use anyhow::{bail, Context};
use romana_proto::pb;

use super::{binary, channel, Cluster, HostNs};
use crate::netns::{Lab, Netns};
use crate::ControlPlane;

/// Builds a [`Cluster`]; see the module docs for the shape.
pub struct ClusterBuilder {
    racks: u32,
    hosts_per_rack: u32,
    etcd_members: usize,
    config: pb::ClusterConfig,
}

/// Starts describing a cluster: 1 rack of 2 hosts in 10.0.0.0/8 with 8/4/4 bits (2 of the
/// host bits number racks).
pub fn cluster() -> ClusterBuilder {
    ClusterBuilder {
        racks: 1,
        hosts_per_rack: 2,
        etcd_members: 1,
        config: default_layout(),
    }
}

/// `romanactl config init` with the MISSION example's bits (8 host, 4 tenant, 4 segment) in
/// 10.0.0.0/8 and no rack bits: the layout the command-line tests set up.
pub const CONFIG_INIT: [&str; 10] = [
    "config",
    "init",
    "--address-space",
    "10.0.0.0/8",
    "--host-bits",
    "8",
    "--tenant-bits",
    "4",
    "--segment-bits",
    "4",
];

/// The layout a [`cluster()`] gets unless told otherwise: the MISSION example's bits
/// (8 host, 2 of them rack, 4 tenant, 4 segment) in 10.0.0.0/8.
pub fn default_layout() -> pb::ClusterConfig {
    pb::ClusterConfig {
        address_space: "10.0.0.0/8".into(),
        host_bits: 8,
        rack_bits: 2,
        tenant_bits: 4,
        segment_bits: 4,
        ..Default::default()
    }
}

impl ClusterBuilder {
    pub fn racks(mut self, racks: u32) -> Self {
        self.racks = racks;
        self
    }

    /// Hosts per rack.
    pub fn hosts(mut self, hosts_per_rack: u32) -> Self {
        self.hosts_per_rack = hosts_per_rack;
        self
    }

    /// Run etcd as a cluster of `members` (1 by default); agents get every member.
    pub fn etcd_members(mut self, members: usize) -> Self {
        self.etcd_members = members;
        self
    }

    pub fn layout(mut self, config: pb::ClusterConfig) -> Self {
        self.config = config;
        self
    }

    /// Builds the cluster and runs `body` on it inside the management namespace.
    pub fn run<T, F, Fut>(self, body: F) -> anyhow::Result<T>
    where
        T: Send,
        F: FnOnce(Cluster) -> Fut + Send,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        for bin in ["romana-agent", "romana-cni"] {
            let path = binary(bin);
            if !path.exists() {
                bail!(
                    "{} is missing: build the binaries first (cargo build --bins)",
                    path.display()
                );
            }
        }
        Lab::new()?.run_owned(move |lab| async move {
            let cluster = self.build(lab).await?;
            body(cluster).await
        })?
    }

    async fn build(self, mut lab: Lab) -> anyhow::Result<Cluster> {
        let plane = ControlPlane::builder()
            .on(lab.mgmt_ip())
            .etcd_members(self.etcd_members)
            .start()
            .await?;
        let mut root = pb::root_client::RootClient::new(channel(&plane.root_url()).await?);
        root.init_config(pb::InitConfigRequest {
            config: Some(self.config.clone()),
        })
        .await
        .context("setting the layout")?;

        let dual = !self.config.second_address_space.is_empty();
        let spine = Netns::create("spine")?;
        forwarding(&spine, dual)?;
        let mut leaves = Vec::new();
        let mut hosts = Vec::new();
        let mut topology = pb::topology_client::TopologyClient::new(
            channel(&plane.url(crate::Service::Topology)).await?,
        );
        for r in 0..self.racks {
            let leaf = Netns::create(&format!("leaf{r}"))?;
            forwarding(&leaf, dual)?;
            let (spine_ip, leaf_ip) = (
                format!("192.168.255.{}", 4 * r + 1),
                format!("192.168.255.{}", 4 * r + 2),
            );
            let up = format!("up{r}");
            spine.add_veth(&format!("leaf{r}"), &leaf, &up)?;
            spine.ip(&[
                "addr",
                "add",
                &format!("{spine_ip}/30"),
                "dev",
                &format!("leaf{r}"),
            ])?;
            spine.ip(&["link", "set", &format!("leaf{r}"), "up"])?;
            leaf.ip(&["addr", "add", &format!("{leaf_ip}/30"), "dev", &up])?;
            leaf.ip(&["link", "set", &up, "up"])?;
            leaf.ip(&["route", "add", "default", "via", &spine_ip])?;
            leaf.ip(&["link", "add", "rack", "type", "bridge"])?;
            leaf.ip(&["addr", "add", &format!("192.168.{r}.1/24"), "dev", "rack"])?;
            leaf.ip(&["link", "set", "rack", "up"])?;
            if dual {
                let (spine6, leaf6) = (v6_spine_side(r), v6_leaf_uplink(r));
                let link = format!("leaf{r}");
                add_v6(&spine, &format!("{spine6}/126"), &link)?;
                add_v6(&leaf, &format!("{leaf6}/126"), &up)?;
                leaf.ip(&["-6", "route", "add", "default", "via", &spine6])?;
                add_v6(&leaf, &format!("{}/64", v6_leaf(r)), "rack")?;
            }
            for i in 0..self.hosts_per_rack {
                let name = format!("r{r}h{i}");
                let ns = Netns::create(&name)?;
                let mgmt_ip = lab.attach(&ns)?;
                forwarding(&ns, dual)?;
                let ip: IpAddr = format!("192.168.{r}.{}", 11 + i).parse()?;
                let port = format!("h{i}");
                leaf.add_veth(&port, &ns, "fabric0")?;
                leaf.ip(&["link", "set", &port, "master", "rack", "up"])?;
                ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "fabric0"])?;
                ns.ip(&["link", "set", "fabric0", "up"])?;
                let second_ip: Option<IpAddr> = match dual {
                    true => Some(format!("fd00:ff:{r}::{}", 11 + i).parse()?),
                    false => None,
                };
                if let Some(v6) = second_ip {
                    add_v6(&ns, &format!("{v6}/64"), "fabric0")?;
                }
                topology
                    .add_host(pb::AddHostRequest {
                        name: name.clone(),
                        ip: ip.to_string(),
                        rack: Some(r),
                        second_ip: second_ip.map(|a| a.to_string()).unwrap_or_default(),
                    })
                    .await
                    .with_context(|| format!("adding host {name}"))?;
                hosts.push(HostNs {
                    name,
                    rack: r,
                    ip,
                    second_ip,
                    mgmt_ip,
                    leaf_port: port,
                    ns,
                    agent: None,
                });
            }
            leaves.push(leaf);
        }
        let mut cluster = Cluster {
            endpoints: BTreeMap::new(),
            hosts,
            plane,
            leaves,
            spine,
            lab,
        };
        cluster.apply_fabric_routes().await?;
        for i in 0..cluster.hosts.len() {
            cluster.start_agent(i)?;
        }
        Ok(cluster)
    }
}

/// Rack `r`'s leaf on its rack's IPv6 bridge: the hosts' IPv6 gateway.
pub(super) fn v6_leaf(r: u32) -> String {
    format!("fd00:ff:{r}::1")
}

fn v6_spine_side(r: u32) -> String {
    format!("fd00:ff:255::{:x}", 4 * r + 1)
}

fn v6_leaf_uplink(r: u32) -> String {
    format!("fd00:ff:255::{:x}", 4 * r + 2)
}

/// `ip addr add CIDR dev DEV nodad`: a tentative address would race the first packets.
fn add_v6(ns: &Netns, cidr: &str, dev: &str) -> anyhow::Result<()> {
    ns.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"])
        .map(|_| ())
}

/// Routing on in `ns`, for IPv6 too in a dual-stack fabric.
fn forwarding(ns: &Netns, dual: bool) -> anyhow::Result<()> {
    ns.sysctl("net.ipv4.ip_forward=1")?;
    if dual {
        ns.sysctl("net.ipv6.conf.all.forwarding=1")?;
    }
    Ok(())
}

/// `ip route replace PREFIX via VIA`. Only a dual-stack fabric has IPv6 next hops: without
/// one, the prefixes of an IPv6 layout cannot be routed over the IPv4 fabric (this kernel
/// refuses IPv4 next hops for IPv6 routes), so they are left out, and IPv6 endpoints of
/// such a cluster talk within their host only.
fn route_via(ns: &Netns, prefix: &str, via: &str) -> anyhow::Result<()> {
    if prefix.contains(':') != via.contains(':') {
        return Ok(());
    }
    ns.ip(&["route", "replace", prefix, "via", via]).map(|_| ())
}

impl Cluster {
    /// Programs leaves and spine with exactly the routes of the fabric view.
    pub async fn apply_fabric_routes(&mut self) -> anyhow::Result<()> {
        let fabric = self
            .topology()
            .await?
            .get_fabric(pb::GetFabricRequest {})
            .await?
            .into_inner();
        for leaf in &fabric.leaves {
            let ns = &self.leaves[leaf.rack as usize];
            for route in &leaf.routes {
                route_via(ns, &route.prefix, &route.via)?;
            }
        }
        // Only a dual-stack fabric has IPv6 links between spine and leaves.
        let v6_fabric = self.hosts.iter().any(|h| h.second_ip.is_some());
        for route in &fabric.spine {
            let via = match v6_fabric && route.prefix.contains(':') {
                true => v6_leaf_uplink(route.rack),
                false => format!("192.168.255.{}", 4 * route.rack + 2),
            };
            route_via(&self.spine, &route.prefix, &via)?;
        }
        Ok(())
    }
}
