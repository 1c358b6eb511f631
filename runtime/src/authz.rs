//! The caller's identity and the check every handler makes before it touches the store.
//!
//! The identity is the subject Common Name of the client certificate that mutual TLS
//! verified (see `romana_core::authz` for what each identity may do). Without mutual TLS
//! (`--insecure`, or TLS without `--tls-ca`) no client presents a certificate and there is
//! nobody to authorize: every caller is treated as `admin`, and the service says so once at
//! start-up ("authorization is off: no --tls-ca"). With mutual TLS every connection carries
//! a certificate the CA signed; one whose Common Name is no known identity is refused with
//! PERMISSION_DENIED on every call, so a certificate issued for something else (etcd, a web
//! server) grants nothing.

use romana_core::authz::{decide, Action, Identity};
use tonic::{Request, Status};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Who is calling: from the client certificate, or `admin` when the connection has none.
pub fn caller<T>(request: &Request<T>) -> Result<Identity, Status> {
    let certs = request.peer_certs();
    identity_of(certs.as_deref().map(Vec::as_slice))
}

/// [`caller`], then [`require`]: the first line of a handler whose object is known from the
/// request alone.
pub fn authorize<T>(request: &Request<T>, action: Action<'_>) -> Result<Identity, Status> {
    let who = caller(request)?;
    require(&who, action)?;
    Ok(who)
}

/// PERMISSION_DENIED naming the identity and the object unless `who` may do `action`.
pub fn require(who: &Identity, action: Action<'_>) -> Result<(), Status> {
    decide(who, &action).map_err(|denied| Status::permission_denied(denied.to_string()))
}

/// Whether `who` may do `action`; for filtering lists down to what a caller may read.
pub fn may(who: &Identity, action: Action<'_>) -> bool {
    romana_core::authz::allows(who, &action)
}

/// The identity of a verified peer chain (leaf first), `admin` for no chain at all.
pub fn identity_of(
    certs: Option<&[tonic::transport::CertificateDer<'static>]>,
) -> Result<Identity, Status> {
    let Some(leaf) = certs.and_then(<[_]>::first) else {
        return Ok(Identity::Admin);
    };
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| {
        Status::permission_denied(format!("the client certificate cannot be parsed: {e}"))
    })?;
    let mut names = cert.subject().iter_common_name();
    let cn = match (names.next(), names.next()) {
        (Some(cn), None) => cn.as_str().map_err(|_| {
            Status::permission_denied("the client certificate's common name is not UTF-8 text")
        })?,
        (None, _) => {
            return Err(Status::permission_denied(
                "the client certificate has no subject common name; issue one with \
                 `romanactl certs issue DIR --cn admin|reader|tenant:NAME|host:NAME`",
            ))
        }
        // Two CNs would make the identity depend on which one is read.
        (Some(_), Some(_)) => {
            return Err(Status::permission_denied(
                "the client certificate has more than one subject common name",
            ))
        }
    };
    Identity::from_common_name(cn).map_err(|e| Status::permission_denied(e.to_string()))
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair};
    use tonic::transport::CertificateDer;

    use super::*;

    fn cert(cns: &[&str]) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for cn in cns {
            params.distinguished_name.push(DnType::CommonName, *cn);
        }
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn no_certificate_is_admin() {
        assert_eq!(identity_of(None).unwrap(), Identity::Admin);
        assert_eq!(identity_of(Some(&[])).unwrap(), Identity::Admin);
    }

    #[test]
    fn the_leaf_common_name_is_the_identity() {
        let chain = [cert(&["tenant:t1"]), cert(&["admin"])];
        assert_eq!(
            identity_of(Some(&chain)).unwrap(),
            Identity::Tenant("t1".into())
        );
    }

    #[test]
    fn unknown_or_missing_common_names_are_permission_denied() {
        for (cns, want) in [
            (vec!["romanactl"], "is not admin, reader"),
            (vec![], "no subject common name"),
        ] {
            let err = identity_of(Some(&[cert(&cns)])).unwrap_err();
            assert_eq!(err.code(), tonic::Code::PermissionDenied, "{cns:?}");
            assert!(err.message().contains(want), "{cns:?}: {}", err.message());
        }
    }

    #[test]
    fn require_refuses_with_the_decision_text() {
        use romana_core::authz::{Object, Verb};
        let who = Identity::Tenant("t2".into());
        let err = require(&who, Action::new(Verb::Update, Object::Tenant("t1"))).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert_eq!(err.message(), "tenant:t2 may not update tenant t1");
        assert!(require(&who, Action::read(Object::Tenant("t2"))).is_ok());
    }
}
