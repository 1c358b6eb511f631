//! Failover between etcd members. etcd-client balances one channel over every endpoint and
//! keeps sending calls to a member that is down (each fails until the member returns), so the
//! store holds one client per member and pins calls to one member at a time, as etcd's Go
//! client does. A member is taken out when a call on it fails in transport, when it says it
//! has no leader, or when it leaves a probe unanswered; calls and streams in flight on it are
//! abandoned at once instead of waiting out the request timeout, and new calls go to the next
//! member. Probes bring it back when it answers again.
//!
//! Errors that etcd itself reports while the member is fine ("leader changed", a proposal
//! timeout during an election) do not take a member out: every member would answer the same.
//!
//! While a quorum of members can be reached, a call that may be resent waits out an election
//! (bounded) instead of failing: the cluster is about to serve again. With a quorum out of
//! reach there is nothing to wait for, and calls fail at once.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use etcd_client::{Client, GetOptions};
use tokio::sync::watch;
use tonic::Code;

/// How often each member is asked whether it serves, when there is more than one.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Probes are serializable reads: the member answers from its own state, or says it has no
/// leader, without waiting on the leader (a linearizable read blocks for the whole of an
/// election, which would make live members look dead). A member silent this long is paused or
/// overloaded, and the others are better.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);

pub(crate) struct Members {
    members: Vec<Member>,
    /// The member new calls go to.
    current: AtomicUsize,
}

/// How a member failed, from better to worse: one without a leader is alive and serves again
/// once an election ends, so it is preferred to one that cannot be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Down {
    NoLeader = 1,
    Unreachable = 2,
}

const SERVING: u8 = 0;

struct Member {
    url: String,
    client: Client,
    /// `SERVING` or a [`Down`] as u8.
    state: AtomicU8,
    /// Bumped each time the member is taken out; calls and streams on it watch it.
    taken_out: watch::Sender<u64>,
}

/// A call's hold on the member it runs on.
pub(crate) struct Pinned {
    pub index: usize,
    pub client: Client,
    pub url: String,
    taken_out: watch::Receiver<u64>,
}

// === impl Members ===

impl Members {
    /// One client per URL (none contacts etcd yet), and, for several members, the probe task,
    /// which ends when the last store handle is dropped. `probe_key` is read by the probes.
    pub(crate) fn new(clients: Vec<(String, Client)>, probe_key: String) -> Arc<Members> {
        // Spread processes over the members rather than all on the first.
        let first = std::process::id() as usize % clients.len().max(1);
        let members = Arc::new(Members {
            members: clients
                .into_iter()
                .map(|(url, client)| Member {
                    url,
                    client,
                    state: AtomicU8::new(SERVING),
                    taken_out: watch::Sender::new(0),
                })
                .collect(),
            current: AtomicUsize::new(first),
        });
        if members.len() > 1 {
            tokio::spawn(probe(Arc::downgrade(&members), probe_key));
        }
        members
    }

    /// The URL of the member new calls go to.
    pub(crate) fn current_url(&self) -> String {
        self.pick().url
    }

    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether a call that failed may wait for the cluster to serve again rather than fail:
    /// with several members, while a majority of them answer (with or without a leader).
    pub(crate) fn quorum_reachable(&self) -> bool {
        let states: Vec<u8> = self
            .members
            .iter()
            .map(|m| m.state.load(Ordering::Acquire))
            .collect();
        states.len() > 1 && quorum_reachable(&states)
    }

    /// The member for the next call: the current one if serving, else the next serving one
    /// (which becomes current); with none serving, the next one in the best state: during an
    /// election a member without a leader beats one that is dead.
    pub(crate) fn pick(&self) -> Pinned {
        let start = self.current.load(Ordering::Acquire);
        let states: Vec<u8> = self
            .members
            .iter()
            .map(|m| m.state.load(Ordering::Acquire))
            .collect();
        let chosen = choose(&states, start);
        if chosen != start {
            // Another call may have moved on already; either choice is healthy.
            let _ =
                self.current
                    .compare_exchange(start, chosen, Ordering::AcqRel, Ordering::Acquire);
        }
        let member = &self.members[chosen];
        Pinned {
            index: chosen,
            client: member.client.clone(),
            url: member.url.clone(),
            taken_out: member.taken_out.subscribe(),
        }
    }

