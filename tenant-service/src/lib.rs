//! tenant-service: tenants and their segments. Each gets the lowest free number; names are
//! unique; a tenant is created with its segment `default` (number 0) and the label
//! `kubernetes.io/metadata.name=<name>`, as Kubernetes labels namespaces. Nothing with live
//! endpoints can be removed.
//!
//! # Layout
//! - [`TenantService`]: the gRPC handlers; tenants here, segments in `segments`.
//! - [`SERVING`], [`routes`]: what [`romana_runtime::serve`] runs.
#![forbid(unsafe_code)]

mod segments;

use std::collections::{BTreeMap, BTreeSet};

use romana_core::authz::{Action, Object, Verb};
use romana_core::names::validate_tenant_name;
use romana_core::{alloc::lowest_free, Segment, Tenant};
use romana_proto::convert::isolation_from_pb;
use romana_proto::pb::{self, tenants_server};
use romana_runtime::authz::{authorize, caller, may, require};
use romana_runtime::listings::Draining;
use romana_runtime::serve::Routes;
use romana_runtime::{
    bad_name, check_label_count, check_labels, check_name, check_removed_labels, contended,
    current_layout, invalid, preview, store_status, Serving, MAX_ATTEMPTS,
};
use romana_store::{Store, StoreError, Versioned};
use tonic::{Request, Response, Status};

/// The segment every tenant is created with.
pub const DEFAULT_SEGMENT: &str = "default";

/// The label Kubernetes puts on every namespace, kept on every tenant.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

pub struct TenantService {
    store: Store,
}

/// tenant-service as [`romana_runtime::serve`] runs it.
pub const SERVING: Serving = Serving {
    kind: "tenant",
    grpc_name: "romana.v1.Tenants",
    routes,
};

/// The tenant-service handlers over `store`.
pub fn routes(store: &Store, _draining: Draining) -> Routes {
    romana_runtime::grpc_routes!(tenants_server::TenantsServer::new(TenantService {
        store: store.clone(),
    }))
}

/// An action on a segment, as authorization sees it.
fn segment<'a>(verb: Verb, tenant: &'a str, name: &'a str) -> Action<'a> {
    Action::new(verb, Object::Segment { tenant, name })
}

/// Endpoint ids from endpoint index entries.
pub(crate) fn ids_of<T>(items: &[Versioned<T>]) -> Vec<&str> {
    items.iter().map(Versioned::key_name).collect()
}

// === impl TenantService ===

