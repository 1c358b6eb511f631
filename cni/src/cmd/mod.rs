//! One module per CNI verb, each with a `run` that takes the parsed environment and network
//! config and returns what the verb prints (ADD, VERSION) or nothing.

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod status;
pub mod version;

use std::net::IpAddr;
use std::path::Path;

use romana_core::datapath::endpoint_ifname;
use romana_proto::pb;

use crate::config::NetConf;
use crate::error::CniError;
use crate::netlink::{Family, Wiring};
use crate::result::CniResult;

/// The label every endpoint made by this plugin carries, naming its CNI network, so that GC
/// of one network never collects another network's endpoints on the same host.
pub const NETWORK_LABEL: &str = "cni.romana.io/network";

/// The network config's `prevResult`, read as a result of any version: the previous
/// plugin's when chained, the cached ADD result on CHECK.
pub fn prev_result(conf: &NetConf) -> Result<Option<CniResult>, CniError> {
    conf.prev_result
        .clone()
        .map(CniResult::from_value)
        .transpose()
        .map_err(CniError::PrevResult)
}

/// The wiring of endpoint `id` as ipam-service describes it: each of its addresses with that
/// address's gateway (a service from before dual-stack sends only `address` and `gateway`).
pub fn wiring(
    id: &str,
    ifname: &str,
    netns: &Path,
    endpoint: &pb::Endpoint,
) -> Result<Wiring, CniError> {
    let parse = |field: &'static str, value: &str| {
        value.parse::<IpAddr>().map_err(|_| CniError::BadEndpoint {
            endpoint: id.to_string(),
            field,
            value: value.to_string(),
        })
    };
    let (addresses, gateways) = (endpoint.all_addresses(), endpoint.all_gateways());
    if addresses.len() != gateways.len() {
        return Err(CniError::BadEndpoint {
            endpoint: id.to_string(),
            field: "gateways",
            value: format!(
                "{} gateways for {} addresses",
                gateways.len(),
                addresses.len()
            ),
        });
    }
    let mut families: Vec<Family> = Vec::new();
    for (address, gateway) in addresses.into_iter().zip(gateways) {
        let address = parse("address", address)?;
        let gateway = parse("gateway", gateway)?;
        if address.is_ipv4() != gateway.is_ipv4() {
            return Err(CniError::BadEndpoint {
                endpoint: id.to_string(),
                field: "gateway",
                value: format!("{gateway} (address {address} is of the other family)"),
            });
        }
        if families
            .iter()
            .any(|f| f.address.is_ipv4() == address.is_ipv4())
        {
            return Err(CniError::BadEndpoint {
                endpoint: id.to_string(),
                field: "addresses",
                value: format!("{address} (a second address of one family)"),
            });
        }
        families.push(Family { address, gateway });
    }
    Ok(Wiring {
        host_ifname: endpoint_ifname(id),
        ifname: ifname.to_string(),
        netns: netns.to_path_buf(),
        families,
    })
}
