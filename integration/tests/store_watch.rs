//! The watcher against a real etcd: initial listing, ordered changes, resume after an etcd
//! restart, and the resync marker after compaction.

use std::net::IpAddr;
use std::time::Duration;

use romana_core::Host;
use romana_integration::{mk_store, retrying, EtcdServer};
use romana_store::{KeyRef, Keys, Kv, Store, WatchEvent, Watcher};

fn mk_host(name: &str, index: u32) -> Host {
    Host {
        name: name.to_string(),
        ip: IpAddr::from([192, 168, 0, index as u8]),
        rack: 0,
        index,
        second_ip: None,
    }
}

/// The `Apply`/`InitApply` payload etcd should deliver for `host` written at `rev`.
fn mk_kv(keys: &Keys, host: &Host, rev: i64) -> Kv {
    Kv {
        key: keys.host(&host.name).path().to_string(),
        value: serde_json::to_vec(host).unwrap(),
        mod_revision: rev,
    }
}

fn mk_delete(keys: &Keys, name: &str, rev: i64) -> WatchEvent {
    WatchEvent::Delete {
        key: keys.host(name).path().to_string(),
        mod_revision: rev,
    }
}

/// Events until `done` says enough, skipping retryable errors (a broken or reconnecting
/// watch) with a short pause, which is the caller's backoff. Returns the events and how many
/// errors were seen. Bounded so a lost event fails the test instead of hanging it.
async fn collect(
    watcher: &mut Watcher,
    done: impl Fn(&[WatchEvent]) -> bool,
) -> (Vec<WatchEvent>, usize) {
    let mut events = Vec::new();
    let mut errors = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done(&events) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, watcher.next()).await {
            Err(_) => panic!("timed out; got {events:?} after {errors} errors"),
            Ok(Ok(event)) => events.push(event),
            Ok(Err(e)) => {
                assert!(e.is_retryable(), "watch error should be retryable: {e:?}");
                errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    (events, errors)
}

fn count(n: usize) -> impl Fn(&[WatchEvent]) -> bool {
    move |events| events.len() >= n
}

fn through_init_done(events: &[WatchEvent]) -> bool {
    matches!(events.last(), Some(WatchEvent::InitDone { .. }))
}

async fn mk_etcd_and_store() -> (EtcdServer, Store) {
    let etcd = EtcdServer::start().expect("etcd starts");
    let store = mk_store(&etcd.endpoints()).await;
    (etcd, store)
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_lists_existing_keys_then_streams_puts_and_deletes_in_order() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let keys = store.keys().clone();
    let r1 = store
        .put(&keys.host("h1"), &mk_host("h1", 1))
        .await
        .unwrap();
    let r2 = store
        .put(&keys.host("h2"), &mk_host("h2", 2))
        .await
        .unwrap();
    let outside = Store::connect(&_etcd.endpoints(), Keys::new("/elsewhere/"))
        .await
        .unwrap();
    outside
        .put(&outside.keys().host("x"), &mk_host("x", 9))
        .await
        .unwrap();

    let mut watcher = store.watch(keys.prefix());
    let (init, errors) = collect(&mut watcher, through_init_done).await;
    let revision = r2 + 1;
    assert_eq!(
        init,
        [
            WatchEvent::Init,
            WatchEvent::InitApply(mk_kv(&keys, &mk_host("h1", 1), r1)),
            WatchEvent::InitApply(mk_kv(&keys, &mk_host("h2", 2), r2)),
            WatchEvent::InitDone { revision },
        ]
    );
    assert_eq!((errors, watcher.last_revision()), (0, revision));

    outside
        .put(&outside.keys().host("y"), &mk_host("y", 8))
        .await
        .unwrap();
    let r3 = store
        .put(&keys.host("h3"), &mk_host("h3", 3))
        .await
        .unwrap();
    let r4 = store
        .delete_if(&keys.host("h1"), r1)
        .await
        .map(|()| r3 + 1)
        .unwrap();
    let r5 = store
        .txn()
        .update(&keys.host("h2"), &mk_host("h2", 20), r2)
        .create(&keys.host("h4"), &mk_host("h4", 4))
        .commit()
        .await
        .unwrap();
    let (events, errors) = collect(&mut watcher, count(4)).await;
    assert_eq!(
        events,
        [
            WatchEvent::Apply(mk_kv(&keys, &mk_host("h3", 3), r3)),
            mk_delete(&keys, "h1", r4),
            WatchEvent::Apply(mk_kv(&keys, &mk_host("h2", 20), r5)),
            WatchEvent::Apply(mk_kv(&keys, &mk_host("h4", 4), r5)),
        ],
        "in revision order, keys outside the prefix left out"
    );
    assert_eq!((errors, watcher.last_revision()), (0, r5));

    let WatchEvent::Apply(kv) = &events[0] else {
        unreachable!()
    };
    assert_eq!(keys.parse(&kv.key), Some(KeyRef::Host("h3".into())));
    assert_eq!(kv.decode::<Host>().unwrap(), mk_host("h3", 3));
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_resumes_after_an_etcd_restart_without_repeating_or_losing_events() {
    let (mut etcd, store) = mk_etcd_and_store().await;
    let keys = store.keys().clone();
    let ra = store.put(&keys.host("a"), &mk_host("a", 1)).await.unwrap();
    let mut watcher = store.watch(keys.prefix());
    collect(&mut watcher, through_init_done).await;
    let rb = store.put(&keys.host("b"), &mk_host("b", 2)).await.unwrap();
    let (events, _) = collect(&mut watcher, count(1)).await;
    assert_eq!(
        events,
        [WatchEvent::Apply(mk_kv(&keys, &mk_host("b", 2), rb))]
    );

    etcd.stop().unwrap();
    etcd.start_again().unwrap();
    // Written while the watcher is disconnected: the resume must pick these up.
    let rc = retrying(|| async { store.put(&keys.host("c"), &mk_host("c", 3)).await })
        .await
        .unwrap();
    retrying(|| async { store.delete_if(&keys.host("a"), ra).await })
        .await
        .unwrap();
    let (events, errors) = collect(&mut watcher, count(2)).await;
    assert!(
        errors >= 1,
        "the broken watch is reported before it resumes"
    );
    let rd = rc + 1;
    assert_eq!(
        events,
        [
            WatchEvent::Apply(mk_kv(&keys, &mk_host("c", 3), rc)),
            mk_delete(&keys, "a", rd),
        ],
        "no resync marker, nothing repeated, nothing lost"
    );

    let re = store.put(&keys.host("e"), &mk_host("e", 5)).await.unwrap();
    let (events, errors) = collect(&mut watcher, count(1)).await;
    assert_eq!(
        events,
        [WatchEvent::Apply(mk_kv(&keys, &mk_host("e", 5), re))]
    );
    assert_eq!(errors, 0, "the resumed watch is live");
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_relists_when_its_resume_revision_was_compacted_during_an_etcd_restart() {
    let (mut etcd, store) = mk_etcd_and_store().await;
    let keys = store.keys().clone();
    let ra = store.put(&keys.host("a"), &mk_host("a", 1)).await.unwrap();
    store.put(&keys.host("b"), &mk_host("b", 2)).await.unwrap();
    let mut watcher = store.watch(keys.prefix());
    collect(&mut watcher, through_init_done).await;
    // One change consumed, so that a watch stream is open when etcd goes away.
    let rc = store.put(&keys.host("c"), &mk_host("c", 3)).await.unwrap();
    let (events, _) = collect(&mut watcher, count(1)).await;
    assert_eq!(
        events,
        [WatchEvent::Apply(mk_kv(&keys, &mk_host("c", 3), rc))]
    );

    etcd.stop().unwrap();
    etcd.start_again().unwrap();
    retrying(|| async { store.delete_if(&keys.host("a"), ra).await })
        .await
        .unwrap();
    let rb = store.put(&keys.host("b"), &mk_host("b", 22)).await.unwrap();
    store.compact(rb).await.unwrap();

    let (events, errors) = collect(&mut watcher, through_init_done).await;
    assert!(errors >= 1, "the broken watch is reported first");
    assert_eq!(
        events,
        [
            WatchEvent::Init,
            WatchEvent::InitApply(mk_kv(&keys, &mk_host("b", 22), rb)),
            WatchEvent::InitApply(mk_kv(&keys, &mk_host("c", 3), rc)),
            WatchEvent::InitDone { revision: rb },
        ],
        "exactly the current state: the deleted key is absent"
    );

    let rd = store.put(&keys.host("d"), &mk_host("d", 4)).await.unwrap();
    let (events, _) = collect(&mut watcher, count(1)).await;
    assert_eq!(
        events,
        [WatchEvent::Apply(mk_kv(&keys, &mk_host("d", 4), rd))]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn watcher_relists_when_history_after_its_listing_was_compacted_before_it_watched() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let keys = store.keys().clone();
    let ra = store.put(&keys.host("a"), &mk_host("a", 1)).await.unwrap();
    let mut watcher = store.watch(keys.prefix());
    collect(&mut watcher, through_init_done).await;

    // The watch is only opened by the next call, from the listing's revision + 1.
    store.delete_if(&keys.host("a"), ra).await.unwrap();
    let rb = store.put(&keys.host("b"), &mk_host("b", 2)).await.unwrap();
    store.compact(rb).await.unwrap();

    let (events, errors) = collect(&mut watcher, through_init_done).await;
    assert_eq!(errors, 0, "a compacted resume is a resync, not an error");
    assert_eq!(
        events,
        [
            WatchEvent::Init,
            WatchEvent::InitApply(mk_kv(&keys, &mk_host("b", 2), rb)),
            WatchEvent::InitDone { revision: rb },
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_watcher_is_not_disturbed_by_compaction() {
    let (_etcd, store) = mk_etcd_and_store().await;
    let keys = store.keys().clone();
    let mut watcher = store.watch(keys.prefix());
    let (init, _) = collect(&mut watcher, through_init_done).await;
    assert_eq!(
        init,
        [WatchEvent::Init, WatchEvent::InitDone { revision: 1 }]
    );

    let ra = store.put(&keys.host("a"), &mk_host("a", 1)).await.unwrap();
    let (events, _) = collect(&mut watcher, count(1)).await;
    assert_eq!(
        events,
        [WatchEvent::Apply(mk_kv(&keys, &mk_host("a", 1), ra))]
    );
    store.compact(ra).await.unwrap();
    store.compact(ra).await.unwrap();

    let rb = store.put(&keys.host("b"), &mk_host("b", 2)).await.unwrap();
    let (events, errors) = collect(&mut watcher, count(1)).await;
    assert_eq!(
        events,
        [WatchEvent::Apply(mk_kv(&keys, &mk_host("b", 2), rb))]
    );
    assert_eq!(errors, 0);
}
