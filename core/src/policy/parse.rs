//! Policy text to validated policies, all or nothing: one bad document refuses the whole
//! input, so an apply never half-happens.
//!
//! The form is detected per object: one with `apiVersion` and `kind` is Kubernetes (it must
//! be `networking.k8s.io/v1` `NetworkPolicy`, or a `List`/`NetworkPolicyList` of them);
//! anything else is the Romana form (one policy, an array, or `{securitypolicies: [...]}`).
//! Text starting with `{` or `[` is read as JSON, anything else as YAML with any number of
//! `---` documents.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::bounds::{check_bounds, BoundsError};
use super::field::FieldError;
use super::k8s::{API_VERSION, KIND};
use super::{NetworkPolicy, Policy, PolicyId, RomanaPolicy};
use crate::text::{cut, quote};

/// Why policy text was refused. Nothing from the input is used when any of these occurs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Too large or too deeply nested: refused before any parser saw it.
    #[error(transparent)]
    Bounds(#[from] BoundsError),
    #[error("the input holds no policy")]
    Empty,
    #[error("the input holds more than {MAX_POLICIES} policies; at most {MAX_POLICIES} are applied atomically, split it")]
    TooMany,
    #[error("document {document}: {reason}")]
    Syntax { document: usize, reason: String },
    #[error("document {document}: {reason}")]
    Unsupported { document: usize, reason: String },
    /// The object is well-formed but breaks a rule; `errors` name the fields.
    #[error("{object} is invalid: {}", join(.errors))]
    Invalid {
        document: usize,
        object: String,
        errors: Vec<FieldError>,
    },
    #[error("{id} appears twice in the input (documents {first} and {second})")]
    Duplicate {
        id: String,
        first: usize,
        second: usize,
    },
}

/// Field errors shown in a message; the rest are counted.
const ERRORS_SHOWN: usize = 3;

/// Longest parser message (serde's can quote a whole input string) or object description.
const REASON_MAX: usize = 160;

fn join(errors: &[FieldError]) -> String {
    let mut s = errors
        .iter()
        .take(ERRORS_SHOWN)
        .map(|e| cut(&e.to_string(), REASON_MAX))
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > ERRORS_SHOWN {
        s.push_str(&format!(" (and {} more)", errors.len() - ERRORS_SHOWN));
    }
    s
}

/// Most policies one input may hold: one etcd transaction holds at most 128 writes.
pub const MAX_POLICIES: usize = 100;

/// Parses, defaults and validates every policy in `text` (see the module docs).
/// Documents are numbered from 1. Size and nesting are checked first
/// ([`super::bounds::check_bounds`]), so that no parser ever sees text that would take it
/// long to refuse.
pub fn parse_documents(text: &str) -> Result<Vec<Policy>, ParseError> {
    check_bounds(text)?;
    let mut objects = Vec::new();
    for (i, doc) in documents(text)?.into_iter().enumerate() {
        expand(doc, i + 1, &mut objects)?;
        if objects.len() > MAX_POLICIES {
            return Err(ParseError::TooMany);
        }
    }
    if objects.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut seen: BTreeMap<PolicyId, usize> = BTreeMap::new();
    let mut policies = Vec::with_capacity(objects.len());
    for (document, mut policy) in objects {
        policy.apply_defaults();
        let errors = policy.validate();
        if !errors.is_empty() {
            return Err(ParseError::Invalid {
                document,
                object: cut(&policy.describe(), REASON_MAX),
                errors,
            });
        }
        let id = policy.id();
        if let Some(first) = seen.get(&id) {
            return Err(ParseError::Duplicate {
                id: cut(&policy.describe(), REASON_MAX),
                first: *first,
                second: document,
            });
        }
        seen.insert(id, document);
        policies.push(policy);
    }
    Ok(policies)
}

fn documents(text: &str) -> Result<Vec<Value>, ParseError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value = serde_json::from_str(trimmed).map_err(|e| ParseError::Syntax {
            document: 1,
            reason: cut(&format!("not valid JSON: {e}"), REASON_MAX),
        })?;
        return Ok(vec![value]);
    }
    let mut docs = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        let syntax = |e: String| ParseError::Syntax {
            document: i + 1,
            reason: cut(&format!("not valid YAML: {e}"), REASON_MAX),
        };
        let yaml = serde_norway::Value::deserialize(doc).map_err(|e| syntax(e.to_string()))?;
        docs.push(serde_json::to_value(yaml).map_err(|e| syntax(e.to_string()))?);
    }
    Ok(docs)
}

fn expand(value: Value, document: usize, out: &mut Vec<(usize, Policy)>) -> Result<(), ParseError> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => items
            .into_iter()
            .try_for_each(|item| expand(item, document, out)),
        Value::Object(mut map) => {
            if let Some(kind) = map.get("kind").and_then(Value::as_str) {
                if kind == "List" || kind.ends_with("List") {
                    let items = map.remove("items").unwrap_or(Value::Array(Vec::new()));
                    return expand(items, document, out);
                }
            }
            if map.contains_key("apiVersion") || map.contains_key("kind") {
                let api = map.get("apiVersion").and_then(Value::as_str).unwrap_or("");
                let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
                if api != API_VERSION || kind != KIND {
                    return Err(ParseError::Unsupported {
                        document,
                        reason: format!(
                            "no matches for kind {} in version {}: expected \
                             {API_VERSION} {KIND}, a List of them, or a Romana policy",
                            quote(kind),
                            quote(api)
                        ),
                    });
                }
                let name = map
                    .get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let policy: NetworkPolicy =
                    serde_json::from_value(Value::Object(map)).map_err(|e| ParseError::Syntax {
                        document,
                        reason: cut(&format!("NetworkPolicy {}: {e}", quote(&name)), REASON_MAX),
                    })?;
                out.push((document, Policy::Kubernetes(policy)));
                return Ok(());
            }
            if let Some(list) = map.remove("securitypolicies") {
                return expand(list, document, out);
            }
            let name = map
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let policy: RomanaPolicy =
                serde_json::from_value(Value::Object(map)).map_err(|e| ParseError::Syntax {
                    document,
                    reason: cut(&format!("policy {}: {e}", quote(&name)), REASON_MAX),
                })?;
            out.push((document, Policy::Romana(policy)));
            Ok(())
        }
        other => Err(ParseError::Syntax {
            document,
            reason: format!(
                "expected a policy object, found {}",
                cut(&other.to_string(), 40)
            ),
        }),
    }
}
