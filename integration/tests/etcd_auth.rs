//! etcd's own authorization, as `romanactl etcd-auth setup` configures it, against a real
//! etcd serving TLS with `--client-cert-auth` (the certificate's common name is the user):
//! a host's agent reads the cluster and writes its own status key (also under a lease) and
//! nothing else; the services' identity works as in normal operation.

use std::process::{Command, Stdio};
use std::time::Duration;

use romana_core::{AgentStatus, Host, Tenant};
use romana_integration::cluster::binary;
use romana_integration::{eventually, free_port, EtcdServer, EtcdTlsFiles, Pki, ServiceProcess};
use romana_store::{EtcdTls, Keys, Store};

const IDENTITIES: [&str; 5] = ["admin", "service:root", "service:ipam", "host:h1", "reader"];

fn s(p: std::path::PathBuf) -> String {
    p.display().to_string()
}

/// The store as the etcd user `cn`.
async fn store_as(pki: &Pki, etcd: &EtcdServer, cn: &str) -> Store {
    let tls =
        EtcdTls::from_files(Some(&pki.ca()), Some(&pki.cert(cn)), Some(&pki.key(cn))).unwrap();
    Store::connect_with_tls(&etcd.endpoints(), Keys::default(), tls.as_ref())
        .await
        .unwrap()
}

