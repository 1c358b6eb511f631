//! The store handle: typed single-key operations, paginated lists and compaction. Every
//! conditional write goes through [`crate::Txn`], so "create", "update" and "delete if" are
//! one etcd round trip each and report conflicts the same way.

use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, CompactionOptions, ConnectOptions, GetOptions, KeyValue};
use romana_core::ServiceRecord;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::errors::{is_compacted, is_transient, too_large, StoreError};
use crate::keys::{Key, Keys, Prefix};
use crate::lease::Registration;
use crate::members::{failure, member_failed, never_executed, Members, Pinned};
use crate::txn::Txn;
use crate::watch::{Kv, Watcher};

mod codec;
mod tls;
pub(crate) use codec::{decode, encode, header_revision, prefix_end, versioned};
pub use tls::EtcdTls;
#[cfg(feature = "clap")]
pub use tls::EtcdTlsArgs;

/// Keys per page of a listing. A page is one gRPC message, at most 4 MiB (tonic's default
/// limit); 5000 endpoint records are ~1.5 MB, and a page of bigger records that does not
/// fit is read again in halves ([`crate::errors::too_large`]). Fewer, larger pages: an agent's cold start
/// lists ~3 keys per endpoint, and at 500 a page the round trips were half of it.
const PAGE_SIZE: i64 = 5000;
/// A list restarts from scratch when compaction overtakes it between pages; this bounds that.
const LIST_ATTEMPTS: usize = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longer than etcd's own request timeout (5 s + election) so that etcd, not we, reports a
/// stuck proposal, but short enough that no call hangs forever on a silent peer. With several
/// members, probes abandon calls on a silent member much sooner (see `members`).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Before a call goes to the next member after an election-time error from etcd.
const CLUSTER_BUSY_PAUSE: Duration = Duration::from_millis(100);
/// How long a call that may be resent waits for a reachable quorum to elect a leader. etcd's
/// election timeout is 1 s; on a loaded machine an election can take a few, and a call that
/// waits this long is better than one the caller must retry.
const ELECTION_WAIT: Duration = Duration::from_secs(8);
/// HTTP/2 pings while a stream is open: a watch on a dead network breaks instead of going
/// silent. etcd refuses pings closer than 5 s apart (`--grpc-keepalive-min-time`).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on etcd under one key layout. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Store {
    members: Arc<Members>,
    keys: Keys,
    endpoints: Arc<str>,
    /// The highest store revision any answer carried (see [`Store::seen_revision`]).
    seen: Arc<AtomicI64>,
    /// The lease endpoint tombstones are put under ([`crate::endpoints`]).
    pub(crate) tombstones: Arc<tokio::sync::Mutex<Option<crate::endpoints::TombstoneLease>>>,
    /// Grouped transactions waiting to be sent ([`crate::group`]).
    pub(crate) group: Arc<std::sync::Mutex<crate::group::Queue>>,
}

/// A decoded value with the revisions needed for a later conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    pub key: String,
    pub value: T,
    pub mod_revision: i64,
    pub create_revision: i64,
}

impl<T> Versioned<T> {
    /// The last segment of the key: the name or id an index entry stands for.
    pub fn key_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or_default()
    }
}

/// Whether a call may be sent again to another member after a failure that leaves its
/// outcome unknown. Reads may; writes only when etcd provably did not carry them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resend {
    Always,
    IfNeverExecuted,
}

/// Every value under a prefix as of one store revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing<T> {
    pub items: Vec<Versioned<T>>,
    pub revision: i64,
}

// === impl Store ===

impl Store {
    /// Builds the client without contacting etcd: a service may start before etcd does, and
    /// the first call then fails with a retryable [`StoreError::Unavailable`] after at most
    /// the connect timeout, rather than hanging.
    pub async fn connect(endpoints: &[String], keys: Keys) -> Result<Store, StoreError> {
        Store::connect_with_tls(endpoints, keys, None).await
    }

