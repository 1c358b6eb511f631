//! Bad input through the real services (real etcd, in-process on port 0): each is refused
//! with the right code, in under 100 ms measured around the round trip, with a message under
//! 300 bytes however big the input, and with etcd's revision unchanged.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use common::*;
use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use tonic::transport::Channel;
use tonic::Code;

const MB: usize = 1 << 20;
/// Refused before any expensive work: well under what parsing or etcd would take.
const FAST: Duration = Duration::from_millis(100);
const SHORT: usize = 300;

type Policies = pb::policies_client::PoliciesClient<Channel>;

/// Asserts `call` is refused with `code` and a message holding `needle`, fast, with a short
/// message, and that etcd did not change. Returns the round trip.
async fn refused<T, F>(
    plane: &ControlPlane,
    what: &str,
    call: F,
    code: Code,
    needle: &str,
) -> Duration
where
    T: std::fmt::Debug,
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    refused_within(plane, what, call, code, needle, FAST).await
}

/// [`refused`] for a request of several MB, whose mere transfer through a debug build of
/// tonic takes a while: `limit` instead of [`FAST`].
async fn refused_within<T, F>(
    plane: &ControlPlane,
    what: &str,
    call: F,
    code: Code,
    needle: &str,
    limit: Duration,
) -> Duration
where
    T: std::fmt::Debug,
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let before = plane.store().revision().await.expect("revision");
    let start = Instant::now();
    let result = call.await;
    let took = start.elapsed();
    let status = match result {
        Ok(r) => panic!("{what}: expected {code:?}, got {:?}", r.into_inner()),
        Err(s) => s,
    };
    assert_eq!(status.code(), code, "{what}: {}", status.message());
    assert!(
        status.message().contains(needle),
        "{what}: message {:?} lacks {needle:?}",
        status.message()
    );
    assert!(
        status.message().len() < SHORT,
        "{what}: message is {} bytes: {}",
        status.message().len(),
        status.message()
    );
    assert!(took < limit, "{what}: refused in {took:?}");
    let after = plane.store().revision().await.expect("revision");
    assert_eq!(before, after, "{what}: a refused request changed etcd");
    took
}

async fn mk_plane() -> (ControlPlane, Clients, Policies) {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    c.topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("t")).await.unwrap();
    c.ipam
        .allocate(mk_alloc("e1", "h1", "t", "default"))
        .await
        .unwrap();
    let p = pb::policies_client::PoliciesClient::new(mk_channel(&plane.url(Service::Policy)).await);
    (plane, c, p)
}

fn doc(text: String) -> pb::ApplyPoliciesRequest {
    pb::ApplyPoliciesRequest {
        document: text,
        ..Default::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

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
            ipam.clone().release(pb::ReleaseRequest {
                target: Some(pb::release_request::Target::Endpoint(id.into())),
            }),
            Code::InvalidArgument,
            "endpoint name",
        )
        .await;
    }
    refused(
        &plane,
        "release a 1 MB address",
        ipam.clone().release(pb::ReleaseRequest {
            target: Some(pb::release_request::Target::Address(mb.clone())),
        }),
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
        .release(pb::ReleaseRequest {
            target: Some(pb::release_request::Target::Endpoint("gone".into())),
        })
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