/// `romanactl etcd-auth setup` as admin; returns stdout, panics with stderr on failure.
fn setup(pki: &Pki, etcd: &EtcdServer, hosts: &[&str]) -> String {
    let mut cmd = Command::new(binary("romanactl"));
    cmd.args(["etcd-auth", "setup", "--etcd-endpoints", &etcd.endpoint()])
        .args(["--etcd-ca", &s(pki.ca())])
        .args(["--etcd-cert", &s(pki.cert("admin"))])
        .args(["--etcd-key", &s(pki.key("admin"))]);
    for h in hosts {
        cmd.args(["--host", h]);
    }
    let out = cmd.output().expect("romanactl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "etcd-auth setup: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn denied<T: std::fmt::Debug>(what: &str, result: Result<T, romana_store::StoreError>) {
    let err = result.expect_err(what);
    // The store names the key; etcd's reason is in the causes.
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(text.contains("permission denied"), "{what}: {text}");
}

fn mk_status(host: &str) -> AgentStatus {
    AgentStatus {
        host: host.into(),
        converged: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_write_only_their_status_and_services_work_under_etcd_auth() {
    assert!(binary("romanactl").exists(), "cargo build --bins");
    let pki = tokio::task::spawn_blocking(|| Pki::new(&IDENTITIES))
        .await
        .unwrap()
        .unwrap();
    let files = EtcdTlsFiles {
        ca: pki.ca(),
        cert: pki.cert("server"),
        key: pki.key("server"),
    };
    let etcd = tokio::task::spawn_blocking(move || EtcdServer::start_tls(files))
        .await
        .unwrap()
        .unwrap();
    let keys = Keys::default();

    // Before auth: the service seeds what the host will read.
    let service = store_as(&pki, &etcd, "service:ipam").await;
    let host = Host {
        name: "h1".into(),
        ip: "192.168.0.1".parse().unwrap(),
        rack: 0,
        index: 0,
        second_ip: None,
    };
    service.put(&keys.host("h1"), &host).await.unwrap();

    let out = setup(&pki, &etcd, &["h1", "h2"]);
    assert!(
        out.contains("role romana-host-h1: readwrite /romana/v1/agents/h1/status"),
        "{out}"
    );
    assert!(out.ends_with("auth enabled\n"), "{out}");
    // Again, with auth on and one more host: what exists is kept.
    let again = setup(&pki, &etcd, &["h1", "h3"]);
    assert!(
        again.contains("user host:h1 (client certificate, no password) (exists)"),
        "{again}"
    );
    assert!(
        again.contains("user host:h3 (client certificate, no password)\n"),
        "{again}"
    );

    // The host's identity: reads everything, writes its own status only.
    let agent = store_as(&pki, &etcd, "host:h1").await;
    let hosts = agent.list(&keys.hosts()).await.unwrap();
    assert_eq!(hosts.items.len(), 1);
    agent.list(&keys.endpoints()).await.unwrap();
    agent
        .put(&keys.agent_status("h1"), &mk_status("h1"))
        .await
        .unwrap();
    denied(
        "host:h1 writing h2's status",
        agent.put(&keys.agent_status("h2"), &mk_status("h2")).await,
    );
    let tenant = Tenant {
        name: "t1".into(),
        id: 0,
        isolation: Default::default(),
        labels: Default::default(),
    };
    denied(
        "host:h1 writing a tenant",
        agent.put(&keys.tenant("t1"), &tenant).await,
    );
    denied(
        "host:h1 deleting a host",
        agent.delete(&keys.host("h1")).await,
    );
    leased_status_write(&pki, &etcd, &keys).await;

    // An identity without an etcd user gets nothing.
    let reader = store_as(&pki, &etcd, "reader").await;
    assert!(
        reader.list(&keys.hosts()).await.is_err(),
        "no user, no data"
    );

    // The services' identity: normal operation, including a real service binary that
    // registers under a lease.
    service.put(&keys.tenant("t1"), &tenant).await.unwrap();
    service
        .put(&keys.agent_status("h2"), &mk_status("h2"))
        .await
        .unwrap();
    let grpc = free_port();
    let root = ServiceProcess::spawn(
        Command::new(binary("romana-root"))
            .args(["--etcd-endpoints", &etcd.endpoint()])
            .args(["--etcd-ca", &s(pki.ca())])
            .args(["--etcd-cert", &s(pki.cert("service:root"))])
            .args(["--etcd-key", &s(pki.key("service:root"))])
            .args(["--listen", &format!("127.0.0.1:{grpc}"), "--insecure"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    eventually(
        "root registered under etcd auth",
        Duration::from_secs(20),
        || async {
            let l = service.list(&keys.services_of("root")).await.ok()?;
            (l.items.len() == 1).then_some(())
        },
    )
    .await
    .unwrap();
    let exit = root.terminate().await.unwrap();
    assert!(exit.success(), "exit status {exit}");
    let left = service.list(&keys.services()).await.unwrap();
    assert!(left.items.is_empty(), "the lease revoked: {:?}", left.items);
}

/// A host identity may also keep its own status key under a lease (etcd asks no key
/// permission for leases): grant, put, keep alive and revoke all work for that key.
async fn leased_status_write(pki: &Pki, etcd: &EtcdServer, keys: &Keys) {
    let read = |p: std::path::PathBuf| std::fs::read(p).unwrap();
    let tls = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read(pki.ca())))
        .identity(etcd_client::Identity::from_pem(
            read(pki.cert("host:h1")),
            read(pki.key("host:h1")),
        ));
    let options = etcd_client::ConnectOptions::new().with_tls(tls);
    let mut client = etcd_client::Client::connect(etcd.endpoints(), Some(options))
        .await
        .unwrap();
    let lease = client.lease_grant(10, None).await.unwrap().id();
    let key = keys.agent_status("h1").path().to_string();
    let value = serde_json::to_string(&mk_status("h1")).unwrap();
    client
        .put(
            key.as_str(),
            value,
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap();
    let (mut keeper, mut stream) = client.lease_keep_alive(lease).await.unwrap();
    keeper.keep_alive().await.unwrap();
    assert!(stream.message().await.unwrap().unwrap().ttl() > 0);
    let other = keys.agent_status("h2").path().to_string();
    let err = client
        .put(
            other.as_str(),
            "{}",
            Some(etcd_client::PutOptions::new().with_lease(lease)),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    client.lease_revoke(lease).await.unwrap();
    let gone = client.get(key.as_str(), None).await.unwrap();
    assert!(
        gone.kvs().is_empty(),
        "revoking the lease removed the status"
    );
}
