//! End to end: `romanactl policy` (the real binary) against a real control plane found
//! through root: apply from a file and from stdin, list/get/delete, and explain answering
//! from the same evaluator the agents are held to.

mod support;

use std::process::Stdio;
use std::time::Duration;

use romana_integration::cluster::CONFIG_INIT;
use romana_integration::ControlPlane;
use support::{romanactl, Run};
use tokio::io::AsyncWriteExt;

const POLICIES: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-in, namespace: backend}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: backend}
spec:
  podSelector: {matchLabels: {app: api}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {env: prod}}, podSelector: {matchLabels: {app: web}}}]
    ports: [{port: http}]
"#;

/// `romanactl --root ROOT ARGS...` with `input` on stdin.
async fn romanactl_stdin(root: &str, args: &[&str], input: &str) -> Run {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_romanactl"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("ROMANA_ROOT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("romanactl starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("romanactl finishes in 60 s")
        .unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Layout, two hosts, tenants frontend/backend (isolation none, env=prod) and shop
/// (segment), endpoints fe1 (app=web), fe2 (app=other) and be1 (app=api, http=tcp/8080).
async fn mk_cluster() -> (ControlPlane, String) {
    let plane = ControlPlane::start().await.expect("control plane starts");
    let root = plane.root_url();
    let steps: &[&[&str]] = &[
        &CONFIG_INIT,
        &["host", "add", "h1", "--ip", "192.168.0.1"],
        &["host", "add", "h2", "--ip", "192.168.0.2"],
        &[
            "tenant",
            "add",
            "frontend",
            "--isolation",
            "none",
            "--label",
            "env=prod",
        ],
        &[
            "tenant",
            "add",
            "backend",
            "--isolation",
            "none",
            "--label",
            "env=prod",
        ],
        &["tenant", "add", "shop"],
        &[
            "ipam",
            "allocate",
            "--endpoint",
            "fe1",
            "--host",
            "h1",
            "--tenant",
            "frontend",
            "--label",
            "app=web",
        ],
        &[
            "ipam",
            "allocate",
            "--endpoint",
            "fe2",
            "--host",
            "h1",
            "--tenant",
            "frontend",
            "--label",
            "app=other",
        ],
        &[
            "ipam",
            "allocate",
            "--endpoint",
            "be1",
            "--host",
            "h2",
            "--tenant",
            "backend",
            "--label",
            "app=api",
            "--port",
            "http=tcp/8080",
        ],
        &[
            "ipam",
            "allocate",
            "--endpoint",
            "s1",
            "--host",
            "h2",
            "--tenant",
            "shop",
        ],
    ];
    for args in steps {
        romanactl(&root, args).await.ok();
    }
    (plane, root)
}

fn explain_args<'a>(from: &'a str, to: &'a str, proto: &'a str, port: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "policy", "explain", "--from", from, "--to", to, "--proto", proto,
    ];
    if !port.is_empty() {
        args.extend(["--port", port]);
    }
    args.extend(["-o", "json"]);
    args
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_apply_list_get_delete_from_file_and_stdin() {
    let (_plane, root) = mk_cluster().await;
    let file = std::env::temp_dir().join(format!("romanactl-policy-{}.yaml", std::process::id()));
    std::fs::write(&file, POLICIES).unwrap();
    let path = file.to_str().unwrap();

    let dry = romanactl(&root, &["policy", "apply", "-f", path, "--dry-run"])
        .await
        .ok();
    assert_eq!(
        dry,
        "networkpolicy backend/deny-in created (dry run)\nnetworkpolicy backend/allow-web created (dry run)\n"
    );
    let list = romanactl(&root, &["policy", "list", "-o", "json"])
        .await
        .json();
    assert_eq!(list, serde_json::json!([]), "a dry run stores nothing");

    let out = romanactl(&root, &["policy", "apply", "-f", path])
        .await
        .ok();
    assert_eq!(
        out,
        "networkpolicy backend/deny-in created\nnetworkpolicy backend/allow-web created\n"
    );
    let again = romanactl_stdin(
        &root,
        &["policy", "apply", "-f", "-", "-o", "json"],
        POLICIES,
    )
    .await
    .json();
    assert_eq!(again["applied"][0]["action"], "unchanged");
    assert_eq!(again["applied"][1]["id"], "backend/allow-web");
    std::fs::remove_file(&file).unwrap();

    let romana = "name: dns-out\ndirection: egress\napplied_to: [{tenant: shop}]\npeers: [{peer: any}]\nrules: [{protocol: udp, ports: [53]}]\n";
    let out = romanactl_stdin(&root, &["policy", "apply", "-f", "-"], romana)
        .await
        .ok();
    assert_eq!(out, "policy dns-out created\n");

    let table = romanactl(&root, &["policy", "list"]).await.ok();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID   "), "{table}");
    assert!(lines[1].starts_with("dns-out "), "{table}");
    assert!(lines[2].starts_with("backend/allow-web "), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    let only = romanactl(
        &root,
        &["policy", "list", "--tenant", "backend", "-o", "json"],
    )
    .await
    .json();
    assert_eq!(only.as_array().unwrap().len(), 2);

    let yaml = romanactl(&root, &["policy", "get", "backend/deny-in", "-o", "yaml"])
        .await
        .ok();
    assert!(yaml.contains("form: kubernetes"), "{yaml}");
    assert!(yaml.contains("policyTypes:"), "{yaml}");

    let out = romanactl(&root, &["policy", "delete", "dns-out"])
        .await
        .ok();
    assert_eq!(out, "policy dns-out deleted\n");
    let line = romanactl(&root, &["policy", "get", "dns-out"])
        .await
        .error();
    assert_eq!(line, "error: not found: policy dns-out does not exist");

    let bad = POLICIES.replace(
        "ports: [{port: http}]",
        "ports: [{port: http, endPort: 90}]",
    );
    let line = romanactl_stdin(&root, &["policy", "apply", "-f", "-"], &bad)
        .await
        .error();
    assert_eq!(
        line,
        "error: invalid argument: NetworkPolicy \"backend/allow-web\" is invalid: \
         spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_explain_names_the_tier_policy_and_rule() {
    let (_plane, root) = mk_cluster().await;

    let before = romanactl(&root, &explain_args("fe1", "be1", "tcp", "8080"))
        .await
        .json();
    assert_eq!(before["verdict"], "allow");
    assert_eq!(before["tier"], "baseline");
    let shop = romanactl(&root, &explain_args("fe1", "s1", "tcp", "80"))
        .await
        .json();
    assert_eq!(shop["verdict"], "deny");
    assert!(
        shop["reason"]
            .as_str()
            .unwrap()
            .contains("isolation segment"),
        "{shop}"
    );

    romanactl_stdin(&root, &["policy", "apply", "-f", "-"], POLICIES)
        .await
        .ok();
    let allowed = romanactl(&root, &explain_args("fe1", "be1", "tcp", "8080"))
        .await
        .json();
    assert_eq!(allowed["verdict"], "allow");
    assert_eq!(allowed["tier"], "network_policy");
    assert_eq!(allowed["policy"], "backend/allow-web");
    assert_eq!(allowed["rule"], 0);
    assert_eq!(allowed["direction"], "ingress");
    assert!(
        allowed["to"].as_str().unwrap().starts_with("be1 (10."),
        "{allowed}"
    );

    let wrong_port = romanactl(&root, &explain_args("fe1", "be1", "tcp", "80"))
        .await
        .json();
    assert_eq!(wrong_port["verdict"], "deny");
    assert!(
        wrong_port["reason"]
            .as_str()
            .unwrap()
            .contains("selected for ingress by NetworkPolicy backend/allow-web, backend/deny-in"),
        "{wrong_port}"
    );
    let wrong_pod = romanactl(&root, &explain_args("fe2", "be1", "tcp", "8080"))
        .await
        .json();
    assert_eq!(wrong_pod["verdict"], "deny");
    let outside = romanactl(&root, &explain_args("8.8.8.8", "be1", "tcp", "8080"))
        .await
        .json();
    assert_eq!(outside["verdict"], "deny");
    let kubelet = romanactl(&root, &explain_args("192.168.0.2", "be1", "tcp", "10250"))
        .await
        .json();
    assert_eq!(kubelet["verdict"], "allow");
    assert_eq!(kubelet["tier"], "host");

    let table = romanactl(
        &root,
        &[
            "policy", "explain", "--from", "fe1", "--to", "be1", "--proto", "tcp", "--port", "8080",
        ],
    )
    .await
    .ok();
    assert!(
        table.starts_with(
            "VERDICT   TIER             DIRECTION   POLICY              RULE   REASON\n"
        ),
        "{table}"
    );
    assert!(
        table.contains("\nallow     network_policy   ingress     backend/allow-web   0      "),
        "{table}"
    );

    let line = romanactl(&root, &explain_args("nope", "be1", "tcp", "80"))
        .await
        .error();
    assert!(
        line.starts_with(
            "error: invalid argument: from: \"nope\" is neither an endpoint id nor an IP address"
        ),
        "{line}"
    );
}
