//! The agent's nftables program as plain data (an IR of chains, rules and named sets that
//! [`crate::compile`] builds and a test interpreter runs), its text rendering for
//! `nft -f -`, and the reading back of `nft -j list table inet romana` into the same shape.
//! No I/O here: the process is run by [`crate::kernel::nft`].
//!
//! # The program (table `inet romana`, the only table the agent touches)
//! ```text
//! table inet romana {
//!   set same_segment { type ipv4_addr . ipv4_addr }  # (seg . seg) per segment of a `segment` tenant
//!   set same_tenant  { type ipv4_addr . ipv4_addr }  # (tenant . tenant) per `tenant` tenant
//!   set open_tenant  { type ipv4_addr }              # tenant per `none` tenant
//!   map ingress_np / egress_np { type ipv4_addr : verdict }  # local endpoint : goto its group
//!   set rpN          { type ipv4_addr }              # local endpoints Romana policy N applies to
//!   set npI_inR_peers { type ipv4_addr }             # endpoints a NetworkPolicy rule's selectors pick
//!   set npI_inR_ports { type ipv4_addr . inet_proto . inet_service }  # named ports, resolved
//!   chain np_in_G / np_eg_G { ...rules of the policies selecting group G... return | drop }
//!   set endpoints    { type ifname . ipv4_addr }     # "rmn…"/"tap…" . address of each local endpoint
//!   set quarantine   { type ipv4_addr }              # local endpoints of tenants with an unreadable record
//!   chain from_endpoint { iifname . ip saddr @endpoints return; ip6 saddr fe80::/10 return; ...; drop }
//!   chain to_endpoint   { oifname . ip daddr @endpoints return; drop }
//!   chain egress  { ip saddr vmap @egress_np; baseline: return; drop }
//!   chain ingress { ip daddr vmap @ingress_np; baseline: return; drop }
//!   chain prerouting {
//!     type filter hook prerouting priority -300; policy accept;
//!     iifname { "rmn*", "tap*" } jump from_endpoint   # anti-spoofing, before conntrack
//!   }
//!   chain forward {
//!     type filter hook forward priority 0; policy accept;
//!     oifname { "rmn*", "tap*" } jump to_endpoint     # unknown interface or wrong address: drop
//!     iifname { "rmn*", "tap*" } ip saddr @quarantine drop
//!     oifname { "rmn*", "tap*" } ip daddr @quarantine drop
//!     ct state established,related accept
//!     iifname { "rmn*", "tap*" } jump egress     # from a local endpoint (veth or VM tap): its egress
//!     oifname { "rmn*", "tap*" } jump ingress    # to a local endpoint: its ingress
//!   }
//! }
//! ```
//! An allow is `return` (back to `forward`, which goes on to the other direction and then
//! accepts); a deny is `drop`. Group chains are entered by `goto` from a verdict map, so
//! their `return` also goes straight back to `forward`. See [`crate::compile`] for what
//! each part means and why the rule count does not grow with endpoints.
//!
//! Each rule carries `comment "romana:<fnv32 of its text>"`, so reading the table back
//! tells whether the rules are exactly ours (in order) without parsing nft's expressions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use ipnet::IpNet;
use romana_core::Layout;
use serde_json::Value;

use crate::ifname::nft_endpoint_names;

pub const TABLE_FAMILY: &str = "inet";
pub const TABLE_NAME: &str = "romana";
pub const CHAIN_NAME: &str = "forward";
pub const CHAIN_PREROUTING: &str = "prerouting";
pub const CHAIN_INGRESS: &str = "ingress";
pub const CHAIN_EGRESS: &str = "egress";
pub const CHAIN_FROM_ENDPOINT: &str = "from_endpoint";
pub const CHAIN_TO_ENDPOINT: &str = "to_endpoint";
/// `ifname . addr` of every local endpoint: the one source (egress) or destination
/// (ingress) address a packet through that interface may carry.
pub const SET_ENDPOINTS: &str = "endpoints";
/// Local endpoints whose policies could not be read: everything through them is dropped.
pub const SET_QUARANTINE: &str = "quarantine";
pub const SET_SAME_SEGMENT: &str = "same_segment";
pub const SET_SAME_TENANT: &str = "same_tenant";
pub const SET_OPEN_TENANT: &str = "open_tenant";
pub const MAP_INGRESS: &str = "ingress_np";
pub const MAP_EGRESS: &str = "egress_np";
const COMMENT_PREFIX: &str = "romana:";

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;

