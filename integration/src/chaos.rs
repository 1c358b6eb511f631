//! Chaos tests' framework: faults injected under load, then what must still hold.
//!
//! - [`load`]: [`Load`], N concurrent clients allocating and releasing through the real
//!   ipam-service (discovered through root), every call recorded with its outcome, start
//!   and end, so that "calls in flight at the fault" can be counted.
//! - [`invariants`]: [`invariants::check`], etcd read back after a load: no duplicate
//!   address, every success stored, every definite failure and release left nothing, every
//!   unknown outcome resolved by retrying (the precise rule is in that module).
//! - [`converge`]: whether an agent's nft table and routes are exactly what a fresh agent
//!   computes from the same etcd state, and how long it took to get there.
//! - [`Replica`]: a service binary (`romana-ipam`, ...) registered with the control plane's
//!   root, killable and freezable, with its Prometheus counters to tell which replica served.
//! - [`Summary`]: the one line each scenario prints.
//!
//! Faults themselves are the fixtures' own: [`crate::ServiceProcess::kill`] / `pause` /
//! `resume`, [`crate::EtcdServer::kill`] / `pause` / `stop` / `start_again`,
//! [`crate::EtcdCluster::leader`], [`crate::Cluster::kill_agent`], and
//! [`converge`]'s uplink cut.

pub mod converge;
pub mod invariants;
pub mod load;

pub use invariants::Invariants;
pub use load::{Call, Load, LoadSpec, Op, Outcome, Placement, Run};

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::cluster::binary;
use crate::{ControlPlane, ServiceProcess};

/// A service binary registered with a control plane; killed on drop.
pub struct Replica {
    pub url: String,
    pub metrics_port: u16,
    pub process: ServiceProcess,
    /// The process's stdout and stderr.
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Starts `romana-{kind}` against `plane`'s etcd (every member), listening on the
    /// plane's address, and waits until it is registered and so discoverable.
    pub async fn start(plane: &ControlPlane, service: crate::Service) -> anyhow::Result<Replica> {
        let kind = service.kind();
        let bin = binary(&format!("romana-{kind}"));
        anyhow::ensure!(
            bin.exists(),
            "{} is missing: build the binaries first (cargo build --bins)",
            bin.display()
        );
        let (port, metrics_port) = (crate::free_port(), crate::free_port());
        let listen = SocketAddr::new(plane.ip(), port);
        let dir = tempfile::Builder::new()
            .prefix(&format!("romana-{kind}-"))
            .tempdir()?;
        let log = dir.path().join("log");
        let out = std::fs::File::create(&log)?;
        let process = ServiceProcess::spawn(
            Command::new(&bin)
                .args(["--etcd-endpoints", &plane.etcd_endpoints().join(",")])
                .args(["--listen", &listen.to_string()])
                .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
                .arg("--insecure")
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out),
        )
        .with_context(|| format!("spawning {}", bin.display()))?;
        let url = format!("http://{listen}");
        let replica = Replica {
            url,
            metrics_port,
            process,
            log,
            _dir: dir,
        };
        plane
            .wait_registered(service, &replica.url)
            .await
            .with_context(|| format!("log: {}", replica.log_text()))?;
        Ok(replica)
    }

    /// Calls of `method` (e.g. `/romana.v1.Ipam/Allocate`) this process answered, by its
    /// `romana_grpc_requests_total` counters (every code); `None` when it does not answer.
    pub fn served(&self, method: &str) -> Option<u64> {
        let body = http_get(self.metrics_port, "/metrics")?;
        let wanted = format!("romana_grpc_requests_total{{method=\"{method}\"");
        Some(
            body.lines()
                .filter(|l| l.starts_with(&wanted))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64,
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The URLs root lists for `kind`, in its order: the order clients try them in.
pub async fn listed(root: &str, kind: &str) -> anyhow::Result<Vec<String>> {
    let channel = romana_proto::discover::channel(root, "root").await?;
    Ok(romana_proto::pb::root_client::RootClient::new(channel)
        .list_services(romana_proto::pb::ListServicesRequest { kind: kind.into() })
        .await?
        .into_inner()
        .services
        .into_iter()
        .map(|s| s.url)
        .collect())
}

/// The line a scenario prints: `chaos <name>: key=value ...`, in the order given.
#[derive(Clone, Debug)]
pub struct Summary {
    name: String,
    fields: Vec<(String, String)>,
}

impl Summary {
    pub fn new(name: &str) -> Summary {
        Summary {
            name: name.to_string(),
            fields: Vec::new(),
        }
    }

    pub fn field(mut self, key: &str, value: impl std::fmt::Display) -> Summary {
        self.fields.push((key.to_string(), value.to_string()));
        self
    }

    /// Operations, calls, faults, failed calls by kind, calls in flight at each fault and
    /// how long calls kept failing after it.
    pub fn load(self, run: &Run) -> Summary {
        let faults: Vec<String> = run
            .faults
            .iter()
            .map(|f| format!("{}@{}", f.what, secs(f.at)))
            .collect();
        let in_flight: Vec<String> = run
            .faults
            .iter()
            .map(|f| run.in_flight_at(f.at).to_string())
            .collect();
        let new_failed: Vec<String> = run
            .faults
            .iter()
            .map(|f| run.new_operations_failed_after(f.at).to_string())
            .collect();
        let failing: Vec<String> = run
            .faults
            .iter()
            .map(|f| secs(run.failing_for(f.at)))
            .collect();
        let kinds: Vec<String> = run
            .failed_by_kind()
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        let unknown = run.calls.iter().filter(|c| c.outcome.is_unknown()).count();
        let (p50, p99) = run.latency();
        self.field("ops", run.operations())
            .field("calls", run.calls.len())
            .field("clients", run.spec.clients)
            .field("latency_p50_p99", format!("{}/{}", secs(p50), secs(p99)))
            .field("load_time", secs(run.duration))
            .field("faults", format!("[{}]", faults.join(", ")))
            .field("failed", run.failed().count())
            .field("failed_by_kind", format!("{{{}}}", kinds.join(", ")))
            .field("unknown_outcomes", unknown)
            .field("in_flight_at_fault", format!("[{}]", in_flight.join(", ")))
            .field(
                "new_ops_failed_after_fault",
                format!("[{}]", new_failed.join(", ")),
            )
            .field("failing_for", format!("[{}]", failing.join(", ")))
    }

    pub fn invariants(self, inv: &Invariants) -> Summary {
        self.field("invariants", inv.describe())
    }

    /// Prints the line (nextest shows it with the test's output) and returns it.
    pub fn print(&self) -> String {
        let line = self.to_string();
        println!("{line}");
        line
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut line = format!("chaos {}:", self.name);
        for (k, v) in &self.fields {
            let _ = write!(line, " {k}={v}");
        }
        f.write_str(&line)
    }
}

/// `1.234s`.
pub fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// A placement on `host` in tenant `tenant`'s `segment`.
pub fn placement(host: &str, tenant: &str, segment: &str) -> Placement {
    Placement {
        host: host.into(),
        tenant: tenant.into(),
        segment: segment.into(),
    }
}
