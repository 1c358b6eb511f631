//! Policy text to validated policies, all or nothing: one bad document refuses the whole
//! input, so an apply never half-happens.
//!
//! The form is detected per object: one with `apiVersion` and `kind` is Kubernetes (it must
//! be `networking.k8s.io/v1` `NetworkPolicy`, or a `List`/`NetworkPolicyList` of them);
//! anything else is the Romana form (one policy, an array, or `{securitypolicies: [...]}`).
//! Text starting with `{` or `[` is read as JSON, anything else as YAML with any number of
//! `---` documents.

use serde::Deserialize;
use serde_json::Value;

use super::field::FieldError;
use super::k8s::{API_VERSION, KIND};
use super::{NetworkPolicy, Policy, PolicyId, RomanaPolicy};

/// Why policy text was refused. Nothing from the input is used when any of these occurs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the input holds no policy")]
    Empty,
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

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses, defaults and validates every policy in `text` (see the module docs).
/// Documents are numbered from 1.
pub fn parse_documents(text: &str) -> Result<Vec<Policy>, ParseError> {
    let mut objects = Vec::new();
    for (i, doc) in documents(text)?.into_iter().enumerate() {
        expand(doc, i + 1, &mut objects)?;
    }
    if objects.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut seen: Vec<(PolicyId, usize)> = Vec::new();
    let mut policies = Vec::with_capacity(objects.len());
    for (document, mut policy) in objects {
        policy.apply_defaults();
        let errors = policy.validate();
        if !errors.is_empty() {
            return Err(ParseError::Invalid {
                document,
                object: policy.describe(),
                errors,
            });
        }
        let id = policy.id();
        if let Some((_, first)) = seen.iter().find(|(s, _)| *s == id) {
            return Err(ParseError::Duplicate {
                id: policy.describe(),
                first: *first,
                second: document,
            });
        }
        seen.push((id, document));
        policies.push(policy);
    }
    Ok(policies)
}

fn documents(text: &str) -> Result<Vec<Value>, ParseError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value = serde_json::from_str(trimmed).map_err(|e| ParseError::Syntax {
            document: 1,
            reason: format!("not valid JSON: {e}"),
        })?;
        return Ok(vec![value]);
    }
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let syntax = |e: String| ParseError::Syntax {
            document: i + 1,
            reason: format!("not valid YAML: {e}"),
        };
        let yaml = serde_yaml::Value::deserialize(doc).map_err(|e| syntax(e.to_string()))?;
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
                            "no matches for kind {kind:?} in version {api:?}: expected \
                             {API_VERSION} {KIND}, a List of them, or a Romana policy"
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
                        reason: format!("NetworkPolicy {name:?}: {e}"),
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
                    reason: format!("policy {name:?}: {e}"),
                })?;
            out.push((document, Policy::Romana(policy)));
            Ok(())
        }
        other => Err(ParseError::Syntax {
            document,
            reason: format!("expected a policy object, found {other}"),
        }),
    }
}
