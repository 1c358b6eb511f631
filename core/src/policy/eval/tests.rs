//! One table row per semantic rule of the two tiers, on one fixed cluster, then property
//! tests against a direct statement of the rules.
//!
//! The fixture (10.0.0.0/8, 8 host bits, 4 tenant bits, 4 segment bits):
//! - hosts h1 (index 1, 192.168.0.1) and h2 (index 2, 192.168.0.2);
//! - Romana-style tenants: `shop` (segment; segments default, web), `db` (tenant), `open` (none),
//!   `other` (segment);
//! - Kubernetes-style tenants (isolation none): `frontend` and `backend` (env=prod), `dev`
//!   (env=dev), `plain` (no labels).

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::policy::k8s::NAMESPACE_NAME_LABEL;
use crate::policy::parse_documents;
use crate::{ClusterConfig, Host, Layout, NamedPort, Segment, Tenant};

const H1: &str = "192.168.0.1";
const H2: &str = "192.168.0.2";
/// The hosts' fabric addresses of the second family, in a dual-stack fixture.
const H1_V6: &str = "fd00:ff::1";
const H2_V6: &str = "fd00:ff::2";
const OUTSIDE: &str = "8.8.8.8";

fn mk_layout() -> Layout {
    ClusterConfig {
        address_space: "10.0.0.0/8".parse().unwrap(),
        host_bits: 8,
        rack_bits: 0,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        second_address_space: None,
    }
    .layout()
    .unwrap()
}

fn mk_tenant(name: &str, id: u32, isolation: Isolation, labels: &[(&str, &str)]) -> Tenant {
    let mut labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // As tenant-service does; `plain` lacks it to show the evaluator adds it anyway.
    if name != "plain" {
        labels.insert(NAMESPACE_NAME_LABEL.into(), name.into());
    }
    Tenant {
        name: name.into(),
        id,
        isolation,
        labels,
    }
}

/// (id, host, tenant, segment, number, labels, ports)
type EpSpec<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    u128,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str, u16)],
);

const ENDPOINTS: &[EpSpec<'static>] = &[
    (
        "web1",
        "h1",
        "shop",
        "web",
        10,
        &[("app", "web")],
        &[("http", "tcp", 8080)],
    ),
    ("web2", "h2", "shop", "web", 11, &[("app", "web")], &[]),
    ("api", "h1", "shop", "default", 12, &[("app", "api")], &[]),
    (
        "db1",
        "h2",
        "db",
        "default",
        13,
        &[("app", "db")],
        &[("pg", "tcp", 5432)],
    ),
    ("db2", "h1", "db", "default", 14, &[("app", "cache")], &[]),
    ("o1", "h1", "open", "default", 15, &[("app", "x")], &[]),
    ("x1", "h2", "other", "default", 16, &[], &[]),
    (
        "fe1",
        "h1",
        "frontend",
        "default",
        20,
        &[("app", "web")],
        &[("http", "tcp", 80)],
    ),
    (
        "fe2",
        "h2",
        "frontend",
        "default",
        21,
        &[("app", "other")],
        &[],
    ),
    (
        "be1",
        "h2",
        "backend",
        "default",
        22,
        &[("app", "api")],
        &[
            ("http", "tcp", 8080),
            ("grpc", "tcp", 9000),
            ("dns", "udp", 53),
        ],
    ),
    ("be2", "h1", "backend", "default", 23, &[("app", "db")], &[]),
    ("dv1", "h1", "dev", "default", 24, &[("app", "web")], &[]),
    ("pl1", "h2", "plain", "default", 25, &[("app", "web")], &[]),
];

fn mk_view_with(isolations: &[(&str, Isolation)]) -> ClusterView {
    mk_view_in(mk_layout(), isolations)
}

