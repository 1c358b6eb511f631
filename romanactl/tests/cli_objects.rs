//! End to end: the real `romanactl` binary against a real control plane (etcd plus root,
//! topology, tenant and ipam in-process on loopback port 0), found through root alone as
//! an operator's romanactl would: the layout, hosts, tenants and segments, and endpoints,
//! added, shown, listed and removed. Each test starts its own control plane.

mod support;

use serde_json::json;
use support::{allocate, init_args, mk_cluster, mk_plane, romanactl};

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
