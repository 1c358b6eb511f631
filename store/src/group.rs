//! Group commit: transactions marked [`Txn::grouped`] that wait at the same time are sent
//! as one etcd transaction. etcd 3.4 spends most of a transaction's cost on the
//! transaction itself (a one-operation transaction costs twice a plain put), so sixteen
//! concurrent allocations cost etcd a few transactions instead of sixteen.
//!
//! At most [`IN_FLIGHT`] groups are in flight; whatever arrives meanwhile waits and forms
//! the next group, so a lone caller never waits for company and a busy one shares.
//!
//! A group only holds transactions that cannot see each other: none writes a key another
//! writes or compares. All compares of a group are evaluated before any of its writes,
//! which is then the same as committing its members one after another in any order.
//! When a group's compares fail, its failure branch reads every compared key at the
//! revision the compares saw: the members those reads show failing get their conflict,
//! the others form the group again. When the outcome is unknown (etcd did not answer),
//! every member is committed again on its own. That is safe only because every grouped
//! write is conditional: a member the group did carry out fails its compare the second
//! time instead of repeating its write.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::errors::StoreError;
use crate::store::{header_revision, Store};
use crate::txn::{found_by_check, taken, Taken, Txn};

/// Groups sent at once.
const IN_FLIGHT: usize = 2;
/// A group waiting on etcd this long no longer holds back the jobs behind it.
const STUCK: Duration = Duration::from_millis(250);
/// Sending tasks at most, stuck or not.
const MAX_SENDERS: usize = 16;
/// Operations in one group, below etcd's `--max-txn-ops` (128), which counts compares,
/// writes and the failure branch's reads alike.
const MAX_OPS: usize = 120;

type Answer = Result<(i64, Vec<Taken>), StoreError>;

struct Job {
    txn: Txn,
    reply: oneshot::Sender<Answer>,
}

/// The transactions waiting, shared by every clone of a [`Store`].
#[derive(Default)]
pub(crate) struct Queue {
    jobs: VecDeque<Job>,
    /// Each sending task, and when it sent its current group (or started, while it takes
    /// one).
    senders: Vec<(u64, Instant)>,
    next_sender: u64,
}

impl Queue {
    /// Whether a waiting job needs another sender: fewer than [`IN_FLIGHT`] are sending, or
    /// every one of them has been waiting on etcd longer than [`STUCK`] (a member died
    /// with their groups; the jobs behind them must not wait for its timeout).
    fn wants_sender(&self) -> bool {
        !self.jobs.is_empty()
            && self.senders.len() < MAX_SENDERS
            && (self.senders.len() < IN_FLIGHT
                || self.senders.iter().all(|(_, t)| t.elapsed() >= STUCK))
    }

    /// Counts a new sender in if one is wanted, and says which.
    fn start_sender(&mut self) -> Option<u64> {
        self.wants_sender().then(|| self.add_sender())
    }

    fn add_sender(&mut self) -> u64 {
        let id = self.next_sender;
        self.next_sender += 1;
        self.senders.push((id, Instant::now()));
        id
    }

    fn remove_sender(&mut self, id: u64) {
        if let Some(i) = self.senders.iter().position(|(s, _)| *s == id) {
            self.senders.swap_remove(i);
        }
    }
}

/// A caller sending its own transaction as a sender; when it is done (or goes away), the
/// jobs that queued meanwhile get a sending task.
struct Inline<'a> {
    store: &'a Store,
    id: u64,
}

impl Drop for Inline<'_> {
    fn drop(&mut self) {
        let start = {
            let mut queue = lock(self.store.group());
            queue.remove_sender(self.id);
            queue.start_sender()
        };
        if let Some(id) = start {
            spawn_sender(self.store, id);
        }
    }
}

/// Starts sender `id` as a task of its own: a caller that goes away must not strand the
/// others' answers. Outside a runtime (it is shutting down) the sender is counted out
/// again; the waiting callers' own timers start one if they still run.
fn spawn_sender(store: &Store, id: u64) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(send_groups(store.clone(), id));
        }
        Err(_) => lock(store.group()).remove_sender(id),
    }
}

