//! Field errors worded as the Kubernetes API server words them
//! (`spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer`), and
//! the name rules both policy forms share. Kubernetes users read these messages every day, so
//! Romana-form errors use the same shape with their own paths (`rules[1].ports[0]`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What is wrong with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FieldErrorKind {
    /// `Required value`.
    Required,
    /// `Invalid value: <value>`; the value as the API server prints it (strings quoted).
    Invalid { value: String },
    /// `Forbidden`.
    Forbidden,
    /// `Unsupported value: <value>: supported values: ...`.
    NotSupported {
        value: String,
        supported: Vec<String>,
    },
    /// `Duplicate value: <value>`.
    Duplicate { value: String },
}

/// One invalid field: its path from the object's root, what is wrong and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub path: String,
    pub kind: FieldErrorKind,
    pub detail: String,
}

// === impl FieldError ===

impl FieldError {
    pub fn required(path: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::Required,
            detail: detail.into(),
        }
    }

    /// An invalid string value (printed quoted).
    pub fn invalid(path: impl Into<String>, value: &str, detail: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::Invalid {
                value: crate::text::quote(value),
            },
            detail: detail.into(),
        }
    }

    /// An invalid number (printed bare).
    pub fn invalid_number(
        path: impl Into<String>,
        value: i64,
        detail: impl Into<String>,
    ) -> FieldError {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::Invalid {
                value: value.to_string(),
            },
            detail: detail.into(),
        }
    }

    pub fn forbidden(path: impl Into<String>, detail: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::Forbidden,
            detail: detail.into(),
        }
    }

    pub fn not_supported(path: impl Into<String>, value: &str, supported: &[&str]) -> FieldError {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::NotSupported {
                value: crate::text::quote(value),
                supported: supported.iter().map(|s| format!("{s:?}")).collect(),
            },
            detail: String::new(),
        }
    }

    pub fn duplicate(path: impl Into<String>, value: &str) -> FieldError {
        FieldError {
            path: path.into(),
            kind: FieldErrorKind::Duplicate {
                value: crate::text::quote(value),
            },
            detail: String::new(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &self.kind {
            FieldErrorKind::Required => f.write_str("Required value")?,
            FieldErrorKind::Invalid { value } => write!(f, "Invalid value: {value}")?,
            FieldErrorKind::Forbidden => f.write_str("Forbidden")?,
            FieldErrorKind::NotSupported { value, supported } => write!(
                f,
                "Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            )?,
            FieldErrorKind::Duplicate { value } => write!(f, "Duplicate value: {value}")?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// `a.b` and `a[3]` path building.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const LABEL_VALUE_MAX: usize = 63;
const PORT_NAME_MAX: usize = 15;

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    let ok = !value.is_empty()
        && value.chars().all(|c| is_lower_alnum(c) || c == '-')
        && value.starts_with(is_lower_alnum)
        && value.ends_with(is_lower_alnum);
    if !ok {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
             '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or \
             '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
                .into(),
        );
    }
    errs
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let ok = !value.is_empty()
        && value.split('.').all(|part| {
            !part.is_empty()
                && part.chars().all(|c| is_lower_alnum(c) || c == '-')
                && part.starts_with(is_lower_alnum)
                && part.ends_with(is_lower_alnum)
        });
    if !ok {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character (e.g. \
             'example.com', regex used for validation is \
             '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                .into(),
        );
    }
    errs
}

fn is_name_part(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain, the name at most 63 characters
/// of alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn qualified_name(value: &str) -> Vec<String> {
    let (prefix, name) = match value.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    let mut errs = Vec::new();
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(prefix)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else if !is_name_part(name) {
        errs.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
             and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or \
             '123-abc', regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                .into(),
        );
    }
    errs
}

/// A label value: empty, or what a label name part may be.
pub fn label_value(value: &str) -> Vec<String> {
    if value.is_empty() || is_name_part(value) {
        return Vec::new();
    }
    if value.len() > LABEL_VALUE_MAX {
        return vec![format!("must be no more than {LABEL_VALUE_MAX} characters")];
    }
    vec![
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
         or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or \
         'my_value',  or '12345', regex used for validation is \
         '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
            .into(),
    ]
}

/// An IANA service name as Kubernetes checks container port names.
pub fn port_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > PORT_NAME_MAX {
        errs.push(format!("must be no more than {PORT_NAME_MAX} characters"));
    }
    if !value.chars().all(|c| is_lower_alnum(c) || c == '-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if value.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !value.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if value.starts_with('-') || value.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

pub(crate) const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_as_the_api_server_prints_them() {
        let cases = [
            (
                FieldError::forbidden(
                    "spec.ingress[0].from[0]",
                    "may not specify both ipBlock and another peer",
                ),
                "spec.ingress[0].from[0]: Forbidden: may not specify both ipBlock and another peer",
            ),
            (
                FieldError::required("spec.ingress[0].from[0]", "must specify a peer"),
                "spec.ingress[0].from[0]: Required value: must specify a peer",
            ),
            (
                FieldError::required("spec.egress[0].to[0].ipBlock.cidr", ""),
                "spec.egress[0].to[0].ipBlock.cidr: Required value",
            ),
            (
                FieldError::invalid_number(
                    "spec.ingress[0].ports[0].port",
                    0,
                    PORT_RANGE_MSG,
                ),
                "spec.ingress[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            ),
            (
                FieldError::not_supported(
                    "spec.ingress[0].ports[0].protocol",
                    "ICMP",
                    &["TCP", "UDP", "SCTP"],
                ),
                "spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\"",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn name_rules_follow_kubernetes() {
        assert!(dns1123_label("kube-system").is_empty());
        assert!(!dns1123_label("Kube").is_empty());
        assert!(!dns1123_label("-a").is_empty());
        assert!(dns1123_subdomain("allow.web-1").is_empty());
        assert!(!dns1123_subdomain("a..b").is_empty());
        assert!(qualified_name("app").is_empty());
        assert!(qualified_name("kubernetes.io/metadata.name").is_empty());
        assert!(!qualified_name("/x").is_empty());
        assert!(!qualified_name("a b").is_empty());
        assert!(label_value("").is_empty());
        assert!(label_value("My_value.1").is_empty());
        assert!(!label_value("bad value").is_empty());
        assert!(port_name("http").is_empty());
        assert!(port_name("h2c-x").is_empty());
        assert_eq!(
            port_name("80"),
            vec!["must contain at least one letter (a-z)".to_string()]
        );
        assert!(!port_name("a--b").is_empty());
        assert!(!port_name("http-metrics-long").is_empty());
        assert!(!port_name("HTTP").is_empty());
    }
}
