//! Probes with real packets: echo servers on every node of a case, and every expected
//! cell probed at once, each from inside its source's namespace.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Node, Probe};
use crate::echo::{self, PAYLOAD};
use crate::netns::Netns;

const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Echo servers on every node for every TCP and UDP probe; dropped, they stop.
pub(super) fn serve(
    nodes: &[(Node, &Netns, IpAddr)],
    probes: &[Probe],
) -> anyhow::Result<JoinSet<()>> {
    let mut set = JoinSet::new();
    for (node, ns, address) in nodes {
        let address = *address;
        let (tcp, udp) = ns
            .enter(|| {
                let mut tcp = Vec::new();
                let mut udp = Vec::new();
                for probe in probes {
                    match probe {
                        Probe::Tcp(port) => {
                            tcp.push(std::net::TcpListener::bind((address, *port))?)
                        }
                        Probe::Udp(port) => udp.push(std::net::UdpSocket::bind((address, *port))?),
                        Probe::Icmp => {}
                    }
                }
                Ok((tcp, udp))
            })
            .with_context(|| format!("binding probe servers on {node}"))?;
        for l in tcp {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            // Nobody asks who connected: the receiver goes at once.
            set.spawn(echo::serve_tcp(l, mpsc::unbounded_channel().0));
        }
        for u in udp {
            u.set_nonblocking(true)?;
            let u = tokio::net::UdpSocket::from_std(u)?;
            set.spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok((n, peer)) = u.recv_from(&mut buf).await {
                    let _ = u.send_to(&buf[..n], peer).await;
                }
            });
        }
    }
    Ok(set)
}

enum Client {
    Tcp(tokio::net::TcpSocket),
    Udp(std::net::UdpSocket),
    Icmp,
}

/// Probes every cell of `cells` at once; true when the exchange completed.
pub(super) async fn probe_all(
    nodes: &[(Node, &Netns, IpAddr)],
    cells: &[(Probe, Node, Node, bool)],
) -> anyhow::Result<BTreeMap<(Probe, Node, Node), bool>> {
    let find = |n: &Node| nodes.iter().find(|(m, _, _)| m == n).expect("a node");
    let mut set = JoinSet::new();
    for (from, ns, _) in nodes {
        let mine: Vec<&(Probe, Node, Node, bool)> =
            cells.iter().filter(|(_, f, _, _)| f == from).collect();
        if mine.is_empty() {
            continue;
        }
        let clients = ns.enter(|| {
            mine.iter()
                .map(|(probe, _, _, _)| {
                    Ok(match probe {
                        Probe::Tcp(_) => Client::Tcp(tokio::net::TcpSocket::new_v4()?),
                        Probe::Udp(_) => Client::Udp(std::net::UdpSocket::bind("0.0.0.0:0")?),
                        Probe::Icmp => Client::Icmp,
                    })
                })
                .collect::<std::io::Result<Vec<_>>>()
        })?;
        for (client, (probe, from, to, _)) in clients.into_iter().zip(mine) {
            let target = find(to).2;
            let probe = *probe;
            let key = (probe, from.clone(), to.clone());
            let ping = matches!(client, Client::Icmp).then(|| {
                let mut cmd = ns.command("ping");
                cmd.args(["-c1", "-W1", &target.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                tokio::process::Command::from(cmd)
            });
            set.spawn(async move {
                let ok = match (client, probe.port()) {
                    (Client::Tcp(s), Some(port)) => {
                        echo::tcp_exchange(s, SocketAddr::new(target, port), PROBE_TIMEOUT)
                            .await
                            .is_ok()
                    }
                    (Client::Udp(s), Some(port)) => {
                        udp_exchange(s, SocketAddr::new(target, port)).await
                    }
                    _ => match ping {
                        Some(mut cmd) => cmd.status().await.is_ok_and(|s| s.success()),
                        None => false,
                    },
                };
                (key, ok)
            });
        }
    }
    let mut out = BTreeMap::new();
    while let Some(done) = set.join_next().await {
        let (key, ok) = done?;
        out.insert(key, ok);
    }
    Ok(out)
}

async fn udp_exchange(s: std::net::UdpSocket, to: SocketAddr) -> bool {
    let attempt = async {
        s.set_nonblocking(true)?;
        let s = tokio::net::UdpSocket::from_std(s)?;
        s.connect(to).await?;
        s.send(PAYLOAD).await?;
        let mut back = [0u8; 16];
        let n = s.recv(&mut back).await?;
        std::io::Result::Ok(&back[..n] == PAYLOAD)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Ok(true))
    )
}
