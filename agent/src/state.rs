//! [`ClusterState`]: what the agent knows of the cluster, fed by the store's watch events.
//! A synchronous reducer like kube-runtime's `apply_watcher_event`: no I/O, no clock.
//!
//! - `Init` forgets everything and marks the state unsynced; `InitApply` fills it;
//!   `InitDone` marks it synced. Between `Init` and `InitDone` the state is partial (a key
//!   not listed yet looks deleted), so the agent must not compute a dataplane from it: see
//!   [`ClusterState::is_synced`]. That is felix's "nothing is swept before the datastore is
//!   in sync".
//! - Only config, hosts, tenants, segments, endpoints and policies are kept; claims, indexes, service
//!   registrations and keys this version does not know are ignored, so they cause no apply.
//! - A value that does not decode is treated as deleted (felix does the same): keeping a
//!   stale value would program a dataplane for a record that no longer says what we think,
//!   and for endpoints, hosts, segments and Romana-form policies (which only add allows)
//!   "deleted" is the fail-closed answer. Not so for a NetworkPolicy: without it, the
//!   endpoints it selected would fall back to their (more open) baseline. So an
//!   undecodable record that belongs to a tenant (its tenant, segment or NetworkPolicy
//!   record) is kept in [`ClusterState::unreadable`] and quarantines that tenant's
//!   endpoints ([`ClusterState::quarantined_tenants`]) until it reads again or is deleted.
//!   Unknown fields are tolerated where ignoring them is safe: host, tenant, segment and
//!   endpoint records ignore fields a newer service adds; policies refuse them (a field we
//!   do not know may restrict what a policy allows), and land here. The error is returned
//!   so the caller logs it with the key, and the status lists it.

use std::collections::BTreeMap;

use romana_core::policy::{ClusterView, Policy, PolicyId, PolicySet};
use romana_core::{ClusterConfig, Endpoint, Host, Layout, Segment, Tenant};
use romana_store::{KeyRef, Keys, Kv, StoreError, WatchEvent};

/// The cluster records the agent computes its dataplane from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterState {
    pub config: Option<ClusterConfig>,
    pub hosts: BTreeMap<String, Host>,
    pub tenants: BTreeMap<String, Tenant>,
    /// Keyed by (tenant, segment name).
    pub segments: BTreeMap<(String, String), Segment>,
    pub endpoints: BTreeMap<String, Endpoint>,
    /// Both forms, as policy-service stores them (`policies/romana/..`, `policies/k8s/..`).
    pub policies: BTreeMap<PolicyId, Policy>,
    /// Records that did not decode, by key (see the module docs).
    pub unreadable: BTreeMap<String, Unreadable>,
    synced: bool,
    revision: i64,
    /// The revision of the last change to the policy set (see [`Self::policy_revision`]).
    policy_revision: i64,
    /// During a relist: the policies and their revision from before it, to tell at
    /// `InitDone` whether the policy set changed while the watch was down.
    before_relist: Option<(BTreeMap<PolicyId, Policy>, i64)>,
}

/// What one event did to the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduced {
    /// A record the dataplane depends on changed (or the state was re-listed).
    Changed,
    /// Nothing the dataplane depends on changed (another key, or the same value again).
    Unchanged,
    /// `InitDone`: the state is complete as of this revision; compute and apply now.
    Synced { revision: i64 },
}

/// A watched value that could not be decoded; the record was dropped from the state.
#[derive(Debug, thiserror::Error)]
#[error("ignoring {key}: {source}")]
pub struct StateError {
    pub key: String,
    #[source]
    pub source: StoreError,
}

/// A watched record this agent could not decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The tenant whose endpoints it quarantines, if it belongs to one.
    pub tenant: Option<String>,
    /// Why, in words (a bounded prefix of the decode error).
    pub error: String,
}

/// Longest decode error kept in the state (and so in the status record), in bytes.
const MAX_ERROR_BYTES: usize = 200;

// === impl ClusterState ===

