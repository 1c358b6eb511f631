use proptest::prelude::*;
use romana_core::Isolation;

use super::*;
use crate::desired::desired;
use crate::fixtures::*;

fn synced(keys: &Keys, events: Vec<WatchEvent>) -> ClusterState {
    let mut s = ClusterState::default();
    s.reduce(keys, WatchEvent::Init);
    for e in events {
        s.reduce(keys, e);
    }
    s.reduce(keys, WatchEvent::InitDone { revision: 10 });
    s
}

#[test]
fn state_is_unsynced_until_init_done_and_again_after_a_relist_starts() {
    let keys = Keys::default();
    let mut s = ClusterState::default();
    assert!(!s.is_synced());
    assert_eq!(s.reduce(&keys, WatchEvent::Init).0, Reduced::Changed);
    s.reduce(
        &keys,
        WatchEvent::InitApply(kv(&keys, "config", &mk_config(0), 3)),
    );
    assert!(!s.is_synced());
    assert_eq!(
        s.reduce(&keys, WatchEvent::InitDone { revision: 7 }).0,
        Reduced::Synced { revision: 7 }
    );
    assert!(s.is_synced());
    assert_eq!(s.revision(), 7);
    assert_eq!(s.config, Some(mk_config(0)));

    s.reduce(&keys, WatchEvent::Init);
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
    s.reduce(&keys, WatchEvent::Init);
    s.reduce(
        &keys,
        WatchEvent::InitApply(kv(&keys, "hosts/h1", &mk_host("h1", "192.168.0.11", 0), 2)),
    );
    s.reduce(&keys, WatchEvent::InitDone { revision: 20 });
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
            s.reduce(&keys, put(&keys, path, &"x", 15)).0,
            Reduced::Unchanged,
            "{path}"
        );
        assert_eq!(s.reduce(&keys, del(&keys, path, 16)).0, Reduced::Unchanged);
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
        s.reduce(&keys, put(&keys, "tenants/t", &t, 5)).0,
        Reduced::Changed
    );
    assert_eq!(
        s.reduce(&keys, put(&keys, "tenants/t", &t, 6)).0,
        Reduced::Unchanged
    );
    let open = mk_tenant("t", 1, Isolation::None);
    assert_eq!(
        s.reduce(&keys, put(&keys, "tenants/t", &open, 7)).0,
        Reduced::Changed
    );
    assert_eq!(s.tenants["t"].isolation, Isolation::None);
}

#[test]
fn an_undecodable_value_removes_the_record_and_names_the_key() {
    let keys = Keys::default();
    let mut s = synced(&keys, vec![]);
    s.reduce(
        &keys,
        put(&keys, "hosts/h1", &mk_host("h1", "192.168.0.11", 0), 5),
    );
    let (reduced, error) = s.reduce(&keys, put(&keys, "hosts/h1", &"not a host", 6));
    assert_eq!(reduced, Reduced::Changed);
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
    let (reduced, error) = s.reduce(&keys, put(&keys, "policies/k8s/t/deny", &newer, 20));
    assert_eq!(reduced, Reduced::Changed);
    assert_eq!(error.unwrap().key, "/romana/v1/policies/k8s/t/deny");
    assert_eq!(
        s.quarantined_tenants().into_iter().collect::<Vec<_>>(),
        ["t"]
    );
    // Host, tenant and endpoint records tolerate fields they do not know.
    let mut host = serde_json::to_value(mk_host("h9", "192.168.0.19", 9)).unwrap();
    host["fromNewerRelease"] = true.into();
    let (_, error) = s.reduce(&keys, put(&keys, "hosts/h9", &host, 21));
    assert!(error.is_none());
    assert!(s.hosts.contains_key("h9"));
    // Rewritten in a form this agent reads: the quarantine is lifted.
    let mut fixed = newer.clone();
    fixed["spec"]
        .as_object_mut()
        .unwrap()
        .remove("fromNewerRelease");
    let (reduced, error) = s.reduce(&keys, put(&keys, "policies/k8s/t/deny", &fixed, 22));
    assert!(error.is_none());
    assert_eq!(reduced, Reduced::Changed);
    assert!(s.quarantined_tenants().is_empty());
    // Deleting an unreadable record lifts it too.
    s.reduce(&keys, put(&keys, "tenants/t", &newer, 23));
    assert_eq!(s.quarantined_tenants().len(), 1);
    assert_eq!(
        s.reduce(&keys, del(&keys, "tenants/t", 24)).0,
        Reduced::Changed
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
        s.reduce(&keys, put(&keys, "policies/romana/lb", &romana, 11))
            .0,
        Reduced::Changed
    );
    assert_eq!(
        s.reduce(&keys, put(&keys, "policies/k8s/t/deny", &k8s, 12))
            .0,
        Reduced::Changed
    );
    assert_eq!(s.policy_set().len(), 2);
    assert_eq!(s.policy_revision(), 12);
    // Stored under another id than its own: not enforced, and the key is named.
    let (_, error) = s.reduce(&keys, put(&keys, "policies/romana/other", &romana, 13));
    assert_eq!(error.unwrap().key, "/romana/v1/policies/romana/other");
    assert_eq!(s.policy_set().len(), 2);
    // It is listed as unreadable (a Romana policy only adds allows: no quarantine).
    assert_eq!(
        s.unreadable["/romana/v1/policies/romana/other"].tenant,
        None
    );
    assert_eq!(s.policy_revision(), 13);
    // Other changes do not move the policy revision.
    s.reduce(
        &keys,
        put(&keys, "hosts/h1", &mk_host("h1", "192.168.0.11", 0), 14),
    );
    assert_eq!(s.policy_revision(), 13);
    assert_eq!(
        s.reduce(&keys, del(&keys, "policies/romana/lb", 15)).0,
        Reduced::Changed
    );
    assert_eq!(s.policy_revision(), 15);

    // A relist with the same policies keeps the revision; one with fewer moves it.
    s.reduce(&keys, WatchEvent::Init);
    s.reduce(
        &keys,
        WatchEvent::InitApply(kv(&keys, "policies/k8s/t/deny", &k8s, 12)),
    );
    s.reduce(&keys, WatchEvent::InitDone { revision: 30 });
    assert_eq!(s.policy_revision(), 15);
    s.reduce(&keys, WatchEvent::Init);
    s.reduce(&keys, WatchEvent::InitDone { revision: 40 });
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
        relisted.reduce(&keys, WatchEvent::Init);
        let mut rev = 100;
        let mut listing = Vec::new();
        if let Some(c) = &a.config { listing.push(kv(&keys, "config", c, rev)); }
        for (n, h) in &a.hosts { rev += 1; listing.push(kv(&keys, &format!("hosts/{n}"), h, rev)); }
        for (n, t) in &a.tenants { rev += 1; listing.push(kv(&keys, &format!("tenants/{n}"), t, rev)); }
        for ((t, n), s) in &a.segments { rev += 1; listing.push(kv(&keys, &format!("segments/{t}/{n}"), s, rev)); }
        for (id, e) in &a.endpoints { rev += 1; listing.push(kv(&keys, &format!("endpoints/{id}"), e, rev)); }
        for kv in listing { relisted.reduce(&keys, WatchEvent::InitApply(kv)); }
        relisted.reduce(&keys, WatchEvent::InitDone { revision: rev });
        prop_assert_eq!(relisted.records(), a.records());
    }
}
