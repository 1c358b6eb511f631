//! root-service against real etcd, in-process on port 0: the layout (set once, frozen once
//! a host exists) and the service registry; every bad input gets a specific code and
//! changes nothing in etcd.
mod common;

use common::*;
use romana_proto::pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn layout_is_set_once_and_frozen_once_a_host_exists() {
    let plane = romana_integration::ControlPlane::start().await.unwrap();
    let mut c = mk_clients(&plane).await;

    assert_status(
        c.root.get_config(pb::GetConfigRequest {}).await,
        Code::FailedPrecondition,
        "romanactl config init",
    );
    let init = |config| pb::InitConfigRequest {
        config: Some(config),
    };
    assert_refused(
        &plane,
        c.root
            .clone()
            .init_config(init(mk_config("10.1.0.0/8", 0, 8, 4, 4))),
        Code::InvalidArgument,
        "did you mean 10.0.0.0/8",
    )
    .await;
    assert_refused(
        &plane,
        c.root
            .clone()
            .init_config(init(mk_config("10.0.0/8", 0, 8, 4, 4))),
        Code::InvalidArgument,
        "address_space",
    )
    .await;
    assert_refused(
        &plane,
        c.root
            .clone()
            .init_config(init(mk_config("10.0.0.0/8", 0, 16, 6, 4))),
        Code::InvalidArgument,
        "do not fit",
    )
    .await;
    assert_refused(
        &plane,
        c.root
            .clone()
            .init_config(pb::InitConfigRequest { config: None }),
        Code::InvalidArgument,
        "config",
    )
    .await;

    let first = c
        .root
        .init_config(init(mk_config("10.0.0.0/8", 0, 8, 4, 4)))
        .await
        .unwrap()
        .into_inner();
    assert!(first.changed);
    assert_eq!(first.config.unwrap().endpoint_bits, 8);
    let again = c
        .root
        .init_config(init(mk_config("10.0.0.0/8", 0, 8, 4, 4)))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.changed, "the same layout again changes nothing");
    // No host yet: the layout may still change.
    let changed = c
        .root
        .init_config(init(mk_config("10.0.0.0/8", 2, 8, 4, 4)))
        .await
        .unwrap()
        .into_inner();
    assert!(changed.changed);
    let shown = c
        .root
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (shown.address_space.as_str(), shown.rack_bits),
        ("10.0.0.0/8", 2)
    );

    c.topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap();
    assert_refused(
        &plane,
        c.root
            .clone()
            .init_config(init(mk_config("10.0.0.0/8", 0, 8, 4, 4))),
        Code::FailedPrecondition,
        "hosts exist (1 hosts: h1)",
    )
    .await;
    // The same layout is still fine (idempotent init from scripts).
    let same = c
        .root
        .init_config(init(mk_config("10.0.0.0/8", 2, 8, 4, 4)))
        .await
        .unwrap()
        .into_inner();
    assert!(!same.changed);
}

#[tokio::test(flavor = "multi_thread")]
async fn layout_change_is_refused_when_tenant_numbers_would_not_fit() {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    for t in ["a", "b", "c"] {
        c.tenants.add_tenant(mk_tenant(t)).await.unwrap();
    }
    assert_refused(
        &plane,
        c.root.clone().init_config(pb::InitConfigRequest {
            config: Some(mk_config("10.0.0.0/8", 0, 8, 1, 4)),
        }),
        Code::FailedPrecondition,
        "tenant c has number 2",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn services_register_and_root_lists_them() {
    let plane = romana_integration::ControlPlane::start().await.unwrap();
    let mut c = mk_clients(&plane).await;
    let all = c
        .root
        .list_services(pb::ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut kinds: Vec<_> = all.services.iter().map(|s| s.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["ipam", "policy", "root", "tenant", "topology"]);
    let ipam = c
        .root
        .list_services(pb::ListServicesRequest {
            kind: "ipam".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ipam.services.len(), 1);
    assert_eq!(
        ipam.services[0].url,
        plane.url(romana_integration::Service::Ipam)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_shutdown_withdraws_registrations() {
    let mut plane = romana_integration::ControlPlane::start().await.unwrap();
    let store = plane.store().clone();
    plane.shutdown().await;
    let left = store.list(&store.keys().services()).await.unwrap();
    assert!(
        left.items.is_empty(),
        "registrations left: {:?}",
        left.items
    );
}
