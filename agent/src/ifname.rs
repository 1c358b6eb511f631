//! The host-side interface name of an endpoint: [`host_interface`], the one function every
//! part of the agent asks (routes, tap wiring, the nftables `endpoints` set, status).
//!
//! - **Derived** (the record names none): the CNI plugin creates the interface and the
//!   agent routes the endpoint's address to it, and they never talk to each other: both
//!   call [`endpoint_ifname`] on the same id, so the function lives in
//!   `romana_core::datapath`, which both depend on, and is re-exported here. It must give
//!   the same answer in every process, on every host, in every release; that rules out
//!   `std`'s `DefaultHasher` (randomly seeded per process), so it is FNV-1a 64. Shape:
//!   `rmn` + 12 lowercase hex digits = 15 bytes, Linux's limit (`IFNAMSIZ` 16 with NUL).
//! - **Named** (the record's `interface`, a `tap*` name such as Nova's `tap3f2a9c1b-7d`):
//!   somebody else creates the tap; the agent wires it ([`crate::taps`]). A record naming
//!   anything else (written to etcd by hand) is an error, never the derived name: the
//!   endpoint is left out, closed, and the status says why.
//!
//! nftables tells endpoint interfaces from the others by name: every `rmn*` and `tap*`
//! ([`nft_endpoint_names`]).

pub use romana_core::datapath::{
    endpoint_ifname, is_endpoint_interface, ENDPOINT_IFNAME_PREFIX as IFNAME_PREFIX,
    ENDPOINT_IFNAME_PREFIXES,
};
pub use romana_core::interface::{host_interface, InterfaceError, TAP_IFNAME_PREFIX};

/// Whether link `name` is the interface of one of host `host`'s endpoints, so that its
/// appearing (or going) changes what the agent can do: a route waiting for it, a tap to
/// wire, a status to correct. Other links' notifications are ignored.
pub fn is_local_interface(state: &crate::state::ClusterState, host: &str, name: &str) -> bool {
    is_endpoint_interface(name)
        && state
            .endpoints
            .values()
            .filter(|e| e.host == host)
            .any(|e| host_interface(e).is_ok_and(|n| n == name))
}

/// The anonymous set of wildcard names nft matches endpoint interfaces with:
/// `{ "rmn*", "tap*" }` (nft 1.0.6 takes wildcards in an anonymous set of `iifname`, one
/// rule whatever the number of prefixes).
pub fn nft_endpoint_names() -> String {
    let names: Vec<String> = ENDPOINT_IFNAME_PREFIXES
        .iter()
        .map(|p| format!("\"{p}*\""))
        .collect();
    format!("{{ {} }}", names.join(", "))
}

/// Hex digits of hash after the prefix.
const HASH_DIGITS: usize = 12;

/// Whether `name` has the shape of an endpoint interface name.
pub fn is_endpoint_ifname(name: &str) -> bool {
    name.strip_prefix(IFNAME_PREFIX).is_some_and(|rest| {
        rest.len() == HASH_DIGITS
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// FNV-1a, 64 bits (http://www.isthe.com/chongo/tech/comp/fnv/); also marks nft rules.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET, |h, &b| (h ^ b as u64).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        // From the FNV reference test suite.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn names_are_pinned_so_cni_and_agent_agree_across_releases() {
        // If this fails, the shared function changed: every running endpoint would lose its
        // route after an agent upgrade. Do not update the vectors; revert the change.
        assert_eq!(endpoint_ifname(""), "rmncbf29ce48422");
        assert_eq!(endpoint_ifname("a"), "rmnaf63dc4c8601");
        assert_eq!(endpoint_ifname("foobar"), "rmn85944171f739");
    }

    #[test]
    fn names_fit_ifnamsiz_and_have_the_endpoint_shape() {
        for id in [
            "",
            "pod-1",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef:eth0",
            &"x".repeat(253),
        ] {
            let name = endpoint_ifname(id);
            assert!(name.len() <= 15, "{name} is longer than 15 bytes");
            assert!(is_endpoint_ifname(&name), "{name}");
        }
        assert!(!is_endpoint_ifname("eth0"));
        assert!(!is_endpoint_ifname("rmn"));
        assert!(!is_endpoint_ifname("rmnXYZ000000000"));
    }

    #[test]
    fn nft_matches_veths_and_taps_with_one_anonymous_set() {
        assert_eq!(nft_endpoint_names(), r#"{ "rmn*", "tap*" }"#);
    }

    #[test]
    fn only_interfaces_of_local_endpoints_wake_the_agent() {
        use crate::fixtures::*;
        let mut s = mk_state();
        add_endpoint(
            &mut s,
            mk_endpoint("pod-1", "10.0.16.2", "h1", "t", "default"),
        );
        let mut vm = mk_endpoint("port-1", "10.0.16.3", "h1", "t", "default");
        vm.interface = "tap3f2a9c1b-7d".into();
        add_endpoint(&mut s, vm);
        let mut remote = mk_endpoint("port-2", "10.1.16.3", "h2", "t", "default");
        remote.interface = "tap0000000-00".into();
        add_endpoint(&mut s, remote);
        assert!(is_local_interface(&s, "h1", &endpoint_ifname("pod-1")));
        assert!(is_local_interface(&s, "h1", "tap3f2a9c1b-7d"));
        assert!(
            !is_local_interface(&s, "h1", "tap0000000-00"),
            "another host's"
        );
        assert!(!is_local_interface(&s, "h1", "tap-unknown"));
        assert!(!is_local_interface(&s, "h1", "eth0"));
        assert!(!is_local_interface(&s, "h1", &endpoint_ifname("pod-2")));
    }

    #[test]
    fn different_ids_give_different_names() {
        let names: std::collections::BTreeSet<String> = (0..10_000)
            .map(|i| endpoint_ifname(&format!("container-{i}:eth0")))
            .collect();
        assert_eq!(names.len(), 10_000);
    }
}
