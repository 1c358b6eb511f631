//! The pure heart of romana-rs: the cluster's address layout and the model every service,
//! the agent and the CLI share. Nothing here does I/O, spawns tasks or reads the clock, so
//! everything is tested with plain table and property tests.
//!
//! # Layout
//! - [`config`]: the cluster configuration (address space and bit widths) and its validation.
//! - [`layout`]: address math over a validated configuration: host prefixes, rack aggregates,
//!   tenant and segment CIDRs, endpoint addresses, decoding, and the cluster-wide masked
//!   matches that let one nftables rule isolate a tenant or segment on every host.
//! - [`fabric`]: the static routes of the leaves and the spine for the hosts that exist.
//! - [`model`]: the records kept in etcd (hosts, tenants, segments, endpoints).
//! - [`names`]: name rules (hosts, tenants, segments, endpoint ids).
//! - [`labels`]: label and named-port rules, as Kubernetes has them, and their bounds.
//! - [`hostaddr`]: what a host's fabric address may be.
//! - [`text`]: [`text::quote`], the bounded, escaped prefix every message uses for input.
//! - [`datapath`]: conventions the agent and the CNI plugin share (interface names, route
//!   protocol number).
//! - [`interface`]: an endpoint's host-side interface (derived `rmn*` veth or a named
//!   `tap*`), and the names a caller may give.
//! - [`pod`]: the Kubernetes pod an endpoint belongs to, as runtimes name it.
//! - [`authz`]: identities from certificate common names and who may do what to which object.
//! - [`alloc`]: lowest-free number selection shared by topology, tenant and ipam services.
//! - [`policy`]: network policy in its two forms (Romana, Kubernetes NetworkPolicy), parsing,
//!   validation worded as the API server words it, and the two-tier evaluation the agent and
//!   `policy explain` share.
#![forbid(unsafe_code)]

pub mod alloc;
pub mod authz;
pub mod config;
pub mod datapath;
pub mod fabric;
pub mod hostaddr;
pub mod interface;
pub mod labels;
pub mod layout;
pub mod model;
pub mod names;
pub mod pod;
pub mod policy;
pub mod text;

pub use config::{ClusterConfig, ConfigError};
pub use hostaddr::{validate_host_ip, HostAddrError};
pub use interface::{host_interface, validate_interface, InterfaceError};
pub use labels::{validate_labels, validate_ports, LabelError};
pub use layout::{AddrError, Decoded, Layout, MaskedMatch};
pub use model::{
    AgentStatus, Endpoint, Host, Isolation, NameError, NamedPort, Segment, ServiceRecord, Tenant,
};
pub use pod::{validate_pod, Pod, PodError};
