//! The kernel adapters against a real kernel, each test inside a network namespace it
//! creates (and deletes on drop): routes over rtnetlink, the nftables transaction, sysctls.
//! The root namespace's routes and nftables are never touched. Needs root, `ip` and `nft`;
//! without them each test prints `SKIPPED ...` and returns, or fails under `CI=true`.

mod common;

/// `romana_core::datapath::ROUTE_PROTOCOL`, as `ip route show proto` takes it.
const PROTO: &str = "124";

use std::collections::BTreeMap;

use common::Netns;
use romana_agent::kernel::{Kernel, NftRunner};
use romana_agent::nft::{Rule, Verdict};
use romana_agent::plan::{NftObserved, NftOp, RouteOp};
use romana_agent::{desired, endpoint_ifname, plan, ClusterState, HostView};
use romana_core::policy::parse_documents;
use romana_core::{ClusterConfig, Endpoint, Host, Isolation, NamedPort, Segment, Tenant};
use romana_integration::require_netns;

const SYSCTLS: [&str; 2] = ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"];

fn sysctl_paths() -> Vec<String> {
    SYSCTLS.iter().map(|s| s.to_string()).collect()
}

/// 10.0.0.0/8, 8/4/4: h1 (me, index 0) on 192.168.50.1/24 with h2 (1) on-link and h3 (2)
/// behind the gateway 192.168.50.254; tenant t (id 1) with segment default; endpoint
/// pod-a on h1.
fn mk_state() -> ClusterState {
    let mut s = ClusterState::default();
    s.config = Some(ClusterConfig {
        address_space: "10.0.0.0/8".parse().unwrap(),
        host_bits: 8,
        rack_bits: 0,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        second_address_space: None,
    });
    for (name, ip, index) in [
        ("h1", "192.168.50.1", 0),
        ("h2", "192.168.50.2", 1),
        ("h3", "192.168.51.3", 2),
    ] {
        s.hosts.insert(
            name.into(),
            Host {
                name: name.into(),
                ip: ip.parse().unwrap(),
                rack: 0,
                index,
                second_ip: None,
            },
        );
    }
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
        "pod-a".into(),
        Endpoint {
            interface: String::new(),
            pod: None,
            second_address: None,
            id: "pod-a".into(),
            address: "10.0.16.2".parse().unwrap(),
            host: "h1".into(),
            tenant: "t".into(),
            segment: "default".into(),
            labels: BTreeMap::new(),
            ports: Vec::new(),
        },
    );
    s
}

fn mk_view(connected: Vec<ipnet::IpNet>) -> HostView {
    HostView {
        name: "h1".into(),
        gateways: vec!["192.168.50.254".parse().unwrap()],
        connected,
    }
}