/// The IP family of the cluster's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

/// The key type of a named set or map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetKey {
    Addr(Family),
    AddrPair(Family),
    /// `ipv4_addr . inet_proto . inet_service`: named ports resolved per endpoint.
    AddrProtoPort(Family),
    /// `ipv4_addr : verdict`: a verdict map.
    VerdictMap(Family),
    /// `ifname . ipv4_addr`: an endpoint interface and its address.
    IfAddr(Family),
}

/// One element of a named set or map.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetElement {
    Addr(IpAddr),
    Pair(IpAddr, IpAddr),
    AddrProtoPort(IpAddr, u8, u16),
    /// A verdict map element: `addr : goto chain`.
    Goto(IpAddr, String),
    /// `"ifname" . addr`.
    IfAddr(String, IpAddr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftSet {
    pub key: SetKey,
    pub elements: BTreeSet<SetElement>,
}

/// Which address of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Src,
    Dst,
}

/// A packet field a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// `ip saddr` / `ip6 daddr`, with `& mask` when masked.
    Addr {
        family: Family,
        side: Side,
        mask: Option<IpAddr>,
    },
    /// `meta l4proto`.
    L4proto,
    /// `th dport` (TCP, UDP and SCTP share its place).
    Dport,
    /// `icmp type` / `icmpv6 type`.
    IcmpType(Family),
    /// `icmp code` / `icmpv6 code`.
    IcmpCode(Family),
    /// `iifname`: the interface the packet came in through.
    Iifname,
    /// `oifname`: the interface the packet leaves through.
    Oifname,
}

/// A value in a rule: exact, or an interval (anonymous sets are interval sets).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Atom {
    Addr(IpAddr),
    Net(IpNet),
    Proto(u8),
    Port(u16),
    PortRange(u16, u16),
    Num(u8),
}

/// One match of a rule; all matches of a rule must hold.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Match {
    /// `iifname { "rmn*", "tap*" }`: the packet comes from a local endpoint (veth or tap).
    FromEndpoint,
    /// `oifname { "rmn*", "tap*" }`: the packet goes to a local endpoint.
    ToEndpoint,
    /// `ct state established,related`.
    Established,
    /// `PART VALUE` (`PART & MASK == VALUE` when masked).
    Eq(Part, Atom),
    /// `PART . PART @set`.
    InSet(Vec<Part>, String),
    /// `PART . PART { a . b, ... }`: an anonymous interval set, elements not overlapping.
    InAnon(Vec<Part>, Vec<Vec<Atom>>),
}

/// What a rule does when it matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    /// `PART vmap @map`: goes to the element's chain, or on to the next rule if none.
    Vmap(Part, String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    pub matches: Vec<Match>,
    pub verdict: Verdict,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// Set on a base chain (policy accept); the others are only jumped to.
    pub hook: Option<Hook>,
    pub rules: Vec<Rule>,
}

/// Where a base chain is hooked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// Every packet entering the host, before conntrack (priority raw, -300): a forged
    /// packet dropped here never creates a conntrack entry that a later
    /// `ct state established` could accept.
    Prerouting,
    /// Packets routed through the host (priority filter, 0). Traffic between an endpoint
    /// and its own host never passes here: it uses the input and output hooks.
    Forward,
}

/// The whole table as the agent wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftProgram {
    pub sets: BTreeMap<String, NftSet>,
    /// In creation order; `nft` lists them in this order, the base chain last.
    pub chains: Vec<Chain>,
}

