//! Model mode: a case placed in memory and judged by the evaluator.

use std::collections::BTreeMap;
use std::net::IpAddr;

use romana_core::policy::{evaluate, parse_documents, ClusterView, PolicySet};
use romana_core::{ClusterConfig, Endpoint, Host, Layout, Segment, Tenant};

use super::case::{lookup, parse_named_port, render, HOSTS};
use super::{Case, Node, Observed, Results};

/// The layout every case is placed in, the same as `cluster()`'s.
pub fn mk_layout() -> Layout {
    ClusterConfig {
        address_space: "10.0.0.0/8".parse().expect("a CIDR"),
        host_bits: 8,
        rack_bits: 2,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        second_address_space: None,
    }
    .layout()
    .expect("a valid layout")
}

/// A case placed in memory: hosts as the cluster harness names them (`r0h0`, `r0h1`, fabric
/// 192.168.0.11, .12), tenants numbered in order from 0, segments in
/// [`Case::segments_of`] order, pods numbered from the first assignable endpoint per segment
/// and host in file order.
pub struct Model {
    pub view: ClusterView,
    pub policies: PolicySet,
    pub addresses: BTreeMap<Node, IpAddr>,
}

pub fn mk_model(case: &Case) -> anyhow::Result<Model> {
    let layout = mk_layout();
    let hosts: Vec<Host> = (0..HOSTS)
        .map(|i| Host {
            name: format!("r0h{i}"),
            ip: format!("192.168.0.{}", 11 + i).parse().expect("an address"),
            rack: 0,
            index: layout.host_index(0, i as u32).expect("in range"),
            second_ip: None,
        })
        .collect();
    let mut tenants = Vec::new();
    let mut segments = Vec::new();
    for (id, t) in case.tenants.iter().enumerate() {
        let mut labels = t.labels.clone();
        labels.insert("kubernetes.io/metadata.name".into(), t.name.clone());
        tenants.push(Tenant {
            name: t.name.clone(),
            id: id as u32,
            isolation: t.isolation,
            labels,
        });
        for (sid, s) in case.segments_of(&t.name).into_iter().enumerate() {
            segments.push(Segment {
                tenant: t.name.clone(),
                name: s,
                id: sid as u32,
            });
        }
    }
    let mut next: BTreeMap<(usize, String, String), u128> = BTreeMap::new();
    let mut endpoints = Vec::new();
    let mut addresses = BTreeMap::new();
    for p in &case.pods {
        let tenant = tenants
            .iter()
            .find(|t| t.name == p.tenant)
            .expect("checked");
        let segment = segments
            .iter()
            .find(|s| s.tenant == p.tenant && s.name == p.segment)
            .expect("segments_of lists it");
        let n = next
            .entry((p.host, p.tenant.clone(), p.segment.clone()))
            .or_insert(*layout.assignable_endpoints().start());
        let address = layout.endpoint_address(hosts[p.host].index, tenant.id, segment.id, *n)?;
        *n += 1;
        addresses.insert(Node::Pod(p.name.clone()), address);
        endpoints.push(Endpoint {
            interface: String::new(),
            pod: None,
            second_address: None,
            id: model_id(&p.name),
            address,
            host: hosts[p.host].name.clone(),
            tenant: p.tenant.clone(),
            segment: p.segment.clone(),
            labels: p.labels.clone(),
            ports: p
                .ports
                .iter()
                .map(|(n, t)| parse_named_port(n, t))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?,
        });
    }
    for (i, h) in hosts.iter().enumerate() {
        addresses.insert(Node::Host(i), h.ip);
    }
    let text = render(&case.policies, |kind, arg| {
        lookup(kind, arg, &addresses, &|pod| Some(model_id(pod)), &|i| {
            layout
                .host_prefix(hosts.get(i)?.index)
                .ok()
                .map(|p| p.to_string())
        })
    })
    .map_err(anyhow::Error::msg)?;
    let policies = if text.trim().is_empty() {
        PolicySet::new()
    } else {
        parse_documents(&text)?.into_iter().collect()
    };
    let view = ClusterView::new(layout.clone(), hosts, tenants, segments, endpoints);
    Ok(Model {
        view,
        policies,
        addresses,
    })
}

fn model_id(pod: &str) -> String {
    format!("{pod}:eth0")
}

/// Evaluates every expected cell with the evaluator; `Err` holds the matrix diff.
pub fn run_model(case: &Case) -> anyhow::Result<Result<(), String>> {
    let model = mk_model(case)?;
    let mut got = Results::new();
    for (probe, from, to, _) in case.expected() {
        let packet = probe.packet(model.addresses[&from], model.addresses[&to]);
        let d = evaluate(&model.policies, &model.view, &packet);
        let allowed = d.verdict == romana_core::policy::Verdict::Allow;
        got.insert(
            (probe, from, to),
            Observed {
                allowed,
                reason: d.reason,
            },
        );
    }
    Ok(case.diff(&got).map_or(Ok(()), Err))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::truth::case::parse_case;

    #[test]
    fn a_wrong_expectation_is_reported_as_a_matrix_diff_with_the_reason() {
        let text = "
name: wrong
source: test
tenants: [{name: t, isolation: segment}, {name: u}]
pods:
  - {name: a, tenant: t, host: 0}
  - {name: b, tenant: t, host: 1}
  - {name: c, tenant: u, host: 1}
probes: [tcp/80]
expect:
  tcp/80: |
    -  a b c
    a  - X X
    b  . - X
    c  X X -
";
        let case = parse_case(text, Path::new("wrong.yaml")).unwrap();
        let diff = run_model(&case).unwrap().unwrap_err();
        assert!(diff.contains("tcp/80: 1 mismatch(es)"), "{diff}");
        assert!(
            diff.contains("a -> b tcp/80: expected blocked, got allowed: "),
            "{diff}"
        );
        assert!(diff.contains("same segment t/default"), "{diff}");
        assert!(diff.contains(".*"), "{diff}");
    }
}
