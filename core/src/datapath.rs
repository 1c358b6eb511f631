//! Datapath conventions shared by the agent and the CNI plugin, which must agree without
//! talking to each other: the host-side interface name of an endpoint and the route protocol
//! number that marks routes as ours.

/// Prefix of every host-side endpoint interface; nftables matches endpoints by it.
pub const ENDPOINT_IFNAME_PREFIX: &str = "rmn";

/// Prefixes of every name nftables treats as an endpoint interface (`iifname { "rmn*",
/// "tap*" }`): the CNI plugin's veths and named taps ([`crate::interface`]). A host running
/// the agent must not use `tap*` names for anything but endpoints: forwarded traffic
/// through an interface of either shape that the agent does not know is dropped.
pub const ENDPOINT_IFNAME_PREFIXES: [&str; 2] =
    [ENDPOINT_IFNAME_PREFIX, crate::interface::TAP_IFNAME_PREFIX];

/// Whether nftables takes `name` for an endpoint interface (it starts with one of
/// [`ENDPOINT_IFNAME_PREFIXES`], as nft's `"rmn*"` wildcard matches).
pub fn is_endpoint_interface(name: &str) -> bool {
    ENDPOINT_IFNAME_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Route protocol number of every route romana-rs installs (`ip route ... proto 124`). Not
/// used by iproute2's `rt_protos` nor by common routing daemons, so an agent can sweep stale
/// routes of its own without ever touching anybody else's.
pub const ROUTE_PROTOCOL: u8 = 124;

/// The host-side interface name of endpoint `id`: `rmn` + 12 hex digits of a stable 64-bit
/// FNV-1a hash, 15 characters (the kernel's limit). Stable across processes, versions and
/// machines, unlike std's randomized hasher, so the agent finds what the CNI plugin made.
pub fn endpoint_ifname(id: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = id
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    format!("{ENDPOINT_IFNAME_PREFIX}{:012x}", hash >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_is_15_chars_stable_and_prefixed() {
        let name = endpoint_ifname("0123456789abcdef:eth0");
        assert_eq!(name.len(), 15);
        assert!(name.starts_with(ENDPOINT_IFNAME_PREFIX));
        assert_eq!(name, endpoint_ifname("0123456789abcdef:eth0"));
        // Pinned: changing the function would orphan every existing endpoint interface.
        assert_eq!(endpoint_ifname(""), "rmncbf29ce48422");
    }

    #[test]
    fn veths_and_taps_are_endpoint_interfaces_for_nft_and_nothing_else() {
        assert!(is_endpoint_interface(&endpoint_ifname("c1:eth0")));
        assert!(is_endpoint_interface("tap3f2a9c1b-7d"));
        for other in ["eth0", "lo", "fabric0", "vethab12", "br-tap"] {
            assert!(!is_endpoint_interface(other), "{other}");
        }
    }

    #[test]
    fn different_ids_get_different_names() {
        assert_ne!(endpoint_ifname("c1:eth0"), endpoint_ifname("c1:eth1"));
        assert_ne!(endpoint_ifname("c1:eth0"), endpoint_ifname("c2:eth0"));
    }
}
