//! Cluster mode: a case built on a namespaced cluster (tenants, pods through the CNI
//! plugin, policies through policy-service), probed with real packets, then removed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use romana_core::Isolation;
use romana_proto::pb;
use tonic::transport::Channel;

use super::case::{lookup, render, HOSTS};
use super::probe::{probe_all, serve};
use super::{Case, Node, Observed, PodSpec, Probe, Results};
use crate::cluster::Cluster;
use crate::netns::Netns;
use crate::Service;

const CONVERGE: Duration = Duration::from_secs(20);
/// How long mismatches are re-probed after the agents reported the case's state.
const SETTLE: Duration = Duration::from_secs(8);

/// One case's pods on the cluster, removed by [`Placed::remove`].
struct Placed {
    pods: BTreeMap<String, (String, crate::cluster::EndpointNs)>,
    policies: Vec<String>,
    tenants: Vec<String>,
}

/// Builds `case` on `c` (fresh tenants, pods through the CNI plugin, policies through
/// policy-service), probes every expected cell with real packets, and removes it all
/// again. `Ok(Err(diff))` is a disagreement; `Err` a failure to run the case.
pub async fn run_cluster(c: &mut Cluster, case: &Case) -> anyhow::Result<Result<(), String>> {
    let mut placed = Placed {
        pods: BTreeMap::new(),
        policies: Vec::new(),
        tenants: Vec::new(),
    };
    let result = run_placed(c, case, &mut placed).await;
    let cleanup = placed.remove(c).await;
    let verdict = result?;
    cleanup.context("removing the case from the cluster")?;
    Ok(verdict)
}

async fn run_placed(
    c: &mut Cluster,
    case: &Case,
    placed: &mut Placed,
) -> anyhow::Result<Result<(), String>> {
    let mut tenants = c.tenants().await?;
    for t in &case.tenants {
        tenants
            .add_tenant(pb::AddTenantRequest {
                name: t.name.clone(),
                isolation: pb_isolation(t.isolation) as i32,
                labels: t.labels.clone().into_iter().collect(),
            })
            .await
            .with_context(|| format!("adding tenant {}", t.name))?;
        placed.tenants.push(t.name.clone());
        for s in case.segments_of(&t.name).into_iter().skip(1) {
            tenants
                .add_segment(pb::AddSegmentRequest {
                    tenant: t.name.clone(),
                    name: s.clone(),
                })
                .await
                .with_context(|| format!("adding segment {}/{s}", t.name))?;
        }
    }
    for p in &case.pods {
        let ep = add_pod(c, p).await?;
        placed
            .pods
            .insert(p.name.clone(), (c.hosts[p.host].name.clone(), ep));
    }

    let store = crate::mk_store(&c.plane.etcd_endpoints()).await;
    let keys = store.keys().clone();
    let mut revision = 0;
    for (_, ep) in placed.pods.values() {
        let v = store
            .get(&keys.endpoint(&ep.id))
            .await?
            .with_context(|| format!("endpoint {} is not stored", ep.id))?;
        revision = revision.max(v.mod_revision);
    }

    let mut addresses: BTreeMap<Node, IpAddr> = placed
        .pods
        .iter()
        .map(|(name, (_, ep))| (Node::Pod(name.clone()), ep.address))
        .collect();
    for (i, h) in c.hosts.iter().enumerate().take(HOSTS) {
        addresses.insert(Node::Host(i), h.ip);
    }
    let listed = c
        .topology()
        .await?
        .list_hosts(pb::ListHostsRequest::default())
        .await?
        .into_inner()
        .hosts;
    let prefix_of = |i: usize| -> Option<String> {
        let name = &c.hosts.get(i)?.name;
        listed
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.prefix.clone())
    };
    let ids: BTreeMap<String, String> = placed
        .pods
        .iter()
        .map(|(n, (_, ep))| (n.clone(), ep.id.clone()))
        .collect();
    let text = render(&case.policies, |kind, arg| {
        lookup(
            kind,
            arg,
            &addresses,
            &|pod| ids.get(pod).cloned(),
            &prefix_of,
        )
    })
    .map_err(anyhow::Error::msg)?;
    let mut policies = mk_policies(c).await?;
    if !text.trim().is_empty() {
        let applied = policies
            .apply_policies(pb::ApplyPoliciesRequest {
                document: text,
                ..Default::default()
            })
            .await
            .context("applying the case's policies")?
            .into_inner();
        for a in &applied.applied {
            if let Some(p) = &a.policy {
                placed.policies.push(p.id.clone());
                revision = revision.max(p.revision);
            }
        }
    }
    wait_for_agents(c, revision).await?;

    let nodes: Vec<(Node, &Netns, IpAddr)> = addresses
        .keys()
        .map(|n| {
            let ns = match n {
                Node::Pod(p) => &placed.pods[p].1.ns,
                Node::Host(i) => &c.hosts[*i].ns,
            };
            (n.clone(), ns, addresses[n])
        })
        .collect();
    let _servers = serve(&nodes, &case.probes)?;

    let expected = case.expected();
    let mut got = Results::new();
    let mut pending: Vec<(Probe, Node, Node, bool)> = expected.clone();
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let seen = probe_all(&nodes, &pending).await?;
        pending
            .retain(|(probe, from, to, want)| seen[&(*probe, from.clone(), to.clone())] != *want);
        for (k, allowed) in seen {
            got.insert(
                k,
                Observed {
                    allowed,
                    reason: String::new(),
                },
            );
        }
        if pending.is_empty() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    for (probe, from, to, _) in &pending {
        let reason = explain(&mut policies, *probe, addresses[from], addresses[to]).await;
        if let Some(o) = got.get_mut(&(*probe, from.clone(), to.clone())) {
            o.reason = format!("policy explain says {reason}");
        }
    }
    Ok(case.diff(&got).map_or(Ok(()), Err))
}

