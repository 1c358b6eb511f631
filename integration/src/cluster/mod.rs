//! A whole routed-access datacenter on one machine: a spine namespace, a leaf per rack, hosts
//! (each its own namespace running a real `romana-agent`) on their rack's leaf, and endpoints
//! made by the real `romana-cni` plugin inside their host. The control plane (etcd and every
//! service) runs in the lab's management namespace; the test body runs there too.
//!
//! Addressing of the fabric (outside the cluster's address space, which is 10.0.0.0/8 by
//! default):
//! - rack `r`: a bridge on leaf `r` at `192.168.r.1/24`, host `i` of the rack at
//!   `192.168.r.(11+i)`; hosts use their leaf as gateway for other racks.
//! - spine <-> leaf `r`: a point-to-point link `192.168.255.(4r+1)/30` (spine) and
//!   `.(4r+2)/30` (leaf); each leaf's default route points at the spine (its uplink).
//! - Leaves and spine get exactly the static routes of the topology service's fabric view.
//! - Dual-stack (a layout with a second space): the same fabric in IPv6 as well, rack `r`'s
//!   bridge at `fd00:ff:r::1/64`, host `i` at `fd00:ff:r::(11+i)` (registered as its
//!   second fabric address), spine <-> leaf `fd00:ff:255::(4r+1)/126` and `.(4r+2)`; hosts
//!   get both leaf addresses as `--gateway`.
//!
//! Everything is torn down on drop, also when the test panics.
//!
//! # Layout
//! - `build`: [`cluster()`] and its builder: the fabric, the hosts and their agents.
//! - this module: the running [`Cluster`] and what a test does with it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use romana_proto::pb;
use tonic::transport::Channel;

use crate::netns::{Lab, Netns};
use crate::ControlPlane;

mod build;

pub use build::{cluster, default_layout, ClusterBuilder, CONFIG_INIT};

/// One host namespace with its agent.
pub struct HostNs {
    pub name: String,
    pub rack: u32,
    pub ip: IpAddr,
    /// Dual-stack: its IPv6 fabric address (see the module docs).
    pub second_ip: Option<IpAddr>,
    /// Its address on the management network (where etcd and the services are).
    pub mgmt_ip: IpAddr,
    /// Its port on the rack's leaf bridge (`h{i}` in the leaf namespace).
    pub leaf_port: String,
    pub ns: Netns,
    agent: Option<Child>,
}

/// An endpoint in a namespace of its own: made through the CNI plugin, or a simulated VM
/// on its tap ([`crate::vm`]).
#[derive(Debug)]
pub struct EndpointNs {
    pub id: String,
    pub host: String,
    pub address: IpAddr,
    /// Dual-stack: its address of the second family.
    pub second_address: Option<IpAddr>,
    /// Its interface in the host namespace: the CNI plugin's veth or the VM's tap.
    pub host_ifname: String,
    pub ns: Netns,
}

/// A running test datacenter. Fields are dropped in order: endpoints and hosts (with their
/// agents) first, the control plane, then the fabric and the lab.
pub struct Cluster {
    pub endpoints: BTreeMap<String, EndpointNs>,
    pub hosts: Vec<HostNs>,
    pub plane: ControlPlane,
    pub leaves: Vec<Netns>,
    pub spine: Netns,
    pub lab: Lab,
}

impl Cluster {
    pub fn host(&self, name: &str) -> &HostNs {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .expect("known host")
    }

    fn host_index(&self, name: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .expect("known host")
    }

    /// Starts (or restarts) the agent of host `i` in its namespace.
    pub fn start_agent(&mut self, i: usize) -> anyhow::Result<()> {
        let etcd = self.plane.etcd_endpoints().join(",");
        let h = &mut self.hosts[i];
        let mut gateway = format!("192.168.{}.1", h.rack);
        if h.second_ip.is_some() {
            gateway.push_str(&format!(",{}", build::v6_leaf(h.rack)));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::env::temp_dir().join(format!("{}-agent.log", h.ns.name())))?;
        let child =
            h.ns.command(binary("romana-agent").to_str().expect("utf-8 path"))
                .args([
                    "--host",
                    &h.name,
                    "--etcd-endpoints",
                    &etcd,
                    "--gateway",
                    &gateway,
                    // The lab's etcd is plaintext on a management network, explicitly.
                    "--insecure",
                ])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("spawning romana-agent")?;
        h.agent = Some(child);
        Ok(())
    }

