//! The agent's incremental path against a real etcd and a real kernel: after many endpoint
//! changes applied as element deltas (bursts and single changes), the table read back from
//! the kernel is exactly the full program of the same etcd state, and it was never replaced
//! whole on the way. Plus: the agent's watch range does not deliver other agents' statuses.
//! Needs root, `ip` and `nft`; without them the tests print `SKIPPED ...` and return.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::Netns;
use romana_agent::nft::{parse_table, TableView};
use romana_agent::{desired, AgentConfig, ClusterState, HostView, Progress};
use romana_core::model::NamedPort;
use romana_core::policy::parse_documents;
use romana_core::{AgentStatus, ClusterConfig, Endpoint, Host, Isolation, Segment, Tenant};
use romana_integration::{require_netns, EtcdServer};
use romana_store::{Keys, Store, WatchEvent};
use tokio::sync::watch;

const POLICIES: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: t}\n\
spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {matchLabels: {role: a}}}], ports: [{port: http}]}]}\n\
---\n\
apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: t}\n\
spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{podSelector: {matchLabels: {role: b}}}]}]}\n";

fn config() -> ClusterConfig {
    ClusterConfig {
        address_space: "10.0.0.0/8".parse().unwrap(),
        host_bits: 8,
        rack_bits: 0,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        second_address_space: None,
    }
}

/// Endpoint `i` of host `host` (index 0 or 1), with a role and maybe a named port.
fn endpoint(host: u32, i: u32, role: &str, http: bool) -> Endpoint {
    let mut e = Endpoint {
        interface: String::new(),
        pod: None,
        second_address: None,
        id: format!("h{host}e{i}"),
        address: format!("10.{host}.16.{}", 2 + i).parse().unwrap(),
        host: format!("h{host}"),
        tenant: "t".into(),
        segment: "default".into(),
        labels: BTreeMap::from([("app".into(), "web".into()), ("role".into(), role.into())]),
        ports: Vec::new(),
    };
    if http {
        e.ports.push(NamedPort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 8000 + i as u16,
        });
    }
    e
}

async fn populate(store: &Store) -> i64 {
    let keys = store.keys();
    store.put(&keys.config(), &config()).await.unwrap();
    for h in 0..2u32 {
        let host = Host {
            name: format!("h{h}"),
            ip: format!("192.168.60.{}", h + 1).parse().unwrap(),
            rack: 0,
            index: h,
            second_ip: None,
        };
        store.put(&keys.host(&host.name), &host).await.unwrap();
    }
    let tenant = Tenant {
        name: "t".into(),
        id: 1,
        isolation: Isolation::Segment,
        labels: BTreeMap::new(),
    };
    store.put(&keys.tenant("t"), &tenant).await.unwrap();
    let segment = Segment {
        tenant: "t".into(),
        name: "default".into(),
        id: 0,
    };
    store
        .put(&keys.segment("t", "default"), &segment)
        .await
        .unwrap();
    for p in parse_documents(POLICIES).unwrap() {
        store.put(&keys.policy(&p.id()), &p).await.unwrap();
    }
    for i in 0..2 {
        let e = endpoint(0, i, "a", true);
        store.put(&keys.endpoint(&e.id), &e).await.unwrap();
    }
    let mut revision = 0;
    for i in 0..20 {
        let e = endpoint(1, i, ["a", "b"][i as usize % 2], i % 3 == 0);
        revision = store.put(&keys.endpoint(&e.id), &e).await.unwrap();
    }
    revision
}

async fn applied(progress: &mut watch::Receiver<Progress>, revision: i64) {
    let wait = progress.wait_for(|p| p.converged && p.blocked == 0 && p.revision >= revision);
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .expect("the agent applies within 20 s")
        .expect("the agent runs");
}

/// The cluster as a fresh watcher of the agent's range sees it.
async fn listed(store: &Store) -> ClusterState {
    let (start, end) = store.keys().agent_watch_range();
    let mut watcher = store.watch_range(&start, &end);
    let mut state = ClusterState::default();
    loop {
        let event = watcher.next().await.unwrap();
        let done = matches!(event, WatchEvent::InitDone { .. });
        state.reduce(store.keys(), event);
        if done {
            return state;
        }
    }
}

