//! `agent`: what the host agent costs, against the kernel work it cannot avoid, measured in
//! the same run inside a network namespace of its own:
//! - cold start (etcd listing to a converged kernel, from an empty table) vs `nft -f` of the
//!   very table the agent made;
//! - one change (an endpoint label put into etcd, from the put's return to the agent
//!   reporting the round that applied it; the put's own commit is printed for context) vs
//!   one `nft add element` into the same table.
//!
//! Each row is a cluster of N endpoints (40 of them on the agent's host, with dummy
//! interfaces) and P NetworkPolicies whose peer sets grow with N (see [`crate::world`]).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use romana_integration::{EtcdServer, Netns};
use romana_store::{Keys, Store};

use crate::measure::{print_ratios, ratio};
use crate::world::{self, median_ms, RunningAgent};

/// Endpoints on the agent's own host.
const LOCAL: usize = 40;

pub struct Row {
    cold: f64,
    nft_f: f64,
    change: f64,
    change_p90: f64,
    change_e2e: f64,
    add_element: f64,
}

pub async fn agent(
    endpoints: &[usize],
    policies: &[usize],
    changes: usize,
    colds: usize,
) -> anyhow::Result<()> {
    let etcd = EtcdServer::start()?;
    let mut ratios = Vec::new();
    for &p in policies {
        for &n in endpoints {
            let row = run_row(&etcd, n, p, changes, colds.max(1))
                .await
                .with_context(|| format!("agent bench at {n} endpoints, {p} policies"))?;
            println!(
                "  cold start {:>7.1} ms (nft -f {:>6.1} ms)  one change p50 {:>6.2} ms p90 {:>6.2} ms, with the etcd put {:>6.2} ms (nft add element {:>5.2} ms)",
                row.cold, row.nft_f, row.change, row.change_p90, row.change_e2e, row.add_element
            );
            ratios.push((format!("cold_{n}_{p}"), ratio(row.cold, row.nft_f)));
            ratios.push((
                format!("change_{n}_{p}"),
                ratio(row.change, row.add_element),
            ));
        }
    }
    print_ratios(&ratios);
    Ok(())
}

async fn run_row(
    etcd: &EtcdServer,
    n: usize,
    p: usize,
    changes: usize,
    colds: usize,
) -> anyhow::Result<Row> {
    // Dropped on every return, error or not: the agent first (it runs inside), then the
    // namespace with whatever still runs in it.
    let ns = Netns::create("bench-agent")?;
    world::make_interfaces(&ns, 0, LOCAL)?;
    let keys = Keys::new(format!("/romana-bench/agent-{n}-{p}/"));
    let store = Store::connect(&etcd.endpoints(), keys).await?;
    let revision = world::populate(&store, n, p, LOCAL, 1).await?;
    let host = world::host_name(0);
    let table = std::env::temp_dir().join(format!("romana-bench-{}.nft", ns.name()));

    let (mut cold, mut nft_f) = (Vec::new(), Vec::new());
    for _ in 0..colds {
        clear_kernel(&ns);
        let begin = Instant::now();
        let mut agent = RunningAgent::start(store.clone(), &host, &ns);
        agent.applied(revision).await?;
        cold.push(begin.elapsed());
        agent.stop().await?;
        // The baseline: the agent's own table, loaded by nft in one transaction.
        std::fs::write(
            &table,
            ns.exec("nft", &["list", "table", "inet", "romana"])?,
        )?;
        ns.exec("nft", &["delete", "table", "inet", "romana"])?;
        let begin = Instant::now();
        ns.exec("nft", &["-f", &table.to_string_lossy()])?;
        nft_f.push(begin.elapsed());
    }
    let _ = std::fs::remove_file(&table);
    let elements = element_count(&ns)?;
    println!("agent: {n} endpoints, {p} policies: {elements} set elements");

    // The table nft -f left is the agent's; a restarted agent adopts it.
    let mut agent = RunningAgent::start(store.clone(), &host, &ns);
    agent.applied(revision).await?;
    let layout = world::config().layout()?;
    let mut flips: BTreeMap<usize, usize> = BTreeMap::new();
    // From the put's return (the change is committed and on its way to watchers) to the
    // agent's report, and from before the put (etcd's commit included), for context.
    let (mut samples, mut e2e) = (Vec::new(), Vec::new());
    for j in 0..changes {
        // A remote endpoint changes role: it leaves one peer set and joins another.
        let i = LOCAL + (j * 7919) % (n.max(LOCAL + 1) - LOCAL);
        let f = flips.entry(i).or_default();
        *f += 1;
        let mut e = world::endpoint(&layout, i, LOCAL, 1);
        e.labels.insert("role".into(), world::role(i, *f));
        let begin = Instant::now();
        let revision = store.put(&store.keys().endpoint(&e.id), &e).await?;
        let committed = Instant::now();
        agent.applied(revision).await?;
        samples.push(committed.elapsed());
        e2e.push(begin.elapsed());
    }
    agent.stop().await?;
    samples.sort();
    let change_p90 = samples
        .get(samples.len() * 9 / 10)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);

    let mut add = Vec::new();
    for j in 0..changes.max(5) {
        let element = format!("{{ 10.250.{}.{} }}", j / 250, j % 250 + 1);
        let args = ["add", "element", "inet", "romana", "quarantine", &element];
        let begin = Instant::now();
        ns.exec("nft", &args)?;
        add.push(begin.elapsed());
        let mut args = args;
        args[0] = "delete";
        ns.exec("nft", &args)?;
    }
    Ok(Row {
        cold: median_ms(&mut cold),
        nft_f: median_ms(&mut nft_f),
        change: median_ms(&mut samples),
        change_p90,
        change_e2e: median_ms(&mut e2e),
        add_element: median_ms(&mut add),
    })
}

/// An empty kernel as far as the agent is concerned: no table, none of its routes.
fn clear_kernel(ns: &Netns) {
    let _ = ns.exec("nft", &["delete", "table", "inet", "romana"]);
    let _ = ns.ip(&["route", "flush", "proto", "124"]);
}

fn element_count(ns: &Netns) -> anyhow::Result<usize> {
    let json = ns.exec("nft", &["-j", "list", "table", "inet", "romana"])?;
    let view = romana_agent::nft::parse_table(&serde_json::from_str(&json)?)?;
    Ok(view.sets.values().map(|s| s.elements.len()).sum())
}
