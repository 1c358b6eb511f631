//! Kernel settings under `/proc/sys`, read and written in the agent's namespace.
//!
//! What has bitten us:
//! - `/proc/sys/net` shows the namespace of the thread that opens the file, so with
//!   `--netns` every access goes through [`super::netns::run_in`].
//! - A missing file is not an error to read (IPv6 disabled on the kernel command line
//!   removes `net/ipv6`): the value is absent and a wanted write reports the failure.
//! - `net/ipv6/conf/all/forwarding = 1` makes interfaces with `accept_ra = 1` stop accepting
//!   router advertisements: a host that gets its fabric address by SLAAC needs
//!   `accept_ra = 2`, which the agent does not set for the operator.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::netns::run_in;
use super::KernelError;

/// Current values of `paths` (relative to `/proc/sys`); missing files are left out.
pub async fn read(
    netns: Option<String>,
    paths: Vec<String>,
) -> Result<BTreeMap<String, String>, KernelError> {
    blocking(netns, move || {
        let mut values = BTreeMap::new();
        for path in paths {
            match std::fs::read_to_string(Path::new("/proc/sys").join(&path)) {
                Ok(v) => {
                    values.insert(path, v.trim().to_string());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(KernelError::Sysctl { path, source }),
            }
        }
        Ok(values)
    })
    .await
}

/// Writes `value` to `/proc/sys/{path}`.
pub async fn write(netns: Option<String>, path: String, value: String) -> Result<(), KernelError> {
    blocking(netns, move || {
        std::fs::write(Path::new("/proc/sys").join(&path), format!("{value}\n"))
            .map_err(|source| KernelError::Sysctl { path, source })
    })
    .await
}

async fn blocking<T, F>(netns: Option<String>, f: F) -> Result<T, KernelError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, KernelError> + Send + 'static,
{
    let ns = netns.clone();
    tokio::task::spawn_blocking(move || run_in(ns.as_deref(), f))
        .await
        .map_err(|e| KernelError::Netns {
            netns: netns.clone().unwrap_or_default(),
            source: io::Error::other(e.to_string()),
        })?
        .map_err(|source| KernelError::Netns {
            netns: netns.unwrap_or_default(),
            source,
        })?
}
