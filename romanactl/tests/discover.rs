//! Discovery and error lines against a fake root-service served in-process: what a user
//! sees when services are missing or dead, without needing etcd.

mod support;

use std::sync::Mutex;

use romana_proto::discover::{self, DiscoverError};
use romana_proto::pb::{self, root_server};
use support::romanactl;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// A root that answers from fixed data.
#[derive(Default)]
struct FakeRoot {
    config: Option<pb::ClusterConfig>,
    services: Mutex<Vec<pb::ServiceInstance>>,
}

#[tonic::async_trait]
impl root_server::Root for FakeRoot {
    async fn init_config(
        &self,
        _: Request<pb::InitConfigRequest>,
    ) -> Result<Response<pb::InitConfigResponse>, Status> {
        Err(Status::unimplemented("the fake root keeps its layout"))
    }

    async fn get_config(
        &self,
        _: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::ClusterConfig>, Status> {
        self.config
            .clone()
            .map(Response::new)
            .ok_or_else(|| Status::not_found("the cluster layout is not set; run config init"))
    }

    async fn list_services(
        &self,
        req: Request<pb::ListServicesRequest>,
    ) -> Result<Response<pb::ListServicesResponse>, Status> {
        let kind = req.into_inner().kind;
        let services = self.services.lock().unwrap().clone();
        Ok(Response::new(pb::ListServicesResponse {
            services: services
                .into_iter()
                .filter(|s| kind.is_empty() || s.kind == kind)
                .collect(),
        }))
    }
}

/// Serves `root` on a loopback port until the test's runtime ends; returns its URL. The
/// fake registers itself as "root", after any instances it was given.
async fn mk_root(root: FakeRoot) -> String {
    mk_root_also_as(root, &[]).await
}

/// Like [`mk_root`], and the fake also registers itself under `kinds`, so that a test can
/// tell which registered URL a client connected to.
async fn mk_root_also_as(root: FakeRoot, kinds: &[&str]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    for kind in std::iter::once(&"root").chain(kinds) {
        root.services.lock().unwrap().push(mk_instance(kind, &url));
    }
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(root_server::RootServer::new(root))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    url
}

fn mk_instance(kind: &str, url: &str) -> pb::ServiceInstance {
    pb::ServiceInstance {
        kind: kind.into(),
        instance: format!("{kind}-test"),
        url: url.into(),
    }
}

/// A loopback URL nothing listens on.
async fn mk_dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

fn mk_config() -> pb::ClusterConfig {
    pb::ClusterConfig {
        address_space: "10.0.0.0/8".into(),
        host_bits: 8,
        rack_bits: 0,
        tenant_bits: 4,
        segment_bits: 4,
        single_tenant: false,
        endpoint_bits: 8,
        second_address_space: String::new(),
        second_endpoint_bits: 0,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unregistered_service_is_one_error_line_naming_it() {
    let root = mk_root(FakeRoot::default()).await;
    let line = romanactl(&root, &["host", "list"]).await.error();
    assert_eq!(
        line,
        format!(
            "error: no topology-service is registered with root at {root}; \
             is romana-topology running?"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_root_is_one_error_line_naming_it() {
    let dead = mk_dead_url().await;
    let line = romanactl(&dead, &["tenant", "list", "-o", "json"])
        .await
        .error();
    assert!(
        line.starts_with(&format!("error: cannot reach root-service at {dead}: ")),
        "{line}"
    );
    assert!(line.contains("refused"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn root_url_without_scheme_is_refused_as_a_bad_url() {
    let line = romanactl("127.0.0.1:9600", &["status"]).await.error();
    assert!(line.contains("is not a usable URL"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dead_registration_is_named_in_the_error() {
    let fake = FakeRoot::default();
    let dead = [mk_dead_url().await, mk_dead_url().await];
    for url in &dead {
        fake.services.lock().unwrap().push(mk_instance("ipam", url));
    }
    let root = mk_root(fake).await;
    let err = discover::channel(&root, "ipam").await.unwrap_err();
    match &err {
        DiscoverError::Unreachable { kind, tried, .. } => {
            assert_eq!(kind, "ipam");
            let urls: Vec<&str> = tried.iter().map(|t| t.url.as_str()).collect();
            assert_eq!(urls, [dead[0].as_str(), dead[1].as_str()]);
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(err.is_retryable());
    let line = romanactl(&root, &["ipam", "list"]).await.error();
    assert!(
        line.starts_with("error: no registered ipam-service is reachable"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_registration_is_skipped_for_a_live_one() {
    let fake = FakeRoot {
        config: Some(mk_config()),
        ..Default::default()
    };
    let dead = mk_dead_url().await;
    fake.services
        .lock()
        .unwrap()
        .push(mk_instance("mirror", &dead));
    // The live "mirror" is the fake root itself, listed after the dead one: a call that
    // reaches it proves the client moved on.
    let root = mk_root_also_as(fake, &["mirror"]).await;
    let channel = discover::channel(&root, "mirror").await.unwrap();
    let config = pb::root_client::RootClient::new(channel)
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config, mk_config());
}

#[tokio::test(flavor = "multi_thread")]
async fn config_show_prints_a_table_and_json_from_root() {
    let root = mk_root(FakeRoot {
        config: Some(mk_config()),
        ..Default::default()
    })
    .await;
    let table = romanactl(&root, &["config", "show"]).await.ok();
    assert_eq!(
        table,
        "ADDRESS-SPACE   HOST-BITS   RACK-BITS   TENANT-BITS   SEGMENT-BITS   ENDPOINT-BITS   SINGLE-TENANT\n\
         10.0.0.0/8      8           0           4             4              8               false\n"
    );
    let json = romanactl(&root, &["config", "show", "-o", "json"])
        .await
        .json();
    assert_eq!(
        json,
        serde_json::json!({
            "address_space": "10.0.0.0/8",
            "host_bits": 8,
            "rack_bits": 0,
            "tenant_bits": 4,
            "segment_bits": 4,
            "endpoint_bits": 8,
            "single_tenant": false,
        })
    );
    let yaml = romanactl(&root, &["config", "show", "-o", "yaml"])
        .await
        .ok();
    assert!(
        yaml.starts_with("address_space: 10.0.0.0/8\nhost_bits: 8\n"),
        "{yaml}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_show_before_init_is_not_found() {
    let root = mk_root(FakeRoot::default()).await;
    let line = romanactl(&root, &["config", "show"]).await.error();
    assert_eq!(
        line,
        "error: not found: the cluster layout is not set; run config init"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_with_only_root_lists_what_is_missing() {
    let root = mk_root(FakeRoot {
        config: Some(mk_config()),
        ..Default::default()
    })
    .await;
    let status = romanactl(&root, &["status", "-o", "json"]).await.json();
    assert_eq!(status["root"], root.as_str());
    assert_eq!(status["config"]["address_space"], "10.0.0.0/8");
    assert_eq!(status["services"][0]["kind"], "root");
    assert_eq!(status["counts"]["hosts"], serde_json::Value::Null);
    let problems: Vec<&str> = status["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems[0].starts_with("hosts: no topology-service"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("tenants, segments: no tenant-service"),
        "{problems:?}"
    );
    assert!(
        problems[2].starts_with("endpoints: no ipam-service"),
        "{problems:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_keep_clap_exit_code_two() {
    let root = mk_root(FakeRoot::default()).await;
    let run = romanactl(&root, &["tenant", "add", "t1", "--label", "oops"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("is not KEY=VALUE"), "{run:?}");
    let run = romanactl(
        &root,
        &["tenant", "add", "t1", "--label", "a=1", "--label", "a=2"],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stderr, "error: label \"a\" is given more than once\n");
}

/// A loopback URL that accepts connections and never answers, as a hung process does.
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

#[tokio::test(flavor = "multi_thread")]
async fn hung_root_times_out_instead_of_hanging() {
    let silent = mk_silent_url().await;
    let started = std::time::Instant::now();
    let line = romanactl(&silent, &["status", "--timeout", "1"])
        .await
        .error();
    assert_eq!(
        line,
        "error: timed out: no answer within the request timeout (--timeout)"
    );
    let line = romanactl(&silent, &["host", "list", "--timeout", "1"])
        .await
        .error();
    assert!(
        line.starts_with(&format!(
            "error: root-service at {silent} could not list services: no answer in time"
        )),
        "{line}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// A frozen process's registration outlives it, and the kernel still accepts connections
/// for it: discovery must see that it does not answer and move on, not hand out a channel
/// on which every call waits for the request timeout.
#[tokio::test(flavor = "multi_thread")]
async fn a_registration_that_accepts_but_never_answers_is_skipped_for_a_live_one() {
    let fake = FakeRoot {
        config: Some(mk_config()),
        ..Default::default()
    };
    let silent = mk_silent_url().await;
    fake.services
        .lock()
        .unwrap()
        .push(mk_instance("mirror", &silent));
    let root = mk_root_also_as(fake, &["mirror"]).await;
    let timeouts = discover::Timeouts {
        connect: std::time::Duration::from_millis(300),
        request: std::time::Duration::from_secs(5),
    };
    let started = std::time::Instant::now();
    let channel = discover::channel_with(&root, "mirror", timeouts)
        .await
        .unwrap();
    let config = pb::root_client::RootClient::new(channel)
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(config, mk_config());
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(2),
        "the silent instance cost {took:?}, more than its health-check deadline"
    );

    // Alone, it is reported as connected but silent.
    let fake = FakeRoot::default();
    fake.services
        .lock()
        .unwrap()
        .push(mk_instance("ipam", &silent));
    let root = mk_root(fake).await;
    let err = discover::channel_with(&root, "ipam", timeouts)
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(
        err.to_string().ends_with(&format!(
            "{silent}: connected, but no answer to a health check within 300ms"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_root_in_a_comma_list_is_skipped_for_the_next() {
    let dead = mk_dead_url().await;
    let root = mk_root(FakeRoot {
        config: Some(mk_config()),
        ..Default::default()
    })
    .await;
    let roots = format!("{dead},{root}");
    let table = romanactl(&roots, &["config", "show"]).await.ok();
    assert!(table.starts_with("ADDRESS-SPACE"), "{table}");

    // Every root dead: one line naming each.
    let other_dead = mk_dead_url().await;
    let line = romanactl(&format!("{dead}, {other_dead}"), &["ipam", "list"])
        .await
        .error();
    assert!(
        line.starts_with(
            "error: no ipam-service could be found through any of the 2 root-services"
        ),
        "{line}"
    );
    assert!(line.contains(&dead) && line.contains(&other_dead), "{line}");
    // A bad URL anywhere in the list is refused before anything is tried.
    let line = romanactl(&format!("{root},127.0.0.1:1"), &["config", "show"])
        .await
        .error();
    assert!(line.contains("is not a usable URL"), "{line}");
}
