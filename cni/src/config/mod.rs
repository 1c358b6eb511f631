//! The network configuration on stdin: parsed, checked against the CNI versions this plugin
//! speaks, and resolved with `CNI_ARGS` into where the endpoint goes.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "romana", "type": "romana-cni",
//!  "root": "http://127.0.0.1:9600", "host": "h1", "tenant": "t1", "segment": "s1"}
//! ```
//! Unknown keys are ignored: runtimes add their own (`runtimeConfig`, `capabilities`, ...).

use std::collections::BTreeSet;
use std::io;

use romana_core::names::{validate_host_name, validate_segment_name, validate_tenant_name};
use romana_core::text::{cut, quote};
use romana_core::NameError;
use serde::Deserialize;

use crate::env::{CniArgs, ARG_POD_NAMESPACE, ARG_SEGMENT};

mod version;

pub use version::{reported_version, version_at_least, LATEST_VERSION, SUPPORTED_VERSIONS};

/// A network config that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON, or a key has the wrong type: CNI code 6.
    #[error("cannot decode the network configuration: {reason}")]
    Decode { reason: String },
    /// CNI code 1.
    #[error(
        "cniVersion {} is not supported; romana-cni supports {}",
        quote(.version),
        SUPPORTED_VERSIONS.join(", ")
    )]
    IncompatibleVersion { version: String },
    /// A field is missing or invalid: CNI code 4.
    #[error("network configuration field {field:?} {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    /// The default host name could not be read: CNI code 5.
    #[error("\"host\" is not set and the machine's hostname cannot be read: {reason}")]
    Hostname { reason: String },
}

/// One `cni.dev/valid-attachments` entry of a GC call.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

#[derive(Deserialize)]
struct RawNetConf {
    #[serde(rename = "cniVersion", default)]
    cni_version: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    root: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    segment: Option<String>,
    #[serde(rename = "tlsCA", default)]
    tls_ca: Option<std::path::PathBuf>,
    #[serde(rename = "tlsCert", default)]
    tls_cert: Option<std::path::PathBuf>,
    #[serde(rename = "tlsKey", default)]
    tls_key: Option<std::path::PathBuf>,
    #[serde(rename = "prevResult", default)]
    prev_result: Option<serde_json::Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    valid_attachments: Option<Vec<Attachment>>,
}

/// A parsed and validated network config.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    /// root-service's URL, or several separated by commas (tried in turn); every other
    /// service is found through it.
    pub root: String,
    host: Option<String>,
    tenant: Option<String>,
    segment: Option<String>,
    /// How to verify `https://` services (`tlsCA`) and, for mutual TLS, the plugin's own
    /// certificate and key (`tlsCert`, `tlsKey`): PEM file paths in the network config.
    pub tls: Option<romana_proto::discover::ClientTls>,
    /// The previous plugin's result when chained (and the cached ADD result on CHECK/DEL).
    pub prev_result: Option<serde_json::Value>,
    /// GC only: the attachments the runtime still uses.
    pub valid_attachments: Option<BTreeSet<Attachment>>,
}

/// Where an endpoint goes, after the `CNI_ARGS` fallbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub host: String,
    pub tenant: String,
    /// `None` means the tenant's default segment (ipam's rule for an empty segment).
    pub segment: Option<String>,
}

// === impl NetConf ===

