//! Real etcd processes for tests: one server or a small cluster on loopback, each member with
//! its own temporary data directory and log file. Every process is killed and waited for on
//! drop, also when a test panics, so no etcd outlives its test.
//!
//! What has bitten us:
//! - A port read from a dropped `127.0.0.1:0` listener can be handed out again to a parallel
//!   test; ports given out by this process are remembered and never reused, and a start that
//!   still loses the race ("address already in use") is retried on new ports.
//! - Drop cannot run when the test process is killed by a signal. etcd children therefore
//!   stay in the test's process group (no `setsid`), so a Ctrl-C or a nextest timeout, which
//!   signal the whole group, take them down too.
//! - etcd's `/health` only says `true` once the cluster has a leader, which is exactly "ready
//!   for the store" for one server and for a cluster alike.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tempfile::TempDir;

mod cluster;

pub use cluster::{EtcdCluster, MemberStatus};

const ETCD: &str = "/usr/bin/etcd";
pub(crate) const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const START_ATTEMPTS: usize = 3;

/// One etcd process, restartable on the same ports and data.
pub struct EtcdServer {
    name: String,
    /// Serve clients over TLS and require client certificates signed by the CA.
    tls: Option<EtcdTlsFiles>,
    /// The address clients and peers use: loopback, or a test network's address when etcd
    /// must be reachable from other network namespaces.
    ip: IpAddr,
    client_port: u16,
    peer_port: u16,
    initial_cluster: String,
    token: String,
    dir: TempDir,
    child: Option<Child>,
}

/// PEM files for an etcd serving TLS to clients with client-certificate authentication.
#[derive(Clone, Debug)]
pub struct EtcdTlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

// === impl EtcdServer ===

impl EtcdServer {
    /// Starts a single-member cluster on loopback and waits until it serves.
    pub fn start() -> anyhow::Result<EtcdServer> {
        EtcdServer::start_on(LOOPBACK)
    }

    /// Starts a single-member cluster on loopback serving clients over TLS (`https://`) and
    /// requiring client certificates signed by `tls.ca`.
    pub fn start_tls(tls: EtcdTlsFiles) -> anyhow::Result<EtcdServer> {
        retry_start(|| {
            let [client_port, peer_port] = free_ports::<2>()?;
            let name = "etcd0".to_string();
            let initial_cluster = format!("{name}={}", url(LOOPBACK, peer_port));
            let mut server = EtcdServer::new(name, client_port, peer_port, initial_cluster)?;
            server.tls = Some(tls.clone());
            server.spawn()?;
            server.wait_ready()?;
            Ok(server)
        })
    }

    /// Starts a single-member cluster listening on `ip` (an address of the current network
    /// namespace) and waits until it serves.
    pub fn start_on(ip: IpAddr) -> anyhow::Result<EtcdServer> {
        retry_start(|| {
            let [client_port, peer_port] = free_ports::<2>()?;
            let name = "etcd0".to_string();
            let initial_cluster = format!("{name}={}", url(ip, peer_port));
            let mut server = EtcdServer::new(name, client_port, peer_port, initial_cluster)?;
            server.ip = ip;
            server.spawn()?;
            server.wait_ready()?;
            Ok(server)
        })
    }

    fn new(
        name: String,
        client_port: u16,
        peer_port: u16,
        initial_cluster: String,
    ) -> anyhow::Result<EtcdServer> {
        check_installed()?;
        let dir = tempfile::Builder::new()
            .prefix("romana-etcd-")
            .tempdir()
            .context("creating the etcd data directory")?;
        Ok(EtcdServer {
            name,
            ip: LOOPBACK,
            tls: None,
            client_port,
            peer_port,
            initial_cluster,
            token: unique_token(),
            dir,
            child: None,
        })
    }