impl ClusterState {
    /// True once an `InitDone` arrived after the last `Init`.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// The store revision the state reflects: the listing's, or the last change that
    /// mattered after it (the records are the same at every later revision up to now).
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The store revision of the policy set the state holds: the `mod_revision` of the last
    /// policy put or delete, or a listing's revision when a relist found other policies
    /// than before. After applying the program of this state, the agent enforces every
    /// policy change up to this revision.
    pub fn policy_revision(&self) -> i64 {
        self.policy_revision
    }

    /// Tenants whose local endpoints pass nothing: some record of theirs is unreadable.
    pub fn quarantined_tenants(&self) -> std::collections::BTreeSet<&str> {
        self.unreadable
            .values()
            .filter_map(|u| u.tenant.as_deref())
            .collect()
    }

    /// The policies, for [`romana_core::policy::evaluate`] and the compiler.
    pub fn policy_set(&self) -> PolicySet {
        self.policies.values().cloned().collect()
    }

    /// The cluster as the evaluator sees it.
    pub fn view(&self, layout: &Layout) -> ClusterView {
        ClusterView::new(
            layout.clone(),
            self.hosts.values().cloned(),
            self.tenants.values().cloned(),
            self.segments.values().cloned(),
            self.endpoints.values().cloned(),
        )
    }

    /// The cluster as the compiler and the recipes ask it (names, numbers and labels of
    /// hosts, tenants and segments) without its endpoints: copying every endpoint record
    /// into a view was a third of a cold start's compile at 10k endpoints, and they never
    /// ask it for an endpoint ([`romana_core::policy::eval::address_owners`] says which
    /// endpoint an address means).
    pub fn view_without_endpoints(&self, layout: &Layout) -> ClusterView {
        ClusterView::new(
            layout.clone(),
            self.hosts.values().cloned(),
            self.tenants.values().cloned(),
            self.segments.values().cloned(),
            std::iter::empty(),
        )
    }

    /// Reduces one watch event into the state. On a decode error the record is removed and the error is
    /// returned next to the outcome, so the caller can log it and still act on the change.
    pub fn reduce(&mut self, keys: &Keys, event: WatchEvent) -> (Reduced, Option<StateError>) {
        match event {
            WatchEvent::Init => {
                let revision = self.revision;
                let before = match self.before_relist.take() {
                    // A relist restarted before its InitDone: compare with the older set.
                    Some(before) => before,
                    None => (std::mem::take(&mut self.policies), self.policy_revision),
                };
                *self = ClusterState {
                    revision,
                    before_relist: Some(before),
                    ..ClusterState::default()
                };
                (Reduced::Changed, None)
            }
            WatchEvent::InitApply(kv) => {
                let (_, error) = self.put(keys, &kv);
                (Reduced::Changed, error)
            }
            WatchEvent::InitDone { revision } => {
                self.synced = true;
                self.revision = revision;
                self.policy_revision = match self.before_relist.take() {
                    Some((before, at)) if before == self.policies => at,
                    _ => revision,
                };
                (Reduced::Synced { revision }, None)
            }
            WatchEvent::Apply(kv) => {
                let (reduced, error) = self.put(keys, &kv);
                self.advance(reduced, kv.mod_revision);
                if reduced == Reduced::Changed && is_policy(keys.parse(&kv.key)) {
                    self.policy_revision = self.policy_revision.max(kv.mod_revision);
                }
                (reduced, error)
            }
            WatchEvent::Delete { key, mod_revision } => {
                let parsed = keys.parse(&key);
                let was_unreadable = self.unreadable.remove(&key).is_some();
                let reduced = match &parsed {
                    Some(r) => (self.remove(r) || was_unreadable).into(),
                    None => Reduced::Unchanged,
                };
                self.advance(reduced, mod_revision);
                if reduced == Reduced::Changed && is_policy(parsed) {
                    self.policy_revision = self.policy_revision.max(mod_revision);
                }
                (reduced, None)
            }
        }
    }

    /// Only changes that matter move the revision: the agent's own status writes and
    /// other keys under the prefix would otherwise make every status record "new".
    fn advance(&mut self, reduced: Reduced, revision: i64) {
        if reduced == Reduced::Changed {
            self.revision = self.revision.max(revision);
        }
    }

