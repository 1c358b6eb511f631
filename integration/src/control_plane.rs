//! The control plane of a test cluster: a real etcd plus root, topology, tenant, ipam and
//! policy services running in-process on loopback port 0, exactly as their binaries run them
//! (same `run` functions, same registration in etcd, discovered through root).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use romana_store::{Keys, Store};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::etcd::EtcdCluster;

/// The services a control plane runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Root,
    Topology,
    Tenant,
    Ipam,
    Policy,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Root,
        Service::Topology,
        Service::Tenant,
        Service::Ipam,
        Service::Policy,
    ];

    /// The kind the service registers under.
    pub fn kind(self) -> &'static str {
        self.serving().kind
    }

    /// The service as `romana_runtime::serve` runs it.
    pub fn serving(self) -> romana_runtime::Serving {
        match self {
            Service::Root => romana_root::SERVING,
            Service::Topology => romana_topology::SERVING,
            Service::Tenant => romana_tenant::SERVING,
            Service::Ipam => romana_ipam::SERVING,
            Service::Policy => romana_policy::SERVING,
        }
    }
}

struct Running {
    service: Service,
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

/// etcd and the services; everything is stopped on drop.
pub struct ControlPlane {
    /// The address etcd and the services listen on.
    ip: IpAddr,
    running: Vec<Running>,
    store: Store,
    etcd: EtcdCluster,
}

/// How a [`ControlPlane`] starts: [`ControlPlane::builder`].
#[derive(Clone, Debug)]
pub struct ControlPlaneBuilder {
    ip: IpAddr,
    etcd_members: usize,
    services: Vec<Service>,
}

impl ControlPlaneBuilder {
    /// Listen on `ip`: an address of the current network namespace that other namespaces
    /// reach (see [`crate::netns::Lab`]). Loopback by default.
    pub fn on(mut self, ip: IpAddr) -> Self {
        self.ip = ip;
        self
    }

    /// Run etcd as a cluster of `members` (1 by default), for tests of member failures.
    /// Services and [`ControlPlane::store`] are given every member's endpoint.
    pub fn etcd_members(mut self, members: usize) -> Self {
        self.etcd_members = members;
        self
    }

    /// Do not run `service` in-process (a test runs its binary instead, say).
    pub fn without(mut self, service: Service) -> Self {
        self.services.retain(|s| *s != service);
        self
    }

    pub async fn start(self) -> anyhow::Result<ControlPlane> {
        let (ip, members) = (self.ip, self.etcd_members);
        let etcd =
            tokio::task::spawn_blocking(move || EtcdCluster::start_on(ip, members)).await??;
        let store = Store::connect(&etcd.endpoints(), Keys::default()).await?;
        let mut plane = ControlPlane {
            ip,
            running: Vec::new(),
            store,
            etcd,
        };
        for service in self.services {
            plane.start_service(service).await?;
        }
        Ok(plane)
    }
}

impl ControlPlane {
    /// Starts etcd and one instance of every service on loopback, and waits until all are
    /// registered.
    pub async fn start() -> anyhow::Result<ControlPlane> {
        ControlPlane::builder().start().await
    }

    /// Like [`ControlPlane::start`], listening on `ip`: an address of the current network
    /// namespace that other namespaces reach (see [`crate::netns::Lab`]).
    pub async fn start_on(ip: IpAddr) -> anyhow::Result<ControlPlane> {
        ControlPlane::builder().on(ip).start().await
    }

    /// One etcd member and every service on loopback unless told otherwise.
    pub fn builder() -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            etcd_members: 1,
            services: Service::ALL.to_vec(),
        }
    }

    /// Starts one more instance of `service` (a replica) and returns its URL once it is
    /// registered and discoverable.
    pub async fn start_service(&mut self, service: Service) -> anyhow::Result<String> {
        let listener = TcpListener::bind(SocketAddr::new(self.ip, 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown: romana_runtime::Shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        let store = self.store.clone();
        let u = url.clone();
        let task = tokio::spawn(async move {
            let result =
                romana_runtime::serve(service.serving(), u, listener, store, None, shutdown).await;
            if let Err(e) = result {
                tracing::error!(service = service.kind(), error = %e, "test service failed");
            }
        });
        self.running.push(Running {
            service,
            url: url.clone(),
            stop: Some(stop),
            task,
        });
        self.wait_registered(service, &url).await?;
        Ok(url)
    }

    /// Waits until an instance of `service` at `url` is registered (and so discoverable
    /// through root), for up to 20 s.
    pub async fn wait_registered(&self, service: Service, url: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let prefix = self.store.keys().services_of(service.kind());
        loop {
            let listing = self.store.list(&prefix).await.context("listing services")?;
            if listing.items.iter().any(|s| s.value.url == url) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} at {url} did not register within 20s", service.kind());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The URL clients start from.
    pub fn root_url(&self) -> String {
        self.url(Service::Root)
    }

    /// The URL of the first running instance of `service`.
    pub fn url(&self, service: Service) -> String {
        self.running
            .iter()
            .find(|r| r.service == service)
            .map(|r| r.url.clone())
            .unwrap_or_else(|| panic!("{} runs in-process on this plane", service.kind()))
    }

    /// URLs of every running instance of `service`.
    pub fn urls(&self, service: Service) -> Vec<String> {
        self.running
            .iter()
            .filter(|r| r.service == service)
            .map(|r| r.url.clone())
            .collect()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The etcd members (one unless built with [`ControlPlaneBuilder::etcd_members`]).
    pub fn etcd(&self) -> &EtcdCluster {
        &self.etcd
    }

    /// The etcd members, to stop, kill, freeze or restart them.
    pub fn etcd_mut(&mut self) -> &mut EtcdCluster {
        &mut self.etcd
    }

    /// The address etcd and the services listen on.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    pub fn etcd_endpoints(&self) -> Vec<String> {
        self.etcd.endpoints()
    }

    /// Stops every service gracefully (drain, withdraw registration) and waits for them;
    /// etcd keeps running until the control plane is dropped.
    pub async fn shutdown(&mut self) {
        for r in &mut self.running {
            if let Some(stop) = r.stop.take() {
                let _ = stop.send(());
            }
        }
        for r in self.running.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(10), r.task).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for r in &mut self.running {
            r.task.abort();
        }
    }
}