/// Commits `txn` in the next group; see the module docs.
pub(crate) async fn commit(txn: Txn) -> Answer {
    let store = txn.store().clone();
    // Nothing waiting and a sender free: this caller sends its own transaction, without a
    // task and a channel in between. It counts as a sender meanwhile, so that what arrives
    // now waits to form a group.
    let alone = {
        let mut queue = lock(store.group());
        let free = queue.jobs.is_empty() && queue.senders.len() < IN_FLIGHT;
        free.then(|| queue.add_sender())
    };
    if let Some(id) = alone {
        let _slot = Inline { store: &store, id };
        return txn.commit_alone().await;
    }
    let (reply, mut answer) = oneshot::channel();
    let start = {
        let mut queue = lock(store.group());
        queue.jobs.push_back(Job { txn, reply });
        queue.start_sender()
    };
    if let Some(id) = start {
        spawn_sender(&store, id);
    }
    loop {
        tokio::select! {
            answer = &mut answer => {
                return answer.unwrap_or_else(|_| {
                    Err(StoreError::Unavailable {
                        endpoints: store.endpoints().to_string(),
                        detail: "the task committing this transaction's group ended \
                                 without an answer"
                            .to_string(),
                    })
                });
            }
            _ = tokio::time::sleep(STUCK) => {
                let start = lock(store.group()).start_sender();
                if let Some(id) = start {
                    spawn_sender(&store, id);
                }
            }
        }
    }
}

/// Sends groups until none is waiting; `id` is this task's entry in `senders`.
async fn send_groups(store: Store, id: u64) {
    loop {
        let group = {
            let mut queue = lock(store.group());
            if queue.jobs.is_empty() {
                // Under the lock: a caller queueing now sees one sender fewer and starts one.
                queue.remove_sender(id);
                return;
            }
            if let Some(slot) = queue.senders.iter_mut().find(|(s, _)| *s == id) {
                slot.1 = Instant::now();
            }
            next_group(&mut queue.jobs)
        };
        send(&store, group).await;
    }
}

/// The longest run of waiting jobs, first come first, that may share one transaction.
fn next_group(jobs: &mut VecDeque<Job>) -> Vec<Job> {
    let mut group = Vec::new();
    let (mut written, mut compared) = (HashSet::new(), HashSet::new());
    let (mut checks, mut ops, mut bytes) = (0, 0, 0);
    while let Some(job) = jobs.front() {
        let txn = &job.txn;
        let fits = group.is_empty()
            || (checks + txn.checks().len() <= MAX_OPS
                && ops + txn.op_count() <= MAX_OPS
                && bytes + txn.put_bytes <= crate::MAX_WRITE_BYTES
                && txn
                    .writes
                    .iter()
                    .all(|k| !written.contains(k) && !compared.contains(k))
                && txn.checks().iter().all(|c| !written.contains(&c.key)));
        if !fits {
            break;
        }
        checks += txn.checks().len();
        ops += txn.op_count();
        bytes += txn.put_bytes;
        written.extend(txn.writes.iter().cloned());
        compared.extend(txn.checks().iter().map(|c| c.key.clone()));
        group.extend(jobs.pop_front());
    }
    group
}

async fn send(store: &Store, mut group: Vec<Job>) {
    loop {
        if group.len() == 1 {
            let job = group.remove(0);
            let _ = job.reply.send(job.txn.commit_alone().await);
            return;
        }
        let (txn, checks) = Txn::to_etcd(group.iter().map(|j| &j.txn));
        let first = group[0].txn.first_key().unwrap_or("(group)").to_string();
        let resp = match store.send_txn(&first, txn).await {
            Ok(resp) => resp,
            // The outcome is unknown: each on its own (see the module docs).
            Err(_) => return alone(group).await,
        };
        if resp.succeeded() {
            let revision = header_revision(resp.header());
            let mut taken = taken(&resp);
            for job in group {
                let (mine, rest) = taken
                    .into_iter()
                    .partition(|t| job.txn.writes.contains(&t.key));
                taken = rest;
                let _ = job.reply.send(Ok((revision, mine)));
            }
            return;
        }
        // The reads were taken with the compares: the members they show failing lose,
        // the others are tried again together.
        let found = found_by_check(&checks, &resp);
        let verdicts: Vec<Option<StoreError>> =
            group.iter().map(|j| j.txn.failing(&found)).collect();
        if verdicts.iter().all(Option::is_none) {
            return alone(group).await;
        }
        let mut winners = Vec::new();
        for (job, verdict) in group.into_iter().zip(verdicts) {
            match verdict {
                Some(conflict) => {
                    let _ = job.reply.send(Err(conflict));
                }
                None => winners.push(job),
            }
        }
        if winners.is_empty() {
            return;
        }
        group = winners;
    }
}

/// Commits each job on its own, at once.
async fn alone(group: Vec<Job>) {
    let each = group.into_iter().map(|job| async move {
        let _ = job.reply.send(job.txn.commit_alone().await);
    });
    futures::future::join_all(each).await;
}

fn lock(queue: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    queue.lock().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    pub(crate) fn group(&self) -> &Arc<Mutex<Queue>> {
        &self.group
    }
}
