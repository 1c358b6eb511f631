//! Allocate: placement, a free address, and one transaction that claims both; a lost race
//! retries with what it learned (see the crate docs).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use rand::seq::IndexedRandom;
use romana_core::authz::{Action, Identity, Object, Verb};
use romana_core::{Endpoint, Layout, NamedPort, Pod};
use romana_proto::pb;
use romana_runtime::authz::require;
use romana_runtime::{
    check_labels, check_name, check_ports, contended_after, invalid, store_status,
    MAX_ENDPOINT_ATTEMPTS,
};
use romana_store::StoreError;
use tonic::Status;

use crate::cache::Reservation;
use crate::placement::{self, Placement, Source};
use crate::{check_place_names, identity, IpamService};

/// An allocator that lost a race picks at random among this many lowest free addresses, so
/// that racing allocators stop colliding while the segment still fills from the bottom.
const SPREAD: usize = 16;

/// How long a call waits for the cache's first complete copy after the service starts.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

impl IpamService {
    pub(crate) async fn allocate(
        &self,
        who: &Identity,
        req: pb::AllocateRequest,
    ) -> Result<pb::Endpoint, Status> {
        check_name("endpoint", &req.endpoint)?;
        check_place_names(&req.host, &req.tenant, &req.segment)?;
        check_labels(&req.labels)?;
        let labels: BTreeMap<String, String> = req.labels.clone().into_iter().collect();
        if req.ports.len() > romana_core::labels::MAX_PORTS {
            return Err(Status::invalid_argument(format!(
                "{} named ports; at most {} are allowed on one endpoint",
                req.ports.len(),
                romana_core::labels::MAX_PORTS
            )));
        }
        let ports = req
            .ports
            .iter()
            .map(NamedPort::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        check_ports(&ports)?;
        identity::check_interface(&req.interface)?;
        let pod = identity::check_pod(req.pod.as_ref())?;
        if !self.cache.wait_synced(SYNC_TIMEOUT).await {
            return Err(Status::unavailable(
                "ipam-service has not finished reading the cluster's addresses from etcd; retry",
            ));
        }
        let keys = self.store.keys();
        // After a transaction found a placement record changed, read etcd, not the copy.
        let mut fresh = false;
        // Another allocator won the address we chose: pick among the lowest few from now on.
        let mut lost_race = false;
        // Placement kept across attempts that only lost an address: nothing it was read from
        // changed.
        let mut resolved = None;
        for _ in 0..MAX_ENDPOINT_ATTEMPTS {
            let (config, layout) = self.layout(fresh).await?;
            let (placement, requested) = match resolved.take() {
                Some(r) => r,
                None => {
                    let src = Source {
                        store: &self.store,
                        cache: (!fresh).then_some(&self.cache),
                    };
                    let (placement, requested) = placement::resolve(&src, &layout, &req).await?;
                    // The host and tenant are known only now (a CIDR or an address names them).
                    require(
                        who,
                        endpoint_action(Verb::Allocate, &req.endpoint, &placement),
                    )?;
                    (placement, requested)
                }
            };
            let (addresses, reservation) = match requested {
                Some(a) => (vec![a], None),
                None => {
                    let r = self.choose_addresses(&layout, &placement, lost_race)?;
                    (r.addresses.clone(), Some(r))
                }
            };
            let address = addresses[0];
            let endpoint = Endpoint {
                id: req.endpoint.clone(),
                address,
                host: placement.host.value.name.clone(),
                tenant: placement.tenant.value.name.clone(),
                segment: placement.segment.value.name.clone(),
                labels: labels.clone(),
                ports: ports.clone(),
                interface: req.interface.clone(),
                pod: pod.clone(),
                second_address: addresses.get(1).copied(),
            };
            let result = self
                .store
                .claim_endpoint(&endpoint)
                .expect_unchanged(&keys.host(&endpoint.host), placement.host.mod_revision)
                .expect_unchanged(
                    &keys.tenant(&endpoint.tenant),
                    placement.tenant.mod_revision,
                )
                .expect_unchanged(
                    &keys.segment(&endpoint.tenant, &endpoint.segment),
                    placement.segment.mod_revision,
                )
                // The layout only changes while no host exists, so this rarely fails, but a
                // cached layout must never place an endpoint by a layout that is gone.
                .expect_unchanged(&keys.config(), config.mod_revision)
                .commit()
                .await;
            match result {
                Ok(revision) => {
                    if let Some(r) = reservation {
                        r.claimed(&endpoint.id, revision);
                    }
                    tracing::debug!(endpoint = %endpoint.id, %address, placement = %placement.describe(), "allocated");
                    return Ok(pb::Endpoint::from((&endpoint, &layout)));
                }
                // The id is held: a retry of the same allocation gets the same answer.
                Err(StoreError::Conflict { key, .. })
                    if key == keys.endpoint(&req.endpoint).path() =>
                {
                    let existing = self
                        .store
                        .get(&keys.endpoint(&req.endpoint))
                        .await
                        .map_err(store_status)?;
                    if let Some(existing) = existing {
                        return same_allocation(
                            &existing.value,
                            &placement,
                            requested,
                            &req.interface,
                            pod.as_ref(),
                            &layout,
                        );
                    }
                    // Released in between: try again.
                }
                Err(StoreError::Conflict { key, .. }) => {
                    match addresses
                        .iter()
                        .copied()
                        .find(|&a| key == keys.address(a).path())
                    {
                        Some(address) => {
                            if requested.is_some() {
                                let holder = self
                                    .store
                                    .get(&keys.address(address))
                                    .await
                                    .map_err(store_status)?;
                                let holder = holder.map(|h| h.value).unwrap_or_default();
                                return Err(Status::already_exists(format!(
                                    "address {address} is already held by endpoint {holder}"
                                )));
                            }
                            self.cache.taken(address);
                            lost_race = true;
                            resolved = Some((placement, requested));
                        }
                        // The host, tenant, segment or layout changed: read them again
                        // from etcd.
                        None => fresh = true,
                    }
                }
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended_after(
            MAX_ENDPOINT_ATTEMPTS,
            "allocating for endpoint",
            &req.endpoint,
        ))
    }

    /// Reserves a free address of the placement's segment in each of its families, all with
    /// one endpoint number: the lowest free in every family, or after a lost race one of the
    /// lowest few.
    fn choose_addresses(
        &self,
        layout: &Layout,
        placement: &Placement,
        lost_race: bool,
    ) -> Result<Reservation, Status> {
        let families: Vec<&Layout> = placement
            .cidrs
            .iter()
            .filter_map(|c| layout.family_of(c.network()))
            .collect();
        let d = layout
            .decode(placement.cidrs[0].network())
            .expect("segment CIDR is ours");
        let assignable = match families[..] {
            [one] => one.assignable_endpoints(),
            _ => layout.assignable_in_every_family(),
        };
        // Uncontended, the lowest free address: predictable for operators and tests.
        let n = if lost_race { SPREAD } else { 1 };
        let reserved =
            self.cache
                .reserve(layout, &placement.cidrs, assignable.clone(), n, |free| {
                    let &endpoint = free.choose(&mut rand::rng())?;
                    families
                        .iter()
                        .map(|f| f.endpoint_address(d.host, d.tenant, d.segment, endpoint))
                        .collect::<Result<Vec<_>, _>>()
                        .ok()
                });
        reserved.ok_or_else(|| {
            Status::resource_exhausted(format!(
                "{} is full: all {} assignable addresses are in use",
                placement.describe(),
                assignable.end() - assignable.start() + 1
            ))
        })
    }
}

fn endpoint_action<'a>(verb: Verb, id: &'a str, placement: &'a Placement) -> Action<'a> {
    let object = Object::Endpoint {
        id,
        tenant: &placement.tenant.value.name,
        host: &placement.host.value.name,
    };
    Action::new(verb, object)
}

/// A repeated allocation for an id that already holds an address: the same request gets the
/// same answer (a retried CNI ADD must not leak); a different one is refused.
fn same_allocation(
    existing: &Endpoint,
    placement: &Placement,
    requested: Option<IpAddr>,
    interface: &str,
    pod: Option<&Pod>,
    layout: &Layout,
) -> Result<pb::Endpoint, Status> {
    let same_place = existing.host == placement.host.value.name
        && existing.tenant == placement.tenant.value.name
        && existing.segment == placement.segment.value.name;
    if same_place && requested.is_none_or(|a| existing.holds(a)) {
        if let Some(refused) = identity::conflict(existing, interface, pod) {
            return Err(refused);
        }
        return Ok(pb::Endpoint::from((existing, layout)));
    }
    Err(Status::already_exists(format!(
        "endpoint {} already holds {} on host {} tenant {} segment {}; release it first",
        existing.id, existing.address, existing.host, existing.tenant, existing.segment
    )))
}
