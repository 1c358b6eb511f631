//! How a binary ends: exit code 0, or 1 after one `error: ...` line on stderr.

use romana_proto::error_text::causes;

/// A binary's exit: 0, or 1 after one `error: ...` line on stderr (no backtrace, whatever
/// RUST_BACKTRACE says).
pub fn exit_code<E: std::error::Error + 'static>(result: Result<(), E>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", causes(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
