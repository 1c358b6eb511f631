//! The agent loop: watch etcd, keep a [`ClusterState`], and after changes, on a resync
//! tick, or on a retry, compute desired -> plan -> apply -> read back.
//!
//! - The watch covers only the rows the agent reads ([`romana_store::Keys::agent_watch_range`]),
//!   not other agents' statuses. Nothing is written to the kernel before the first
//!   `InitDone`, nor between a re-list's `Init` and `InitDone`.
//! - Events are coalesced: a change schedules an apply [`AgentConfig::debounce`] (1 ms)
//!   later, later changes ride along, and everything queued while an apply ran is taken
//!   in before the next one ([`crate::schedule`]): a burst is a few applies, not one each.
//! - A change is planned against the table the last settled round applied
//!   ([`crate::reconcile`]); the resync tick and every unsettled round re-read the
//!   kernel, so drift (a route deleted by hand, a flushed table) is repaired within
//!   [`AgentConfig::resync_interval`].
//! - A failed or incomplete apply (kernel error) is retried with a backoff from a fresh
//!   read; the previous kernel state stays (fail closed).
//! - An endpoint interface that is not there yet (a veth the CNI plugin is still making,
//!   a VM's tap before the VM starts) is waited for on link notifications
//!   ([`crate::kernel::links`]): its appearing wakes a round within the debounce. Only
//!   while the subscription is down are such routes polled with the backoff instead; a
//!   stopped VM whose port stays allocated costs nothing meanwhile.
//! - Shutdown leaves the kernel as it is: routes keep forwarding while the agent restarts,
//!   and the next agent adopts them (same protocol, same table).

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use romana_store::{Keys, Store, WatchEvent, Watcher};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::ifname::is_local_interface;
use crate::incremental::Changes;
use crate::kernel::links::{self, LinkNotice};
use crate::reconcile::Reconciler;
use crate::schedule::{backoff, settled, Schedule};
use crate::state::{ClusterState, Reduced};
use crate::status::{AgentStatus, StatusWriter};

/// How one agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This host's name as registered with topology.
    pub host: String,
    /// The leaf of this host's rack: next hop for other racks and non-adjacent hosts; one
    /// per IP family in a dual-stack cluster.
    pub gateways: Vec<IpAddr>,
    /// Do the kernel work inside this named network namespace (`ip netns add NAME`) while
    /// etcd is reached from the agent's own namespace. For tests and for labs that run
    /// several hosts on one machine; production agents leave it unset.
    pub netns: Option<String>,
    /// Apply once after the first full listing, write the status and return.
    pub once: bool,
    /// How long changes are coalesced before an apply.
    pub debounce: Duration,
    /// How often the kernel is re-read and repaired without any change in etcd.
    pub resync_interval: Duration,
    /// Where the status record goes; `None` writes none.
    pub status: Option<StatusWriter>,
    /// Told the outcome of every round, at once and without going through etcd: for
    /// benchmarks and tests that must observe when a change was applied.
    pub progress: Option<Arc<watch::Sender<Progress>>>,
}

/// What the last round did (see [`AgentConfig::progress`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// [`ClusterState::revision`] of the state the round applied.
    pub revision: i64,
    /// [`ClusterState::policy_revision`] of that state.
    pub policy_revision: i64,
    pub converged: bool,
    /// Routes waiting for their interface.
    pub blocked: usize,
}

impl AgentConfig {
    pub fn new(host: impl Into<String>) -> AgentConfig {
        AgentConfig {
            host: host.into(),
            gateways: Vec::new(),
            netns: None,
            once: false,
            debounce: Duration::from_millis(1),
            resync_interval: Duration::from_secs(30),
            status: None,
            progress: None,
        }
    }
}

/// Why the agent stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the etcd watch task ended unexpectedly")]
    WatchEnded,
    #[error("--once: the kernel did not converge after {attempts} attempts: {}", failed.join("; "))]
    NotConverged { attempts: u32, failed: Vec<String> },
}

