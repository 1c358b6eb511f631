//! What an allocation and a release cost etcd, counted on etcd's own request metrics, and that the
//! watched copy behind that cost never places an endpoint by stale records.

mod common;

use common::*;
use romana_proto::pb;

/// KV requests etcd started during `n` calls of `call`, per call, with the background rate
/// (measured just before, over as long) taken out.
async fn kv_requests_per_call<F, Fut>(
    plane: &romana_integration::ControlPlane,
    n: u64,
    mut call: F,
) -> f64
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let etcd = &plane.etcd().members()[0];
    let count = || etcd.kv_requests().expect("etcd /metrics answers");
    let started = std::time::Instant::now();
    let before = count();
    for i in 0..n {
        call(i).await;
    }
    let after = count();
    let took = started.elapsed();
    let idle_before = count();
    tokio::time::sleep(took).await;
    let idle = count() - idle_before;
    (after - before).saturating_sub(idle) as f64 / n as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allocation_is_at_most_two_etcd_requests_and_a_release_one() {
    let (plane, c) = mk_ipam_cluster().await;
    // The first call waits for the copy; count the steady state.
    c.ipam
        .clone()
        .allocate(mk_alloc("warm", "h1", "t", "web"))
        .await
        .unwrap();
    let ipam = c.ipam.clone();
    let per_allocation = kv_requests_per_call(&plane, 40, |i| {
        let mut ipam = ipam.clone();
        async move {
            let host = if i % 2 == 0 { "h1" } else { "h2" };
            ipam.allocate(mk_alloc(&format!("e{i}"), host, "t", "web"))
                .await
                .unwrap();
        }
    })
    .await;
    eprintln!("etcd KV requests per allocation: {per_allocation:.2}");
    assert!(
        per_allocation <= 2.0,
        "{per_allocation:.2} etcd requests per allocation; the hot path must stay at <= 2"
    );
    let per_release = kv_requests_per_call(&plane, 40, |i| {
        let mut ipam = ipam.clone();
        async move {
            let released = ipam
                .release(pb::ReleaseRequest::endpoint(format!("e{i}")))
                .await
                .unwrap()
                .into_inner();
            assert!(released.endpoint.is_some());
        }
    })
    .await;
    eprintln!("etcd KV requests per release: {per_release:.2}");
    // One transaction named from the watched copy; a read first would make it two.
    assert!(
        per_release <= 1.25,
        "{per_release:.2} etcd requests per release; the hot path is one transaction"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_changed_behind_the_copy_never_place_an_endpoint_wrongly() {
    let (_plane, mut c) = mk_ipam_cluster().await;
    c.ipam
        .allocate(mk_alloc("warm", "h1", "t", ""))
        .await
        .unwrap();
    // A host added a moment ago is read from etcd if the copy has not seen it yet.
    c.topology
        .add_host(mk_host("h3", "192.168.0.13", None))
        .await
        .unwrap();
    let e = c
        .ipam
        .allocate(mk_alloc("on-h3", "h3", "t", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(e.address, "10.2.0.2", "h3 has index 2: 10.2.0.0/16");

    // A tenant removed and added again under the same name gets the next free number; the
    // copy may still hold the old record, which the transaction must refuse.
    c.tenants.add_tenant(mk_tenant("u")).await.unwrap();
    c.tenants.add_tenant(mk_tenant("v")).await.unwrap();
    c.tenants
        .remove_tenant(pb::RemoveTenantRequest { name: "u".into() })
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("w")).await.unwrap();
    c.tenants.add_tenant(mk_tenant("u")).await.unwrap();
    let tenant = |name: &str| {
        let mut tenants = c.tenants.clone();
        let name = name.to_string();
        async move {
            tenants
                .get_tenant(pb::GetTenantRequest { name })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let u = tenant("u").await;
    let e = c
        .ipam
        .allocate(mk_alloc("in-u", "h1", "u", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        e.address,
        format!("10.0.{}.2", u.id << 4),
        "the endpoint is placed by tenant u's current number {}",
        u.id
    );
}