    /// `http://IP:P` (`https://` with TLS), the one client URL.
    pub fn endpoint(&self) -> String {
        let plain = url(self.ip, self.client_port);
        match self.tls {
            Some(_) => plain.replacen("http://", "https://", 1),
            None => plain,
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    /// The running process, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Where etcd writes its log (appended across restarts).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops etcd (SIGTERM, then SIGKILL after a bound) and keeps its data.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // std offers only SIGKILL; a graceful TERM goes through kill(1) to stay free of unsafe.
        let termed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if termed {
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if child.try_wait()?.is_some() {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        kill_and_wait(&mut child);
        Ok(())
    }

    /// Kills etcd at once (SIGKILL), as a crash would; keeps its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_wait(&mut child);
        }
    }

    /// Freezes etcd (SIGSTOP): its connections stay open and nothing answers, as on a hung
    /// machine. [`EtcdServer::resume`] undoes it.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a paused etcd run again (SIGCONT).
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid() else {
            bail!("etcd {} is not running", self.name);
        };
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill {signal} {pid} failed");
        }
        Ok(())
    }

    /// Whether this member is the raft leader now, from its `/metrics`.
    pub fn is_leader(&self) -> bool {
        http_get(self.ip, self.client_port, "/metrics")
            .is_some_and(|page| page.lines().any(|l| l.trim() == "etcd_server_is_leader 1"))
    }

    /// How many KV requests (Range, Put, DeleteRange, Txn, Compact) this member has
    /// started, from its `/metrics`: what a test counts to bound the etcd cost of a call.
    pub fn kv_requests(&self) -> Option<u64> {
        let page = http_get(self.ip, self.client_port, "/metrics")?;
        let total = page
            .lines()
            .filter(|l| {
                l.starts_with("grpc_server_started_total{")
                    && l.contains(r#"grpc_service="etcdserverpb.KV""#)
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        Some(total as u64)
    }

    /// Starts the stopped process again on the same ports and data, and waits until it serves
    /// (for a cluster member: until it has a leader again).
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("etcd {} is already running", self.name);
        }
        self.spawn()?;
        self.wait_ready()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the etcd log")?;
        let client_url = self.endpoint();
        let peer_url = url(self.ip, self.peer_port);
        let child = Command::new(ETCD)
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            .args(self.tls.iter().flat_map(|t| {
                [
                    "--cert-file".into(),
                    t.cert.clone().into_os_string(),
                    "--key-file".into(),
                    t.key.clone().into_os_string(),
                    "--trusted-ca-file".into(),
                    t.ca.clone().into_os_string(),
                    "--client-cert-auth".into(),
                ]
            }))
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawning {ETCD}"))?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "etcd {} exited with {status} while starting; log tail:\n{}",
                        self.name,
                        log_tail(&self.log_path())
                    );
                }
            }
            let ready = match &self.tls {
                None => healthy(self.ip, self.client_port),
                Some(t) => healthy_tls(&self.endpoint(), t),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd {} not healthy on port {} after {READY_TIMEOUT:?}; log tail:\n{}",
                    self.name,
                    self.client_port,
                    log_tail(&self.log_path())
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_and_wait(&mut child);
        }
        // `dir` (a TempDir) is removed after this, once the process can no longer write to it.
    }
}

impl std::fmt::Debug for EtcdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdServer")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint())
            .field("pid", &self.pid())
            .finish()
    }
}

// === helpers ===

/// Runs `start` again on new ports when a port race is the reason it failed.
pub(crate) fn retry_start<T>(mut start: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match start() {
            Ok(started) => return Ok(started),
            // The failure message carries etcd's log tail, which names a lost port race.
            Err(e)
                if attempt < START_ATTEMPTS
                    && format!("{e:#}").contains("address already in use") =>
            {
                tracing::warn!(error = %e, "etcd lost a port race; starting on new ports");
            }
            Err(e) => return Err(e),
        }
    }
}

fn check_installed() -> anyhow::Result<()> {
    if !Path::new(ETCD).exists() {
        bail!("{ETCD} not found: install etcd-server (apt-get install -y etcd-server)");
    }
    Ok(())
}

pub(crate) fn unique_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "romana-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Health over TLS with etcdctl, which speaks it (the plain-HTTP check cannot).
fn healthy_tls(endpoint: &str, tls: &EtcdTlsFiles) -> bool {
    Command::new("etcdctl")
        .args(["--endpoints", endpoint, "--dial-timeout", "1s"])
        .arg("--cacert")
        .arg(&tls.ca)
        .arg("--cert")
        .arg(&tls.cert)
        .arg("--key")
        .arg(&tls.key)
        .args(["endpoint", "health"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn url(ip: IpAddr, port: u16) -> String {
    format!("http://{}", SocketAddr::new(ip, port))
}

/// `N` loopback ports that were free a moment ago and were never handed out before by this
/// process. The listeners are held until all are chosen so one call gets distinct ports.
pub(crate) fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let ports = free_ports_vec(N)?;
    Ok(std::array::from_fn(|i| ports[i]))
}

pub(crate) fn free_ports_vec(n: usize) -> anyhow::Result<Vec<u16>> {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding a free loopback port")?;
        let port = listener.local_addr()?.port();
        if given.insert(port) {
            ports.push(port);
        }
        listeners.push(listener);
    }
    Ok(ports)
}

/// etcd's `/health` over plain HTTP/1.0, so the harness needs no HTTP client.
fn healthy(ip: IpAddr, port: u16) -> bool {
    http_get(ip, port, "/health").is_some_and(|r| r.contains(r#""health":"true""#))
}

/// A plain HTTP/1.0 GET of `path`, bounded in time; `None` if etcd does not answer.
fn http_get(ip: IpAddr, port: u16, path: &str) -> Option<String> {
    let get = || -> std::io::Result<String> {
        let addr = SocketAddr::new(ip, port);
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    };
    get().ok()
}

fn kill_and_wait(child: &mut Child) {
    // Fails only if the process already exited, which `wait` then reaps.
    let _ = child.kill();
    let _ = child.wait();
}

fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