impl Placed {
    async fn remove(self, c: &mut Cluster) -> anyhow::Result<()> {
        let mut policies = mk_policies(c).await?;
        for id in &self.policies {
            policies
                .delete_policy(pb::DeletePolicyRequest { id: id.clone() })
                .await
                .with_context(|| format!("deleting policy {id}"))?;
        }
        for (name, (host, ep)) in self.pods {
            let config = format!(
                r#"{{"cniVersion":"1.0.0","name":"romana","type":"romana-cni","root":"{}","host":"{host}"}}"#,
                c.plane.root_url()
            );
            c.cni(&host, "DEL", &ep.ns, &config, "")
                .with_context(|| format!("removing pod {name}"))?;
        }
        let mut tenants = c.tenants().await?;
        for t in self.tenants.iter().rev() {
            tenants
                .remove_tenant(pb::RemoveTenantRequest { name: t.clone() })
                .await
                .with_context(|| format!("removing tenant {t}"))?;
        }
        Ok(())
    }
}

fn pb_isolation(i: Isolation) -> pb::Isolation {
    match i {
        Isolation::Segment => pb::Isolation::Segment,
        Isolation::Tenant => pb::Isolation::Tenant,
        Isolation::None => pb::Isolation::None,
    }
}

async fn mk_policies(c: &Cluster) -> anyhow::Result<pb::policies_client::PoliciesClient<Channel>> {
    let channel = Channel::from_shared(c.plane.url(Service::Policy))?
        .connect()
        .await?;
    Ok(pb::policies_client::PoliciesClient::new(channel))
}

/// A pod through the CNI plugin, labels in `CNI_ARGS` `ROMANA_LABELS`, named ports in
/// `ROMANA_PORTS`.
async fn add_pod(c: &mut Cluster, p: &PodSpec) -> anyhow::Result<crate::cluster::EndpointNs> {
    let host = c.hosts[p.host].name.clone();
    let ns = Netns::create(&format!("p-{}", p.name))?;
    let id = format!("{}:eth0", ns.name());
    let config = format!(
        r#"{{"cniVersion":"1.0.0","name":"romana","type":"romana-cni","root":"{}","host":"{host}","tenant":"{}","segment":"{}"}}"#,
        c.plane.root_url(),
        p.tenant,
        p.segment
    );
    let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let ports: Vec<String> = p.ports.iter().map(|(n, t)| format!("{n}={t}")).collect();
    let mut args = Vec::new();
    if !labels.is_empty() {
        args.push(format!("ROMANA_LABELS={}", labels.join(",")));
    }
    if !ports.is_empty() {
        args.push(format!("ROMANA_PORTS={}", ports.join(",")));
    }
    let args = args.join(";");
    let out = c
        .cni(&host, "ADD", &ns, &config, &args)
        .with_context(|| format!("adding pod {}", p.name))?;
    let addresses = crate::cluster::cni_added_addresses(&out)?;
    Ok(crate::cluster::EndpointNs {
        host_ifname: romana_core::datapath::endpoint_ifname(&id),
        id,
        host,
        address: addresses[0],
        second_address: addresses.get(1).copied(),
        ns,
    })
}

/// Waits until every agent reports having applied `revision`, converged, nothing blocked.
async fn wait_for_agents(c: &Cluster, revision: i64) -> anyhow::Result<()> {
    let topology = c.topology().await?;
    let names: Vec<String> = c.hosts.iter().map(|h| h.name.clone()).collect();
    crate::eventually(
        &format!("every agent to apply revision {revision}"),
        CONVERGE,
        || {
            let mut topology = topology.clone();
            let names = names.clone();
            async move {
                for host in names {
                    let s = topology
                        .get_host_status(pb::GetHostStatusRequest { host })
                        .await
                        .ok()?
                        .into_inner();
                    let done =
                        s.reported && s.revision >= revision && s.converged && s.blocked.is_empty();
                    if !done {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await?;
    Ok(())
}

async fn explain(
    policies: &mut pb::policies_client::PoliciesClient<Channel>,
    probe: Probe,
    from: IpAddr,
    to: IpAddr,
) -> String {
    let icmp = (probe == Probe::Icmp).then_some(8);
    let req = pb::ExplainRequest {
        from: from.to_string(),
        to: to.to_string(),
        protocol: probe.protocol().to_string(),
        port: probe.port().map(u32::from),
        icmp_type: icmp,
        icmp_code: icmp.map(|_| 0),
    };
    match policies.explain(req).await {
        Ok(r) => {
            let r = r.into_inner();
            format!("{} ({})", r.verdict, r.reason)
        }
        Err(e) => format!("nothing (explain failed: {})", e.message()),
    }
}
