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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use romana_core::policy::{evaluate, parse_documents, ClusterView, Packet, PolicySet, Protocol};
use romana_core::{ClusterConfig, Endpoint, Host, Isolation, Layout, NamedPort, Segment, Tenant};
use romana_proto::pb;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::cluster::Cluster;
use crate::netns::Netns;
use crate::Service;

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

// === loading ===

/// Hosts every case runs on: `cluster().racks(1).hosts(2)`.
pub const HOSTS: usize = 2;

/// Loads every `*.yaml` of `dir`, ordered by file name.
pub fn load_all(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files.iter().map(|f| load(f)).collect()
}

/// Loads and checks one case file.
pub fn load(file: &Path) -> anyhow::Result<Case> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    parse_case(&text, file).with_context(|| format!("case {}", file.display()))
}

fn parse_case(text: &str, file: &Path) -> anyhow::Result<Case> {
    let raw: CaseFile = serde_norway::from_str(text)?;
    let mut seen = BTreeSet::new();
    for p in &raw.pods {
        if !seen.insert(p.name.as_str()) {
            bail!("pod {} is listed twice", p.name);
        }
        if !raw.tenants.iter().any(|t| t.name == p.tenant) {
            bail!("pod {} names unknown tenant {}", p.name, p.tenant);
        }
        if p.host >= HOSTS {
            bail!(
                "pod {} is on host {}, but there are {HOSTS}",
                p.name,
                p.host
            );
        }
        for (name, port) in &p.ports {
            parse_named_port(name, port).map_err(anyhow::Error::msg)?;
        }
    }
    let probes: Vec<Probe> = raw
        .probes
        .iter()
        .map(|p| p.parse())
        .collect::<Result<_, String>>()
        .map_err(anyhow::Error::msg)?;
    let mut grids: BTreeMap<Probe, Grid> = BTreeMap::new();
    for (key, text) in &raw.expect {
        let grid =
            parse_grid(text, &raw.pods, HOSTS).map_err(|e| anyhow::anyhow!("grid {key:?}: {e}"))?;
        for probe in key.split(',') {
            let probe: Probe = probe.parse().map_err(anyhow::Error::msg)?;
            if !probes.contains(&probe) {
                bail!("grid {key:?} names {probe}, which is not in probes");
            }
            if grids.insert(probe, grid.clone()).is_some() {
                bail!("{probe} has two grids");
            }
        }
    }
    let mut expect = Vec::new();
    for probe in &probes {
        let grid = grids
            .remove(probe)
            .with_context(|| format!("no grid for {probe}"))?;
        expect.push((*probe, grid));
    }
    Ok(Case {
        file: file.to_path_buf(),
        name: raw.name,
        source: raw.source,
        needs: raw.needs,
        tenants: raw.tenants,
        pods: raw.pods,
        policies: raw.policies,
        probes,
        expect,
    })
}

/// A grid: a header of destinations after a corner `-` (which keeps a YAML block's
/// indentation that of the rows), then one row per source. Every pod must appear as a row
/// and as a column; hosts (`@hN`) are optional. A pod's own cell must be `-`.
pub fn parse_grid(text: &str, pods: &[PodSpec], hosts: usize) -> Result<Grid, String> {
    let mut lines = text
        .lines()
        .map(str::split_whitespace)
        .map(|w| w.collect::<Vec<_>>())
        .filter(|w| !w.is_empty());
    let header = lines.next().ok_or("the grid is empty")?;
    if header.first() != Some(&"-") {
        return Err("the header must start with the corner `-`".into());
    }
    let cols: Vec<Node> = header[1..]
        .iter()
        .map(|t| Node::parse(t, pods, hosts))
        .collect::<Result<_, _>>()?;
    let mut rows = Vec::new();
    let mut cells = BTreeMap::new();
    for words in lines {
        let from = Node::parse(words[0], pods, hosts)?;
        if words.len() != cols.len() + 1 {
            return Err(format!(
                "row {from} has {} cells, the header {}",
                words.len() - 1,
                cols.len()
            ));
        }
        for (to, cell) in cols.iter().zip(&words[1..]) {
            let mark = match *cell {
                "." => Mark::Allowed,
                "X" => Mark::Blocked,
                "-" => Mark::Skipped,
                other => return Err(format!("cell {from} -> {to} is {other:?}, not . X or -")),
            };
            if *to == from && mark != Mark::Skipped {
                return Err(format!("{from} -> itself must be -"));
            }
            cells.insert((from.clone(), to.clone()), mark);
        }
        rows.push(from);
    }
    for p in pods {
        let node = Node::Pod(p.name.clone());
        if !rows.contains(&node) || !cols.contains(&node) {
            return Err(format!("pod {} needs a row and a column", p.name));
        }
    }
    let distinct = |v: &[Node]| v.iter().collect::<BTreeSet<_>>().len() == v.len();
    if !distinct(&rows) || !distinct(&cols) {
        return Err("a row or column is listed twice".into());
    }
    Ok(Grid { rows, cols, cells })
}

