//! etcd's own authorization for romana (`romanactl etcd-auth setup`). The agent talks to
//! etcd directly, so the roles of the gRPC services do not protect etcd from a host: etcd
//! must itself refuse a host's writes outside its status key.
//!
//! With `--client-cert-auth`, etcd takes the client certificate's Common Name as the user
//! name, so the users are the identities of `romanactl certs` and need no passwords:
//! - `root` and `admin`: role `root` (etcd needs a `root` user before auth can be enabled;
//!   `admin` lets the operator's admin certificate manage etcd afterwards).
//! - `service:root`, `service:topology`, `service:tenant`, `service:ipam`,
//!   `service:policy`: role `romana-service`, readwrite on the whole prefix.
//! - `host:NAME` per `--host`: role `romana-host-NAME`, read on the prefix and readwrite on
//!   the host's own status key only. Leases (a leased status key) need no key permission in
//!   etcd 3.4 to be granted or kept alive; revoking one needs write on its keys, which the
//!   host has.
//!
//! Every step is idempotent (existing roles and users are kept), so the command is run again
//! with more `--host`s as hosts are added.

use etcd_client::{Client, Permission, UserAddOptions};
use romana_store::Keys;

/// The role every service user holds.
pub const SERVICE_ROLE: &str = "romana-service";

/// The service kinds that get a user `service:KIND`.
pub const SERVICES: [&str; 5] = ["root", "topology", "tenant", "ipam", "policy"];

/// One change to etcd's auth configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    AddRole(String),
    Grant {
        role: String,
        key: String,
        prefix: bool,
        write: bool,
    },
    AddUser(String),
    GrantRole {
        user: String,
        role: String,
    },
    EnableAuth,
}

#[derive(Debug, thiserror::Error)]
pub enum EtcdAuthError {
    #[error(
        "etcd authorization relies on client certificates: give https:// endpoints \
         (with --etcd-ca, --etcd-cert, --etcd-key), not {0}"
    )]
    Plaintext(String),
    #[error("--host {0:?}: {1}")]
    BadHost(String, romana_core::NameError),
    #[error("{0}")]
    Tls(String),
    #[error("cannot connect to etcd at {endpoints}: {error}")]
    Connect {
        endpoints: String,
        error: etcd_client::Error,
    },
    #[error("{step}: {error}")]
    Step {
        step: String,
        error: etcd_client::Error,
    },
}

/// The steps for the services and `hosts` under `prefix`, in the order they must run
/// (auth last: once it is on, only root may change it).
pub fn plan(prefix: &str, hosts: &[String]) -> Result<Vec<Step>, EtcdAuthError> {
    let keys = Keys::new(prefix);
    let mut steps = vec![
        Step::AddRole(SERVICE_ROLE.into()),
        Step::Grant {
            role: SERVICE_ROLE.into(),
            key: keys.prefix().into(),
            prefix: true,
            write: true,
        },
    ];
    for kind in SERVICES {
        steps.push(Step::AddUser(format!("service:{kind}")));
        steps.push(Step::GrantRole {
            user: format!("service:{kind}"),
            role: SERVICE_ROLE.into(),
        });
    }
    for host in hosts {
        romana_core::model::validate_name("host", host)
            .map_err(|e| EtcdAuthError::BadHost(host.chars().take(64).collect(), e))?;
        let role = format!("romana-host-{host}");
        steps.extend([
            Step::AddRole(role.clone()),
            Step::Grant {
                role: role.clone(),
                key: keys.prefix().into(),
                prefix: true,
                write: false,
            },
            Step::Grant {
                role: role.clone(),
                key: keys.agent_status(host).path().into(),
                prefix: false,
                write: true,
            },
            Step::AddUser(format!("host:{host}")),
            Step::GrantRole {
                user: format!("host:{host}"),
                role,
            },
        ]);
    }
    for user in ["root", "admin"] {
        steps.push(Step::AddUser(user.into()));
        steps.push(Step::GrantRole {
            user: user.into(),
            role: "root".into(),
        });
    }
    steps.push(Step::EnableAuth);
    Ok(steps)
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::AddRole(r) => write!(f, "role {r}"),
            Step::Grant {
                role,
                key,
                prefix,
                write,
            } => write!(
                f,
                "role {role}: {} {key}{}",
                if *write { "readwrite" } else { "read" },
                if *prefix { " (prefix)" } else { "" }
            ),
            Step::AddUser(u) => write!(f, "user {u} (client certificate, no password)"),
            Step::GrantRole { user, role } => write!(f, "user {user}: role {role}"),
            Step::EnableAuth => f.write_str("auth enabled"),
        }
    }
}

