//! The agent loop: watch etcd, keep a [`ClusterState`], and after changes (debounced), on a
//! resync tick, or on a retry, compute desired -> plan -> apply -> read back.
//!
//! - Nothing is written to the kernel before the first `InitDone`, nor between a re-list's
//!   `Init` and `InitDone`.
//! - Events are coalesced: the first change schedules an apply [`AgentConfig::debounce`]
//!   later and later changes ride along, so a burst is one apply with bounded latency.
//! - Every apply starts from a fresh read of the kernel, so a resync is the same code path
//!   as a change: drift (a route deleted by hand, a flushed table) is repaired within
//!   [`AgentConfig::resync_interval`].
//! - A failed or incomplete apply (kernel error, endpoint interface not there yet) is
//!   retried with a backoff; the previous kernel state stays (fail closed).
//! - Shutdown leaves the kernel as it is: routes keep forwarding while the agent restarts,
//!   and the next agent adopts them (same protocol, same table).

use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use romana_store::{Store, WatchEvent, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::desired::{desired, HostView};
use crate::kernel::{Kernel, KernelError};
use crate::plan::{plan, NftObserved, Observed};
use crate::state::{Applied, ClusterState};
use crate::status::{AgentStatus, StatusWriter};

/// Sysctl paths the agent reads every round (it may want either).
const SYSCTL_PATHS: [&str; 2] = ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"];

/// How one agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// This host's name as registered with topology.
    pub host: String,
    /// The leaf of this host's rack: next hop for other racks and non-adjacent hosts.
    pub gateway: Option<IpAddr>,
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
}

impl AgentConfig {
    pub fn new(host: impl Into<String>) -> AgentConfig {
        AgentConfig {
            host: host.into(),
            gateway: None,
            netns: None,
            once: false,
            debounce: Duration::from_millis(50),
            resync_interval: Duration::from_secs(30),
            status: None,
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

/// The outcome of one reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Round {
    /// Nothing left to change after the apply (blocked routes aside).
    converged: bool,
    /// Routes waiting for their interface.
    blocked: usize,
    failed: Vec<String>,
}

/// Runs the agent until `shutdown` resolves (or, with `once`, until the first apply).
pub async fn run(
    store: Store,
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let keys = store.keys().clone();
    let (tx, mut events) = mpsc::channel(1024);
    let watch = AbortOnDrop(tokio::spawn(watch_loop(store.watch(keys.prefix()), tx)));
    let mut state = ClusterState::default();
    let mut reconciler = Reconciler::new(config.clone());
    let mut schedule = Schedule::new(config.debounce);
    let mut resync = tokio::time::interval_at(
        Instant::now() + config.resync_interval,
        config.resync_interval,
    );
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let beat = Duration::from_secs(AgentStatus::HEARTBEAT_SECS);
    let mut heartbeat = tokio::time::interval_at(Instant::now() + beat, beat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(host = %config.host, netns = ?config.netns, gateway = ?config.gateway, "agent starting");
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
                if !schedule.fire(state.is_synced()) {
                    continue;
                }
                let round = reconciler.reconcile(&state).await;
                let attempts = schedule.done(round.converged && round.blocked == 0, Instant::now());
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
                let (applied, error) = state.apply(&keys, event);
                if let Some(e) = error {
                    tracing::warn!(key = %e.key, error = %e.source, "record ignored: it does not decode");
                }
                if let Applied::Synced { revision } = applied {
                    tracing::info!(revision, "in sync with etcd");
                }
                schedule.changed(applied, state.is_synced(), Instant::now());
            }
            _ = resync.tick() => schedule.resync(state.is_synced(), Instant::now()),
            _ = heartbeat.tick() => reconciler.heartbeat().await,
        }
    }
}

/// When the next reconcile is due. Pure (time comes in as `now`), so the rules are unit
/// tested: nothing before the first `InitDone` or during a relist, a burst of changes is
/// one apply `debounce` after its first event, failures back off, and a change cuts a
/// pending backoff short.
#[derive(Debug)]
struct Schedule {
    debounce: Duration,
    due: Option<Instant>,
    /// Unsettled rounds in a row.
    attempts: u32,
}

impl Schedule {
    fn new(debounce: Duration) -> Schedule {
        Schedule {
            debounce,
            due: None,
            attempts: 0,
        }
    }

    fn due(&self) -> Option<Instant> {
        self.due
    }

