use romana_core::{ClusterConfig, Isolation};

use super::*;
use crate::fixtures::*;
use crate::ifname::endpoint_ifname;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn via(s: &str) -> RouteTarget {
    RouteTarget::Via(ip(s))
}

fn mk_rack_state(hosts: &[(&str, &str, u32)]) -> ClusterState {
    // 2 rack bits of 8 host bits: 64 hosts per rack; rack r's first host index is r * 64.
    let mut s = mk_state();
    s.config = Some(mk_config(2));
    s.hosts.clear();
    for (name, addr, index) in hosts {
        s.hosts
            .insert(name.to_string(), mk_host(name, addr, *index));
    }
    s
}

#[test]
fn other_hosts_on_link_are_routed_via_their_own_address() {
    let d = desired(&mk_state(), &mk_view());
    assert_eq!(
        d.routes.get(&net("10.1.0.0/16")),
        Some(&via("192.168.0.12"))
    );
    assert!(
        !d.routes.contains_key(&net("10.0.0.0/16")),
        "no route to my own prefix"
    );
}

#[test]
fn hosts_off_link_are_routed_via_the_gateway() {
    // h3 is on 192.168.1.0/24, not one of h1's connected subnets.
    let d = desired(&mk_state(), &mk_view());
    assert_eq!(d.routes.get(&net("10.2.0.0/16")), Some(&via("192.168.0.1")));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
}

#[test]
fn off_link_host_without_gateway_is_a_problem_not_a_guess() {
    let view = HostView {
        gateways: Vec::new(),
        ..mk_view()
    };
    let d = desired(&mk_state(), &view);
    assert!(!d.routes.contains_key(&net("10.2.0.0/16")));
    assert_eq!(d.problems.len(), 1);
    assert!(d.problems[0].contains("h3"), "{:?}", d.problems);
}

#[test]
fn gateway_of_the_other_family_is_not_used() {
    let view = HostView {
        gateways: vec![ip("fe80::1")],
        ..mk_view()
    };
    let d = desired(&mk_state(), &view);
    assert!(!d.routes.contains_key(&net("10.2.0.0/16")));
    assert!(d.problems.iter().any(|p| p.contains("fe80::1")));
}

#[test]
fn endpoint_side_subnets_inside_the_address_space_are_not_on_link() {
    let mut s = mk_state();
    // A host whose fabric address happens to fall in an endpoint-side connected subnet
    // (a misconfiguration) must still not be routed "on-link" through an endpoint link.
    s.hosts.insert("h4".into(), mk_host("h4", "10.0.16.9", 3));
    let view = HostView {
        connected: vec![net("192.168.0.0/24"), net("10.0.16.0/24")],
        ..mk_view()
    };
    let d = desired(&s, &view);
    assert_eq!(d.routes.get(&net("10.3.0.0/16")), Some(&via("192.168.0.1")));
}

#[test]
fn racks_get_per_host_routes_inside_my_rack_and_one_aggregate_per_other_rack() {
    // Rack 0: h1 (0), h2 (1). Rack 1: h5 (64), h6 (65). Rack 2: empty. Rack 3: h9 (192).
    let s = mk_rack_state(&[
        ("h1", "192.168.0.11", 0),
        ("h2", "192.168.0.12", 1),
        ("h5", "192.168.1.5", 64),
        ("h6", "192.168.1.6", 65),
        ("h9", "192.168.3.9", 192),
    ]);
    let d = desired(&s, &mk_view());
    let want: BTreeMap<IpNet, RouteTarget> = [
        ("10.1.0.0/16", via("192.168.0.12")),
        ("10.64.0.0/10", via("192.168.0.1")),
        ("10.192.0.0/10", via("192.168.0.1")),
    ]
    .into_iter()
    .map(|(n, t)| (net(n), t))
    .collect();
    assert_eq!(
        d.routes, want,
        "no aggregate for the empty rack 2, no per-host routes into racks 1 and 3"
    );
}

#[test]
fn other_racks_without_gateway_are_a_problem() {
    let s = mk_rack_state(&[("h1", "192.168.0.11", 0), ("h5", "192.168.0.5", 64)]);
    let view = HostView {
        gateways: Vec::new(),
        ..mk_view()
    };
    let d = desired(&s, &view);
    assert!(
        d.routes.is_empty(),
        "h5 is on-link but in another rack: {:?}",
        d.routes
    );
    assert!(
        d.problems.iter().any(|p| p.contains("rack 1")),
        "{:?}",
        d.problems
    );
}

#[test]
fn without_racks_every_host_is_routed_individually() {
    let d = desired(&mk_state(), &mk_view());
    assert_eq!(d.routes.len(), 2);
}

