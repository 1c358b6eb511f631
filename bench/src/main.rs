//! romana-bench: performance checks that print ratios against a baseline measured in the
//! same run on the same machine (machines are noisy; absolute numbers are context only).
//!
//! # Layout
//! - `ipam`: address allocation through ipam-service against the floor of what etcd itself
//!   does per allocation (one conditional create), both at the same concurrency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use tokio::sync::Mutex;
use tonic::transport::Channel;

#[derive(Parser)]
#[command(name = "romana-bench", version)]
struct Args {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Allocation rate and latency through ipam-service vs raw etcd creates.
    Ipam {
        /// Allocations per side.
        #[arg(long, default_value_t = 2000)]
        allocations: usize,
        /// Concurrent clients per side.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Hosts the allocations are spread over (one segment each).
        #[arg(long, default_value_t = 4)]
        hosts: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().bench {
        Bench::Ipam {
            allocations,
            concurrency,
            hosts,
        } => ipam(allocations, concurrency, hosts).await,
    }
}

struct Run {
    elapsed: Duration,
    latency: Histogram<u64>,
}

impl Run {
    fn rate(&self, n: usize) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }

    fn describe(&self, n: usize) -> String {
        format!(
            "{:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
            self.rate(n),
            self.latency.value_at_quantile(0.5) as f64 / 1000.0,
            self.latency.value_at_quantile(0.99) as f64 / 1000.0
        )
    }
}

/// Runs `n` operations from `concurrency` tasks; `op(i)` is the i-th operation.
async fn measure<F, Fut>(n: usize, concurrency: usize, op: F) -> anyhow::Result<Run>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (op, latency) = (op.clone(), latency.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = t;
            while i < n {
                let begin = Instant::now();
                op(i).await?;
                latency
                    .lock()
                    .await
                    .record(begin.elapsed().as_micros() as u64)?;
                i += concurrency;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    let latency = Arc::try_unwrap(latency)
        .map_err(|_| anyhow::anyhow!("tasks still hold the histogram"))?
        .into_inner();
    Ok(Run { elapsed, latency })
}

async fn ipam(n: usize, concurrency: usize, hosts: usize) -> anyhow::Result<()> {
    let plane = ControlPlane::start().await?;
    let channel =
        |url: String| async move { anyhow::Ok(Channel::from_shared(url)?.connect().await?) };
    let mut root = pb::root_client::RootClient::new(channel(plane.root_url()).await?);
    root.init_config(pb::InitConfigRequest {
        config: Some(pb::ClusterConfig {
            address_space: "10.0.0.0/8".into(),
            host_bits: 8,
            tenant_bits: 4,
            segment_bits: 4,
            ..Default::default()
        }),
    })
    .await?;
    let mut topology =
        pb::topology_client::TopologyClient::new(channel(plane.url(Service::Topology)).await?);
    for h in 0..hosts {
        topology
            .add_host(pb::AddHostRequest {
                name: format!("h{h}"),
                ip: format!("192.168.0.{}", h + 1),
                rack: None,
            })
            .await?;
    }
    let mut tenants =
        pb::tenants_client::TenantsClient::new(channel(plane.url(Service::Tenant)).await?);
    tenants
        .add_tenant(pb::AddTenantRequest {
            name: "bench".into(),
            ..Default::default()
        })
        .await?;
    // A segment holds 253 addresses per host in this layout.
    let per_segment = 253 * hosts;
    let segments = n.div_ceil(per_segment);
    for s in 1..segments {
        tenants
            .add_segment(pb::AddSegmentRequest {
                tenant: "bench".into(),
                name: format!("s{s}"),
            })
            .await?;
    }

    // Baseline: the one etcd round trip an allocation cannot avoid, a conditional create.
    let store = plane.store().clone();
    let baseline = measure(n, concurrency, move |i| {
        let store = store.clone();
        async move {
            let key = store.keys().address(std::net::IpAddr::from([
                10,
                200,
                (i / 256) as u8,
                (i % 256) as u8,
            ]));
            store.create(&key, &format!("baseline-{i}")).await?;
            Ok(())
        }
    })
    .await?;

    let ipam = pb::ipam_client::IpamClient::new(channel(plane.url(Service::Ipam)).await?);
    let measured = measure(n, concurrency, move |i| {
        let mut ipam = ipam.clone();
        async move {
            let segment = if i / per_segment == 0 {
                "default".to_string()
            } else {
                format!("s{}", i / per_segment)
            };
            ipam.allocate(pb::AllocateRequest {
                endpoint: format!("ep-{i}"),
                host: format!("h{}", i % hosts),
                tenant: "bench".into(),
                segment,
                ..Default::default()
            })
            .await?;
            Ok(())
        }
    })
    .await?;

    println!("ipam allocation, {n} operations, concurrency {concurrency}, {hosts} hosts");
    println!(
        "  baseline (etcd conditional create)  {}",
        baseline.describe(n)
    );
    println!(
        "  ipam-service Allocate               {}",
        measured.describe(n)
    );
    println!(
        "  ratio ipam/baseline: throughput {:.2}, p50 latency {:.2}",
        measured.rate(n) / baseline.rate(n),
        measured.latency.value_at_quantile(0.5) as f64
            / baseline.latency.value_at_quantile(0.5).max(1) as f64
    );
    Ok(())
}
