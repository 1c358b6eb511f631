//! The plugin's first call to ipam-service goes out on a connection no health check has
//! proven (the answer proves it). A registration whose process is frozen still accepts
//! connections: the plugin must notice the silence and move on to an instance that answers,
//! within its deadlines, and make the (idempotent) call there.

mod common;

use std::time::{Duration, Instant};

use common::mk_cluster;
use romana_cni::ipam::{Ipam, PROBE_AFTER};
use romana_cni::NetConf;
use romana_core::ServiceRecord;
use romana_integration::ControlPlane;
use romana_proto::discover::Timeouts;
use romana_proto::pb;
use tokio::net::TcpListener;

/// A loopback URL that accepts connections and never answers, as a frozen process does.
async fn mk_silent_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

fn mk_conf(root: &str) -> NetConf {
    let conf = format!(
        r#"{{"cniVersion":"1.0.0","name":"romana","type":"romana-cni","root":"{root}","host":"h1"}}"#
    );
    NetConf::parse(conf.as_bytes()).unwrap()
}

fn mk_request(id: &str) -> pb::AllocateRequest {
    pb::AllocateRequest {
        endpoint: id.into(),
        host: "h1".into(),
        tenant: "t1".into(),
        segment: "s1".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_ipam_registration_listed_first_is_given_up_for_a_live_one() {
    let plane = ControlPlane::start().await.unwrap();
    mk_cluster(&plane, "10.0.0.0/8", "192.168.0.1".parse().unwrap()).await;
    let conf = mk_conf(&plane.root_url());
    let timeouts = Timeouts {
        connect: Duration::from_millis(300),
        request: Duration::from_secs(20),
    };

    // Alone and live: the first call is the only one.
    let started = Instant::now();
    let (_, first) = Ipam::first_call_with(&conf, timeouts, |mut ipam| async move {
        ipam.allocate(mk_request("c0:eth0")).await
    })
    .await
    .unwrap();
    assert!(started.elapsed() < PROBE_AFTER, "{:?}", started.elapsed());

    // Listed before the live one ("!" sorts before any hostname).
    let silent = mk_silent_url().await;
    let _registration = plane
        .store()
        .register(
            ServiceRecord {
                kind: "ipam".into(),
                instance: "!silent".into(),
                url: silent.clone(),
            },
            10,
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (_, again) = Ipam::first_call_with(&conf, timeouts, |mut ipam| async move {
        ipam.allocate(mk_request("c0:eth0")).await
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(
        again.address, first.address,
        "the same endpoint, the same address"
    );
    assert!(
        took >= PROBE_AFTER && took < PROBE_AFTER + Duration::from_secs(3),
        "the silent instance cost {took:?}"
    );

    // A release goes the same way; an unknown endpoint releases nothing.
    let (_, released) = Ipam::first_call_with(&conf, timeouts, |mut ipam| async move {
        ipam.release("c0:eth0").await
    })
    .await
    .unwrap();
    assert_eq!(released.map(|e| e.address), Some(first.address));
}
