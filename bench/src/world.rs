//! A synthetic cluster in etcd for the agent benchmarks: hosts, four tenants of four segments,
//! endpoints spread over the hosts, and NetworkPolicies whose peer selectors pick a share of
//! every tenant's endpoints (so the peer sets grow with the endpoints, as they do in a real
//! cluster), written straight into etcd. Plus in-process agents, each in a namespace of its
//! own, that report every round through `AgentConfig::progress`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use romana_agent::{AgentConfig, Progress};
use romana_core::policy::parse_documents;
use romana_core::{ClusterConfig, Endpoint, Host, Isolation, Layout, Segment, Tenant};
use romana_integration::Netns;
use romana_store::Store;
use tokio::sync::{oneshot, watch};

pub const TENANTS: u32 = 4;
pub const SEGMENTS: u32 = 4;
/// Remote endpoints are spread over this many other hosts.
const REMOTE_HOSTS: u32 = 40;

pub fn config() -> ClusterConfig {
    ClusterConfig {
        address_space: "10.0.0.0/8".parse().expect("a CIDR"),
        host_bits: 8,
        rack_bits: 0,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        second_address_space: None,
    }
}

pub fn host_name(index: u32) -> String {
    format!("h{index}")
}

/// Writes `futures` to etcd `concurrency` at a time.
async fn put_all<F>(futures: Vec<F>) -> anyhow::Result<i64>
where
    F: std::future::Future<Output = Result<i64, romana_store::StoreError>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    let revisions: Vec<i64> = stream::iter(futures)
        .buffer_unordered(32)
        .try_collect()
        .await?;
    Ok(revisions.into_iter().max().unwrap_or(0))
}

/// Endpoint `i` of the cluster: local ones (on `local_hosts`, `local` each) first, then
/// remote ones on hosts `local_hosts..local_hosts + REMOTE_HOSTS`.
pub fn endpoint(layout: &Layout, i: usize, local: usize, local_hosts: u32) -> Endpoint {
    let i32_ = i as u32;
    let locals = local * local_hosts as usize;
    let (host, k) = if i < locals {
        ((i / local) as u32, (i % local) as u32)
    } else {
        let r = (i - locals) as u32;
        (local_hosts + r % REMOTE_HOSTS, r / REMOTE_HOSTS)
    };
    let tenant = 1 + k % TENANTS;
    let segment = (k / TENANTS) % SEGMENTS;
    let number = 2 + k / (TENANTS * SEGMENTS);
    let address = layout
        .endpoint_address(host, tenant, segment, number.into())
        .expect("the bench layout has room");
    Endpoint {
        interface: String::new(),
        pod: None,
        second_address: None,
        id: format!("e{i}"),
        address,
        host: host_name(host),
        tenant: format!("t{tenant}"),
        segment: format!("s{segment}"),
        labels: BTreeMap::from([
            ("app".to_string(), format!("a{}", i32_ % 10)),
            ("role".to_string(), role(i, 0)),
        ]),
        ports: Vec::new(),
    }
}

/// The role label of endpoint `i` after `flips` changes.
pub fn role(i: usize, flips: usize) -> String {
    format!("r{}", (i + flips) % 5)
}

/// Policy `k`: tenant `t(k%4+1)`'s pods with app `a(k%10)` accept TCP `80+k` from its pods
/// with role `r(k%5)`; `port` overrides the port (for changing a policy).
pub fn policy_yaml(k: usize, port: u16) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{k}, namespace: t{tenant}}}\n\
         spec: {{podSelector: {{matchLabels: {{app: a{app}}}}}, ingress: [{{from: [{{podSelector: {{matchLabels: {{role: r{role}}}}}}}], ports: [{{protocol: TCP, port: {port}}}]}}]}}\n",
        tenant = 1 + k as u32 % TENANTS,
        app = k % 10,
        role = k % 5,
    )
}

pub async fn put_policy(store: &Store, yaml: &str) -> anyhow::Result<i64> {
    let mut revision = 0;
    for p in parse_documents(yaml).context("bench policy")? {
        revision = store.put(&store.keys().policy(&p.id()), &p).await?;
    }
    Ok(revision)
}

