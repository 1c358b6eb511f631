//! root, topology and tenant services against real etcd, in-process on port 0: happy paths
//! and every bad input, which must get a specific code and change nothing in etcd.

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

#[tokio::test(flavor = "multi_thread")]
async fn hosts_get_the_lowest_free_index_of_their_rack_and_derived_prefixes() {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 2, 8, 4, 4)).await;
    let h1 = c
        .topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (h1.rack, h1.index, h1.prefix.as_str()),
        (0, 0, "10.0.0.0/16")
    );
    let h2 = c
        .topology
        .add_host(mk_host("h2", "192.168.0.12", Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((h2.index, h2.prefix.as_str()), (1, "10.1.0.0/16"));
    let b1 = c
        .topology
        .add_host(mk_host("b1", "192.168.1.11", Some(1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (b1.rack, b1.index, b1.prefix.as_str()),
        (1, 64, "10.64.0.0/16")
    );

    // Freed indexes are reused, lowest first.
    c.topology
        .remove_host(pb::RemoveHostRequest {
            name: "h1".into(),
            force: false,
        })
        .await
        .unwrap();
    let h3 = c
        .topology
        .add_host(mk_host("h3", "192.168.0.13", Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(h3.index, 0);

    let listed = c
        .topology
        .list_hosts(pb::ListHostsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["h3", "h2", "b1"], "ordered by index");
    let rack1 = c
        .topology
        .list_hosts(pb::ListHostsRequest { rack: Some(1) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rack1.hosts.len(), 1);

    let fabric = c
        .topology
        .get_fabric(pb::GetFabricRequest {})
        .await
        .unwrap()
        .into_inner();
    let spine: Vec<_> = fabric
        .spine
        .iter()
        .map(|r| (r.prefix.as_str(), r.rack))
        .collect();
    assert_eq!(spine, [("10.0.0.0/10", 0), ("10.64.0.0/10", 1)]);
    let leaf0: Vec<_> = fabric.leaves[0]
        .routes
        .iter()
        .map(|r| (r.prefix.as_str(), r.via.as_str()))
        .collect();
    assert_eq!(
        leaf0,
        [
            ("10.0.0.0/16", "192.168.0.13"),
            ("10.1.0.0/16", "192.168.0.12")
        ]
    );

    let t = c.topology.clone();
    assert_refused(
        &plane,
        t.clone().add_host(mk_host("h2", "192.168.9.9", None)),
        Code::AlreadyExists,
        "host h2 already exists",
    )
    .await;
    assert_refused(
        &plane,
        t.clone().add_host(mk_host("h9", "192.168.0.12", None)),
        Code::AlreadyExists,
        "already belongs to host h2",
    )
    .await;
    assert_refused(
        &plane,
        t.clone().add_host(mk_host("h9", "192.168.0", None)),
        Code::InvalidArgument,
        "is not an IP address",
    )
    .await;
    assert_refused(
        &plane,
        t.clone().add_host(mk_host("h9", "192.168.0.99", Some(4))),
        Code::InvalidArgument,
        "rack 4 is out of range",
    )
    .await;
    assert_refused(
        &plane,
        t.clone().add_host(mk_host("a/b", "192.168.0.99", None)),
        Code::InvalidArgument,
        "contains '/'",
    )
    .await;
    assert_refused(
        &plane,
        t.clone().add_host(mk_host("", "192.168.0.99", None)),
        Code::InvalidArgument,
        "must not be empty",
    )
    .await;
    assert_refused(
        &plane,
        t.clone().remove_host(pb::RemoveHostRequest {
            name: "nope".into(),
            force: false,
        }),
        Code::NotFound,
        "host nope does not exist",
    )
    .await;
    assert_refused(
        &plane,
        t.clone().get_host(pb::GetHostRequest {
            name: "nope".into(),
        }),
        Code::NotFound,
        "nope",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_rack_is_resource_exhausted() {
    // 2 host bits, 1 rack bit: two hosts per rack.
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/16", 1, 2, 2, 2)).await;
    c.topology
        .add_host(mk_host("a", "192.168.0.1", Some(1)))
        .await
        .unwrap();
    c.topology
        .add_host(mk_host("b", "192.168.0.2", Some(1)))
        .await
        .unwrap();
    assert_refused(
        &plane,
        c.topology
            .clone()
            .add_host(mk_host("c", "192.168.0.3", Some(1))),
        Code::ResourceExhausted,
        "rack 1 is full: all 2 host slots",
    )
    .await;
    let other_rack = c
        .topology
        .add_host(mk_host("c", "192.168.0.3", Some(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other_rack.index, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn adding_a_host_before_the_layout_is_set_is_a_failed_precondition() {
    let plane = romana_integration::ControlPlane::start().await.unwrap();
    let c = mk_clients(&plane).await;
    assert_refused(
        &plane,
        c.topology
            .clone()
            .add_host(mk_host("h1", "192.168.0.1", None)),
        Code::FailedPrecondition,
        "config init",
    )
    .await;
    assert_refused(
        &plane,
        c.tenants.clone().add_tenant(mk_tenant("t")),
        Code::FailedPrecondition,
        "config init",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_host_with_endpoints_needs_force_which_releases_them() {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    c.topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("t")).await.unwrap();
    for i in 0..3 {
        c.ipam
            .allocate(mk_alloc(&format!("e{i}"), "h1", "t", ""))
            .await
            .unwrap();
    }
    assert_refused(
        &plane,
        c.topology.clone().remove_host(pb::RemoveHostRequest {
            name: "h1".into(),
            force: false,
        }),
        Code::FailedPrecondition,
        "host h1 has 3 live endpoint(s) (e0, e1, e2)",
    )
    .await;
    let removed = c
        .topology
        .remove_host(pb::RemoveHostRequest {
            name: "h1".into(),
            force: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.released_endpoints, 3);
    let left = c
        .ipam
        .list_endpoints(pb::ListEndpointsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(left.endpoints.is_empty());
    let store = plane.store();
    assert!(
        store
            .list(&store.keys().addresses())
            .await
            .unwrap()
            .items
            .is_empty(),
        "address claims released"
    );
    assert!(store
        .list(&store.keys().host_endpoints_of("h1"))
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(
        store
            .get(&store.keys().host_index(0))
            .await
            .unwrap()
            .is_none(),
        "index claim released"
    );
}

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

#[tokio::test(flavor = "multi_thread")]
async fn host_status_is_the_agents_report_or_not_reported() {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    for (name, ip) in [("h1", "192.168.0.11"), ("h2", "192.168.0.12")] {
        c.topology.add_host(mk_host(name, ip, None)).await.unwrap();
    }
    let status_of = |host: &str| pb::GetHostStatusRequest { host: host.into() };

    // A host whose agent has not reported is an answer, not an error.
    let h2 = c
        .topology
        .get_host_status(status_of("h2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h2,
        pb::HostStatus {
            host: "h2".into(),
            reported: false,
            ..Default::default()
        }
    );

    let store = plane.store();
    let keys = store.keys();
    let record = romana_core::AgentStatus {
        host: "h1".into(),
        revision: 42,
        policy_revision: 0,
        routes: vec!["10.1.0.0/16 via 192.168.0.12".into()],
        nft_rules: 12,
        nft_sets: 3,
        nft_elements: 40,
        converged: false,
        blocked: vec!["10.0.0.2 dev romana-e1".into()],
        problems: vec!["kernel refused route 10.0.0.3".into()],
        applied_at: 1_700_000_000,
        alive_at: 1_700_000_005,
    };
    store.put(&keys.agent_status("h1"), &record).await.unwrap();
    let h1 = c
        .topology
        .get_host_status(status_of("h1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h1,
        pb::HostStatus {
            host: "h1".into(),
            reported: true,
            revision: 42,
            policy_revision: 0,
            converged: false,
            routes: vec!["10.1.0.0/16 via 192.168.0.12".into()],
            nft_rules: 12,
            nft_sets: 3,
            nft_elements: 40,
            blocked: vec!["10.0.0.2 dev romana-e1".into()],
            problems: vec!["kernel refused route 10.0.0.3".into()],
            applied_at: 1_700_000_000,
            alive_at: 1_700_000_005,
        }
    );

    let listed = c
        .topology
        .list_host_status(pb::ListHostStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let reported: Vec<_> = listed
        .hosts
        .iter()
        .map(|s| (s.host.as_str(), s.reported))
        .collect();
    assert_eq!(
        reported,
        [("h1", true), ("h2", false)],
        "every host, ordered by index"
    );
    assert_eq!(listed.hosts[0], h1);

    // A status for a name that is not a host is not listed; neither is h1's once h1 is
    // removed, and a new h1 starts out not reported until its agent writes again.
    store
        .put(
            &keys.agent_status("gone"),
            &romana_core::AgentStatus {
                host: "gone".into(),
                ..record.clone()
            },
        )
        .await
        .unwrap();
    c.topology
        .remove_host(pb::RemoveHostRequest {
            name: "h1".into(),
            force: false,
        })
        .await
        .unwrap();
    let listed = c
        .topology
        .list_host_status(pb::ListHostStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed.hosts.iter().map(|s| s.host.as_str()).collect();
    assert_eq!(names, ["h2"]);
    c.topology
        .add_host(mk_host("h1", "192.168.0.21", None))
        .await
        .unwrap();
    let again = c
        .topology
        .get_host_status(status_of("h1"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !again.reported,
        "the old h1's record is no report on the new h1: {again:?}"
    );
    store.put(&keys.agent_status("h1"), &record).await.unwrap();
    let written = c
        .topology
        .get_host_status(status_of("h1"))
        .await
        .unwrap()
        .into_inner();
    assert!(written.reported);

    let t = c.topology.clone();
    assert_refused(
        &plane,
        t.clone().get_host_status(status_of("h9")),
        Code::NotFound,
        "host h9 does not exist",
    )
    .await;
    assert_refused(
        &plane,
        t.clone().get_host_status(status_of("")),
        Code::InvalidArgument,
        "must not be empty",
    )
    .await;
}
