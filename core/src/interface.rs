//! The host-side interface of an endpoint, and the names a caller may give it.
//!
//! Two kinds of endpoint interface exist, and the agent treats both alike (routes, the
//! gateway address, nftables):
//! - **derived** (the record's `interface` is empty): [`endpoint_ifname`] of the endpoint
//!   id, `rmn` + 12 hex digits, the veth the CNI plugin creates;
//! - **named** (the record carries it): a tap device somebody else creates, above all
//!   Nova's libvirt driver, which names a VM's tap `tap` + the first 11 characters of the
//!   Neutron port id (`tap3f2a9c1b-7d`). The agent wires it when it appears.
//!
//! Only `tap*` names may be given. The agent renders the name into nftables scripts and
//! puts the segment gateway on the interface, so a record naming `eth0` (or a string with
//! quotes or newlines) must never get that far: ipam-service refuses such names before
//! anything is stored, and the agent checks again (a record may be written to etcd by
//! hand) and leaves an endpoint with a bad name out, closed. `rmn*` is refused because
//! those names are derived from ids; naming one would let two endpoints share a veth.

use crate::datapath::endpoint_ifname;
use crate::text::quote;
use crate::Endpoint;

/// Prefix of every interface name a caller may give an endpoint (Nova's taps).
pub const TAP_IFNAME_PREFIX: &str = "tap";

/// Longest interface name Linux takes (`IFNAMSIZ` 16, with the NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// Characters of a named interface: Linux allows more, but these survive nft scripts,
/// shells and logs unquoted.
const IFNAME_CHARS: &str = "letters, digits, '-', '_' or '.'";

/// An interface name an endpoint may not carry. Names in messages are quoted and bounded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterfaceError {
    #[error(
        "interface {name} is {len} bytes long; Linux interface names are at most {MAX_IFNAME_LEN}"
    )]
    TooLong { name: String, len: usize },
    #[error("interface {name} contains {bad:?}; use {IFNAME_CHARS}")]
    BadCharacter { name: String, bad: char },
    #[error(
        "interface {name} is derived, not given: rmn names belong to the CNI plugin's veths \
         (rmn + a hash of the endpoint id); leave interface empty for those"
    )]
    Derived { name: String },
    #[error(
        "interface {name} is not a tap device: an endpoint may only name its tap (Nova's \
         \"tap\" + the first 11 characters of the port id, e.g. \"tap3f2a9c1b-7d\"); leave \
         interface empty for the CNI plugin's veth"
    )]
    NotTap { name: String },
}

/// Whether `name` may be an endpoint record's `interface`. Empty is fine: it means the
/// derived name.
pub fn validate_interface(name: &str) -> Result<(), InterfaceError> {
    if name.is_empty() {
        return Ok(());
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(InterfaceError::TooLong {
            name: quote(name),
            len: name.len(),
        });
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(InterfaceError::BadCharacter {
            name: quote(name),
            bad,
        });
    }
    if name.starts_with(crate::datapath::ENDPOINT_IFNAME_PREFIX) {
        return Err(InterfaceError::Derived { name: quote(name) });
    }
    // "tap" alone names no port: a caller that sent it lost the port id on the way.
    if !name.starts_with(TAP_IFNAME_PREFIX) || name.len() == TAP_IFNAME_PREFIX.len() {
        return Err(InterfaceError::NotTap { name: quote(name) });
    }
    Ok(())
}

/// The host-side interface of endpoint `e`: the record's `interface` when it names one,
/// else [`endpoint_ifname`] of its id. Every user of an endpoint's interface (routes, the
/// gateway address, the nftables `endpoints` set, status) goes through this, so they
/// cannot disagree. A name that [`validate_interface`] refuses is an error, never a
/// fallback to the derived name: that endpoint is left out.
pub fn host_interface(e: &Endpoint) -> Result<String, InterfaceError> {
    if e.interface.is_empty() {
        return Ok(endpoint_ifname(&e.id));
    }
    validate_interface(&e.interface)?;
    Ok(e.interface.clone())
}

