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

    #[test]
    fn usage_errors_exit_like_clap() {
        assert_eq!(Error::Usage("label app given twice".into()).exit_code(), 2);
    }
}
