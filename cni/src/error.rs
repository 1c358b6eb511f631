//! Every way a plugin call can fail, and its CNI error code.
//!
//! Spec codes: 1 incompatible version, 3 unknown container, 4 invalid network config, 5 I/O,
//! 6 undecodable content, 7 invalid environment variables, 11 try again later, 50 plugin
//! not available (STATUS). romana-cni's own codes start at 100, see [`code`].

use std::error::Error as StdError;
use std::io;

use romana_proto::discover::DiscoverError;

use crate::config::ConfigError;
use crate::env::EnvError;
use crate::netlink::NetlinkError;
use crate::result::ErrorReport;

/// CNI error codes, the spec's and romana-cni's.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_CONFIG: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_ENV: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// ipam-service refused the request (the endpoint holds another address, a bad
    /// argument). Fix the request; retrying does not help.
    pub const IPAM_REFUSED: u32 = 100;
    /// The host, tenant or segment is not known to romana.
    pub const PLACEMENT_NOT_FOUND: u32 = 101;
    /// The segment has no free address on this host.
    pub const ADDRESSES_EXHAUSTED: u32 = 102;
    /// A kernel (netlink) operation failed.
    pub const KERNEL: u32 = 110;
    /// The container already has an interface of that name, or a default route, that
    /// romana did not make.
    pub const CONTAINER_CONFLICT: u32 = 111;
    /// CHECK found the endpoint different from what ADD made.
    pub const CHECK_FAILED: u32 = 120;
}

/// A failed plugin call.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read the network configuration from stdin: {0}")]
    Stdin(#[source] io::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] io::Error),
    #[error("{verb} needs cniVersion {min} or later; the network configuration has {version}")]
    VerbNeedsVersion {
        verb: &'static str,
        min: &'static str,
        version: String,
    },
    #[error("cannot decode prevResult: {0}")]
    PrevResult(#[source] serde_json::Error),
    #[error("{0}")]
    Discover(#[source] DiscoverError),
    #[error("ipam-service {step}: {}", status_text(.status))]
    Ipam {
        step: String,
        #[source]
        status: tonic::Status,
    },
    #[error("ipam-service returned endpoint {endpoint} with an unusable {field} {value:?}")]
    BadEndpoint {
        endpoint: String,
        field: &'static str,
        value: String,
    },
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("endpoint {endpoint} is not as ADD left it: {}", .mismatches.join("; "))]
    Check {
        endpoint: String,
        mismatches: Vec<String>,
    },
    #[error("romana is not available: {0}")]
    NotAvailable(#[source] Box<CniError>),
    #[error("topology-service {step}: {}", status_text(.status))]
    Topology {
        step: String,
        #[source]
        status: tonic::Status,
    },
    /// This host's agent is not running or has not programmed what it knows.
    #[error("{0}")]
    AgentNotReady(String),
    #[error(
        "garbage collection failed for {} of {total} stale endpoints: {}",
        .failures.len(),
        .failures.join("; ")
    )]
    Gc {
        total: usize,
        failures: Vec<String>,
        code: u32,
    },
}

// === impl CniError ===

impl CniError {
    /// The CNI error code.
    pub fn code(&self) -> u32 {
        match self {
            CniError::Env(_) => code::INVALID_ENV,
            CniError::Config(e) => match e {
                ConfigError::Decode { .. } => code::DECODE,
                ConfigError::IncompatibleVersion { .. } => code::INCOMPATIBLE_VERSION,
                ConfigError::Invalid { .. } => code::INVALID_CONFIG,
                ConfigError::Hostname { .. } => code::IO,
            },
            CniError::Stdin(_) | CniError::Runtime(_) => code::IO,
            CniError::VerbNeedsVersion { .. } => code::INCOMPATIBLE_VERSION,
            CniError::PrevResult(_) => code::DECODE,
            CniError::Discover(e) if e.is_retryable() => code::TRY_AGAIN_LATER,
            CniError::Discover(_) => code::INVALID_CONFIG,
            CniError::Ipam { status, .. } => status_code(status),
            CniError::BadEndpoint { .. } => code::IPAM_REFUSED,
            CniError::Netlink(NetlinkError::NetnsMissing { .. }) => code::UNKNOWN_CONTAINER,
            CniError::Netlink(e) if e.is_conflict() => code::CONTAINER_CONFLICT,
            CniError::Netlink(_) => code::KERNEL,
            CniError::Check { .. } => code::CHECK_FAILED,
            CniError::NotAvailable(_) | CniError::AgentNotReady(_) => code::NOT_AVAILABLE,
            CniError::Topology { status, .. } => status_code(status),
            CniError::Gc { code, .. } => *code,
        }
    }

    /// Whether the runtime should call again later (code 11).
    pub fn is_retryable(&self) -> bool {
        self.code() == code::TRY_AGAIN_LATER
    }

