//! Running the real `romanactl` binary from tests. It runs as a child process through
//! `tokio::process`, so the services a test serves in-process keep running meanwhile.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::process::Stdio;

use romana_integration::cluster::CONFIG_INIT;
use romana_integration::ControlPlane;
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

/// A running `romanactl ... --watch`: its stdout line by line, its stderr kept.
pub struct Watching {
    child: tokio::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Starts `romanactl --root ROOT ARGS...` (no contexts file) and returns at once.
pub fn watching(root: &str, args: &[&str]) -> Watching {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_romanactl"));
    cmd.arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ROMANA_ROOT")
        .env("ROMANACTL_CONFIG", NO_CONFIG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("romanactl starts");
    let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (mut pipe, kept) = (child.stderr.take().unwrap(), stderr.clone());
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    Watching {
        child,
        lines,
        stderr,
    }
}

impl Watching {
    /// The next stdout line within `within`; fails the test otherwise.
    pub async fn line(&mut self, within: Duration) -> String {
        match tokio::time::timeout(within, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("romanactl closed stdout; stderr: {}", self.stderr()),
            Err(_) => panic!("no line within {within:?}; stderr: {}", self.stderr()),
        }
    }

    /// The next line, parsed as one JSON document.
    pub async fn json(&mut self, within: Duration) -> serde_json::Value {
        let line = self.line(within).await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Nothing more on stdout for `quiet`.
    pub async fn silent_for(&mut self, quiet: Duration) {
        if let Ok(Some(line)) = tokio::time::timeout(quiet, self.lines.recv()).await {
            panic!("unexpected output: {line}");
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` (TERM, INT) and returns the exit code and stderr.
    pub async fn stop(mut self, signal: &str) -> (Option<i32>, String) {
        let pid = self.child.id().expect("still running");
        let sent = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("romanactl exits within 10 s of the signal")
            .unwrap();
        // The reader task may still hold the last bytes for a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status.code(), self.stderr())
    }
}

// === a control plane for the end-to-end tests ===

/// A control plane and its root URL.
pub async fn mk_plane() -> (ControlPlane, String) {
    let plane = ControlPlane::start().await.expect("control plane starts");
    let root = plane.root_url();
    (plane, root)
}

/// A control plane with the MISSION example layout (and `rack_bits` racks) set through
/// romanactl.
pub async fn mk_cluster(rack_bits: &str) -> (ControlPlane, String) {
    let (plane, root) = mk_plane().await;
    romanactl(&root, &init_args(rack_bits)).await.ok();
    (plane, root)
}

/// `romanactl ipam allocate --endpoint ENDPOINT --host HOST --tenant TENANT EXTRA...`.
pub async fn allocate(root: &str, endpoint: &str, host: &str, tenant: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "ipam",
        "allocate",
        "--endpoint",
        endpoint,
        "--host",
        host,
        "--tenant",
        tenant,
    ];
    args.extend_from_slice(extra);
    romanactl(root, &args).await
}

pub fn init_args(rack_bits: &str) -> Vec<&str> {
    [&CONFIG_INIT[..], &["--rack-bits", rack_bits]].concat()
}
