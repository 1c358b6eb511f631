//! Kubernetes `networking.k8s.io/v1` NetworkPolicy, kept in its own shape (camelCase, the
//! same YAML kubectl takes), defaulted and validated as the API server does.
//!
//! What has bitten implementations (and what the tests pin):
//! - `policyTypes` defaults to `[Ingress]`, plus `Egress` only when `egress` has at least one
//!   rule: `egress: []` does not make a policy an egress policy.
//! - `from`/`to`/`ports` empty or absent both mean "all"; `ingress: []`/absent with
//!   `Ingress` in `policyTypes` means "nothing is allowed in", while `ingress: [{}]` allows
//!   everything.
//! - `NotIn` and `DoesNotExist` match objects that lack the key.
//! - One peer may combine `podSelector` and `namespaceSelector` (AND), but not `ipBlock` with
//!   either.
//! - A named port is looked up on the destination endpoint, for egress as for ingress.
//! - `protocol` defaults to `TCP` and is case-sensitive (`tcp` is refused).

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::Direction;

pub const API_VERSION: &str = "networking.k8s.io/v1";
pub const KIND: &str = "NetworkPolicy";
/// The namespace kubectl uses when a manifest names none.
pub const DEFAULT_NAMESPACE: &str = "default";
/// The label every namespace (tenant) carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

pub const POLICY_TYPE_INGRESS: &str = "Ingress";
pub const POLICY_TYPE_EGRESS: &str = "Egress";

/// Unknown fields are refused (kubectl's default strict field validation), so a typo or
/// two documents run together without `---` cannot pass silently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicy {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NetworkPolicySpec,
    /// Written by servers of some Kubernetes versions; accepted and dropped.
    #[serde(default, skip_serializing)]
    pub status: Option<serde_json::Value>,
}

/// The metadata we keep; server-set fields (uid, resourceVersion, ...) are dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// Absent decodes as the empty selector (all pods of the namespace), as in Go.
    #[serde(default)]
    pub pod_selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_types: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<Peer>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<Port>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EgressRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<Peer>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<Port>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Peer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IpBlock {
    #[serde(default)]
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
}

/// A port number or a port name (`intstr.IntOrString`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<Requirement>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requirement {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

// === impl NetworkPolicy ===

impl NetworkPolicy {
    /// The namespace, `default` when the manifest names none (as kubectl does).
    pub fn namespace(&self) -> &str {
        self.metadata
            .namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE)
    }

    /// API-server defaulting: `metadata.namespace`, `policyTypes` and every `protocol`.
    pub fn apply_defaults(&mut self) {
        if self.metadata.namespace.is_none() {
            self.metadata.namespace = Some(DEFAULT_NAMESPACE.to_string());
        }
        let spec = &mut self.spec;
        let ports = spec
            .ingress
            .iter_mut()
            .flatten()
            .flat_map(|r| r.ports.iter_mut().flatten())
            .chain(
                spec.egress
                    .iter_mut()
                    .flatten()
                    .flat_map(|r| r.ports.iter_mut().flatten()),
            );
        for port in ports {
            port.protocol.get_or_insert_with(|| "TCP".to_string());
        }
        if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
            let mut types = vec![POLICY_TYPE_INGRESS.to_string()];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                types.push(POLICY_TYPE_EGRESS.to_string());
            }
            spec.policy_types = Some(types);
        }
    }

    /// `(peers, ports)` of each rule of a direction; absent lists are empty (both mean "all").
    /// The evaluator and the agent's compiler read rules through this one view.
    pub fn rules(&self, direction: Direction) -> Box<dyn Iterator<Item = (&[Peer], &[Port])> + '_> {
        match direction {
            Direction::Ingress => Box::new(self.spec.ingress.iter().flatten().map(|r| {
                (
                    r.from.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })),
            Direction::Egress => Box::new(self.spec.egress.iter().flatten().map(|r| {
                (
                    r.to.as_deref().unwrap_or_default(),
                    r.ports.as_deref().unwrap_or_default(),
                )
            })),
        }
    }

    pub fn has_type(&self, policy_type: &str) -> bool {
        self.spec
            .policy_types
            .iter()
            .flatten()
            .any(|t| t == policy_type)
    }
}

/// A CIDR as Go's `net.ParseCIDR` takes it: host bits may be set; the network is kept.
pub fn parse_cidr(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>().ok().map(|n| n.trunc())
}

// === impl LabelSelector ===

impl LabelSelector {
    /// Kubernetes selector semantics: every `matchLabels` pair and every expression must
    /// hold; the empty selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let pairs = self
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        pairs
            && self
                .match_expressions
                .iter()
                .flatten()
                .all(|r| r.matches(labels))
    }
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let values = self.values.as_deref().unwrap_or_default();
        let value = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            // Refused by validation; an unknown operator selects nothing (fail closed).
            _ => false,
        }
    }
}

mod validate;

#[cfg(test)]
mod tests;
