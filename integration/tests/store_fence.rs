//! The endpoint fence against a real etcd: a claim carried out after the endpoint it
//! names was claimed again and released (a member froze with it, the caller retried
//! elsewhere) must not bring the released endpoint back; fresh claims of a released id
//! still succeed. See `romana_store::endpoints`.

use romana_core::Endpoint;
use romana_integration::{mk_store, EtcdServer};
use romana_store::{Store, StoreError};

fn mk_endpoint(id: &str, address: &str) -> Endpoint {
    Endpoint {
        id: id.into(),
        address: address.parse().unwrap(),
        host: "h1".into(),
        tenant: "t".into(),
        segment: "default".into(),
        labels: Default::default(),
        ports: Vec::new(),
        interface: String::new(),
        pod: None,
        second_address: Some("fd00:10::5".parse().unwrap()),
    }
}

async fn held(store: &Store, e: &Endpoint) -> Vec<String> {
    let keys = store.keys();
    let mut found = Vec::new();
    if store.get(&keys.endpoint(&e.id)).await.unwrap().is_some() {
        found.push("record".to_string());
    }
    for a in e.addresses() {
        if store.get(&keys.address(a)).await.unwrap().is_some() {
            found.push(a.to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_carried_out_after_a_retry_and_a_release_brings_nothing_back() {
    let etcd = EtcdServer::start().expect("etcd starts");
    let store = mk_store(&etcd.endpoints()).await;
    store.revision().await.unwrap();
    let e = mk_endpoint("c1:eth0", "10.0.0.5");
    // Built (sent) first, carried out last: the frozen member's copy.
    let late = store.claim_endpoint(&e);
    let retry = store.claim_endpoint(&e).commit().await.unwrap();
    let record = store
        .get(&store.keys().endpoint(&e.id))
        .await
        .unwrap()
        .unwrap();
    let released = store.release_endpoint(&record).await.unwrap();
    assert!(released > retry);
    match late.commit().await {
        Err(StoreError::Conflict { key, .. }) => {
            assert!(key.ends_with("tombstones/endpoints/c1:eth0"), "{key}")
        }
        other => panic!("the late claim must lose to the tombstone: {other:?}"),
    }
    assert!(held(&store, &e).await.is_empty(), "nothing came back");
    let tombstone = store
        .get(&store.keys().endpoint_tombstone(&e.id))
        .await
        .unwrap();
    assert_eq!(tombstone.map(|t| t.value), Some(e.address));

    // A claim built after the release (this store has seen it) succeeds at once.
    store.claim_endpoint(&e).commit().await.unwrap();
    assert_eq!(held(&store, &e).await, ["record", "10.0.0.5", "fd00:10::5"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_that_has_not_seen_a_release_claims_the_id_again_on_its_second_try() {
    let etcd = EtcdServer::start().expect("etcd starts");
    let (a, b) = (
        mk_store(&etcd.endpoints()).await,
        mk_store(&etcd.endpoints()).await,
    );
    let e = mk_endpoint("c2:eth0", "10.0.0.6");
    a.claim_endpoint(&e).commit().await.unwrap();
    let record = a.get(&a.keys().endpoint(&e.id)).await.unwrap().unwrap();
    a.release_endpoint(&record).await.unwrap();
    // b has seen nothing since: its first claim meets the tombstone, and that answer
    // carries the revision it lacked.
    let first = b.claim_endpoint(&e).commit().await;
    assert!(
        matches!(first, Err(StoreError::Conflict { .. })),
        "{first:?}"
    );
    assert!(b.seen_revision() >= a.seen_revision());
    b.claim_endpoint(&e).commit().await.unwrap();
    assert_eq!(held(&b, &e).await, ["record", "10.0.0.6", "fd00:10::5"]);
}
