//! The one watch loop of romana-rs, shaped like kube-runtime's watcher: list the prefix at
//! revision R and hand it over as `Init, InitApply.., InitDone{R}`, then stream changes from
//! R+1. A consumer rebuilds its state on every `Init` and applies the rest incrementally.
//!
//! What has bitten us (etcd 3.4.23 through etcd-client 0.21):
//! - Compaction never arrives as an error on a watch: a `created` response, then one with
//!   `canceled = true` and `compact_revision > 0`. That, and only that, triggers a re-list.
//! - etcd dying mid-watch ends the stream with status `Unknown` (h2 protocol error), or just
//!   ends it; both are a broken watch, resumed from the last delivered revision + 1.
//! - The events of one revision (a transaction) arrive in one response; the queue is drained
//!   before the stream is read again, so a resume never splits a revision.
//! - Backoff is the caller's: `next()` returns the error once and retries on the next call.

use std::collections::VecDeque;

use etcd_client::{EventType, KeyValue, WatchOptions, WatchResponse, WatchStream};
use serde::de::DeserializeOwned;

use crate::errors::StoreError;
use crate::members::Pinned;
use crate::store::{decode, Store};

/// A raw key and value seen by a watch; decode it once its [`crate::KeyRef`] is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A (re)list starts: forget everything known under the prefix.
    Init,
    /// One key of the listing.
    InitApply(Kv),
    /// The listing is complete and consistent as of `revision`.
    InitDone { revision: i64 },
    /// A key was created or changed.
    Apply(Kv),
    /// A key was deleted (`mod_revision` is the revision of the deletion).
    Delete { key: String, mod_revision: i64 },
}

/// See the module docs. Not `Clone`: each consumer owns its position in the history.
pub struct Watcher {
    store: Store,
    /// The first key watched (a prefix, or the start of a range); also its name in errors.
    prefix: String,
    /// The first key after the watched range.
    end: Vec<u8>,
    state: State,
    /// Events produced but not yet handed out; always drained before the stream is read.
    pending: VecDeque<WatchEvent>,
    last_revision: i64,
}

enum State {
    /// Nothing listed yet, or the resume revision was compacted.
    Unlisted,
    /// Everything up to `last_revision` was handed out; no stream is open.
    Disconnected,
    /// A stream open on one member, abandoned when that member is taken out.
    Watching(Box<WatchStream>, Box<Pinned>),
}

// === impl Kv ===

impl Kv {
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, StoreError> {
        decode(&self.key, &self.value)
    }
}

impl From<KeyValue> for Kv {
    fn from(kv: KeyValue) -> Kv {
        let mod_revision = kv.mod_revision();
        let (key, value) = kv.into_key_value();
        Kv {
            key: String::from_utf8_lossy(&key).into_owned(),
            value,
            mod_revision,
        }
    }
}

// === impl Watcher ===

impl Watcher {
    pub(crate) fn new(store: Store, prefix: String, end: Vec<u8>) -> Watcher {
        Watcher {
            store,
            prefix,
            end,
            state: State::Unlisted,
            pending: VecDeque::new(),
            last_revision: 0,
        }
    }

    /// The revision of the last event handed out (the listing's revision after `InitDone`).
    pub fn last_revision(&self) -> i64 {
        self.last_revision
    }

    /// Next event. First call: list the prefix at revision R and emit Init, InitApply..,
    /// InitDone{R}; then Apply/Delete from the watch started at R+1. When the watch breaks
    /// (etcd restart, network), this returns a retryable error once, and the following call
    /// resumes from the last delivered revision + 1: nothing is repeated, nothing lost. When
    /// that revision has been compacted it lists again and emits Init..InitDone (the resync
    /// marker) so consumers rebuild.
    pub async fn next(&mut self) -> Result<WatchEvent, StoreError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.last_revision = match &event {
                    WatchEvent::InitDone { revision } => *revision,
                    WatchEvent::Apply(kv) => kv.mod_revision,
                    WatchEvent::Delete { mod_revision, .. } => *mod_revision,
                    WatchEvent::Init | WatchEvent::InitApply(_) => self.last_revision,
                };
                return Ok(event);
            }
            self.step().await?;
        }
    }

    /// Moves the state machine once; queues events or returns the error to hand out.
    async fn step(&mut self) -> Result<(), StoreError> {
        match std::mem::replace(&mut self.state, State::Disconnected) {
            State::Unlisted => {
                self.state = State::Unlisted;
                let (kvs, revision) = self.store.list_raw_range(&self.prefix, &self.end).await?;
                self.pending.push_back(WatchEvent::Init);
                self.pending
                    .extend(kvs.into_iter().map(WatchEvent::InitApply));
                self.pending.push_back(WatchEvent::InitDone { revision });
                self.state = State::Disconnected;
            }
            State::Disconnected => {
                let options = WatchOptions::new()
                    .with_range(self.end.clone())
                    .with_start_revision(self.last_revision + 1);
                let pinned = self.store.pick();
                let mut client = pinned.client.watch_client();
                let opened = tokio::select! {
                    opened = client.watch(self.prefix.as_str(), Some(options)) => opened,
                    _ = pinned.taken_out() => {
                        return Err(self.broken(format!(
                            "etcd member {} stopped answering", pinned.url
                        )));
                    }
                };
                let stream = opened.map_err(|e| {
                    self.store.failed_on(&pinned, &e);
                    self.store.err("watch", &self.prefix, e)
                })?;
                self.state = State::Watching(Box::new(stream), Box::new(pinned));
            }
            State::Watching(mut stream, pinned) => {
                let message = tokio::select! {
                    message = stream.message() => message,
                    _ = pinned.taken_out() => {
                        return Err(self.broken(format!(
                            "etcd member {} stopped answering", pinned.url
                        )));
                    }
                };
                let resp = match message {
                    Ok(Some(resp)) => resp,
                    Ok(None) => return Err(self.broken("the stream was closed".to_string())),
                    Err(e) => {
                        self.store.failed_on(&pinned, &e);
                        return Err(self.store.err("watch", &self.prefix, e));
                    }
                };
                if resp.canceled() {
                    if resp.compact_revision() > 0 {
                        tracing::info!(
                            prefix = %self.prefix,
                            resume = self.last_revision + 1,
                            compacted = resp.compact_revision(),
                            "watch resume revision was compacted; listing again"
                        );
                        self.state = State::Unlisted;
                        return Ok(());
                    }
                    return Err(
                        self.broken(format!("etcd canceled the watch: {}", resp.cancel_reason()))
                    );
                }
                self.queue(&resp);
                self.state = State::Watching(stream, pinned);
            }
        }
        Ok(())
    }

    fn queue(&mut self, resp: &WatchResponse) {
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            // etcd never replays before the start revision; this guards the promise anyway.
            if kv.mod_revision() <= self.last_revision {
                continue;
            }
            self.pending.push_back(match event.event_type() {
                EventType::Put => WatchEvent::Apply(Kv::from(kv.clone())),
                EventType::Delete => WatchEvent::Delete {
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    mod_revision: kv.mod_revision(),
                },
            });
        }
    }

    fn broken(&self, why: String) -> StoreError {
        StoreError::Unavailable {
            endpoints: self.store.endpoints().to_string(),
            detail: format!("watch {}: {why}", self.prefix),
        }
    }
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Unlisted => "unlisted",
            State::Disconnected => "disconnected",
            State::Watching(..) => "watching",
        };
        f.debug_struct("Watcher")
            .field("prefix", &self.prefix)
            .field("state", &state)
            .field("pending", &self.pending.len())
            .field("last_revision", &self.last_revision)
            .finish()
    }
}