#[test]
fn local_endpoints_get_a_link_route_and_remote_endpoints_nothing() {
    let mut s = mk_state();
    add_endpoint(&mut s, mk_endpoint("pod-a", "10.0.17.2", "h1", "t", "web"));
    add_endpoint(&mut s, mk_endpoint("pod-b", "10.1.17.2", "h2", "t", "web"));
    let d = desired(&s, &mk_view());
    assert_eq!(
        d.routes.get(&net("10.0.17.2/32")),
        Some(&RouteTarget::Link(endpoint_ifname("pod-a")))
    );
    assert!(!d.routes.contains_key(&net("10.1.17.2/32")));
}

#[test]
fn route_count_grows_with_hosts_not_with_remote_endpoints() {
    let mut s = mk_state();
    let before = desired(&s, &mk_view()).routes.len();
    for i in 0..200 {
        let host = if i % 2 == 0 { "h2" } else { "h3" };
        let prefix = if host == "h2" { 1 } else { 2 };
        add_endpoint(
            &mut s,
            mk_endpoint(
                &format!("e{i}"),
                &format!("10.{prefix}.17.{}", 2 + i / 2),
                host,
                "t",
                "web",
            ),
        );
    }
    assert_eq!(desired(&s, &mk_view()).routes.len(), before);
}

#[test]
fn an_unregistered_host_gets_no_routes_but_a_problem() {
    let view = HostView {
        name: "stranger".into(),
        ..mk_view()
    };
    let d = desired(&mk_state(), &view);
    assert!(d.routes.is_empty());
    assert!(d.problems[0].contains("stranger"));
}

#[test]
fn without_config_there_are_no_routes_and_the_table_is_fail_closed() {
    let mut s = mk_state();
    s.config = None;
    let d = desired(&s, &mk_view());
    assert!(d.routes.is_empty());
    assert_eq!(
        d.nft
            .chains
            .iter()
            .flat_map(|c| c.rules.iter().map(|r| r.text()))
            .collect::<Vec<_>>(),
        [
            "iifname { \"rmn*\", \"tap*\" } drop",
            "oifname { \"rmn*\", \"tap*\" } drop"
        ]
    );
    assert_eq!(
        d.sysctls,
        [Sysctl {
            path: "net/ipv4/ip_forward".into(),
            value: "1".into()
        }]
    );
}

#[test]
fn an_invalid_config_is_reported_and_routes_nothing() {
    let mut s = mk_state();
    s.config = Some(ClusterConfig {
        host_bits: 30,
        ..mk_config(0)
    });
    let d = desired(&s, &mk_view());
    assert!(d.routes.is_empty());
    assert!(d.problems[0].contains("invalid"));
}

#[test]
fn ipv6_layout_routes_128s_and_wants_v6_forwarding() {
    let mut s = ClusterState::default();
    s.config = Some(mk_config_v6());
    for h in [
        mk_host("h1", "fd00:ff::11", 0),
        mk_host("h2", "fd00:ff::12", 1),
    ] {
        s.hosts.insert(h.name.clone(), h);
    }
    s.tenants
        .insert("t".into(), mk_tenant("t", 5, Isolation::Segment));
    add_endpoint(
        &mut s,
        mk_endpoint("pod-a", "fd00:10:0:0:502::2", "h1", "t", "default"),
    );
    let view = HostView {
        name: "h1".into(),
        gateways: Vec::new(),
        connected: vec![net("fd00:ff::/64")],
    };
    let d = desired(&s, &view);
    assert_eq!(
        d.routes.get(&net("fd00:10:0:1::/64")),
        Some(&via("fd00:ff::12"))
    );
    assert_eq!(
        d.routes.get(&net("fd00:10::502:0:0:2/128")),
        Some(&RouteTarget::Link(endpoint_ifname("pod-a")))
    );
    assert!(d
        .sysctls
        .iter()
        .any(|s| s.path == "net/ipv6/conf/all/forwarding"));
}

#[test]
fn an_endpoint_on_a_named_tap_is_routed_to_the_tap_and_bound_to_it_in_nft() {
    let mut s = mk_state();
    let mut vm = mk_endpoint("port-1", "10.0.16.2", "h1", "t", "default");
    vm.interface = "tap3f2a9c1b-7d".into();
    add_endpoint(&mut s, vm);
    let d = desired(&s, &mk_view());
    assert_eq!(
        d.routes.get(&net("10.0.16.2/32")),
        Some(&RouteTarget::Link("tap3f2a9c1b-7d".into()))
    );
    assert_eq!(
        d.nft.sets[crate::nft::SET_ENDPOINTS].elements,
        [crate::nft::SetElement::IfAddr(
            "tap3f2a9c1b-7d".into(),
            ip("10.0.16.2")
        )]
        .into()
    );
    assert!(d.problems.is_empty(), "{:?}", d.problems);
}

