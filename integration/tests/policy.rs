//! policy-service against real etcd, in-process on port 0: apply (both forms, several
//! documents, all or nothing, dry run), get, list, delete, and explain answering from etcd's
//! policies, tenants and endpoints.

mod common;

use common::*;
use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use tonic::transport::Channel;
use tonic::Code;

type Policies = pb::policies_client::PoliciesClient<Channel>;

async fn mk_policies(plane: &ControlPlane) -> Policies {
    pb::policies_client::PoliciesClient::new(mk_channel(&plane.url(Service::Policy)).await)
}

/// A cluster with the tenant `backend`, the namespace of the Kubernetes policies below (a
/// NetworkPolicy's namespace must exist, as in Kubernetes).
async fn mk_backend_plane() -> (ControlPlane, Policies) {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    c.tenants.add_tenant(mk_tenant("backend")).await.unwrap();
    let p = mk_policies(&plane).await;
    (plane, p)
}

fn mk_apply(document: &str) -> pb::ApplyPoliciesRequest {
    pb::ApplyPoliciesRequest {
        document: document.into(),
        ..Default::default()
    }
}

const THREE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-in, namespace: backend}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: allow-web, namespace: backend}
  spec:
    podSelector: {matchLabels: {app: api}}
    ingress:
    - from: [{namespaceSelector: {matchLabels: {env: prod}}}]
      ports: [{port: http}]
---
name: dns-out
direction: egress
applied_to: [{tenant: shop}]
peers: [{peer: any}]
rules: [{protocol: udp, ports: [53]}]
"#;

