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

use super::field::{self, child, index, FieldError, PORT_RANGE_MSG};
use super::{Direction, Protocol};

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

    /// Every error the API server would report for this (defaulted or not) object.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if self.api_version != API_VERSION {
            errs.push(FieldError::not_supported(
                "apiVersion",
                &self.api_version,
                &[API_VERSION],
            ));
        }
        if self.kind != KIND {
            errs.push(FieldError::not_supported("kind", &self.kind, &[KIND]));
        }
        if self.metadata.name.is_empty() {
            errs.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        } else {
            for msg in field::dns1123_subdomain(&self.metadata.name) {
                errs.push(FieldError::invalid(
                    "metadata.name",
                    &self.metadata.name,
                    msg,
                ));
            }
        }
        if let Some(ns) = &self.metadata.namespace {
            for msg in field::dns1123_label(ns) {
                errs.push(FieldError::invalid("metadata.namespace", ns, msg));
            }
        }
        validate_labels(&self.metadata.labels, "metadata.labels", &mut errs);
        let spec = &self.spec;
        validate_selector(&spec.pod_selector, "spec.podSelector", &mut errs);
        for (i, rule) in spec.ingress.iter().flatten().enumerate() {
            let path = index("spec.ingress", i);
            for (j, port) in rule.ports.iter().flatten().enumerate() {
                validate_port(port, &index(&child(&path, "ports"), j), &mut errs);
            }
            for (j, peer) in rule.from.iter().flatten().enumerate() {
                validate_peer(peer, &index(&child(&path, "from"), j), &mut errs);
            }
        }
        for (i, rule) in spec.egress.iter().flatten().enumerate() {
            let path = index("spec.egress", i);
            for (j, port) in rule.ports.iter().flatten().enumerate() {
                validate_port(port, &index(&child(&path, "ports"), j), &mut errs);
            }
            for (j, peer) in rule.to.iter().flatten().enumerate() {
                validate_peer(peer, &index(&child(&path, "to"), j), &mut errs);
            }
        }
        if let Some(types) = &spec.policy_types {
            if types.len() > 2 {
                errs.push(FieldError {
                    path: "spec.policyTypes".into(),
                    kind: field::FieldErrorKind::Invalid {
                        value: format!("{types:?}"),
                    },
                    detail: "may not specify more than two policyTypes".into(),
                });
            } else {
                for (i, t) in types.iter().enumerate() {
                    if t != POLICY_TYPE_INGRESS && t != POLICY_TYPE_EGRESS {
                        errs.push(FieldError::not_supported(
                            index("spec.policyTypes", i),
                            t,
                            &[POLICY_TYPE_INGRESS, POLICY_TYPE_EGRESS],
                        ));
                    }
                }
            }
        }
        errs
    }
}

fn validate_labels(labels: &BTreeMap<String, String>, path: &str, errs: &mut Vec<FieldError>) {
    for (k, v) in labels {
        for msg in field::qualified_name(k) {
            errs.push(FieldError::invalid(path, k, msg));
        }
        for msg in field::label_value(v) {
            errs.push(FieldError::invalid(path, v, msg));
        }
    }
}

fn validate_selector(sel: &LabelSelector, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(labels) = &sel.match_labels {
        validate_labels(labels, &child(path, "matchLabels"), errs);
    }
    for (i, req) in sel.match_expressions.iter().flatten().enumerate() {
        let path = index(&child(path, "matchExpressions"), i);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        child(&path, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        child(&path, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                child(&path, "operator"),
                other,
                "not a valid selector operator",
            )),
        }
        for msg in field::qualified_name(&req.key) {
            errs.push(FieldError::invalid(child(&path, "key"), &req.key, msg));
        }
        for (j, v) in values.iter().enumerate() {
            for msg in field::label_value(v) {
                errs.push(FieldError::invalid(
                    index(&child(&path, "values"), j),
                    v,
                    msg,
                ));
            }
        }
    }
}

