//! Watch RPCs (`WatchHostStatus`, `WatchEndpoints`, `WatchPolicies`): a server stream that
//! carries a full listing, then a full listing again each time the etcd prefixes behind it
//! change. Full listings rather than changes keep every client simple (print what arrives)
//! and make a reconnect the same as a start.
//!
//! Correctness: the first listing is read only after every prefix's watch has listed at its
//! revision R, and the watch streams every change after R, so no change made after the first
//! listing goes unseen. A change makes a re-list after [`Options::debounce`]; the changes of
//! that window are one re-list (bursts coalesce, and a steady churn still re-lists every
//! window rather than never). A re-list equal to what was last sent is not sent.
//!
//! The stream ends when the client goes away (the task sees its receiver closed), with
//! UNAVAILABLE when the service drains ([`draining`]; tonic's graceful shutdown would
//! otherwise wait for the stream forever), and with the error when a watch breaks or a
//! listing fails: the client reconnects, to this or another replica, and gets a fresh listing.
//!
//! Cost: each open stream holds one etcd watch per prefix and re-lists on change; a watch
//! is meant for operators and dashboards, not for every host.

use std::future::Future;
use std::time::Duration;

use romana_store::{Store, WatchEvent};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::{store_status, Shutdown};

/// What a watch RPC returns to tonic.
pub type Listings<T> = ReceiverStream<Result<T, Status>>;

/// Whether the service is shutting down; cheap to clone into every stream.
#[derive(Clone, Debug)]
pub struct Draining(watch::Receiver<bool>);

/// Wraps a service's shutdown trigger: the returned one resolves when `shutdown` does, and
/// marks [`Draining`] first, so that open watch streams end and the drain can finish.
pub fn draining(shutdown: Shutdown) -> (Draining, Shutdown) {
    let (tx, rx) = watch::channel(false);
    let wrapped: Shutdown = Box::pin(async move {
        shutdown.await;
        tx.send_replace(true);
    });
    (Draining(rx), wrapped)
}

impl Draining {
    /// Resolves once the service drains (or its server is gone).
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}

/// Which changes are minor (`minor(sent, new)`, e.g. heartbeats), and how often at most one
/// is sent.
pub type MinorChanges<T> = (fn(&T, &T) -> bool, Duration);

/// How a watch re-lists.
#[derive(Clone, Copy, Debug)]
pub struct Options<T> {
    /// How long after a change the re-list happens; changes meanwhile join it.
    pub debounce: Duration,
    /// A change `minor(sent, new)` calls minor (heartbeats) is sent at most once per the
    /// duration, counted from the last listing sent.
    pub minor: Option<MinorChanges<T>>,
}

impl<T> Default for Options<T> {
    fn default() -> Self {
        Options {
            debounce: Duration::from_millis(100),
            minor: None,
        }
    }
}

/// What the prefix watches tell the loop.
#[derive(Debug)]
enum Signal {
    /// A watch has listed (the first time: it is in place; later: it re-listed after a
    /// compaction, which may hide changes).
    Listed,
    Changed,
    Failed(Status),
}

/// Starts the watch of `prefixes` and returns its stream; `list` reads the listing.
pub fn stream<T, L, Fut>(
    store: &Store,
    prefixes: Vec<String>,
    draining: Draining,
    options: Options<T>,
    list: L,
) -> Listings<T>
where
    T: PartialEq + Clone + Send + 'static,
    L: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, Status>> + Send,
{
    let (tx, rx) = mpsc::channel(2);
    let (signals_tx, signals) = mpsc::channel(16);
    let mut watches = tokio::task::JoinSet::new();
    for prefix in &prefixes {
        watches.spawn(forward(store.clone(), prefix.clone(), signals_tx.clone()));
    }
    tokio::spawn(async move {
        run(tx, signals, prefixes.len(), draining, options, list).await;
        // Dropping the set aborts the prefix watches with the stream.
        drop(watches);
    });
    ReceiverStream::new(rx)
}

