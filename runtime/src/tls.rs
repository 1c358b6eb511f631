//! The TLS flag checks every process shares (services and the agent): PEM files are read
//! and checked up front, and plaintext etcd needs `--insecure`.

use std::path::{Path, PathBuf};

/// Why the TLS flags cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsArgsError {
    #[error("refusing to serve plaintext gRPC without --insecure; give --tls-cert/--tls-key or --insecure")]
    PlaintextNotAllowed,
    #[error("--{given} needs --{missing}")]
    Missing {
        given: &'static str,
        missing: &'static str,
    },
    #[error("refusing plaintext etcd endpoint {endpoint} without --insecure; use https:// (with --etcd-ca) or give --insecure")]
    PlaintextEtcd { endpoint: String },
    // The io error is in the message, not a source, so that the error prints on one line.
    #[error("cannot read --{flag} {}: {error}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid TLS certificate or key: {0}")]
    Invalid(String),
    #[error("--{flag} {} holds no PEM {what}", path.display())]
    NotPem {
        flag: &'static str,
        path: PathBuf,
        what: &'static str,
    },
}

/// Refuses any endpoint that is not `https://` (etcd-client dials a scheme-less one in
/// plaintext) unless `insecure`. Shared with the agent, which takes the same `--insecure`.
pub fn check_etcd_endpoints(endpoints: &[String], insecure: bool) -> Result<(), TlsArgsError> {
    if insecure {
        return Ok(());
    }
    match endpoints.iter().find(|e| !e.starts_with("https://")) {
        Some(plain) => Err(TlsArgsError::PlaintextEtcd {
            endpoint: plain.chars().take(64).collect(),
        }),
        None => Ok(()),
    }
}

/// Reads a PEM file and checks it holds a block whose label ends in `what`
/// (`CERTIFICATE`, or `PRIVATE KEY` for PKCS#8, RSA and EC keys).
pub fn read_pem(
    flag: &'static str,
    path: &Path,
    what: &'static str,
) -> Result<Vec<u8>, TlsArgsError> {
    let bytes = std::fs::read(path).map_err(|error| TlsArgsError::Read {
        flag,
        path: path.to_path_buf(),
        error,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let has_block = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.trim_end().ends_with(&format!("{what}-----")));
    if !has_block {
        return Err(TlsArgsError::NotPem {
            flag,
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(bytes)
}
