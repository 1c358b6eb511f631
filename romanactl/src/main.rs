//! The `romanactl` binary: parses the command line, runs it on a single-threaded runtime
//! (a CLI makes one call at a time) and turns the result into stdout or one line on stderr.
//!
//! # Layout
//! - `main`: exit codes only; the commands live in the `romanactl` library.

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    // A bug must still honour the one-line contract: no backtrace, no debug structs.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let line = what.replace('\n', " ");
        eprintln!("error: internal error in romanactl (a bug, please report it): {line}");
    }));
    let cli = match romanactl::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors: clap prints them on stdout and exits 0.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let args: Vec<String> = std::env::args_os()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let line = romanactl::error::usage_line(&e, &romanactl::Cli::command(), &args);
            return fail(&line, 2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}"), 1),
    };
    match runtime.block_on(romanactl::run(cli)) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`romanactl host list | head -1`) is not a failure worth a line.
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e.line(), e.exit_code()),
    }
}

fn fail(line: &str, code: u8) -> ExitCode {
    eprintln!("error: {line}");
    ExitCode::from(code)
}
