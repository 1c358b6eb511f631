//! Who may do what: identities (the subject Common Name of a client certificate) and the one
//! decision every service makes before it reads or writes anything for a caller.
//!
//! Pure on purpose: the services only translate an RPC into an [`Action`] and ask
//! [`decide`], so the whole policy is in this file and tested without a network.
//!
//! | identity       | reads                                                        | changes                                             |
//! |----------------|--------------------------------------------------------------|-----------------------------------------------------|
//! | `admin`        | everything                                                   | everything                                          |
//! | `service:KIND` | everything                                                   | everything (services acting for a caller)           |
//! | `reader`       | everything                                                   | nothing                                             |
//! | `tenant:T`     | config, services, tenant T, T's segments, endpoints, k8s policies, explain between T's endpoints | T's labels, T's segments, T's endpoints, k8s policies of namespace T |
//! | `host:H`       | config, services, hosts, fabric, tenants, segments, H's endpoints and status | endpoints on H, H's status                |
//!
//! Decisions that are choices, not obvious:
//! - A tenant may not change its own isolation: `none` opens it to every other tenant, so
//!   isolation is the administrator's. It may not create or remove itself either.
//! - Romana-form policies are cluster-scoped (they name no tenant): only admin applies,
//!   reads or deletes them. A tenant applies Kubernetes NetworkPolicies in its own namespace.
//! - Everybody reads the cluster config and the service registry: clients need both to find
//!   and talk to the services, and neither holds tenant data.

use std::fmt;

use crate::model::{validate_name, NameError};

/// Who is calling, from the Common Name of its client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// `admin`: everything.
    Admin,
    /// `reader`: reads everything, changes nothing.
    Reader,
    /// `tenant:NAME`: one tenant's segments, endpoints, labels and policies.
    Tenant(String),
    /// `host:NAME`: the CNI plugin, agent and Neutron driver of one host.
    Host(String),
    /// `service:KIND`: a romana service (e.g. `service:ipam`); as admin. Services call etcd,
    /// not each other, today; the identity exists so that their etcd users and any future
    /// service-to-service call have a name that is not a person's.
    Service(String),
}

/// Why a Common Name is no identity.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("certificate common name {0:?} is not admin, reader, tenant:NAME, host:NAME or service:KIND")]
    Unknown(String),
    #[error("certificate common name {cn:?}: {error}")]
    BadName { cn: String, error: NameError },
}

impl Identity {
    /// Parses a certificate's subject Common Name.
    pub fn from_common_name(cn: &str) -> Result<Identity, IdentityError> {
        // Short prefix only: a CN is attacker-chosen text that ends up in logs and messages.
        let shown = || cn.chars().take(64).collect::<String>();
        match cn {
            "admin" => return Ok(Identity::Admin),
            "reader" => return Ok(Identity::Reader),
            _ => {}
        }
        let Some((kind, name)) = cn.split_once(':') else {
            return Err(IdentityError::Unknown(shown()));
        };
        let (what, make): (&'static str, fn(String) -> Identity) = match kind {
            "tenant" => ("tenant", Identity::Tenant),
            "host" => ("host", Identity::Host),
            "service" => ("service", Identity::Service),
            _ => return Err(IdentityError::Unknown(shown())),
        };
        validate_name(what, name).map_err(|error| IdentityError::BadName { cn: shown(), error })?;
        Ok(make(name.to_string()))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Admin => f.write_str("admin"),
            Identity::Reader => f.write_str("reader"),
            Identity::Tenant(t) => write!(f, "tenant:{t}"),
            Identity::Host(h) => write!(f, "host:{h}"),
            Identity::Service(k) => write!(f, "service:{k}"),
        }
    }
}

/// What is done; only [`Verb::Read`] is not a change. The others exist so that a refusal
/// reads like the call that was refused ("may not release endpoint e1").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Read,
    Create,
    Update,
    Delete,
    Apply,
    Allocate,
    Release,
}

impl Verb {
    pub const ALL: [Verb; 7] = [
        Verb::Read,
        Verb::Create,
        Verb::Update,
        Verb::Delete,
        Verb::Apply,
        Verb::Allocate,
        Verb::Release,
    ];

    pub fn is_change(self) -> bool {
        self != Verb::Read
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Read => "read",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Delete => "delete",
            Verb::Apply => "apply",
            Verb::Allocate => "allocate",
            Verb::Release => "release",
        })
    }
}

