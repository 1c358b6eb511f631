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

/// The segment name used when a request names a tenant but no segment.
pub const DEFAULT_SEGMENT: &str = "default";

/// A resolved placement, with the revisions the allocation must find unchanged.
pub struct Placement {
    pub host: Versioned<Host>,
    pub tenant: Versioned<Tenant>,
    pub segment: Versioned<Segment>,
    /// The segment CIDR on the host.
    pub cidr: IpNet,
}

impl Placement {
    pub fn describe(&self) -> String {
        format!(
            "host {} tenant {} segment {} ({})",
            self.host.value.name, self.tenant.value.name, self.segment.value.name, self.cidr
        )
    }
}

/// Resolves the placement of an allocation request and the specific address, if any.
pub async fn resolve(
    store: &Store,
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

    let placement = if by_name {
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
        by_names(store, layout, &req.host, &req.tenant, segment).await?
    } else if let Some(cidr) = cidr {
        let d = segment_of_cidr(layout, cidr)?;
        by_numbers(store, layout, d).await?
    } else if let Some(a) = address {
        let d = layout.decode(a).ok_or_else(|| {
            Status::invalid_argument(format!(
                "address {a} is outside the address space {}",
                layout.address_space()
            ))
        })?;
        by_numbers(store, layout, d).await?
    } else {
        return Err(Status::invalid_argument(
            "no placement: give host + tenant (+ segment), a segment cidr, or an address",
        ));
    };

    if let Some(cidr) = cidr {
        if cidr != placement.cidr {
            return Err(Status::invalid_argument(format!(
                "cidr {cidr} disagrees with {}",
                placement.describe()
            )));
        }
    }
    if let Some(a) = address {
        if !placement.cidr.contains(&a) {
            return Err(Status::invalid_argument(format!(
                "address {a} is outside {}",
                placement.describe()
            )));
        }
        let endpoint = layout.decode(a).map(|d| d.endpoint).unwrap_or_default();
        if !layout.is_assignable(endpoint) {
            return Err(Status::invalid_argument(format!(
                "address {a} is reserved in {} (network, gateway or broadcast)",
                placement.describe()
            )));
        }
    }
    Ok((placement, address))
}

fn segment_of_cidr(layout: &Layout, cidr: IpNet) -> Result<Decoded, Status> {
    let d = layout.decode(cidr.network()).ok_or_else(|| {
        Status::invalid_argument(format!(
            "cidr {cidr} is outside the address space {}",
            layout.address_space()
        ))
    })?;
    let expected = layout
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
    store: &Store,
    layout: &Layout,
    host: &str,
    tenant: &str,
    segment: &str,
) -> Result<Placement, Status> {
    let keys = store.keys();
    let host = store
        .get(&keys.host(host))
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found(format!("host {host} does not exist")))?;
    let tenant = store
        .get(&keys.tenant(tenant))
        .await
        .map_err(store_status)?
        .ok_or_else(|| Status::not_found(format!("tenant {tenant} does not exist")))?;
    let segment = store
        .get(&keys.segment(&tenant.value.name, segment))
        .await
        .map_err(store_status)?
        .ok_or_else(|| {
            Status::not_found(format!(
                "segment {segment} of tenant {} does not exist",
                tenant.value.name
            ))
        })?;
    let cidr = layout
        .segment_cidr(host.value.index, tenant.value.id, segment.value.id)
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(Placement {
        host,
        tenant,
        segment,
        cidr,
    })
}

async fn by_numbers(store: &Store, layout: &Layout, d: Decoded) -> Result<Placement, Status> {
    let keys = store.keys();
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
    by_names(store, layout, &host.value, &tenant.value, &segment.value).await
}
