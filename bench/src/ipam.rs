//! `ipam`: address allocation and release through ipam-service against the floor of what
//! etcd itself does per operation (one conditional create, one delete), at the same
//! concurrency in the same run:
//! - a concurrency sweep (default 1, 16, 64) over allocations spread across hosts;
//! - a fill curve: one segment on one host filled step by step, after the same segment was
//!   filled on other hosts (which must not slow this host down);
//! - release at the highest concurrency.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use romana_store::Store;
use tonic::transport::Channel;

use crate::measure::{measure, print_ratios, ratio, Run};

/// What `romana-bench ipam` runs.
pub struct IpamBench {
    pub allocations: usize,
    pub concurrency: Vec<usize>,
    pub hosts: usize,
    /// Endpoints per fill step, and steps.
    pub fill_step: usize,
    pub fill_steps: usize,
}

struct Bench {
    _plane: ControlPlane,
    store: Store,
    ipam: pb::ipam_client::IpamClient<Channel>,
    /// Distinct baseline keys across all runs.
    baseline_keys: Arc<AtomicUsize>,
}

pub async fn ipam(b: IpamBench) -> anyhow::Result<()> {
    let bench = Bench::start(b.hosts + 1).await?;
    let mut ratios = Vec::new();
    println!(
        "ipam: {} allocations per run over {} hosts, release build recommended",
        b.allocations, b.hosts
    );

    // The sweep.
    let mut last_ids = Vec::new();
    let mut last_keys = Vec::new();
    let mut last_floor = String::new();
    for &c in &b.concurrency {
        let (base, keys) = bench.creates(b.allocations, c).await?;
        let hosts: Vec<String> = (0..b.hosts).map(|h| format!("h{h}")).collect();
        let floor = bench
            .claims(&format!("floor-c{c}"), b.allocations, c)
            .await?;
        let (run, ids) = bench
            .allocations(&format!("c{c}"), b.allocations, c, &hosts)
            .await?;
        println!("  concurrency {c:>3}");
        println!(
            "    etcd conditional create  {}",
            base.describe(b.allocations)
        );
        println!(
            "    etcd 4-key claim txn     {}",
            floor.describe(b.allocations)
        );
        println!(
            "    ipam Allocate            {}",
            run.describe(b.allocations)
        );
        ratios.push((
            format!("alloc_c{c}"),
            ratio(run.rate(b.allocations), base.rate(b.allocations)),
        ));
        ratios.push((
            format!("alloc_c{c}_p99"),
            ratio(run.ms(0.99), base.ms(0.99)),
        ));
        ratios.push((
            format!("alloc_c{c}_vs_claim_txn"),
            ratio(run.rate(b.allocations), floor.rate(b.allocations)),
        ));
        last_ids = ids;
        last_keys = keys;
        last_floor = format!("floor-c{c}");
    }

    // Release of what the last sweep step allocated, at 16 (the row) if swept.
    let c = if b.concurrency.contains(&16) {
        16
    } else {
        b.concurrency.iter().copied().max().unwrap_or(16)
    };
    let n = last_ids.len().min(last_keys.len());
    let base = bench.deletes(&last_keys[..n], c).await?;
    let (_, more_keys) = bench.creates(n, c).await?;
    let conditional = bench.conditional_deletes(&more_keys, c).await?;
    let floor = bench.unclaims(&last_floor, n, c).await?;
    let run = bench.releases(&last_ids[..n], c).await?;
    println!("  release, concurrency {c}");
    println!("    etcd delete              {}", base.describe(n));
    println!("    etcd conditional delete  {}", conditional.describe(n));
    println!("    etcd 4-key release txn   {}", floor.describe(n));
    println!("    ipam Release             {}", run.describe(n));
    ratios.push((format!("release_c{c}"), ratio(run.rate(n), base.rate(n))));
    ratios.push((
        format!("release_c{c}_vs_conditional_delete"),
        ratio(run.rate(n), conditional.rate(n)),
    ));
    ratios.push((
        format!("release_c{c}_vs_release_txn"),
        ratio(run.rate(n), floor.rate(n)),
    ));

    // The fill curve: the same segment filled on another host first, then on this one.
    let other = format!("h{}", b.hosts);
    let filled = b.fill_step * b.fill_steps;
    bench
        .allocations("other", filled, 16, std::slice::from_ref(&other))
        .await?;
    println!("  fill curve (one segment on h0, {filled} endpoints of it on {other} already), concurrency 1");
    let mut worst: f64 = 0.0;
    for step in 0..b.fill_steps {
        let base = bench.creates(b.fill_step, 1).await?.0;
        let run = bench
            .allocations(&format!("fill{step}"), b.fill_step, 1, &["h0".to_string()])
            .await?
            .0;
        let r = ratio(run.ms(0.5), base.ms(0.5));
        worst = worst.max(r);
        println!(
            "    {:>5} -> {:>5} in use: p50 {:>6.2} ms vs etcd {:>6.2} ms ({r:.2}x)",
            step * b.fill_step,
            (step + 1) * b.fill_step,
            run.ms(0.5),
            base.ms(0.5)
        );
    }
    ratios.push(("fill_p50_worst".into(), worst));
    print_ratios(&ratios);
    Ok(())
}

