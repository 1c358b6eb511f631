//! topology-service: hosts and the fabric around them. A host gets the lowest free index in
//! its rack; its prefix is derived from that index and never stored. The fabric view lists
//! the static routes a routed-access fabric needs: host prefixes on each leaf, rack
//! aggregates on the spine.
//!
//! # Layout
//! - [`TopologyService`]: the gRPC handlers.
//! - [`fabric`]: the fabric view, a pure function of the hosts and the layout.
//! - [`run`]: serve on a listener until shutdown.
#![forbid(unsafe_code)]

pub mod fabric;

use std::collections::BTreeSet;

use romana_core::{alloc::lowest_free, model::validate_name, Host};
use romana_proto::convert::{host_to_pb, parse_ip};
use romana_proto::pb::{self, topology_server};
use romana_runtime::{current_layout, invalid, preview, store_status, Serving, Shutdown};
use romana_store::{Store, StoreError};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// How often a write that lost a race to another replica is retried before giving up.
const MAX_ATTEMPTS: usize = 20;

pub struct TopologyService {
    store: Store,
}

/// Serves topology-service on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    store: Store,
    url: String,
    shutdown: Shutdown,
) -> Result<(), romana_runtime::serve::ServeError> {
    let routes =
        tonic::service::Routes::new(topology_server::TopologyServer::new(TopologyService {
            store: store.clone(),
        }));
    let serving = Serving {
        kind: "topology",
        grpc_name: "romana.v1.Topology",
        url,
    };
    romana_runtime::serve(serving, routes, listener, store, shutdown).await
}

// === impl TopologyService ===

impl TopologyService {
    async fn add_host(&self, req: pb::AddHostRequest) -> Result<pb::Host, Status> {
        validate_name("host", &req.name).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let ip = parse_ip("ip", &req.ip).map_err(invalid)?;
        let rack = req.rack.unwrap_or(0);
        let keys = self.store.keys();
        for _ in 0..MAX_ATTEMPTS {
            let (config, layout) = current_layout(&self.store).await?;
            if u64::from(rack) >= layout.max_racks() {
                return Err(Status::invalid_argument(format!(
                    "rack {rack} is out of range: the layout has {} rack(s), 0..={}",
                    layout.max_racks(),
                    layout.max_racks() - 1
                )));
            }
            let hosts = self.store.list(&keys.hosts()).await.map_err(store_status)?;
            if let Some(h) = hosts.items.iter().find(|h| h.value.name == req.name) {
                return Err(Status::already_exists(format!(
                    "host {} already exists (ip {}, rack {}, index {})",
                    h.value.name, h.value.ip, h.value.rack, h.value.index
                )));
            }
            if let Some(h) = hosts.items.iter().find(|h| h.value.ip == ip) {
                return Err(Status::already_exists(format!(
                    "ip {ip} already belongs to host {}",
                    h.value.name
                )));
            }
            let used: BTreeSet<u32> = hosts
                .items
                .iter()
                .filter(|h| h.value.rack == rack)
                .map(|h| h.value.index)
                .collect();
            let first = layout
                .host_index(rack, 0)
                .map_err(|e| Status::internal(e.to_string()))?;
            let last = first + (layout.hosts_per_rack() - 1) as u32;
            let Some(index) = lowest_free(&used, first..=last) else {
                return Err(Status::resource_exhausted(format!(
                    "rack {rack} is full: all {} host slots are used (host bits {}, rack bits {})",
                    layout.hosts_per_rack(),
                    layout.config().host_bits,
                    layout.config().rack_bits
                )));
            };
            let host = Host {
                name: req.name.clone(),
                ip,
                rack,
                index,
            };
            let result = self
                .store
                .txn()
                .create(&keys.host(&host.name), &host)
                .create(&keys.host_index(index), &host.name)
                .create(&keys.host_ip(ip), &host.name)
                .expect_unchanged(&keys.config(), config.mod_revision)
                .commit()
                .await;
            match result {
                Ok(_) => {
                    tracing::info!(host = %host.name, %ip, rack, index, "host added");
                    return Ok(host_to_pb(&host, &layout));
                }
                // Another replica took the index (or the name/ip) first: read again.
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(contended("adding host", &req.name))
    }

    async fn remove_host(
        &self,
        req: pb::RemoveHostRequest,
    ) -> Result<pb::RemoveHostResponse, Status> {
        let keys = self.store.keys();
        let (_, layout) = current_layout(&self.store).await?;
        for _ in 0..MAX_ATTEMPTS {
            let host = self
                .store
                .get(&keys.host(&req.name))
                .await
                .map_err(store_status)?
                .ok_or_else(|| Status::not_found(format!("host {} does not exist", req.name)))?;
            let endpoints = self
                .store
                .list(&keys.host_endpoints_of(&req.name))
                .await
                .map_err(store_status)?;
            if !endpoints.items.is_empty() && !req.force {
                let ids: Vec<&str> = endpoints.items.iter().map(|e| e.key_name()).collect();
                return Err(Status::failed_precondition(format!(
                    "host {} has {} live endpoint(s) ({}); release them or remove with --force",
                    req.name,
                    ids.len(),
                    preview(&ids)
                )));
            }
            let mut txn = self
                .store
                .txn()
                .delete(&keys.host(&req.name), host.mod_revision)
                .delete_unchecked(&keys.host_index(host.value.index))
                .delete_unchecked(&keys.host_ip(host.value.ip));
            if !req.force {
                txn = txn.expect_empty(&keys.host_endpoints_of(&req.name));
            }
            match txn.commit().await {
                Ok(_) => {}
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_status(e)),
            }
            // The host is gone, so no new endpoint can land on it (allocation compares the
            // host's revision); now release what was there.
            let released = if req.force {
                self.release_all_on(&req.name).await?
            } else {
                0
            };
            tracing::info!(host = %req.name, released, "host removed");
            return Ok(pb::RemoveHostResponse {
                host: Some(host_to_pb(&host.value, &layout)),
                released_endpoints: released,
            });
        }
        Err(contended("removing host", &req.name))
    }

    async fn release_all_on(&self, host: &str) -> Result<u32, Status> {
        let keys = self.store.keys();
        let index = self
            .store
            .list(&keys.host_endpoints_of(host))
            .await
            .map_err(store_status)?;
        let mut released = 0;
        for entry in index.items {
            let id = entry.key_name();
            let Some(endpoint) = self
                .store
                .get(&keys.endpoint(id))
                .await
                .map_err(store_status)?
            else {
                continue;
            };
            match self.store.release_endpoint(&endpoint).await {
                Ok(_) => released += 1,
                // Released concurrently by someone else: fine, it is gone either way.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(store_status(e)),
            }
        }
        Ok(released)
    }
}

fn contended(what: &str, name: &str) -> Status {
    Status::aborted(format!(
        "{what} {name}: lost {MAX_ATTEMPTS} races in a row against concurrent changes; retry"
    ))
}

#[tonic::async_trait]
impl topology_server::Topology for TopologyService {
    async fn add_host(
        &self,
        request: Request<pb::AddHostRequest>,
    ) -> Result<Response<pb::Host>, Status> {
        self.add_host(request.into_inner()).await.map(Response::new)
    }