/// Runs the agent until `shutdown` resolves (or, with `once`, until the first apply).
pub async fn run(
    store: Store,
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let keys = store.keys().clone();
    let (tx, mut events) = mpsc::channel(1024);
    let (start, end) = keys.agent_watch_range();
    let watch = AbortOnDrop(tokio::spawn(watch_loop(
        store.watch_range(&start, &end),
        tx,
    )));
    let mut state = ClusterState::default();
    let mut reconciler = Reconciler::new(config.clone());
    let mut schedule = Schedule::new(config.debounce);
    let mut changes = Changes::default();
    let mut link_notices = links::watch(config.netns.clone());
    // Whether link notifications are subscribed: then a route waiting for its interface
    // needs no polling.
    let mut links_live = false;
    let mut resync = tokio::time::interval_at(
        Instant::now() + config.resync_interval,
        config.resync_interval,
    );
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let beat = Duration::from_secs(AgentStatus::HEARTBEAT_SECS);
    let mut heartbeat = tokio::time::interval_at(Instant::now() + beat, beat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(host = %config.host, netns = ?config.netns, gateways = ?config.gateways, "agent starting");
    tokio::pin!(shutdown);
    loop {
        let wait_until = schedule.due();
        let wait = async move {
            match wait_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        // Biased, with the apply timer before events: a stream of events must not starve
        // the apply it scheduled.
        tokio::select! {
            biased;
            _ = &mut shutdown => {
                tracing::info!("shutting down; kernel routes and nftables stay in place");
                drop(watch);
                return Ok(());
            }
            _ = wait => {
                let Some(read) = schedule.fire(state.is_synced()) else {
                    continue;
                };
                let round = reconciler.reconcile(&state, read, &changes).await;
                changes = Changes::default();
                let settled = settled(round.converged, round.blocked, links_live);
                let attempts = schedule.done(settled, Instant::now());
                if config.once {
                    if round.converged {
                        return Ok(());
                    }
                    if attempts >= 5 {
                        return Err(AgentError::NotConverged { attempts, failed: round.failed });
                    }
                }
            }
            event = events.recv() => {
                let Some(event) = event else {
                    return Err(AgentError::WatchEnded);
                };
                take_in(&keys, &mut state, &mut changes, &mut schedule, event);
                // Everything that queued up meanwhile (during an apply, most often) goes
                // into the same round.
                while let Ok(event) = events.try_recv() {
                    take_in(&keys, &mut state, &mut changes, &mut schedule, event);
                }
            }
            Some(notice) = link_notices.recv() => {
                let now = Instant::now();
                match notice {
                    LinkNotice::Changed(name) => {
                        if is_local_interface(&state, &config.host, &name) {
                            tracing::debug!(link = %name, "endpoint interface changed");
                            // The kernel changed, not etcd: never the endpoint-only path.
                            changes.full = true;
                            schedule.changed(Reduced::Changed, state.is_synced(), now);
                        }
                    }
                    LinkNotice::Live(live) => {
                        links_live = live;
                        changes.full = true;
                        schedule.resync(state.is_synced(), now);
                    }
                    LinkNotice::Lost => {
                        tracing::warn!("link notifications were lost; reading the kernel again");
                        changes.full = true;
                        schedule.resync(state.is_synced(), now);
                    }
                }
            }
            _ = resync.tick() => schedule.resync(state.is_synced(), Instant::now()),
            _ = heartbeat.tick() => reconciler.heartbeat().await,
        }
    }
}

fn take_in(
    keys: &Keys,
    state: &mut ClusterState,
    changes: &mut Changes,
    schedule: &mut Schedule,
    event: WatchEvent,
) {
    let (reduced, error) = changes.reduce(keys, state, event);
    if let Some(e) = error {
        tracing::warn!(key = %e.key, error = %e.source, "record ignored: it does not decode");
    }
    if let Reduced::Synced { revision } = reduced {
        tracing::info!(revision, "in sync with etcd");
    }
    schedule.changed(reduced, state.is_synced(), Instant::now());
}

/// Hands watch events to the loop; store errors are retried here with a backoff (the
/// watcher resumes or re-lists by itself on the next call).
async fn watch_loop(mut watcher: Watcher, tx: mpsc::Sender<WatchEvent>) {
    let mut failures = 0u32;
    loop {
        match watcher.next().await {
            Ok(event) => {
                failures = 0;
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                failures += 1;
                let delay = backoff(failures);
                if e.is_retryable() {
                    tracing::warn!(error = %e, ?delay, "etcd watch interrupted; resuming");
                } else {
                    tracing::error!(error = %e, ?delay, "etcd watch failed; retrying");
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
