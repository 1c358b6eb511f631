//! End to end: the real `romanactl` binary against a real control plane (etcd plus root,
//! topology, tenant and ipam in-process on loopback port 0), found through root alone as
//! an operator's romanactl would. Each test starts its own control plane.

mod support;

use romana_integration::cluster::CONFIG_INIT;
use romana_integration::ControlPlane;
use serde_json::{json, Value};
use support::{romanactl, Run};

/// A control plane and its root URL.
async fn mk_plane() -> (ControlPlane, String) {
    let plane = ControlPlane::start().await.expect("control plane starts");
    let root = plane.root_url();
    (plane, root)
}

/// A control plane with the MISSION example layout (and `rack_bits` racks) set through
/// romanactl.
async fn mk_cluster(rack_bits: &str) -> (ControlPlane, String) {
    let (plane, root) = mk_plane().await;
    romanactl(&root, &init_args(rack_bits)).await.ok();
    (plane, root)
}

/// `romanactl ipam allocate --endpoint ENDPOINT --host HOST --tenant TENANT EXTRA...`.
async fn allocate(root: &str, endpoint: &str, host: &str, tenant: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "ipam",
        "allocate",
        "--endpoint",
        endpoint,
        "--host",
        host,
        "--tenant",
        tenant,
    ];
    args.extend_from_slice(extra);
    romanactl(root, &args).await
}

fn init_args(rack_bits: &str) -> Vec<&str> {
    [&CONFIG_INIT[..], &["--rack-bits", rack_bits]].concat()
}