    /// The error as printed on stdout: `msg` is this error's text, `details` the causes
    /// below it that the text does not already say, and what to do about a transient one.
    pub fn report(&self, cni_version: &str) -> ErrorReport {
        let msg = self.to_string();
        let mut details: Vec<String> = Vec::new();
        let mut next = self.source();
        while let Some(e) = next {
            next = e.source();
            // A status's own text is a debug form, and tonic's top transport error says
            // only "transport error"; what they carry is in `msg` already.
            if e.downcast_ref::<tonic::Status>().is_some() {
                continue;
            }
            let text = e.to_string();
            if text == "transport error" {
                continue;
            }
            if !text.is_empty()
                && !msg.contains(&text)
                && !details.iter().any(|d| d.contains(&text))
            {
                details.push(text);
            }
        }
        let code = self.code();
        if code == code::TRY_AGAIN_LATER || code == code::NOT_AVAILABLE {
            details.push(
                "transient: romana's services may be starting or restarting; try again later"
                    .into(),
            );
        }
        ErrorReport {
            cni_version: cni_version.to_string(),
            code,
            msg,
            details: details.join(": "),
        }
    }
}

/// The CNI code for a status from ipam-service.
fn status_code(status: &tonic::Status) -> u32 {
    use tonic::Code;
    match status.code() {
        Code::NotFound => code::PLACEMENT_NOT_FOUND,
        Code::ResourceExhausted => code::ADDRESSES_EXHAUSTED,
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::Cancelled
        | Code::Unknown
        | Code::Internal => code::TRY_AGAIN_LATER,
        _ => code::IPAM_REFUSED,
    }
}

/// A status on one line: its message, or what its code means. tonic reports its own
/// client-side deadline as CANCELLED "Timeout expired".
fn status_text(status: &tonic::Status) -> String {
    if status.code() == tonic::Code::Cancelled && status.message() == "Timeout expired" {
        return "no answer in time".into();
    }
    let text = status.message().trim();
    if text.is_empty() {
        status.code().description().to_string()
    } else {
        text.replace('\n', " ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NetConf;

    fn mk_ipam_error(status: tonic::Status) -> CniError {
        CniError::Ipam {
            step: "allocating for c1:eth0".into(),
            status,
        }
    }

    #[test]
    fn config_errors_map_to_spec_codes() {
        let decode = CniError::from(NetConf::parse(b"{").unwrap_err());
        assert_eq!(decode.code(), code::DECODE);
        let version = CniError::from(
            NetConf::parse(br#"{"cniVersion": "0.1.0", "name": "n", "root": "http://r:1"}"#)
                .unwrap_err(),
        );
        assert_eq!(version.code(), code::INCOMPATIBLE_VERSION);
        let invalid =
            CniError::from(NetConf::parse(br#"{"cniVersion": "1.0.0", "name": "n"}"#).unwrap_err());
        assert_eq!(invalid.code(), code::INVALID_CONFIG);
        let env = CniError::from(EnvError::Missing { var: "CNI_IFNAME" });
        assert_eq!(env.code(), code::INVALID_ENV);
    }

    #[test]
    fn ipam_statuses_map_to_retry_or_plugin_codes() {
        let cases = [
            (
                tonic::Status::unavailable("etcd down"),
                code::TRY_AGAIN_LATER,
            ),
            (
                tonic::Status::cancelled("Timeout expired"),
                code::TRY_AGAIN_LATER,
            ),
            (tonic::Status::aborted("race"), code::TRY_AGAIN_LATER),
            (
                tonic::Status::not_found("tenant t9"),
                code::PLACEMENT_NOT_FOUND,
            ),
            (
                tonic::Status::resource_exhausted("full"),
                code::ADDRESSES_EXHAUSTED,
            ),
            (tonic::Status::already_exists("holds"), code::IPAM_REFUSED),
            (tonic::Status::invalid_argument("bad"), code::IPAM_REFUSED),
        ];
        for (status, expected) in cases {
            let text = format!("{status:?}");
            assert_eq!(mk_ipam_error(status).code(), expected, "{text}");
        }
    }

    #[test]
    fn discover_errors_are_retryable_unless_the_url_is_bad() {
        let unreachable = CniError::Discover(DiscoverError::NotRegistered {
            kind: "ipam".into(),
            root: "http://r:1".into(),
        });
        assert!(unreachable.is_retryable());
        let bad = CniError::Discover(DiscoverError::BadUrl {
            url: "http://".into(),
            reason: "no host".into(),
        });
        assert_eq!(bad.code(), code::INVALID_CONFIG);
    }

    #[test]
    fn report_is_the_spec_error_json() {
        let err = mk_ipam_error(tonic::Status::not_found("tenant t9 does not exist"));
        let json = serde_json::to_value(err.report("1.0.0")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "cniVersion": "1.0.0",
                "code": 101,
                "msg": "ipam-service allocating for c1:eth0: tenant t9 does not exist"
            })
        );
        let transient = mk_ipam_error(tonic::Status::unavailable("etcd unavailable"));
        let report = transient.report("1.1.0");
        assert_eq!(report.code, 11);
        assert!(report.details.contains("try again later"), "{report:?}");
    }

    #[test]
    fn not_available_wraps_the_cause_with_code_50() {
        let err = CniError::NotAvailable(Box::new(mk_ipam_error(tonic::Status::unavailable(
            "etcd unavailable",
        ))));
        assert_eq!(err.code(), code::NOT_AVAILABLE);
        assert!(err
            .to_string()
            .starts_with("romana is not available: ipam-service"));
    }
}
