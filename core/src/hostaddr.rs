//! A host's fabric address: other hosts route the host's prefix via it, so it must be a
//! unicast address of one machine. Refused: unspecified (`0.0.0.0`, `::`), multicast
//! (`224.0.0.0/4`, `ff00::/8`) and the IPv4 limited broadcast `255.255.255.255`, also when
//! written as IPv4-mapped IPv6. Loopback (`127.0.0.0/8`, `::1`) is accepted: single-machine
//! labs and the Neutron driver's tests register hosts on loopback addresses.

use std::net::{IpAddr, Ipv4Addr};

/// Why an address cannot be a host's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is {what}; a host address must be the unicast address of one machine")]
pub struct HostAddrError {
    pub ip: IpAddr,
    pub what: &'static str,
}

/// Checks that `ip` can be a host's address.
pub fn validate_host_ip(ip: IpAddr) -> Result<(), HostAddrError> {
    let what = match ip {
        IpAddr::V4(v4) => v4_problem(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_problem(v4),
            None if v6.is_unspecified() => Some("the unspecified address"),
            None if v6.is_multicast() => Some("a multicast address"),
            None => None,
        },
    };
    match what {
        Some(what) => Err(HostAddrError { ip, what }),
        None => Ok(()),
    }
}

fn v4_problem(v4: Ipv4Addr) -> Option<&'static str> {
    if v4.is_unspecified() {
        Some("the unspecified address")
    } else if v4.is_multicast() {
        Some("a multicast address")
    } else if v4.is_broadcast() {
        Some("the broadcast address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicast_and_loopback_are_accepted() {
        for ip in [
            "192.168.0.11",
            "10.0.16.9",
            "127.0.1.1",
            "fd00::11",
            "::1",
            "2001:db8::1",
        ] {
            assert_eq!(validate_host_ip(ip.parse().unwrap()), Ok(()), "{ip}");
        }
    }

    #[test]
    fn unspecified_multicast_and_broadcast_are_refused() {
        for ip in [
            "0.0.0.0",
            "224.0.0.1",
            "239.1.2.3",
            "255.255.255.255",
            "::",
            "ff02::1",
            "::ffff:224.0.0.1",
            "::ffff:0.0.0.0",
        ] {
            let err = validate_host_ip(ip.parse().unwrap()).unwrap_err();
            assert!(err.to_string().contains("unicast"), "{err}");
        }
    }
}
