//! Dual-stack: the same fixture with a second, IPv6 space. Every endpoint is the same
//! endpoint at either address, so both families are judged alike by name, selectors and
//! isolation; CIDRs match their own family only.

use super::*;

const V6_SPACE: &str = "fd00:10::/48";

fn mk_dual_view(isolations: &[(&str, Isolation)]) -> ClusterView {
    let layout = ClusterConfig {
        second_address_space: Some(V6_SPACE.parse().unwrap()),
        ..mk_layout().config().clone()
    }
    .layout()
    .unwrap();
    mk_view_in(layout, isolations)
}

/// An endpoint's IPv6 address, as text for [`check`].
fn v6(view: &ClusterView, id: &str) -> String {
    let e = view.endpoint(id).unwrap();
    e.second_address.unwrap().to_string()
}

#[test]
fn isolation_holds_in_the_second_family_as_in_the_first() {
    let v = mk_dual_view(&[]);
    let (web1, web2, api, x1) = (v6(&v, "web1"), v6(&v, "web2"), v6(&v, "api"), v6(&v, "x1"));
    assert!(web1.starts_with("fd00:10:"), "{web1}");
    check(
        "dual segment",
        &v,
        "",
        &[
            (&web1, &web2, "tcp/80", allow(BASE)),
            (&web1, &api, "tcp/80", deny(BASE)),
            (&web1, &x1, "icmp", deny(BASE)),
            // The first family is unchanged.
            ("web1", "web2", "tcp/80", allow(BASE)),
            ("web1", "api", "tcp/80", deny(BASE)),
        ],
    );
    let (db1, db2) = (v6(&v, "db1"), v6(&v, "db2"));
    check(
        "dual tenant",
        &v,
        "",
        &[(&db1, &db2, "udp/53", allow(BASE))],
    );
}

#[test]
fn selectors_pick_the_endpoint_at_either_address_and_ip_blocks_their_own_family() {
    let v = mk_dual_view(&[]);
    let p = np(
        "backend",
        "p",
        "{podSelector: {matchLabels: {app: api}}, ingress: [\
           {from: [{podSelector: {matchLabels: {app: db}}}]}, \
           {from: [{ipBlock: {cidr: 'fd00:10::/48', except: ['fd00:10:0:100::/56']}}], ports: [{port: http}]}, \
           {from: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 9000}]}]}",
    );
    let (be1, be2, dv1) = (v6(&v, "be1"), v6(&v, "be2"), v6(&v, "dv1"));
    let outside6 = "fd00:99::1";
    check(
        "dual np",
        &v,
        &p,
        &[
            // podSelector: be2 at its IPv6 address is still app=db.
            (&be2, &be1, "tcp/1234", by(allow(NP), "backend/p", 0)),
            // An IPv6 ipBlock with a named port: dv1 (host 1) is under the except.
            (&dv1, &be1, "tcp/8080", deny(NP)),
            (
                &v6(&v, "pl1"),
                &be1,
                "tcp/8080",
                by(allow(NP), "backend/p", 1),
            ),
            (outside6, &be1, "tcp/8080", deny(NP)),
            // An IPv4 ipBlock never matches IPv6 traffic, and the reverse.
            (&v6(&v, "pl1"), &be1, "tcp/9000", deny(NP)),
            ("pl1", "be1", "tcp/9000", by(allow(NP), "backend/p", 2)),
            ("pl1", "be1", "tcp/8080", deny(NP)),
        ],
    );
}

#[test]
fn romana_cidr_targets_apply_to_the_endpoint_and_peers_match_their_family() {
    let v = mk_dual_view(&[]);
    let web1_v4 = v.endpoint("web1").unwrap().address;
    let p = format!(
        r#"{{"name": "to-web1", "direction": "ingress",
             "applied_to": [{{"cidr": "{web1_v4}/32"}}],
             "peers": [{{"cidr": "{V6_SPACE}"}}],
             "rules": [{{"protocol": "tcp", "ports": [22]}}]}}"#
    );
    // o1's tenant is open, so its egress lets everything out: web1's ingress decides.
    let (web1, o1) = (v6(&v, "web1"), v6(&v, "o1"));
    check(
        "dual romana",
        &v,
        &p,
        &[
            // Applied by its IPv4 address, the policy covers web1's IPv6 side too.
            (&o1, &web1, "tcp/22", by(allow(BASE), "to-web1", 0)),
            (&o1, &web1, "tcp/23", deny(BASE)),
            // The peer CIDR is IPv6: IPv4 traffic from o1 stays isolated.
            ("o1", "web1", "tcp/22", deny(BASE)),
        ],
    );
}

#[test]
fn a_segment_gateway_of_the_second_family_is_its_hosts_own() {
    let v = mk_dual_view(&[]);
    let web1 = v.endpoint("web1").unwrap().second_address.unwrap();
    let gateway = v.layout().gateway_of(web1).unwrap();
    assert!(gateway.is_ipv6());
    check(
        "dual host",
        &v,
        "",
        &[
            (
                &gateway.to_string(),
                &web1.to_string(),
                "tcp/80",
                allow(HOST),
            ),
            // h1's IPv6 fabric address is its own too; h2's is not web1's host.
            (H1_V6, &web1.to_string(), "tcp/80", allow(HOST)),
            (H2_V6, &web1.to_string(), "tcp/80", deny(BASE)),
        ],
    );
}

#[test]
fn explain_ends_take_an_endpoints_address_of_the_other_sides_family() {
    let v = mk_dual_view(&[]);
    let web2 = v.endpoint("web2").unwrap().clone();
    let web2_v6 = web2.second_address.unwrap();
    // An endpoint id facing an IPv6 address means its IPv6 address, on either side.
    assert_eq!(
        v.resolve_ends("web1", &web2_v6.to_string()).unwrap(),
        (v.endpoint("web1").unwrap().second_address.unwrap(), web2_v6)
    );
    assert_eq!(
        v.resolve_ends(&web2_v6.to_string(), "web1").unwrap().1,
        v.endpoint("web1").unwrap().second_address.unwrap()
    );
    assert_eq!(
        v.resolve_ends("web1", "web2").unwrap(),
        (v.endpoint("web1").unwrap().address, web2.address)
    );
    // Two literal addresses of different families are no packet.
    let err = v.resolve_ends("10.1.0.1", "fd00:10::1").unwrap_err();
    assert!(matches!(err, ResolveError::Families { .. }), "{err}");
    // An unknown name is refused, quoted.
    let err = v.resolve_ends("nope", "web1").unwrap_err().to_string();
    assert!(err.starts_with("from: \"nope\" is neither"), "{err}");
    // A single-family endpoint has no address to offer.
    let single = mk_view();
    assert!(matches!(
        single.resolve_ends("web1", "fd00:10::1"),
        Err(ResolveError::Families { .. })
    ));
}