fn table(ns: &Netns) -> (TableView, u64) {
    let out = ns.exec(&["nft", "-j", "list", "table", "inet", "romana"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let handle = json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o.get("table").and_then(|t| t["handle"].as_u64()))
        .unwrap();
    (parse_table(&json).unwrap(), handle)
}

#[tokio::test(flavor = "multi_thread")]
async fn many_endpoint_deltas_leave_exactly_the_full_program_in_the_kernel() {
    require_netns!("nft");
    let etcd = EtcdServer::start().unwrap();
    let store = Store::connect(&etcd.endpoints(), Keys::new("/incremental-test/"))
        .await
        .unwrap();
    let ns = Netns::create();
    for i in 0..2 {
        let name = romana_agent::endpoint_ifname(&format!("h0e{i}"));
        ns.ip(&format!("link add {name} type veth peer name pod{i}"));
        ns.ip(&format!("link set {name} up"));
    }
    let revision = populate(&store).await;
    let (tx, mut progress) = watch::channel(Progress::default());
    let config = AgentConfig {
        netns: Some(ns.name.clone()),
        // No resync during the test: what is checked is the incremental path alone.
        resync_interval: Duration::from_secs(3600),
        progress: Some(Arc::new(tx)),
        ..AgentConfig::new("h0")
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(romana_agent::run(store.clone(), config, async move {
        let _ = stopped.await;
    }));
    applied(&mut progress, revision).await;
    let (_, handle) = table(&ns);

    // Remote endpoints change role and named ports, go and come back: bursts of five
    // without waiting, then one change at a time.
    let mut seed = 7u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        seed >> 16
    };
    // What each remote endpoint is now: a put of the same value or a delete of an absent
    // one changes nothing, and no round would report its revision.
    let mut current: BTreeMap<u32, Endpoint> = (0..20)
        .map(|i| (i, endpoint(1, i, ["a", "b"][i as usize % 2], i % 3 == 0)))
        .collect();
    let mut last = revision;
    for round in 0..60 {
        let i = next() % 24;
        let key = store.keys().endpoint(&format!("h1e{i}"));
        if next() % 4 == 0 {
            if current.remove(&i).is_some() {
                assert!(store.delete(&key).await.unwrap());
                last = store.revision().await.unwrap();
            }
        } else {
            let e = endpoint(1, i, ["a", "b", "c"][next() as usize % 3], next() % 2 == 0);
            if current.get(&i) != Some(&e) {
                last = store.put(&key, &e).await.unwrap();
                current.insert(i, e);
            }
        }
        if round >= 30 || round % 5 == 4 {
            applied(&mut progress, last).await;
        }
    }
    applied(&mut progress, last).await;

    let (have, after) = table(&ns);
    let state = listed(&store).await;
    let want = desired(
        &state,
        &HostView {
            name: "h0".into(),
            ..HostView::default()
        },
    );
    assert_eq!(have, want.nft.view(), "the kernel holds the full program");
    assert_eq!(
        after, handle,
        "the table was updated in place, never replaced"
    );
    let _ = stop.send(());
    agent.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_watch_range_does_not_deliver_agent_statuses() {
    let etcd = EtcdServer::start().unwrap();
    let store = Store::connect(&etcd.endpoints(), Keys::new("/range-test/"))
        .await
        .unwrap();
    let keys = store.keys().clone();
    let (start, end) = keys.agent_watch_range();
    let mut watcher = store.watch_range(&start, &end);
    while !matches!(watcher.next().await.unwrap(), WatchEvent::InitDone { .. }) {}
    let status = AgentStatus {
        host: "h2".into(),
        ..AgentStatus::default()
    };
    store.put(&keys.agent_status("h2"), &status).await.unwrap();
    store
        .put(
            &keys.address("10.0.0.9".parse().unwrap()),
            &"e9".to_string(),
        )
        .await
        .unwrap();
    let e = endpoint(1, 1, "a", false);
    let revision = store.put(&keys.endpoint(&e.id), &e).await.unwrap();
    match watcher.next().await.unwrap() {
        WatchEvent::Apply(kv) => {
            assert_eq!(kv.key, keys.endpoint(&e.id).path());
            assert_eq!(kv.mod_revision, revision);
        }
        other => panic!("expected the endpoint put first, got {other:?}"),
    }
}
