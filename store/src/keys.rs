//! Typed etcd keys. Every key romana-rs reads or writes is built here, so this table is the
//! layout, version `v1`. Changing a path means a new version prefix (`/romana/v2/`), never an
//! in-place edit: agents and services of different versions may share one etcd.
//!
//! All keys live under a prefix, [`DEFAULT_PREFIX`] unless configured. Values are JSON of the
//! `romana-core` types named below. `{id:010}` is a zero-padded decimal so that a prefix list
//! returns numbers in numeric order.
//!
//! | Key (after the prefix)               | Value                  | Written by        | Why                                                   |
//! |--------------------------------------|------------------------|-------------------|-------------------------------------------------------|
//! | `config`                             | `ClusterConfig`        | root-service      | address space and bit widths, set once                |
//! | `services/{kind}/{instance}`         | `ServiceRecord`        | every service     | registry; under a lease so a dead process disappears  |
//! | `hosts/{name}`                       | `Host`                 | topology-service  | the host and its index                                |
//! | `host-index/{index:010}`             | host name (string)     | topology-service  | claim: one host per index, created in the same txn    |
//! | `tenants/{name}`                     | `Tenant`               | tenant-service    | the tenant and its id                                 |
//! | `tenant-ids/{id:010}`                | tenant name (string)   | tenant-service    | claim: one tenant per id                              |
//! | `segments/{tenant}/{name}`           | `Segment`              | tenant-service    | the segment and its id within the tenant              |
//! | `segment-ids/{tenant}/{id:010}`      | segment name (string)  | tenant-service    | claim: one segment per id within a tenant             |
//! | `endpoints/{id}`                     | `Endpoint`             | ipam-service      | the endpoint and its address                          |
//! | `addresses/{ip}`                     | endpoint id (string)   | ipam-service      | claim: one endpoint per address                       |
//! | `host-ips/{ip}`                      | host name (string)     | topology-service  | claim: one host per fabric address                    |
//! | `host-endpoints/{host}/{id}`         | endpoint address       | ipam-service      | index: a host's endpoints (removal check, listing)    |
//! | `segment-endpoints/{tenant}/{segment}/{id}` | endpoint address | ipam-service   | index: a tenant's / segment's endpoints               |
//! | `agents/{host}/status`              | `AgentStatus`          | the host's agent  | what the agent last applied (routes, nft, revision)   |
//! | `policies/romana/{name}`             | `Policy` (Romana form) | policy-service    | a cluster-scoped Romana-form policy                   |
//! | `policies/k8s/{tenant}/{name}`       | `Policy` (NetworkPolicy) | policy-service  | a Kubernetes NetworkPolicy of namespace `tenant`      |
//!
//! Both policy forms live under one `policies/` prefix so that one list or watch sees every
//! policy, and in separate sub-namespaces so that a Romana policy named like a Kubernetes
//! one never collides with it. Kubernetes policies are namespaced, hence `{tenant}/{name}`;
//! `romana_core::policy::PolicyId` prints them as `TENANT/NAME` and Romana ones as `NAME`.
//!
//! Indexes are written and deleted in the same transaction as the endpoint they point to, so
//! "does this host / tenant / segment have endpoints" is one prefix compare inside the
//! transaction that removes it (`Txn::expect_empty`), not a racy read beforehand.
//!
//! Claims are written with `Txn::create` next to the record they index, so two replicas racing
//! for one number or address cannot both win. Names never contain `/` (see
//! `romana_core::model::validate_name`), which keeps every path segment unambiguous.
//! A key under the prefix that matches none of these rows parses as [`KeyRef::Other`]: a newer
//! writer may add rows, and older readers must skip them rather than fail.

use std::fmt;
use std::marker::PhantomData;
use std::net::IpAddr;

use romana_core::policy::{Policy, PolicyId};
use romana_core::{AgentStatus, ClusterConfig, Endpoint, Host, Segment, ServiceRecord, Tenant};