/// The table as read back, reduced to what we compare: structure and set elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableView {
    pub chains: Vec<ChainView>,
    /// Set or map name -> key type as nft prints it (`ipv4_addr . ipv4_addr`,
    /// `ipv4_addr : verdict`) and elements.
    pub sets: BTreeMap<String, SetView>,
    /// Objects we never create (counters, flowtables, flags...): any makes the table foreign.
    pub other: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainView {
    pub name: String,
    pub kind: Option<String>,
    pub hook: Option<String>,
    pub prio: Option<i64>,
    pub policy: Option<String>,
    /// The comment of each rule, in order (`None` for a rule without one: not ours).
    pub rules: Vec<Option<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetView {
    pub key: String,
    pub elements: BTreeSet<SetElement>,
}

/// Why `nft -j` output could not be read; the caller treats the table as drifted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("nft JSON has no `nftables` array")]
    NoArray,
    #[error("nft JSON: set {set} has an element we cannot read: {element}")]
    Element { set: String, element: String },
    #[error("nft JSON: {what} lacks field {field}")]
    Field {
        what: &'static str,
        field: &'static str,
    },
}

// === impl Family / SetKey / SetElement ===

impl Family {
    pub fn of(layout: &Layout) -> Family {
        match layout.address_space() {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    pub fn of_addr(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn payload(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    fn icmp(self) -> &'static str {
        match self {
            Family::V4 => "icmp",
            Family::V6 => "icmpv6",
        }
    }

    /// The `meta l4proto` number of this family's ICMP.
    pub fn icmp_proto(self) -> u8 {
        match self {
            Family::V4 => PROTO_ICMP,
            Family::V6 => PROTO_ICMPV6,
        }
    }
}

impl SetKey {
    /// The type as nft writes and prints it.
    pub fn type_text(self) -> String {
        match self {
            SetKey::Addr(f) => f.addr_type().to_string(),
            SetKey::AddrPair(f) => format!("{0} . {0}", f.addr_type()),
            SetKey::AddrProtoPort(f) => format!("{} . inet_proto . inet_service", f.addr_type()),
            SetKey::VerdictMap(f) => format!("{} : verdict", f.addr_type()),
            SetKey::IfAddr(f) => format!("ifname . {}", f.addr_type()),
        }
    }

    fn is_map(self) -> bool {
        matches!(self, SetKey::VerdictMap(_))
    }
}

/// nft's name for a protocol number (the ones we use), else the number.
pub fn proto_name(p: u8) -> String {
    match p {
        PROTO_ICMP => "icmp".into(),
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        PROTO_ICMPV6 => "ipv6-icmp".into(),
        PROTO_SCTP => "sctp".into(),
        n => n.to_string(),
    }
}

fn proto_from_json(v: &Value) -> Option<u8> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
        Value::String(s) => match s.as_str() {
            "icmp" => Some(PROTO_ICMP),
            "tcp" => Some(PROTO_TCP),
            "udp" => Some(PROTO_UDP),
            "ipv6-icmp" => Some(PROTO_ICMPV6),
            "sctp" => Some(PROTO_SCTP),
            n => n.parse().ok(),
        },
        _ => None,
    }
}

impl SetElement {
    /// The key alone, as a `delete element` names it.
    pub fn key_text(&self) -> String {
        match self {
            SetElement::Goto(a, _) => a.to_string(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for SetElement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetElement::Addr(a) => write!(f, "{a}"),
            SetElement::Pair(a, b) => write!(f, "{a} . {b}"),
            SetElement::AddrProtoPort(a, p, port) => write!(f, "{a} . {} . {port}", proto_name(*p)),
            SetElement::Goto(a, chain) => write!(f, "{a} : goto {chain}"),
            SetElement::IfAddr(name, a) => write!(f, "\"{name}\" . {a}"),
        }
    }
}

impl Hook {
    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Forward => "forward",
        }
    }

    /// The priority as a number, which is how `nft -j` prints it back.
    pub fn priority(self) -> i64 {
        match self {
            Hook::Prerouting => -300,
            Hook::Forward => 0,
        }
    }
}

