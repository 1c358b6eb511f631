//! Cluster configuration validation under arbitrary input: never a panic, always `Ok` or a
//! typed error; and a configuration that validates yields a layout whose address math works
//! at its extremes (first and last host, tenant, segment, endpoint) without panicking.

use std::net::IpAddr;

use proptest::prelude::*;
use romana_core::ClusterConfig;

fn any_space() -> impl Strategy<Value = ipnet::IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| ipnet::Ipv4Net::new(a.into(), p).unwrap().into()),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, p)| ipnet::Ipv6Net::new(a.into(), p).unwrap().into()),
        (0u8..=32).prop_map(|p| ipnet::Ipv4Net::new([10, 0, 0, 0].into(), p)
            .unwrap()
            .trunc()
            .into()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn any_configuration_is_ok_or_a_typed_error(
        space in any_space(),
        host_bits in any::<u8>(),
        rack_bits in any::<u8>(),
        tenant_bits in any::<u8>(),
        segment_bits in any::<u8>(),
        single_tenant in any::<bool>(),
        second in proptest::option::of(any_space()),
    ) {
        let config = ClusterConfig { address_space: space, host_bits, rack_bits, tenant_bits, segment_bits, single_tenant, second_address_space: second };
        match config.layout() {
            Err(e) => prop_assert!(e.to_string().len() < 400, "{}", e),
            Ok(layout) => {
                prop_assert!(config.validate().is_ok());
                let last = |max: u64| u32::try_from(max.saturating_sub(1)).unwrap_or(u32::MAX);
                let (h, t, s) = (last(layout.max_hosts()), last(layout.max_tenants()), last(layout.max_segments()));
                let assignable = layout.assignable_in_every_family();
                prop_assert!(assignable.start() <= assignable.end());
                for family in layout.families() {
                    for host in [0, h] {
                        let _ = family.host_prefix(host);
                        for (tenant, segment) in [(0, 0), (t, s)] {
                            let _ = family.tenant_match(tenant);
                            if let Ok(cidr) = family.segment_cidr(host, tenant, segment) {
                                let addr: IpAddr = cidr.network();
                                let decoded = layout.decode(addr);
                                prop_assert!(decoded.is_some(), "{} not decoded", addr);
                            }
                            let both = layout.endpoint_addresses(host, tenant, segment, *assignable.end());
                            prop_assert!(both.is_ok(), "{:?}", both);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_json_as_a_configuration(text in "\\PC{0,200}") {
        if let Ok(config) = serde_json::from_str::<ClusterConfig>(&text) {
            let _ = config.layout();
        }
    }
}
