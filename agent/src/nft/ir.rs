//! The program as plain data: what [`crate::compile`] builds, [`super::render`] writes
//! and the test interpreter runs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use romana_core::{Endpoint, Layout};

use super::{PROTO_ICMP, PROTO_ICMPV6, PROTO_SCTP, PROTO_TCP, PROTO_UDP};

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
    /// `meta nfproto ipv4|ipv6`: the packet's IP family (dual-stack dispatch).
    Nfproto(Family),
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

    /// The endpoint's address of this family, if it has one (dual-stack endpoints have
    /// one of each).
    pub fn address_of(self, e: &Endpoint) -> Option<IpAddr> {
        e.addresses().find(|a| Family::of_addr(a) == self)
    }

    /// What the second family's sets and chains are named with, after their base name.
    pub fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "_v4",
            Family::V6 => "_v6",
        }
    }

    /// `meta nfproto`'s name of the family.
    pub(super) fn nfproto(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }

    pub(super) fn payload(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    pub(super) fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    pub(super) fn icmp(self) -> &'static str {
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

    pub(super) fn is_map(self) -> bool {
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

/// The protocol number of an nft protocol name ([`proto_name`]'s inverse), or of a number.
pub(crate) fn proto_from_name(name: &str) -> Option<u8> {
    match name {
        "icmp" => Some(PROTO_ICMP),
        "tcp" => Some(PROTO_TCP),
        "udp" => Some(PROTO_UDP),
        "ipv6-icmp" => Some(PROTO_ICMPV6),
        "sctp" => Some(PROTO_SCTP),
        n => n.parse().ok(),
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

impl Rule {
    pub fn new(matches: Vec<Match>, verdict: Verdict) -> Rule {
        Rule { matches, verdict }
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
}

impl NftSet {
    pub fn new(key: SetKey, elements: BTreeSet<SetElement>) -> NftSet {
        NftSet { key, elements }
    }
}
