//! Bad input through the real services (real etcd, in-process on port 0): policy documents,
//! ids, host addresses and names. Each is refused with the right code, in under 100 ms
//! measured around the round trip, with a message under 300 bytes however big the input, and
//! with etcd's revision unchanged (see `common/refused.rs`).

mod common;

use std::time::{Duration, Instant};

use common::refused::*;
use common::*;
use romana_proto::pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread")]
async fn oversized_and_deeply_nested_policy_documents_are_refused_before_parsing() {
    let (plane, _c, p) = mk_plane().await;
    let cases = [
        (
            "200 KB of nested [ in YAML",
            "a: ".to_string() + &"[".repeat(200_000),
            "levels",
        ),
        ("1 MB of nested [ (JSON)", "[".repeat(MB - 1), "levels"),
        ("nested block sequences", "- ".repeat(300_000), "levels"),
        (
            "1 MiB + 1 byte",
            format!("# {}", "x".repeat(MB - 1)),
            "1 MiB",
        ),
        (
            "just over 1 MiB, nested",
            "a: ".to_string() + &"{a: ".repeat(MB / 4),
            "1 MiB",
        ),
    ];
    for (what, text, needle) in cases {
        let took = refused(
            &plane,
            what,
            p.clone().apply_policies(doc(text)),
            Code::InvalidArgument,
            needle,
        )
        .await;
        println!("{what}: refused in {took:?}");
    }
    // Past the servers' decode limit (4 MiB) tonic itself refuses, before our code runs.
    let took = refused_within(
        &plane,
        "5 MB document",
        p.clone().apply_policies(doc("#".repeat(5 * MB))),
        Code::OutOfRange,
        "decoded message length too large",
        4 * FAST,
    )
    .await;
    println!("5 MB document: refused in {took:?}");
    let split = pb::ApplyPoliciesRequest {
        policies: (0..101)
            .map(|i| pb::Policy {
                json: format!(r#"{{"name":"p{i}"}}"#),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    refused(
        &plane,
        "101 policies",
        p.clone().apply_policies(split),
        Code::InvalidArgument,
        "at most 100",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_parsing_a_big_document_still_answers_other_calls() {
    let (plane, mut c, p) = mk_plane().await;
    c.tenants.add_tenant(mk_tenant("backend")).await.unwrap();
    // Valid and shallow, but close to 1 MiB: parsing takes a while.
    let values: Vec<String> = (0..110_000).map(|i| format!("v{i}")).collect();
    let big = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: big, namespace: backend}}\n\
         spec:\n  podSelector:\n    matchExpressions:\n    - {{key: app, operator: In, values: [{}]}}\n",
        values.join(", ")
    );
    assert!(big.len() < MB, "{} bytes", big.len());
    let mut slow = p.clone();
    let apply = tokio::spawn(async move {
        let start = Instant::now();
        let r = slow
            .apply_policies(pb::ApplyPoliciesRequest {
                document: big,
                dry_run: true,
                ..Default::default()
            })
            .await;
        (r.map(|r| r.into_inner().applied.len()), start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let start = Instant::now();
    p.clone()
        .list_policies(pb::ListPoliciesRequest::default())
        .await
        .expect("list answers");
    let list_took = start.elapsed();
    let deep_took = refused(
        &plane,
        "nested document beside a big one",
        p.clone()
            .apply_policies(doc("a: ".to_string() + &"[".repeat(200_000))),
        Code::InvalidArgument,
        "levels",
    )
    .await;
    let (applied, apply_took) = apply.await.unwrap();
    assert_eq!(applied.expect("the big document is valid"), 1);
    println!("big apply {apply_took:?}; meanwhile list {list_took:?}, refusal {deep_took:?}");
    assert!(list_took < FAST, "list took {list_took:?} beside a parse");
    assert!(
        apply_took > list_took + deep_took,
        "the big parse ({apply_took:?}) was not running while the others answered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_network_policy_needs_its_namespace_to_be_a_tenant() {
    let (plane, _c, p) = mk_plane().await;
    let text = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                metadata: {name: deny, namespace: nosuch}\nspec: {podSelector: {}}\n";
    refused(
        &plane,
        "namespace without tenant",
        p.clone().apply_policies(doc(text.into())),
        Code::FailedPrecondition,
        "tenant nosuch does not exist",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_or_malformed_ids_are_refused_with_a_short_message() {
    let (plane, c, p) = mk_plane().await;
    let mb = "e".repeat(MB);
    let ipam = &c.ipam;
    refused(
        &plane,
        "get 1 MB id",
        ipam.clone().get_endpoint(pb::GetEndpointRequest {
            endpoint: mb.clone(),
        }),
        Code::InvalidArgument,
        "characters long",
    )
    .await;
    refused(
        &plane,
        "allocate 1 MB id",
        ipam.clone().allocate(mk_alloc(&mb, "h1", "t", "default")),
        Code::InvalidArgument,
        "characters long",
    )
    .await;
    refused(
        &plane,
        "allocate on 1 MB host",
        ipam.clone().allocate(mk_alloc("e2", &mb, "t", "default")),
        Code::InvalidArgument,
        "characters long",
    )
    .await;
    refused(
        &plane,
        "allocate 1 MB address",
        ipam.clone().allocate(pb::AllocateRequest {
            address: mb.clone(),
            ..mk_alloc("e2", "h1", "t", "default")
        }),
        Code::InvalidArgument,
        "is not an IP address",
    )
    .await;
    for (what, id) in [
        ("1 MB id", mb.as_str()),
        ("id with a space", "a b"),
        ("id with a slash", "a/b"),
        ("empty id", ""),
    ] {
        refused(
            &plane,
            &format!("release {what}"),
            ipam.clone().release(pb::ReleaseRequest::endpoint(id)),
            Code::InvalidArgument,
            "endpoint name",
        )
        .await;
    }
    refused(
        &plane,
        "release a 1 MB address",
        ipam.clone()
            .release(pb::ReleaseRequest::address(mb.clone())),
        Code::InvalidArgument,
        "is not an IP address",
    )
    .await;
    refused(
        &plane,
        "get host 1 MB",
        c.topology
            .clone()
            .get_host(pb::GetHostRequest { name: mb.clone() }),
        Code::InvalidArgument,
        "characters long",
    )
    .await;
    refused(
        &plane,
        "get tenant 1 MB",
        c.tenants
            .clone()
            .get_tenant(pb::GetTenantRequest { name: mb.clone() }),
        Code::InvalidArgument,
        "characters long",
    )
    .await;
    refused(
        &plane,
        "get policy 1 MB",
        p.clone()
            .get_policy(pb::GetPolicyRequest { id: mb.clone() }),
        Code::InvalidArgument,
        "characters long",
    )
    .await;
    refused(
        &plane,
        "explain from 1 MB",
        p.clone().explain(pb::ExplainRequest {
            from: mb.clone(),
            to: "e1".into(),
            protocol: "tcp".into(),
            ..Default::default()
        }),
        Code::InvalidArgument,
        "characters long",
    )
    .await;
    refused(
        &plane,
        "explain 1 MB protocol",
        p.clone().explain(pb::ExplainRequest {
            from: "e1".into(),
            to: "e1".into(),
            protocol: mb.clone(),
            ..Default::default()
        }),
        Code::InvalidArgument,
        "is not tcp",
    )
    .await;
    // An unknown but well-formed id is still released idempotently.
    ipam.clone()
        .release(pb::ReleaseRequest::endpoint("gone"))
        .await
        .expect("unknown ids release as before");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_addresses_are_unicast_and_names_lowercase() {
    let (plane, c, _p) = mk_plane().await;
    for ip in [
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "ff02::1",
        "::",
        "::ffff:224.0.0.1",
    ] {
        refused(
            &plane,
            ip,
            c.topology.clone().add_host(mk_host("h9", ip, None)),
            Code::InvalidArgument,
            "unicast",
        )
        .await;
    }
    // Loopback stays allowed: single-machine labs and the Neutron tests use it.
    c.topology
        .clone()
        .add_host(mk_host("h9", "127.0.1.9", None))
        .await
        .expect("loopback host");
    let mb = "h".repeat(MB);
    refused(
        &plane,
        "host H1",
        c.topology
            .clone()
            .add_host(mk_host("H1", "192.168.0.21", None)),
        Code::InvalidArgument,
        "names are lowercase",
    )
    .await;
    refused(
        &plane,
        "host 1 MB",
        c.topology
            .clone()
            .add_host(mk_host(&mb, "192.168.0.21", None)),
        Code::InvalidArgument,
        "characters long",
    )
    .await;
    refused(
        &plane,
        "host a_b",
        c.topology
            .clone()
            .add_host(mk_host("a_b", "192.168.0.21", None)),
        Code::InvalidArgument,
        "contains '_'",
    )
    .await;
    refused(
        &plane,
        "tenant T",
        c.tenants.clone().add_tenant(mk_tenant("T")),
        Code::InvalidArgument,
        "use \"t\"",
    )
    .await;
    refused(
        &plane,
        "tenant 1 MB",
        c.tenants.clone().add_tenant(mk_tenant(&mb)),
        Code::InvalidArgument,
        "characters long",
    )
    .await;
    refused(
        &plane,
        "tenant with a dot",
        c.tenants.clone().add_tenant(mk_tenant("a.b")),
        Code::InvalidArgument,
        "contains '.'",
    )
    .await;
    refused(
        &plane,
        "segment Web",
        c.tenants.clone().add_segment(pb::AddSegmentRequest {
            tenant: "t".into(),
            name: "Web".into(),
        }),
        Code::InvalidArgument,
        "names are lowercase",
    )
    .await;
}
