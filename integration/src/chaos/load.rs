//! The load generator: `clients` concurrent tasks allocating and releasing endpoints
//! through the real ipam-service, each call found through root as the CNI plugin finds it
//! (discovery, then one RPC), every call recorded with its outcome and its start and end.
//!
//! # Outcomes and retries
//! A call either succeeded, failed *definitely* (the service said what happened and wrote
//! nothing: INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION,
//! RESOURCE_EXHAUSTED, ABORTED, PERMISSION_DENIED, ...; or discovery failed, so nothing was
//! sent), or failed with an *unknown* outcome (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED,
//! UNKNOWN, INTERNAL, DATA_LOSS: the request may have been carried out before the answer
//! was lost). A client retries an operation with an unknown outcome, with the same endpoint
//! id, until it succeeds (allocation is idempotent per id, a release of nothing succeeds),
//! so that every operation ends known; once an attempt was unknown, later definite failures
//! are retried too, since the earlier attempt may still have taken effect. Retries stop
//! only at the settle deadline after [`Load::finish`]; what is still unknown then is
//! reported as unresolved (see [`super::invariants`] for what is checked against etcd).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use romana_proto::discover::{self, DiscoverError, Timeouts};
use romana_proto::pb;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::Code;

/// Where an allocation goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub host: String,
    pub tenant: String,
    pub segment: String,
}

/// What a load does; see [`LoadSpec::new`] for the defaults.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Root's URL: clients know nothing else.
    pub root: String,
    pub clients: usize,
    /// Client `i`'s allocations go round these.
    pub placements: Vec<Placement>,
    /// Endpoints a client holds before it releases its oldest.
    pub hold: usize,
    /// Pause after each operation.
    pub pause: Duration,
    /// Discovery and call deadlines.
    pub timeouts: Timeouts,
    /// Endpoint ids are `{prefix}-c{client}-{n}`.
    pub prefix: String,
    /// How long [`Load::finish`] lets clients retry operations with unknown outcomes.
    pub settle: Duration,
}

impl LoadSpec {
    /// 16 clients holding up to 6 endpoints each, 20 ms between operations, 500 ms to
    /// connect (and health-check) an instance, 3 s per call, 30 s to settle.
    pub fn new(root: impl Into<String>, placements: Vec<Placement>) -> LoadSpec {
        LoadSpec {
            root: root.into(),
            clients: 16,
            placements,
            hold: 6,
            pause: Duration::from_millis(20),
            timeouts: Timeouts {
                connect: Duration::from_millis(500),
                request: Duration::from_secs(3),
            },
            prefix: "load".into(),
            settle: Duration::from_secs(30),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Allocate,
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allocated(IpAddr),
    /// What the release freed; `None` when the id held nothing.
    Released(Option<IpAddr>),
    Failed {
        code: Code,
        message: String,
        /// Discovery failed: nothing was sent to ipam-service.
        discovery: bool,
    },
}

/// One call (one attempt of an operation).
#[derive(Clone, Debug)]
pub struct Call {
    pub client: usize,
    pub op: Op,
    pub endpoint: String,
    /// 0 for an operation's first call, then 1, 2... for its retries.
    pub attempt: u32,
    /// Since the load started.
    pub start: Duration,
    pub end: Duration,
    pub outcome: Outcome,
}

/// A fault a scenario injected, and when.
#[derive(Clone, Debug)]
pub struct Fault {
    pub what: String,
    pub at: Duration,
}

/// A running load; dropping it aborts the clients.
pub struct Load {
    spec: Arc<LoadSpec>,
    started: Instant,
    stop: Arc<AtomicBool>,
    successes: Arc<AtomicU64>,
    faults: Mutex<Vec<Fault>>,
    tasks: Vec<JoinHandle<Vec<Call>>>,
}

/// Everything a finished load did.
#[derive(Clone, Debug)]
pub struct Run {
    pub spec: Arc<LoadSpec>,
    pub calls: Vec<Call>,
    pub faults: Vec<Fault>,
    pub duration: Duration,
}

// === impl Outcome ===

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed { .. })
    }

    /// A failure after which the request may or may not have been carried out.
    pub fn is_unknown(&self) -> bool {
        match self {
            Outcome::Failed {
                discovery: false,
                code,
                ..
            } => matches!(
                code,
                Code::Unavailable
                    | Code::DeadlineExceeded
                    | Code::Cancelled
                    | Code::Unknown
                    | Code::Internal
                    | Code::DataLoss
            ),
            _ => false,
        }
    }
}

// === impl Load ===