impl NetConf {
    /// Parses and validates a network config.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, ConfigError> {
        // serde's messages can quote a whole input string: keep them short.
        let raw: RawNetConf = serde_json::from_slice(bytes).map_err(|e| ConfigError::Decode {
            reason: cut(&e.to_string(), 200),
        })?;
        let cni_version = raw
            .cni_version
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("cniVersion", "is required"))?;
        if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
            return Err(ConfigError::IncompatibleVersion {
                version: cni_version,
            });
        }
        let name = raw
            .name
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid("name", "is required"))?;
        // Endpoints carry it as the label cni.romana.io/network, which GC selects on.
        if !romana_core::policy::field::label_value(&name).is_empty() {
            return Err(invalid(
                "name",
                &format!(
                    "{} must be usable as a label value: at most 63 of [A-Za-z0-9-_.], \
                     starting and ending alphanumeric",
                    quote(&name)
                ),
            ));
        }
        let root = raw.root.filter(|v| !v.is_empty()).ok_or_else(|| {
            invalid(
                "root",
                "is required (root-service's URL, e.g. http://127.0.0.1:9600)",
            )
        })?;
        let roots: Vec<&str> = root.split(',').map(str::trim).collect();
        if let Some(bad) = roots
            .iter()
            .find(|r| !(r.starts_with("http://") || r.starts_with("https://")))
        {
            return Err(invalid(
                "root",
                &format!("{} is not an http:// or https:// URL", quote(bad)),
            ));
        }
        let host = optional_name("host", raw.host, validate_host_name)?;
        let tenant = optional_name("tenant", raw.tenant, validate_tenant_name)?;
        let segment = optional_name("segment", raw.segment, validate_segment_name)?;
        if raw.prev_result.as_ref().is_some_and(|p| !p.is_object()) {
            return Err(invalid("prevResult", "must be a JSON object"));
        }
        let tls = client_tls(raw.tls_ca, raw.tls_cert, raw.tls_key)?;
        let any_https = roots.iter().any(|r| r.starts_with("https://"));
        if any_https && tls.as_ref().is_none_or(|t| t.ca.is_none()) {
            return Err(invalid(
                "tlsCA",
                "is required for an https:// root (the CA that signed the services' certificates)",
            ));
        }
        Ok(NetConf {
            cni_version,
            name,
            root,
            host,
            tenant,
            segment,
            tls,
            prev_result: raw.prev_result,
            valid_attachments: raw.valid_attachments.map(|a| a.into_iter().collect()),
        })
    }

    /// The host this plugin runs on: `host`, else the machine's hostname.
    pub fn host(
        &self,
        hostname: impl FnOnce() -> io::Result<String>,
    ) -> Result<String, ConfigError> {
        if let Some(host) = &self.host {
            return Ok(host.clone());
        }
        let name = hostname().map_err(|e| ConfigError::Hostname {
            reason: e.to_string(),
        })?;
        let name = name.trim().to_string();
        validate_host_name(&name).map_err(|e| ConfigError::Hostname {
            reason: format!("{e}; set \"host\" in the network configuration"),
        })?;
        Ok(name)
    }

    /// Where the endpoint goes: `tenant`, else `K8S_POD_NAMESPACE`; `segment`, else
    /// `ROMANA_SEGMENT`, else the tenant's default.
    pub fn placement(
        &self,
        args: &CniArgs,
        hostname: impl FnOnce() -> io::Result<String>,
    ) -> Result<Placement, ConfigError> {
        let host = self.host(hostname)?;
        let tenant = match &self.tenant {
            Some(t) => t.clone(),
            None => {
                let t = args.get(ARG_POD_NAMESPACE).ok_or_else(|| {
                    invalid(
                        "tenant",
                        &format!("is not set and CNI_ARGS has no {ARG_POD_NAMESPACE}"),
                    )
                })?;
                validate_tenant_name(t).map_err(|e| invalid("tenant", &e.to_string()))?;
                t.to_string()
            }
        };
        let segment = match (&self.segment, args.get(ARG_SEGMENT)) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(s)) => {
                validate_segment_name(s).map_err(|e| invalid("segment", &e.to_string()))?;
                Some(s.to_string())
            }
            (None, None) => None,
        };
        Ok(Placement {
            host,
            tenant,
            segment,
        })
    }

    /// Whether the config's version is at least `min` (both supported versions).
    pub fn version_at_least(&self, min: &str) -> bool {
        version_at_least(&self.cni_version, min)
    }
}

