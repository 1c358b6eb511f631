//! Release: by endpoint id or by address, optionally only if the holder carries given
//! labels; releasing something unknown succeeds.

use romana_core::authz::{Action, Identity, Object, Verb};
use romana_core::labels::first_missing;
use romana_core::{Endpoint, Layout};
use romana_proto::convert::parse_ip;
use romana_proto::pb;
use romana_runtime::authz::{may, require};
use romana_runtime::{
    check_labels, check_name, contended_after, invalid, store_status, MAX_ENDPOINT_ATTEMPTS,
};
use romana_store::{Claim, StoreError};
use tonic::Status;

use crate::{endpoint_object, IpamService};

impl IpamService {
    pub(crate) async fn release(
        &self,
        who: &Identity,
        req: pb::ReleaseRequest,
    ) -> Result<pb::ReleaseResponse, Status> {
        // A malformed id or address names nothing that could exist: say so, rather than
        // report a release of nothing as a success.
        match &req.target {
            Some(pb::release_request::Target::Endpoint(id)) => check_name("endpoint", id)?,
            Some(pb::release_request::Target::Address(a)) => {
                parse_ip("address", a).map_err(invalid)?;
            }
            None => {}
        }
        check_labels(&req.if_labels)?;
        let keys = self.store.keys();
        let (_, layout) = self.layout(false).await?;
        if req.if_labels.is_empty() {
            if let Some(endpoint) = self.release_from_copy(who, &req, &layout).await? {
                return Ok(pb::ReleaseResponse {
                    endpoint: Some(pb::Endpoint::from((&endpoint, &layout))),
                });
            }
        }
        // The first read may be behind (it is cheaper under load): the release transaction
        // compares the record's revision, and a miss or a lost compare reads again
        // properly before anything is concluded.
        let mut maybe_stale = true;
        for _ in 0..MAX_ENDPOINT_ATTEMPTS {
            let (id, by_address) = match &req.target {
                Some(pb::release_request::Target::Endpoint(id)) => (id.clone(), None),
                Some(pb::release_request::Target::Address(a)) => {
                    let address = parse_ip("address", a).map_err(invalid)?;
                    let key = keys.address(address);
                    match self.read(&key, maybe_stale).await? {
                        Some(holder) => (holder.value, Some(address)),
                        None if maybe_stale => {
                            maybe_stale = false;
                            continue;
                        }
                        None => return Ok(pb::ReleaseResponse { endpoint: None }),
                    }
                }
                None => {
                    return Err(Status::invalid_argument(
                        "give an endpoint id or an address to release",
                    ))
                }
            };
            let endpoint = match self.read(&keys.endpoint(&id), maybe_stale).await? {
                // The holder read was older than the endpoint: it moved on (released and
                // allocated again elsewhere); it is not the one at this address.
                Some(e) if by_address.is_some_and(|a| !e.value.holds(a)) => {
                    maybe_stale = false;
                    continue;
                }
                Some(e) => e,
                None if maybe_stale => {
                    maybe_stale = false;
                    continue;
                }
                None => return Ok(pb::ReleaseResponse { endpoint: None }),
            };
            if let Some((k, v)) = first_missing(&endpoint.value.labels, &req.if_labels) {
                if maybe_stale {
                    // Perhaps only our copy is old: judge the holder on a fresh read.
                    maybe_stale = false;
                    continue;
                }
                return Err(Status::failed_precondition(format!(
                    "{} is held by endpoint {}, which does not carry {k}={v}; not released",
                    endpoint.value.address, endpoint.value.id
                )));
            }
            require(
                who,
                Action::new(Verb::Release, endpoint_object(&endpoint.value)),
            )?;
            match self.store.release_endpoint(&endpoint).await {
                Ok(_) => {
                    for a in endpoint.value.addresses() {
                        self.cache.freed(a);
                    }
                    tracing::debug!(endpoint = %id, address = %endpoint.value.address, "released");
                    return Ok(pb::ReleaseResponse {
                        endpoint: Some(pb::Endpoint::from((&endpoint.value, &layout))),
                    });
                }
                Err(StoreError::Conflict { .. }) => maybe_stale = false,
                Err(e) => return Err(store_status(e)),
            }
        }
        let target = match &req.target {
            Some(pb::release_request::Target::Endpoint(id)) => format!("endpoint {id}"),
            Some(pb::release_request::Target::Address(a)) => format!("address {a}"),
            None => String::new(),
        };
        Err(contended_after(MAX_ENDPOINT_ATTEMPTS, "releasing", &target))
    }

    /// The release in one etcd request: the endpoint's keys named from the watched copy
    /// (its addresses and claim revision, and the host, tenant and segment its address
    /// decodes to), deleted by a transaction that verifies every one of them. `None` when
    /// the copy does not know the endpoint, its names do not pass authorization, or the
    /// transaction finds the copy wrong: the caller then reads etcd and decides on the
    /// record, so a stale copy costs a round trip, never a wrong release or a wrong refusal.
    async fn release_from_copy(
        &self,
        who: &Identity,
        req: &pb::ReleaseRequest,
        layout: &Layout,
    ) -> Result<Option<Endpoint>, Status> {
        let claimed = match &req.target {
            Some(pb::release_request::Target::Endpoint(id)) => self.cache.claimed_by(id),
            Some(pb::release_request::Target::Address(a)) => parse_ip("address", a)
                .ok()
                .and_then(|a| self.cache.claimed_at(a)),
            None => None,
        };
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        // One address in each family of the layout, or the slow path: the transaction
        // cannot see which addresses the record holds, so a claim missing one (an
        // endpoint given a single address in a dual-stack cluster, or the copy between
        // the two address events of one claim) would leave it claimed.
        let first = |space: &Layout| {
            claimed
                .addresses
                .iter()
                .copied()
                .find(|a| space.address_space().contains(a))
        };
        let Some(address) = first(layout) else {
            return Ok(None);
        };
        let second_address = match layout.second_family() {
            Some(second) => match first(second) {
                Some(a) => Some(a),
                None => return Ok(None),
            },
            None => None,
        };
        if claimed.addresses.len() != layout.families().count() {
            return Ok(None);
        }
        let Some(d) = layout.decode(address) else {
            return Ok(None);
        };
        let Some((host, tenant, segment)) = self.cache.names(d) else {
            return Ok(None);
        };
        let object = Object::Endpoint {
            id: &claimed.id,
            tenant: &tenant,
            host: &host,
        };
        if !may(who, Action::new(Verb::Release, object)) {
            return Ok(None);
        }
        let claim = Claim {
            id: &claimed.id,
            host: &host,
            tenant: &tenant,
            segment: &segment,
            address,
            second_address,
            revision: claimed.revision,
        };
        match self.store.release_claim(&claim).await {
            Ok(endpoint) => {
                for a in endpoint.addresses() {
                    self.cache.freed(a);
                }
                tracing::debug!(endpoint = %endpoint.id, address = %endpoint.address, "released");
                Ok(Some(endpoint))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(store_status(e)),
        }
    }
}
