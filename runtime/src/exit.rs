//! How a binary ends: exit code 0, or 1 after one `error: ...` line on stderr.

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

/// An error and its causes on one line.
pub fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    if parts.len() > 1 && parts[0] == "transport error" {
        parts.remove(0);
    }
    parts.join(": ").replace('\n', " ")
}
