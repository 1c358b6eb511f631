//! Shared pieces of the service tests: gRPC clients on a control plane, and layouts.

#![allow(dead_code)]

pub mod refused;

use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use tonic::transport::Channel;

pub struct Clients {
    pub root: pb::root_client::RootClient<Channel>,
    pub topology: pb::topology_client::TopologyClient<Channel>,
    pub tenants: pb::tenants_client::TenantsClient<Channel>,
    pub ipam: pb::ipam_client::IpamClient<Channel>,
}

pub async fn mk_channel(url: &str) -> Channel {
    Channel::from_shared(url.to_string())
        .expect("valid URL")
        .connect()
        .await
        .expect("service is up")
}

pub async fn mk_clients(plane: &ControlPlane) -> Clients {
    Clients {
        root: pb::root_client::RootClient::new(mk_channel(&plane.url(Service::Root)).await),
        topology: pb::topology_client::TopologyClient::new(
            mk_channel(&plane.url(Service::Topology)).await,
        ),
        tenants: pb::tenants_client::TenantsClient::new(
            mk_channel(&plane.url(Service::Tenant)).await,
        ),
        ipam: pb::ipam_client::IpamClient::new(mk_channel(&plane.url(Service::Ipam)).await),
    }
}

pub fn mk_config(
    space: &str,
    rack: u32,
    host: u32,
    tenant: u32,
    segment: u32,
) -> pb::ClusterConfig {
    pb::ClusterConfig {
        address_space: space.into(),
        host_bits: host,
        rack_bits: rack,
        tenant_bits: tenant,
        segment_bits: segment,
        ..Default::default()
    }
}

/// A control plane with `config` set, and clients on it.
pub async fn mk_cluster(config: pb::ClusterConfig) -> (ControlPlane, Clients) {
    let plane = ControlPlane::start().await.expect("control plane starts");
    let mut c = mk_clients(&plane).await;
    c.root
        .init_config(pb::InitConfigRequest {
            config: Some(config),
        })
        .await
        .expect("layout is accepted");
    (plane, c)
}

pub fn mk_host(name: &str, ip: &str, rack: Option<u32>) -> pb::AddHostRequest {
    pb::AddHostRequest {
        name: name.into(),
        ip: ip.into(),
        rack,
        second_ip: String::new(),
    }
}

pub fn mk_tenant(name: &str) -> pb::AddTenantRequest {
    pb::AddTenantRequest {
        name: name.into(),
        ..Default::default()
    }
}

pub fn mk_alloc(endpoint: &str, host: &str, tenant: &str, segment: &str) -> pb::AllocateRequest {
    pb::AllocateRequest {
        endpoint: endpoint.into(),
        host: host.into(),
        tenant: tenant.into(),
        segment: segment.into(),
        ..Default::default()
    }
}

/// The endpoint record `id` as etcd holds it (ipam-service wrote it), or a panic.
pub async fn stored_endpoint(plane: &ControlPlane, id: &str) -> romana_core::Endpoint {
    let store = plane.store();
    store
        .get(&store.keys().endpoint(id))
        .await
        .expect("etcd answers")
        .unwrap_or_else(|| panic!("no record of endpoint {id}"))
        .value
}

/// Asserts a call failed with `code` and a message containing `needle`.
#[track_caller]
pub fn assert_status<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
    code: tonic::Code,
    needle: &str,
) {
    match result {
        Ok(r) => panic!("expected {code:?} ({needle}), got {:?}", r.into_inner()),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            assert!(
                s.message().contains(needle),
                "message {:?} lacks {needle:?}",
                s.message()
            );
        }
    }
}

/// Runs a request that must be refused with `code`, and checks that etcd did not change
/// (the store revision is the same before and after): bad input changes nothing.
pub async fn assert_refused<T, F>(plane: &ControlPlane, call: F, code: tonic::Code, needle: &str)
where
    T: std::fmt::Debug,
    F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let before = plane.store().revision().await.expect("revision");
    assert_status(call.await, code, needle);
    let after = plane.store().revision().await.expect("revision");
    assert_eq!(before, after, "a refused request ({needle}) changed etcd");
}

/// 10.0.0.0/8, 8/4/4: host h1 (index 0, 10.0.0.0/16) and h2 (index 1), tenant t (number 0)
/// with segments default (0) and web (1).
pub async fn mk_ipam_cluster() -> (romana_integration::ControlPlane, Clients) {
    let (plane, mut c) = mk_cluster(mk_config("10.0.0.0/8", 0, 8, 4, 4)).await;
    c.topology
        .add_host(mk_host("h1", "192.168.0.11", None))
        .await
        .unwrap();
    c.topology
        .add_host(mk_host("h2", "192.168.0.12", None))
        .await
        .unwrap();
    c.tenants.add_tenant(mk_tenant("t")).await.unwrap();
    c.tenants
        .add_segment(pb::AddSegmentRequest {
            tenant: "t".into(),
            name: "web".into(),
        })
        .await
        .unwrap();
    (plane, c)
}