fn validate_port(port: &Port, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(p) = &port.protocol {
        if Protocol::from_k8s(p).is_none() {
            errs.push(FieldError::not_supported(
                child(path, "protocol"),
                p,
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    match &port.port {
        Some(IntOrString::Int(n)) => {
            if !(1..=65535).contains(n) {
                errs.push(FieldError::invalid_number(
                    child(path, "port"),
                    *n,
                    PORT_RANGE_MSG,
                ));
            }
            if let Some(end) = port.end_port {
                if end < *n {
                    errs.push(FieldError::invalid_number(
                        child(path, "endPort"),
                        *n,
                        "must be greater than or equal to `port`",
                    ));
                }
                if !(1..=65535).contains(&end) {
                    errs.push(FieldError::invalid_number(
                        child(path, "endPort"),
                        end,
                        PORT_RANGE_MSG,
                    ));
                }
            }
        }
        Some(IntOrString::Str(name)) => {
            if let Some(end) = port.end_port {
                errs.push(FieldError::invalid_number(
                    child(path, "endPort"),
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for msg in field::port_name(name) {
                errs.push(FieldError::invalid(child(path, "port"), name, msg));
            }
        }
        None => {
            if let Some(end) = port.end_port {
                errs.push(FieldError::invalid_number(
                    child(path, "endPort"),
                    end,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn validate_peer(peer: &Peer, path: &str, errs: &mut Vec<FieldError>) {
    let mut count = 0;
    if let Some(sel) = &peer.pod_selector {
        count += 1;
        validate_selector(sel, &child(path, "podSelector"), errs);
    }
    if let Some(sel) = &peer.namespace_selector {
        count += 1;
        validate_selector(sel, &child(path, "namespaceSelector"), errs);
    }
    if let Some(block) = &peer.ip_block {
        count += 1;
        validate_ip_block(block, &child(path, "ipBlock"), errs);
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if count > 1 && peer.ip_block.is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

fn validate_ip_block(block: &IpBlock, path: &str, errs: &mut Vec<FieldError>) {
    if block.cidr.is_empty() {
        errs.push(FieldError::required(child(path, "cidr"), ""));
        return;
    }
    let Some(cidr) = parse_cidr(&block.cidr) else {
        errs.push(FieldError::invalid(
            child(path, "cidr"),
            &block.cidr,
            "not a valid CIDR",
        ));
        return;
    };
    for (i, text) in block.except.iter().flatten().enumerate() {
        let path = index(&child(path, "except"), i);
        let Some(except) = parse_cidr(text) else {
            errs.push(FieldError::invalid(path, text, "not a valid CIDR"));
            return;
        };
        if !cidr.contains(&except.network()) || cidr.prefix_len() >= except.prefix_len() {
            errs.push(FieldError::invalid(
                path,
                text,
                "must be a strict subset of `cidr`",
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn mk_req(key: &str, op: &str, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn selector_operators_follow_kubernetes_including_missing_keys() {
        let web = mk_labels(&[("app", "web"), ("tier", "front")]);
        let bare = mk_labels(&[]);
        let cases = [
            (mk_req("app", "In", &["web", "api"]), true, false),
            (mk_req("app", "In", &["db"]), false, false),
            (mk_req("app", "NotIn", &["db"]), true, true),
            (mk_req("app", "NotIn", &["web"]), false, true),
            (mk_req("app", "Exists", &[]), true, false),
            (mk_req("app", "DoesNotExist", &[]), false, true),
        ];
        for (req, on_web, on_bare) in cases {
            assert_eq!(req.matches(&web), on_web, "{req:?} on web");
            assert_eq!(req.matches(&bare), on_bare, "{req:?} on bare");
        }
    }

    #[test]
    fn empty_selector_matches_everything_and_parts_are_anded() {
        assert!(LabelSelector::default().matches(&mk_labels(&[])));
        let sel = LabelSelector {
            match_labels: Some(mk_labels(&[("app", "web")])),
            match_expressions: Some(vec![mk_req("tier", "In", &["front"])]),
        };
        assert!(sel.matches(&mk_labels(&[("app", "web"), ("tier", "front")])));
        assert!(!sel.matches(&mk_labels(&[("app", "web")])));
        assert!(!sel.matches(&mk_labels(&[("tier", "front")])));
    }
}
