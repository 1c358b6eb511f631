//! topology-service against real etcd, in-process on port 0: host indexes and prefixes,
//! racks, removal with endpoints, and host status; every bad input gets a specific code
//! and changes nothing in etcd.
mod common;

use common::*;
use romana_proto::pb;
use tonic::Code;

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
