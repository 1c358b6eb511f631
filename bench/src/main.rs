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
    }
}
