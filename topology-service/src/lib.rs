//! topology-service: hosts and the fabric around them. A host gets the lowest free index in
//! its rack; its prefix is derived from that index and never stored. The fabric view lists
//! the static routes a routed-access fabric needs: host prefixes on each leaf, rack
//! aggregates on the spine. Host status is what each host's agent last reported applying,
//! served next to the host it describes.
//!
//! # Layout
//! - [`TopologyService`]: the gRPC handlers.
//! - [`current_report`]: which agent record, if any, speaks for a host.
//! - [`fabric`]: the fabric view, a pure function of the hosts and the layout.
//! - [`watching`]: the host status listing, and its watch (WatchHostStatus).
//! - [`SERVING`], [`routes`]: what [`romana_runtime::serve`] runs.
#![forbid(unsafe_code)]

pub mod fabric;
pub mod watching;

use std::collections::BTreeSet;
use std::net::IpAddr;

use romana_core::authz::{Action, Object, Verb};
use romana_core::{
    alloc::lowest_free, model::same_family, names::validate_host_name, validate_host_ip,
    AgentStatus, Host,
};
use romana_proto::convert::parse_ip;
use romana_proto::pb::{self, topology_server};
use romana_runtime::authz::{authorize, caller, may, require};
use romana_runtime::listings::Draining;
use romana_runtime::serve::Routes;
use romana_runtime::{
    bad_name, check_name, contended, current_layout, invalid, preview, store_status, Serving,
    MAX_ATTEMPTS,
};
use romana_store::{Store, StoreError, Versioned};
use tonic::{Request, Response, Status};

pub struct TopologyService {
    store: Store,
    draining: Draining,
}

/// topology-service as [`romana_runtime::serve`] runs it.
pub const SERVING: Serving = Serving {
    kind: "topology",
    grpc_name: "romana.v1.Topology",
    routes,
};

/// The topology-service handlers over `store`.
pub fn routes(store: &Store, draining: Draining) -> Routes {
    romana_runtime::grpc_routes!(topology_server::TopologyServer::new(TopologyService {
        store: store.clone(),
        draining,
    }))
}

// === impl TopologyService ===

