//! What can go wrong in a command, and the one line it prints. Scripts read the exit code
//! and people read the line, so the line leads with a short word for the gRPC code
//! ("not found", "already exists") and then the service's own message, which names the
//! object.

use romana_proto::discover::DiscoverError;
use tonic::{Code, Status};

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No channel to the service the command needs.
    #[error(transparent)]
    Discover(#[from] DiscoverError),
    /// A service refused or failed the call.
    #[error("{}", status_line(.0))]
    Status(#[from] Status),
    /// Flags that parse one by one but not together (a label key given twice). Exit code 2,
    /// as clap's own usage errors.
    #[error("{0}")]
    Usage(String),
    /// The contexts file cannot be read, parsed or written, or lacks the context named.
    #[error(transparent)]
    Contexts(#[from] crate::contexts::ContextsError),
    /// TLS files that cannot be read.
    #[error("{0}")]
    Tls(String),
    /// `romanactl certs` could not make or write a certificate.
    #[error(transparent)]
    Certs(#[from] crate::certs::CertsError),
    /// `romanactl etcd-auth` could not set up etcd.
    #[error(transparent)]
    EtcdAuth(#[from] crate::etcd_auth::EtcdAuthError),
    /// A service answered without a field the API promises; a version skew between
    /// romanactl and the service.
    #[error("{service} answered {call} without {field}; is romanactl the same version?")]
    Incomplete {
        service: &'static str,
        call: &'static str,
        field: &'static str,
    },
    /// `romanactl health`: instances that do not answer SERVING, each with its answer.
    #[error("not serving: {0}")]
    Unhealthy(String),
    /// Output that serde could not encode.
    #[error("cannot encode the output as {format}: {reason}")]
    Encode {
        format: &'static str,
        reason: String,
    },
}

// === impl Error ===

impl Error {
    /// The message on one line, without the `error: ` prefix.
    pub fn line(&self) -> String {
        one_line(&self.to_string())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// A status as `<code word>: <message>`. The word is left out when the message already
/// starts with it, and the code's own word stands in for an empty message. Transport
/// failures carry only "transport error" as their message; their causes are appended.
fn status_line(status: &Status) -> String {
    if status.code() == Code::Cancelled && status.message() == "Timeout expired" {
        // tonic reports its client-side deadline as CANCELLED.
        return "timed out: no answer within the request timeout (--timeout)".into();
    }
    let word = code_word(status.code());
    let mut message = status.message().trim().to_string();
    let mut next = std::error::Error::source(status);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        next = cause.source();
    }
    if message.is_empty() {
        return word.to_string();
    }
    if word.is_empty() || message.to_ascii_lowercase().starts_with(word) {
        return message;
    }
    format!("{word}: {message}")
}

fn code_word(code: Code) -> &'static str {
    match code {
        Code::Ok => "",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown error",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "timed out",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "exhausted",
        Code::FailedPrecondition => "refused",
        Code::Aborted => "conflict",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "not implemented by the service",
        Code::Internal => "internal error",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

/// A command line clap refused, as the one line stderr gets (without the `error: ` prefix):
/// clap's message and its tips (a typo's "a similar subcommand exists: 'ipam'"), joined,
/// with the usage block left out: `--help` shows it. A missing subcommand, for which clap
/// would print the whole help on stderr, lists the subcommands instead.
/// `args` are the command line without the program name.
pub fn usage_line(err: &clap::Error, cmd: &clap::Command, args: &[String]) -> String {
    if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap does not say which command it was; the deepest one given on the command line
        // is found by walking the tree along the arguments.
        return missing_subcommand_line(cmd, args);
    }
    let text = err.render().to_string();
    let mut parts: Vec<String> = Vec::new();
    let mut in_usage = false;
    // The command the error is about, from the usage line ("Usage: romanactl host status
    // [OPTIONS]"), so the hint points at that command's own --help.
    let mut path = "romanactl".to_string();
    for line in text.lines().map(str::trim) {
        if let Some(usage) = line.strip_prefix("Usage:") {
            if !in_usage {
                let words: Vec<&str> = usage
                    .split_whitespace()
                    .take_while(|w| !w.starts_with(['[', '<', '-']))
                    .collect();
                if !words.is_empty() {
                    path = words.join(" ");
                }
            }
            in_usage = true;
            continue;
        }
        if line.is_empty() {
            in_usage = false;
            continue;
        }
        if in_usage || line.starts_with("For more information") {
            continue;
        }
        let line = line.strip_prefix("error: ").unwrap_or(line);
        match parts.last_mut() {
            // "the following required arguments were not provided:" and the list below it.
            Some(last) if last.ends_with(':') => {
                last.push(' ');
                last.push_str(line);
            }
            _ => parts.push(line.to_string()),
        }
    }
    if parts.is_empty() {
        // Never an empty line: fall back on the kind of error.
        parts.push(err.kind().to_string());
    }
    format!("{}; see '{path} --help'", parts.join("; "))
}

/// `'romanactl host' needs a subcommand: add, list, ...` for the command `args` lead to.
fn missing_subcommand_line(cmd: &clap::Command, args: &[String]) -> String {
    let mut path = vec![cmd.get_name().to_string()];
    let mut at = cmd;
    for arg in args {
        if let Some(sub) = at.find_subcommand(arg) {
            path.push(sub.get_name().to_string());
            at = sub;
        }
    }
    let subs: Vec<&str> = at
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name())
        .collect();
    let path = path.join(" ");
    format!(
        "'{path}' needs a subcommand: {}; see '{path} --help'",
        subs.join(", ")
    )
}

/// Services and transports may put newlines in messages; stderr gets exactly one line.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_leads_with_the_code_word() {
        let err = Error::from(Status::not_found("host h9 does not exist"));
        assert_eq!(err.line(), "not found: host h9 does not exist");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn status_line_does_not_repeat_the_code_word() {
        let err = Error::from(Status::unavailable("Unavailable: etcd is down"));
        assert_eq!(err.line(), "Unavailable: etcd is down");
    }

    #[test]
    fn empty_status_message_falls_back_to_the_code_word() {
        let err = Error::from(Status::new(Code::DeadlineExceeded, ""));
        assert_eq!(err.line(), "timed out");
    }

    #[test]
    fn client_side_timeout_is_called_a_timeout() {
        let err = Error::from(Status::cancelled("Timeout expired"));
        assert_eq!(
            err.line(),
            "timed out: no answer within the request timeout (--timeout)"
        );
    }

    #[test]
    fn transport_causes_are_appended_to_a_generic_message() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset");
        let err = Error::from(Status::from_error(Box::new(io)));
        assert!(err.line().ends_with("connection reset"), "{}", err.line());
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        let err = Error::from(Status::internal("first\n  second\r\nthird\n"));
        assert_eq!(err.line(), "internal error: first second third");
    }

    fn mk_usage_line(args: &[&str]) -> String {
        use clap::{CommandFactory, Parser};
        let err =
            crate::Cli::try_parse_from(std::iter::once("romanactl").chain(args.iter().copied()))
                .unwrap_err();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        usage_line(&err, &crate::Cli::command(), &args)
    }

    #[test]
    fn a_typo_in_a_subcommand_is_one_line_with_the_suggestion() {
        assert_eq!(
            mk_usage_line(&["ipm", "list"]),
            "unrecognized subcommand 'ipm'; tip: a similar subcommand exists: 'ipam'; \
             see 'romanactl --help'"
        );
        assert_eq!(
            mk_usage_line(&["host", "stats"]),
            "unrecognized subcommand 'stats'; tip: a similar subcommand exists: 'status'; \
             see 'romanactl host --help'"
        );
        let line = mk_usage_line(&["ipam", "list", "--hots", "h1"]);
        assert!(
            line.contains("tip: a similar argument exists: '--host'"),
            "{line}"
        );
        assert!(line.ends_with("see 'romanactl ipam list --help'"), "{line}");
        assert_eq!(
            mk_usage_line(&["completion"]),
            "the following required arguments were not provided: <SHELL>; \
             see 'romanactl completion --help'"
        );
    }

    #[test]
    fn a_missing_subcommand_lists_the_subcommands_on_one_line() {
        assert_eq!(
            mk_usage_line(&["host"]),
            "'romanactl host' needs a subcommand: add, list, show, status, remove; \
             see 'romanactl host --help'"
        );
    }

    #[test]
    fn usage_errors_exit_like_clap() {
        assert_eq!(Error::Usage("label app given twice".into()).exit_code(), 2);
    }
}
