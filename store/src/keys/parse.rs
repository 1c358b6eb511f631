//! What a key seen in a watch or list is: the layout table of `keys.rs`, read backwards.

use std::net::IpAddr;

use romana_core::policy::PolicyId;

use super::Keys;

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

impl Keys {
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
