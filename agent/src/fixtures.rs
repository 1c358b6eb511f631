//! Builders shared by the unit tests: records, states and watch events.

use std::net::IpAddr;

use romana_core::{ClusterConfig, Endpoint, Host, Isolation, Segment, Tenant};
use romana_store::{Keys, Kv, WatchEvent};

use crate::desired::HostView;
use crate::state::ClusterState;

/// 10.0.0.0/8 with 8 host bits (`rack` of them racks), 4 tenant, 4 segment, 8 endpoint.
pub fn mk_config(rack_bits: u8) -> ClusterConfig {
    ClusterConfig {
        address_space: "10.0.0.0/8".parse().unwrap(),
        host_bits: 8,
        rack_bits,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        second_address_space: None,
    }
}

/// fd00:10::/48 with 16 host bits, 8 tenant, 8 segment.
pub fn mk_config_v6() -> ClusterConfig {
    ClusterConfig {
        address_space: "fd00:10::/48".parse().unwrap(),
        host_bits: 16,
        rack_bits: 0,
        tenant_bits: 8,
        segment_bits: 8,
        single_tenant: false,
        second_address_space: None,
    }
}

/// Dual-stack: [`mk_config`]'s 10.0.0.0/8 first, fd00:10::/48 second (same numbering).
pub fn mk_config_dual() -> ClusterConfig {
    ClusterConfig {
        second_address_space: Some("fd00:10::/48".parse().unwrap()),
        ..mk_config(0)
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn mk_host(name: &str, ip_: &str, index: u32) -> Host {
    Host {
        name: name.into(),
        ip: ip(ip_),
        rack: 0,
        index,
        second_ip: None,
    }
}

pub fn mk_tenant(name: &str, id: u32, isolation: Isolation) -> Tenant {
    Tenant {
        name: name.into(),
        id,
        isolation,
        labels: Default::default(),
    }
}

pub fn mk_segment(tenant: &str, name: &str, id: u32) -> Segment {
    Segment {
        tenant: tenant.into(),
        name: name.into(),
        id,
    }
}

pub fn mk_endpoint(id: &str, address: &str, host: &str, tenant: &str, segment: &str) -> Endpoint {
    Endpoint {
        interface: String::new(),
        pod: None,
        second_address: None,
        id: id.into(),
        address: ip(address),
        host: host.into(),
        tenant: tenant.into(),
        segment: segment.into(),
        labels: Default::default(),
        ports: Vec::new(),
    }
}

/// h1 (index 0, 192.168.0.11), h2 (index 1, 192.168.0.12), h3 (index 2, 192.168.1.13);
/// tenant t (id 1, segment isolation) with segments default (0) and web (1).
pub fn mk_state() -> ClusterState {
    let mut s = ClusterState::default();
    s.config = Some(mk_config(0));
    for h in [
        mk_host("h1", "192.168.0.11", 0),
        mk_host("h2", "192.168.0.12", 1),
        mk_host("h3", "192.168.1.13", 2),
    ] {
        s.hosts.insert(h.name.clone(), h);
    }
    s.tenants
        .insert("t".into(), mk_tenant("t", 1, Isolation::Segment));
    for seg in [mk_segment("t", "default", 0), mk_segment("t", "web", 1)] {
        s.segments
            .insert((seg.tenant.clone(), seg.name.clone()), seg);
    }
    s
}

pub fn add_endpoint(s: &mut ClusterState, e: Endpoint) {
    s.endpoints.insert(e.id.clone(), e);
}

/// Host h1 on 192.168.0.0/24 with gateway 192.168.0.1.
pub fn mk_view() -> HostView {
    HostView {
        name: "h1".into(),
        gateways: vec![ip("192.168.0.1")],
        connected: vec!["192.168.0.0/24".parse().unwrap()],
    }
}

pub fn put(keys: &Keys, path: &str, value: &impl serde::Serialize, rev: i64) -> WatchEvent {
    WatchEvent::Apply(kv(keys, path, value, rev))
}

pub fn kv(keys: &Keys, path: &str, value: &impl serde::Serialize, rev: i64) -> Kv {
    Kv {
        key: format!("{}{path}", keys.prefix()),
        value: serde_json::to_vec(value).unwrap(),
        mod_revision: rev,
    }
}

pub fn del(keys: &Keys, path: &str, rev: i64) -> WatchEvent {
    WatchEvent::Delete {
        key: format!("{}{path}", keys.prefix()),
        mod_revision: rev,
    }
}
