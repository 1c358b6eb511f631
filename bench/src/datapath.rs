//! `datapath`: TCP throughput (iperf3) and connection rate between two endpoints of one host,
//! routed through the host and its agent's `inet romana` table, with 10 and then 10k set
//! entries on the path, against the same path with the table removed, in one run: the three
//! tables are swapped in turn for several rounds and each figure is a median.
//!
//! The entries are endpoints of that host (the `endpoints` set every forwarded packet is
//! looked up in) that a NetworkPolicy rule also picks as peers of the server (the set every
//! new connection to it is looked up in): allocated through ipam, labelled like the client,
//! but never wired, which the agent handles as an endpoint between allocation and CNI ADD.
//! The cluster (agent, CNI plugin, control plane) is the integration crate's; all traffic
//! stays inside its namespaces, bounded in time and connections.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use romana_integration::{cluster, eventually, Cluster, ServiceProcess};
use romana_proto::pb;
use tokio::io::AsyncReadExt;
use tokio::task::block_in_place;

use crate::measure::{measure, print_ratios, ratio};

const HOST: &str = "r0h0";
/// How long the agent may take to program a table with 10k more elements.
const CONVERGE: Duration = Duration::from_secs(180);

/// Rounds of the three tables, one sample of each per round.
const ROUNDS: usize = 5;

/// One measurement of the path.
#[derive(Clone, Copy, Default)]
struct Sample {
    gbits: f64,
    connections_per_s: f64,
}

impl Sample {
    /// Each figure's median over `samples` (a sample's two figures are taken separately).
    fn median(samples: &[Sample]) -> Sample {
        let mid = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or_default()
        };
        Sample {
            gbits: mid(samples.iter().map(|s| s.gbits).collect()),
            connections_per_s: mid(samples.iter().map(|s| s.connections_per_s).collect()),
        }
    }
}

pub async fn datapath(seconds: u64, connections: usize) -> anyhow::Result<()> {
    let samples = tokio::task::spawn_blocking(move || {
        cluster()
            .racks(1)
            .hosts(1)
            // 16 endpoint bits: room for 10k endpoints in one segment of one host.
            .layout(pb::ClusterConfig {
                address_space: "10.0.0.0/8".into(),
                host_bits: 4,
                rack_bits: 0,
                tenant_bits: 2,
                segment_bits: 2,
                ..Default::default()
            })
            .run(|c| body(c, seconds, connections))
    })
    .await??;
    let [small, large, none] = samples;
    println!("datapath through {HOST}'s table, iperf3 {seconds}s, {connections} connections");
    for (what, s) in [
        ("10 entries ", &small),
        ("10k entries", &large),
        ("no table   ", &none),
    ] {
        println!(
            "  {what}  TCP {:>6.2} Gbit/s  {:>7.0} connections/s",
            s.gbits, s.connections_per_s
        );
    }
    print_ratios(&[
        ("tcp_10".into(), ratio(small.gbits, none.gbits)),
        ("tcp_10k".into(), ratio(large.gbits, none.gbits)),
        (
            "conn_10".into(),
            ratio(small.connections_per_s, none.connections_per_s),
        ),
        (
            "conn_10k".into(),
            ratio(large.connections_per_s, none.connections_per_s),
        ),
        (
            "conn_10k_vs_10".into(),
            ratio(large.connections_per_s, small.connections_per_s),
        ),
    ]);
    Ok(())
}

async fn body(mut c: Cluster, seconds: u64, connections: usize) -> anyhow::Result<[Sample; 3]> {
    c.tenants()
        .await?
        .add_tenant(pb::AddTenantRequest {
            name: "t1".into(),
            ..Default::default()
        })
        .await?;
    c.add_endpoint("client", HOST, "t1", "default").await?;
    c.add_endpoint("server", HOST, "t1", "default").await?;
    let mut ipam = c.ipam().await?;
    for (name, role) in [("client", "client"), ("server", "server")] {
        ipam.update_endpoint(pb::UpdateEndpointRequest {
            endpoint: c.endpoint(name).id.clone(),
            set_labels: [("role".to_string(), role.to_string())].into(),
            remove_labels: vec![],
        })
        .await?;
    }
    let doc = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
               metadata: {name: server, namespace: t1}\nspec:\n  \
               podSelector: {matchLabels: {role: server}}\n  ingress:\n  \
               - from: [{podSelector: {matchLabels: {role: client}}}]\n";
    c.policies()
        .await?
        .apply_policies(pb::ApplyPoliciesRequest {
            document: doc.into(),
            ..Default::default()
        })
        .await?;

    let last = add_entries(&c, 0, 10).await?;
    wait_programmed(&c, last).await?;
    eventually("client reaches server", CONVERGE, || async {
        block_in_place(|| c.tcp("client", "server"))
            .unwrap_or(false)
            .then_some(())
    })
    .await?;
    let ns = &c.host(HOST).ns;
    let with_10 = ns.exec("nft", &["list", "table", "inet", "romana"])?;

    let last = add_entries(&c, 10, 10_000).await?;
    wait_programmed(&c, last).await?;
    let with_10k = ns.exec("nft", &["list", "table", "inet", "romana"])?;

    // The agent stops (its routes stay, so the path is otherwise the same); the three
    // tables are then swapped in turn, each sampled once per round, so load that comes and
    // goes on the machine falls on all three alike. Medians of the rounds are reported.
    c.kill_agent(HOST);
    let ns = &c.host(HOST).ns;
    let mut rounds: [Vec<Sample>; 3] = Default::default();
    for _ in 0..ROUNDS {
        for (i, table) in [Some(&with_10), Some(&with_10k), None]
            .into_iter()
            .enumerate()
        {
            // Absent after the no-table sample; present otherwise.
            let _ = ns.exec("nft", &["delete", "table", "inet", "romana"]);
            if let Some(table) = table {
                load_table(ns, table)?;
            }
            rounds[i].push(sample(&c, seconds, connections).await?);
        }
    }
    let [small, large, none] = rounds.map(|r| Sample::median(&r));
    Ok([small, large, none])
}

