//! Every RPC of the API as a value, so that each role's test is a table of calls and what
//! must come back. A call answers the names it saw (for lists), or nothing.

use romana_proto::pb;
use tonic::Status;

use crate::plane::Clients;

#[derive(Clone, Debug)]
pub enum Call {
    // root
    InitConfig,
    GetConfig,
    ListServices,
    // topology
    AddHost(&'static str, &'static str),
    GetHost(&'static str),
    ListHosts,
    RemoveHost(&'static str),
    GetFabric,
    GetHostStatus(&'static str),
    ListHostStatus,
    // tenants
    AddTenant(&'static str),
    UpdateTenantLabels(&'static str),
    UpdateTenantIsolation(&'static str),
    GetTenant(&'static str),
    ListTenants,
    RemoveTenant(&'static str),
    AddSegment(&'static str, &'static str),
    ListSegments(&'static str),
    RemoveSegment(&'static str, &'static str),
    // ipam: (id, host, tenant)
    Allocate(&'static str, &'static str, &'static str),
    /// (id, address): placement from the address alone, as Neutron may ask.
    AllocateAt(&'static str, &'static str),
    Release(&'static str),
    ReleaseAddress(&'static str),
    GetEndpoint(&'static str),
    UpdateEndpoint(&'static str),
    ListEndpoints,
    // policies
    /// Kubernetes NetworkPolicies, (namespace, name) each, in one apply.
    ApplyK8s(Vec<(&'static str, &'static str)>),
    ApplyRomana(&'static str),
    GetPolicy(&'static str),
    ListPolicies,
    DeletePolicy(&'static str),
    Explain(&'static str, &'static str),
}

/// The layout every test cluster gets.
pub fn layout() -> pb::ClusterConfig {
    pb::ClusterConfig {
        address_space: "10.0.0.0/8".into(),
        host_bits: 8,
        tenant_bits: 4,
        segment_bits: 4,
        ..Default::default()
    }
}

pub fn k8s_policy(tenant: &str, name: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: {name}, namespace: {tenant}}}\n\
         spec:\n  podSelector: {{}}\n  policyTypes: [Ingress]\n"
    )
}

pub fn romana_policy(name: &str) -> String {
    format!(
        "name: {name}\ndirection: egress\napplied_to: [{{tenant: t1}}]\n\
         peers: [{{peer: any}}]\nrules: [{{protocol: udp, ports: [53]}}]\n"
    )
}

/// A call's answer when only success matters.
fn none<T>(_: T) -> Vec<String> {
    Vec::new()
}

fn apply(document: String) -> pb::ApplyPoliciesRequest {
    pb::ApplyPoliciesRequest {
        document,
        ..Default::default()
    }
}

impl Call {
    /// Whether the call is meant to change something (a refusal must leave etcd as it was).
    pub fn is_change(&self) -> bool {
        !matches!(
            self,
            Call::GetConfig
                | Call::ListServices
                | Call::GetHost(_)
                | Call::ListHosts
                | Call::GetFabric
                | Call::GetHostStatus(_)
                | Call::ListHostStatus
                | Call::GetTenant(_)
                | Call::ListTenants
                | Call::ListSegments(_)
                | Call::GetEndpoint(_)
                | Call::ListEndpoints
                | Call::GetPolicy(_)
                | Call::ListPolicies
                | Call::Explain(..)
        )
    }

    /// Makes the call; lists answer the names (ids) they returned, sorted.
    pub async fn run(&self, c: &Clients) -> Result<Vec<String>, Status> {
        let mut c = c.clone();
        let mut names: Vec<String> = match self.clone() {
            Call::InitConfig => c
                .root
                .init_config(pb::InitConfigRequest {
                    config: Some(layout()),
                })
                .await
                .map(none)?,
            Call::GetConfig => c.root.get_config(pb::GetConfigRequest {}).await.map(none)?,
            Call::ListServices => {
                let r = c.root.list_services(pb::ListServicesRequest::default());
                r.await?
                    .into_inner()
                    .services
                    .into_iter()
                    .map(|s| s.kind)
                    .collect()
            }
            Call::AddHost(name, ip) => c
                .topology
                .add_host(pb::AddHostRequest {
                    name: name.into(),
                    ip: ip.into(),
                    rack: None,
                    second_ip: String::new(),
                })
                .await
                .map(none)?,
            Call::GetHost(name) => c
                .topology
                .get_host(pb::GetHostRequest { name: name.into() })
                .await
                .map(none)?,
            Call::ListHosts => {
                let r = c.topology.list_hosts(pb::ListHostsRequest::default());
                r.await?
                    .into_inner()
                    .hosts
                    .into_iter()
                    .map(|h| h.name)
                    .collect()
            }
            Call::RemoveHost(name) => c
                .topology
                .remove_host(pb::RemoveHostRequest {
                    name: name.into(),
                    force: false,
                })
                .await
                .map(none)?,
            Call::GetFabric => c
                .topology
                .get_fabric(pb::GetFabricRequest {})
                .await
                .map(none)?,
            Call::GetHostStatus(host) => c
                .topology
                .get_host_status(pb::GetHostStatusRequest { host: host.into() })
                .await
                .map(none)?,
            Call::ListHostStatus => {
                let r = c.topology.list_host_status(pb::ListHostStatusRequest {});
                r.await?
                    .into_inner()
                    .hosts
                    .into_iter()
                    .map(|h| h.host)
                    .collect()
            }
            Call::AddTenant(name) => c
                .tenants
                .add_tenant(pb::AddTenantRequest {
                    name: name.into(),
                    ..Default::default()
                })
                .await
                .map(none)?,
            Call::UpdateTenantLabels(name) => c
                .tenants
                .update_tenant(pb::UpdateTenantRequest {
                    name: name.into(),
                    set_labels: [("team".to_string(), format!("{name}-owners"))].into(),
                    ..Default::default()
                })
                .await
                .map(none)?,
            Call::UpdateTenantIsolation(name) => c
                .tenants
                .update_tenant(pb::UpdateTenantRequest {
                    name: name.into(),
                    isolation: pb::Isolation::None as i32,
                    ..Default::default()
                })
                .await
                .map(none)?,
            Call::GetTenant(name) => c
                .tenants
                .get_tenant(pb::GetTenantRequest { name: name.into() })
                .await
                .map(none)?,
            Call::ListTenants => {
                let r = c.tenants.list_tenants(pb::ListTenantsRequest {});
                r.await?
                    .into_inner()
                    .tenants
                    .into_iter()
                    .map(|t| t.name)
                    .collect()
            }
            Call::RemoveTenant(name) => c
                .tenants
                .remove_tenant(pb::RemoveTenantRequest { name: name.into() })
                .await
                .map(none)?,
            Call::AddSegment(tenant, name) => c
                .tenants
                .add_segment(pb::AddSegmentRequest {
                    tenant: tenant.into(),
                    name: name.into(),
                })
                .await
                .map(none)?,
            Call::ListSegments(tenant) => {
                let r = c.tenants.list_segments(pb::ListSegmentsRequest {
                    tenant: tenant.into(),
                });
                let segments = r.await?.into_inner().segments;
                segments
                    .into_iter()
                    .map(|s| format!("{}/{}", s.tenant, s.name))
                    .collect()
            }
            Call::RemoveSegment(tenant, name) => c
                .tenants
                .remove_segment(pb::RemoveSegmentRequest {
                    tenant: tenant.into(),
                    name: name.into(),
                })
                .await
                .map(none)?,
            Call::Allocate(id, host, tenant) => c
                .ipam
                .allocate(pb::AllocateRequest {
                    endpoint: id.into(),
                    host: host.into(),
                    tenant: tenant.into(),
                    ..Default::default()
                })
                .await
                .map(none)?,
            Call::AllocateAt(id, address) => c
                .ipam
                .allocate(pb::AllocateRequest {
                    endpoint: id.into(),
                    address: address.into(),
                    ..Default::default()
                })
                .await
                .map(none)?,
            Call::Release(id) => c
                .ipam
                .release(pb::ReleaseRequest::endpoint(id))
                .await
                .map(none)?,
            Call::ReleaseAddress(address) => c
                .ipam
                .release(pb::ReleaseRequest::address(address))
                .await
                .map(none)?,
            Call::GetEndpoint(id) => c
                .ipam
                .get_endpoint(pb::GetEndpointRequest {
                    endpoint: id.into(),
                })
                .await
                .map(none)?,
            Call::UpdateEndpoint(id) => c
                .ipam
                .update_endpoint(pb::UpdateEndpointRequest {
                    endpoint: id.into(),
                    set_labels: [("app".to_string(), "web".to_string())].into(),
                    ..Default::default()
                })
                .await
                .map(none)?,
            Call::ListEndpoints => {
                let r = c.ipam.list_endpoints(pb::ListEndpointsRequest::default());
                r.await?
                    .into_inner()
                    .endpoints
                    .into_iter()
                    .map(|e| e.id)
                    .collect()
            }
            Call::ApplyK8s(policies) => {
                let docs: Vec<String> = policies.iter().map(|(t, n)| k8s_policy(t, n)).collect();
                let r = c.policies.apply_policies(apply(docs.join("---\n")));
                r.await.map(none)?
            }
            Call::ApplyRomana(name) => c
                .policies
                .apply_policies(apply(romana_policy(name)))
                .await
                .map(none)?,
            Call::GetPolicy(id) => c
                .policies
                .get_policy(pb::GetPolicyRequest { id: id.into() })
                .await
                .map(none)?,
            Call::ListPolicies => {
                let r = c.policies.list_policies(pb::ListPoliciesRequest::default());
                r.await?
                    .into_inner()
                    .policies
                    .into_iter()
                    .map(|p| p.id)
                    .collect()
            }
            Call::DeletePolicy(id) => c
                .policies
                .delete_policy(pb::DeletePolicyRequest { id: id.into() })
                .await
                .map(none)?,
            Call::Explain(from, to) => c
                .policies
                .explain(pb::ExplainRequest {
                    from: from.into(),
                    to: to.into(),
                    protocol: "tcp".into(),
                    port: Some(80),
                    ..Default::default()
                })
                .await
                .map(none)?,
        };
        names.sort();
        Ok(names)
    }
}
