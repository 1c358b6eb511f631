//! `romanactl ipam list --watch` across the loss of its ipam-service: the service binary
//! drains and exits 0 on SIGTERM although a watch stream is open, romanactl says in one line
//! that it reconnects, finds the next instance through root and prints its listing.
//! Needs the binaries: `cargo build -p romanactl -p romana-ipam`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use romana_integration::cluster::{binary, CONFIG_INIT};
use romana_integration::{free_port, ControlPlane, Service, ServiceProcess};
use romana_proto::pb;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// romana-ipam as operators run it, on a fresh port; returns it and its URL.
async fn start_ipam(plane: &ControlPlane) -> (ServiceProcess, String) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let bin = binary("romana-ipam");
    assert!(
        bin.exists(),
        "{} missing: cargo build -p romana-ipam",
        bin.display()
    );
    let process = ServiceProcess::spawn(
        Command::new(bin)
            .args(["--etcd-endpoints", &plane.etcd_endpoints().join(",")])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--insecure")
            .env_remove("ROMANA_ADVERTISE")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    plane.wait_registered(Service::Ipam, &url).await.unwrap();
    (process, url)
}

async fn romanactl(root: &str, args: &[&str]) {
    let out = tokio::process::Command::new(binary("romanactl"))
        .args(["--root", root])
        .args(args)
        .env(
            "ROMANACTL_CONFIG",
            "/nonexistent/romanactl-tests/config.yaml",
        )
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "romanactl {args:?}: {out:?}");
}

async fn allocate(url: &str, id: &str) {
    let mut ipam = pb::ipam_client::IpamClient::connect(url.to_string())
        .await
        .unwrap();
    let request = pb::AllocateRequest {
        endpoint: id.into(),
        host: "h1".into(),
        tenant: "t1".into(),
        ..Default::default()
    };
    ipam.allocate(request).await.unwrap();
}

/// The endpoint ids of the next listing romanactl prints.
async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Vec<String> {
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a listing within 10 s")
        .unwrap()
        .expect("stdout open");
    let listing: serde_json::Value = serde_json::from_str(&line).unwrap();
    let mut ids: Vec<String> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["endpoint"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn ipam_watch_survives_its_service_draining_and_reconnects_through_root() {
    let plane = ControlPlane::builder()
        .without(Service::Ipam)
        .start()
        .await
        .unwrap();
    let root = plane.root_url();
    romanactl(&root, &CONFIG_INIT).await;
    romanactl(&root, &["host", "add", "h1", "--ip", "192.168.0.1"]).await;
    romanactl(&root, &["tenant", "add", "t1"]).await;
    let (first, first_url) = start_ipam(&plane).await;
    allocate(&first_url, "e1").await;

    let mut watch = tokio::process::Command::new(binary("romanactl"))
        .args(["--root", &root, "ipam", "list", "--watch", "-o", "json"])
        .env(
            "ROMANACTL_CONFIG",
            "/nonexistent/romanactl-tests/config.yaml",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert_eq!(next(&mut lines).await, ["e1"]);

    // Graceful shutdown must not wait for the open stream.
    let stopping = Instant::now();
    let exit = first.terminate().await.unwrap();
    assert!(exit.success(), "romana-ipam exits 0 on SIGTERM: {exit}");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "drained in {:?} with a watch open",
        stopping.elapsed()
    );

    let (second, second_url) = start_ipam(&plane).await;
    allocate(&second_url, "e2").await;
    assert_eq!(
        next(&mut lines).await,
        ["e1", "e2"],
        "reconnected to the new instance"
    );

    romana_integration::process::signal(watch.id().unwrap(), "TERM").unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), watch.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    watch
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    let notes: Vec<&str> = stderr.lines().collect();
    assert!(!notes.is_empty(), "the loss is reported");
    assert!(
        notes[0].starts_with("warning: watch stream lost (")
            && notes[0].ends_with("; reconnecting in 250 ms"),
        "{stderr}"
    );
    assert!(
        notes.iter().all(|n| n.starts_with("warning: ")),
        "one line per attempt: {stderr}"
    );
    second.terminate().await.unwrap();
}
