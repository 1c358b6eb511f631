//! deploy/systemd: units and example env files against `--help`.

use std::collections::{BTreeMap, BTreeSet};

use crate::help::{repo, Helps, READ_BY_LOGGING, UNIT_BINARIES};

/// `KEY=VALUE` entries of a unit, by section, with `\` continuations joined.
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut entries = Vec::new();
    let (mut section, mut pending) = (String::new(), String::new());
    for line in text.lines() {
        let line = line.trim();
        if pending.is_empty() && (line.is_empty() || line.starts_with(['#', ';'])) {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        if let Some((k, v)) = pending.split_once('=') {
            entries.push((section.clone(), k.trim().into(), v.trim().into()));
        }
        pending.clear();
    }
    entries
}

/// Assignments of an example env file, commented-out examples (`#NAME=value`) included:
/// an operator uncomments them as they are.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim().trim_start_matches('#').trim_start();
            let (name, value) = line.split_once('=')?;
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            valid.then(|| (name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Variables an ExecStart word uses: `${NAME}` (one argument) and `$NAME` (split at spaces).
fn exec_vars(word: &str) -> Vec<(String, bool)> {
    let mut vars = Vec::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let braced = rest.starts_with('{');
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        vars.push((name, braced));
    }
    vars
}

/// The problems of one unit: flags, variables and env files that do not match `--help`.
/// `env_files` maps `/etc/romana/NAME.env` to the example's text.
fn check_unit(
    unit_name: &str,
    text: &str,
    env_files: &BTreeMap<String, String>,
    helps: &mut Helps,
) -> Vec<String> {
    let mut problems = Vec::new();
    let entries = parse_unit(text);
    let get = |key: &str| -> Vec<&str> {
        entries
            .iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    };
    let exec = get("ExecStart");
    let [exec] = exec.as_slice() else {
        return vec![format!(
            "{unit_name}: wants one ExecStart, has {}",
            exec.len()
        )];
    };
    let words: Vec<&str> = exec
        .trim_start_matches(['-', '@', ':', '+', '!'])
        .split_whitespace()
        .collect();
    let bin = words[0].rsplit('/').next().unwrap_or_default().to_string();
    if !UNIT_BINARIES.contains(&bin.as_str()) {
        return vec![format!(
            "{unit_name}: ExecStart runs {}, not a romana binary",
            words[0]
        )];
    }
    let help = helps.get(&bin, &[]);
    let (flags, env) = (help.flags.clone(), help.env.clone());

    // Defaults the unit sets itself, then the example env files it reads.
    let mut defaults = BTreeSet::new();
    let mut assignments: Vec<(String, String, String)> = Vec::new();
    for value in get("Environment") {
        for pair in value.split_whitespace() {
            let (name, v) = pair.split_once('=').unwrap_or((pair, ""));
            defaults.insert(name.to_string());
            assignments.push((format!("{unit_name} Environment="), name.into(), v.into()));
        }
    }
    for file in get("EnvironmentFile") {
        let path = file.trim_start_matches('-');
        match env_files.get(path) {
            None => problems.push(format!(
                "{unit_name}: EnvironmentFile={path} has no example in deploy/systemd/"
            )),
            Some(text) => {
                let short = path.rsplit('/').next().unwrap_or(path);
                for (name, value) in parse_env_file(text) {
                    assignments.push((short.to_string(), name, value));
                }
            }
        }
    }

    let mut used = BTreeMap::new();
    for word in &words[1..] {
        if word.starts_with('-') && !word.contains('$') {
            let flag = word.split('=').next().unwrap_or(word);
            if !flags.contains(flag) {
                problems.push(format!(
                    "{unit_name}: ExecStart names {flag}, which `{bin} --help` does not list"
                ));
            }
        }
        for (var, braced) in exec_vars(word) {
            if braced && !defaults.contains(&var) {
                problems.push(format!(
                    "{unit_name}: ExecStart uses ${{{var}}} as one argument but the unit sets no \
                     Environment={var}=... default (unset, it would pass an empty argument)"
                ));
            }
            used.insert(var, braced);
        }
    }
    for (origin, name, value) in assignments {
        match used.get(&name) {
            // Split into arguments: every flag in it must exist.
            Some(false) => {
                for flag in value.split_whitespace().filter(|w| w.starts_with('-')) {
                    let flag = flag.split('=').next().unwrap_or(flag);
                    if !flags.contains(flag) {
                        problems.push(format!(
                            "{origin}: {name} passes {flag}, which `{bin} --help` does not list"
                        ));
                    }
                }
            }
            Some(true) => {}
            None if env.contains(&name) || READ_BY_LOGGING.contains(&name.as_str()) => {}
            None => problems.push(format!(
                "{origin}: sets {name}, which {bin} does not read (not an [env: ...] of \
                 `{bin} --help`) and {unit_name}'s ExecStart does not use"
            )),
        }
    }
    problems
}

/// deploy/systemd/*.service and *.env, by file name and by installed path.
fn deploy_files() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let dir = repo().join("deploy/systemd");
    let mut units = BTreeMap::new();
    let mut env_files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        if name.ends_with(".service") {
            units.insert(name, text);
        } else if name.ends_with(".env") {
            env_files.insert(format!("/etc/romana/{name}"), text);
        }
    }
    (units, env_files)
}