async fn forward(store: Store, prefix: String, signals: mpsc::Sender<Signal>) {
    let mut watcher = store.watch(&prefix);
    loop {
        let signal = match watcher.next().await {
            Ok(WatchEvent::Init | WatchEvent::InitApply(_)) => continue,
            Ok(WatchEvent::InitDone { .. }) => Signal::Listed,
            Ok(WatchEvent::Apply(_) | WatchEvent::Delete { .. }) => {
                // A full queue already holds a signal that will re-list, which reads this
                // change too.
                let _ = signals.try_send(Signal::Changed);
                continue;
            }
            Err(e) => {
                let _ = signals.send(Signal::Failed(store_status(e))).await;
                return;
            }
        };
        if signals.send(signal).await.is_err() {
            return;
        }
    }
}

/// The loop of one stream (see the module docs); returns when the stream ends.
async fn run<T, L, Fut>(
    tx: mpsc::Sender<Result<T, Status>>,
    mut signals: mpsc::Receiver<Signal>,
    watches: usize,
    mut draining: Draining,
    options: Options<T>,
    mut list: L,
) where
    T: PartialEq + Clone,
    L: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let shutting_down = || Status::unavailable("the service is shutting down; reconnect");
    // Prefix watches that have not read their whole prefix yet: the first listing waits.
    let mut unlisted = watches;
    // What the client got last, and when; none before the first listing.
    let mut sent: Option<(T, Instant)> = None;
    // When to list again: all watches listed, a change came, or a minor change waits.
    let mut due = (watches == 0).then(Instant::now);
    loop {
        tokio::select! {
            biased;
            _ = draining.wait() => {
                let _ = tx.send(Err(shutting_down())).await;
                return;
            }
            _ = tx.closed() => return,
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                due = None;
                let Some(listing) = listed(&tx, list().await).await else {
                    return;
                };
                if let Some((last, at)) = &sent {
                    if listing == *last {
                        continue;
                    }
                    if let Some((minor, every)) = options.minor {
                        let next = *at + every;
                        if minor(last, &listing) && Instant::now() < next {
                            // Sent when its time comes, read afresh then.
                            due = Some(next);
                            continue;
                        }
                    }
                }
                if tx.send(Ok(listing.clone())).await.is_err() {
                    return;
                }
                sent = Some((listing, Instant::now()));
            }
            signal = signals.recv() => match signal {
                Some(Signal::Listed) if sent.is_none() && unlisted > 0 => {
                    unlisted -= 1;
                    if unlisted == 0 {
                        due = Some(Instant::now());
                    }
                }
                // Before the first listing: that listing reads it.
                Some(Signal::Listed | Signal::Changed) if sent.is_none() => {}
                Some(Signal::Listed | Signal::Changed) => {
                    let soon = Instant::now() + options.debounce;
                    // A pending minor send later than `soon` is brought forward: a real
                    // change may be among these.
                    due = Some(due.map_or(soon, |d| d.min(soon)));
                }
                Some(Signal::Failed(status)) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                None => return,
            },
        }
    }
}