/// The machine's hostname, as `host` defaults to.
pub fn machine_hostname() -> io::Result<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string())
}

fn optional_name(
    field: &'static str,
    value: Option<String>,
    validate: fn(&str) -> Result<(), NameError>,
) -> Result<Option<String>, ConfigError> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            validate(&v).map_err(|e| invalid(field, &e.to_string()))?;
            Ok(Some(v))
        }
    }
}

/// Reads the PEM files a network config names; errors name the config field.
fn client_tls(
    ca: Option<std::path::PathBuf>,
    cert: Option<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
) -> Result<Option<romana_proto::discover::ClientTls>, ConfigError> {
    let read = |field: &'static str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| invalid(field, &format!("cannot read {}: {e}", path.display())))
    };
    let identity = match (cert, key) {
        (None, None) => None,
        (Some(_), None) => return Err(invalid("tlsKey", "is required with tlsCert")),
        (None, Some(_)) => return Err(invalid("tlsCert", "is required with tlsKey")),
        (Some(cert), Some(key)) => Some((read("tlsCert", &cert)?, read("tlsKey", &key)?)),
    };
    let ca = ca.map(|ca| read("tlsCA", &ca)).transpose()?;
    Ok((ca.is_some() || identity.is_some())
        .then_some(romana_proto::discover::ClientTls { ca, identity }))
}