    /// After a watch event was applied to a state that is now `synced` or not.
    fn changed(&mut self, applied: Applied, synced: bool, now: Instant) {
        match applied {
            Applied::Synced { .. } => self.due = Some(now),
            Applied::Changed if synced => {
                let soon = now + self.debounce;
                self.due = Some(self.due.map_or(soon, |at| at.min(soon)));
            }
            Applied::Changed | Applied::Unchanged => {}
        }
    }

    /// The resync tick: re-read the kernel unless something is due anyway.
    fn resync(&mut self, synced: bool, now: Instant) {
        if synced && self.due.is_none() {
            self.due = Some(now);
        }
    }

    /// The due time came: whether to reconcile now. A relist that started after this was
    /// scheduled makes it `false`; the relist's `InitDone` schedules again.
    fn fire(&mut self, synced: bool) -> bool {
        self.due = None;
        synced
    }

    /// A round ended; returns the unsettled rounds in a row (0 when settled).
    fn done(&mut self, settled: bool, now: Instant) -> u32 {
        if settled {
            self.attempts = 0;
        } else {
            self.attempts += 1;
            let retry = now + backoff(self.attempts);
            self.due = Some(self.due.map_or(retry, |at| at.min(retry)));
        }
        self.attempts
    }
}

/// Retry delay after `attempts` unsettled rounds: 200 ms doubling up to 10 s.
fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(6);
    Duration::from_millis(200 << exp).min(Duration::from_secs(10))
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

/// The desired -> plan -> apply -> read back step, with the kernel connection and what was
/// last reported (to log problems and write the status only when they change).
struct Reconciler {
    config: AgentConfig,
    kernel: Option<Kernel>,
    last_problems: Vec<String>,
    /// The status last written.
    last_status: Option<AgentStatus>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reconciler {
    fn new(config: AgentConfig) -> Reconciler {
        Reconciler {
            config,
            kernel: None,
            last_problems: Vec::new(),
            last_status: None,
        }
    }

    async fn reconcile(&mut self, state: &ClusterState) -> Round {
        match self.try_reconcile(state).await {
            Ok(round) => round,
            Err(e) => {
                // A broken netlink socket is re-opened on the next round.
                self.kernel = None;
                tracing::error!(error = %e, "cannot read the kernel; will retry");
                Round {
                    converged: false,
                    blocked: 0,
                    failed: vec![e.to_string()],
                }
            }
        }
    }

    async fn try_reconcile(&mut self, state: &ClusterState) -> Result<Round, KernelError> {
        let kernel = match &self.kernel {
            Some(k) => k.clone(),
            None => {
                let k = Kernel::connect(self.config.netns.clone()).await?;
                self.kernel = Some(k.clone());
                k
            }
        };
        let paths = || SYSCTL_PATHS.iter().map(|p| p.to_string()).collect();
        let observed = kernel.observe(paths()).await?;
        let view = HostView {
            name: self.config.host.clone(),
            gateway: self.config.gateway,
            connected: observed.connected.clone(),
        };
        let want = desired(state, &view);
        if want.problems != self.last_problems {
            for p in &want.problems {
                tracing::warn!(problem = %p, "cannot express part of the desired dataplane");
            }
            self.last_problems = want.problems.clone();
        }
        let todo = plan(&want, &observed);
        let (mut failed, after) = if todo.is_empty() {
            (Vec::new(), observed)
        } else {
            tracing::info!(
                revision = state.revision(),
                routes = todo.routes.len(),
                nft = todo.nft.script().is_some(),
                sysctls = todo.sysctls.len(),
                "applying"
            );
            let report = kernel.apply(&todo).await;
            (report.failed, kernel.observe(paths()).await?)
        };
        let left = plan(&want, &after);
        let converged = left.is_empty();
        if !converged {
            tracing::warn!(
                routes = ?left.routes.iter().map(|o| o.describe()).collect::<Vec<_>>(),
                nft = left.nft.script().is_some(),
                sysctls = left.sysctls.len(),
                "kernel read back differs from desired; will retry"
            );
        }
        if !left.blocked.is_empty() {
            tracing::debug!(blocked = ?left.blocked, "routes wait for their endpoint interface");
        }
        failed.extend(want.problems.iter().cloned());
        failed.extend(left.conflicts.iter().cloned());
        let now = unix_now();
        let status = AgentStatus {
            host: self.config.host.clone(),
            revision: state.revision(),
            policy_revision: state.policy_revision(),
            routes: describe_routes(&after),
            nft_rules: nft_count(&after, |v| v.chains.iter().map(|c| c.rules.len()).sum()),
            nft_sets: nft_count(&after, |v| v.sets.len()),
            nft_elements: nft_count(&after, |v| v.sets.values().map(|s| s.elements.len()).sum()),
            converged,
            blocked: left.blocked.clone(),
            problems: failed.clone(),
            applied_at: now,
            alive_at: now,
        };
        self.write_status(status).await;
        Ok(Round {
            converged,
            blocked: left.blocked.len(),
            failed,
        })
    }

    /// Rewrites the last status with a fresh `alive_at`, so that the CNI plugin's STATUS
    /// and operators can tell a running agent from a dead one.
    async fn heartbeat(&mut self) {
        if let Some(last) = self.last_status.clone() {
            let status = AgentStatus {
                alive_at: unix_now(),
                ..last
            };
            self.write_status(status).await;
        }
    }

    async fn write_status(&mut self, status: AgentStatus) {
        let Some(writer) = &self.config.status else {
            return;
        };
        if self.last_status.as_ref().is_some_and(|s| {
            s.same_as(&status) && status.alive_at < s.alive_at + AgentStatus::HEARTBEAT_SECS
        }) {
            return;
        }
        match writer.put(&status).await {
            Ok(()) => self.last_status = Some(status),
            Err(e) => tracing::warn!(error = %e, "cannot write the agent status; will retry"),
        }
    }
}

/// Our routes as `ip route` would print them, with interface names.
fn describe_routes(observed: &Observed) -> Vec<String> {
    let names: std::collections::BTreeMap<u32, &str> = observed
        .links
        .iter()
        .map(|(name, index)| (*index, name.as_str()))
        .collect();
    let mut routes: Vec<String> = observed
        .routes
        .iter()
        .filter(|r| r.is_ours())
        .map(|r| match (r.gateway, r.oif) {
            (Some(gw), _) => format!("{} via {gw}", r.dst),
            (None, Some(oif)) => {
                format!("{} dev {}", r.dst, names.get(&oif).copied().unwrap_or("?"))
            }
            (None, None) => r.dst.to_string(),
        })
        .collect();
    routes.sort();
    routes
}

fn nft_count(observed: &Observed, f: impl Fn(&crate::nft::TableView) -> usize) -> usize {
    match &observed.nft {
        NftObserved::Table(view) => f(view),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_is_due_before_the_first_init_done() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ms(50));
        s.changed(Applied::Changed, false, t0);
        s.changed(Applied::Unchanged, false, t0);
        s.resync(false, t0);
        assert_eq!(s.due(), None);
        s.changed(Applied::Synced { revision: 7 }, true, t0 + ms(5));
        assert_eq!(s.due(), Some(t0 + ms(5)), "in sync: apply at once");
    }

