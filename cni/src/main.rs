//! The `romana-cni` binary: a CNI runtime runs it once per call. Logs go to stderr (filter
//! with `ROMANA_CNI_LOG`, default `warn`); stdout carries only the spec's JSON.

use std::io::Write;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ROMANA_CNI_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // The runtime captures stderr into its logs: colour only at a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // Variables that are not UTF-8 cannot be CNI's; skip them rather than panic.
    let vars = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let outcome = romana_cni::run(vars, &mut std::io::stdin().lock());
    let mut stdout = std::io::stdout().lock();
    if stdout
        .write_all(outcome.stdout.as_bytes())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    ExitCode::from(outcome.exit_code)
}
