//! The agent's nftables program as plain data, its text rendering for `nft -f -`, and the
//! reading back of `nft -j list table inet romana` into the same shape. No I/O here: the
//! process is run by [`crate::kernel::nft`].
//!
//! # The program (table `inet romana`, the only table the agent touches)
//! ```text
//! table inet romana {
//!   set same_segment { type ipv4_addr . ipv4_addr }  # (seg . seg) per segment of a `segment` tenant
//!   set same_tenant  { type ipv4_addr . ipv4_addr }  # (tenant . tenant) per `tenant` tenant
//!   set open_tenant  { type ipv4_addr }              # tenant per `none` tenant
//!   chain forward {
//!     type filter hook forward priority filter; policy accept;
//!     ct state established,related accept
//!     oifname "rmn*" ip daddr & SEG . ip saddr & SEG @same_segment accept
//!     oifname "rmn*" ip daddr & TEN . ip saddr & TEN @same_tenant accept
//!     oifname "rmn*" ip daddr & TEN @open_tenant accept
//!     oifname "rmn*" drop
//!   }
//! }
//! ```
//! `SEG` and `TEN` are the cluster-wide masks of `Layout::segment_match` and
//! `Layout::tenant_match` (address-space prefix plus tenant [and segment] bits, no host
//! bits). Masking both addresses and looking the pair up in a set of `(v . v)` elements is
//! "source and destination are in the same segment", decided by the destination's tenant
//! because only that tenant's elements are in the set. So the rule count is fixed (five)
//! and tenants and segments only add set elements; endpoints and hosts change nothing.
//! Sources outside the address space never match (the mask keeps the prefix bits), so
//! they fall to the drop, as does the other IP family.
//!
//! Each rule carries `comment "romana:<fnv32 of its text>"`, so reading the table back
//! tells whether the rules are exactly ours (in order) without parsing nft's expressions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use romana_core::{Isolation, Layout};
use serde_json::Value;

use crate::ifname::IFNAME_PREFIX;
use crate::state::ClusterState;

pub const TABLE_FAMILY: &str = "inet";
pub const TABLE_NAME: &str = "romana";
pub const CHAIN_NAME: &str = "forward";
pub const SET_SAME_SEGMENT: &str = "same_segment";
pub const SET_SAME_TENANT: &str = "same_tenant";
pub const SET_OPEN_TENANT: &str = "open_tenant";
const COMMENT_PREFIX: &str = "romana:";

/// The IP family of the cluster's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

/// The key type of a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetKey {
    Addr(Family),
    AddrPair(Family),
}

/// One set element: an address, or a concatenation of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SetElement {
    Addr(IpAddr),
    Pair(IpAddr, IpAddr),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftSet {
    pub key: SetKey,
    pub elements: BTreeSet<SetElement>,
}

/// The whole table as the agent wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftProgram {
    pub sets: BTreeMap<String, NftSet>,
    /// Rules of the forward chain, in order, without their comments.
    pub rules: Vec<String>,
}

/// The table as read back, reduced to what we compare: structure and set elements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableView {
    pub chains: Vec<ChainView>,
    /// Set name -> key type as nft prints it (`ipv4_addr . ipv4_addr`) and elements.
    pub sets: BTreeMap<String, SetView>,
    /// Objects we never create (maps, counters, flowtables...): any makes the table foreign.
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
            ipnet::IpNet::V4(_) => Family::V4,
            ipnet::IpNet::V6(_) => Family::V6,
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
}

impl SetKey {
    /// The type as nft writes and prints it.
    pub fn type_text(self) -> String {
        match self {
            SetKey::Addr(f) => f.addr_type().to_string(),
            SetKey::AddrPair(f) => format!("{0} . {0}", f.addr_type()),
        }
    }
}

impl std::fmt::Display for SetElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetElement::Addr(a) => write!(f, "{a}"),
            SetElement::Pair(a, b) => write!(f, "{a} . {b}"),
        }
    }
}

// === impl NftProgram ===

