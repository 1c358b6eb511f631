use super::*;

#[tokio::test]
async fn https_without_a_ca_is_refused_before_connecting() {
    let err = channel_with_tls("https://127.0.0.1:1", "root", Timeouts::default(), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "https://127.0.0.1:1 is https:// but no CA certificate was given to verify it; \
         give --tls-ca"
    );
    assert!(!err.is_retryable());
}

#[test]
fn client_tls_files_come_in_pairs() {
    let p = std::path::Path::new("x.pem");
    assert_eq!(ClientTls::from_files(None, None, None), Ok(None));
    assert_eq!(
        ClientTls::from_files(None, Some(p), None),
        Err("--tls-cert needs --tls-key".to_string())
    );
    assert_eq!(
        ClientTls::from_files(None, None, Some(p)),
        Err("--tls-key needs --tls-cert".to_string())
    );
    let err = ClientTls::from_files(
        Some(std::path::Path::new("/nonexistent/ca.pem")),
        None,
        None,
    )
    .unwrap_err();
    assert!(
        err.starts_with("cannot read --tls-ca /nonexistent/ca.pem: "),
        "{err}"
    );
}

#[test]
fn not_registered_says_which_service_to_start() {
    let err = DiscoverError::NotRegistered {
        kind: "ipam".into(),
        root: "http://127.0.0.1:9600".into(),
    };
    assert_eq!(
        err.to_string(),
        "no ipam-service is registered with root at http://127.0.0.1:9600; \
         is romana-ipam running?"
    );
    assert!(err.is_retryable());
}

#[test]
fn registry_errors_show_the_message_not_the_status_struct() {
    let err = DiscoverError::Registry {
        root: "http://r:9600".into(),
        status: tonic::Status::unavailable("etcd unavailable: no leader"),
    };
    assert_eq!(
        err.to_string(),
        "root-service at http://r:9600 could not list services: etcd unavailable: no leader"
    );
    assert!(err.is_retryable());
    let timed_out = DiscoverError::Registry {
        root: "http://r:9600".into(),
        status: tonic::Status::cancelled("Timeout expired"),
    };
    assert!(timed_out
        .to_string()
        .ends_with("could not list services: no answer in time"));
}

#[test]
fn unreachable_lists_every_url_tried() {
    let err = DiscoverError::Unreachable {
        kind: "tenant".into(),
        root: "http://r:9600".into(),
        tried: vec![
            Attempt {
                url: "http://a:1".into(),
                reason: "Connection refused".into(),
            },
            Attempt {
                url: "http://b:2".into(),
                reason: "timed out".into(),
            },
        ],
    };
    assert_eq!(
        err.to_string(),
        "no registered tenant-service is reachable (root at http://r:9600 lists 2): \
         http://a:1: Connection refused; http://b:2: timed out"
    );
}
