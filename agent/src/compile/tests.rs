use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use proptest::prelude::*;
use romana_core::policy::{evaluate, parse_documents, Packet, Policy, Protocol, Verdict as Eval};
use romana_core::{ClusterConfig, Endpoint, Host, Isolation, NamedPort, Segment, Tenant};

use super::interp::{interpret, Probe};
use super::network_policy::subtract;
use super::*;
use crate::fixtures::*;
use crate::ifname::{endpoint_ifname, host_interface};
use crate::nft::SET_QUARANTINE;

fn layout_of(s: &ClusterState) -> Layout {
    s.config.as_ref().unwrap().layout().unwrap()
}

fn program(s: &ClusterState, host: &str) -> NftProgram {
    compile(s, Some(&layout_of(s)), host)
}

fn add_policies(s: &mut ClusterState, text: &str) {
    for p in parse_documents(text).unwrap() {
        s.policies.insert(p.id(), p);
    }
}

/// Whether the hosts on the packet's path let it through: the source endpoint's host
/// (egress, entering from its interface) and the destination endpoint's host (ingress,
/// leaving through its interface); one host when both are there. Traffic between an
/// endpoint and its own host's addresses is delivered or sent locally (input, output) and
/// never reaches that host's forward hook.
fn datapath_allows(s: &ClusterState, programs: &BTreeMap<String, NftProgram>, p: &Packet) -> bool {
    let view = s.view(&layout_of(s));
    let src = view.endpoint_at(p.from).cloned();
    let dst = view.endpoint_at(p.to).cloned();
    let hosts: BTreeSet<String> = src
        .iter()
        .chain(dst.iter())
        .map(|e| e.host.clone())
        .collect();
    let allowed = hosts.iter().all(|h| {
        if view.is_host_of(p.from, h) || view.is_host_of(p.to, h) {
            return true;
        }
        let on_h = |e: &Option<Endpoint>| {
            e.as_ref()
                .filter(|e| e.host == *h)
                .map(|e| host_interface(e).expect("generated names are valid"))
        };
        let probe = Probe {
            packet: *p,
            iif: on_h(&src),
            oif: on_h(&dst),
        };
        interpret(&programs[h], &probe)
    });
    allowed
}

fn mk_packet(from: IpAddr, to: IpAddr, what: &str) -> Packet {
    let mut parts = what.split('/');
    let protocol: Protocol = parts.next().unwrap().parse().unwrap();
    let a = parts.next().map(|n| n.parse::<u16>().unwrap());
    let b = parts.next().map(|n| n.parse::<u8>().unwrap());
    let icmp = protocol == Protocol::Icmp;
    Packet {
        from,
        to,
        protocol,
        port: if icmp { None } else { a },
        icmp_type: if icmp { a.map(|t| t as u8) } else { None },
        icmp_code: if icmp { b } else { None },
    }
}

// --- the random cluster ---

const TENANTS: [&str; 4] = ["a", "b", "c", "d"];
const MODES: [Isolation; 3] = [Isolation::Segment, Isolation::Tenant, Isolation::None];
const PACKETS: [&str; 10] = [
    "tcp/8080", "tcp/80", "tcp/9050", "tcp/22", "udp/53", "udp/1234", "sctp/1", "icmp/8/0",
    "icmp/3/1", "icmp/3/0",
];

#[derive(Clone, Debug)]
struct Case {
    /// 0: IPv4, 1: IPv6, 2: dual-stack (IPv4 first, IPv6 second).
    families: u8,
    modes: Vec<usize>,
    prod: Vec<bool>,
    /// (host, tenant, segment, number, app label, ports)
    endpoints: Vec<(u32, usize, u32, u32, usize, usize)>,
    /// (tenant, selector, types, ingress rules, egress rules); a rule is (peers, ports).
    k8s: Vec<K8sCase>,
    /// (direction, applied_to, peers, rules)
    romana: Vec<(bool, usize, Vec<usize>, Vec<usize>)>,
    /// (from, to, what): indexes into the candidate addresses (endpoints' when the flag
    /// is set and there are endpoints) and PACKETS.
    packets: Vec<(Pick, Pick, usize)>,
}

