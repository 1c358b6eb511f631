//! `--otlp-endpoint`: the real `romana-root` binary exports its traces over OTLP/gRPC to an
//! in-process fake collector, including a server span per gRPC call, and flushes them on
//! SIGTERM.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use romana_integration::cluster::binary;
use romana_integration::{eventually, free_port, mk_store, EtcdServer, ServiceProcess};
use romana_proto::pb;

/// A collector that keeps every export request.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::IntValue(i) => Some(*i),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn root_binary_exports_grpc_spans_over_otlp_and_flushes_on_sigterm() {
    let root_bin = binary("romana-root");
    assert!(
        root_bin.exists(),
        "{} missing: cargo build --bins",
        root_bin.display()
    );

    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let etcd = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap()
        .unwrap();
    let grpc = free_port();
    let service = ServiceProcess::spawn(
        Command::new(&root_bin)
            .args(["--etcd-endpoints", &etcd.endpoint()])
            .args(["--listen", &format!("127.0.0.1:{grpc}")])
            .args(["--otlp-endpoint", &format!("http://{otlp}")])
            .arg("--insecure")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_SERVICE_NAME")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )
    .unwrap();

    let store = mk_store(&etcd.endpoints()).await;
    let url = eventually("root registered", Duration::from_secs(20), || async {
        let l = store.list(&store.keys().services_of("root")).await.ok()?;
        (l.items.len() == 1).then(|| l.items[0].value.url.clone())
    })
    .await
    .unwrap();
    let mut client = pb::root_client::RootClient::connect(url).await.unwrap();
    let status = client
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);

    // SIGTERM: the batch exporter (default delay 5 s) must flush on the way out.
    let exit = service.terminate().await.unwrap();
    assert!(exit.success(), "exit status {exit}");

    let received = collector.received.lock().unwrap().clone();
    server.abort();
    let resources: Vec<_> = received.iter().flat_map(|r| &r.resource_spans).collect();
    assert!(!resources.is_empty(), "the collector received no spans");
    for rs in &resources {
        let attrs = &rs.resource.as_ref().expect("resource").attributes;
        assert_eq!(string_attr(attrs, "service.name"), Some("romana-root"));
        assert!(
            string_attr(attrs, "service.instance.id").is_some_and(|id| !id.is_empty()),
            "service.instance.id in {attrs:?}"
        );
    }
    let spans: Vec<_> = resources
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let call = spans
        .iter()
        .find(|s| s.name == "romana.v1.Root/GetConfig")
        .unwrap_or_else(|| panic!("no GetConfig span among {names:?}"));
    assert_eq!(
        string_attr(&call.attributes, "rpc.method"),
        Some("GetConfig")
    );
    assert_eq!(
        string_attr(&call.attributes, "rpc.service"),
        Some("romana.v1.Root")
    );
    assert_eq!(
        int_attr(&call.attributes, "rpc.grpc.status_code"),
        Some(tonic::Code::FailedPrecondition as i64),
        "{:?}",
        call.attributes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_collector_is_logged_not_fatal() {
    let root_bin = binary("romana-root");
    let etcd = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .unwrap()
        .unwrap();
    // Nothing listens on this port.
    let otlp = free_port();
    let service = ServiceProcess::spawn(
        Command::new(&root_bin)
            .args(["--etcd-endpoints", &etcd.endpoint()])
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .arg("--insecure")
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{otlp}"),
            )
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .unwrap();

    let store = mk_store(&etcd.endpoints()).await;
    let url = eventually("root registered", Duration::from_secs(20), || async {
        let l = store.list(&store.keys().services_of("root")).await.ok()?;
        (l.items.len() == 1).then(|| l.items[0].value.url.clone())
    })
    .await
    .unwrap();
    let mut client = pb::root_client::RootClient::connect(url).await.unwrap();
    let status = client
        .get_config(pb::GetConfigRequest {})
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::FailedPrecondition,
        "still serving"
    );

    let output = service.terminate_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit status {}: {stderr}",
        output.status
    );
    assert!(
        stderr.contains("could not flush exported traces"),
        "the failed export is logged: {stderr}"
    );
}