impl Load {
    /// Starts the clients on the current runtime.
    pub fn start(spec: LoadSpec) -> Load {
        assert!(!spec.placements.is_empty(), "a load needs a placement");
        let spec = Arc::new(spec);
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let successes = Arc::new(AtomicU64::new(0));
        let tasks = (0..spec.clients)
            .map(|client| {
                let c = Client {
                    id: client,
                    spec: spec.clone(),
                    started,
                    stop: stop.clone(),
                    successes: successes.clone(),
                    calls: Vec::new(),
                };
                tokio::spawn(c.run())
            })
            .collect();
        Load {
            spec,
            started,
            stop,
            successes,
            faults: Mutex::new(Vec::new()),
            tasks,
        }
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records that `what` is injected now; returns the time, as calls record theirs.
    pub fn fault(&self, what: &str) -> Duration {
        let at = self.elapsed();
        tracing::info!(fault = what, ?at, "injecting a fault");
        self.faults.lock().expect("not poisoned").push(Fault {
            what: what.to_string(),
            at,
        });
        at
    }

    /// Successful calls so far.
    pub fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }

    /// Waits until `more` calls succeeded from now on, for at most `timeout`.
    pub async fn progress(&self, more: u64, timeout: Duration) -> anyhow::Result<()> {
        let want = self.successes() + more;
        crate::eventually(
            &format!("{more} more successful calls"),
            timeout,
            || async { (self.successes() >= want).then_some(()) },
        )
        .await
    }

