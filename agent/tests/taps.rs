//! Tap wiring against a real kernel, inside network namespaces the tests create: a "host"
//! namespace where the agent's kernel adapters run, and a "VM" namespace holding the
//! other end of the tap (simulated by a veth named as Nova names taps). Needs root, `ip`
//! and `nft`; without them each test prints `SKIPPED ...` and returns, or fails under
//! `CI=true`.

mod common;

const PROTO: &str = "124";
const TAP: &str = "tap3f2a9c1b-7d";

use std::collections::BTreeMap;

use common::Netns;
use romana_agent::kernel::Kernel;
use romana_agent::nft::{Rule, Verdict};
use romana_agent::plan::NftOp;
use romana_agent::{desired, plan, ClusterState, HostView};
use romana_core::{ClusterConfig, Endpoint, Host, Isolation, Segment, Tenant};
use romana_integration::require_netns;

fn sysctls() -> Vec<String> {
    vec![
        "net/ipv4/ip_forward".into(),
        "net/ipv6/conf/all/forwarding".into(),
    ]
}

/// `space` with 8/4/4 bits (IPv4) or 16/8/8 (IPv6); h1 (me, index 0), tenant t (1) with
/// segment default; endpoint vm-1 (address `address`) on h1 naming the tap.
fn mk_state(space: &str, address: &str) -> ClusterState {
    let v6 = space.contains(':');
    let mut s = ClusterState::default();
    s.config = Some(ClusterConfig {
        address_space: space.parse().unwrap(),
        host_bits: if v6 { 16 } else { 8 },
        rack_bits: 0,
        tenant_bits: if v6 { 8 } else { 4 },
        segment_bits: if v6 { 8 } else { 4 },
        single_tenant: false,
        second_address_space: None,
    });
    s.hosts.insert(
        "h1".into(),
        Host {
            name: "h1".into(),
            ip: "192.168.50.1".parse().unwrap(),
            rack: 0,
            index: 0,
            second_ip: None,
        },
    );
    s.tenants.insert(
        "t".into(),
        Tenant {
            name: "t".into(),
            id: 1,
            isolation: Isolation::Segment,
            labels: BTreeMap::new(),
        },
    );
    s.segments.insert(
        ("t".into(), "default".into()),
        Segment {
            tenant: "t".into(),
            name: "default".into(),
            id: 0,
        },
    );
    s.endpoints.insert(
        "vm-1".into(),
        Endpoint {
            id: "vm-1".into(),
            address: address.parse().unwrap(),
            host: "h1".into(),
            tenant: "t".into(),
            segment: "default".into(),
            labels: BTreeMap::new(),
            ports: Vec::new(),
            interface: TAP.into(),
            pod: None,
            second_address: None,
        },
    );
    s
}

/// The host namespace (fabric link up) and the VM namespace.
fn mk_namespaces() -> (Netns, Netns) {
    let host = Netns::create();
    host.veth("fabric0", "fabric1", Some("192.168.50.1/24"));
    (host, Netns::create())
}

/// The tap as libvirt leaves it before the VM runs: created, down, no address.
fn plug_tap(host: &Netns, vm: &Netns) {
    host.ip(&format!(
        "link add {TAP} type veth peer name eth0 netns {}",
        vm.name
    ));
}

async fn reconcile(kernel: &Kernel, state: &ClusterState) -> bool {
    let observed = kernel.observe(sysctls()).await.unwrap();
    let view = HostView {
        name: "h1".into(),
        gateways: vec!["192.168.50.254".parse().unwrap()],
        connected: observed.connected.clone(),
    };
    let d = desired(state, &view);
    let report = kernel.apply(&plan(&d, &observed)).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let after = kernel.observe(sysctls()).await.unwrap();
    plan(&d, &after).is_empty()
}

