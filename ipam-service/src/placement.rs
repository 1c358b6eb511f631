//! Where an allocation goes: (host, tenant, segment), given by names, by a segment CIDR
//! (Neutron knows its subnet), or by a specific address alone. When several are given they
//! must agree; whatever is given must exist.

use std::net::IpAddr;

use ipnet::IpNet;
use romana_core::{Decoded, Host, Layout, Segment, Tenant};
use romana_proto::convert::{parse_cidr, parse_ip};
use romana_proto::pb;
use romana_runtime::{invalid, store_status};
use romana_store::{Store, Versioned};
use tonic::Status;

use crate::cache::Cache;

/// The segment name used when a request names a tenant but no segment.
pub const DEFAULT_SEGMENT: &str = "default";

/// A record and the revision an allocation must find it unchanged at.
#[derive(Clone, Debug)]
pub struct Read<T> {
    pub value: T,
    pub mod_revision: i64,
}

impl<T> From<Versioned<T>> for Read<T> {
    fn from(v: Versioned<T>) -> Read<T> {
        Read {
            value: v.value,
            mod_revision: v.mod_revision,
        }
    }
}

/// A resolved placement, with the revisions the allocation must find unchanged.
pub struct Placement {
    pub host: Read<Host>,
    pub tenant: Read<Tenant>,
    pub segment: Read<Segment>,
    /// The segment CIDR on the host in each family the endpoint gets an address of: every
    /// family when placed by names, the family of the CIDR or address it was placed by.
    pub cidrs: Vec<IpNet>,
}

impl Placement {
    pub fn describe(&self) -> String {
        let cidrs: Vec<String> = self.cidrs.iter().map(IpNet::to_string).collect();
        format!(
            "host {} tenant {} segment {} ({})",
            self.host.value.name,
            self.tenant.value.name,
            self.segment.value.name,
            cidrs.join(", ")
        )
    }

    /// Only the family of `addr` (a CIDR or an address placed the endpoint: Neutron's subnet
    /// is of one family).
    fn keep_family_of(&mut self, addr: IpAddr) {
        self.cidrs
            .retain(|c| c.network().is_ipv4() == addr.is_ipv4());
    }
}

/// Where placement records are read: the watched copy when it knows them, else etcd. A
/// fresh source (after a transaction found a record changed) reads etcd only.
pub struct Source<'a> {
    pub store: &'a Store,
    pub cache: Option<&'a Cache>,
}

impl Source<'_> {
    async fn host(&self, name: &str) -> Result<Option<Read<Host>>, Status> {
        if let Some(h) = self.cache.and_then(|c| c.host(name)) {
            return Ok(Some(h));
        }
        let keys = self.store.keys();
        let got = self.store.get(&keys.host(name)).await;
        Ok(got.map_err(store_status)?.map(Read::from))
    }

    async fn tenant(&self, name: &str) -> Result<Option<Read<Tenant>>, Status> {
        if let Some(t) = self.cache.and_then(|c| c.tenant(name)) {
            return Ok(Some(t));
        }
        let keys = self.store.keys();
        let got = self.store.get(&keys.tenant(name)).await;
        Ok(got.map_err(store_status)?.map(Read::from))
    }

    async fn segment(&self, tenant: &str, name: &str) -> Result<Option<Read<Segment>>, Status> {
        if let Some(s) = self.cache.and_then(|c| c.segment(tenant, name)) {
            return Ok(Some(s));
        }
        let keys = self.store.keys();
        let got = self.store.get(&keys.segment(tenant, name)).await;
        Ok(got.map_err(store_status)?.map(Read::from))
    }

    /// The names behind layout numbers.
    async fn names(&self, d: Decoded) -> Result<(String, String, String), Status> {
        if let Some(names) = self.cache.and_then(|c| c.names(d)) {
            return Ok(names);
        }
        let keys = self.store.keys();
        let store = self.store;
        let host = store
            .get(&keys.host_index(d.host))
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("no host has index {}", d.host)))?;
        let tenant = store
            .get(&keys.tenant_id(d.tenant))
            .await
            .map_err(store_status)?
            .ok_or_else(|| Status::not_found(format!("no tenant has number {}", d.tenant)))?;
        let segment = store
            .get(&keys.segment_id(&tenant.value, d.segment))
            .await
            .map_err(store_status)?
            .ok_or_else(|| {
                Status::not_found(format!(
                    "tenant {} has no segment number {}",
                    tenant.value, d.segment
                ))
            })?;
        Ok((host.value, tenant.value, segment.value))
    }
}

