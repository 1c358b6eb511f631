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
//!     iifname { "rmn*", "tap*" } ip saddr @quarantine drop   # only while one is quarantined
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
//!
//! # Layout
//! - [`ir`]: the program as data (chains, rules, named sets) and its small vocabulary.
//! - [`render`]: the `nft -f -` text of a program, of element changes, and rule comments.
//! - [`view`]: the table as read back, reduced to what is compared, and element diffs.
//! - [`json`]: reading `nft -j list table` output into a [`TableView`].
//! - [`patch`]: rule changes of some chains without replacing the table.

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
pub(crate) const COMMENT_PREFIX: &str = "romana:";

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;
pub const PROTO_SCTP: u8 = 132;

mod ir;
mod json;
mod patch;
mod render;
mod view;

pub use ir::*;
pub use json::{parse_table, parse_table_text, ParseError};
pub use patch::render_patch;
pub use render::{render_elements, rule_comment};
pub use view::{element_changes, ChainView, ElementOps, SetView, TableView};

#[cfg(test)]
mod tests;
