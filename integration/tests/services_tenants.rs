//! tenant-service against real etcd, in-process on port 0: tenant numbers, default
//! segments, removal with endpoints, and updates; every bad input gets a specific code and
//! changes nothing in etcd.
mod common;

use common::*;
use romana_proto::pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn tenants_get_the_lowest_free_number_a_default_segment_and_the_namespace_label() {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 2, 2)).await;
    let a = c
        .tenants
        .add_tenant(mk_tenant("a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.id, 0);
    assert_eq!(a.isolation, pb::Isolation::Segment as i32);
    assert_eq!(
        a.labels
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("a")
    );
    assert_eq!(a.r#match, "10.0.0.0 & 255.0.192.0");
    let b = c
        .tenants
        .add_tenant(pb::AddTenantRequest {
            name: "b".into(),
            isolation: pb::Isolation::None as i32,
            labels: [("team".to_string(), "x".to_string())].into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((b.id, b.isolation), (1, pb::Isolation::None as i32));
    assert_eq!(b.labels.len(), 2);

    let segs = c
        .tenants
        .list_segments(pb::ListSegmentsRequest { tenant: "a".into() })
        .await
        .unwrap()
        .into_inner();
    let segs: Vec<_> = segs
        .segments
        .iter()
        .map(|s| (s.name.as_str(), s.id))
        .collect();
    assert_eq!(segs, [("default", 0)]);
    let web = c
        .tenants
        .add_segment(pb::AddSegmentRequest {
            tenant: "a".into(),
            name: "web".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (web.id, web.r#match.as_str()),
        (1, "10.0.16.0 & 255.0.240.0")
    );

    let ts = c.tenants.clone();
    assert_refused(
        &plane,
        ts.clone().add_tenant(mk_tenant("a")),
        Code::AlreadyExists,
        "tenant a already exists",
    )
    .await;
    assert_refused(
        &plane,
        ts.clone().add_tenant(mk_tenant("bad name")),
        Code::InvalidArgument,
        "contains ' '",
    )
    .await;
    assert_refused(
        &plane,
        ts.clone().add_segment(pb::AddSegmentRequest {
            tenant: "a".into(),
            name: "web".into(),
        }),
        Code::AlreadyExists,
        "segment a/web already exists",
    )
    .await;
    assert_refused(
        &plane,
        ts.clone().add_segment(pb::AddSegmentRequest {
            tenant: "zz".into(),
            name: "web".into(),
        }),
        Code::NotFound,
        "tenant zz does not exist",
    )
    .await;
    assert_refused(
        &plane,
        ts.clone().list_segments(pb::ListSegmentsRequest {
            tenant: "zz".into(),
        }),
        Code::NotFound,
        "tenant zz",
    )
    .await;
    assert_refused(
        &plane,
        ts.clone().add_tenant(pb::AddTenantRequest {
            name: "q".into(),
            isolation: 42,
            ..Default::default()
        }),
        Code::InvalidArgument,
        "isolation",
    )
    .await;

    // Two tenant bits: four tenants, then exhausted. Two segment bits: four segments.
    c.tenants.add_tenant(mk_tenant("c")).await.unwrap();
    c.tenants.add_tenant(mk_tenant("d")).await.unwrap();
    assert_refused(
        &plane,
        ts.clone().add_tenant(mk_tenant("e")),
        Code::ResourceExhausted,
        "all 4 tenant numbers are in use",
    )
    .await;
    for s in ["s2", "s3"] {
        c.tenants
            .add_segment(pb::AddSegmentRequest {
                tenant: "a".into(),
                name: s.into(),
            })
            .await
            .unwrap();
    }
    assert_refused(
        &plane,
        ts.clone().add_segment(pb::AddSegmentRequest {
            tenant: "a".into(),
            name: "s4".into(),
        }),
        Code::ResourceExhausted,
        "tenant a uses all 4 segment numbers",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_and_segments_with_endpoints_cannot_be_removed_until_released() {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    c.topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("t")).await.unwrap();
    c.tenants
        .add_segment(pb::AddSegmentRequest {
            tenant: "t".into(),
            name: "web".into(),
        })
        .await
        .unwrap();
    c.ipam
        .allocate(mk_alloc("pod-1", "h1", "t", "web"))
        .await
        .unwrap();

    let ts = c.tenants.clone();
    assert_refused(
        &plane,
        ts.clone()
            .remove_tenant(pb::RemoveTenantRequest { name: "t".into() }),
        Code::FailedPrecondition,
        "tenant t has 1 endpoint(s) (pod-1)",
    )
    .await;
    assert_refused(
        &plane,
        ts.clone().remove_segment(pb::RemoveSegmentRequest {
            tenant: "t".into(),
            name: "web".into(),
        }),
        Code::FailedPrecondition,
        "segment t/web has 1 endpoint(s) (pod-1)",
    )
    .await;
    assert_refused(
        &plane,
        ts.clone().remove_segment(pb::RemoveSegmentRequest {
            tenant: "t".into(),
            name: "default".into(),
        }),
        Code::FailedPrecondition,
        "lives as long as its tenant",
    )
    .await;
    assert_refused(
        &plane,
        ts.clone().remove_tenant(pb::RemoveTenantRequest {
            name: "nope".into(),
        }),
        Code::NotFound,
        "tenant nope does not exist",
    )
    .await;

    c.ipam
        .release(pb::ReleaseRequest::endpoint("pod-1"))
        .await
        .unwrap();
    c.tenants
        .remove_segment(pb::RemoveSegmentRequest {
            tenant: "t".into(),
            name: "web".into(),
        })
        .await
        .unwrap();
    c.tenants
        .remove_tenant(pb::RemoveTenantRequest { name: "t".into() })
        .await
        .unwrap();
    let store = plane.store();
    assert!(
        store
            .list(&store.keys().segments())
            .await
            .unwrap()
            .items
            .is_empty(),
        "segments go with the tenant"
    );
    assert!(store
        .list(&store.keys().tenant_ids())
        .await
        .unwrap()
        .items
        .is_empty());
    // The number is free again.
    let again = c
        .tenants
        .add_tenant(mk_tenant("t2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.id, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_update_changes_mode_and_labels_but_not_the_name_label() {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    c.tenants
        .add_tenant(pb::AddTenantRequest {
            name: "t".into(),
            labels: [
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
            ]
            .into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let updated = c
        .tenants
        .update_tenant(pb::UpdateTenantRequest {
            name: "t".into(),
            isolation: pb::Isolation::Tenant as i32,
            set_labels: [("a".to_string(), "9".to_string())].into(),
            remove_labels: vec!["b".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.isolation, pb::Isolation::Tenant as i32);
    let mut labels: Vec<_> = updated.labels.into_iter().collect();
    labels.sort();
    assert_eq!(
        labels,
        [
            ("a".to_string(), "9".to_string()),
            ("kubernetes.io/metadata.name".to_string(), "t".to_string())
        ]
    );
    // Unspecified isolation leaves the mode alone.
    let same = c
        .tenants
        .update_tenant(pb::UpdateTenantRequest {
            name: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.isolation, pb::Isolation::Tenant as i32);
    assert_refused(
        &plane,
        c.tenants.clone().update_tenant(pb::UpdateTenantRequest {
            name: "t".into(),
            remove_labels: vec!["kubernetes.io/metadata.name".into()],
            ..Default::default()
        }),
        Code::InvalidArgument,
        "always the tenant name",
    )
    .await;
    assert_refused(
        &plane,
        c.tenants.clone().update_tenant(pb::UpdateTenantRequest {
            name: "x".into(),
            ..Default::default()
        }),
        Code::NotFound,
        "tenant x",
    )
    .await;
}
