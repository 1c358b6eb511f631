//! OpenStack VMs, simulated: a Neutron port allocated through ipam-service with the tap
//! name Nova's libvirt driver will give it (`tap` + the first 11 characters of the port
//! id), and later the VM itself: a namespace whose `eth0` is the far end of a veth named
//! as that tap in the host namespace, configured as a guest on a routed network is (and
//! as the CNI plugin configures a container): `A/32`, `G/32` on-link, default via `G`.
//! The tap is left down and without addresses, as libvirt can leave it: everything on
//! the host side is the agent's to do.

use std::net::IpAddr;

use anyhow::Context;
use romana_core::interface::nova_tap_name;
use romana_proto::pb;

use crate::cluster::EndpointNs;
use crate::{Cluster, Netns};

/// A port allocated for a VM that has not started.
#[derive(Clone, Debug)]
pub struct VmPort {
    /// The endpoint id, as the Neutron driver names it (`neutron:<port>:<subnet>`).
    pub endpoint: String,
    pub host: String,
    pub tap: String,
    pub address: IpAddr,
    pub gateway: IpAddr,
}

impl Cluster {
    /// Allocates a port for VM `name` on `host` (tenant, segment) through ipam-service,
    /// naming its tap; nothing is created in any namespace yet.
    pub async fn allocate_vm_port(
        &self,
        name: &str,
        host: &str,
        tenant: &str,
        segment: &str,
    ) -> anyhow::Result<VmPort> {
        // A port id shaped like Neutron's (a UUID), unique per VM name.
        let hash = romana_core::datapath::endpoint_ifname(name);
        let port = format!("{}-{}-4a1b-9c2d-0123456789ab", &hash[3..11], &hash[11..15]);
        let tap = nova_tap_name(&port);
        let e = self
            .ipam()
            .await?
            .allocate(pb::AllocateRequest {
                endpoint: format!("neutron:{port}:subnet-1"),
                host: host.into(),
                tenant: tenant.into(),
                segment: segment.into(),
                interface: tap.clone(),
                ..Default::default()
            })
            .await
            .with_context(|| format!("allocating the port of VM {name}"))?
            .into_inner();
        anyhow::ensure!(
            e.interface == tap,
            "ipam answered interface {:?}",
            e.interface
        );
        Ok(VmPort {
            endpoint: e.id,
            host: host.into(),
            tap,
            address: e.address.parse()?,
            gateway: e.gateway.parse()?,
        })
    }

    /// Starts VM `name` on its port: the tap in the host namespace (down, no address), the
    /// guest's side configured. The VM joins [`Cluster::endpoints`] under `name`.
    pub fn start_vm(&mut self, name: &str, port: &VmPort) -> anyhow::Result<()> {
        let ns = Netns::create(name)?;
        let host = &self.host(&port.host).ns;
        host.add_veth(&port.tap, &ns, "eth0")?;
        let (a, g) = (port.address.to_string(), port.gateway.to_string());
        let len = if port.address.is_ipv4() { "32" } else { "128" };
        let cidr = format!("{a}/{len}");
        let mut add = vec!["addr", "add", &cidr, "dev", "eth0"];
        if port.address.is_ipv6() {
            add.push("nodad");
        }
        ns.ip(&add)?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        ns.ip(&["route", "add", &g, "dev", "eth0", "scope", "link"])?;
        ns.ip(&["route", "add", "default", "via", &g, "dev", "eth0"])?;
        self.endpoints.insert(
            name.to_string(),
            EndpointNs {
                id: port.endpoint.clone(),
                host: port.host.clone(),
                address: port.address,
                second_address: None,
                host_ifname: port.tap.clone(),
                ns,
            },
        );
        Ok(())
    }

    /// Stops VM `name`: its namespace goes, and with it the tap (as libvirt deletes a
    /// stopped VM's tap). The port stays allocated.
    pub fn stop_vm(&mut self, name: &str) -> anyhow::Result<()> {
        let vm = self.endpoints.remove(name).context("known VM")?;
        let (host, tap) = (vm.host.clone(), vm.host_ifname.clone());
        drop(vm);
        // Deleting the namespace destroys the veth pair; wait until the host sees it.
        for _ in 0..200 {
            if self
                .host(&host)
                .ns
                .ip(&["link", "show", "dev", &tap])
                .is_err()
            {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        anyhow::bail!("tap {tap} of VM {name} is still there a second after the VM stopped")
    }

    /// Whether `host`'s tap `tap` is up and holds `gateway` as a full-length address.
    pub fn tap_wired(&self, host: &str, tap: &str, gateway: IpAddr) -> anyhow::Result<bool> {
        let out = self.host(host).ns.ip(&["-j", "addr", "show", "dev", tap])?;
        let json: serde_json::Value = serde_json::from_str(&out)?;
        let up = json[0]["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "UP"));
        let len = if gateway.is_ipv4() { 32 } else { 128 };
        let has_gateway = json[0]["addr_info"].as_array().is_some_and(|addrs| {
            addrs
                .iter()
                .any(|a| a["local"].as_str() == Some(&gateway.to_string()) && a["prefixlen"] == len)
        });
        Ok(up && has_gateway)
    }

    /// Whether `host`'s kernel routes `address` to `dev` with the agent's protocol.
    pub fn routed_to(&self, host: &str, address: IpAddr, dev: &str) -> anyhow::Result<bool> {
        let want = format!("{address} dev {dev} ");
        Ok(self
            .agent_routes(host)?
            .iter()
            .any(|r| format!("{r} ").starts_with(&want)))
    }
}
