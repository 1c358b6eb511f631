//! Callers without an identity: a CA-signed certificate naming none is refused on every
//! call; without client certificates (no mutual TLS) every caller is admin.

use romana_integration::Service;
use romana_proto::pb;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, ServerTlsConfig};
use tonic::Code;

use crate::calls::Call;
use crate::plane::MtlsPlane;
use crate::seeded;

/// A certificate the CA signed whose common name is no identity (romanactl refuses to
/// issue one, so the test signs it itself).
fn sign_stranger(plane: &MtlsPlane, cn: &str) {
    let read = |f: &str| std::fs::read_to_string(plane.pki.path(f)).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&read("ca-key.pem")).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&read("ca.pem"), ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(plane.pki.cert(cn), cert.pem()).unwrap();
    std::fs::write(plane.pki.key(cn), key.serialize_pem()).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_that_names_no_identity_is_refused_on_every_call() {
    let plane = seeded().await;
    sign_stranger(&plane, "romanactl");
    let stranger = plane.clients("romanactl").await;
    for call in [
        Call::GetConfig,
        Call::InitConfig,
        Call::ListServices,
        Call::Release("e1"),
    ] {
        let before = plane.revision().await;
        let err = call.run(&stranger).await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{call:?}: {err:?}");
        assert!(
            err.message().starts_with(
                "certificate common name \"romanactl\" is not admin, reader, tenant:NAME"
            ),
            "{call:?}: {}",
            err.message()
        );
        assert_eq!(plane.revision().await, before, "{call:?}");
    }
}

/// Without mutual TLS nobody presents a certificate: every caller is admin.
#[tokio::test(flavor = "multi_thread")]
async fn without_client_certificates_every_caller_is_admin() {
    let mut plane = seeded().await;
    let dir = plane.pki.dir().to_path_buf();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let server_only = ServerTlsConfig::new().identity(Identity::from_pem(
        read("server.pem"),
        read("server-key.pem"),
    ));
    let tls_url = plane.serve(Service::Tenant, Some(server_only)).await;
    let plain_url = plane.serve(Service::Tenant, None).await;
    let client_tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .domain_name("localhost");
    let tls = Channel::from_shared(tls_url)
        .unwrap()
        .tls_config(client_tls)
        .unwrap();
    let plain = Channel::from_shared(plain_url).unwrap();
    for (what, channel, tenant) in [
        ("TLS without --tls-ca", tls, "t8"),
        ("plaintext", plain, "t9"),
    ] {
        let mut tenants = pb::tenants_client::TenantsClient::new(channel.connect().await.unwrap());
        let before = plane.revision().await;
        tenants
            .add_tenant(pb::AddTenantRequest {
                name: tenant.into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        tenants
            .update_tenant(pb::UpdateTenantRequest {
                name: tenant.into(),
                isolation: pb::Isolation::None as i32,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert!(plane.revision().await > before, "{what}: written");
    }
}
