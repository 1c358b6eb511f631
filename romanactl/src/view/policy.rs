//! Policies: stored, applied, deleted, and the answer of `explain`.

use romana_proto::pb;
use serde::Serialize;
use tabled::Tabled;

/// A stored policy. `policy` is the object itself, as stored (Kubernetes ones defaulted).
#[derive(Clone, Debug, PartialEq, Serialize, Tabled)]
#[tabled(rename_all = "UPPERCASE")]
pub struct PolicyView {
    pub id: String,
    /// `romana` or `kubernetes`.
    pub form: String,
    /// The namespace of a Kubernetes policy; empty for the Romana form.
    pub tenant: String,
    pub name: String,
    pub revision: i64,
    #[tabled(skip)]
    pub policy: serde_json::Value,
}

/// One object of an apply, and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppliedView {
    pub id: String,
    pub form: String,
    /// `created`, `configured` or `unchanged`.
    pub action: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApplyView {
    pub applied: Vec<AppliedView>,
    pub dry_run: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyDeleted {
    pub deleted: String,
    pub form: String,
}

/// The answer of `explain`: `verdict` and `reason` first (CONVENTIONS), then the details.
#[derive(Clone, Debug, PartialEq, Serialize, Tabled)]
#[tabled(rename_all = "UPPERCASE", display(Option, "or_empty"))]
pub struct ExplainView {
    /// `allow` or `deny`.
    pub verdict: String,
    /// Last in the table: the longest cell.
    #[tabled(order = 5)]
    pub reason: String,
    /// `network_policy`, `baseline` or `host`.
    pub tier: String,
    /// `ingress` or `egress`: the direction that decided, if any was checked.
    pub direction: Option<String>,
    pub policy: Option<String>,
    pub rule: Option<u32>,
    #[tabled(skip)]
    pub from: String,
    #[tabled(skip)]
    pub to: String,
    /// Both directions in full, as the evaluator returned them.
    #[tabled(skip)]
    pub decision: serde_json::Value,
}

impl From<pb::Policy> for PolicyView {
    fn from(p: pb::Policy) -> Self {
        PolicyView {
            policy: serde_json::from_str(&p.json).unwrap_or(serde_json::Value::String(p.json)),
            id: p.id,
            form: p.form,
            tenant: p.tenant,
            name: p.name,
            revision: p.revision,
        }
    }
}

/// An absent value as an empty cell: the REASON column after it says why.
fn or_empty<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}