    /// Kills the agent of `host` (SIGKILL: a crash, not a graceful stop).
    pub fn kill_agent(&mut self, host: &str) {
        let i = self.host_index(host);
        if let Some(mut agent) = self.hosts[i].agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }

    pub fn restart_agent(&mut self, host: &str) -> anyhow::Result<()> {
        self.kill_agent(host);
        self.start_agent(self.host_index(host))
    }

    /// Creates endpoint `name` on `host` through the CNI plugin (ADD), in its own namespace.
    pub async fn add_endpoint(
        &mut self,
        name: &str,
        host: &str,
        tenant: &str,
        segment: &str,
    ) -> anyhow::Result<IpAddr> {
        let ns = Netns::create(name)?;
        let id = format!("{}:eth0", ns.name());
        let config = format!(
            r#"{{"cniVersion":"1.0.0","name":"romana","type":"romana-cni","root":"{}","host":"{host}","tenant":"{tenant}","segment":"{segment}"}}"#,
            self.plane.root_url()
        );
        let out = self.cni(host, "ADD", &ns, &config, "")?;
        let addresses = cni_added_addresses(&out)?;
        self.endpoints.insert(
            name.to_string(),
            EndpointNs {
                host_ifname: romana_core::datapath::endpoint_ifname(&id),
                id,
                host: host.to_string(),
                address: addresses[0],
                second_address: addresses.get(1).copied(),
                ns,
            },
        );
        Ok(addresses[0])
    }

    /// Removes endpoint `name` through the CNI plugin (DEL).
    pub fn remove_endpoint(&mut self, name: &str) -> anyhow::Result<()> {
        let ep = self.endpoints.remove(name).context("known endpoint")?;
        let config = format!(
            r#"{{"cniVersion":"1.0.0","name":"romana","type":"romana-cni","root":"{}","host":"{}"}}"#,
            self.plane.root_url(),
            ep.host
        );
        self.cni(&ep.host, "DEL", &ep.ns, &config, "")?;
        Ok(())
    }

