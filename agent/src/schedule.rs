//! When the next reconcile is due, and whether it reads the kernel or trusts what the agent
//! last applied. Pure (time comes in as `now`), so the rules are unit tested:
//! - nothing before the first `InitDone` or during a relist;
//! - a change is applied [`Schedule::debounce`] after it arrives (a millisecond or two: just
//!   enough for the events of one etcd response to land together), and later changes of a
//!   burst ride along without pushing it back, so latency stays bounded. Changes that
//!   arrive while an apply runs are coalesced by the loop, which drains the queue before
//!   it looks at the timer again;
//! - the resync tick and every unsettled round make the next round re-read the kernel
//!   (drift repair, fail closed); other rounds plan against the state last applied;
//! - failures back off, and a change cuts a pending backoff short;
//! - a round whose only shortfall is routes waiting for their interface is settled while
//!   link notifications are subscribed ([`settled`]): the interface's arrival wakes the
//!   agent, so polling for it would only re-read the kernel for nothing (a stopped VM
//!   keeps its port allocated for days).

use std::time::Duration;

use tokio::time::Instant;

use crate::state::Reduced;

/// Where the round takes the kernel's state from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// What the last successful apply left (no `nft list` of the whole table).
    Cached,
    /// A fresh read of everything.
    Kernel,
}

#[derive(Debug)]
pub struct Schedule {
    debounce: Duration,
    due: Option<Instant>,
    /// Unsettled rounds in a row.
    attempts: u32,
    /// The next round must re-read the kernel.
    reread: bool,
}

impl Schedule {
    pub fn new(debounce: Duration) -> Schedule {
        Schedule {
            debounce,
            due: None,
            attempts: 0,
            reread: true,
        }
    }

    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// After a watch event was reduced into a state that is now `synced` or not.
    pub fn changed(&mut self, reduced: Reduced, synced: bool, now: Instant) {
        match reduced {
            Reduced::Synced { .. } => self.due = Some(now),
            Reduced::Changed if synced => {
                let soon = now + self.debounce;
                self.due = Some(self.due.map_or(soon, |at| at.min(soon)));
            }
            Reduced::Changed | Reduced::Unchanged => {}
        }
    }

    /// The resync tick: re-read the kernel, now unless something is due anyway.
    pub fn resync(&mut self, synced: bool, now: Instant) {
        self.reread = true;
        if synced && self.due.is_none() {
            self.due = Some(now);
        }
    }

    /// The due time came: whether to reconcile now and from what. A relist that started
    /// after this was scheduled makes it `None`; the relist's `InitDone` schedules again.
    pub fn fire(&mut self, synced: bool) -> Option<Read> {
        self.due = None;
        if !synced {
            return None;
        }
        Some(if std::mem::take(&mut self.reread) {
            Read::Kernel
        } else {
            Read::Cached
        })
    }

    /// A round ended; returns the unsettled rounds in a row (0 when settled).
    pub fn done(&mut self, settled: bool, now: Instant) -> u32 {
        if settled {
            self.attempts = 0;
        } else {
            self.attempts += 1;
            self.reread = true;
            let retry = now + backoff(self.attempts);
            self.due = Some(self.due.map_or(retry, |at| at.min(retry)));
        }
        self.attempts
    }
}

/// Whether a round leaves nothing to retry: it converged, and any routes still waiting
/// for their interface will be woken by a link notification (`links_live`) rather than
/// polled.
pub fn settled(converged: bool, blocked: usize, links_live: bool) -> bool {
    converged && (blocked == 0 || links_live)
}

/// Retry delay after `attempts` unsettled rounds: 200 ms doubling up to 10 s.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(6);
    Duration::from_millis(200 << exp).min(Duration::from_secs(10))
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
        let mut s = Schedule::new(ms(1));
        s.changed(Reduced::Changed, false, t0);
        s.changed(Reduced::Unchanged, false, t0);
        s.resync(false, t0);
        assert_eq!(s.due(), None);
        s.changed(Reduced::Synced { revision: 7 }, true, t0 + ms(5));
        assert_eq!(s.due(), Some(t0 + ms(5)), "in sync: apply at once");
        assert_eq!(s.fire(true), Some(Read::Kernel), "the first round reads");
    }

    #[test]
    fn a_change_is_applied_a_millisecond_later_and_a_burst_does_not_push_it_back() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ms(1));
        s.changed(Reduced::Changed, true, t0);
        assert_eq!(s.due(), Some(t0 + ms(1)), "no 50 ms floor");
        for i in 0..20 {
            s.changed(Reduced::Changed, true, t0 + Duration::from_micros(i * 100));
        }
        assert_eq!(s.due(), Some(t0 + ms(1)), "later events ride along");
        s.changed(Reduced::Unchanged, true, t0);
        assert_eq!(s.due(), Some(t0 + ms(1)));
    }

    #[test]
    fn rounds_after_a_settled_one_trust_the_cache_until_the_resync_tick() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ms(1));
        assert_eq!(s.fire(true), Some(Read::Kernel));
        assert_eq!(s.done(true, t0), 0);
        s.changed(Reduced::Changed, true, t0);
        assert_eq!(s.fire(true), Some(Read::Cached));
        s.done(true, t0);
        s.resync(true, t0 + ms(30_000));
        assert_eq!(s.due(), Some(t0 + ms(30_000)));
        assert_eq!(s.fire(true), Some(Read::Kernel), "the tick re-reads");
        s.done(true, t0);
        s.changed(Reduced::Changed, true, t0);
        assert_eq!(s.fire(true), Some(Read::Cached));
    }

    #[test]
    fn an_unsettled_round_makes_the_next_one_re_read_the_kernel() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ms(1));
        s.fire(true);
        s.done(true, t0);
        s.changed(Reduced::Changed, true, t0);
        assert_eq!(s.fire(true), Some(Read::Cached));
        s.done(false, t0);
        assert_eq!(s.fire(true), Some(Read::Kernel), "fail closed: read again");
    }

    #[test]
    fn a_relist_after_scheduling_cancels_the_round() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ms(1));
        s.changed(Reduced::Changed, true, t0);
        assert_eq!(s.fire(false), None, "the state is partial during a relist");
        assert_eq!(s.due(), None);
    }

    #[test]
    fn failures_back_off_and_a_change_cuts_the_backoff_short() {
        let t0 = Instant::now();
        let mut s = Schedule::new(ms(1));
        assert!(s.fire(true).is_some());
        assert_eq!(s.done(false, t0), 1);
        assert_eq!(s.due(), Some(t0 + ms(200)));
        assert!(s.fire(true).is_some());
        assert_eq!(s.done(false, t0), 2);
        assert_eq!(s.due(), Some(t0 + ms(400)));
        s.changed(Reduced::Changed, true, t0 + ms(10));
        assert_eq!(s.due(), Some(t0 + ms(11)));
        assert!(s.fire(true).is_some());
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
    fn waiting_interfaces_are_polled_only_without_link_notifications() {
        assert!(settled(true, 0, false));
        assert!(settled(true, 3, true), "the link event will come");
        assert!(!settled(true, 3, false), "no notifications: poll");
        assert!(!settled(false, 0, true), "a failed round is always retried");
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
