//! Fixtures of the plugin's tests: a romana cluster on a lab's control plane, plugin calls
//! made the way a runtime makes them (inside the host namespace, CNI_* variables, config on
//! stdin), and a TCP echo between namespaces to prove traffic flows.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use romana_integration::{echo, ControlPlane, Lab, Netns, Service};
use romana_proto::pb;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tonic::transport::Channel;

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_romana-cni");

/// One plugin call's output.
#[derive(Debug)]
pub struct Call {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Call {
    /// Asserts the call succeeded.
    pub fn ok(self) -> Call {
        assert_eq!(
            self.code,
            Some(0),
            "romana-cni failed\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts the call failed with CNI error `code` and returns the error JSON.
    pub fn fails_with(self, code: u64) -> Value {
        assert_ne!(self.code, Some(0), "expected failure, got: {}", self.stdout);
        let json = self.json();
        assert_eq!(json["code"], code, "{json}\nstderr: {}", self.stderr);
        assert!(json["cniVersion"].is_string(), "{json}");
        assert!(
            !json["msg"].as_str().unwrap_or_default().is_empty(),
            "{json}"
        );
        json
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }
}

/// gRPC clients on a control plane.
pub struct Clients {
    pub root: pb::root_client::RootClient<Channel>,
    pub topology: pb::topology_client::TopologyClient<Channel>,
    pub tenants: pb::tenants_client::TenantsClient<Channel>,
    pub ipam: pb::ipam_client::IpamClient<Channel>,
}

async fn mk_channel(url: String) -> Channel {
    Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .expect("service is up")
}

/// A control plane on `lab`'s management network, set up as [`mk_cluster`] does.
pub async fn mk_plane(lab: &Lab, space: &str, host_ip: IpAddr) -> (ControlPlane, Clients) {
    let plane = ControlPlane::start_on(lab.mgmt_ip()).await.unwrap();
    let clients = mk_cluster(&plane, space, host_ip).await;
    (plane, clients)
}

/// `space` with 8 (IPv4) or 16 (IPv6) host bits and 4/4 or 8/8 tenant/segment bits (a
/// dual-stack `FIRST,SECOND` gets 8/4/4 in both); host `h1` at `host_ip`; tenant `t1`
/// (number 0) with segment `s1` (number 1).
pub async fn mk_cluster(plane: &ControlPlane, space: &str, host_ip: IpAddr) -> Clients {
    let mut c = Clients {
        root: pb::root_client::RootClient::new(mk_channel(plane.url(Service::Root)).await),
        topology: pb::topology_client::TopologyClient::new(
            mk_channel(plane.url(Service::Topology)).await,
        ),
        tenants: pb::tenants_client::TenantsClient::new(
            mk_channel(plane.url(Service::Tenant)).await,
        ),
        ipam: pb::ipam_client::IpamClient::new(mk_channel(plane.url(Service::Ipam)).await),
    };
    let (space, second) = space.split_once(',').unwrap_or((space, ""));
    let (host_bits, tenant_bits, segment_bits) = if space.contains(':') && second.is_empty() {
        (16, 8, 8)
    } else {
        (8, 4, 4)
    };
    c.root
        .init_config(pb::InitConfigRequest {
            config: Some(pb::ClusterConfig {
                address_space: space.into(),
                second_address_space: second.into(),
                host_bits,
                tenant_bits,
                segment_bits,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    c.topology
        .add_host(pb::AddHostRequest {
            name: "h1".into(),
            ip: host_ip.to_string(),
            rack: None,
            second_ip: String::new(),
        })
        .await
        .unwrap();
    c.tenants
        .add_tenant(pb::AddTenantRequest {
            name: "t1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    c.tenants
        .add_segment(pb::AddSegmentRequest {
            tenant: "t1".into(),
            name: "s1".into(),
        })
        .await
        .unwrap();
    c
}

impl Clients {
    /// Every endpoint ipam-service holds, by id.
    pub async fn endpoints(&mut self) -> Vec<pb::Endpoint> {
        self.ipam
            .list_endpoints(pb::ListEndpointsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .endpoints
    }

    pub async fn endpoint_ids(&mut self) -> Vec<String> {
        let mut ids: Vec<String> = self.endpoints().await.into_iter().map(|e| e.id).collect();
        ids.sort();
        ids
    }
}

/// The network config: `{"cniVersion": "1.0.0", "name": "romana", "type": "romana-cni",
/// "root": ROOT, "host": "h1"}` with `extra`'s keys added (a `null` removes a key).
pub fn mk_conf(root: &str, extra: Value) -> String {
    let mut conf = json!({
        "cniVersion": "1.0.0",
        "name": "romana",
        "type": "romana-cni",
        "root": root,
        "host": "h1",
    });
    for (k, v) in extra.as_object().expect("extra is an object") {
        if v.is_null() {
            conf.as_object_mut().unwrap().remove(k);
        } else {
            conf[k] = v.clone();
        }
    }
    conf.to_string()
}

/// The CNI_* variables of a call for container `id` (interface `eth0` unless given).
pub fn mk_vars(command: &str, id: &str, netns: Option<&Path>, args: &str) -> Vec<(String, String)> {
    let plugin_dir = Path::new(PLUGIN).parent().unwrap();
    let mut vars = vec![
        ("CNI_COMMAND".to_string(), command.to_string()),
        ("CNI_CONTAINERID".to_string(), id.to_string()),
        ("CNI_IFNAME".to_string(), "eth0".to_string()),
        ("CNI_ARGS".to_string(), args.to_string()),
        ("CNI_PATH".to_string(), plugin_dir.display().to_string()),
    ];
    vars.push((
        "CNI_NETNS".to_string(),
        netns.map(|p| p.display().to_string()).unwrap_or_default(),
    ));
    vars
}

/// Runs romana-cni inside `host` with only `vars` (and PATH) in its environment and `conf`
/// on stdin, as a runtime does.
pub async fn cni(host: &Netns, conf: &str, vars: &[(String, String)]) -> Call {
    let mut cmd = tokio::process::Command::from(host.command(PLUGIN));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ROMANA_CNI_LOG", "romana_cni=debug")
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("romana-cni starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(conf.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("romana-cni finishes within 60s")
        .unwrap();
    Call {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Connects from namespace `from` to a TCP server in namespace `to` listening on `addr`,
/// echoes a message, and returns the client address the server saw. Blocks; call it with
/// `tokio::task::block_in_place` from async code.
pub fn tcp_echo(from: &Netns, to: &Netns, addr: IpAddr) -> anyhow::Result<IpAddr> {
    // A fresh IPv6 link may answer "no route to host" until neighbor discovery on both host
    // links has settled (slow on a loaded machine); retry within a bound.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let at = std::net::SocketAddr::new(addr, 0);
        match echo::tcp_echo(from, to, at, Duration::from_secs(10))? {
            Ok(peer) => return Ok(peer.ip()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => return Err(e.into()),
        }
    }
}
