//! `romanactl ipam allocate|release|list|show|label`: endpoint addresses, kept by ipam-service.

use std::net::IpAddr;

use clap::{ArgGroup, Args, Subcommand};
use romana_proto::pb;

use super::Ctx;
use crate::flags::{self, Label, Port};
use crate::progress::Progress;
use crate::{output, view, Error};

#[derive(Debug, Subcommand)]
pub enum IpamCommand {
    /// Allocates an address for an endpoint id. Idempotent: the same id and request return
    /// the address it already holds.
    Allocate(Box<Allocate>),
    /// Releases an endpoint's address, by id or by address. Releasing nothing succeeds.
    Release(Release),
    /// Lists endpoints, ordered by address.
    List(List),
    /// Shows one endpoint.
    Show(Show),
    /// Changes an endpoint's labels in place (policies follow without recreating it).
    Label(LabelUpdate),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("changes").required(true).multiple(true).args(["labels", "remove_labels"])))]
pub struct LabelUpdate {
    /// The endpoint id.
    pub endpoint: String,
    /// A label to add or overwrite, KEY=VALUE; repeat for more.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = flags::parse_label)]
    pub labels: Vec<Label>,
    /// A label key to remove; repeat for more.
    #[arg(long = "remove-label", value_name = "KEY", value_parser = flags::parse_label_key)]
    pub remove_labels: Vec<String>,
}

/// Placement is host + tenant [+ segment] (the CNI shape), or the segment CIDR (the
/// Neutron shape), or a specific --address alone.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("placement").required(true).multiple(true).args(["host", "cidr", "address"])))]
pub struct Allocate {
    /// The endpoint id (container id plus interface for CNI, port id for Neutron).
    #[arg(long)]
    pub endpoint: String,
    /// The host the endpoint runs on.
    #[arg(long, requires = "tenant")]
    pub host: Option<String>,
    /// The endpoint's tenant.
    #[arg(long, requires = "host")]
    pub tenant: Option<String>,
    /// The tenant's segment [default: the tenant's "default" segment].
    #[arg(long, requires = "tenant")]
    pub segment: Option<String>,
    /// The segment CIDR on the host, e.g. 10.3.82.0/24 (instead of host, tenant, segment).
    #[arg(long, conflicts_with_all = ["host", "tenant", "segment"])]
    pub cidr: Option<String>,
    /// A specific address to allocate.
    #[arg(long)]
    pub address: Option<IpAddr>,
    /// An endpoint label, KEY=VALUE; repeat for more.
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = flags::parse_label)]
    pub labels: Vec<Label>,
    /// A named port, NAME=PROTO/NUMBER (e.g. http=tcp/80); repeat for more.
    #[arg(long = "port", value_name = "NAME=PROTO/NUMBER", value_parser = flags::parse_port)]
    pub ports: Vec<Port>,
    /// The endpoint's host-side interface when something other than the CNI plugin creates
    /// it: a tap, e.g. Nova's tap3f2a9c1b-7d ("tap" + 11 characters of the port id). The
    /// host's agent puts the gateway on it and routes the address to it once it exists.
    #[arg(long, value_name = "TAP")]
    pub interface: Option<String>,
    /// The Kubernetes pod the endpoint belongs to, as the CNI plugin records it from
    /// K8S_POD_NAMESPACE and K8S_POD_NAME; `ipam list` shows it.
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = flags::parse_pod)]
    pub pod: Option<romana_core::Pod>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["endpoint", "address"])))]
pub struct Release {
    /// Release what this endpoint id holds.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Release this address, whoever holds it.
    #[arg(long)]
    pub address: Option<IpAddr>,
    /// Only if the holder carries this label (repeatable); otherwise nothing is released.
    #[arg(long = "if-label", value_name = "KEY=VALUE", value_parser = flags::parse_label)]
    pub if_labels: Vec<Label>,
}

