//! `deploy/` against the real binaries, so that units and docs cannot drift from the flags:
//! - [`units`]: every flag a `deploy/systemd/*.service` ExecStart names, and every flag in
//!   an example `ROMANA_ARGS`, is listed by that binary's `--help`; every variable an
//!   example env file (or the unit) sets is one the binary reads (`[env: NAME=]` in
//!   `--help`) or one the unit's ExecStart uses, and a `${NAME}` the ExecStart needs as one
//!   argument always has a default in the unit; the five service units differ only in
//!   their kind and port.
//! - [`readme`]: every `romanactl ...` / `romana-* ...` command in `deploy/README.md` uses
//!   subcommands and flags that `--help` lists.
//! - [`verify`]: `systemd-analyze verify` has nothing to say about the units.
//! - [`help`]: what a binary's `--help` says it accepts.
//!
//! Cheap: it runs `--help` and `systemd-analyze` only (no root, no etcd). The checks are
//! functions returning the problems found, and the units and readme modules also feed
//! their check a made-up flag to show it fails.

mod help;
mod readme;
mod units;
mod verify;
