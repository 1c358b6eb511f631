//! The Romana policy form: cluster-scoped, written against tenants, segments and CIDRs, and
//! only ever adding allows on top of a tenant's isolation mode (the baseline tier).
//!
//! ```yaml
//! name: web-from-lb
//! direction: ingress            # ingress | egress
//! applied_to:                   # whose traffic: one of tenant, tenant+segment, endpoint, cidr
//!   - {tenant: shop, segment: web}
//! peers:                        # the other side: tenant, tenant+segment, cidr, or peer any|host
//!   - {cidr: 192.168.10.0/24}
//!   - {peer: host}              # the applied-to endpoint's own host
//! rules:
//!   - {protocol: tcp, ports: [80, 443], port_ranges: [[8000, 8080]]}
//!   - {protocol: icmp, icmp_type: 8}
//!   - {protocol: any}
//! ```
//! A file may hold one policy, a list of them, or `{securitypolicies: [...]}` as the original
//! Romana API did.

use serde::{Deserialize, Serialize};

use super::field::{child, index, FieldError, PORT_RANGE_MSG};
use super::k8s::parse_cidr;
use super::Direction;
use crate::model::validate_name;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RomanaPolicy {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub direction: Direction,
    #[serde(default)]
    pub applied_to: Vec<Target>,
    #[serde(default)]
    pub peers: Vec<Target>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One `applied_to` or `peers` entry. Exactly one shape is valid per place (see
/// [`RomanaPolicy::validate`]); the struct is flat so that JSON stays as operators write it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// `any` or `host` (peers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `tcp`, `udp`, `sctp`, `icmp` or `any` (case-insensitive).
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_ranges: Vec<[i64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp_code: Option<i64>,
}

pub const PEER_ANY: &str = "any";
pub const PEER_HOST: &str = "host";
const PROTOCOLS: [&str; 5] = ["tcp", "udp", "sctp", "icmp", "any"];

// === impl RomanaPolicy ===

impl RomanaPolicy {
    /// Lower-cases protocols so that stored policies compare and render one way.
    pub fn apply_defaults(&mut self) {
        for rule in &mut self.rules {
            rule.protocol = rule.protocol.to_ascii_lowercase();
        }
    }

    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Err(e) = validate_name("policy", &self.name) {
            errs.push(FieldError::invalid("name", &self.name, e.to_string()));
        }
        if self.applied_to.is_empty() {
            errs.push(FieldError::required(
                "applied_to",
                "name at least one tenant, segment, endpoint or cidr",
            ));
        }
        for (i, t) in self.applied_to.iter().enumerate() {
            validate_target(t, &index("applied_to", i), false, &mut errs);
        }
        if self.peers.is_empty() {
            errs.push(FieldError::required(
                "peers",
                "name at least one peer (use {peer: any} for everything)",
            ));
        }
        for (i, t) in self.peers.iter().enumerate() {
            validate_target(t, &index("peers", i), true, &mut errs);
        }
        if self.rules.is_empty() {
            errs.push(FieldError::required(
                "rules",
                "name at least one rule (use {protocol: any} for everything)",
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            validate_rule(r, &index("rules", i), &mut errs);
        }
        errs
    }
}

fn validate_target(t: &Target, path: &str, is_peer: bool, errs: &mut Vec<FieldError>) {
    let shapes = [
        t.tenant.is_some(),
        t.endpoint.is_some(),
        t.cidr.is_some(),
        t.peer.is_some(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    let wanted = if is_peer {
        "exactly one of tenant (optionally with segment), cidr or peer"
    } else {
        "exactly one of tenant (optionally with segment), endpoint or cidr"
    };
    if shapes != 1 {
        errs.push(if shapes == 0 {
            FieldError::required(path, wanted)
        } else {
            FieldError::forbidden(path, wanted)
        });
    }
    if t.segment.is_some() && t.tenant.is_none() {
        errs.push(FieldError::required(
            child(path, "tenant"),
            "a segment is named within its tenant",
        ));
    }
    for (name, value, kind) in [
        ("tenant", &t.tenant, "tenant"),
        ("segment", &t.segment, "segment"),
        ("endpoint", &t.endpoint, "endpoint"),
    ] {
        if let Some(v) = value {
            if let Err(e) = validate_name(kind, v) {
                errs.push(FieldError::invalid(child(path, name), v, e.to_string()));
            }
        }
    }
    if let Some(e) = &t.endpoint {
        if is_peer {
            errs.push(FieldError::forbidden(
                child(path, "endpoint"),
                format!("{e:?}: peers are tenants, segments, CIDRs, any or host"),
            ));
        }
    }
    if let Some(c) = &t.cidr {
        if parse_cidr(c).is_none() {
            errs.push(FieldError::invalid(
                child(path, "cidr"),
                c,
                "not a valid CIDR",
            ));
        }
    }
    if let Some(p) = &t.peer {
        if !is_peer {
            errs.push(FieldError::forbidden(
                child(path, "peer"),
                "applied_to names tenants, segments, endpoints or CIDRs",
            ));
        } else if p != PEER_ANY && p != PEER_HOST {
            errs.push(FieldError::not_supported(
                child(path, "peer"),
                p,
                &[PEER_ANY, PEER_HOST],
            ));
        }
    }
}

fn validate_rule(r: &Rule, path: &str, errs: &mut Vec<FieldError>) {
    let protocol = r.protocol.to_ascii_lowercase();
    if !PROTOCOLS.contains(&protocol.as_str()) {
        errs.push(FieldError::not_supported(
            child(path, "protocol"),
            &r.protocol,
            &PROTOCOLS,
        ));
        return;
    }
    let has_ports = !r.ports.is_empty() || !r.port_ranges.is_empty();
    if has_ports && !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        errs.push(FieldError::forbidden(
            child(path, "ports"),
            format!("protocol {protocol} has no ports; use tcp, udp or sctp"),
        ));
    }
    for (i, p) in r.ports.iter().enumerate() {
        if !(1..=65535).contains(p) {
            errs.push(FieldError::invalid_number(
                index(&child(path, "ports"), i),
                *p,
                PORT_RANGE_MSG,
            ));
        }
    }
    for (i, [lo, hi]) in r.port_ranges.iter().enumerate() {
        let p = index(&child(path, "port_ranges"), i);
        for n in [lo, hi] {
            if !(1..=65535).contains(n) {
                errs.push(FieldError::invalid_number(&p, *n, PORT_RANGE_MSG));
            }
        }
        if hi < lo {
            errs.push(FieldError::invalid_number(
                &p,
                *hi,
                format!("the end must not be below the start {lo}"),
            ));
        }
    }
    let icmp = r.icmp_type.is_some() || r.icmp_code.is_some();
    if icmp && protocol != "icmp" {
        errs.push(FieldError::forbidden(
            child(path, "icmp_type"),
            format!("ICMP type and code need protocol icmp, not {protocol}"),
        ));
    }
    if r.icmp_code.is_some() && r.icmp_type.is_none() {
        errs.push(FieldError::required(
            child(path, "icmp_type"),
            "an ICMP code is matched within its type",
        ));
    }
    for (name, v) in [("icmp_type", r.icmp_type), ("icmp_code", r.icmp_code)] {
        if let Some(v) = v {
            if !(0..=255).contains(&v) {
                errs.push(FieldError::invalid_number(
                    child(path, name),
                    v,
                    "must be between 0 and 255, inclusive",
                ));
            }
        }
    }
}