/// A case's `NAME: PROTO/NUMBER`, read as the CNI plugin reads `ROMANA_PORTS`.
fn parse_named_port(name: &str, text: &str) -> Result<NamedPort, String> {
    romana_core::labels::parse_named_port(&format!("{name}={text}")).map_err(|e| e.to_string())
}

/// Replaces `{{kind:arg}}` placeholders with `lookup(kind, arg)`.
pub fn render(text: &str, lookup: impl Fn(&str, &str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("unclosed placeholder at {:?}", &rest[start..]))?;
        let inner = &rest[start + 2..start + end];
        let (kind, arg) = inner
            .split_once(':')
            .ok_or_else(|| format!("placeholder {{{{{inner}}}}} is not KIND:ARG"))?;
        let value = lookup(kind.trim(), arg.trim())
            .ok_or_else(|| format!("placeholder {{{{{inner}}}}} names nothing known"))?;
        out.push_str(&value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

// === impl Case ===

impl Case {
    /// Segments of a tenant in number order: `default`, the listed ones, then pods' others.
    pub fn segments_of(&self, tenant: &str) -> Vec<String> {
        let mut out = vec!["default".to_string()];
        let listed = self
            .tenants
            .iter()
            .filter(|t| t.name == tenant)
            .flat_map(|t| t.segments.iter().cloned());
        let used = self
            .pods
            .iter()
            .filter(|p| p.tenant == tenant)
            .map(|p| p.segment.clone());
        for s in listed.chain(used) {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }

    /// Every (probe, from, to) the grids ask for, with the expected verdict.
    pub fn expected(&self) -> Vec<(Probe, Node, Node, bool)> {
        let mut out = Vec::new();
        for (probe, grid) in &self.expect {
            for from in &grid.rows {
                for to in &grid.cols {
                    match grid.cells[&(from.clone(), to.clone())] {
                        Mark::Allowed => out.push((*probe, from.clone(), to.clone(), true)),
                        Mark::Blocked => out.push((*probe, from.clone(), to.clone(), false)),
                        Mark::Skipped => {}
                    }
                }
            }
        }
        out
    }

    /// The grids with what was observed, or `None` when everything matched.
    pub fn diff(&self, got: &Results) -> Option<String> {
        let mut out = String::new();
        let mut mismatches = Vec::new();
        for (probe, grid) in &self.expect {
            let wrong = |from: &Node, to: &Node| -> Option<&Observed> {
                let want = grid.cells[&(from.clone(), to.clone())];
                let o = got.get(&(*probe, from.clone(), to.clone()))?;
                let bad = match want {
                    Mark::Allowed => !o.allowed,
                    Mark::Blocked => o.allowed,
                    Mark::Skipped => false,
                };
                bad.then_some(o)
            };
            let count = grid
                .rows
                .iter()
                .flat_map(|f| grid.cols.iter().map(move |t| (f, t)))
                .filter(|(f, t)| wrong(f, t).is_some())
                .count();
            if count == 0 {
                continue;
            }
            let width = grid
                .rows
                .iter()
                .chain(&grid.cols)
                .map(|n| n.to_string().len())
                .max()
                .unwrap_or(1)
                + 2;
            let _ = writeln!(
                out,
                "  {probe}: {count} mismatch(es); expected | got (* marks a mismatch)"
            );
            let header: String = grid
                .cols
                .iter()
                .map(|c| format!("{:>width$}", c.to_string()))
                .collect();
            let _ = writeln!(out, "    {:width$}{header}  | {:width$}{header}", "", "");
            for from in &grid.rows {
                let mut want = format!("    {:width$}", from.to_string());
                let mut seen = format!("{:width$}", from.to_string());
                for to in &grid.cols {
                    let mark = grid.cells[&(from.clone(), to.clone())];
                    let w = match mark {
                        Mark::Allowed => ".",
                        Mark::Blocked => "X",
                        Mark::Skipped => "-",
                    };
                    let g = match (mark, got.get(&(*probe, from.clone(), to.clone()))) {
                        (Mark::Skipped, _) | (_, None) => "-".to_string(),
                        (_, Some(o)) => {
                            let m = if o.allowed { "." } else { "X" };
                            if wrong(from, to).is_some() {
                                format!("{m}*")
                            } else {
                                m.to_string()
                            }
                        }
                    };
                    let _ = write!(want, "{w:>width$}");
                    let _ = write!(seen, "{g:>width$}");
                }
                let _ = writeln!(out, "{want}  | {seen}");
            }
            for from in &grid.rows {
                for to in &grid.cols {
                    if let Some(o) = wrong(from, to) {
                        mismatches.push(format!(
                            "  {from} -> {to} {probe}: expected {}, got {}: {}",
                            if o.allowed { "blocked" } else { "allowed" },
                            if o.allowed { "allowed" } else { "blocked" },
                            o.reason
                        ));
                    }
                }
            }
        }
        if mismatches.is_empty() {
            return None;
        }
        Some(format!(
            "case {} ({})\n  source: {}\n{out}{}\n",
            self.name,
            self.file.display(),
            self.source,
            mismatches.join("\n")
        ))
    }
}

// === model mode ===

/// The layout every case is placed in, the same as `cluster()`'s.
pub fn mk_layout() -> Layout {
    ClusterConfig {
        address_space: "10.0.0.0/8".parse().expect("a CIDR"),
        host_bits: 8,
        rack_bits: 2,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
    }
    .layout()
    .expect("a valid layout")
}

/// A case placed in memory: hosts as the cluster harness names them (`r0h0`, `r0h1`, fabric
/// 192.168.0.11, .12), tenants numbered in order from 0, segments in
/// [`Case::segments_of`] order, pods numbered from the first assignable endpoint per segment
/// and host in file order.
pub struct Model {
    pub view: ClusterView,
    pub policies: PolicySet,
    pub addresses: BTreeMap<Node, IpAddr>,
}

pub fn mk_model(case: &Case) -> anyhow::Result<Model> {
    let layout = mk_layout();
    let hosts: Vec<Host> = (0..HOSTS)
        .map(|i| Host {
            name: format!("r0h{i}"),
            ip: format!("192.168.0.{}", 11 + i).parse().expect("an address"),
            rack: 0,
            index: layout.host_index(0, i as u32).expect("in range"),
        })
        .collect();
    let mut tenants = Vec::new();
    let mut segments = Vec::new();
    for (id, t) in case.tenants.iter().enumerate() {
        let mut labels = t.labels.clone();
        labels.insert("kubernetes.io/metadata.name".into(), t.name.clone());
        tenants.push(Tenant {
            name: t.name.clone(),
            id: id as u32,
            isolation: t.isolation,
            labels,
        });
        for (sid, s) in case.segments_of(&t.name).into_iter().enumerate() {
            segments.push(Segment {
                tenant: t.name.clone(),
                name: s,
                id: sid as u32,
            });
        }
    }
    let mut next: BTreeMap<(usize, String, String), u128> = BTreeMap::new();
    let mut endpoints = Vec::new();
    let mut addresses = BTreeMap::new();
    for p in &case.pods {
        let tenant = tenants
            .iter()
            .find(|t| t.name == p.tenant)
            .expect("checked");
        let segment = segments
            .iter()
            .find(|s| s.tenant == p.tenant && s.name == p.segment)
            .expect("segments_of lists it");
        let n = next
            .entry((p.host, p.tenant.clone(), p.segment.clone()))
            .or_insert(*layout.assignable_endpoints().start());
        let address = layout.endpoint_address(hosts[p.host].index, tenant.id, segment.id, *n)?;
        *n += 1;
        addresses.insert(Node::Pod(p.name.clone()), address);
        endpoints.push(Endpoint {
            interface: String::new(),
            id: model_id(&p.name),
            address,
            host: hosts[p.host].name.clone(),
            tenant: p.tenant.clone(),
            segment: p.segment.clone(),
            labels: p.labels.clone(),
            ports: p
                .ports
                .iter()
                .map(|(n, t)| parse_named_port(n, t))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
        });
    }
    for (i, h) in hosts.iter().enumerate() {
        addresses.insert(Node::Host(i), h.ip);
    }
    let text = render(&case.policies, |kind, arg| {
        lookup(kind, arg, &addresses, &|pod| Some(model_id(pod)), &|i| {
            layout
                .host_prefix(hosts.get(i)?.index)
                .ok()
                .map(|p| p.to_string())
        })
    })
    .map_err(anyhow::Error::msg)?;
    let policies = if text.trim().is_empty() {
        PolicySet::new()
    } else {
        parse_documents(&text)?.into_iter().collect()
    };
    let view = ClusterView::new(layout.clone(), hosts, tenants, segments, endpoints);
    Ok(Model {
        view,
        policies,
        addresses,
    })
}

fn model_id(pod: &str) -> String {
    format!("{pod}:eth0")
}

fn lookup(
    kind: &str,
    arg: &str,
    addresses: &BTreeMap<Node, IpAddr>,
    id: &dyn Fn(&str) -> Option<String>,
    host_prefix: &dyn Fn(usize) -> Option<String>,
) -> Option<String> {
    match kind {
        "ip" => addresses
            .get(&Node::Pod(arg.to_string()))
            .map(ToString::to_string),
        "id" => addresses
            .contains_key(&Node::Pod(arg.to_string()))
            .then(|| id(arg))
            .flatten(),
        "host_ip" => addresses
            .get(&Node::Host(arg.parse().ok()?))
            .map(ToString::to_string),
        "host_prefix" => host_prefix(arg.parse().ok()?),
        _ => None,
    }
}

/// Evaluates every expected cell with the evaluator; `Err` holds the matrix diff.
pub fn run_model(case: &Case) -> anyhow::Result<Result<(), String>> {
    let model = mk_model(case)?;
    let mut got = Results::new();
    for (probe, from, to, _) in case.expected() {
        let packet = probe.packet(model.addresses[&from], model.addresses[&to]);
        let d = evaluate(&model.policies, &model.view, &packet);
        let allowed = d.verdict == romana_core::policy::Verdict::Allow;
        got.insert(
            (probe, from, to),
            Observed {
                allowed,
                reason: d.reason,
            },
        );
    }
    Ok(case.diff(&got).map_or(Ok(()), Err))
}

// === cluster mode ===

const CONVERGE: Duration = Duration::from_secs(20);
/// How long mismatches are re-probed after the agents reported the case's state.
const SETTLE: Duration = Duration::from_secs(8);
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
const PAYLOAD: &[u8; 5] = b"probe";

/// One case's pods on the cluster, removed by [`Placed::remove`].
struct Placed {
    pods: BTreeMap<String, (String, crate::cluster::EndpointNs)>,
    policies: Vec<String>,
    tenants: Vec<String>,
}

/// Builds `case` on `c` (fresh tenants, pods through the CNI plugin, policies through
/// policy-service), probes every expected cell with real packets, and removes it all
/// again. `Ok(Err(diff))` is a disagreement; `Err` a failure to run the case.
pub async fn run_cluster(c: &mut Cluster, case: &Case) -> anyhow::Result<Result<(), String>> {
    let mut placed = Placed {
        pods: BTreeMap::new(),
        policies: Vec::new(),
        tenants: Vec::new(),
    };
    let result = run_placed(c, case, &mut placed).await;
    let cleanup = placed.remove(c).await;
    let verdict = result?;
    cleanup.context("removing the case from the cluster")?;
    Ok(verdict)
}

async fn run_placed(
    c: &mut Cluster,
    case: &Case,
    placed: &mut Placed,
) -> anyhow::Result<Result<(), String>> {
    let mut tenants = c.tenants().await?;
    for t in &case.tenants {
        tenants
            .add_tenant(pb::AddTenantRequest {
                name: t.name.clone(),
                isolation: pb_isolation(t.isolation) as i32,
                labels: t.labels.clone().into_iter().collect(),
            })
            .await
            .with_context(|| format!("adding tenant {}", t.name))?;
        placed.tenants.push(t.name.clone());
        for s in case.segments_of(&t.name).into_iter().skip(1) {
            tenants
                .add_segment(pb::AddSegmentRequest {
                    tenant: t.name.clone(),
                    name: s.clone(),
                })
                .await
                .with_context(|| format!("adding segment {}/{s}", t.name))?;
        }
    }
    for p in &case.pods {
        let ep = add_pod(c, p).await?;
        placed
            .pods
            .insert(p.name.clone(), (c.hosts[p.host].name.clone(), ep));
    }

    let store = crate::mk_store(&c.plane.etcd_endpoints()).await;
    let keys = store.keys().clone();
    let mut revision = 0;
    for (_, ep) in placed.pods.values() {
        let v = store
            .get(&keys.endpoint(&ep.id))
            .await?
            .with_context(|| format!("endpoint {} is not stored", ep.id))?;
        revision = revision.max(v.mod_revision);
    }

    let mut addresses: BTreeMap<Node, IpAddr> = placed
        .pods
        .iter()
        .map(|(name, (_, ep))| (Node::Pod(name.clone()), ep.address))
        .collect();
    for (i, h) in c.hosts.iter().enumerate().take(HOSTS) {
        addresses.insert(Node::Host(i), h.ip);
    }
    let listed = c
        .topology()
        .await?
        .list_hosts(pb::ListHostsRequest::default())
        .await?
        .into_inner()
        .hosts;
    let prefix_of = |i: usize| -> Option<String> {
        let name = &c.hosts.get(i)?.name;
        listed
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.prefix.clone())
    };
    let ids: BTreeMap<String, String> = placed
        .pods
        .iter()
        .map(|(n, (_, ep))| (n.clone(), ep.id.clone()))
        .collect();
    let text = render(&case.policies, |kind, arg| {
        lookup(
            kind,
            arg,
            &addresses,
            &|pod| ids.get(pod).cloned(),
            &prefix_of,
        )
    })
    .map_err(anyhow::Error::msg)?;
    let mut policies = mk_policies(c).await?;
    if !text.trim().is_empty() {
        let applied = policies
            .apply_policies(pb::ApplyPoliciesRequest {
                document: text,
                ..Default::default()
            })
            .await
            .context("applying the case's policies")?
            .into_inner();
        for a in &applied.applied {
            if let Some(p) = &a.policy {
                placed.policies.push(p.id.clone());
                revision = revision.max(p.revision);
            }
        }
    }
    wait_for_agents(c, revision).await?;

    let nodes: Vec<(Node, &Netns, IpAddr)> = addresses
        .keys()
        .map(|n| {
            let ns = match n {
                Node::Pod(p) => &placed.pods[p].1.ns,
                Node::Host(i) => &c.hosts[*i].ns,
            };
            (n.clone(), ns, addresses[n])
        })
        .collect();
    let _servers = serve(&nodes, &case.probes)?;

    let expected = case.expected();
    let mut got = Results::new();
    let mut pending: Vec<(Probe, Node, Node, bool)> = expected.clone();
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let seen = probe_all(&nodes, &pending).await?;
        pending
            .retain(|(probe, from, to, want)| seen[&(*probe, from.clone(), to.clone())] != *want);
        for (k, allowed) in seen {
            got.insert(
                k,
                Observed {
                    allowed,
                    reason: String::new(),
                },
            );
        }
        if pending.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (probe, from, to, _) in &pending {
        let reason = explain(&mut policies, *probe, addresses[from], addresses[to]).await;
        if let Some(o) = got.get_mut(&(*probe, from.clone(), to.clone())) {
            o.reason = format!("policy explain says {reason}");
        }
    }
    Ok(case.diff(&got).map_or(Ok(()), Err))
}

impl Placed {
    async fn remove(self, c: &mut Cluster) -> anyhow::Result<()> {
        let mut policies = mk_policies(c).await?;
        for id in &self.policies {
            policies
                .delete_policy(pb::DeletePolicyRequest { id: id.clone() })
                .await
                .with_context(|| format!("deleting policy {id}"))?;
        }
        for (name, (host, ep)) in self.pods {
            let config = format!(
                r#"{{"cniVersion":"1.0.0","name":"romana","type":"romana-cni","root":"{}","host":"{host}"}}"#,
                c.plane.root_url()
            );
            c.cni(&host, "DEL", &ep.ns, &config, "")
                .with_context(|| format!("removing pod {name}"))?;
        }
        let mut tenants = c.tenants().await?;
        for t in self.tenants.iter().rev() {
            tenants
                .remove_tenant(pb::RemoveTenantRequest { name: t.clone() })
                .await
                .with_context(|| format!("removing tenant {t}"))?;
        }
        Ok(())
    }
}

fn pb_isolation(i: Isolation) -> pb::Isolation {
    match i {
        Isolation::Segment => pb::Isolation::Segment,
        Isolation::Tenant => pb::Isolation::Tenant,
        Isolation::None => pb::Isolation::None,
    }
}

async fn mk_policies(c: &Cluster) -> anyhow::Result<pb::policies_client::PoliciesClient<Channel>> {
    let channel = Channel::from_shared(c.plane.url(Service::Policy))?
        .connect()
        .await?;
    Ok(pb::policies_client::PoliciesClient::new(channel))
}

/// A pod through the CNI plugin, labels in `CNI_ARGS` `ROMANA_LABELS`, named ports in
/// `ROMANA_PORTS`.
async fn add_pod(c: &mut Cluster, p: &PodSpec) -> anyhow::Result<crate::cluster::EndpointNs> {
    let host = c.hosts[p.host].name.clone();
    let ns = Netns::create(&format!("p-{}", p.name))?;
    let id = format!("{}:eth0", ns.name());
    let config = format!(
        r#"{{"cniVersion":"1.0.0","name":"romana","type":"romana-cni","root":"{}","host":"{host}","tenant":"{}","segment":"{}"}}"#,
        c.plane.root_url(),
        p.tenant,
        p.segment
    );
    let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let ports: Vec<String> = p.ports.iter().map(|(n, t)| format!("{n}={t}")).collect();
    let mut args = Vec::new();
    if !labels.is_empty() {
        args.push(format!("ROMANA_LABELS={}", labels.join(",")));
    }
    if !ports.is_empty() {
        args.push(format!("ROMANA_PORTS={}", ports.join(",")));
    }
    let args = args.join(";");
    let out = c
        .cni(&host, "ADD", &ns, &config, &args)
        .with_context(|| format!("adding pod {}", p.name))?;
    let result: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("CNI ADD output: {out}"))?;
    let cidr = result["ips"][0]["address"]
        .as_str()
        .with_context(|| format!("no address in CNI result {result}"))?;
    let address: IpAddr = cidr.split('/').next().unwrap_or_default().parse()?;
    Ok(crate::cluster::EndpointNs {
        host_ifname: romana_core::datapath::endpoint_ifname(&id),
        id,
        host,
        address,
        ns,
    })
}

/// Waits until every agent reports having applied `revision`, converged, nothing blocked.
async fn wait_for_agents(c: &Cluster, revision: i64) -> anyhow::Result<()> {
    let topology = c.topology().await?;
    let names: Vec<String> = c.hosts.iter().map(|h| h.name.clone()).collect();
    crate::eventually(
        &format!("every agent to apply revision {revision}"),
        CONVERGE,
        || {
            let mut topology = topology.clone();
            let names = names.clone();
            async move {
                for host in names {
                    let s = topology
                        .get_host_status(pb::GetHostStatusRequest { host })
                        .await
                        .ok()?
                        .into_inner();
                    let done =
                        s.reported && s.revision >= revision && s.converged && s.blocked.is_empty();
                    if !done {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await?;
    Ok(())
}

/// Runs `f` on a thread inside the namespace at `path`: sockets made there stay there.
fn in_netns<T: Send>(
    path: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send,
) -> anyhow::Result<T> {
    let ns = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> anyhow::Result<T> {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("entering the network namespace")?;
                Ok(f()?)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Echo servers on every node for every TCP and UDP probe; dropped, they stop.
fn serve(nodes: &[(Node, &Netns, IpAddr)], probes: &[Probe]) -> anyhow::Result<JoinSet<()>> {
    let mut set = JoinSet::new();
    for (node, ns, address) in nodes {
        let address = *address;
        let (tcp, udp) = in_netns(&ns.path(), || {
            let mut tcp = Vec::new();
            let mut udp = Vec::new();
            for probe in probes {
                match probe {
                    Probe::Tcp(port) => tcp.push(std::net::TcpListener::bind((address, *port))?),
                    Probe::Udp(port) => udp.push(std::net::UdpSocket::bind((address, *port))?),
                    Probe::Icmp => {}
                }
            }
            Ok((tcp, udp))
        })
        .with_context(|| format!("binding probe servers on {node}"))?;
        for l in tcp {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            set.spawn(async move {
                let mut conns = JoinSet::new();
                while let Ok((mut s, _)) = l.accept().await {
                    conns.spawn(async move {
                        let mut buf = [0u8; PAYLOAD.len()];
                        if s.read_exact(&mut buf).await.is_ok() {
                            let _ = s.write_all(&buf).await;
                        }
                    });
                }
            });
        }
        for u in udp {
            u.set_nonblocking(true)?;
            let u = tokio::net::UdpSocket::from_std(u)?;
            set.spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok((n, peer)) = u.recv_from(&mut buf).await {
                    let _ = u.send_to(&buf[..n], peer).await;
                }
            });
        }
    }
    Ok(set)
}

enum Client {
    Tcp(tokio::net::TcpSocket),
    Udp(std::net::UdpSocket),
    Icmp,
}

/// Probes every cell of `cells` at once; true when the exchange completed.
async fn probe_all(
    nodes: &[(Node, &Netns, IpAddr)],
    cells: &[(Probe, Node, Node, bool)],
) -> anyhow::Result<BTreeMap<(Probe, Node, Node), bool>> {
    let find = |n: &Node| nodes.iter().find(|(m, _, _)| m == n).expect("a node");
    let mut set = JoinSet::new();
    for (from, ns, _) in nodes {
        let mine: Vec<&(Probe, Node, Node, bool)> =
            cells.iter().filter(|(_, f, _, _)| f == from).collect();
        if mine.is_empty() {
            continue;
        }
        let clients = in_netns(&ns.path(), || {
            mine.iter()
                .map(|(probe, _, _, _)| {
                    Ok(match probe {
                        Probe::Tcp(_) => Client::Tcp(tokio::net::TcpSocket::new_v4()?),
                        Probe::Udp(_) => Client::Udp(std::net::UdpSocket::bind("0.0.0.0:0")?),
                        Probe::Icmp => Client::Icmp,
                    })
                })
                .collect::<std::io::Result<Vec<_>>>()
        })?;
        for (client, (probe, from, to, _)) in clients.into_iter().zip(mine) {
            let target = find(to).2;
            let probe = *probe;
            let key = (probe, from.clone(), to.clone());
            let ping = matches!(client, Client::Icmp).then(|| {
                let mut cmd = ns.command("ping");
                cmd.args(["-c1", "-W1", &target.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                tokio::process::Command::from(cmd)
            });
            set.spawn(async move {
                let ok = match (client, probe.port()) {
                    (Client::Tcp(s), Some(port)) => {
                        tcp_exchange(s, SocketAddr::new(target, port)).await
                    }
                    (Client::Udp(s), Some(port)) => {
                        udp_exchange(s, SocketAddr::new(target, port)).await
                    }
                    _ => match ping {
                        Some(mut cmd) => cmd.status().await.is_ok_and(|s| s.success()),
                        None => false,
                    },
                };
                (key, ok)
            });
        }
    }
    let mut out = BTreeMap::new();
    while let Some(done) = set.join_next().await {
        let (key, ok) = done?;
        out.insert(key, ok);
    }
    Ok(out)
}

async fn tcp_exchange(s: tokio::net::TcpSocket, to: SocketAddr) -> bool {
    let attempt = async {
        let mut stream = s.connect(to).await?;
        stream.write_all(PAYLOAD).await?;
        let mut back = [0u8; PAYLOAD.len()];
        stream.read_exact(&mut back).await?;
        std::io::Result::Ok(&back == PAYLOAD)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Ok(true))
    )
}

async fn udp_exchange(s: std::net::UdpSocket, to: SocketAddr) -> bool {
    let attempt = async {
        s.set_nonblocking(true)?;
        let s = tokio::net::UdpSocket::from_std(s)?;
        s.connect(to).await?;
        s.send(PAYLOAD).await?;
        let mut back = [0u8; 16];
        let n = s.recv(&mut back).await?;
        std::io::Result::Ok(&back[..n] == PAYLOAD)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, attempt).await,
        Ok(Ok(true))
    )
}

async fn explain(
    policies: &mut pb::policies_client::PoliciesClient<Channel>,
    probe: Probe,
    from: IpAddr,
    to: IpAddr,
) -> String {
    let icmp = (probe == Probe::Icmp).then_some(8);
    let req = pb::ExplainRequest {
        from: from.to_string(),
        to: to.to_string(),
        protocol: probe.protocol().to_string(),
        port: probe.port().map(u32::from),
        icmp_type: icmp,
        icmp_code: icmp.map(|_| 0),
    };
    match policies.explain(req).await {
        Ok(r) => {
            let r = r.into_inner();
            format!("{} ({})", r.verdict, r.reason)
        }
        Err(e) => format!("nothing (explain failed: {})", e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_pods(names: &[&str]) -> Vec<PodSpec> {
        names
            .iter()
            .map(|n| PodSpec {
                name: n.to_string(),
                tenant: "t".into(),
                segment: "default".into(),
                labels: BTreeMap::new(),
                ports: BTreeMap::new(),
                host: 0,
            })
            .collect()
    }

    #[test]
    fn grids_read_rows_as_sources_and_columns_as_destinations() {
        let pods = mk_pods(&["a", "b"]);
        let g = parse_grid("  - a b @h1\n a  - X .\n b  . - X\n", &pods, 2).unwrap();
        let a = Node::Pod("a".into());
        let b = Node::Pod("b".into());
        assert_eq!(g.cells[&(a.clone(), b.clone())], Mark::Blocked);
        assert_eq!(g.cells[&(b.clone(), a.clone())], Mark::Allowed);
        assert_eq!(g.cells[&(b, Node::Host(1))], Mark::Blocked);
        assert_eq!(g.rows.len(), 2);
    }

    #[test]
    fn grids_missing_a_pod_or_probing_a_pod_itself_are_refused() {
        let pods = mk_pods(&["a", "b"]);
        assert!(parse_grid("- a\n a -\n", &pods, 2).is_err());
        assert!(parse_grid("- a b\n a . .\n b . -\n", &pods, 2).is_err());
        assert!(parse_grid("- a b\n a - ?\n b . -\n", &pods, 2).is_err());
        assert!(parse_grid("- a b @h2\n a - . .\n b . - .\n", &pods, 2).is_err());
        assert!(parse_grid("a b\n a - .\n b . -\n", &pods, 2).is_err());
    }

    #[test]
    fn placeholders_are_replaced_and_unknown_ones_refused() {
        let look = |k: &str, a: &str| (k == "ip" && a == "x").then(|| "10.0.0.2".to_string());
        assert_eq!(
            render("cidr: {{ip:x}}/32", look).unwrap(),
            "cidr: 10.0.0.2/32"
        );
        assert!(render("{{ip:y}}", look).is_err());
        assert!(render("{{ip:x", look).is_err());
    }

    #[test]
    fn a_wrong_expectation_is_reported_as_a_matrix_diff_with_the_reason() {
        let text = "
name: wrong
source: test
tenants: [{name: t, isolation: segment}, {name: u}]
pods:
  - {name: a, tenant: t, host: 0}
  - {name: b, tenant: t, host: 1}
  - {name: c, tenant: u, host: 1}
probes: [tcp/80]
expect:
  tcp/80: |
    -  a b c
    a  - X X
    b  . - X
    c  X X -
";
        let case = parse_case(text, Path::new("wrong.yaml")).unwrap();
        let diff = run_model(&case).unwrap().unwrap_err();
        assert!(diff.contains("tcp/80: 1 mismatch(es)"), "{diff}");
        assert!(
            diff.contains("a -> b tcp/80: expected blocked, got allowed: "),
            "{diff}"
        );
        assert!(diff.contains("same segment t/default"), "{diff}");
        assert!(diff.contains(".*"), "{diff}");
    }

    #[test]
    fn probes_parse_as_written_in_cases() {
        assert_eq!("tcp/80".parse::<Probe>(), Ok(Probe::Tcp(80)));
        assert_eq!(" udp/53".parse::<Probe>(), Ok(Probe::Udp(53)));
        assert_eq!("icmp".parse::<Probe>(), Ok(Probe::Icmp));
        assert!("tcp/0".parse::<Probe>().is_err());
        assert!("sctp/9".parse::<Probe>().is_err());
    }
}
