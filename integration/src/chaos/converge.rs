//! Agent convergence: is a host's dataplane exactly what a fresh agent makes of the same
//! etcd state, and how long did it take to get there?
//!
//! The reference is a real agent, not a model of one: [`fresh`] starts `romana_agent::run`
//! in-process with `--once` semantics (list etcd, apply, return once converged; no status
//! written) on a spare namespace that mirrors the host's links (fabric and management
//! interfaces with their addresses, and a veth of the same name for every endpoint
//! interface the CNI plugin made), so that it sees the same connected subnets and can
//! route to the same endpoint interfaces. Then both kernels are read with the system's
//! tools, not the agent's parser: `nft -j list table inet romana` (handles, metainfo and
//! set element order dropped, rules kept in order) and `ip route show proto 124`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cluster::{Cluster, HostNs};
use crate::netns::Netns;

/// A host's dataplane, normalized for comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataplane {
    /// Objects of table `inet romana` by `KIND NAME`, and each chain's rules in order by
    /// `rules CHAIN`; empty when the table is absent.
    pub nft: BTreeMap<String, Value>,
    /// Our routes (protocol 124, table main), as `ip route` prints them, sorted.
    pub routes: Vec<String>,
}

impl Dataplane {
    /// What differs from `want`, in words; `None` when equal.
    pub fn diff(&self, want: &Dataplane) -> Option<String> {
        let mut out = Vec::new();
        let (have, wanted): (BTreeSet<&String>, BTreeSet<&String>) =
            (self.routes.iter().collect(), want.routes.iter().collect());
        let missing: Vec<_> = wanted.difference(&have).collect();
        let extra: Vec<_> = have.difference(&wanted).collect();
        if !missing.is_empty() || !extra.is_empty() {
            out.push(format!("routes missing {missing:?}, extra {extra:?}"));
        }
        let keys: BTreeSet<&String> = self.nft.keys().chain(want.nft.keys()).collect();
        for k in keys {
            match (self.nft.get(k), want.nft.get(k)) {
                (a, b) if a == b => {}
                (a, b) => out.push(format!(
                    "nft {k}: have {}, want {}",
                    short(a.map(Value::to_string)),
                    short(b.map(Value::to_string))
                )),
            }
        }
        (!out.is_empty()).then(|| out.join("; "))
    }
}

fn short(v: Option<String>) -> String {
    match v {
        None => "nothing".into(),
        Some(s) if s.len() > 300 => format!("{}...", &s[..300]),
        Some(s) => s,
    }
}

/// Reads namespace `ns`'s dataplane (blocking: call it from `spawn_blocking`).
pub fn read(ns: &str) -> anyhow::Result<Dataplane> {
    let nft = Command::new("ip")
        .args([
            "netns", "exec", ns, "nft", "-j", "list", "table", "inet", "romana",
        ])
        .output()
        .context("running nft")?;
    let nft = if nft.status.success() {
        normalize(&serde_json::from_slice(&nft.stdout).context("nft -j output")?)
    } else if String::from_utf8_lossy(&nft.stderr).contains("No such file") {
        BTreeMap::new()
    } else {
        bail!(
            "nft list in {ns}: {}",
            String::from_utf8_lossy(&nft.stderr).trim()
        );
    };
    let proto = romana_core::datapath::ROUTE_PROTOCOL.to_string();
    let routes = Command::new("ip")
        .args(["-n", ns, "route", "show", "table", "main", "proto", &proto])
        .output()
        .context("running ip route")?;
    if !routes.status.success() {
        bail!(
            "ip route in {ns}: {}",
            String::from_utf8_lossy(&routes.stderr).trim()
        );
    }
    let mut routes: Vec<String> = String::from_utf8_lossy(&routes.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    routes.sort();
    Ok(Dataplane { nft, routes })
}

/// `nft -j` output as [`Dataplane::nft`]: no handles, no metainfo, set elements sorted.
fn normalize(listing: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let objects = listing["nftables"].as_array().cloned().unwrap_or_default();
    for object in objects {
        let Some((kind, body)) = object.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        if kind == "metainfo" {
            continue;
        }
        let mut body = body.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("handle");
            if let Some(Value::Array(elems)) = map.get_mut("elem") {
                elems.sort_by_key(Value::to_string);
            }
        }
        if kind == "rule" {
            let chain = body["chain"].as_str().unwrap_or_default().to_string();
            let rules = out
                .entry(format!("rules {chain}"))
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(rules) = rules {
                rules.push(body);
            }
        } else {
            let name = body["name"].as_str().unwrap_or_default().to_string();
            out.insert(format!("{kind} {name}"), body);
        }
    }
    out
}

/// What a fresh agent makes of the current etcd state for `host` (see the module docs).
pub async fn fresh(cluster: &Cluster, host: &str) -> anyhow::Result<Dataplane> {
    let h = cluster.host(host);
    let spare = Netns::create("fresh")?;
    mirror_links(h, &spare)?;
    let config = romana_agent::AgentConfig {
        gateways: vec![format!("192.168.{}.1", h.rack).parse()?],
        netns: Some(spare.name().to_string()),
        once: true,
        status: None,
        ..romana_agent::AgentConfig::new(host)
    };
    let store = cluster.plane.store().clone();
    tokio::time::timeout(
        Duration::from_secs(30),
        romana_agent::run(store, config, std::future::pending()),
    )
    .await
    .context("the fresh agent did not converge within 30 s")?
    .context("the fresh agent failed")?;
    let name = spare.name().to_string();
    let plane = tokio::task::spawn_blocking(move || read(&name)).await??;
    if plane.nft.is_empty() {
        bail!("the fresh agent for {host} made no nft table");
    }
    Ok(plane)
}

