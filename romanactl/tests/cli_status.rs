//! End to end: the real `romanactl` binary against a real control plane, found through
//! root alone: the fabric routes, cluster status, host status, health, and a dual-stack
//! layout through the binary. Each test starts its own control plane.

mod support;

use romana_integration::cluster::CONFIG_INIT;
use serde_json::{json, Value};
use support::{allocate, init_args, mk_cluster, mk_plane, romanactl};

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
