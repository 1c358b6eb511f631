//! ipam-service: endpoint addresses. Allocation is one etcd transaction that creates the
//! endpoint and claims its address (plus the per-host and per-segment indexes) only if none
//! of them exist and the host, tenant and segment are unchanged, so an address is never
//! handed out twice however many replicas race. Allocation is idempotent per endpoint id;
//! releasing something unknown succeeds.
//!
//! Allocation costs one etcd transaction when nothing races: placement and free addresses
//! come from a watched copy ([`cache`]) that the transaction's compares keep honest.
//!
//! # Layout
//! - [`cache`]: the watched copy of layout, hosts, tenants, segments and claimed addresses.
//! - `listing`: ListEndpoints, page by page from the narrowest index.
//! - `interface`: the interface an allocation names (checked, and compared on a retry).
//! - `watching`: WatchEndpoints, the whole listing again on every change.
//! - [`placement`]: resolving (host, tenant, segment) from names, a CIDR or an address.
//! - [`IpamService`]: the gRPC handlers.
//! - [`SERVING`], [`routes`]: what [`romana_runtime::serve`] runs.
#![forbid(unsafe_code)]

pub mod cache;
mod interface;
mod listing;
pub mod placement;
mod watching;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use rand::seq::IndexedRandom;
use romana_core::authz::{Action, Identity, Object, Verb};
use romana_core::labels::first_missing;
use romana_core::{alloc::first_free_sorted, ClusterConfig, Endpoint, Layout, NamedPort};
use romana_proto::convert::{endpoint_to_pb, parse_ip};
use romana_proto::pb::{self, ipam_server};
use romana_runtime::authz::{caller, require};
use romana_runtime::listings::Draining;
use romana_runtime::serve::Routes;
use romana_runtime::{
    check_label_count, check_labels, check_name, check_ports, check_removed_labels,
    contended_after, current_layout, invalid, store_status, Serving, MAX_ENDPOINT_ATTEMPTS,
};
use romana_store::{Store, StoreError, Versioned};
use tonic::{Request, Response, Status};

use cache::{Cache, Reservation};
use placement::{Placement, Read, Source};

/// An allocator that lost a race picks at random among this many lowest free addresses, so
/// that racing allocators stop colliding while the segment still fills from the bottom.
const SPREAD: usize = 16;

/// How long a call waits for the cache's first complete copy after the service starts.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

pub struct IpamService {
    store: Store,
    cache: Cache,
    draining: Draining,
}

/// ipam-service as [`romana_runtime::serve`] runs it.
pub const SERVING: Serving = Serving {
    kind: "ipam",
    grpc_name: "romana.v1.Ipam",
    routes,
};

/// The ipam-service handlers over `store`.
pub fn routes(store: &Store, draining: Draining) -> Routes {
    romana_runtime::grpc_routes!(ipam_server::IpamServer::new(IpamService {
        store: store.clone(),
        cache: Cache::start(store),
        draining,
    }))
}

// === impl IpamService ===

