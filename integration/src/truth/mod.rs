//! The policy truth table: hand-written reachability cases (`testdata/policy/*.yaml`), each
//! checked against the evaluator ([`run_model`]) and against real packets on a namespaced
//! cluster ([`run_cluster`]).
//!
//! Expectations are written by hand from the Kubernetes documentation and API reference and
//! from the product's own promises (MISSION.md, "Isolation and policy, in two tiers"). They
//! are never computed with `romana_core::policy::evaluate`: the evaluator is what is on trial.
//!
//! # A case file
//! ```yaml
//! name: default-deny-ingress
//! source: "kubernetes.io/docs/concepts/services-networking/network-policies, Default deny all ingress traffic"
//! needs: [network-policy]        # what enforcement the expectations rely on (see Feature)
//! tenants:                        # numbered in order; the label kubernetes.io/metadata.name is implied
//!   - {name: default, isolation: none, labels: {team: a}, segments: [web]}
//! pods:                           # host is an index into the cluster's hosts
//!   - {name: a, tenant: default, segment: web, labels: {app: a}, ports: {http: tcp/8080}, host: 0}
//! policies: |                     # verbatim, as `romanactl policy apply -f` takes it
//!   apiVersion: networking.k8s.io/v1
//!   ...
//! probes: [tcp/80, udp/53, icmp]  # icmp is one echo request (type 8, code 0)
//! expect:                         # one grid per probe; a key may name several probes
//!   tcp/80, icmp: |
//!     -   a   b   @h1             # columns: destinations; rows: sources
//!     a   -   X   .               # . allowed, X blocked, - not probed
//!     b   .   -   .
//!     @h1 .   .   -
//! ```
//! `@hN` is host N's own (fabric) address. Policies may name addresses the layout decides
//! with placeholders: `{{ip:POD}}`, `{{id:POD}}` (the endpoint id), `{{host_ip:N}}` and
//! `{{host_prefix:N}}`.
//!
//! What has bitten us:
//! - A pod talking to its own address never leaves its namespace; the diagonal is `-`.
//! - A probe seen once is not a verdict while the agent converges: the cluster runner waits
//!   for every agent to report the case's revision, then re-probes mismatches until a
//!   deadline before reporting them.
//!
//! # Layout
//! - this module: the case's types ([`Case`], [`Probe`], [`Node`], [`Grid`]).
//! - `case`: loading and checking case files, placeholders, and the matrix diff.
//! - `model`: model mode, the evaluator on an in-memory placement.
//! - `cluster`: cluster mode, a case built on a namespaced cluster and probed.
//! - `probe`: echo servers and probes with real packets, inside namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use romana_core::policy::{Packet, Protocol};
use romana_core::Isolation;
use serde::Deserialize;

mod case;
mod cluster;
mod model;
mod probe;

pub use case::{load, load_all, parse_grid, render, HOSTS};
pub use cluster::run_cluster;
pub use model::{mk_layout, mk_model, run_model, Model};

/// Where the case files are.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/policy")
}

/// What enforcement a case's expectations rely on. The cluster-mode test runs a case only
/// when the agent enforces every feature it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feature {
    /// Tenant isolation modes for traffic into endpoints.
    IngressBaseline,
    /// Tenant isolation modes for traffic out of endpoints (toward other tenants, hosts).
    EgressBaseline,
    /// Romana-form policies (baseline allows).
    RomanaPolicy,
    /// Kubernetes NetworkPolicy.
    NetworkPolicy,
}

/// One probe: a TCP or UDP exchange with a port, or one ICMP echo request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    Tcp(u16),
    Udp(u16),
    Icmp,
}

/// A place a probe starts or ends: a pod, or a host's own address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Pod(String),
    Host(usize),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub name: String,
    #[serde(default)]
    pub isolation: Isolation,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Segments besides `default`, in number order; pods' segments are added after these.
    #[serde(default)]
    pub segments: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodSpec {
    pub name: String,
    pub tenant: String,
    #[serde(default = "default_segment")]
    pub segment: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Named ports, `NAME: PROTO/NUMBER`.
    #[serde(default)]
    pub ports: BTreeMap<String, String>,
    pub host: usize,
}

fn default_segment() -> String {
    "default".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    name: String,
    source: String,
    #[serde(default)]
    needs: BTreeSet<Feature>,
    tenants: Vec<TenantSpec>,
    pods: Vec<PodSpec>,
    #[serde(default)]
    policies: String,
    probes: Vec<String>,
    expect: BTreeMap<String, String>,
}

/// One expected cell of a grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Allowed,
    Blocked,
    Skipped,
}

/// A hand-written reachability grid: rows are sources, columns destinations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grid {
    pub rows: Vec<Node>,
    pub cols: Vec<Node>,
    pub cells: BTreeMap<(Node, Node), Mark>,
}

/// A loaded, checked case.
#[derive(Clone, Debug)]
pub struct Case {
    pub file: PathBuf,
    pub name: String,
    pub source: String,
    pub needs: BTreeSet<Feature>,
    pub tenants: Vec<TenantSpec>,
    pub pods: Vec<PodSpec>,
    pub policies: String,
    pub probes: Vec<Probe>,
    /// One grid per probe, in `probes` order.
    pub expect: Vec<(Probe, Grid)>,
}

/// What one probe of one ordered pair did, and why (the evaluator's or explain's reason).
#[derive(Clone, Debug)]
pub struct Observed {
    pub allowed: bool,
    pub reason: String,
}

type Results = BTreeMap<(Probe, Node, Node), Observed>;

// === impl Probe / Node ===

impl Probe {
    pub fn protocol(self) -> Protocol {
        match self {
            Probe::Tcp(_) => Protocol::Tcp,
            Probe::Udp(_) => Protocol::Udp,
            Probe::Icmp => Protocol::Icmp,
        }
    }

    pub fn port(self) -> Option<u16> {
        match self {
            Probe::Tcp(p) | Probe::Udp(p) => Some(p),
            Probe::Icmp => None,
        }
    }

    /// The packet that opens this probe's connection.
    pub fn packet(self, from: IpAddr, to: IpAddr) -> Packet {
        let icmp = (self == Probe::Icmp).then_some(8);
        Packet {
            from,
            to,
            protocol: self.protocol(),
            port: self.port(),
            icmp_type: icmp,
            icmp_code: icmp.map(|_| 0),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Tcp(p) => write!(f, "tcp/{p}"),
            Probe::Udp(p) => write!(f, "udp/{p}"),
            Probe::Icmp => f.write_str("icmp"),
        }
    }
}

impl FromStr for Probe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "icmp" {
            return Ok(Probe::Icmp);
        }
        let bad = || format!("probe {s:?} is not tcp/PORT, udp/PORT or icmp");
        let (proto, port) = s.split_once('/').ok_or_else(bad)?;
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
        match proto {
            "tcp" => Ok(Probe::Tcp(port)),
            "udp" => Ok(Probe::Udp(port)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Pod(name) => f.write_str(name),
            Node::Host(i) => write!(f, "@h{i}"),
        }
    }
}

impl Node {
    fn parse(text: &str, pods: &[PodSpec], hosts: usize) -> Result<Node, String> {
        if let Some(i) = text.strip_prefix("@h") {
            return match i.parse::<usize>() {
                Ok(i) if i < hosts => Ok(Node::Host(i)),
                _ => Err(format!("{text:?} is not a host (@h0..@h{})", hosts - 1)),
            };
        }
        if pods.iter().any(|p| p.name == text) {
            Ok(Node::Pod(text.to_string()))
        } else {
            Err(format!("{text:?} is not a pod of the case"))
        }
    }
}
