//! A development CA and the certificates romana-rs needs (`romanactl certs`): client
//! certificates whose subject Common Name is an identity (`admin`, `reader`, `tenant:NAME`,
//! `host:NAME`, `service:KIND`) and server certificates for the services and etcd.
//!
//! Files in DIR: `ca.pem`/`ca-key.pem`, and `NAME.pem`/`NAME-key.pem` per certificate.
//! Keys are written mode 0600 and nothing is ever overwritten: a second `init` or an
//! `issue` onto existing files fails, so a CA key cannot be lost to a typo.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use romana_core::authz::{Identity, IdentityError};
use time::{Duration, OffsetDateTime};

/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::days(10 * 365);
/// How long an issued certificate is valid.
const LEAF_VALIDITY: Duration = Duration::days(2 * 365);
/// Validity starts this much before now, for hosts whose clocks are a little behind.
const CLOCK_SKEW: Duration = Duration::hours(1);

/// What to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A client certificate for an identity.
    Client(Identity),
    /// A server certificate for these names and addresses (also usable as a client
    /// certificate: etcd dials its own members with it).
    Server { dns: Vec<String>, ips: Vec<IpAddr> },
}

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("{} already exists; remove it first (certificates and keys are never overwritten)", .0.display())]
    Exists(PathBuf),
    #[error("{} has no CA; run `romanactl certs init {}` first", .0.display(), .0.display())]
    NoCa(PathBuf),
    #[error("cannot {what} {}: {error}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("--cn: {0}")]
    BadCn(#[from] IdentityError),
    #[error("--server needs at least one --dns NAME or --ip ADDR")]
    NoServerNames,
    #[error("--out {0:?}: give a file name without '/' or a leading '.'")]
    BadOut(String),
    #[error("cannot make the certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

impl Subject {
    /// A client subject from a `--cn`, which must be an identity.
    pub fn client(cn: &str) -> Result<Subject, CertsError> {
        Ok(Subject::Client(Identity::from_common_name(cn)?))
    }

    /// The subject Common Name: the identity, or a server's first name.
    pub fn common_name(&self) -> Result<String, CertsError> {
        match self {
            Subject::Client(who) => Ok(who.to_string()),
            Subject::Server { dns, ips } => dns
                .first()
                .cloned()
                .or_else(|| ips.first().map(IpAddr::to_string))
                .ok_or(CertsError::NoServerNames),
        }
    }

    /// The default `--out`: the Common Name with `:` replaced by `-` (`tenant-t1`).
    pub fn default_out(&self) -> Result<String, CertsError> {
        Ok(self.common_name()?.replace(':', "-"))
    }
}

/// Creates DIR (mode 0700) if needed and a CA in it. Returns the files written.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>, CertsError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| CertsError::Io {
            what: "create",
            path: dir.to_path_buf(),
            error,
        })?;
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    refuse_existing(&[&cert, &key])?;
    let ca_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name("romana-rs development CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, CA_VALIDITY);
    let ca = params.self_signed(&ca_key)?;
    write(&key, &ca_key.serialize_pem(), 0o600)?;
    write(&cert, &ca.pem(), 0o644)?;
    Ok(vec![cert, key])
}