// === impl Part / Atom / Match / Rule ===

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Addr { family, side, mask } => {
                let field = match side {
                    Side::Src => "saddr",
                    Side::Dst => "daddr",
                };
                write!(f, "{} {field}", family.payload())?;
                if let Some(m) = mask {
                    write!(f, " & {m}")?;
                }
                Ok(())
            }
            Part::L4proto => f.write_str("meta l4proto"),
            Part::Dport => f.write_str("th dport"),
            Part::IcmpType(family) => write!(f, "{} type", family.icmp()),
            Part::IcmpCode(family) => write!(f, "{} code", family.icmp()),
            Part::Iifname => f.write_str("iifname"),
            Part::Oifname => f.write_str("oifname"),
        }
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Addr(a) => write!(f, "{a}"),
            Atom::Net(n) => write!(f, "{n}"),
            Atom::Proto(p) => f.write_str(&proto_name(*p)),
            Atom::Port(p) => write!(f, "{p}"),
            Atom::PortRange(lo, hi) => write!(f, "{lo}-{hi}"),
            Atom::Num(n) => write!(f, "{n}"),
        }
    }
}

fn concat<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(" . ")
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::FromEndpoint => write!(f, "iifname {}", nft_endpoint_names()),
            Match::ToEndpoint => write!(f, "oifname {}", nft_endpoint_names()),
            Match::Established => f.write_str("ct state established,related"),
            Match::Eq(part @ Part::Addr { mask: Some(_), .. }, value) => {
                write!(f, "{part} == {value}")
            }
            Match::Eq(part, value) => write!(f, "{part} {value}"),
            Match::InSet(parts, set) => write!(f, "{} @{set}", concat(parts)),
            Match::InAnon(parts, elements) => {
                let elements: Vec<String> = elements.iter().map(|e| concat(e)).collect();
                write!(f, "{} {{ {} }}", concat(parts), elements.join(", "))
            }
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Return => f.write_str("return"),
            Verdict::Jump(chain) => write!(f, "jump {chain}"),
            Verdict::Vmap(part, map) => write!(f, "{part} vmap @{map}"),
        }
    }
}

impl Rule {
    pub fn new(matches: Vec<Match>, verdict: Verdict) -> Rule {
        Rule { matches, verdict }
    }

    /// The rule as `nft` reads it, without its comment.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for m in &self.matches {
            let _ = write!(out, "{m} ");
        }
        let _ = write!(out, "{}", self.verdict);
        out
    }
}

// === impl NftProgram ===