#[test]
fn a_record_naming_an_interface_that_is_no_tap_is_left_out_closed() {
    let mut s = mk_state();
    for (id, interface, address) in [
        ("hand-1", "eth0", "10.0.16.2"),
        ("hand-2", "tap\"; flush ruleset", "10.0.16.3"),
    ] {
        let mut e = mk_endpoint(id, address, "h1", "t", "default");
        e.interface = interface.into();
        add_endpoint(&mut s, e);
    }
    let d = desired(&s, &mk_view());
    assert!(!d.routes.contains_key(&net("10.0.16.2/32")), "never eth0");
    assert!(!d.routes.contains_key(&net("10.0.16.3/32")));
    assert!(d.nft.sets[crate::nft::SET_ENDPOINTS].elements.is_empty());
    assert_eq!(d.problems.len(), 2, "{:?}", d.problems);
    assert!(
        d.problems[0].contains("hand-1 is not routed") && d.problems[0].contains("not a tap"),
        "{:?}",
        d.problems
    );
    assert!(
        !d.nft.render_table().contains("flush"),
        "a bad name never reaches an nft script"
    );
}

/// [`mk_state`] dual-stack: hosts with an IPv6 fabric address (h1, h2 on fd00:ff::/64, h3
/// off it), and local endpoint e1 with an address of each family.
fn mk_dual() -> (ClusterState, HostView) {
    let mut s = mk_state();
    s.config = Some(mk_config_dual());
    for (name, v6) in [
        ("h1", "fd00:ff::11"),
        ("h2", "fd00:ff::12"),
        ("h3", "fd00:fe::13"),
    ] {
        s.hosts.get_mut(name).unwrap().second_ip = Some(ip(v6));
    }
    let mut e = mk_endpoint("e1", "10.0.16.5", "h1", "t", "default");
    e.second_address = Some(ip("fd00:10:0:10::5"));
    add_endpoint(&mut s, e);
    let mut view = mk_view();
    view.connected.push(net("fd00:ff::/64"));
    view.gateways.push(ip("fd00:ff::1"));
    (s, view)
}

#[test]
fn dual_stack_routes_each_family_via_a_next_hop_of_that_family() {
    let (s, view) = mk_dual();
    let d = desired(&s, &view);
    let v6 = mk_config_dual().layout().unwrap();
    let v6 = v6.second_family().unwrap();
    let (h2, h3) = (v6.host_prefix(1).unwrap(), v6.host_prefix(2).unwrap());
    assert_eq!(
        d.routes.get(&h2),
        Some(&via("fd00:ff::12")),
        "{:#?}",
        d.routes
    );
    assert_eq!(
        d.routes.get(&h3),
        Some(&via("fd00:ff::1")),
        "off-link: the gateway"
    );
    // IPv4 is as in a single-family cluster.
    assert_eq!(
        d.routes.get(&net("10.1.0.0/16")),
        Some(&via("192.168.0.12"))
    );
    // Each address of the local endpoint has its own full-length route.
    let link = RouteTarget::Link(endpoint_ifname("e1"));
    assert_eq!(d.routes.get(&net("10.0.16.5/32")), Some(&link));
    assert_eq!(d.routes.get(&net("fd00:10:0:10::5/128")), Some(&link));
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert!(d
        .sysctls
        .iter()
        .any(|s| s.path == "net/ipv6/conf/all/forwarding" && s.value == "1"));
}

#[test]
fn dual_stack_without_a_gateway_of_the_second_family_routes_only_what_it_can() {
    let (s, mut view) = mk_dual();
    view.gateways.retain(|g| g.is_ipv4());
    let d = desired(&s, &view);
    let v6 = mk_config_dual().layout().unwrap();
    let h3 = v6.second_family().unwrap().host_prefix(2).unwrap();
    assert!(!d.routes.contains_key(&h3));
    assert!(
        d.problems
            .iter()
            .any(|p| p.contains("h3") && p.contains("fd00:10::/48's family")),
        "{:?}",
        d.problems
    );
    // A host with no IPv6 fabric address at all is routed via the gateway, or reported.
    let mut s = s;
    s.hosts.get_mut("h2").unwrap().second_ip = None;
    let d = desired(&s, &view);
    let h2 = v6.second_family().unwrap().host_prefix(1).unwrap();
    assert!(!d.routes.contains_key(&h2));
    assert!(
        d.problems.iter().any(|p| p.contains("host h2")),
        "{:?}",
        d.problems
    );
}

#[test]
fn a_gateway_of_no_family_of_the_cluster_is_reported_once() {
    let (s, mut view) = mk_dual();
    view.gateways = vec![ip("192.168.0.1"), ip("fd00:ff::1")];
    assert!(desired(&s, &view).problems.is_empty());
    let (s, view) = (
        mk_state(),
        HostView {
            gateways: vec![ip("192.168.0.1"), ip("fd00:ff::1")],
            ..mk_view()
        },
    );
    let problems = desired(&s, &view).problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("fd00:ff::1"), "{problems:?}");
}