/// Connects over TLS; plaintext endpoints are refused (certificate users could never log
/// in over them, and enabling auth would lock everybody out).
pub async fn connect(
    endpoints: &[String],
    tls: &romana_store::EtcdTls,
) -> Result<Client, EtcdAuthError> {
    if let Some(plain) = endpoints.iter().find(|e| !e.starts_with("https://")) {
        return Err(EtcdAuthError::Plaintext(plain.chars().take(64).collect()));
    }
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(std::time::Duration::from_secs(3))
        .with_timeout(std::time::Duration::from_secs(10))
        .with_tls(tls.client_options());
    Client::connect(endpoints, Some(options))
        .await
        .map_err(|error| EtcdAuthError::Connect {
            endpoints: endpoints.join(","),
            error,
        })
}

/// Runs the steps; what already exists is kept. Returns one line per step.
pub async fn apply(client: &mut Client, steps: &[Step]) -> Result<String, EtcdAuthError> {
    let mut out = String::new();
    for step in steps {
        let result = match step {
            Step::AddRole(role) => client.role_add(role.as_str()).await.map(|_| ()),
            Step::Grant {
                role,
                key,
                prefix,
                write,
            } => {
                let mut perm = if *write {
                    Permission::read_write(key.as_str())
                } else {
                    Permission::read(key.as_str())
                };
                if *prefix {
                    perm = perm.with_prefix();
                }
                client
                    .role_grant_permission(role.as_str(), perm)
                    .await
                    .map(|_| ())
            }
            Step::AddUser(user) => client
                .user_add(user.as_str(), "", Some(UserAddOptions::new().with_no_pwd()))
                .await
                .map(|_| ()),
            Step::GrantRole { user, role } => client
                .user_grant_role(user.as_str(), role.as_str())
                .await
                .map(|_| ()),
            Step::EnableAuth => client.auth_enable().await.map(|_| ()),
        };
        match result {
            Ok(()) => out.push_str(&format!("{step}\n")),
            Err(e) if already_exists(&e) => out.push_str(&format!("{step} (exists)\n")),
            Err(error) => {
                return Err(EtcdAuthError::Step {
                    step: step.to_string(),
                    error,
                })
            }
        }
    }
    Ok(out)
}

/// etcd's refusal to add a role or user twice: a second run keeps what the first made.
fn already_exists(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.message().contains("already exists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_read_the_prefix_and_write_only_their_status() {
        let steps = plan("/romana/v1/", &["h1".into()]).unwrap();
        let lines: Vec<String> = steps.iter().map(ToString::to_string).collect();
        for want in [
            "role romana-service: readwrite /romana/v1/ (prefix)",
            "user service:ipam: role romana-service",
            "role romana-host-h1: read /romana/v1/ (prefix)",
            "role romana-host-h1: readwrite /romana/v1/agents/h1/status",
            "user host:h1: role romana-host-h1",
            "user admin: role root",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want} in {lines:#?}");
        }
        assert_eq!(steps.last(), Some(&Step::EnableAuth));
        let host_writes: Vec<_> = steps
            .iter()
            .filter(|s| matches!(s, Step::Grant { role, write: true, .. } if role.starts_with("romana-host-")))
            .collect();
        assert_eq!(host_writes.len(), 1, "{host_writes:?}");
    }

    #[test]
    fn a_host_name_that_is_no_name_is_refused() {
        assert!(matches!(
            plan("/romana/v1/", &["a/b".into()]),
            Err(EtcdAuthError::BadHost(..))
        ));
    }
}
