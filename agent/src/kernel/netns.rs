//! Running a closure inside a named network namespace (`ip netns add NAME`), for the
//! agent's `--netns` flag (tests, and several hosts on one machine in a lab).
//!
//! Namespaces belong to threads, not processes: a fresh thread `setns`es into the namespace,
//! runs the closure and ends, so no other thread of the agent ever changes namespace. What
//! the closure creates keeps its namespace after the thread is gone: a netlink socket
//! opened there talks to that namespace's kernel tables from any thread, and a file under
//! `/proc/sys/net` opened there is that namespace's setting.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use nix::sched::{setns, CloneFlags};

/// Where `ip netns add` pins namespaces.
pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from("/run/netns").join(name)
}

/// Runs `f` in namespace `netns`, or on the calling thread when `netns` is `None`.
/// Blocks until `f` returns; call it from `spawn_blocking` for anything slow.
pub fn run_in<T, F>(netns: Option<&str>, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(name) = netns else {
        return Ok(f());
    };
    let path = netns_path(name);
    let file = File::open(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot open network namespace {}: {e}", path.display()),
        )
    })?;
    let thread = std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || -> io::Result<T> {
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("setns into {}: {e}", path.display())))?;
            Ok(f())
        })?;
    thread
        .join()
        .map_err(|_| io::Error::other("thread inside the network namespace panicked"))?
}