impl NftProgram {
    /// The program for the cluster in `state` (see the module docs). Without a layout
    /// (no config yet) there can be no endpoints: only the established and drop rules, so
    /// the table is still fail-closed.
    pub fn build(state: &ClusterState, layout: Option<&Layout>) -> NftProgram {
        let toward_endpoints = format!("oifname \"{IFNAME_PREFIX}*\"");
        let mut rules = vec!["ct state established,related accept".to_string()];
        let mut sets = BTreeMap::new();
        if let Some(layout) = layout {
            let family = Family::of(layout);
            let p = family.payload();
            // Masks do not depend on the tenant/segment number; 0 is always in range.
            let seg_mask = layout.segment_match(0, 0).expect("0 is in range").mask;
            let ten_mask = layout.tenant_match(0).expect("0 is in range").mask;
            let (mut same_segment, mut same_tenant, mut open_tenant) =
                (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
            for tenant in state.tenants.values() {
                match tenant.isolation {
                    Isolation::Segment => {
                        for segment in state.segments.values().filter(|s| s.tenant == tenant.name) {
                            if let Ok(m) = layout.segment_match(tenant.id, segment.id) {
                                same_segment.insert(SetElement::Pair(m.value, m.value));
                            }
                        }
                    }
                    Isolation::Tenant => {
                        if let Ok(m) = layout.tenant_match(tenant.id) {
                            same_tenant.insert(SetElement::Pair(m.value, m.value));
                        }
                    }
                    Isolation::None => {
                        if let Ok(m) = layout.tenant_match(tenant.id) {
                            open_tenant.insert(SetElement::Addr(m.value));
                        }
                    }
                }
            }
            let pair = SetKey::AddrPair(family);
            sets.insert(SET_SAME_SEGMENT.into(), NftSet::new(pair, same_segment));
            sets.insert(SET_SAME_TENANT.into(), NftSet::new(pair, same_tenant));
            sets.insert(
                SET_OPEN_TENANT.into(),
                NftSet::new(SetKey::Addr(family), open_tenant),
            );
            rules.push(format!(
                "{toward_endpoints} {p} daddr & {seg_mask} . {p} saddr & {seg_mask} \
                 @{SET_SAME_SEGMENT} accept"
            ));
            rules.push(format!(
                "{toward_endpoints} {p} daddr & {ten_mask} . {p} saddr & {ten_mask} \
                 @{SET_SAME_TENANT} accept"
            ));
            rules.push(format!(
                "{toward_endpoints} {p} daddr & {ten_mask} @{SET_OPEN_TENANT} accept"
            ));
        }
        rules.push(format!("{toward_endpoints} drop"));
        NftProgram { sets, rules }
    }

    pub fn element_count(&self) -> usize {
        self.sets.values().map(|s| s.elements.len()).sum()
    }

    /// The table definition, as `nft -f -` reads it.
    pub fn render_table(&self) -> String {
        let mut out = format!("table {TABLE_FAMILY} {TABLE_NAME} {{\n");
        for (name, set) in &self.sets {
            let _ = writeln!(out, "\tset {name} {{");
            let _ = writeln!(out, "\t\ttype {}", set.key.type_text());
            // nft refuses `elements = { }`: an empty set has no elements line.
            if !set.elements.is_empty() {
                let _ = writeln!(out, "\t\telements = {{ {} }}", join(&set.elements));
            }
            out.push_str("\t}\n");
        }
        let _ = writeln!(out, "\tchain {CHAIN_NAME} {{");
        out.push_str("\t\ttype filter hook forward priority filter; policy accept;\n");
        for rule in &self.rules {
            let _ = writeln!(out, "\t\t{rule} comment \"{}\"", rule_comment(rule));
        }
        out.push_str("\t}\n}\n");
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
            chains: vec![ChainView {
                name: CHAIN_NAME.into(),
                kind: Some("filter".into()),
                hook: Some("forward".into()),
                prio: Some(0),
                policy: Some("accept".into()),
                rules: self.rules.iter().map(|r| Some(rule_comment(r))).collect(),
            }],
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
    fn new(key: SetKey, elements: BTreeSet<SetElement>) -> NftSet {
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
pub fn element_changes(from: &TableView, to: &TableView) -> (ElementOps, ElementOps) {
    let (mut add, mut delete) = (Vec::new(), Vec::new());
    for (name, want) in &to.sets {
        let have = from.sets.get(name).map(|s| &s.elements);
        for e in &want.elements {
            if !have.is_some_and(|h| h.contains(e)) {
                add.push((name.clone(), *e));
            }
        }
        if let Some(have) = have {
            for e in have.difference(&want.elements) {
                delete.push((name.clone(), *e));
            }
        }
    }
    (add, delete)
}

/// The `nft -f -` text of element adds and deletes, one transaction.
pub fn render_elements(add: &[(String, SetElement)], delete: &[(String, SetElement)]) -> String {
    let mut out = String::new();
    for (verb, list) in [("add", add), ("delete", delete)] {
        let mut by_set: BTreeMap<&str, BTreeSet<SetElement>> = BTreeMap::new();
        for (set, e) in list {
            by_set.entry(set).or_default().insert(*e);
        }
        for (set, elements) in by_set {
            let _ = writeln!(
                out,
                "{verb} element {TABLE_FAMILY} {TABLE_NAME} {set} {{ {} }}",
                join(&elements)
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
            "set" => {
                let name = str_field(body, "set", "name")?;
                let key = match body.get("type") {
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
                    view.other.push(format!("set {name} with flags"));
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
        Value::Object(o) => {
            let parts = o.get("concat")?.as_array()?;
            match parts.as_slice() {
                [Value::String(a), Value::String(b)] => {
                    Some(SetElement::Pair(a.parse().ok()?, b.parse().ok()?))
                }
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

#[cfg(test)]
mod tests;