impl IpamService {
    async fn allocate(
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
        interface::check_interface(&req.interface)?;
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
            let (address, reservation) = match requested {
                Some(a) => (a, None),
                None => {
                    let r = self.choose_address(&layout, &placement, lost_race)?;
                    (r.address, Some(r))
                }
            };
            let endpoint = Endpoint {
                id: req.endpoint.clone(),
                address,
                host: placement.host.value.name.clone(),
                tenant: placement.tenant.value.name.clone(),
                segment: placement.segment.value.name.clone(),
                labels: labels.clone(),
                ports: ports.clone(),
                interface: req.interface.clone(),
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
                Ok(_) => {
                    if let Some(r) = reservation {
                        r.claimed();
                    }
                    tracing::debug!(endpoint = %endpoint.id, %address, placement = %placement.describe(), "allocated");
                    return Ok(endpoint_to_pb(&endpoint, &layout));
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
                            &layout,
                        );
                    }
                    // Released in between: try again.
                }
                Err(StoreError::Conflict { key, .. }) if key == keys.address(address).path() => {
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
                // The host, tenant, segment or layout changed: read them again from etcd.
                Err(StoreError::Conflict { .. }) => fresh = true,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended_after(
            MAX_ENDPOINT_ATTEMPTS,
            "allocating for endpoint",
            &req.endpoint,
        ))
    }

    /// A record, read linearizably unless `maybe_stale` allows a cheaper read that may be
    /// behind (only where a transaction re-checks what was read).
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &romana_store::Key<T>,
        maybe_stale: bool,
    ) -> Result<Option<Versioned<T>>, Status> {
        let read = if maybe_stale {
            self.store.get_maybe_stale(key).await
        } else {
            self.store.get(key).await
        };
        read.map_err(store_status)
    }

    /// The cluster layout: the cached copy unless `fresh`.
    async fn layout(&self, fresh: bool) -> Result<(Read<ClusterConfig>, Layout), Status> {
        match self.cache.layout() {
            Some(cached) if !fresh => Ok(cached),
            _ => {
                let (config, layout) = current_layout(&self.store).await?;
                Ok((config.into(), layout))
            }
        }
    }

    /// Reserves a free address of the placement's segment: the lowest, or after a lost race
    /// one of the lowest few.
    fn choose_address(
        &self,
        layout: &Layout,
        placement: &Placement,
        lost_race: bool,
    ) -> Result<Reservation, Status> {
        let d = layout
            .decode(placement.cidr.network())
            .expect("segment CIDR is ours");
        let assignable = layout.assignable_endpoints();
        // Uncontended, the lowest free address: predictable for operators and tests.
        let n = if lost_race { SPREAD } else { 1 };
        let reserved = self.cache.reserve(placement.cidr, |used| {
            let numbers = used.filter_map(|a| layout.decode(a).map(|d| d.endpoint));
            let free = first_free_sorted(numbers, assignable.clone(), n);
            let &endpoint = free.choose(&mut rand::rng())?;
            layout
                .endpoint_address(d.host, d.tenant, d.segment, endpoint)
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

    async fn release(
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
                Some(e) if by_address.is_some_and(|a| a != e.value.address) => {
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
                    self.cache.freed(endpoint.value.address);
                    tracing::debug!(endpoint = %id, address = %endpoint.value.address, "released");
                    return Ok(pb::ReleaseResponse {
                        endpoint: Some(endpoint_to_pb(&endpoint.value, &layout)),
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

    async fn update(
        &self,
        who: &Identity,
        req: pb::UpdateEndpointRequest,
    ) -> Result<pb::Endpoint, Status> {
        check_name("endpoint", &req.endpoint)?;
        check_labels(&req.set_labels)?;
        check_removed_labels(&req.remove_labels)?;
        let keys = self.store.keys();
        let (_, layout) = self.layout(false).await?;
        for _ in 0..MAX_ENDPOINT_ATTEMPTS {
            let current = self
                .store
                .get(&keys.endpoint(&req.endpoint))
                .await
                .map_err(store_status)?
                .ok_or_else(|| {
                    Status::not_found(format!("endpoint {} does not exist", req.endpoint))
                })?;
            require(
                who,
                Action::new(Verb::Update, endpoint_object(&current.value)),
            )?;
            let mut endpoint = current.value.clone();
            endpoint.labels.extend(req.set_labels.clone());
            for k in &req.remove_labels {
                endpoint.labels.remove(k);
            }
            if endpoint == current.value {
                return Ok(endpoint_to_pb(&endpoint, &layout));
            }
            check_label_count(&format!("endpoint {}", req.endpoint), endpoint.labels.len())?;
            match self
                .store
                .update(
                    &keys.endpoint(&endpoint.id),
                    &endpoint,
                    current.mod_revision,
                )
                .await
            {
                Ok(_) => {
                    tracing::debug!(endpoint = %endpoint.id, labels = ?endpoint.labels, "labels updated");
                    return Ok(endpoint_to_pb(&endpoint, &layout));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended_after(
            MAX_ENDPOINT_ATTEMPTS,
            "updating endpoint",
            &req.endpoint,
        ))
    }
}

/// Host, tenant and segment names a request gives (each optional).
fn check_place_names(host: &str, tenant: &str, segment: &str) -> Result<(), Status> {
    for (kind, name) in [("host", host), ("tenant", tenant), ("segment", segment)] {
        if !name.is_empty() {
            check_name(kind, name)?;
        }
    }
    Ok(())
}

/// An endpoint as authorization sees it: whose and where.
fn endpoint_object(e: &Endpoint) -> Object<'_> {
    Object::Endpoint {
        id: &e.id,
        tenant: &e.tenant,
        host: &e.host,
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
    layout: &Layout,
) -> Result<pb::Endpoint, Status> {
    let same_place = existing.host == placement.host.value.name
        && existing.tenant == placement.tenant.value.name
        && existing.segment == placement.segment.value.name;
    if same_place && requested.is_none_or(|a| a == existing.address) {
        if let Some(refused) = interface::conflict(existing, interface) {
            return Err(refused);
        }
        return Ok(endpoint_to_pb(existing, layout));
    }
    Err(Status::already_exists(format!(
        "endpoint {} already holds {} on host {} tenant {} segment {}; release it first",
        existing.id, existing.address, existing.host, existing.tenant, existing.segment
    )))
}

#[tonic::async_trait]
impl ipam_server::Ipam for IpamService {
    async fn allocate(
        &self,
        request: Request<pb::AllocateRequest>,
    ) -> Result<Response<pb::Endpoint>, Status> {
        let who = caller(&request)?;
        self.allocate(&who, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<pb::ReleaseResponse>, Status> {
        let who = caller(&request)?;
        self.release(&who, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn update_endpoint(
        &self,
        request: Request<pb::UpdateEndpointRequest>,
    ) -> Result<Response<pb::Endpoint>, Status> {
        let who = caller(&request)?;
        self.update(&who, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_endpoint(
        &self,
        request: Request<pb::GetEndpointRequest>,
    ) -> Result<Response<pb::Endpoint>, Status> {
        let who = caller(&request)?;
        let id = request.into_inner().endpoint;
        check_name("endpoint", &id)?;
        let (_, layout) = self.layout(false).await?;
        let endpoint: Versioned<Endpoint> = self
            .store
            .get(&self.store.keys().endpoint(&id))
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("endpoint {id} does not exist")))?;
        require(&who, Action::read(endpoint_object(&endpoint.value)))?;
        Ok(Response::new(endpoint_to_pb(&endpoint.value, &layout)))
    }

    async fn list_endpoints(
        &self,
        request: Request<pb::ListEndpointsRequest>,
    ) -> Result<Response<pb::ListEndpointsResponse>, Status> {
        let who = caller(&request)?;
        self.list(&who, request.into_inner())
            .await
            .map(Response::new)
    }

    type WatchEndpointsStream = romana_runtime::listings::Listings<pb::WatchEndpointsResponse>;

    async fn watch_endpoints(
        &self,
        request: Request<pb::WatchEndpointsRequest>,
    ) -> Result<Response<Self::WatchEndpointsStream>, Status> {
        let who = caller(&request)?;
        let draining = self.draining.clone();
        watching::watch(&self.store, draining, who, request.into_inner()).map(Response::new)
    }
}