/// Loads a table listing back with `nft -f`.
fn load_table(ns: &romana_integration::Netns, table: &str) -> anyhow::Result<()> {
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning nft")?;
    std::io::Write::write_all(
        &mut child.stdin.take().context("nft stdin")?,
        table.as_bytes(),
    )?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft -f of a saved table failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Allocates endpoints `from..to` on the host (labelled as clients, never wired) and
/// returns the address of the last.
async fn add_entries(c: &Cluster, from: usize, to: usize) -> anyhow::Result<IpAddr> {
    let ipam = c.ipam().await?;
    measure(to - from, 16, move |i| {
        let mut ipam = ipam.clone();
        async move {
            ipam.allocate(pb::AllocateRequest {
                endpoint: format!("entry-{}", from + i),
                host: HOST.into(),
                tenant: "t1".into(),
                segment: "default".into(),
                labels: [("role".to_string(), "client".to_string())].into(),
                ..Default::default()
            })
            .await?;
            Ok(())
        }
    })
    .await?;
    let last = c
        .ipam()
        .await?
        .get_endpoint(pb::GetEndpointRequest {
            endpoint: format!("entry-{}", to - 1),
        })
        .await?
        .into_inner();
    Ok(last.address.parse()?)
}

/// Waits until `address` is in the host's table twice: in `endpoints` and in the peers set
/// of the server's policy rule.
async fn wait_programmed(c: &Cluster, address: IpAddr) -> anyhow::Result<()> {
    let quoted = format!("\"{address}\"");
    eventually(
        &format!("{address} in the table's sets"),
        CONVERGE,
        || async {
            let table = block_in_place(|| {
                c.host(HOST)
                    .ns
                    .exec("nft", &["-j", "list", "table", "inet", "romana"])
            })
            .ok()?;
            (table.matches(&quoted).count() >= 2).then_some(())
        },
    )
    .await
}

async fn sample(c: &Cluster, seconds: u64, connections: usize) -> anyhow::Result<Sample> {
    let gbits = block_in_place(|| iperf(c, seconds))?;
    let connections_per_s = block_in_place(|| connection_rate(c, connections))?;
    Ok(Sample {
        gbits,
        connections_per_s,
    })
}

/// One iperf3 TCP run from client to server; Gbit/s received.
fn iperf(c: &Cluster, seconds: u64) -> anyhow::Result<f64> {
    let server = c.endpoint("server");
    let address = server.address.to_string();
    // `-1`: one test, then exit; killed on drop should the client fail.
    let _server = ServiceProcess::spawn(
        server
            .ns
            .command("iperf3")
            .args(["-s", "-1", "-B", &address])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("spawning iperf3 (apt install iperf3)")?;
    let secs = seconds.to_string();
    let mut last = String::new();
    // The server needs a moment to listen; retry a refused start, within a bound.
    for _ in 0..50 {
        let out = c
            .endpoint("client")
            .ns
            .command("iperf3")
            .args(["-c", &address, "-t", &secs, "-J"])
            .output()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        // iperf3 3.12 exits 0 with -J even when it could not connect; the JSON says so.
        if out.status.success() && json["error"].is_null() {
            let bps = json["end"]["sum_received"]["bits_per_second"]
                .as_f64()
                .with_context(|| format!("no received rate in iperf3's output: {json}"))?;
            return Ok(bps / 1e9);
        }
        last = json["error"].as_str().unwrap_or_default().to_string();
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("iperf3 client failed: {last}")
}

/// `n` connections from client to a server that closes each at once (connect, then read
/// to the server's FIN), from 4 tasks; connections per second.
fn connection_rate(c: &Cluster, n: usize) -> anyhow::Result<f64> {
    let (server, client) = (c.endpoint("server"), c.endpoint("client"));
    let address = server.address;
    let listener = server
        .ns
        .run(|| async move { std::net::TcpListener::bind((address, 0)) })??;
    let to = SocketAddr::new(address, listener.local_addr()?.port());
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let acceptor = std::thread::spawn(move || {
        while !stopping.load(Ordering::Relaxed) {
            // Dropping the stream closes it: the client's read sees EOF.
            if listener.accept().is_err() {
                break;
            }
        }
    });
    let run = client.ns.run(|| async move {
        measure(n, 4, move |_| async move {
            let connect = tokio::net::TcpStream::connect(to);
            let mut s = tokio::time::timeout(Duration::from_secs(5), connect).await??;
            let mut rest = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await??;
            Ok(())
        })
        .await
    });
    // Wake the acceptor with one last connection from the server's own namespace.
    stop.store(true, Ordering::Relaxed);
    server.ns.run(|| async move {
        if let Ok(mut s) = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2)) {
            let _ = s.read(&mut [0u8; 1]);
        }
    })?;
    let _ = acceptor.join();
    let run = run??;
    Ok(run.rate(n))
}
