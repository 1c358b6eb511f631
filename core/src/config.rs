//! The cluster configuration: one address space (or, dual-stack, one per IP family) cut into
//! host, tenant, segment and endpoint fields. It is set once (by root-service) and every
//! other component derives addresses from it, so validation here is the single gate for a
//! usable layout.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::layout::Layout;

/// Widest host, tenant or segment field we accept. Numbers are `u32` everywhere.
pub const MAX_FIELD_BITS: u8 = 32;

/// Fewest endpoint bits that leave at least one assignable address per segment after the
/// reserved ones (see [`crate::layout`]).
pub const MIN_ENDPOINT_BITS: u8 = 2;

/// The cluster configuration as an operator writes it and as it is stored in etcd.
///
/// Address bits, most significant first:
/// `| address space | host (rack bits on top) | tenant | segment | endpoint |`
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// The whole address space, e.g. `10.0.0.0/8` or `fd00:10::/48`; must be canonical.
    pub address_space: IpNet,
    /// Bits numbering hosts; every host owns one prefix of this granularity.
    pub host_bits: u8,
    /// Bits taken from the top of the host bits to number racks (0: no racks). Hosts of a rack
    /// then share one aggregate prefix, so the spine needs one route per rack.
    #[serde(default)]
    pub rack_bits: u8,
    /// Bits numbering tenants (identical on every host).
    pub tenant_bits: u8,
    /// Bits numbering segments inside a tenant (identical on every host).
    pub segment_bits: u8,
    /// A single-tenant cluster may use zero tenant and segment bits; a multi-tenant one may not.
    #[serde(default)]
    pub single_tenant: bool,
    /// Dual-stack: the space of the other IP family (`fd00:10::/48` beside `10.0.0.0/8`),
    /// cut with the same host, tenant and segment bits, so that a host, tenant or segment
    /// has one prefix in each; the endpoint bits are what is left in each. Absent (and not
    /// written) in a single-family cluster, so existing records read unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_address_space: Option<IpNet>,
}

/// Why a configuration cannot be used. Every variant carries the numbers that were wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("address space {given} is not canonical (host bits set); did you mean {canonical}?")]
    NonCanonical { given: String, canonical: String },
    #[error("{field} bits is {bits}, more than the maximum of {max}")]
    FieldTooWide {
        field: &'static str,
        bits: u8,
        max: u8,
    },
    #[error(
        "bit widths do not fit: /{prefix_len} + host {host_bits} + tenant {tenant_bits} + \
         segment {segment_bits} = {used} bits, but an {family} address has only {width}"
    )]
    WidthsDoNotFit {
        family: &'static str,
        prefix_len: u8,
        host_bits: u8,
        tenant_bits: u8,
        segment_bits: u8,
        used: u16,
        width: u8,
    },
    #[error(
        "only {endpoint_bits} endpoint bits are left; at least {MIN_ENDPOINT_BITS} are needed \
         so that each segment has an assignable address besides the reserved ones"
    )]
    TooFewEndpointBits { endpoint_bits: u8 },
    #[error("rack bits ({rack_bits}) cannot exceed host bits ({host_bits}): racks are numbered by the top host bits")]
    RackBitsExceedHostBits { rack_bits: u8, host_bits: u8 },
    #[error("{field} bits is 0 but the cluster is multi-tenant; give {field} bits >= 1 or mark the cluster single-tenant")]
    ZeroTenancyBits { field: &'static str },
    #[error(
        "address spaces {first} and {second} are both {family}; a dual-stack cluster has one \
         space per IP family"
    )]
    SameFamily {
        first: String,
        second: String,
        family: &'static str,
    },
    #[error("in the second address space {space}: {source}")]
    InSecondSpace {
        space: String,
        source: Box<ConfigError>,
    },
}

// === impl ClusterConfig ===

impl ClusterConfig {
    /// Checks the configuration and returns the derived [`Layout`] used for address math.
    pub fn layout(&self) -> Result<Layout, ConfigError> {
        Layout::new(self)
    }

