//! GC (1.1.0): release this host's endpoints of this network that the runtime no longer
//! uses (not in `cni.dev/valid-attachments`) and remove their host links.
//!
//! Only endpoints this plugin made are candidates: ids of the form `<container>:<ifname>`
//! carrying this network's [`NETWORK_LABEL`]. Every stale endpoint is tried even when one
//! fails; the error names all failures.

use std::collections::BTreeSet;

use romana_core::datapath::endpoint_ifname;
use romana_proto::pb;

use crate::config::{machine_hostname, Attachment, ConfigError, NetConf};
use crate::env::split_endpoint_id;
use crate::error::CniError;
use crate::ipam::Ipam;
use crate::netlink;

use super::NETWORK_LABEL;

pub async fn run(conf: &NetConf) -> Result<(), CniError> {
    if !conf.version_at_least("1.1.0") {
        return Err(CniError::VerbNeedsVersion {
            verb: "GC",
            min: "1.1.0",
            version: conf.cni_version.clone(),
        });
    }
    // Without the list every endpoint would look stale: refuse rather than collect all.
    let valid = conf
        .valid_attachments
        .as_ref()
        .ok_or(ConfigError::Invalid {
            field: "cni.dev/valid-attachments",
            problem: "is required for GC".into(),
        })?;
    let host = conf.host(machine_hostname)?;
    let mut ipam = Ipam::connect(conf).await?;
    let endpoints = ipam.list_host(&host).await?;
    let stale = stale_endpoints(&endpoints, &conf.name, valid);

    let mut failures = Vec::new();
    let mut code = 0;
    for id in &stale {
        let collected = async {
            netlink::unwire(&endpoint_ifname(id)).await?;
            ipam.release(id).await?;
            Ok::<(), CniError>(())
        };
        match collected.await {
            Ok(()) => tracing::info!(endpoint = %id, "collected a stale endpoint"),
            Err(e) => {
                code = code.max(e.code());
                failures.push(format!("{id}: {e}"));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CniError::Gc {
            total: stale.len(),
            failures,
            code,
        })
    }
}

/// Ids of `endpoints` made by this plugin for `network` that no valid attachment names.
pub fn stale_endpoints<'a>(
    endpoints: &'a [pb::Endpoint],
    network: &str,
    valid: &BTreeSet<Attachment>,
) -> Vec<&'a str> {
    endpoints
        .iter()
        .filter(|e| e.labels.get(NETWORK_LABEL).map(String::as_str) == Some(network))
        .filter_map(|e| {
            let (container_id, ifname) = split_endpoint_id(&e.id)?;
            let attachment = Attachment {
                container_id: container_id.to_string(),
                ifname: ifname.to_string(),
            };
            (!valid.contains(&attachment)).then_some(e.id.as_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_endpoint(id: &str, network: Option<&str>) -> pb::Endpoint {
        pb::Endpoint {
            id: id.into(),
            labels: network
                .map(|n| (NETWORK_LABEL.to_string(), n.to_string()))
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    fn mk_attachment(container_id: &str, ifname: &str) -> Attachment {
        Attachment {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }

    #[test]
    fn only_our_networks_unlisted_endpoints_are_stale() {
        let endpoints = [
            mk_endpoint("c1:eth0", Some("romana")),
            mk_endpoint("c1:eth1", Some("romana")),
            mk_endpoint("c2:eth0", Some("romana")),
            mk_endpoint("c3:eth0", Some("other-net")),
            mk_endpoint("c4:eth0", None),
            mk_endpoint("neutron-port-uuid", Some("romana")),
        ];
        let valid = [mk_attachment("c1", "eth0")].into_iter().collect();
        assert_eq!(
            stale_endpoints(&endpoints, "romana", &valid),
            vec!["c1:eth1", "c2:eth0"]
        );
    }

    #[test]
    fn nothing_is_stale_when_everything_is_listed() {
        let endpoints = [mk_endpoint("c1:eth0", Some("romana"))];
        let valid = [mk_attachment("c1", "eth0")].into_iter().collect();
        assert!(stale_endpoints(&endpoints, "romana", &valid).is_empty());
    }
}
