use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

fn mk_layout(space: &str, rack: u8, host: u8, tenant: u8, segment: u8) -> Layout {
    ClusterConfig {
        address_space: space.parse().unwrap(),
        host_bits: host,
        rack_bits: rack,
        tenant_bits: tenant,
        segment_bits: segment,
        single_tenant: false,
        second_address_space: None,
    }
    .layout()
    .unwrap()
}

/// The MISSION example with a second, IPv6 space: 8 host, 4 tenant, 4 segment bits in each.
fn dual() -> Layout {
    ClusterConfig {
        second_address_space: Some(net("fd00:10::/48")),
        ..mission().config().clone()
    }
    .layout()
    .unwrap()
}

#[test]
fn a_dual_stack_layout_numbers_both_families_alike() {
    let l = dual();
    let v6 = l.second_family().expect("a second family");
    assert_eq!(l.families().count(), 2);
    assert_eq!(mission().families().count(), 1);
    assert_eq!(v6.host_prefix(3).unwrap(), net("fd00:10:0:300::/56"));
    assert_eq!(v6.segment_cidr(3, 5, 2).unwrap(), net("fd00:10:0:352::/64"));
    assert_eq!(
        l.endpoint_addresses(3, 5, 2, 7).unwrap(),
        [ip("10.3.82.7"), ip("fd00:10:0:352::7")]
    );
    // Either address decodes to the same place, and has its own family's gateway.
    assert_eq!(l.decode(ip("fd00:10:0:352::7")), l.decode(ip("10.3.82.7")));
    assert_eq!(
        l.gateway_of(ip("fd00:10:0:352::7")),
        Some(ip("fd00:10:0:352::1"))
    );
    assert_eq!(l.gateway_of(ip("10.3.82.7")), Some(ip("10.3.82.1")));
    assert_eq!(l.family_of(ip("fd00:10:0:352::7")), Some(v6));
    assert_eq!(l.family_of(ip("fd00:11::1")), None);
    assert_eq!(l.decode(ip("192.168.0.1")), None);
    // The first family's functions stay the first space's.
    assert_eq!(l.segment_cidr(3, 5, 2).unwrap(), net("10.3.82.0/24"));
    // One number must fit both: IPv4's 254 bounds the 2^64 of IPv6.
    assert_eq!(l.assignable_in_every_family(), 2..=254);
    assert_eq!(*v6.assignable_endpoints().end(), (1u128 << 64) - 1);
}

