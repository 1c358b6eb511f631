//! What the plugin prints: the spec's result, version and error types with serde.
//!
//! Results keep fields they do not know (`#[serde(flatten)] extra`), so a `prevResult` from
//! another plugin passes through a chain unchanged.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::{version_at_least, SUPPORTED_VERSIONS};

type Extra = serde_json::Map<String, serde_json::Value>;

/// The result of ADD (and the `prevResult` of chained calls).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<serde_json::Value>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The container's netns path; absent for host-side interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// "4" or "6"; only in results before 1.0.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Address and prefix length, e.g. "10.3.82.7/32".
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The answer to VERSION.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

/// An error as the spec prints it on stdout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

// === impl CniResult ===

impl CniResult {
    /// Reads a `prevResult` of any supported version.
    pub fn from_value(value: serde_json::Value) -> Result<CniResult, serde_json::Error> {
        serde_json::from_value(value)
    }

    /// This result in the format of `version`: before 1.0.0 every IP carries its family.
    pub fn into_version(mut self, version: &str) -> CniResult {
        let legacy = !version_at_least(version, "1.0.0");
        for ip in &mut self.ips {
            ip.version = legacy.then(|| match ip.address {
                IpNet::V4(_) => "4".to_string(),
                IpNet::V6(_) => "6".to_string(),
            });
        }
        self.cni_version = version.to_string();
        self
    }

    /// Appends `other`'s interfaces, IPs and routes, renumbering its interface indices; how a
    /// plugin adds itself to the result of the plugin before it in a chain.
    pub fn append(&mut self, other: CniResult) {
        let offset = self.interfaces.len();
        self.interfaces.extend(other.interfaces);
        self.ips.extend(other.ips.into_iter().map(|mut ip| {
            ip.interface = ip.interface.map(|i| i + offset);
            ip
        }));
        self.routes.extend(other.routes);
        if self.dns.is_none() {
            self.dns = other.dns;
        }
    }
}

// === impl VersionInfo ===

impl VersionInfo {
    /// What this plugin supports, reported in `cni_version`.
    pub fn new(cni_version: &str) -> VersionInfo {
        VersionInfo {
            cni_version: cni_version.to_string(),
            supported_versions: SUPPORTED_VERSIONS.iter().map(|v| v.to_string()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mk_result() -> CniResult {
        CniResult {
            cni_version: "1.0.0".into(),
            interfaces: vec![
                Interface {
                    name: "rmn0123456789ab".into(),
                    mac: Some("0a:00:00:00:00:01".into()),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("0a:00:00:00:00:02".into()),
                    sandbox: Some("/var/run/netns/c1".into()),
                    ..Default::default()
                },
            ],
            ips: vec![IpConfig {
                version: None,
                address: "10.0.0.2/32".parse().unwrap(),
                gateway: Some("10.0.0.1".parse().unwrap()),
                interface: Some(1),
                extra: Extra::new(),
            }],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("10.0.0.1".parse().unwrap()),
                extra: Extra::new(),
            }],
            dns: None,
            extra: Extra::new(),
        }
    }

    #[test]
    fn result_has_the_spec_shape() {
        let value = serde_json::to_value(mk_result()).unwrap();
        assert_eq!(
            value,
            json!({
                "cniVersion": "1.0.0",
                "interfaces": [
                    {"name": "rmn0123456789ab", "mac": "0a:00:00:00:00:01"},
                    {"name": "eth0", "mac": "0a:00:00:00:00:02", "sandbox": "/var/run/netns/c1"}
                ],
                "ips": [{"address": "10.0.0.2/32", "gateway": "10.0.0.1", "interface": 1}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]
            })
        );
    }

    #[test]
    fn results_before_1_0_0_carry_the_ip_version() {
        let old = serde_json::to_value(mk_result().into_version("0.3.1")).unwrap();
        assert_eq!(old["cniVersion"], "0.3.1");
        assert_eq!(old["ips"][0]["version"], "4");
        let new = serde_json::to_value(mk_result().into_version("1.1.0")).unwrap();
        assert!(new["ips"][0].get("version").is_none());
    }

    #[test]
    fn appending_renumbers_interfaces_and_keeps_unknown_fields() {
        let prev = CniResult::from_value(json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "bond0", "socketPath": "/run/x.sock"}],
            "ips": [{"address": "192.168.9.9/24", "interface": 0}],
            "dns": {"nameservers": ["10.96.0.10"]},
            "custom": true
        }))
        .unwrap();
        let mut merged = prev;
        merged.append(mk_result());
        let value = serde_json::to_value(&merged).unwrap();
        assert_eq!(value["interfaces"][0]["socketPath"], "/run/x.sock");
        assert_eq!(value["interfaces"][2]["name"], "eth0");
        assert_eq!(value["ips"][1]["interface"], 2);
        assert_eq!(value["dns"]["nameservers"][0], "10.96.0.10");
        assert_eq!(value["custom"], true);
    }

    #[test]
    fn legacy_prev_results_are_read() {
        let prev = CniResult::from_value(json!({
            "cniVersion": "0.3.1",
            "ips": [{"version": "6", "address": "fd00::2/128", "gateway": "fd00::1"}]
        }))
        .unwrap()
        .into_version("1.0.0");
        assert_eq!(prev.ips[0].version, None);
        assert_eq!(prev.ips[0].gateway, Some("fd00::1".parse().unwrap()));
    }

    #[test]
    fn version_info_lists_what_is_supported() {
        let value = serde_json::to_value(VersionInfo::new("1.1.0")).unwrap();
        assert_eq!(
            value,
            json!({"cniVersion": "1.1.0",
                   "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        );
    }
}
