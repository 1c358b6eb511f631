//! The `CNI_*` environment variables a runtime sets for every call, and `CNI_ARGS`.
//!
//! Parsing takes the variables as plain pairs, so tests never touch the process environment.
//! Which variables a verb needs is checked where the verb asks for them ([`Env::container_id`],
//! [`Env::ifname`], [`Env::netns`]), because DEL must work with less than ADD.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use romana_core::labels::{parse_named_port, validate_labels, validate_ports, MAX_LABELS};
use romana_core::text::quote;
use romana_core::NamedPort;

/// A CNI verb (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

/// A missing or malformed `CNI_*` variable: CNI error code 7.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("{var} is not set; the runtime must set it for this command")]
    Missing { var: &'static str },
    #[error("CNI_COMMAND {} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC", quote(.value))]
    UnknownCommand { value: String },
    /// `value` is shown as a bounded prefix (`romana_core::text::quote`).
    #[error("{var} {} is malformed: {reason}", quote(.value))]
    Malformed {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// The environment of one plugin call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    pub command: Option<Command>,
    container_id: Option<String>,
    netns: Option<PathBuf>,
    ifname: Option<String>,
    pub args: CniArgs,
    /// Where the runtime finds plugins; romana-cni delegates to none, so it is only recorded.
    pub path: Vec<PathBuf>,
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs(BTreeMap<String, String>);

/// The `CNI_ARGS` key that names the tenant when the network config does not (Kubernetes
/// runtimes set it to the pod's namespace).
pub const ARG_POD_NAMESPACE: &str = "K8S_POD_NAMESPACE";
/// The `CNI_ARGS` key that names the segment when the network config does not.
pub const ARG_SEGMENT: &str = "ROMANA_SEGMENT";
/// The `CNI_ARGS` key with the endpoint's labels, `k1=v1,k2=v2`.
pub const ARG_LABELS: &str = "ROMANA_LABELS";
/// The `CNI_ARGS` key with the endpoint's named ports, `http=tcp/8080,dns=udp/53`.
pub const ARG_PORTS: &str = "ROMANA_PORTS";

/// Interface names are limited to 15 bytes by the kernel (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// Longest container id: `<container id>:<ifname>` must stay a valid endpoint id
/// (`romana_core::model::MAX_NAME_LEN`, 253).
const MAX_CONTAINER_ID_LEN: usize = romana_core::model::MAX_NAME_LEN - 1 - MAX_IFNAME_LEN;

// === impl Command ===

impl std::str::FromStr for Command {
    type Err = EnvError;

    fn from_str(value: &str) -> Result<Command, EnvError> {
        Ok(match value {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => {
                return Err(EnvError::UnknownCommand {
                    value: value.to_string(),
                })
            }
        })
    }
}

// === impl Env ===

impl Env {
    /// Reads the `CNI_*` variables out of `vars` (e.g. `std::env::vars()`). Empty values count
    /// as unset: runtimes pass `CNI_NETNS=` on a DEL whose namespace is gone.
    pub fn parse<I, K, V>(vars: I) -> Result<Env, EnvError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut env = Env::default();
        for (key, value) in vars {
            let value = value.as_ref();
            if value.is_empty() {
                continue;
            }
            match key.as_ref() {
                "CNI_COMMAND" => env.command = Some(value.parse()?),
                "CNI_CONTAINERID" => {
                    validate_container_id(value)?;
                    env.container_id = Some(value.to_string());
                }
                "CNI_NETNS" => env.netns = Some(PathBuf::from(value)),
                "CNI_IFNAME" => {
                    validate_ifname(value)?;
                    env.ifname = Some(value.to_string());
                }
                "CNI_ARGS" => env.args = CniArgs::parse(value)?,
                "CNI_PATH" => env.path = std::env::split_paths(value).collect(),
                _ => {}
            }
        }
        Ok(env)
    }

    pub fn command(&self) -> Result<Command, EnvError> {
        self.command.ok_or(EnvError::Missing { var: "CNI_COMMAND" })
    }

    pub fn container_id(&self) -> Result<&str, EnvError> {
        self.container_id.as_deref().ok_or(EnvError::Missing {
            var: "CNI_CONTAINERID",
        })
    }

    pub fn ifname(&self) -> Result<&str, EnvError> {
        self.ifname
            .as_deref()
            .ok_or(EnvError::Missing { var: "CNI_IFNAME" })
    }

    pub fn netns(&self) -> Result<&Path, EnvError> {
        self.netns
            .as_deref()
            .ok_or(EnvError::Missing { var: "CNI_NETNS" })
    }

    /// The netns when given; DEL runs without one when the container is gone.
    pub fn netns_if_set(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    /// The endpoint id: container id plus interface name, as CONVENTIONS fixes it.
    pub fn endpoint_id(&self) -> Result<String, EnvError> {
        Ok(endpoint_id(self.container_id()?, self.ifname()?))
    }
}

/// `<container id>:<interface name>`. Both halves are validated so the id is a valid
/// endpoint name (letters, digits, `-_.:`).
pub fn endpoint_id(container_id: &str, ifname: &str) -> String {
    format!("{container_id}:{ifname}")
}

/// Splits an endpoint id made by [`endpoint_id`] back into (container id, interface name);
/// `None` for ids the CNI plugin did not make (Neutron port ids have no `:`).
pub fn split_endpoint_id(id: &str) -> Option<(&str, &str)> {
    let (container_id, ifname) = id.rsplit_once(':')?;
    (validate_container_id(container_id).is_ok() && validate_ifname(ifname).is_ok())
        .then_some((container_id, ifname))
}

/// The spec: alphanumeric first, then alphanumerics, `_`, `.` and `-`.
fn validate_container_id(value: &str) -> Result<(), EnvError> {
    let malformed = |reason: &str| EnvError::Malformed {
        var: "CNI_CONTAINERID",
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if value.len() > MAX_CONTAINER_ID_LEN {
        return Err(malformed(&format!(
            "is {} bytes; at most {MAX_CONTAINER_ID_LEN} (the endpoint id adds ':' and the interface name)",
            value.len()
        )));
    }
    let mut chars = value.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return Err(malformed("must start with a letter or digit")),
    }
    if chars.any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(malformed(
            "only letters, digits, '_', '.' and '-' are allowed",
        ));
    }
    Ok(())
}

/// What the kernel accepts as an interface name, and the spec's rules on top.
fn validate_ifname(value: &str) -> Result<(), EnvError> {
    let malformed = |reason: &str| EnvError::Malformed {
        var: "CNI_IFNAME",
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if value.len() > MAX_IFNAME_LEN {
        return Err(malformed("interface names are at most 15 characters"));
    }
    if value == "." || value == ".." {
        return Err(malformed("not a usable interface name"));
    }
    if value
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(malformed("'/', ':' and whitespace are not allowed"));
    }
    Ok(())
}

// === impl CniArgs ===

impl CniArgs {
    /// Parses `K1=V1;K2=V2`. Empty pieces (a trailing `;`) are ignored; a piece without `=`
    /// or with an empty key is an error, as in the reference plugins.
    pub fn parse(value: &str) -> Result<CniArgs, EnvError> {
        let mut args = BTreeMap::new();
        for piece in value.split(';').filter(|p| !p.trim().is_empty()) {
            let Some((k, v)) = piece.split_once('=') else {
                return Err(EnvError::Malformed {
                    var: "CNI_ARGS",
                    value: value.to_string(),
                    reason: format!("{} is not KEY=VALUE", quote(piece)),
                });
            };
            if k.trim().is_empty() {
                return Err(EnvError::Malformed {
                    var: "CNI_ARGS",
                    value: value.to_string(),
                    reason: format!("{} has an empty key", quote(piece)),
                });
            }
            args.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(CniArgs(args))
    }

    /// The value of `key`, when given and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The endpoint labels from `ROMANA_LABELS` (`k1=v1,k2=v2`); empty when not given.
    /// Each is held to Kubernetes' label rules (`romana_core::labels`), at most
    /// [`MAX_LABELS`] - 1 (the plugin adds `cni.romana.io/network`), each key once; a value
    /// with `=` (or a `,` meant inside one) is refused, since it cannot round-trip here.
    pub fn labels(&self) -> Result<BTreeMap<String, String>, EnvError> {
        let Some(value) = self.get(ARG_LABELS) else {
            return Ok(BTreeMap::new());
        };
        let malformed = |reason: String| EnvError::Malformed {
            var: "CNI_ARGS",
            value: format!("{ARG_LABELS}={value}"),
            reason,
        };
        let mut labels = BTreeMap::new();
        for piece in value.split(',').filter(|p| !p.trim().is_empty()) {
            if labels.len() >= MAX_LABELS - 1 {
                return Err(malformed(format!(
                    "more than {} labels; an endpoint carries at most {MAX_LABELS}, one of them \
                     cni.romana.io/network",
                    MAX_LABELS - 1
                )));
            }
            match piece.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    let (k, v) = (k.trim(), v.trim());
                    if labels.insert(k.to_string(), v.to_string()).is_some() {
                        return Err(malformed(format!("label {} is given twice", quote(k))));
                    }
                }
                _ => {
                    return Err(malformed(format!(
                        "label {} is not KEY=VALUE",
                        quote(piece)
                    )))
                }
            }
        }
        validate_labels(&labels).map_err(|e| malformed(e.to_string()))?;
        Ok(labels)
    }

    /// The endpoint's named ports from `ROMANA_PORTS` (`http=tcp/8080,dns=udp/53`), for
    /// NetworkPolicy's named ports; empty when not given. Each is `NAME=PROTO/NUMBER`, the
    /// names held to Kubernetes' port-name rules (`romana_core::labels`), each name once.
    pub fn ports(&self) -> Result<Vec<NamedPort>, EnvError> {
        let Some(value) = self.get(ARG_PORTS) else {
            return Ok(Vec::new());
        };
        let malformed = |reason: String| EnvError::Malformed {
            var: "CNI_ARGS",
            value: format!("{ARG_PORTS}={value}"),
            reason,
        };
        let ports = value
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| parse_named_port(p.trim()).map_err(|e| malformed(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        validate_ports(&ports).map_err(|e| malformed(e.to_string()))?;
        Ok(ports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_env(pairs: &[(&str, &str)]) -> Result<Env, EnvError> {
        Env::parse(pairs.iter().copied())
    }

    #[test]
    fn add_environment_gives_the_endpoint_id() {
        let env = mk_env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc123"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
            ("HOME", "/root"),
        ])
        .unwrap();
        assert_eq!(env.command(), Ok(Command::Add));
        assert_eq!(env.endpoint_id().unwrap(), "abc123:eth0");
        assert_eq!(env.netns().unwrap(), Path::new("/var/run/netns/x"));
        assert_eq!(env.path.len(), 2);
    }

    #[test]
    fn empty_netns_counts_as_missing() {
        let env = mk_env(&[("CNI_COMMAND", "DEL"), ("CNI_NETNS", "")]).unwrap();
        assert_eq!(env.netns_if_set(), None);
        assert_eq!(env.netns(), Err(EnvError::Missing { var: "CNI_NETNS" }));
        assert_eq!(
            env.container_id(),
            Err(EnvError::Missing {
                var: "CNI_CONTAINERID"
            })
        );
    }

    #[test]
    fn unknown_command_and_bad_names_are_refused() {
        assert!(matches!(
            mk_env(&[("CNI_COMMAND", "UPDATE")]),
            Err(EnvError::UnknownCommand { .. })
        ));
        assert!(matches!(
            mk_env(&[("CNI_IFNAME", "a-very-long-interface")]),
            Err(EnvError::Malformed {
                var: "CNI_IFNAME",
                ..
            })
        ));
        assert!(matches!(
            mk_env(&[("CNI_CONTAINERID", "-abc")]),
            Err(EnvError::Malformed {
                var: "CNI_CONTAINERID",
                ..
            })
        ));
        assert!(matches!(
            mk_env(&[("CNI_CONTAINERID", "a/b")]),
            Err(EnvError::Malformed { .. })
        ));
    }

    #[test]
    fn cni_args_are_semicolon_separated_pairs() {
        let args = CniArgs::parse(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=p-1;ROMANA_SEGMENT=front;",
        )
        .unwrap();
        assert_eq!(args.get(ARG_POD_NAMESPACE), Some("web"));
        assert_eq!(args.get(ARG_SEGMENT), Some("front"));
        assert_eq!(args.get("K8S_POD_NAME"), Some("p-1"));
        assert_eq!(args.get("MISSING"), None);
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
    }

    #[test]
    fn cni_args_without_equals_are_malformed() {
        let err = CniArgs::parse("A=1;oops").unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNI_ARGS \"A=1;oops\" is malformed: \"oops\" is not KEY=VALUE"
        );
        assert!(CniArgs::parse("=1").is_err());
    }

    #[test]
    fn labels_are_comma_separated_pairs_inside_one_arg() {
        let args = CniArgs::parse("ROMANA_LABELS=app=web,tier=front;X=1").unwrap();
        let labels = args.labels().unwrap();
        assert_eq!(
            labels.into_iter().collect::<Vec<_>>(),
            vec![
                ("app".to_string(), "web".to_string()),
                ("tier".to_string(), "front".to_string())
            ]
        );
        assert!(CniArgs::default().labels().unwrap().is_empty());
        let bad = CniArgs::parse("ROMANA_LABELS=app").unwrap();
        assert!(matches!(bad.labels(), Err(EnvError::Malformed { .. })));
    }

    #[test]
    fn ports_are_comma_separated_named_ports_inside_one_arg() {
        let args = CniArgs::parse("ROMANA_PORTS=http=tcp/8080, dns=UDP/53;X=1").unwrap();
        let ports: Vec<_> = args
            .ports()
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.protocol, p.port))
            .collect();
        assert_eq!(
            ports,
            vec![
                ("http".to_string(), "tcp".to_string(), 8080),
                ("dns".to_string(), "udp".to_string(), 53)
            ]
        );
        assert!(CniArgs::default().ports().unwrap().is_empty());
        for (bad, why) in [
            ("ROMANA_PORTS=http", "NAME=PROTO/NUMBER"),
            ("ROMANA_PORTS=http=tcp/80,http=udp/80", "appears twice"),
            ("ROMANA_PORTS=HTTP=tcp/80", "HTTP"),
            ("ROMANA_PORTS=http=icmp/1", "not tcp, udp or sctp"),
        ] {
            let err = CniArgs::parse(bad)
                .unwrap()
                .ports()
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("ROMANA_PORTS="), "{bad}: {err}");
        }
    }

    #[test]
    fn endpoint_ids_split_back_only_when_they_are_ours() {
        assert_eq!(split_endpoint_id("abc:eth0"), Some(("abc", "eth0")));
        assert_eq!(split_endpoint_id("a:b:eth0"), None, "':' in container id");
        assert_eq!(split_endpoint_id("5f0c-port-uuid"), None);
    }
}