/// Issues a certificate for `subject` signed by DIR's CA, as `OUT.pem` and `OUT-key.pem`
/// (`out` defaults to [`Subject::default_out`]). Returns the files written.
pub fn issue(dir: &Path, subject: &Subject, out: Option<&str>) -> Result<Vec<PathBuf>, CertsError> {
    let out = match out {
        Some(o) => o.to_string(),
        None => subject.default_out()?,
    };
    if out.is_empty() || out.contains('/') || out.starts_with('.') {
        return Err(CertsError::BadOut(out.chars().take(64).collect()));
    }
    let (cert_path, key_path) = (
        dir.join(format!("{out}.pem")),
        dir.join(format!("{out}-key.pem")),
    );
    let issuer = load_ca(dir)?;
    refuse_existing(&[&cert_path, &key_path])?;

    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(&subject.common_name()?);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    match subject {
        Subject::Client(_) => {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        Subject::Server { dns, ips } => {
            params.subject_alt_names = dns
                .iter()
                .map(|d| Ok(SanType::DnsName(d.as_str().try_into()?)))
                .chain(ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
                .collect::<Result<_, rcgen::Error>>()?;
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        }
    }
    validity(&mut params, LEAF_VALIDITY);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write(&key_path, &key.serialize_pem(), 0o600)?;
    write(&cert_path, &cert.pem(), 0o644)?;
    Ok(vec![cert_path, key_path])
}

fn load_ca(dir: &Path) -> Result<Issuer<'static, KeyPair>, CertsError> {
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    if !cert.exists() || !key.exists() {
        return Err(CertsError::NoCa(dir.to_path_buf()));
    }
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|error| CertsError::Io {
            what: "read",
            path: path.to_path_buf(),
            error,
        })
    };
    let key = KeyPair::from_pem(&read(&key)?)?;
    Ok(Issuer::from_ca_cert_pem(&read(&cert)?, key)?)
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn validity(params: &mut CertificateParams, lifetime: Duration) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + lifetime;
}

fn refuse_existing(paths: &[&Path]) -> Result<(), CertsError> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(CertsError::Exists(p.to_path_buf())),
        None => Ok(()),
    }
}

/// Writes a new file with `mode` from the start, so a key is never readable by others,
/// not even for a moment.
fn write(path: &Path, text: &str, mode: u32) -> Result<(), CertsError> {
    let io = |error| CertsError::Io {
        what: "write",
        path: path.to_path_buf(),
        error,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn init_then_issue_writes_pem_files_with_private_keys_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let written = init(&dir).unwrap();
        assert_eq!(written, [dir.join("ca.pem"), dir.join("ca-key.pem")]);
        let written = issue(&dir, &Subject::client("tenant:t1").unwrap(), None).unwrap();
        assert_eq!(
            written,
            [dir.join("tenant-t1.pem"), dir.join("tenant-t1-key.pem")]
        );
        let mode = |p: &str| std::fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("ca-key.pem"), 0o600);
        assert_eq!(mode("tenant-t1-key.pem"), 0o600);
        assert_eq!(mode("tenant-t1.pem"), 0o644);
        let pem = std::fs::read_to_string(dir.join("tenant-t1.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

        let server = Subject::Server {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
        };
        issue(&dir, &server, Some("server")).unwrap();
        assert!(dir.join("server-key.pem").exists());
    }

    #[test]
    fn nothing_is_overwritten_and_a_missing_ca_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let admin = Subject::client("admin").unwrap();
        let err = issue(dir, &admin, None).unwrap_err().to_string();
        assert!(
            err.contains("has no CA; run `romanactl certs init"),
            "{err}"
        );
        init(dir).unwrap();
        let err = init(dir).unwrap_err().to_string();
        assert!(
            err.contains("ca.pem already exists; remove it first"),
            "{err}"
        );
        issue(dir, &admin, None).unwrap();
        assert!(matches!(
            issue(dir, &admin, None),
            Err(CertsError::Exists(_))
        ));
        assert!(matches!(
            issue(dir, &admin, Some("../x")),
            Err(CertsError::BadOut(_))
        ));
    }

    #[test]
    fn client_common_names_must_be_identities() {
        assert!(matches!(
            Subject::client("romanactl"),
            Err(CertsError::BadCn(_))
        ));
        assert_eq!(
            Subject::client("host:h1").unwrap().default_out().unwrap(),
            "host-h1"
        );
        let nameless = Subject::Server {
            dns: vec![],
            ips: vec![],
        };
        assert!(matches!(
            nameless.common_name(),
            Err(CertsError::NoServerNames)
        ));
    }
}
