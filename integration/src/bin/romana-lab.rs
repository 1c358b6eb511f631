//! romana-lab: a local routed-access datacenter in network namespaces, for trying romana-rs
//! on one machine. Builds 2 racks x 2 hosts with real agents, a spine and two leaves, etcd and
//! every service in a management namespace, one tenant with two segments and a few endpoints
//! made by the CNI plugin; shows one ping that works and one that isolation blocks; then
//! stays up until SIGTERM/Ctrl-C and tears everything down.
//!
//! `deploy/local/up.sh` runs it in the background; `deploy/local/down.sh` stops it.

use std::fmt::Write as _;
use std::path::PathBuf;

use romana_integration::cluster::{binary, cluster, Cluster};
use romana_proto::pb;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let state_dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| ".local/lab".into()),
    );
    std::fs::create_dir_all(&state_dir)?;
    let state_dir = state_dir.canonicalize()?;
    // The lab runs on its own threads inside the management namespace; this thread only
    // waits for them.
    tokio::task::spawn_blocking(move || {
        cluster().racks(2).hosts(2).run(|mut c| async move {
            let summary = demo(&mut c).await?;
            std::fs::write(state_dir.join("env"), env_file(&c))?;
            std::fs::write(state_dir.join("summary"), &summary)?;
            print!("{summary}");
            std::fs::write(state_dir.join("ready"), "")?;
            romana_runtime::shutdown_signal().await;
            println!("romana-lab: tearing down");
            Ok(())
        })
    })
    .await?
}

async fn demo(c: &mut Cluster) -> anyhow::Result<String> {
    let mut tenants = c.tenants().await?;
    tenants
        .add_tenant(pb::AddTenantRequest {
            name: "demo".into(),
            ..Default::default()
        })
        .await?;
    tenants
        .add_segment(pb::AddSegmentRequest {
            tenant: "demo".into(),
            name: "web".into(),
        })
        .await?;
    let a = c.add_endpoint("a", "r0h0", "demo", "default").await?;
    let b = c.add_endpoint("b", "r1h0", "demo", "default").await?;
    let w = c.add_endpoint("w", "r0h1", "demo", "web").await?;
    let mut ok = false;
    for _ in 0..40 {
        if c.ping("a", b) {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let blocked = !c.ping("a", w);

    let mgmt = c.lab.mgmt().name().to_string();
    let root = c.plane.root_url();
    let ctl = binary("romanactl");
    let mut s = String::new();
    writeln!(
        s,
        "\nromana-rs lab is up: a routed-access datacenter in network namespaces."
    )?;
    writeln!(
        s,
        "  control plane  etcd {} and root/topology/tenant/ipam services in namespace {mgmt}",
        c.plane.etcd_endpoints().join(",")
    )?;
    writeln!(s, "  root-service   {root}")?;
    writeln!(s, "  spine          {}", c.spine.name())?;
    for (i, leaf) in c.leaves.iter().enumerate() {
        writeln!(
            s,
            "  leaf {i}         {} (rack 192.168.{i}.0/24)",
            leaf.name()
        )?;
    }
    for h in &c.hosts {
        writeln!(
            s,
            "  host {}      {} ({}, agent running)",
            h.name,
            h.ns.name(),
            h.ip
        )?;
    }
    for (name, e) in &c.endpoints {
        writeln!(
            s,
            "  endpoint {name}     {} on {} ({})",
            e.address,
            e.host,
            e.ns.name()
        )?;
    }
    writeln!(s, "\nTenant demo has segments default and web:")?;
    writeln!(
        s,
        "  ping a ({a}) -> b ({b}), same segment, other rack: {}",
        if ok {
            "replies"
        } else {
            "NO REPLY (unexpected; see agent logs in /tmp)"
        }
    )?;
    writeln!(
        s,
        "  ping a ({a}) -> w ({w}), other segment:            {}",
        if blocked {
            "blocked, as isolation wants"
        } else {
            "REPLIES (unexpected)"
        }
    )?;
    writeln!(s, "\nUse it:")?;
    writeln!(
        s,
        "  deploy/local/romanactl status          # = ip netns exec {mgmt} {} --root {root} status",
        ctl.display()
    )?;
    writeln!(s, "  deploy/local/romanactl ipam list")?;
    writeln!(s, "  deploy/local/romanactl topology fabric")?;
    writeln!(s, "  ip netns exec {} ping {b}", c.endpoint("a").ns.name())?;
    writeln!(
        s,
        "  ip netns exec {} ip route              # the host's routes (proto 124 are the agent's)",
        c.hosts[0].ns.name()
    )?;
    writeln!(
        s,
        "  ip netns exec {} nft list table inet romana",
        c.hosts[0].ns.name()
    )?;
    writeln!(
        s,
        "\nStop it and remove every namespace: deploy/local/down.sh"
    )?;
    if !ok || !blocked {
        anyhow::bail!("the demo did not behave as expected:{s}");
    }
    Ok(s)
}

/// Shell-sourceable facts for the helper scripts.
fn env_file(c: &Cluster) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "MGMT_NS={}", c.lab.mgmt().name());
    let _ = writeln!(s, "ROMANA_ROOT={}", c.plane.root_url());
    let _ = writeln!(s, "ROMANACTL={}", binary("romanactl").display());
    let _ = writeln!(s, "ROMANA_CNI={}", binary("romana-cni").display());
    // One line per host, for scripts and tests that wire endpoints by hand.
    let hosts: Vec<&str> = c.hosts.iter().map(|h| h.name.as_str()).collect();
    let _ = writeln!(s, "HOSTS=\"{}\"", hosts.join(" "));
    for h in &c.hosts {
        let _ = writeln!(s, "HOST_NS_{}={}", h.name, h.ns.name());
    }
    s
}