    /// Checks the configuration without keeping the layout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.layout().map(|_| ())
    }

    /// Endpoint bits: what is left of the address after all other fields.
    /// Saturates at zero for configurations that do not fit (validation reports those).
    pub fn endpoint_bits(&self) -> u8 {
        let width = family_width(&self.address_space) as u16;
        let used = self.address_space.prefix_len() as u16
            + self.host_bits as u16
            + self.tenant_bits as u16
            + self.segment_bits as u16;
        width.saturating_sub(used) as u8
    }

    /// Dual-stack: the endpoint bits left in the second address space.
    pub fn second_endpoint_bits(&self) -> Option<u8> {
        self.second_family().map(|c| c.endpoint_bits())
    }

    /// The single-family configuration of the second address space, when there is one.
    pub(crate) fn second_family(&self) -> Option<ClusterConfig> {
        self.second_address_space.map(|space| ClusterConfig {
            address_space: space,
            second_address_space: None,
            ..self.clone()
        })
    }

    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        self.check_space()?;
        let Some(config) = self.second_family() else {
            return Ok(());
        };
        let second = config.address_space;
        if family_name(&second) == family_name(&self.address_space) {
            return Err(ConfigError::SameFamily {
                first: self.address_space.to_string(),
                second: second.to_string(),
                family: family_name(&second),
            });
        }
        config
            .check_space()
            .map_err(|e| ConfigError::InSecondSpace {
                space: second.to_string(),
                source: Box::new(e),
            })
    }

    fn check_space(&self) -> Result<(), ConfigError> {
        let canonical = self.address_space.trunc();
        if canonical != self.address_space {
            return Err(ConfigError::NonCanonical {
                given: self.address_space.to_string(),
                canonical: canonical.to_string(),
            });
        }
        for (field, bits) in [
            ("host", self.host_bits),
            ("tenant", self.tenant_bits),
            ("segment", self.segment_bits),
        ] {
            if bits > MAX_FIELD_BITS {
                return Err(ConfigError::FieldTooWide {
                    field,
                    bits,
                    max: MAX_FIELD_BITS,
                });
            }
        }
        if self.rack_bits > self.host_bits {
            return Err(ConfigError::RackBitsExceedHostBits {
                rack_bits: self.rack_bits,
                host_bits: self.host_bits,
            });
        }
        if !self.single_tenant {
            if self.tenant_bits == 0 {
                return Err(ConfigError::ZeroTenancyBits { field: "tenant" });
            }
            if self.segment_bits == 0 {
                return Err(ConfigError::ZeroTenancyBits { field: "segment" });
            }
        }
        let width = family_width(&self.address_space);
        let prefix_len = self.address_space.prefix_len();
        let used = prefix_len as u16
            + self.host_bits as u16
            + self.tenant_bits as u16
            + self.segment_bits as u16;
        if used > width as u16 {
            return Err(ConfigError::WidthsDoNotFit {
                family: family_name(&self.address_space),
                prefix_len,
                host_bits: self.host_bits,
                tenant_bits: self.tenant_bits,
                segment_bits: self.segment_bits,
                used,
                width,
            });
        }
        let endpoint_bits = self.endpoint_bits();
        if endpoint_bits < MIN_ENDPOINT_BITS {
            return Err(ConfigError::TooFewEndpointBits { endpoint_bits });
        }
        Ok(())
    }
}

pub(crate) fn family_width(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 32,
        IpNet::V6(_) => 128,
    }
}

