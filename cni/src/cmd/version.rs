//! VERSION: which spec versions this plugin speaks. Needs no valid network config; stdin
//! may carry `{"cniVersion": ...}`, echoed back when supported.

use crate::config::{LATEST_VERSION, SUPPORTED_VERSIONS};
use crate::result::VersionInfo;

pub fn run(stdin: &[u8]) -> VersionInfo {
    let asked = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()));
    VersionInfo::new(asked.as_deref().unwrap_or(LATEST_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_echoes_a_supported_version_and_defaults_to_the_latest() {
        assert_eq!(run(br#"{"cniVersion": "0.4.0"}"#).cni_version, "0.4.0");
        assert_eq!(run(b"").cni_version, LATEST_VERSION);
        assert_eq!(
            run(br#"{"cniVersion": "7.0.0"}"#).cni_version,
            LATEST_VERSION
        );
        assert_eq!(run(b"").supported_versions.len(), SUPPORTED_VERSIONS.len());
    }
}
