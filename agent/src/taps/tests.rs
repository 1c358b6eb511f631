use proptest::prelude::*;
use romana_core::policy::Packet;

use super::*;
use crate::compile::interp::{interpret, Probe};
use crate::desired::{desired, RouteTarget};
use crate::fixtures::*;
use crate::plan::{plan as plan_all, Observed};

const TAP: &str = "tap3f2a9c1b-7d";

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn layout_of(s: &ClusterState) -> Layout {
    s.config.as_ref().unwrap().layout().unwrap()
}

fn mk_vm(id: &str, address: &str, host: &str, segment: &str, tap: &str) -> romana_core::Endpoint {
    let mut e = mk_endpoint(id, address, host, "t", segment);
    e.interface = tap.into();
    e
}

fn mk_link(index: u32, up: bool, addresses: &[&str]) -> TapLink {
    TapLink {
        index,
        up,
        addresses: addresses.iter().map(|a| net(a)).collect(),
    }
}

fn wiring_of(s: &ClusterState) -> TapWiring {
    wiring(s, Some(&layout_of(s)), "h1")
}

#[test]
fn a_local_endpoint_naming_a_tap_wants_its_segment_gateway_there() {
    let mut s = mk_state();
    add_endpoint(&mut s, mk_vm("port-1", "10.0.16.2", "h1", "default", TAP));
    // Not ours: a veth endpoint (the CNI plugin wires it), a VM on another host, and a
    // record naming something that is not a tap.
    add_endpoint(
        &mut s,
        mk_endpoint("pod-1", "10.0.16.3", "h1", "t", "default"),
    );
    add_endpoint(
        &mut s,
        mk_vm("port-2", "10.1.16.2", "h2", "default", "tap2"),
    );
    add_endpoint(&mut s, mk_vm("hand", "10.0.16.4", "h1", "default", "eth0"));
    let w = wiring_of(&s);
    assert_eq!(
        w.wanted,
        [(TAP.to_string(), [ip("10.0.16.1")].into())].into()
    );
}

#[test]
fn a_port_with_addresses_in_two_segments_wants_both_gateways_on_its_one_tap() {
    let mut s = mk_state();
    add_endpoint(&mut s, mk_vm("port-1:a", "10.0.16.2", "h1", "default", TAP));
    add_endpoint(&mut s, mk_vm("port-1:b", "10.0.17.2", "h1", "web", TAP));
    add_endpoint(
        &mut s,
        mk_vm("port-3", "10.0.16.3", "h1", "default", "tap3"),
    );
    let w = wiring_of(&s);
    assert_eq!(w.wanted[TAP], [ip("10.0.16.1"), ip("10.0.17.1")].into());
    assert_eq!(w.wanted["tap3"], [ip("10.0.16.1")].into(), "G on both taps");
}

#[test]
fn ipv6_taps_get_the_ipv6_gateway() {
    let mut s = mk_state();
    s.config = Some(mk_config_v6());
    let l = layout_of(&s);
    let a = l.endpoint_address(0, 1, 0, 2).unwrap();
    add_endpoint(
        &mut s,
        mk_vm("port-1", &a.to_string(), "h1", "default", TAP),
    );
    let w = wiring(&s, Some(&l), "h1");
    assert_eq!(w.wanted[TAP], [l.gateway(0, 1, 0).unwrap()].into());
}

#[test]
fn an_absent_tap_gets_nothing_a_new_one_gets_its_gateway_then_up() {
    let mut s = mk_state();
    add_endpoint(&mut s, mk_vm("port-1", "10.0.16.2", "h1", "default", TAP));
    let w = wiring_of(&s);
    assert!(
        plan(&w, &BTreeMap::new()).is_empty(),
        "the VM is not running"
    );
    let taps = [(TAP.to_string(), mk_link(9, false, &["fe80::1/64"]))].into();
    assert_eq!(
        plan(&w, &taps),
        [
            TapOp::AddGateway {
                ifname: TAP.into(),
                index: 9,
                gateway: ip("10.0.16.1")
            },
            TapOp::SetUp {
                ifname: TAP.into(),
                index: 9
            }
        ]
    );
    let wired = [(TAP.to_string(), mk_link(9, true, &["10.0.16.1/32"]))].into();
    assert!(plan(&w, &wired).is_empty());
}

