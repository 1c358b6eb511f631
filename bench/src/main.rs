//! romana-bench: performance checks that print ratios against a baseline measured in the
//! same run on the same machine (machines are noisy; absolute numbers are context only).
//!
//! # Layout
//! - [`ipam`]: address allocation through ipam-service against the floor of what etcd itself
//!   does per allocation (one conditional create), both at the same concurrency.
//! - [`agent`]: the host agent's cold start and one change against `nft -f` of its table and
//!   one `nft add element` into it.
//! - [`propagation`]: a policy commit to every agent applying it, against etcd's own put and
//!   delivery to as many watchers.
//! - [`cni`]: ADD and DEL through the romana-cni binary against Debian's `ptp` +
//!   `host-local` into the same namespaces, sequential and concurrent.
//! - [`datapath`]: TCP throughput and connection rate through a host's romana nft table
//!   holding 10 and 10k set entries, against the same path without the table.
//! - [`plane`]: the control plane `ipam` and `cni` run against.
//! - [`measure`]: concurrent runs, quantiles and the `ratios:` line.
//! - [`world`]: the synthetic cluster and in-process agents of `agent` and `propagation`.

mod agent;
mod cni;
mod datapath;
mod ipam;
mod measure;
mod plane;
mod propagation;
mod world;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "romana-bench", version)]
struct Args {
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Allocation and release through ipam-service vs etcd creates and deletes: a
    /// concurrency sweep, release, and a fill curve.
    Ipam {
        /// Allocations per side and concurrency.
        #[arg(long, default_value_t = 2000)]
        allocations: usize,
        /// Concurrent clients per side, a comma-separated sweep.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        concurrency: Vec<usize>,
        /// Hosts the sweep's allocations are spread over.
        #[arg(long, default_value_t = 4)]
        hosts: usize,
        /// Endpoints added per step of the fill curve.
        #[arg(long, default_value_t = 500)]
        fill_step: usize,
        /// Steps of the fill curve.
        #[arg(long, default_value_t = 8)]
        fill_steps: usize,
    },
    /// Agent cold start and one change vs `nft -f` of its table and `nft add element`.
    Agent {
        /// Cluster sizes (endpoints), comma separated.
        #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
        endpoints: Vec<usize>,
        /// NetworkPolicy counts, comma separated.
        #[arg(long, value_delimiter = ',', default_value = "20,200")]
        policies: Vec<usize>,
        /// Changes measured per row.
        #[arg(long, default_value_t = 30)]
        changes: usize,
        /// Cold starts measured per row.
        #[arg(long, default_value_t = 3)]
        colds: usize,
    },
    /// Policy commit to all agents applied vs etcd put and delivery to as many watchers.
    Propagation {
        /// Agents (hosts), each in its own network namespace.
        #[arg(long, default_value_t = 8)]
        agents: usize,
        /// Policy commits measured.
        #[arg(long, default_value_t = 100)]
        commits: usize,
        /// Endpoints of the cluster.
        #[arg(long, default_value_t = 1000)]
        endpoints: usize,
        /// NetworkPolicies besides the one that changes.
        #[arg(long, default_value_t = 20)]
        policies: usize,
    },
    /// CNI ADD/DEL latency of romana-cni vs ptp + host-local (needs root).
    Cni {
        /// Sequential ADDs (and DELs) per plugin.
        #[arg(long, default_value_t = 100)]
        sequential: usize,
        /// ADDs (and DELs) per plugin at --concurrency.
        #[arg(long, default_value_t = 320)]
        concurrent: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// TCP throughput and connection rate through the agent's nft table (needs root, iperf3).
    Datapath {
        /// Seconds of iperf3 per measurement.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// TCP connections per connection-rate measurement.
        #[arg(long, default_value_t = 2000)]
        connections: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().bench {
        Bench::Ipam {
            allocations,
            concurrency,
            hosts,
            fill_step,
            fill_steps,
        } => {
            ipam::ipam(ipam::IpamBench {
                allocations,
                concurrency,
                hosts,
                fill_step,
                fill_steps,
            })
            .await
        }
        Bench::Agent {
            endpoints,
            policies,
            changes,
            colds,
        } => agent::agent(&endpoints, &policies, changes, colds).await,
        Bench::Propagation {
            agents,
            commits,
            endpoints,
            policies,
        } => propagation::propagation(agents, commits, endpoints, policies).await,
        Bench::Cni {
            sequential,
            concurrent,
            concurrency,
        } => cni::cni(sequential, concurrent, concurrency).await,
        Bench::Datapath {
            seconds,
            connections,
        } => datapath::datapath(seconds, connections).await,
    }
}
