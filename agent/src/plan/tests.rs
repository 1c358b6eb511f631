use proptest::prelude::*;
use romana_core::Isolation;

use super::*;
use crate::desired::{desired, HostView};
use crate::fixtures::*;
use crate::ifname::endpoint_ifname;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ours(dst: &str, gateway: Option<&str>, oif: Option<u32>) -> ObservedRoute {
    let dst = net(dst);
    ObservedRoute {
        priority: default_priority(&dst),
        dst,
        gateway: gateway.map(ip),
        oif,
        table: ROUTE_TABLE,
        protocol: ROUTE_PROTOCOL,
    }
}

fn foreign(dst: &str, gateway: &str, protocol: u8) -> ObservedRoute {
    ObservedRoute {
        protocol,
        ..ours(dst, Some(gateway), None)
    }
}

/// A kernel with eth0 (#2) and the interface of endpoint pod-a (#7), nothing else.
fn mk_observed() -> Observed {
    Observed {
        routes: Vec::new(),
        links: [
            ("lo".to_string(), 1),
            ("eth0".to_string(), 2),
            (endpoint_ifname("pod-a"), 7),
        ]
        .into_iter()
        .collect(),
        connected: vec![net("192.168.0.0/24")],
        taps: Default::default(),
        nft: NftObserved::Absent,
        sysctls: Default::default(),
    }
}

fn mk_desired() -> Desired {
    let mut s = mk_state();
    add_endpoint(
        &mut s,
        mk_endpoint("pod-a", "10.0.16.2", "h1", "t", "default"),
    );
    desired(&s, &mk_view())
}

/// The kernel, as far as the plan is concerned: replace hits the first route of the main
/// table with the same destination and metric (whoever owns it), delete must find exactly
/// its route, nft element deletes must find their element, and a batch is all or nothing.
fn apply_model(o: &mut Observed, p: &Plan) {
    for op in &p.routes {
        match op {
            RouteOp::Replace { dst, gateway, oif } => {
                let new = ObservedRoute {
                    dst: *dst,
                    gateway: *gateway,
                    oif: *oif,
                    priority: default_priority(dst),
                    table: ROUTE_TABLE,
                    protocol: ROUTE_PROTOCOL,
                };
                match o
                    .routes
                    .iter_mut()
                    .find(|r| r.dst == *dst && r.table == ROUTE_TABLE && r.priority == new.priority)
                {
                    Some(r) => *r = new,
                    None => o.routes.push(new),
                }
            }
            RouteOp::Delete(route) => {
                let at = o
                    .routes
                    .iter()
                    .position(|r| r == route)
                    .unwrap_or_else(|| panic!("delete of an absent route {route:?}: ESRCH"));
                o.routes.remove(at);
            }
        }
    }
    match &p.nft {
        NftOp::Keep => {}
        NftOp::Replace(program) => o.nft = NftObserved::Table(program.view()),
        NftOp::Patch {
            chains,
            add,
            delete,
        } => {
            let NftObserved::Table(view) = &mut o.nft else {
                panic!("a patch planned without a table")
            };
            for chain in chains {
                let c = view.chains.iter_mut().find(|c| c.name == chain.name);
                let c = c.expect("flush of an absent chain fails the batch");
                c.rules = chain
                    .rules
                    .iter()
                    .map(|r| Some(crate::nft::rule_comment(&r.text())))
                    .collect();
            }
            for (set, e) in delete {
                assert!(view.sets.get_mut(set).unwrap().elements.remove(e));
            }
            for (set, e) in add {
                view.sets.get_mut(set).unwrap().elements.insert(e.clone());
            }
        }
        NftOp::Elements { add, delete } => {
            let NftObserved::Table(view) = &mut o.nft else {
                panic!("element changes planned without a table")
            };
            for (set, e) in delete {
                assert!(
                    view.sets.get_mut(set).unwrap().elements.remove(e),
                    "delete of an absent element fails the batch"
                );
            }
            for (set, e) in add {
                view.sets.get_mut(set).unwrap().elements.insert(e.clone());
            }
        }
    }
    for s in &p.sysctls {
        o.sysctls.insert(s.path.clone(), s.value.clone());
    }
}

/// One round: plan against the model, then apply the plan to it.
fn converge(d: &Desired, o: &mut Observed) {
    let p = plan(d, o);
    apply_model(o, &p);
}

