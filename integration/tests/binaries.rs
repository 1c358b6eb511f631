//! The service binaries as operators run them: flags, Prometheus metrics, registration, and a
//! clean exit 0 on SIGTERM that withdraws the registration.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use romana_integration::cluster::{binary, CONFIG_INIT};
use romana_integration::{eventually, free_port, mk_store, EtcdServer, Pki, ServiceProcess};
use romana_proto::pb;

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[tokio::test(flavor = "multi_thread")]
async fn root_binary_serves_metrics_registers_and_exits_0_on_sigterm() {
    let root_bin = binary("romana-root");
    assert!(
        root_bin.exists(),
        "{} missing: cargo build --bins",
        root_bin.display()
    );
    let etcd = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap()
        .unwrap();
    let (grpc, metrics) = (free_port(), free_port());
    let service = ServiceProcess::spawn(
        Command::new(&root_bin)
            .args(["--etcd-endpoints", &etcd.endpoint()])
            .args(["--listen", &format!("127.0.0.1:{grpc}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .arg("--insecure")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let store = mk_store(&etcd.endpoints()).await;
    let registered = eventually("root registered", Duration::from_secs(20), || async {
        let l = store.list(&store.keys().services_of("root")).await.ok()?;
        (l.items.len() == 1).then(|| l.items[0].value.url.clone())
    })
    .await
    .unwrap();
    assert_eq!(registered, format!("http://127.0.0.1:{grpc}"));

    let mut client = pb::root_client::RootClient::connect(registered)
        .await
        .unwrap();
    let status = client
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let body = eventually("metrics", Duration::from_secs(10), || async {
        http_get(metrics, "/metrics").filter(|b| b.contains("romana_grpc_requests_total"))
    })
    .await
    .unwrap();
    assert!(
        body.contains(
            r#"romana_grpc_requests_total{method="/romana.v1.Root/GetConfig",code="9"} 1"#
        ),
        "{body}"
    );

    let exit = service.terminate().await.unwrap();
    assert!(exit.success(), "exit status {exit}");
    let left = store.list(&store.keys().services()).await.unwrap();
    assert!(
        left.items.is_empty(),
        "registration withdrawn: {:?}",
        left.items
    );
}

/// The CA, `server` and an `admin` client certificate, made by `romanactl certs`.
fn pki() -> Pki {
    Pki::new(&["admin"]).unwrap()
}

fn path(pki: &Pki, file: &str) -> String {
    pki.path(file).display().to_string()
}

/// A command with no ROMANA_* TLS or root settings from the test's own environment.
fn clean_command(bin: &std::path::Path) -> Command {
    let mut cmd = Command::new(bin);
    for var in [
        "ROMANA_ROOT",
        "ROMANA_TLS_CA",
        "ROMANA_TLS_CERT",
        "ROMANA_TLS_KEY",
        "ROMANA_ADVERTISE",
        "ROMANA_METRICS_LISTEN",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs romanactl and returns (exit code, stdout, stderr).
async fn romanactl(args: Vec<String>) -> (i32, String, String) {
    let mut cmd = clean_command(&binary("romanactl"));
    cmd.args(&args).args(["--timeout", "10"]);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_error_line(what: &str, (code, stdout, stderr): &(i32, String, String)) {
    assert_eq!(
        *code, 1,
        "{what}: exit code; stdout {stdout:?} stderr {stderr:?}"
    );
    assert_eq!(stderr.lines().count(), 1, "{what}: one line: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{what}: {stderr:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn root_binary_serves_mutual_tls_and_romanactl_needs_ca_and_client_certificate() {
    let root_bin = binary("romana-root");
    assert!(
        root_bin.exists() && binary("romanactl").exists(),
        "binaries missing: cargo build --bins"
    );
    let pki = pki();
    let etcd = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap()
        .unwrap();
    let grpc = free_port();
    let service = ServiceProcess::spawn(
        clean_command(&root_bin)
            .args(["--etcd-endpoints", &etcd.endpoint()])
            .args(["--listen", &format!("127.0.0.1:{grpc}")])
            .args(["--tls-cert", &path(&pki, "server.pem")])
            .args(["--tls-key", &path(&pki, "server-key.pem")])
            .args(["--tls-ca", &path(&pki, "ca.pem")])
            // gRPC is TLS; --insecure only allows the test's plaintext etcd.
            .arg("--insecure")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let store = mk_store(&etcd.endpoints()).await;
    let registered = eventually("root registered", Duration::from_secs(20), || async {
        let l = store.list(&store.keys().services_of("root")).await.ok()?;
        (l.items.len() == 1).then(|| l.items[0].value.url.clone())
    })
    .await
    .unwrap();
    let url = format!("https://127.0.0.1:{grpc}");
    assert_eq!(registered, url, "advertised URL is https when serving TLS");

    let tls = |with_client: bool| {
        let mut args = vec![
            "--root".to_string(),
            url.clone(),
            "--tls-ca".into(),
            path(&pki, "ca.pem"),
        ];
        if with_client {
            args.extend([
                "--tls-cert".into(),
                path(&pki, "admin.pem"),
                "--tls-key".into(),
                path(&pki, "admin-key.pem"),
            ]);
        }
        args
    };
    let with = |base: Vec<String>, rest: &[&str]| {
        let mut args = base;
        args.extend(rest.iter().map(|s| s.to_string()));
        args
    };

    // With the CA and a client certificate: the layout is set and shown.
    let (code, stdout, stderr) = romanactl(with(tls(true), &CONFIG_INIT)).await;
    assert_eq!(code, 0, "config init over mTLS: {stderr}");
    assert!(stdout.contains("10.0.0.0/8"), "{stdout}");
    let (code, stdout, stderr) =
        romanactl(with(tls(true), &["config", "show", "-o", "json"])).await;
    assert_eq!(code, 0, "config show over mTLS: {stderr}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(shown["address_space"], "10.0.0.0/8", "{stdout}");
    assert_eq!(shown["host_bits"], 8, "{stdout}");

    // Without a client certificate the server refuses the handshake.
    let no_client = romanactl(with(tls(false), &["config", "show"])).await;
    assert_one_error_line("no client certificate", &no_client);

    // https:// without a CA: a clear error naming the flag, no connection attempt needed.
    let no_ca = romanactl(vec![
        "--root".into(),
        url.clone(),
        "config".into(),
        "show".into(),
    ])
    .await;
    assert_one_error_line("no CA", &no_ca);
    assert!(no_ca.2.contains("--tls-ca"), "{}", no_ca.2);

    // A plaintext client cannot talk to the TLS server.
    let plain = romanactl(vec![
        "--root".into(),
        format!("http://127.0.0.1:{grpc}"),
        "config".into(),
        "show".into(),
    ])
    .await;
    assert_one_error_line("plaintext client", &plain);

    // A certificate without its key is a usage error.
    let half = romanactl(with(
        vec![
            "--root".into(),
            url.clone(),
            "--tls-cert".into(),
            path(&pki, "admin.pem"),
        ],
        &["config", "show"],
    ))
    .await;
    assert_eq!(half.0, 2, "{half:?}");
    assert!(half.2.contains("--tls-cert needs --tls-key"), "{half:?}");

    let exit = service.terminate().await.unwrap();
    assert!(exit.success(), "exit status {exit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn service_binaries_refuse_plaintext_without_insecure_and_half_given_tls_flags() {
    let pki = pki();
    // etcd is never reached: the flags are checked first.
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "romana-root",
            vec![],
            "refusing to serve plaintext gRPC without --insecure; \
             give --tls-cert/--tls-key or --insecure",
        ),
        (
            "romana-ipam",
            vec![],
            "refusing to serve plaintext gRPC without --insecure",
        ),
        (
            "romana-root",
            vec!["--tls-cert".into(), path(&pki, "server.pem")],
            "--tls-cert needs --tls-key",
        ),
        (
            "romana-root",
            vec!["--tls-key".into(), path(&pki, "server-key.pem")],
            "--tls-key needs --tls-cert",
        ),
        (
            "romana-root",
            vec!["--tls-ca".into(), path(&pki, "ca.pem")],
            "--tls-ca needs --tls-cert",
        ),
        (
            "romana-root",
            vec![
                "--tls-cert".into(),
                path(&pki, "missing.pem"),
                "--tls-key".into(),
                path(&pki, "server-key.pem"),
            ],
            "cannot read --tls-cert",
        ),
        (
            "romana-root",
            vec![
                "--tls-cert".into(),
                path(&pki, "server-key.pem"),
                "--tls-key".into(),
                path(&pki, "server-key.pem"),
            ],
            "holds no PEM CERTIFICATE",
        ),
        (
            "romana-root",
            vec![
                "--tls-cert".into(),
                path(&pki, "server.pem"),
                "--tls-key".into(),
                path(&pki, "server-key.pem"),
            ],
            "refusing plaintext etcd endpoint http://127.0.0.1:1 without --insecure",
        ),
    ];
    for (bin, args, want) in cases {
        let out = clean_command(&binary(bin))
            .args(["--etcd-endpoints", "http://127.0.0.1:1"])
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bin} {args:?}: {stderr}");
        assert!(stderr.contains(want), "{bin} {args:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{bin} {args:?}: {stderr:?}"
        );
    }
}

/// etcd serving TLS and requiring client certificates: the store and a service binary reach
/// it with --etcd-ca/--etcd-cert/--etcd-key; without a client certificate nothing is read.
#[tokio::test(flavor = "multi_thread")]
async fn services_reach_an_etcd_that_requires_client_certificates() {
    let pki = pki();
    let files = romana_integration::EtcdTlsFiles {
        ca: path(&pki, "ca.pem").into(),
        cert: path(&pki, "server.pem").into(),
        key: path(&pki, "server-key.pem").into(),
    };
    let etcd = tokio::task::spawn_blocking(move || EtcdServer::start_tls(files))
        .await
        .unwrap()
        .unwrap();
    assert!(etcd.endpoint().starts_with("https://"));
    let (ca, cert, key) = (
        path(&pki, "ca.pem"),
        path(&pki, "admin.pem"),
        path(&pki, "admin-key.pem"),
    );
    let tls = romana_store::EtcdTls::from_files(
        Some(ca.as_ref()),
        Some(cert.as_ref()),
        Some(key.as_ref()),
    )
    .unwrap();
    let keys = romana_store::Keys::default();
    let store =
        romana_store::Store::connect_with_tls(&etcd.endpoints(), keys.clone(), tls.as_ref())
            .await
            .unwrap();
    let probe = keys.host_ip("192.0.2.1".parse().unwrap());
    store.put(&probe, &"h1".to_string()).await.unwrap();
    assert_eq!(store.get(&probe).await.unwrap().unwrap().value, "h1");

    let ca_only = romana_store::EtcdTls::from_files(Some(ca.as_ref()), None, None).unwrap();
    let refused = romana_store::Store::connect_with_tls(&etcd.endpoints(), keys, ca_only.as_ref())
        .await
        .unwrap();
    assert!(
        refused.get(&probe).await.is_err(),
        "no client certificate, no data"
    );

    let grpc = free_port();
    let service = ServiceProcess::spawn(
        Command::new(binary("romana-root"))
            .args(["--etcd-endpoints", &etcd.endpoint()])
            .args(["--etcd-ca", &ca, "--etcd-cert", &cert, "--etcd-key", &key])
            .args(["--listen", &format!("127.0.0.1:{grpc}"), "--insecure"])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    eventually(
        "root registered through TLS etcd",
        Duration::from_secs(20),
        || async {
            let l = store.list(&store.keys().services_of("root")).await.ok()?;
            (l.items.len() == 1).then_some(())
        },
    )
    .await
    .unwrap();
    let exit = service.terminate().await.unwrap();
    assert!(exit.success(), "exit status {exit}");
}

#[test]
fn agent_refuses_plaintext_etcd_without_insecure() {
    let agent = binary("romana-agent");
    assert!(
        agent.exists(),
        "{} missing: cargo build --bins",
        agent.display()
    );
    let out = clean_command(&agent)
        .args([
            "--host",
            "h1",
            "--etcd-endpoints",
            "http://127.0.0.1:1",
            "--once",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("refusing plaintext etcd endpoint http://127.0.0.1:1 without --insecure"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr:?}");
}

/// `romanactl certs` as an operator runs it: file names, key modes, and no overwriting.
#[tokio::test(flavor = "multi_thread")]
async fn romanactl_certs_init_and_issue_write_named_files_with_keys_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let d = dir.display().to_string();
    let run = |args: &[&str]| romanactl(args.iter().map(|s| s.to_string()).collect());
    let (code, stdout, stderr) = run(&["certs", "init", &d]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ca-key.pem"), "{stdout}");
    for (args, files) in [
        (
            vec!["--cn", "tenant:t1"],
            ["tenant-t1.pem", "tenant-t1-key.pem"],
        ),
        (
            vec!["--cn", "host:h1", "--out", "h1"],
            ["h1.pem", "h1-key.pem"],
        ),
        (
            vec![
                "--server",
                "--dns",
                "localhost",
                "romana.example",
                "--ip",
                "127.0.0.1",
            ],
            ["localhost.pem", "localhost-key.pem"],
        ),
    ] {
        let mut cmd = vec!["certs", "issue", &d];
        cmd.extend(args.iter().copied());
        let (code, _, stderr) = run(&cmd).await;
        assert_eq!(code, 0, "{args:?}: {stderr}");
        for f in files {
            assert!(dir.join(f).exists(), "{args:?}: {f}");
        }
    }
    let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
    for key in [
        "ca-key.pem",
        "tenant-t1-key.pem",
        "h1-key.pem",
        "localhost-key.pem",
    ] {
        assert_eq!(mode(key), 0o600, "{key}");
    }
    let again = run(&["certs", "issue", &d, "--cn", "tenant:t1"]).await;
    assert_one_error_line("issuing onto existing files", &again);
    assert!(again.2.contains("already exists"), "{}", again.2);
    let bad = run(&["certs", "issue", &d, "--cn", "root"]).await;
    assert_one_error_line("an unknown identity", &bad);
    assert!(
        bad.2.contains("is not admin, reader, tenant:NAME"),
        "{}",
        bad.2
    );
}
