//! deploy/systemd through `systemd-analyze verify`, which must print nothing: no unknown
//! setting, no bad value, no missing dependency. It runs on a scratch root (`--root`) that
//! holds the system's own units, ours, and a stub for each binary (verify only checks that
//! ExecStart is executable), so nothing is installed on the machine.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use romana_integration::require::{decide, on_path, Decision};

use crate::help::{repo, UNIT_BINARIES};

/// Where Debian keeps the system's units (`/lib` is a link to `/usr/lib` on Debian 12).
const SYSTEM_UNITS: &str = "/usr/lib/systemd/system";

#[test]
fn systemd_analyze_verify_finds_nothing_to_say_about_the_units() {
    let missing: Vec<&str> = ["systemd-analyze"]
        .into_iter()
        .filter(|t| !on_path(t))
        .collect();
    match decide(true, &missing, std::env::var("CI").ok().as_deref()) {
        Decision::Run => {}
        Decision::Skip(reason) => {
            eprintln!("SKIPPED {}: {reason}", module_path!());
            return;
        }
        Decision::Fail(reason) => panic!("{reason}"),
    }
    let root = tempfile::tempdir().unwrap();
    let (units, bin) = (
        root.path().join("etc/systemd/system"),
        root.path().join("usr/local/bin"),
    );
    let lib = root.path().join("usr/lib/systemd");
    for dir in [&units, &bin, &lib] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let copied = Command::new("cp")
        .args(["-a", SYSTEM_UNITS])
        .arg(&lib)
        .status()
        .unwrap();
    assert!(copied.success(), "cp -a {SYSTEM_UNITS}");
    for name in UNIT_BINARIES {
        let stub = bin.join(name);
        std::fs::write(&stub, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(repo().join("deploy/systemd")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".service") {
            std::fs::copy(&path, units.join(&name)).unwrap();
            names.push(name);
        }
    }
    assert_eq!(names.len(), UNIT_BINARIES.len(), "{names:?}");

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .args(&names)
        .current_dir(&units)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify ({}): {said}",
        out.status
    );
}
