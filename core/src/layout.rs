//! Address math over a validated [`ClusterConfig`], identical for IPv4 and IPv6: addresses are
//! handled as `u128` integers whose top `width` bits are used (32 for IPv4, 128 for IPv6).
//!
//! ```text
//!  10.0.0.0/8, 8 host bits, 4 tenant bits, 4 segment bits, 8 endpoint bits
//!  | 10 | host (8) | tenant (4) | segment (4) | endpoint (8) |
//!    host 3     -> 10.3.0.0/16
//!    tenant 5   -> 10.3.80.0/20 on host 3
//!    segment 2  -> 10.3.82.0/24 on host 3, tenant 5
//!    endpoint 7 -> 10.3.82.7
//! ```
//!
//! # Reserved endpoint numbers in every segment
//! - **0, the segment's network address.** IPv4 stacks treat it as the subnet itself, and in
//!   IPv6 it is the Subnet-Router anycast address (RFC 4291 2.6.1); handing it to an endpoint
//!   breaks either.
//! - **1, the segment's gateway.** Endpoints route everything through it. The host side of
//!   each endpoint's link answers for it, so every endpoint of the segment on any host uses
//!   the same gateway address, and Neutron's subnet `gateway_ip` has a real value.
//! - **IPv4 only: the last address (all endpoint bits set), the directed broadcast.** IPv6
//!   has no broadcast, so there the last address is assignable.
//!
//! # Dual-stack
//! A configuration with a second address space (the other IP family) has a second family
//! layout with the same host, tenant and segment fields ([`Layout::second_family`]). The
//! per-field functions here answer for the first space; [`Layout::families`] walks both.
//! [`Layout::decode`] and [`Layout::gateway_of`] take an address of either family, and an
//! endpoint holds the same endpoint number in each ([`Layout::endpoint_addresses`]).
//!
//! # Tenant and segment matches
//! Tenant and segment bits sit at the same place on every host, so "all of tenant 5's
//! addresses anywhere in the cluster" is one `(value, mask)` pair whose mask covers the
//! address-space prefix and the tenant field but not the host field. One nftables rule with
//! such a match isolates a tenant on every host, however many hosts there are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{family_width, ClusterConfig, ConfigError};

/// A host, tenant, segment or endpoint number outside what the layout has room for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("{field} {value} is out of range: the layout has room for {field}s 0..={max}")]
    OutOfRange {
        field: &'static str,
        value: u128,
        max: u128,
    },
}

/// Where an address sits in the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Decoded {
    pub host: u32,
    pub tenant: u32,
    pub segment: u32,
    pub endpoint: u128,
}

/// A cluster-wide masked match: an address `a` matches when `a & mask == value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MaskedMatch {
    pub value: IpAddr,
    pub mask: IpAddr,
}

/// A validated layout, ready for address math. Build it with [`ClusterConfig::layout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    config: ClusterConfig,
    base: u128,
    width: u8,
    prefix_len: u8,
    endpoint_bits: u8,
    /// Dual-stack: the layout of the second address space (itself single-family).
    second: Option<Box<Layout>>,
}

// === impl Layout ===

impl Layout {
    pub(crate) fn new(config: &ClusterConfig) -> Result<Self, ConfigError> {
        config.check()?;
        let second = config
            .second_family()
            .map(|c| Box::new(Layout::one_family(&c)));
        Ok(Layout {
            second,
            ..Layout::one_family(config)
        })
    }

    /// The layout of `config`'s first space alone (already checked).
    fn one_family(config: &ClusterConfig) -> Layout {
        Layout {
            config: config.clone(),
            base: to_u128(config.address_space.network()),
            width: family_width(&config.address_space),
            prefix_len: config.address_space.prefix_len(),
            endpoint_bits: config.endpoint_bits(),
            second: None,
        }
    }

    /// Dual-stack: the layout of the other family's space; `None` in a single-family cluster.
    pub fn second_family(&self) -> Option<&Layout> {
        self.second.as_deref()
    }