impl TenantService {
    async fn get_tenant(&self, name: &str) -> Result<Versioned<Tenant>, Status> {
        check_name("tenant", name)?;
        self.store
            .get(&self.store.keys().tenant(name))
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("tenant {name} does not exist")))
    }

    async fn add_tenant(&self, req: pb::AddTenantRequest) -> Result<pb::Tenant, Status> {
        validate_tenant_name(&req.name).map_err(bad_name)?;
        let isolation = isolation_from_pb(req.isolation)
            .map_err(invalid)?
            .unwrap_or_default();
        let mut labels: BTreeMap<String, String> = req.labels.into_iter().collect();
        check_labels(&labels)?;
        labels.insert(NAME_LABEL.to_string(), req.name.clone());
        check_label_count("tenant", labels.len())?;
        let keys = self.store.keys();
        for _ in 0..MAX_ATTEMPTS {
            let (config, layout) = current_layout(&self.store).await?;
            if let Some(t) = self
                .store
                .get(&keys.tenant(&req.name))
                .await
                .map_err(store_status)?
            {
                return Err(Status::already_exists(format!(
                    "tenant {} already exists (number {})",
                    req.name, t.value.id
                )));
            }
            let ids = self
                .store
                .list(&keys.tenant_ids())
                .await
                .map_err(store_status)?;
            let used: BTreeSet<u32> = ids.items.iter().filter_map(id_of).collect();
            let Some(id) = lowest_free(&used, 0..=(layout.max_tenants() - 1) as u32) else {
                return Err(Status::resource_exhausted(format!(
                    "all {} tenant numbers are in use (tenant bits {}); remove a tenant first",
                    layout.max_tenants(),
                    layout.config().tenant_bits
                )));
            };
            let tenant = Tenant {
                name: req.name.clone(),
                id,
                isolation,
                labels: labels.clone(),
            };
            let default = Segment {
                tenant: req.name.clone(),
                name: DEFAULT_SEGMENT.to_string(),
                id: 0,
            };
            let result = self
                .store
                .txn()
                .create(&keys.tenant(&tenant.name), &tenant)
                .create(&keys.tenant_id(id), &tenant.name)
                .create(&keys.segment(&tenant.name, DEFAULT_SEGMENT), &default)
                .create(&keys.segment_id(&tenant.name, 0), &default.name)
                .expect_unchanged(&keys.config(), config.mod_revision)
                .commit()
                .await;
            match result {
                Ok(_) => {
                    tracing::info!(tenant = %tenant.name, id, ?isolation, "tenant added");
                    return Ok(pb::Tenant::from((&tenant, &layout)));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended("adding tenant", &req.name))
    }

    async fn update_tenant(&self, req: pb::UpdateTenantRequest) -> Result<pb::Tenant, Status> {
        let isolation = isolation_from_pb(req.isolation).map_err(invalid)?;
        check_name("tenant", &req.name)?;
        let set: BTreeMap<String, String> = req.set_labels.into_iter().collect();
        check_labels(&set)?;
        check_removed_labels(&req.remove_labels)?;
        if req.remove_labels.iter().any(|k| k == NAME_LABEL) || set.contains_key(NAME_LABEL) {
            return Err(Status::invalid_argument(format!(
                "label {NAME_LABEL} is always the tenant name and cannot be changed"
            )));
        }
        let (_, layout) = current_layout(&self.store).await?;
        for _ in 0..MAX_ATTEMPTS {
            let current = self.get_tenant(&req.name).await?;
            let mut tenant = current.value.clone();
            if let Some(i) = isolation {
                tenant.isolation = i;
            }
            tenant.labels.extend(set.clone());
            for k in &req.remove_labels {
                tenant.labels.remove(k);
            }
            if tenant == current.value {
                return Ok(pb::Tenant::from((&tenant, &layout)));
            }
            check_label_count(&format!("tenant {}", req.name), tenant.labels.len())?;
            let key = self.store.keys().tenant(&req.name);
            match self.store.update(&key, &tenant, current.mod_revision).await {
                Ok(_) => {
                    tracing::info!(tenant = %tenant.name, isolation = ?tenant.isolation, "tenant updated");
                    return Ok(pb::Tenant::from((&tenant, &layout)));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended("updating tenant", &req.name))
    }

    async fn remove_tenant(&self, name: &str) -> Result<pb::Tenant, Status> {
        check_name("tenant", name)?;
        let keys = self.store.keys();
        let (_, layout) = current_layout(&self.store).await?;
        for _ in 0..MAX_ATTEMPTS {
            let tenant = self.get_tenant(name).await?;
            let endpoints = self
                .store
                .list(&keys.tenant_endpoints_of(name))
                .await
                .map_err(store_status)?;
            if !endpoints.items.is_empty() {
                let ids = ids_of(&endpoints.items);
                return Err(Status::failed_precondition(format!(
                    "tenant {name} has {} endpoint(s) ({}); release them first",
                    ids.len(),
                    preview(&ids)
                )));
            }
            let result = self
                .store
                .txn()
                .delete(&keys.tenant(name), tenant.mod_revision)
                .delete_unchecked(&keys.tenant_id(tenant.value.id))
                .delete_prefix(&keys.segments_of(name))
                .delete_prefix(&keys.segment_ids_of(name))
                .expect_empty(&keys.tenant_endpoints_of(name))
                .commit()
                .await;
            match result {
                Ok(_) => {
                    tracing::info!(tenant = %name, "tenant removed");
                    return Ok(pb::Tenant::from((&tenant.value, &layout)));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended("removing tenant", name))
    }
}

/// The number of an id claim (`.../0000000005`).
pub(crate) fn id_of<T>(claim: &Versioned<T>) -> Option<u32> {
    claim.key_name().parse().ok()
}

#[tonic::async_trait]
impl tenants_server::Tenants for TenantService {
    async fn add_tenant(
        &self,
        request: Request<pb::AddTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let name = &request.get_ref().name;
        authorize(&request, Action::new(Verb::Create, Object::Tenant(name)))?;
        self.add_tenant(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        let req = request.get_ref();
        let who = authorize(
            &request,
            Action::new(Verb::Update, Object::Tenant(&req.name)),
        )?;
        // Any isolation in the request needs the right to change it, even the current one:
        // the answer must not depend on what the isolation happens to be.
        if req.isolation != pb::Isolation::Unspecified as i32 {
            require(
                &who,
                Action::new(Verb::Update, Object::Isolation(&req.name)),
            )?;
        }
        self.update_tenant(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::Tenant>, Status> {
        check_name("tenant", &request.get_ref().name)?;
        authorize(
            &request,
            Action::read(Object::Tenant(&request.get_ref().name)),
        )?;
        let name = request.into_inner().name;
        let (_, layout) = current_layout(&self.store).await?;
        let tenant = self.get_tenant(&name).await?;
        Ok(Response::new(pb::Tenant::from((&tenant.value, &layout))))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let who = caller(&request)?;
        let (_, layout) = current_layout(&self.store).await?;
        let listing = self
            .store
            .list(&self.store.keys().tenants())
            .await
            .map_err(store_status)?;
        let mut tenants: Vec<Tenant> = listing
            .items
            .into_iter()
            .map(|t| t.value)
            .filter(|t| may(&who, Action::read(Object::Tenant(&t.name))))
            .collect();
        tenants.sort_by_key(|t| t.id);
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: tenants
                .iter()
                .map(|t| pb::Tenant::from((t, &layout)))
                .collect(),
        }))
    }

    async fn remove_tenant(
        &self,
        request: Request<pb::RemoveTenantRequest>,
    ) -> Result<Response<pb::RemoveTenantResponse>, Status> {
        let name = &request.get_ref().name;
        authorize(&request, Action::new(Verb::Delete, Object::Tenant(name)))?;
        let tenant = self.remove_tenant(&request.into_inner().name).await?;
        Ok(Response::new(pb::RemoveTenantResponse {
            tenant: Some(tenant),
        }))
    }

    async fn add_segment(
        &self,
        request: Request<pb::AddSegmentRequest>,
    ) -> Result<Response<pb::Segment>, Status> {
        let req = request.get_ref();
        authorize(&request, segment(Verb::Create, &req.tenant, &req.name))?;
        self.add_segment(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        let who = caller(&request)?;
        let tenant = &request.get_ref().tenant;
        if !tenant.is_empty() {
            // Before the existence check, so that it tells nothing about other tenants.
            require(&who, Action::read(Object::Tenant(tenant)))?;
        }
        let (_, layout) = current_layout(&self.store).await?;
        let mut segments = self
            .list_segments(&request.into_inner().tenant, &layout)
            .await?;
        segments.retain(|s| may(&who, segment(Verb::Read, &s.tenant, &s.name)));
        Ok(Response::new(pb::ListSegmentsResponse { segments }))
    }

    async fn remove_segment(
        &self,
        request: Request<pb::RemoveSegmentRequest>,
    ) -> Result<Response<pb::RemoveSegmentResponse>, Status> {
        let req = request.get_ref();
        authorize(&request, segment(Verb::Delete, &req.tenant, &req.name))?;
        let segment = self.remove_segment(request.into_inner()).await?;
        Ok(Response::new(pb::RemoveSegmentResponse {
            segment: Some(segment),
        }))
    }
}
