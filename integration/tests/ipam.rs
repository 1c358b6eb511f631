//! ipam-service against real etcd: placement by names, CIDR or address, idempotency,
//! reserved and taken addresses, exhaustion, release, and replicas racing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use common::*;
use romana_integration::Service;
use romana_proto::pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn allocation_by_names_is_lowest_free_and_idempotent_per_endpoint() {
    let (plane, mut c) = mk_ipam_cluster().await;
    let e = c
        .ipam
        .allocate(mk_alloc("pod-1", "h2", "t", "web"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        e.address, "10.1.1.2",
        "first assignable address of t/web on h2"
    );
    assert_eq!(
        (e.segment_cidr.as_str(), e.gateway.as_str()),
        ("10.1.1.0/24", "10.1.1.1")
    );
    let again = c
        .ipam
        .allocate(mk_alloc("pod-1", "h2", "t", "web"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        again.address, e.address,
        "a retried ADD gets the same address"
    );
    let default = c
        .ipam
        .allocate(mk_alloc("pod-2", "h2", "t", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (default.address.as_str(), default.segment.as_str()),
        ("10.1.0.2", "default")
    );

    assert_refused(
        &plane,
        c.ipam.clone().allocate(mk_alloc("pod-1", "h1", "t", "web")),
        Code::AlreadyExists,
        "endpoint pod-1 already holds 10.1.1.2",
    )
    .await;
    let store = plane.store();
    let claim = store
        .get(&store.keys().address("10.1.1.2".parse().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.value, "pod-1");
}

#[tokio::test(flavor = "multi_thread")]
async fn neutron_shapes_specific_address_and_segment_cidr() {
    let (plane, mut c) = mk_ipam_cluster().await;
    let by_cidr = c
        .ipam
        .allocate(pb::AllocateRequest {
            endpoint: "port-1".into(),
            cidr: "10.0.1.0/24".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            by_cidr.host.as_str(),
            by_cidr.segment.as_str(),
            by_cidr.address.as_str()
        ),
        ("h1", "web", "10.0.1.2")
    );
    let fixed = c
        .ipam
        .allocate(pb::AllocateRequest {
            endpoint: "port-2".into(),
            cidr: "10.0.1.0/24".into(),
            address: "10.0.1.77".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fixed.address, "10.0.1.77");
    let by_address = c
        .ipam
        .allocate(pb::AllocateRequest {
            endpoint: "port-3".into(),
            address: "10.1.0.9".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (by_address.host.as_str(), by_address.segment.as_str()),
        ("h2", "default")
    );
    // The next free address skips the one taken by a fixed IP only when reached.
    let next = c
        .ipam
        .allocate(pb::AllocateRequest {
            endpoint: "port-4".into(),
            cidr: "10.0.1.0/24".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.address, "10.0.1.3");

    let ipam = c.ipam.clone();
    let req = |endpoint: &str, cidr: &str, address: &str| pb::AllocateRequest {
        endpoint: endpoint.into(),
        cidr: cidr.into(),
        address: address.into(),
        ..Default::default()
    };
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "10.0.1.0/24", "10.0.1.77")),
        Code::AlreadyExists,
        "already held by endpoint port-2",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "10.0.1.0/24", "10.0.2.5")),
        Code::InvalidArgument,
        "outside host h1 tenant t segment web",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "10.0.1.0/24", "10.0.1.1")),
        Code::InvalidArgument,
        "reserved",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "10.0.1.0/24", "10.0.1.255")),
        Code::InvalidArgument,
        "reserved",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "10.0.0.0/23", "")),
        Code::InvalidArgument,
        "not a segment CIDR; the segment containing 10.0.0.0 is 10.0.0.0/24",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "11.0.16.0/24", "")),
        Code::InvalidArgument,
        "outside the address space",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "10.9.16.0/24", "")),
        Code::NotFound,
        "no host has index 9",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "10.0.48.0/24", "")),
        Code::NotFound,
        "no tenant has number 3",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "10.0.5.0/24", "")),
        Code::NotFound,
        "tenant t has no segment number 5",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "banana", "")),
        Code::InvalidArgument,
        "is not a CIDR",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "", "10.0.1.300")),
        Code::InvalidArgument,
        "is not an IP address",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("x", "", "")),
        Code::InvalidArgument,
        "no placement",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(req("", "10.0.1.0/24", "")),
        Code::InvalidArgument,
        "endpoint name must not be empty",
    )
    .await;
    let mut disagree = mk_alloc("x", "h1", "t", "web");
    disagree.cidr = "10.1.1.0/24".into();
    assert_refused(
        &plane,
        ipam.clone().allocate(disagree),
        Code::InvalidArgument,
        "disagrees with host h1",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_tenant_or_segment_is_not_found() {
    let (plane, c) = mk_ipam_cluster().await;
    let ipam = c.ipam.clone();
    assert_refused(
        &plane,
        ipam.clone().allocate(mk_alloc("x", "h9", "t", "web")),
        Code::NotFound,
        "host h9 does not exist",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(mk_alloc("x", "h1", "q", "web")),
        Code::NotFound,
        "tenant q does not exist",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(mk_alloc("x", "h1", "t", "db")),
        Code::NotFound,
        "segment db of tenant t does not exist",
    )
    .await;
    assert_refused(
        &plane,
        ipam.clone().allocate(mk_alloc("x", "h1", "", "web")),
        Code::InvalidArgument,
        "host and tenant are both required",
    )
    .await;
    let mut bad_port = mk_alloc("x", "h1", "t", "web");
    bad_port.ports = vec![pb::NamedPort {
        name: "http".into(),
        protocol: "gre".into(),
        port: 80,
    }];
    assert_refused(
        &plane,
        ipam.clone().allocate(bad_port),
        Code::InvalidArgument,
        "is not tcp, udp or sctp",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn release_by_id_or_address_is_idempotent_and_frees_the_address() {
    let (plane, mut c) = mk_ipam_cluster().await;
    let a = c
        .ipam
        .allocate(mk_alloc("a", "h1", "t", ""))
        .await
        .unwrap()
        .into_inner();
    let b = c
        .ipam
        .allocate(mk_alloc("b", "h1", "t", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (a.address.as_str(), b.address.as_str()),
        ("10.0.0.2", "10.0.0.3")
    );

    let released = c
        .ipam
        .release(pb::ReleaseRequest::endpoint("a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.endpoint.unwrap().address, "10.0.0.2");
    let by_address = c
        .ipam
        .release(pb::ReleaseRequest::address("10.0.0.3"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_address.endpoint.unwrap().id, "b");
    // Releasing again, or something never held, succeeds with nothing released.
    assert!(c
        .ipam
        .release(pb::ReleaseRequest::endpoint("a"))
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .is_none());
    assert!(c
        .ipam
        .release(pb::ReleaseRequest::address("10.0.0.99"))
        .await
        .unwrap()
        .into_inner()
        .endpoint
        .is_none());
    assert_refused(
        &plane,
        c.ipam
            .clone()
            .release(pb::ReleaseRequest::address("10.0.0")),
        Code::InvalidArgument,
        "not an IP address",
    )
    .await;
    assert_refused(
        &plane,
        c.ipam.clone().release(pb::ReleaseRequest::default()),
        Code::InvalidArgument,
        "give an endpoint id or an address",
    )
    .await;

    let store = plane.store();
    let keys = store.keys();
    assert!(store
        .list(&keys.addresses())
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .list(&keys.host_endpoints_of("h1"))
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .list(&keys.tenant_endpoints_of("t"))
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(store
        .list(&store.keys().endpoints())
        .await
        .unwrap()
        .items
        .is_empty());
    // Released addresses are handed out again, lowest first.
    let again = c
        .ipam
        .allocate(mk_alloc("c", "h1", "t", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.address, "10.0.0.2");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_segment_is_resource_exhausted_naming_host_tenant_and_segment() {
    // 10.0.0.0/24 with 2 host, 1 tenant, 1 segment bits: 4 endpoint bits, 13 assignable
    // addresses (2..=14) per segment.
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/24", 0, 2, 1, 1)).await;
    c.topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("t")).await.unwrap();
    let mut got = BTreeSet::new();
    for i in 0..13 {
        let e = c
            .ipam
            .allocate(mk_alloc(&format!("e{i}"), "h1", "t", ""))
            .await
            .unwrap()
            .into_inner();
        got.insert(e.address.parse::<IpAddr>().unwrap());
    }
    assert_eq!(got.len(), 13);
    assert_eq!(got.first().unwrap().to_string(), "10.0.0.2");
    assert_eq!(got.last().unwrap().to_string(), "10.0.0.14");
    assert_refused(
        &plane,
        c.ipam.clone().allocate(mk_alloc("e13", "h1", "t", "")),
        Code::ResourceExhausted,
        "host h1 tenant t segment default (10.0.0.0/28) is full: all 13 assignable addresses are in use",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ipv6_layout_allocates_in_the_segment() {
    let (_plane, mut c) = mk_cluster(mk_config("fd00:10::/48", 0, 16, 8, 8)).await;
    c.topology
        .add_host(mk_host("h1", "fd00::11", None))
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("t")).await.unwrap();
    let e = c
        .ipam
        .allocate(mk_alloc("e", "h1", "t", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (e.address.as_str(), e.segment_cidr.as_str()),
        ("fd00:10::2", "fd00:10::/80")
    );
}

/// Two ipam replicas, 64 concurrent allocators, 2048 allocations in one segment of one host
/// (the worst contention): no address twice, and every address a client got is claimed in
/// etcd by its endpoint id.
#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_and_64_racing_allocators_never_hand_out_an_address_twice() {
    const TASKS: usize = 64;
    const PER_TASK: usize = 32;
    let (mut plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 4, 2, 2)).await;
    c.topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("t")).await.unwrap();
    let second = plane.start_service(Service::Ipam).await.unwrap();
    let replicas = [plane.url(Service::Ipam), second];

    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let url = replicas[task % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut ipam = pb::ipam_client::IpamClient::new(mk_channel(&url).await);
            let mut got = Vec::new();
            for i in 0..PER_TASK {
                let id = format!("ep-{task}-{i}");
                let e = ipam
                    .allocate(mk_alloc(&id, "h1", "t", ""))
                    .await
                    .expect("allocation succeeds")
                    .into_inner();
                got.push((id, e.address));
            }
            got
        }));
    }
    let mut by_address: BTreeMap<IpAddr, String> = BTreeMap::new();
    for t in tasks {
        for (id, address) in t.await.unwrap() {
            if let Some(other) = by_address.insert(address.parse().unwrap(), id.clone()) {
                panic!("address {address} handed out twice: to {other} and {id}");
            }
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(by_address.len(), TASKS * PER_TASK);
    let store = plane.store();
    let claims = store.list(&store.keys().addresses()).await.unwrap();
    assert_eq!(claims.items.len(), TASKS * PER_TASK);
    for claim in claims.items {
        let address: IpAddr = claim.key_name().parse().unwrap();
        assert_eq!(
            by_address.get(&address),
            Some(&claim.value),
            "claim of {address}"
        );
        let endpoint = store
            .get(&store.keys().endpoint(&claim.value))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(endpoint.value.address, address);
    }
    println!(
        "{} allocations by {TASKS} tasks on 2 replicas in {elapsed:?} ({:.0}/s)",
        TASKS * PER_TASK,
        (TASKS * PER_TASK) as f64 / elapsed.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_labels_change_in_place_and_bad_input_changes_nothing() {
    let (plane, mut c) = mk_ipam_cluster().await;
    let mut req = mk_alloc("pod-1", "h1", "t", "web");
    req.labels = [
        ("app".to_string(), "web".to_string()),
        ("tier".to_string(), "1".to_string()),
    ]
    .into();
    let before = c.ipam.allocate(req).await.unwrap().into_inner();
    let update = |set: &[(&str, &str)], remove: &[&str]| pb::UpdateEndpointRequest {
        endpoint: "pod-1".into(),
        set_labels: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        remove_labels: remove.iter().map(|k| k.to_string()).collect(),
    };
    let after = c
        .ipam
        .update_endpoint(update(&[("role", "db")], &["tier"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.address, before.address, "same endpoint, same address");
    let mut labels: Vec<_> = after.labels.into_iter().collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            ("app".to_string(), "web".to_string()),
            ("role".to_string(), "db".to_string())
        ]
    );
    // The same change again writes nothing.
    assert_refused_or_same(
        &plane,
        c.ipam
            .clone()
            .update_endpoint(update(&[("role", "db")], &[])),
    )
    .await;
    assert_refused(
        &plane,
        c.ipam
            .clone()
            .update_endpoint(update(&[("bad key", "x")], &[])),
        Code::InvalidArgument,
        "label",
    )
    .await;
    let mut unknown = update(&[("a", "b")], &[]);
    unknown.endpoint = "nope".into();
    assert_refused(
        &plane,
        c.ipam.clone().update_endpoint(unknown),
        Code::NotFound,
        "endpoint nope does not exist",
    )
    .await;
}

/// An update that changes nothing succeeds without writing.
async fn assert_refused_or_same<T: std::fmt::Debug>(
    plane: &romana_integration::ControlPlane,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) {
    let before = plane.store().revision().await.unwrap();
    call.await.expect("a no-op update succeeds");
    assert_eq!(
        plane.store().revision().await.unwrap(),
        before,
        "a no-op update wrote to etcd"
    );
}
