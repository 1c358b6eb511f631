//! One round of desired -> plan -> apply -> read back, with the kernel connection, the
//! nftables table as last applied, and what was last reported.
//!
//! Why a cache: listing the whole table (`nft -j list`, ~25 ms at 11k elements) before and
//! after every change cost far more than the change itself (one `nft -f` of a few element
//! lines, ~3 ms). So after a round that settled, the table is taken to be exactly what was
//! applied, and the next change is planned against that: its script only adds and deletes
//! the elements that differ. That is safe because
//! - a transaction is atomic: when `nft -f` succeeds the table is the old one plus the
//!   script, and when it fails nothing changed;
//! - element deletes name elements the cache holds: if the table drifted under us (a flush,
//!   a hand edit), such a delete fails the whole batch, which sends the agent back to a
//!   full read and a full plan (fail closed) in the next round;
//! - the resync tick re-reads everything, so drift the cache cannot notice (an element
//!   added by hand, a route deleted) is repaired within the resync interval.
//!
//! Full rounds still read routes, links and addresses over rtnetlink: links are made by the
//! CNI plugin outside etcd, and a host has only its own endpoints' routes, so the dump is
//! small whatever the cluster size. A round for remote endpoint changes only
//! ([`crate::incremental`]) touches neither routes nor links: it runs the changed endpoints
//! through the program's recipes and applies the element delta, nothing else.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::agent::{AgentConfig, Progress};
use crate::desired::{desired_with_recipes, HostView};
use crate::incremental::{endpoint_delta, Changes, Compiled};
use crate::kernel::{Kernel, KernelError};
use crate::nft::render_elements;
use crate::plan::{plan_with_view, NftObserved, NftOp, Observed};
use crate::schedule::Read;
use crate::state::ClusterState;
use crate::status::{AgentStatus, StatusSink};

/// Sysctl paths the agent reads every round (it may want either).
const SYSCTL_PATHS: [&str; 2] = ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"];

/// The outcome of one reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    /// Nothing left to change after the apply (blocked routes aside).
    pub converged: bool,
    /// Routes waiting for their interface.
    pub blocked: usize,
    pub failed: Vec<String>,
}

pub struct Reconciler {
    config: AgentConfig,
    kernel: Option<Kernel>,
    /// Our table as the last settled round left it; `None` after any error or doubt.
    nft: Option<NftObserved>,
    /// The program of the last settled round, for the incremental path.
    last: Option<Compiled>,
    /// What `last` was computed from: the state's revision and the host's connected
    /// subnets. A round for the kernel's sake alone (a link notification, the resync tick)
    /// finds both unchanged and plans against `last` instead of compiling again, so an
    /// interface appearing costs a kernel read, not O(endpoints x policies).
    last_inputs: Option<(i64, Vec<ipnet::IpNet>)>,
    /// The status of the last round (written or not), which a fast round updates.
    report: Option<AgentStatus>,
    last_problems: Vec<String>,
    /// The status last written (or handed to `sink`).
    last_status: Option<AgentStatus>,
    /// Writes statuses off the loop; `None` without a status writer, and with `once`
    /// (which writes its one status before it returns).
    sink: Option<StatusSink>,
    progress: Option<Arc<watch::Sender<Progress>>>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn sysctl_paths() -> Vec<String> {
    SYSCTL_PATHS.iter().map(|p| p.to_string()).collect()
}

impl Reconciler {
    pub fn new(config: AgentConfig) -> Reconciler {
        let sink = match &config.status {
            Some(writer) if !config.once => Some(StatusSink::spawn(writer.clone())),
            _ => None,
        };
        Reconciler {
            sink,
            progress: config.progress.clone(),
            config,
            kernel: None,
            nft: None,
            last: None,
            last_inputs: None,
            report: None,
            last_problems: Vec::new(),
            last_status: None,
        }
    }

    /// One round. `changes` are what changed in `state` since the last round; they decide
    /// whether the incremental path can serve it.
    pub async fn reconcile(
        &mut self,
        state: &ClusterState,
        read: Read,
        changes: &Changes,
    ) -> Round {
        let fast = match read {
            Read::Cached => self.fast_round(state, changes).await,
            Read::Kernel => None,
        };
        let outcome = match fast {
            Some(outcome) => Ok(outcome),
            None => self.try_reconcile(state, read).await,
        };
        let (round, status) = match outcome {
            Ok((round, status)) => (round, status),
            Err(e) => {
                // A broken netlink socket is re-opened on the next round.
                self.kernel = None;
                self.nft = None;
                self.last = None;
                tracing::error!(error = %e, "cannot read the kernel; will retry");
                let round = Round {
                    converged: false,
                    blocked: 0,
                    failed: vec![e.to_string()],
                };
                (round, None)
            }
        };
        // Before the status write: the kernel holds the change now, etcd is told after.
        if let Some(progress) = &self.progress {
            progress.send_replace(Progress {
                revision: state.revision(),
                policy_revision: state.policy_revision(),
                converged: round.converged,
                blocked: round.blocked,
            });
        }
        if let Some(status) = status {
            self.report = Some(status.clone());
            self.write_status(status).await;
        }
        round
    }

