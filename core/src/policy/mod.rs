//! Network policy: the two input forms, their validation, and the two-tier evaluation that
//! both the agent's compiler and `romanactl policy explain` are held to.
//!
//! # The two tiers, per direction of a connection from endpoint S to endpoint D
//! 1. **NetworkPolicy tier.** If a Kubernetes NetworkPolicy of D's tenant (namespace)
//!    selects D and has `Ingress` in its `policyTypes`, ingress is decided by those policies
//!    alone: allowed iff one of their rules allows it. The same for S and `Egress`.
//! 2. **Baseline tier**, for a direction no NetworkPolicy selects: the endpoint's tenant
//!    isolation mode (`segment`, `tenant`, `none`) plus Romana-form policies, which only add
//!    allows.
//!
//! Both directions must allow. Traffic between an endpoint and its own host is always
//! allowed (the **host** tier, checked first). A side that is not an endpoint (an outside
//! address, another host) has no direction of its own to check.
//!
//! # Layout
//! - [`field`]: [`FieldError`], worded as the Kubernetes API server words it, and name rules.
//! - [`k8s`]: `networking.k8s.io/v1` NetworkPolicy: serde types, defaulting, validation,
//!   label selectors.
//! - [`romana`]: the Romana form: serde types and validation.
//! - [`parse`]: text (JSON, YAML, several documents, `List`) to validated [`Policy`] values,
//!   all or nothing.
//! - [`eval`]: [`ClusterView`], [`Packet`], [`evaluate`] -> [`Decision`].

pub mod bounds;
pub mod eval;
pub mod field;
pub mod k8s;
pub mod parse;
pub mod romana;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use eval::{evaluate, ClusterView, Decision, Packet, Step, Tier, Verdict};
pub use field::FieldError;
pub use k8s::NetworkPolicy;
pub use parse::{parse_documents, ParseError};
pub use romana::RomanaPolicy;

/// A direction of traffic as seen from the endpoint a policy applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

/// A packet's protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Icmp,
}

/// Which policy: Romana-form policies are cluster-scoped and named `NAME`; Kubernetes
/// NetworkPolicies are namespaced and named `TENANT/NAME`, as kubectl shows them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "form")]
pub enum PolicyId {
    Romana { name: String },
    Kubernetes { tenant: String, name: String },
}

/// One stored policy, in the form it was written in (Kubernetes ones after defaulting).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Policy {
    /// First: it needs `apiVersion` and `kind`, which a Romana policy never has.
    Kubernetes(NetworkPolicy),
    Romana(RomanaPolicy),
}

/// Every policy of the cluster, ordered by id so that evaluation and compilation are
/// deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySet {
    policies: BTreeMap<PolicyId, Policy>,
}

// === impl Direction / Protocol ===

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
            Protocol::Icmp => "icmp",
        }
    }

    /// Kubernetes spelling, case-sensitive as the API server is.
    pub fn from_k8s(text: &str) -> Option<Protocol> {
        match text {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    pub fn has_ports(self) -> bool {
        !matches!(self, Protocol::Icmp)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "sctp" => Ok(Protocol::Sctp),
            "icmp" => Ok(Protocol::Icmp),
            _ => Err(format!(
                "{} is not tcp, udp, sctp or icmp",
                crate::text::quote(s)
            )),
        }
    }
}

// === impl PolicyId ===

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyId::Romana { name } => f.write_str(name),
            PolicyId::Kubernetes { tenant, name } => write!(f, "{tenant}/{name}"),
        }
    }
}

impl FromStr for PolicyId {
    type Err = String;

    /// `NAME` is a Romana policy, `TENANT/NAME` a Kubernetes one.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{} is not NAME (Romana form) or TENANT/NAME (Kubernetes)",
                crate::text::quote(s)
            )
        };
        match s.split_once('/') {
            None if !s.is_empty() => Ok(PolicyId::Romana { name: s.into() }),
            Some((t, n)) if !t.is_empty() && !n.is_empty() && !n.contains('/') => {
                Ok(PolicyId::Kubernetes {
                    tenant: t.into(),
                    name: n.into(),
                })
            }
            _ => Err(bad()),
        }
    }
}

// === impl Policy ===

impl Policy {
    pub fn id(&self) -> PolicyId {
        match self {
            Policy::Kubernetes(p) => PolicyId::Kubernetes {
                tenant: p.namespace().to_string(),
                name: p.metadata.name.clone(),
            },
            Policy::Romana(p) => PolicyId::Romana {
                name: p.name.clone(),
            },
        }
    }

    /// `kubernetes` or `romana`.
    pub fn form(&self) -> &'static str {
        match self {
            Policy::Kubernetes(_) => "kubernetes",
            Policy::Romana(_) => "romana",
        }
    }

    /// What kubectl would call the object, for messages: `NetworkPolicy "ns/name"`.
    pub fn describe(&self) -> String {
        match self {
            Policy::Kubernetes(_) => {
                format!(
                    "NetworkPolicy {}",
                    crate::text::quote(&self.id().to_string())
                )
            }
            Policy::Romana(_) => format!("policy {}", crate::text::quote(&self.id().to_string())),
        }
    }

    pub fn apply_defaults(&mut self) {
        match self {
            Policy::Kubernetes(p) => p.apply_defaults(),
            Policy::Romana(p) => p.apply_defaults(),
        }
    }

    pub fn validate(&self) -> Vec<FieldError> {
        match self {
            Policy::Kubernetes(p) => p.validate(),
            Policy::Romana(p) => p.validate(),
        }
    }
}

// === impl PolicySet ===

impl PolicySet {
    pub fn new() -> PolicySet {
        PolicySet::default()
    }

    /// Adds or replaces a policy under its id.
    pub fn insert(&mut self, policy: Policy) -> Option<Policy> {
        self.policies.insert(policy.id(), policy)
    }

    pub fn remove(&mut self, id: &PolicyId) -> Option<Policy> {
        self.policies.remove(id)
    }

    pub fn get(&self, id: &PolicyId) -> Option<&Policy> {
        self.policies.get(id)
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PolicyId, &Policy)> {
        self.policies.iter()
    }

    /// Kubernetes policies, in id order.
    pub fn kubernetes(&self) -> impl Iterator<Item = (&PolicyId, &NetworkPolicy)> {
        self.policies.iter().filter_map(|(id, p)| match p {
            Policy::Kubernetes(k) => Some((id, k)),
            Policy::Romana(_) => None,
        })
    }

    /// Romana-form policies, in id order.
    pub fn romana(&self) -> impl Iterator<Item = (&PolicyId, &RomanaPolicy)> {
        self.policies.iter().filter_map(|(id, p)| match p {
            Policy::Romana(r) => Some((id, r)),
            Policy::Kubernetes(_) => None,
        })
    }
}

impl FromIterator<Policy> for PolicySet {
    fn from_iter<I: IntoIterator<Item = Policy>>(iter: I) -> Self {
        let mut set = PolicySet::new();
        for p in iter {
            set.insert(p);
        }
        set
    }
}

#[cfg(test)]
mod tests;