/// Gives `spare` a veth for each of `host`'s interfaces but loopback, with the same name
/// and addresses (IPv6 link-local aside), up.
fn mirror_links(host: &HostNs, spare: &Netns) -> anyhow::Result<()> {
    let links: Value = serde_json::from_str(&host.ns.ip(&["-j", "addr", "show"])?)?;
    for (i, link) in links.as_array().into_iter().flatten().enumerate() {
        let name = link["ifname"].as_str().unwrap_or_default();
        if name.is_empty() || name == "lo" {
            continue;
        }
        let peer = format!("fp{i}");
        spare.ip(&["link", "add", name, "type", "veth", "peer", "name", &peer])?;
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if a["scope"] == "link" && a["family"] == "inet6" {
                continue;
            }
            let (Some(local), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) else {
                continue;
            };
            spare.ip(&["addr", "add", &format!("{local}/{len}"), "dev", name])?;
        }
        spare.ip(&["link", "set", &peer, "up"])?;
        spare.ip(&["link", "set", name, "up"])?;
    }
    Ok(())
}

/// Polls `host`'s dataplane every 50 ms until it equals `want`; returns how long after
/// `since` that was first seen. Fails after `timeout` with what still differs.
pub async fn converged(
    cluster: &Cluster,
    host: &str,
    want: &Dataplane,
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let ns = cluster.host(host).ns.name().to_string();
    let deadline = Instant::now() + timeout;
    loop {
        let n = ns.clone();
        let have = tokio::task::spawn_blocking(move || read(&n)).await??;
        let Some(diff) = have.diff(want) else {
            return Ok(since.elapsed());
        };
        if Instant::now() > deadline {
            bail!("{host} did not converge within {timeout:?}: {diff}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads of a dataplane, each with the time it started, kept when it changed.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Instant, anyhow::Result<Dataplane>)>>>;

/// `host`'s dataplane read every 50 ms from [`Recorder::start`] on, kept when it changes,
/// so that the time it first matched a reference computed later can be told exactly.
pub struct Recorder {
    host: String,
    ns: String,
    started: Instant,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    pub fn start(cluster: &Cluster, host: &str) -> Recorder {
        let ns = cluster.host(host).ns.name().to_string();
        let seen: Seen = Default::default();
        let (n, s) = (ns.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let name = n.clone();
                let at = Instant::now();
                let read = tokio::task::spawn_blocking(move || read(&name))
                    .await
                    .unwrap_or_else(|e| Err(e.into()));
                {
                    let mut seen = s.lock().expect("not poisoned");
                    let same = matches!((seen.last(), &read), (Some((_, Ok(a))), Ok(b)) if a == b);
                    if !same {
                        seen.push((at, read));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Recorder {
            host: host.to_string(),
            ns,
            started: Instant::now(),
            seen,
            task,
        }
    }

    /// Waits until the dataplane equals `want` and returns how long after `since` it has
    /// been equal without interruption (the start of the last change that made it equal).
    pub async fn converged(
        &self,
        want: &Dataplane,
        since: Instant,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let seen = self.seen.lock().expect("not poisoned");
                if let Some((at, Ok(last))) = seen.last() {
                    if last == want {
                        return Ok(at.saturating_duration_since(since));
                    }
                }
            }
            if Instant::now() > deadline {
                let have = read(&self.ns)?;
                bail!(
                    "{} did not converge within {timeout:?} (recording since {:?} ago): {}",
                    self.host,
                    self.started.elapsed(),
                    have.diff(want).unwrap_or_else(|| "equal only now".into())
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every host's dataplane is exactly its fresh agent's; returns the slowest host's time
/// after `since`.
pub async fn all_converged(
    cluster: &Cluster,
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let mut slowest = Duration::ZERO;
    for h in &cluster.hosts {
        let want = fresh(cluster, &h.name).await?;
        let took = converged(cluster, &h.name, &want, since, timeout).await?;
        slowest = slowest.max(took);
    }
    Ok(slowest)
}

// === uplink cuts ===

impl Cluster {
    /// Cuts `host` off: its port on the management switch (the path to etcd and the
    /// services) and its port on the rack's leaf go down, as when its uplinks fail. The
    /// host's own interfaces and addresses stay as they are.
    pub fn cut_uplink(&self, host: &str) -> anyhow::Result<()> {
        self.set_uplink(host, "down")
    }

    /// Undoes [`Cluster::cut_uplink`].
    pub fn restore_uplink(&self, host: &str) -> anyhow::Result<()> {
        self.set_uplink(host, "up")
    }

    /// What `host`'s agent logged so far, across restarts.
    pub fn agent_log(&self, host: &str) -> String {
        let path = std::env::temp_dir().join(format!("{}-agent.log", self.host(host).ns.name()));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    fn set_uplink(&self, host: &str, state: &str) -> anyhow::Result<()> {
        let h = self.host(host);
        self.lab
            .mgmt()
            .ip(&["link", "set", &self.lab.port_of(h.mgmt_ip)?, state])?;
        self.leaves[h.rack as usize].ip(&["link", "set", &h.leaf_port, state])?;
        Ok(())
    }
}