/// A namespace with the fabric link (192.168.50.1/24) and pod-a's interface.
fn mk_host_netns() -> Netns {
    let ns = Netns::create();
    // New namespaces may inherit the root's setting (net.core.devconf_inherit_init_net);
    // start from "off" so the tests see the agent switch it on.
    ns.exec(&["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
    ns.veth("fabric0", "fabric1", Some("192.168.50.1/24"));
    ns.veth(&endpoint_ifname("pod-a"), "pod-a-peer", None);
    ns
}

/// One reconcile as the agent does it; returns whether the read back was clean.
async fn reconcile(kernel: &Kernel, state: &ClusterState) -> bool {
    let observed = kernel.observe(sysctl_paths()).await.unwrap();
    let d = desired(state, &mk_view(observed.connected.clone()));
    let p = plan(&d, &observed);
    let report = kernel.apply(&p).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let after = kernel.observe(sysctl_paths()).await.unwrap();
    plan(&d, &after).is_empty()
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_of_ours_are_added_replaced_idempotently_and_swept_leaving_foreign_ones() {
    require_netns!("nft");
    let ns = mk_host_netns();
    ns.ip("route add 10.8.0.0/16 via 192.168.50.9 proto static");
    ns.ip("route add 10.6.0.0/16 via 192.168.50.9 proto 124 table 100");
    ns.ip("route add 10.9.0.0/16 via 192.168.50.99 proto 124");
    let kernel = Kernel::connect(Some(ns.name.clone())).await.unwrap();

    let state = mk_state();
    assert!(
        reconcile(&kernel, &state).await,
        "read back after apply is clean"
    );
    let pod = endpoint_ifname("pod-a");
    assert_eq!(
        ns.routes(PROTO),
        [
            format!("10.0.16.2 dev {pod}"),
            "10.1.0.0/16 via 192.168.50.2".to_string(),
            "10.2.0.0/16 via 192.168.50.254".to_string(),
        ],
        "h2 on-link via its address, h3 via the gateway, pod-a on its link; stale 10.9/16 gone"
    );
    assert_eq!(ns.routes("static"), ["10.8.0.0/16 via 192.168.50.9"]);
    assert_eq!(
        ns.routes_in(PROTO, "100"),
        ["10.6.0.0/16 via 192.168.50.9"],
        "our protocol in another table is not ours"
    );

    // Replace is idempotent: the same route again, by hand and by a second agent round.
    kernel
        .netlink()
        .replace(
            "10.1.0.0/16".parse().unwrap(),
            Some("192.168.50.2".parse().unwrap()),
            None,
        )
        .await
        .unwrap();
    assert!(reconcile(&kernel, &state).await);
    assert_eq!(ns.routes(PROTO).len(), 3, "no duplicates");

    // A host goes away: its route is swept; a host moves next hop: replaced in place.
    let mut state = state;
    state.hosts.remove("h3");
    state.hosts.get_mut("h2").unwrap().ip = "192.168.50.22".parse().unwrap();
    assert!(reconcile(&kernel, &state).await);
    assert_eq!(
        ns.routes(PROTO),
        [
            format!("10.0.16.2 dev {pod}"),
            "10.1.0.0/16 via 192.168.50.22".to_string()
        ]
    );
    assert_eq!(ns.routes("static"), ["10.8.0.0/16 via 192.168.50.9"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_agent_adopts_existing_routes_without_duplicates() {
    require_netns!("nft");
    let ns = mk_host_netns();
    let state = mk_state();
    let first = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    assert!(reconcile(&first, &state).await);
    let before = ns.routes(PROTO);
    drop(first);
    // A new process: a new socket and no memory.
    let second = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    let observed = second.observe(sysctl_paths()).await.unwrap();
    let d = desired(&state, &mk_view(observed.connected.clone()));
    let p = plan(&d, &observed);
    assert!(p.is_empty(), "nothing to do after a restart: {p:?}");
    assert_eq!(ns.routes(PROTO), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_endpoint_interface_blocks_only_its_route() {
    require_netns!("nft");
    let ns = Netns::create();
    ns.veth("fabric0", "fabric1", Some("192.168.50.1/24"));
    let kernel = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    let observed = kernel.observe(sysctl_paths()).await.unwrap();
    let d = desired(&mk_state(), &mk_view(observed.connected.clone()));
    let p = plan(&d, &observed);
    assert_eq!(p.blocked.len(), 1);
    assert!(kernel.apply(&p).await.failed.is_empty());
    assert_eq!(ns.routes(PROTO).len(), 2);
    // The CNI plugin creates the interface; the next round routes it.
    ns.veth(&endpoint_ifname("pod-a"), "pod-a-peer", None);
    assert!(reconcile(&kernel, &mk_state()).await);
    assert_eq!(ns.routes(PROTO).len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn nft_table_applies_reapplying_is_a_noop_and_membership_changes_are_element_updates() {
    require_netns!("nft");
    let ns = mk_host_netns();
    // A foreign table that must survive everything we do.
    let foreign = ns.exec(&["nft", "add", "table", "ip", "other"]);
    assert!(foreign.status.success());
    let kernel = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    let mut state = mk_state();
    assert!(reconcile(&kernel, &state).await);
    let text = ns.nft_table().expect("table inet romana exists");
    println!("--- nft list table inet romana (as applied by the agent) ---\n{text}");
    assert!(text.contains("10.0.16.0 . 10.0.16.0"), "{text}");
    assert_eq!(text.matches("comment \"romana:").count(), 21);

    // Re-applying: the plan is empty, so nft is not even run.
    let observed = kernel.observe(sysctl_paths()).await.unwrap();
    let d = desired(&state, &mk_view(observed.connected.clone()));
    assert_eq!(plan(&d, &observed).nft, NftOp::Keep);

    // A new tenant and segment: element adds only, no table replace.
    state.tenants.insert(
        "u".into(),
        Tenant {
            name: "u".into(),
            id: 2,
            isolation: Isolation::None,
            labels: BTreeMap::new(),
        },
    );
    state.segments.insert(
        ("t".into(), "web".into()),
        Segment {
            tenant: "t".into(),
            name: "web".into(),
            id: 1,
        },
    );
    let d = desired(&state, &mk_view(observed.connected.clone()));
    let p = plan(&d, &observed);
    assert!(
        matches!(&p.nft, NftOp::Elements { add, delete } if add.len() == 2 && delete.is_empty()),
        "{:?}",
        p.nft
    );
    let handle_before = table_handle(&ns);
    assert!(kernel.apply(&p).await.failed.is_empty());
    assert_eq!(
        table_handle(&ns),
        handle_before,
        "the table was updated, not recreated"
    );
    let after = kernel.observe(sysctl_paths()).await.unwrap();
    assert!(plan(&d, &after).is_empty());

    // Drift: someone flushes our chain. The next round replaces the table.
    assert!(ns
        .exec(&["nft", "flush", "chain", "inet", "romana", "forward"])
        .status
        .success());
    let observed = kernel.observe(sysctl_paths()).await.unwrap();
    assert!(matches!(plan(&d, &observed).nft, NftOp::Replace(_)));
    assert!(reconcile(&kernel, &state).await);

    assert!(ns
        .exec(&["nft", "list", "table", "ip", "other"])
        .status
        .success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_nft_batch_leaves_the_old_ruleset_and_says_why() {
    require_netns!("nft");
    let ns = mk_host_netns();
    let kernel = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    assert!(reconcile(&kernel, &mk_state()).await);
    let before = ns.nft_table().unwrap();

    let runner = NftRunner::new(Some(ns.name.clone()));
    // Valid first statement, invalid second: the batch must not half-apply.
    let err = runner
        .apply(
            "add table inet romana\ndelete table inet romana\n\
             table inet romana { chain forward { oifname \"rmn*\" frobnicate } }\n",
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("frobnicate"),
        "nft's stderr is in the error: {msg}"
    );
    assert_eq!(ns.nft_table().unwrap(), before, "the old ruleset is intact");

    // Deleting an absent element fails the whole batch too.
    let err = runner
        .apply(
            "add element inet romana open_tenant { 10.0.64.0 }\n\
             delete element inet romana same_segment { 10.0.99.0 . 10.0.99.0 }\n",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");
    assert_eq!(ns.nft_table().unwrap(), before);

    // And the adapter reads the table back as ours.
    assert!(matches!(
        runner.observe().await.unwrap(),
        NftObserved::Table(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_nft_transaction_fails_endpoint_routes_and_forwarding_are_held_back() {
    require_netns!("nft");
    let ns = mk_host_netns();
    let kernel = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    let observed = kernel.observe(sysctl_paths()).await.unwrap();
    let d = desired(&mk_state(), &mk_view(observed.connected.clone()));
    let mut p = plan(&d, &observed);
    // Make the nft part fail: a program nft refuses.
    let NftOp::Replace(program) = &mut p.nft else {
        panic!("fresh namespace has no table")
    };
    let forward = program.chains.last_mut().unwrap();
    forward
        .rules
        .insert(1, Rule::new(vec![], Verdict::Jump("frobnicate".into())));
    let report = kernel.apply(&p).await;
    assert!(report.failed.iter().any(|f| f.contains("frobnicate")));
    assert!(report.failed.iter().any(|f| f.contains("held back")));
    let routes = ns.routes(PROTO);
    assert_eq!(routes.len(), 2, "host routes only: {routes:?}");
    assert!(routes.iter().all(|r| r.contains(" via ")));
    assert_eq!(ns.nft_table(), None);
    let forward = ns.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(String::from_utf8_lossy(&forward.stdout).trim(), "0");
    assert!(p
        .routes
        .iter()
        .any(|op| matches!(op, RouteOp::Replace { oif: Some(_), .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_is_switched_on_inside_the_namespace_only() {
    require_netns!("nft");
    let root_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let ns = mk_host_netns();
    let kernel = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    let observed = kernel.observe(sysctl_paths()).await.unwrap();
    assert_eq!(
        observed
            .sysctls
            .get("net/ipv4/ip_forward")
            .map(String::as_str),
        Some("0"),
        "the test namespace starts with forwarding off"
    );
    assert!(reconcile(&kernel, &mk_state()).await);
    let inside = ns.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert_eq!(String::from_utf8_lossy(&inside.stdout).trim(), "1");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        root_before,
        "the root namespace is untouched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_routes_table_and_forwarding_round_trip() {
    require_netns!("nft");
    let ns = Netns::create();
    ns.veth("fabric0", "fabric1", None);
    // nodad: a tentative address would make the first routes race duplicate detection.
    ns.ip("addr add fd00:ff::1/64 dev fabric0 nodad");
    ns.veth(&endpoint_ifname("pod-a"), "pod-a-peer", None);
    ns.exec(&[
        "sh",
        "-c",
        "echo 0 > /proc/sys/net/ipv6/conf/all/forwarding",
    ]);
    let mut state = mk_state();
    state.config = Some(ClusterConfig {
        address_space: "fd00:10::/48".parse().unwrap(),
        host_bits: 16,
        rack_bits: 0,
        tenant_bits: 8,
        segment_bits: 8,
        single_tenant: false,
        second_address_space: None,
    });
    state.hosts.get_mut("h1").unwrap().ip = "fd00:ff::1".parse().unwrap();
    state.hosts.get_mut("h2").unwrap().ip = "fd00:ff::2".parse().unwrap();
    state.hosts.remove("h3");
    state.endpoints.get_mut("pod-a").unwrap().address = "fd00:10::110:0:0:2".parse().unwrap();
    let kernel = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    let observed = kernel.observe(sysctl_paths()).await.unwrap();
    let view = HostView {
        gateways: Vec::new(),
        ..mk_view(observed.connected.clone())
    };
    let d = desired(&state, &view);
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    let report = kernel.apply(&plan(&d, &observed)).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let after = kernel.observe(sysctl_paths()).await.unwrap();
    assert!(
        plan(&d, &after).is_empty(),
        "metric 1024 reads back as ours: {:?}",
        plan(&d, &after)
    );
    let routes = ns.ip("-6 route show proto 124");
    assert!(
        routes.contains("fd00:10:0:1::/64 via fd00:ff::2"),
        "{routes}"
    );
    assert!(
        routes.contains(&format!(
            "fd00:10::110:0:0:2 dev {}",
            endpoint_ifname("pod-a")
        )),
        "{routes}"
    );
    assert!(ns
        .nft_table()
        .unwrap()
        .contains("ip6 daddr & ffff:ffff:ffff:0:ffff::"));
    let forwarding = ns.exec(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]);
    assert_eq!(String::from_utf8_lossy(&forwarding.stdout).trim(), "1");

    // Removing the host removes the v6 route (delete matches metric 1024).
    state.hosts.remove("h2");
    let d = desired(&state, &view);
    let observed = kernel.observe(sysctl_paths()).await.unwrap();
    assert!(kernel.apply(&plan(&d, &observed)).await.failed.is_empty());
    assert!(!ns
        .ip("-6 route show proto 124")
        .contains("fd00:10:0:1::/64"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dual_stack_program_and_routes_apply_in_both_families_and_read_back_clean() {
    require_netns!("nft");
    let ns = mk_host_netns();
    ns.ip("addr add fd00:ff::1/64 dev fabric0 nodad");
    let mut state = mk_state();
    state.config = Some(ClusterConfig {
        second_address_space: Some("fd00:10::/48".parse().unwrap()),
        ..state.config.clone().unwrap()
    });
    state.hosts.get_mut("h1").unwrap().second_ip = Some("fd00:ff::1".parse().unwrap());
    state.hosts.get_mut("h2").unwrap().second_ip = Some("fd00:ff::2".parse().unwrap());
    let pod = state.endpoints.get_mut("pod-a").unwrap();
    pod.second_address = Some("fd00:10:0:10::2".parse().unwrap());
    for p in parse_documents(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: t}\n\
         spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 'fd00:99::/32'}}, {podSelector: {}}], ports: [{port: 80}]}]}\n",
    )
    .unwrap()
    {
        state.policies.insert(p.id(), p);
    }
    let kernel = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    assert!(reconcile(&kernel, &state).await, "reads back clean");
    let routes = ns.ip("-6 route show proto 124");
    assert!(
        routes.contains("fd00:10:0:100::/56 via fd00:ff::2"),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("fd00:10:0:10::2 dev {}", endpoint_ifname("pod-a"))),
        "{routes}"
    );
    let v4 = ns.ip("route show proto 124");
    assert!(v4.contains("10.1.0.0/16 via 192.168.50.2"), "{v4}");
    let table = ns.nft_table().unwrap();
    for wanted in [
        "meta nfproto ipv6 jump egress_v6",
        "meta nfproto ipv4 jump ingress",
        "ip6 saddr fd00:99::/32",
        "set endpoints_v6",
    ] {
        assert!(table.contains(wanted), "{wanted} in {table}");
    }
    // An IPv6 element change is an element update like an IPv4 one.
    state
        .endpoints
        .get_mut("pod-a")
        .unwrap()
        .labels
        .insert("app".into(), "x".into());
    assert!(reconcile(&kernel, &state).await);
}

/// pod-a's neighbours for the policy test: `name` on `host` in t/default with `app`.
fn mk_endpoint(name: &str, address: &str, host: &str, app: &str) -> Endpoint {
    Endpoint {
        interface: String::new(),
        pod: None,
        second_address: None,
        id: name.into(),
        address: address.parse().unwrap(),
        host: host.into(),
        tenant: "t".into(),
        segment: "default".into(),
        labels: [("app".to_string(), app.to_string())].into(),
        ports: vec![NamedPort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 8080,
        }],
    }
}

const POLICIES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-in, namespace: t}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {app: lb}}}, {ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8, 192.168.0.0/16]}}]
    ports: [{port: http}, {port: 9000, endPort: 9100}, {protocol: UDP, port: 53}]
  egress:
  - to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: t}}, podSelector: {matchLabels: {app: db}}}]
    ports: [{port: 5432}]
  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-in, namespace: t}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {}}], ports: [{port: 5432}, {protocol: SCTP}]}]
