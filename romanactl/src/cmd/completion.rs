//! `romanactl completion bash|zsh|fish`: the shell's completion script, generated from the
//! command tree itself so that it never lags behind a new command or flag.

use clap::{Args, CommandFactory, ValueEnum};

use crate::Error;

#[derive(Debug, Args)]
pub struct Completion {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// The shells CONVENTIONS names; clap_complete has more, added here when someone needs one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

// === impl Completion ===

impl Completion {
    /// The script, to be sourced by the shell (see the README for where each shell looks).
    pub fn apply(self) -> Result<String, Error> {
        let shell = match self.shell {
            Shell::Bash => clap_complete::Shell::Bash,
            Shell::Zsh => clap_complete::Shell::Zsh,
            Shell::Fish => clap_complete::Shell::Fish,
        };
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut super::Cli::command(), "romanactl", &mut script);
        String::from_utf8(script).map_err(|e| Error::Encode {
            format: "completion script",
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = Completion { shell }.apply().unwrap();
            for word in ["romanactl", "ipam", "policy", "context", "completion"] {
                assert!(script.contains(word), "{shell:?} script lacks {word}");
            }
        }
    }
}
