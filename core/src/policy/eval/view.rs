//! [`ClusterView`]: the cluster as evaluation sees it, indexed by name and by address.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::policy::k8s::NAMESPACE_NAME_LABEL;
use crate::{Endpoint, Host, Layout, Segment, Tenant};

/// What evaluation needs to know of the cluster, indexed for lookups by name and address.
#[derive(Clone, Debug)]
pub struct ClusterView {
    layout: Layout,
    hosts: BTreeMap<String, Host>,
    host_by_index: BTreeMap<u32, String>,
    tenants: BTreeMap<String, Tenant>,
    segments: BTreeMap<(String, String), Segment>,
    endpoints: BTreeMap<String, Endpoint>,
    by_address: BTreeMap<IpAddr, String>,
}

/// Which endpoint each address means, as evaluation resolves it: an endpoint is found by
/// its address of either family (dual-stack), and of several that claim one address (a
/// record etcd should never hold) the last in id order. `endpoints` must come in id order.
/// For callers that need the rule without a whole [`ClusterView`] (the agent's compiler).
pub fn address_owners<'a>(
    endpoints: impl IntoIterator<Item = &'a Endpoint>,
) -> BTreeMap<IpAddr, &'a str> {
    endpoints
        .into_iter()
        .flat_map(|e| e.addresses().map(move |a| (a, e.id.as_str())))
        .collect()
}

// === impl ClusterView ===

impl ClusterView {
    pub fn new(
        layout: Layout,
        hosts: impl IntoIterator<Item = Host>,
        tenants: impl IntoIterator<Item = Tenant>,
        segments: impl IntoIterator<Item = Segment>,
        endpoints: impl IntoIterator<Item = Endpoint>,
    ) -> ClusterView {
        let hosts: BTreeMap<String, Host> =
            hosts.into_iter().map(|h| (h.name.clone(), h)).collect();
        let host_by_index = hosts.values().map(|h| (h.index, h.name.clone())).collect();
        let endpoints: BTreeMap<String, Endpoint> =
            endpoints.into_iter().map(|e| (e.id.clone(), e)).collect();
        let by_address = address_owners(endpoints.values())
            .into_iter()
            .map(|(a, id)| (a, id.to_string()))
            .collect();
        ClusterView {
            layout,
            hosts,
            host_by_index,
            tenants: tenants.into_iter().map(|t| (t.name.clone(), t)).collect(),
            segments: segments
                .into_iter()
                .map(|s| ((s.tenant.clone(), s.name.clone()), s))
                .collect(),
            endpoints,
            by_address,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn endpoint(&self, id: &str) -> Option<&Endpoint> {
        self.endpoints.get(id)
    }

    pub fn endpoint_at(&self, addr: IpAddr) -> Option<&Endpoint> {
        self.by_address
            .get(&addr)
            .and_then(|id| self.endpoints.get(id))
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.get(name)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }

    /// An endpoint id or an IP address, as `policy explain --from/--to` take them. An
    /// endpoint id means its first address.
    pub fn resolve(&self, text: &str) -> Option<IpAddr> {
        if let Some(e) = self.endpoints.get(text) {
            return Some(e.address);
        }
        text.parse().ok()
    }

    /// Both ends of a packet, as [`ClusterView::resolve`] takes them, in one IP family:
    /// an endpoint id facing an address of its second family means its address of that
    /// family (dual-stack), so `--from web1 --to fd00::9` asks about web1's IPv6 address.
    pub fn resolve_ends(&self, from: &str, to: &str) -> Result<(IpAddr, IpAddr), ResolveError> {
        let one = |end: End, text: &str| {
            self.resolve(text).ok_or_else(|| ResolveError::Unknown {
                end,
                text: crate::text::quote(text),
            })
        };
        let (f, t) = (one(End::From, from)?, one(End::To, to)?);
        if f.is_ipv4() == t.is_ipv4() {
            return Ok((f, t));
        }
        let like = |text: &str, other: IpAddr| {
            self.endpoints
                .get(text)
                .and_then(|e| e.addresses().find(|a| a.is_ipv4() == other.is_ipv4()))
        };
        if let Some(f) = like(from, t) {
            return Ok((f, t));
        }
        if let Some(t) = like(to, f) {
            return Ok((f, t));
        }
        Err(ResolveError::Families { from: f, to: t })
    }

    /// Whether `addr` is host `host`'s own: its fabric address or a segment gateway under
    /// its prefix.
    pub fn is_host_of(&self, addr: IpAddr, host: &str) -> bool {
        let Some(h) = self.hosts.get(host) else {
            return false;
        };
        if h.ips().any(|ip| ip == addr) {
            return true;
        }
        // `decode` answers for whichever family's space holds `addr`.
        self.layout
            .decode(addr)
            .is_some_and(|d| d.endpoint == 1 && d.host == h.index)
    }

    /// The host whose own address `addr` is, if any.
    pub fn host_at(&self, addr: IpAddr) -> Option<&Host> {
        if let Some(h) = self.hosts.values().find(|h| h.ips().any(|ip| ip == addr)) {
            return Some(h);
        }
        let d = self.layout.decode(addr).filter(|d| d.endpoint == 1)?;
        self.host_by_index
            .get(&d.host)
            .and_then(|n| self.hosts.get(n))
    }

    /// A tenant's labels for `namespaceSelector`, with `kubernetes.io/metadata.name` always
    /// set to its name, as Kubernetes sets it on every namespace.
    pub fn tenant_labels(&self, tenant: &str) -> BTreeMap<String, String> {
        let mut labels = self
            .tenants
            .get(tenant)
            .map(|t| t.labels.clone())
            .unwrap_or_default();
        labels.insert(NAMESPACE_NAME_LABEL.to_string(), tenant.to_string());
        labels
    }

    /// Whether `addr` is in tenant `tenant` (on any host), in the space of `addr`'s family.
    pub(super) fn tenant_contains(&self, tenant: &str, addr: IpAddr) -> bool {
        let Some(layout) = self.layout.family_of(addr) else {
            return false;
        };
        self.tenants
            .get(tenant)
            .and_then(|t| layout.tenant_match(t.id).ok())
            .is_some_and(|m| m.matches(addr))
    }

    /// Whether `addr` is in segment `tenant/segment`, as [`Self::tenant_contains`].
    pub(super) fn segment_contains(&self, tenant: &str, segment: &str, addr: IpAddr) -> bool {
        let (Some(t), Some(layout)) = (self.tenants.get(tenant), self.layout.family_of(addr))
        else {
            return false;
        };
        self.segments
            .get(&(tenant.to_string(), segment.to_string()))
            .and_then(|s| layout.segment_match(t.id, s.id).ok())
            .is_some_and(|m| m.matches(addr))
    }
}

/// Which end of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    From,
    To,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            End::From => "from",
            End::To => "to",
        })
    }
}

/// Why [`ClusterView::resolve_ends`] found no packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{end}: {text} is neither an endpoint id nor an IP address")]
    Unknown { end: End, text: String },
    #[error(
        "from {from} and to {to} are of different IP families; no packet has both (give an \
         endpoint id on one side to take its address of the other's family)"
    )]
    Families { from: IpAddr, to: IpAddr },
}
