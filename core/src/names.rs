//! Name rules. Names become etcd key segments, CNI_ARGS values and Kubernetes namespace
//! labels, so they are checked before anything is read or written:
//!
//! - **hosts**: a lowercase RFC 1123 subdomain of at most 253 characters, as Kubernetes node
//!   names (`node-1.rack2`);
//! - **tenants and segments**: a lowercase RFC 1123 label of at most 63 characters, as
//!   Kubernetes namespaces (`kube-system`), so `T1` cannot sit beside `t1`;
//! - **endpoint ids and references** ([`validate_name`]): at most 253 characters of letters,
//!   digits, `-`, `_`, `.` and `:` (a container id plus an interface name, a Neutron port id),
//!   the rule every key segment obeys. Lookups of existing records use it too, so that a
//!   malformed or 1 MB name is refused before etcd is asked.
//!
//! Messages quote at most a short prefix of the name ([`crate::text::quote`]).

use crate::text::quote;

/// Longest endpoint id or host name: a DNS name, or a container id plus an interface name.
pub const MAX_NAME_LEN: usize = 253;

/// Longest tenant or segment name (an RFC 1123 label, as a Kubernetes namespace).
pub const MAX_LABEL_NAME_LEN: usize = 63;

/// A name that cannot be used as a host, tenant, segment or endpoint name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{kind} name must not be empty")]
    Empty { kind: &'static str },
    #[error("{kind} name is {len} characters long; the maximum is {max}")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    /// `name` is already quoted and bounded.
    #[error("{kind} name {name} contains {bad:?}; use {allowed}")]
    BadCharacter {
        kind: &'static str,
        name: String,
        bad: char,
        allowed: &'static str,
    },
    /// `name` and `lower` are already quoted and bounded.
    #[error(
        "{kind} name {name} has upper case letters; names are lowercase (DNS-label style, as \
         Kubernetes namespaces): use {lower}"
    )]
    Uppercase {
        kind: &'static str,
        name: String,
        lower: String,
    },
    /// `name` is already quoted and bounded.
    #[error("{kind} name {name} must start and end with a letter or digit{dots}")]
    BadShape {
        kind: &'static str,
        name: String,
        dots: &'static str,
    },
}

const KEY_CHARS: &str = "letters, digits, '-', '_', '.' or ':'";
const LABEL_CHARS: &str = "lowercase letters, digits or '-'";
const SUBDOMAIN_CHARS: &str = "lowercase letters, digits, '-' or '.'";

/// An endpoint id, or any name used to look a record up: non-empty, at most
/// [`MAX_NAME_LEN`] characters of letters, digits, `-`, `_`, `.` and `:`. `/` and whitespace,
/// which would break keys, are refused.
pub fn validate_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    check_length(kind, name, MAX_NAME_LEN)?;
    check_chars(kind, name, KEY_CHARS, |c| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
    })
}

/// A new host's name: a lowercase RFC 1123 subdomain (dot-separated labels), at most
/// [`MAX_NAME_LEN`] characters, as Kubernetes node names.
pub fn validate_host_name(name: &str) -> Result<(), NameError> {
    validate_subdomain_name("host", name)
}

/// A lowercase RFC 1123 subdomain of at most [`MAX_NAME_LEN`] characters (host names, pod
/// names), with `kind` naming it in messages.
pub(crate) fn validate_subdomain_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    check_length(kind, name, MAX_NAME_LEN)?;
    check_case(kind, name)?;
    check_chars(kind, name, SUBDOMAIN_CHARS, |c| {
        is_lower_alnum(c) || matches!(c, '-' | '.')
    })?;
    if name.split('.').all(is_label_shape) {
        Ok(())
    } else {
        Err(NameError::BadShape {
            kind,
            name: quote(name),
            dots: ", and so must every part between dots",
        })
    }
}

/// A new tenant's name: a lowercase RFC 1123 label of at most 63 characters, as a Kubernetes
/// namespace.
pub fn validate_tenant_name(name: &str) -> Result<(), NameError> {
    validate_label_name("tenant", name)
}

/// A new segment's name: the rule of tenant names.
pub fn validate_segment_name(name: &str) -> Result<(), NameError> {
    validate_label_name("segment", name)
}

