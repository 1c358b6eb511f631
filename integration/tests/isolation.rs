//! Isolation against hostile endpoints, with real packets on the namespaced datacenter:
//! forged source addresses (IPv4 and IPv6), endpoints that come up while their host's agent
//! is down, and stored records this agent cannot read.

use std::net::IpAddr;
use std::time::Duration;

use romana_core::{ClusterConfig, Layout};
use romana_integration::cluster::{binary, default_layout};
use romana_integration::{cluster, eventually, require_netns, Cluster};
use romana_proto::pb;

const CONVERGE: Duration = Duration::from_secs(20);

async fn add_tenants(c: &Cluster, tenants: &[(&str, pb::Isolation)]) -> anyhow::Result<()> {
    let mut t = c.tenants().await?;
    for (name, isolation) in tenants {
        t.add_tenant(pb::AddTenantRequest {
            name: name.to_string(),
            isolation: *isolation as i32,
            ..Default::default()
        })
        .await?;
    }
    Ok(())
}

async fn add_segment(c: &Cluster, tenant: &str, name: &str) -> anyhow::Result<()> {
    c.tenants()
        .await?
        .add_segment(pb::AddSegmentRequest {
            tenant: tenant.into(),
            name: name.into(),
        })
        .await?;
    Ok(())
}