/// Resolves the placement of an allocation request and the specific address, if any.
pub async fn resolve(
    src: &Source<'_>,
    layout: &Layout,
    req: &pb::AllocateRequest,
) -> Result<(Placement, Option<IpAddr>), Status> {
    let address = match req.address.trim() {
        "" => None,
        a => Some(parse_ip("address", a).map_err(invalid)?),
    };
    let cidr = match req.cidr.trim() {
        "" => None,
        c => Some(parse_cidr("cidr", c).map_err(invalid)?),
    };
    let by_name = !req.host.is_empty() || !req.tenant.is_empty() || !req.segment.is_empty();

    let mut placement = if by_name {
        if req.host.is_empty() || req.tenant.is_empty() {
            return Err(Status::invalid_argument(
                "host and tenant are both required when placing by name (segment defaults to \"default\")",
            ));
        }
        let segment = if req.segment.is_empty() {
            DEFAULT_SEGMENT
        } else {
            &req.segment
        };
        by_names(src, layout, &req.host, &req.tenant, segment).await?
    } else if let Some(cidr) = cidr {
        let d = segment_of_cidr(layout, cidr)?;
        by_numbers(src, layout, d).await?
    } else if let Some(a) = address {
        let d = layout.decode(a).ok_or_else(|| {
            Status::invalid_argument(format!(
                "address {a} is outside the address space {}",
                spaces(layout)
            ))
        })?;
        by_numbers(src, layout, d).await?
    } else {
        return Err(Status::invalid_argument(
            "no placement: give host + tenant (+ segment), a segment cidr, or an address",
        ));
    };

    if let Some(cidr) = cidr {
        if !placement.cidrs.contains(&cidr) {
            return Err(Status::invalid_argument(format!(
                "cidr {cidr} disagrees with {}",
                placement.describe()
            )));
        }
        placement.keep_family_of(cidr.network());
    }
    if let Some(a) = address {
        if !placement.cidrs.iter().any(|c| c.contains(&a)) {
            return Err(Status::invalid_argument(format!(
                "address {a} is outside {}",
                placement.describe()
            )));
        }
        placement.keep_family_of(a);
        let assignable = layout
            .family_of(a)
            .zip(layout.decode(a))
            .is_some_and(|(family, d)| family.is_assignable(d.endpoint));
        if !assignable {
            return Err(Status::invalid_argument(format!(
                "address {a} is reserved in {} (network, gateway or broadcast)",
                placement.describe()
            )));
        }
    }
    Ok((placement, address))
}

fn segment_of_cidr(layout: &Layout, cidr: IpNet) -> Result<Decoded, Status> {
    let outside = || {
        Status::invalid_argument(format!(
            "cidr {cidr} is outside the address space {}",
            spaces(layout)
        ))
    };
    let family = layout.family_of(cidr.network()).ok_or_else(outside)?;
    let d = family.decode(cidr.network()).ok_or_else(outside)?;
    let expected = family
        .segment_cidr(d.host, d.tenant, d.segment)
        .map_err(|e| Status::internal(e.to_string()))?;
    if expected != cidr {
        return Err(Status::invalid_argument(format!(
            "cidr {cidr} is not a segment CIDR; the segment containing {} is {expected}",
            cidr.network()
        )));
    }
    Ok(d)
}

async fn by_names(
    src: &Source<'_>,
    layout: &Layout,
    host: &str,
    tenant: &str,
    segment: &str,
) -> Result<Placement, Status> {
    let host = src
        .host(host)
        .await?
        .ok_or_else(|| Status::not_found(format!("host {host} does not exist")))?;
    let tenant = src
        .tenant(tenant)
        .await?
        .ok_or_else(|| Status::not_found(format!("tenant {tenant} does not exist")))?;
    let segment = src
        .segment(&tenant.value.name, segment)
        .await?
        .ok_or_else(|| {
            Status::not_found(format!(
                "segment {segment} of tenant {} does not exist",
                tenant.value.name
            ))
        })?;
    let cidrs = layout
        .families()
        .map(|l| l.segment_cidr(host.value.index, tenant.value.id, segment.value.id))
        .collect::<Result<_, _>>()
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(Placement {
        host,
        tenant,
        segment,
        cidrs,
    })
}

/// The layout's address spaces, for messages: `10.0.0.0/8` or `10.0.0.0/8 and fd00::/48`.
fn spaces(layout: &Layout) -> String {
    let spaces: Vec<String> = layout
        .families()
        .map(|l| l.address_space().to_string())
        .collect();
    spaces.join(" and ")
}

async fn by_numbers(src: &Source<'_>, layout: &Layout, d: Decoded) -> Result<Placement, Status> {
    let (host, tenant, segment) = src.names(d).await?;
    by_names(src, layout, &host, &tenant, &segment).await
}