    async fn get_host(
        &self,
        request: Request<pb::GetHostRequest>,
    ) -> Result<Response<pb::Host>, Status> {
        let name = request.into_inner().name;
        let (_, layout) = current_layout(&self.store).await?;
        let host = self
            .store
            .get(&self.store.keys().host(&name))
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("host {name} does not exist")))?;
        Ok(Response::new(host_to_pb(&host.value, &layout)))
    }

    async fn list_hosts(
        &self,
        request: Request<pb::ListHostsRequest>,
    ) -> Result<Response<pb::ListHostsResponse>, Status> {
        let rack = request.into_inner().rack;
        let (_, layout) = current_layout(&self.store).await?;
        let listing = self
            .store
            .list(&self.store.keys().hosts())
            .await
            .map_err(store_status)?;
        let mut hosts: Vec<Host> = listing
            .items
            .into_iter()
            .map(|h| h.value)
            .filter(|h| rack.is_none_or(|r| h.rack == r))
            .collect();
        hosts.sort_by_key(|h| h.index);
        Ok(Response::new(pb::ListHostsResponse {
            hosts: hosts.iter().map(|h| host_to_pb(h, &layout)).collect(),
        }))
    }

    async fn remove_host(
        &self,
        request: Request<pb::RemoveHostRequest>,
    ) -> Result<Response<pb::RemoveHostResponse>, Status> {
        self.remove_host(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_fabric(
        &self,
        _: Request<pb::GetFabricRequest>,
    ) -> Result<Response<pb::Fabric>, Status> {
        let (_, layout) = current_layout(&self.store).await?;
        let listing = self
            .store
            .list(&self.store.keys().hosts())
            .await
            .map_err(store_status)?;
        let hosts: Vec<Host> = listing.items.into_iter().map(|h| h.value).collect();
        let view = fabric::view(&hosts, &layout).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(view))
    }
}
