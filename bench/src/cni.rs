//! `cni`: ADD and DEL through the romana CNI plugin binary against Debian's reference
//! plugins `ptp` + `host-local` (containernetworking-plugins) doing the same veth wiring
//! into the same namespaces, sequentially and at a concurrency, in one run.
//!
//! Everything runs inside a host namespace of its own (control plane on its loopback, both
//! plugins spawned there as a runtime spawns them), so the machine's own network is never
//! touched; container namespaces are made before and deleted after, outside the timings.
//! Phases alternate between baseline and romana so that drift of a shared machine hits both.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use anyhow::{bail, Context};
use romana_integration::cluster::binary;
use romana_integration::Netns;
use tokio::io::AsyncWriteExt;

use crate::measure::{measure, print_ratios, ratio, Run};

/// Where Debian installs the reference plugins.
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// One plugin as a runtime calls it: the binary, its `CNI_PATH` and its network config.
struct Plugin {
    name: &'static str,
    binary: PathBuf,
    cni_path: PathBuf,
    config: String,
}

pub async fn cni(sequential: usize, concurrent: usize, concurrency: usize) -> anyhow::Result<()> {
    // Namespaces first: creating hundreds of them takes seconds that belong to no plugin.
    let containers = (0..sequential.max(concurrent))
        .map(|i| Netns::create(&format!("c{i}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let host = Netns::create("bench-host")?;
    let runs = tokio::task::spawn_blocking(move || {
        let containers: Vec<PathBuf> = containers.iter().map(Netns::path).collect();
        let runs = host.run(|| phases(containers, sequential, concurrent, concurrency));
        // Dropped here, after the plane inside them has stopped.
        drop(host);
        runs
    })
    .await???;
    report(&runs, sequential, concurrent, concurrency);
    Ok(())
}

/// ADD and DEL latencies of one plugin, sequential and concurrent.
struct Runs {
    add: Run,
    del: Run,
    add_c: Run,
    del_c: Run,
}

async fn phases(
    containers: Vec<PathBuf>,
    sequential: usize,
    concurrent: usize,
    concurrency: usize,
) -> anyhow::Result<(Runs, Runs)> {
    let plane = crate::plane::start(&["h1".to_string()]).await?;
    let data = tempfile::tempdir()?;
    let ptp = Arc::new(Plugin {
        name: "ptp",
        binary: Path::new(REFERENCE_PLUGINS).join("ptp"),
        cni_path: REFERENCE_PLUGINS.into(),
        // The subnet is outside romana's address space: both kinds of routes live in the
        // same host namespace.
        config: format!(
            r#"{{"cniVersion":"1.0.0","name":"bench","type":"ptp","ipMasq":false,
                "ipam":{{"type":"host-local","subnet":"172.30.0.0/16","dataDir":"{}"}}}}"#,
            data.path().display()
        ),
    });
    let romana_bin = binary("romana-cni");
    let romana = Arc::new(Plugin {
        name: "romana",
        cni_path: romana_bin.parent().context("bin dir")?.to_path_buf(),
        binary: romana_bin,
        config: format!(
            r#"{{"cniVersion":"1.0.0","name":"romana","type":"romana-cni","root":"{}",
                "host":"h1","tenant":"bench"}}"#,
            plane.root_url()
        ),
    });
    for p in [&ptp, &romana] {
        if !p.binary.exists() {
            bail!(
                "{} not found (install containernetworking-plugins; build romana-cni)",
                p.binary.display()
            );
        }
        // One warm-up pair each, so page cache and first-connection costs are not sampled.
        call(p, "ADD", "warmup", &containers[0]).await?;
        call(p, "DEL", "warmup", &containers[0]).await?;
    }
    let containers = Arc::new(containers);
    let etcd = plane.etcd().members()[0].pid().context("etcd runs")?;
    let phase = |p: &Arc<Plugin>, verb: &'static str, tag: &'static str, n, c| {
        let (p, containers) = (p.clone(), containers.clone());
        async move {
            let name = p.name;
            let before = Cpu::now(etcd)?;
            let run = measure(n, c, move |i| {
                let (p, containers) = (p.clone(), containers.clone());
                async move { call(&p, verb, &format!("{tag}-{i}"), &containers[i]).await }
            })
            .await?;
            let cpu = Cpu::now(etcd)?.since(&before, n);
            println!(
                "  {:<7} {verb} {:>3}x{c:<3} CPU per call: plugin {:.2} ms, this process (services, harness) {:.2} ms, etcd {:.2} ms",
                name, n / c, cpu.children, cpu.own, cpu.etcd
            );
            anyhow::Ok(run)
        }
    };
    // Each plugin's DEL empties the namespaces before the other plugin's ADD.
    let base_add = phase(&ptp, "ADD", "s", sequential, 1).await?;
    let base_del = phase(&ptp, "DEL", "s", sequential, 1).await?;
    let add = phase(&romana, "ADD", "s", sequential, 1).await?;
    let del = phase(&romana, "DEL", "s", sequential, 1).await?;
    let base_add_c = phase(&ptp, "ADD", "c", concurrent, concurrency).await?;
    let base_del_c = phase(&ptp, "DEL", "c", concurrent, concurrency).await?;
    let add_c = phase(&romana, "ADD", "c", concurrent, concurrency).await?;
    let del_c = phase(&romana, "DEL", "c", concurrent, concurrency).await?;
    drop(plane);
    Ok((
        Runs {
            add: base_add,
            del: base_del,
            add_c: base_add_c,
            del_c: base_del_c,
        },
        Runs {
            add,
            del,
            add_c,
            del_c,
        },
    ))
}