#[test]
fn a_gateway_nobody_wants_is_removed_and_nothing_else_on_a_tap_is_touched() {
    let s = mk_state();
    let w = wiring_of(&s);
    let taps = [(
        TAP.to_string(),
        mk_link(
            9,
            true,
            &[
                "10.0.16.1/32",    // a gateway: the endpoint was released or moved
                "10.0.16.5/32",    // an endpoint's address, not a gateway
                "10.0.17.1/24",    // a gateway-shaped address with a prefix: not ours
                "192.168.77.1/32", // outside the address space
                "fe80::1/64",
            ],
        ),
    )]
    .into();
    assert_eq!(
        plan(&w, &taps),
        [TapOp::DeleteGateway {
            ifname: TAP.into(),
            index: 9,
            address: net("10.0.16.1/32")
        }]
    );
    let w = TapWiring { layout: None, ..w };
    assert!(plan(&w, &taps).is_empty(), "without a layout, nothing goes");
}

#[test]
fn the_route_to_a_tap_waits_for_it_and_goes_with_its_wiring() {
    let mut s = mk_state();
    add_endpoint(&mut s, mk_vm("port-1", "10.0.16.2", "h1", "default", TAP));
    let d = desired(&s, &mk_view());
    assert_eq!(
        d.routes.get(&net("10.0.16.2/32")),
        Some(&RouteTarget::Link(TAP.into()))
    );
    let mut o = Observed {
        routes: Vec::new(),
        links: [("eth0".to_string(), 2)].into(),
        taps: BTreeMap::new(),
        connected: vec![net("192.168.0.0/24")],
        nft: crate::plan::NftObserved::Absent,
        sysctls: Default::default(),
    };
    let p = plan_all(&d, &o);
    assert_eq!(p.blocked, [format!("10.0.16.2/32 dev {TAP} scope link")]);
    assert!(p.taps.is_empty());
    o.links.insert(TAP.into(), 9);
    o.taps.insert(TAP.into(), mk_link(9, false, &[]));
    let p = plan_all(&d, &o);
    assert!(p.blocked.is_empty());
    assert_eq!(p.taps.len(), 2, "{:?}", p.taps);
    assert!(p.routes.iter().any(|r| matches!(
        r,
        crate::plan::RouteOp::Replace { dst, oif: Some(9), .. } if *dst == net("10.0.16.2/32")
    )));
}

// --- the datapath of a VM on its tap, through the test interpreter ---

fn mk_vm_state() -> ClusterState {
    let mut s = mk_state();
    s.tenants.insert(
        "o".into(),
        mk_tenant("o", 2, romana_core::Isolation::Segment),
    );
    s.segments.insert(
        ("o".into(), "default".into()),
        mk_segment("o", "default", 0),
    );
    add_endpoint(&mut s, mk_vm("port-1", "10.0.16.2", "h1", "default", TAP));
    add_endpoint(
        &mut s,
        mk_endpoint("pod-r", "10.1.16.2", "h2", "t", "default"),
    );
    add_endpoint(
        &mut s,
        mk_endpoint("pod-o", "10.1.32.2", "h2", "o", "default"),
    );
    s
}

/// Whether h1 forwards a packet from `iif` with source `src` to `dst` out of the uplink.
fn h1_forwards(s: &ClusterState, iif: &str, src: &str, dst: &str) -> bool {
    let program = crate::compile::compile(s, Some(&layout_of(s)), "h1");
    let packet = Packet {
        from: ip(src),
        to: ip(dst),
        protocol: romana_core::policy::Protocol::Udp,
        port: Some(53),
        icmp_type: None,
        icmp_code: None,
    };
    interpret(
        &program,
        &Probe {
            packet,
            iif: Some(iif.into()),
            oif: None,
        },
    )
}

