//! An endpoint is four keys (five dual-stack): the record, its address claims (one per
//! address), and its place in the per-host and per-segment indexes. They are only ever written and deleted together, here, so no
//! index can point at a missing endpoint and no address claim can outlive its endpoint.

use etcd_client::{GetOptions, TxnOp};
use romana_core::Endpoint;

use crate::errors::StoreError;
use crate::store::{prefix_end, versioned, Resend, Store, Versioned};
use crate::txn::Txn;

/// Which endpoints a page is read from: the narrowest index a listing's filters allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointIndex<'a> {
    All,
    Host(&'a str),
    Tenant(&'a str),
    Segment { tenant: &'a str, segment: &'a str },
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

impl Store {
    /// A transaction creating `endpoint` and claiming its address, if neither the id nor the
    /// address is taken. Callers add their own expectations (host, tenant, segment
    /// unchanged) before committing. A lost race shows as a conflict on the endpoint key
    /// (the id) or on an address key, in that order.
    pub fn claim_endpoint(&self, endpoint: &Endpoint) -> Txn {
        let keys = self.keys();
        let txn = self.txn().create(&keys.endpoint(&endpoint.id), endpoint);
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

    /// Deletes an endpoint and everything pointing at it, if it is unchanged since read.
    pub async fn release_endpoint(
        &self,
        endpoint: &Versioned<Endpoint>,
    ) -> Result<i64, StoreError> {
        let keys = self.keys();
        let e = &endpoint.value;
        let txn = self
            .txn()
            .delete(&keys.endpoint(&e.id), endpoint.mod_revision);
        e.addresses()
            .fold(txn, |txn, a| txn.delete_unchecked(&keys.address(a)))
            .delete_unchecked(&keys.host_endpoint(&e.host, &e.id))
            .delete_unchecked(&keys.segment_endpoint(&e.tenant, &e.segment, &e.id))
            .commit()
            .await
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
