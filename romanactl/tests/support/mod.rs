//! Running the real `romanactl` binary from tests. It runs as a child process through
//! `tokio::process`, so the services a test serves in-process keep running meanwhile.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::process::Stdio;
use std::time::Duration;

/// What one run of romanactl did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `romanactl --root ROOT ARGS...` and waits for it (at most 60 s). No contexts file
/// is read: the developer's own must not change what a test sees.
pub async fn romanactl(root: &str, args: &[&str]) -> Run {
    let mut all = vec!["--root", root];
    all.extend_from_slice(args);
    romanactl_env(&all, &[("ROMANACTL_CONFIG", NO_CONFIG)]).await
}

/// A contexts file that does not exist.
pub const NO_CONFIG: &str = "/nonexistent/romanactl-tests/config.yaml";

/// Runs `romanactl ARGS...` with `env` set on top of an environment without any of the
/// variables romanactl reads (ROMANA_*, ROMANACTL_CONFIG, XDG_CONFIG_HOME, HOME).
pub async fn romanactl_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_romanactl"));
    cmd.args(args);
    for var in [
        "ROMANA_ROOT",
        "ROMANA_TLS_CA",
        "ROMANA_TLS_CERT",
        "ROMANA_TLS_KEY",
        "ROMANACTL_CONFIG",
        "XDG_CONFIG_HOME",
        "HOME",
        "RUST_BACKTRACE",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("romanactl {args:?} did not finish in 60 s"))
        .expect("romanactl runs");
    Run {
        code: out
            .status
            .code()
            .expect("romanactl exits, not killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

// === impl Run ===

impl Run {
    /// The stdout of a run that must succeed.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "romanactl failed: {self:?}");
        assert_eq!(self.stderr, "", "a success prints nothing on stderr");
        self.stdout
    }

    /// The stdout of a successful run, parsed as JSON.
    #[track_caller]
    pub fn json(self) -> serde_json::Value {
        let out = self.ok();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// The one stderr line of a failed run, without its newline. Fails unless the run
    /// exited 1 with exactly one line on stderr starting `error: ` and nothing on stdout.
    #[track_caller]
    pub fn error(self) -> String {
        assert_eq!(self.code, 1, "expected exit code 1: {self:?}");
        assert_eq!(
            self.stdout, "",
            "a failure prints nothing on stdout: {self:?}"
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one stderr line: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        lines[0].to_string()
    }
}