fn family_name(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_config(space: &str, host: u8, tenant: u8, segment: u8) -> ClusterConfig {
        ClusterConfig {
            address_space: space.parse().unwrap(),
            host_bits: host,
            rack_bits: 0,
            tenant_bits: tenant,
            segment_bits: segment,
            single_tenant: false,
            second_address_space: None,
        }
    }

    fn mk_dual(first: &str, second: &str) -> ClusterConfig {
        ClusterConfig {
            second_address_space: Some(second.parse().unwrap()),
            ..mk_config(first, 8, 4, 4)
        }
    }

    #[test]
    fn a_dual_stack_config_has_one_space_per_family_with_the_same_fields() {
        assert_eq!(mk_dual("10.0.0.0/8", "fd00:10::/48").validate(), Ok(()));
        assert_eq!(mk_dual("fd00:10::/48", "10.0.0.0/8").validate(), Ok(()));
        assert_eq!(
            mk_dual("10.0.0.0/8", "172.16.0.0/12").validate(),
            Err(ConfigError::SameFamily {
                first: "10.0.0.0/8".into(),
                second: "172.16.0.0/12".into(),
                family: "IPv4"
            })
        );
    }

    #[test]
    fn the_second_space_is_checked_as_the_first_and_named_in_the_error() {
        let err = mk_dual("10.0.0.0/8", "fd00:10::1/48")
            .validate()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "in the second address space fd00:10::1/48: address space fd00:10::1/48 is not \
             canonical (host bits set); did you mean fd00:10::/48?"
        );
        // 8 + 4 + 4 fields leave 0 endpoint bits in a /112.
        let err = mk_dual("10.0.0.0/8", "fd00::/112").validate().unwrap_err();
        assert!(
            matches!(&err, ConfigError::InSecondSpace { source, .. }
                if matches!(**source, ConfigError::TooFewEndpointBits { endpoint_bits: 0 })),
            "{err}"
        );
    }

    #[test]
    fn a_single_family_record_reads_and_writes_without_a_second_space() {
        let c = mk_config("10.0.0.0/8", 8, 4, 4);
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains("second"), "{json}");
        let dual = mk_dual("10.0.0.0/8", "fd00:10::/48");
        let back: ClusterConfig =
            serde_json::from_str(&serde_json::to_string(&dual).unwrap()).unwrap();
        assert_eq!(back, dual);
    }

    #[test]
    fn mission_example_is_valid_with_eight_endpoint_bits() {
        let c = mk_config("10.0.0.0/8", 8, 4, 4);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.endpoint_bits(), 8);
    }

    #[test]
    fn ipv6_space_is_valid() {
        let c = mk_config("fd00:10::/48", 16, 8, 8);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.endpoint_bits(), 48);
    }

    #[test]
    fn non_canonical_space_is_refused_with_the_canonical_form() {
        let c = mk_config("10.1.0.0/8", 8, 4, 4);
        assert_eq!(
            c.validate(),
            Err(ConfigError::NonCanonical {
                given: "10.1.0.0/8".into(),
                canonical: "10.0.0.0/8".into()
            })
        );
    }

    #[test]
    fn widths_that_do_not_fit_are_refused_with_the_sum() {
        let c = mk_config("10.0.0.0/8", 16, 6, 4);
        assert_eq!(
            c.validate(),
            Err(ConfigError::WidthsDoNotFit {
                family: "IPv4",
                prefix_len: 8,
                host_bits: 16,
                tenant_bits: 6,
                segment_bits: 4,
                used: 34,
                width: 32
            })
        );
    }

    #[test]
    fn zero_endpoint_bits_are_refused() {
        let c = mk_config("10.0.0.0/8", 12, 6, 6);
        assert_eq!(
            c.validate(),
            Err(ConfigError::TooFewEndpointBits { endpoint_bits: 0 })
        );
    }

    #[test]
    fn one_endpoint_bit_is_refused_because_both_addresses_are_reserved() {
        let c = mk_config("10.0.0.0/8", 12, 6, 5);
        assert_eq!(
            c.validate(),
            Err(ConfigError::TooFewEndpointBits { endpoint_bits: 1 })
        );
    }

    #[test]
    fn zero_tenant_or_segment_bits_are_refused_when_multi_tenant() {
        assert_eq!(
            mk_config("10.0.0.0/8", 8, 0, 4).validate(),
            Err(ConfigError::ZeroTenancyBits { field: "tenant" })
        );
        assert_eq!(
            mk_config("10.0.0.0/8", 8, 4, 0).validate(),
            Err(ConfigError::ZeroTenancyBits { field: "segment" })
        );
        let mut single = mk_config("10.0.0.0/8", 8, 0, 0);
        single.single_tenant = true;
        assert_eq!(single.validate(), Ok(()));
    }

    #[test]
    fn rack_bits_above_host_bits_are_refused() {
        let mut c = mk_config("10.0.0.0/8", 4, 4, 4);
        c.rack_bits = 5;
        assert_eq!(
            c.validate(),
            Err(ConfigError::RackBitsExceedHostBits {
                rack_bits: 5,
                host_bits: 4
            })
        );
    }

    #[test]
    fn fields_wider_than_32_bits_are_refused() {
        let c = mk_config("fd00::/16", 40, 8, 8);
        assert_eq!(
            c.validate(),
            Err(ConfigError::FieldTooWide {
                field: "host",
                bits: 40,
                max: 32
            })
        );
    }

    #[test]
    fn config_round_trips_through_json_with_defaults() {
        let json =
            r#"{"address_space":"10.0.0.0/8","host_bits":8,"tenant_bits":4,"segment_bits":4}"#;
        let c: ClusterConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c, mk_config("10.0.0.0/8", 8, 4, 4));
        let back: ClusterConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