#[test]
fn a_vm_on_its_tap_is_judged_as_a_container_on_its_veth() {
    let s = mk_vm_state();
    assert!(
        h1_forwards(&s, TAP, "10.0.16.2", "10.1.16.2"),
        "same segment"
    );
    assert!(
        !h1_forwards(&s, TAP, "10.0.16.2", "10.1.32.2"),
        "other tenant"
    );
    assert!(
        !h1_forwards(&s, TAP, "10.0.16.9", "10.1.16.2"),
        "spoofed source"
    );
    assert!(
        !h1_forwards(&s, "tap00000000-00", "10.0.16.2", "10.1.16.2"),
        "a tap the agent does not know passes nothing"
    );
    let program = crate::compile::compile(&s, Some(&layout_of(&s)), "h1");
    let mut without = s.clone();
    without.endpoints.remove("port-1");
    let plain = crate::compile::compile(&without, Some(&layout_of(&s)), "h1");
    assert_eq!(
        program.rule_count(),
        plain.rule_count(),
        "a tap endpoint adds elements, never rules"
    );
}

// --- properties ---

/// The kernel as far as taps go: adds and deletes of addresses, up.
fn apply_model(taps: &mut BTreeMap<String, TapLink>, ops: &[TapOp]) {
    for op in ops {
        let link = taps.get_mut(op.ifname()).expect("ops name existing taps");
        match op {
            TapOp::AddGateway { gateway, .. } => {
                link.addresses.insert(IpNet::from(*gateway));
            }
            TapOp::SetUp { .. } => link.up = true,
            TapOp::DeleteGateway { address, .. } => {
                link.addresses.remove(address);
            }
        }
    }
}

fn arb_address() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (16u8..19, 0u8..4).prop_map(|(seg, n)| net(&format!("10.0.{seg}.{n}/32"))),
        (16u8..19).prop_map(|seg| net(&format!("10.0.{seg}.1/24"))),
        Just(net("192.168.5.1/32")),
        Just(net("fe80::1/64")),
    ]
}

proptest! {
    /// Whatever the taps hold and whichever endpoints name them, one plan applied reaches
    /// the wiring: every existing wanted tap is up with exactly its gateways among the
    /// gateway-shaped addresses, everything else on it is as it was, and the next plan is
    /// empty.
    #[test]
    fn one_plan_wires_every_tap_and_touches_nothing_else(
        endpoints in prop::collection::vec((0usize..3, 16u8..19, 2u8..9, any::<bool>()), 0..6),
        present in prop::collection::vec((any::<bool>(), any::<bool>(), prop::collection::btree_set(arb_address(), 0..4)), 3),
    ) {
        let names = ["tap0", "tap1", "tap2"];
        let mut s = mk_state();
        for (i, (tap, seg, n, local)) in endpoints.iter().enumerate() {
            let segment = if *seg == 16 { "default" } else { "web" };
            let host = if *local { "h1" } else { "h2" };
            let index = if *local { 0 } else { 1 };
            let address = format!("10.{index}.{}.{n}", 16 + (*seg - 16).min(1));
            add_endpoint(&mut s, mk_vm(&format!("e{i}"), &address, host, segment, names[*tap]));
        }
        let mut taps: BTreeMap<String, TapLink> = BTreeMap::new();
        for (i, (exists, up, addresses)) in present.iter().enumerate() {
            if *exists {
                taps.insert(names[i].into(), TapLink { index: 10 + i as u32, up: *up, addresses: addresses.clone() });
            }
        }
        let before = taps.clone();
        let w = wiring_of(&s);
        let ops = plan(&w, &taps);
        apply_model(&mut taps, &ops);
        prop_assert!(plan(&w, &taps).is_empty(), "{:?}", plan(&w, &taps));
        let l = layout_of(&s);
        let ours = |a: &IpNet| a.prefix_len() == a.max_prefix_len() && l.is_gateway(a.addr());
        for (name, link) in &taps {
            let others = |t: &TapLink| t.addresses.iter().filter(|a| !ours(a)).cloned().collect::<BTreeSet<_>>();
            prop_assert_eq!(others(link), others(&before[name]), "foreign addresses stay");
            let gateways: BTreeSet<IpAddr> = link.addresses.iter().filter(|a| ours(a)).map(|a| a.addr()).collect();
            match w.wanted.get(name) {
                Some(want) => {
                    prop_assert_eq!(&gateways, want);
                    prop_assert!(link.up);
                }
                None => {
                    prop_assert!(gateways.is_empty());
                    prop_assert_eq!(link.up, before[name].up, "a tap nobody names is not brought up");
                }
            }
        }
    }
}
