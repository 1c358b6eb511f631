//! The plugin's client of ipam-service, found through root, with each call's failure turned
//! into a [`CniError`] that names the step.

use std::future::Future;
use std::time::Duration;

use romana_proto::discover::{self, Timeouts};
use romana_proto::pb;
use romana_proto::pb::ipam_client::IpamClient;
use tonic::transport::Channel;

use crate::config::NetConf;
use crate::error::CniError;

/// How long the first call on an unproven connection may take before the instance is
/// health-checked as well (see [`Ipam::first_call`]). Far above an answer's time on a
/// loaded host, far below a caller's patience.
pub const PROBE_AFTER: Duration = Duration::from_millis(250);

/// A connection to one ipam-service instance. Clones share the connection.
#[derive(Clone)]
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

    /// Finds ipam-service and makes `call` its first call, on a connection not proven by a
    /// health check: an answer proves it, and saves that round trip. Only when the call is
    /// slower than [`PROBE_AFTER`] is the instance health-checked alongside it; one that
    /// does not answer that either (frozen, say: it still accepts connections) is given up,
    /// the call abandoned, and made again on an instance that discovery's health check
    /// passes. So `call` must be idempotent (every call of the plugin's is, by endpoint id).
    pub async fn first_call<T, F, Fut>(conf: &NetConf, call: F) -> Result<(Ipam, T), CniError>
    where
        F: Fn(Ipam) -> Fut,
        Fut: Future<Output = Result<T, CniError>>,
    {
        Ipam::first_call_with(conf, Timeouts::default(), call).await
    }

    pub async fn first_call_with<T, F, Fut>(
        conf: &NetConf,
        timeouts: Timeouts,
        call: F,
    ) -> Result<(Ipam, T), CniError>
    where
        F: Fn(Ipam) -> Fut,
        Fut: Future<Output = Result<T, CniError>>,
    {
        let channel = discover::connected_with_tls(&conf.root, "ipam", timeouts, conf.tls.as_ref())
            .await
            .map_err(CniError::Discover)?;
        let ipam = Ipam {
            client: IpamClient::new(channel.clone()),
        };
        let first = call(ipam.clone());
        tokio::pin!(first);
        tokio::select! {
            result = &mut first => return Ok((ipam, result?)),
            () = tokio::time::sleep(PROBE_AFTER) => {}
        }
        tokio::select! {
            result = &mut first => return Ok((ipam, result?)),
            answered = discover::answers(&channel, timeouts.connect) => match answered {
                // Busy, not silent: the call goes on, bounded by the request timeout.
                Ok(()) => return Ok((ipam, first.await?)),
                Err(reason) => tracing::warn!(%reason, "ipam-service is silent; trying another"),
            },
        }
        let ipam = Ipam::connect_with(conf, timeouts).await?;
        let result = call(ipam.clone()).await?;
        Ok((ipam, result))
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
            .release(pb::ReleaseRequest::endpoint(id.to_string()))
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
