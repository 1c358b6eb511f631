use proptest::prelude::*;
use romana_core::model::NamedPort;
use romana_core::policy::parse_documents;
use romana_core::Isolation;
use romana_store::Keys;

use super::*;
use crate::desired::desired_with_recipes;
use crate::fixtures::*;

/// Two tenants on three hosts; NetworkPolicies with pod, namespace and named-port peers.
/// Dual-stack when `dual`: every endpoint has an IPv6 address too.
fn mk_cluster(dual: bool) -> ClusterState {
    let mut s = mk_state();
    if dual {
        s.config = Some(mk_config_dual());
    }
    s.tenants
        .insert("o".into(), mk_tenant("o", 2, Isolation::None));
    s.segments.insert(
        ("o".into(), "default".into()),
        mk_segment("o", "default", 0),
    );
    for p in parse_documents(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: t}\n\
         spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {matchLabels: {role: a}}}], ports: [{port: http}]}]}\n\
         ---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: t}\n\
         spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {}, podSelector: {matchLabels: {role: b}}}]}]}\n",
    )
    .unwrap()
    {
        s.policies.insert(p.id(), p);
    }
    for i in 0..12 {
        s.endpoints
            .insert(format!("e{i}"), endpoint(i, "a", i % 3 == 0, dual));
    }
    s
}

/// Endpoint `i`: on h1 (local) for i < 4, else on h2 or h3; with the same numbers in
/// [`mk_config_dual`]'s IPv6 space too when `dual`.
fn endpoint(i: u32, role: &str, http: bool, dual: bool) -> Endpoint {
    let host = match i {
        0..=3 => "h1",
        _ if i.is_multiple_of(2) => "h2",
        _ => "h3",
    };
    let h = ["h1", "h2", "h3"].iter().position(|n| *n == host).unwrap();
    let (tenant, third) = if i % 4 == 1 { ("o", 32) } else { ("t", 16) };
    let mut e = mk_endpoint(
        &format!("e{i}"),
        &format!("10.{h}.{third}.{}", 2 + i),
        host,
        tenant,
        "default",
    );
    if dual {
        let l = mk_config_dual().layout().unwrap();
        let d = l.decode(e.address).unwrap();
        let v6 = l.second_family().unwrap();
        e.second_address = Some(
            v6.endpoint_address(d.host, d.tenant, d.segment, d.endpoint)
                .unwrap(),
        );
    }
    e.labels.insert("app".into(), "web".into());
    e.labels.insert("role".into(), role.into());
    // Role c endpoints are VMs on taps: a put may move an endpoint between a veth and a
    // tap, which for a remote endpoint must change no element (and for a local one, take
    // the full path).
    if role == "c" {
        e.interface = format!("tap{i:04}-vm");
    }
    if http {
        e.ports.push(NamedPort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 8000 + i as u16,
        });
    }
    e
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        i: u32,
        role: &'static str,
        http: bool,
    },
    Delete(u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            4u32..16,
            prop::sample::select(vec!["a", "b", "c"]),
            any::<bool>()
        )
            .prop_map(|(i, role, http)| Op::Put { i, role, http }),
        (4u32..16).prop_map(Op::Delete),
    ]
}

fn event(keys: &Keys, op: &Op, rev: i64, dual: bool) -> WatchEvent {
    match op {
        Op::Put { i, role, http } => put(
            keys,
            &format!("endpoints/e{i}"),
            &endpoint(*i, role, *http, dual),
            rev,
        ),
        Op::Delete(i) => del(keys, &format!("endpoints/e{i}"), rev),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Rounds of remote endpoint changes, each taken by the fast path, end in exactly the
    /// program a full compile makes of the same state, and the deltas carried out on the
    /// table view end in that program's view (what the kernel then holds).
    #[test]
    fn endpoint_deltas_equal_a_full_compile(
        dual in any::<bool>(),
        rounds in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..6),
    ) {
        let keys = Keys::default();
        let me = mk_view();
        let mut state = mk_cluster(dual);
        let (desired, recipes) = desired_with_recipes(&state, &me);
        let mut table = desired.nft.view();
        let mut last = Compiled { desired, recipes };
        let mut rev = 100;
        for round in &rounds {
            let mut changes = Changes::default();
            for op in round {
                rev += 1;
                changes.reduce(&keys, &mut state, event(&keys, op, rev, dual));
            }
            prop_assert!(!changes.full);
            let delta = endpoint_delta(&mut last, &state, &me.name, &changes);
            let delta = delta.expect("remote endpoint changes take the fast path");
            delta.apply_to(&mut table);
            let (full, _) = desired_with_recipes(&state, &me);
            prop_assert_eq!(&last.desired, &full);
            prop_assert_eq!(&table, &full.nft.view());
        }
    }
}

#[test]
fn local_endpoints_shared_addresses_and_other_rows_take_the_full_path() {
    let keys = Keys::default();
    let me = mk_view();
    let fresh = |state: &ClusterState| {
        let (desired, recipes) = desired_with_recipes(state, &me);
        Compiled { desired, recipes }
    };
    let mut state = mk_cluster(false);

    let mut changes = Changes::default();
    changes.reduce(
        &keys,
        &mut state,
        put(&keys, "endpoints/e1", &endpoint(1, "b", true, false), 5),
    );
    assert!(!changes.full);
    assert!(
        endpoint_delta(&mut fresh(&state), &state, "h1", &changes).is_none(),
        "e1 is local"
    );

    let mut changes = Changes::default();
    changes.reduce(
        &keys,
        &mut state,
        put(&keys, "endpoints/e2", &endpoint(2, "c", false, false), 5),
    );
    assert!(
        endpoint_delta(&mut fresh(&state), &state, "h1", &changes).is_none(),
        "e2 is local and moves onto a tap: routes, taps and the endpoints set change"
    );

    let mut changes = Changes::default();
    let mut twin = endpoint(5, "a", false, false);
    twin.id = "e99".into();
    changes.reduce(&keys, &mut state, put(&keys, "endpoints/e99", &twin, 6));
    assert!(
        endpoint_delta(&mut fresh(&state), &state, "h1", &changes).is_none(),
        "e5's address"
    );

    let mut changes = Changes::default();
    changes.reduce(
        &keys,
        &mut state,
        put(&keys, "tenants/x", &mk_tenant("x", 3, Isolation::Tenant), 7),
    );
    assert!(changes.full);

    let mut changes = Changes::default();
    changes.reduce(
        &keys,
        &mut state,
        put(&keys, "endpoints/e7", &"not an endpoint", 8),
    );
    assert!(changes.full, "an undecodable record changes the problems");

    let mut changes = Changes::default();
    changes.reduce(&keys, &mut state, put(&keys, "agents/h2/status", &"x", 9));
    assert_eq!(changes, Changes::default(), "ignored rows change nothing");
}