/// The fixture in `layout`; in a dual-stack one every endpoint also has its address of the
/// second family, with the same numbers.
fn mk_view_in(layout: Layout, isolations: &[(&str, Isolation)]) -> ClusterView {
    let mode = |name: &str, default: Isolation| {
        isolations
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(default, |(_, m)| *m)
    };
    let hosts = vec![
        Host {
            name: "h1".into(),
            ip: H1.parse().unwrap(),
            rack: 0,
            index: 1,
            second_ip: layout.second_family().map(|_| H1_V6.parse().unwrap()),
        },
        Host {
            name: "h2".into(),
            ip: H2.parse().unwrap(),
            rack: 0,
            index: 2,
            second_ip: layout.second_family().map(|_| H2_V6.parse().unwrap()),
        },
    ];
    let tenants = vec![
        mk_tenant("shop", 1, mode("shop", Isolation::Segment), &[]),
        mk_tenant("db", 2, mode("db", Isolation::Tenant), &[]),
        mk_tenant("open", 3, mode("open", Isolation::None), &[]),
        mk_tenant("other", 4, mode("other", Isolation::Segment), &[]),
        mk_tenant(
            "frontend",
            5,
            mode("frontend", Isolation::None),
            &[("env", "prod")],
        ),
        mk_tenant(
            "backend",
            6,
            mode("backend", Isolation::None),
            &[("env", "prod")],
        ),
        mk_tenant("dev", 7, mode("dev", Isolation::None), &[("env", "dev")]),
        mk_tenant("plain", 8, mode("plain", Isolation::None), &[]),
    ];
    let mut segments: Vec<Segment> = tenants
        .iter()
        .map(|t| Segment {
            tenant: t.name.clone(),
            name: "default".into(),
            id: 0,
        })
        .collect();
    segments.push(Segment {
        tenant: "shop".into(),
        name: "web".into(),
        id: 1,
    });
    let endpoints = ENDPOINTS
        .iter()
        .map(|(id, host, tenant, segment, n, labels, ports)| {
            let t = tenants.iter().find(|t| t.name == *tenant).unwrap();
            let s = segments
                .iter()
                .find(|s| s.tenant == *tenant && s.name == *segment)
                .unwrap();
            let h = hosts.iter().find(|h| h.name == *host).unwrap();
            Endpoint {
                interface: String::new(),
                pod: None,
                second_address: layout
                    .second_family()
                    .map(|l| l.endpoint_address(h.index, t.id, s.id, *n).unwrap()),
                id: id.to_string(),
                address: layout.endpoint_address(h.index, t.id, s.id, *n).unwrap(),
                host: host.to_string(),
                tenant: tenant.to_string(),
                segment: segment.to_string(),
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ports: ports
                    .iter()
                    .map(|(name, proto, port)| NamedPort {
                        name: name.to_string(),
                        protocol: proto.to_string(),
                        port: *port,
                    })
                    .collect(),
            }
        })
        .collect::<Vec<_>>();
    ClusterView::new(layout, hosts, tenants, segments, endpoints)
}

fn mk_view() -> ClusterView {
    mk_view_with(&[])
}

