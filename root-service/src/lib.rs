//! root-service: sets the cluster layout once and serves it, and answers where the other
//! services are (every service registers itself in etcd under a lease).
//!
//! # Layout
//! - [`RootService`]: the gRPC handlers.
//! - [`SERVING`], [`routes`]: what [`romana_runtime::serve`] runs.
#![forbid(unsafe_code)]

use romana_core::authz::{Action, Object, Verb};
use romana_core::ClusterConfig;
use romana_proto::pb::{self, root_server};
use romana_runtime::authz::authorize;
use romana_runtime::listings::Draining;
use romana_runtime::serve::Routes;
use romana_runtime::{check_name, invalid, preview, store_status, Serving};
use romana_store::{Store, StoreError};
use tonic::{Request, Response, Status};

pub struct RootService {
    store: Store,
}

/// root-service as [`romana_runtime::serve`] runs it.
pub const SERVING: Serving = Serving {
    kind: "root",
    grpc_name: "romana.v1.Root",
    routes,
};

/// The root-service handlers over `store`.
pub fn routes(store: &Store, _draining: Draining) -> Routes {
    romana_runtime::grpc_routes!(root_server::RootServer::new(RootService {
        store: store.clone(),
    }))
}

// === impl RootService ===

impl RootService {
    async fn init_config(&self, wanted: ClusterConfig) -> Result<(ClusterConfig, bool), Status> {
        let keys = self.store.keys();
        let current = self.store.get(&keys.config()).await.map_err(store_status)?;
        if let Some(current) = &current {
            if current.value == wanted {
                return Ok((wanted, false));
            }
        }
        // Read what the layout constrains, then write only if none of it changed since:
        // a host or a tenant/segment number added concurrently makes the write fail.
        let hosts = self.store.list(&keys.hosts()).await.map_err(store_status)?;
        if !hosts.items.is_empty() {
            let names: Vec<_> = hosts.items.iter().map(|h| h.value.name.as_str()).collect();
            return Err(Status::failed_precondition(format!(
                "the layout cannot change once hosts exist ({} hosts: {}); remove them first",
                names.len(),
                preview(&names)
            )));
        }
        let layout = wanted
            .layout()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let tenants = self
            .store
            .list(&keys.tenants())
            .await
            .map_err(store_status)?;
        if let Some(t) = tenants
            .items
            .iter()
            .find(|t| u64::from(t.value.id) >= layout.max_tenants())
        {
            return Err(Status::failed_precondition(format!(
                "tenant {} has number {}, which {} tenant bits cannot hold; remove it first",
                t.value.name, t.value.id, wanted.tenant_bits
            )));
        }
        let segments = self
            .store
            .list(&keys.segments())
            .await
            .map_err(store_status)?;
        if let Some(s) = segments
            .items
            .iter()
            .find(|s| u64::from(s.value.id) >= layout.max_segments())
        {
            return Err(Status::failed_precondition(format!(
                "segment {}/{} has number {}, which {} segment bits cannot hold; remove it first",
                s.value.tenant, s.value.name, s.value.id, wanted.segment_bits
            )));
        }
        let since = hosts.revision;
        let txn = self.store.txn();
        let txn = match &current {
            Some(c) => txn.update(&keys.config(), &wanted, c.mod_revision),
            None => txn.create(&keys.config(), &wanted),
        };
        let result = txn
            .expect_empty(&keys.hosts())
            .expect_unmodified_since(&keys.tenant_ids(), since)
            .expect_unmodified_since(&keys.segments(), since)
            .commit()
            .await;
        match result {
            Ok(_) => {
                tracing::info!(address_space = %wanted.address_space, "cluster layout set");
                Ok((wanted, true))
            }
            Err(e @ StoreError::Conflict { .. }) => Err(Status::aborted(format!(
                "the cluster changed while the layout was being set ({e}); run the command again"
            ))),
            Err(e) => Err(store_status(e)),
        }
    }
}

#[tonic::async_trait]
impl root_server::Root for RootService {
    async fn init_config(
        &self,
        request: Request<pb::InitConfigRequest>,
    ) -> Result<Response<pb::InitConfigResponse>, Status> {
        authorize(&request, Action::new(Verb::Update, Object::Config))?;
        let wire = request
            .into_inner()
            .config
            .ok_or_else(|| Status::invalid_argument("config: required"))?;
        let wanted = ClusterConfig::try_from(&wire).map_err(invalid)?;
        wanted
            .validate()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (config, changed) = self.init_config(wanted).await?;
        Ok(Response::new(pb::InitConfigResponse {
            config: Some((&config).into()),
            changed,
        }))
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::ClusterConfig>, Status> {
        authorize(&request, Action::read(Object::Config))?;
        let (config, _) = romana_runtime::current_layout(&self.store).await?;
        Ok(Response::new((&config.value).into()))
    }

    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        authorize(&request, Action::read(Object::Services))?;
        let kind = request.into_inner().kind;
        if !kind.is_empty() {
            check_name("service kind", &kind)?;
        }
        let keys = self.store.keys();
        let prefix = if kind.is_empty() {
            keys.services()
        } else {
            keys.services_of(&kind)
        };
        let listing = self.store.list(&prefix).await.map_err(store_status)?;
        let services = listing
            .items
            .into_iter()
            .map(|s| pb::ServiceInstance {
                kind: s.value.kind,
                instance: s.value.instance,
                url: s.value.url,
            })
            .collect();
        Ok(Response::new(pb::ListServicesResponse { services }))
    }
}
