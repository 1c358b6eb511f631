//! Validation of a NetworkPolicy as the API server does it: every error, with its path.

use std::collections::BTreeMap;

use super::{
    parse_cidr, IntOrString, IpBlock, LabelSelector, NetworkPolicy, Peer, Port, API_VERSION, KIND,
    POLICY_TYPE_EGRESS, POLICY_TYPE_INGRESS,
};
use crate::policy::field::{self, child, index, FieldError, PORT_RANGE_MSG};
use crate::policy::Protocol;

impl NetworkPolicy {
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