#[tokio::test(flavor = "multi_thread")]
async fn config_init_then_show_in_table_json_and_yaml() {
    let (_plane, root) = mk_plane().await;

    let line = romanactl(&root, &["config", "show"]).await.error();
    assert!(line.contains("romanactl config init"), "{line}");

    let table = romanactl(&root, &init_args("0")).await.ok();
    assert_eq!(
        table,
        "ADDRESS-SPACE   HOST-BITS   RACK-BITS   TENANT-BITS   SEGMENT-BITS   ENDPOINT-BITS   SINGLE-TENANT   CHANGED\n\
         10.0.0.0/8      8           0           4             4              8               false           true\n"
    );
    let mut again = init_args("0");
    again.extend(["-o", "json"]);
    let again = romanactl(&root, &again).await.json();
    assert_eq!(
        again["changed"], false,
        "the same layout again changes nothing"
    );

    let shown = romanactl(&root, &["config", "show"]).await.ok();
    assert_eq!(
        shown,
        "ADDRESS-SPACE   HOST-BITS   RACK-BITS   TENANT-BITS   SEGMENT-BITS   ENDPOINT-BITS   SINGLE-TENANT\n\
         10.0.0.0/8      8           0           4             4              8               false\n"
    );
    let json = romanactl(&root, &["config", "show", "-o", "json"])
        .await
        .json();
    assert_eq!(
        json,
        json!({
            "address_space": "10.0.0.0/8",
            "host_bits": 8,
            "rack_bits": 0,
            "tenant_bits": 4,
            "segment_bits": 4,
            "endpoint_bits": 8,
            "single_tenant": false,
        })
    );
    let yaml = romanactl(&root, &["config", "show", "-o", "yaml"])
        .await
        .ok();
    assert!(yaml.starts_with("address_space: 10.0.0.0/8\n"), "{yaml}");

    let line = romanactl(
        &root,
        &[
            "config",
            "init",
            "--address-space",
            "10.0.0/8",
            "--host-bits",
            "8",
            "--single-tenant",
        ],
    )
    .await
    .error();
    assert!(line.starts_with("error: invalid argument: "), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_are_added_listed_shown_and_removed_with_force_semantics() {
    let (_plane, root) = mk_cluster("0").await;

    romanactl(&root, &["host", "add", "h1", "--ip", "192.168.0.1"])
        .await
        .ok();
    let h2 = romanactl(
        &root,
        &["host", "add", "h2", "--ip", "192.168.0.2", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(
        h2,
        json!({"name": "h2", "ip": "192.168.0.2", "rack": 0, "index": 1, "prefix": "10.1.0.0/16"})
    );
    let list = romanactl(&root, &["host", "list"]).await.ok();
    assert_eq!(
        list,
        "NAME   IP            RACK   INDEX   PREFIX\n\
         h1     192.168.0.1   0      0       10.0.0.0/16\n\
         h2     192.168.0.2   0      1       10.1.0.0/16\n"
    );
    let shown = romanactl(&root, &["host", "show", "h2"]).await.ok();
    assert_eq!(
        shown,
        "NAME   IP            RACK   INDEX   PREFIX\n\
         h2     192.168.0.2   0      1       10.1.0.0/16\n"
    );

    // Errors: one line, exit 1, the service's message behind a code word.
    assert_eq!(
        romanactl(&root, &["host", "show", "h9"]).await.error(),
        "error: not found: host h9 does not exist"
    );
    let dup = romanactl(&root, &["host", "add", "h1", "--ip", "192.168.0.9"])
        .await
        .error();
    assert!(dup.starts_with("error: already exists: host h1"), "{dup}");
    let frozen = romanactl(&root, &init_args("2")).await.error();
    assert!(
        frozen.starts_with("error: refused: the layout cannot change once hosts exist"),
        "{frozen}"
    );

    // A host with an endpoint is removed only with --force, which releases the endpoint.
    romanactl(&root, &["tenant", "add", "t1"]).await.ok();
    allocate(&root, "e1", "h1", "t1", &[]).await.ok();
    let refused = romanactl(&root, &["host", "remove", "h1"]).await.error();
    assert!(refused.starts_with("error: refused: host h1"), "{refused}");
    assert!(refused.contains("--force"), "{refused}");
    let removed = romanactl(&root, &["host", "remove", "h1", "--force"])
        .await
        .ok();
    assert_eq!(
        removed,
        "removed host h1 (192.168.0.1, prefix 10.0.0.0/16); released 1 endpoint\n"
    );
    let endpoints = romanactl(&root, &["ipam", "list", "-o", "json"])
        .await
        .json();
    assert_eq!(endpoints, json!([]));
    let removed = romanactl(&root, &["host", "remove", "h2", "-o", "json"])
        .await
        .json();
    assert_eq!(removed["removed"]["name"], "h2");
    assert_eq!(removed["released_endpoints"], 0);
    assert_eq!(
        romanactl(&root, &["host", "list"]).await.ok(),
        "NAME   IP   RACK   INDEX   PREFIX\n"
    );
    let gone = romanactl(&root, &["host", "remove", "h2"]).await.error();
    assert_eq!(gone, "error: not found: host h2 does not exist");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_and_segments_are_added_updated_listed_and_removed() {
    let (_plane, root) = mk_cluster("0").await;

    let t1 = romanactl(
        &root,
        &["tenant", "add", "t1", "--label", "team=a", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(
        t1,
        json!({
            "name": "t1",
            "id": 0,
            "isolation": "segment",
            "labels": {"kubernetes.io/metadata.name": "t1", "team": "a"},
            "match": "10.0.0.0 & 255.0.240.0",
        })
    );
    let t2 = romanactl(&root, &["tenant", "add", "t2", "--isolation", "none"])
        .await
        .ok();
    assert_eq!(
        t2,
        "NAME   ID   ISOLATION   MATCH                     LABELS\n\
         t2     1    none        10.0.16.0 & 255.0.240.0   kubernetes.io/metadata.name=t2\n"
    );
    let dup = romanactl(&root, &["tenant", "add", "t1"]).await.error();
    assert!(dup.starts_with("error: already exists: tenant t1"), "{dup}");

    let updated = romanactl(
        &root,
        &[
            "tenant",
            "update",
            "t1",
            "--isolation",
            "tenant",
            "--label",
            "env=prod",
            "--remove-label",
            "team",
            "-o",
            "json",
        ],
    )
    .await
    .json();
    assert_eq!(updated["isolation"], "tenant");
    assert_eq!(
        updated["labels"],
        json!({"env": "prod", "kubernetes.io/metadata.name": "t1"})
    );
    assert_eq!(updated["id"], 0, "the tenant number never changes");

    let list = romanactl(&root, &["tenant", "list", "-o", "json"])
        .await
        .json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t1", "t2"]);
    let shown = romanactl(&root, &["tenant", "show", "t2", "-o", "yaml"])
        .await
        .ok();
    assert!(
        shown.starts_with("name: t2\nid: 1\nisolation: none\n"),
        "{shown}"
    );

    let web = romanactl(&root, &["segment", "add", "t1", "web"])
        .await
        .ok();
    assert_eq!(
        web,
        "TENANT   NAME   ID   MATCH\n\
         t1       web    1    10.0.1.0 & 255.0.255.0\n"
    );
    assert_eq!(
        romanactl(&root, &["segment", "list"]).await.ok(),
        "TENANT   NAME      ID   MATCH\n\
         t1       default   0    10.0.0.0 & 255.0.255.0\n\
         t1       web       1    10.0.1.0 & 255.0.255.0\n\
         t2       default   0    10.0.16.0 & 255.0.255.0\n"
    );
    let of_t1 = romanactl(&root, &["segment", "list", "t1", "-o", "json"])
        .await
        .json();
    assert_eq!(
        of_t1,
        json!([
            {"tenant": "t1", "name": "default", "id": 0, "match": "10.0.0.0 & 255.0.255.0"},
            {"tenant": "t1", "name": "web", "id": 1, "match": "10.0.1.0 & 255.0.255.0"},
        ])
    );
    let default = romanactl(&root, &["segment", "remove", "t1", "default"])
        .await
        .error();
    assert!(default.starts_with("error: refused: "), "{default}");
    assert_eq!(
        romanactl(&root, &["segment", "remove", "t1", "web"])
            .await
            .ok(),
        "removed segment t1/web (number 1)\n"
    );
    let removed = romanactl(&root, &["tenant", "remove", "t2", "-o", "json"])
        .await
        .json();
    assert_eq!(removed["removed"]["name"], "t2");
    assert_eq!(
        romanactl(&root, &["tenant", "remove", "t1"]).await.ok(),
        "removed tenant t1 (number 0) and its segments\n"
    );
    assert_eq!(
        romanactl(&root, &["tenant", "show", "t1"]).await.error(),
        "error: not found: tenant t1 does not exist"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ipam_allocates_lists_shows_and_releases() {
    let (_plane, root) = mk_cluster("0").await;
    romanactl(&root, &["host", "add", "h1", "--ip", "192.168.0.1"])
        .await
        .ok();
    romanactl(&root, &["host", "add", "h2", "--ip", "192.168.0.2"])
        .await
        .ok();
    romanactl(&root, &["tenant", "add", "t1"]).await.ok();
    romanactl(&root, &["segment", "add", "t1", "web"])
        .await
        .ok();

    let alloc = [
        "ipam",
        "allocate",
        "--endpoint",
        "c1-eth0",
        "--host",
        "h1",
        "--tenant",
        "t1",
        "--segment",
        "web",
        "--label",
        "app=web",
        "--port",
        "http=tcp/80",
        "-o",
        "json",
    ];
    let e1 = romanactl(&root, &alloc).await.json();
    // The CONVENTIONS fields.
    for field in ["endpoint", "address", "host", "tenant", "segment"] {
        assert!(e1[field].is_string(), "{field} missing from {e1}");
    }
    assert_eq!(e1["endpoint"], "c1-eth0");
    assert_eq!(
        (&e1["host"], &e1["tenant"], &e1["segment"]),
        (&json!("h1"), &json!("t1"), &json!("web"))
    );
    assert_eq!(e1["segment_cidr"], "10.0.1.0/24");
    assert!(
        e1["address"].as_str().unwrap().starts_with("10.0.1."),
        "{e1}"
    );
    assert_eq!(e1["labels"], json!({"app": "web"}));
    assert_eq!(
        e1["ports"],
        json!([{"name": "http", "protocol": "tcp", "port": 80}])
    );
    let retried = romanactl(&root, &alloc).await.json();
    assert_eq!(
        retried, e1,
        "a retried allocation returns the address already held"
    );

    let e2 = allocate(
        &root,
        "c2-eth0",
        "h2",
        "t1",
        &["--pod", "t1/api-0", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(e2["segment"], "default");
    assert_eq!(e2["pod"], json!({"namespace": "t1", "name": "api-0"}));
    let no_namespace = allocate(&root, "c3-eth0", "h2", "t1", &["--pod", "api-0"]).await;
    assert_eq!(no_namespace.code, 2, "a usage error: {no_namespace:?}");
    assert_eq!(no_namespace.stderr.lines().count(), 1, "{no_namespace:?}");
    assert!(
        no_namespace
            .stderr
            .contains("\"api-0\" is not NAMESPACE/NAME"),
        "{no_namespace:?}"
    );
    assert!(
        e2["address"].as_str().unwrap().starts_with("10.1.0."),
        "{e2}"
    );

    // The Neutron shape: placement by segment CIDR.
    let e3 = romanactl(
        &root,
        &[
            "ipam",
            "allocate",
            "--endpoint",
            "port-3",
            "--cidr",
            "10.0.1.0/24",
            "-o",
            "json",
        ],
    )
    .await
    .json();
    assert_eq!((&e3["host"], &e3["segment"]), (&json!("h1"), &json!("web")));

    let table = romanactl(&root, &["ipam", "show", "c2-eth0"]).await.ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("ENDPOINT   ADDRESS"), "{table}");
    assert!(lines[1].starts_with("c2-eth0    10.1.0."), "{table}");

    let on_h1 = romanactl(&root, &["ipam", "list", "--host", "h1", "-o", "json"])
        .await
        .json();
    let ids: Vec<&str> = on_h1
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["endpoint"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.contains(&"c1-eth0") && ids.contains(&"port-3"),
        "{ids:?}"
    );
    let all = romanactl(&root, &["ipam", "list"]).await.ok();
    assert_eq!(all.lines().count(), 4, "header and three endpoints: {all}");
    let header = all.lines().next().unwrap();
    assert!(header.trim_end().ends_with("INTERFACE   POD"), "{all}");
    let pod_row = all.lines().find(|l| l.starts_with("c2-eth0")).unwrap();
    assert!(pod_row.trim_end().ends_with("t1/api-0"), "{all}");
    let other_row = all.lines().find(|l| l.starts_with("c1-eth0")).unwrap();
    assert!(other_row.trim_end().ends_with("<none>"), "{all}");

    let unknown = allocate(&root, "x", "h9", "t1", &[]).await.error();
    assert_eq!(unknown, "error: not found: host h9 does not exist");
    assert_eq!(
        romanactl(&root, &["ipam", "show", "nope"]).await.error(),
        "error: not found: endpoint nope does not exist"
    );

    let address = e2["address"].as_str().unwrap();
    assert_eq!(
        romanactl(&root, &["ipam", "release", "--endpoint", "c2-eth0"])
            .await
            .ok(),
        format!("released {address} from endpoint c2-eth0 (t1/default on h2)\n")
    );
    assert_eq!(
        romanactl(&root, &["ipam", "release", "--endpoint", "c2-eth0"])
            .await
            .ok(),
        "nothing held by endpoint c2-eth0\n",
        "releases are idempotent"
    );
    let by_address = romanactl(
        &root,
        &[
            "ipam",
            "release",
            "--address",
            e1["address"].as_str().unwrap(),
            "-o",
            "json",
        ],
    )
    .await
    .json();
    assert_eq!(by_address["released"]["endpoint"], "c1-eth0");
    let nothing = romanactl(
        &root,
        &["ipam", "release", "--address", "10.0.1.200", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(
        nothing,
        json!({"target": "address 10.0.1.200", "released": null})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn topology_fabric_shows_leaf_and_spine_routes() {
    let (_plane, root) = mk_cluster("2").await;
    romanactl(&root, &["host", "add", "h1", "--ip", "192.168.0.1"])
        .await
        .ok();
    romanactl(
        &root,
        &["host", "add", "h2", "--ip", "192.168.1.2", "--rack", "1"],
    )
    .await
    .ok();
    romanactl(
        &root,
        &["host", "add", "h3", "--ip", "192.168.1.3", "--rack", "1"],
    )
    .await
    .ok();

    assert_eq!(
        romanactl(&root, &["topology", "fabric"]).await.ok(),
        "DEVICE   ROUTE          VIA           HOST\n\
         leaf-0   10.0.0.0/16    192.168.0.1   h1\n\
         leaf-1   10.64.0.0/16   192.168.1.2   h2\n\
         leaf-1   10.65.0.0/16   192.168.1.3   h3\n\
         spine    10.0.0.0/10    leaf-0        <none>\n\
         spine    10.64.0.0/10   leaf-1        <none>\n"
    );
    let json = romanactl(&root, &["topology", "fabric", "-o", "json"])
        .await
        .json();
    assert_eq!(
        json,
        json!({
            "leaves": [
                {"rack": 0, "aggregate": "10.0.0.0/10", "routes": [
                    {"prefix": "10.0.0.0/16", "via": "192.168.0.1", "host": "h1"},
                ]},
                {"rack": 1, "aggregate": "10.64.0.0/10", "routes": [
                    {"prefix": "10.64.0.0/16", "via": "192.168.1.2", "host": "h2"},
                    {"prefix": "10.65.0.0/16", "via": "192.168.1.3", "host": "h3"},
                ]},
            ],
            "spine": [
                {"prefix": "10.0.0.0/10", "rack": 0},
                {"prefix": "10.64.0.0/10", "rack": 1},
            ],
        })
    );
    let rack1 = romanactl(&root, &["host", "list", "--rack", "1", "-o", "json"])
        .await
        .json();
    assert_eq!(rack1.as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_layout_services_and_counts() {
    let (_plane, root) = mk_plane().await;

    // Before config init: a report with the problem, not a failure.
    let before = romanactl(&root, &["status", "-o", "json"]).await.json();
    assert_eq!(before["config"], Value::Null);
    assert!(
        before["problems"][0]
            .as_str()
            .unwrap()
            .contains("romanactl config init"),
        "{before}"
    );

    romanactl(&root, &init_args("0")).await.ok();
    romanactl(&root, &["host", "add", "h1", "--ip", "192.168.0.1"])
        .await
        .ok();
    romanactl(&root, &["tenant", "add", "t1"]).await.ok();
    romanactl(&root, &["segment", "add", "t1", "web"])
        .await
        .ok();
    allocate(&root, "e1", "h1", "t1", &[]).await.ok();

    let status = romanactl(&root, &["status", "-o", "json"]).await.json();
    assert_eq!(status["root"], root.as_str());
    assert_eq!(status["config"]["address_space"], "10.0.0.0/8");
    let mut kinds: Vec<&str> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["ipam", "policy", "root", "tenant", "topology"]);
    assert_eq!(
        status["counts"],
        json!({"hosts": 1, "tenants": 1, "segments": 2, "endpoints": 1})
    );
    assert_eq!(status["problems"], json!([]));

    let table = romanactl(&root, &["status"]).await.ok();
    assert!(
        table.contains("HOSTS   TENANTS   SEGMENTS   ENDPOINTS\n1       1         2          1\n"),
        "{table}"
    );
    assert!(!table.contains("PROBLEM"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_status_shows_what_each_agent_last_applied() {
    let (plane, root) = mk_cluster("0").await;
    romanactl(&root, &["host", "add", "h1", "--ip", "192.168.0.1"])
        .await
        .ok();
    romanactl(&root, &["host", "add", "h2", "--ip", "192.168.0.2"])
        .await
        .ok();

    // No agent has reported: every host is listed all the same.
    let before = romanactl(&root, &["host", "status", "-o", "json"])
        .await
        .json();
    let reported: Vec<(&str, bool)> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["host"].as_str().unwrap(),
                s["reported"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(reported, [("h1", false), ("h2", false)]);

    // The record as h1's agent writes it. Three days and a bit old, so that AGE reads the
    // same however slowly this test runs.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let applied_at = now - 3 * 86_400 - 100;
    let record = json!({
        "host": "h1",
        "revision": 42,
        "routes": ["10.0.0.2 dev romana-e1", "10.1.0.0/16 via 192.168.0.2"],
        "nft_rules": 12,
        "nft_sets": 3,
        "nft_elements": 40,
        "converged": true,
        "blocked": [],
        "problems": [],
        "applied_at": applied_at,
        "alive_at": applied_at,
    });
    let store = plane.store();
    let keys = store.keys();
    // romanactl does not depend on romana-core: the key's type decides what this decodes to.
    let status = serde_json::from_value(record).expect("an agent status record");
    store
        .put(&keys.agent_status("h1"), &status)
        .await
        .expect("status written");

    assert_eq!(
        romanactl(&root, &["host", "status"]).await.ok(),
        "HOST   REVISION   CONVERGED   AGENT       ROUTES   NFT       AGE     PROBLEMS\n\
         h1     42         true        silent 3d   2        12/3/40   3d      0\n\
         h2     <none>     <none>      <none>      <none>   <none>    never   <none>\n"
    );
    assert_eq!(
        romanactl(&root, &["host", "status", "h1"]).await.ok(),
        "HOST   REVISION   CONVERGED   AGENT       ROUTES   NFT       AGE   PROBLEMS\n\
         h1     42         true        silent 3d   2        12/3/40   3d    0\n\
         \n\
         ROUTE\n\
         10.0.0.2 dev romana-e1\n\
         10.1.0.0/16 via 192.168.0.2\n"
    );
    let h1 = json!({
        "host": "h1",
        "reported": true,
        "revision": 42,
        "policy_revision": 0,
        "converged": true,
        "routes": ["10.0.0.2 dev romana-e1", "10.1.0.0/16 via 192.168.0.2"],
        "nft_rules": 12,
        "nft_sets": 3,
        "nft_elements": 40,
        "blocked": [],
        "problems": [],
        "applied_at": applied_at,
        "alive_at": applied_at,
    });
    assert_eq!(
        romanactl(&root, &["host", "status", "h1", "-o", "json"])
            .await
            .json(),
        h1
    );
    let h2 = json!({
        "host": "h2",
        "reported": false,
        "revision": 0,
        "policy_revision": 0,
        "converged": false,
        "routes": [],
        "nft_rules": 0,
        "nft_sets": 0,
        "nft_elements": 0,
        "blocked": [],
        "problems": [],
        "applied_at": 0,
        "alive_at": 0,
    });
    assert_eq!(
        romanactl(&root, &["host", "status", "-o", "json"])
            .await
            .json(),
        json!([h1, h2])
    );
    let not_reported = romanactl(&root, &["host", "status", "h2"]).await.ok();
    assert!(
        not_reported.contains("is `romana-agent --host h2` running"),
        "{not_reported}"
    );
    let yaml = romanactl(&root, &["host", "status", "h1", "-o", "yaml"])
        .await
        .ok();
    assert!(
        yaml.starts_with("host: h1\nreported: true\nrevision: 42\n"),
        "{yaml}"
    );

    assert_eq!(
        romanactl(&root, &["host", "status", "h9"]).await.error(),
        "error: not found: host h9 does not exist"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_asks_instances_directly() {
    let (plane, root) = mk_plane().await;
    let topology = plane.url(romana_integration::Service::Topology);

    // Without a URL: root itself.
    let table = romanactl(&root, &["health"]).await.ok();
    assert_eq!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        [root.as_str(), "serving"]
    );

    let json = romanactl(
        &root,
        &["health", &topology, "--service", "topology", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(json, json!([{"url": topology, "status": "serving"}]));

    // A kind the instance does not serve, and an instance that is not there: one line
    // naming each URL that failed, exit 1.
    let line = romanactl(&root, &["health", &topology, "--service", "ipam"])
        .await
        .error();
    assert!(
        line.starts_with(&format!("error: not serving: {topology}: ")),
        "{line}"
    );
    let dead = "http://127.0.0.1:1";
    let line = romanactl(&root, &["health", &root, dead]).await.error();
    assert!(
        line.starts_with(&format!("error: not serving: {dead}: ")),
        "{line}"
    );
    assert!(!line.contains(&format!("{root}:")), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dual_stack_layout_and_its_endpoints_through_the_binary() {
    let (_plane, root) = mk_plane().await;
    let init = [
        &CONFIG_INIT[..],
        &["--address-space", "fd00:10::/48", "-o", "json"],
    ]
    .concat();
    let config = romanactl(&root, &init).await.json();
    assert_eq!(
        (&config["address_space"], &config["second_address_space"]),
        (&json!("10.0.0.0/8"), &json!("fd00:10::/48"))
    );
    assert_eq!(config["second_endpoint_bits"], 64);
    let table = romanactl(&root, &["config", "show"]).await.ok();
    assert!(table.contains("10.0.0.0/8,fd00:10::/48"), "{table}");
    let three = [&CONFIG_INIT[..], &["--address-space", "fd00:10::/48"]].concat();
    let three = [&three[..], &["--address-space", "fd00:11::/48"]].concat();
    let refused = romanactl(&root, &three).await;
    assert_eq!(refused.code, 2, "a usage error: {refused:?}");
    assert!(refused.stderr.contains("one per IP family"), "{refused:?}");

    romanactl(&root, &["host", "add", "h1", "--ip", "192.168.0.1"])
        .await
        .ok();
    romanactl(&root, &["tenant", "add", "t1"]).await.ok();
    let e = allocate(&root, "c1-eth0", "h1", "t1", &["-o", "json"])
        .await
        .json();
    assert_eq!(e["address"], "10.0.0.2");
    assert_eq!(e["addresses"], json!(["10.0.0.2", "fd00:10::2"]));
    assert_eq!(e["gateways"], json!(["10.0.0.1", "fd00:10::1"]));
    let list = romanactl(&root, &["ipam", "list"]).await.ok();
    assert!(list.contains("10.0.0.2,fd00:10::2"), "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dual_stack_host_takes_one_ip_per_family_through_the_binary() {
    let (_plane, root) = mk_plane().await;
    let init = [&CONFIG_INIT[..], &["--address-space", "fd00:10::/48"]].concat();
    romanactl(&root, &init).await.ok();
    let add = [
        "host",
        "add",
        "h1",
        "--ip",
        "192.168.0.1",
        "--ip",
        "fd00:ff::1",
    ];
    let h1 = romanactl(&root, &[&add[..], &["-o", "json"]].concat())
        .await
        .json();
    assert_eq!(
        h1,
        json!({"name": "h1", "ip": "192.168.0.1", "rack": 0, "index": 0,
               "prefix": "10.0.0.0/16", "second_ip": "fd00:ff::1"})
    );
    romanactl(&root, &["host", "add", "h2", "--ip", "192.168.0.2"])
        .await
        .ok();
    assert_eq!(
        romanactl(&root, &["host", "list"]).await.ok(),
        "NAME   IP                       RACK   INDEX   PREFIX\n\
         h1     192.168.0.1,fd00:ff::1   0      0       10.0.0.0/16\n\
         h2     192.168.0.2              0      1       10.1.0.0/16\n"
    );
    let shown = romanactl(&root, &["host", "show", "h1"]).await.ok();
    assert!(shown.contains(" 192.168.0.1,fd00:ff::1 "), "{shown}");
    let listed = romanactl(&root, &["host", "list", "-o", "json"])
        .await
        .json();
    assert_eq!(listed[0]["second_ip"], "fd00:ff::1");
    assert!(listed[1].get("second_ip").is_none(), "{listed}");

    // Two of one family, or a third, are usage errors (exit 2) before any call.
    let same = [
        "host",
        "add",
        "h3",
        "--ip",
        "192.168.0.3",
        "--ip",
        "192.168.0.4",
    ];
    let three = [&same[..5], &["--ip", "fd00:ff::3", "--ip", "fd00:ff::4"]].concat();
    for (args, needle) in [
        (&same[..], "at most one fabric address per family"),
        (&three[..], "--ip is given 3 times"),
    ] {
        let refused = romanactl(&root, args).await;
        assert_eq!(refused.code, 2, "a usage error: {refused:?}");
        assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");
        assert!(refused.stderr.contains(needle), "{refused:?}");
    }
    let taken = romanactl(
        &root,
        &[
            "host",
            "add",
            "h3",
            "--ip",
            "192.168.0.3",
            "--ip",
            "fd00:ff::1",
        ],
    )
    .await
    .error();
    assert_eq!(
        taken,
        "error: already exists: second_ip fd00:ff::1 already belongs to host h1"
    );
    assert_eq!(
        romanactl(&root, &["host", "remove", "h1"]).await.ok(),
        "removed host h1 (192.168.0.1,fd00:ff::1, prefix 10.0.0.0/16)\n"
    );
    let left = romanactl(&root, &["host", "list", "-o", "json"])
        .await
        .json();
    assert_eq!(left.as_array().map(Vec::len), Some(1), "{left}");
}