type Rule2 = (Vec<usize>, Vec<usize>);
/// (tenant, selector, policy types, ingress rules, egress rules).
type K8sCase = (usize, usize, usize, Vec<Rule2>, Vec<Rule2>);
/// (an endpoint's address, index).
type Pick = (bool, usize);

fn rule2() -> impl Strategy<Value = Vec<Rule2>> {
    prop::collection::vec(
        (
            prop::collection::vec(0..8usize, 0..3),
            prop::collection::vec(0..8usize, 0..3),
        ),
        0..3,
    )
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..3u8,
        prop::collection::vec(0..3usize, 4),
        prop::collection::vec(any::<bool>(), 4),
        prop::collection::vec(
            (0..3u32, 0..4usize, 0..2u32, 2..12u32, 0..3usize, 0..4usize),
            0..9,
        ),
        prop::collection::vec((0..4usize, 0..3usize, 0..4usize, rule2(), rule2()), 0..4),
        prop::collection::vec(
            (
                any::<bool>(),
                0..5usize,
                prop::collection::vec(0..7usize, 1..3),
                prop::collection::vec(0..6usize, 1..3),
            ),
            0..3,
        ),
        prop::collection::vec(
            (
                (prop::bool::weighted(0.7), 0..40usize),
                (prop::bool::weighted(0.7), 0..40usize),
                0..PACKETS.len(),
            ),
            40,
        ),
    )
        .prop_map(
            |(families, modes, prod, endpoints, k8s, romana, packets)| Case {
                families,
                modes,
                prod,
                endpoints,
                k8s,
                romana,
                packets,
            },
        )
}

/// The cluster of a case, its policies' text, and the candidate addresses of packets.
fn build(c: &Case) -> (ClusterState, Vec<IpAddr>) {
    let mut s = ClusterState::default();
    let config = match c.families {
        0 => mk_config(0),
        1 => mk_config_v6(),
        _ => mk_config_dual(),
    };
    s.config = Some(config.clone());
    let l = config.layout().unwrap();
    let second = l.second_family();
    let v4_hosts = ["192.168.0.11", "192.168.0.12", "192.168.1.13"];
    let v6_hosts = ["fd00:ff::11", "fd00:ff::12", "fd00:ff::13"];
    let host_ips = if c.families == 1 { v6_hosts } else { v4_hosts };
    for (i, hip) in host_ips.iter().enumerate() {
        let name = format!("h{}", i + 1);
        s.hosts.insert(
            name.clone(),
            Host {
                name,
                ip: ip(hip),
                rack: 0,
                index: i as u32,
                second_ip: second.map(|_| ip(v6_hosts[i])),
            },
        );
    }
    for (i, t) in TENANTS.iter().enumerate() {
        let mut tenant = mk_tenant(t, i as u32 + 1, MODES[c.modes[i]]);
        if c.prod[i] {
            tenant.labels.insert("env".into(), "prod".into());
        }
        s.tenants.insert(t.to_string(), tenant);
        for seg in 0..2 {
            let seg = mk_segment(t, &format!("s{seg}"), seg);
            s.segments.insert((t.to_string(), seg.name.clone()), seg);
        }
    }
    let mut used = BTreeSet::new();
    for (k, (host, tenant, seg, num, app, ports)) in c.endpoints.iter().enumerate() {
        let address = l
            .endpoint_address(*host, *tenant as u32 + 1, *seg, u128::from(*num))
            .unwrap();
        if !used.insert(address) {
            continue;
        }
        let mut labels = BTreeMap::new();
        if *app < 2 {
            labels.insert("app".into(), ["web", "db"][*app].into());
        }
        let port = |name: &str, protocol: &str, port| NamedPort {
            name: name.into(),
            protocol: protocol.into(),
            port,
        };
        let ports = match ports {
            0 => vec![],
            1 => vec![port("http", "TCP", 8080)],
            2 => vec![port("http", "TCP", 80), port("dns", "UDP", 53)],
            _ => vec![port("dns", "TCP", 53)],
        };
        let id = format!("e{k}");
        s.endpoints.insert(
            id.clone(),
            Endpoint {
                // A third are VMs on named taps: nft must judge them as it judges veths.
                interface: match k % 3 {
                    1 => format!("tap{k:04}-vm"),
                    _ => String::new(),
                },
                pod: None,
                second_address: second.map(|l| {
                    l.endpoint_address(*host, *tenant as u32 + 1, *seg, u128::from(*num))
                        .unwrap()
                }),
                id,
                address,
                host: format!("h{}", host + 1),
                tenant: TENANTS[*tenant].into(),
                segment: format!("s{seg}"),
                labels,
                ports,
            },
        );
    }
    add_policies_text(&mut s, &policy_text(c, &l));

    // Endpoints' addresses first (of every family), then the others.
    let mut addrs: Vec<IpAddr> = s.endpoints.values().flat_map(|e| e.addresses()).collect();
    for h in s.hosts.values() {
        addrs.extend(h.ips());
    }
    for f in l.families() {
        for (h, t, seg) in [(0, 1, 0), (1, 1, 1), (2, 2, 0), (0, 3, 0)] {
            addrs.push(f.gateway(h, t, seg).unwrap());
        }
        addrs.push(f.endpoint_address(1, 1, 0, 99).unwrap());
        addrs.push(f.endpoint_address(5, 2, 1, 5).unwrap());
    }
    if c.families > 0 {
        addrs.extend([ip("2001:db8::8"), ip("fd99::9")]);
    }
    if c.families != 1 {
        addrs.extend([ip("8.8.8.8"), ip("192.168.9.9")]);
    }
    (s, addrs)
}