    #[test]
    fn a_burst_of_changes_is_one_apply_debounce_after_the_first() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ms(50));
        for i in 0..20 {
            s.changed(Applied::Changed, true, t0 + ms(i * 10));
        }
        assert_eq!(
            s.due(),
            Some(t0 + ms(50)),
            "later events do not push it back"
        );
        s.changed(Applied::Unchanged, true, t0);
        assert_eq!(s.due(), Some(t0 + ms(50)));
    }

    #[test]
    fn a_relist_after_scheduling_cancels_the_round() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ms(50));
        s.changed(Applied::Changed, true, t0);
        assert!(!s.fire(false), "the state is partial during a relist");
        assert_eq!(s.due(), None);
    }

    #[test]
    fn failures_back_off_and_a_change_cuts_the_backoff_short() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ms(50));
        assert!(s.fire(true));
        assert_eq!(s.done(false, t0), 1);
        assert_eq!(s.due(), Some(t0 + ms(200)));
        assert!(s.fire(true));
        assert_eq!(s.done(false, t0), 2);
        assert_eq!(s.due(), Some(t0 + ms(400)));
        s.changed(Applied::Changed, true, t0 + ms(10));
        assert_eq!(s.due(), Some(t0 + ms(60)));
        assert!(s.fire(true));
        assert_eq!(s.done(true, t0), 0);
        assert_eq!(
            s.due(),
            None,
            "settled: nothing until the next change or tick"
        );
        s.resync(true, t0 + ms(30_000));
        assert_eq!(s.due(), Some(t0 + ms(30_000)));
    }

    #[test]
    fn backoff_doubles_from_200ms_and_is_capped() {
        let delays: Vec<u64> = (1..=9).map(|a| backoff(a).as_millis() as u64).collect();
        assert_eq!(
            delays,
            [200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000]
        );
    }
}
