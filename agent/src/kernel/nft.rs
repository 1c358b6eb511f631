//! Running nftables: reading our table back as JSON and applying one script as one atomic
//! transaction, through libnftables in process ([`super::libnft`]) or, where the library
//! cannot be opened, the `nft` command. The script text and the JSON parsing are pure
//! ([`crate::nft`]).
//!
//! What has bitten us (nft 1.0.6):
//! - The nftables crate's error for a failed `nft -j` has an empty stderr (nft's text goes
//!   to the process's own stderr), so we run `nft` ourselves and capture its stderr: an
//!   error says which line of which batch failed.
//! - A failing batch changes nothing (the kernel applies a batch atomically): after an
//!   error the old ruleset is in place, which is the fail-closed state we want. We log,
//!   keep the change dirty and retry; we never fall back to flushing.
//! - There is no `destroy`, and deleting an absent table, set element or rule fails the
//!   whole batch: [`crate::nft::NftProgram::render_replace`] adds before it deletes, and
//!   element deletes are only planned for elements read back a moment ago.
//! - `nft list table` of an absent table exits 1 with "No such file or directory".
//! - With `--netns`, `nft` runs under `ip netns exec NAME`, which also gives it that
//!   namespace's view of `/sys`; nothing else of the agent moves.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::libnft::{Libnft, Ran};
use super::KernelError;
use crate::nft::{parse_table_text, TABLE_FAMILY, TABLE_NAME};
use crate::plan::NftObserved;

/// Runs nftables commands in the agent's namespace.
#[derive(Clone, Debug, Default)]
pub struct NftRunner {
    netns: Option<String>,
    library: Option<Libnft>,
}

impl NftRunner {
    /// Through libnftables when it can be opened, else through the `nft` command.
    pub fn new(netns: Option<String>) -> NftRunner {
        let library = match Libnft::start(netns.as_deref()) {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "cannot use libnftables; running the nft command for every change instead");
                None
            }
        };
        NftRunner { netns, library }
    }

    /// Always through the `nft` command (what [`NftRunner::new`] falls back to).
    pub fn command_only(netns: Option<String>) -> NftRunner {
        NftRunner {
            netns,
            library: None,
        }
    }

    /// Whether commands run in process, through libnftables.
    pub fn in_process(&self) -> bool {
        self.library.is_some()
    }

    fn command(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "nft"]);
                c
            }
            None => Command::new("nft"),
        };
        cmd.kill_on_drop(true);
        cmd
    }

    /// Our table as JSON, parsed; `Absent` when there is none.
    pub async fn observe(&self) -> Result<NftObserved, KernelError> {
        let Some(json) = self.list(true).await? else {
            return Ok(NftObserved::Absent);
        };
        Ok(match parse_table_text(&json) {
            Ok(view) => NftObserved::Table(view),
            Err(e) => NftObserved::Unreadable(e.to_string()),
        })
    }

    /// `nft list table inet romana` as text (for logs and tests); `None` when absent.
    pub async fn list_text(&self) -> Result<Option<String>, KernelError> {
        self.list(false).await
    }

    /// `list table inet romana`, as JSON when `json`.
    async fn list(&self, json: bool) -> Result<Option<String>, KernelError> {
        let ran = match &self.library {
            Some(lib) => {
                let command = format!("list table {TABLE_FAMILY} {TABLE_NAME}");
                lib.command(command, json).await
            }
            None => self.list_by_command(json).await?,
        };
        if ran.ok {
            return Ok(Some(ran.output));
        }
        let stderr = ran.error.trim().to_string();
        if stderr.contains("No such file or directory") {
            return Ok(None);
        }
        Err(KernelError::Nft {
            op: "list table",
            stderr,
        })
    }

    async fn list_by_command(&self, json: bool) -> Result<Ran, KernelError> {
        let output = self
            .command()
            .args(json.then_some("-j"))
            .args(["list", "table", TABLE_FAMILY, TABLE_NAME])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(nft_spawn)?;
        Ok(Ran {
            ok: output.status.success(),
            output: String::from_utf8_lossy(&output.stdout).into_owned(),
            error: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Applies `script` as `nft -f -` would: all of it or, on error, none of it.
    pub async fn apply(&self, script: &str) -> Result<(), KernelError> {
        let ran = match &self.library {
            Some(lib) => lib.script(script.to_string()).await,
            None => self.apply_by_command(script).await?,
        };
        if ran.ok {
            return Ok(());
        }
        Err(KernelError::Nft {
            op: "apply",
            stderr: ran.error.trim().to_string(),
        })
    }

    async fn apply_by_command(&self, script: &str) -> Result<Ran, KernelError> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(nft_spawn)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let write = stdin.write_all(script.as_bytes()).await;
        drop(stdin);
        let output = child.wait_with_output().await.map_err(nft_spawn)?;
        let mut error = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if let (Err(e), false) = (write, output.status.success()) {
            error = format!("writing the script to nft failed ({e}); {error}");
        }
        Ok(Ran {
            ok: output.status.success(),
            output: String::from_utf8_lossy(&output.stdout).into_owned(),
            error,
        })
    }
}

/// `nft` could not be started or waited for.
fn nft_spawn(source: std::io::Error) -> KernelError {
    KernelError::Spawn {
        program: "nft",
        source,
    }
}
