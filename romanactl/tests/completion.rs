//! `romanactl completion` through the real binary and a real bash, and typo suggestions on
//! one stderr line. No control plane: neither needs a service.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_romanactl");

/// Runs a bash script with romanactl on PATH (no rc files: the test's shell setup must not
/// matter) and returns its stdout; fails on a non-zero exit.
fn bash(script: &str) -> String {
    let dir = std::path::Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script])
        .env("PATH", path)
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bash failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// What bash's completion function offers for the words of a command line; the last word is
/// the one being completed.
fn complete(words: &[&str]) -> Vec<String> {
    let cword = words.len() - 1;
    let line = words.join(" ");
    let script = format!(
        "source <(romanactl completion bash)\n\
         COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT={point}\n\
         _romanactl romanactl '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = words.join(" "),
        point = line.len(),
        cur = words[cword],
        prev = words[cword.saturating_sub(1)],
    );
    bash(&script).lines().map(str::to_string).collect()
}

#[test]
fn bash_completion_registers_and_completes_subcommands_and_flags() {
    let registered = bash("source <(romanactl completion bash); complete -p romanactl");
    assert!(
        registered.contains("-F _romanactl") && registered.trim_end().ends_with(" romanactl"),
        "{registered}"
    );
    assert_eq!(complete(&["romanactl", "ip"]), ["ipam"]);
    let host = complete(&["romanactl", "host", "st"]);
    assert_eq!(host, ["status"]);
    let flags = complete(&["romanactl", "ipam", "list", "--"]);
    for flag in [
        "--host",
        "--tenant",
        "--segment",
        "--root",
        "--output",
        "--context",
    ] {
        assert!(flags.iter().any(|f| f == flag), "{flag} not in {flags:?}");
    }
    // An empty word offers the flags too; the shells must be among the offers.
    let shells = complete(&["romanactl", "completion", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(
            shells.iter().any(|s| s == shell),
            "{shell} not in {shells:?}"
        );
    }
    assert_eq!(complete(&["romanactl", "completion", "f"]), ["fish"]);
}

/// zsh and fish need not be installed here; their scripts are checked for content, and for
/// syntax by the shell itself where it is.
#[test]
fn zsh_and_fish_scripts_name_the_subcommands() {
    for (shell, marker) in [
        ("zsh", "#compdef romanactl"),
        ("fish", "complete -c romanactl"),
    ] {
        let out = Command::new(BIN)
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        for sub in ["ipam", "policy", "host", "context", "status"] {
            assert!(script.contains(sub), "{shell} script lacks {sub}");
        }
        let installed = Command::new("sh")
            .args(["-c", &format!("command -v {shell}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if installed {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &script).unwrap();
            let check = Command::new(shell)
                .arg("-n")
                .arg(file.path())
                .output()
                .unwrap();
            assert!(check.status.success(), "{shell} -n: {check:?}");
        }
    }
}

#[test]
fn completion_of_an_unknown_shell_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("[possible values: bash, zsh, fish]"),
        "{stderr}"
    );
}

/// A mistyped subcommand or flag: exit 2, one line on stderr, with clap's suggestion, and
/// nothing is called (no root is given, none would answer).
#[test]
fn typos_get_a_suggestion_on_one_line() {
    for (args, tip) in [
        (&["ipm", "list"][..], "a similar subcommand exists: 'ipam'"),
        (
            &["host", "stauts"][..],
            "a similar subcommand exists: 'status'",
        ),
        (
            &["policy", "lst"][..],
            "a similar subcommand exists: 'list'",
        ),
        (
            &["ipam", "list", "--tenent", "t1"][..],
            "a similar argument exists: '--tenant'",
        ),
    ] {
        let out = Command::new(BIN)
            .args(args)
            .env("ROMANA_ROOT", "http://127.0.0.1:1")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(tip), "{args:?}: {stderr}");
    }
}