/// A lowercase RFC 1123 label of at most [`MAX_LABEL_NAME_LEN`] characters (tenants,
/// segments, Kubernetes namespaces), with `kind` naming it in messages.
pub(crate) fn validate_label_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    check_length(kind, name, MAX_LABEL_NAME_LEN)?;
    check_case(kind, name)?;
    check_chars(kind, name, LABEL_CHARS, |c| is_lower_alnum(c) || c == '-')?;
    if is_label_shape(name) {
        Ok(())
    } else {
        Err(NameError::BadShape {
            kind,
            name: quote(name),
            dots: "",
        })
    }
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_label_shape(part: &str) -> bool {
    part.len() <= MAX_LABEL_NAME_LEN
        && part.starts_with(is_lower_alnum)
        && part.ends_with(is_lower_alnum)
}

fn check_length(kind: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { kind });
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            kind,
            len: name.len(),
            max,
        });
    }
    Ok(())
}

/// Upper case in an otherwise good name gets its own message, with the lowercase spelling.
fn check_case(kind: &'static str, name: &str) -> Result<(), NameError> {
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(NameError::Uppercase {
            kind,
            name: quote(name),
            lower: quote(&name.to_ascii_lowercase()),
        });
    }
    Ok(())
}

fn check_chars(
    kind: &'static str,
    name: &str,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    match name.chars().find(|&c| !ok(c)) {
        None => Ok(()),
        Some(bad) => Err(NameError::BadCharacter {
            kind,
            name: quote(name),
            bad,
            allowed,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn usual_ids_are_accepted() {
        for name in [
            "h1",
            "kube-system",
            "a1b2c3d4-e5f6",
            "0123abcd:eth0",
            "rack.1_x",
            "Pod-1",
        ] {
            assert_eq!(validate_name("endpoint", name), Ok(()), "{name}");
        }
    }

    #[test]
    fn ids_that_would_break_keys_are_refused() {
        assert_eq!(
            validate_name("tenant", ""),
            Err(NameError::Empty { kind: "tenant" })
        );
        assert_eq!(
            validate_name("tenant", "a/b").unwrap_err().to_string(),
            "tenant name \"a/b\" contains '/'; use letters, digits, '-', '_', '.' or ':'"
        );
        assert!(matches!(
            validate_name("host", &"x".repeat(254)),
            Err(NameError::TooLong { len: 254, .. })
        ));
    }

    #[test]
    fn tenants_and_segments_are_lowercase_dns_labels() {
        for name in [
            "t1",
            "kube-system",
            "default",
            "a",
            "0",
            "3f2a9c1e0b7d4e8f9a6b5c4d3e2f1a0b",
        ] {
            assert_eq!(validate_tenant_name(name), Ok(()), "{name}");
            assert_eq!(validate_segment_name(name), Ok(()), "{name}");
        }
        let upper = validate_tenant_name("T1").unwrap_err().to_string();
        assert!(upper.contains("names are lowercase"), "{upper}");
        assert!(upper.contains("use \"t1\""), "{upper}");
        let space = validate_tenant_name("bad name").unwrap_err().to_string();
        assert!(space.contains("contains ' '"), "{space}");
        for bad in ["-a", "a-", "a.b", "a_b", "a:b", &"a".repeat(64)] {
            assert!(validate_segment_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_are_lowercase_dns_subdomains() {
        for name in ["h1", "node-1.rack2", "compute-01", "r0h2"] {
            assert_eq!(validate_host_name(name), Ok(()), "{name}");
        }
        for bad in ["H1", "a..b", ".a", "a.", "a_b", "a/b", "a b", "-a.b"] {
            assert!(validate_host_name(bad).is_err(), "{bad}");
        }
        assert!(validate_host_name(&format!("{}.b", "a".repeat(64))).is_err());
    }

    proptest! {
        #[test]
        fn any_refusal_message_is_short(s in "\\PC{0,300}|[A-Za-z0-9._:/ -]{0,1000}") {
            for result in [
                validate_name("endpoint", &s),
                validate_host_name(&s),
                validate_tenant_name(&s),
                validate_segment_name(&s),
            ] {
                if let Err(e) = result {
                    prop_assert!(e.to_string().len() < 300, "{}", e);
                }
            }
        }

        #[test]
        fn a_valid_tenant_name_is_a_valid_key(s in "[a-z0-9-]{1,63}") {
            if validate_tenant_name(&s).is_ok() {
                prop_assert!(validate_name("tenant", &s).is_ok());
                prop_assert!(validate_host_name(&s).is_ok());
            }
        }
    }
}