fn mission() -> Layout {
    mk_layout("10.0.0.0/8", 0, 8, 4, 4)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn mission_example_host_3_tenant_5_segment_2_endpoint_7_is_10_3_82_7() {
    let l = mission();
    assert_eq!(l.host_prefix(3).unwrap(), net("10.3.0.0/16"));
    assert_eq!(l.tenant_cidr(3, 5).unwrap(), net("10.3.80.0/20"));
    assert_eq!(l.segment_cidr(3, 5, 2).unwrap(), net("10.3.82.0/24"));
    assert_eq!(l.endpoint_address(3, 5, 2, 7).unwrap(), ip("10.3.82.7"));
    assert_eq!(
        l.decode(ip("10.3.82.7")),
        Some(Decoded {
            host: 3,
            tenant: 5,
            segment: 2,
            endpoint: 7
        })
    );
}

#[test]
fn hand_computed_ipv4_table() {
    // 192.168.0.0/16, 2 rack bits of 5 host bits, 3 tenant, 2 segment -> 6 endpoint bits.
    // | 192.168 | rack 2 | pos 3 | tenant 3 | segment 2 | endpoint 6 |
    let l = mk_layout("192.168.0.0/16", 2, 5, 3, 2);
    assert_eq!(l.endpoint_bits(), 6);
    // host 11 = rack 1 (01), position 3 (011): 01011 -> top 5 bits of the third octet.
    assert_eq!(l.host_index(1, 3).unwrap(), 11);
    assert_eq!(l.rack_of(11), 1);
    assert_eq!(l.host_prefix(11).unwrap(), net("192.168.88.0/21"));
    assert_eq!(l.rack_aggregate(1).unwrap(), net("192.168.64.0/18"));
    assert_eq!(l.rack_aggregate(3).unwrap(), net("192.168.192.0/18"));
    // tenant 6 (110), segment 1 (01): third octet low 3 bits = 110 -> .94, fourth = 01 ......
    assert_eq!(l.tenant_cidr(11, 6).unwrap(), net("192.168.94.0/24"));
    assert_eq!(l.segment_cidr(11, 6, 1).unwrap(), net("192.168.94.64/26"));
    assert_eq!(
        l.endpoint_address(11, 6, 1, 5).unwrap(),
        ip("192.168.94.69")
    );
    assert_eq!(l.gateway(11, 6, 1).unwrap(), ip("192.168.94.65"));
}

#[test]
fn hand_computed_ipv6_table() {
    // fd00:10::/48, 16 host bits, 8 tenant, 8 segment -> 48 endpoint bits.
    let l = mk_layout("fd00:10::/48", 0, 16, 8, 8);
    assert_eq!(l.host_prefix(3).unwrap(), net("fd00:10:0:3::/64"));
    assert_eq!(l.tenant_cidr(3, 5).unwrap(), net("fd00:10:0:3:500::/72"));
    assert_eq!(
        l.segment_cidr(3, 5, 2).unwrap(),
        net("fd00:10:0:3:502::/80")
    );
    assert_eq!(
        l.endpoint_address(3, 5, 2, 7).unwrap(),
        ip("fd00:10:0:3:502::7")
    );
    assert_eq!(
        l.decode(ip("fd00:10:0:3:502::7")),
        Some(Decoded {
            host: 3,
            tenant: 5,
            segment: 2,
            endpoint: 7
        })
    );
    let t = l.tenant_match(5).unwrap();
    assert_eq!(t.value, ip("fd00:10:0:0:500::"));
    assert_eq!(t.mask, ip("ffff:ffff:ffff:0:ff00::"));
}

#[test]
fn tenant_and_segment_matches_ignore_the_host_bits() {
    let l = mission();
    let t = l.tenant_match(5).unwrap();
    assert_eq!((t.value, t.mask), (ip("10.0.80.0"), ip("255.0.240.0")));
    let s = l.segment_match(5, 2).unwrap();
    assert_eq!((s.value, s.mask), (ip("10.0.82.0"), ip("255.0.255.0")));
    assert!(t.matches(ip("10.200.83.9")));
    assert!(!t.matches(ip("10.200.99.9")));
    assert!(!t.matches(ip("11.200.83.9")));
    assert!(s.matches(ip("10.17.82.1")));
    assert!(!s.matches(ip("10.17.83.1")));
    assert!(!s.matches(ip("fd00::1")));
    assert_eq!(t.to_string(), "10.0.80.0 & 255.0.240.0");
}

#[test]
fn reserved_endpoints_are_network_gateway_and_ipv4_broadcast() {
    let v4 = mission();
    assert_eq!(v4.assignable_endpoints(), 2..=254);
    assert!(!v4.is_assignable(0) && !v4.is_assignable(1) && !v4.is_assignable(255));
    let v6 = mk_layout("fd00::/112", 0, 4, 2, 2);
    assert_eq!(v6.endpoint_bits(), 8);
    assert_eq!(v6.assignable_endpoints(), 2..=255);
}

#[test]
fn out_of_range_numbers_are_refused_with_the_limit() {
    let l = mission();
    assert_eq!(
        l.host_prefix(256),
        Err(AddrError::OutOfRange {
            field: "host",
            value: 256,
            max: 255
        })
    );
    assert_eq!(
        l.segment_cidr(0, 16, 0),
        Err(AddrError::OutOfRange {
            field: "tenant",
            value: 16,
            max: 15
        })
    );
    assert_eq!(
        l.endpoint_address(0, 0, 0, 256),
        Err(AddrError::OutOfRange {
            field: "endpoint",
            value: 256,
            max: 255
        })
    );
    assert!(
        l.rack_aggregate(1).is_err(),
        "no racks configured: only rack 0"
    );
    assert_eq!(l.rack_aggregate(0).unwrap(), net("10.0.0.0/8"));
}

#[test]
fn addresses_outside_the_space_or_family_are_not_ours() {
    let l = mission();
    assert_eq!(l.decode(ip("11.0.0.1")), None);
    assert_eq!(l.decode(ip("fd00::1")), None);
    assert_eq!(
        mk_layout("fd00:10::/48", 0, 16, 8, 8).decode(ip("10.0.0.1")),
        None
    );
}

#[test]
fn counts_follow_the_bit_widths() {
    let l = mk_layout("10.0.0.0/8", 2, 8, 4, 4);
    assert_eq!(l.max_hosts(), 256);
    assert_eq!(l.max_racks(), 4);
    assert_eq!(l.hosts_per_rack(), 64);
    assert_eq!(l.max_tenants(), 16);
    assert_eq!(l.max_segments(), 16);
    assert_eq!(l.addresses_per_segment(), 256);
}

#[test]
fn whole_ipv6_space_with_huge_segments_does_not_overflow() {
    let config = ClusterConfig {
        address_space: net("::/0"),
        host_bits: 0,
        rack_bits: 0,
        tenant_bits: 0,
        segment_bits: 0,
        single_tenant: true,
        second_address_space: None,
    };
    let l = config.layout().unwrap();
    assert_eq!(l.endpoint_bits(), 128);
    assert_eq!(l.addresses_per_segment(), u128::MAX);
    assert_eq!(l.segment_cidr(0, 0, 0).unwrap(), net("::/0"));
    assert_eq!(
        l.endpoint_address(0, 0, 0, u128::MAX).unwrap(),
        ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    );
    assert_eq!(l.tenant_match(0).unwrap().mask, ip("::"));
}

/// A random valid layout of either family, with coordinates that fit it.
fn arb_layout() -> impl Strategy<Value = Layout> {
    (any::<bool>(), 0u8..=8, 1u8..=8, 1u8..=6, 1u8..=6, 2u8..=10).prop_flat_map(
        |(v6, prefix, host, tenant, segment, endpoint)| {
            let width: u8 = if v6 { 128 } else { 32 };
            let used = host + tenant + segment + endpoint;
            let prefix_len = if v6 {
                128 - used
            } else {
                (32 - used).min(prefix * 2)
            };
            let endpoint = width - prefix_len - host - tenant - segment;
            (0u8..=host, any::<u128>()).prop_map(move |(rack, seed)| {
                let space = if v6 {
                    IpNet::new(IpAddr::V6((seed | 0xfd << 120).into()), prefix_len)
                } else {
                    IpNet::new(IpAddr::V4((seed as u32).into()), prefix_len)
                }
                .unwrap()
                .trunc();
                let l = ClusterConfig {
                    address_space: space,
                    host_bits: host,
                    rack_bits: rack,
                    tenant_bits: tenant,
                    segment_bits: segment,
                    single_tenant: false,
                    second_address_space: None,
                }
                .layout()
                .unwrap();
                assert_eq!(l.endpoint_bits(), endpoint);
                l
            })
        },
    )
}

/// (host, tenant, segment, endpoint)
type Coords = (u32, u32, u32, u128);

fn arb_coords(l: &Layout) -> impl Strategy<Value = Coords> {
    let c = l.config();
    (
        0..(1u32 << c.host_bits),
        0..(1u32 << c.tenant_bits),
        0..(1u32 << c.segment_bits),
        0..l.addresses_per_segment(),
    )
}

fn arb_layout_and_two_coords() -> impl Strategy<Value = (Layout, Coords, Coords)> {
    arb_layout().prop_flat_map(|l| {
        let a = arb_coords(&l);
        let b = arb_coords(&l);
        (Just(l), a, b)
    })
}

proptest! {
    #[test]
    fn encode_then_decode_round_trips((l, (h, t, s, e), _) in arb_layout_and_two_coords()) {
        let addr = l.endpoint_address(h, t, s, e).unwrap();
        prop_assert_eq!(l.decode(addr), Some(Decoded { host: h, tenant: t, segment: s, endpoint: e }));
    }

    #[test]
    fn every_endpoint_lies_in_its_segment_tenant_host_rack_and_space((l, (h, t, s, e), _) in arb_layout_and_two_coords()) {
        let addr = l.endpoint_address(h, t, s, e).unwrap();
        let segment = l.segment_cidr(h, t, s).unwrap();
        let tenant = l.tenant_cidr(h, t).unwrap();
        let host = l.host_prefix(h).unwrap();
        let rack = l.rack_aggregate(l.rack_of(h)).unwrap();
        prop_assert!(segment.contains(&addr));
        prop_assert!(tenant.contains(&segment));
        prop_assert!(host.contains(&tenant));
        prop_assert!(rack.contains(&host));
        prop_assert!(l.address_space().contains(&rack));
        prop_assert!(l.tenant_match(t).unwrap().matches(addr));
        prop_assert!(l.segment_match(t, s).unwrap().matches(addr));
    }

    #[test]
    fn distinct_host_tenant_segment_never_overlap((l, (h1, t1, s1, _), (h2, t2, s2, _)) in arb_layout_and_two_coords()) {
        prop_assume!((h1, t1, s1) != (h2, t2, s2));
        let a = l.segment_cidr(h1, t1, s1).unwrap();
        let b = l.segment_cidr(h2, t2, s2).unwrap();
        prop_assert!(!a.contains(&b) && !b.contains(&a), "{} overlaps {}", a, b);
    }

    #[test]
    fn masked_matches_separate_tenants_and_segments((l, (h1, t1, s1, e1), (h2, t2, s2, _)) in arb_layout_and_two_coords()) {
        let addr = l.endpoint_address(h1, t1, s1, e1).unwrap();
        prop_assert_eq!(l.tenant_match(t2).unwrap().matches(addr), t1 == t2, "host {} vs {}", h1, h2);
        prop_assert_eq!(l.segment_match(t2, s2).unwrap().matches(addr), (t1, s1) == (t2, s2));
    }

    #[test]
    fn host_index_and_rack_of_agree(l in arb_layout(), rack_seed in any::<u32>(), pos_seed in any::<u32>()) {
        let rack = rack_seed % l.max_racks() as u32;
        let pos = pos_seed % l.hosts_per_rack() as u32;
        let host = l.host_index(rack, pos).unwrap();
        prop_assert_eq!(l.rack_of(host), rack);
    }
}

#[test]
fn the_gateway_of_an_address_is_endpoint_1_of_its_segment_on_its_host() {
    let l = mission();
    assert_eq!(l.gateway_of(ip("10.3.82.7")), Some(ip("10.3.82.1")));
    assert!(l.is_gateway(ip("10.3.82.1")));
    assert!(!l.is_gateway(ip("10.3.82.7")));
    assert_eq!(l.gateway_of(ip("192.168.0.1")), None, "outside the space");
    assert!(!l.is_gateway(ip("192.168.0.1")));
    let v6 = mk_layout("fd00:10::/48", 0, 16, 8, 8);
    let a = v6.endpoint_address(3, 5, 2, 7).unwrap();
    let g = v6.gateway(3, 5, 2).unwrap();
    assert_eq!(v6.gateway_of(a), Some(g));
    assert!(v6.is_gateway(g));
}

proptest! {
    #[test]
    fn gateway_of_agrees_with_gateway(host in 0u32..256, tenant in 0u32..16, segment in 0u32..16, endpoint in 2u128..255) {
        let l = mission();
        let a = l.endpoint_address(host, tenant, segment, endpoint).unwrap();
        let g = l.gateway(host, tenant, segment).unwrap();
        prop_assert_eq!(l.gateway_of(a), Some(g));
        prop_assert!(l.is_gateway(g));
        prop_assert!(!l.is_gateway(a));
    }
}