pub const DEFAULT_PREFIX: &str = "/romana/v1/";

/// Builds the keys of one layout under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// One key holding a `T` as JSON. The type parameter is what makes `get(&keys.host(..))`
/// return a `Host`; `fn() -> T` keeps `Key<T>` `Send`/`Sync` whatever `T` is.
pub struct Key<T> {
    path: String,
    _value: PhantomData<fn() -> T>,
}

/// Every key under a path prefix, all holding a `T`.
pub struct Prefix<T> {
    path: String,
    _value: PhantomData<fn() -> T>,
}

/// What a key seen in a watch or list is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    Config,
    Service {
        kind: String,
        instance: String,
    },
    Host(String),
    HostIndex(u32),
    Tenant(String),
    TenantId(u32),
    Segment {
        tenant: String,
        name: String,
    },
    SegmentId {
        tenant: String,
        id: u32,
    },
    Endpoint(String),
    Address(IpAddr),
    HostIp(IpAddr),
    AgentStatus(String),
    Policy(PolicyId),
    HostEndpoint {
        host: String,
        id: String,
    },
    SegmentEndpoint {
        tenant: String,
        segment: String,
        id: String,
    },
    /// Under the prefix but in no row of the layout (path after the prefix).
    Other(String),
}

// === impl Keys ===

impl Default for Keys {
    fn default() -> Self {
        Keys::new(DEFAULT_PREFIX)
    }
}

