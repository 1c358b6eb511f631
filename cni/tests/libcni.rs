//! romana-cni driven by libcni itself (Debian's golang-github-appc-cni-dev), chained with
//! the reference `tuning` plugin: the conflist is validated (VERSION of every plugin), ADD
//! runs the chain with our result as tuning's prevResult, CHECK and DEL get the cached
//! result. The driver, `tests/libcni/main.go`, is built offline in the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use romana_core::datapath::endpoint_ifname;
use romana_integration::{require_netns, Lab, Netns};
use serde_json::{json, Value};

const GOPATH: &str = "/usr/share/gocode";
const LIBCNI: &str = "/usr/share/gocode/src/github.com/containernetworking/cni/libcni";
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// Builds the driver into `dir`. Missing tools are a failure, not a skip: setup installs them.
fn build_driver(dir: &Path) -> PathBuf {
    let missing: Vec<&str> = [
        ("go", Command::new("go").arg("version").output().is_ok()),
        ("libcni", Path::new(LIBCNI).is_dir()),
        (
            "tuning plugin",
            Path::new(REFERENCE_PLUGINS).join("tuning").exists(),
        ),
    ]
    .into_iter()
    .filter(|(_, present)| !present)
    .map(|(what, _)| what)
    .collect();
    assert!(
        missing.is_empty(),
        "{} missing: run scripts/setup.sh (it installs golang-go, \
         golang-github-appc-cni-dev and containernetworking-plugins)",
        missing.join(", ")
    );
    let driver = dir.join("libcni-driver");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libcni/main.go");
    // GOPATH mode against Debian's packaged sources: no module download, works offline.
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&driver)
        .arg(&source)
        .env("GOPATH", GOPATH)
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("GOCACHE", dir.join("gocache"))
        .current_dir(dir)
        .output()
        .expect("go runs");
    assert!(
        out.status.success(),
        "go build of the libcni driver failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    driver
}

struct Driven {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the driver inside `host`, as a runtime on that host would run libcni.
async fn drive(host: &Netns, driver: &Path, args: &[&str]) -> Driven {
    let plugin_dir = Path::new(PLUGIN).parent().unwrap();
    let mut cmd = tokio::process::Command::from(host.command(&driver.display().to_string()));
    cmd.args(args)
        .env(
            "CNI_PATH",
            format!("{}:{REFERENCE_PLUGINS}", plugin_dir.display()),
        )
        .env("ROMANA_CNI_LOG", "romana_cni=debug")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the driver finishes within 60s")
        .unwrap();
    Driven {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Driven {
    fn ok(self, what: &str) -> Driven {
        assert!(self.ok, "{what} failed:\n{}\n{}", self.stdout, self.stderr);
        self
    }
}

#[test]
fn libcni_runs_a_chain_of_romana_and_tuning_through_add_check_and_del() {
    // Before the root check: a machine without Go fails here whoever runs the test, CI or not.
    let work = tempfile::tempdir().unwrap();
    let driver = build_driver(work.path());
    require_netns!();

    let mut lab = Lab::new().unwrap();
    let host = Netns::create("h1").unwrap();
    let host_ip = lab.attach(&host).unwrap();
    host.sysctl("net.ipv4.ip_forward=1").unwrap();
    let c1 = Netns::create("c1").unwrap();
    let conflist = work.path().join("romana.conflist");
    let cache = work.path().join("cache");
    let netns = c1.path().display().to_string();

    lab.run(|| async {
        let (plane, mut clients) = mk_plane(&lab, "10.0.0.0/8", host_ip).await;
        // No tenant in the config: it comes from K8S_POD_NAMESPACE, as under Kubernetes.
        let list = json!({
            "cniVersion": "1.0.0",
            "name": "romana",
            "plugins": [
                {"type": "romana-cni", "root": plane.root_url(), "host": "h1", "segment": "s1"},
                {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"}}
            ]
        });
        std::fs::write(&conflist, list.to_string()).unwrap();
        let conflist = conflist.display().to_string();
        let cache = cache.display().to_string();
        let call = |verb: &'static str| {
            [
                verb,
                conflist.as_str(),
                "ctr1",
                netns.as_str(),
                "eth0",
                cache.as_str(),
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=t1;K8S_POD_NAME=web-0",
            ]
        };

        drive(&host, &driver, &["validate", &conflist])
            .await
            .ok("validate (VERSION of each plugin)");

        let added = drive(&host, &driver, &call("add")).await.ok("ADD");
        let result: Value = serde_json::from_str(added.stdout.trim()).unwrap();
        println!("libcni chain result: {result}");
        assert_eq!(result["cniVersion"], "1.0.0");
        assert_eq!(result["ips"][0]["address"], "10.0.1.2/32");
        assert_eq!(result["ips"][0]["gateway"], "10.0.1.1");
        let container =
            &result["interfaces"][result["ips"][0]["interface"].as_u64().unwrap() as usize];
        assert_eq!(container["name"], "eth0");
        assert_eq!(container["sandbox"], netns.as_str());
        assert_eq!(
            result["interfaces"][0]["name"],
            endpoint_ifname("ctr1:eth0")
        );

        let addr = c1.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]).unwrap();
        assert!(addr.contains("inet 10.0.1.2/32"), "{addr}");
        // tuning ran after us, on our interface: the chain passed our result along.
        let notify = c1
            .exec("cat", &["/proc/sys/net/ipv4/conf/eth0/arp_notify"])
            .unwrap();
        assert_eq!(notify.trim(), "1");

        drive(&host, &driver, &call("check")).await.ok("CHECK");

        drive(&host, &driver, &call("del")).await.ok("DEL");
        assert!(clients.endpoint_ids().await.is_empty(), "address released");
        assert!(host
            .ip(&["link", "show", "dev", &endpoint_ifname("ctr1:eth0")])
            .is_err());
        drive(&host, &driver, &call("del")).await.ok("a second DEL");
    })
    .unwrap();
}
