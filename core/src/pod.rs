//! The Kubernetes pod an endpoint belongs to, as container runtimes name it to CNI plugins
//! (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`, `K8S_POD_INFRA_CONTAINER_ID`), so
//! that operators find pods by namespace/name. Recorded for people, not for policy: policy
//! selects endpoints by labels, as Kubernetes does.
//!
//! Namespace and name follow Kubernetes' own rules (an RFC 1123 label; an RFC 1123
//! subdomain); the uid and the infra container id are opaque ids of bounded, key-safe
//! characters, and may be absent.

use serde::{Deserialize, Serialize};

use crate::names::{validate_label_name, validate_subdomain_name, NameError};
use crate::text::quote;

/// Longest pod uid or infra container id: a UUID is 36 characters, a container id 64.
pub const MAX_POD_ID_LEN: usize = 128;

const ID_CHARS: &str = "letters, digits, '-', '_' or '.'";

/// A Kubernetes pod, as its runtime names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub infra_container_id: String,
}

/// A pod that cannot be recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("pod {field} is {len} characters long; the maximum is {max}")]
    IdTooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    /// `value` is already quoted and bounded.
    #[error("pod {field} {value} contains {bad:?}; use {allowed}")]
    IdBadCharacter {
        field: &'static str,
        value: String,
        bad: char,
        allowed: &'static str,
    },
}

impl Pod {
    /// `namespace/name`, as kubectl shows a pod.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Checks every field: a namespace and a name are required, the ids are optional.
pub fn validate_pod(pod: &Pod) -> Result<(), PodError> {
    validate_label_name("pod namespace", &pod.namespace)?;
    validate_subdomain_name("pod", &pod.name)?;
    check_id("uid", &pod.uid)?;
    check_id("infra container id", &pod.infra_container_id)
}

fn check_id(field: &'static str, value: &str) -> Result<(), PodError> {
    if value.len() > MAX_POD_ID_LEN {
        return Err(PodError::IdTooLong {
            field,
            len: value.len(),
            max: MAX_POD_ID_LEN,
        });
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    match value.chars().find(|&c| !ok(c)) {
        None => Ok(()),
        Some(bad) => Err(PodError::IdBadCharacter {
            field,
            value: quote(value),
            bad,
            allowed: ID_CHARS,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_pod(namespace: &str, name: &str) -> Pod {
        Pod {
            namespace: namespace.into(),
            name: name.into(),
            uid: "5c3e0f6a-8d1b-4c2e-9a7f-0b1c2d3e4f50".into(),
            infra_container_id: "3f2a9c1b7d".repeat(6) + "abcd",
        }
    }

    #[test]
    fn a_runtimes_pod_is_valid_and_shows_as_namespace_slash_name() {
        let pod = mk_pod("kube-system", "coredns-5d78c9869d-abcde");
        assert_eq!(validate_pod(&pod), Ok(()));
        assert_eq!(pod.qualified_name(), "kube-system/coredns-5d78c9869d-abcde");
        let bare = Pod {
            uid: String::new(),
            infra_container_id: String::new(),
            ..pod
        };
        assert_eq!(validate_pod(&bare), Ok(()), "the ids are optional");
    }

    #[test]
    fn bad_pods_are_refused_naming_the_field() {
        let long_id = "a".repeat(MAX_POD_ID_LEN + 1);
        let cases: Vec<(Pod, &str)> = vec![
            (mk_pod("", "p"), "pod namespace name must not be empty"),
            (mk_pod("web", ""), "pod name must not be empty"),
            (mk_pod("Web", "p"), "upper case"),
            (mk_pod("web.a", "p"), "pod namespace name"),
            (mk_pod("web", "p_1"), "pod name"),
            (mk_pod("web", &"p".repeat(254)), "maximum is 253"),
            (
                Pod {
                    uid: "x y".into(),
                    ..mk_pod("web", "p")
                },
                "pod uid \"x y\" contains ' '",
            ),
            (
                Pod {
                    infra_container_id: long_id,
                    ..mk_pod("web", "p")
                },
                "pod infra container id is 129 characters long",
            ),
        ];
        for (pod, expected) in cases {
            let err = validate_pod(&pod).unwrap_err().to_string();
            assert!(err.contains(expected), "{pod:?}: {err}");
        }
    }

    #[test]
    fn a_record_without_ids_omits_them_and_reads_back() {
        let pod = Pod {
            namespace: "web".into(),
            name: "p-1".into(),
            ..Default::default()
        };
        let json = serde_json::to_string(&pod).unwrap();
        assert_eq!(json, r#"{"namespace":"web","name":"p-1"}"#);
        assert_eq!(serde_json::from_str::<Pod>(&json).unwrap(), pod);
    }
}
