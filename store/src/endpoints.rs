//! An endpoint is four keys: the record, its address claim, and its place in the per-host
//! and per-segment indexes. They are only ever written and deleted together, here, so no
//! index can point at a missing endpoint and no address claim can outlive its endpoint.

use romana_core::Endpoint;

use crate::errors::StoreError;
use crate::store::{Store, Versioned};
use crate::txn::Txn;

impl Store {
    /// A transaction creating `endpoint` and claiming its address, if neither the id nor the
    /// address is taken. Callers add their own expectations (host, tenant, segment
    /// unchanged) before committing. A lost race shows as a conflict on the endpoint key
    /// (the id) or on the address key, in that order.
    pub fn claim_endpoint(&self, endpoint: &Endpoint) -> Txn {
        let keys = self.keys();
        self.txn()
            .create(&keys.endpoint(&endpoint.id), endpoint)
            .create(&keys.address(endpoint.address), &endpoint.id)
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
        self.txn()
            .delete(&keys.endpoint(&e.id), endpoint.mod_revision)
            .delete_unchecked(&keys.address(e.address))
            .delete_unchecked(&keys.host_endpoint(&e.host, &e.id))
            .delete_unchecked(&keys.segment_endpoint(&e.tenant, &e.segment, &e.id))
            .commit()
            .await
    }
}
