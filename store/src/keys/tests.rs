#[test]
fn the_agent_range_holds_what_agents_read_and_not_statuses() {
    use romana_core::policy::PolicyId;
    let keys = super::Keys::default();
    let (start, end) = keys.agent_watch_range();
    let inside = |k: &str| start.as_str() <= k && k < end.as_str();
    let k8s = PolicyId::Kubernetes {
        tenant: "t".into(),
        name: "p".into(),
    };
    let romana = PolicyId::Romana { name: "p".into() };
    for k in [
        keys.config().path().to_string(),
        keys.host("h").path().into(),
        keys.tenant("zzzz").path().into(),
        keys.segment("t", "s").path().into(),
        keys.endpoint("e").path().into(),
        keys.policy(&k8s).path().into(),
        keys.policy(&romana).path().into(),
    ] {
        assert!(inside(&k), "{k} must be watched");
    }
    for k in [
        keys.agent_status("h").path().to_string(),
        keys.address("10.0.0.1".parse().unwrap()).path().into(),
    ] {
        assert!(!inside(&k), "{k} must not be watched");
    }
}

use super::*;

#[test]
fn paths_follow_the_documented_layout() {
    let k = Keys::default();
    let ip: IpAddr = "10.3.82.7".parse().unwrap();
    let cases = [
        (k.config().path().to_string(), "/romana/v1/config"),
        (
            k.service("ipam", "h1-42").path().into(),
            "/romana/v1/services/ipam/h1-42",
        ),
        (k.services().path().into(), "/romana/v1/services/"),
        (
            k.services_of("ipam").path().into(),
            "/romana/v1/services/ipam/",
        ),
        (k.host("h1").path().into(), "/romana/v1/hosts/h1"),
        (k.hosts().path().into(), "/romana/v1/hosts/"),
        (
            k.host_index(3).path().into(),
            "/romana/v1/host-index/0000000003",
        ),
        (k.host_indexes().path().into(), "/romana/v1/host-index/"),
        (k.tenant("t").path().into(), "/romana/v1/tenants/t"),
        (k.tenants().path().into(), "/romana/v1/tenants/"),
        (
            k.tenant_id(5).path().into(),
            "/romana/v1/tenant-ids/0000000005",
        ),
        (k.tenant_ids().path().into(), "/romana/v1/tenant-ids/"),
        (k.segment("t", "s").path().into(), "/romana/v1/segments/t/s"),
        (k.segments().path().into(), "/romana/v1/segments/"),
        (k.segments_of("t").path().into(), "/romana/v1/segments/t/"),
        (
            k.segment_id("t", 2).path().into(),
            "/romana/v1/segment-ids/t/0000000002",
        ),
        (
            k.segment_ids_of("t").path().into(),
            "/romana/v1/segment-ids/t/",
        ),
        (
            k.endpoint("c1:eth0").path().into(),
            "/romana/v1/endpoints/c1:eth0",
        ),
        (k.endpoints().path().into(), "/romana/v1/endpoints/"),
        (
            k.address(ip).path().into(),
            "/romana/v1/addresses/10.3.82.7",
        ),
        (k.addresses().path().into(), "/romana/v1/addresses/"),
        (
            k.policy(&"web-in".parse().unwrap()).path().into(),
            "/romana/v1/policies/romana/web-in",
        ),
        (
            k.policy(&"shop/web-in".parse().unwrap()).path().into(),
            "/romana/v1/policies/k8s/shop/web-in",
        ),
        (k.policies().path().into(), "/romana/v1/policies/"),
        (
            k.tenant_policies_of("shop").path().into(),
            "/romana/v1/policies/k8s/shop/",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
}

#[test]
fn ids_are_zero_padded_so_prefix_lists_sort_numerically() {
    let k = Keys::default();
    let mut paths: Vec<String> = [10u32, 9, 100, u32::MAX, 0]
        .iter()
        .map(|&i| k.tenant_id(i).path().to_string())
        .collect();
    paths.sort();
    let ids: Vec<KeyRef> = paths.iter().map(|p| k.parse(p).unwrap()).collect();
    assert_eq!(
        ids,
        [0, 9, 10, 100, u32::MAX].map(KeyRef::TenantId).to_vec()
    );
    assert_eq!(
        k.host_index(u32::MAX).path(),
        "/romana/v1/host-index/4294967295"
    );
}

#[test]
fn a_prefix_without_trailing_slash_is_normalised() {
    assert_eq!(Keys::new("/x/y").prefix(), "/x/y/");
    assert_eq!(Keys::new("/x/y/").prefix(), "/x/y/");
    assert_eq!(Keys::new("/x/y").host("h").path(), "/x/y/hosts/h");
}

#[test]
fn every_key_parses_back_to_what_built_it() {
    let k = Keys::new("/test/7");
    let v6: IpAddr = "fd00::1:2".parse().unwrap();
    let cases = [
        (k.config().path().to_string(), KeyRef::Config),
        (
            k.service("root", "a-1").path().into(),
            KeyRef::Service {
                kind: "root".into(),
                instance: "a-1".into(),
            },
        ),
        (k.host("h1").path().into(), KeyRef::Host("h1".into())),
        (k.host_index(7).path().into(), KeyRef::HostIndex(7)),
        (k.tenant("t").path().into(), KeyRef::Tenant("t".into())),
        (k.tenant_id(15).path().into(), KeyRef::TenantId(15)),
        (
            k.segment("t", "web").path().into(),
            KeyRef::Segment {
                tenant: "t".into(),
                name: "web".into(),
            },
        ),
        (
            k.segment_id("t", 2).path().into(),
            KeyRef::SegmentId {
                tenant: "t".into(),
                id: 2,
            },
        ),
        (
            k.endpoint("c:eth0").path().into(),
            KeyRef::Endpoint("c:eth0".into()),
        ),
        (k.address(v6).path().into(), KeyRef::Address(v6)),
        (k.host_ip(v6).path().into(), KeyRef::HostIp(v6)),
        (
            k.agent_status("h1").path().into(),
            KeyRef::AgentStatus("h1".into()),
        ),
        (
            k.policy(&"p1".parse().unwrap()).path().into(),
            KeyRef::Policy(PolicyId::Romana { name: "p1".into() }),
        ),
        (
            k.policy(&"shop/p1".parse().unwrap()).path().into(),
            KeyRef::Policy(PolicyId::Kubernetes {
                tenant: "shop".into(),
                name: "p1".into(),
            }),
        ),
        (
            k.host_endpoint("h1", "c:eth0").path().into(),
            KeyRef::HostEndpoint {
                host: "h1".into(),
                id: "c:eth0".into(),
            },
        ),
        (
            k.segment_endpoint("t", "web", "c:eth0").path().into(),
            KeyRef::SegmentEndpoint {
                tenant: "t".into(),
                segment: "web".into(),
                id: "c:eth0".into(),
            },
        ),
    ];
    for (path, want) in cases {
        assert_eq!(k.parse(&path), Some(want), "{path}");
    }
}

#[test]
fn unknown_or_malformed_keys_under_the_prefix_are_other() {
    let k = Keys::default();
    for rest in [
        "policies/p1",
        "policies/romana/",
        "policies/romana/a/b",
        "policies/k8s/shop",
        "policies/other/x",
        "hosts/",
        "hosts/a/b",
        "host-index/x",
        "host-index/+1",
        "tenant-ids/99999999999",
        "segments/t",
        "addresses/not-an-ip",
        "config/extra",
        "",
    ] {
        let path = format!("{}{rest}", k.prefix());
        assert_eq!(k.parse(&path), Some(KeyRef::Other(rest.into())), "{path}");
    }
}

#[test]
fn keys_outside_the_prefix_do_not_parse() {
    let k = Keys::default();
    assert_eq!(k.parse("/romana/v2/config"), None);
    assert_eq!(k.parse("/romana/v1"), None);
}
