//! The CNI versions this plugin speaks, and how they compare.

/// The CNI versions this plugin reads configs and writes results in, oldest first. The
/// 0.3.x/0.4.0 result only differs by the `version` field of each IP; CHECK needs 0.4.0 and
/// STATUS and GC need 1.1.0 (checked per verb).
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest supported version: what VERSION answers with when asked nothing more precise,
/// and the version of error reports when the config's own cannot be used.
pub const LATEST_VERSION: &str = "1.1.0";

/// `a >= b` for dotted versions; a malformed version compares as 0.0.0.
pub fn version_at_least(a: &str, b: &str) -> bool {
    fn parts(v: &str) -> [u32; 3] {
        let mut out = [0; 3];
        for (slot, part) in out.iter_mut().zip(v.split('.')) {
            *slot = part.parse().unwrap_or(0);
        }
        out
    }
    parts(a) >= parts(b)
}

/// The `cniVersion` of a config that may not otherwise parse, for the error report.
pub fn reported_version(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST_VERSION.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("1.1.0", "1.0.0"));
        assert!(version_at_least("0.4.0", "0.4.0"));
        assert!(!version_at_least("0.3.1", "0.4.0"));
        assert!(version_at_least("0.10.0", "0.4.0"));
    }

    #[test]
    fn reported_version_falls_back_to_the_latest() {
        assert_eq!(reported_version(br#"{"cniVersion": "0.4.0"}"#), "0.4.0");
        assert_eq!(
            reported_version(br#"{"cniVersion": "9.9.9"}"#),
            LATEST_VERSION
        );
        assert_eq!(reported_version(b"garbage"), LATEST_VERSION);
    }
}