/// What an action is done to, with what the decision needs to know about it (the tenant and
/// host it belongs to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object<'a> {
    /// The cluster layout.
    Config,
    /// The service registry.
    Services,
    Host(&'a str),
    /// The fabric view (routes derived from all hosts).
    Fabric,
    /// What a host's agent reports applying.
    HostStatus(&'a str),
    /// A tenant's record: name and labels.
    Tenant(&'a str),
    /// A tenant's isolation mode, apart from the rest of its record.
    Isolation(&'a str),
    Segment {
        tenant: &'a str,
        name: &'a str,
    },
    Endpoint {
        id: &'a str,
        tenant: &'a str,
        host: &'a str,
    },
    /// A policy: `tenant` is the namespace of a Kubernetes NetworkPolicy, `None` for a
    /// cluster-scoped Romana-form policy.
    Policy {
        tenant: Option<&'a str>,
        name: &'a str,
    },
    /// A policy verdict between two addresses; each side's tenant when it is an endpoint.
    Explain {
        from: Option<&'a str>,
        to: Option<&'a str>,
    },
}

impl fmt::Display for Object<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Object::Config => f.write_str("the cluster config"),
            Object::Services => f.write_str("the service registry"),
            Object::Host(h) => write!(f, "host {h}"),
            Object::Fabric => f.write_str("the fabric"),
            Object::HostStatus(h) => write!(f, "the status of host {h}"),
            Object::Tenant(t) => write!(f, "tenant {t}"),
            Object::Isolation(t) => write!(f, "the isolation of tenant {t}"),
            Object::Segment { tenant, name } => write!(f, "segment {tenant}/{name}"),
            Object::Endpoint { id, tenant, host } => {
                write!(f, "endpoint {id} (tenant {tenant}, host {host})")
            }
            Object::Policy {
                tenant: Some(t),
                name,
            } => write!(f, "policy {t}/{name}"),
            Object::Policy { tenant: None, name } => write!(f, "Romana-form policy {name}"),
            Object::Explain { from, to } => {
                write!(f, "a verdict from {} to {}", side(*from), side(*to))
            }
        }
    }
}

fn side(tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("an endpoint of tenant {t}"),
        None => "an address outside any endpoint".into(),
    }
}

/// An action of an identity on an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Action<'a> {
    pub verb: Verb,
    pub object: Object<'a>,
}

impl<'a> Action<'a> {
    pub fn new(verb: Verb, object: Object<'a>) -> Action<'a> {
        Action { verb, object }
    }

    pub fn read(object: Object<'a>) -> Action<'a> {
        Action::new(Verb::Read, object)
    }
}

/// A refusal, worded for the caller: `tenant:t2 may not update tenant t1`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{identity} may not {verb} {object}")]
pub struct Denied {
    pub identity: String,
    pub verb: Verb,
    pub object: String,
}

/// Whether `identity` may do `action`.
pub fn allows(identity: &Identity, action: &Action<'_>) -> bool {
    let Action { verb, object } = *action;
    match identity {
        Identity::Admin | Identity::Service(_) => true,
        Identity::Reader => !verb.is_change(),
        Identity::Tenant(own) => tenant_allows(own, verb, object),
        Identity::Host(own) => host_allows(own, verb, object),
    }
}

/// [`allows`], as a result whose error names the identity, the verb and the object.
pub fn decide(identity: &Identity, action: &Action<'_>) -> Result<(), Denied> {
    if allows(identity, action) {
        return Ok(());
    }
    Err(Denied {
        identity: identity.to_string(),
        verb: action.verb,
        object: action.object.to_string(),
    })
}

fn tenant_allows(own: &str, verb: Verb, object: Object<'_>) -> bool {
    let read = !verb.is_change();
    match object {
        Object::Config | Object::Services => read,
        // Its own record: read it and change its labels, but not create or remove itself.
        Object::Tenant(t) => t == own && matches!(verb, Verb::Read | Verb::Update),
        Object::Segment { tenant, .. } => tenant == own,
        Object::Endpoint { tenant, .. } => tenant == own,
        Object::Policy { tenant, .. } => tenant == Some(own),
        Object::Explain { from, to } => read && from == Some(own) && to == Some(own),
        Object::Isolation(_) | Object::Host(_) | Object::Fabric | Object::HostStatus(_) => false,
    }
}

fn host_allows(own: &str, verb: Verb, object: Object<'_>) -> bool {
    let read = !verb.is_change();
    match object {
        Object::Config
        | Object::Services
        | Object::Host(_)
        | Object::Fabric
        | Object::Tenant(_)
        | Object::Isolation(_)
        | Object::Segment { .. } => read,
        Object::HostStatus(h) => h == own,
        Object::Endpoint { host, .. } => host == own,
        Object::Policy { .. } | Object::Explain { .. } => false,
    }
}

#[cfg(test)]
#[path = "authz_tests.rs"]
mod tests;