fn policy_text(c: &Case, l: &Layout) -> String {
    let space = l.address_space();
    let host1 = l.host_prefix(1).unwrap();
    let seg = l.segment_cidr(0, 1, 0).unwrap();
    // Dual-stack: CIDRs of the second family where the others have an outside one, so
    // every case has ipBlocks and Romana CIDR peers of both families.
    let outside = match (c.families, l.second_family()) {
        (_, Some(second)) => second.host_prefix(1).unwrap().to_string(),
        (1, None) => "2001:db8::/32".to_string(),
        _ => "8.8.8.0/24".to_string(),
    };
    let peers = [
        "{podSelector: {matchLabels: {app: web}}}".to_string(),
        "{namespaceSelector: {matchLabels: {env: prod}}}".to_string(),
        "{namespaceSelector: {}, podSelector: {matchExpressions: [{key: app, operator: NotIn, values: [db]}]}}".to_string(),
        format!("{{ipBlock: {{cidr: \"{space}\", except: [\"{host1}\", \"{seg}\"]}}}}"),
        format!("{{ipBlock: {{cidr: \"{outside}\"}}}}"),
        format!("{{ipBlock: {{cidr: \"{host1}\"}}}}"),
        "{podSelector: {}}".to_string(),
        "{ipBlock: {cidr: \"0.0.0.0/0\"}}".to_string(),
    ];
    let ports = [
        "{port: 8080}",
        "{port: http}",
        "{protocol: UDP, port: 53}",
        "{protocol: UDP, port: dns}",
        "{port: 9000, endPort: 9100}",
        "{protocol: TCP}",
        "{protocol: SCTP}",
        "{port: 80}",
    ];
    let selectors = [
        "{}",
        "{matchLabels: {app: web}}",
        "{matchExpressions: [{key: app, operator: NotIn, values: [db]}]}",
    ];
    let types = [
        "",
        "policyTypes: [Ingress], ",
        "policyTypes: [Egress], ",
        "policyTypes: [Ingress, Egress], ",
    ];
    let rules = |rules: &[Rule2], key: &str| -> String {
        let rules: Vec<String> = rules
            .iter()
            .map(|(p, q)| {
                let p: Vec<&str> = p.iter().map(|i| peers[*i].as_str()).collect();
                let q: Vec<&str> = q.iter().map(|i| ports[*i]).collect();
                format!("{{{key}: [{}], ports: [{}]}}", p.join(", "), q.join(", "))
            })
            .collect();
        rules.join(", ")
    };
    let mut docs = Vec::new();
    for (k, (tenant, sel, ty, ingress, egress)) in c.k8s.iter().enumerate() {
        docs.push(format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{k}, namespace: {}}}\nspec: {{podSelector: {}, {}ingress: [{}], egress: [{}]}}\n",
            TENANTS[*tenant],
            selectors[*sel],
            types[*ty],
            rules(ingress, "from"),
            rules(egress, "to"),
        ));
    }
    let applied = [
        "{tenant: a}".to_string(),
        "{tenant: b, segment: s1}".to_string(),
        format!("{{cidr: \"{}\"}}", l.host_prefix(0).unwrap()),
        "{endpoint: e0}".to_string(),
        "{endpoint: e3}".to_string(),
    ];
    let rpeers = [
        "{peer: any}".to_string(),
        "{peer: host}".to_string(),
        "{tenant: c}".to_string(),
        "{tenant: a, segment: s0}".to_string(),
        format!("{{cidr: \"{outside}\"}}"),
        format!("{{cidr: \"{host1}\"}}"),
        "{tenant: d, segment: s1}".to_string(),
    ];
    let rrules = [
        "{protocol: any}",
        "{protocol: tcp, ports: [80, 8080], port_ranges: [[9000, 9050], [8080, 8081]]}",
        "{protocol: udp}",
        "{protocol: icmp, icmp_type: 8}",
        "{protocol: icmp, icmp_type: 3, icmp_code: 1}",
        "{protocol: SCTP, ports: [1]}",
    ];
    for (k, (ingress, applied_to, peers, rules)) in c.romana.iter().enumerate() {
        let peers: Vec<&str> = peers.iter().map(|i| rpeers[*i].as_str()).collect();
        let rules: Vec<&str> = rules.iter().map(|i| rrules[*i]).collect();
        docs.push(format!(
            "name: r{k}\ndirection: {}\napplied_to: [{}]\npeers: [{}]\nrules: [{}]\n",
            if *ingress { "ingress" } else { "egress" },
            applied[*applied_to],
            peers.join(", "),
            rules.join(", "),
        ));
    }
    if docs.is_empty() {
        return String::new();
    }
    docs.join("---\n")
}

