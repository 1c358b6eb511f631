//! Policies and explain decisions on the wire.

use romana_core::policy::{Decision, Packet, Policy, PolicyId, Tier, Verdict};

use crate::pb;

/// A stored policy at its etcd revision.
impl From<(&Policy, i64)> for pb::Policy {
    fn from((policy, revision): (&Policy, i64)) -> Self {
        let id = policy.id();
        let (tenant, name) = match &id {
            PolicyId::Romana { name } => (String::new(), name.clone()),
            PolicyId::Kubernetes { tenant, name } => (tenant.clone(), name.clone()),
        };
        pb::Policy {
            id: id.to_string(),
            form: policy.form().to_string(),
            tenant,
            name,
            // A core type always encodes; an empty object would only hide a bug.
            json: serde_json::to_string(policy).unwrap_or_default(),
            revision,
        }
    }
}

/// The decision for `packet`, with the whole decision as JSON for `-o json`.
impl From<(&Decision, &Packet)> for pb::ExplainResponse {
    fn from((d, packet): (&Decision, &Packet)) -> Self {
        pb::ExplainResponse {
            verdict: match d.verdict {
                Verdict::Allow => "allow",
                Verdict::Deny => "deny",
            }
            .into(),
            tier: match d.tier {
                Tier::NetworkPolicy => "network_policy",
                Tier::Baseline => "baseline",
                Tier::Host => "host",
            }
            .into(),
            direction: d.direction.map(|x| x.to_string()).unwrap_or_default(),
            policy: d.policy.clone().unwrap_or_default(),
            rule: d.rule.and_then(|r| u32::try_from(r).ok()),
            reason: d.reason.clone(),
            from_address: packet.from.to_string(),
            to_address: packet.to.to_string(),
            decision_json: serde_json::to_string(d).unwrap_or_default(),
        }
    }
}
