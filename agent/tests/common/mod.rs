//! Network namespaces for the agent's kernel tests. Everything a test does to a kernel
//! happens inside a namespace it created; the Drop guard deletes it, also on panic, and
//! with it every link, route and nftables table inside. Whether a test may run here (root,
//! `ip`, `nft`) is decided by `romana_integration::require_netns!`: skip outside CI, fail
//! under it.

#![allow(dead_code)]

use std::process::{Command, Output};

/// A network namespace `romana-t-<random>`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create() -> Netns {
        let name = format!("romana-t-{:08x}", rand::random::<u32>());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip("link set lo up");
        ns
    }

    /// `ip -n NAME ARGS`, which must succeed; returns stdout.
    pub fn ip(&self, args: &str) -> String {
        let mut argv = vec!["ip", "-n", &self.name];
        argv.extend(args.split_whitespace());
        run(&argv)
    }

    /// Runs `argv` inside the namespace (`ip netns exec`).
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("ip netns exec runs")
    }

    /// A veth pair, both ends up, `addr` (CIDR) on the first when given.
    pub fn veth(&self, name: &str, peer: &str, addr: Option<&str>) {
        self.ip(&format!("link add {name} type veth peer name {peer}"));
        if let Some(addr) = addr {
            self.ip(&format!("addr add {addr} dev {name}"));
        }
        self.ip(&format!("link set {name} up"));
        self.ip(&format!("link set {peer} up"));
    }

    /// Routes of protocol `proto` in table main as `(dst, via or dev)` strings, sorted.
    pub fn routes(&self, proto: &str) -> Vec<String> {
        self.routes_in(proto, "main")
    }

    pub fn routes_in(&self, proto: &str, table: &str) -> Vec<String> {
        let json = self.ip(&format!("-j route show table {table} proto {proto}"));
        let routes: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap_or_default();
        let mut out: Vec<String> = routes
            .iter()
            .map(|r| {
                let dst = r["dst"].as_str().unwrap_or("?");
                match r["gateway"].as_str() {
                    Some(gw) => format!("{dst} via {gw}"),
                    None => format!("{dst} dev {}", r["dev"].as_str().unwrap_or("?")),
                }
            })
            .collect();
        out.sort();
        out
    }

    /// `nft list table inet romana` inside the namespace, or `None` when absent.
    pub fn nft_table(&self) -> Option<String> {
        let out = self.exec(&["nft", "list", "table", "inet", "romana"]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .output();
    }
}

pub fn run(argv: &[&str]) -> String {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
