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
//! | `tombstones/endpoints/{id}`          | released address       | ipam, topology    | fence: a late claim of a released id fails (leased)   |
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

mod parse;
pub use parse::KeyRef;

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

    /// Written when endpoint `id` is released, under a lease that expires it after a while
    /// ([`crate::endpoints`]); its value is the released address. Outside
    /// [`Keys::agent_watch_range`]: no agent reads it.
    pub fn endpoint_tombstone(&self, id: &str) -> Key<IpAddr> {
        self.key(format_args!("tombstones/endpoints/{id}"))
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
mod tests;
