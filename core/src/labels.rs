//! Labels and named ports, checked as Kubernetes checks them, so that whatever is stored can
//! be selected by a NetworkPolicy and round-trips through CNI_ARGS (`k1=v1,k2=v2`):
//!
//! - a **key** is a qualified name: an optional prefix (a lowercase DNS subdomain of at most
//!   253 characters) and `/`, then a name of at most 63 characters of `[A-Za-z0-9-_.]`,
//!   starting and ending alphanumeric (`app`, `app.kubernetes.io/name`);
//! - a **value** is empty or what a key's name part may be (so never `,`, `=`, spaces or
//!   control characters);
//! - at most [`MAX_LABELS`] labels per object;
//! - a **named port** name is an IANA service name as Kubernetes checks container port
//!   names (at most 15 lowercase letters, digits and `-`, at least one letter, no leading,
//!   trailing or double `-`), at most [`MAX_PORTS`] per endpoint, each name once.
//!
//! With these bounds an endpoint or tenant record stays a few tens of kilobytes, far below
//! etcd's request limit (1.5 MiB by default).

use std::collections::BTreeMap;

use crate::model::NamedPort;
use crate::policy::field;
use crate::text::quote;

/// Most labels one tenant or endpoint may carry.
pub const MAX_LABELS: usize = 64;

/// Most named ports one endpoint may carry.
pub const MAX_PORTS: usize = 64;

/// Longest label key: a 253-character prefix, `/`, a 63-character name.
pub const MAX_LABEL_KEY_LEN: usize = 253 + 1 + 63;

/// Why labels or named ports were refused. Keys, values and names are quoted and bounded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("{count} labels; at most {MAX_LABELS} are allowed on one object")]
    TooManyLabels { count: usize },
    #[error("label key {key}: {reason}")]
    Key { key: String, reason: String },
    #[error("label {key}: value {value} {reason}")]
    Value {
        key: String,
        value: String,
        reason: String,
    },
    #[error("{count} named ports; at most {MAX_PORTS} are allowed on one endpoint")]
    TooManyPorts { count: usize },
    #[error("named port {name}: {reason}")]
    PortName { name: String, reason: String },
    #[error("named port {name} appears twice")]
    DuplicatePort { name: String },
    #[error("{text}: {reason}")]
    PortSpec { text: String, reason: String },
}

const NAME_PART: &str = "at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric";

/// Checks a label set (a tenant's or an endpoint's, or the labels a request sets).
pub fn validate_labels<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), LabelError> {
    let mut count = 0;
    for (key, value) in labels {
        count += 1;
        if count > MAX_LABELS {
            // Counting the rest is cheap; checking it is not needed.
            continue;
        }
        validate_label_key(key)?;
        validate_label_value(key, value)?;
    }
    if count > MAX_LABELS {
        return Err(LabelError::TooManyLabels { count });
    }
    Ok(())
}

