//! The `--watch` forms of `host status`, `ipam list` and `policy list`: which Watch* RPC
//! each opens, and the same views and tables as without `--watch` ([`crate::watch`]).

use romana_proto::pb;
use serde::Serialize;
use tonic::Streaming;

use super::Ctx;
use crate::view::PolicyView;
use crate::watch::Watch;
use crate::{output, view, Error, Format};

/// Largest listing a watch accepts in one message (tonic's default is 4 MiB, about 20 000
/// endpoints); the whole listing is one message.
const MAX_LISTING_BYTES: usize = 256 << 20;

/// `host status [NAME] --watch`.
pub struct HostStatusWatch {
    pub host: Option<String>,
}

/// Every host's row, or one host's detail (null in JSON once the host is gone).
#[derive(Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum HostStatusFrame {
    All(Vec<view::HostStatus>),
    One(Option<view::HostStatus>),
}

impl Watch for HostStatusWatch {
    type Message = pb::ListHostStatusResponse;
    type View = HostStatusFrame;

    async fn open(&self, ctx: &Ctx) -> Result<Streaming<Self::Message>, Error> {
        let request = pb::WatchHostStatusRequest {
            host: self.host.clone().unwrap_or_default(),
        };
        let mut client = ctx
            .topology()
            .await?
            .max_decoding_message_size(MAX_LISTING_BYTES);
        Ok(client.watch_host_status(request).await?.into_inner())
    }

    fn view(&self, message: Self::Message) -> HostStatusFrame {
        let hosts = message.hosts.into_iter().map(view::HostStatus::from);
        match self.host {
            Some(_) => HostStatusFrame::One(hosts.into_iter().next()),
            None => HostStatusFrame::All(hosts.collect()),
        }
    }

    fn table(&self, frame: &HostStatusFrame, now: u64) -> String {
        match frame {
            HostStatusFrame::All(hosts) => super::host::status_table(hosts, now),
            HostStatusFrame::One(Some(status)) => super::host::status_detail(status, now),
            HostStatusFrame::One(None) => format!(
                "host {} does not exist (any more)\n",
                self.host.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// `ipam list [--host H] [--tenant T] [--segment S] --watch`.
pub struct EndpointsWatch {
    pub request: pb::WatchEndpointsRequest,
}

impl Watch for EndpointsWatch {
    type Message = pb::WatchEndpointsResponse;
    type View = Vec<view::Endpoint>;

    async fn open(&self, ctx: &Ctx) -> Result<Streaming<Self::Message>, Error> {
        let mut client = ctx
            .ipam()
            .await?
            .max_decoding_message_size(MAX_LISTING_BYTES);
        Ok(client
            .watch_endpoints(self.request.clone())
            .await?
            .into_inner())
    }

    fn view(&self, message: Self::Message) -> Vec<view::Endpoint> {
        let mut endpoints = message.endpoints;
        // Address order, as `ipam list` prints them.
        endpoints.sort_by_key(|e| e.address.parse::<std::net::IpAddr>().ok());
        endpoints.into_iter().map(Into::into).collect()
    }

    fn table(&self, endpoints: &Vec<view::Endpoint>, _: u64) -> String {
        output::list(endpoints, Format::Table).unwrap_or_default()
    }
}

/// `policy list [--tenant T] --watch`.
pub struct PoliciesWatch {
    pub tenant: Option<String>,
}

impl Watch for PoliciesWatch {
    type Message = pb::ListPoliciesResponse;
    type View = Vec<PolicyView>;

    async fn open(&self, ctx: &Ctx) -> Result<Streaming<Self::Message>, Error> {
        let request = pb::WatchPoliciesRequest {
            tenant: self.tenant.clone().unwrap_or_default(),
        };
        let channel = ctx.channel("policy").await?;
        let mut client = pb::policies_client::PoliciesClient::new(channel)
            .max_decoding_message_size(MAX_LISTING_BYTES);
        Ok(client.watch_policies(request).await?.into_inner())
    }

    fn view(&self, message: Self::Message) -> Vec<PolicyView> {
        message.policies.into_iter().map(Into::into).collect()
    }

    fn table(&self, policies: &Vec<PolicyView>, _: u64) -> String {
        output::list(policies, Format::Table).unwrap_or_default()
    }
}
