//! romana-bench: performance checks that print ratios against a baseline measured in the
//! same run on the same machine (machines are noisy; absolute numbers are context only).
//!
//! # Layout
//! - [`ipam`]: address allocation through ipam-service against the floor of what etcd itself
//!   does per allocation (one conditional create), both at the same concurrency.
//! - [`cni`]: ADD and DEL through the romana-cni binary against Debian's `ptp` +
//!   `host-local` into the same namespaces, sequential and concurrent.
//! - [`datapath`]: TCP throughput and connection rate through a host's romana nft table
//!   holding 10 and 10k set entries, against the same path without the table.
//! - [`measure`]: concurrent runs, quantiles and the `ratios:` line.

mod cni;
mod datapath;
mod ipam;
mod measure;

use clap::{Parser, Subcommand};

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
        } => ipam::ipam(allocations, concurrency, hosts).await,
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