/// The listing, or `None` once its failure has been sent: the stream then ends with it.
async fn listed<T>(tx: &mpsc::Sender<Result<T, Status>>, result: Result<T, Status>) -> Option<T> {
    match result {
        Ok(listing) => Some(listing),
        Err(status) => {
            let _ = tx.send(Err(status)).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    /// The loop with a listing that is whatever `state` holds, counting the reads.
    struct Harness {
        rx: mpsc::Receiver<Result<u32, Status>>,
        signals: mpsc::Sender<Signal>,
        state: Arc<AtomicU32>,
        reads: Arc<AtomicU32>,
        /// Held, never run: dropping it would count as the server being gone.
        _shutdown: Shutdown,
        task: tokio::task::JoinHandle<()>,
    }

    fn mk_harness(watches: usize, options: Options<u32>) -> Harness {
        let (tx, rx) = mpsc::channel(2);
        let (signals, signals_rx) = mpsc::channel(16);
        let (state, reads) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let (drain, shutdown) = draining(Box::pin(std::future::pending()));
        let (s, r) = (state.clone(), reads.clone());
        let task = tokio::spawn(run(tx, signals_rx, watches, drain, options, move || {
            let (s, r) = (s.clone(), r.clone());
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok(s.load(Ordering::SeqCst))
            }
        }));
        Harness {
            rx,
            signals,
            state,
            reads,
            _shutdown: shutdown,
            task,
        }
    }

    impl Harness {
        async fn signal(&self, s: Signal) {
            self.signals.send(s).await.unwrap();
        }

        fn set(&self, v: u32) {
            self.state.store(v, Ordering::SeqCst);
        }

        fn reads(&self) -> u32 {
            self.reads.load(Ordering::SeqCst)
        }

        /// The next item, or None if none arrives within `within` (paused time).
        async fn next(&mut self, within: Duration) -> Option<Result<u32, Status>> {
            tokio::time::timeout(within, self.rx.recv())
                .await
                .ok()
                .flatten()
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test(start_paused = true)]
    async fn first_listing_waits_for_every_watch_then_changes_coalesce() {
        let mut h = mk_harness(2, Options::default());
        h.signal(Signal::Changed).await;
        h.signal(Signal::Listed).await;
        assert!(
            h.next(MS * 500).await.is_none(),
            "one watch is not in place yet"
        );
        h.signal(Signal::Listed).await;
        assert_eq!(h.next(MS * 10).await.unwrap().unwrap(), 0);
        // A burst inside one window: one read, one listing.
        h.set(3);
        for _ in 0..5 {
            h.signal(Signal::Changed).await;
            tokio::time::sleep(MS * 10).await;
        }
        assert_eq!(h.next(MS * 200).await.unwrap().unwrap(), 3);
        assert_eq!(h.reads(), 2);
        // A change that leaves the listing as it was sends nothing.
        h.signal(Signal::Changed).await;
        assert!(h.next(MS * 500).await.is_none());
        assert_eq!(h.reads(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn minor_changes_wait_for_their_interval_and_major_ones_do_not() {
        let minor: fn(&u32, &u32) -> bool = |a, b| a / 10 == b / 10;
        let options = Options {
            debounce: MS * 100,
            minor: Some((minor, Duration::from_secs(30))),
        };
        let mut h = mk_harness(1, options);
        h.signal(Signal::Listed).await;
        assert_eq!(h.next(MS * 10).await.unwrap().unwrap(), 0);
        h.set(1);
        h.signal(Signal::Changed).await;
        assert!(
            h.next(Duration::from_secs(20)).await.is_none(),
            "minor: held"
        );
        assert_eq!(h.next(Duration::from_secs(11)).await.unwrap().unwrap(), 1);
        h.set(25);
        h.signal(Signal::Changed).await;
        assert_eq!(
            h.next(MS * 150).await.unwrap().unwrap(),
            25,
            "major: at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_watch_ends_the_stream_with_its_error() {
        let mut h = mk_harness(1, Options::default());
        h.signal(Signal::Listed).await;
        h.next(MS * 10).await.unwrap().unwrap();
        h.signal(Signal::Failed(Status::unavailable("etcd gone")))
            .await;
        let err = h.next(MS * 10).await.unwrap().unwrap_err();
        assert_eq!(err.message(), "etcd gone");
        assert!(h.next(MS * 10).await.is_none(), "nothing after the error");
        h.task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_ends_when_the_client_goes_away() {
        let mut h = mk_harness(1, Options::default());
        h.signal(Signal::Listed).await;
        h.next(MS * 10).await.unwrap().unwrap();
        let task = std::mem::replace(&mut h.task, tokio::spawn(async {}));
        drop(h);
        tokio::time::timeout(MS * 10, task).await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn draining_ends_the_stream_with_unavailable() {
        let (tx, mut rx) = mpsc::channel(2);
        let (signals, signals_rx) = mpsc::channel(16);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (drain, shutdown) = draining(Box::pin(async move {
            let _ = stopped.await;
        }));
        let task = tokio::spawn(run(
            tx,
            signals_rx,
            1,
            drain,
            Options::default(),
            || async { Ok::<u32, Status>(7) },
        ));
        signals.send(Signal::Listed).await.unwrap();
        assert_eq!(rx.recv().await.unwrap().unwrap(), 7);
        let serve = tokio::spawn(shutdown);
        stop.send(()).unwrap();
        serve.await.unwrap();
        let err = rx.recv().await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable);
        tokio::time::timeout(MS * 10, task).await.unwrap().unwrap();
    }
}
