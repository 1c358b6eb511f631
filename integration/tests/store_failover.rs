//! etcd failover at the store: with one member of three killed, paused or back, at most the
//! calls in flight at the fault fail (as retryable UNAVAILABLE) and everything after goes to
//! the live members; a watch resumes on another member without losing or repeating an event;
//! with two members down calls fail fast with one readable line, and recover by themselves.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use romana_core::Host;
use romana_integration::{eventually, mk_store, retrying, EtcdCluster};
use romana_store::{Store, StoreError, WatchEvent};
use tokio::time::Instant;

/// Clients writing and reading at once, as many as a busy service has calls in flight.
const CLIENTS: usize = 8;

fn mk_host(name: &str) -> Host {
    Host {
        name: name.to_string(),
        ip: IpAddr::from([192, 168, 0, 1]),
        rack: 0,
        index: 0,
        second_ip: None,
    }
}

/// One store call as the load saw it.
#[derive(Debug)]
struct Call {
    started: Instant,
    ended: Instant,
    key: String,
    write: bool,
    failure: Option<String>,
}

/// Calls recorded by [`load`].
type Calls = Arc<Mutex<Vec<Call>>>;

/// Each client creates a host record and reads it back, again and again, until `stop`.
fn load(
    store: &Store,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Calls, Vec<tokio::task::JoinHandle<()>>) {
    let calls: Calls = Arc::default();
    let tasks = (0..CLIENTS)
        .map(|client| {
            let store = store.clone();
            let calls = calls.clone();
            let mut stop = stop.clone();
            tokio::spawn(async move {
                for n in 0.. {
                    let name = format!("c{client}-{n}");
                    let key = store.keys().host(&name);
                    for write in [true, false] {
                        let started = Instant::now();
                        let outcome = tokio::select! {
                            outcome = async {
                                if write {
                                    store.create(&key, &mk_host(&name)).await.map(drop)
                                } else {
                                    store.get(&key).await.map(drop)
                                }
                            } => outcome,
                            _ = stop.wait_for(|stop| *stop) => return,
                        };
                        let failure = outcome.err().map(|e| {
                            assert!(e.is_retryable(), "a failover error must be retryable: {e}");
                            e.to_string()
                        });
                        calls.lock().unwrap().push(Call {
                            started,
                            ended: Instant::now(),
                            key: key.path().to_string(),
                            write,
                            failure,
                        });
                    }
                }
            })
        })
        .collect();
    (calls, tasks)
}

/// What a fault cost: calls in flight while it was injected, calls failed, calls after it.
struct Cost {
    in_flight: usize,
    failed: Vec<String>,
    after: usize,
    failed_writes: Vec<String>,
    succeeded_writes: Vec<String>,
}

fn cost(calls: &Calls, fault: Instant, faulted: Instant) -> Cost {
    let calls = calls.lock().unwrap();
    let failed: Vec<&Call> = calls.iter().filter(|c| c.failure.is_some()).collect();
    Cost {
        in_flight: calls
            .iter()
            .filter(|c| c.started <= faulted && c.ended >= fault)
            .count(),
        failed: failed
            .iter()
            .map(|c| c.failure.clone().unwrap_or_default())
            .collect(),
        after: calls.iter().filter(|c| c.started > fault).count(),
        failed_writes: failed
            .iter()
            .filter(|c| c.write)
            .map(|c| c.key.clone())
            .collect(),
        succeeded_writes: calls
            .iter()
            .filter(|c| c.write && c.failure.is_none())
            .map(|c| c.key.clone())
            .collect(),
    }
}

/// Runs the load for 2 s, injects `fault` on the cluster, runs until 500 more calls started
/// (at most 20 s), and checks the cost
/// and that every write that succeeded is in etcd.
async fn under_load<F>(scenario: &str, fault: F) -> EtcdCluster
where
    F: FnOnce(&mut EtcdCluster, &Store),
{
    let mut cluster = EtcdCluster::start(3).expect("etcd cluster starts");
    let store = mk_store(&cluster.endpoints()).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (calls, tasks) = load(&store, stopped);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fault_at = Instant::now();
    fault(&mut cluster, &store);
    let faulted = Instant::now();
    // Until the live members have served a good number of calls (an election on a loaded
    // machine can take seconds), within a bound.
    let deadline = faulted + Duration::from_secs(20);
    while Instant::now() < deadline
        && calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.started > faulted)
            .count()
            < 500
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send_replace(true);
    for task in tasks {
        task.await.expect("load client");
    }
    let cost = cost(&calls, fault_at, faulted);
    println!(
        "{scenario}: {} calls after the fault, {} in flight at it, {} failed: {:?}",
        cost.after,
        cost.in_flight,
        cost.failed.len(),
        cost.failed.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        cost.failed.len() <= cost.in_flight,
        "{scenario}: {} calls failed but only {} were in flight at the fault: {:?}",
        cost.failed.len(),
        cost.in_flight,
        cost.failed
    );
    // Throughput goes on: the live members took over.
    assert!(
        cost.after > 100,
        "{scenario}: only {} calls after the fault",
        cost.after
    );
    for message in &cost.failed {
        assert!(
            !message.contains("MetadataMap") && !message.contains("Status {"),
            "an etcd error is one readable line: {message}"
        );
    }
    let listed = retrying(|| async { store.list(&store.keys().hosts()).await })
        .await
        .expect("hosts listed");
    let stored: Vec<&str> = listed.items.iter().map(|v| v.key.as_str()).collect();
    for key in &cost.succeeded_writes {
        assert!(
            stored.contains(&key.as_str()),
            "{key} was created but is not in etcd"
        );
    }
    println!(
        "{scenario}: {} writes succeeded and are stored; {} failed writes of unknown outcome",
        cost.succeeded_writes.len(),
        cost.failed_writes.len()
    );
    cluster
}

