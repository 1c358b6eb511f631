//! ipam-service against real etcd: an allocation that names its host-side interface (a
//! Nova VM's tap). The name is stored in the record and returned, bad names are refused
//! before etcd changes, and a retry must name the same interface.

mod common;

use common::*;
use romana_core::interface::nova_tap_name;
use romana_proto::pb;
use tonic::Code;

const PORT: &str = "3f2a9c1b-7d4e-4a1b-9c2d-0123456789ab";

fn mk_vm_alloc(id: &str, interface: &str) -> pb::AllocateRequest {
    pb::AllocateRequest {
        interface: interface.into(),
        ..mk_alloc(id, "h1", "t", "web")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_named_tap_is_stored_returned_and_part_of_an_idempotent_retry() {
    let (plane, mut c) = mk_ipam_cluster().await;
    let tap = nova_tap_name(PORT);
    assert_eq!(tap, "tap3f2a9c1b-7d");
    let e = c
        .ipam
        .allocate(mk_vm_alloc(PORT, &tap))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.interface, tap);
    let record = stored_endpoint(&plane, PORT).await;
    assert_eq!(record.interface, tap, "stored in the record");
    let got = c
        .ipam
        .get_endpoint(pb::GetEndpointRequest {
            endpoint: PORT.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.interface, tap);

    let again = c
        .ipam
        .allocate(mk_vm_alloc(PORT, &tap))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, e, "the same request gets the same answer");
    assert_refused(
        &plane,
        c.ipam.clone().allocate(mk_vm_alloc(PORT, "tap00000000-00")),
        Code::AlreadyExists,
        "with interface \"tap3f2a9c1b-7d\", not interface \"tap00000000-00\"",
    )
    .await;
    assert_refused(
        &plane,
        c.ipam.clone().allocate(mk_vm_alloc(PORT, "")),
        Code::AlreadyExists,
        "not the interface derived from its id",
    )
    .await;

    // A CNI-shaped endpoint names none, and its record has no such field at all.
    let pod = c
        .ipam
        .allocate(mk_alloc("pod-1", "h1", "t", "web"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pod.interface, "");
    let raw = stored_endpoint(&plane, "pod-1").await;
    assert_eq!(raw.interface, "");
    assert_refused(
        &plane,
        c.ipam.clone().allocate(mk_vm_alloc("pod-1", &tap)),
        Code::AlreadyExists,
        "derived from its id, not interface",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_other_than_taps_are_refused_before_etcd_changes() {
    let (plane, c) = mk_ipam_cluster().await;
    let cases: [(&str, &str); 6] = [
        ("eth0", "not a tap device"),
        ("rmncbf29ce48422", "rmn names belong to the CNI plugin"),
        ("tap0123456789abc", "at most 15"),
        ("tap\"x", "contains '\"'"),
        ("tap x", "contains ' '"),
        ("tap", "not a tap device"),
    ];
    for (name, needle) in cases {
        assert_refused(
            &plane,
            c.ipam.clone().allocate(mk_vm_alloc("vm-1", name)),
            Code::InvalidArgument,
            needle,
        )
        .await;
    }
    let huge = "tap".to_string() + &"x".repeat(1 << 20);
    let status = c
        .ipam
        .clone()
        .allocate(mk_vm_alloc("vm-1", &huge))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().len() < 300, "{}", status.message());
}
