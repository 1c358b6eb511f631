//! The five services in-process over mutual TLS on one real etcd, and per-identity clients
//! connected straight to each service with that identity's certificate.

use std::time::Duration;

use romana_integration::{eventually, mk_store, EtcdServer, Pki, Service};
use romana_proto::pb;
use romana_store::Store;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, ServerTlsConfig};

pub struct MtlsPlane {
    pub pki: Pki,
    pub store: Store,
    urls: Vec<(Service, String)>,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    _etcd: EtcdServer,
}

/// One identity's view of the services.
#[derive(Clone)]
pub struct Clients {
    pub root: pb::root_client::RootClient<Channel>,
    pub topology: pb::topology_client::TopologyClient<Channel>,
    pub tenants: pb::tenants_client::TenantsClient<Channel>,
    pub ipam: pb::ipam_client::IpamClient<Channel>,
    pub policies: pb::policies_client::PoliciesClient<Channel>,
}

impl MtlsPlane {
    /// etcd, the services serving mutual TLS, and certificates for `identities`.
    pub async fn start(identities: &[&str]) -> MtlsPlane {
        let ids: Vec<String> = identities.iter().map(|s| s.to_string()).collect();
        let pki = tokio::task::spawn_blocking(move || {
            Pki::new(&ids.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap()
        .expect("certificates from romanactl certs");
        let etcd = tokio::task::spawn_blocking(EtcdServer::start)
            .await
            .unwrap()
            .expect("etcd starts");
        let store = mk_store(&etcd.endpoints()).await;
        let mut plane = MtlsPlane {
            pki,
            store,
            urls: Vec::new(),
            stops: Vec::new(),
            tasks: Vec::new(),
            _etcd: etcd,
        };
        for service in Service::ALL {
            let tls = plane.pki.server_tls().unwrap();
            plane.serve(service, Some(tls)).await;
        }
        let store = plane.store.clone();
        eventually("services registered", Duration::from_secs(20), || async {
            let l = store.list(&store.keys().services()).await.ok()?;
            (l.items.len() == Service::ALL.len()).then_some(())
        })
        .await
        .unwrap();
        plane
    }

    /// Serves one more instance of `service` (TLS when `tls` is given) and returns its URL.
    pub async fn serve(&mut self, service: Service, tls: Option<ServerTlsConfig>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown: romana_runtime::Shutdown = Box::pin(async move {
            let _ = stopped.await;
        });
        let (store, u) = (self.store.clone(), url.clone());
        self.tasks.push(tokio::spawn(async move {
            let result =
                romana_runtime::serve(service.serving(), u, listener, store, tls, shutdown).await;
            if let Err(e) = result {
                panic!("{} failed: {e}", service.kind());
            }
        }));
        self.stops.push(stop);
        self.urls.push((service, url.clone()));
        url
    }

    fn url(&self, service: Service) -> &str {
        &self.urls.iter().find(|(s, _)| *s == service).unwrap().1
    }

    /// Clients presenting the certificate of `cn` (issued by [`MtlsPlane::start`] or
    /// written into the PKI directory by the test).
    pub async fn clients(&self, cn: &str) -> Clients {
        let channel = |service| {
            let tls = self.pki.client_tls(cn).unwrap();
            let url = self.url(service).to_string();
            async move {
                Channel::from_shared(url)
                    .unwrap()
                    .tls_config(tls)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap()
            }
        };
        Clients {
            root: pb::root_client::RootClient::new(channel(Service::Root).await),
            topology: pb::topology_client::TopologyClient::new(channel(Service::Topology).await),
            tenants: pb::tenants_client::TenantsClient::new(channel(Service::Tenant).await),
            ipam: pb::ipam_client::IpamClient::new(channel(Service::Ipam).await),
            policies: pb::policies_client::PoliciesClient::new(channel(Service::Policy).await),
        }
    }

    /// etcd's current revision: any write moves it.
    pub async fn revision(&self) -> i64 {
        self.store
            .list(&self.store.keys().services())
            .await
            .unwrap()
            .revision
    }
}

impl Drop for MtlsPlane {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
    }
}
