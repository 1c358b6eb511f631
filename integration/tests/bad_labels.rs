//! Bad labels and named ports through the real services (real etcd, in-process on port 0):
//! refused as Kubernetes refuses them, fast, with short messages, changing nothing.

mod common;

use std::collections::HashMap;

use common::refused::*;
use common::*;
use romana_proto::pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn labels_are_refused_as_kubernetes_refuses_them() {
    let (plane, c, _p) = mk_plane().await;
    let mb = "v".repeat(MB);
    let three_mb = "v".repeat(3 * MB);
    let many: HashMap<String, String> = (0..10_000)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let cases: Vec<(&str, HashMap<String, String>, &str)> = vec![
        ("NUL in a value", labels(&[("k", "a\0b")]), "value"),
        ("ESC in a value", labels(&[("k", "\u{1b}[31m")]), "value"),
        ("BEL in a key", labels(&[("k\u{7}", "v")]), "label key"),
        ("= in a key", labels(&[("a=b", "v")]), "label key"),
        (", in a value", labels(&[("k", "a,b")]), "CNI_ARGS"),
        ("= in a value", labels(&[("k", "a=b")]), "CNI_ARGS"),
        (
            "key not a qualified name",
            labels(&[("-app", "v")]),
            "label key",
        ),
        (
            "prefix not a DNS subdomain",
            labels(&[("Example.COM/app", "v")]),
            "prefix",
        ),
        ("10,000 labels", many, "at most 64"),
        ("1 MB value", labels(&[("k", &mb)]), "value"),
        ("1 MB key", labels(&[(&mb, "v")]), "bytes"),
        ("3 MB value", labels(&[("k", &three_mb)]), "value"),
    ];
    for (what, l, needle) in cases {
        // Transferring 3 MB through a debug build takes longer than refusing it.
        let size: usize = l.iter().map(|(k, v)| k.len() + v.len()).sum();
        let limit = FAST * (1 + u32::try_from(size / MB).unwrap_or(4));
        refused_within(
            &plane,
            &format!("tenant add: {what}"),
            c.tenants.clone().add_tenant(pb::AddTenantRequest {
                name: "n".into(),
                labels: l.clone(),
                ..Default::default()
            }),
            Code::InvalidArgument,
            needle,
            limit,
        )
        .await;
        refused_within(
            &plane,
            &format!("tenant update: {what}"),
            c.tenants.clone().update_tenant(pb::UpdateTenantRequest {
                name: "t".into(),
                set_labels: l.clone(),
                ..Default::default()
            }),
            Code::InvalidArgument,
            needle,
            limit,
        )
        .await;
        refused_within(
            &plane,
            &format!("allocate: {what}"),
            c.ipam.clone().allocate(pb::AllocateRequest {
                labels: l.clone(),
                ..mk_alloc("e2", "h1", "t", "default")
            }),
            Code::InvalidArgument,
            needle,
            limit,
        )
        .await;
        refused_within(
            &plane,
            &format!("endpoint update: {what}"),
            c.ipam.clone().update_endpoint(pb::UpdateEndpointRequest {
                endpoint: "e1".into(),
                set_labels: l,
                ..Default::default()
            }),
            Code::InvalidArgument,
            needle,
            limit,
        )
        .await;
    }
    // Sixty-four labels fit; a sixty-fifth by update does not.
    let full: HashMap<String, String> = (0..63)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    c.ipam
        .clone()
        .update_endpoint(pb::UpdateEndpointRequest {
            endpoint: "e1".into(),
            set_labels: full,
            ..Default::default()
        })
        .await
        .expect("63 labels fit");
    let e1 = c
        .ipam
        .clone()
        .get_endpoint(pb::GetEndpointRequest {
            endpoint: "e1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let room = 64 - e1.labels.len();
    let more: HashMap<String, String> = (0..room + 1)
        .map(|i| (format!("x{i}"), "v".to_string()))
        .collect();
    refused(
        &plane,
        "update past 64 labels",
        c.ipam.clone().update_endpoint(pb::UpdateEndpointRequest {
            endpoint: "e1".into(),
            set_labels: more,
            ..Default::default()
        }),
        Code::InvalidArgument,
        "at most 64",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn named_ports_are_iana_service_names() {
    let (plane, c, _p) = mk_plane().await;
    let port = |name: &str| pb::NamedPort {
        name: name.into(),
        protocol: "tcp".into(),
        port: 80,
    };
    let mb = "p".repeat(MB);
    let cases: Vec<(&str, Vec<pb::NamedPort>, &str)> = vec![
        ("empty name", vec![port("")], "must not be empty"),
        ("1 MB name", vec![port(&mb)], "no more than 15"),
        ("upper case", vec![port("HTTP")], "(a-z, 0-9)"),
        ("digits only", vec![port("8080")], "at least one letter"),
        ("double hyphen", vec![port("a--b")], "consecutive"),
        ("twice", vec![port("http"), port("http")], "twice"),
        (
            "65 ports",
            (0..65).map(|i| port(&format!("p{i}"))).collect(),
            "at most 64",
        ),
        (
            "1 MB protocol",
            vec![pb::NamedPort {
                protocol: mb.clone(),
                ..port("http")
            }],
            "is not tcp",
        ),
    ];
    for (what, ports, needle) in cases {
        refused(
            &plane,
            what,
            c.ipam.clone().allocate(pb::AllocateRequest {
                ports,
                ..mk_alloc("e2", "h1", "t", "default")
            }),
            Code::InvalidArgument,
            needle,
        )
        .await;
    }
}