impl NftProgram {
    pub fn element_count(&self) -> usize {
        self.sets.values().map(|s| s.elements.len()).sum()
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// The table definition, as `nft -f -` reads it.
    pub fn render_table(&self) -> String {
        let mut out = format!("table {TABLE_FAMILY} {TABLE_NAME} {{\n");
        for (name, set) in &self.sets {
            let kind = if set.key.is_map() { "map" } else { "set" };
            let _ = writeln!(out, "\t{kind} {name} {{");
            let _ = writeln!(out, "\t\ttype {}", set.key.type_text());
            // nft refuses `elements = { }`: an empty set has no elements line.
            if !set.elements.is_empty() {
                let _ = writeln!(out, "\t\telements = {{ {} }}", join(&set.elements));
            }
            out.push_str("\t}\n");
        }
        for chain in &self.chains {
            let _ = writeln!(out, "\tchain {} {{", chain.name);
            if let Some(hook) = chain.hook {
                let _ = writeln!(
                    out,
                    "\t\ttype filter hook {} priority {}; policy accept;",
                    hook.name(),
                    hook.priority()
                );
            }
            for rule in &chain.rules {
                let text = rule.text();
                let _ = writeln!(out, "\t\t{text} comment \"{}\"", rule_comment(&text));
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }

    /// One transaction that replaces our table whole, whatever was there. nft 1.0.6 has no
    /// `destroy`, and `delete` of an absent table fails the batch, so the table is first
    /// added (a no-op when present) and then deleted.
    pub fn render_replace(&self) -> String {
        format!(
            "add table {TABLE_FAMILY} {TABLE_NAME}\ndelete table {TABLE_FAMILY} {TABLE_NAME}\n{}",
            self.render_table()
        )
    }

    /// The view [`parse_table`] gives of this program once applied.
    pub fn view(&self) -> TableView {
        TableView {
            chains: self
                .chains
                .iter()
                .map(|c| ChainView {
                    name: c.name.clone(),
                    kind: c.hook.map(|_| "filter".into()),
                    hook: c.hook.map(|h| h.name().into()),
                    prio: c.hook.map(Hook::priority),
                    policy: c.hook.map(|_| "accept".into()),
                    rules: c
                        .rules
                        .iter()
                        .map(|r| Some(rule_comment(&r.text())))
                        .collect(),
                })
                .collect(),
            sets: self
                .sets
                .iter()
                .map(|(name, set)| {
                    (
                        name.clone(),
                        SetView {
                            key: set.key.type_text(),
                            elements: set.elements.clone(),
                        },
                    )
                })
                .collect(),
            other: Vec::new(),
        }
    }
}

impl NftSet {
    pub fn new(key: SetKey, elements: BTreeSet<SetElement>) -> NftSet {
        NftSet { key, elements }
    }
}

// === impl TableView ===

impl TableView {
    /// Same chains, rules (by comment) and set declarations: only elements may differ.
    pub fn same_structure(&self, other: &TableView) -> bool {
        let decls = |v: &TableView| -> Vec<(String, String)> {
            v.sets
                .iter()
                .map(|(n, s)| (n.clone(), s.key.clone()))
                .collect()
        };
        self.chains == other.chains
            && decls(self) == decls(other)
            && self.other.is_empty()
            && other.other.is_empty()
    }
}

/// Set elements to add or delete, by set name.
pub type ElementOps = Vec<(String, SetElement)>;

/// Element changes that turn `from`'s sets into `to`'s; both must have the same structure.
/// A map element whose verdict changed is a delete of the old and an add of the new.
pub fn element_changes(from: &TableView, to: &TableView) -> (ElementOps, ElementOps) {
    let (mut add, mut delete) = (Vec::new(), Vec::new());
    for (name, want) in &to.sets {
        let have = from.sets.get(name).map(|s| &s.elements);
        for e in &want.elements {
            if !have.is_some_and(|h| h.contains(e)) {
                add.push((name.clone(), e.clone()));
            }
        }
        if let Some(have) = have {
            for e in have.difference(&want.elements) {
                delete.push((name.clone(), e.clone()));
            }
        }
    }
    (add, delete)
}

/// The `nft -f -` text of element deletes and adds, one transaction. Deletes come first:
/// adding a map key that is still there with another verdict fails the batch.
pub fn render_elements(add: &[(String, SetElement)], delete: &[(String, SetElement)]) -> String {
    let mut out = String::new();
    for (verb, list) in [("delete", delete), ("add", add)] {
        let mut by_set: BTreeMap<&str, BTreeSet<&SetElement>> = BTreeMap::new();
        for (set, e) in list {
            by_set.entry(set).or_default().insert(e);
        }
        for (set, elements) in by_set {
            let texts: Vec<String> = elements
                .iter()
                .map(|e| {
                    if verb == "delete" {
                        e.key_text()
                    } else {
                        e.to_string()
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "{verb} element {TABLE_FAMILY} {TABLE_NAME} {set} {{ {} }}",
                texts.join(", ")
            );
        }
    }
    out
}

/// Reads `nft -j list table inet romana` output.
pub fn parse_table(json: &Value) -> Result<TableView, ParseError> {
    let items = json
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or(ParseError::NoArray)?;
    let mut view = TableView::default();
    let mut rules: Vec<(String, Option<String>)> = Vec::new();
    for item in items {
        let Some((kind, body)) = item.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        match kind.as_str() {
            "metainfo" | "table" => {}
            "chain" => view.chains.push(ChainView {
                name: str_field(body, "chain", "name")?,
                kind: body.get("type").and_then(Value::as_str).map(String::from),
                hook: body.get("hook").and_then(Value::as_str).map(String::from),
                prio: body.get("prio").and_then(Value::as_i64),
                policy: body.get("policy").and_then(Value::as_str).map(String::from),
                rules: Vec::new(),
            }),
            "rule" => rules.push((
                str_field(body, "rule", "chain")?,
                body.get("comment")
                    .and_then(Value::as_str)
                    .map(String::from),
            )),
            "set" | "map" => {
                let name = str_field(body, "set", "name")?;
                let mut key = match body.get("type") {
                    Some(Value::String(t)) => t.clone(),
                    Some(Value::Array(ts)) => ts
                        .iter()
                        .map(|t| t.as_str().unwrap_or("?"))
                        .collect::<Vec<_>>()
                        .join(" . "),
                    _ => {
                        return Err(ParseError::Field {
                            what: "set",
                            field: "type",
                        })
                    }
                };
                if kind == "map" {
                    let value = body.get("map").and_then(Value::as_str).unwrap_or("?");
                    key = format!("{key} : {value}");
                }
                let mut elements = BTreeSet::new();
                let elem = match body.get("elem") {
                    None => Vec::new(),
                    Some(Value::Array(a)) => a.clone(),
                    Some(single) => vec![single.clone()],
                };
                for e in &elem {
                    elements.insert(parse_element(e).ok_or_else(|| ParseError::Element {
                        set: name.clone(),
                        element: e.to_string(),
                    })?);
                }
                // Flags, timeouts, policies: none are ours, so they make the set foreign.
                if body.get("flags").is_some() || body.get("timeout").is_some() {
                    view.other.push(format!("{kind} {name} with flags"));
                }
                view.sets.insert(name, SetView { key, elements });
            }
            other => view.other.push(other.to_string()),
        }
    }
    for (chain, comment) in rules {
        match view.chains.iter_mut().find(|c| c.name == chain) {
            Some(c) => c.rules.push(comment),
            None => view.other.push(format!("rule of unknown chain {chain}")),
        }
    }
    Ok(view)
}

fn parse_element(e: &Value) -> Option<SetElement> {
    match e {
        Value::String(s) => s.parse().ok().map(SetElement::Addr),
        // A map element: [key, {"goto": {"target": chain}}].
        Value::Array(kv) => match kv.as_slice() {
            [Value::String(k), v] => {
                let target = v.get("goto")?.get("target")?.as_str()?;
                Some(SetElement::Goto(k.parse().ok()?, target.to_string()))
            }
            _ => None,
        },
        Value::Object(o) => {
            let parts = o.get("concat")?.as_array()?;
            match parts.as_slice() {
                [Value::String(a), Value::String(b)] => match a.parse() {
                    Ok(a) => Some(SetElement::Pair(a, b.parse().ok()?)),
                    Err(_) => Some(SetElement::IfAddr(a.clone(), b.parse().ok()?)),
                },
                [Value::String(a), proto, port] => Some(SetElement::AddrProtoPort(
                    a.parse().ok()?,
                    proto_from_json(proto)?,
                    u16::try_from(port.as_u64()?).ok()?,
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

fn str_field(body: &Value, what: &'static str, field: &'static str) -> Result<String, ParseError> {
    body.get(field)
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or(ParseError::Field { what, field })
}

/// The comment that marks a rule as ours and pins its exact text.
pub fn rule_comment(rule: &str) -> String {
    let h = crate::ifname::fnv1a64(rule.as_bytes());
    format!("{COMMENT_PREFIX}{:08x}", (h >> 32) as u32 ^ h as u32)
}

fn join(elements: &BTreeSet<SetElement>) -> String {
    elements
        .iter()
        .map(SetElement::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

mod patch;

pub use patch::render_patch;

#[cfg(test)]
mod tests;
