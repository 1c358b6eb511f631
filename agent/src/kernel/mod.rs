//! The kernel adapters: the only I/O of the agent besides etcd. Each reads what is ours and
//! carries out a [`Plan`]; none decides anything.
//!
//! - [`routes`]: routes, links and addresses over rtnetlink.
//! - [`taps`]: `tap*` links (index, up, addresses) and the changes to them.
//! - [`links`]: link notifications, which wake the agent when an endpoint interface
//!   appears or goes.
//! - [`nft`]: the `nft` process, one transaction per change.
//! - [`sysctl`]: settings under `/proc/sys`.
//! - [`netns`]: running any of them inside a named network namespace (`--netns`).

#[allow(unsafe_code)]
mod libnft;
pub mod links;
pub mod netns;
pub mod nft;
pub mod routes;
pub mod sysctl;
pub mod taps;

use std::io;

use crate::plan::{NftObserved, NftOp, Observed, Plan, RouteOp};
use crate::taps::TapOp;

pub use nft::NftRunner;
pub use routes::Netlink;

/// A failed kernel operation. All are retryable: the agent keeps the change pending and
/// tries again after a backoff; what the error names is what an operator has to look at.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("network namespace {netns}: {source}")]
    Netns {
        netns: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] io::Error),
    #[error("netlink {op} {what} failed: {source}")]
    Netlink {
        op: &'static str,
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("route {what} cannot be expressed: {detail}")]
    Invalid { what: String, detail: String },
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("nft {op} failed: {stderr}")]
    Nft { op: &'static str, stderr: String },
    #[error("sysctl {path}: {source}")]
    Sysctl {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Operations that succeeded.
    pub done: usize,
    /// Operations that failed or were held back, in words.
    pub failed: Vec<String>,
}

/// The kernel of one host (or of one namespace, with `--netns`).
#[derive(Clone, Debug)]
pub struct Kernel {
    netlink: Netlink,
    nft: NftRunner,
    netns: Option<String>,
}

impl Kernel {
    pub async fn connect(netns: Option<String>) -> Result<Kernel, KernelError> {
        Ok(Kernel {
            netlink: Netlink::connect(netns.as_deref()).await?,
            nft: NftRunner::new(netns.clone()),
            netns,
        })
    }

    pub fn netlink(&self) -> &Netlink {
        &self.netlink
    }

    pub fn nft(&self) -> &NftRunner {
        &self.nft
    }

    /// Reads everything the planner compares; `sysctls` are the paths to read.
    pub async fn observe(&self, sysctls: Vec<String>) -> Result<Observed, KernelError> {
        self.observe_with(sysctls, None).await
    }

    /// As [`Self::observe`], but takes our nftables table from `nft` when given (what the
    /// agent knows it applied) instead of listing it.
    pub async fn observe_with(
        &self,
        sysctls: Vec<String>,
        nft: Option<NftObserved>,
    ) -> Result<Observed, KernelError> {
        let nft = match nft {
            Some(nft) => nft,
            None => self.nft.observe().await?,
        };
        Ok(Observed {
            routes: self.netlink.main_routes().await?,
            links: self.netlink.links().await?,
            taps: self.netlink.taps().await?,
            connected: self.netlink.connected().await?,
            nft,
            sysctls: sysctl::read(self.netns.clone(), sysctls).await?,
        })
    }

    /// Carries out `plan` in the order that never opens a hole:
    /// 1. nftables first, so isolation exists before anything is routed to an endpoint;
    /// 2. taps wired (gateway on, up), so a tap is ready before its route makes it
    ///    reachable;
    /// 3. routes in plan order;
    /// 4. taps unwired (stale gateways off) after their routes are gone: deleting a
    ///    link's last IPv4 address makes the kernel flush every route through it, and the
    ///    route deletes planned for them would then fail;
    /// 5. sysctls (forwarding) last.
    ///
    /// If the nft transaction fails, routes to endpoint interfaces are not added, taps get
    /// no gateway and forwarding is not switched on in this round: without our table, an
    /// endpoint route would forward to it unfiltered (fail closed). A route to a tap whose
    /// wiring failed is held back too: its route in the status means "wired". Other
    /// failures do not stop the rest.
    pub async fn apply(&self, plan: &Plan) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut nft_failed = false;
        if let Some(script) = plan.nft.script() {
            match self.nft.apply(&script).await {
                Ok(()) => {
                    report.done += 1;
                    match plan.nft {
                        NftOp::Replace(_) => tracing::info!("nftables table inet romana replaced"),
                        NftOp::Patch { .. } => {
                            tracing::info!("nftables rules of changed chains replaced")
                        }
                        _ => tracing::info!("nftables set elements updated"),
                    }
                }
                Err(e) => {
                    nft_failed = true;
                    tracing::error!(error = %e, "nftables transaction failed; the previous ruleset stays");
                    report.failed.push(e.to_string());
                }
            }
        }
        let (wire, unwire): (Vec<&TapOp>, Vec<&TapOp>) = plan
            .taps
            .iter()
            .partition(|op| !matches!(op, TapOp::DeleteGateway { .. }));
        let unwired = self.apply_taps(&wire, nft_failed, &mut report).await;
        for op in &plan.routes {
            let result = match op {
                RouteOp::Replace { oif: Some(_), .. } if nft_failed => {
                    report
                        .failed
                        .push(format!("{} held back: nftables failed", op.describe()));
                    continue;
                }
                RouteOp::Replace { oif: Some(oif), .. } if unwired.contains(oif) => {
                    report
                        .failed
                        .push(format!("{} held back: its tap is not wired", op.describe()));
                    continue;
                }
                RouteOp::Replace { dst, gateway, oif } => {
                    self.netlink.replace(*dst, *gateway, *oif).await
                }
                RouteOp::Delete(route) => self.netlink.delete(route).await,
            };
            match result {
                Ok(()) => {
                    tracing::info!(route = %op.describe(), "route applied");
                    report.done += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "route change failed");
                    report.failed.push(e.to_string());
                }
            }
        }
        self.apply_taps(&unwire, nft_failed, &mut report).await;
        for s in &plan.sysctls {
            if nft_failed {
                report
                    .failed
                    .push(format!("sysctl {} held back: nftables failed", s.path));
                continue;
            }
            match sysctl::write(self.netns.clone(), s.path.clone(), s.value.clone()).await {
                Ok(()) => {
                    tracing::info!(path = %s.path, value = %s.value, "sysctl set");
                    report.done += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "sysctl write failed");
                    report.failed.push(e.to_string());
                }
            }
        }
        report
    }

    /// Tap changes; returns the indexes of taps left unwired (a gateway add or up failed
    /// or was held back), whose routes must wait.
    async fn apply_taps(
        &self,
        ops: &[&TapOp],
        nft_failed: bool,
        report: &mut ApplyReport,
    ) -> std::collections::BTreeSet<u32> {
        let mut unwired = std::collections::BTreeSet::new();
        for &op in ops {
            let wiring = !matches!(op, TapOp::DeleteGateway { .. });
            if wiring && nft_failed {
                report
                    .failed
                    .push(format!("{} held back: nftables failed", op.describe()));
                unwired.insert(op.index());
                continue;
            }
            match self.netlink.tap(op).await {
                Ok(()) => {
                    tracing::info!(tap = %op.describe(), "tap changed");
                    report.done += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "tap change failed");
                    report.failed.push(e.to_string());
                    if wiring {
                        unwired.insert(op.index());
                    }
                }
            }
        }
        unwired
    }
}

/// The error of netlink request `op` on `what`, for `map_err`.
fn netlink_failed<'a>(
    op: &'static str,
    what: &'a str,
) -> impl Fn(rtnetlink::Error) -> KernelError + 'a {
    move |source| KernelError::Netlink {
        op,
        what: what.to_string(),
        source,
    }
}