fn actions(resp: &pb::ApplyPoliciesResponse) -> Vec<(String, String)> {
    resp.applied
        .iter()
        .map(|a| (a.policy.as_ref().unwrap().id.clone(), a.action.clone()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_are_applied_listed_got_and_deleted_like_kubectl() {
    let (plane, mut p) = mk_backend_plane().await;

    let first = p
        .apply_policies(mk_apply(THREE))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        actions(&first),
        pairs(&[
            ("backend/deny-in", "created"),
            ("backend/allow-web", "created"),
            ("dns-out", "created"),
        ])
    );
    assert!(first.revision > 0);
    assert!(first
        .applied
        .iter()
        .all(|a| a.policy.as_ref().unwrap().revision == first.revision));

    let again = p
        .apply_policies(mk_apply(THREE))
        .await
        .unwrap()
        .into_inner();
    assert!(again.applied.iter().all(|a| a.action == "unchanged"));
    assert_eq!(again.revision, 0, "nothing was written");

    let changed = THREE.replace("ports: [53]", "ports: [53, 5353]");
    let third = p
        .apply_policies(mk_apply(&changed))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        actions(&third),
        pairs(&[
            ("backend/deny-in", "unchanged"),
            ("backend/allow-web", "unchanged"),
            ("dns-out", "configured"),
        ])
    );

    let got = p
        .get_policy(pb::GetPolicyRequest {
            id: "backend/allow-web".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (got.form.as_str(), got.tenant.as_str(), got.name.as_str()),
        ("kubernetes", "backend", "allow-web")
    );
    let json: serde_json::Value = serde_json::from_str(&got.json).unwrap();
    assert_eq!(
        json["spec"]["policyTypes"],
        serde_json::json!(["Ingress"]),
        "stored after API-server defaulting"
    );
    assert_eq!(json["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");

    let all = p
        .list_policies(pb::ListPoliciesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .policies;
    let ids: Vec<&str> = all.iter().map(|x| x.id.as_str()).collect();
    assert_eq!(ids, ["dns-out", "backend/allow-web", "backend/deny-in"]);
    let backend = p
        .list_policies(pb::ListPoliciesRequest {
            tenant: "backend".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .policies;
    assert_eq!(backend.len(), 2);

    // A stored object applied back as structured input changes nothing.
    let round = p
        .apply_policies(pb::ApplyPoliciesRequest {
            policies: all.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(round.applied.iter().all(|a| a.action == "unchanged"));

    let deleted = p
        .delete_policy(pb::DeletePolicyRequest {
            id: "dns-out".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.policy.unwrap().form, "romana");
    assert_status(
        p.get_policy(pb::GetPolicyRequest {
            id: "dns-out".into(),
        })
        .await,
        Code::NotFound,
        "policy dns-out does not exist",
    );
    assert_refused(
        &plane,
        p.clone().delete_policy(pb::DeletePolicyRequest {
            id: "dns-out".into(),
        }),
        Code::NotFound,
        "dns-out",
    )
    .await;
    assert_refused(
        &plane,
        p.clone()
            .get_policy(pb::GetPolicyRequest { id: "a/b/c".into() }),
        Code::InvalidArgument,
        "TENANT/NAME",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_object_refuses_the_whole_apply_and_names_the_field() {
    let plane = ControlPlane::start().await.unwrap();
    let mut p = mk_policies(&plane).await;
    let bad = format!(
        "{THREE}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: bad, namespace: backend}}\nspec:\n  podSelector: {{}}\n  \
         ingress:\n  - from:\n    - ipBlock: {{cidr: 10.0.0.0/8}}\n      podSelector: {{}}\n"
    );
    assert_refused(
        &plane,
        p.clone().apply_policies(mk_apply(&bad)),
        Code::InvalidArgument,
        "NetworkPolicy \"backend/bad\" is invalid: spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer",
    )
    .await;
    let listed = p
        .list_policies(pb::ListPoliciesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .policies;
    assert!(listed.is_empty(), "nothing is half-applied: {listed:?}");

    for (doc, needle) in [
        ("", "no policy given"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", "no matches for kind \"Pod\""),
        (
            "name: r\ndirection: sideways\napplied_to: [{tenant: a}]\npeers: [{peer: any}]\nrules: [{protocol: any}]\n",
            "unknown variant `sideways`",
        ),
    ] {
        assert_refused(
            &plane,
            p.clone().apply_policies(mk_apply(doc)),
            Code::InvalidArgument,
            needle,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_reports_what_would_happen_and_stores_nothing() {
    let (plane, mut p) = mk_backend_plane().await;
    let before = plane.store().revision().await.unwrap();
    let resp = p
        .apply_policies(pb::ApplyPoliciesRequest {
            document: THREE.into(),
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.dry_run);
    assert_eq!(resp.applied.len(), 3);
    assert!(resp.applied.iter().all(|a| a.action == "created"));
    assert_eq!(plane.store().revision().await.unwrap(), before);
}

/// A cluster for explain: hosts h1, h2; tenants frontend (none, env=prod), backend (none,
/// env=prod), shop (segment) with segment web; endpoints fe1, be1 (http=tcp/8080), be2,
/// web1, web2, api.
async fn mk_explain_cluster() -> (ControlPlane, Policies) {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    c.topology
        .add_host(mk_host("h1", "192.168.0.1", None))
        .await
        .unwrap();
    c.topology
        .add_host(mk_host("h2", "192.168.0.2", None))
        .await
        .unwrap();
    for (name, isolation) in [
        ("frontend", pb::Isolation::None),
        ("backend", pb::Isolation::None),
        ("shop", pb::Isolation::Segment),
    ] {
        c.tenants
            .add_tenant(pb::AddTenantRequest {
                name: name.into(),
                isolation: isolation.into(),
                labels: [("env".to_string(), "prod".to_string())].into(),
            })
            .await
            .unwrap();
    }
    c.tenants
        .add_segment(pb::AddSegmentRequest {
            tenant: "shop".into(),
            name: "web".into(),
        })
        .await
        .unwrap();
    let eps = [
        ("fe1", "h1", "frontend", "default", "web", None),
        ("be1", "h2", "backend", "default", "api", Some(8080)),
        ("be2", "h1", "backend", "default", "db", None),
        ("web1", "h1", "shop", "web", "web", None),
        ("web2", "h2", "shop", "web", "web", None),
        ("api", "h1", "shop", "default", "api", None),
    ];
    for (id, host, tenant, segment, app, http) in eps {
        let mut req = mk_alloc(id, host, tenant, segment);
        req.labels = [("app".to_string(), app.to_string())].into();
        if let Some(port) = http {
            req.ports = vec![pb::NamedPort {
                name: "http".into(),
                protocol: "tcp".into(),
                port,
            }];
        }
        c.ipam.allocate(req).await.unwrap();
    }
    let p = mk_policies(&plane).await;
    (plane, p)
}

fn mk_explain(from: &str, to: &str, proto: &str, port: Option<u32>) -> pb::ExplainRequest {
    pb::ExplainRequest {
        from: from.into(),
        to: to.into(),
        protocol: proto.into(),
        port,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_answers_from_etcd_with_tier_policy_and_rule() {
    let (plane, mut p) = mk_explain_cluster().await;
    let asker = p.clone();
    let ask = |from: &str, to: &str, proto: &str, port: Option<u32>| {
        let mut p = asker.clone();
        let req = mk_explain(from, to, proto, port);
        async move { p.explain(req).await.unwrap().into_inner() }
    };

    // Baseline only.
    let r = ask("web1", "web2", "tcp", Some(80)).await;
    assert_eq!((r.verdict.as_str(), r.tier.as_str()), ("allow", "baseline"));
    let r = ask("api", "web1", "tcp", Some(80)).await;
    assert_eq!((r.verdict.as_str(), r.tier.as_str()), ("deny", "baseline"));
    assert!(r.reason.contains("isolation segment"), "{}", r.reason);
    let r = ask("fe1", "be1", "tcp", Some(8080)).await;
    assert_eq!(r.verdict, "allow");
    let r = ask("192.168.0.2", "be1", "tcp", Some(10250)).await;
    assert_eq!((r.verdict.as_str(), r.tier.as_str()), ("allow", "host"));

    p.apply_policies(mk_apply(THREE)).await.unwrap();
    let r = ask("fe1", "be1", "tcp", Some(8080)).await;
    assert_eq!(
        (
            r.verdict.as_str(),
            r.tier.as_str(),
            r.policy.as_str(),
            r.rule
        ),
        ("allow", "network_policy", "backend/allow-web", Some(0))
    );
    assert_eq!(r.direction, "ingress");
    let r = ask("fe1", "be1", "tcp", Some(80)).await;
    assert_eq!(
        (r.verdict.as_str(), r.tier.as_str()),
        ("deny", "network_policy")
    );
    assert!(
        r.reason.contains("backend/allow-web, backend/deny-in"),
        "{}",
        r.reason
    );
    let decision: serde_json::Value = serde_json::from_str(&r.decision_json).unwrap();
    assert_eq!(
        decision["ingress"]["selected_by"].as_array().unwrap().len(),
        2
    );
    // By address as well as by endpoint id.
    let r = ask("8.8.8.8", &r.to_address, "tcp", Some(8080)).await;
    assert_eq!(r.verdict, "deny");
    let r = ask("web1", "8.8.8.8", "udp", Some(53)).await;
    assert_eq!(
        (r.verdict.as_str(), r.tier.as_str(), r.policy.as_str()),
        ("allow", "baseline", "dns-out")
    );

    // be2 (app=db) is selected by deny-in only.
    let r = ask("fe1", "be2", "tcp", Some(8080)).await;
    assert_eq!(r.verdict, "deny");

    for (req, needle) in [
        (
            mk_explain("nope", "be1", "tcp", Some(1)),
            "from: \"nope\" is neither",
        ),
        (mk_explain("fe1", "be1", "gre", None), "protocol:"),
        (
            mk_explain("fe1", "be1", "icmp", Some(1)),
            "port: icmp has no ports",
        ),
        (mk_explain("fe1", "be1", "tcp", Some(70000)), "port: 70000"),
    ] {
        assert_refused(
            &plane,
            p.clone().explain(req),
            Code::InvalidArgument,
            needle,
        )
        .await;
    }
}