fn add_policies_text(s: &mut ClusterState, text: &str) {
    if !text.is_empty() {
        add_policies(s, text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The compiled programs of the hosts on a packet's path decide as the evaluator does:
    /// the compiler is held to `romana_core::policy::evaluate`.
    #[test]
    fn compiled_programs_decide_as_the_evaluator(c in case()) {
        let (s, addrs) = build(&c);
        let l = layout_of(&s);
        let view = s.view(&l);
        let policies = s.policy_set();
        let programs: BTreeMap<String, NftProgram> = s
            .hosts
            .keys()
            .map(|h| (h.clone(), program(&s, h)))
            .collect();
        let endpoints: usize = s.endpoints.values().map(|e| e.addresses().count()).sum();
        let pick = |(ep, i): Pick| {
            if ep && endpoints > 0 { addrs[i % endpoints] } else { addrs[i % addrs.len()] }
        };
        for (from, to, what) in &c.packets {
            let (from, to) = (pick(*from), pick(*to));
            // No packet carries addresses of two families.
            if from == to || from.is_ipv4() != to.is_ipv4() {
                continue;
            }
            let p = mk_packet(from, to, PACKETS[*what]);
            let want = evaluate(&policies, &view, &p);
            let got = datapath_allows(&s, &programs, &p);
            prop_assert_eq!(
                got,
                want.verdict == Eval::Allow,
                "{:?}\nevaluator: {}\npolicies:\n{}\nprograms:\n{}",
                p,
                want.reason,
                policy_text(&c, &l),
                programs.iter().map(|(h, p)| format!("--- {h}\n{}", p.render_table())).collect::<String>()
            );
        }
    }
}

// --- goldens and shape ---

/// A cluster and its policies as JSON: `testdata/NAME.json`.
#[derive(serde::Deserialize)]
struct GoldenInput {
    host: String,
    config: ClusterConfig,
    hosts: Vec<Host>,
    tenants: Vec<Tenant>,
    segments: Vec<Segment>,
    endpoints: Vec<Endpoint>,
    policies: Vec<Policy>,
}

fn load_golden(name: &str) -> (ClusterState, String) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    let input: GoldenInput =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut s = ClusterState::default();
    s.config = Some(input.config);
    s.hosts = input
        .hosts
        .into_iter()
        .map(|h| (h.name.clone(), h))
        .collect();
    s.tenants = input
        .tenants
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    s.segments = input
        .segments
        .into_iter()
        .map(|g| ((g.tenant.clone(), g.name.clone()), g))
        .collect();
    s.endpoints = input
        .endpoints
        .into_iter()
        .map(|e| (e.id.clone(), e))
        .collect();
    for mut p in input.policies {
        p.apply_defaults();
        assert!(p.validate().is_empty(), "{:?}", p.validate());
        s.policies.insert(p.id(), p);
    }
    (s, input.host)
}

/// Compares with `testdata/NAME`, or rewrites it when `UPDATE_GOLDEN=1`.
fn golden(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(got, want, "golden file {name} differs");
}

#[test]
fn policy_program_is_golden() {
    let (s, host) = load_golden("policy_small.json");
    golden("policy_small.nft", &program(&s, &host).render_table());
}

#[test]
fn golden_policy_program_decides_as_the_evaluator_on_its_own_cases() {
    let (s, _) = load_golden("policy_small.json");
    let l = layout_of(&s);
    let view = s.view(&l);
    let programs: BTreeMap<String, NftProgram> = s
        .hosts
        .keys()
        .map(|h| (h.clone(), program(&s, h)))
        .collect();
    let mut addrs: Vec<IpAddr> = s.endpoints.values().map(|e| e.address).collect();
    addrs.extend([ip("8.8.8.8"), ip("192.168.0.11"), ip("10.0.16.1")]);
    let mut allowed = 0;
    for from in &addrs {
        for to in &addrs {
            for what in PACKETS {
                if from == to {
                    continue;
                }
                let p = mk_packet(*from, *to, what);
                let want = evaluate(&s.policy_set(), &view, &p).verdict == Eval::Allow;
                assert_eq!(datapath_allows(&s, &programs, &p), want, "{p:?}");
                allowed += usize::from(want);
            }
        }
    }
    assert!(allowed > 0);
}

/// 2 vs 40 endpoints, with policies of both forms selecting some of them.
fn mk_policy_state(endpoints: u32) -> ClusterState {
    let mut s = mk_state();
    s.tenants
        .insert("o".into(), mk_tenant("o", 2, Isolation::None));
    s.segments.insert(
        ("o".into(), "default".into()),
        mk_segment("o", "default", 0),
    );
    for i in 0..endpoints {
        let h = (i / 3) % 3;
        let host = ["h1", "h2", "h3"][h as usize];
        let (tenant, segment, third, app) = match i % 3 {
            0 => ("t", "default", 16, "web"),
            1 => ("o", "default", 32, "web"),
            _ => ("t", "web", 17, "db"),
        };
        let mut e = mk_endpoint(
            &format!("e{i}"),
            &format!("10.{h}.{third}.{}", 2 + i),
            host,
            tenant,
            segment,
        );
        e.labels.insert("app".into(), app.into());
        e.ports.push(NamedPort {
            name: "http".into(),
            protocol: "TCP".into(),
            port: 8000 + i as u16,
        });
        add_endpoint(&mut s, e);
    }
    add_policies_text(
        &mut s,
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: t}\n\
         spec: {podSelector: {matchLabels: {app: web}}, ingress: [{from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}], ports: [{port: http}, {port: 9000, endPort: 9100}]}]}\n\
         ---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: egress, namespace: o}\n\
         spec: {podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: t}}}]}]}\n\
         ---\n\
         name: lb\ndirection: ingress\napplied_to: [{tenant: t, segment: web}]\npeers: [{cidr: 192.168.10.0/24}]\nrules: [{protocol: tcp, ports: [443]}]\n",
    );
    s
}

