//! `romanactl health [URL...]`: asks service instances directly, not through root's
//! registry, whether they serve: the standard gRPC health service (`grpc.health.v1`), as a
//! load balancer or a container health check would. One instance per URL; without a URL,
//! `--root`. Exit 0 only if every instance answers SERVING.

use clap::Args;
use serde::Serialize;
use tabled::Tabled;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use super::Ctx;
use crate::output;
use crate::Error;

#[derive(Debug, Args)]
pub struct Health {
    /// Instance URLs (e.g. https://topology1:9601); default: --root.
    pub urls: Vec<String>,
    /// The service to ask about: a kind (root, topology, tenant, ipam, policy) or a gRPC
    /// service name; default: the server as a whole.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
}

/// One instance's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Tabled)]
#[tabled(rename_all = "UPPERCASE")]
pub struct InstanceHealth {
    pub url: String,
    /// `serving`, `not_serving`, `unknown`, or why there is no answer.
    pub status: String,
}

/// The gRPC service name that `--service` stands for.
pub fn grpc_service_name(service: Option<&str>) -> String {
    match service {
        None => String::new(),
        Some("root") => "romana.v1.Root".into(),
        Some("topology") => "romana.v1.Topology".into(),
        Some("tenant") => "romana.v1.Tenants".into(),
        Some("ipam") => "romana.v1.Ipam".into(),
        Some("policy") => "romana.v1.Policies".into(),
        Some(name) => name.into(),
    }
}

// === impl Health ===

impl Health {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        let urls = if self.urls.is_empty() {
            vec![ctx.root.clone()]
        } else {
            self.urls
        };
        let service = grpc_service_name(self.service.as_deref());
        let mut answers = Vec::with_capacity(urls.len());
        for url in urls {
            let status = check(ctx, &url, &service).await;
            answers.push(InstanceHealth { url, status });
        }
        let failed: Vec<String> = answers
            .iter()
            .filter(|a| a.status != "serving")
            .map(|a| format!("{}: {}", a.url, a.status))
            .collect();
        if !failed.is_empty() {
            return Err(Error::Unhealthy(failed.join("; ")));
        }
        output::list(&answers, ctx.format)
    }
}

/// `serving`, `not_serving`, `unknown`, or the reason there was no answer.
async fn check(ctx: &Ctx, url: &str, service: &str) -> String {
    // Kind "root" is the URL itself: no lookup in a registry.
    let channel =
        match romana_proto::discover::channel_with_tls(url, "root", ctx.timeouts, ctx.tls.as_ref())
            .await
        {
            Ok(channel) => channel,
            Err(e) => return Error::from(e).line(),
        };
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(answer) => match ServingStatus::try_from(answer.into_inner().status) {
            Ok(ServingStatus::Serving) => "serving".into(),
            Ok(ServingStatus::NotServing) => "not_serving".into(),
            _ => "unknown".into(),
        },
        Err(status) => Error::from(status).line(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_name_their_grpc_services() {
        assert_eq!(grpc_service_name(None), "");
        assert_eq!(grpc_service_name(Some("topology")), "romana.v1.Topology");
        assert_eq!(grpc_service_name(Some("policy")), "romana.v1.Policies");
        assert_eq!(grpc_service_name(Some("x.y.Z")), "x.y.Z");
    }
}
