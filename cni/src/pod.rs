//! The pod a Kubernetes runtime names in `CNI_ARGS`, recorded on the endpoint so that
//! `romanactl ipam list` shows pods by namespace/name.

use romana_core::{validate_pod, Pod};

use crate::env::{CniArgs, EnvError, ARG_POD_NAMESPACE};

/// The `CNI_ARGS` key with the pod's name.
pub const ARG_POD_NAME: &str = "K8S_POD_NAME";
/// The `CNI_ARGS` key with the pod's uid.
pub const ARG_POD_UID: &str = "K8S_POD_UID";
/// The `CNI_ARGS` key with the pod's infra (sandbox) container id.
pub const ARG_POD_INFRA_CONTAINER_ID: &str = "K8S_POD_INFRA_CONTAINER_ID";

impl CniArgs {
    /// The pod from `K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID` and
    /// `K8S_POD_INFRA_CONTAINER_ID`; none without `K8S_POD_NAME` (a namespace alone only
    /// names the tenant). A name without a namespace, ids without a name, or a pod that
    /// breaks Kubernetes' name rules is refused: a runtime that sets some of them and not
    /// the others is misconfigured, and a wrong pod on the record would mislead operators.
    pub fn pod(&self) -> Result<Option<Pod>, EnvError> {
        let Some(name) = self.get(ARG_POD_NAME) else {
            if let Some((key, value)) = [ARG_POD_UID, ARG_POD_INFRA_CONTAINER_ID]
                .into_iter()
                .find_map(|k| self.get(k).map(|v| (k, v)))
            {
                return Err(EnvError::Malformed {
                    var: "CNI_ARGS",
                    value: format!("{key}={value}"),
                    reason: format!("{key} names a pod, but {ARG_POD_NAME} is not set"),
                });
            }
            return Ok(None);
        };
        let Some(namespace) = self.get(ARG_POD_NAMESPACE) else {
            return Err(EnvError::Malformed {
                var: "CNI_ARGS",
                value: format!("{ARG_POD_NAME}={name}"),
                reason: format!("{ARG_POD_NAME} needs {ARG_POD_NAMESPACE} beside it"),
            });
        };
        let pod = Pod {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: self.get(ARG_POD_UID).unwrap_or_default().to_string(),
            infra_container_id: self
                .get(ARG_POD_INFRA_CONTAINER_ID)
                .unwrap_or_default()
                .to_string(),
        };
        validate_pod(&pod).map_err(|e| EnvError::Malformed {
            var: "CNI_ARGS",
            value: format!("{ARG_POD_NAMESPACE}={namespace};{ARG_POD_NAME}={name}"),
            reason: e.to_string(),
        })?;
        Ok(Some(pod))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubernetes_runtimes_args_name_the_pod() {
        let args = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=api-7d9f-x2;\
             K8S_POD_UID=5c3e0f6a-8d1b-4c2e-9a7f-0b1c2d3e4f50;K8S_POD_INFRA_CONTAINER_ID=3f2a9c",
        )
        .unwrap();
        let pod = args.pod().unwrap().unwrap();
        assert_eq!(pod.qualified_name(), "web/api-7d9f-x2");
        assert_eq!(pod.uid, "5c3e0f6a-8d1b-4c2e-9a7f-0b1c2d3e4f50");
        assert_eq!(pod.infra_container_id, "3f2a9c");
        let bare = CniArgs::parse("K8S_POD_NAMESPACE=web;K8S_POD_NAME=p").unwrap();
        assert_eq!(bare.pod().unwrap().unwrap().uid, "");
    }

    #[test]
    fn no_pod_name_no_pod() {
        for args in [
            "",
            "K8S_POD_NAMESPACE=web",
            "K8S_POD_NAME=",
            "ROMANA_SEGMENT=a",
        ] {
            let args = CniArgs::parse(args).unwrap();
            assert_eq!(args.pod().unwrap(), None, "{args:?}");
        }
    }

    #[test]
    fn half_a_pod_or_a_bad_one_is_refused() {
        for (args, expected) in [
            ("K8S_POD_NAME=p", "needs K8S_POD_NAMESPACE"),
            (
                "K8S_POD_NAMESPACE=web;K8S_POD_UID=u",
                "K8S_POD_NAME is not set",
            ),
            ("K8S_POD_INFRA_CONTAINER_ID=c", "K8S_POD_NAME is not set"),
            ("K8S_POD_NAMESPACE=Web;K8S_POD_NAME=p", "upper case"),
            (
                "K8S_POD_NAMESPACE=web;K8S_POD_NAME=p;K8S_POD_UID=a b",
                "pod uid",
            ),
        ] {
            let err = CniArgs::parse(args).unwrap().pod().unwrap_err().to_string();
            assert!(
                err.contains(expected) && err.contains("CNI_ARGS"),
                "{args}: {err}"
            );
        }
    }
}