#[test]
fn rule_count_is_the_same_for_2_and_40_endpoints_with_policies() {
    let (two, forty) = (mk_policy_state(2), mk_policy_state(40));
    let (a, b) = (program(&two, "h1"), program(&forty, "h1"));
    assert_eq!(a.rule_count(), b.rule_count());
    assert!(
        a.view().same_structure(&b.view()),
        "endpoints change set elements only"
    );
    assert!(b.element_count() > a.element_count());
    // Egress groups, ingress groups, the baseline of both directions, forward.
    assert!(a.chain("np_in_0").is_some() && a.chain("np_eg_0").is_some());
}

#[test]
fn endpoint_churn_changes_elements_only() {
    let before = program(&mk_policy_state(7), "h1");
    let mut s = mk_policy_state(7);
    // e4 (h2) goes; e9 (h1, t/default, web) arrives; e2 (h1) changes its label to web and
    // so joins the group e0 is in.
    s.endpoints.remove("e4");
    s.endpoints
        .get_mut("e2")
        .unwrap()
        .labels
        .insert("app".into(), "web".into());
    let mut e = mk_endpoint("e9", "10.0.16.11", "h1", "t", "default");
    e.labels.insert("app".into(), "web".into());
    add_endpoint(&mut s, e);
    let after = program(&s, "h1");
    assert!(before.view().same_structure(&after.view()));
    let (add, delete) = crate::nft::element_changes(&before.view(), &after.view());
    assert!(!add.is_empty() && !delete.is_empty());
}