    /// Like [`Store::connect`], over TLS to `https://` endpoints when `tls` is given.
    pub async fn connect_with_tls(
        endpoints: &[String],
        keys: Keys,
        tls: Option<&EtcdTls>,
    ) -> Result<Store, StoreError> {
        let joined = endpoints.join(",");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            // A member cut off from the quorum would otherwise serve a watch that never
            // delivers again; with this etcd cancels it and the watcher moves on.
            .with_require_leader(true);
        if let Some(tls) = tls {
            options = options.with_tls(tls.client_options());
        }
        if endpoints.is_empty() {
            return Err(StoreError::Unavailable {
                endpoints: String::new(),
                detail: "no etcd endpoint was given".into(),
            });
        }
        let mut clients = Vec::with_capacity(endpoints.len());
        for url in endpoints {
            let client = Client::connect([url], Some(options.clone()))
                .await
                .map_err(|e| StoreError::from_etcd("connect", url, &joined, e))?;
            clients.push((url.clone(), client));
        }
        Ok(Store {
            members: Members::new(clients, keys.prefix().to_string()),
            keys,
            endpoints: joined.into(),
            seen: Arc::new(AtomicI64::new(0)),
            tombstones: Arc::default(),
            group: Arc::default(),
        })
    }

    /// The highest store revision an answer to this store (or a clone of it) has carried. A
    /// write sent now may still be carried out much later (a member that got it froze, the
    /// client gave up), but never before this revision: what a transaction built now
    /// compares against it holds for its late execution too.
    pub fn seen_revision(&self) -> i64 {
        self.seen.load(Ordering::SeqCst)
    }

