//! Test certificates made by the real `romanactl certs` binary, as an operator makes them:
//! a CA, a server certificate `server` for localhost and 127.0.0.1, and client certificates
//! whose common names are identities (`admin`, `tenant:t1`, ...).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use tempfile::TempDir;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::cluster::binary;

/// A directory of PEM files, removed on drop.
pub struct Pki {
    dir: TempDir,
}

impl Pki {
    /// A CA, the server certificate, and one client certificate per common name.
    pub fn new(common_names: &[&str]) -> anyhow::Result<Pki> {
        let dir = tempfile::Builder::new().prefix("romana-pki-").tempdir()?;
        let pki = Pki { dir };
        pki.romanactl(&["init"])?;
        pki.romanactl(&[
            "issue",
            "--server",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--out",
            "server",
        ])?;
        for cn in common_names {
            pki.issue(cn)?;
        }
        Ok(pki)
    }

    /// Issues a client certificate for `cn` (files named as [`Pki::cert`] says).
    pub fn issue(&self, cn: &str) -> anyhow::Result<()> {
        self.romanactl(&["issue", "--cn", cn])
    }

    fn romanactl(&self, args: &[&str]) -> anyhow::Result<()> {
        let bin = binary("romanactl");
        if !bin.exists() {
            bail!("{} missing: cargo build --bins", bin.display());
        }
        let (verb, rest) = args.split_first().expect("a certs subcommand");
        let out = Command::new(&bin)
            .args(["certs", verb])
            .arg(self.dir.path())
            .args(rest)
            .env_remove("ROMANA_TLS_CA")
            .output()
            .with_context(|| format!("running {}", bin.display()))?;
        if !out.status.success() {
            bail!(
                "romanactl certs {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// The certificate of `cn` (`tenant:t1` -> `tenant-t1.pem`), or of `server`.
    pub fn cert(&self, cn: &str) -> PathBuf {
        self.path(&format!("{}.pem", cn.replace(':', "-")))
    }

    pub fn key(&self, cn: &str) -> PathBuf {
        self.path(&format!("{}-key.pem", cn.replace(':', "-")))
    }

    /// What a service serves with for mutual TLS: the server certificate, clients verified
    /// against the CA.
    pub fn server_tls(&self) -> anyhow::Result<ServerTlsConfig> {
        Ok(ServerTlsConfig::new()
            .identity(Identity::from_pem(
                read(&self.cert("server"))?,
                read(&self.key("server"))?,
            ))
            .client_ca_root(Certificate::from_pem(read(&self.ca())?)))
    }

    /// What a client of identity `cn` connects with.
    pub fn client_tls(&self, cn: &str) -> anyhow::Result<ClientTlsConfig> {
        Ok(ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&self.ca())?))
            .domain_name("localhost")
            .identity(Identity::from_pem(
                read(&self.cert(cn))?,
                read(&self.key(cn))?,
            )))
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
