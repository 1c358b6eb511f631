//! The plugin's client of ipam-service, found through root, with each call's failure turned
//! into a [`CniError`] that names the step.

use romana_proto::discover::{self, Timeouts};
use romana_proto::pb;
use romana_proto::pb::ipam_client::IpamClient;
use tonic::transport::Channel;

use crate::config::NetConf;
use crate::error::CniError;

/// A connection to one ipam-service instance.
pub struct Ipam {
    client: IpamClient<Channel>,
}

impl Ipam {
    /// Finds ipam-service through the config's root, with its TLS settings.
    pub async fn connect(conf: &NetConf) -> Result<Ipam, CniError> {
        Ipam::connect_with(conf, Timeouts::default()).await
    }

    pub async fn connect_with(conf: &NetConf, timeouts: Timeouts) -> Result<Ipam, CniError> {
        let channel = discover::channel_with_tls(&conf.root, "ipam", timeouts, conf.tls.as_ref())
            .await
            .map_err(CniError::Discover)?;
        Ok(Ipam {
            client: IpamClient::new(channel),
        })
    }

    /// Allocates (or returns the address already held by) `request.endpoint`.
    pub async fn allocate(
        &mut self,
        request: pb::AllocateRequest,
    ) -> Result<pb::Endpoint, CniError> {
        let step = format!("allocating an address for endpoint {}", request.endpoint);
        self.client
            .allocate(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| CniError::Ipam { step, status })
    }

    /// Releases `id`'s address; `None` when it held none.
    pub async fn release(&mut self, id: &str) -> Result<Option<pb::Endpoint>, CniError> {
        self.client
            .release(pb::ReleaseRequest {
                target: Some(pb::release_request::Target::Endpoint(id.to_string())),
            })
            .await
            .map(|r| r.into_inner().endpoint)
            .map_err(|status| CniError::Ipam {
                step: format!("releasing endpoint {id}"),
                status,
            })
    }

    /// The endpoint `id`; `None` when it holds no address.
    pub async fn get(&mut self, id: &str) -> Result<Option<pb::Endpoint>, CniError> {
        match self
            .client
            .get_endpoint(pb::GetEndpointRequest {
                endpoint: id.to_string(),
            })
            .await
        {
            Ok(response) => Ok(Some(response.into_inner())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(CniError::Ipam {
                step: format!("reading endpoint {id}"),
                status,
            }),
        }
    }

    /// Every endpoint of `host`.
    pub async fn list_host(&mut self, host: &str) -> Result<Vec<pb::Endpoint>, CniError> {
        let client = &self.client;
        romana_proto::pages::all_endpoints(|page_token| {
            let mut client = client.clone();
            async move {
                client
                    .list_endpoints(pb::ListEndpointsRequest {
                        host: host.to_string(),
                        page_token,
                        ..Default::default()
                    })
                    .await
                    .map(|r| r.into_inner())
            }
        })
        .await
        .map_err(|status| CniError::Ipam {
            step: format!("listing the endpoints of host {host}"),
            status,
        })
    }
}