#[test]
fn without_policies_the_program_is_the_isolation_baseline_in_both_directions() {
    let s = mk_state();
    let p = program(&s, "h1");
    let ingress: Vec<String> = p
        .chain(CHAIN_INGRESS)
        .unwrap()
        .rules
        .iter()
        .map(Rule::text)
        .collect();
    assert_eq!(
        ingress,
        [
            "ip daddr vmap @ingress_np",
            "ip daddr & 255.0.255.0 . ip saddr & 255.0.255.0 @same_segment return",
            "ip daddr & 255.0.240.0 . ip saddr & 255.0.240.0 @same_tenant return",
            "ip daddr & 255.0.240.0 @open_tenant return",
            "drop",
        ]
    );
    let egress: Vec<String> = p
        .chain(CHAIN_EGRESS)
        .unwrap()
        .rules
        .iter()
        .map(Rule::text)
        .collect();
    assert_eq!(egress[0], "ip saddr vmap @egress_np");
    assert_eq!(
        egress[1],
        "ip saddr & 255.0.255.0 . ip daddr & 255.0.255.0 @same_segment return"
    );
}

#[test]
fn except_is_carved_out_of_the_cidr_and_ranges_are_merged() {
    let mut out = Vec::new();
    subtract(
        "10.0.0.0/8".parse().unwrap(),
        &[
            "10.1.0.0/16".parse().unwrap(),
            "10.0.16.0/24".parse().unwrap(),
        ],
        &mut out,
    );
    let out = IpNet::aggregate(&out);
    assert!(out
        .iter()
        .all(|n| !n.contains(&ip("10.1.2.3")) && !n.contains(&ip("10.0.16.9"))));
    assert!(out.iter().any(|n| n.contains(&ip("10.0.17.1"))));
    assert!(out.iter().any(|n| n.contains(&ip("10.255.0.1"))));
    let l = mk_config(0).layout().unwrap();
    let s = mk_state();
    let view = s.view_without_endpoints(&l);
    let c = Compiler::new(&s, &l, &view, &BTreeMap::new(), "h1", "");
    assert_eq!(
        c.port_ranges(vec![(6, 80, 80), (6, 79, 85), (17, 53, 53), (6, 86, 90)])
            .to_string(),
        "meta l4proto . th dport { tcp . 79-90, udp . 53 }"
    );
}

#[test]
fn parse_table_reads_real_nft_output_of_a_policy_program() {
    // testdata/table_policy_small.json is `nft -j list table inet romana` from nft 1.0.6
    // after applying policy_small.nft: verdict maps, `addr . proto . port` elements.
    let (s, host) = load_golden("policy_small.json");
    let json: serde_json::Value =
        serde_json::from_str(include_str!("../../testdata/table_policy_small.json")).unwrap();
    let view = crate::nft::parse_table(&json).unwrap();
    assert_eq!(view, program(&s, &host).view());
}

// --- anti-spoofing, unknown interfaces, quarantine ---