    /// Runs the CNI plugin on `host` as a runtime would, for the container in `ns`
    /// (`CNI_CONTAINERID` is the namespace name), with `CNI_ARGS` `args`.
    pub fn cni(
        &self,
        host: &str,
        command: &str,
        ns: &Netns,
        config: &str,
        args: &str,
    ) -> anyhow::Result<String> {
        let h = self.host(host);
        let cni = binary("romana-cni");
        let mut child =
            h.ns.command(cni.to_str().expect("utf-8 path"))
                .env("CNI_COMMAND", command)
                .env("CNI_CONTAINERID", ns.name())
                .env("CNI_NETNS", ns.path())
                .env("CNI_ARGS", args)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", cni.parent().expect("bin dir"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("spawning romana-cni")?;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(config.as_bytes())?;
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "romana-cni {command} on {host} failed: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }

    pub fn endpoint(&self, name: &str) -> &EndpointNs {
        &self.endpoints[name]
    }

    /// Whether one ping from endpoint `from` to `to` is answered within a second.
    pub fn ping(&self, from: &str, to: IpAddr) -> bool {
        self.endpoint(from)
            .ns
            .exec("ping", &["-c1", "-W1", &to.to_string()])
            .is_ok()
    }

    /// Whether `from` can exchange a message with a TCP server on `to` (both endpoints), on
    /// port 7777, within 2 s for the connect and 2 s for the echo.
    pub fn tcp(&self, from: &str, to: &str) -> anyhow::Result<bool> {
        self.tcp_at(from, to, self.endpoint(to).address)
    }

    /// [`Cluster::tcp`] to `to`'s address `address` (dual-stack: either of its two).
    pub fn tcp_at(&self, from: &str, to: &str, address: IpAddr) -> anyhow::Result<bool> {
        let server = self.endpoint(to);
        let at = std::net::SocketAddr::new(address, 7777);
        let exchanged = crate::echo::tcp_echo(
            &self.endpoint(from).ns,
            &server.ns,
            at,
            Duration::from_secs(2),
        )?;
        Ok(exchanged.is_ok())
    }

    /// Routes of ours (route protocol of the agent) on `host`, as `ip route` prints them.
    pub fn agent_routes(&self, host: &str) -> anyhow::Result<Vec<String>> {
        let proto = romana_core::datapath::ROUTE_PROTOCOL.to_string();
        let out = self.host(host).ns.ip(&["route", "show", "proto", &proto])?;
        Ok(out
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Rules in table `inet romana` on `host`.
    pub fn nft_rule_count(&self, host: &str) -> anyhow::Result<usize> {
        let out = self
            .host(host)
            .ns
            .exec("nft", &["-a", "list", "table", "inet", "romana"])?;
        Ok(out
            .lines()
            .filter(|l| {
                l.contains("# handle")
                    && !l.trim_start().starts_with("chain")
                    && !l.trim_start().starts_with("table")
            })
            .count())
    }

    /// Adds tenants `names` with the defaults (segment isolation, no labels).
    pub async fn add_tenants(&self, names: &[&str]) -> anyhow::Result<()> {
        let mut tenants = self.tenants().await?;
        for name in names {
            tenants
                .add_tenant(pb::AddTenantRequest {
                    name: name.to_string(),
                    ..Default::default()
                })
                .await
                .with_context(|| format!("adding tenant {name}"))?;
        }
        Ok(())
    }

    pub async fn topology(&self) -> anyhow::Result<pb::topology_client::TopologyClient<Channel>> {
        Ok(pb::topology_client::TopologyClient::new(
            channel(&self.plane.url(crate::Service::Topology)).await?,
        ))
    }

    pub async fn tenants(&self) -> anyhow::Result<pb::tenants_client::TenantsClient<Channel>> {
        Ok(pb::tenants_client::TenantsClient::new(
            channel(&self.plane.url(crate::Service::Tenant)).await?,
        ))
    }

    pub async fn policies(&self) -> anyhow::Result<pb::policies_client::PoliciesClient<Channel>> {
        Ok(pb::policies_client::PoliciesClient::new(
            channel(&self.plane.url(crate::Service::Policy)).await?,
        ))
    }

    pub async fn ipam(&self) -> anyhow::Result<pb::ipam_client::IpamClient<Channel>> {
        Ok(pb::ipam_client::IpamClient::new(
            channel(&self.plane.url(crate::Service::Ipam)).await?,
        ))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            if let Some(mut agent) = h.agent.take() {
                let _ = agent.kill();
                let _ = agent.wait();
            }
        }
    }
}

async fn channel(url: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(url.to_string())?.connect().await?)
}

/// Where the workspace's binaries are: `ROMANA_BIN_DIR`, or the target directory of the
/// running executable (a test in `target/<profile>/deps/`, or `romana-lab` itself).
pub fn binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("ROMANA_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("executable path");
    let mut dir = exe.parent().expect("executable has a directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("deps has a parent");
    }
    dir.join(name)
}

/// The addresses of every IP in a CNI ADD result (the plugin's stdout), at least one.
pub(crate) fn cni_added_addresses(out: &str) -> anyhow::Result<Vec<IpAddr>> {
    let result: serde_json::Value =
        serde_json::from_str(out).with_context(|| format!("CNI ADD output: {out}"))?;
    let ips = result["ips"].as_array().cloned().unwrap_or_default();
    let addresses = ips
        .iter()
        .map(|ip| {
            let cidr = ip["address"]
                .as_str()
                .with_context(|| format!("no address in CNI result {result}"))?;
            Ok(cidr.split('/').next().unwrap_or_default().parse()?)
        })
        .collect::<anyhow::Result<Vec<IpAddr>>>()?;
    if addresses.is_empty() {
        bail!("no address in CNI result {result}");
    }
    Ok(addresses)
}