fn mk_policies(text: &str) -> PolicySet {
    if text.trim().is_empty() {
        return PolicySet::new();
    }
    parse_documents(text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .into_iter()
        .collect()
}

/// `proto` is `tcp/80`, `udp/53`, `tcp` (no port), `icmp` or `icmp/8/0`.
fn mk_packet(view: &ClusterView, from: &str, to: &str, proto: &str) -> Packet {
    let addr = |s: &str| -> IpAddr {
        view.resolve(s)
            .unwrap_or_else(|| panic!("{s} is no endpoint or address"))
    };
    let mut parts = proto.split('/');
    let protocol: Protocol = parts.next().unwrap().parse().unwrap();
    let first = parts.next().map(|p| p.parse::<u16>().unwrap());
    let second = parts.next().map(|p| p.parse::<u8>().unwrap());
    let (port, icmp_type, icmp_code) = if protocol == Protocol::Icmp {
        (None, first.map(|t| t as u8), second)
    } else {
        (first, None, None)
    };
    Packet {
        from: addr(from),
        to: addr(to),
        protocol,
        port,
        icmp_type,
        icmp_code,
    }
}

/// The expected outcome: `allow`/`deny`, the tier, and the deciding policy/rule if any.
struct Want {
    verdict: Verdict,
    tier: Tier,
    policy: Option<&'static str>,
    rule: Option<usize>,
}

fn allow(tier: Tier) -> Want {
    Want {
        verdict: Verdict::Allow,
        tier,
        policy: None,
        rule: None,
    }
}

fn deny(tier: Tier) -> Want {
    Want {
        verdict: Verdict::Deny,
        tier,
        policy: None,
        rule: None,
    }
}

fn by(mut w: Want, policy: &'static str, rule: usize) -> Want {
    w.policy = Some(policy);
    w.rule = Some(rule);
    w
}

#[track_caller]
fn check(name: &str, view: &ClusterView, policies: &str, cases: &[(&str, &str, &str, Want)]) {
    let set = mk_policies(policies);
    for (from, to, proto, want) in cases {
        let packet = mk_packet(view, from, to, proto);
        let d = evaluate(&set, view, &packet);
        let what = format!("{name}: {from} -> {to} {proto}: {d:#?}");
        assert_eq!(d.verdict, want.verdict, "verdict of {what}");
        assert_eq!(d.tier, want.tier, "tier of {what}");
        assert_eq!(d.policy.as_deref(), want.policy, "policy of {what}");
        assert_eq!(d.rule, want.rule, "rule of {what}");
    }
}

const NP: Tier = Tier::NetworkPolicy;
const BASE: Tier = Tier::Baseline;
const HOST: Tier = Tier::Host;

fn np(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

// --- baseline tier ---

#[test]
fn segment_isolation_lets_only_the_same_segment_talk() {
    let v = mk_view();
    check(
        "segment",
        &v,
        "",
        &[
            ("web1", "web2", "tcp/80", allow(BASE)),
            ("web2", "web1", "icmp", allow(BASE)),
            ("api", "web1", "tcp/80", deny(BASE)),
            ("web1", "db1", "tcp/5432", deny(BASE)),
            ("web1", OUTSIDE, "udp/53", deny(BASE)),
            (OUTSIDE, "web1", "tcp/80", deny(BASE)),
        ],
    );
}

#[test]
fn tenant_isolation_lets_the_whole_tenant_talk() {
    let v = mk_view_with(&[("shop", Isolation::Tenant)]);
    check(
        "tenant",
        &v,
        "",
        &[
            ("api", "web1", "tcp/80", allow(BASE)),
            ("db1", "db2", "tcp/1", allow(BASE)),
            ("db1", "web1", "tcp/80", deny(BASE)),
            ("web1", "db1", "tcp/5432", deny(BASE)),
        ],
    );
}

#[test]
fn isolation_none_is_open_in_both_directions_but_the_peer_decides_its_side() {
    let v = mk_view();
    check(
        "none",
        &v,
        "",
        &[
            (OUTSIDE, "o1", "tcp/80", allow(BASE)),
            ("o1", OUTSIDE, "udp/53", allow(BASE)),
            ("o1", "fe1", "tcp/80", allow(BASE)),
            // x1's tenant is segment-isolated: its ingress refuses o1.
            ("o1", "x1", "tcp/80", deny(BASE)),
            ("x1", "o1", "tcp/80", deny(BASE)),
        ],
    );
}

#[test]
fn an_endpoint_always_talks_with_its_own_host_and_only_that_host() {
    let v = mk_view();
    // The gateway of web1's segment on h1 is h1's own address too.
    let gw = v.layout().gateway(1, 1, 1).unwrap().to_string();
    let deny_all = np(
        "frontend",
        "deny-all",
        "{podSelector: {}, policyTypes: [Ingress, Egress]}",
    );
    check(
        "host",
        &v,
        &deny_all,
        &[
            (H1, "web1", "tcp/10250", allow(HOST)),
            ("web1", H1, "tcp/53", allow(HOST)),
            (&gw, "web1", "tcp/8080", allow(HOST)),
            (H2, "web1", "tcp/10250", deny(BASE)),
            // A NetworkPolicy does not cut kubelet probes.
            (H1, "fe1", "tcp/80", allow(HOST)),
            (H2, "fe1", "tcp/80", deny(NP)),
        ],
    );
}

#[test]
fn traffic_between_non_endpoints_is_not_filtered() {
    let v = mk_view();
    check("outside", &v, "", &[(OUTSIDE, H2, "tcp/22", allow(BASE))]);
}

#[test]
fn romana_policies_only_add_allows_to_the_baseline() {
    let v = mk_view();
    let policies = r#"
name: web-from-outside
direction: ingress
applied_to: [{tenant: shop, segment: web}]
peers: [{cidr: 8.8.0.0/16}]
rules:
  - {protocol: tcp, ports: [80, 443], port_ranges: [[8000, 8080]]}
  - {protocol: icmp, icmp_type: 8}
---
name: dns-out
direction: egress
applied_to: [{tenant: shop}]
peers: [{peer: any}]
rules: [{protocol: udp, ports: [53]}]
---
name: db-from-shop
direction: ingress
applied_to: [{endpoint: db1}]
peers: [{tenant: shop}]
rules: [{protocol: tcp, ports: [5432]}]
---
name: db-egress-to-shop
direction: egress
applied_to: [{cidr: 10.0.0.0/8}]
peers: [{tenant: shop, segment: web}]
rules: [{protocol: any}]
"#;
    check(
        "romana",
        &v,
        policies,
        &[
            (
                OUTSIDE,
                "web1",
                "tcp/443",
                by(allow(BASE), "web-from-outside", 0),
            ),
            (
                OUTSIDE,
                "web1",
                "tcp/8000",
                by(allow(BASE), "web-from-outside", 0),
            ),
            (OUTSIDE, "web1", "tcp/22", deny(BASE)),
            (
                OUTSIDE,
                "web1",
                "icmp/8/0",
                by(allow(BASE), "web-from-outside", 1),
            ),
            (OUTSIDE, "web1", "icmp/0", deny(BASE)),
            ("1.1.1.1", "web1", "tcp/80", deny(BASE)),
            // Not applied to the default segment of shop.
            (OUTSIDE, "api", "tcp/80", deny(BASE)),
            ("api", OUTSIDE, "udp/53", by(allow(BASE), "dns-out", 0)),
            ("api", OUTSIDE, "tcp/53", deny(BASE)),
            // Both directions need an allow: shop's egress by dns-out is not enough for tcp.
            ("web1", "db1", "tcp/5432", deny(BASE)),
            // Still allowed by isolation: the policy adds, never removes.
            ("web1", "web2", "tcp/22", allow(BASE)),
        ],
    );
    let more = format!(
        "{policies}---\nname: shop-to-db\ndirection: egress\napplied_to: [{{tenant: shop}}]\n\
         peers: [{{tenant: db}}]\nrules: [{{protocol: tcp}}]\n"
    );
    check(
        "romana both directions",
        &v,
        &more,
        &[
            // Ingress of db1 decided by db-from-shop; reported as the deciding (ingress) step.
            (
                "web1",
                "db1",
                "tcp/5432",
                by(allow(BASE), "db-from-shop", 0),
            ),
            ("web1", "db1", "tcp/22", deny(BASE)),
            ("db2", "web1", "tcp/80", deny(BASE)),
        ],
    );
}

#[test]
fn romana_host_peer_is_the_applied_to_endpoints_own_host() {
    let v = mk_view();
    let p = "name: h\ndirection: ingress\napplied_to: [{tenant: shop}]\npeers: [{peer: host}]\nrules: [{protocol: any}]\n";
    check(
        "host peer",
        &v,
        p,
        &[
            (H1, "web1", "tcp/1", allow(HOST)),
            (H1, "web2", "tcp/1", deny(BASE)),
        ],
    );
}

// --- NetworkPolicy tier ---

#[test]
fn a_selecting_policy_takes_the_direction_away_from_the_baseline() {
    let v = mk_view();
    let p = format!(
        "{}---\nname: any-in\ndirection: ingress\napplied_to: [{{tenant: shop}}]\npeers: [{{peer: any}}]\nrules: [{{protocol: any}}]\n",
        np("shop", "deny-in", "{podSelector: {matchLabels: {app: web}}}")
    );
    check(
        "override",
        &v,
        &p,
        &[
            // Same segment, and a Romana allow: both ignored for a selected ingress.
            ("web2", "web1", "tcp/80", deny(NP)),
            (OUTSIDE, "web1", "tcp/80", deny(NP)),
            // api is not selected: the baseline plus the Romana allow decide.
            (OUTSIDE, "api", "tcp/80", by(allow(BASE), "any-in", 0)),
        ],
    );
}

#[test]
fn default_deny_ingress_leaves_egress_alone() {
    let v = mk_view();
    let p = np(
        "frontend",
        "default-deny-ingress",
        "{podSelector: {}, policyTypes: [Ingress]}",
    );
    check(
        "default deny ingress",
        &v,
        &p,
        &[
            ("fe2", "fe1", "tcp/80", deny(NP)),
            (OUTSIDE, "fe1", "tcp/80", deny(NP)),
            ("fe1", OUTSIDE, "tcp/443", allow(BASE)),
            ("fe1", "be1", "tcp/8080", allow(BASE)),
        ],
    );
}

#[test]
fn ingress_list_empty_denies_and_one_empty_rule_allows_everything() {
    let v = mk_view();
    let cases = [
        ("{podSelector: {}, ingress: []}", deny(NP)),
        ("{podSelector: {}, policyTypes: [Ingress]}", deny(NP)),
        (
            "{podSelector: {}, ingress: [{}]}",
            by(allow(NP), "backend/p", 0),
        ),
        (
            "{podSelector: {}, ingress: [{from: []}]}",
            by(allow(NP), "backend/p", 0),
        ),
        (
            "{podSelector: {}, ingress: [{ports: []}]}",
            by(allow(NP), "backend/p", 0),
        ),
        (
            "{podSelector: {}, ingress: [{from: [], ports: []}]}",
            by(allow(NP), "backend/p", 0),
        ),
    ];
    for (spec, want) in cases {
        check(
            spec,
            &v,
            &np("backend", "p", spec),
            &[(OUTSIDE, "be1", "tcp/8080", want)],
        );
    }
}

#[test]
fn policy_types_defaulting_decides_which_directions_are_selected() {
    let v = mk_view();
    // Egress rules and no policyTypes: Ingress AND Egress; ingress has no rules -> denied.
    let p = np(
        "frontend",
        "p",
        "{podSelector: {}, egress: [{to: [{ipBlock: {cidr: 8.8.8.0/24}}]}]}",
    );
    check(
        "defaulted",
        &v,
        &p,
        &[
            ("fe1", OUTSIDE, "udp/53", by(allow(NP), "frontend/p", 0)),
            ("fe1", "1.1.1.1", "udp/53", deny(NP)),
            (OUTSIDE, "fe1", "tcp/80", deny(NP)),
        ],
    );
    // `egress: []` is no egress section: ingress only.
    let p = np(
        "frontend",
        "p",
        "{podSelector: {}, ingress: [{}], egress: []}",
    );
    check(
        "egress empty",
        &v,
        &p,
        &[("fe1", "1.1.1.1", "udp/53", allow(BASE))],
    );
    // policyTypes [Egress] with ingress rules: ingress is not selected.
    let p = np(
        "frontend",
        "p",
        "{podSelector: {}, policyTypes: [Egress], ingress: [{}]}",
    );
    check(
        "egress only",
        &v,
        &p,
        &[
            (OUTSIDE, "fe1", "tcp/80", allow(BASE)),
            ("fe1", OUTSIDE, "tcp/80", deny(NP)),
        ],
    );
}

#[test]
fn pod_selector_peer_means_the_policys_own_namespace() {
    let v = mk_view();
    let p = np(
        "backend",
        "p",
        "{podSelector: {matchLabels: {app: api}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}",
    );
    check(
        "podSelector",
        &v,
        &p,
        &[
            // fe1 is app=web, but in another namespace.
            ("fe1", "be1", "tcp/8080", deny(NP)),
            ("be2", "be1", "tcp/8080", deny(NP)),
            // be2 is not selected (app=db): baseline none.
            ("fe1", "be2", "tcp/8080", allow(BASE)),
        ],
    );
    let p = np(
        "backend",
        "p",
        "{podSelector: {matchLabels: {app: api}}, ingress: [{from: [{podSelector: {}}]}]}",
    );
    check(
        "podSelector all",
        &v,
        &p,
        &[
            ("be2", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("fe1", "be1", "tcp/8080", deny(NP)),
        ],
    );
}

#[test]
fn namespace_selector_alone_and_anded_with_pod_selector() {
    let v = mk_view();
    let sel = |peers: &str| {
        np(
            "backend",
            "p",
            &format!(
                "{{podSelector: {{matchLabels: {{app: api}}}}, ingress: [{{from: {peers}}}]}}"
            ),
        )
    };
    check(
        "namespaceSelector",
        &v,
        &sel("[{namespaceSelector: {matchLabels: {env: prod}}}]"),
        &[
            ("fe1", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("fe2", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("be2", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("dv1", "be1", "tcp/8080", deny(NP)),
            (OUTSIDE, "be1", "tcp/8080", deny(NP)),
        ],
    );
    check(
        "AND in one peer",
        &v,
        &sel("[{namespaceSelector: {matchLabels: {env: prod}}, podSelector: {matchLabels: {app: web}}}]"),
        &[
            ("fe1", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("fe2", "be1", "tcp/8080", deny(NP)),
            ("dv1", "be1", "tcp/8080", deny(NP)),
        ],
    );
    check(
        "OR of two peers",
        &v,
        &sel("[{namespaceSelector: {matchLabels: {env: dev}}}, {podSelector: {matchLabels: {app: db}}}]"),
        &[
            ("dv1", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("be2", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("fe1", "be1", "tcp/8080", deny(NP)),
        ],
    );
    check(
        "empty namespaceSelector is every namespace",
        &v,
        &sel("[{namespaceSelector: {}}]"),
        &[
            ("pl1", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            (OUTSIDE, "be1", "tcp/8080", deny(NP)),
        ],
    );
}

#[test]
fn namespace_name_label_is_always_there_and_not_in_matches_a_missing_key() {
    let v = mk_view();
    let sel = |peers: &str| {
        np(
            "backend",
            "p",
            &format!("{{podSelector: {{}}, ingress: [{{from: {peers}}}]}}"),
        )
    };
    check(
        "metadata.name",
        &v,
        &sel("[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: plain}}}]"),
        &[
            ("pl1", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("fe1", "be1", "tcp/8080", deny(NP)),
        ],
    );
    check(
        "NotIn",
        &v,
        &sel("[{namespaceSelector: {matchExpressions: [{key: env, operator: NotIn, values: [dev]}]}}]"),
        &[
            ("fe1", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("pl1", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("dv1", "be1", "tcp/8080", deny(NP)),
        ],
    );
    check(
        "DoesNotExist and Exists",
        &v,
        &sel("[{namespaceSelector: {matchExpressions: [{key: env, operator: DoesNotExist}]}}, {podSelector: {matchExpressions: [{key: app, operator: Exists}]}}]"),
        &[
            ("pl1", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("be2", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("fe1", "be1", "tcp/8080", deny(NP)),
        ],
    );
}

#[test]
fn ip_block_with_except_matches_outside_and_endpoint_addresses() {
    let v = mk_view();
    let fe1 = v.resolve("fe1").unwrap();
    let p = np(
        "backend",
        "p",
        &format!(
            "{{podSelector: {{}}, ingress: [{{from: [{{ipBlock: {{cidr: 10.0.0.0/8, except: [{fe1}/32]}}}}, {{ipBlock: {{cidr: 8.8.8.0/24}}}}]}}]}}"
        ),
    );
    check(
        "ipBlock",
        &v,
        &p,
        &[
            ("dv1", "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("fe1", "be1", "tcp/8080", deny(NP)),
            (OUTSIDE, "be1", "tcp/8080", by(allow(NP), "backend/p", 0)),
            ("1.1.1.1", "be1", "tcp/8080", deny(NP)),
        ],
    );
}

#[test]
fn ports_by_number_range_protocol_and_name() {
    let v = mk_view();
    let ports = |list: &str| {
        np(
            "backend",
            "p",
            &format!("{{podSelector: {{}}, ingress: [{{ports: {list}}}]}}"),
        )
    };
    let yes = || by(allow(NP), "backend/p", 0);
    check(
        "number",
        &v,
        &ports("[{port: 8080}]"),
        &[
            ("fe1", "be1", "tcp/8080", yes()),
            ("fe1", "be1", "tcp/80", deny(NP)),
            // protocol defaults to TCP
            ("fe1", "be1", "udp/8080", deny(NP)),
            ("fe1", "be1", "icmp/8", deny(NP)),
            ("fe1", "be1", "tcp", deny(NP)),
        ],
    );
    check(
        "endPort",
        &v,
        &ports("[{port: 8000, endPort: 8100}]"),
        &[
            ("fe1", "be1", "tcp/8000", yes()),
            ("fe1", "be1", "tcp/8100", yes()),
            ("fe1", "be1", "tcp/8101", deny(NP)),
            ("fe1", "be1", "tcp/7999", deny(NP)),
        ],
    );
    check(
        "protocols",
        &v,
        &ports("[{protocol: UDP, port: 53}, {protocol: SCTP}]"),
        &[
            ("fe1", "be1", "udp/53", yes()),
            ("fe1", "be1", "tcp/53", deny(NP)),
            ("fe1", "be1", "sctp/3868", yes()),
        ],
    );
    check(
        "protocol only",
        &v,
        &ports("[{protocol: UDP}]"),
        &[("fe1", "be1", "udp/1", yes()), ("fe1", "be1", "udp", yes())],
    );
    check(
        "named on the destination",
        &v,
        &ports("[{port: http}, {protocol: UDP, port: dns}]"),
        &[
            ("fe1", "be1", "tcp/8080", yes()),
            ("fe1", "be1", "tcp/80", deny(NP)),
            ("fe1", "be1", "udp/53", yes()),
            // be1's dns port is UDP: a TCP rule named dns would not match; here TCP 53 fails.
            ("fe1", "be1", "tcp/53", deny(NP)),
            // be2 has no port named http.
            ("fe1", "be2", "tcp/8080", deny(NP)),
        ],
    );
    check(
        "no ports allows ICMP too",
        &v,
        &np(
            "backend",
            "p",
            "{podSelector: {}, ingress: [{from: [{namespaceSelector: {}}]}]}",
        ),
        &[("fe1", "be1", "icmp/8", yes())],
    );
}

#[test]
fn egress_named_ports_resolve_on_the_destination_endpoint() {
    let v = mk_view();
    // fe1 itself has http=80; be1 has http=8080. The destination's number counts.
    let p = np(
        "frontend",
        "p",
        "{podSelector: {matchLabels: {app: web}}, policyTypes: [Egress], egress: [{ports: [{port: http}]}]}",
    );
    check(
        "egress named",
        &v,
        &p,
        &[
            ("fe1", "be1", "tcp/8080", by(allow(NP), "frontend/p", 0)),
            ("fe1", "be1", "tcp/80", deny(NP)),
            ("fe1", OUTSIDE, "tcp/80", deny(NP)),
        ],
    );
}

#[test]
fn egress_and_ingress_policies_must_both_allow() {
    let v = mk_view();
    let p = [
        np(
            "frontend",
            "to-backend",
            "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: backend}}}], ports: [{port: 8080}]}]}",
        ),
        np("backend", "deny-in", "{podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}"),
    ]
    .concat();
    check(
        "both",
        &v,
        &p,
        &[
            // Egress by NP, ingress by baseline none: the step a policy decided is reported.
            (
                "fe1",
                "be1",
                "tcp/8080",
                by(allow(NP), "frontend/to-backend", 0),
            ),
            ("fe1", "be1", "tcp/9000", deny(NP)),
            ("fe1", "be2", "tcp/8080", deny(NP)),
            ("fe1", OUTSIDE, "tcp/8080", deny(NP)),
        ],
    );
    let d = evaluate(
        &mk_policies(&p),
        &v,
        &mk_packet(&v, "fe1", "be2", "tcp/8080"),
    );
    assert_eq!(d.direction, Some(Direction::Ingress));
    assert_eq!(d.ingress.unwrap().selected_by, ["backend/deny-in"]);
    assert_eq!(
        d.egress.unwrap().policy.as_deref(),
        Some("frontend/to-backend")
    );
}

#[test]
fn policies_selecting_one_endpoint_are_a_union() {
    let v = mk_view();
    let p = [
        np(
            "backend",
            "a-http",
            "{podSelector: {matchLabels: {app: api}}, ingress: [{ports: [{port: 8080}]}]}",
        ),
        np(
            "backend",
            "b-grpc",
            "{podSelector: {}, ingress: [{}, {ports: [{port: 9000}]}]}",
        ),
        np(
            "backend",
            "c-nothing",
            "{podSelector: {matchLabels: {app: api}}, ingress: []}",
        ),
    ]
    .concat();
    check(
        "union",
        &v,
        &p,
        &[
            ("fe1", "be1", "tcp/8080", by(allow(NP), "backend/a-http", 0)),
            ("fe1", "be1", "tcp/9000", by(allow(NP), "backend/b-grpc", 0)),
        ],
    );
    let p = [
        np(
            "backend",
            "a-http",
            "{podSelector: {matchLabels: {app: api}}, ingress: [{ports: [{port: 8080}]}]}",
        ),
        np(
            "backend",
            "b-grpc",
            "{podSelector: {}, ingress: [{ports: [{port: 1}]}, {ports: [{port: 9000}]}]}",
        ),
    ]
    .concat();
    check(
        "union rule index",
        &v,
        &p,
        &[
            ("fe1", "be1", "tcp/9000", by(allow(NP), "backend/b-grpc", 1)),
            ("fe1", "be1", "tcp/22", deny(NP)),
            // be2 is selected by b-grpc only.
            ("fe1", "be2", "tcp/8080", deny(NP)),
        ],
    );
}

#[test]
fn a_policy_never_selects_endpoints_of_another_namespace() {
    let v = mk_view();
    let p = np(
        "frontend",
        "deny-all",
        "{podSelector: {}, policyTypes: [Ingress, Egress]}",
    );
    check(
        "namespace scope",
        &v,
        &p,
        &[
            ("be2", "be1", "tcp/8080", allow(BASE)),
            ("dv1", "be1", "tcp/1", allow(BASE)),
        ],
    );
}

#[test]
fn network_policy_opens_a_segment_isolated_tenant_for_its_direction() {
    let v = mk_view();
    let p = np(
        "shop",
        "allow-in",
        "{podSelector: {matchLabels: {app: web}}, ingress: [{}]}",
    );
    check(
        "np over segment",
        &v,
        &p,
        &[
            (OUTSIDE, "web1", "tcp/80", by(allow(NP), "shop/allow-in", 0)),
            // The source's egress is still its own baseline (open tenant: allowed).
            ("o1", "web1", "tcp/80", by(allow(NP), "shop/allow-in", 0)),
            // db1's egress (tenant isolation) refuses leaving its tenant.
            ("db1", "web1", "tcp/80", deny(BASE)),
        ],
    );
}

#[test]
fn decision_json_has_verdict_and_reason() {
    let v = mk_view();
    let d = evaluate(
        &PolicySet::new(),
        &v,
        &mk_packet(&v, "api", "web1", "tcp/80"),
    );
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["verdict"], "deny");
    assert_eq!(json["tier"], "baseline");
    assert_eq!(json["direction"], "egress");
    let reason = json["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("egress of api: tenant shop has isolation segment"),
        "{reason}"
    );
    assert!(
        reason.contains("is not in segment shop/default"),
        "{reason}"
    );
}

// --- properties ---

const MODES: [Isolation; 3] = [Isolation::Segment, Isolation::Tenant, Isolation::None];

/// The baseline as stated in MISSION.md, from layout numbers rather than masked matches.
fn direct_baseline(v: &ClusterView, me: &Endpoint, peer: IpAddr) -> bool {
    let t = v.tenant(&me.tenant).unwrap();
    let mine = v.layout().decode(me.address).unwrap();
    let theirs = v.layout().decode(peer);
    match t.isolation {
        Isolation::None => true,
        Isolation::Tenant => theirs.is_some_and(|d| d.tenant == mine.tenant),
        Isolation::Segment => {
            theirs.is_some_and(|d| d.tenant == mine.tenant && d.segment == mine.segment)
        }
    }
}

fn addresses(v: &ClusterView) -> Vec<String> {
    let mut all: Vec<String> = ENDPOINTS.iter().map(|e| e.0.to_string()).collect();
    all.extend([OUTSIDE, H1, H2, "10.1.16.99"].map(String::from));
    all.into_iter()
        .map(|s| v.resolve(&s).unwrap().to_string())
        .collect()
}

/// A small vocabulary of ingress rules, combined at random.
const PEERS: [&str; 6] = [
    "{podSelector: {matchLabels: {app: web}}}",
    "{namespaceSelector: {matchLabels: {env: prod}}}",
    "{namespaceSelector: {}, podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}}",
    "{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}",
    "{ipBlock: {cidr: 8.8.8.0/24}}",
    "{podSelector: {matchExpressions: [{key: app, operator: DoesNotExist}]}}",
];
const PORTS: [&str; 5] = [
    "{port: 8080}",
    "{port: http}",
    "{protocol: UDP, port: 53}",
    "{port: 9000, endPort: 9100}",
    "{protocol: TCP}",
];

fn rule_text(peers: &[usize], ports: &[usize]) -> String {
    let peers: Vec<&str> = peers.iter().map(|i| PEERS[*i]).collect();
    let ports: Vec<&str> = ports.iter().map(|i| PORTS[*i]).collect();
    format!(
        "{{from: [{}], ports: [{}]}}",
        peers.join(", "),
        ports.join(", ")
    )
}

fn policy_text(name: &str, rules: &[(Vec<usize>, Vec<usize>)]) -> String {
    let rules: Vec<String> = rules.iter().map(|(a, b)| rule_text(a, b)).collect();
    np(
        "backend",
        name,
        &format!("{{podSelector: {{}}, ingress: [{}]}}", rules.join(", ")),
    )
}

fn rules_strategy() -> impl Strategy<Value = Vec<(Vec<usize>, Vec<usize>)>> {
    prop::collection::vec(
        (
            prop::collection::vec(0..PEERS.len(), 0..3),
            prop::collection::vec(0..PORTS.len(), 0..3),
        ),
        0..3,
    )
}

const PROTOS: [&str; 7] = [
    "tcp/8080", "tcp/80", "udp/53", "tcp/9050", "icmp/8", "sctp/1", "tcp",
];

proptest! {
    #[test]
    fn without_policies_the_verdict_is_the_stated_baseline(
        modes in prop::collection::vec(0..3usize, 8),
        from in 0..17usize,
        to in 0..17usize,
        proto in 0..PROTOS.len(),
    ) {
        let names = ["shop", "db", "open", "other", "frontend", "backend", "dev", "plain"];
        let isolations: Vec<(&str, Isolation)> =
            names.iter().zip(&modes).map(|(n, m)| (*n, MODES[*m])).collect();
        let v = mk_view_with(&isolations);
        let addrs = addresses(&v);
        let p = mk_packet(&v, &addrs[from], &addrs[to], PROTOS[proto]);
        let d = evaluate(&PolicySet::new(), &v, &p);
        let src = v.endpoint_at(p.from);
        let dst = v.endpoint_at(p.to);
        let host = dst.is_some_and(|d| v.is_host_of(p.from, &d.host))
            || src.is_some_and(|s| v.is_host_of(p.to, &s.host));
        let want = host
            || (src.is_none_or(|s| direct_baseline(&v, s, p.to))
                && dst.is_none_or(|d| direct_baseline(&v, d, p.from)));
        prop_assert_eq!(d.verdict == Verdict::Allow, want, "{:?}", d);
        prop_assert_ne!(d.tier, Tier::NetworkPolicy);
    }

    #[test]
    fn selecting_policies_are_a_union_of_their_rules(
        a in rules_strategy(),
        b in rules_strategy(),
        from in 0..17usize,
        to in 0..ENDPOINTS.len(),
        proto in 0..PROTOS.len(),
    ) {
        let v = mk_view();
        let addrs = addresses(&v);
        let p = mk_packet(&v, &addrs[from], ENDPOINTS[to].0, PROTOS[proto]);
        let only_a = mk_policies(&policy_text("a", &a));
        let only_b = mk_policies(&policy_text("b", &b));
        let both = mk_policies(&(policy_text("a", &a) + &policy_text("b", &b)));
        let ingress = |set: &PolicySet| evaluate(set, &v, &p).ingress.map(|s| s.verdict);
        let (ia, ib, iboth) = (ingress(&only_a), ingress(&only_b), ingress(&both));
        if let (Some(ia), Some(ib), Some(iboth)) = (ia, ib, iboth) {
            let want = if ia == Verdict::Allow || ib == Verdict::Allow { Verdict::Allow } else { Verdict::Deny };
            prop_assert_eq!(iboth, want);
        }
        // Whatever decided, an allow by NetworkPolicy names an existing rule of its policy.
        let d = evaluate(&both, &v, &p);
        for step in d.egress.iter().chain(d.ingress.iter()) {
            if step.tier == Tier::NetworkPolicy && step.verdict == Verdict::Allow {
                let rule = step.rule.unwrap();
                let which = if step.policy.as_deref() == Some("backend/a") { &a } else { &b };
                prop_assert!(rule < which.len());
            }
        }
    }

    #[test]
    fn romana_policies_never_turn_an_allow_into_a_deny(
        peer in 0..4usize,
        rule in 0..4usize,
        dir in 0..2usize,
        from in 0..17usize,
        to in 0..17usize,
        proto in 0..PROTOS.len(),
    ) {
        let v = mk_view();
        let addrs = addresses(&v);
        let p = mk_packet(&v, &addrs[from], &addrs[to], PROTOS[proto]);
        let peers = ["{peer: any}", "{tenant: db}", "{cidr: 8.8.0.0/16}", "{tenant: shop, segment: default}"];
        let rules = ["{protocol: any}", "{protocol: tcp, ports: [80]}", "{protocol: udp}", "{protocol: icmp, icmp_type: 8}"];
        let text = format!(
            "name: r\ndirection: {}\napplied_to: [{{tenant: shop}}, {{tenant: backend}}]\npeers: [{}]\nrules: [{}]\n",
            ["ingress", "egress"][dir], peers[peer], rules[rule]
        );
        let before = evaluate(&PolicySet::new(), &v, &p);
        let after = evaluate(&mk_policies(&text), &v, &p);
        if before.verdict == Verdict::Allow {
            prop_assert_eq!(after.verdict, Verdict::Allow);
        }
    }
}

mod dual_stack;
