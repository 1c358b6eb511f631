//! Service binaries started by tests: killed on drop (a failing test leaves nothing
//! running), or stopped the way an operator stops them, with SIGTERM.

use std::process::{Child, Command, ExitStatus, Output};

/// A running process owned by a test.
#[derive(Debug)]
pub struct ServiceProcess(Option<Child>);

impl ServiceProcess {
    pub fn spawn(command: &mut Command) -> std::io::Result<ServiceProcess> {
        command.spawn().map(|child| ServiceProcess(Some(child)))
    }

    /// The process id, while the process is owned.
    pub fn pid(&self) -> Option<u32> {
        self.0.as_ref().map(Child::id)
    }

    /// Kills the process at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP): it keeps its sockets and leases but answers nothing,
    /// as a hung or swapped-out process does. [`ServiceProcess::resume`] thaws it; drop
    /// kills it either way.
    pub fn pause(&self) -> std::io::Result<()> {
        self.signal("STOP")
    }

    /// Thaws a process frozen by [`ServiceProcess::pause`] (SIGCONT).
    pub fn resume(&self) -> std::io::Result<()> {
        self.signal("CONT")
    }

    /// Sends `SIG<name>` through kill(1) (no unsafe).
    pub fn signal(&self, name: &str) -> std::io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| std::io::Error::other("the process is no longer owned"))?;
        signal(pid, name)
    }

    /// Sends SIGTERM (through kill(1): no unsafe) and waits for the exit.
    pub async fn terminate(self) -> std::io::Result<ExitStatus> {
        Ok(self.terminate_with_output().await?.status)
    }

    /// Like [`ServiceProcess::terminate`], with what the process wrote to piped streams.
    pub async fn terminate_with_output(mut self) -> std::io::Result<Output> {
        let pid = self.0.as_ref().expect("owned until terminated").id();
        // If signalling fails, the child stays owned and drop kills it.
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        let child = self.0.take().expect("owned until terminated");
        tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .map_err(std::io::Error::other)?
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `SIG<name>` to `pid` through kill(1), failing when kill does.
pub fn signal(pid: u32, name: &str) -> std::io::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "kill -{name} {pid} failed: {status}"
        )))
    }
}

/// A loopback port that was free a moment ago and that this process never handed out
/// before (shared with the etcd harness, so the two never collide).
pub fn free_port() -> u16 {
    crate::etcd::free_ports::<1>().expect("a free loopback port")[0]
}
