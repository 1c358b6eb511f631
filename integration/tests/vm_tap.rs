//! OpenStack VMs on taps: a port allocated through ipam-service with its Nova tap name, the
//! VM started only after the host's agent runs and knows the port, then wired by the agent
//! alone (gateway on the tap, tap up, route, status) within a bound, isolated as any
//! endpoint is, and unwired on release. Real etcd, services, agents, CNI endpoints and
//! kernels, all in namespaces.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use romana_integration::{cluster, eventually, require_netns, Cluster};
use romana_proto::pb;

const CONVERGE: Duration = Duration::from_secs(20);
/// How long after the tap appears it must be wired: gateway on it, up, routed.
const WIRED_WITHIN: Duration = Duration::from_secs(1);

async fn mk_tenants(c: &Cluster) -> anyhow::Result<()> {
    c.add_tenants(&["t1", "t2"]).await
}

async fn host_status(c: &Cluster, host: &str) -> anyhow::Result<pb::HostStatus> {
    Ok(c.topology()
        .await?
        .get_host_status(pb::GetHostStatusRequest { host: host.into() })
        .await?
        .into_inner())
}

/// Polls every 5 ms until `check` holds; returns how long after `start` that was.
fn time_until(
    what: &str,
    start: Instant,
    limit: Duration,
    mut check: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    while !check()? {
        anyhow::ensure!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(start.elapsed())
}

fn pings(c: &Cluster, from: &str, to: IpAddr) -> bool {
    (0..3).any(|_| c.ping(from, to))
}

#[test]
fn a_vm_started_after_its_port_is_wired_by_the_agent_isolated_and_unwired_on_release() {
    require_netns!("nft", "ping");
    cluster()
        .racks(1)
        .hosts(2)
        .run(|mut c| async move {
            mk_tenants(&c).await?;
            // CNI endpoints on the other host: one of the VM's tenant, one of another.
            let b = c.add_endpoint("b", "r0h1", "t1", "default").await?;
            let e = c.add_endpoint("e", "r0h1", "t2", "default").await?;
            let port = c.allocate_vm_port("vm", "r0h0", "t1", "default").await?;
            let route = format!("{}/32 dev {} scope link", port.address, port.tap);
            // The agent knows the port and waits for its tap: the VM is not running.
            eventually("r0h0's agent to wait for the tap", CONVERGE, || async {
                let st = host_status(&c, "r0h0").await.ok()?;
                st.blocked.contains(&route).then_some(())
            })
            .await?;

            // The VM starts: libvirt makes the tap, nothing else happens on the host side.
            let plugged = Instant::now();
            c.start_vm("vm", &port)?;
            let (tap, gateway, address) = (port.tap.clone(), port.gateway, port.address);
            let wired = time_until("the tap to be wired", plugged, WIRED_WITHIN, || {
                Ok(c.tap_wired("r0h0", &tap, gateway)? && c.routed_to("r0h0", address, &tap)?)
            })?;
            let in_status = format!("{address}/32 dev {tap}");
            eventually("the route in r0h0's status", CONVERGE, || async {
                let st = host_status(&c, "r0h0").await.ok()?;
                (st.reported && st.routes.contains(&in_status)).then_some(())
            })
            .await?;
            let reported = plugged.elapsed();
            println!(
                "vm tap wiring: gateway, up and route {} ms after the tap was created (VM namespace set up meanwhile); in the status after {} ms",
                wired.as_millis(),
                reported.as_millis()
            );

            assert!(pings(&c, "vm", b), "VM -> same tenant on another host");
            assert!(
                c.ping("b", address),
                "same tenant on another host -> VM (its route via r0h0)"
            );
            assert!(!pings(&c, "vm", e), "VM -> another tenant");
            assert!(!c.ping("e", address), "another tenant -> VM");
            let honest = c.udp_probe("vm", address, "b")?;
            assert!(
                honest.delivered > 0,
                "the probe itself works: {honest:?}"
            );
            let forged: IpAddr = "10.0.16.77".parse()?;
            let probe = c.udp_probe("vm", forged, "b")?;
            assert!(probe.dropped(), "a forged source from the VM: {probe:?}");

            // Stopped (libvirt deletes the tap) and started again, the port kept: the
            // status drops the route at once, and the new tap is wired as the first was.
            c.stop_vm("vm")?;
            eventually("r0h0's status to drop the stopped VM's route", CONVERGE, || async {
                let st = host_status(&c, "r0h0").await.ok()?;
                (!st.routes.contains(&in_status) && st.blocked.contains(&route)).then_some(())
            })
            .await?;
            let restarted = Instant::now();
            c.start_vm("vm", &port)?;
            let rewired = time_until("the new tap to be wired", restarted, WIRED_WITHIN, || {
                Ok(c.tap_wired("r0h0", &tap, gateway)? && c.routed_to("r0h0", address, &tap)?)
            })?;
            println!(
                "vm tap rewiring after a stop and start: {} ms",
                rewired.as_millis()
            );
            assert!(pings(&c, "vm", b), "VM -> same tenant after a restart");

            // Released (the port is deleted) while the VM still runs.
            let released = Instant::now();
            c.ipam()
                .await?
                .release(pb::ReleaseRequest::endpoint(port.endpoint.clone()))
                .await?;
            let unwired = time_until("the tap to be unwired", released, CONVERGE, || {
                let gone = !c.routed_to("r0h0", address, &tap)?;
                let out = c.host("r0h0").ns.ip(&["-j", "addr", "show", "dev", &tap])?;
                Ok(gone && !out.contains(&format!("\"local\":\"{gateway}\"")))
            })?;
            println!(
                "vm tap unwiring: route and gateway gone {} ms after the release",
                unwired.as_millis()
            );
            assert!(
                c.host("r0h0").ns.ip(&["link", "show", "dev", &tap]).is_ok(),
                "the tap is libvirt's: it stays"
            );
            assert!(!pings(&c, "vm", b), "a released VM passes nothing");
            Ok(())
        })
        .unwrap();
}
