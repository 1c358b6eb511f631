//! Netlink sockets in the right namespace: the host's, or a fresh thread inside
//! `CNI_NETNS` that is never reused.

use std::fs::File;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use rtnetlink::Handle;

use super::NetlinkError;

pub(super) fn open_netns(path: &Path) -> Result<File, NetlinkError> {
    File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            NetlinkError::NetnsMissing {
                path: path.to_path_buf(),
            }
        } else {
            NetlinkError::NetnsOpen {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

pub(super) fn connect() -> Result<Handle, NetlinkError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
    tokio::spawn(connection);
    Ok(handle)
}

/// Runs `f` with a netlink handle inside `netns`, on a thread of its own.
pub(super) async fn in_netns<T, F, Fut>(netns: &Path, f: F) -> Result<T, NetlinkError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    let ns = open_netns(netns)?;
    worker(Some(ns), netns.to_path_buf(), move |h| {
        f(h.expect("opened in the namespace"))
    })
    .await
}

/// Runs `f` on a new thread with a runtime of its own: inside `ns` (entered with setns,
/// then given a netlink handle opened there) when given, else in the host namespace with
/// no handle. `path` names the namespace in errors.
pub(super) async fn worker<T, F, Fut>(
    ns: Option<File>,
    path: PathBuf,
    f: F,
) -> Result<T, NetlinkError>
where
    T: Send + 'static,
    F: FnOnce(Option<Handle>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, NetlinkError>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let worker_path = path.clone();
    std::thread::Builder::new()
        .name("romana-cni-netns".into())
        .spawn(move || {
            let run = || -> Result<T, NetlinkError> {
                let entered = ns.is_some();
                if let Some(ns) = ns {
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(
                        |source| NetlinkError::NetnsEnter {
                            path: worker_path.clone(),
                            source,
                        },
                    )?;
                }
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .map_err(|source| NetlinkError::Worker {
                        path: worker_path.clone(),
                        source,
                    })?;
                runtime.block_on(async move {
                    let handle = if entered { Some(connect()?) } else { None };
                    f(handle).await
                })
            };
            let _ = tx.send(run());
        })
        .map_err(|source| NetlinkError::Worker {
            path: path.clone(),
            source,
        })?;
    rx.await
        .map_err(|_| NetlinkError::WorkerPanicked { path })?
}
