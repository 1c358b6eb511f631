//! Fresh-connection call latency of running services: the CNI plugin and romanactl open a
//! new connection for almost every call, and a server that leaves Nagle on makes each small
//! response wait for the client's delayed ACK (~40 ms on Linux). The median of a few such
//! calls far below 40 ms says the servers set TCP_NODELAY on accepted connections.

use std::time::{Duration, Instant};

use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use tonic::transport::Channel;

const CALLS: usize = 11;
/// Well under the 40 ms of a delayed ACK, well over a loopback call on a loaded machine.
const BOUND: Duration = Duration::from_millis(25);

/// The median of `CALLS` sequential calls, each on a connection of its own (connect
/// included, as a one-shot client pays it).
async fn median_fresh_call<F, Fut>(url: &str, call: F) -> Duration
where
    F: Fn(Channel) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut took = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let started = Instant::now();
        let channel = Channel::from_shared(url.to_string())
            .unwrap()
            .connect()
            .await
            .expect("service is up");
        call(channel).await;
        took.push(started.elapsed());
    }
    took.sort();
    println!("{url}: fresh-connection calls took {took:?}");
    took[CALLS / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_connection_calls_do_not_wait_for_a_delayed_ack() {
    let plane = ControlPlane::start().await.unwrap();
    // With a layout, an unknown endpoint is NOT_FOUND (without one, FAILED_PRECONDITION).
    pb::root_client::RootClient::new(
        Channel::from_shared(plane.root_url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .init_config(pb::InitConfigRequest {
        config: Some(pb::ClusterConfig {
            address_space: "10.0.0.0/8".into(),
            host_bits: 8,
            tenant_bits: 4,
            segment_bits: 4,
            ..Default::default()
        }),
    })
    .await
    .unwrap();
    let root = median_fresh_call(&plane.root_url(), |channel| async move {
        pb::root_client::RootClient::new(channel)
            .list_services(pb::ListServicesRequest {
                kind: "ipam".into(),
            })
            .await
            .unwrap();
    })
    .await;
    assert!(root < BOUND, "root ListServices median {root:?}");

    let ipam = median_fresh_call(&plane.url(Service::Ipam), |channel| async move {
        let status = pb::ipam_client::IpamClient::new(channel)
            .get_endpoint(pb::GetEndpointRequest {
                endpoint: "nosuch".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
    })
    .await;
    assert!(ipam < BOUND, "ipam GetEndpoint median {ipam:?}");
}
