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

/// A loopback port that was free a moment ago and that this process never handed out
/// before (shared with the etcd harness, so the two never collide).
pub fn free_port() -> u16 {
    crate::etcd::free_ports::<1>().expect("a free loopback port")[0]
}