/// Nova's name for the tap of Neutron port `port_id`: `tap` + its first 11 characters.
pub fn nova_tap_name(port_id: &str) -> String {
    let cut: String = port_id.chars().take(11).collect();
    format!("{TAP_IFNAME_PREFIX}{cut}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mk_endpoint(interface: &str) -> Endpoint {
        Endpoint {
            id: "neutron:3f2a9c1b-7d4e-4a1b-9c2d-0123456789ab:subnet".into(),
            address: "10.0.16.2".parse().unwrap(),
            host: "h1".into(),
            tenant: "t".into(),
            segment: "default".into(),
            labels: Default::default(),
            ports: Vec::new(),
            interface: interface.into(),
            pod: None,
            second_address: None,
        }
    }

    #[test]
    fn nova_taps_and_empty_are_accepted() {
        for name in [
            "",
            "tap3f2a9c1b-7d",
            "tap0",
            "tapABC_def.1-x",
            "tap456789012345",
        ] {
            assert_eq!(validate_interface(name), Ok(()), "{name}");
        }
        assert_eq!(
            nova_tap_name("3f2a9c1b-7d4e-4a1b-9c2d-0123456789ab"),
            "tap3f2a9c1b-7d"
        );
        assert_eq!(validate_interface(&nova_tap_name("x")), Ok(()));
    }

    #[test]
    fn other_names_are_refused_with_what_to_do() {
        let err = |n: &str| validate_interface(n).unwrap_err().to_string();
        assert!(err("eth0").contains("not a tap device"), "{}", err("eth0"));
        assert!(err("eth0").contains("leave interface empty"));
        assert!(err("tap").contains("not a tap device"));
        assert!(err("rmncbf29ce48422").contains("derived"));
        assert!(err("tap0123456789abc").contains("16 bytes long"));
        assert!(err("tap 0").contains("' '"), "{}", err("tap 0"));
        assert!(err("tap\"; flush").contains("'\"'"));
        assert!(err("tap/0").contains("'/'"));
        assert!(err("TAP0").contains("not a tap device"), "case matters");
    }

    #[test]
    fn messages_quote_a_short_escaped_prefix_only() {
        let huge = format!("tap{}", "x".repeat(1 << 20));
        let msg = validate_interface(&huge).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
        let msg = validate_interface("tap\u{1b}[31m").unwrap_err().to_string();
        assert!(!msg.contains('\u{1b}'), "{msg}");
    }

    #[test]
    fn the_host_interface_is_the_named_one_or_the_derived_one() {
        let derived = mk_endpoint("");
        assert_eq!(host_interface(&derived), Ok(endpoint_ifname(&derived.id)));
        assert_eq!(
            host_interface(&mk_endpoint("tap3f2a9c1b-7d")),
            Ok("tap3f2a9c1b-7d".into())
        );
        assert!(
            host_interface(&mk_endpoint("eth0")).is_err(),
            "never a fallback to the derived name"
        );
    }

    #[test]
    fn old_records_without_the_field_read_and_derived_ones_are_written_as_before() {
        let old =
            r#"{"id":"e","address":"10.0.16.2","host":"h1","tenant":"t","segment":"default"}"#;
        let e: Endpoint = serde_json::from_str(old).unwrap();
        assert_eq!(e.interface, "");
        assert!(!serde_json::to_string(&e).unwrap().contains("interface"));
        let named = mk_endpoint("tap0");
        let back: Endpoint = serde_json::from_str(&serde_json::to_string(&named).unwrap()).unwrap();
        assert_eq!(back, named);
    }

    proptest! {
        /// Whatever is accepted is safe to render between nft's double quotes and fits
        /// IFNAMSIZ.
        #[test]
        fn accepted_names_fit_the_kernel_and_nft(
            name in prop_oneof!["\\PC{0,20}", "tap[ -~]{0,14}", "tap\\PC{0,14}"]
        ) {
            if validate_interface(&name).is_ok() && !name.is_empty() {
                prop_assert!(name.len() <= MAX_IFNAME_LEN);
                prop_assert!(name.starts_with(TAP_IFNAME_PREFIX));
                prop_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
            }
        }

        #[test]
        fn nova_names_of_uuids_are_accepted(uuid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}") {
            prop_assert_eq!(validate_interface(&nova_tap_name(&uuid)), Ok(()));
        }
    }
}
