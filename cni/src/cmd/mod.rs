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
use crate::netlink::Wiring;
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

/// The wiring of endpoint `id` as ipam-service describes it.
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
    let address = parse("address", &endpoint.address)?;
    let gateway = parse("gateway", &endpoint.gateway)?;
    if address.is_ipv4() != gateway.is_ipv4() {
        return Err(CniError::BadEndpoint {
            endpoint: id.to_string(),
            field: "gateway",
            value: format!("{gateway} (address {address} is of the other family)"),
        });
    }
    Ok(Wiring {
        host_ifname: endpoint_ifname(id),
        ifname: ifname.to_string(),
        netns: netns.to_path_buf(),
        address,
        gateway,
    })
}