// === impl Bench ===

impl Bench {
    async fn start(hosts: usize) -> anyhow::Result<Bench> {
        let names: Vec<String> = (0..hosts).map(|h| format!("h{h}")).collect();
        let plane = crate::plane::start(&names).await?;
        let ipam = pb::ipam_client::IpamClient::new(
            crate::plane::channel(plane.url(Service::Ipam)).await?,
        );
        Ok(Bench {
            store: plane.store().clone(),
            _plane: plane,
            ipam,
            baseline_keys: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The baseline of an allocation: one conditional create of a fresh key. Returns the run
    /// and the keys' addresses.
    async fn creates(&self, n: usize, concurrency: usize) -> anyhow::Result<(Run, Vec<IpAddr>)> {
        let first = self.baseline_keys.fetch_add(n, Ordering::Relaxed);
        let addresses: Vec<IpAddr> = (first..first + n)
            .map(|i| IpAddr::from([11, (i >> 16) as u8, (i >> 8) as u8, i as u8]))
            .collect();
        let store = self.store.clone();
        let list = Arc::new(addresses.clone());
        let run = measure(n, concurrency, move |i| {
            let (store, list) = (store.clone(), list.clone());
            async move {
                store
                    .create(&store.keys().address(list[i]), &format!("baseline-{i}"))
                    .await?;
                Ok(())
            }
        })
        .await?;
        Ok((run, addresses))
    }

    /// The floor of the data model: the transaction an allocation commits (endpoint,
    /// address and both index entries created together), sent straight to etcd with
    /// addresses chosen by the caller, so nothing is looked up or chosen.
    async fn claims(&self, tag: &str, n: usize, concurrency: usize) -> anyhow::Result<Run> {
        let first = self.baseline_keys.fetch_add(n, Ordering::Relaxed);
        let store = self.store.clone();
        let tag = Arc::new(tag.to_string());
        measure(n, concurrency, move |i| {
            let (store, tag) = (store.clone(), tag.clone());
            async move {
                let k = first + i;
                let endpoint = romana_core::Endpoint {
                    interface: String::new(),
                    pod: None,
                    second_address: None,
                    id: format!("{tag}-{i}"),
                    address: IpAddr::from([11, (k >> 16) as u8, (k >> 8) as u8, k as u8]),
                    host: "floor".into(),
                    tenant: "floor".into(),
                    segment: "floor".into(),
                    labels: Default::default(),
                    ports: Vec::new(),
                };
                store.claim_endpoint(&endpoint).commit().await?;
                Ok(())
            }
        })
        .await
    }

    /// The floor of a release: the one transaction ipam-service sends, deleting the
    /// endpoint's four keys (and leaving its tombstone) named from what the claim wrote, read
    /// here beforehand and untimed as ipam-service knows it from its watch.
    async fn unclaims(&self, tag: &str, n: usize, concurrency: usize) -> anyhow::Result<Run> {
        let mut endpoints = Vec::with_capacity(n);
        for i in 0..n {
            let key = self.store.keys().endpoint(&format!("{tag}-{i}"));
            let endpoint = self
                .store
                .get(&key)
                .await?
                .ok_or_else(|| anyhow::anyhow!("floor endpoint {tag}-{i} is missing"))?;
            endpoints.push(endpoint);
        }
        let (store, endpoints) = (self.store.clone(), Arc::new(endpoints));
        measure(n, concurrency, move |i| {
            let (store, endpoints) = (store.clone(), endpoints.clone());
            async move {
                store
                    .release_claim(&romana_store::Claim::from(&endpoints[i]))
                    .await?;
                Ok(())
            }
        })
        .await
    }

    /// The baseline of a release as a release must be, conditional (it frees only the
    /// endpoint it found): one delete compared to the revision read, which etcd runs as a
    /// one-operation transaction. The revisions are read beforehand, untimed.
    async fn conditional_deletes(
        &self,
        addresses: &[IpAddr],
        concurrency: usize,
    ) -> anyhow::Result<Run> {
        let keys = self.store.keys();
        let mut revisions = Vec::with_capacity(addresses.len());
        for a in addresses {
            let held = self.store.get(&keys.address(*a)).await?;
            let held = held.ok_or_else(|| anyhow::anyhow!("baseline key {a} is missing"))?;
            revisions.push(held.mod_revision);
        }
        let store = self.store.clone();
        let list = Arc::new(addresses.iter().copied().zip(revisions).collect::<Vec<_>>());
        measure(list.len(), concurrency, move |i| {
            let (store, list) = (store.clone(), list.clone());
            async move {
                let (address, revision) = list[i];
                store
                    .delete_if(&store.keys().address(address), revision)
                    .await?;
                Ok(())
            }
        })
        .await
    }

    /// The baseline of a release: one delete.
    async fn deletes(&self, addresses: &[IpAddr], concurrency: usize) -> anyhow::Result<Run> {
        let store = self.store.clone();
        let list = Arc::new(addresses.to_vec());
        measure(addresses.len(), concurrency, move |i| {
            let (store, list) = (store.clone(), list.clone());
            async move {
                store.delete(&store.keys().address(list[i])).await?;
                Ok(())
            }
        })
        .await
    }

    /// `n` allocations of fresh endpoints round-robin over `hosts`; returns their ids.
    async fn allocations(
        &self,
        tag: &str,
        n: usize,
        concurrency: usize,
        hosts: &[String],
    ) -> anyhow::Result<(Run, Vec<String>)> {
        let ids: Vec<String> = (0..n).map(|i| format!("ep-{tag}-{i}")).collect();
        let (ipam, hosts, list) = (
            self.ipam.clone(),
            Arc::new(hosts.to_vec()),
            Arc::new(ids.clone()),
        );
        let run = measure(n, concurrency, move |i| {
            let (mut ipam, hosts, list) = (ipam.clone(), hosts.clone(), list.clone());
            async move {
                ipam.allocate(pb::AllocateRequest {
                    endpoint: list[i].clone(),
                    host: hosts[i % hosts.len()].clone(),
                    tenant: "bench".into(),
                    segment: "default".into(),
                    ..Default::default()
                })
                .await?;
                Ok(())
            }
        })
        .await?;
        Ok((run, ids))
    }

    async fn releases(&self, ids: &[String], concurrency: usize) -> anyhow::Result<Run> {
        let (ipam, list) = (self.ipam.clone(), Arc::new(ids.to_vec()));
        measure(ids.len(), concurrency, move |i| {
            let (mut ipam, list) = (ipam.clone(), list.clone());
            async move {
                let released = ipam
                    .release(pb::ReleaseRequest::endpoint(list[i].clone()))
                    .await?;
                anyhow::ensure!(
                    released.into_inner().endpoint.is_some(),
                    "release of {} found nothing",
                    list[i]
                );
                Ok(())
            }
        })
        .await
    }
}