/// h1 holds a, b (t/default), w (t/web) and x (tenant o, isolation none); h2 holds r
/// (t/default).
fn mk_spoof_state() -> ClusterState {
    let mut s = mk_state();
    s.tenants
        .insert("o".into(), mk_tenant("o", 2, Isolation::None));
    s.segments.insert(
        ("o".into(), "default".into()),
        mk_segment("o", "default", 0),
    );
    for e in [
        mk_endpoint("a", "10.0.16.2", "h1", "t", "default"),
        mk_endpoint("b", "10.0.16.3", "h1", "t", "default"),
        mk_endpoint("w", "10.0.17.2", "h1", "t", "web"),
        mk_endpoint("x", "10.0.32.2", "h1", "o", "default"),
        mk_endpoint("r", "10.1.16.2", "h2", "t", "default"),
    ] {
        add_endpoint(&mut s, e);
    }
    s
}

/// Whether `host` forwards a packet entering from endpoint `from_id`'s interface (or the
/// uplink) with source `src`, to `dst` (out of `to_id`'s interface, or the uplink).
fn forwards(
    s: &ClusterState,
    host: &str,
    from_id: Option<&str>,
    src: &str,
    to_id: Option<&str>,
    dst: &str,
) -> bool {
    let probe = Probe {
        packet: mk_packet(ip(src), ip(dst), "udp/53"),
        iif: from_id.map(endpoint_ifname),
        oif: to_id.map(endpoint_ifname),
    };
    interpret(&program(s, host), &probe)
}

#[test]
fn a_packet_is_judged_by_the_interface_it_came_from() {
    let s = mk_spoof_state();
    // Genuine: a -> b (same segment, same host) and a -> r (same segment, other host).
    assert!(forwards(
        &s,
        "h1",
        Some("a"),
        "10.0.16.2",
        Some("b"),
        "10.0.16.3"
    ));
    assert!(forwards(
        &s,
        "h1",
        Some("a"),
        "10.0.16.2",
        None,
        "10.1.16.2"
    ));
    // w (other segment) and x (open tenant) forge a's address, b's segment gateway, the
    // host's own address and x's open-tenant address, towards b and towards r.
    for (attacker, forged) in [
        ("w", "10.0.16.2"),
        ("w", "10.0.16.1"),
        ("w", "192.168.0.11"),
        ("w", "10.0.32.2"),
        ("x", "10.0.16.2"),
        ("x", "10.0.0.1"),
    ] {
        assert!(
            !forwards(&s, "h1", Some(attacker), forged, Some("b"), "10.0.16.3"),
            "{attacker} as {forged} to b"
        );
        assert!(
            !forwards(&s, "h1", Some(attacker), forged, None, "10.1.16.2"),
            "{attacker} as {forged} to r"
        );
    }
    // x's own address still reaches whatever its open baseline allows.
    assert!(forwards(
        &s,
        "h1",
        Some("x"),
        "10.0.32.2",
        None,
        "10.1.32.9"
    ));
}

#[test]
fn dual_stack_a_packet_is_judged_by_the_interface_it_came_from_in_both_families() {
    let mut s = mk_spoof_state();
    s.config = Some(mk_config_dual());
    let l = layout_of(&s);
    let v6 = l.second_family().unwrap();
    // Every endpoint's IPv6 address has the numbers of its IPv4 one.
    for e in s.endpoints.values_mut() {
        let d = l.decode(e.address).unwrap();
        e.second_address = Some(
            v6.endpoint_address(d.host, d.tenant, d.segment, d.endpoint)
                .unwrap(),
        );
    }
    let a6 = |id: &str| s.endpoints[id].second_address.unwrap().to_string();
    let (a, b, r) = (a6("a"), a6("b"), a6("r"));
    assert!(forwards(&s, "h1", Some("a"), &a, Some("b"), &b));
    assert!(forwards(&s, "h1", Some("a"), &a, None, &r));
    // w forges a's IPv6 address, or its own IPv4 address in an IPv6 packet's place: its
    // interface vouches only for its own address of each family.
    let gateway = v6.gateway(0, 1, 0).unwrap().to_string();
    for forged in [a.as_str(), gateway.as_str(), "fd00:ff::11", "fd00:10::99"] {
        assert!(
            !forwards(&s, "h1", Some("w"), forged, Some("b"), &b),
            "w as {forged} to b"
        );
        assert!(
            !forwards(&s, "h1", Some("w"), forged, None, &r),
            "w as {forged} to r"
        );
    }
    // A packet routed out of b's interface must be for b's own address of its family.
    assert!(!forwards(&s, "h1", Some("x"), &a6("x"), Some("b"), &a));
    // x's own IPv6 address reaches what its open baseline allows.
    assert!(forwards(
        &s,
        "h1",
        Some("x"),
        &a6("x"),
        None,
        "fd00:10:100::9"
    ));
}

