//! The client side of TLS to the services: CA to verify them, and the identity to present.

/// How to verify `https://` services and, for mutual TLS, who this client is. Applied to
/// root and to every discovered instance whose URL is `https://`; `http://` URLs stay
/// plaintext.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM CA certificate(s) that signed the services' certificates. Required for https://:
    /// this build trusts no system roots.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate and private key, for services that require client certificates.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl ClientTls {
    /// Reads `--tls-ca`, `--tls-cert` and `--tls-key` files. `Ok(None)` when none is given;
    /// a certificate without its key (or the reverse) is an error naming the missing flag.
    pub fn from_files(
        ca: Option<&std::path::Path>,
        cert: Option<&std::path::Path>,
        key: Option<&std::path::Path>,
    ) -> Result<Option<ClientTls>, String> {
        let read = |flag: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| format!("cannot read --{flag} {}: {e}", path.display()))
        };
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(_), None) => return Err("--tls-cert needs --tls-key".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert".into()),
            (Some(cert), Some(key)) => Some((read("tls-cert", cert)?, read("tls-key", key)?)),
        };
        let ca = ca.map(|ca| read("tls-ca", ca)).transpose()?;
        if ca.is_none() && identity.is_none() {
            return Ok(None);
        }
        Ok(Some(ClientTls { ca, identity }))
    }
}