/// Our routes in the model as the desired map (link routes by interface name).
fn routes_of(o: &Observed) -> BTreeMap<IpNet, RouteTarget> {
    let names: BTreeMap<u32, &String> = o.links.iter().map(|(n, i)| (*i, n)).collect();
    o.routes
        .iter()
        .filter(|r| r.is_ours())
        .map(|r| {
            let target = match (r.gateway, r.oif) {
                (Some(gw), _) => RouteTarget::Via(gw),
                (None, Some(oif)) => RouteTarget::Link(names[&oif].clone()),
                (None, None) => panic!("route without target"),
            };
            (r.dst, target)
        })
        .collect()
}

#[test]
fn an_empty_kernel_gets_every_route_the_table_and_forwarding() {
    let d = mk_desired();
    let p = plan(&d, &mk_observed());
    assert_eq!(p.routes.len(), 3);
    assert!(p
        .routes
        .iter()
        .all(|op| matches!(op, RouteOp::Replace { .. })));
    assert!(matches!(p.nft, NftOp::Replace(_)));
    assert_eq!(p.sysctls.len(), 1);
    assert!(p.blocked.is_empty() && p.conflicts.is_empty());
}

#[test]
fn apply_of_plan_equals_desired_and_then_nothing_is_left() {
    let d = mk_desired();
    let mut o = mk_observed();
    converge(&d, &mut o);
    assert_eq!(routes_of(&o), d.routes);
    let again = plan(&d, &o);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn restart_with_existing_kernel_state_converges_without_duplicates() {
    let d = mk_desired();
    let mut o = mk_observed();
    converge(&d, &mut o);
    // A new agent process: no memory, only the kernel. It plans nothing, so it cannot add
    // a second copy of anything.
    let restarted = plan(&d, &o.clone());
    assert!(restarted.is_empty(), "{restarted:?}");
    // And replaying the very first plan (a crash before the read back) still leaves one
    // route per destination: replace is idempotent.
    apply_model(&mut o, &plan(&d, &mk_observed()));
    let dsts: Vec<IpNet> = o.routes.iter().map(|r| r.dst).collect();
    let unique: BTreeSet<IpNet> = dsts.iter().copied().collect();
    assert_eq!(dsts.len(), unique.len());
}

#[test]
fn stale_routes_of_ours_are_deleted_and_foreign_routes_never_touched() {
    let d = mk_desired();
    let mut o = mk_observed();
    let stale = ours("10.9.0.0/16", Some("192.168.0.99"), None);
    let static_route = foreign("10.8.0.0/16", "192.168.0.1", 4);
    let bird = foreign("10.7.0.0/16", "192.168.0.1", 12);
    let other_table = ObservedRoute {
        table: 100,
        ..ours("10.6.0.0/16", Some("192.168.0.1"), None)
    };
    o.routes = vec![
        stale.clone(),
        static_route.clone(),
        bird.clone(),
        other_table.clone(),
    ];
    let p = plan(&d, &o);
    assert_eq!(
        p.routes.last(),
        Some(&RouteOp::Delete(stale)),
        "stale route deleted after the adds"
    );
    apply_model(&mut o, &p);
    for r in [&static_route, &bird, &other_table] {
        assert!(o.routes.contains(r), "{r:?} was touched");
    }
    assert_eq!(routes_of(&o), d.routes);
}

#[test]
fn a_foreign_route_holding_our_slot_is_a_conflict_not_a_replace() {
    let d = mk_desired();
    let mut o = mk_observed();
    let static_route = foreign("10.1.0.0/16", "192.168.0.77", 4);
    o.routes = vec![static_route.clone()];
    let p = plan(&d, &o);
    assert!(!p
        .routes
        .iter()
        .any(|op| matches!(op, RouteOp::Replace { dst, .. } if *dst == net("10.1.0.0/16"))));
    assert_eq!(p.conflicts.len(), 1);
    assert!(p.conflicts[0].contains("protocol 4"), "{:?}", p.conflicts);
    apply_model(&mut o, &p);
    assert!(o.routes.contains(&static_route));
}

#[test]
fn a_changed_next_hop_is_replaced_in_place() {
    let d = mk_desired();
    let mut o = mk_observed();
    converge(&d, &mut o);
    let moved = o
        .routes
        .iter_mut()
        .find(|r| r.dst == net("10.1.0.0/16"))
        .unwrap();
    moved.gateway = Some(ip("192.168.0.200"));
    let p = plan(&d, &o);
    assert_eq!(
        p.routes,
        [RouteOp::Replace {
            dst: net("10.1.0.0/16"),
            gateway: Some(ip("192.168.0.12")),
            oif: None
        }]
    );
}

#[test]
fn duplicates_and_other_metrics_of_ours_are_cleaned_up() {
    let d = mk_desired();
    let mut o = mk_observed();
    converge(&d, &mut o);
    let twin = ours("10.1.0.0/16", Some("192.168.0.13"), None);
    let high = ObservedRoute {
        priority: 50,
        ..ours("10.1.0.0/16", Some("192.168.0.12"), None)
    };
    o.routes.push(twin.clone());
    o.routes.push(high.clone());
    let p = plan(&d, &o);
    assert!(p.routes.contains(&RouteOp::Delete(twin)));
    assert!(p.routes.contains(&RouteOp::Delete(high)));
    apply_model(&mut o, &p);
    assert_eq!(routes_of(&o), d.routes);
    assert_eq!(o.routes.len(), d.routes.len());
}

#[test]
fn ipv6_routes_at_metric_1024_are_the_default() {
    let r = ours("fd00:10:0:1::/64", Some("fd00:ff::12"), None);
    assert_eq!(r.priority, 1024);
    let d = Desired {
        routes: [(r.dst, RouteTarget::Via(ip("fd00:ff::12")))].into(),
        ..mk_desired()
    };
    let o = Observed {
        routes: vec![r],
        ..mk_observed()
    };
    assert!(plan(&d, &o).routes.is_empty());
}

#[test]
fn a_missing_endpoint_interface_blocks_its_route_only() {
    let mut s = mk_state();
    add_endpoint(
        &mut s,
        mk_endpoint("pod-late", "10.0.16.3", "h1", "t", "default"),
    );
    let d = desired(&s, &mk_view());
    let p = plan(&d, &mk_observed());
    assert_eq!(
        p.blocked,
        [format!(
            "10.0.16.3/32 dev {} scope link",
            endpoint_ifname("pod-late")
        )]
    );
    assert_eq!(p.routes.len(), 2, "host routes go ahead");
}

#[test]
fn a_membership_change_gives_element_operations_only() {
    let d = mk_desired();
    let mut o = mk_observed();
    converge(&d, &mut o);
    let mut s = mk_state();
    add_endpoint(
        &mut s,
        mk_endpoint("pod-a", "10.0.16.2", "h1", "t", "default"),
    );
    s.tenants
        .insert("o".into(), mk_tenant("o", 2, Isolation::None));
    let d2 = desired(&s, &mk_view());
    let p = plan(&d2, &o);
    assert!(p.routes.is_empty());
    assert!(
        matches!(&p.nft, NftOp::Elements { add, delete } if add.len() == 1 && delete.is_empty())
    );
    apply_model(&mut o, &p);
    assert!(plan(&d2, &o).is_empty());
}

#[test]
fn a_foreign_rule_or_a_changed_structure_replaces_the_table() {
    let d = mk_desired();
    let mut view = d.nft.view();
    view.chains[0].rules.insert(1, None);
    let o = Observed {
        nft: NftObserved::Table(view),
        ..mk_observed()
    };
    assert!(matches!(plan(&d, &o).nft, NftOp::Replace(_)));
    let o = Observed {
        nft: NftObserved::Unreadable("bad".into()),
        ..mk_observed()
    };
    assert!(matches!(plan(&d, &o).nft, NftOp::Replace(_)));
}

#[test]
fn changed_rules_in_an_intact_table_patch_those_chains_only() {
    let d = mk_desired();
    let mut view = d.nft.view();
    // The first chain's rules are ours but others: as after a policy change.
    let stale = Some(crate::nft::rule_comment("stale"));
    view.chains[0].rules = vec![stale.clone(), stale];
    let mut o = Observed {
        nft: NftObserved::Table(view),
        ..mk_observed()
    };
    let p = plan(&d, &o);
    let NftOp::Patch { chains, .. } = &p.nft else {
        panic!("expected a patch, got {:?}", p.nft)
    };
    assert_eq!(
        chains.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        [d.nft.chains[0].name.as_str()]
    );
    let script = p.nft.script().unwrap();
    assert!(script.starts_with(&format!("flush chain inet romana {}", d.nft.chains[0].name)));
    apply_model(&mut o, &p);
    assert!(plan(&d, &o).is_empty());
}

#[test]
fn sysctls_already_set_are_not_written_again() {
    let d = mk_desired();
    let mut o = mk_observed();
    o.sysctls.insert("net/ipv4/ip_forward".into(), "1".into());
    assert!(plan(&d, &o).sysctls.is_empty());
    o.sysctls.insert("net/ipv4/ip_forward".into(), "0".into());
    assert_eq!(plan(&d, &o).sysctls.len(), 1);
}

#[test]
fn adds_come_before_deletes() {
    let d = mk_desired();
    let mut o = mk_observed();
    o.routes = vec![
        ours("10.9.0.0/16", Some("192.168.0.99"), None),
        ours("10.8.0.0/16", Some("192.168.0.98"), None),
    ];
    let p = plan(&d, &o);
    let first_delete = p
        .routes
        .iter()
        .position(|op| matches!(op, RouteOp::Delete(_)))
        .unwrap();
    assert!(p.routes[..first_delete]
        .iter()
        .all(|op| matches!(op, RouteOp::Replace { .. })));
    assert!(p.routes[first_delete..]
        .iter()
        .all(|op| matches!(op, RouteOp::Delete(_))));
}

fn arb_route() -> impl Strategy<Value = ObservedRoute> {
    (
        0u8..6,
        prop::option::of(0u8..4),
        prop::option::of(prop::sample::select(vec![2u32, 7, 9])),
        prop::sample::select(vec![0u32, 0, 0, 50]),
        prop::sample::select(vec![ROUTE_TABLE, ROUTE_TABLE, 100]),
        prop::sample::select(vec![ROUTE_PROTOCOL, ROUTE_PROTOCOL, 4, 2]),
    )
        .prop_map(|(dst, gw, oif, priority, table, protocol)| ObservedRoute {
            dst: net(&format!("10.{dst}.0.0/16")),
            gateway: gw.map(|g| ip(&format!("192.168.0.{}", 10 + g))),
            oif: if gw.is_none() { oif.or(Some(2)) } else { oif },
            priority,
            table,
            protocol,
        })
}

proptest! {
    /// Whatever the kernel holds (ours, foreign, stale, duplicated) and whatever the cluster
    /// is, one plan applied to the model reaches desired, the next plan is empty, and no
    /// foreign route changed.
    #[test]
    fn apply_of_plan_reaches_desired_from_any_kernel(
        kernel in prop::collection::vec(arb_route(), 0..12),
        hosts in prop::collection::btree_set(1u32..6, 0..5),
        endpoints in prop::collection::btree_set(2u32..6, 0..4),
        linked in any::<bool>(),
        gateway in any::<bool>(),
    ) {
        let mut s = mk_state();
        s.hosts.retain(|n, _| n == "h1");
        for i in &hosts {
            let h = mk_host(&format!("x{i}"), &format!("192.168.{}.{}", i % 2, 10 + i), *i);
            s.hosts.insert(h.name.clone(), h);
        }
        let mut o = mk_observed();
        for e in &endpoints {
            let id = format!("pod-{e}");
            add_endpoint(&mut s, mk_endpoint(&id, &format!("10.0.16.{e}"), "h1", "t", "default"));
            if linked {
                o.links.insert(endpoint_ifname(&id), 100 + e);
            }
        }
        // Kernel duplicates as the kernel could hold them: no two routes of a table share
        // destination, metric and next hop.
        let mut seen = BTreeSet::new();
        o.routes = kernel.into_iter().filter(|r| seen.insert((r.dst, r.priority, r.table, r.gateway, r.oif))).collect();
        let view = HostView { gateways: gateway.then(|| ip("192.168.0.1")).into_iter().collect(), ..mk_view() };
        let d = desired(&s, &view);
        let foreign_before: Vec<ObservedRoute> = o.routes.iter().filter(|r| !r.is_ours()).cloned().collect();

        let p = plan(&d, &o);
        apply_model(&mut o, &p);

        let foreign_after: Vec<ObservedRoute> = o.routes.iter().filter(|r| !r.is_ours()).cloned().collect();
        prop_assert_eq!(foreign_before, foreign_after);
        let mut want = d.routes.clone();
        // Blocked (no interface) and conflicting (foreign slot) routes are not expected.
        want.retain(|dst, t| {
            let blocked = matches!(t, RouteTarget::Link(n) if !o.links.contains_key(n));
            let held = o.routes.iter().any(|r| !r.is_ours() && r.table == ROUTE_TABLE && r.dst == *dst && r.priority == default_priority(dst));
            !blocked && !held
        });
        prop_assert_eq!(routes_of(&o), want);
        let again = plan(&d, &o);
        prop_assert!(again.is_empty(), "{:?}", again);
    }
}
