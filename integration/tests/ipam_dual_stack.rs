//! ipam-service against real etcd in a dual-stack cluster (10.0.0.0/8 and fd00:10::/48, the
//! same 8 host, 4 tenant and 4 segment bits): an endpoint placed by names holds one address
//! of each family with one endpoint number, claimed and released together; one placed by a
//! CIDR or an address (Neutron's subnets are of one family) holds that family's alone, and
//! its number is skipped by later name-placed endpoints.

mod common;

use common::*;
use romana_proto::pb;
use tonic::Code;

async fn mk_dual_cluster() -> (romana_integration::ControlPlane, Clients) {
    let config = pb::ClusterConfig {
        second_address_space: "fd00:10::/48".into(),
        ..mk_config("10.0.0.0/8", 0, 8, 4, 4)
    };
    let (plane, mut c) = mk_cluster(config).await;
    c.topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("t")).await.unwrap();
    (plane, c)
}

async fn address_keys(plane: &romana_integration::ControlPlane) -> Vec<String> {
    let store = plane.store();
    let mut held: Vec<String> = Vec::new();
    for a in [
        "10.0.0.2",
        "10.0.0.3",
        "fd00:10::2",
        "fd00:10::3",
        "fd00:10::4",
    ] {
        if store
            .get(&store.keys().address(a.parse().unwrap()))
            .await
            .unwrap()
            .is_some()
        {
            held.push(a.into());
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_placed_endpoint_holds_one_address_of_each_family_claimed_and_released_together() {
    let (plane, mut c) = mk_dual_cluster().await;
    let e = c
        .ipam
        .allocate(mk_alloc("c1:eth0", "h1", "t", "default"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.address, "10.0.0.2");
    assert_eq!(e.addresses, ["10.0.0.2", "fd00:10::2"]);
    assert_eq!(e.gateways, ["10.0.0.1", "fd00:10::1"]);
    let record = stored_endpoint(&plane, "c1:eth0").await;
    assert_eq!(record.second_address, Some("fd00:10::2".parse().unwrap()));
    assert_eq!(address_keys(&plane).await, ["10.0.0.2", "fd00:10::2"]);

    let again = c
        .ipam
        .allocate(mk_alloc("c1:eth0", "h1", "t", "default"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, e, "a retry gets both addresses again");
    let e2 = c
        .ipam
        .allocate(mk_alloc("c2:eth0", "h1", "t", "default"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e2.addresses, ["10.0.0.3", "fd00:10::3"]);

    // Released by its second address: both go, and the number is free again in both.
    let released = c
        .ipam
        .release(pb::ReleaseRequest {
            target: Some(pb::release_request::Target::Address("fd00:10::2".into())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.endpoint.unwrap().id, "c1:eth0");
    assert_eq!(address_keys(&plane).await, ["10.0.0.3", "fd00:10::3"]);
    let e3 = c
        .ipam
        .allocate(mk_alloc("c3:eth0", "h1", "t", "default"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e3.addresses, ["10.0.0.2", "fd00:10::2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cidr_or_address_placed_endpoint_holds_its_family_alone_and_its_number_is_skipped() {
    let (plane, mut c) = mk_dual_cluster().await;
    let by_v6_cidr = c
        .ipam
        .allocate(pb::AllocateRequest {
            endpoint: "neutron:p1:v6".into(),
            cidr: "fd00:10::/64".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_v6_cidr.addresses, ["fd00:10::2"]);
    assert_eq!(by_v6_cidr.gateway, "fd00:10::1");
    assert_eq!(by_v6_cidr.segment_cidr, "fd00:10::/64");
    let by_v4_address = c
        .ipam
        .allocate(pb::AllocateRequest {
            endpoint: "neutron:p2:v4".into(),
            address: "10.0.0.3".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_v4_address.addresses, ["10.0.0.3"]);
    assert_eq!(
        address_keys(&plane).await,
        ["10.0.0.3", "fd00:10::2"],
        "one address key each"
    );
    // Numbers 2 (taken in IPv6) and 3 (taken in IPv4) cannot give a pair: 4 can.
    let pair = c
        .ipam
        .allocate(mk_alloc("c1:eth0", "h1", "t", "default"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pair.addresses, ["10.0.0.4", "fd00:10::4"]);

    assert_refused(
        &plane,
        c.ipam.clone().allocate(pb::AllocateRequest {
            endpoint: "neutron:p3".into(),
            cidr: "fd00:11::/64".into(),
            ..Default::default()
        }),
        Code::InvalidArgument,
        "outside the address space 10.0.0.0/8 and fd00:10::/48",
    )
    .await;
    assert_refused(
        &plane,
        c.ipam.clone().allocate(pb::AllocateRequest {
            endpoint: "neutron:p3".into(),
            address: "fd00:10::1".into(),
            ..Default::default()
        }),
        Code::InvalidArgument,
        "reserved",
    )
    .await;

    // Released by id and by address, one family or two: every address key goes. (A
    // single-family endpoint of a dual-stack cluster is released after reading its record:
    // the watched copy alone cannot tell it holds one address.)
    use pb::release_request::Target;
    for target in [
        Target::Endpoint("neutron:p1:v6".into()),
        Target::Address("10.0.0.3".into()),
        Target::Address("fd00:10::4".into()),
    ] {
        let released = c
            .ipam
            .release(pb::ReleaseRequest {
                target: Some(target.clone()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(released.endpoint.is_some(), "{target:?} released nothing");
    }
    assert!(address_keys(&plane).await.is_empty());
    let store = plane.store();
    let left = store
        .list(&store.keys().host_endpoints_of("h1"))
        .await
        .unwrap();
    assert!(left.items.is_empty(), "host index entries are left behind");
}

/// `policy explain` in a dual-stack cluster: either address of an endpoint, an endpoint id
/// facing an IPv6 address meaning its IPv6 one, and no packet of two families.
#[tokio::test(flavor = "multi_thread")]
async fn explain_judges_the_second_family_as_the_first() {
    let (plane, mut c) = mk_dual_cluster().await;
    c.tenants.add_tenant(mk_tenant("u")).await.unwrap();
    for (id, tenant) in [("a:eth0", "t"), ("b:eth0", "t"), ("x:eth0", "u")] {
        c.ipam
            .allocate(mk_alloc(id, "h1", tenant, "default"))
            .await
            .unwrap();
    }
    let policies = pb::policies_client::PoliciesClient::new(
        mk_channel(&plane.url(romana_integration::Service::Policy)).await,
    );
    let ask = |from: &str, to: &str| {
        let req = pb::ExplainRequest {
            from: from.into(),
            to: to.into(),
            protocol: "tcp".into(),
            port: Some(80),
            ..Default::default()
        };
        let mut p = policies.clone();
        async move { p.explain(req).await }
    };
    // a, b and x are fd00:10::2, ::3 and tenant u's first address.
    let r = ask("a:eth0", "fd00:10::3").await.unwrap().into_inner();
    assert_eq!((r.verdict.as_str(), r.tier.as_str()), ("allow", "baseline"));
    assert_eq!(r.from_address, "fd00:10::2", "a's IPv6 address: {r:?}");
    let x6 = stored_endpoint(&plane, "x:eth0")
        .await
        .second_address
        .unwrap();
    let r = ask("fd00:10::2", &x6.to_string())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.verdict.as_str(), r.tier.as_str()), ("deny", "baseline"));
    assert!(r.reason.contains("isolation segment"), "{}", r.reason);
    let r = ask("a:eth0", "b:eth0").await.unwrap().into_inner();
    assert_eq!(r.to_address, "10.0.0.3", "ids mean first addresses");

    let err = ask("10.0.0.2", "fd00:10::3").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("different IP families"),
        "{}",
        err.message()
    );
}