    /// Stops sending calls to member `index` while another serves; an unreachable member's
    /// calls in flight are abandoned (one without a leader may still finish them). With one
    /// member there is nowhere else to go, so nothing changes.
    pub(crate) fn take_out(&self, index: usize, down: Down, why: &str) {
        if self.members.len() < 2 {
            return;
        }
        let member = &self.members[index];
        let before = member.state.swap(down as u8, Ordering::AcqRel);
        // The next call starts looking after this member, also when it was down already and
        // no member is better: with every member down (an election that slowed the probes of
        // the live ones), staying here would resend every call to one that may be dead while
        // the others are about to serve again.
        let _ = self.current.compare_exchange(
            index,
            (index + 1) % self.members.len(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if before == down as u8 {
            return;
        }
        if down == Down::Unreachable {
            member.taken_out.send_modify(|n| *n += 1);
        }
        let next = self.pick();
        tracing::warn!(
            member = %member.url,
            next = %next.url,
            ?down,
            why,
            "etcd member taken out; calls go to another member"
        );
    }

    fn bring_back(&self, index: usize) {
        let member = &self.members[index];
        if member.state.swap(SERVING, Ordering::AcqRel) != SERVING {
            tracing::info!(member = %member.url, "etcd member answers again");
        }
    }
}

/// The member a call goes to, given each member's state: the first from `start` on in the
/// best state there is (a serving one if any; else, during an election, one without a leader
/// before one that cannot be reached).
fn choose(states: &[u8], start: usize) -> usize {
    let n = states.len();
    let best = states.iter().copied().min().unwrap_or(SERVING);
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| states[i] == best)
        .unwrap_or(start)
}

/// Whether a majority of members is not known to be unreachable: enough to elect a leader.
fn quorum_reachable(states: &[u8]) -> bool {
    let reachable = states
        .iter()
        .filter(|&&s| s != Down::Unreachable as u8)
        .count();
    reachable > states.len() / 2
}

// === impl Pinned ===

impl Pinned {
    /// Resolves when the member is taken out (never, if the store is gone).
    pub(crate) async fn taken_out(&self) {
        let mut taken_out = self.taken_out.clone();
        if taken_out.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Whether `e` says the member itself is unusable, rather than the cluster busy: transport
/// failures, a stream cut mid-way (`Unknown`, h2 protocol error), our own deadline, or a member
/// without a leader (partitioned from the quorum, or quorum lost).
pub(crate) fn member_failed(e: &etcd_client::Error) -> bool {
    failure(e).is_some()
}

/// How `e` says the member failed, if it does (see [`member_failed`]).
pub(crate) fn failure(e: &etcd_client::Error) -> Option<Down> {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            Some(Down::Unreachable)
        }
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message();
            let from_etcd = message.starts_with("etcdserver:");
            match status.code() {
                Code::Unavailable if from_etcd && message.contains("no leader") => {
                    Some(Down::NoLeader)
                }
                Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
                    if !from_etcd =>
                {
                    Some(Down::Unreachable)
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether the request cannot have been carried out, so that even a write may be sent again
/// without doing it twice: no connection was made, or the member refused it for want of a
/// leader (etcd checks the `hasleader` metadata the client sends before it handles a request;
/// a proposal that later loses its leader fails otherwise, as a timeout or "leader changed").
pub(crate) fn never_executed(e: &etcd_client::Error) -> bool {
    if failure(e) == Some(Down::NoLeader) {
        return true;
    }
    let text = crate::errors::describe(e);
    [
        "error trying to connect",
        "tcp connect error",
        "Connection refused",
        "connect timed out",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Asks every member in turn, forever, whether it serves; ends with the store.
async fn probe(members: Weak<Members>, key: String) {
    let mut tick = tokio::time::interval(PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(live) = members.upgrade() else {
            return;
        };
        let checks = live.members.iter().map(|m| {
            let mut kv = m.client.kv_client();
            let key = key.clone();
            async move {
                let options = GetOptions::new().with_keys_only().with_serializable();
                tokio::time::timeout(PROBE_TIMEOUT, kv.get(key, Some(options))).await
            }
        });
        let answers = futures::future::join_all(checks).await;
        for (index, answer) in answers.into_iter().enumerate() {
            match answer {
                Ok(Ok(_)) => live.bring_back(index),
                Ok(Err(e)) if member_failed(&e) => {
                    let down = failure(&e).unwrap_or(Down::Unreachable);
                    live.take_out(index, down, &crate::errors::describe(&e));
                }
                // etcd answered; whatever it said, the member serves.
                Ok(Err(_)) => live.bring_back(index),
                Err(_) => live.take_out(index, Down::Unreachable, "no answer to a probe in time"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_LEADER: u8 = Down::NoLeader as u8;
    const UNREACHABLE: u8 = Down::Unreachable as u8;

    #[test]
    fn the_best_state_wins_and_ties_go_to_the_first_from_start() {
        assert_eq!(choose(&[SERVING, SERVING, SERVING], 1), 1);
        assert_eq!(choose(&[SERVING, UNREACHABLE, SERVING], 1), 2);
        assert_eq!(choose(&[NO_LEADER, UNREACHABLE, NO_LEADER], 1), 2);
        assert_eq!(choose(&[SERVING, UNREACHABLE, NO_LEADER], 1), 0);
        // Every member down alike: whichever `start` names, so a failure must move it on.
        assert_eq!(choose(&[UNREACHABLE, UNREACHABLE, UNREACHABLE], 2), 2);
        assert_eq!(choose(&[UNREACHABLE, UNREACHABLE, UNREACHABLE], 0), 0);
    }

    #[test]
    fn a_quorum_is_reachable_while_a_majority_answers_with_or_without_a_leader() {
        assert!(quorum_reachable(&[SERVING, SERVING, SERVING]));
        // One member killed during an election: the other two are about to elect.
        assert!(quorum_reachable(&[UNREACHABLE, NO_LEADER, NO_LEADER]));
        assert!(quorum_reachable(&[UNREACHABLE, SERVING, NO_LEADER]));
        // Two of three gone: the survivor will never have a leader; fail at once.
        assert!(!quorum_reachable(&[UNREACHABLE, UNREACHABLE, NO_LEADER]));
        assert!(!quorum_reachable(&[
            UNREACHABLE,
            NO_LEADER,
            UNREACHABLE,
            NO_LEADER
        ]));
        assert!(quorum_reachable(&[
            UNREACHABLE,
            NO_LEADER,
            SERVING,
            NO_LEADER,
            UNREACHABLE
        ]));
    }

    #[test]
    fn a_refusal_for_want_of_a_leader_was_never_executed() {
        let no_leader =
            etcd_client::Error::GRpcStatus(tonic::Status::unavailable("etcdserver: no leader"));
        assert!(never_executed(&no_leader));
        let leader_changed = etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
            "etcdserver: leader changed",
        ));
        assert!(!never_executed(&leader_changed));
        let timed_out = etcd_client::Error::GRpcStatus(tonic::Status::unavailable(
            "etcdserver: request timed out",
        ));
        assert!(!never_executed(&timed_out));
    }
}