#[test]
fn systemd_units_and_env_files_use_only_flags_and_variables_the_binaries_accept() {
    let (units, env_files) = deploy_files();
    let mut helps = Helps::default();
    let mut problems = Vec::new();
    for bin in UNIT_BINARIES {
        if !units.contains_key(&format!("{bin}.service")) {
            problems.push(format!("deploy/systemd/{bin}.service is missing"));
        }
    }
    let mut read = BTreeSet::new();
    for (name, text) in &units {
        problems.extend(check_unit(name, text, &env_files, &mut helps));
        for (_, k, v) in parse_unit(text) {
            if k == "EnvironmentFile" {
                read.insert(v.trim_start_matches('-').to_string());
            }
        }
    }
    for path in env_files.keys().filter(|p| !read.contains(*p)) {
        problems.push(format!("{path}: no unit reads it"));
    }
    assert!(
        problems.is_empty(),
        "deploy/systemd drifted:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_five_service_units_differ_only_in_kind_and_port() {
    let (units, _) = deploy_files();
    let normal = |kind: &str, port: &str| -> Vec<String> {
        units[&format!("romana-{kind}.service")]
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("Description="))
            .map(|l| l.replace(kind, "KIND").replace(port, "PORT"))
            .collect()
    };
    let root = normal("root", "9600");
    for (kind, port) in [
        ("topology", "9601"),
        ("tenant", "9602"),
        ("ipam", "9603"),
        ("policy", "9604"),
    ] {
        assert_eq!(
            normal(kind, port),
            root,
            "romana-{kind}.service vs romana-root.service"
        );
    }
}

#[test]
fn the_unit_check_catches_a_made_up_flag_and_variable() {
    let unit = "[Service]\nEnvironment=ROMANA_PORT=1\nEnvironmentFile=/etc/romana/x.env\n\
                EnvironmentFile=/etc/romana/missing.env\n\
                ExecStart=/usr/local/bin/romana-root --insecure --no-such-flag ${ROMANA_PORT} \
                ${ROMANA_UNSET} $ROMANA_ARGS\n";
    let env_files = BTreeMap::from([(
        "/etc/romana/x.env".to_string(),
        "ROMANA_ETCD_CA=/ca.pem\n#ROMANA_NO_SUCH_VAR=1\nROMANA_ARGS=--metrics-listen x --bogus\n"
            .to_string(),
    )]);
    let mut helps = Helps::default();
    let problems = check_unit("t.service", unit, &env_files, &mut helps).join("\n");
    for want in [
        "ExecStart names --no-such-flag",
        "${ROMANA_UNSET} as one argument",
        "missing.env has no example",
        "sets ROMANA_NO_SUCH_VAR, which romana-root does not read",
        "ROMANA_ARGS passes --bogus",
    ] {
        assert!(problems.contains(want), "wanted {want:?} in:\n{problems}");
    }
    for fine in [
        "--insecure",
        "ROMANA_ETCD_CA",
        "--metrics-listen",
        "ROMANA_PORT",
    ] {
        assert!(!problems.contains(fine), "{fine} is accepted:\n{problems}");
    }
    assert_eq!(problems.lines().count(), 5, "{problems}");
}
