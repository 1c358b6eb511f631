//! Dual-stack on the routed-access datacenter in network namespaces: a layout with an
//! IPv4 and an IPv6 space, a fabric of both families, real agents, the real CNI plugin,
//! real kernel routes and nftables. Every endpoint gets an address of each family; the
//! same isolation and NetworkPolicy hold over both.

use std::net::IpAddr;
use std::time::Duration;

use romana_integration::cluster::default_layout;
use romana_integration::{cluster, eventually, require_netns, Cluster};
use romana_proto::pb;

const CONVERGE: Duration = Duration::from_secs(20);

fn dual_layout() -> pb::ClusterConfig {
    pb::ClusterConfig {
        second_address_space: "fd00:10::/48".into(),
        ..default_layout()
    }
}

/// `name`'s IPv6 address.
fn v6(c: &Cluster, name: &str) -> IpAddr {
    let a = c.endpoint(name).second_address;
    a.unwrap_or_else(|| panic!("{name} has no second address"))
}

/// Whether `from` reaches `to` within [`CONVERGE`] (the agents may still be catching up).
async fn reaches(c: &Cluster, from: &str, to: IpAddr) -> bool {
    eventually(&format!("{from} -> {to}"), CONVERGE, || async {
        c.ping(from, to).then_some(())
    })
    .await
    .is_ok()
}

async fn add_tenant(c: &Cluster, name: &str, isolation: pb::Isolation) -> anyhow::Result<()> {
    c.tenants()
        .await?
        .add_tenant(pb::AddTenantRequest {
            name: name.into(),
            isolation: isolation.into(),
            ..Default::default()
        })
        .await?;
    Ok(())
}

#[test]
fn the_same_segment_talks_across_racks_over_both_families_and_other_tenants_are_dropped_over_both()
{
    require_netns!("nft", "ping");
    cluster()
        .racks(2)
        .hosts(1)
        .layout(dual_layout())
        .run(|mut c| async move {
            c.add_tenants(&["t1", "t2"]).await?;
            c.tenants()
                .await?
                .add_segment(pb::AddSegmentRequest {
                    tenant: "t1".into(),
                    name: "s2".into(),
                })
                .await?;
            c.add_endpoint("a", "r0h0", "t1", "default").await?;
            c.add_endpoint("b", "r1h0", "t1", "default").await?;
            c.add_endpoint("d", "r1h0", "t1", "s2").await?;
            c.add_endpoint("e", "r1h0", "t2", "default").await?;
            for name in ["a", "b", "d", "e"] {
                assert!(v6(&c, name).to_string().starts_with("fd00:10:"), "{name}");
            }

            assert!(
                reaches(&c, "a", c.endpoint("b").address).await,
                "IPv4 across racks"
            );
            assert!(reaches(&c, "a", v6(&c, "b")).await, "IPv6 across racks");
            assert!(c.tcp("b", "a")?, "TCP over IPv4");
            assert!(c.tcp_at("b", "a", v6(&c, "a"))?, "TCP over IPv6");

            for (to, what) in [("e", "other tenant"), ("d", "other segment")] {
                assert!(!c.ping("a", c.endpoint(to).address), "{what} over IPv4");
                assert!(!c.ping("a", v6(&c, to)), "{what} over IPv6");
            }
            assert!(
                !c.tcp_at("e", "b", v6(&c, "b"))?,
                "TCP from another tenant over IPv6"
            );
            assert!(
                !c.tcp_at("e", "b", c.endpoint("b").address)?,
                "and over IPv4"
            );

            // The agents route each family: a /128 per local endpoint, the other rack's
            // IPv6 aggregate via the leaf's IPv6 address.
            let routes = c
                .host("r0h0")
                .ns
                .ip(&["-6", "route", "show", "proto", "124"])?;
            assert!(routes.contains(&v6(&c, "a").to_string()), "{routes}");
            assert!(routes.contains("via fd00:ff::1"), "{routes}");
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_ipv6_ip_block_allows_its_own_family_only() {
    require_netns!("nft", "ping");
    cluster()
        .racks(1)
        .hosts(2)
        .layout(dual_layout())
        .run(|mut c| async move {
            add_tenant(&c, "open", pb::Isolation::None).await?;
            c.add_endpoint("f", "r0h0", "open", "default").await?;
            c.add_endpoint("h", "r0h0", "open", "default").await?;
            c.add_endpoint("g", "r0h1", "open", "default").await?;
            assert!(reaches(&c, "h", v6(&c, "g")).await, "open before the policy");
            let doc = format!(
                "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                 metadata: {{name: only-f, namespace: open}}\n\
                 spec:\n  podSelector: {{}}\n  ingress:\n  - from: [{{ipBlock: {{cidr: '{}/128'}}}}]\n",
                v6(&c, "f")
            );
            c.policies()
                .await?
                .apply_policies(pb::ApplyPoliciesRequest {
                    document: doc,
                    ..Default::default()
                })
                .await?;
            let g6 = v6(&c, "g");
            eventually("h blocked from g over IPv6", CONVERGE, || async {
                (!c.ping("h", g6)).then_some(())
            })
            .await?;
            assert!(c.ping("f", g6), "f's IPv6 address is in the block");
            assert!(c.tcp_at("f", "g", g6)?, "TCP from f over IPv6");
            // The block is IPv6: f's IPv4 address is not in it, and g is selected.
            assert!(!c.ping("f", c.endpoint("g").address), "f over IPv4");
            assert!(!c.tcp("f", "g")?, "TCP from f over IPv4");
            Ok(())
        })
        .unwrap();
}
