//! What `--help` of our binaries lists: flags, environment variables, subcommands.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use romana_integration::cluster::binary;

/// The binaries a unit runs.
pub const UNIT_BINARIES: [&str; 6] = [
    "romana-root",
    "romana-topology",
    "romana-tenant",
    "romana-ipam",
    "romana-policy",
    "romana-agent",
];

/// Read by every binary although `--help` cannot list them: the `tracing` subscriber's
/// filter and its colour switch (`NO_COLOR`, so that journald gets no escape codes).
pub const READ_BY_LOGGING: [&str; 2] = ["RUST_LOG", "NO_COLOR"];

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration/ is in the workspace")
        .to_path_buf()
}

// === --help ===

/// What one `--help` says: long and short flags (with aliases), environment variables and
/// subcommands.
#[derive(Debug, Default)]
pub struct Help {
    pub flags: BTreeSet<String>,
    pub env: BTreeSet<String>,
    pub commands: BTreeSet<String>,
}

/// Parses clap's help. Flags are taken from the head of option lines only (not from
/// descriptions, which mention other flags), plus `[alias: ...]` and `[aliases: ...]`.
fn parse_help(text: &str) -> Help {
    let mut help = Help::default();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            continue;
        }
        let body = line.trim_start();
        match section {
            "Commands:" => {
                if let Some(name) = body.split_whitespace().next() {
                    help.commands.insert(name.to_string());
                }
            }
            "Options:" if body.starts_with('-') => {
                for token in body.split_whitespace() {
                    let token = token.trim_end_matches(',');
                    if token.starts_with('-') {
                        help.flags.insert(token.to_string());
                    } else if !token.starts_with('<') {
                        break;
                    }
                }
            }
            _ => {}
        }
        for (open, is_env) in [("[alias: ", false), ("[aliases: ", false), ("[env: ", true)] {
            let mut rest = line;
            while let Some(at) = rest.find(open) {
                let inner = &rest[at + open.len()..];
                let end = inner.find(']').unwrap_or(inner.len());
                for item in inner[..end].split(", ") {
                    let name = item.split('=').next().unwrap_or_default().trim();
                    let into = if is_env {
                        &mut help.env
                    } else {
                        &mut help.flags
                    };
                    into.insert(name.to_string());
                }
                rest = &inner[end..];
            }
        }
    }
    help
}

/// `--help` of a binary (and subcommand path), run once per distinct command.
#[derive(Default)]
pub struct Helps(BTreeMap<Vec<String>, Help>);

impl Helps {
    pub fn get(&mut self, bin: &str, path: &[String]) -> &Help {
        let key: Vec<String> = std::iter::once(bin.to_string())
            .chain(path.iter().cloned())
            .collect();
        self.0.entry(key).or_insert_with(|| {
            let exe = binary(bin);
            assert!(
                exe.exists(),
                "{} missing: cargo build --bins",
                exe.display()
            );
            let out = Command::new(&exe)
                .args(path)
                .arg("--help")
                .env_clear()
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
            assert!(out.status.success(), "{bin} {path:?} --help failed");
            parse_help(&String::from_utf8_lossy(&out.stdout))
        })
    }
}