/// The member `store` uses now: the one whose loss hurts it most.
fn used_by(cluster: &EtcdCluster, store: &Store) -> usize {
    cluster
        .index_of(&store.etcd_member())
        .expect("the store uses a member of the cluster")
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_member_in_use_costs_at_most_the_calls_in_flight() {
    under_load("kill -9 the member in use", |cluster, store| {
        let victim = used_by(cluster, store);
        cluster.member(victim).kill();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_costs_at_most_the_calls_in_flight() {
    under_load("kill -9 the leader", |cluster, _| {
        let leader = cluster.leader().expect("a leader");
        cluster.member(leader).kill();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pausing_the_member_in_use_costs_at_most_the_calls_in_flight() {
    let mut cluster = under_load("SIGSTOP the member in use", |cluster, store| {
        let victim = used_by(cluster, store);
        cluster.member(victim).pause().expect("SIGSTOP");
    })
    .await;
    // Resumed, the member serves again and a store pinned to it alone works.
    for i in 0..cluster.len() {
        cluster.member(i).resume().expect("SIGCONT");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_resumes_on_another_member_without_losing_or_repeating_events() {
    let mut cluster = EtcdCluster::start(3).expect("etcd cluster starts");
    let writer = mk_store(&cluster.endpoints()).await;
    let watching = mk_store(&cluster.endpoints()).await;
    let prefix = writer.keys().hosts().path().to_string();
    let mut watcher = watching.watch(&prefix);
    // Up to the listing's end.
    loop {
        if let WatchEvent::InitDone { .. } = watcher.next().await.expect("listing") {
            break;
        }
    }
    let seen = Arc::new(Mutex::new(Vec::<(String, i64)>::new()));
    let reader = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                match watcher.next().await {
                    Ok(WatchEvent::Apply(kv)) => {
                        seen.lock().unwrap().push((kv.key, kv.mod_revision));
                    }
                    Ok(other) => panic!("no re-list was needed, got {other:?}"),
                    // The one error of a broken watch; the next call resumes.
                    Err(e) => {
                        assert!(e.is_retryable(), "{e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        })
    };
    let mut written = BTreeMap::new();
    let victim = cluster.index_of(&watching.etcd_member()).expect("a member");
    for n in 0..300 {
        if n == 100 {
            cluster.member(victim).kill();
        }
        let key = writer.keys().host(&format!("w{n}"));
        let rev = retrying(|| async { writer.put(&key, &mk_host("w")).await })
            .await
            .expect("put");
        written.insert(rev, key.path().to_string());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let last = *written.keys().last().unwrap();
    eventually(
        "the watch delivered every put",
        Duration::from_secs(10),
        || {
            let seen = seen.clone();
            async move { (seen.lock().unwrap().last().map(|s| s.1) == Some(last)).then_some(()) }
        },
    )
    .await
    .expect("watch caught up");
    reader.abort();
    let seen = seen.lock().unwrap().clone();
    let expected: Vec<(String, i64)> = written.into_iter().map(|(r, k)| (k, r)).collect();
    assert_eq!(seen, expected, "every put exactly once, in order");
    assert_ne!(
        cluster.index_of(&watching.etcd_member()),
        Some(victim),
        "the watching store moved off the dead member"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_two_members_down_calls_fail_fast_and_recover_by_themselves() {
    let mut cluster = EtcdCluster::start(3).expect("etcd cluster starts");
    let store = mk_store(&cluster.endpoints()).await;
    let key = store.keys().host("h");
    store.put(&key, &mk_host("h")).await.expect("put");
    cluster.member(0).kill();
    cluster.member(1).kill();
    // The survivor notices the lost quorum within an election timeout.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let e = store
            .get(&key)
            .await
            .expect_err("no quorum, no linearizable read");
        let took = started.elapsed();
        let message = e.to_string();
        println!("quorum lost: failed in {took:?}: {message}");
        assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
        assert!(took < Duration::from_secs(3), "failed only after {took:?}");
        assert!(
            !message.contains("MetadataMap") && !message.contains('\n'),
            "one readable line: {message}"
        );
    }
    cluster.member(0).start_again().expect("member 0 back");
    let started = Instant::now();
    retrying(|| async { store.get(&key).await })
        .await
        .expect("reads recover with the quorum")
        .expect("the record survived");
    println!(
        "quorum back: the store served again after {:?}",
        started.elapsed()
    );
}