---
name: monitoring
direction: ingress
applied_to: [{tenant: t}, {endpoint: pod-a}]
peers: [{cidr: 192.168.50.0/24}, {tenant: t, segment: default}, {peer: host}]
rules: [{protocol: tcp, ports: [9100], port_ranges: [[9200, 9300]]}, {protocol: icmp, icmp_type: 8, icmp_code: 0}, {protocol: udp}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_program_applies_reapplies_as_a_noop_and_endpoint_churn_is_element_updates() {
    require_netns!("nft");
    let ns = mk_host_netns();
    let kernel = Kernel::connect(Some(ns.name.clone())).await.unwrap();
    let mut state = mk_state();
    state.endpoints.get_mut("pod-a").unwrap().labels =
        [("app".to_string(), "web".to_string())].into();
    for e in [
        mk_endpoint("lb-1", "10.1.16.2", "h2", "lb"),
        mk_endpoint("db-1", "10.0.16.3", "h1", "db"),
        mk_endpoint("db-2", "10.2.16.2", "h3", "db"),
    ] {
        state.endpoints.insert(e.id.clone(), e);
    }
    ns.veth(&endpoint_ifname("db-1"), "db-1-peer", None);
    for p in parse_documents(POLICIES).unwrap() {
        state.policies.insert(p.id(), p);
    }
    assert!(
        reconcile(&kernel, &state).await,
        "read back after apply is clean"
    );
    let text = ns.nft_table().expect("table inet romana exists");
    println!("--- nft list table inet romana (policy program) ---\n{text}");
    assert!(text.contains("goto np_in_"), "{text}");
    assert!(text.contains("10.0.16.3 . tcp . 8080"), "{text}");

    // Re-applying: nothing to do.
    let observed = kernel.observe(sysctl_paths()).await.unwrap();
    let d = desired(&state, &mk_view(observed.connected.clone()));
    assert_eq!(plan(&d, &observed).nft, NftOp::Keep);
    let rules = d.nft.rule_count();

    // Churn: a new lb peer elsewhere, a new local web endpoint (joins pod-a's group), and
    // db-1 relabelled web (moves from the db group to the web group): elements only.
    state
        .endpoints
        .insert("lb-2".into(), mk_endpoint("lb-2", "10.2.16.3", "h3", "lb"));
    state.endpoints.insert(
        "web-2".into(),
        mk_endpoint("web-2", "10.0.16.4", "h1", "web"),
    );
    ns.veth(&endpoint_ifname("web-2"), "web-2-peer", None);
    state
        .endpoints
        .get_mut("db-1")
        .unwrap()
        .labels
        .insert("app".into(), "web".into());
    // db-2 keeps the db group alive on no host but h3; the db group chain on h1 goes with
    // db-1, so bring a db endpoint to h1 to keep the structure.
    state
        .endpoints
        .insert("db-3".into(), mk_endpoint("db-3", "10.0.16.5", "h1", "db"));
    ns.veth(&endpoint_ifname("db-3"), "db-3-peer", None);
    let d = desired(&state, &mk_view(observed.connected.clone()));
    assert_eq!(d.nft.rule_count(), rules);
    let p = plan(&d, &observed);
    let NftOp::Elements { add, delete } = &p.nft else {
        panic!("expected element updates, got {:?}", p.nft)
    };
    assert!(
        delete.iter().any(|(set, _)| set == "ingress_np"),
        "db-1 changed group: {delete:?}"
    );
    println!("--- element script ---\n{}", p.nft.script().unwrap());
    let handle_before = table_handle(&ns);
    let report = kernel.apply(&p).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(table_handle(&ns), handle_before, "updated, not recreated");
    let after = kernel.observe(sysctl_paths()).await.unwrap();
    assert!(
        plan(&d, &after).nft == NftOp::Keep,
        "{:?}",
        plan(&d, &after).nft
    );
    assert!(!add.is_empty());
}

fn table_handle(ns: &Netns) -> u64 {
    let out = ns.exec(&["nft", "-j", "list", "table", "inet", "romana"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|i| i["table"]["handle"].as_u64())
        .unwrap()
}