    /// Stops the clients: each finishes its operation (retrying an unknown outcome for up
    /// to the spec's `settle`) and returns its calls.
    pub async fn finish(mut self) -> anyhow::Result<Run> {
        self.stop.store(true, Ordering::SeqCst);
        let mut calls = Vec::new();
        for task in std::mem::take(&mut self.tasks) {
            calls.extend(task.await?);
        }
        calls.sort_by_key(|c| (c.start, c.client));
        Ok(Run {
            spec: self.spec.clone(),
            calls,
            faults: std::mem::take(&mut *self.faults.lock().expect("not poisoned")),
            duration: self.elapsed(),
        })
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

// === the clients ===

struct Client {
    id: usize,
    spec: Arc<LoadSpec>,
    started: Instant,
    stop: Arc<AtomicBool>,
    successes: Arc<AtomicU64>,
    calls: Vec<Call>,
}

impl Client {
    async fn run(mut self) -> Vec<Call> {
        let mut held: VecDeque<String> = VecDeque::new();
        let mut n = 0usize;
        let mut stopped_at: Option<Instant> = None;
        while !self.stop.load(Ordering::SeqCst) {
            let (op, id) = if held.len() >= self.spec.hold {
                (Op::Release, held.front().cloned().expect("held"))
            } else {
                n += 1;
                (
                    Op::Allocate,
                    format!("{}-c{}-{n}", self.spec.prefix, self.id),
                )
            };
            let placement = &self.spec.placements[(self.id + n) % self.spec.placements.len()];
            let placement = placement.clone();
            let last = self.operate(op, &id, &placement, &mut stopped_at).await;
            match (op, last) {
                (Op::Allocate, Outcome::Allocated(_)) => held.push_back(id),
                (Op::Release, Outcome::Released(_)) => {
                    held.pop_front();
                }
                // A definite failure: an allocation left nothing (next id), a release is
                // tried again. Unresolved after the settle deadline: the run reports it.
                _ => {}
            }
            tokio::time::sleep(self.spec.pause).await;
        }
        self.calls
    }

    /// Runs one operation to a known end (see the module docs) and returns the last outcome.
    async fn operate(
        &mut self,
        op: Op,
        id: &str,
        placement: &Placement,
        stopped_at: &mut Option<Instant>,
    ) -> Outcome {
        let mut attempt = 0;
        let mut uncertain = false;
        let mut backoff = Duration::from_millis(50);
        loop {
            let start = self.started.elapsed();
            let outcome = call(&self.spec, op, id, placement).await;
            let end = self.started.elapsed();
            if !outcome.is_failure() {
                self.successes.fetch_add(1, Ordering::Relaxed);
            }
            self.calls.push(Call {
                client: self.id,
                op,
                endpoint: id.to_string(),
                attempt,
                start,
                end,
                outcome: outcome.clone(),
            });
            uncertain |= outcome.is_unknown();
            if !outcome.is_failure() || !uncertain {
                return outcome;
            }
            if self.stop.load(Ordering::SeqCst) {
                let since = *stopped_at.get_or_insert_with(Instant::now);
                if since.elapsed() > self.spec.settle {
                    return outcome;
                }
            }
            attempt += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
}

/// Discovery through root, then one Allocate or Release.
async fn call(spec: &LoadSpec, op: Op, id: &str, placement: &Placement) -> Outcome {
    let channel = match discover::channel_with(&spec.root, "ipam", spec.timeouts).await {
        Ok(channel) => channel,
        Err(e) => {
            return Outcome::Failed {
                code: discovery_code(&e),
                message: e.to_string(),
                discovery: true,
            }
        }
    };
    let mut ipam = pb::ipam_client::IpamClient::new(channel);
    let result = match op {
        Op::Allocate => ipam
            .allocate(pb::AllocateRequest {
                endpoint: id.to_string(),
                host: placement.host.clone(),
                tenant: placement.tenant.clone(),
                segment: placement.segment.clone(),
                ..Default::default()
            })
            .await
            .map(|r| parse(&r.into_inner().address).map(Outcome::Allocated)),
        Op::Release => ipam
            .release(pb::ReleaseRequest::endpoint(id.to_string()))
            .await
            .map(|r| {
                let freed = r.into_inner().endpoint.map(|e| parse(&e.address));
                freed.transpose().map(Outcome::Released)
            }),
    };
    match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(message)) => Outcome::Failed {
            code: Code::Internal,
            message,
            discovery: false,
        },
        Err(status) => Outcome::Failed {
            code: status.code(),
            message: status.message().to_string(),
            discovery: false,
        },
    }
}

fn parse(address: &str) -> Result<IpAddr, String> {
    address
        .parse()
        .map_err(|e| format!("the service answered a bad address {address:?}: {e}"))
}

/// The code a discovery failure stands for (root's own status for a registry error).
fn discovery_code(e: &DiscoverError) -> Code {
    match e {
        DiscoverError::Registry { status, .. } => status.code(),
        DiscoverError::BadUrl { .. } | DiscoverError::NoTlsCa { .. } => Code::InvalidArgument,
        _ => Code::Unavailable,
    }
}

// === impl Run ===

impl Run {
    /// Operations started (first attempts).
    pub fn operations(&self) -> usize {
        self.calls.iter().filter(|c| c.attempt == 0).count()
    }

    pub fn failed(&self) -> impl Iterator<Item = &Call> {
        self.calls.iter().filter(|c| c.outcome.is_failure())
    }

    /// Failed calls by code (`discovery:` in front when discovery failed).
    pub fn failed_by_kind(&self) -> BTreeMap<String, usize> {
        let mut kinds = BTreeMap::new();
        for c in self.failed() {
            if let Outcome::Failed {
                code, discovery, ..
            } = &c.outcome
            {
                let kind = format!("{}{code:?}", if *discovery { "discovery:" } else { "" });
                *kinds.entry(kind).or_insert(0) += 1;
            }
        }
        kinds
    }

    /// Calls that had started and not yet ended at `at`.
    /// Calls in flight at any moment of `window` (a fault that takes time to inject,
    /// such as a kill that waits for the process to exit, breaks calls all along it).
    pub fn in_flight_during(&self, window: &std::ops::Range<Duration>) -> usize {
        self.calls
            .iter()
            .filter(|c| c.start <= window.end && window.start < c.end)
            .count()
    }

    pub fn in_flight_at(&self, at: Duration) -> usize {
        self.calls
            .iter()
            .filter(|c| c.start <= at && at < c.end)
            .count()
    }

    /// Failed first attempts of operations that started after `at`: failures that being
    /// in flight at the fault (or retrying one that was) does not explain.
    pub fn new_operations_failed_after(&self, at: Duration) -> usize {
        self.failed()
            .filter(|c| c.attempt == 0 && c.start > at)
            .count()
    }

    /// Calls that started in `[from, to)` and succeeded.
    pub fn succeeded_between(&self, from: Duration, to: Duration) -> usize {
        self.calls
            .iter()
            .filter(|c| c.start >= from && c.start < to && !c.outcome.is_failure())
            .count()
    }

    /// How long after `at` calls kept failing: the end of the last failed call that was in
    /// flight at `at` or started after it, minus `at` (zero when none failed).
    pub fn failing_for(&self, at: Duration) -> Duration {
        self.failed()
            .filter(|c| c.end > at)
            .map(|c| c.end - at)
            .max()
            .unwrap_or_default()
    }

    /// The median and 99th percentile duration of successful calls.
    pub fn latency(&self) -> (Duration, Duration) {
        let mut d: Vec<Duration> = self
            .calls
            .iter()
            .filter(|c| !c.outcome.is_failure())
            .map(|c| c.end - c.start)
            .collect();
        if d.is_empty() {
            return (Duration::ZERO, Duration::ZERO);
        }
        d.sort();
        let at = |q: f64| d[((d.len() - 1) as f64 * q) as usize];
        (at(0.5), at(0.99))
    }

    /// The longest call that failed in `[from, to)` (by start), for "fails fast".
    pub fn slowest_failure_between(&self, from: Duration, to: Duration) -> Option<&Call> {
        self.failed()
            .filter(|c| c.start >= from && c.start < to)
            .max_by_key(|c| c.end - c.start)
    }
}
