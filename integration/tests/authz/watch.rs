//! The Watch* RPCs over mutual TLS: each identity's first listing is exactly what its List
//! call answers (same filtering, same refusals), and what it streams later stays filtered.

use std::time::Duration;

use romana_proto::pb;
use tonic::{Code, Status, Streaming};

use crate::{seeded, IDENTITIES};

/// The first message of a watch, or the call's (or the stream's first) error.
async fn first<T>(opened: Result<tonic::Response<Streaming<T>>, Status>) -> Result<T, Status> {
    let mut stream = opened?.into_inner();
    let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a first listing within 10 s")?;
    Ok(next.expect("a listing before the stream ends"))
}

/// A comparable outcome: the names, or the code and message of a refusal.
type Outcome = Result<Vec<String>, (Code, String)>;

fn outcome<T>(result: Result<T, Status>, names: impl FnOnce(T) -> Vec<String>) -> Outcome {
    result
        .map(|v| {
            let mut n = names(v);
            n.sort();
            n
        })
        .map_err(|s| (s.code(), s.message().to_string()))
}

fn endpoint_ids(endpoints: Vec<pb::Endpoint>) -> Vec<String> {
    endpoints.into_iter().map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_show_each_identity_what_its_list_calls_show() {
    let plane = seeded().await;
    for cn in IDENTITIES {
        let mut c = plane.clients(cn).await;

        let listed = c
            .ipam
            .list_endpoints(pb::ListEndpointsRequest::default())
            .await;
        let listed = outcome(listed, |r| endpoint_ids(r.into_inner().endpoints));
        let watched = first(
            c.ipam
                .watch_endpoints(pb::WatchEndpointsRequest::default())
                .await,
        );
        let watched = outcome(watched.await, |r| endpoint_ids(r.endpoints));
        assert_eq!(watched, listed, "{cn}: endpoints");

        let listed = c
            .policies
            .list_policies(pb::ListPoliciesRequest::default())
            .await;
        let listed = outcome(listed, |r| {
            r.into_inner().policies.into_iter().map(|p| p.id).collect()
        });
        let watched = first(
            c.policies
                .watch_policies(pb::WatchPoliciesRequest::default())
                .await,
        );
        let watched = outcome(watched.await, |r| {
            r.policies.into_iter().map(|p| p.id).collect()
        });
        assert_eq!(watched, listed, "{cn}: policies");

        let hosts = |r: pb::ListHostStatusResponse| r.hosts.into_iter().map(|h| h.host).collect();
        let listed = c
            .topology
            .list_host_status(pb::ListHostStatusRequest {})
            .await;
        let listed = outcome(listed, |r| hosts(r.into_inner()));
        let all = pb::WatchHostStatusRequest::default();
        let watched = outcome(first(c.topology.watch_host_status(all).await).await, hosts);
        assert_eq!(watched, listed, "{cn}: host status");
        for host in ["h1", "h2", "h9"] {
            let request = pb::GetHostStatusRequest { host: host.into() };
            let got = c.topology.get_host_status(request).await;
            let got = outcome(got, |r| vec![r.into_inner().host]);
            let request = pb::WatchHostStatusRequest { host: host.into() };
            let watched = outcome(
                first(c.topology.watch_host_status(request).await).await,
                hosts,
            );
            assert_eq!(watched, got, "{cn}: status of {host}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_watch_streams_its_own_changes_and_nobody_elses() {
    let plane = seeded().await;
    let mut t1 = plane.clients("tenant:t1").await;
    let mut admin = plane.clients("admin").await;
    let mut stream = t1
        .ipam
        .watch_endpoints(pb::WatchEndpointsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let ids = |r: pb::WatchEndpointsResponse| {
        let mut ids = endpoint_ids(r.endpoints);
        ids.sort();
        ids
    };
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(ids(first), ["e1", "e3"]);
    for (id, host, tenant) in [("e4", "h1", "t2"), ("e5", "h1", "t1")] {
        let request = pb::AllocateRequest {
            endpoint: id.into(),
            host: host.into(),
            tenant: tenant.into(),
            ..Default::default()
        };
        admin.ipam.allocate(request).await.unwrap();
    }
    // e4 alone changes nothing t1 sees, so the next listing t1 gets is the one with e5.
    let next = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a listing within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(ids(next), ["e1", "e3", "e5"]);
}
