//! `--watch` through the real binary against a real control plane: a change made through
//! the API (or, for host status, the agent's own status write) is printed within 2 s, and
//! a signal ends the watch with exit 0.

mod support;

use std::time::Duration;

use romana_integration::cluster::CONFIG_INIT;
use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use serde_json::json;
use support::{romanactl, watching};

/// Within this a change must be on romanactl's stdout.
const SOON: Duration = Duration::from_secs(2);

/// A plane with a layout, host h1 and tenant t1 (with its `default` segment).
async fn mk_cluster() -> (ControlPlane, String) {
    let plane = ControlPlane::start().await.expect("control plane starts");
    let root = plane.root_url();
    romanactl(&root, &CONFIG_INIT).await.ok();
    romanactl(&root, &["host", "add", "h1", "--ip", "192.168.0.1"])
        .await
        .ok();
    romanactl(&root, &["tenant", "add", "t1"]).await.ok();
    (plane, root)
}

fn ids(listing: &serde_json::Value, field: &str) -> Vec<String> {
    listing
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {listing}"))
        .iter()
        .map(|e| e[field].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ipam_list_watch_prints_each_allocation_and_release_and_exits_0_on_sigterm() {
    let (plane, root) = mk_cluster().await;
    // --timeout 1: a watch outlives the per-call timeout, which bounds only its start.
    let mut watch = watching(
        &root,
        &["ipam", "list", "--watch", "-o", "json", "--timeout", "1"],
    );
    assert_eq!(watch.json(SOON * 5).await, json!([]));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut ipam = pb::ipam_client::IpamClient::connect(plane.url(Service::Ipam))
        .await
        .unwrap();
    let allocate = |id: &str| pb::AllocateRequest {
        endpoint: id.into(),
        host: "h1".into(),
        tenant: "t1".into(),
        ..Default::default()
    };
    let e1 = ipam.allocate(allocate("e1")).await.unwrap().into_inner();
    let listing = watch.json(SOON).await;
    assert_eq!(ids(&listing, "endpoint"), ["e1"]);
    assert_eq!(listing[0]["address"], e1.address);
    assert_eq!(listing[0]["host"], "h1");

    // A burst is one listing or a few, ending with all of it; never a listing per key.
    for id in ["e2", "e3", "e4"] {
        ipam.allocate(allocate(id)).await.unwrap();
    }
    let mut last = watch.json(SOON).await;
    while ids(&last, "endpoint").len() < 4 {
        last = watch.json(SOON).await;
    }
    let mut all = ids(&last, "endpoint");
    all.sort();
    assert_eq!(all, ["e1", "e2", "e3", "e4"]);

    ipam.release(pb::ReleaseRequest::endpoint("e1"))
        .await
        .unwrap();
    assert_eq!(ids(&watch.json(SOON).await, "endpoint").len(), 3);
    // A change that leaves this listing as it was prints nothing.
    romanactl(&root, &["tenant", "add", "t2"]).await.ok();
    watch.silent_for(Duration::from_millis(500)).await;

    let (code, stderr) = watch.stop("TERM").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_list_watch_follows_apply_and_delete_and_exits_0_on_ctrl_c() {
    let (plane, root) = mk_cluster().await;
    let mut watch = watching(
        &root,
        &["policy", "list", "-w", "-o", "json", "--tenant", "t1"],
    );
    assert_eq!(watch.json(SOON * 5).await, json!([]));

    let mut policies = pb::policies_client::PoliciesClient::connect(plane.url(Service::Policy))
        .await
        .unwrap();
    let document = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                    metadata: {name: deny-in, namespace: t1}\n\
                    spec: {podSelector: {}, policyTypes: [Ingress]}\n";
    policies
        .apply_policies(pb::ApplyPoliciesRequest {
            document: document.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let listing = watch.json(SOON).await;
    assert_eq!(ids(&listing, "id"), ["t1/deny-in"]);
    assert_eq!(listing[0]["form"], "kubernetes");

    policies
        .delete_policy(pb::DeletePolicyRequest {
            id: "t1/deny-in".into(),
        })
        .await
        .unwrap();
    assert_eq!(watch.json(SOON).await, json!([]));

    let (code, stderr) = watch.stop("INT").await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_status_watch_reprints_the_table_when_an_agent_reports() {
    let (plane, root) = mk_cluster().await;
    let mut table = watching(&root, &["host", "status", "--watch"]);
    let mut one = watching(&root, &["host", "status", "h1", "--watch", "-o", "json"]);
    let separator = table.line(SOON * 5).await;
    assert!(
        separator.starts_with("--- 20") && separator.ends_with('Z'),
        "{separator}"
    );
    assert!(table.line(SOON).await.starts_with("HOST "));
    assert!(table.line(SOON).await.starts_with("h1     <none>"));
    assert_eq!(one.json(SOON * 5).await["reported"], false);

    // What h1's agent writes (romana-agent's StatusWriter does exactly this put).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let record = json!({
        "host": "h1", "revision": 42, "routes": ["10.1.0.0/16 via 192.168.0.2"],
        "nft_rules": 12, "nft_sets": 3, "nft_elements": 40, "converged": true,
        "blocked": [], "problems": [], "applied_at": now, "alive_at": now,
    });
    let store = plane.store();
    let status = serde_json::from_value(record).expect("an agent status record");
    store
        .put(&store.keys().agent_status("h1"), &status)
        .await
        .unwrap();

    assert!(table.line(SOON).await.starts_with("--- "));
    assert!(table.line(SOON).await.starts_with("HOST "));
    let row = table.line(SOON).await;
    assert!(row.starts_with("h1     42         true        up"), "{row}");
    let h1 = one.json(SOON).await;
    assert_eq!(
        (h1["host"].clone(), h1["revision"].clone()),
        (json!("h1"), json!(42))
    );

    // The host goes: the table loses its row, the one-host watch prints null.
    romanactl(&root, &["host", "remove", "h1"]).await.ok();
    assert!(table.line(SOON).await.starts_with("--- "));
    assert!(table.line(SOON).await.starts_with("HOST "));
    assert_eq!(one.json(SOON).await, json!(null));

    for watch in [table, one] {
        let (code, stderr) = watch.stop("TERM").await;
        assert_eq!(code, Some(0), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_refusals_before_the_first_listing_are_the_commands_error() {
    let (_plane, root) = mk_cluster().await;
    let line = romanactl(&root, &["host", "status", "nope", "--watch"])
        .await
        .error();
    assert_eq!(line, "error: not found: host nope does not exist");
    let line = romanactl(&root, &["ipam", "list", "--watch", "--host", "bad name"])
        .await
        .error();
    assert!(line.starts_with("error: invalid argument: "), "{line}");
}
