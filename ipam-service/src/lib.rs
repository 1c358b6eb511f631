//! ipam-service: endpoint addresses. Allocation is one etcd transaction that creates the
//! endpoint and claims its address (plus the per-host and per-segment indexes) only if none
//! of them exist and the host, tenant and segment are unchanged, so an address is never
//! handed out twice however many replicas race. Allocation is idempotent per endpoint id;
//! releasing something unknown succeeds.
//!
//! Allocation costs one etcd transaction when nothing races: placement and free addresses
//! come from a watched copy ([`cache`]) that the transaction's compares keep honest. A
//! release by id or address is one transaction too: the copy knows who holds each address
//! since which revision, and the transaction compares every key it deletes (a stale copy
//! falls back to reading the record). Concurrent allocations and releases of one replica
//! share etcd transactions (the store's group commit), so a burst costs etcd a few.
//!
//! # Layout
//! - [`cache`]: the watched copy of layout, hosts, tenants, segments and claimed addresses.
//! - `allocating`: Allocate, placement and address claimed in one transaction.
//! - `releasing`: Release, by id or address, from the copy or after reading the record.
//! - `listing`: ListEndpoints, page by page from the narrowest index.
//! - `interface`: the interface an allocation names (checked, and compared on a retry).
//! - `watching`: WatchEndpoints, the whole listing again on every change.
//! - [`placement`]: resolving (host, tenant, segment) from names, a CIDR or an address.
//! - [`IpamService`]: the gRPC handlers.
//! - [`SERVING`], [`routes`]: what [`romana_runtime::serve`] runs.
#![forbid(unsafe_code)]

mod allocating;
pub mod cache;
mod identity;
mod listing;
pub mod placement;
mod releasing;
mod watching;

use romana_core::authz::{Action, Identity, Object, Verb};
use romana_core::{ClusterConfig, Endpoint, Layout};
use romana_proto::pb::{self, ipam_server};
use romana_runtime::authz::{caller, require};
use romana_runtime::listings::Draining;
use romana_runtime::serve::Routes;
use romana_runtime::{
    check_label_count, check_labels, check_name, check_removed_labels, contended_after,
    current_layout, store_status, Serving, MAX_ENDPOINT_ATTEMPTS,
};
use romana_store::{Store, StoreError, Versioned};
use tonic::{Request, Response, Status};

use cache::Cache;
use placement::Read;

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
                return Ok(pb::Endpoint::from((&endpoint, &layout)));
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
                    return Ok(pb::Endpoint::from((&endpoint, &layout)));
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
        Ok(Response::new(pb::Endpoint::from((
            &endpoint.value,
            &layout,
        ))))
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