    pub(crate) fn saw(&self, revision: i64) {
        self.seen.fetch_max(revision, Ordering::SeqCst);
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The URL of the etcd member this store sends its calls to now.
    pub fn etcd_member(&self) -> String {
        self.members.current_url()
    }

    /// The member the next call should go to.
    pub(crate) fn pick(&self) -> Pinned {
        self.members.pick()
    }

    /// Reports a failed call on `pinned`'s member; takes the member out when the error says
    /// the member, not the cluster, is the problem.
    pub(crate) fn failed_on(&self, pinned: &Pinned, e: &etcd_client::Error) {
        if let Some(down) = failure(e) {
            self.members
                .take_out(pinned.index, down, &crate::errors::describe(e));
        }
    }

    /// Runs one unary call on a member, failing over as `resend` allows: a call whose member
    /// fails (or is taken out while the call waits) is sent to the next member when that
    /// cannot do it twice; otherwise it fails as [`StoreError::Unavailable`] and the next
    /// call goes elsewhere. After one try on each member, a call that may be resent goes on
    /// trying for up to [`ELECTION_WAIT`] while a quorum of members answers: an election
    /// ends within it, and the caller sees nothing of it.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        key: &str,
        resend: Resend,
        mut call: F,
    ) -> Result<T, etcd_client::Error>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let started = tokio::time::Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let pinned = self.pick();
            let outcome = tokio::select! {
                outcome = call(pinned.client.clone()) => outcome,
                _ = pinned.taken_out() => Err(etcd_client::Error::GRpcStatus(
                    tonic::Status::unavailable(format!(
                        "etcd member {} stopped answering during the call", pinned.url
                    )),
                )),
            };
            let e = match outcome {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            self.failed_on(&pinned, &e);
            let resendable = match resend {
                Resend::Always => is_transient(&e),
                Resend::IfNeverExecuted => never_executed(&e),
            };
            let first_round = attempts < self.members.len();
            let waiting = !first_round
                && started.elapsed() < ELECTION_WAIT
                && self.members.quorum_reachable();
            if !resendable || !(first_round || waiting) {
                return Err(e);
            }
            if waiting || !member_failed(&e) {
                // The cluster, not the member, is busy (an election): give it a moment.
                tokio::time::sleep(CLUSTER_BUSY_PAUSE).await;
            }
            tracing::debug!(
                op,
                key,
                member = %pinned.url,
                attempts,
                error = %crate::errors::describe(&e),
                "etcd call failed on one member; sending it to the next"
            );
        }
    }

    pub(crate) fn endpoints(&self) -> &str {
        &self.endpoints
    }

    pub(crate) fn err(&self, op: &'static str, key: &str, e: etcd_client::Error) -> StoreError {
        StoreError::from_etcd(op, key, &self.endpoints, e)
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        key: &Key<T>,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        self.get_with(key, None).await
    }

    /// [`Store::get`] answered by the member asked, without confirming with the leader that
    /// it is current: cheaper under write load, but possibly behind. Only for reads whose
    /// result a transaction re-checks (a `mod_revision` compare), and never to conclude
    /// that something does not exist.
    pub async fn get_maybe_stale<T: DeserializeOwned>(
        &self,
        key: &Key<T>,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        self.get_with(key, Some(GetOptions::new().with_serializable()))
            .await
    }

    async fn get_with<T: DeserializeOwned>(
        &self,
        key: &Key<T>,
        options: Option<GetOptions>,
    ) -> Result<Option<Versioned<T>>, StoreError> {
        let resp = self
            .run("get", key.path(), Resend::Always, |c| {
                let options = options.clone();
                async move { c.kv_client().get(key.path(), options).await }
            })
            .await
            .map_err(|e| self.err("get", key.path(), e))?;
        self.saw(header_revision(resp.header()));
        resp.kvs().first().map(versioned).transpose()
    }

    /// Reads a whole prefix page by page, every page at the revision of the first, so the
    /// result is one consistent snapshot whatever its size.
    pub async fn list<T: DeserializeOwned>(
        &self,
        prefix: &Prefix<T>,
    ) -> Result<Listing<T>, StoreError> {
        let (kvs, revision) = self.list_at_one_revision(prefix.path()).await?;
        let items = kvs.iter().map(versioned).collect::<Result<_, _>>()?;
        Ok(Listing { items, revision })
    }

    /// Reads the keys in `[start, end)` as one snapshot, like a prefix list.
    pub(crate) async fn list_raw_range(
        &self,
        start: &str,
        end: &[u8],
    ) -> Result<(Vec<Kv>, i64), StoreError> {
        let (kvs, revision) = self.list_range_at_one_revision(start, end).await?;
        Ok((kvs.into_iter().map(Kv::from).collect(), revision))
    }

    async fn list_at_one_revision(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64), StoreError> {
        self.list_range_at_one_revision(prefix, &prefix_end(prefix.as_bytes()))
            .await
    }

    async fn list_range_at_one_revision(
        &self,
        prefix: &str,
        end: &[u8],
    ) -> Result<(Vec<KeyValue>, i64), StoreError> {
        let mut attempt = 1;
        loop {
            match self.try_list(prefix, end).await {
                Err(StoreError::Compacted { requested, .. }) if attempt < LIST_ATTEMPTS => {
                    tracing::debug!(
                        prefix,
                        requested,
                        "compaction overtook a paginated list; listing again"
                    );
                    attempt += 1;
                }
                listed => return listed,
            }
        }
    }

    async fn try_list(&self, prefix: &str, end: &[u8]) -> Result<(Vec<KeyValue>, i64), StoreError> {
        let end = end.to_vec();
        let mut start = prefix.as_bytes().to_vec();
        // 0 (the newest) for the first page, then the first page's revision.
        let mut revision = 0;
        let mut items = Vec::new();
        let mut page_size = PAGE_SIZE;
        loop {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(page_size)
                .with_revision(revision);
            let page_start = &start;
            let resp = self
                .run("list", prefix, Resend::Always, |c| {
                    let options = options.clone();
                    async move { c.kv_client().get(page_start.clone(), Some(options)).await }
                })
                .await;
            let mut resp = match resp {
                Err(e) if page_size > 1 && too_large(&e) => {
                    page_size = (page_size / 2).max(1);
                    tracing::debug!(
                        prefix,
                        page_size,
                        "a page was too large; reading it in halves"
                    );
                    continue;
                }
                other => other,
            }
            .map_err(|e| {
                if revision > 0 && is_compacted(&e) {
                    StoreError::Compacted {
                        requested: revision,
                        compacted: 0,
                    }
                } else {
                    self.err("list", prefix, e)
                }
            })?;
            if revision == 0 {
                revision = header_revision(resp.header());
                self.saw(revision);
            }
            let more = resp.more();
            let page = resp.take_kvs();
            let Some(last) = page.last() else {
                return Ok((items, revision));
            };
            // The smallest key after `last`.
            start = last.key().to_vec();
            start.push(0);
            items.extend(page);
            if !more {
                return Ok((items, revision));
            }
        }
    }

    pub async fn put<T: Serialize>(&self, key: &Key<T>, value: &T) -> Result<i64, StoreError> {
        let bytes = encode(key.path(), value)?;
        let resp = self
            .run("put", key.path(), Resend::IfNeverExecuted, |c| {
                let bytes = bytes.clone();
                async move { c.kv_client().put(key.path(), bytes, None).await }
            })
            .await
            .map_err(|e| self.err("put", key.path(), e))?;
        Ok(header_revision(resp.header()))
    }

    /// `true` if the key existed.
    pub async fn delete<T>(&self, key: &Key<T>) -> Result<bool, StoreError> {
        let resp = self
            .run(
                "delete",
                key.path(),
                Resend::IfNeverExecuted,
                |c| async move { c.kv_client().delete(key.path(), None).await },
            )
            .await
            .map_err(|e| self.err("delete", key.path(), e))?;
        Ok(resp.deleted() > 0)
    }

    /// Writes only if the key is absent; otherwise [`StoreError::Conflict`].
    pub async fn create<T: Serialize>(&self, key: &Key<T>, value: &T) -> Result<i64, StoreError> {
        self.txn().create(key, value).commit().await
    }

    /// Writes only if the key is still at `mod_revision`; otherwise [`StoreError::Conflict`].
    pub async fn update<T: Serialize>(
        &self,
        key: &Key<T>,
        value: &T,
        mod_revision: i64,
    ) -> Result<i64, StoreError> {
        self.txn().update(key, value, mod_revision).commit().await
    }

    /// Deletes only if the key is still at `mod_revision`; otherwise [`StoreError::Conflict`].
    pub async fn delete_if<T>(&self, key: &Key<T>, mod_revision: i64) -> Result<(), StoreError> {
        self.txn()
            .delete(key, mod_revision)
            .commit()
            .await
            .map(drop)
    }

    pub fn txn(&self) -> Txn {
        Txn::new(self.clone())
    }

    /// The current store revision.
    pub async fn revision(&self) -> Result<i64, StoreError> {
        let prefix = self.keys.prefix();
        let resp = self
            .run("revision", prefix, Resend::Always, |c| async move {
                let options = GetOptions::new().with_count_only();
                c.kv_client().get(prefix, Some(options)).await
            })
            .await
            .map_err(|e| self.err("revision", self.keys.prefix(), e))?;
        Ok(header_revision(resp.header()))
    }

    /// Discards history up to `revision` and waits until it is physically gone. Compacting
    /// an already compacted revision succeeds: the history is gone either way.
    pub async fn compact(&self, revision: i64) -> Result<(), StoreError> {
        let what = format!("revision {revision}");
        // Compacting twice is harmless, so a compaction may go to another member.
        match self
            .run("compact", &what, Resend::Always, |c| async move {
                let options = CompactionOptions::new().with_physical();
                c.kv_client().compact(revision, Some(options)).await
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_compacted(&e) => Ok(()),
            Err(e) => Err(self.err("compact", &what, e)),
        }
    }

    /// Watches every key starting with `prefix` (normally `keys().prefix()`).
    pub fn watch(&self, prefix: &str) -> Watcher {
        let end = prefix_end(prefix.as_bytes());
        Watcher::new(self.clone(), prefix.to_string(), end)
    }

    /// A watcher of the keys in `[start, end)` (a list and watch of that range, with the
    /// same events and guarantees as [`Store::watch`]). For a consumer that needs several
    /// adjacent rows of the layout but not the ones around them: one stream keeps the
    /// revisions of a transaction together, where a watcher per prefix would not.
    pub fn watch_range(&self, start: &str, end: &str) -> Watcher {
        Watcher::new(self.clone(), start.to_string(), end.as_bytes().to_vec())
    }

    /// Registers a service instance under a lease kept alive until revoked or dropped.
    pub async fn register(
        &self,
        record: ServiceRecord,
        ttl_secs: i64,
    ) -> Result<Registration, StoreError> {
        Registration::start(self.clone(), record, ttl_secs).await
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.keys.prefix())
            .finish()
    }
}
