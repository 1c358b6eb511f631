//! Service registration under a lease: the record lives as long as the process keeps the
//! lease alive, so a crashed replica disappears from the registry by itself after the TTL.
//!
//! What has bitten us:
//! - A lease can be lost while we still run (etcd down longer than the TTL, a revoke by an
//!   operator). Keeping an unknown lease alive fails forever, so a lost lease is replaced:
//!   grant a new one, then put the record again under it.
//! - The lease id is published before the put, so that `revoke` racing a re-grant revokes
//!   the lease the record may end up under, never an older one.
//! - A keep-alive stream can go silent instead of failing; every answer is awaited with a
//!   deadline.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::PutOptions;
use romana_core::ServiceRecord;
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

use crate::errors::StoreError;
use crate::members::Pinned;
use crate::store::{encode, Resend, Store};

const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A registered service record. Dropping it stops the keep-alive (the record then expires
/// after the TTL); [`Registration::revoke`] removes it at once.
pub struct Registration {
    store: Store,
    key: String,
    lease: Arc<AtomicI64>,
    task: JoinHandle<()>,
}

/// Why keeping a lease alive stopped.
enum Lost {
    /// etcd no longer knows the lease: a new one is needed.
    Expired,
    /// The stream failed; the lease may still be alive.
    Broken(String),
}

// === impl Store ===

impl Store {
    /// A new lease of `ttl_secs`, for the keys `what` names (in errors). A lease granted
    /// twice (a resend) costs nothing: the unused one expires after the TTL.
    pub(crate) async fn grant_lease(&self, ttl_secs: i64, what: &str) -> Result<i64, StoreError> {
        let granted = self
            .run("lease grant", what, Resend::Always, |c| async move {
                c.lease_client().grant(ttl_secs, None).await
            })
            .await
            .map_err(|e| self.err("lease grant", what, e))?;
        Ok(granted.id())
    }
}

// === impl Registration ===

impl Registration {
    pub(crate) async fn start(
        store: Store,
        record: ServiceRecord,
        ttl_secs: i64,
    ) -> Result<Registration, StoreError> {
        let key = store
            .keys()
            .service(&record.kind, &record.instance)
            .path()
            .to_string();
        let value = encode(&key, &record)?;
        let lease = Arc::new(AtomicI64::new(0));
        grant_and_put(&store, &key, &value, ttl_secs, &lease).await?;
        let task = tokio::spawn(keep_alive(
            store.clone(),
            key.clone(),
            value,
            ttl_secs,
            lease.clone(),
        ));
        Ok(Registration {
            store,
            key,
            lease,
            task,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Stops the keep-alive and revokes the lease, which deletes the record.
    pub async fn revoke(self) -> Result<(), StoreError> {
        self.task.abort();
        let id = self.lease.load(Ordering::SeqCst);
        let revoked = self
            .store
            .run("lease revoke", &self.key, Resend::Always, |c| async move {
                c.lease_client().revoke(id).await
            })
            .await;
        match revoked {
            Ok(_) => Ok(()),
            // Already expired: the record is gone, which is what revoke is for.
            Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(e) => Err(self.store.err("lease revoke", &self.key, e)),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("key", &self.key)
            .field("lease", &self.lease.load(Ordering::Relaxed))
            .finish()
    }
}

async fn grant_and_put(
    store: &Store,
    key: &str,
    value: &[u8],
    ttl_secs: i64,
    lease: &AtomicI64,
) -> Result<(), StoreError> {
    let id = store.grant_lease(ttl_secs, key).await?;
    lease.store(id, Ordering::SeqCst);
    // Putting the same record under the same lease twice is the same as once.
    store
        .run("put", key, Resend::Always, |c| async move {
            let options = PutOptions::new().with_lease(id);
            c.kv_client().put(key, value, Some(options)).await
        })
        .await
        .map_err(|e| store.err("put", key, e))?;
    Ok(())
}

/// Runs until aborted: keeps the lease alive, replaces it when lost.
async fn keep_alive(
    store: Store,
    key: String,
    value: Vec<u8>,
    ttl_secs: i64,
    lease: Arc<AtomicI64>,
) {
    // A third of the TTL leaves two chances to get through before the lease expires.
    let period = Duration::from_millis((ttl_secs.max(1) as u64 * 1000 / 3).max(300));
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        match hold(&store, lease.load(Ordering::SeqCst), period).await {
            Lost::Expired => {
                tracing::warn!(%key, "service lease was lost; registering again");
                while let Err(e) = grant_and_put(&store, &key, &value, ttl_secs, &lease).await {
                    tracing::warn!(%key, error = %e, "registering again failed; will retry");
                    sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                tracing::info!(%key, "service registered again under a new lease");
            }
            Lost::Broken(why) => {
                tracing::debug!(%key, %why, "lease keep-alive broke; retrying");
                if started.elapsed() > period {
                    backoff = Duration::from_millis(100);
                }
                sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Keeps lease `id` alive until the stream breaks or etcd says the lease is gone.
async fn hold(store: &Store, id: i64, period: Duration) -> Lost {
    let pinned = store.pick();
    tokio::select! {
        lost = hold_on(store, &pinned, id, period) => lost,
        _ = pinned.taken_out() => Lost::Broken(format!(
            "etcd member {} stopped answering", pinned.url
        )),
    }
}

async fn hold_on(store: &Store, pinned: &Pinned, id: i64, period: Duration) -> Lost {
    let broken = |e: etcd_client::Error| {
        store.failed_on(pinned, &e);
        Lost::Broken(crate::errors::describe(&e))
    };
    let (mut keeper, mut stream) = match pinned.client.clone().lease_client().keep_alive(id).await {
        Ok(pair) => pair,
        // etcd-client's word for a first answer with TTL <= 0.
        Err(etcd_client::Error::LeaseKeepAliveError(msg)) if msg.contains("not found") => {
            return Lost::Expired
        }
        Err(etcd_client::Error::GRpcStatus(s)) if s.code() == tonic::Code::NotFound => {
            return Lost::Expired
        }
        Err(e) => return broken(e),
    };
    loop {
        sleep(period).await;
        if let Err(e) = keeper.keep_alive().await {
            return broken(e);
        }
        match timeout(period * 2, stream.message()).await {
            Ok(Ok(Some(resp))) if resp.ttl() > 0 => {}
            Ok(Ok(Some(_))) => return Lost::Expired,
            Ok(Ok(None)) => return Lost::Broken("keep-alive stream closed".into()),
            Ok(Err(e)) => return broken(e),
            Err(_) => return Lost::Broken("no keep-alive answer in time".into()),
        }
    }
}