#[derive(Debug, Args)]
pub struct List {
    /// Only endpoints on this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only endpoints of this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only endpoints in segments of this name.
    #[arg(long)]
    pub segment: Option<String>,
    /// Print the listing, then again each time it changes, until interrupted.
    #[arg(long, short = 'w')]
    pub watch: bool,
}

#[derive(Debug, Args)]
pub struct Show {
    /// The endpoint id.
    pub endpoint: String,
}

// === impl IpamCommand ===

impl IpamCommand {
    pub async fn apply(self, ctx: &Ctx) -> Result<String, Error> {
        if let IpamCommand::Label(update) = &self {
            let request = update.request()?;
            let endpoint = ctx
                .ipam()
                .await?
                .update_endpoint(request)
                .await?
                .into_inner();
            return output::one(&view::Endpoint::from(endpoint), ctx.format);
        }
        if let IpamCommand::Allocate(allocate) = &self {
            // Checked before connecting: a usage error should not wait on the network.
            let request = allocate.request()?;
            let endpoint = ctx.ipam().await?.allocate(request).await?.into_inner();
            return output::one(&view::Endpoint::from(endpoint), ctx.format);
        }
        let mut ipam = ctx.ipam().await?;
        match self {
            IpamCommand::Allocate(_) | IpamCommand::Label(_) => unreachable!("handled above"),
            IpamCommand::Release(release) => {
                let if_labels = flags::label_map(&release.if_labels)?.into_iter().collect();
                let (target, text) = release.target();
                let released = ipam
                    .release(pb::ReleaseRequest {
                        target: Some(target),
                        if_labels,
                    })
                    .await?
                    .into_inner()
                    .endpoint
                    .map(view::Endpoint::from);
                let released = view::Released {
                    target: text,
                    released,
                };
                output::message(&released_text(&released), &released, ctx.format)
            }
            IpamCommand::List(List {
                host,
                tenant,
                segment,
                ..
            }) => {
                let filter = pb::ListEndpointsRequest {
                    host: host.unwrap_or_default(),
                    tenant: tenant.unwrap_or_default(),
                    segment: segment.unwrap_or_default(),
                    ..Default::default()
                };
                let progress = std::cell::RefCell::new((Progress::new("endpoints"), 0));
                let progress = &progress;
                let mut endpoints = romana_proto::pages::all_endpoints(|page_token| {
                    let (mut ipam, filter) = (ipam.clone(), filter.clone());
                    async move {
                        let req = pb::ListEndpointsRequest {
                            page_token,
                            ..filter
                        };
                        let page = ipam.list_endpoints(req).await?.into_inner();
                        let (bar, read) = &mut *progress.borrow_mut();
                        *read += page.endpoints.len();
                        bar.update(*read);
                        Ok(page)
                    }
                })
                .await?;
                // Operators read endpoints in address order, whatever order pages come in.
                endpoints.sort_by_key(|e| e.address.parse::<std::net::IpAddr>().ok());
                let endpoints: Vec<view::Endpoint> =
                    endpoints.into_iter().map(Into::into).collect();
                output::list(&endpoints, ctx.format)
            }
            IpamCommand::Show(Show { endpoint }) => {
                let endpoint = ipam
                    .get_endpoint(pb::GetEndpointRequest { endpoint })
                    .await?
                    .into_inner();
                output::one(&view::Endpoint::from(endpoint), ctx.format)
            }
        }
    }
}

// === impl Allocate ===

impl Allocate {
    fn request(&self) -> Result<pb::AllocateRequest, Error> {
        Ok(pb::AllocateRequest {
            endpoint: self.endpoint.clone(),
            interface: self.interface.clone().unwrap_or_default(),
            host: self.host.clone().unwrap_or_default(),
            tenant: self.tenant.clone().unwrap_or_default(),
            segment: self.segment.clone().unwrap_or_default(),
            cidr: self.cidr.clone().unwrap_or_default(),
            address: self.address.map(|a| a.to_string()).unwrap_or_default(),
            labels: flags::label_map(&self.labels)?.into_iter().collect(),
            ports: flags::named_ports(&self.ports)?,
            pod: self.pod.as_ref().map(pb::Pod::from),
        })
    }
}

