//! An endpoint is four keys (five dual-stack): the record, its address claims (one per
//! address), and its place in the per-host and per-segment indexes. They are only ever written and deleted together, here, so no
//! index can point at a missing endpoint and no address claim can outlive its endpoint.
//!
//! # A claim carried out late must not bring a released endpoint back
//! A claim sent to a member that then froze is given up by the client (its outcome is
//! unknown), yet the member proposes it when it wakes, seconds later. Meanwhile the caller
//! retried through another member, got the endpoint, and released it. "Create if absent"
//! holds again then, so the late claim would recreate the released endpoint with an
//! address nobody uses. So a release leaves a tombstone of the id (`tombstones/endpoints/`),
//! and a claim commits only if that tombstone was not written after the newest revision
//! this store had seen when the claim was built ([`Store::seen_revision`]): any release
//! that follows a claim's sending is newer than that. A fresh claim of a released id
//! whose store has not seen the release yet fails once and sees it in that very answer.
//! Tombstones live under a lease of [`TOMBSTONE_TTL`], renewed every [`TOMBSTONE_ROTATE`],
//! so they cost a key per id released in the last quarter of an hour, not per id ever;
//! a claim delayed longer than that is not guarded.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use etcd_client::{GetOptions, TxnOp};
use romana_core::Endpoint;

use crate::errors::StoreError;
use crate::store::{prefix_end, versioned, Resend, Store, Versioned};
use crate::txn::{Taken, Txn};

/// Which endpoints a page is read from: the narrowest index a listing's filters allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointIndex<'a> {
    All,
    Host(&'a str),
    Tenant(&'a str),
    Segment { tenant: &'a str, segment: &'a str },
}

/// What a release needs to know of an endpoint to delete it without reading it: its
/// keys' names and the revision of the transaction that claimed it (every key of an
/// endpoint is created by that one transaction, and only the record changes later).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub tenant: &'a str,
    pub segment: &'a str,
    /// The endpoint's address in the first address space.
    pub address: IpAddr,
    /// Must be the record's: the transaction cannot see which addresses the record holds,
    /// so a claim naming fewer would leave one claimed by nobody.
    pub second_address: Option<IpAddr>,
    pub revision: i64,
}

impl<'a> From<&'a Versioned<Endpoint>> for Claim<'a> {
    /// The claim a record read from etcd names (every key of it was created with it).
    fn from(e: &'a Versioned<Endpoint>) -> Claim<'a> {
        Claim {
            id: &e.value.id,
            host: &e.value.host,
            tenant: &e.value.tenant,
            segment: &e.value.segment,
            address: e.value.address,
            second_address: e.value.second_address,
            revision: e.create_revision,
        }
    }
}

impl Claim<'_> {
    fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        std::iter::once(self.address).chain(self.second_address)
    }
}

/// One page of endpoints in index order.
#[derive(Debug)]
pub struct EndpointPage {
    pub endpoints: Vec<Endpoint>,
    /// Where the next page starts (the last index key read, relative to the index), when
    /// the index has more.
    pub next: Option<String>,
}

/// etcd refuses transactions of more operations than `--max-txn-ops` (128 by default).
const GETS_PER_TXN: usize = 100;

/// How long a tombstone outlives the release that wrote it, at least
/// `TOMBSTONE_TTL - TOMBSTONE_ROTATE`.
pub const TOMBSTONE_TTL: Duration = Duration::from_secs(15 * 60);
/// How long one lease takes new tombstones.
pub const TOMBSTONE_ROTATE: Duration = Duration::from_secs(5 * 60);

/// The lease tombstones are put under, and when it was granted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TombstoneLease {
    id: i64,
    granted: Instant,
}

