//! The service binaries as operators run them: flags, Prometheus metrics, registration, and a
//! clean exit 0 on SIGTERM that withdraws the registration.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use romana_integration::cluster::binary;
use romana_integration::{eventually, mk_store, EtcdServer};
use romana_proto::pb;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Kills the service process if the test fails before stopping it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
    let child = Command::new(&root_bin)
        .args(["--etcd-endpoints", &etcd.endpoint()])
        .args(["--listen", &format!("127.0.0.1:{grpc}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .arg("--insecure")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut guard = KillOnDrop(Some(child));
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

    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut child = guard.0.take().expect("still owned");
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exit status {exit}");
    let left = store.list(&store.keys().services()).await.unwrap();
    assert!(
        left.items.is_empty(),
        "registration withdrawn: {:?}",
        left.items
    );
}
