//! topology-service against real etcd: a host's second fabric address (dual-stack). A host
//! has at most one fabric address per IP family; every address, ip or second_ip, belongs to
//! one host (claimed under `host-ips/` in the transaction that adds the host, released with
//! it), and a refused AddHost changes nothing.

mod common;

use common::*;
use romana_integration::ControlPlane;
use romana_proto::pb;
use tonic::Code;

fn mk_dual_host(name: &str, ip: &str, second_ip: &str) -> pb::AddHostRequest {
    pb::AddHostRequest {
        second_ip: second_ip.into(),
        ..mk_host(name, ip, None)
    }
}

/// The host claiming `ip` under `host-ips/`, if any.
async fn claim(plane: &ControlPlane, ip: &str) -> Option<String> {
    let store = plane.store();
    let key = store.keys().host_ip(ip.parse().unwrap());
    store.get(&key).await.unwrap().map(|v| v.value)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_has_a_fabric_address_per_family_each_claimed_by_it_alone() {
    let config = pb::ClusterConfig {
        second_address_space: "fd00:10::/48".into(),
        ..mk_config("10.0.0.0/8", 0, 8, 4, 4)
    };
    let (plane, mut c) = mk_cluster(config).await;
    let h1 = c
        .topology
        .add_host(mk_dual_host("h1", "192.168.0.1", " fd00:ff::1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (h1.ip.as_str(), h1.second_ip.as_str()),
        ("192.168.0.1", "fd00:ff::1")
    );
    let store = plane.store();
    let stored = store
        .get(&store.keys().host("h1"))
        .await
        .unwrap()
        .expect("h1 is stored")
        .value;
    assert_eq!(stored.second_ip, Some("fd00:ff::1".parse().unwrap()));
    assert_eq!(romana_core::Host::try_from(&h1), Ok(stored));
    assert_eq!(claim(&plane, "192.168.0.1").await.as_deref(), Some("h1"));
    assert_eq!(claim(&plane, "fd00:ff::1").await.as_deref(), Some("h1"));

    let h2 = c
        .topology
        .add_host(mk_host("h2", "192.168.0.2", None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        h2.second_ip, "",
        "a host without one has an empty second_ip"
    );
    let listed = c
        .topology
        .list_hosts(pb::ListHostsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .hosts;
    let ips: Vec<_> = listed
        .iter()
        .map(|h| (h.ip.as_str(), h.second_ip.as_str()))
        .collect();
    assert_eq!(ips, [("192.168.0.1", "fd00:ff::1"), ("192.168.0.2", "")]);

    let t = c.topology.clone();
    let refusals = [
        (
            mk_dual_host("h3", "192.168.0.3", "192.168.0.4"),
            Code::InvalidArgument,
            "second_ip: 192.168.0.4 is of the same IP family as ip 192.168.0.3; a host has at most one fabric address per family",
        ),
        (
            mk_dual_host("h3", "192.168.0.3", "::ffff:192.168.0.4"),
            Code::InvalidArgument,
            "at most one fabric address per family",
        ),
        (
            mk_dual_host("h3", "192.168.0.3", "fd00::zz"),
            Code::InvalidArgument,
            "second_ip: \"fd00::zz\" is not an IP address",
        ),
        (
            mk_dual_host("h3", "192.168.0.3", "ff02::1"),
            Code::InvalidArgument,
            "second_ip: ff02::1 is a multicast address",
        ),
        (
            mk_dual_host("h3", "192.168.0.3", "fd00:ff::1"),
            Code::AlreadyExists,
            "second_ip fd00:ff::1 already belongs to host h1",
        ),
        (
            mk_host("h3", "fd00:ff::1", None),
            Code::AlreadyExists,
            "ip fd00:ff::1 already belongs to host h1",
        ),
        (
            mk_dual_host("h3", "fd00:ff::3", "192.168.0.2"),
            Code::AlreadyExists,
            "second_ip 192.168.0.2 already belongs to host h2",
        ),
    ];
    for (request, code, needle) in refusals {
        assert_refused(&plane, t.clone().add_host(request), code, needle).await;
    }

    // Removing h1 releases both its claims; its second address is then free for another.
    c.topology
        .remove_host(pb::RemoveHostRequest {
            name: "h1".into(),
            force: false,
        })
        .await
        .unwrap();
    assert_eq!(claim(&plane, "192.168.0.1").await, None);
    assert_eq!(claim(&plane, "fd00:ff::1").await, None);
    let h3 = c
        .topology
        .add_host(mk_dual_host("h3", "fd00:ff::1", "192.168.0.1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (h3.ip.as_str(), h3.second_ip.as_str()),
        ("fd00:ff::1", "192.168.0.1")
    );
    assert_eq!(claim(&plane, "192.168.0.1").await.as_deref(), Some("h3"));
    assert_eq!(claim(&plane, "fd00:ff::1").await.as_deref(), Some("h3"));
}