fn invalid(field: &'static str, problem: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        problem: problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_conf(extra: &str) -> String {
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "romana", "type": "romana-cni",
                 "root": "http://127.0.0.1:9600"{extra}}}"#
        )
    }

    fn no_hostname() -> io::Result<String> {
        Err(io::Error::other("no hostname in this test"))
    }

    #[test]
    fn tls_files_are_read_and_an_https_root_needs_a_ca() {
        let dir = std::env::temp_dir().join(format!("romana-cni-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "CA PEM").unwrap();
        let https = |extra: &str| {
            format!(
                r#"{{"cniVersion": "1.0.0", "name": "romana", "root": "https://10.0.0.1:9600"{extra}}}"#
            )
        };
        let conf =
            NetConf::parse(https(&format!(r#", "tlsCA": "{}""#, ca.display())).as_bytes()).unwrap();
        assert_eq!(conf.tls.unwrap().ca.as_deref(), Some(&b"CA PEM"[..]));
        let no_ca = NetConf::parse(https("").as_bytes()).unwrap_err();
        assert!(no_ca.to_string().contains("tlsCA"), "{no_ca}");
        let half = NetConf::parse(mk_conf(r#", "tlsCert": "/x.pem""#).as_bytes()).unwrap_err();
        assert!(half.to_string().contains("tlsKey"), "{half}");
        let missing =
            NetConf::parse(mk_conf(r#", "tlsCA": "/nonexistent/ca.pem""#).as_bytes()).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("cannot read /nonexistent/ca.pem"),
            "{missing}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn conventions_example_parses_with_every_field() {
        let conf = NetConf::parse(
            mk_conf(r#", "host": "h1", "tenant": "t1", "segment": "s1", "ipam": {}"#).as_bytes(),
        )
        .unwrap();
        assert_eq!(conf.cni_version, "1.0.0");
        assert_eq!(conf.name, "romana");
        assert_eq!(conf.root, "http://127.0.0.1:9600");
        let placement = conf.placement(&CniArgs::default(), no_hostname).unwrap();
        assert_eq!(
            placement,
            Placement {
                host: "h1".into(),
                tenant: "t1".into(),
                segment: Some("s1".into())
            }
        );
    }

    #[test]
    fn tenant_and_segment_fall_back_to_cni_args() {
        let conf = NetConf::parse(mk_conf(r#", "host": "h1""#).as_bytes()).unwrap();
        let args = CniArgs::parse("K8S_POD_NAMESPACE=web;ROMANA_SEGMENT=front").unwrap();
        let p = conf.placement(&args, no_hostname).unwrap();
        assert_eq!(
            (p.tenant.as_str(), p.segment.as_deref()),
            ("web", Some("front"))
        );

        let args = CniArgs::parse("K8S_POD_NAMESPACE=web").unwrap();
        let p = conf.placement(&args, no_hostname).unwrap();
        assert_eq!(p.segment, None, "the tenant's default segment");
    }

    #[test]
    fn config_fields_win_over_cni_args() {
        let conf = NetConf::parse(
            mk_conf(r#", "host": "h1", "tenant": "t1", "segment": "s1""#).as_bytes(),
        )
        .unwrap();
        let args = CniArgs::parse("K8S_POD_NAMESPACE=web;ROMANA_SEGMENT=front").unwrap();
        let p = conf.placement(&args, no_hostname).unwrap();
        assert_eq!(
            (p.tenant.as_str(), p.segment.as_deref()),
            ("t1", Some("s1"))
        );
    }

    #[test]
    fn missing_tenant_names_both_places_to_set_it() {
        let conf = NetConf::parse(mk_conf(r#", "host": "h1""#).as_bytes()).unwrap();
        let err = conf
            .placement(&CniArgs::default(), no_hostname)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "network configuration field \"tenant\" is not set \
             and CNI_ARGS has no K8S_POD_NAMESPACE"
        );
    }

    #[test]
    fn host_defaults_to_the_hostname() {
        let conf = NetConf::parse(mk_conf(r#", "tenant": "t""#).as_bytes()).unwrap();
        let p = conf
            .placement(&CniArgs::default(), || Ok("node-7\n".into()))
            .unwrap();
        assert_eq!(p.host, "node-7");
        assert!(matches!(
            conf.host(no_hostname),
            Err(ConfigError::Hostname { .. })
        ));
    }

    #[test]
    fn bad_configs_say_which_field() {
        let cases: [(&str, &str); 7] = [
            (r#"{"cniVersion": "1.0.0", "name": "n"}"#, "root"),
            (r#"{"name": "n", "root": "http://r:1"}"#, "cniVersion"),
            (r#"{"cniVersion": "1.0.0", "root": "http://r:1"}"#, "name"),
            (
                r#"{"cniVersion": "1.0.0", "name": "n", "root": "http://r:1,r:2"}"#,
                "root",
            ),
            (
                r#"{"cniVersion": "1.0.0", "name": "n", "root": "r:1"}"#,
                "root",
            ),
            (
                r#"{"cniVersion": "1.0.0", "name": "n", "root": "http://r:1", "tenant": "a b"}"#,
                "tenant",
            ),
            (
                r#"{"cniVersion": "1.0.0", "name": "n", "root": "http://r:1", "prevResult": 3}"#,
                "prevResult",
            ),
        ];
        for (json, field) in cases {
            match NetConf::parse(json.as_bytes()) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{json}"),
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn undecodable_and_unsupported_configs_are_told_apart() {
        assert!(matches!(
            NetConf::parse(b"{not json"),
            Err(ConfigError::Decode { .. })
        ));
        assert!(matches!(
            NetConf::parse(br#"{"cniVersion": "1.0.0", "name": 7}"#),
            Err(ConfigError::Decode { .. })
        ));
        assert_eq!(
            NetConf::parse(br#"{"cniVersion": "0.2.0", "name": "n", "root": "http://r:1"}"#),
            Err(ConfigError::IncompatibleVersion {
                version: "0.2.0".into()
            })
        );
    }

    #[test]
    fn valid_attachments_are_read_for_gc() {
        let conf = NetConf::parse(
            mk_conf(r#", "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]"#)
                .as_bytes(),
        )
        .unwrap();
        let valid = conf.valid_attachments.unwrap();
        assert!(valid.contains(&Attachment {
            container_id: "c1".into(),
            ifname: "eth0".into()
        }));
    }
}
