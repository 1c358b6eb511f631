//! Group commit against a real etcd (`romana_store::group`): concurrent endpoint claims
//! and releases through one store share etcd transactions, and every caller still gets
//! its own answer: a claim that loses (its address is taken) fails alone, the others in
//! its group succeed, and nothing is claimed twice or left half written.

use std::sync::Arc;

use romana_core::Endpoint;
use romana_integration::{mk_store, EtcdServer};
use romana_store::{Claim, Store, StoreError};

fn mk_endpoint(i: usize) -> Endpoint {
    Endpoint {
        id: format!("c{i}:eth0"),
        address: format!("10.0.{}.{}", i / 200, 2 + i % 200).parse().unwrap(),
        host: "h1".into(),
        tenant: "t".into(),
        segment: "default".into(),
        labels: Default::default(),
        ports: Vec::new(),
        interface: String::new(),
        pod: None,
        second_address: None,
    }
}

/// Runs `n` calls of `call` at once; returns their results and the etcd KV requests they
/// took.
async fn at_once<F, Fut, T>(etcd: &EtcdServer, n: usize, call: F) -> (Vec<T>, u64)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let before = etcd.kv_requests().expect("etcd /metrics answers");
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(call(i))).collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let after = etcd.kv_requests().expect("etcd /metrics answers");
    (results, after - before)
}

/// How many of each of an endpoint's keys exist: records, address claims, host and segment
/// index entries.
async fn held(store: &Store) -> [usize; 4] {
    let k = store.keys();
    [
        store.list(&k.endpoints()).await.unwrap().items.len(),
        store.list(&k.addresses()).await.unwrap().items.len(),
        store
            .list(&k.host_endpoints_of("h1"))
            .await
            .unwrap()
            .items
            .len(),
        store
            .list(&k.segment_endpoints_of("t", "default"))
            .await
            .unwrap()
            .items
            .len(),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_claims_and_releases_share_transactions_and_each_gets_its_own_answer() {
    let etcd = EtcdServer::start().expect("etcd starts");
    let store = Arc::new(mk_store(&etcd.endpoints()).await);
    store.revision().await.unwrap();
    let n = 64;

    // One address taken beforehand: the claim naming it must fail alone.
    let mut squatter = mk_endpoint(7);
    squatter.id = "squatter".into();
    store.claim_endpoint(&squatter).commit().await.unwrap();

    let s = store.clone();
    let (claims, requests) = at_once(&etcd, n, move |i| {
        let s = s.clone();
        async move { s.claim_endpoint(&mk_endpoint(i)).commit().await }
    })
    .await;
    eprintln!("{n} concurrent claims took {requests} etcd requests");
    for (i, result) in claims.iter().enumerate() {
        match (i, result) {
            (7, Err(StoreError::Conflict { key, .. })) => {
                assert!(key.ends_with("addresses/10.0.0.9"), "{key}")
            }
            (7, other) => panic!("the claim of a taken address must conflict: {other:?}"),
            (_, Ok(_)) => {}
            (_, Err(e)) => panic!("claim {i} failed: {e}"),
        }
    }
    assert!(
        requests < n as u64 / 2,
        "{requests} etcd requests for {n} concurrent claims: they were not grouped"
    );
    assert_eq!(
        held(&store).await,
        [n; 4],
        "the {} winners and the squatter",
        n - 1
    );

    // Every endpoint released at once from what its claim wrote, each getting its record.
    let mut records = Vec::new();
    for i in (0..n).filter(|&i| i != 7) {
        let key = store.keys().endpoint(&mk_endpoint(i).id);
        records.push(store.get(&key).await.unwrap().unwrap());
    }
    records.push(
        store
            .get(&store.keys().endpoint("squatter"))
            .await
            .unwrap()
            .unwrap(),
    );
    let records = Arc::new(records);
    let (s, r) = (store.clone(), records.clone());
    let (releases, requests) = at_once(&etcd, records.len(), move |i| {
        let (s, r) = (s.clone(), r.clone());
        async move { s.release_claim(&Claim::from(&r[i])).await }
    })
    .await;
    eprintln!("{} concurrent releases took {requests} etcd requests", n);
    for (released, record) in releases.into_iter().zip(records.iter()) {
        assert_eq!(
            released.unwrap(),
            record.value,
            "each release returns its own record"
        );
    }
    assert!(requests < n as u64 / 2, "{requests} requests: not grouped");
    assert_eq!(held(&store).await, [0; 4], "keys left behind");
    let tombstone = store
        .get(&store.keys().endpoint_tombstone("c3:eth0"))
        .await
        .unwrap();
    assert_eq!(tombstone.map(|t| t.value), Some(mk_endpoint(3).address));
}

#[tokio::test(flavor = "multi_thread")]
async fn claims_of_one_id_at_once_give_it_to_exactly_one() {
    let etcd = EtcdServer::start().expect("etcd starts");
    let store = Arc::new(mk_store(&etcd.endpoints()).await);
    store.revision().await.unwrap();
    // Sixteen claims of one id, each with another address: they write the same record key,
    // so no two share a group, and exactly one wins.
    let s = store.clone();
    let (claims, _) = at_once(&etcd, 16, move |i| {
        let s = s.clone();
        async move {
            let mut e = mk_endpoint(i);
            e.id = "contested".into();
            s.claim_endpoint(&e).commit().await
        }
    })
    .await;
    let won = claims.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{claims:?}");
    assert!(claims
        .iter()
        .all(|r| matches!(r, Ok(_) | Err(StoreError::Conflict { .. }))));
    assert_eq!(held(&store).await, [1; 4], "no key of a loser is left");
}
