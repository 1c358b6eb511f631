//! Chaos with two real `romana-ipam` replicas under load (16 clients allocating and
//! releasing through root): one is killed with SIGKILL, or frozen with SIGSTOP past its
//! registration lease and thawed. Each test prints one `chaos ...` summary line.
//!
//! The replica hit is the one root lists first: discovery tries instances in root's order,
//! so that is the one carrying the load.

use std::time::{Duration, Instant};

use romana_integration::chaos::{self, invariants, listed, placement, Load, LoadSpec, Replica};
use romana_integration::{eventually, ControlPlane, Service};
use romana_proto::pb;

const ALLOCATE: &str = "/romana.v1.Ipam/Allocate";

/// A control plane without in-process ipam, a layout, hosts h1 and h2, tenant t1 with
/// segments `default` and `s2`, and two ipam replicas (binaries) registered.
async fn mk_plane() -> anyhow::Result<(ControlPlane, [Replica; 2])> {
    let plane = ControlPlane::builder()
        .without(Service::Ipam)
        .start()
        .await?;
    let root = romana_proto::discover::channel(&plane.root_url(), "root").await?;
    pb::root_client::RootClient::new(root)
        .init_config(pb::InitConfigRequest {
            config: Some(pb::ClusterConfig {
                address_space: "10.0.0.0/8".into(),
                host_bits: 8,
                tenant_bits: 4,
                segment_bits: 4,
                ..Default::default()
            }),
        })
        .await?;
    let channel = romana_proto::discover::channel(&plane.root_url(), "topology").await?;
    let mut topology = pb::topology_client::TopologyClient::new(channel);
    for (name, ip) in [("h1", "192.168.0.11"), ("h2", "192.168.0.12")] {
        topology
            .add_host(pb::AddHostRequest {
                name: name.into(),
                ip: ip.into(),
                rack: None,
                second_ip: String::new(),
            })
            .await?;
    }
    let channel = romana_proto::discover::channel(&plane.root_url(), "tenant").await?;
    let mut tenants = pb::tenants_client::TenantsClient::new(channel);
    tenants
        .add_tenant(pb::AddTenantRequest {
            name: "t1".into(),
            ..Default::default()
        })
        .await?;
    tenants
        .add_segment(pb::AddSegmentRequest {
            tenant: "t1".into(),
            name: "s2".into(),
        })
        .await?;
    let a = Replica::start(&plane, Service::Ipam).await?;
    let b = Replica::start(&plane, Service::Ipam).await?;
    Ok((plane, [a, b]))
}

fn mk_spec(plane: &ControlPlane) -> LoadSpec {
    LoadSpec::new(
        plane.root_url(),
        vec![
            placement("h1", "t1", "default"),
            placement("h2", "t1", "default"),
            placement("h1", "t1", "s2"),
        ],
    )
}