/// Writes the cluster; returns the revision of the last write.
pub async fn populate(
    store: &Store,
    endpoints: usize,
    policies: usize,
    local: usize,
    local_hosts: u32,
) -> anyhow::Result<i64> {
    let keys = store.keys();
    let config = config();
    let layout = config.layout()?;
    store.put(&keys.config(), &config).await?;
    let mut puts = Vec::new();
    for h in 0..local_hosts + REMOTE_HOSTS {
        let host = Host {
            name: host_name(h),
            ip: IpAddr::from([192, 168, (h / 250) as u8, (h % 250 + 1) as u8]),
            rack: 0,
            index: h,
            second_ip: None,
        };
        puts.push(async move { store.put(&keys.host(&host.name), &host).await });
    }
    put_all(puts).await?;
    for t in 1..=TENANTS {
        let tenant = Tenant {
            name: format!("t{t}"),
            id: t,
            isolation: Isolation::Segment,
            labels: BTreeMap::new(),
        };
        store.put(&keys.tenant(&tenant.name), &tenant).await?;
        for s in 0..SEGMENTS {
            let segment = Segment {
                tenant: tenant.name.clone(),
                name: format!("s{s}"),
                id: s,
            };
            store
                .put(&keys.segment(&segment.tenant, &segment.name), &segment)
                .await?;
        }
    }
    let puts: Vec<_> = (0..endpoints.max(local * local_hosts as usize))
        .map(|i| {
            let e = endpoint(&layout, i, local, local_hosts);
            async move { store.put(&keys.endpoint(&e.id), &e).await }
        })
        .collect();
    let mut revision = put_all(puts).await?;
    for k in 0..policies {
        revision = put_policy(store, &policy_yaml(k, 80 + k as u16)).await?;
    }
    Ok(revision)
}

/// The host-side interfaces of host `host`'s local endpoints, as veths whose peers stay in
/// the same namespace (the CNI plugin would move them into the pod), so that their routes
/// are not blocked.
pub fn make_interfaces(ns: &Netns, host: u32, local: usize) -> anyhow::Result<()> {
    let mut batch = String::new();
    for i in (host as usize * local)..(host as usize + 1) * local {
        let name = romana_agent::endpoint_ifname(&format!("e{i}"));
        batch += &format!(
            "link add {name} type veth peer name pod{i}\nlink set {name} up\nlink set pod{i} up\n"
        );
    }
    let path = std::env::temp_dir().join(format!("romana-bench-links-{}", ns.name()));
    std::fs::write(&path, batch)?;
    let result = ns.ip(&["-batch", &path.to_string_lossy()]);
    let _ = std::fs::remove_file(&path);
    result.map(|_| ())
}

/// An agent running in this process; stopped on drop.
pub struct RunningAgent {
    pub progress: watch::Receiver<Progress>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), romana_agent::AgentError>>>,
}

impl RunningAgent {
    pub fn start(store: Store, host: &str, ns: &Netns) -> RunningAgent {
        let (tx, progress) = watch::channel(Progress::default());
        let config = AgentConfig {
            netns: Some(ns.name().to_string()),
            // Drift repair is not what is measured: keep the tick out of the runs.
            resync_interval: Duration::from_secs(3600),
            progress: Some(Arc::new(tx)),
            ..AgentConfig::new(host)
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(romana_agent::run(store, config, async move {
            let _ = stopped.await;
        }));
        RunningAgent {
            progress,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Waits until a round that converged applied a state at `revision` or later.
    pub async fn applied(&mut self, revision: i64) -> anyhow::Result<()> {
        self.wait(|p| p.revision >= revision).await
    }

    /// Waits until a round that converged applied the policies as of `revision` or later.
    pub async fn applied_policy(&mut self, revision: i64) -> anyhow::Result<()> {
        self.wait(|p| p.policy_revision >= revision).await
    }

    async fn wait(&mut self, done: impl Fn(&Progress) -> bool) -> anyhow::Result<()> {
        let wait = self
            .progress
            .wait_for(|p| p.converged && p.blocked == 0 && done(p));
        let outcome = match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(_)) => "the agent stopped",
            Err(_) => "the agent did not converge within 60 s",
        };
        anyhow::bail!("{outcome} (last round: {:?})", *self.progress.borrow())
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The median of `samples` (sorted in place), in milliseconds.
pub fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