    /// The layout of each family, the first space's first. Each one's per-field functions
    /// answer for its own space.
    pub fn families(&self) -> impl Iterator<Item = &Layout> {
        std::iter::once(self).chain(self.second_family())
    }

    /// The family layout whose space holds `addr`, or `None` outside every space.
    pub fn family_of(&self, addr: IpAddr) -> Option<&Layout> {
        self.families()
            .find(|l| l.config.address_space.contains(&addr))
    }

    /// The endpoint numbers that may be handed out in every family at once, so that one
    /// number gives an endpoint an address of each (the narrower family bounds it).
    pub fn assignable_in_every_family(&self) -> RangeInclusive<u128> {
        let last = self
            .families()
            .map(|l| *l.assignable_endpoints().end())
            .min()
            .expect("a layout has a first family");
        2..=last
    }

    /// Endpoint number `endpoint` of a segment on a host in every family, the first
    /// space's first.
    pub fn endpoint_addresses(
        &self,
        host: u32,
        tenant: u32,
        segment: u32,
        endpoint: u128,
    ) -> Result<Vec<IpAddr>, AddrError> {
        self.families()
            .map(|l| l.endpoint_address(host, tenant, segment, endpoint))
            .collect()
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn address_space(&self) -> IpNet {
        self.config.address_space
    }

    pub fn endpoint_bits(&self) -> u8 {
        self.endpoint_bits
    }

    /// Number of hosts the layout numbers (2^host bits).
    pub fn max_hosts(&self) -> u64 {
        1u64 << self.config.host_bits
    }

    /// Number of racks (1 when racks are not configured).
    pub fn max_racks(&self) -> u64 {
        1u64 << self.config.rack_bits
    }

    pub fn hosts_per_rack(&self) -> u64 {
        1u64 << (self.config.host_bits - self.config.rack_bits)
    }

    pub fn max_tenants(&self) -> u64 {
        1u64 << self.config.tenant_bits
    }

    pub fn max_segments(&self) -> u64 {
        1u64 << self.config.segment_bits
    }

    /// Addresses per segment including the reserved ones (saturates for huge IPv6 segments).
    pub fn addresses_per_segment(&self) -> u128 {
        1u128
            .checked_shl(self.endpoint_bits as u32)
            .unwrap_or(u128::MAX)
    }

    /// The endpoint numbers that may be handed out in every segment (see the module docs).
    pub fn assignable_endpoints(&self) -> RangeInclusive<u128> {
        let last = field_mask(self.endpoint_bits);
        let last = if self.is_v4() { last - 1 } else { last };
        2..=last
    }

    pub fn is_assignable(&self, endpoint: u128) -> bool {
        self.assignable_endpoints().contains(&endpoint)
    }

    /// The rack a host index belongs to (its top rack bits).
    pub fn rack_of(&self, host: u32) -> u32 {
        let in_rack_bits = self.config.host_bits - self.config.rack_bits;
        (host as u64 >> in_rack_bits) as u32
    }

    /// The host index of the `position`-th host slot of `rack`.
    pub fn host_index(&self, rack: u32, position: u32) -> Result<u32, AddrError> {
        check("rack", rack as u128, self.config.rack_bits)?;
        let in_rack_bits = self.config.host_bits - self.config.rack_bits;
        check("host position", position as u128, in_rack_bits)?;
        Ok(((rack as u64) << in_rack_bits | position as u64) as u32)
    }

    /// The prefix host `host` owns; other hosts need exactly one route to it.
    pub fn host_prefix(&self, host: u32) -> Result<IpNet, AddrError> {
        check("host", host as u128, self.config.host_bits)?;
        Ok(self.net(
            (host as u128) << self.host_shift(),
            self.prefix_len + self.config.host_bits,
        ))
    }

    /// The aggregate of all host prefixes of `rack`: one route at the spine per rack.
    pub fn rack_aggregate(&self, rack: u32) -> Result<IpNet, AddrError> {
        check("rack", rack as u128, self.config.rack_bits)?;
        let shift = self.host_shift() + (self.config.host_bits - self.config.rack_bits) as u32;
        Ok(self.net(
            shift_left(rack as u128, shift),
            self.prefix_len + self.config.rack_bits,
        ))
    }

    /// Tenant `tenant`'s CIDR on host `host`.
    pub fn tenant_cidr(&self, host: u32, tenant: u32) -> Result<IpNet, AddrError> {
        let bits = self.host_bits_value(host)? | self.tenant_bits_value(tenant)?;
        Ok(self.net(
            bits,
            self.prefix_len + self.config.host_bits + self.config.tenant_bits,
        ))
    }

    /// Segment `segment` of tenant `tenant` on host `host`.
    pub fn segment_cidr(&self, host: u32, tenant: u32, segment: u32) -> Result<IpNet, AddrError> {
        let bits = self.host_bits_value(host)?
            | self.tenant_bits_value(tenant)?
            | self.segment_bits_value(segment)?;
        Ok(self.net(bits, self.width - self.endpoint_bits))
    }

    /// The address of endpoint number `endpoint` in a segment on a host.
    pub fn endpoint_address(
        &self,
        host: u32,
        tenant: u32,
        segment: u32,
        endpoint: u128,
    ) -> Result<IpAddr, AddrError> {
        if endpoint > field_mask(self.endpoint_bits) {
            return Err(AddrError::OutOfRange {
                field: "endpoint",
                value: endpoint,
                max: field_mask(self.endpoint_bits),
            });
        }
        let bits = self.host_bits_value(host)?
            | self.tenant_bits_value(tenant)?
            | self.segment_bits_value(segment)?
            | endpoint;
        Ok(self.addr(self.base | bits))
    }

    /// The gateway address of a segment on a host (endpoint number 1).
    pub fn gateway(&self, host: u32, tenant: u32, segment: u32) -> Result<IpAddr, AddrError> {
        self.endpoint_address(host, tenant, segment, 1)
    }

    /// The gateway of the segment `addr` is in (on the host `addr` belongs to), or `None`
    /// outside the address space.
    pub fn gateway_of(&self, addr: IpAddr) -> Option<IpAddr> {
        let l = self.family_of(addr)?;
        let d = l.decode(addr)?;
        l.gateway(d.host, d.tenant, d.segment).ok()
    }

    /// Whether `addr` is a segment gateway (endpoint number 1) of this layout.
    pub fn is_gateway(&self, addr: IpAddr) -> bool {
        self.decode(addr).is_some_and(|d| d.endpoint == 1)
    }

    /// Where `addr` sits in the layout, or `None` when it is in no address space of the
    /// layout (an address of the other IP family is the second space's, if there is one).
    pub fn decode(&self, addr: IpAddr) -> Option<Decoded> {
        if !self.address_space().contains(&addr) {
            return self.second.as_ref().and_then(|l| l.decode(addr));
        }
        let v = to_u128(addr);
        let field = |shift: u32, bits: u8| shift_right(v, shift) & field_mask(bits);
        Some(Decoded {
            host: field(self.host_shift(), self.config.host_bits) as u32,
            tenant: field(self.tenant_shift(), self.config.tenant_bits) as u32,
            segment: field(self.segment_shift(), self.config.segment_bits) as u32,
            endpoint: v & field_mask(self.endpoint_bits),
        })
    }

    /// Every address of tenant `tenant` on every host.
    pub fn tenant_match(&self, tenant: u32) -> Result<MaskedMatch, AddrError> {
        Ok(self.masked(self.tenant_bits_value(tenant)?, self.tenant_mask_bits()))
    }

    /// Every address of segment `segment` of tenant `tenant` on every host.
    pub fn segment_match(&self, tenant: u32, segment: u32) -> Result<MaskedMatch, AddrError> {
        let value = self.tenant_bits_value(tenant)? | self.segment_bits_value(segment)?;
        Ok(self.masked(value, self.segment_mask_bits()))
    }

    /// The mask of every [`Layout::tenant_match`]: the address-space prefix and the tenant
    /// field, so `addr & tenant_mask()` names an address's tenant on any host.
    pub fn tenant_mask(&self) -> IpAddr {
        self.addr(self.tenant_mask_bits())
    }

    /// The mask of every [`Layout::segment_match`]: prefix, tenant and segment fields.
    pub fn segment_mask(&self) -> IpAddr {
        self.addr(self.segment_mask_bits())
    }

    // --- private helpers ---

    fn is_v4(&self) -> bool {
        self.width == 32
    }

    fn segment_shift(&self) -> u32 {
        self.endpoint_bits as u32
    }

    fn tenant_shift(&self) -> u32 {
        self.segment_shift() + self.config.segment_bits as u32
    }

    fn host_shift(&self) -> u32 {
        self.tenant_shift() + self.config.tenant_bits as u32
    }

    fn host_bits_value(&self, host: u32) -> Result<u128, AddrError> {
        check("host", host as u128, self.config.host_bits)?;
        Ok(shift_left(host as u128, self.host_shift()))
    }

    fn tenant_bits_value(&self, tenant: u32) -> Result<u128, AddrError> {
        check("tenant", tenant as u128, self.config.tenant_bits)?;
        Ok(shift_left(tenant as u128, self.tenant_shift()))
    }

    fn segment_bits_value(&self, segment: u32) -> Result<u128, AddrError> {
        check("segment", segment as u128, self.config.segment_bits)?;
        Ok(shift_left(segment as u128, self.segment_shift()))
    }

    fn tenant_mask_bits(&self) -> u128 {
        self.prefix_mask() | shift_left(field_mask(self.config.tenant_bits), self.tenant_shift())
    }

    fn segment_mask_bits(&self) -> u128 {
        let tenant_and_segment = self.config.tenant_bits + self.config.segment_bits;
        self.prefix_mask() | shift_left(field_mask(tenant_and_segment), self.segment_shift())
    }

    /// The mask of the address-space prefix within the family's width.
    fn prefix_mask(&self) -> u128 {
        let host_part = field_mask(self.width - self.prefix_len);
        field_mask(self.width) & !host_part
    }

    fn masked(&self, field_bits: u128, mask: u128) -> MaskedMatch {
        MaskedMatch {
            value: self.addr(self.base | field_bits),
            mask: self.addr(mask),
        }
    }

    fn net(&self, field_bits: u128, len: u8) -> IpNet {
        IpNet::new(self.addr(self.base | field_bits), len).expect("prefix length within width")
    }

    fn addr(&self, v: u128) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        }
    }
}

// === impl MaskedMatch ===

impl MaskedMatch {
    pub fn matches(&self, addr: IpAddr) -> bool {
        match (addr, self.value, self.mask) {
            (IpAddr::V4(a), IpAddr::V4(v), IpAddr::V4(m)) => {
                u32::from(a) & u32::from(m) == u32::from(v)
            }
            (IpAddr::V6(a), IpAddr::V6(v), IpAddr::V6(m)) => {
                u128::from(a) & u128::from(m) == u128::from(v)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for MaskedMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} & {}", self.value, self.mask)
    }
}

fn check(field: &'static str, value: u128, bits: u8) -> Result<(), AddrError> {
    let max = field_mask(bits);
    if value > max {
        return Err(AddrError::OutOfRange { field, value, max });
    }
    Ok(())
}

fn field_mask(bits: u8) -> u128 {
    1u128.checked_shl(bits as u32).map_or(u128::MAX, |v| v - 1)
}

fn shift_left(v: u128, shift: u32) -> u128 {
    v.checked_shl(shift).unwrap_or(0)
}

fn shift_right(v: u128, shift: u32) -> u128 {
    v.checked_shr(shift).unwrap_or(0)
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

#[cfg(test)]
mod tests;
