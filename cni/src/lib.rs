//! romana-cni: the CNI plugin (spec 1.0.0 and 1.1.0; results also in 0.3.x/0.4.0 format)
//! that gives a container a romana-rs endpoint. ADD asks ipam-service (found through root)
//! for an address in (host, tenant, segment) and wires a veth pair into the host's routed
//! design: no bridge, no overlay; the host answers for the segment gateway on every
//! endpoint link and routes the endpoint's /32 to it.
//!
//! # Layout
//! - [`env`](mod@env): the `CNI_*` variables and `CNI_ARGS` (`K8S_POD_NAMESPACE`,
//!   `ROMANA_SEGMENT`, `ROMANA_LABELS`, `ROMANA_PORTS`), parsed from plain pairs.
//! - [`config`]: the network config on stdin, validated, and resolved with `CNI_ARGS` into
//!   a placement.
//! - [`cmd`]: one module per verb (`add`, `del`, `check`, `version`, `status`, `gc`), each a
//!   `run` returning what the verb prints.
//! - [`ipam`]: the ipam-service client, errors named by step.
//! - [`netlink`]: the only kernel I/O: wiring, unwiring and observing an endpoint's links,
//!   addresses and routes; container-side work on a thread inside `CNI_NETNS`.
//! - [`pod`]: the Kubernetes pod named by `K8S_POD_*` in `CNI_ARGS`, for the record.
//! - [`result`]: the spec's result, version and error JSON types.
//! - [`error`]: [`CniError`] and its CNI error codes.
//! - [`run`]: one call from environment and stdin to stdout and exit code.
#![forbid(unsafe_code)]

pub mod cmd;
pub mod config;
pub mod env;
pub mod error;
pub mod ipam;
pub mod netlink;
pub mod pod;
pub mod result;

use std::io::Read;

pub use config::{NetConf, SUPPORTED_VERSIONS};
pub use env::{Command, Env};
pub use error::CniError;
pub use result::{CniResult, ErrorReport, VersionInfo};

/// What one call prints on stdout, and how it exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub exit_code: u8,
}

/// Runs one plugin call: `vars` are the process environment, `stdin` the network config.
/// Errors are printed as the spec's error JSON, in the config's cniVersion when usable.
pub fn run<I, K, V>(vars: I, stdin: &mut dyn Read) -> Outcome
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut input = Vec::new();
    if let Err(e) = stdin.read_to_end(&mut input) {
        return failure(&CniError::Stdin(e), config::LATEST_VERSION);
    }
    match execute(vars, &input) {
        Ok(stdout) => Outcome {
            stdout,
            exit_code: 0,
        },
        Err(e) => failure(&e, &config::reported_version(&input)),
    }
}

fn execute<I, K, V>(vars: I, input: &[u8]) -> Result<String, CniError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let env = Env::parse(vars)?;
    let command = env.command()?;
    if command == Command::Version {
        return Ok(to_json(&cmd::version::run(input)));
    }
    let conf = NetConf::parse(input)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CniError::Runtime)?;
    runtime.block_on(async {
        match command {
            Command::Add => cmd::add::run(&env, &conf).await.map(|r| to_json(&r)),
            Command::Del => cmd::del::run(&env, &conf).await.map(|()| String::new()),
            Command::Check => cmd::check::run(&env, &conf).await.map(|()| String::new()),
            Command::Status => cmd::status::run(&conf).await.map(|()| String::new()),
            Command::Gc => cmd::gc::run(&conf).await.map(|()| String::new()),
            Command::Version => unreachable!("answered above without a config"),
        }
    })
}

fn failure(e: &CniError, cni_version: &str) -> Outcome {
    tracing::warn!(code = e.code(), error = %e, "failed");
    Outcome {
        stdout: to_json(&e.report(cni_version)),
        exit_code: 1,
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("result types serialize");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_run(vars: &[(&str, &str)], stdin: &str) -> (serde_json::Value, u8) {
        let outcome = run(vars.iter().copied(), &mut stdin.as_bytes());
        let json = if outcome.stdout.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&outcome.stdout).unwrap()
        };
        (json, outcome.exit_code)
    }

    #[test]
    fn version_needs_no_config() {
        let (json, code) = mk_run(&[("CNI_COMMAND", "VERSION")], "");
        assert_eq!(code, 0);
        assert_eq!(json["cniVersion"], "1.1.0");
        assert_eq!(json["supportedVersions"][3], "1.0.0");
    }

    #[test]
    fn bad_config_is_error_json_with_code_and_config_version() {
        let (json, code) = mk_run(
            &[("CNI_COMMAND", "ADD")],
            r#"{"cniVersion": "0.4.0", "name": "n"}"#,
        );
        assert_eq!(code, 1);
        assert_eq!(json["cniVersion"], "0.4.0");
        assert_eq!(json["code"], 4);
        assert!(json["msg"].as_str().unwrap().contains("\"root\""), "{json}");

        let (json, _) = mk_run(&[("CNI_COMMAND", "ADD")], "not json");
        assert_eq!(
            (json["code"].as_u64(), json["cniVersion"].as_str()),
            (Some(6), Some("1.1.0"))
        );
    }

    #[test]
    fn missing_command_or_container_is_an_environment_error() {
        let conf = r#"{"cniVersion": "1.0.0", "name": "n", "root": "http://127.0.0.1:1"}"#;
        let (json, code) = mk_run(&[], conf);
        assert_eq!((json["code"].as_u64(), code), (Some(7), 1));
        assert!(json["msg"].as_str().unwrap().contains("CNI_COMMAND"));

        let (json, _) = mk_run(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")], conf);
        assert_eq!(json["code"], 7);
        assert!(json["msg"].as_str().unwrap().contains("CNI_CONTAINERID"));
    }

    #[test]
    fn status_and_gc_refuse_configs_older_than_1_1_0() {
        let conf = r#"{"cniVersion": "1.0.0", "name": "n", "root": "http://127.0.0.1:1"}"#;
        for verb in ["STATUS", "GC"] {
            let (json, _) = mk_run(&[("CNI_COMMAND", verb)], conf);
            assert_eq!(json["code"], 1, "{verb}: {json}");
        }
        let old = r#"{"cniVersion": "0.3.1", "name": "n", "root": "http://127.0.0.1:1"}"#;
        let (json, _) = mk_run(
            &[
                ("CNI_COMMAND", "CHECK"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", "/nonexistent"),
            ],
            old,
        );
        assert_eq!(json["code"], 1, "{json}");
    }

    #[test]
    fn add_into_a_missing_netns_is_unknown_container_before_any_allocation() {
        // root is unreachable: reaching it would be code 11, so code 3 proves the order.
        let conf = r#"{"cniVersion": "1.0.0", "name": "n", "root": "http://127.0.0.1:1",
                       "host": "h1", "tenant": "t1"}"#;
        let (json, _) = mk_run(
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_NETNS", "/nonexistent/netns"),
            ],
            conf,
        );
        assert_eq!(json["code"], 3, "{json}");
    }
}
