//! A release built from a watched copy (`Store::release_claim`) against a real etcd: it
//! deletes every key of the endpoint it names only if each was created by the claim it
//! names. A claim guessed from a stale copy (wrong revision, host, tenant, segment or
//! address; the id allocated again since) deletes nothing. (That a claim names all of the
//! record's addresses is the caller's to ensure: see `Claim::second_address`.)

use romana_core::Endpoint;
use romana_integration::{mk_store, EtcdServer};
use romana_store::{Claim, Store, StoreError};

fn mk_endpoint(id: &str) -> Endpoint {
    Endpoint {
        id: id.into(),
        address: "10.0.0.5".parse().unwrap(),
        host: "h1".into(),
        tenant: "t".into(),
        segment: "default".into(),
        labels: [("app".to_string(), "web".to_string())].into(),
        ports: Vec::new(),
        interface: String::new(),
        pod: None,
        second_address: Some("fd00:10::5".parse().unwrap()),
    }
}

fn claim_of(e: &Endpoint, revision: i64) -> Claim<'_> {
    Claim {
        id: &e.id,
        host: &e.host,
        tenant: &e.tenant,
        segment: &e.segment,
        address: e.address,
        second_address: e.second_address,
        revision,
    }
}

/// Which of the endpoint's keys exist.
async fn keys_held(store: &Store, e: &Endpoint) -> usize {
    let keys = store.keys();
    let mut n = 0;
    n += usize::from(store.get(&keys.endpoint(&e.id)).await.unwrap().is_some());
    for a in e.addresses() {
        n += usize::from(store.get(&keys.address(a)).await.unwrap().is_some());
    }
    n += usize::from(
        store
            .get(&keys.host_endpoint(&e.host, &e.id))
            .await
            .unwrap()
            .is_some(),
    );
    n += usize::from(
        store
            .get(&keys.segment_endpoint(&e.tenant, &e.segment, &e.id))
            .await
            .unwrap()
            .is_some(),
    );
    n
}

fn conflict(result: Result<Endpoint, StoreError>, what: &str) {
    match result {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("a claim with {what} must conflict and delete nothing: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_from_a_stale_copy_deletes_nothing_and_the_right_one_deletes_everything() {
    let etcd = EtcdServer::start().expect("etcd starts");
    let store = mk_store(&etcd.endpoints()).await;
    let e = mk_endpoint("c1:eth0");
    let revision = store.claim_endpoint(&e).commit().await.unwrap();
    assert_eq!(keys_held(&store, &e).await, 5);

    let wrong = |f: &dyn Fn(&mut Claim<'_>)| {
        let mut claim = claim_of(&e, revision);
        f(&mut claim);
        claim
    };
    let other_address = "10.0.0.6".parse().unwrap();
    for (what, claim) in [
        ("another revision", wrong(&|c| c.revision = revision - 1)),
        ("another host", wrong(&|c| c.host = "h2")),
        ("another tenant", wrong(&|c| c.tenant = "u")),
        ("another segment", wrong(&|c| c.segment = "db")),
        ("another address", wrong(&|c| c.address = other_address)),
        (
            "another second address",
            wrong(&|c| c.second_address = Some(other_address)),
        ),
    ] {
        conflict(store.release_claim(&claim).await, what);
        assert_eq!(keys_held(&store, &e).await, 5, "{what} deleted something");
    }

    // A label change since the claim is fine: only the record's creation is compared.
    let record = store
        .get(&store.keys().endpoint(&e.id))
        .await
        .unwrap()
        .unwrap();
    let mut relabelled = e.clone();
    relabelled.labels.insert("tier".into(), "front".into());
    store
        .update(
            &store.keys().endpoint(&e.id),
            &relabelled,
            record.mod_revision,
        )
        .await
        .unwrap();
    let released = store.release_claim(&claim_of(&e, revision)).await.unwrap();
    assert_eq!(
        released, relabelled,
        "the release returns the record it deleted"
    );
    assert_eq!(keys_held(&store, &e).await, 0);
    let tombstone = store
        .get(&store.keys().endpoint_tombstone(&e.id))
        .await
        .unwrap();
    assert_eq!(tombstone.map(|t| t.value), Some(e.address));

    // The id allocated again: the old claim names the old incarnation and frees nothing.
    let again = store.claim_endpoint(&e).commit().await.unwrap();
    conflict(
        store.release_claim(&claim_of(&e, revision)).await,
        "an earlier incarnation's revision",
    );
    assert_eq!(keys_held(&store, &e).await, 5);
    store.release_claim(&claim_of(&e, again)).await.unwrap();
    assert_eq!(keys_held(&store, &e).await, 0);
}
