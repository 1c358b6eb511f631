//! `romanactl certs init|issue`: a development CA and certificates, made locally (no service
//! is called). See [`crate::certs`].

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::certs::{self, Subject};
use crate::Error;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Creates a CA in DIR: DIR/ca.pem and DIR/ca-key.pem (mode 0600).
    Init {
        /// Directory of the CA and its certificates (created if missing).
        dir: PathBuf,
    },
    /// Issues DIR/NAME.pem and DIR/NAME-key.pem signed by DIR's CA: a client certificate
    /// whose common name is an identity (--cn), or a server certificate (--server).
    Issue(Issue),
}

#[derive(Debug, Args)]
pub struct Issue {
    /// Directory holding ca.pem and ca-key.pem (from `romanactl certs init`).
    pub dir: PathBuf,
    /// The identity: admin, reader, tenant:NAME, host:NAME or service:KIND.
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    pub cn: Option<String>,
    /// A server certificate (services, etcd) for --dns names and --ip addresses.
    #[arg(long)]
    pub server: bool,
    /// DNS names of the server (repeatable, or several after one flag).
    #[arg(long, value_name = "NAME", num_args = 1.., requires = "server")]
    pub dns: Vec<String>,
    /// IP addresses of the server (repeatable, or several after one flag).
    #[arg(long, value_name = "ADDR", num_args = 1.., requires = "server")]
    pub ip: Vec<IpAddr>,
    /// File name without .pem; defaults to the common name with ':' replaced by '-'
    /// (a server's common name is its first --dns, else its first --ip).
    #[arg(long, value_name = "NAME")]
    pub out: Option<String>,
}

impl CertsCommand {
    pub fn apply(self) -> Result<String, Error> {
        let written = match self {
            CertsCommand::Init { dir } => certs::init(&dir)?,
            CertsCommand::Issue(issue) => {
                let subject = match issue.cn {
                    Some(cn) => Subject::client(&cn)?,
                    None => Subject::Server {
                        dns: issue.dns,
                        ips: issue.ip,
                    },
                };
                certs::issue(&issue.dir, &subject, issue.out.as_deref())?
            }
        };
        Ok(written
            .iter()
            .map(|p| format!("wrote {}\n", p.display()))
            .collect())
    }
}