// === impl LabelUpdate ===

impl LabelUpdate {
    fn request(&self) -> Result<pb::UpdateEndpointRequest, Error> {
        let set_labels = flags::label_map(&self.labels)?;
        if let Some(key) = self
            .remove_labels
            .iter()
            .find(|k| set_labels.contains_key(*k))
        {
            return Err(Error::Usage(format!(
                "label {key:?} is both set and removed"
            )));
        }
        Ok(pb::UpdateEndpointRequest {
            endpoint: self.endpoint.clone(),
            set_labels: set_labels.into_iter().collect(),
            remove_labels: self.remove_labels.clone(),
        })
    }
}

// === impl Release ===

impl Release {
    /// The wire target and how to name it to a person.
    fn target(self) -> (pb::release_request::Target, String) {
        match (self.endpoint, self.address) {
            (Some(endpoint), _) => (
                pb::release_request::Target::Endpoint(endpoint.clone()),
                format!("endpoint {endpoint}"),
            ),
            (None, Some(address)) => (
                pb::release_request::Target::Address(address.to_string()),
                format!("address {address}"),
            ),
            (None, None) => unreachable!("clap requires --endpoint or --address"),
        }
    }
}

fn released_text(r: &view::Released) -> String {
    match &r.released {
        Some(e) => format!(
            "released {} from endpoint {} ({}/{} on {})",
            e.address, e.endpoint, e.tenant, e.segment, e.host
        ),
        None => format!("nothing held by {}", r.target),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cmd::{Cli, Command};

    fn mk_cmd(args: &[&str]) -> Result<IpamCommand, clap::Error> {
        let cli = Cli::try_parse_from(["romanactl", "ipam"].iter().chain(args))?;
        match cli.command {
            Command::Ipam(cmd) => Ok(cmd),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn mk_allocate(args: &[&str]) -> Result<pb::AllocateRequest, String> {
        match mk_cmd(args).map_err(|e| e.kind().to_string())? {
            IpamCommand::Allocate(a) => a.request().map_err(|e| e.line()),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn mk_label(args: &[&str]) -> Result<pb::UpdateEndpointRequest, String> {
        match mk_cmd(args).map_err(|e| e.kind().to_string())? {
            IpamCommand::Label(u) => u.request().map_err(|e| e.line()),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn label_sets_and_removes_and_refuses_both_or_neither() {
        let req = mk_label(&[
            "label",
            "pod-1",
            "--label",
            "role=db",
            "--remove-label",
            "tier",
        ])
        .unwrap();
        assert_eq!(req.endpoint, "pod-1");
        assert_eq!(req.set_labels.get("role").map(String::as_str), Some("db"));
        assert_eq!(req.remove_labels, ["tier"]);
        let both =
            mk_label(&["label", "pod-1", "--label", "a=1", "--remove-label", "a"]).unwrap_err();
        assert!(both.contains("both set and removed"), "{both}");
        assert!(
            mk_label(&["label", "pod-1"]).is_err(),
            "a change is required"
        );
    }

    #[test]
    fn allocate_by_names_carries_labels_and_ports() {
        let req = mk_allocate(&[
            "allocate",
            "--endpoint",
            "c1-eth0",
            "--host",
            "h1",
            "--tenant",
            "t1",
            "--segment",
            "s1",
            "--label",
            "app=web",
            "--port",
            "http=tcp/80",
        ])
        .unwrap();
        assert_eq!(
            req,
            pb::AllocateRequest {
                endpoint: "c1-eth0".into(),
                host: "h1".into(),
                tenant: "t1".into(),
                segment: "s1".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                ports: vec![pb::NamedPort {
                    name: "http".into(),
                    protocol: "tcp".into(),
                    port: 80
                }],
                ..Default::default()
            }
        );
    }

    #[test]
    fn allocate_carries_a_named_interface() {
        let req = mk_allocate(&[
            "allocate",
            "--endpoint",
            "port-1",
            "--cidr",
            "10.0.16.0/24",
            "--interface",
            "tap3f2a9c1b-7d",
        ])
        .unwrap();
        assert_eq!(req.interface, "tap3f2a9c1b-7d");
        let plain = mk_allocate(&["allocate", "--endpoint", "e", "--cidr", "10.0.16.0/24"]);
        assert_eq!(plain.unwrap().interface, "", "derived unless named");
    }

    #[test]
    fn allocate_carries_a_pod_by_namespace_and_name() {
        let args = [
            "allocate",
            "--endpoint",
            "e",
            "--cidr",
            "10.0.16.0/24",
            "--pod",
        ];
        let req = mk_allocate(&[&args[..], &["web/api-1"]].concat()).unwrap();
        let pod = req.pod.unwrap();
        assert_eq!(
            (pod.namespace.as_str(), pod.name.as_str()),
            ("web", "api-1")
        );
        for bad in ["api-1", "Web/api-1", "web/", "/api-1"] {
            assert!(mk_allocate(&[&args[..], &[bad]].concat()).is_err(), "{bad}");
        }
    }

    #[test]
    fn allocate_by_cidr_or_by_address_alone() {
        let req = mk_allocate(&["allocate", "--endpoint", "p1", "--cidr", "10.1.16.0/24"]).unwrap();
        assert_eq!(req.cidr, "10.1.16.0/24");
        let req = mk_allocate(&["allocate", "--endpoint", "p1", "--address", "10.1.16.9"]).unwrap();
        assert_eq!(req.address, "10.1.16.9");
    }

    #[test]
    fn allocate_placement_shapes_that_are_refused() {
        // No placement at all.
        assert!(mk_allocate(&["allocate", "--endpoint", "e"]).is_err());
        // A host without a tenant.
        assert!(mk_allocate(&["allocate", "--endpoint", "e", "--host", "h1"]).is_err());
        // Both shapes at once.
        assert!(mk_allocate(&[
            "allocate",
            "--endpoint",
            "e",
            "--host",
            "h1",
            "--tenant",
            "t1",
            "--cidr",
            "10.1.16.0/24"
        ])
        .is_err());
        // No endpoint id.
        assert!(mk_allocate(&["allocate", "--host", "h1", "--tenant", "t1"]).is_err());
        // A bad address.
        assert!(mk_allocate(&["allocate", "--endpoint", "e", "--address", "10.1.16"]).is_err());
        // A bad port.
        assert!(mk_allocate(&[
            "allocate",
            "--endpoint",
            "e",
            "--host",
            "h1",
            "--tenant",
            "t1",
            "--port",
            "http=80"
        ])
        .is_err());
    }

    #[test]
    fn release_takes_exactly_one_target() {
        assert!(mk_cmd(&["release"]).is_err());
        assert!(mk_cmd(&["release", "--endpoint", "e", "--address", "10.0.0.1"]).is_err());
        let IpamCommand::Release(r) = mk_cmd(&["release", "--address", "10.1.16.2"]).unwrap()
        else {
            panic!("not a release");
        };
        let (target, text) = r.target();
        assert_eq!(
            target,
            pb::release_request::Target::Address("10.1.16.2".into())
        );
        assert_eq!(text, "address 10.1.16.2");
    }

    #[test]
    fn releasing_nothing_says_so() {
        let r = view::Released {
            target: "endpoint e9".into(),
            released: None,
        };
        assert_eq!(released_text(&r), "nothing held by endpoint e9");
    }
}
