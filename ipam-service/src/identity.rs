//! What a caller names of an endpoint besides its place: the host-side interface (Nova's
//! tap) and the Kubernetes pod. Both are checked before anything is read from etcd, and both
//! are part of what a retried allocation must repeat. The rules themselves are
//! `romana_core::interface`'s and `romana_core::pod`'s; the agent applies the interface rule
//! again to every record it reads.

use romana_core::text::quote;
use romana_core::{validate_interface, Endpoint, Pod};
use romana_proto::pb;
use romana_runtime::invalid;
use tonic::Status;

/// INVALID_ARGUMENT unless `name` is empty (the derived `rmn*` name) or a tap name.
pub fn check_interface(name: &str) -> Result<(), Status> {
    validate_interface(name).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// The request's pod, checked; INVALID_ARGUMENT naming the field that breaks the rules.
pub fn check_pod(pod: Option<&pb::Pod>) -> Result<Option<Pod>, Status> {
    pod.map(Pod::try_from).transpose().map_err(invalid)
}

/// A repeated allocation of `existing`'s id that names another interface or pod: refused,
/// like any other difference from the first request, since the agent would wire the
/// endpoint to the interface the record names, and operators would see another pod than
/// the one that holds the address.
pub fn conflict(existing: &Endpoint, interface: &str, pod: Option<&Pod>) -> Option<Status> {
    if existing.interface != interface {
        let name = |i: &str| {
            if i.is_empty() {
                "the interface derived from its id".to_string()
            } else {
                format!("interface {}", quote(i))
            }
        };
        return Some(Status::already_exists(format!(
            "endpoint {} already holds {} with {}, not {}; release it first",
            existing.id,
            existing.address,
            name(&existing.interface),
            name(interface)
        )));
    }
    if existing.pod.as_ref() != pod {
        let name = |p: Option<&Pod>| match p {
            None => "no pod".to_string(),
            Some(p) => format!("pod {}", quote(&p.qualified_name())),
        };
        return Some(Status::already_exists(format!(
            "endpoint {} already holds {} for {}, not {}; release it first",
            existing.id,
            existing.address,
            name(existing.pod.as_ref()),
            name(pod)
        )));
    }
    None
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
            pod: None,
            second_address: None,
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
        assert!(conflict(&mk_endpoint("tap0"), "tap0", None).is_none());
        assert!(conflict(&mk_endpoint(""), "", None).is_none());
        let other = conflict(&mk_endpoint("tap0"), "tap1", None).unwrap();
        assert_eq!(other.code(), Code::AlreadyExists);
        assert!(
            other.message().contains("\"tap0\"") && other.message().contains("\"tap1\""),
            "{}",
            other.message()
        );
        let derived = conflict(&mk_endpoint(""), "tap1", None).unwrap();
        assert!(
            derived.message().contains("derived from its id"),
            "{}",
            derived.message()
        );
    }

    fn mk_pod(name: &str) -> Pod {
        Pod {
            namespace: "web".into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_malformed_pod_is_invalid_argument_and_none_is_fine() {
        assert_eq!(check_pod(None).unwrap(), None);
        let good = pb::Pod {
            namespace: "web".into(),
            name: "p-1".into(),
            uid: "5c3e0f6a-8d1b".into(),
            infra_container_id: String::new(),
        };
        assert_eq!(check_pod(Some(&good)).unwrap().unwrap().name, "p-1");
        let bad = pb::Pod {
            name: "x".repeat(1 << 20),
            ..good
        };
        let status = check_pod(Some(&bad)).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("pod"), "{}", status.message());
        assert!(status.message().len() < 200, "{}", status.message());
    }

    #[test]
    fn a_retry_must_name_the_same_pod() {
        let mut held = mk_endpoint("");
        held.pod = Some(mk_pod("p-1"));
        assert!(conflict(&held, "", Some(&mk_pod("p-1"))).is_none());
        let other = conflict(&held, "", Some(&mk_pod("p-2"))).unwrap();
        assert_eq!(other.code(), Code::AlreadyExists);
        assert!(
            other.message().contains("\"web/p-1\"") && other.message().contains("\"web/p-2\""),
            "{}",
            other.message()
        );
        let none = conflict(&held, "", None).unwrap();
        assert!(none.message().contains("not no pod"), "{}", none.message());
        assert!(conflict(&mk_endpoint(""), "", Some(&mk_pod("p-1"))).is_some());
    }
}
