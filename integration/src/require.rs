//! Whether a test that needs root and system tools may run here, skip, or must fail.
//!
//! Outside CI a test that cannot run (not root, a tool missing) prints a `SKIPPED` line and
//! passes, so a developer without root still gets the rest of the suite. Under CI (`CI=true`
//! or `CI=1`, as CI systems set it) it fails with what is missing and how to get it: a CI
//! run that silently skipped the namespace tests would be green and prove nothing.
//!
//! Every such test starts with [`require_netns!`](crate::require_netns), naming the tools it
//! runs (`ip` is always needed); the decision itself is [`decide`], a pure function.

use std::path::Path;

/// What a test that needs namespaces does here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Everything it needs is there.
    Run,
    /// Not under CI: print the reason and pass.
    Skip(String),
    /// Under CI: fail with the reason.
    Fail(String),
}

/// Whether `CI` has a value that means "this is a CI run": `true` (any case) or `1`.
pub fn is_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true") || v.trim() == "1")
}

/// The decision for a test that needs root and `missing` are the tools not found, with `ci`
/// the value of the `CI` environment variable.
pub fn decide(is_root: bool, missing: &[&str], ci: Option<&str>) -> Decision {
    let mut lacks = Vec::new();
    if !is_root {
        lacks.push(
            "not running as root, and network namespaces need root: run the tests as root \
             (e.g. `sudo -E env PATH=\"$PATH\" cargo nextest run ...`)"
                .to_string(),
        );
    }
    for tool in missing {
        lacks.push(format!(
            "`{tool}` is not on PATH: install {} (scripts/setup.sh installs it)",
            package_of(tool)
        ));
    }
    if lacks.is_empty() {
        Decision::Run
    } else if is_ci(ci) {
        Decision::Fail(format!(
            "this test cannot run, and under CI (CI={}) that is a failure, not a skip: {}",
            ci.unwrap_or_default(),
            lacks.join("; ")
        ))
    } else {
        Decision::Skip(lacks.join("; "))
    }
}

/// The Debian package that provides `tool`, for the message.
fn package_of(tool: &str) -> String {
    match tool {
        "ip" => "iproute2 (apt-get install -y iproute2)".into(),
        "nft" => "nftables (apt-get install -y nftables)".into(),
        "ping" => "iputils-ping (apt-get install -y iputils-ping)".into(),
        "tcpdump" => "tcpdump (apt-get install -y tcpdump)".into(),
        "etcdctl" => "etcd-client (apt-get install -y etcd-client)".into(),
        "etcd" => "etcd-server (apt-get install -y etcd-server)".into(),
        "go" => "golang-go (apt-get install -y golang-go)".into(),
        "systemd-analyze" => "systemd (apt-get install -y systemd)".into(),
        other => format!("the package that provides `{other}`"),
    }
}

/// Whether `tool` is an executable file on PATH (or, given with a `/`, at that path).
pub fn on_path(tool: &str) -> bool {
    fn executable(p: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    if tool.contains('/') {
        return executable(Path::new(tool));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(tool))))
}

/// Decides for the calling test, which needs root and `tools` (`ip` is added): returns
/// whether it may go on. A skip prints `SKIPPED <test>: <reason>`; a failure panics.
/// `context` names the caller when the test thread has no name (`module_path!()`).
pub fn netns(context: &str, tools: &[&str]) -> bool {
    let missing: Vec<&str> = std::iter::once("ip")
        .chain(tools.iter().copied().filter(|t| *t != "ip"))
        .filter(|t| !on_path(t))
        .collect();
    let ci = std::env::var("CI").ok();
    let test = match std::thread::current().name() {
        Some(name) if name != "main" => format!("{context}::{name}"),
        _ => context.to_string(),
    };
    match decide(
        crate::netns::can_create_namespaces(),
        &missing,
        ci.as_deref(),
    ) {
        Decision::Run => true,
        Decision::Skip(reason) => {
            eprintln!("SKIPPED {test}: {reason}");
            false
        }
        Decision::Fail(reason) => panic!("{test}: {reason}"),
    }
}

/// Returns from the calling test (after a `SKIPPED` line) when it cannot run here, or fails
/// it under CI; see [`require`](crate::require). Arguments are the tools it runs besides `ip`:
/// `require_netns!("nft", "ping");`.
#[macro_export]
macro_rules! require_netns {
    ($($tool:expr),* $(,)?) => {
        if !$crate::require::netns(module_path!(), &[$($tool),*]) {
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_there_runs_whatever_ci_says() {
        for ci in [None, Some("true"), Some("1"), Some("false"), Some("")] {
            assert_eq!(decide(true, &[], ci), Decision::Run, "CI={ci:?}");
        }
    }

    #[test]
    fn not_root_skips_outside_ci_and_fails_under_ci() {
        for ci in [None, Some(""), Some("false"), Some("0"), Some("no")] {
            match decide(false, &[], ci) {
                Decision::Skip(reason) => assert!(reason.contains("not running as root")),
                other => panic!("CI={ci:?}: {other:?}"),
            }
        }
        for ci in ["true", "TRUE", "True", "1", " true\n"] {
            match decide(false, &[], Some(ci)) {
                Decision::Fail(reason) => {
                    assert!(reason.contains("not running as root"), "{reason}");
                    assert!(reason.contains("run the tests as root"), "{reason}");
                    assert!(reason.contains("under CI"), "{reason}");
                }
                other => panic!("CI={ci:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_tool_as_root_skips_outside_ci_and_fails_under_ci_naming_its_package() {
        match decide(true, &["tcpdump"], None) {
            Decision::Skip(reason) => {
                assert!(reason.contains("`tcpdump` is not on PATH"), "{reason}");
                assert!(!reason.contains("root"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match decide(true, &["nft", "tcpdump"], Some("true")) {
            Decision::Fail(reason) => {
                assert!(reason.contains("apt-get install -y nftables"), "{reason}");
                assert!(reason.contains("apt-get install -y tcpdump"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn not_root_and_a_missing_tool_both_are_reported() {
        match decide(false, &["ping"], Some("1")) {
            Decision::Fail(reason) => {
                assert!(reason.contains("not running as root"), "{reason}");
                assert!(reason.contains("iputils-ping"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_true_and_1_mean_ci() {
        assert!(is_ci(Some("true")) && is_ci(Some("TRUE")) && is_ci(Some("1")));
        for v in [
            None,
            Some(""),
            Some("0"),
            Some("false"),
            Some("yes"),
            Some("2"),
        ] {
            assert!(!is_ci(v), "{v:?}");
        }
    }

    #[test]
    fn on_path_finds_sh_and_not_a_made_up_tool() {
        assert!(on_path("sh"));
        assert!(on_path("/bin/sh"));
        assert!(!on_path("romana-no-such-tool-4242"));
        assert!(!on_path("/nonexistent/sh"));
    }
}
