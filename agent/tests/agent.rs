//! The `romana-agent` binary end to end: a real control plane (etcd and the services,
//! in-process on 127.0.0.1), and the agent process programming a network namespace of its
//! own (`--netns`) while its etcd client stays in the root namespace. Needs root, `ip` and
//! `nft`; without them the test prints `SKIPPED ...` and returns, or fails under `CI=true`.

mod common;

/// `romana_core::datapath::ROUTE_PROTOCOL`, as `ip route show proto` takes it.
const PROTO: &str = "124";

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Netns;
use romana_agent::{endpoint_ifname, AgentStatus, StatusWriter};
use romana_integration::{eventually, require_netns, ControlPlane, Service};
use romana_proto::pb;
use tonic::transport::Channel;

const WAIT: Duration = Duration::from_secs(20);

/// The agent process, killed on drop. Its log goes to a file, printed if the test fails.
struct AgentProcess {
    child: Child,
    log: std::path::PathBuf,
}

impl AgentProcess {
    fn start(plane: &ControlPlane, ns: &Netns) -> AgentProcess {
        let log =
            std::env::temp_dir().join(format!("{}-agent-{}.log", ns.name, rand::random::<u16>()));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_romana-agent"))
            .args(["--host", "h1", "--etcd-endpoints"])
            .arg(plane.etcd_endpoints().join(","))
            .args(["--netns", &ns.name, "--gateway", "192.168.60.254"])
            // Fast drift repair so the test can see it.
            .args(["--resync-secs", "1"])
            .arg("--insecure")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("romana-agent starts");
        AgentProcess { child, log }
    }

    fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn sigterm(mut self) -> std::process::ExitStatus {
        common::run(&["kill", "-TERM", &self.child.id().to_string()]);
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the agent did not exit within 10 s of SIGTERM");
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- romana-agent log ({}) ---\n{log}", self.log.display());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

async fn channel(url: String) -> Channel {
    Channel::from_shared(url).unwrap().connect().await.unwrap()
}

async fn status(writer: &StatusWriter) -> Option<AgentStatus> {
    writer.get("h1").await.ok().flatten()
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_programs_routes_and_nft_in_its_namespace_and_survives_restarts() {
    require_netns!("nft");
    let plane = ControlPlane::start().await.expect("control plane starts");
    let mut root = pb::root_client::RootClient::new(channel(plane.root_url()).await);
    let mut topology =
        pb::topology_client::TopologyClient::new(channel(plane.url(Service::Topology)).await);
    let mut tenants =
        pb::tenants_client::TenantsClient::new(channel(plane.url(Service::Tenant)).await);
    let mut ipam = pb::ipam_client::IpamClient::new(channel(plane.url(Service::Ipam)).await);

    root.init_config(pb::InitConfigRequest {
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
    for (name, ip) in [("h1", "192.168.60.1"), ("h2", "192.168.60.2")] {
        topology
            .add_host(pb::AddHostRequest {
                name: name.into(),
                ip: ip.into(),
                rack: None,
                second_ip: String::new(),
            })
            .await
            .unwrap();
    }
    tenants
        .add_tenant(pb::AddTenantRequest {
            name: "t".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut addresses = Vec::new();
    for id in ["pod-1", "pod-2"] {
        let e = ipam
            .allocate(pb::AllocateRequest {
                endpoint: id.into(),
                host: "h1".into(),
                tenant: "t".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        addresses.push(e.address);
    }

    // Host h1: the fabric link and the endpoint interfaces the CNI plugin would create.
    let ns = Netns::create();
    ns.veth("fabric0", "fabric1", Some("192.168.60.1/24"));
    for id in ["pod-1", "pod-2"] {
        ns.veth(&endpoint_ifname(id), &format!("{id}-peer"), None);
    }
    let want = {
        let mut w = vec![
            format!("{} dev {}", addresses[0], endpoint_ifname("pod-1")),
            format!("{} dev {}", addresses[1], endpoint_ifname("pod-2")),
            "10.1.0.0/16 via 192.168.60.2".to_string(),
        ];
        w.sort();
        w
    };

    let agent = AgentProcess::start(&plane, &ns);
    eventually("the agent's routes in the namespace", WAIT, || async {
        (ns.routes(PROTO) == want).then_some(())
    })
    .await
    .unwrap();
    let table = eventually("table inet romana", WAIT, || async { ns.nft_table() })
        .await
        .unwrap();
    println!("--- nft list table inet romana (written by romana-agent) ---\n{table}");
    assert!(table.contains("@same_segment return"), "{table}");
    // nft prints the anonymous set of wildcard names back as it was written.
    assert!(
        table.contains("oifname { \"rmn*\", \"tap*\" } jump ingress"),
        "{table}"
    );
    assert!(
        table.contains("iifname { \"rmn*\", \"tap*\" } jump egress"),
        "{table}"
    );

    let writer = StatusWriter::new(plane.store().clone());
    let st = eventually("a converged status record", WAIT, || async {
        status(&writer)
            .await
            .filter(|s| s.converged && s.routes.len() == 3)
    })
    .await
    .unwrap();
    println!(
        "--- agent status ---\n{}",
        serde_json::to_string_pretty(&st).unwrap()
    );
    // prerouting 1, from_endpoint 4, to_endpoint 2, forward 4 (no quarantine rules while
    // nothing is quarantined); egress and ingress 5 each
    // (vmap, isolation 3, drop).
    assert_eq!(st.nft_rules, 21);
    // same_segment, same_tenant, open_tenant, ingress_np, egress_np, endpoints, quarantine.
    assert_eq!(st.nft_sets, 7);
    assert!(st.revision > 0);

    // A host leaves the cluster: its route goes.
    topology
        .remove_host(pb::RemoveHostRequest {
            name: "h2".into(),
            force: false,
        })
        .await
        .unwrap();
    let want_without_h2: Vec<String> = want
        .iter()
        .filter(|r| !r.starts_with("10.1."))
        .cloned()
        .collect();
    eventually("h2's route removed", WAIT, || async {
        (ns.routes(PROTO) == want_without_h2).then_some(())
    })
    .await
    .unwrap();

    // Drift: a route of ours deleted by hand comes back on the next resync.
    ns.ip(&format!("route del {}", addresses[0]));
    eventually("the deleted route repaired", WAIT, || async {
        (ns.routes(PROTO) == want_without_h2).then_some(())
    })
    .await
    .unwrap();

    // Killed hard: the kernel state stays and keeps forwarding.
    agent.sigkill();
    assert_eq!(ns.routes(PROTO), want_without_h2);
    assert!(ns.nft_table().is_some());

    // Restarted: it adopts what is there, no duplicates, and follows new changes.
    let agent = AgentProcess::start(&plane, &ns);
    topology
        .add_host(pb::AddHostRequest {
            name: "h3".into(),
            ip: "192.168.60.3".into(),
            rack: None,
            second_ip: String::new(),
        })
        .await
        .unwrap();
    let mut with_h3 = want_without_h2.clone();
    with_h3.push("10.1.0.0/16 via 192.168.60.3".into());
    with_h3.sort();
    eventually("h3's route after the restart", WAIT, || async {
        (ns.routes(PROTO) == with_h3).then_some(())
    })
    .await
    .unwrap();
    let dsts: Vec<String> = ns.routes(PROTO);
    let mut unique = dsts.clone();
    unique.dedup();
    assert_eq!(dsts, unique, "no duplicate routes after a restart");

    // SIGTERM: exit 0, routes and table stay.
    let exit = agent.sigterm();
    assert!(exit.success(), "SIGTERM exits 0, got {exit:?}");
    assert_eq!(ns.routes(PROTO), with_h3);
    assert!(ns.nft_table().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn once_applies_the_cluster_then_exits_zero() {
    require_netns!("nft");
    let plane = ControlPlane::start().await.expect("control plane starts");
    let mut root = pb::root_client::RootClient::new(channel(plane.root_url()).await);
    let mut topology =
        pb::topology_client::TopologyClient::new(channel(plane.url(Service::Topology)).await);
    root.init_config(pb::InitConfigRequest {
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
    for (name, ip) in [("h1", "192.168.61.1"), ("h2", "192.168.61.2")] {
        topology
            .add_host(pb::AddHostRequest {
                name: name.into(),
                ip: ip.into(),
                rack: None,
                second_ip: String::new(),
            })
            .await
            .unwrap();
    }
    let ns = Netns::create();
    ns.veth("fabric0", "fabric1", Some("192.168.61.1/24"));
    let endpoints = plane.etcd_endpoints().join(",");
    let ns_name = ns.name.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_romana-agent"))
            .args(["--once", "--host", "h1", "--netns", &ns_name])
            .args(["--etcd-endpoints", &endpoints, "--insecure"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "--once exits 0 when converged: {:?}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ns.routes(PROTO), ["10.1.0.0/16 via 192.168.61.2"]);
    assert!(ns.nft_table().is_some());
}
