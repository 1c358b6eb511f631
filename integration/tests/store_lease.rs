//! Service registration under a lease against a real etcd.

use std::time::Duration;

use romana_core::ServiceRecord;
use romana_integration::{eventually, mk_store, retrying, EtcdServer};
use romana_store::{Key, Store};

fn mk_record(instance: &str) -> ServiceRecord {
    ServiceRecord {
        kind: "ipam".to_string(),
        instance: instance.to_string(),
        url: "http://127.0.0.1:9604".to_string(),
    }
}

async fn mk_etcd_and_store() -> (EtcdServer, Store) {
    let etcd = EtcdServer::start().expect("etcd starts");
    let store = mk_store(&etcd.endpoints()).await;
    (etcd, store)
}

/// Polls until the key is gone; etcd expires a lease some time after its TTL.
async fn wait_until_absent(store: &Store, key: &Key<ServiceRecord>) {
    eventually("the record to expire", Duration::from_secs(20), || async {
        matches!(store.get(key).await, Ok(None)).then_some(())
    })
    .await
    .unwrap();
}

/// Revokes every lease through etcdctl, as an operator (or a lost lease) would.
async fn revoke_all_leases(etcd: &EtcdServer) {
    let endpoints = format!("--endpoints={}", etcd.endpoint());
    let list = tokio::process::Command::new("etcdctl")
        .args([endpoints.as_str(), "lease", "list"])
        .output()
        .await
        .expect("etcdctl runs");
    assert!(list.status.success(), "{list:?}");
    let ids: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .skip(1) // "found N leases"
        .map(str::to_string)
        .collect();
    assert!(!ids.is_empty(), "the registration holds a lease");
    for id in ids {
        let revoke = tokio::process::Command::new("etcdctl")
            .args([endpoints.as_str(), "lease", "revoke", id.as_str()])
            .output()
            .await
            .expect("etcdctl runs");
        assert!(revoke.status.success(), "{revoke:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_record_is_present_until_revoked() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let key = store.keys().service("ipam", "h1-1");
    let registration = store.register(mk_record("h1-1"), 2).await.unwrap();
    assert_eq!(registration.key(), "/romana/v1/services/ipam/h1-1");
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().value,
        mk_record("h1-1")
    );
    let listed = store.list(&store.keys().services_of("ipam")).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    registration.revoke().await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "revoke deletes at once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_outlives_its_ttl_while_kept_alive_and_expires_once_dropped() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let key = store.keys().service("ipam", "h1-2");
    let registration = store.register(mk_record("h1-2"), 2).await.unwrap();

    // Two and a half TTLs: without keep-alives the record would be gone by now.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        store.get(&key).await.unwrap().is_some(),
        "kept alive past its TTL"
    );

    drop(registration);
    wait_until_absent(&store, &key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_whose_lease_is_revoked_behind_its_back_registers_again() {
    let (etcd, store) = mk_etcd_and_store().await;
    let key = store.keys().service("ipam", "h1-3");
    let registration = store.register(mk_record("h1-3"), 2).await.unwrap();
    let first = store.get(&key).await.unwrap().unwrap();

    revoke_all_leases(&etcd).await;
    let again = eventually(
        "the record to be put again",
        Duration::from_secs(20),
        || async {
            match store.get(&key).await {
                Ok(Some(v)) if v.create_revision > first.create_revision => Some(v),
                _ => None,
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(again.value, mk_record("h1-3"));

    registration.revoke().await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "revoke hits the new lease"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registration_survives_an_etcd_restart() {
    let (mut etcd, store) = mk_etcd_and_store().await;
    let key = store.keys().service("ipam", "h1-4");
    let registration = store.register(mk_record("h1-4"), 2).await.unwrap();

    etcd.stop().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await; // longer than the TTL
    etcd.start_again().unwrap();
    eventually(
        "the record after the restart",
        Duration::from_secs(20),
        || async { matches!(store.get(&key).await, Ok(Some(_))).then_some(()) },
    )
    .await
    .unwrap();
    // Whether etcd kept the lease (it renews leases on restart) or the registration put the
    // record again, it must stay for longer than a TTL.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = retrying(|| async { store.get(&key).await }).await.unwrap();
    assert_eq!(still.map(|v| v.value), Some(mk_record("h1-4")));
    registration.revoke().await.unwrap();
}