#[test]
fn a_packet_from_the_fabric_claiming_the_host_or_a_gateway_is_not_the_host() {
    let s = mk_spoof_state();
    // Own-host traffic never reaches forward; a forwarded one with these sources is forged
    // and meets b's baseline like any other packet from outside its segment.
    for forged in ["192.168.0.11", "10.0.0.1", "10.0.17.1"] {
        assert!(
            !forwards(&s, "h1", None, forged, Some("b"), "10.0.16.3"),
            "{forged}"
        );
    }
    assert!(forwards(
        &s,
        "h1",
        None,
        "10.1.16.2",
        Some("b"),
        "10.0.16.3"
    ));
}

#[test]
fn an_interface_the_agent_has_not_programmed_passes_nothing() {
    let mut s = mk_spoof_state();
    // The endpoint record of n is not known yet: its interface has no element.
    let n = mk_endpoint("n", "10.0.16.9", "h1", "t", "default");
    let n_addr = n.address;
    let probe = |from: bool| Probe {
        packet: if from {
            mk_packet(n_addr, ip("10.0.16.3"), "udp/53")
        } else {
            mk_packet(ip("10.0.16.3"), n_addr, "udp/53")
        },
        iif: Some(endpoint_ifname(if from { "n" } else { "b" })),
        oif: Some(endpoint_ifname(if from { "b" } else { "n" })),
    };
    assert!(!interpret(&program(&s, "h1"), &probe(true)));
    assert!(!interpret(&program(&s, "h1"), &probe(false)));
    add_endpoint(&mut s, n);
    assert!(interpret(&program(&s, "h1"), &probe(true)));
    assert!(interpret(&program(&s, "h1"), &probe(false)));
    // Routed out of b's interface, a packet must be for b.
    assert!(!forwards(
        &s,
        "h1",
        Some("a"),
        "10.0.16.2",
        Some("b"),
        "10.0.16.9"
    ));
}

#[test]
fn an_unreadable_network_policy_quarantines_its_tenant_not_the_others() {
    let mut s = mk_spoof_state();
    assert!(forwards(
        &s,
        "h1",
        Some("a"),
        "10.0.16.2",
        Some("b"),
        "10.0.16.3"
    ));
    s.unreadable.insert(
        "/romana/v1/policies/k8s/t/deny-all".into(),
        crate::state::Unreadable {
            tenant: Some("t".into()),
            error: "unknown field `fromNewerRelease`".into(),
        },
    );
    let p = program(&s, "h1");
    assert_eq!(p.sets[SET_QUARANTINE].elements.len(), 3, "a, b and w");
    assert!(!forwards(
        &s,
        "h1",
        Some("a"),
        "10.0.16.2",
        Some("b"),
        "10.0.16.3"
    ));
    assert!(!forwards(
        &s,
        "h1",
        None,
        "10.1.16.2",
        Some("b"),
        "10.0.16.3"
    ));
    assert!(!forwards(
        &s,
        "h1",
        Some("a"),
        "10.0.16.2",
        None,
        "10.1.16.2"
    ));
    assert!(forwards(
        &s,
        "h1",
        Some("x"),
        "10.0.32.2",
        None,
        "10.1.32.9"
    ));
    // Without a quarantined endpoint no packet pays for the quarantine lookups; with one,
    // the two drops sit before the established shortcut.
    let clean = program(&mk_spoof_state(), "h1").render_table();
    assert!(!clean.contains("@quarantine"), "{clean}");
    let quarantined = p.render_table();
    let drops = quarantined
        .find("@quarantine drop")
        .expect("quarantine drops");
    let established = quarantined
        .find("ct state established")
        .expect("established");
    assert!(drops < established, "{quarantined}");
    assert_eq!(quarantined.matches("@quarantine drop").count(), 2);
}
