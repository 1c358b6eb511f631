//! [`EtcdCluster`]: several etcd members on one address, and what the chaos tests need to
//! aim at one of them: which member leads, as the members themselves report it through
//! etcd's status API (`/v3/maintenance/status`, the gRPC gateway, over plain HTTP).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

use super::{free_ports_vec, retry_start, unique_token, url, EtcdServer, LOOPBACK};

/// A cluster of etcd members, each restartable, killable and freezable on its own.
pub struct EtcdCluster {
    members: Vec<EtcdServer>,
}

/// What one member says about itself and the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub member_id: u64,
    /// The member id of the leader this member follows; 0 when it knows none.
    pub leader: u64,
    pub revision: i64,
}

// === impl EtcdCluster ===

impl EtcdCluster {
    /// Starts `size` members on loopback and waits until every one of them serves.
    pub fn start(size: usize) -> anyhow::Result<EtcdCluster> {
        EtcdCluster::start_on(LOOPBACK, size)
    }

    /// Starts `size` members listening on `ip` (an address of the current network
    /// namespace) and waits until every one of them serves.
    pub fn start_on(ip: IpAddr, size: usize) -> anyhow::Result<EtcdCluster> {
        if size == 0 {
            bail!("an etcd cluster needs at least one member");
        }
        retry_start(|| {
            let ports = free_ports_vec(size * 2)?;
            let names: Vec<String> = (0..size).map(|i| format!("etcd{i}")).collect();
            let initial_cluster = names
                .iter()
                .zip(ports.chunks(2))
                .map(|(name, p)| format!("{name}={}", url(ip, p[1])))
                .collect::<Vec<_>>()
                .join(",");
            let token = unique_token();
            let mut members = Vec::with_capacity(size);
            for (name, p) in names.into_iter().zip(ports.chunks(2)) {
                let mut member = EtcdServer::new(name, p[0], p[1], initial_cluster.clone())?;
                member.token = token.clone();
                member.ip = ip;
                members.push(member);
            }
            let mut cluster = EtcdCluster { members };
            // All members must run before any can elect a leader and report healthy.
            for member in &mut cluster.members {
                member.spawn()?;
            }
            for member in &mut cluster.members {
                member.wait_ready()?;
            }
            Ok(cluster)
        })
    }

    /// Every member's client URL, stopped members included: a client must cope with them.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdServer::endpoint).collect()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member(&mut self, index: usize) -> &mut EtcdServer {
        &mut self.members[index]
    }

    pub fn members(&self) -> &[EtcdServer] {
        &self.members
    }

    /// The index of the member whose client URL is `url`.
    pub fn index_of(&self, url: &str) -> Option<usize> {
        self.members.iter().position(|m| m.endpoint() == url)
    }

    /// The index of the member that leads, as the running members report it (they must
    /// agree); `None` while there is no leader or no running member answers.
    pub fn leader(&self) -> Option<usize> {
        let statuses: Vec<(usize, MemberStatus)> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_running())
            .filter_map(|(i, m)| m.status().ok().map(|s| (i, s)))
            .collect();
        let leader = statuses.first()?.1.leader;
        if leader == 0 || statuses.iter().any(|(_, s)| s.leader != leader) {
            return None;
        }
        statuses
            .iter()
            .find(|(_, s)| s.member_id == leader)
            .map(|(i, _)| *i)
    }

    /// Waits up to `timeout` for a leader and returns its index.
    pub fn wait_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader() {
                return Ok(i);
            }
            if std::time::Instant::now() > deadline {
                bail!("no etcd leader after {timeout:?}: {self:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Indexes of the running members that do not lead (the leader as [`Self::leader`]).
    pub fn followers(&self) -> anyhow::Result<Vec<usize>> {
        let leader = self.wait_leader(Duration::from_secs(10))?;
        Ok((0..self.members.len())
            .filter(|i| *i != leader && self.members[*i].is_running())
            .collect())
    }
}

// Members drop (and are killed) in order; no Drop impl is needed beyond theirs.

impl std::fmt::Debug for EtcdCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.members).finish()
    }
}

// === impl EtcdServer (status) ===

impl EtcdServer {
    /// This member's status, from etcd's status API; fails when it does not answer within
    /// 2 s (stopped, frozen) or is served over TLS (the plain-HTTP request cannot).
    pub fn status(&self) -> anyhow::Result<MemberStatus> {
        if self.tls.is_some() {
            bail!("status over TLS is not supported by the harness");
        }
        let body = post(
            SocketAddr::new(self.ip, self.client_port),
            "/v3/maintenance/status",
        )?;
        let json: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("etcd status is not JSON: {body}"))?;
        // The gateway prints 64-bit numbers as strings.
        let number = |v: &serde_json::Value| -> Option<u64> {
            v.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| v.as_u64())
        };
        Ok(MemberStatus {
            member_id: number(&json["header"]["member_id"])
                .with_context(|| format!("no member_id in {body}"))?,
            leader: number(&json["leader"]).unwrap_or(0),
            revision: number(&json["header"]["revision"]).unwrap_or(0) as i64,
        })
    }
}

/// POSTs `{}` to `path` over HTTP/1.0 and returns the response body.
fn post(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP response from {addr}: {response:?}"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!("{addr}{path}: {head}");
    }
    Ok(body.to_string())
}
