//! Explain: the verdict the agents' programs give a packet, evaluated over etcd's current
//! policies, tenants and endpoints with `romana_core::policy::evaluate`.

use std::str::FromStr;

use romana_core::authz::{Action, Identity, Object};
use romana_core::policy::{evaluate, ClusterView, Packet, PolicySet, Protocol};
use romana_proto::pb;
use romana_runtime::authz::require;
use romana_runtime::{check_name, current_layout, store_status};
use tonic::Status;

use crate::PolicyService;

impl PolicyService {
    pub(crate) async fn explain(
        &self,
        who: &Identity,
        req: pb::ExplainRequest,
    ) -> Result<pb::ExplainResponse, Status> {
        for text in [&req.from, &req.to] {
            if text.parse::<std::net::IpAddr>().is_err() {
                check_name("endpoint", text)?;
            }
        }
        let protocol = Protocol::from_str(&req.protocol)
            .map_err(|e| Status::invalid_argument(format!("protocol: {e}")))?;
        let port =
            match req.port {
                None => None,
                Some(_) if !protocol.has_ports() => {
                    return Err(Status::invalid_argument(format!(
                        "port: {protocol} has no ports"
                    )))
                }
                Some(p) => Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                    Status::invalid_argument(format!("port: {p} is not 1..=65535"))
                })?),
            };
        let icmp = |field: &str, v: Option<u32>| -> Result<Option<u8>, Status> {
            match v {
                None => Ok(None),
                Some(_) if protocol != Protocol::Icmp => Err(Status::invalid_argument(format!(
                    "{field}: only for protocol icmp"
                ))),
                Some(v) => u8::try_from(v)
                    .map(Some)
                    .map_err(|_| Status::invalid_argument(format!("{field}: {v} is not 0..=255"))),
            }
        };
        let icmp_type = icmp("icmp_type", req.icmp_type)?;
        let icmp_code = icmp("icmp_code", req.icmp_code)?;
        if icmp_code.is_some() && icmp_type.is_none() {
            return Err(Status::invalid_argument(
                "icmp_code: an ICMP code is given within its type",
            ));
        }

        let (view, policies) = self.snapshot().await?;
        let (from, to) = view
            .resolve_ends(&req.from, &req.to)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let packet = Packet {
            from,
            to,
            protocol,
            port,
            icmp_type,
            icmp_code,
        };
        // A verdict tells about both sides' policies: a tenant asks only about its own.
        let owner = |a| view.endpoint_at(a).map(|e| e.tenant.as_str());
        let sides = Object::Explain {
            from: owner(packet.from),
            to: owner(packet.to),
        };
        require(who, Action::read(sides))?;
        let decision = evaluate(&policies, &view, &packet);
        Ok(pb::ExplainResponse::from((&decision, &packet)))
    }

    /// What evaluation needs, read from etcd now.
    async fn snapshot(&self) -> Result<(ClusterView, PolicySet), Status> {
        let (_, layout) = current_layout(&self.store).await?;
        let keys = self.store.keys();
        let s = &self.store;
        let hosts = s.list(&keys.hosts()).await.map_err(store_status)?;
        let tenants = s.list(&keys.tenants()).await.map_err(store_status)?;
        let segments = s.list(&keys.segments()).await.map_err(store_status)?;
        let endpoints = s.list(&keys.endpoints()).await.map_err(store_status)?;
        let policies = s.list(&keys.policies()).await.map_err(store_status)?;
        let view = ClusterView::new(
            layout,
            hosts.items.into_iter().map(|v| v.value),
            tenants.items.into_iter().map(|v| v.value),
            segments.items.into_iter().map(|v| v.value),
            endpoints.items.into_iter().map(|v| v.value),
        );
        Ok((view, policies.items.into_iter().map(|v| v.value).collect()))
    }
}