impl Store {
    /// A transaction creating `endpoint` and claiming its address, if neither the id nor the
    /// address is taken. Callers add their own expectations (host, tenant, segment
    /// unchanged) before committing. A lost race shows as a conflict on the endpoint key
    /// (the id) or on an address key, in that order.
    pub fn claim_endpoint(&self, endpoint: &Endpoint) -> Txn {
        let keys = self.keys();
        let txn = self
            .txn()
            .grouped()
            .create(&keys.endpoint(&endpoint.id), endpoint)
            .expect_unwritten_since(&keys.endpoint_tombstone(&endpoint.id), self.seen_revision());
        endpoint
            .addresses()
            .fold(txn, |txn, a| txn.create(&keys.address(a), &endpoint.id))
            .create(
                &keys.host_endpoint(&endpoint.host, &endpoint.id),
                &endpoint.address,
            )
            .create(
                &keys.segment_endpoint(&endpoint.tenant, &endpoint.segment, &endpoint.id),
                &endpoint.address,
            )
    }

    /// Deletes an endpoint and everything pointing at it, if it is unchanged since read, and
    /// leaves its tombstone (see the module docs).
    pub async fn release_endpoint(
        &self,
        endpoint: &Versioned<Endpoint>,
    ) -> Result<i64, StoreError> {
        let keys = self.keys();
        let e = &endpoint.value;
        let (revision, _) = self
            .commit_release(|lease| {
                let txn = self
                    .txn()
                    .delete(&keys.endpoint(&e.id), endpoint.mod_revision)
                    .put_leased(&keys.endpoint_tombstone(&e.id), &e.address, lease);
                e.addresses()
                    .fold(txn, |txn, a| txn.delete_unchecked(&keys.address(a)))
                    .delete_unchecked(&keys.host_endpoint(&e.host, &e.id))
                    .delete_unchecked(&keys.segment_endpoint(&e.tenant, &e.segment, &e.id))
            })
            .await?;
        Ok(revision)
    }

    /// Deletes the endpoint `claim` describes without reading it first, and returns the
    /// record deleted. Every key is compared to have been created by the claim's
    /// transaction, so a claim built from a stale copy (another endpoint since, another
    /// host or segment than guessed) is a [`StoreError::Conflict`] that deletes nothing.
    pub async fn release_claim(&self, claim: &Claim<'_>) -> Result<Endpoint, StoreError> {
        let keys = self.keys();
        let (id, rev) = (claim.id, claim.revision);
        let (_, taken) = self
            .commit_release(|lease| {
                let txn = self
                    .txn()
                    .grouped()
                    .take(&keys.endpoint(id), rev)
                    .put_leased(&keys.endpoint_tombstone(id), &claim.address, lease);
                claim
                    .addresses()
                    .fold(txn, |txn, a| txn.delete(&keys.address(a), rev))
                    .delete(&keys.host_endpoint(claim.host, id), rev)
                    .delete(&keys.segment_endpoint(claim.tenant, claim.segment, id), rev)
            })
            .await?;
        let record = keys.endpoint(id);
        let taken = taken
            .into_iter()
            .find(|t| t.key == record.path())
            .ok_or_else(|| StoreError::Conflict {
                key: record.path().to_string(),
                expected: format!("created at revision {rev}"),
                found: "absent".to_string(),
            })?;
        crate::store::decode(record.path(), &taken.value)
    }

    /// Commits the release `build` makes under the tombstone lease it is given.
    async fn commit_release(
        &self,
        build: impl Fn(i64) -> Txn,
    ) -> Result<(i64, Vec<Taken>), StoreError> {
        let mut renewed = false;
        loop {
            let lease = self.tombstone_lease(renewed).await?;
            match build(lease).commit_taken().await {
                // The lease expired under us (etcd lost it, or this process stalled past
                // its TTL): once more under a new one.
                Err(e @ StoreError::Etcd { .. })
                    if !renewed && e.to_string().contains("lease not found") =>
                {
                    renewed = true;
                }
                other => return other,
            }
        }
    }

