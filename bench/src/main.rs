//! romana-bench: performance checks that print ratios against a baseline measured in the
//! same run on the same machine (machines are noisy; absolute numbers are context only).
//!
//! # Layout
//! - [`ipam`]: address allocation through ipam-service against the floor of what etcd itself
//!   does per allocation (one conditional create), both at the same concurrency.
//! - [`measure`]: concurrent runs, quantiles and the `ratios:` line.

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().bench {
        Bench::Ipam {
            allocations,
            concurrency,
            hosts,
        } => ipam::ipam(allocations, concurrency, hosts).await,
    }
}
