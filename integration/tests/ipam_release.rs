//! Conditional release against real etcd: `if_labels` releases only a holder that carries
//! the labels, so a caller that knows only an address (Neutron's deallocate) cannot free an
//! address that meanwhile went to someone else.

mod common;

use common::*;
use romana_proto::pb;
use tonic::Code;

fn labelled(id: &str, subnet: &str) -> pb::AllocateRequest {
    let mut req = mk_alloc(id, "h1", "t", "");
    req.labels.insert("neutron-subnet".into(), subnet.into());
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn release_if_labels_frees_only_a_holder_carrying_them() {
    let (plane, mut c) = mk_ipam_cluster().await;
    let a = c
        .ipam
        .allocate(labelled("a", "s1"))
        .await
        .unwrap()
        .into_inner();

    // The address went to an endpoint of another subnet: refused, nothing changed.
    assert_refused(
        &plane,
        c.ipam.clone().release(
            pb::ReleaseRequest::address(a.address.clone()).if_labels([("neutron-subnet", "s2")]),
        ),
        Code::FailedPrecondition,
        "is held by endpoint a, which does not carry neutron-subnet=s2",
    )
    .await;
    // A label the holder lacks altogether, and by endpoint id: refused too.
    assert_refused(
        &plane,
        c.ipam
            .clone()
            .release(pb::ReleaseRequest::endpoint("a").if_labels([("other", "x")])),
        Code::FailedPrecondition,
        "does not carry other=x",
    )
    .await;
    let held = c
        .ipam
        .get_endpoint(pb::GetEndpointRequest {
            endpoint: "a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(held.address, a.address);

    // Bad labels in the condition are refused before anything is read.
    assert_refused(
        &plane,
        c.ipam
            .clone()
            .release(pb::ReleaseRequest::address(a.address.clone()).if_labels([("bad key!", "x")])),
        Code::InvalidArgument,
        "bad key!",
    )
    .await;

    // The right holder: released, and nothing is held afterwards.
    let released = c
        .ipam
        .release(
            pb::ReleaseRequest::address(a.address.clone()).if_labels([("neutron-subnet", "s1")]),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(released.endpoint.unwrap().id, "a");
    let store = plane.store();
    assert!(store
        .list(&store.keys().addresses())
        .await
        .unwrap()
        .items
        .is_empty());
    // Nothing held at the address: a release of nothing, as without the condition.
    let again = c
        .ipam
        .release(
            pb::ReleaseRequest::address(a.address.clone()).if_labels([("neutron-subnet", "s1")]),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(again.endpoint.is_none());
}

/// A stale deallocate racing a new holder: the address released and handed to an endpoint
/// of another subnet between the caller's decision and its call is never freed by it.
#[tokio::test(flavor = "multi_thread")]
async fn a_conditional_release_never_frees_the_next_holder() {
    let (_plane, mut c) = mk_ipam_cluster().await;
    for round in 0..20 {
        let first = c
            .ipam
            .allocate(labelled(&format!("old{round}"), "s1"))
            .await
            .unwrap()
            .into_inner();
        c.ipam
            .release(pb::ReleaseRequest::endpoint(first.id.clone()))
            .await
            .unwrap();
        let mut next = labelled(&format!("new{round}"), "s2");
        next.address = first.address.clone();
        c.ipam.allocate(next).await.unwrap();
        // The old owner's deallocate arrives late.
        let late = c
            .ipam
            .release(
                pb::ReleaseRequest::address(first.address.clone())
                    .if_labels([("neutron-subnet", "s1")]),
            )
            .await;
        assert_eq!(late.unwrap_err().code(), Code::FailedPrecondition);
        let holder = c
            .ipam
            .get_endpoint(pb::GetEndpointRequest {
                endpoint: format!("new{round}"),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(holder.address, first.address);
        c.ipam
            .release(pb::ReleaseRequest::endpoint(format!("new{round}")))
            .await
            .unwrap();
    }
}
