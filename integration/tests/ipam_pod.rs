//! ipam-service against real etcd: an allocation that names its Kubernetes pod (as the CNI
//! plugin does from K8S_POD_*). The pod is stored in the record and returned, a malformed
//! one is refused before etcd changes, and a retry must name the same pod.

mod common;

use common::*;
use romana_proto::pb;
use tonic::Code;

fn mk_pod(namespace: &str, name: &str) -> pb::Pod {
    pb::Pod {
        namespace: namespace.into(),
        name: name.into(),
        uid: "5c3e0f6a-8d1b-4c2e-9a7f-0b1c2d3e4f50".into(),
        infra_container_id: "3f2a9c1b7d4e".into(),
    }
}

fn mk_pod_alloc(id: &str, pod: Option<pb::Pod>) -> pb::AllocateRequest {
    pb::AllocateRequest {
        pod,
        ..mk_alloc(id, "h1", "t", "web")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_is_stored_returned_listed_and_part_of_an_idempotent_retry() {
    let (plane, mut c) = mk_ipam_cluster().await;
    let pod = mk_pod("web", "api-7d9f-x2");
    let e = c
        .ipam
        .allocate(mk_pod_alloc("c1:eth0", Some(pod.clone())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.pod.as_ref(), Some(&pod));
    let record = stored_endpoint(&plane, "c1:eth0").await;
    let stored = record.pod.expect("stored in the record");
    assert_eq!(stored.qualified_name(), "web/api-7d9f-x2");
    assert_eq!(stored.uid, pod.uid);
    assert_eq!(stored.infra_container_id, pod.infra_container_id);
    let listed = c
        .ipam
        .list_endpoints(pb::ListEndpointsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.endpoints,
        std::slice::from_ref(&e),
        "listed with its pod"
    );

    let again = c
        .ipam
        .allocate(mk_pod_alloc("c1:eth0", Some(pod.clone())))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, e, "the same request gets the same answer");
    assert_refused(
        &plane,
        c.ipam
            .clone()
            .allocate(mk_pod_alloc("c1:eth0", Some(mk_pod("web", "api-other")))),
        Code::AlreadyExists,
        "for pod \"web/api-7d9f-x2\", not pod \"web/api-other\"",
    )
    .await;
    assert_refused(
        &plane,
        c.ipam.clone().allocate(mk_pod_alloc("c1:eth0", None)),
        Code::AlreadyExists,
        "not no pod",
    )
    .await;

    // An endpoint without a pod has no such field in its record at all.
    c.ipam
        .allocate(mk_pod_alloc("c2:eth0", None))
        .await
        .unwrap();
    let raw = stored_endpoint(&plane, "c2:eth0").await;
    assert_eq!(raw.pod, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_pods_are_refused_before_etcd_changes() {
    let (plane, c) = mk_ipam_cluster().await;
    let cases: [(pb::Pod, &str); 5] = [
        (mk_pod("", "p"), "pod namespace name must not be empty"),
        (mk_pod("web", ""), "pod name must not be empty"),
        (mk_pod("Web", "p"), "upper case"),
        (mk_pod("web/x", "p"), "pod namespace name"),
        (
            pb::Pod {
                uid: "x;y".into(),
                ..mk_pod("web", "p")
            },
            "pod uid",
        ),
    ];
    for (pod, needle) in cases {
        assert_refused(
            &plane,
            c.ipam.clone().allocate(mk_pod_alloc("c1:eth0", Some(pod))),
            Code::InvalidArgument,
            needle,
        )
        .await;
    }
    let huge = mk_pod("web", &"p".repeat(1 << 20));
    let status = c
        .ipam
        .clone()
        .allocate(mk_pod_alloc("c1:eth0", Some(huge)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().len() < 200, "{}", status.message());
}
