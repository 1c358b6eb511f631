//! The bad-input harness: a request must be refused with the right code, in under 100 ms
//! measured around the round trip, with a message under 300 bytes however big the input, and
//! with etcd's revision unchanged.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use tonic::transport::Channel;
use tonic::Code;

use super::*;

pub const MB: usize = 1 << 20;
/// Refused before any expensive work: well under what parsing or etcd would take.
pub const FAST: Duration = Duration::from_millis(100);
pub const SHORT: usize = 300;

pub type Policies = pb::policies_client::PoliciesClient<Channel>;

/// Asserts `call` is refused with `code` and a message holding `needle`, fast, with a short
/// message, and that etcd did not change. Returns the round trip.
pub async fn refused<T, F>(
    plane: &ControlPlane,
    what: &str,
    call: F,
    code: Code,
    needle: &str,
) -> Duration
where
    T: std::fmt::Debug,
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    refused_within(plane, what, call, code, needle, FAST).await
}

/// [`refused`] for a request of several MB, whose mere transfer through a debug build of
/// tonic takes a while: `limit` instead of [`FAST`].
pub async fn refused_within<T, F>(
    plane: &ControlPlane,
    what: &str,
    call: F,
    code: Code,
    needle: &str,
    limit: Duration,
) -> Duration
where
    T: std::fmt::Debug,
    F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let before = plane.store().revision().await.expect("revision");
    let start = Instant::now();
    let result = call.await;
    let took = start.elapsed();
    let status = match result {
        Ok(r) => panic!("{what}: expected {code:?}, got {:?}", r.into_inner()),
        Err(s) => s,
    };
    assert_eq!(status.code(), code, "{what}: {}", status.message());
    assert!(
        status.message().contains(needle),
        "{what}: message {:?} lacks {needle:?}",
        status.message()
    );
    assert!(
        status.message().len() < SHORT,
        "{what}: message is {} bytes: {}",
        status.message().len(),
        status.message()
    );
    assert!(took < limit, "{what}: refused in {took:?}");
    let after = plane.store().revision().await.expect("revision");
    assert_eq!(before, after, "{what}: a refused request changed etcd");
    took
}

pub async fn mk_plane() -> (ControlPlane, Clients, Policies) {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    c.topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("t")).await.unwrap();
    c.ipam
        .allocate(mk_alloc("e1", "h1", "t", "default"))
        .await
        .unwrap();
    let p = pb::policies_client::PoliciesClient::new(mk_channel(&plane.url(Service::Policy)).await);
    (plane, c, p)
}

pub fn doc(text: String) -> pb::ApplyPoliciesRequest {
    pb::ApplyPoliciesRequest {
        document: text,
        ..Default::default()
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
