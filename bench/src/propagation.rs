//! `propagation`: a policy commit to every agent having applied it (each agent in its own
//! network namespace, reporting the round through `AgentConfig::progress`: observed, not
//! assumed), against what etcd itself takes for the same record: one put and its delivery
//! to as many watchers. The two alternate commit by commit, so both see the same machine.

use std::time::{Duration, Instant};

use romana_core::policy::parse_documents;
use romana_integration::{EtcdServer, Netns};
use romana_store::{Keys, Store, WatchEvent};
use tokio::sync::mpsc;

use crate::measure::{print_ratios, ratio};
use crate::world::{self, RunningAgent};

/// Endpoints on each agent's host.
const LOCAL: usize = 5;

pub async fn propagation(
    agents: usize,
    commits: usize,
    endpoints: usize,
    policies: usize,
) -> anyhow::Result<()> {
    let etcd = EtcdServer::start()?;
    let store = Store::connect(&etcd.endpoints(), Keys::new("/romana-bench/propagation/")).await?;
    let revision = world::populate(&store, endpoints, policies, LOCAL, agents as u32).await?;
    // Namespaces outlive the agents inside them (field order of the tuples is drop order
    // reversed: agents are stopped explicitly below, and dropped first on an error).
    let mut namespaces = Vec::new();
    let mut running = Vec::new();
    for h in 0..agents as u32 {
        let ns = Netns::create(&format!("prop{h}"))?;
        world::make_interfaces(&ns, h, LOCAL)?;
        running.push(RunningAgent::start(
            store.clone(),
            &world::host_name(h),
            &ns,
        ));
        namespaces.push(ns);
    }
    for agent in &mut running {
        agent.applied(revision).await?;
    }

    let base_store = Store::connect(
        &etcd.endpoints(),
        Keys::new("/romana-bench/propagation-baseline/"),
    )
    .await?;
    let mut watchers = Vec::new();
    for _ in 0..agents {
        watchers.push(spawn_watcher(&base_store).await?);
    }

    let (mut base, mut measured) = (Vec::new(), Vec::new());
    let changing = policies;
    for c in 0..commits {
        let yaml = world::policy_yaml(changing, 1000 + (c % 2000) as u16);
        let policy = parse_documents(&yaml)?.remove(0);

        let begin = Instant::now();
        let r = base_store
            .put(&base_store.keys().policy(&policy.id()), &policy)
            .await?;
        for w in &mut watchers {
            while w
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("watcher ended"))?
                < r
            {}
        }
        base.push(begin.elapsed());

        let begin = Instant::now();
        let r = store
            .put(&store.keys().policy(&policy.id()), &policy)
            .await?;
        for agent in &mut running {
            agent.applied_policy(r).await?;
        }
        measured.push(begin.elapsed());
    }
    for agent in running {
        agent.stop().await?;
    }
    drop(namespaces);

    let (b50, b99) = (quantile(&mut base, 0.5), quantile(&mut base, 0.99));
    let (m50, m99) = (quantile(&mut measured, 0.5), quantile(&mut measured, 0.99));
    println!(
        "propagation: {agents} agents, {endpoints} endpoints, {} policies, {commits} commits",
        policies + 1
    );
    println!("  commit -> all agents applied  p50 {m50:>6.2} ms  p99 {m99:>6.2} ms");
    println!("  etcd put -> all {agents} watchers   p50 {b50:>6.2} ms  p99 {b99:>6.2} ms");
    print_ratios(&[
        ("p50".into(), ratio(m50, b50)),
        ("p99".into(), ratio(m99, b99)),
        ("p99_excess_ms".into(), m99 - b99),
    ]);
    Ok(())
}

/// A watcher of the baseline prefix, past its first listing, that sends the revision of
/// every change it receives.
async fn spawn_watcher(store: &Store) -> anyhow::Result<mpsc::UnboundedReceiver<i64>> {
    let mut watcher = store.watch(store.keys().prefix());
    loop {
        if let WatchEvent::InitDone { .. } = watcher.next().await? {
            break;
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = watcher.next().await {
            let revision = match event {
                WatchEvent::Apply(kv) => kv.mod_revision,
                WatchEvent::Delete { mod_revision, .. } => mod_revision,
                _ => continue,
            };
            if tx.send(revision).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// The `q` quantile of `samples` (sorted in place), in milliseconds.
fn quantile(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    if samples.is_empty() {
        return 0.0;
    }
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}