/// The first of `wanted` (key, value) pairs that `labels` does not carry: `None` when all are
/// there (an equality selector, as ListEndpoints' `labels` filter and Release's `if_labels`).
pub fn first_missing<'a, I>(
    labels: &BTreeMap<String, String>,
    wanted: I,
) -> Option<(&'a str, &'a str)>
where
    I: IntoIterator<Item = (&'a String, &'a String)>,
{
    wanted
        .into_iter()
        .find(|(k, v)| labels.get(*k) != Some(*v))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Checks one label key (also for keys a request removes, so a removal cannot name what could
/// never have been stored).
pub fn validate_label_key(key: &str) -> Result<(), LabelError> {
    let err = |reason: String| LabelError::Key {
        key: quote(key),
        reason,
    };
    if key.is_empty() {
        return Err(err("must not be empty".into()));
    }
    if key.len() > MAX_LABEL_KEY_LEN {
        return Err(err(format!(
            "is {} bytes; at most {MAX_LABEL_KEY_LEN} (a DNS-subdomain prefix <= 253, '/', a name <= 63)",
            key.len()
        )));
    }
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() || !field::dns1123_subdomain(prefix).is_empty() {
            return Err(err(
                "the prefix before '/' must be a lowercase DNS subdomain (e.g. example.com/app)"
                    .into(),
            ));
        }
    }
    if !field::label_value(name).is_empty() || name.is_empty() {
        return Err(err(format!("the name must be {NAME_PART}")));
    }
    Ok(())
}

fn validate_label_value(key: &str, value: &str) -> Result<(), LabelError> {
    if field::label_value(value).is_empty() {
        return Ok(());
    }
    let mut reason = format!("must be empty or {NAME_PART}");
    if value.contains([',', '=']) {
        reason.push_str(" (',' and '=' cannot round-trip through CNI_ARGS)");
    }
    Err(LabelError::Value {
        key: quote(key),
        value: quote(value),
        reason,
    })
}

/// Parses a named port as operators and runtimes write it, `NAME=PROTO/NUMBER`
/// (`http=tcp/8080`), for romanactl's `--port` and the CNI plugin's `ROMANA_PORTS`. Only the
/// shape is checked here; the name's rules are [`validate_ports`]'.
pub fn parse_named_port(text: &str) -> Result<NamedPort, LabelError> {
    let fail = |reason: String| LabelError::PortSpec {
        text: quote(text),
        reason,
    };
    let shape = || fail("is not NAME=PROTO/NUMBER (e.g. http=tcp/80)".to_string());
    let (name, rest) = text.split_once('=').ok_or_else(shape)?;
    let (protocol, number) = rest.split_once('/').ok_or_else(shape)?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(shape());
    }
    let protocol = protocol.to_ascii_lowercase();
    if !matches!(protocol.as_str(), "tcp" | "udp" | "sctp") {
        return Err(fail(format!(
            "protocol {} is not tcp, udp or sctp",
            quote(&protocol)
        )));
    }
    let port = number
        .parse::<u16>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            fail(format!(
                "port {} is not a number in 1..=65535",
                quote(number)
            ))
        })?;
    Ok(NamedPort {
        name: name.to_string(),
        protocol,
        port,
    })
}

/// Checks an endpoint's named ports: names, count, and each name once.
pub fn validate_ports(ports: &[NamedPort]) -> Result<(), LabelError> {
    if ports.len() > MAX_PORTS {
        return Err(LabelError::TooManyPorts { count: ports.len() });
    }
    let mut seen = BTreeMap::new();
    for p in ports {
        validate_port_name(&p.name)?;
        if seen.insert(p.name.as_str(), ()).is_some() {
            return Err(LabelError::DuplicatePort {
                name: quote(&p.name),
            });
        }
    }
    Ok(())
}

