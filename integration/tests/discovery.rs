//! Discovery while etcd cannot answer: root's ListServices falls back to its watched copy
//! of the registry (see `romana_root::registry`), so clients still find the services
//! during an election or a frozen member.

mod common;

use std::time::{Duration, Instant};

use common::*;
use romana_core::ServiceRecord;
use romana_proto::pb;

async fn kinds(c: &mut Clients) -> Vec<String> {
    let mut kinds: Vec<String> = c
        .root
        .list_services(pb::ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .services
        .into_iter()
        .map(|s| format!("{}/{}", s.kind, s.url))
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test(flavor = "multi_thread")]
async fn with_etcd_frozen_root_lists_the_services_it_last_saw() {
    let mut plane = romana_integration::ControlPlane::start().await.unwrap();
    let mut c = mk_clients(&plane).await;
    let store = plane.store().clone();
    let extra = store.keys().service("ipam", "extra");
    let record = ServiceRecord {
        kind: "ipam".into(),
        instance: "extra".into(),
        url: "http://127.0.0.1:1".into(),
    };
    store.put(&extra, &record).await.unwrap();
    // The copy follows the watch: wait until a listing shows the extra record, then give
    // the watch a moment past it.
    let before = loop {
        let k = kinds(&mut c).await;
        if k.iter().any(|k| k.contains("127.0.0.1:1")) {
            break k;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(before.len(), 6, "{before:?}");

    plane.etcd_mut().member(0).pause().unwrap();
    let started = Instant::now();
    let during = tokio::time::timeout(Duration::from_secs(3), kinds(&mut c)).await;
    let took = started.elapsed();
    plane.etcd_mut().member(0).resume().unwrap();
    let during = during.expect("answered while etcd is frozen");
    assert_eq!(during, before, "the copy lists what etcd last said");
    assert!(
        took >= romana_root::READ_PATIENCE,
        "etcd was asked first: {took:?}"
    );

    // Once etcd answers again, root reads it: the extra record, deleted now, is gone.
    store.delete(&extra).await.unwrap();
    let after = kinds(&mut c).await;
    assert_eq!(after.len(), 5, "{after:?}");
}
