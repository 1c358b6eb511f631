//! `ipam`: address allocation through ipam-service against the floor of what etcd itself
//! does per allocation (one conditional create), both at the same concurrency.

use romana_integration::{ControlPlane, Service};
use romana_proto::pb;
use tonic::transport::Channel;

use crate::measure::{measure, print_ratios, ratio};

pub async fn ipam(n: usize, concurrency: usize, hosts: usize) -> anyhow::Result<()> {
    let plane = ControlPlane::start().await?;
    let channel =
        |url: String| async move { anyhow::Ok(Channel::from_shared(url)?.connect().await?) };
    let mut root = pb::root_client::RootClient::new(channel(plane.root_url()).await?);
    root.init_config(pb::InitConfigRequest {
        config: Some(pb::ClusterConfig {
            address_space: "10.0.0.0/8".into(),
            host_bits: 8,
            tenant_bits: 4,
            segment_bits: 4,
            ..Default::default()
        }),
    })
    .await?;
    let mut topology =
        pb::topology_client::TopologyClient::new(channel(plane.url(Service::Topology)).await?);
    for h in 0..hosts {
        topology
            .add_host(pb::AddHostRequest {
                name: format!("h{h}"),
                ip: format!("192.168.0.{}", h + 1),
                rack: None,
            })
            .await?;
    }
    let mut tenants =
        pb::tenants_client::TenantsClient::new(channel(plane.url(Service::Tenant)).await?);
    tenants
        .add_tenant(pb::AddTenantRequest {
            name: "bench".into(),
            ..Default::default()
        })
        .await?;
    // A segment holds 253 addresses per host in this layout.
    let per_segment = 253 * hosts;
    let segments = n.div_ceil(per_segment);
    for s in 1..segments {
        tenants
            .add_segment(pb::AddSegmentRequest {
                tenant: "bench".into(),
                name: format!("s{s}"),
            })
            .await?;
    }

    // Baseline: the one etcd round trip an allocation cannot avoid, a conditional create.
    let store = plane.store().clone();
    let baseline = measure(n, concurrency, move |i| {
        let store = store.clone();
        async move {
            let key = store.keys().address(std::net::IpAddr::from([
                10,
                200,
                (i / 256) as u8,
                (i % 256) as u8,
            ]));
            store.create(&key, &format!("baseline-{i}")).await?;
            Ok(())
        }
    })
    .await?;

    let ipam = pb::ipam_client::IpamClient::new(channel(plane.url(Service::Ipam)).await?);
    let measured = measure(n, concurrency, move |i| {
        let mut ipam = ipam.clone();
        async move {
            let segment = if i / per_segment == 0 {
                "default".to_string()
            } else {
                format!("s{}", i / per_segment)
            };
            ipam.allocate(pb::AllocateRequest {
                endpoint: format!("ep-{i}"),
                host: format!("h{}", i % hosts),
                tenant: "bench".into(),
                segment,
                ..Default::default()
            })
            .await?;
            Ok(())
        }
    })
    .await?;

    println!("ipam allocation, {n} operations, concurrency {concurrency}, {hosts} hosts");
    println!(
        "  baseline (etcd conditional create)  {}",
        baseline.describe(n)
    );
    println!(
        "  ipam-service Allocate               {}",
        measured.describe(n)
    );
    print_ratios(&[
        (
            "throughput".into(),
            ratio(measured.rate(n), baseline.rate(n)),
        ),
        ("p50".into(), ratio(measured.ms(0.5), baseline.ms(0.5))),
        ("p99".into(), ratio(measured.ms(0.99), baseline.ms(0.99))),
    ]);
    Ok(())
}
