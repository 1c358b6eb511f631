use super::*;

#[test]
fn config_converts_both_ways_with_derived_endpoint_bits() {
    let wire = pb::ClusterConfig {
        address_space: "10.0.0.0/8".into(),
        host_bits: 8,
        rack_bits: 0,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        endpoint_bits: 0,
        second_address_space: String::new(),
        second_endpoint_bits: 0,
    };
    let core = ClusterConfig::try_from(&wire).unwrap();
    let back = pb::ClusterConfig::from(&core);
    assert_eq!(back.endpoint_bits, 8);
    assert_eq!(back.address_space, "10.0.0.0/8");
}

#[test]
fn bad_cidr_names_the_field() {
    let wire = pb::ClusterConfig {
        address_space: "10.0.0/8x".into(),
        ..Default::default()
    };
    let err = ClusterConfig::try_from(&wire).unwrap_err();
    assert_eq!(err.field, "address_space");
    assert!(err.to_string().contains("is not a CIDR"), "{err}");
}

#[test]
fn host_status_carries_every_field_and_the_host_name_not_the_records() {
    let status = AgentStatus {
        host: "someone-else".into(),
        revision: 42,
        policy_revision: 40,
        routes: vec!["10.1.0.0/16 via 192.168.0.12".into()],
        nft_rules: 12,
        nft_sets: 3,
        nft_elements: 40,
        converged: true,
        blocked: vec!["10.0.0.5 dev romana-e1".into()],
        problems: vec!["kernel refused".into()],
        applied_at: 1_700_000_000,
        alive_at: 1_700_000_010,
    };
    let wire = pb::HostStatus::from(("h1", Some(&status)));
    assert_eq!(
        agent_status_from_pb(&wire),
        Some(AgentStatus {
            host: "h1".into(),
            ..status.clone()
        })
    );
    assert_eq!(
        pb::HostStatus::from(("h1", Some(&status))),
        pb::HostStatus {
            host: "h1".into(),
            reported: true,
            revision: 42,
            policy_revision: 40,
            converged: true,
            routes: vec!["10.1.0.0/16 via 192.168.0.12".into()],
            nft_rules: 12,
            nft_sets: 3,
            nft_elements: 40,
            blocked: vec!["10.0.0.5 dev romana-e1".into()],
            problems: vec!["kernel refused".into()],
            applied_at: 1_700_000_000,
            alive_at: 1_700_000_010,
        }
    );
}

#[test]
fn host_without_status_is_not_reported_and_otherwise_empty() {
    assert_eq!(
        agent_status_from_pb(&pb::HostStatus::from(("h2", None))),
        None
    );
    assert_eq!(
        pb::HostStatus::from(("h2", None)),
        pb::HostStatus {
            host: "h2".into(),
            ..Default::default()
        }
    );
}

#[test]
fn fabric_routes_go_on_the_wire_as_text() {
    let layout = ClusterConfig {
        address_space: "10.0.0.0/8".parse().unwrap(),
        host_bits: 8,
        rack_bits: 2,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        second_address_space: None,
    }
    .layout()
    .unwrap();
    let hosts = [model::Host {
        name: "b1".into(),
        ip: "192.168.1.11".parse().unwrap(),
        rack: 1,
        index: 64,
        second_ip: None,
    }];
    let fabric = romana_core::fabric::view(&hosts, &layout).unwrap();
    assert_eq!(
        pb::Fabric::from(&fabric),
        pb::Fabric {
            leaves: vec![pb::Leaf {
                rack: 1,
                aggregate: "10.64.0.0/10".into(),
                routes: vec![pb::LeafRoute {
                    prefix: "10.64.0.0/16".into(),
                    via: "192.168.1.11".into(),
                    host: "b1".into(),
                }],
            }],
            spine: vec![pb::SpineRoute {
                prefix: "10.64.0.0/10".into(),
                rack: 1,
            }],
        }
    );
}

#[test]
fn a_host_round_trips_with_its_second_ip_and_without_one() {
    let layout = ClusterConfig {
        address_space: "10.0.0.0/8".parse().unwrap(),
        host_bits: 8,
        rack_bits: 0,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        second_address_space: Some("fd00:10::/48".parse().unwrap()),
    }
    .layout()
    .unwrap();
    let dual = model::Host {
        name: "h3".into(),
        ip: "192.168.0.3".parse().unwrap(),
        rack: 0,
        index: 3,
        second_ip: Some("fd00:ff::3".parse().unwrap()),
    };
    let wire = pb::Host::from((&dual, &layout));
    assert_eq!(
        wire,
        pb::Host {
            name: "h3".into(),
            ip: "192.168.0.3".into(),
            rack: 0,
            index: 3,
            prefix: "10.3.0.0/16".into(),
            second_ip: "fd00:ff::3".into(),
        }
    );
    assert_eq!(model::Host::try_from(&wire), Ok(dual.clone()));

    let single = model::Host {
        second_ip: None,
        ..dual
    };
    let wire = pb::Host::from((&single, &layout));
    assert_eq!(wire.second_ip, "", "no second address is the empty string");
    assert_eq!(model::Host::try_from(&wire), Ok(single));

    let bad = pb::Host {
        second_ip: "fd00::zz".into(),
        ..wire
    };
    let err = model::Host::try_from(&bad).unwrap_err();
    assert_eq!(err.field, "second_ip");
    assert!(err.to_string().contains("is not an IP address"), "{err}");
}

#[test]
fn named_port_protocol_and_range_are_checked() {
    let ok = pb::NamedPort {
        name: "http".into(),
        protocol: "TCP".into(),
        port: 80,
    };
    assert_eq!(model::NamedPort::try_from(&ok).unwrap().protocol, "tcp");
    let bad = pb::NamedPort {
        port: 70000,
        ..ok.clone()
    };
    assert!(model::NamedPort::try_from(&bad).is_err());
    let icmp = pb::NamedPort {
        protocol: "icmp".into(),
        ..ok
    };
    assert!(model::NamedPort::try_from(&icmp).is_err());
}
