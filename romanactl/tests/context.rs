//! Contexts through the real binary: two real control planes, a contexts file naming both,
//! and which one `romanactl status` talks to as contexts, flags and environment change.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use romana_integration::ControlPlane;
use support::{romanactl_env, Run};

/// The root URL `status -o json` reports, i.e. the plane it talked to.
fn root_of(run: Run) -> String {
    let status = run.json();
    let services = status["services"].as_array().expect("services");
    let root = services
        .iter()
        .find(|s| s["kind"] == "root")
        .unwrap_or_else(|| panic!("no root in {status}"));
    root["url"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn contexts_pick_the_plane_and_flags_and_env_override_them() {
    let (a, b) = tokio::join!(ControlPlane::start(), ControlPlane::start());
    let (a, b) = (a.expect("plane a"), b.expect("plane b"));
    let (root_a, root_b) = (a.root_url(), b.root_url());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    // Both shapes of `root`: a list, and a comma-separated string (a dead URL first, so
    // that "tried in turn" holds for contexts too).
    let text = format!(
        "current-context: a\n\
         contexts:\n\
         - name: a\n  root: [{root_a}]\n  output: json\n\
         - name: b\n  root: \"http://127.0.0.1:1, {root_b}\"\n"
    );
    std::fs::write(&config, &text).unwrap();
    let env = [("ROMANACTL_CONFIG", config.to_str().unwrap())];
    let run = |args: &'static [&'static str]| romanactl_env(args, &env);

    // The current context's root, and its default output (json without -o).
    assert_eq!(root_of(run(&["status"]).await), root_a);
    let listed = run(&["context", "list", "-o", "table"]).await.ok();
    assert_eq!(
        listed
            .lines()
            .map(|l| l.split_whitespace().next().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["CURRENT", "*", "b"],
        "{listed}"
    );

    // The answer of a context command is in the current context's output format too.
    let switched = run(&["context", "use", "b"]).await.json();
    assert_eq!(
        switched,
        serde_json::json!({"current_context": "b", "contexts": ["a", "b"]})
    );
    assert_eq!(root_of(run(&["status", "-o", "json"]).await), root_b);
    let listed = run(&["context", "list"]).await.ok();
    assert!(
        listed.lines().nth(2).unwrap().starts_with("*         b "),
        "{listed}"
    );

    // --context for one call; the file still says b.
    assert_eq!(root_of(run(&["--context", "a", "status"]).await), root_a);
    assert_eq!(root_of(run(&["status", "-o", "json"]).await), root_b);

    // Environment over the context, flag over the environment.
    let with_env = [
        ("ROMANACTL_CONFIG", config.to_str().unwrap()),
        ("ROMANA_ROOT", root_a.as_str()),
    ];
    let status_a = romanactl_env(&["status", "-o", "json"], &with_env).await;
    assert_eq!(root_of(status_a), root_a);
    let flag_b = ["--root", root_b.as_str(), "status", "-o", "json"];
    assert_eq!(root_of(romanactl_env(&flag_b, &with_env).await), root_b);

    // Unknown names: one line, exit 1, the file unchanged.
    let before = std::fs::read(&config).unwrap();
    let line = run(&["context", "use", "nope"]).await.error();
    assert_eq!(
        line,
        format!(
            "error: no context \"nope\" in {} (contexts: a, b)",
            config.display()
        )
    );
    assert_eq!(std::fs::read(&config).unwrap(), before);
    let line = run(&["--context", "nope", "status"]).await.error();
    assert!(line.starts_with("error: no context \"nope\""), "{line}");

    // A context no one answers for fails as an unreachable --root does.
    std::fs::write(
        &config,
        "current-context: dead\ncontexts:\n- name: dead\n  root: http://127.0.0.1:1\n",
    )
    .unwrap();
    let line = run(&["status", "--timeout", "2"]).await.error();
    assert!(line.contains("http://127.0.0.1:1"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_contexts_file_is_one_line_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let env = [("ROMANACTL_CONFIG", config.to_str().unwrap())];
    for (text, line, what) in [
        (
            "contexts:\n- name: a\n  rot: http://a:1\n",
            3,
            "unknown field `rot`",
        ),
        ("contexts:\n- name: a\n  root: [http://a:1\n", 4, ""),
        (
            "contexts:\n- name: a\n  root: x\n- name: a\n  root: y\n",
            4,
            "more than once",
        ),
        ("current-context: a\ncontexts: 7\n", 2, "invalid type"),
    ] {
        std::fs::write(&config, text).unwrap();
        for args in [&["status"][..], &["context", "list"][..]] {
            let got = romanactl_env(args, &env).await.error();
            let want = format!("error: {}:{line}: ", config.display());
            assert!(got.starts_with(&want), "{text:?} {args:?}: {got}");
            assert!(got.contains(what), "{text:?}: {got}");
        }
    }
    // Local commands that need no settings still work with a broken file.
    let out = romanactl_env(&["completion", "bash"], &env).await;
    assert_eq!(out.code, 0, "{out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn add_and_remove_write_the_xdg_or_home_file_atomically_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let (xdg, home) = (dir.path().join("xdg"), dir.path().join("home"));
    let (xdg_s, home_s) = (xdg.to_str().unwrap(), home.to_str().unwrap());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;

    // $XDG_CONFIG_HOME first.
    let env = [("XDG_CONFIG_HOME", xdg_s), ("HOME", home_s)];
    let added = romanactl_env(
        &[
            "context",
            "add",
            "lab",
            "--root",
            "http://127.0.0.1:9600",
            "--tls-ca",
            "ca.pem",
        ],
        &env,
    )
    .await
    .ok();
    assert_eq!(added, "added context \"lab\", now the current context\n");
    let file = xdg.join("romanactl/config.yaml");
    assert_eq!(mode(&file), 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("current-context: lab\n"), "{text}");
    assert!(
        text.contains(&format!(
            "tls-ca: {}",
            std::env::current_dir().unwrap().join("ca.pem").display()
        )),
        "relative TLS paths are saved absolute: {text}"
    );
    assert!(
        !home.exists(),
        "HOME is not touched when XDG_CONFIG_HOME is set"
    );

    let again = romanactl_env(&["context", "add", "lab", "--root", "http://x:1"], &env).await;
    assert!(again.error().contains("already exists"));
    let no_root = romanactl_env(&["context", "add", "other"], &env).await;
    assert_eq!(no_root.code, 2, "{no_root:?}");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let json = romanactl_env(&["context", "remove", "lab", "-o", "json"], &env)
        .await
        .json();
    assert_eq!(
        json,
        serde_json::json!({"current_context": null, "contexts": []})
    );
    assert_eq!(mode(&file), 0o640, "a rewrite keeps the file's mode");
    let entries = std::fs::read_dir(file.parent().unwrap()).unwrap().count();
    assert_eq!(entries, 1, "no temporary file is left behind");

    // Without XDG_CONFIG_HOME: ~/.config.
    let env = [("HOME", home_s)];
    romanactl_env(&["context", "add", "h", "--root", "http://h:1"], &env)
        .await
        .ok();
    assert_eq!(mode(&home.join(".config/romanactl/config.yaml")), 0o600);
    let listed = romanactl_env(&["context", "list", "-o", "json"], &env)
        .await
        .json();
    assert_eq!(listed[0]["name"], "h");
    assert_eq!(listed[0]["current"], true);
}
