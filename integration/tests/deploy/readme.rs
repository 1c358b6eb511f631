//! deploy/README.md: the commands of its ```sh blocks against `--help`.

use crate::help::{repo, Helps, UNIT_BINARIES};

/// Commands of ```sh blocks, continuations joined, split at `|`, `&&`, `;`, comments cut.
fn readme_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let (mut in_sh, mut pending) = (false, String::new());
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_sh = !in_sh && line.trim_start() == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let line = match line.find(" #") {
            Some(at) => &line[..at],
            None if line.trim_start().starts_with('#') => "",
            None => line,
        };
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        for part in pending.split(['|', ';']).flat_map(|p| p.split("&&")) {
            commands.push(part.trim().to_string());
        }
        pending.clear();
    }
    commands
}

/// The problems of one README command line, if it runs one of our binaries.
fn check_command(line: &str, helps: &mut Helps) -> Vec<String> {
    let words: Vec<&str> = line
        .split_whitespace()
        .skip_while(|w| *w == "sudo" || (w.contains('=') && !w.starts_with('-')))
        .collect();
    let Some(first) = words.first() else {
        return Vec::new();
    };
    let bin = first.rsplit('/').next().unwrap_or_default();
    if bin != "romanactl" && !UNIT_BINARIES.contains(&bin) {
        return Vec::new();
    }
    let mut path: Vec<String> = Vec::new();
    for word in &words[1..] {
        if !word.starts_with('-') && helps.get(bin, &path).commands.contains(*word) {
            path.push(word.to_string());
        }
    }
    let flags = helps.get(bin, &path).flags.clone();
    words[1..]
        .iter()
        .filter(|w| w.starts_with('-') && !w.starts_with("-$"))
        .map(|w| w.split('=').next().unwrap_or(w))
        .filter(|flag| !flags.contains(*flag))
        .map(|flag| {
            format!(
                "`{line}`: {flag} is not listed by `{bin} {} --help`",
                path.join(" ")
            )
        })
        .collect()
}

#[test]
fn deploy_readme_commands_use_only_listed_subcommands_and_flags() {
    let text = std::fs::read_to_string(repo().join("deploy/README.md")).unwrap();
    let mut helps = Helps::default();
    let commands = readme_commands(&text);
    let ours = commands
        .iter()
        .filter(|c| c.contains("romanactl") || c.contains("romana-"))
        .count();
    assert!(
        ours >= 10,
        "deploy/README.md has {ours} romana commands in ```sh blocks"
    );
    let problems: Vec<String> = commands
        .iter()
        .flat_map(|c| check_command(c, &mut helps))
        .collect();
    assert!(
        problems.is_empty(),
        "deploy/README.md drifted:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_readme_check_catches_a_made_up_flag_and_a_flag_at_the_wrong_level() {
    let mut helps = Helps::default();
    let bad = check_command(
        "romanactl --root $R host add h1 --ip 10.0.0.1 --rak 0",
        &mut helps,
    );
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains("--rak is not listed by `romanactl host add --help`"),
        "{bad:?}"
    );
    assert!(check_command("romanactl -o json topology fabric", &mut helps).is_empty());
    let wrong_level = check_command("romanactl certs init /pki --cn admin", &mut helps);
    assert_eq!(
        wrong_level.len(),
        1,
        "--cn belongs to certs issue: {wrong_level:?}"
    );
    assert!(check_command("etcdctl --anything", &mut helps).is_empty());
}