/// One plugin call, made as a runtime makes it: a fresh process, only CNI_* (and PATH) in
/// its environment, the config on stdin. Fails unless it exits 0.
async fn call(p: &Plugin, verb: &str, container: &str, netns: &Path) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new(&p.binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_ARGS", "")
        .env("CNI_PATH", &p.cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", p.binary.display()))?;
    let mut stdin = child.stdin.take().context("piped stdin")?;
    stdin.write_all(p.config.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!(
            "{} {verb} {container} failed ({}): {} {}",
            p.name,
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// CPU time (user + system) of reaped children (the plugin processes) and of this process
/// (the in-process services, and the harness), to tell where concurrent calls queue.
struct Cpu {
    children: f64,
    own: f64,
    etcd: f64,
}

impl Cpu {
    fn now(etcd: u32) -> anyhow::Result<Cpu> {
        use nix::sys::resource::{getrusage, UsageWho};
        let ms = |who| -> anyhow::Result<f64> {
            let u = getrusage(who)?;
            let t =
                |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 * 1e3 + tv.tv_usec() as f64 / 1e3;
            Ok(t(u.user_time()) + t(u.system_time()))
        };
        Ok(Cpu {
            children: ms(UsageWho::RUSAGE_CHILDREN)?,
            own: ms(UsageWho::RUSAGE_SELF)?,
            etcd: proc_cpu_ms(etcd)?,
        })
    }

    /// Milliseconds per call since `before`, over `n` calls.
    fn since(&self, before: &Cpu, n: usize) -> Cpu {
        let n = n.max(1) as f64;
        Cpu {
            children: (self.children - before.children) / n,
            own: (self.own - before.own) / n,
            etcd: (self.etcd - before.etcd) / n,
        }
    }
}

/// User + system CPU of process `pid` from /proc (clock ticks of 10 ms: read it over many
/// calls only).
fn proc_cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').context("malformed stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks * 10.0)
}

fn report(runs: &(Runs, Runs), sequential: usize, concurrent: usize, concurrency: usize) {
    let (base, romana) = runs;
    println!("cni ADD/DEL, {sequential} sequential, {concurrent} at concurrency {concurrency}");
    let rows = [
        ("ADD sequential", &base.add, &romana.add, sequential),
        ("DEL sequential", &base.del, &romana.del, sequential),
        ("ADD concurrent", &base.add_c, &romana.add_c, concurrent),
        ("DEL concurrent", &base.del_c, &romana.del_c, concurrent),
    ];
    for (what, b, r, n) in rows {
        println!("  {what:<15} ptp+host-local {}", b.describe(n));
        println!("  {what:<15} romana-cni      {}", r.describe(n));
    }
    println!(
        "  target: ADD p99 at concurrency {concurrency} <= 50 ms: {:.2} ms",
        romana.add_c.ms(0.99)
    );
    print_ratios(&[
        (
            "add_p50".into(),
            ratio(romana.add.ms(0.5), base.add.ms(0.5)),
        ),
        (
            "del_p50".into(),
            ratio(romana.del.ms(0.5), base.del.ms(0.5)),
        ),
        (
            "add_p99_c".into(),
            ratio(romana.add_c.ms(0.99), base.add_c.ms(0.99)),
        ),
        (
            "del_p99_c".into(),
            ratio(romana.del_c.ms(0.99), base.del_c.ms(0.99)),
        ),
        (
            "add_throughput_c".into(),
            ratio(romana.add_c.rate(concurrent), base.add_c.rate(concurrent)),
        ),
    ]);
}