impl TopologyService {
    /// The host `name`, NOT_FOUND when there is none.
    async fn host(&self, name: &str) -> Result<Versioned<Host>, Status> {
        self.store
            .get(&self.store.keys().host(name))
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("host {name} does not exist")))
    }

    /// Every host, in etcd's key order.
    async fn hosts(&self) -> Result<Vec<Host>, Status> {
        let listing = self
            .store
            .list(&self.store.keys().hosts())
            .await
            .map_err(store_status)?;
        Ok(listing.items.into_iter().map(|h| h.value).collect())
    }

    async fn add_host(&self, req: pb::AddHostRequest) -> Result<pb::Host, Status> {
        validate_host_name(&req.name).map_err(bad_name)?;
        let ip = host_ip("ip", &req.ip)?;
        let second_ip = match req.second_ip.trim() {
            "" => None,
            _ => Some(host_ip("second_ip", &req.second_ip)?),
        };
        if let Some(second) = second_ip.filter(|s| same_family(*s, ip)) {
            return Err(Status::invalid_argument(format!(
                "second_ip: {second} is of the same IP family as ip {ip}; a host has at most \
                 one fabric address per family"
            )));
        }
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
            let ours = std::iter::once(("ip", ip)).chain(second_ip.map(|s| ("second_ip", s)));
            for (field, addr) in ours {
                if let Some(h) = hosts
                    .items
                    .iter()
                    .find(|h| h.value.ips().any(|a| a == addr))
                {
                    return Err(Status::already_exists(format!(
                        "{field} {addr} already belongs to host {}",
                        h.value.name
                    )));
                }
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
                second_ip,
            };
            let mut txn = self
                .store
                .txn()
                .create(&keys.host(&host.name), &host)
                .create(&keys.host_index(index), &host.name)
                .expect_unchanged(&keys.config(), config.mod_revision);
            // Each fabric address is claimed by one host, whichever field holds it.
            for addr in host.ips() {
                txn = txn.create(&keys.host_ip(addr), &host.name);
            }
            match txn.commit().await {
                Ok(_) => {
                    tracing::info!(host = %host.name, %ip, ?second_ip, rack, index, "host added");
                    return Ok(pb::Host::from((&host, &layout)));
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
        check_name("host", &req.name)?;
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
                .delete_unchecked(&keys.host_index(host.value.index));
            for addr in host.value.ips() {
                txn = txn.delete_unchecked(&keys.host_ip(addr));
            }
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
                host: Some(pb::Host::from((&host.value, &layout))),
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

/// The fabric address in `field` of an AddHost request: an address
/// [`validate_host_ip`] accepts, else INVALID_ARGUMENT naming the field.
fn host_ip(field: &'static str, text: &str) -> Result<IpAddr, Status> {
    let ip = parse_ip(field, text).map_err(invalid)?;
    validate_host_ip(ip).map_err(|e| Status::invalid_argument(format!("{field}: {e}")))?;
    Ok(ip)
}

/// The agent record that speaks for `host`, if any. Removing a host leaves its agent's record
/// behind (the agent may still be running and would write it again), so a record written
/// before the host was added belongs to an earlier host of that name and is not a report
/// about this one.
pub fn current_report<'a>(
    host: &Versioned<Host>,
    status: Option<&'a Versioned<AgentStatus>>,
) -> Option<&'a AgentStatus> {
    status
        .filter(|s| s.mod_revision >= host.create_revision)
        .map(|s| &s.value)
}

#[tonic::async_trait]
impl topology_server::Topology for TopologyService {
    async fn add_host(
        &self,
        request: Request<pb::AddHostRequest>,
    ) -> Result<Response<pb::Host>, Status> {
        let name = &request.get_ref().name;
        authorize(&request, Action::new(Verb::Create, Object::Host(name)))?;
        self.add_host(request.into_inner()).await.map(Response::new)
    }

    async fn get_host(
        &self,
        request: Request<pb::GetHostRequest>,
    ) -> Result<Response<pb::Host>, Status> {
        authorize(
            &request,
            Action::read(Object::Host(&request.get_ref().name)),
        )?;
        let name = request.into_inner().name;
        check_name("host", &name)?;
        let (_, layout) = current_layout(&self.store).await?;
        let host = self.host(&name).await?;
        Ok(Response::new(pb::Host::from((&host.value, &layout))))
    }

    async fn list_hosts(
        &self,
        request: Request<pb::ListHostsRequest>,
    ) -> Result<Response<pb::ListHostsResponse>, Status> {
        let who = caller(&request)?;
        let rack = request.into_inner().rack;
        let (_, layout) = current_layout(&self.store).await?;
        let mut hosts: Vec<Host> = self
            .hosts()
            .await?
            .into_iter()
            .filter(|h| rack.is_none_or(|r| h.rack == r))
            .filter(|h| may(&who, Action::read(Object::Host(&h.name))))
            .collect();
        hosts.sort_by_key(|h| h.index);
        Ok(Response::new(pb::ListHostsResponse {
            hosts: hosts.iter().map(|h| pb::Host::from((h, &layout))).collect(),
        }))
    }

    async fn remove_host(
        &self,
        request: Request<pb::RemoveHostRequest>,
    ) -> Result<Response<pb::RemoveHostResponse>, Status> {
        let name = &request.get_ref().name;
        authorize(&request, Action::new(Verb::Delete, Object::Host(name)))?;
        self.remove_host(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_fabric(
        &self,
        request: Request<pb::GetFabricRequest>,
    ) -> Result<Response<pb::Fabric>, Status> {
        authorize(&request, Action::read(Object::Fabric))?;
        let (_, layout) = current_layout(&self.store).await?;
        let hosts = self.hosts().await?;
        let view = fabric::view(&hosts, &layout).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(view))
    }

    async fn get_host_status(
        &self,
        request: Request<pb::GetHostStatusRequest>,
    ) -> Result<Response<pb::HostStatus>, Status> {
        authorize(
            &request,
            Action::read(Object::HostStatus(&request.get_ref().host)),
        )?;
        let name = request.into_inner().host;
        check_name("host", &name)?;
        let host = self.host(&name).await?;
        let status = self
            .store
            .get(&self.store.keys().agent_status(&name))
            .await
            .map_err(store_status)?;
        let report = current_report(&host, status.as_ref());
        Ok(Response::new(pb::HostStatus::from((name.as_str(), report))))
    }

    async fn list_host_status(
        &self,
        request: Request<pb::ListHostStatusRequest>,
    ) -> Result<Response<pb::ListHostStatusResponse>, Status> {
        let who = caller(&request)?;
        let hosts = watching::host_statuses(&self.store, &who, "").await?;
        Ok(Response::new(pb::ListHostStatusResponse { hosts }))
    }

    type WatchHostStatusStream = romana_runtime::listings::Listings<pb::ListHostStatusResponse>;

    async fn watch_host_status(
        &self,
        request: Request<pb::WatchHostStatusRequest>,
    ) -> Result<Response<Self::WatchHostStatusStream>, Status> {
        let who = caller(&request)?;
        let host = request.into_inner().host;
        if !host.is_empty() {
            // As GetHostStatus: the right to this host, and the host, before any stream.
            require(&who, Action::read(Object::HostStatus(&host)))?;
            check_name("host", &host)?;
            let key = self.store.keys().host(&host);
            if self.store.get(&key).await.map_err(store_status)?.is_none() {
                return Err(Status::not_found(format!("host {host} does not exist")));
            }
        }
        let stream = watching::watch(&self.store, self.draining.clone(), who, host);
        Ok(Response::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_host(create_revision: i64) -> Versioned<Host> {
        Versioned {
            key: "/romana/v1/hosts/h1".into(),
            value: Host {
                name: "h1".into(),
                ip: "192.168.0.1".parse().unwrap(),
                rack: 0,
                index: 0,
                second_ip: None,
            },
            mod_revision: create_revision,
            create_revision,
        }
    }

    fn mk_status(mod_revision: i64) -> Versioned<AgentStatus> {
        Versioned {
            key: "/romana/v1/agents/h1/status".into(),
            value: AgentStatus {
                host: "h1".into(),
                revision: mod_revision - 1,
                converged: true,
                ..Default::default()
            },
            mod_revision,
            create_revision: 1,
        }
    }

    #[test]
    fn status_written_after_the_host_was_added_is_its_report() {
        let status = mk_status(11);
        assert_eq!(
            current_report(&mk_host(10), Some(&status)),
            Some(&status.value)
        );
    }

    #[test]
    fn status_left_by_an_earlier_host_of_the_same_name_is_not_a_report() {
        assert_eq!(current_report(&mk_host(10), Some(&mk_status(7))), None);
    }

    #[test]
    fn no_status_is_no_report() {
        assert_eq!(current_report(&mk_host(10), None), None);
    }
}