/// Which of the two replicas root lists first (the one clients use), and the other.
async fn first_listed(plane: &ControlPlane, replicas: [Replica; 2]) -> (Replica, Replica) {
    let order = listed(&plane.root_url(), "ipam").await.unwrap();
    let [a, b] = replicas;
    if order.first() == Some(&a.url) {
        (a, b)
    } else {
        (b, a)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_busy_ipam_replica_fails_at_most_the_calls_in_flight() {
    let (plane, replicas) = mk_plane().await.unwrap();
    let (mut victim, other) = first_listed(&plane, replicas).await;
    let load = Load::start(mk_spec(&plane));
    load.progress(300, Duration::from_secs(20)).await.unwrap();
    let other_before = other.served(ALLOCATE).unwrap();

    let at = load.fault("kill -9 busy ipam replica");
    victim.process.kill();
    load.progress(300, Duration::from_secs(20)).await.unwrap();
    let run = load.finish().await.unwrap();
    let inv = invariants::check(plane.store(), &run).await.unwrap();
    let other_after = other.served(ALLOCATE).unwrap();
    let line = chaos::Summary::new("ipam-kill-replica")
        .load(&run)
        .field("other_replica_allocates", other_after - other_before)
        .invariants(&inv)
        .field("reconverge", chaos::secs(run.failing_for(at)))
        .print();

    let in_flight = run.in_flight_at(at);
    let failed: Vec<_> = run.failed().collect();
    assert!(
        failed.iter().all(|c| c.end > at),
        "calls failed before the fault: {failed:?}"
    );
    assert!(
        failed.len() <= in_flight,
        "{} calls failed, more than the {in_flight} in flight at the kill: {failed:#?}\n{line}",
        failed.len()
    );
    assert_eq!(
        run.new_operations_failed_after(at),
        0,
        "an operation that started after the kill failed: discovery must skip the dead replica\n{line}"
    );
    assert!(
        inv.hold(),
        "{line}\nviolations: {:#?}\nunresolved: {:?}",
        inv.violations,
        inv.unresolved
    );
    assert!(
        other_after > other_before && run.succeeded_between(at, run.duration) >= 300,
        "the load moved to the live replica: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_frozen_past_its_lease_is_passed_over_then_registers_and_serves_again() {
    let (plane, replicas) = mk_plane().await.unwrap();
    let (victim, other) = first_listed(&plane, replicas).await;
    let root = plane.root_url();
    let load = Load::start(mk_spec(&plane));
    load.progress(300, Duration::from_secs(20)).await.unwrap();

    let stopped = load.fault("SIGSTOP busy ipam replica");
    victim.process.pause().unwrap();
    let frozen = Instant::now();
    // The lease (10 s) runs out; root stops listing it. Meanwhile discovery passes it over
    // (it accepts connections but does not answer the health check).
    eventually(
        "the frozen replica's registration expires",
        Duration::from_secs(20),
        || async {
            let urls = listed(&root, "ipam").await.ok()?;
            (!urls.contains(&victim.url)).then_some(())
        },
    )
    .await
    .unwrap();
    let expired_after = frozen.elapsed();
    let other_during = other.served(ALLOCATE).unwrap();
    load.progress(100, Duration::from_secs(20)).await.unwrap();
    assert!(other.served(ALLOCATE).unwrap() > other_during);

    let thawed_at = load.fault("SIGCONT");
    victim.process.resume().unwrap();
    let thawed = Instant::now();
    eventually(
        "the thawed replica registers again",
        Duration::from_secs(20),
        || async {
            let urls = listed(&root, "ipam").await.ok()?;
            urls.contains(&victim.url).then_some(())
        },
    )
    .await
    .unwrap();
    let registered_after = thawed.elapsed();
    let victim_before = victim.served(ALLOCATE).unwrap();
    eventually(
        "the thawed replica serves the load again",
        Duration::from_secs(20),
        || async { (victim.served(ALLOCATE)? > victim_before).then_some(()) },
    )
    .await
    .unwrap();
    let serving_after = thawed.elapsed();
    load.progress(100, Duration::from_secs(20)).await.unwrap();
    let run = load.finish().await.unwrap();
    let inv = invariants::check(plane.store(), &run).await.unwrap();
    let line = chaos::Summary::new("ipam-sigstop-replica")
        .load(&run)
        .field("stopped_for", chaos::secs(thawed_at - stopped))
        .field("registration_expired_after", chaos::secs(expired_after))
        .field(
            "succeeded_while_stopped",
            run.succeeded_between(stopped, thawed_at),
        )
        .field("reregistered_after", chaos::secs(registered_after))
        .field("serving_again_after", chaos::secs(serving_after))
        .invariants(&inv)
        .field("reconverge", chaos::secs(run.failing_for(stopped)))
        .print();

    let in_flight = run.in_flight_at(stopped);
    let failed: Vec<_> = run.failed().collect();
    assert!(
        failed.len() <= in_flight,
        "{} calls failed, more than the {in_flight} in flight at the SIGSTOP: {failed:#?}\n{line}",
        failed.len()
    );
    assert_eq!(
        run.new_operations_failed_after(stopped),
        0,
        "an operation that started after the SIGSTOP failed: discovery must pass the frozen replica over\n{line}"
    );
    assert!(
        inv.hold(),
        "{line}\nviolations: {:#?}\nunresolved: {:?}",
        inv.violations,
        inv.unresolved
    );
}