/// An IANA service name as Kubernetes checks container port names.
pub fn validate_port_name(name: &str) -> Result<(), LabelError> {
    let errs = if name.is_empty() {
        vec!["must not be empty".to_string()]
    } else {
        field::port_name(name)
    };
    if errs.is_empty() {
        return Ok(());
    }
    Err(LabelError::PortName {
        name: quote(name),
        reason: errs.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn named_ports_parse_from_name_proto_number() {
        let http = parse_named_port("http=TCP/8080").unwrap();
        assert_eq!(
            (http.name.as_str(), http.protocol.as_str(), http.port),
            ("http", "tcp", 8080)
        );
        for (bad, why) in [
            ("http", "NAME=PROTO/NUMBER"),
            ("http=80", "NAME=PROTO/NUMBER"),
            ("=tcp/80", "NAME=PROTO/NUMBER"),
            ("a b=tcp/80", "NAME=PROTO/NUMBER"),
            ("ping=icmp/1", "not tcp, udp or sctp"),
            ("http=tcp/0", "1..=65535"),
            ("http=tcp/65536", "1..=65535"),
            ("http=tcp/eighty", "1..=65535"),
        ] {
            let err = parse_named_port(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn first_missing_names_the_first_pair_not_carried() {
        let have = labels(&[("a", "1"), ("b", "2")]);
        assert_eq!(first_missing(&have, &labels(&[])), None);
        assert_eq!(
            first_missing(&have, &labels(&[("a", "1"), ("b", "2")])),
            None
        );
        assert_eq!(
            first_missing(&have, &labels(&[("a", "1"), ("b", "3")])),
            Some(("b", "3"))
        );
        assert_eq!(
            first_missing(&have, &labels(&[("c", "1")])),
            Some(("c", "1"))
        );
        assert_eq!(
            first_missing(&BTreeMap::new(), &labels(&[("a", "1")])),
            Some(("a", "1"))
        );
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn check(pairs: &[(&str, &str)]) -> Result<(), LabelError> {
        validate_labels(&labels(pairs))
    }

    #[test]
    fn kubernetes_labels_are_accepted() {
        let ok = [
            ("app", "web"),
            ("app.kubernetes.io/name", "My_value.1"),
            ("kubernetes.io/metadata.name", "t1"),
            (
                "neutron.openstack.org/port-id",
                "0b9a8d4e-3c4f-4f5a-9d7e-2b1c0a9f8e7d",
            ),
            ("empty", ""),
            ("Tier", "Front"),
        ];
        assert_eq!(check(&ok), Ok(()));
    }

    #[test]
    fn what_kubernetes_refuses_is_refused() {
        let long = "x".repeat(64);
        let bad_keys = [
            "",
            "/x",
            "a b",
            "a=b",
            "a,b",
            "EXAMPLE.com/x",
            "a/b/c",
            "-a",
            &long,
        ];
        for k in bad_keys {
            assert!(
                matches!(check(&[(k, "v")]), Err(LabelError::Key { .. })),
                "{k:?}"
            );
        }
        let bad_values = [
            "a b",
            "a,b",
            "a=b",
            "x\0",
            "x\u{1b}",
            "bell\u{7}",
            "-a",
            &long,
        ];
        for v in bad_values {
            assert!(
                matches!(check(&[("k", v)]), Err(LabelError::Value { .. })),
                "{v:?}"
            );
        }
        let comma = check(&[("k", "a,b")]).unwrap_err().to_string();
        assert!(
            comma.contains("cannot round-trip through CNI_ARGS"),
            "{comma}"
        );
    }

    #[test]
    fn label_count_is_bounded() {
        let many: BTreeMap<String, String> = (0..10_000)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(
            validate_labels(&many),
            Err(LabelError::TooManyLabels { count: 10_000 })
        );
        let max: BTreeMap<String, String> = (0..MAX_LABELS)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert_eq!(validate_labels(&max), Ok(()));
    }

    fn port(name: &str) -> NamedPort {
        NamedPort {
            name: name.into(),
            protocol: "tcp".into(),
            port: 80,
        }
    }

    #[test]
    fn named_ports_are_iana_service_names_once_each() {
        assert_eq!(validate_ports(&[port("http"), port("dns-tcp")]), Ok(()));
        for bad in [
            "",
            "80",
            "HTTP",
            "a--b",
            "-a",
            "a-",
            "http-metrics-long",
            "a_b",
        ] {
            assert!(validate_ports(&[port(bad)]).is_err(), "{bad:?}");
        }
        assert_eq!(
            validate_ports(&[port("http"), port("http")]),
            Err(LabelError::DuplicatePort {
                name: "\"http\"".into()
            })
        );
        let many: Vec<NamedPort> = (0..65).map(|i| port(&format!("p{i}"))).collect();
        assert_eq!(
            validate_ports(&many),
            Err(LabelError::TooManyPorts { count: 65 })
        );
    }

    #[test]
    fn a_megabyte_is_refused_with_a_short_message() {
        let mb = "v".repeat(1 << 20);
        for result in [
            check(&[("k", mb.as_str())]),
            check(&[(mb.as_str(), "v")]),
            validate_ports(&[port(&mb)]),
        ] {
            let msg = result.unwrap_err().to_string();
            assert!(msg.len() < 300, "{} bytes: {msg}", msg.len());
        }
    }

    proptest! {
        #[test]
        fn accepted_labels_round_trip_through_cni_args(
            k in "\\PC{0,80}", v in "\\PC{0,80}"
        ) {
            let l = labels(&[(&k, &v)]);
            match validate_labels(&l) {
                Ok(()) => {
                    let text = format!("{k}={v}");
                    let (k2, v2) = text.split_once('=').unwrap();
                    prop_assert_eq!((k2, v2), (k.as_str(), v.as_str()));
                    prop_assert!(!text.contains([',', ';', ' ']));
                }
                Err(e) => prop_assert!(e.to_string().len() < 300, "{}", e),
            }
        }
    }
}
