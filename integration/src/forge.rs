//! Hostile traffic for isolation tests: UDP datagrams an endpoint sends with a source
//! address that is not its own, as any container with CAP_NET_ADMIN can by adding the
//! address to its eth0.
//!
//! A probe that only asserts "nothing arrived" cannot fail when the sender never sent, so
//! every probe also counts what reached the sender's host: the receive counter of the
//! endpoint's host-side interface (veth or tap). A forged packet that reached the host
//! and was not delivered was dropped there, by our table.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::Cluster;

/// Datagrams sent per probe: more than the neighbour solicitations a first send can cause
/// (3), so "reached the host" cannot be satisfied by ARP or ND alone.
pub const DATAGRAMS: u64 = 10;

/// The UDP port the victim listens on.
const PORT: u16 = 7788;

/// How long the victim listens after the last datagram was sent.
const LISTEN: Duration = Duration::from_millis(800);

/// What became of one probe's datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpProbe {
    /// Packets the sender's host received on the sender's interface meanwhile.
    pub reached_host: u64,
    /// Datagrams the victim received with the forged source.
    pub delivered: usize,
}

impl UdpProbe {
    /// All datagrams left the sender and none reached the victim.
    pub fn dropped(&self) -> bool {
        self.reached_host >= DATAGRAMS && self.delivered == 0
    }
}

impl Cluster {
    /// Sends [`DATAGRAMS`] datagrams from endpoint `from`, with source address `source`,
    /// to endpoint `to`, and reports what reached `from`'s host and what `to` received.
    /// A `source` other than `from`'s own address is added to its eth0 for the probe.
    pub fn udp_probe(&self, from: &str, source: IpAddr, to: &str) -> anyhow::Result<UdpProbe> {
        let sender = self.endpoint(from);
        let victim = self.endpoint(to);
        let target = SocketAddr::new(victim.address, PORT);
        let listener = victim
            .ns
            .run(|| async move { UdpSocket::bind(target) })?
            .with_context(|| format!("binding {target} in {to}"))?;
        listener.set_read_timeout(Some(Duration::from_millis(100)))?;
        // Resolve the gateway's link address with the real source first: a solicitation
        // sent later from the forged source would itself be dropped (IPv6 neighbour
        // discovery uses the packet's source), and the datagrams would never leave.
        let family = if victim.address.is_ipv4() { "-4" } else { "-6" };
        let routes = sender.ns.ip(&["-j", family, "route", "show", "default"])?;
        let routes: serde_json::Value = serde_json::from_str(&routes)?;
        if let Some(gateway) = routes[0]["gateway"].as_str() {
            let _ = sender.ns.exec("ping", &["-c1", "-W1", gateway]);
        }
        let forged = source != sender.address;
        let prefix = if source.is_ipv4() { 32 } else { 128 };
        let cidr = format!("{source}/{prefix}");
        if forged {
            let mut args = vec!["addr", "add", &cidr, "dev", "eth0"];
            if source.is_ipv6() {
                args.push("nodad");
            }
            sender.ns.ip(&args)?;
        }
        let host_if = &sender.host_ifname;
        let host_ns = &self.host(&sender.host).ns;
        let before = rx_packets(host_ns, host_if)?;
        let sent = sender.ns.run(|| async move {
            let socket = UdpSocket::bind(SocketAddr::new(source, 0))?;
            for i in 0..DATAGRAMS {
                socket.send_to(format!("forged {i}").as_bytes(), target)?;
                std::thread::sleep(Duration::from_millis(20));
            }
            std::io::Result::Ok(())
        })?;
        let mut delivered = 0;
        let mut buf = [0u8; 64];
        let deadline = Instant::now() + LISTEN;
        while Instant::now() < deadline {
            if let Ok((_, peer)) = listener.recv_from(&mut buf) {
                if peer.ip() == source {
                    delivered += 1;
                }
            }
        }
        let after = rx_packets(host_ns, host_if)?;
        if forged {
            sender.ns.ip(&["addr", "del", &cidr, "dev", "eth0"])?;
        }
        sent.with_context(|| format!("sending from {from} as {source}"))?;
        Ok(UdpProbe {
            reached_host: after.saturating_sub(before),
            delivered,
        })
    }
}

/// Packets received by interface `ifname` in namespace `ns` (`ip -s -j link`).
fn rx_packets(ns: &crate::Netns, ifname: &str) -> anyhow::Result<u64> {
    let out = ns.ip(&["-s", "-j", "link", "show", "dev", ifname])?;
    let json: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("ip -j link output: {out}"))?;
    json[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .with_context(|| format!("no rx packet count for {ifname} in {out}"))
}