impl Keys {
    /// A trailing `/` is added when missing so that `/romana/v1` cannot also match
    /// `/romana/v1-old/...` in a prefix list.
    pub fn new(prefix: impl Into<String>) -> Keys {
        let mut prefix = prefix.into();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Keys { prefix }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key<T>(&self, rest: fmt::Arguments<'_>) -> Key<T> {
        Key {
            path: format!("{}{}", self.prefix, rest),
            _value: PhantomData,
        }
    }

    fn dir<T>(&self, rest: fmt::Arguments<'_>) -> Prefix<T> {
        Prefix {
            path: format!("{}{}", self.prefix, rest),
            _value: PhantomData,
        }
    }

    pub fn config(&self) -> Key<ClusterConfig> {
        self.key(format_args!("config"))
    }

    pub fn service(&self, kind: &str, instance: &str) -> Key<ServiceRecord> {
        self.key(format_args!("services/{kind}/{instance}"))
    }

    pub fn services(&self) -> Prefix<ServiceRecord> {
        self.dir(format_args!("services/"))
    }

    pub fn services_of(&self, kind: &str) -> Prefix<ServiceRecord> {
        self.dir(format_args!("services/{kind}/"))
    }

    pub fn host(&self, name: &str) -> Key<Host> {
        self.key(format_args!("hosts/{name}"))
    }

    pub fn hosts(&self) -> Prefix<Host> {
        self.dir(format_args!("hosts/"))
    }

    pub fn host_index(&self, index: u32) -> Key<String> {
        self.key(format_args!("host-index/{index:010}"))
    }

    pub fn host_indexes(&self) -> Prefix<String> {
        self.dir(format_args!("host-index/"))
    }

    pub fn tenant(&self, name: &str) -> Key<Tenant> {
        self.key(format_args!("tenants/{name}"))
    }

    pub fn tenants(&self) -> Prefix<Tenant> {
        self.dir(format_args!("tenants/"))
    }

    pub fn tenant_id(&self, id: u32) -> Key<String> {
        self.key(format_args!("tenant-ids/{id:010}"))
    }

    pub fn tenant_ids(&self) -> Prefix<String> {
        self.dir(format_args!("tenant-ids/"))
    }

    pub fn segment(&self, tenant: &str, name: &str) -> Key<Segment> {
        self.key(format_args!("segments/{tenant}/{name}"))
    }

    pub fn segments(&self) -> Prefix<Segment> {
        self.dir(format_args!("segments/"))
    }

    pub fn segments_of(&self, tenant: &str) -> Prefix<Segment> {
        self.dir(format_args!("segments/{tenant}/"))
    }

    pub fn segment_id(&self, tenant: &str, id: u32) -> Key<String> {
        self.key(format_args!("segment-ids/{tenant}/{id:010}"))
    }

    pub fn segment_ids_of(&self, tenant: &str) -> Prefix<String> {
        self.dir(format_args!("segment-ids/{tenant}/"))
    }

    pub fn endpoint(&self, id: &str) -> Key<Endpoint> {
        self.key(format_args!("endpoints/{id}"))
    }

    pub fn endpoints(&self) -> Prefix<Endpoint> {
        self.dir(format_args!("endpoints/"))
    }

    pub fn address(&self, ip: IpAddr) -> Key<String> {
        self.key(format_args!("addresses/{ip}"))
    }

    pub fn addresses(&self) -> Prefix<String> {
        self.dir(format_args!("addresses/"))
    }

    pub fn host_ip(&self, ip: IpAddr) -> Key<String> {
        self.key(format_args!("host-ips/{ip}"))
    }

    pub fn host_endpoint(&self, host: &str, id: &str) -> Key<IpAddr> {
        self.key(format_args!("host-endpoints/{host}/{id}"))
    }

    pub fn host_endpoints_of(&self, host: &str) -> Prefix<IpAddr> {
        self.dir(format_args!("host-endpoints/{host}/"))
    }

    pub fn segment_endpoint(&self, tenant: &str, segment: &str, id: &str) -> Key<IpAddr> {
        self.key(format_args!("segment-endpoints/{tenant}/{segment}/{id}"))
    }

    pub fn segment_endpoints_of(&self, tenant: &str, segment: &str) -> Prefix<IpAddr> {
        self.dir(format_args!("segment-endpoints/{tenant}/{segment}/"))
    }

    pub fn agent_status(&self, host: &str) -> Key<AgentStatus> {
        self.key(format_args!("agents/{host}/status"))
    }

    pub fn agent_statuses(&self) -> Prefix<AgentStatus> {
        self.dir(format_args!("agents/"))
    }

    /// A policy: `policies/romana/{name}` or `policies/k8s/{tenant}/{name}`.
    pub fn policy(&self, id: &PolicyId) -> Key<Policy> {
        match id {
            PolicyId::Romana { name } => self.key(format_args!("policies/romana/{name}")),
            PolicyId::Kubernetes { tenant, name } => {
                self.key(format_args!("policies/k8s/{tenant}/{name}"))
            }
        }
    }

    /// Every policy of both forms.
    pub fn policies(&self) -> Prefix<Policy> {
        self.dir(format_args!("policies/"))
    }

    /// The Kubernetes NetworkPolicies of one tenant (namespace).
    pub fn tenant_policies_of(&self, tenant: &str) -> Prefix<Policy> {
        self.dir(format_args!("policies/k8s/{tenant}/"))
    }

    /// Every endpoint of every segment of `tenant`.
    pub fn tenant_endpoints_of(&self, tenant: &str) -> Prefix<IpAddr> {
        self.dir(format_args!("segment-endpoints/{tenant}/"))
    }

    /// The key range `[start, end)` a host agent watches: from `config` to the end of
    /// `tenants/`, which holds every row it reads (config, endpoints, hosts, policies,
    /// segments, tenants) and leaves out `agents/` and `addresses/`. Without this every
    /// agent received every other agent's status writes and heartbeats: O(hosts^2) events
    /// for nothing. The claims and indexes inside the range change in the transactions
    /// of the records they index, so they add no extra rounds.
    pub fn agent_watch_range(&self) -> (String, String) {
        (
            format!("{}config", self.prefix),
            // '0' is the byte after '/': the first key after every `tenants/...`.
            format!("{}tenants0", self.prefix),
        )
    }

    /// `None` for a key outside the prefix. Known rows with a malformed tail (an empty name,
    /// a non-numeric id) are `Other`, not errors: the watcher must keep going past them.
    pub fn parse(&self, key: &str) -> Option<KeyRef> {
        let rest = key.strip_prefix(self.prefix.as_str())?;
        let other = || Some(KeyRef::Other(rest.to_string()));
        let Some((dir, tail)) = rest.split_once('/') else {
            return if rest == "config" {
                Some(KeyRef::Config)
            } else {
                other()
            };
        };
        let parsed = match dir {
            "services" => two(tail).map(|(kind, instance)| KeyRef::Service {
                kind: kind.into(),
                instance: instance.into(),
            }),
            "hosts" => one(tail).map(|n| KeyRef::Host(n.into())),
            "host-index" => one(tail).and_then(number).map(KeyRef::HostIndex),
            "tenants" => one(tail).map(|n| KeyRef::Tenant(n.into())),
            "tenant-ids" => one(tail).and_then(number).map(KeyRef::TenantId),
            "segments" => two(tail).map(|(tenant, name)| KeyRef::Segment {
                tenant: tenant.into(),
                name: name.into(),
            }),
            "segment-ids" => two(tail).and_then(|(tenant, id)| {
                Some(KeyRef::SegmentId {
                    tenant: tenant.into(),
                    id: number(id)?,
                })
            }),
            "endpoints" => one(tail).map(|id| KeyRef::Endpoint(id.into())),
            "addresses" => one(tail)
                .and_then(|ip| ip.parse().ok())
                .map(KeyRef::Address),
            "agents" => two(tail)
                .filter(|(_, leaf)| *leaf == "status")
                .map(|(host, _)| KeyRef::AgentStatus(host.into())),
            "policies" => match tail.split_once('/') {
                Some(("romana", name)) => {
                    one(name).map(|name| KeyRef::Policy(PolicyId::Romana { name: name.into() }))
                }
                Some(("k8s", rest)) => two(rest).map(|(tenant, name)| {
                    KeyRef::Policy(PolicyId::Kubernetes {
                        tenant: tenant.into(),
                        name: name.into(),
                    })
                }),
                _ => None,
            },
            "host-ips" => one(tail).and_then(|ip| ip.parse().ok()).map(KeyRef::HostIp),
            "host-endpoints" => two(tail).map(|(host, id)| KeyRef::HostEndpoint {
                host: host.into(),
                id: id.into(),
            }),
            "segment-endpoints" => tail.split_once('/').and_then(|(tenant, rest)| {
                let (segment, id) = two(rest)?;
                Some(KeyRef::SegmentEndpoint {
                    tenant: one(tenant)?.into(),
                    segment: segment.into(),
                    id: id.into(),
                })
            }),
            _ => None,
        };
        parsed.or_else(other)
    }
}

fn one(tail: &str) -> Option<&str> {
    (!tail.is_empty() && !tail.contains('/')).then_some(tail)
}

fn two(tail: &str) -> Option<(&str, &str)> {
    let (a, b) = tail.split_once('/')?;
    Some((one(a)?, one(b)?))
}

fn number(s: &str) -> Option<u32> {
    // `u32::from_str` accepts a leading '+', which no key we write has.
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// === impl Key ===

impl<T> Key<T> {
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        Key {
            path: self.path.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> PartialEq for Key<T> {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl<T> Eq for Key<T> {}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Key").field(&self.path).finish()
    }
}

impl<T> fmt::Display for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

// === impl Prefix ===

impl<T> Prefix<T> {
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl<T> Clone for Prefix<T> {
    fn clone(&self) -> Self {
        Prefix {
            path: self.path.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> PartialEq for Prefix<T> {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl<T> Eq for Prefix<T> {}

impl<T> fmt::Debug for Prefix<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Prefix").field(&self.path).finish()
    }
}

impl<T> fmt::Display for Prefix<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

#[cfg(test)]
mod tests {
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
}
