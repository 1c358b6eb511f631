//! The control plane the service benchmarks (`ipam`, `cni`) run against: the integration
//! crate's in-process services on a fresh etcd, a layout whose segments hold 2^16 addresses
//! per host (more than any run allocates), the given hosts and tenant `bench` with its
//! default segment.

use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use tonic::transport::Channel;

pub async fn channel(url: String) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(url)?.connect().await?)
}

pub async fn start(hosts: &[String]) -> anyhow::Result<ControlPlane> {
    let plane = ControlPlane::start().await?;
    pb::root_client::RootClient::new(channel(plane.root_url()).await?)
        .init_config(pb::InitConfigRequest {
            config: Some(pb::ClusterConfig {
                address_space: "10.0.0.0/8".into(),
                host_bits: 4,
                tenant_bits: 2,
                segment_bits: 2,
                ..Default::default()
            }),
        })
        .await?;
    let mut topology =
        pb::topology_client::TopologyClient::new(channel(plane.url(Service::Topology)).await?);
    for (i, name) in hosts.iter().enumerate() {
        topology
            .add_host(pb::AddHostRequest {
                name: name.clone(),
                ip: format!("192.168.0.{}", i + 1),
                rack: None,
                second_ip: String::new(),
            })
            .await?;
    }
    pb::tenants_client::TenantsClient::new(channel(plane.url(Service::Tenant)).await?)
        .add_tenant(pb::AddTenantRequest {
            name: "bench".into(),
            ..Default::default()
        })
        .await?;
    Ok(plane)
}