    /// The lease for new tombstones: the current one while younger than
    /// [`TOMBSTONE_ROTATE`] (and not `renew`), else a new one of [`TOMBSTONE_TTL`].
    async fn tombstone_lease(&self, renew: bool) -> Result<i64, StoreError> {
        let mut current = self.tombstones.lock().await;
        if let Some(lease) = *current {
            if !renew && lease.granted.elapsed() < TOMBSTONE_ROTATE {
                return Ok(lease.id);
            }
        }
        let what = self.keys().endpoint_tombstone("");
        let ttl = TOMBSTONE_TTL.as_secs() as i64;
        let id = self.grant_lease(ttl, what.path()).await?;
        let lease = TombstoneLease {
            id,
            granted: Instant::now(),
        };
        *current = Some(lease);
        Ok(lease.id)
    }

    /// Up to `limit` endpoints of `index` after the index key `after` (relative to the
    /// index, as [`EndpointPage::next`] gives it; empty for the start). Reads the index page
    /// and then the records it names, at most [`GETS_PER_TXN`] per request; an endpoint
    /// released between the two reads is left out.
    pub async fn endpoints_page(
        &self,
        index: EndpointIndex<'_>,
        after: &str,
        limit: usize,
    ) -> Result<EndpointPage, StoreError> {
        let keys = self.keys();
        let prefix = match index {
            EndpointIndex::All => keys.endpoints().path().to_string(),
            EndpointIndex::Host(h) => keys.host_endpoints_of(h).path().to_string(),
            EndpointIndex::Tenant(t) => keys.tenant_endpoints_of(t).path().to_string(),
            EndpointIndex::Segment { tenant, segment } => keys
                .segment_endpoints_of(tenant, segment)
                .path()
                .to_string(),
        };
        let mut start = format!("{prefix}{after}").into_bytes();
        if !after.is_empty() {
            // The smallest key after `after`.
            start.push(0);
        }
        let options = GetOptions::new()
            .with_range(prefix_end(prefix.as_bytes()))
            .with_limit(limit.max(1) as i64);
        let mut resp = self
            .run("list", &prefix, Resend::Always, |c| {
                let (start, options) = (start.clone(), options.clone());
                async move { c.kv_client().get(start, Some(options)).await }
            })
            .await
            .map_err(|e| self.err("list", &prefix, e))?;
        let more = resp.more();
        let kvs = resp.take_kvs();
        let next = match kvs.last() {
            Some(last) if more => Some(
                String::from_utf8_lossy(last.key())
                    .strip_prefix(prefix.as_str())
                    .unwrap_or_default()
                    .to_string(),
            ),
            _ => None,
        };
        let endpoints = match index {
            EndpointIndex::All => kvs
                .iter()
                .map(|kv| versioned::<Endpoint>(kv).map(|v| v.value))
                .collect::<Result<_, _>>()?,
            _ => {
                let ids: Vec<String> = kvs
                    .iter()
                    .map(|kv| {
                        let key = String::from_utf8_lossy(kv.key());
                        key.rsplit('/').next().unwrap_or_default().to_string()
                    })
                    .collect();
                self.endpoints_by_id(&ids).await?
            }
        };
        Ok(EndpointPage { endpoints, next })
    }

    /// The records of `ids` that exist, in the order given, read a batch per request.
    async fn endpoints_by_id(&self, ids: &[String]) -> Result<Vec<Endpoint>, StoreError> {
        let keys = self.keys();
        let mut found = Vec::with_capacity(ids.len());
        for batch in ids.chunks(GETS_PER_TXN) {
            let gets: Vec<TxnOp> = batch
                .iter()
                .map(|id| TxnOp::get(keys.endpoint(id).path(), None))
                .collect();
            let txn = etcd_client::Txn::new().and_then(gets);
            let first = keys.endpoint(&batch[0]);
            let resp = self
                .run("get", first.path(), Resend::Always, |c| {
                    let txn = txn.clone();
                    async move { c.kv_client().txn(txn).await }
                })
                .await
                .map_err(|e| self.err("get", first.path(), e))?;
            for op in resp.op_responses() {
                if let etcd_client::TxnOpResponse::Get(get) = op {
                    if let Some(kv) = get.kvs().first() {
                        found.push(versioned::<Endpoint>(kv)?.value);
                    }
                }
            }
        }
        Ok(found)
    }
}
