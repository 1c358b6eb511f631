//! The host agent of romana-rs: it watches etcd and makes this host's kernel match the
//! cluster. Routes to other hosts' prefixes (or to rack aggregates via the leaf), a /32
//! route per local endpoint onto its interface (the CNI plugin's veth, or a VM's tap,
//! which the agent also wires: gateway address, up), one nftables table isolating tenants
//! and segments with cluster-wide masked matches, and IP forwarding. No overlay, no route per
//! remote endpoint, and a rule count that does not grow with endpoints or hosts.
//!
//! Shaped like Calico's felix: `watch -> ClusterState (pure reducer) -> desired (pure)
//! -> plan (pure, ordered) -> apply (rtnetlink + one nft transaction) -> read back`.
//! Everything it creates is recognisable as its own after a restart (route protocol
//! [`ROUTE_PROTOCOL`], table `inet romana`), and it never touches anything else.
//!
//! # Layout
//! - [`state`]: [`ClusterState`], the reducer of watch events (config, hosts, tenants,
//!   segments, endpoints, policies); `Init..InitDone` rebuilds it.
//! - [`mod@desired`]: [`desired()`], the routes, nftables program and sysctls this host should
//!   have, from the state and the [`HostView`] (name, gateway, connected subnets).
//! - [`compile`]: [`compile()`], policies and isolation to this host's nftables program,
//!   held by property tests to `romana_core::policy::evaluate`.
//! - [`nft`]: the nftables program as data (chains, rules, sets), its text for `nft -f -`, and reading
//!   `nft -j` output back into the same shape.
//! - [`mod@plan`]: [`plan()`], the ordered diff of desired against [`Observed`].
//! - [`taps`]: the gateway and link state the taps of VM endpoints need (pure, like routes).
//! - [`kernel`]: the only I/O besides etcd: rtnetlink routes, the `nft` process, `/proc/sys`,
//!   each optionally inside a named network namespace.
//! - [`status`]: [`AgentStatus`], the record the agent writes to etcd after each apply.
//! - [`ifname`]: [`host_interface`], an endpoint's interface: its named tap, or
//!   [`endpoint_ifname`], the name shared with the CNI plugin.
//! - `agent`: [`run`], the loop tying them together (watch, coalescing, resync, shutdown);
//!   `schedule` decides when a round runs and whether it re-reads the kernel, `reconcile`
//!   runs one (and keeps the table as last applied, so a change costs its delta).
// Denied everywhere but in `kernel::libnft`, the FFI to libnftables, which allows it.
#![deny(unsafe_code)]

mod agent;
pub mod compile;
pub mod desired;
pub mod ifname;
pub mod incremental;
pub mod kernel;
pub mod nft;
pub mod plan;
pub mod recipe;
mod reconcile;
mod schedule;
pub mod state;
pub mod status;
pub mod taps;

#[cfg(test)]
mod fixtures;

pub use agent::{run, AgentConfig, AgentError, Progress};
pub use compile::compile;
pub use desired::{desired, Desired, HostView, RouteTarget, ROUTE_PROTOCOL, ROUTE_TABLE};
pub use ifname::{endpoint_ifname, host_interface, IFNAME_PREFIX};
pub use nft::NftProgram;
pub use plan::{plan, Observed, Plan};
pub use state::ClusterState;
pub use status::{AgentStatus, StatusWriter};