async fn apply(c: &Cluster, doc: &str) -> anyhow::Result<()> {
    c.policies()
        .await?
        .apply_policies(pb::ApplyPoliciesRequest {
            document: doc.into(),
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// The segment gateway of `addr`, by the cluster's layout.
fn gateway_of(config: &pb::ClusterConfig, addr: IpAddr) -> IpAddr {
    let config = ClusterConfig::try_from(config).expect("a valid layout");
    let layout: Layout = config.layout().expect("a valid layout");
    let d = layout.decode(addr).expect("an endpoint address");
    layout.gateway(d.host, d.tenant, d.segment).unwrap()
}

/// Waits until genuine traffic `from` -> `to` is delivered (the agents have converged).
async fn delivered(c: &Cluster, from: &str, to: &str) -> bool {
    let source = c.endpoint(from).address;
    eventually(&format!("{from} -> {to}"), CONVERGE, || async {
        let p = c.udp_probe(from, source, to).ok()?;
        (p.delivered > 0).then_some(())
    })
    .await
    .is_ok()
}

/// Every `(attacker, forged source, victim)` probe is dropped on the attacker's host
/// though its datagrams reached that host.
fn assert_forgeries_dropped(c: &Cluster, cases: &[(&str, IpAddr, &str, &str)]) {
    for (attacker, source, victim, what) in cases {
        let p = c.udp_probe(attacker, *source, victim).unwrap();
        println!("{attacker} as {source} ({what}) -> {victim}: {p:?}");
        assert!(
            p.dropped(),
            "{attacker} forging {source} ({what}) towards {victim}: {p:?}"
        );
    }
}

#[test]
fn forged_sources_are_dropped_on_the_same_host_and_across_hosts_ipv4() {
    require_netns!("nft", "ping", "etcdctl");
    let layout = default_layout();
    cluster()
        .racks(2)
        .hosts(2)
        .layout(layout.clone())
        .run(|mut c| async move {
            add_tenants(
                &c,
                &[
                    ("t1", pb::Isolation::Segment),
                    ("t2", pb::Isolation::Segment),
                    ("topen", pb::Isolation::None),
                    ("tdeny", pb::Isolation::None),
                ],
            )
            .await?;
            add_segment(&c, "t1", "s2").await?;
            apply(
                &c,
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-all, namespace: tdeny}\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]\n",
            )
            .await?;
            c.add_endpoint("v", "r0h0", "t1", "default").await?;
            c.add_endpoint("p", "r0h1", "t1", "default").await?;
            c.add_endpoint("s", "r0h0", "t1", "s2").await?;
            c.add_endpoint("x", "r0h0", "t2", "default").await?;
            c.add_endpoint("y", "r1h0", "t2", "default").await?;
            c.add_endpoint("o", "r1h1", "topen", "default").await?;
            c.add_endpoint("d", "r0h0", "tdeny", "default").await?;

            // Genuine traffic passes: same segment across hosts, both ways.
            assert!(delivered(&c, "p", "v").await, "p -> v (same segment)");
            assert!(delivered(&c, "v", "p").await, "v -> p (same segment)");
            // Own host -> an endpoint under default deny: always allowed.
            let d_addr = c.endpoint("d").address.to_string();
            assert!(c.host("r0h0").ns.exec("ping", &["-c1", "-W2", &d_addr]).is_ok());

            let a = |name: &str| c.endpoint(name).address;
            let host_a = c.host("r0h0").ip;
            let (gw_v, gw_d) = (gateway_of(&layout, a("v")), gateway_of(&layout, a("d")));
            let mut cases = Vec::new();
            for attacker in ["s", "x", "y"] {
                cases.push((attacker, a("p"), "v", "a same-segment endpoint"));
                cases.push((attacker, gw_v, "v", "the victim's segment gateway"));
                cases.push((attacker, host_a, "v", "the victim's host"));
                cases.push((attacker, a("o"), "v", "an open tenant's endpoint"));
            }
            for attacker in ["x", "y"] {
                cases.push((attacker, host_a, "d", "the default-deny victim's host"));
                cases.push((attacker, gw_d, "d", "the default-deny victim's gateway"));
                cases.push((attacker, a("o"), "d", "an open tenant's endpoint"));
            }
            assert_forgeries_dropped(&c, &cases);
            // And genuine traffic still passes afterwards.
            assert!(delivered(&c, "p", "v").await);
            Ok(())
        })
        .unwrap();
}

#[test]
fn forged_sources_are_dropped_ipv6() {
    require_netns!("nft", "ping", "etcdctl");
    // The fabric is IPv4, so IPv6 endpoints talk on their host only: this is where the
    // prerouting check is exercised in IPv6 (the same rule judges traffic to other hosts).
    let layout = pb::ClusterConfig {
        address_space: "fd00:10::/48".into(),
        host_bits: 8,
        rack_bits: 0,
        tenant_bits: 4,
        segment_bits: 4,
        ..Default::default()
    };
    cluster()
        .racks(1)
        .hosts(1)
        .layout(layout.clone())
        .run(|mut c| async move {
            add_tenants(
                &c,
                &[
                    ("t1", pb::Isolation::Segment),
                    ("t2", pb::Isolation::Segment),
                    ("topen", pb::Isolation::None),
                ],
            )
            .await?;
            add_segment(&c, "t1", "s2").await?;
            for (name, tenant, segment) in [
                ("v", "t1", "default"),
                ("p", "t1", "default"),
                ("s", "t1", "s2"),
                ("x", "t2", "default"),
                ("o", "topen", "default"),
            ] {
                c.add_endpoint(name, "r0h0", tenant, segment).await?;
            }
            assert!(c.endpoint("v").address.is_ipv6());
            // Genuine IPv6 traffic passes (neighbour discovery from link-local included).
            assert!(delivered(&c, "p", "v").await, "p -> v over IPv6");
            let a = |name: &str| c.endpoint(name).address;
            let gw_v = gateway_of(&layout, a("v"));
            let mut cases = Vec::new();
            for attacker in ["s", "x"] {
                cases.push((attacker, a("p"), "v", "a same-segment endpoint"));
                cases.push((attacker, gw_v, "v", "the victim's segment gateway"));
                cases.push((attacker, a("o"), "v", "an open tenant's endpoint"));
            }
            assert_forgeries_dropped(&c, &cases);
            assert!(delivered(&c, "p", "v").await);
            Ok(())
        })
        .unwrap();
}

/// Whether one ping is answered, for probes that must stay unanswered for a while.
fn pings(c: &Cluster, from: &str, to: &str) -> bool {
    c.ping(from, c.endpoint(to).address)
}

#[test]
fn an_endpoint_added_while_its_agent_is_down_is_closed_until_the_agent_is_back() {
    require_netns!("nft", "ping", "etcdctl");
    cluster()
        .racks(1)
        .hosts(2)
        .run(|mut c| async move {
            add_tenants(
                &c,
                &[("topen", pb::Isolation::None), ("t1", pb::Isolation::None)],
            )
            .await?;
            // Every t1 pod is selected by a policy that allows all ingress.
            apply(
                &c,
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: allow-all, namespace: t1}\nspec:\n  podSelector: {}\n  ingress: [{}]\n",
            )
            .await?;
            c.add_endpoint("a", "r0h0", "topen", "default").await?;
            c.add_endpoint("q", "r0h1", "topen", "default").await?;
            let a_addr = c.endpoint("a").address;
            eventually("a <-> q", CONVERGE, || async {
                (c.ping("q", a_addr)).then_some(())
            })
            .await?;

            c.kill_agent("r0h0");
            c.add_endpoint("n", "r0h0", "topen", "default").await?;
            c.add_endpoint("n2", "r0h0", "t1", "default").await?;
            let n = c.endpoint("n").address;
            // Nobody routes to the new endpoint yet: the route is the agent's.
            let routes = c.agent_routes("r0h0")?;
            assert!(!routes.iter().any(|r| r.starts_with(&format!("{n} "))), "{routes:?}");
            // Even routed by hand (as the plugin used to), the table drops an interface the
            // agent has not programmed, in both directions.
            for name in ["n", "n2"] {
                let ep = c.endpoint(name);
                let dev = romana_core::datapath::endpoint_ifname(&ep.id);
                c.host("r0h0").ns.ip(&[
                    "route", "replace", &ep.address.to_string(), "dev", &dev, "scope", "link",
                ])?;
            }
            // (One TCP probe per listener: a blocked one leaves its server in accept().)
            assert!(!c.tcp("q", "n")?, "TCP q -> n while the agent is down");
            for _ in 0..3 {
                assert!(!pings(&c, "q", "n"), "q -> n while the agent is down");
                assert!(!pings(&c, "n", "q"), "n -> q while the agent is down");
                assert!(!pings(&c, "q", "n2"), "q -> n2 (policy-selected) while the agent is down");
                assert!(!pings(&c, "n2", "q"), "n2 -> q while the agent is down");
            }
            // The agent is back: the endpoints open as policy says.
            c.start_agent(0)?;
            eventually("q -> n", CONVERGE, || async { pings(&c, "q", "n").then_some(()) }).await?;
            assert!(pings(&c, "n", "q"));
            eventually("q -> n2", CONVERGE, || async { pings(&c, "q", "n2").then_some(()) })
                .await?;
            assert!(c.tcp("q", "n2")?, "TCP q -> n2 once the agent is back");
            // CNI STATUS: ready, from the real agent's heartbeat.
            let config = format!(
                r#"{{"cniVersion":"1.1.0","name":"romana","type":"romana-cni","root":"{}","host":"r0h0"}}"#,
                c.plane.root_url()
            );
            let status = c.cni("r0h0", "STATUS", &c.endpoint("n").ns, &config, "");
            assert!(status.is_ok(), "{status:?}");
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_network_policy_this_agent_cannot_read_closes_its_tenant_and_says_so() {
    require_netns!("nft", "ping", "etcdctl");
    cluster()
        .racks(1)
        .hosts(2)
        .run(|mut c| async move {
            add_tenants(
                &c,
                &[("t1", pb::Isolation::Segment), ("topen", pb::Isolation::None)],
            )
            .await?;
            c.add_endpoint("v", "r0h0", "t1", "default").await?;
            c.add_endpoint("p", "r0h1", "t1", "default").await?;
            c.add_endpoint("o", "r0h0", "topen", "default").await?;
            c.add_endpoint("q", "r0h1", "topen", "default").await?;
            let v = c.endpoint("v").address;
            eventually("p -> v", CONVERGE, || async { c.ping("p", v).then_some(()) }).await?;

            // A policy record as a newer policy-service might write it: a field this agent
            // does not know. It must not be dropped in favour of the (open) baseline.
            let key = format!("{}policies/k8s/t1/future", c.plane.store().keys().prefix());
            let record = r#"{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"future","namespace":"t1"},"spec":{"podSelector":{},"policyTypes":["Ingress"],"ingress":[{}],"fromNewerRelease":{"deny":"everything"}}}"#;
            let etcd = c.plane.etcd_endpoints().join(",");
            c.lab
                .mgmt()
                .exec("etcdctl", &["--endpoints", &etcd, "put", &key, record])?;
            eventually("p -> v closed", CONVERGE, || async {
                (!c.ping("p", v)).then_some(())
            })
            .await?;
            assert!(!c.ping("v", c.endpoint("p").address), "v -> p closed too");
            // Other tenants are untouched.
            assert!(c.ping("q", c.endpoint("o").address), "q -> o (open tenant)");
            // romanactl host status names the record.
            let romanactl = binary("romanactl");
            let out = c.lab.mgmt().exec(
                romanactl.to_str().unwrap(),
                &["--root", &c.plane.root_url(), "host", "status", "r0h0"],
            )?;
            println!("{out}");
            assert!(out.contains(&key) && out.contains("cannot be read"), "{out}");
            assert!(out.contains("tenant t1"), "{out}");

            c.lab.mgmt().exec("etcdctl", &["--endpoints", &etcd, "del", &key])?;
            eventually("p -> v open again", CONVERGE, || async {
                c.ping("p", v).then_some(())
            })
            .await?;
            Ok(())
        })
        .unwrap();
}
