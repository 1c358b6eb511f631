//! The store against a real etcd: typed CRUD, conditional writes, transactions, races,
//! pagination, an unreachable etcd and a cluster with a member down.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use romana_core::{Host, Isolation, Tenant};
use romana_integration::{mk_store, retrying, EtcdCluster, EtcdServer};
use romana_store::{Keys, Store, StoreError};

fn mk_host(name: &str, index: u32) -> Host {
    Host {
        name: name.to_string(),
        ip: IpAddr::from([192, 168, 0, index as u8]),
        rack: 0,
        index,
        second_ip: None,
    }
}

fn mk_tenant(name: &str, id: u32) -> Tenant {
    Tenant {
        name: name.to_string(),
        id,
        isolation: Isolation::Segment,
        labels: BTreeMap::new(),
    }
}

async fn mk_etcd_and_store() -> (EtcdServer, Store) {
    let etcd = EtcdServer::start().expect("etcd starts");
    let store = mk_store(&etcd.endpoints()).await;
    (etcd, store)
}

fn conflict(e: StoreError) -> (String, String, String) {
    match e {
        StoreError::Conflict {
            key,
            expected,
            found,
        } => (key, expected, found),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_values_round_trip_through_put_get_list_and_delete() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let keys = store.keys().clone();

    assert_eq!(store.get(&keys.host("h1")).await.unwrap(), None);
    let r1 = store
        .put(&keys.host("h1"), &mk_host("h1", 1))
        .await
        .unwrap();
    let got = store.get(&keys.host("h1")).await.unwrap().unwrap();
    assert_eq!(got.value, mk_host("h1", 1));
    assert_eq!(got.key, "/romana/v1/hosts/h1");
    assert_eq!((got.mod_revision, got.create_revision), (r1, r1));

    let moved = Host {
        rack: 2,
        ..mk_host("h1", 1)
    };
    let r2 = store.put(&keys.host("h1"), &moved).await.unwrap();
    assert!(r2 > r1);
    let got = store.get(&keys.host("h1")).await.unwrap().unwrap();
    assert_eq!(
        (got.value, got.mod_revision, got.create_revision),
        (moved.clone(), r2, r1)
    );

    let r3 = store
        .put(&keys.host("h0"), &mk_host("h0", 0))
        .await
        .unwrap();
    store
        .put(&keys.tenant("t"), &mk_tenant("t", 1))
        .await
        .unwrap();
    let hosts = store.list(&keys.hosts()).await.unwrap();
    let names: Vec<&str> = hosts.items.iter().map(|v| v.value.name.as_str()).collect();
    assert_eq!(names, ["h0", "h1"], "only hosts, in key order");
    assert_eq!(hosts.items[1].value, moved);
    assert!(hosts.revision > r3, "the listing is as of the latest write");

    assert!(store.delete(&keys.host("h1")).await.unwrap());
    assert!(
        !store.delete(&keys.host("h1")).await.unwrap(),
        "deleting twice"
    );
    assert_eq!(store.get(&keys.host("h1")).await.unwrap(), None);
    assert_eq!(store.revision().await.unwrap(), hosts.revision + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_on_an_existing_key_is_a_conflict_naming_key_expected_and_found() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let key = store.keys().host("h1");
    let rev = store.create(&key, &mk_host("h1", 1)).await.unwrap();

    let err = store.create(&key, &mk_host("h1", 9)).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!("conflict on /romana/v1/hosts/h1: expected absent, found mod_revision {rev}")
    );
    assert_eq!(
        conflict(err),
        (
            key.path().to_string(),
            "absent".into(),
            format!("mod_revision {rev}")
        )
    );
    assert_eq!(
        store.get(&key).await.unwrap().unwrap().value.index,
        1,
        "unchanged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn update_and_delete_with_a_stale_mod_revision_are_conflicts() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let key = store.keys().tenant("t");
    let r1 = store.create(&key, &mk_tenant("t", 1)).await.unwrap();
    let r2 = store.update(&key, &mk_tenant("t", 2), r1).await.unwrap();

    let stale = store
        .update(&key, &mk_tenant("t", 3), r1)
        .await
        .unwrap_err();
    assert_eq!(
        conflict(stale),
        (
            key.path().into(),
            format!("mod_revision {r1}"),
            format!("mod_revision {r2}")
        )
    );
    let stale = store.delete_if(&key, r1).await.unwrap_err();
    assert_eq!(conflict(stale).2, format!("mod_revision {r2}"));
    assert_eq!(store.get(&key).await.unwrap().unwrap().value.id, 2);

    store.delete_if(&key, r2).await.unwrap();
    let gone = store
        .update(&key, &mk_tenant("t", 4), r2)
        .await
        .unwrap_err();
    assert_eq!(
        conflict(gone),
        (
            key.path().into(),
            format!("mod_revision {r2}"),
            "absent".into()
        )
    );
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "a failed update creates nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_txn_with_one_failing_compare_writes_nothing_and_names_the_first_failing_key() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let keys = store.keys().clone();
    let ra = store
        .create(&keys.tenant("a"), &mk_tenant("a", 1))
        .await
        .unwrap();
    let rc = store
        .create(&keys.tenant("c"), &mk_tenant("c", 3))
        .await
        .unwrap();

    let err = store
        .txn()
        .create(&keys.tenant("b"), &mk_tenant("b", 2))
        .create(&keys.tenant_id(2), &"b".to_string())
        .expect_absent(&keys.tenant("a"))
        .update(&keys.tenant("c"), &mk_tenant("c", 4), rc - 1)
        .commit()
        .await
        .unwrap_err();
    assert_eq!(
        conflict(err),
        (
            keys.tenant("a").path().into(),
            "absent".into(),
            format!("mod_revision {ra}")
        )
    );
    assert_eq!(store.get(&keys.tenant("b")).await.unwrap(), None);
    assert_eq!(store.get(&keys.tenant_id(2)).await.unwrap(), None);
    assert_eq!(
        store
            .get(&keys.tenant("c"))
            .await
            .unwrap()
            .unwrap()
            .value
            .id,
        3
    );
    assert_eq!(store.revision().await.unwrap(), rc, "nothing was written");

    let rev = store
        .txn()
        .create(&keys.tenant("b"), &mk_tenant("b", 2))
        .create(&keys.tenant_id(2), &"b".to_string())
        .expect_unchanged(&keys.tenant("a"), ra)
        .update(&keys.tenant("c"), &mk_tenant("c", 4), rc)
        .delete_unchecked(&keys.tenant("absent"))
        .commit()
        .await
        .unwrap();
    let b = store.get(&keys.tenant("b")).await.unwrap().unwrap();
    let claim = store.get(&keys.tenant_id(2)).await.unwrap().unwrap();
    let c = store.get(&keys.tenant("c")).await.unwrap().unwrap();
    assert_eq!(
        (b.mod_revision, claim.mod_revision, c.mod_revision),
        (rev, rev, rev)
    );
    assert_eq!(claim.value, "b");

    let rev2 = store
        .txn()
        .delete(&keys.tenant("b"), rev)
        .delete(&keys.tenant_id(2), rev)
        .commit()
        .await
        .unwrap();
    assert_eq!(rev2, rev + 1, "two deletes, one revision");
    assert!(store
        .list(&keys.tenant_ids())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_two_concurrent_creates_of_one_key_have_exactly_one_winner() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let key = store.keys().address("10.3.82.7".parse().unwrap());
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { (i, store.create(&key, &format!("ep{i}")).await) })
        })
        .collect();
    let mut winners = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            (i, Ok(_)) => winners.push(i),
            (_, Err(e)) if e.is_conflict() => conflicts += 1,
            (_, Err(e)) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((winners.len(), conflicts), (1, 31));
    let stored = store.get(&key).await.unwrap().unwrap().value;
    assert_eq!(stored, format!("ep{}", winners[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn list_returns_one_consistent_snapshot_beyond_one_page() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let keys = store.keys().clone();
    let mut last = 0;
    for batch in 0..11u32 {
        let mut txn = store.txn();
        for id in batch * 100..(batch + 1) * 100 {
            txn = txn.create(&keys.tenant_id(id), &format!("t{id}"));
        }
        last = txn.commit().await.unwrap();
    }
    let listing = store.list(&keys.tenant_ids()).await.unwrap();
    assert_eq!(listing.revision, last);
    assert_eq!(listing.items.len(), 1100);
    for (id, item) in listing.items.iter().enumerate() {
        assert_eq!(
            item.value,
            format!("t{id}"),
            "in numeric order, nothing repeated"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_on_a_stopped_etcd_fails_fast_with_a_retryable_error() {
    let mut etcd = EtcdServer::start().unwrap();
    etcd.stop().unwrap();
    let store = Store::connect(&etcd.endpoints(), Keys::default())
        .await
        .expect("connect does not need etcd up");
    let err = tokio::time::timeout(Duration::from_secs(20), store.get(&store.keys().config()))
        .await
        .expect("a call on a stopped etcd returns instead of hanging")
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");

    etcd.start_again().unwrap();
    let rev = retrying(|| async { store.put(&store.keys().host("h1"), &mk_host("h1", 1)).await })
        .await
        .unwrap();
    assert!(rev > 1, "the same store works once etcd is back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_three_member_cluster_with_one_member_stopped_still_writes_and_reads() {
    let mut cluster = EtcdCluster::start(3).expect("cluster starts");
    let store = mk_store(&cluster.endpoints()).await;
    store
        .put(&store.keys().host("h0"), &mk_host("h0", 0))
        .await
        .unwrap();

    cluster.member(0).stop().unwrap();
    let key = store.keys().host("h1");
    let rev = retrying(|| async { store.create(&key, &mk_host("h1", 1)).await })
        .await
        .unwrap();
    let got = retrying(|| async { store.get(&key).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.value, got.mod_revision), (mk_host("h1", 1), rev));
    let hosts = retrying(|| async { store.list(&store.keys().hosts()).await })
        .await
        .unwrap();
    assert_eq!(hosts.items.len(), 2);

    cluster.member(0).start_again().unwrap();
    let only_member0 = mk_store(&cluster.member(0).endpoints()).await;
    let got = retrying(|| async { only_member0.get(&key).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.mod_revision, rev, "the restarted member caught up");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_bigger_than_one_grpc_message_is_read_in_smaller_pages() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let keys = store.keys().clone();
    // Six records of ~900 kB: one page of them is over the 4 MiB a message may hold.
    let big = "x".repeat(900_000);
    for i in 0..6 {
        let record = romana_core::ServiceRecord {
            kind: "ipam".into(),
            instance: format!("i{i}"),
            url: format!("{big}{i}"),
        };
        store
            .put(&keys.service("ipam", &format!("i{i}")), &record)
            .await
            .unwrap();
    }
    let listed = store.list(&keys.services()).await.unwrap();
    let instances: Vec<_> = listed
        .items
        .iter()
        .map(|s| s.value.instance.clone())
        .collect();
    assert_eq!(instances, ["i0", "i1", "i2", "i3", "i4", "i5"]);
    assert!(listed.items.iter().all(|s| s.value.url.len() > 900_000));
}
