//! The `interface` of an allocation: the host-side interface a caller names (Nova's tap),
//! checked before anything is read from etcd, and part of what a retried allocation must
//! repeat. The name rule itself is `romana_core::interface`'s, which the agent applies
//! again to every record it reads.

use romana_core::text::quote;
use romana_core::{validate_interface, Endpoint};
use tonic::Status;

/// INVALID_ARGUMENT unless `name` is empty (the derived `rmn*` name) or a tap name.
pub fn check_interface(name: &str) -> Result<(), Status> {
    validate_interface(name).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A repeated allocation of `existing`'s id that names another interface: refused, like
/// any other difference from the first request, since the agent would wire the endpoint
/// to the interface the record names, not the one this caller expects.
pub fn conflict(existing: &Endpoint, interface: &str) -> Option<Status> {
    if existing.interface == interface {
        return None;
    }
    let name = |i: &str| {
        if i.is_empty() {
            "the interface derived from its id".to_string()
        } else {
            format!("interface {}", quote(i))
        }
    };
    Some(Status::already_exists(format!(
        "endpoint {} already holds {} with {}, not {}; release it first",
        existing.id,
        existing.address,
        name(&existing.interface),
        name(interface)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn mk_endpoint(interface: &str) -> Endpoint {
        Endpoint {
            id: "port-1".into(),
            address: "10.0.16.2".parse().unwrap(),
            host: "h1".into(),
            tenant: "t".into(),
            segment: "default".into(),
            labels: Default::default(),
            ports: Vec::new(),
            interface: interface.into(),
        }
    }

    #[test]
    fn taps_and_empty_pass_everything_else_is_invalid_argument() {
        assert!(check_interface("").is_ok());
        assert!(check_interface("tap3f2a9c1b-7d").is_ok());
        for bad in [
            "eth0",
            "rmncbf29ce48422",
            "tap0123456789abc",
            "tap x",
            "tap",
        ] {
            let status = check_interface(bad).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{bad}");
            assert!(status.message().contains("interface"), "{bad}");
        }
        let huge = check_interface(&"t".repeat(1 << 20)).unwrap_err();
        assert!(huge.message().len() < 200, "{}", huge.message());
    }

    #[test]
    fn a_retry_must_name_the_same_interface() {
        assert!(conflict(&mk_endpoint("tap0"), "tap0").is_none());
        assert!(conflict(&mk_endpoint(""), "").is_none());
        let other = conflict(&mk_endpoint("tap0"), "tap1").unwrap();
        assert_eq!(other.code(), Code::AlreadyExists);
        assert!(
            other.message().contains("\"tap0\"") && other.message().contains("\"tap1\""),
            "{}",
            other.message()
        );
        let derived = conflict(&mk_endpoint(""), "tap1").unwrap();
        assert!(
            derived.message().contains("derived from its id"),
            "{}",
            derived.message()
        );
    }
}
