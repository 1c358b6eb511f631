//! The test harness of romana-rs: real processes and bounded waits for integration tests.
//! Fixtures own what they start and clean it up on drop, so a failing test leaves nothing
//! running behind it.
//!
//! # Layout
//! - [`etcd`]: [`EtcdServer`] and [`EtcdCluster`], etcd processes on loopback ports with
//!   temporary data directories, stoppable and restartable for chaos tests.
//! - [`cluster`]: a routed-access datacenter in namespaces (spine, leaves, hosts with real
//!   agents, endpoints through the real CNI plugin): `cluster().racks(2).hosts(2).run(..)`.
//! - [`control_plane`]: [`ControlPlane`], etcd plus every service in-process on port 0,
//!   registered and discoverable through root as in production.
//! - [`echo`]: TCP echo between namespaces, the one server and client that prove a
//!   connection gets through.
//! - [`forge`]: hostile traffic (datagrams with a forged source) and proof that it was sent.
//! - [`netns`]: [`Netns`] guards and the [`Lab`] management network that lets processes in
//!   host namespaces reach a control plane running in a `mgmt` namespace.
//! - [`pki`]: [`Pki`], a CA and identity certificates made by the real `romanactl certs`.
//! - [`process`]: [`ServiceProcess`], a service binary killed on drop or stopped with
//!   SIGTERM, and [`free_port`].
//! - [`require`]: whether a test needing root and tools runs, skips (outside CI) or fails
//!   (under `CI=true`): [`require_netns!`] at the top of every such test.
//! - [`chaos`]: faults under load and what must still hold: the ipam load generator,
//!   invariants read from etcd, agent convergence against a fresh agent, summary lines.
//! - [`capture`]: [`Capture`], tcpdump in a namespace bounded in packets and time, and
//!   [`capture::check_routed_icmp`], which fails on any tunnelled packet.
//! - [`vm`]: OpenStack VMs simulated: a port allocated with its Nova tap name, then the
//!   VM's namespace on a veth named as that tap, for the agent to wire.
//! - [`eventually`]: polls a condition with a deadline, for convergence instead of sleeps.
//! - [`truth`]: the policy truth table: hand-written reachability cases from
//!   `testdata/policy/`, checked against the evaluator (model mode) and real packets.
//! - [`mk_store`], [`retrying`]: a store on a test etcd, and a store call retried while etcd
//!   restarts or elects a leader.
#![forbid(unsafe_code)]

pub mod capture;
pub mod chaos;
pub mod cluster;
pub mod control_plane;
pub mod echo;
pub mod etcd;
pub mod forge;
pub mod netns;
pub mod pki;
pub mod process;
pub mod require;
pub mod truth;
pub mod vm;

pub use capture::Capture;
pub use cluster::{cluster, Cluster};
pub use control_plane::{ControlPlane, ControlPlaneBuilder, Service};
pub use etcd::{EtcdCluster, EtcdServer, EtcdTlsFiles, MemberStatus};
pub use netns::{Lab, Netns};
pub use pki::Pki;
pub use process::{free_port, ServiceProcess};

use std::future::Future;
use std::time::Duration;

use romana_store::{Keys, Store, StoreError};

/// Polls `check` every 50 ms until it returns `Some`, or fails after `timeout` saying `what`
/// was awaited. Use it for convergence; a sleep followed by an assert flakes under load.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A store on `endpoints` with the default key layout.
pub async fn mk_store(endpoints: &[String]) -> Store {
    Store::connect(endpoints, Keys::default())
        .await
        .expect("building an etcd client does not contact etcd")
}

/// Runs a store call until it succeeds, retrying retryable errors (etcd restarting, a
/// leader election) for up to 20 s; any other error is returned at once.
pub async fn retrying<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match op().await {
            Err(e) if e.is_retryable() && tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "retrying a store call");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            done => return done,
        }
    }
}