    /// The round for remote endpoint changes, or `None` when they need the full path.
    async fn fast_round(
        &mut self,
        state: &ClusterState,
        changes: &Changes,
    ) -> Option<(Round, Option<AgentStatus>)> {
        // Taken: whatever happens below, a half-updated program is never reused.
        let mut last = self.last.take()?;
        let kernel = self.kernel.clone()?;
        let report = self.report.clone()?;
        if !matches!(self.nft, Some(NftObserved::Table(_))) {
            return None;
        }
        let delta = endpoint_delta(&mut last, state, &self.config.host, changes)?;
        if !delta.is_empty() {
            let script = render_elements(&delta.add, &delta.delete);
            if let Err(e) = kernel.nft().apply(&script).await {
                // Fail closed: the batch changed nothing; the next round reads everything.
                self.nft = None;
                tracing::error!(error = %e, "nftables element update failed; the previous ruleset stays");
                let round = Round {
                    converged: false,
                    blocked: 0,
                    failed: vec![e.to_string()],
                };
                return Some((round, None));
            }
            tracing::debug!(
                added = delta.add.len(),
                deleted = delta.delete.len(),
                "nftables set elements updated for endpoint changes"
            );
        }
        let Some(NftObserved::Table(view)) = &mut self.nft else {
            return None;
        };
        delta.apply_to(view);
        let elements = view.sets.values().map(|s| s.elements.len()).sum();
        self.last = Some(last);
        if let Some((revision, _)) = &mut self.last_inputs {
            *revision = state.revision();
        }
        let now = unix_now();
        let status = AgentStatus {
            revision: state.revision(),
            policy_revision: state.policy_revision(),
            nft_elements: elements,
            applied_at: now,
            alive_at: now,
            ..report
        };
        let round = Round {
            converged: true,
            blocked: 0,
            failed: status.problems.clone(),
        };
        Some((round, Some(status)))
    }

    async fn try_reconcile(
        &mut self,
        state: &ClusterState,
        read: Read,
    ) -> Result<(Round, Option<AgentStatus>), KernelError> {
        let kernel = match &self.kernel {
            Some(k) => k.clone(),
            None => {
                let k = Kernel::connect(self.config.netns.clone()).await?;
                self.kernel = Some(k.clone());
                k
            }
        };
        // Taken, so that an error anywhere below leaves no cache behind.
        let cached = match read {
            Read::Cached => self.nft.take(),
            Read::Kernel => {
                self.nft = None;
                None
            }
        };
        let observed = kernel.observe_with(sysctl_paths(), cached).await?;
        let view = HostView {
            name: self.config.host.clone(),
            gateways: self.config.gateways.clone(),
            connected: observed.connected.clone(),
        };
        let inputs = (state.revision(), view.connected.clone());
        let reuse = self
            .last
            .take()
            .filter(|_| self.last_inputs.as_ref() == Some(&inputs));
        self.last_inputs = None;
        let (want, recipes) = match reuse {
            Some(last) => (last.desired, last.recipes),
            None => desired_with_recipes(state, &view),
        };
        if want.problems != self.last_problems {
            for p in &want.problems {
                tracing::warn!(problem = %p, "cannot express part of the desired dataplane");
            }
            self.last_problems = want.problems.clone();
        }
        let want_view = want.nft.view();
        let todo = plan_with_view(&want, &want_view, &observed);
        let (mut failed, after) = if todo.is_empty() {
            (Vec::new(), observed)
        } else {
            tracing::info!(
                revision = state.revision(),
                routes = todo.routes.len(),
                taps = todo.taps.len(),
                nft = todo.nft.script().is_some(),
                sysctls = todo.sysctls.len(),
                "applying"
            );
            let report = kernel.apply(&todo).await;
            let after = if report.failed.is_empty() {
                // Everything succeeded: the table is what we applied; what netlink and
                // /proc/sys hold is read again only when we changed it.
                let nft = match todo.nft {
                    NftOp::Keep => observed.nft,
                    _ => NftObserved::Table(want_view.clone()),
                };
                if todo.routes.is_empty() && todo.sysctls.is_empty() && todo.taps.is_empty() {
                    Observed { nft, ..observed }
                } else {
                    kernel.observe_with(sysctl_paths(), Some(nft)).await?
                }
            } else {
                kernel.observe(sysctl_paths()).await?
            };
            (report.failed, after)
        };
        let left = plan_with_view(&want, &want_view, &after);
        let converged = left.is_empty();
        if !converged {
            tracing::warn!(
                routes = ?left.routes.iter().map(|o| o.describe()).collect::<Vec<_>>(),
                taps = ?left.taps.iter().map(|o| o.describe()).collect::<Vec<_>>(),
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
        if converged {
            self.nft = Some(after.nft);
            self.last_inputs = Some(inputs);
            self.last = Some(Compiled {
                desired: want,
                recipes,
            });
        }
        let round = Round {
            converged,
            blocked: left.blocked.len(),
            failed,
        };
        Ok((round, Some(status)))
    }

    /// Rewrites the last status with a fresh `alive_at`, so that the CNI plugin's STATUS
    /// and operators can tell a running agent from a dead one.
    pub async fn heartbeat(&mut self) {
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
        if let Some(sink) = &self.sink {
            sink.send(status.clone());
            self.last_status = Some(status);
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
