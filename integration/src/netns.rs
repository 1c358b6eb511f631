//! Network namespaces for tests, so that hosts, leaves and endpoints get real kernels' worth
//! of interfaces, routes and nftables without touching the machine's own network.
//!
//! A [`Lab`] is the out-of-band management network of a test datacenter: a `mgmt` namespace
//! holding a bridge, where etcd and the services listen, and a veth from it into every host
//! namespace. Agents and CNI plugins run inside their host namespace and reach the control
//! plane over that network, as they would in a real datacenter; the test itself runs inside
//! `mgmt` ([`Lab::run`]). Nothing is created in the root namespace: every link is created in
//! a lab namespace with its peer placed directly into another.
//!
//! What has bitten us:
//! - A namespace lives on while a process is inside it, whatever `ip netns del` says: kill
//!   the processes first (drop order does this).
//! - Interface names are limited to 15 characters.
//! - Threads inherit the namespace of the thread that created them, which is what makes a
//!   runtime built on a `setns`'d thread run entirely inside the namespace.

use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context};

/// A named network namespace, deleted (with every process inside killed) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `rt<pid>-<n>-<role>`, unique per test process.
    pub fn create(role: &str) -> anyhow::Result<Netns> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("rt{}-{n}-{role}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))
            .with_context(|| format!("creating network namespace {name} (needs root)"))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// `ip -n NAME args...`, failing with ip's stderr.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// A veth pair: `name` here, its peer `peer_name` inside `peer`.
    pub fn add_veth(&self, name: &str, peer: &Netns, peer_name: &str) -> anyhow::Result<()> {
        let args = [
            "link", "add", name, "type", "veth", "peer", "name", peer_name,
        ];
        self.ip(&[&args[..], &["netns", peer.name()]].concat())
            .map(drop)
    }

    /// `ip netns exec NAME program args...`, failing with the program's stderr.
    pub fn exec(&self, program: &str, args: &[&str]) -> anyhow::Result<String> {
        run(self.command(program).args(args))
    }

    /// A command that runs `program` inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Sets a sysctl inside the namespace (`net.ipv4.ip_forward=1`).
    pub fn sysctl(&self, setting: &str) -> anyhow::Result<()> {
        self.exec("sysctl", &["-qw", setting]).map(|_| ())
    }

    /// Runs `f` to completion on a new runtime whose threads (and child processes) are all
    /// inside this namespace. `f` may borrow from the caller: the thread is scoped.
    pub fn run<T, Fut>(&self, f: impl FnOnce() -> Fut + Send) -> anyhow::Result<T>
    where
        T: Send,
        Fut: Future<Output = T>,
    {
        run_inside(self.path(), f)
    }

    /// Runs `f` on a thread inside this namespace, without a runtime: sockets made there stay
    /// in this namespace wherever they are used afterwards.
    pub fn enter<T: Send>(
        &self,
        f: impl FnOnce() -> std::io::Result<T> + Send,
    ) -> anyhow::Result<T> {
        on_thread_inside(self.path(), || Ok(f()?))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill")
                    .args(["-KILL", pid])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A management network: the `mgmt` namespace with a bridge at [`Lab::MGMT_IP`] and a veth
/// into each attached namespace.
#[derive(Debug)]
pub struct Lab {
    next_host: u8,
    mgmt: Netns,
}

impl Lab {
    /// The control plane's address on the management network.
    pub const MGMT_IP: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 1);
    const MGMT_BRIDGE: &str = "mgmt";

    pub fn new() -> anyhow::Result<Lab> {
        let mgmt = Netns::create("mgmt")?;
        mgmt.ip(&["link", "add", Self::MGMT_BRIDGE, "type", "bridge"])?;
        mgmt.ip(&["addr", "add", "172.31.0.1/16", "dev", Self::MGMT_BRIDGE])?;
        mgmt.ip(&["link", "set", Self::MGMT_BRIDGE, "up"])?;
        Ok(Lab { next_host: 2, mgmt })
    }

    pub fn mgmt(&self) -> &Netns {
        &self.mgmt
    }

    pub fn mgmt_ip(&self) -> IpAddr {
        IpAddr::V4(Self::MGMT_IP)
    }

    /// Connects `ns` to the management network (interface `mgmt0` inside it) and returns its
    /// management address.
    pub fn attach(&mut self, ns: &Netns) -> anyhow::Result<IpAddr> {
        let n = self.next_host;
        if n == u8::MAX {
            bail!("the management network is full");
        }
        self.next_host += 1;
        let ip = Ipv4Addr::new(172, 31, 0, n);
        let port = format!("m{n}");
        self.mgmt.add_veth(&port, ns, "mgmt0")?;
        self.mgmt
            .ip(&["link", "set", &port, "master", Self::MGMT_BRIDGE, "up"])?;
        ns.ip(&["addr", "add", &format!("{ip}/16"), "dev", "mgmt0"])?;
        ns.ip(&["link", "set", "mgmt0", "up"])?;
        Ok(IpAddr::V4(ip))
    }

    /// The management switch's port (in [`Lab::mgmt`]) of the namespace attached with
    /// management address `ip`.
    pub fn port_of(&self, ip: IpAddr) -> anyhow::Result<String> {
        match ip {
            IpAddr::V4(v4) if v4.octets()[..3] == Self::MGMT_IP.octets()[..3] => {
                Ok(format!("m{}", v4.octets()[3]))
            }
            _ => bail!("{ip} is not an address of this management network"),
        }
    }

    /// Runs the test body inside the management namespace.
    pub fn run<T, Fut>(&self, f: impl FnOnce() -> Fut + Send) -> anyhow::Result<T>
    where
        T: Send,
        Fut: Future<Output = T>,
    {
        self.mgmt.run(f)
    }

    /// Like [`Lab::run`], handing the lab itself to the body (which then owns its teardown).
    pub fn run_owned<T, Fut>(self, f: impl FnOnce(Lab) -> Fut + Send) -> anyhow::Result<T>
    where
        T: Send,
        Fut: Future<Output = T>,
    {
        let path = self.mgmt.path();
        run_inside(path, move || f(self))
    }
}

/// Whether this process may create network namespaces. Tests ask through
/// [`require_netns!`](crate::require_netns), which skips them outside CI and fails them under it.
pub fn can_create_namespaces() -> bool {
    nix::unistd::geteuid().is_root()
}

fn run_inside<T, Fut>(netns: PathBuf, f: impl FnOnce() -> Fut + Send) -> anyhow::Result<T>
where
    T: Send,
    Fut: Future<Output = T>,
{
    on_thread_inside(netns, || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(rt.block_on(f()))
    })
}

/// Runs `f` on a scoped thread that has entered the namespace at `netns`.
fn on_thread_inside<T: Send>(
    netns: PathBuf,
    f: impl FnOnce() -> anyhow::Result<T> + Send,
) -> anyhow::Result<T> {
    let ns = File::open(&netns).with_context(|| format!("opening {}", netns.display()))?;
    std::thread::scope(|scope| {
        scope
            .spawn(move || -> anyhow::Result<T> {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("entering the network namespace")?;
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!(
            "{cmd:?} failed ({status}): {}",
            String::from_utf8_lossy(&stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}
