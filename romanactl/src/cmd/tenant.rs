//! `romanactl tenant add|update|list|show|remove`: tenants, kept by tenant-service.

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use romana_proto::pb;

use super::Ctx;
use crate::flags::{self, Label};
use crate::{output, view, Error};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Adds a tenant with the lowest free tenant number, and its segment "default".
    Add(Add),
    /// Changes a tenant's isolation or labels; its number never changes.
    Update(Update),
    /// Lists tenants, ordered by number.
    List,
    /// Shows one tenant.
    Show(Show),
    /// Removes a tenant and its segments; refused while it has endpoints.
    Remove(Show),
}

/// `--isolation`: how a tenant is isolated when no Kubernetes NetworkPolicy selects it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    /// Only the same tenant and segment talk (the default).
    Segment,
    /// The whole tenant talks; other tenants are dropped.
    Tenant,
    /// Open, as Kubernetes is for a namespace no policy selects.
    None,
}

#[derive(Debug, Args)]
pub struct Add {
    pub name: String,
    /// Isolation mode [default: segment].
    #[arg(long, value_enum)]
    pub isolation: Option<IsolationArg>,
    /// A label, KEY=VALUE; repeat for more.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = flags::parse_label)]
    pub labels: Vec<Label>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("changes").required(true).multiple(true).args(["isolation", "labels", "remove_labels"])))]
pub struct Update {
    pub name: String,
    /// New isolation mode.
    #[arg(long, value_enum)]
    pub isolation: Option<IsolationArg>,
    /// A label to add or overwrite, KEY=VALUE; repeat for more.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = flags::parse_label)]
    pub labels: Vec<Label>,
    /// A label key to remove; repeat for more.
    #[arg(long = "remove-label", value_name = "KEY", value_parser = flags::parse_label_key)]
    pub remove_labels: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Show {
    pub name: String,
}

// === impl TenantCommand ===

impl TenantCommand {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        // Flags are checked before connecting: a usage error should not wait on the network.
        let request = Request::parse(self)?;
        let mut tenants = ctx.tenants().await?;
        match request {
            Request::Add(req) => {
                let tenant = tenants.add_tenant(req).await?.into_inner();
                output::one(&view::Tenant::from(tenant), ctx.format)
            }
            Request::Update(req) => {
                let tenant = tenants.update_tenant(req).await?.into_inner();
                output::one(&view::Tenant::from(tenant), ctx.format)
            }
            Request::List => {
                let list = tenants
                    .list_tenants(pb::ListTenantsRequest {})
                    .await?
                    .into_inner()
                    .tenants;
                let list: Vec<view::Tenant> = list.into_iter().map(Into::into).collect();
                output::list(&list, ctx.format)
            }
            Request::Show(req) => {
                let tenant = tenants.get_tenant(req).await?.into_inner();
                output::one(&view::Tenant::from(tenant), ctx.format)
            }
            Request::Remove(req) => {
                let tenant = tenants
                    .remove_tenant(req)
                    .await?
                    .into_inner()
                    .tenant
                    .ok_or(Error::Incomplete {
                        service: "tenant-service",
                        call: "RemoveTenant",
                        field: "tenant",
                    })?;
                let removed = view::TenantRemoved {
                    removed: tenant.into(),
                };
                let text = format!(
                    "removed tenant {} (number {}) and its segments",
                    removed.removed.name, removed.removed.id
                );
                output::message(&text, &removed, ctx.format)
            }
        }
    }
}

/// A tenant command as the call it makes.
#[derive(Debug, PartialEq)]
enum Request {
    Add(pb::AddTenantRequest),
    Update(pb::UpdateTenantRequest),
    List,
    Show(pb::GetTenantRequest),
    Remove(pb::RemoveTenantRequest),
}

impl Request {
    fn parse(cmd: TenantCommand) -> Result<Request, Error> {
        Ok(match cmd {
            TenantCommand::Add(Add {
                name,
                isolation,
                labels,
            }) => Request::Add(pb::AddTenantRequest {
                name,
                isolation: isolation
                    .map_or(pb::Isolation::Unspecified, pb::Isolation::from)
                    .into(),
                labels: flags::label_map(&labels)?.into_iter().collect(),
            }),
            TenantCommand::Update(Update {
                name,
                isolation,
                labels,
                remove_labels,
            }) => {
                let set_labels = flags::label_map(&labels)?;
                if let Some(key) = remove_labels.iter().find(|k| set_labels.contains_key(*k)) {
                    return Err(Error::Usage(format!(
                        "label {key:?} is both set and removed"
                    )));
                }
                Request::Update(pb::UpdateTenantRequest {
                    name,
                    isolation: isolation
                        .map_or(pb::Isolation::Unspecified, pb::Isolation::from)
                        .into(),
                    set_labels: set_labels.into_iter().collect(),
                    remove_labels,
                })
            }
            TenantCommand::List => Request::List,
            TenantCommand::Show(Show { name }) => Request::Show(pb::GetTenantRequest { name }),
            TenantCommand::Remove(Show { name }) => {
                Request::Remove(pb::RemoveTenantRequest { name })
            }
        })
    }
}

/// A flag given; absent means unspecified on the wire (SEGMENT on add, unchanged on update).
impl From<IsolationArg> for pb::Isolation {
    fn from(isolation: IsolationArg) -> Self {
        match isolation {
            IsolationArg::Segment => pb::Isolation::Segment,
            IsolationArg::Tenant => pb::Isolation::Tenant,
            IsolationArg::None => pb::Isolation::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cmd::{Cli, Command};

    fn mk_request(args: &[&str]) -> Result<Request, String> {
        let cli = Cli::try_parse_from(["romanactl", "tenant"].iter().chain(args))
            .map_err(|e| e.kind().to_string())?;
        match cli.command {
            Command::Tenant(cmd) => Request::parse(cmd).map_err(|e| e.line()),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn add_carries_isolation_and_labels() {
        let req = mk_request(&[
            "add",
            "t1",
            "--isolation",
            "tenant",
            "--label",
            "team=a",
            "--label",
            "env=prod",
        ])
        .unwrap();
        assert_eq!(
            req,
            Request::Add(pb::AddTenantRequest {
                name: "t1".into(),
                isolation: pb::Isolation::Tenant.into(),
                labels: [
                    ("team".to_string(), "a".to_string()),
                    ("env".to_string(), "prod".to_string())
                ]
                .into(),
            })
        );
    }

    #[test]
    fn add_without_isolation_leaves_it_to_the_service() {
        let Request::Add(req) = mk_request(&["add", "t1"]).unwrap() else {
            panic!("not an add");
        };
        assert_eq!(req.isolation, i32::from(pb::Isolation::Unspecified));
    }

    #[test]
    fn bad_label_is_a_usage_error() {
        assert!(mk_request(&["add", "t1", "--label", "team"]).is_err());
        assert!(mk_request(&["add", "t1", "--isolation", "open"]).is_err());
    }

    #[test]
    fn update_needs_a_change() {
        assert!(mk_request(&["update", "t1"]).is_err());
        let Request::Update(req) = mk_request(&["update", "t1", "--remove-label", "team"]).unwrap()
        else {
            panic!("not an update");
        };
        assert_eq!(req.remove_labels, ["team"]);
        assert_eq!(req.isolation, i32::from(pb::Isolation::Unspecified));
    }

    #[test]
    fn update_refuses_to_set_and_remove_one_label() {
        let err = mk_request(&[
            "update",
            "t1",
            "--label",
            "team=a",
            "--remove-label",
            "team",
        ])
        .unwrap_err();
        assert_eq!(err, "label \"team\" is both set and removed");
    }
}