/// `ip -j addr show dev NAME` as `addr/len` strings, and whether the link is up.
fn tap_state(ns: &Netns) -> (Vec<String>, bool) {
    let json: serde_json::Value =
        serde_json::from_str(&ns.ip(&format!("-j addr show dev {TAP}"))).unwrap();
    let addrs = json[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] != "link")
        .map(|a| {
            let tentative = if a["tentative"] == true {
                " tentative"
            } else {
                ""
            };
            format!(
                "{}/{}{tentative}",
                a["local"].as_str().unwrap(),
                a["prefixlen"]
            )
        })
        .collect();
    let up = json[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP");
    (addrs, up)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tap_gets_its_gateway_is_brought_up_and_routed_and_is_unwired_on_release() {
    require_netns!("nft");
    let (host, vm) = mk_namespaces();
    let kernel = Kernel::connect(Some(host.name.clone())).await.unwrap();
    let mut state = mk_state("10.0.0.0/8", "10.0.16.2");

    // The port is allocated, the VM is not running: its route waits, nothing is wired.
    assert!(reconcile(&kernel, &state).await);
    assert!(host.routes(PROTO).is_empty());
    let observed = kernel.observe(sysctls()).await.unwrap();
    let d = desired(&state, &mk_any_view());
    assert_eq!(
        plan(&d, &observed).blocked,
        [format!("10.0.16.2/32 dev {TAP} scope link")]
    );

    plug_tap(&host, &vm);
    assert!(reconcile(&kernel, &state).await, "read back is clean");
    assert_eq!(tap_state(&host), (vec!["10.0.16.1/32".to_string()], true));
    assert_eq!(host.routes(PROTO), [format!("10.0.16.2 dev {TAP}")]);
    assert!(
        reconcile(&kernel, &state).await,
        "a second round is a no-op"
    );

    // Released while the VM still runs: the route and the gateway go, the tap stays.
    state.endpoints.clear();
    assert!(reconcile(&kernel, &state).await);
    assert!(host.routes(PROTO).is_empty());
    assert_eq!(tap_state(&host), (Vec::new(), true), "the tap is libvirt's");
}

fn mk_any_view() -> HostView {
    HostView {
        name: "h1".into(),
        gateways: vec!["192.168.50.254".parse().unwrap()],
        connected: vec!["192.168.50.0/24".parse().unwrap()],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ipv6_tap_gets_its_gateway_without_duplicate_address_detection() {
    require_netns!("nft");
    let (host, vm) = mk_namespaces();
    plug_tap(&host, &vm);
    let kernel = Kernel::connect(Some(host.name.clone())).await.unwrap();
    // fd00:10::/48, 16/8/8: host 0, tenant 1, segment 0 is fd00:10:0:0:100::/80.
    let state = mk_state("fd00:10::/48", "fd00:10:0:0:100::2");
    assert!(reconcile(&kernel, &state).await);
    assert_eq!(
        tap_state(&host),
        (vec!["fd00:10::100:0:0:1/128".to_string()], true),
        "not tentative"
    );
    // `linkdown`: the VM end has no carrier yet, which the route does not mind.
    let routes = host.ip(&format!("-6 route show proto {PROTO}"));
    assert!(
        routes.starts_with(&format!("fd00:10::100:0:0:2 dev {TAP} metric 1024")),
        "{routes}"
    );
    assert_eq!(routes.lines().count(), 1, "{routes}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_agent_removes_a_stale_gateway_and_leaves_other_addresses() {
    require_netns!("nft");
    let (host, vm) = mk_namespaces();
    plug_tap(&host, &vm);
    // What a previous agent left (its endpoint is gone) and what somebody else put there.
    host.ip(&format!("addr add 10.0.32.1/32 dev {TAP}"));
    host.ip(&format!("addr add 192.168.77.1/24 dev {TAP}"));
    host.ip(&format!("link set {TAP} up"));
    let kernel = Kernel::connect(Some(host.name.clone())).await.unwrap();
    let state = mk_state("10.0.0.0/8", "10.0.16.2");
    assert!(reconcile(&kernel, &state).await);
    let (mut addrs, up) = tap_state(&host);
    addrs.sort();
    assert_eq!(addrs, ["10.0.16.1/32", "192.168.77.1/24"]);
    assert!(up);
}

#[tokio::test(flavor = "multi_thread")]
async fn when_nftables_fails_a_tap_gets_neither_gateway_nor_route() {
    require_netns!("nft");
    let (host, vm) = mk_namespaces();
    plug_tap(&host, &vm);
    let kernel = Kernel::connect(Some(host.name.clone())).await.unwrap();
    let state = mk_state("10.0.0.0/8", "10.0.16.2");
    let observed = kernel.observe(sysctls()).await.unwrap();
    let mut p = plan(&desired(&state, &mk_any_view()), &observed);
    assert!(!p.taps.is_empty());
    let NftOp::Replace(program) = &mut p.nft else {
        panic!("fresh namespace has no table")
    };
    let forward = program.chains.last_mut().unwrap();
    forward
        .rules
        .insert(1, Rule::new(vec![], Verdict::Jump("frobnicate".into())));
    let report = kernel.apply(&p).await;
    assert!(report.failed.iter().any(|f| f.contains("held back")));
    assert_eq!(tap_state(&host), (Vec::new(), false));
    assert!(host.routes(PROTO).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_from_before_taps_is_patched_in_its_base_chains_not_replaced() {
    require_netns!("nft");
    let (host, _vm) = mk_namespaces();
    let kernel = Kernel::connect(Some(host.name.clone())).await.unwrap();
    let state = mk_state("10.0.0.0/8", "10.0.16.2");
    let d = desired(&state, &mk_any_view());
    // The table an agent of the previous release left: the same program with `rmn*`
    // alone where endpoints are matched, the rule comments hashing that text.
    let old = d.nft.clone();
    let mut text = old.render_replace();
    for (new_rule, old_rule) in old.chains.iter().flat_map(|c| &c.rules).map(|r| {
        let new_text = r.text();
        let old_text = new_text.replace(r#"{ "rmn*", "tap*" }"#, r#""rmn*""#);
        (
            format!(
                "{new_text} comment \"{}\"",
                romana_agent::nft::rule_comment(&new_text)
            ),
            format!(
                "{old_text} comment \"{}\"",
                romana_agent::nft::rule_comment(&old_text)
            ),
        )
    }) {
        text = text.replace(&new_rule, &old_rule);
    }
    assert!(!text.contains("tap*"), "{text}");
    kernel.nft().apply(&text).await.unwrap();
    let observed = kernel.observe(sysctls()).await.unwrap();
    let p = plan(&d, &observed);
    let NftOp::Patch { chains, .. } = &p.nft else {
        panic!("expected a patch, got {:?}", p.nft)
    };
    let mut names: Vec<&str> = chains.iter().map(|c| c.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["forward", "prerouting"]);
    assert!(reconcile(&kernel, &state).await);
    assert!(host
        .nft_table()
        .unwrap()
        .contains(r#"iifname { "rmn*", "tap*" } jump from_endpoint"#));
}
