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
pub enum Applied {
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

    /// Applies one watch event. On a decode error the record is removed and the error is
    /// returned next to the outcome, so the caller can log it and still act on the change.
    pub fn apply(&mut self, keys: &Keys, event: WatchEvent) -> (Applied, Option<StateError>) {
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
                (Applied::Changed, None)
            }
            WatchEvent::InitApply(kv) => {
                let (_, error) = self.put(keys, &kv);
                (Applied::Changed, error)
            }
            WatchEvent::InitDone { revision } => {
                self.synced = true;
                self.revision = revision;
                self.policy_revision = match self.before_relist.take() {
                    Some((before, at)) if before == self.policies => at,
                    _ => revision,
                };
                (Applied::Synced { revision }, None)
            }
            WatchEvent::Apply(kv) => {
                let (applied, error) = self.put(keys, &kv);
                self.advance(applied, kv.mod_revision);
                if applied == Applied::Changed && is_policy(keys.parse(&kv.key)) {
                    self.policy_revision = self.policy_revision.max(kv.mod_revision);
                }
                (applied, error)
            }
            WatchEvent::Delete { key, mod_revision } => {
                let parsed = keys.parse(&key);
                let was_unreadable = self.unreadable.remove(&key).is_some();
                let applied = match &parsed {
                    Some(r) => (self.remove(r) || was_unreadable).into(),
                    None => Applied::Unchanged,
                };
                self.advance(applied, mod_revision);
                if applied == Applied::Changed && is_policy(parsed) {
                    self.policy_revision = self.policy_revision.max(mod_revision);
                }
                (applied, None)
            }
        }
    }

    /// Only changes that matter move the revision: the agent's own status writes and
    /// other keys under the prefix would otherwise make every status record "new".
    fn advance(&mut self, applied: Applied, revision: i64) {
        if applied == Applied::Changed {
            self.revision = self.revision.max(revision);
        }
    }

    fn put(&mut self, keys: &Keys, kv: &Kv) -> (Applied, Option<StateError>) {
        let Some(r) = keys.parse(&kv.key) else {
            return (Applied::Unchanged, None);
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
            _ => return (Applied::Unchanged, None),
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

impl From<bool> for Applied {
    fn from(changed: bool) -> Applied {
        if changed {
            Applied::Changed
        } else {
            Applied::Unchanged
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
mod tests {
    use proptest::prelude::*;
    use romana_core::Isolation;

    use super::*;
    use crate::desired::desired;
    use crate::fixtures::*;

    fn synced(keys: &Keys, events: Vec<WatchEvent>) -> ClusterState {
        let mut s = ClusterState::default();
        s.apply(keys, WatchEvent::Init);
        for e in events {
            s.apply(keys, e);
        }
        s.apply(keys, WatchEvent::InitDone { revision: 10 });
        s
    }

    #[test]
    fn state_is_unsynced_until_init_done_and_again_after_a_relist_starts() {
        let keys = Keys::default();
        let mut s = ClusterState::default();
        assert!(!s.is_synced());
        assert_eq!(s.apply(&keys, WatchEvent::Init).0, Applied::Changed);
        s.apply(
            &keys,
            WatchEvent::InitApply(kv(&keys, "config", &mk_config(0), 3)),
        );
        assert!(!s.is_synced());
        assert_eq!(
            s.apply(&keys, WatchEvent::InitDone { revision: 7 }).0,
            Applied::Synced { revision: 7 }
        );
        assert!(s.is_synced());
        assert_eq!(s.revision(), 7);
        assert_eq!(s.config, Some(mk_config(0)));

        s.apply(&keys, WatchEvent::Init);
        assert!(!s.is_synced(), "a relist makes the state partial again");
        assert_eq!(s.config, None, "a relist starts from scratch");
    }

    #[test]
    fn relist_forgets_records_deleted_while_the_watch_was_down() {
        let keys = Keys::default();
        let mut s = synced(
            &keys,
            vec![
                WatchEvent::InitApply(kv(&keys, "hosts/h1", &mk_host("h1", "192.168.0.11", 0), 2)),
                WatchEvent::InitApply(kv(&keys, "hosts/h2", &mk_host("h2", "192.168.0.12", 1), 3)),
            ],
        );
        // h2 was deleted and the deletion compacted away: only a relist tells.
        s.apply(&keys, WatchEvent::Init);
        s.apply(
            &keys,
            WatchEvent::InitApply(kv(&keys, "hosts/h1", &mk_host("h1", "192.168.0.11", 0), 2)),
        );
        s.apply(&keys, WatchEvent::InitDone { revision: 20 });
        assert_eq!(s.hosts.keys().collect::<Vec<_>>(), ["h1"]);
    }

    #[test]
    fn claims_indexes_services_and_unknown_keys_change_nothing() {
        let keys = Keys::default();
        let mut s = synced(&keys, vec![]);
        for path in [
            "host-index/0000000000",
            "tenant-ids/0000000001",
            "addresses/10.0.0.2",
            "host-endpoints/h1/e1",
            "services/ipam/x-1",
            "agents/h1/status",
            "policies/p1",
        ] {
            assert_eq!(
                s.apply(&keys, put(&keys, path, &"x", 15)).0,
                Applied::Unchanged,
                "{path}"
            );
            assert_eq!(s.apply(&keys, del(&keys, path, 16)).0, Applied::Unchanged);
        }
        assert_eq!(s.records(), ClusterState::default());
        assert_eq!(
            s.revision(),
            10,
            "ignored keys (such as our own status) do not advance the revision"
        );
    }

    #[test]
    fn putting_an_equal_value_again_is_unchanged() {
        let keys = Keys::default();
        let mut s = synced(&keys, vec![]);
        let t = mk_tenant("t", 1, Isolation::Segment);
        assert_eq!(
            s.apply(&keys, put(&keys, "tenants/t", &t, 5)).0,
            Applied::Changed
        );
        assert_eq!(
            s.apply(&keys, put(&keys, "tenants/t", &t, 6)).0,
            Applied::Unchanged
        );
        let open = mk_tenant("t", 1, Isolation::None);
        assert_eq!(
            s.apply(&keys, put(&keys, "tenants/t", &open, 7)).0,
            Applied::Changed
        );
        assert_eq!(s.tenants["t"].isolation, Isolation::None);
    }

    #[test]
    fn an_undecodable_value_removes_the_record_and_names_the_key() {
        let keys = Keys::default();
        let mut s = synced(&keys, vec![]);
        s.apply(
            &keys,
            put(&keys, "hosts/h1", &mk_host("h1", "192.168.0.11", 0), 5),
        );
        let (applied, error) = s.apply(&keys, put(&keys, "hosts/h1", &"not a host", 6));
        assert_eq!(applied, Applied::Changed);
        assert_eq!(error.unwrap().key, "/romana/v1/hosts/h1");
        assert!(s.hosts.is_empty());
    }

    #[test]
    fn segments_and_endpoints_are_keyed_by_their_paths() {
        let keys = Keys::default();
        let s = synced(
            &keys,
            vec![
                WatchEvent::InitApply(kv(&keys, "segments/t/web", &mk_segment("t", "web", 1), 2)),
                WatchEvent::InitApply(kv(
                    &keys,
                    "endpoints/c1:eth0",
                    &mk_endpoint("c1:eth0", "10.0.17.2", "h1", "t", "web"),
                    3,
                )),
            ],
        );
        assert!(s
            .segments
            .contains_key(&("t".to_string(), "web".to_string())));
        assert!(s.endpoints.contains_key("c1:eth0"));
    }

    #[test]
    fn a_network_policy_with_a_field_we_do_not_know_quarantines_its_tenant_until_fixed() {
        let keys = Keys::default();
        let mut s = synced(&keys, Vec::new());
        let newer = serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "t"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "fromNewerRelease": true}});
        let (applied, error) = s.apply(&keys, put(&keys, "policies/k8s/t/deny", &newer, 20));
        assert_eq!(applied, Applied::Changed);
        assert_eq!(error.unwrap().key, "/romana/v1/policies/k8s/t/deny");
        assert_eq!(
            s.quarantined_tenants().into_iter().collect::<Vec<_>>(),
            ["t"]
        );
        // Host, tenant and endpoint records tolerate fields they do not know.
        let mut host = serde_json::to_value(mk_host("h9", "192.168.0.19", 9)).unwrap();
        host["fromNewerRelease"] = true.into();
        let (_, error) = s.apply(&keys, put(&keys, "hosts/h9", &host, 21));
        assert!(error.is_none());
        assert!(s.hosts.contains_key("h9"));
        // Rewritten in a form this agent reads: the quarantine is lifted.
        let mut fixed = newer.clone();
        fixed["spec"]
            .as_object_mut()
            .unwrap()
            .remove("fromNewerRelease");
        let (applied, error) = s.apply(&keys, put(&keys, "policies/k8s/t/deny", &fixed, 22));
        assert!(error.is_none());
        assert_eq!(applied, Applied::Changed);
        assert!(s.quarantined_tenants().is_empty());
        // Deleting an unreadable record lifts it too.
        s.apply(&keys, put(&keys, "tenants/t", &newer, 23));
        assert_eq!(s.quarantined_tenants().len(), 1);
        assert_eq!(
            s.apply(&keys, del(&keys, "tenants/t", 24)).0,
            Applied::Changed
        );
        assert!(s.quarantined_tenants().is_empty());
    }

    #[test]
    fn policies_of_both_forms_are_kept_and_their_revision_is_tracked() {
        let keys = Keys::default();
        let mut s = synced(&keys, vec![]);
        let romana: romana_core::policy::Policy = serde_json::from_str(
            r#"{"name": "lb", "direction": "ingress", "applied_to": [{"tenant": "t"}],
                "peers": [{"peer": "any"}], "rules": [{"protocol": "any"}]}"#,
        )
        .unwrap();
        let k8s: romana_core::policy::Policy = serde_json::from_str(
            r#"{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "deny", "namespace": "t"},
                "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}"#,
        )
        .unwrap();
        assert_eq!(
            s.apply(&keys, put(&keys, "policies/romana/lb", &romana, 11))
                .0,
            Applied::Changed
        );
        assert_eq!(
            s.apply(&keys, put(&keys, "policies/k8s/t/deny", &k8s, 12))
                .0,
            Applied::Changed
        );
        assert_eq!(s.policy_set().len(), 2);
        assert_eq!(s.policy_revision(), 12);
        // Stored under another id than its own: not enforced, and the key is named.
        let (_, error) = s.apply(&keys, put(&keys, "policies/romana/other", &romana, 13));
        assert_eq!(error.unwrap().key, "/romana/v1/policies/romana/other");
        assert_eq!(s.policy_set().len(), 2);
        // It is listed as unreadable (a Romana policy only adds allows: no quarantine).
        assert_eq!(
            s.unreadable["/romana/v1/policies/romana/other"].tenant,
            None
        );
        assert_eq!(s.policy_revision(), 13);
        // Other changes do not move the policy revision.
        s.apply(
            &keys,
            put(&keys, "hosts/h1", &mk_host("h1", "192.168.0.11", 0), 14),
        );
        assert_eq!(s.policy_revision(), 13);
        assert_eq!(
            s.apply(&keys, del(&keys, "policies/romana/lb", 15)).0,
            Applied::Changed
        );
        assert_eq!(s.policy_revision(), 15);

        // A relist with the same policies keeps the revision; one with fewer moves it.
        s.apply(&keys, WatchEvent::Init);
        s.apply(
            &keys,
            WatchEvent::InitApply(kv(&keys, "policies/k8s/t/deny", &k8s, 12)),
        );
        s.apply(&keys, WatchEvent::InitDone { revision: 30 });
        assert_eq!(s.policy_revision(), 15);
        s.apply(&keys, WatchEvent::Init);
        s.apply(&keys, WatchEvent::InitDone { revision: 40 });
        assert_eq!(s.policy_revision(), 40);
        assert!(s.policy_set().is_empty());
    }

    /// A small universe of keys and values for the path-independence property.
    fn mk_op(key: u8, value: Option<u8>, keys: &Keys, rev: i64) -> WatchEvent {
        let v = value.map(|v| v as u32);
        let path = match key {
            0 => "config",
            1 => "hosts/h1",
            2 => "hosts/h2",
            3 => "tenants/t",
            4 => "segments/t/web",
            _ => "endpoints/e1",
        };
        let Some(v) = v else {
            return del(keys, path, rev);
        };
        match key {
            0 => put(keys, path, &mk_config((v % 3) as u8), rev),
            1 => put(keys, path, &mk_host("h1", "192.168.0.11", 0), rev),
            2 => put(
                keys,
                path,
                &mk_host("h2", &format!("192.168.0.{}", 12 + v), 1),
                rev,
            ),
            3 => put(
                keys,
                path,
                &mk_tenant(
                    "t",
                    1,
                    [Isolation::Segment, Isolation::Tenant, Isolation::None][v as usize % 3],
                ),
                rev,
            ),
            4 => put(keys, path, &mk_segment("t", "web", v % 4), rev),
            _ => put(
                keys,
                path,
                &mk_endpoint("e1", &format!("10.0.17.{}", 2 + v), "h1", "t", "web"),
                rev,
            ),
        }
    }

    proptest! {
        /// etcd orders the events of one key; events of different keys may interleave in any
        /// way (another watcher, a relist). The state, and so the desired dataplane, must be
        /// the same for every interleaving: "depend only on current state".
        #[test]
        fn end_state_does_not_depend_on_how_keys_interleave(
            ops in prop::collection::vec((0u8..6, prop::option::of(0u8..3)), 0..30),
            picks in prop::collection::vec(0usize..6, 0..60),
        ) {
            let keys = Keys::default();
            let in_order: Vec<WatchEvent> = ops
                .iter()
                .enumerate()
                .map(|(i, (k, v))| mk_op(*k, *v, &keys, i as i64 + 1))
                .collect();
            // Another interleaving: repeatedly pick a key and emit its next event.
            let mut queues: Vec<std::collections::VecDeque<WatchEvent>> = vec![Default::default(); 6];
            for ((k, _), e) in ops.iter().zip(&in_order) {
                queues[*k as usize].push_back(e.clone());
            }
            let mut shuffled = Vec::new();
            let mut picks = picks.into_iter();
            while queues.iter().any(|q| !q.is_empty()) {
                let start = picks.next().unwrap_or(0);
                let k = (0..6).map(|d| (start + d) % 6).find(|k| !queues[*k].is_empty()).unwrap();
                shuffled.push(queues[k].pop_front().unwrap());
            }

            let a = synced(&keys, in_order);
            let b = synced(&keys, shuffled);
            prop_assert_eq!(a.records(), b.records());
            prop_assert_eq!(desired(&a, &mk_view()), desired(&b, &mk_view()));

            // A relist of the final records gives the same state as the history did.
            let mut relisted = a.clone();
            relisted.apply(&keys, WatchEvent::Init);
            let mut rev = 100;
            let mut listing = Vec::new();
            if let Some(c) = &a.config { listing.push(kv(&keys, "config", c, rev)); }
            for (n, h) in &a.hosts { rev += 1; listing.push(kv(&keys, &format!("hosts/{n}"), h, rev)); }
            for (n, t) in &a.tenants { rev += 1; listing.push(kv(&keys, &format!("tenants/{n}"), t, rev)); }
            for ((t, n), s) in &a.segments { rev += 1; listing.push(kv(&keys, &format!("segments/{t}/{n}"), s, rev)); }
            for (id, e) in &a.endpoints { rev += 1; listing.push(kv(&keys, &format!("endpoints/{id}"), e, rev)); }
            for kv in listing { relisted.apply(&keys, WatchEvent::InitApply(kv)); }
            relisted.apply(&keys, WatchEvent::InitDone { revision: rev });
            prop_assert_eq!(relisted.records(), a.records());
        }
    }
}
