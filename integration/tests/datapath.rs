//! The datapath on a routed-access datacenter in network namespaces: real agents, real CNI
//! plugin, real kernel routes and nftables, real etcd and services.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use romana_integration::capture::{check_routed_icmp, ICMP_OR_TUNNELS};
use romana_integration::{cluster, eventually, require_netns, Capture, Cluster, Netns};
use romana_proto::pb;

const CONVERGE: Duration = Duration::from_secs(20);

async fn mk_tenants(c: &Cluster) -> anyhow::Result<()> {
    c.add_tenants(&["t1", "t2"]).await?;
    let mut t = c.tenants().await?;
    t.add_segment(pb::AddSegmentRequest {
        tenant: "t1".into(),
        name: "s2".into(),
    })
    .await?;
    Ok(())
}

async fn reachable(c: &Cluster, from: &str, to: &str) -> bool {
    let address = c.endpoint(to).address;
    eventually(&format!("{from} -> {to}"), CONVERGE, || async {
        c.ping(from, address).then_some(())
    })
    .await
    .is_ok()
}

#[test]
fn same_tenant_and_segment_talk_across_hosts_and_racks_others_are_dropped() {
    require_netns!("nft", "ping");
    cluster()
        .racks(2)
        .hosts(2)
        .run(|mut c| async move {
            mk_tenants(&c).await?;
            c.add_endpoint("a", "r0h0", "t1", "default").await?;
            c.add_endpoint("b", "r0h1", "t1", "default").await?;
            c.add_endpoint("c", "r1h0", "t1", "default").await?;
            c.add_endpoint("d", "r1h1", "t1", "s2").await?;
            c.add_endpoint("e", "r1h1", "t2", "default").await?;

            assert!(
                reachable(&c, "a", "b").await,
                "same segment, same rack, other host"
            );
            assert!(reachable(&c, "a", "c").await, "same segment, other rack");
            assert!(c.tcp("c", "a")?, "TCP across racks");
            assert!(
                !c.ping("a", c.endpoint("d").address),
                "other segment of the same tenant"
            );
            assert!(!c.ping("a", c.endpoint("e").address), "other tenant");
            assert!(!c.tcp("e", "c")?, "TCP from another tenant");
            assert!(
                !c.ping("d", c.endpoint("c").address),
                "other segment, reverse direction"
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn packets_cross_the_fabric_with_the_endpoints_own_addresses() {
    require_netns!("nft", "ping", "tcpdump");
    cluster()
        .racks(2)
        .hosts(1)
        .run(|mut c| async move {
            mk_tenants(&c).await?;
            let a = c.add_endpoint("a", "r0h0", "t1", "default").await?;
            let b = c.add_endpoint("b", "r1h0", "t1", "default").await?;
            assert!(reachable(&c, "a", "b").await);
            // Capture on leaf 0's uplink to the spine while a pings b: 3 requests out and 3
            // replies in. The filter also admits every tunnel, so an encapsulated ping
            // would be captured, and fail the check, instead of being filtered out.
            // Blocking (tcpdump, ping): off the runtime's worker, which serves the services.
            let captured = tokio::task::block_in_place(|| {
                let capture = Capture::start(&c.leaves[0], "up0", 6, ICMP_OR_TUNNELS)?;
                for _ in 0..3 {
                    c.ping("a", b);
                }
                capture.finish(Duration::from_secs(10))
            })?;
            let checked = check_routed_icmp(&captured.stdout, a, b).map_err(|e| {
                anyhow::anyhow!(
                    "{e}\ntcpdump (timed out: {}): {}",
                    captured.timed_out,
                    captured.stderr
                )
            })?;
            println!("{checked} packets on the leaf uplink, none encapsulated");
            Ok(())
        })
        .unwrap();
}

/// The capture check of the test above, on a real kernel without a cluster: a ping routed
/// over a veth passes, the same kind of ping through a VXLAN tunnel over that veth fails.
#[test]
fn the_capture_check_passes_a_routed_ping_and_fails_a_vxlan_tunnelled_one() {
    require_netns!("ping", "tcpdump");
    let x = Netns::create("capx").unwrap();
    let y = Netns::create("capy").unwrap();
    // `ip -n NS` with a command line split at spaces.
    let ip_n = |ns: &Netns, args: String| {
        let args: Vec<&str> = args.split_whitespace().collect();
        ns.ip(&args).unwrap();
    };
    ip_n(
        &x,
        format!("link add u0 type veth peer name u0 netns {}", y.name()),
    );
    let ends = [
        (&x, "192.168.77.1", "192.168.77.2", "10.77.0.1/24"),
        (&y, "192.168.77.2", "192.168.77.1", "10.77.0.2/24"),
    ];
    for (ns, me, _, _) in ends {
        ip_n(ns, format!("addr add {me}/24 dev u0"));
        ip_n(ns, "link set u0 up".into());
    }
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let capture_pings = |to: &str| {
        let capture = Capture::start(&x, "u0", 4, ICMP_OR_TUNNELS).unwrap();
        for _ in 0..2 {
            let _ = x.exec("ping", &["-c1", "-W1", to]);
        }
        capture.finish(Duration::from_secs(5)).unwrap().stdout
    };

    // Bounded in time, and killed and reaped when dropped: nothing is left in the namespace.
    let idle = Capture::start(&x, "u0", 1000, ICMP_OR_TUNNELS).unwrap();
    let idle = idle.finish(Duration::from_millis(300)).unwrap();
    assert!(idle.timed_out, "{idle:?}");
    drop(Capture::start(&x, "u0", 1000, ICMP_OR_TUNNELS).unwrap());
    let pids = std::process::Command::new("ip")
        .args(["netns", "pids", x.name()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&pids.stdout).trim(),
        "",
        "left running"
    );

    let routed = capture_pings("192.168.77.2");
    check_routed_icmp(&routed, ip("192.168.77.1"), ip("192.168.77.2"))
        .unwrap_or_else(|e| panic!("a routed ping must pass: {e}"));

    // Only now the tunnel: once up, it carries IPv6 chatter, which the check rightly flags.
    for (ns, me, peer, inner) in ends {
        ip_n(
            ns,
            format!("link add vx0 type vxlan id 42 local {me} remote {peer} dstport 4789"),
        );
        ip_n(ns, format!("addr add {inner} dev vx0"));
        ip_n(ns, "link set vx0 up".into());
    }
    let tunnelled = capture_pings("10.77.0.2");
    let err = check_routed_icmp(&tunnelled, ip("10.77.0.1"), ip("10.77.0.2"))
        .expect_err("a VXLAN-tunnelled ping must fail the check");
    assert!(err.contains("encapsulated in VXLAN (udp 4789)"), "{err}");
    assert!(
        err.contains("no `IP 10.77.0.1 > 10.77.0.2: ICMP echo request`"),
        "{err}"
    );
}

#[test]
fn route_count_grows_with_hosts_and_racks_and_rule_count_not_with_endpoints() {
    require_netns!("nft", "ping");
    cluster()
        .racks(2)
        .hosts(3)
        .run(|mut c| async move {
            mk_tenants(&c).await?;
            c.add_endpoint("a", "r0h0", "t1", "default").await?;
            c.add_endpoint("b", "r0h0", "t1", "s2").await?;
            // Other hosts in the rack (2) + other racks (1) + local endpoints.
            for (host, local) in [("r0h0", 2), ("r0h1", 0), ("r1h2", 0)] {
                let want = 2 + 1 + local;
                let routes = eventually(&format!("{want} routes on {host}"), CONVERGE, || async {
                    let r = c.agent_routes(host).ok()?;
                    (r.len() == want).then_some(r)
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}: {:?}", c.agent_routes(host)))?;
                println!("{host}: {} routes: {routes:?}", routes.len());
            }
            let rules_with_2 = c.nft_rule_count("r0h0")?;
            for i in 0..38 {
                c.add_endpoint(&format!("x{i}"), "r0h0", "t1", "default")
                    .await?;
            }
            eventually("40 endpoint routes on r0h0", CONVERGE, || async {
                (c.agent_routes("r0h0").ok()?.len() == 3 + 40).then_some(())
            })
            .await?;
            let rules_with_40 = c.nft_rule_count("r0h0")?;
            println!("nft rules on r0h0: {rules_with_2} with 2 endpoints, {rules_with_40} with 40");
            assert_eq!(rules_with_2, rules_with_40);
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_restarted_agent_converges_without_duplicates_and_removed_hosts_vanish_everywhere() {
    require_netns!("nft", "ping");
    cluster()
        .racks(1)
        .hosts(3)
        .run(|mut c| async move {
            mk_tenants(&c).await?;
            c.add_endpoint("a", "r0h0", "t1", "default").await?;
            c.add_endpoint("b", "r0h1", "t1", "default").await?;
            assert!(reachable(&c, "a", "b").await);
            let before: BTreeSet<String> = c.agent_routes("r0h0")?.into_iter().collect();
            let rules_before = c.nft_rule_count("r0h0")?;

            // What the agent reports through topology-service is what the kernel has.
            let mut topology = c.topology().await?;
            let status = eventually("r0h0 reports its routes", CONVERGE, || {
                let mut topology = topology.clone();
                let want = before.len();
                async move {
                    let s = topology
                        .get_host_status(pb::GetHostStatusRequest {
                            host: "r0h0".into(),
                        })
                        .await
                        .ok()?
                        .into_inner();
                    (s.reported && s.converged && s.routes.len() == want).then_some(s)
                }
            })
            .await?;
            assert!(status.revision > 0 && status.nft_rules > 0, "{status:?}");

            c.kill_agent("r0h0");
            c.add_endpoint("late", "r0h0", "t1", "default").await?;
            c.restart_agent("r0h0")?;
            assert!(
                reachable(&c, "late", "b").await,
                "endpoint added while the agent was down"
            );
            let after = eventually("r0h0 converged", CONVERGE, || async {
                let r = c.agent_routes("r0h0").ok()?;
                (r.len() == before.len() + 1).then_some(r)
            })
            .await?;
            let unique: BTreeSet<_> = after.iter().cloned().collect();
            assert_eq!(unique.len(), after.len(), "duplicate routes: {after:?}");
            assert!(before.is_subset(&unique));
            assert_eq!(
                c.nft_rule_count("r0h0")?,
                rules_before,
                "no duplicate rules after restart"
            );
            let _ = topology
                .list_host_status(pb::ListHostStatusRequest {})
                .await?;

            let gone = c.host("r0h2").ip.to_string();
            c.topology()
                .await?
                .remove_host(pb::RemoveHostRequest {
                    name: "r0h2".into(),
                    force: true,
                })
                .await?;
            for host in ["r0h0", "r0h1"] {
                eventually(
                    &format!("route via {gone} gone on {host}"),
                    CONVERGE,
                    || async {
                        let r = c.agent_routes(host).ok()?;
                        (!r.iter().any(|l| l.contains(&gone))).then_some(())
                    },
                )
                .await?;
            }
            Ok(())
        })
        .unwrap();
}

/// After `apply` returns, every agent enforces the policy within a bound; the test reports
/// the measured maximum over several applies.
#[test]
fn policy_changes_reach_every_agent_within_the_bound() {
    require_netns!("nft", "ping");
    const BOUND: Duration = Duration::from_secs(10);
    cluster()
        .racks(2)
        .hosts(2)
        .run(|mut c| async move {
            mk_tenants(&c).await?;
            c.add_endpoint("a", "r0h0", "t1", "default").await?;
            c.add_endpoint("b", "r1h1", "t1", "default").await?;
            assert!(reachable(&c, "a", "b").await);
            let mut policies = c.policies().await?;
            let mut topology = c.topology().await?;
            let mut worst = Duration::ZERO;
            for round in 0..5 {
                // Alternate between denying and allowing all ingress in t1.
                let ingress = if round % 2 == 0 { "[]" } else { "[{}]" };
                let doc = format!(
                    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: gate, namespace: t1}}\nspec:\n  podSelector: {{}}\n  ingress: {ingress}\n"
                );
                let applied = policies
                    .apply_policies(pb::ApplyPoliciesRequest {
                        document: doc,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                let started = std::time::Instant::now();
                let revision = applied.revision;
                assert!(revision > 0, "the apply changed something: {applied:?}");
                let hosts: Vec<String> = c.hosts.iter().map(|h| h.name.clone()).collect();
                for host in &hosts {
                    eventually(&format!("{host} applies revision {revision}"), BOUND, || {
                        let mut topology = topology.clone();
                        let host = host.clone();
                        async move {
                            let s = topology
                                .get_host_status(pb::GetHostStatusRequest { host })
                                .await
                                .ok()?
                                .into_inner();
                            (s.converged && s.policy_revision >= revision).then_some(())
                        }
                    })
                    .await?;
                }
                let took = started.elapsed();
                worst = worst.max(took);
                let blocked = round % 2 == 0;
                assert_eq!(
                    !c.ping("a", c.endpoint("b").address),
                    blocked,
                    "round {round}: ingress {ingress} must be enforced once reported"
                );
            }
            let _ = topology.list_host_status(pb::ListHostStatusRequest {}).await?;
            println!("policy propagation to 4 agents: max {worst:?} over 5 applies (bound {BOUND:?})");
            assert!(worst < BOUND);
            Ok(())
        })
        .unwrap();
}

/// Pod labels change in place (ipam UpdateEndpoint) and agents re-evaluate NetworkPolicy
/// selection without the endpoint being recreated.
#[test]
fn relabelling_an_endpoint_changes_what_policy_allows_without_recreating_it() {
    require_netns!("nft", "ping");
    cluster()
        .racks(1)
        .hosts(2)
        .run(|mut c| async move {
            mk_tenants(&c).await?;
            c.add_endpoint("a", "r0h0", "t1", "default").await?;
            c.add_endpoint("b", "r0h1", "t1", "default").await?;
            let mut ipam = c.ipam().await?;
            let label = |id: String, k: &str, v: &str| pb::UpdateEndpointRequest {
                endpoint: id,
                set_labels: [(k.to_string(), v.to_string())].into(),
                remove_labels: vec![],
            };
            ipam.update_endpoint(label(c.endpoint("b").id.clone(), "role", "db")).await?;
            let doc = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: db, namespace: t1}\nspec:\n  podSelector: {matchLabels: {role: db}}\n  ingress:\n  - from: [{podSelector: {matchLabels: {role: web}}}]\n";
            c.policies()
                .await?
                .apply_policies(pb::ApplyPoliciesRequest { document: doc.into(), ..Default::default() })
                .await?;
            let b = c.endpoint("b").address;
            eventually("a blocked from the db pod", CONVERGE, || async { (!c.ping("a", b)).then_some(()) }).await?;
            ipam.update_endpoint(label(c.endpoint("a").id.clone(), "role", "web")).await?;
            assert!(reachable(&c, "a", "b").await, "a relabelled role=web reaches the db pod");
            Ok(())
        })
        .unwrap();
}
