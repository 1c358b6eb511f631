//! The lab itself: a control plane in the management namespace is reachable from a host
//! namespace, and nothing is left behind.

use romana_integration::{require_netns, ControlPlane, Lab, Netns};

#[test]
fn a_host_namespace_reaches_the_control_plane_over_the_management_network() {
    require_netns!("etcdctl");
    let mut lab = Lab::new().unwrap();
    let host = Netns::create("h1").unwrap();
    lab.attach(&host).unwrap();
    let names = (lab.mgmt().name().to_string(), host.name().to_string());
    lab.run(|| async {
        let plane = ControlPlane::start_on(lab.mgmt_ip()).await.unwrap();
        let etcd = plane.etcd_endpoints()[0].clone();
        assert!(etcd.starts_with("http://172.31.0.1:"), "{etcd}");
        assert!(plane.root_url().starts_with("http://172.31.0.1:"));
        // A process in the host namespace writes through etcd; the test reads it back.
        host.exec(
            "etcdctl",
            &["--endpoints", &etcd, "put", "/lab/probe", "from-h1"],
        )
        .unwrap();
        let got = host
            .exec(
                "etcdctl",
                &[
                    "--endpoints",
                    &etcd,
                    "get",
                    "--print-value-only",
                    "/lab/probe",
                ],
            )
            .unwrap();
        assert_eq!(got.trim(), "from-h1");
    })
    .unwrap();
    drop(host);
    drop(lab);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.contains(&names.0) && !left.contains(&names.1),
        "namespaces left: {left}"
    );
}