    fn put(&mut self, keys: &Keys, kv: &Kv) -> (Reduced, Option<StateError>) {
        let Some(r) = keys.parse(&kv.key) else {
            return (Reduced::Unchanged, None);
        };
        let decoded = match &r {
            KeyRef::Config => kv.decode().map(|c| {
                let changed = self.config.as_ref() != Some(&c);
                self.config = Some(c);
                changed
            }),
            KeyRef::Host(name) => kv
                .decode()
                .map(|h| insert_changed(&mut self.hosts, name.clone(), h)),
            KeyRef::Tenant(name) => kv
                .decode()
                .map(|t| insert_changed(&mut self.tenants, name.clone(), t)),
            KeyRef::Segment { tenant, name } => kv
                .decode()
                .map(|s| insert_changed(&mut self.segments, (tenant.clone(), name.clone()), s)),
            KeyRef::Endpoint(id) => kv
                .decode()
                .map(|e| insert_changed(&mut self.endpoints, id.clone(), e)),
            // A policy stored under another id than its own would be enforced under the
            // wrong name; policy-service never writes one, so treat it as undecodable.
            KeyRef::Policy(id) => kv.decode::<Policy>().and_then(|p| {
                if p.id() == *id {
                    Ok(insert_changed(&mut self.policies, id.clone(), p))
                } else {
                    Err(StoreError::Decode {
                        key: kv.key.clone(),
                        source: serde::de::Error::custom(format!(
                            "the policy in it is {}, not {id}",
                            p.id()
                        )),
                    })
                }
            }),
            _ => return (Reduced::Unchanged, None),
        };
        match decoded {
            Ok(changed) => {
                let was_unreadable = self.unreadable.remove(&kv.key).is_some();
                ((changed || was_unreadable).into(), None)
            }
            Err(source) => {
                let mut changed = self.remove(&r);
                let unreadable = Unreadable {
                    tenant: owning_tenant(&r),
                    error: romana_core::text::cut(&source.to_string(), MAX_ERROR_BYTES),
                };
                changed |=
                    self.unreadable.insert(kv.key.clone(), unreadable.clone()) != Some(unreadable);
                (
                    changed.into(),
                    Some(StateError {
                        key: kv.key.clone(),
                        source,
                    }),
                )
            }
        }
    }

    fn remove(&mut self, r: &KeyRef) -> bool {
        match r {
            KeyRef::Config => self.config.take().is_some(),
            KeyRef::Host(name) => self.hosts.remove(name).is_some(),
            KeyRef::Tenant(name) => self.tenants.remove(name).is_some(),
            KeyRef::Segment { tenant, name } => self
                .segments
                .remove(&(tenant.clone(), name.clone()))
                .is_some(),
            KeyRef::Endpoint(id) => self.endpoints.remove(id).is_some(),
            KeyRef::Policy(id) => self.policies.remove(id).is_some(),
            _ => false,
        }
    }

    /// The records only, without the sync marker and revision: two states that hold the
    /// same records compare equal this way whatever path led to them.
    pub fn records(&self) -> ClusterState {
        ClusterState {
            synced: false,
            revision: 0,
            policy_revision: 0,
            before_relist: None,
            ..self.clone()
        }
    }
}

/// The tenant a record belongs to, when losing it could open that tenant's endpoints.
fn owning_tenant(r: &KeyRef) -> Option<String> {
    match r {
        KeyRef::Tenant(name) => Some(name.clone()),
        KeyRef::Segment { tenant, .. } => Some(tenant.clone()),
        KeyRef::Policy(PolicyId::Kubernetes { tenant, .. }) => Some(tenant.clone()),
        _ => None,
    }
}

fn is_policy(r: Option<KeyRef>) -> bool {
    matches!(r, Some(KeyRef::Policy(_)))
}

impl From<bool> for Reduced {
    fn from(changed: bool) -> Reduced {
        if changed {
            Reduced::Changed
        } else {
            Reduced::Unchanged
        }
    }
}

/// Inserts and tells whether the map changed (a re-put of an equal value does not count).
fn insert_changed<K: Ord, V: PartialEq>(map: &mut BTreeMap<K, V>, key: K, value: V) -> bool {
    match map.get(&key) {
        Some(old) if *old == value => false,
        _ => {
            map.insert(key, value);
            true
        }
    }
}

#[cfg(test)]
mod tests;
