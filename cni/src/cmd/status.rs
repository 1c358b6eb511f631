//! STATUS (1.1.0): whether ADD can work now, i.e. root answers, knows an ipam-service, and
//! that ipam-service reads its store; and whether an endpoint added now would be wired:
//! this host's agent is running (its status heartbeat is fresh) and has converged. Until
//! it has, a new endpoint would stay closed, so the runtime should not schedule onto this
//! host. Any failure is code 50 with the cause.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use romana_proto::convert::agent_status_from_pb;
use romana_proto::discover::{self, Timeouts};
use romana_proto::pb;

use crate::config::{machine_hostname, NetConf};
use crate::error::CniError;
use crate::ipam::Ipam;

/// The endpoint id STATUS reads. Whether it exists does not matter: either answer means
/// ipam-service read etcd.
const PROBE_ID: &str = "romana-cni-status-probe";

/// STATUS is polled by runtimes; answer fast rather than hang on a dead address.
const TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(2),
    request: Duration::from_secs(5),
};

pub async fn run(conf: &NetConf) -> Result<(), CniError> {
    if !conf.version_at_least("1.1.0") {
        return Err(CniError::VerbNeedsVersion {
            verb: "STATUS",
            min: "1.1.0",
            version: conf.cni_version.clone(),
        });
    }
    let host = conf.host(machine_hostname)?;
    let probe = async {
        let mut ipam = Ipam::connect_with(conf, TIMEOUTS).await?;
        ipam.get(PROBE_ID).await.map(drop)
    };
    probe
        .await
        .map_err(|cause| CniError::NotAvailable(Box::new(cause)))?;
    agent_ready(conf, &host).await
}

/// Whether `host`'s agent is running and converged, by its status record.
async fn agent_ready(conf: &NetConf, host: &str) -> Result<(), CniError> {
    let channel = discover::channel_with_tls(&conf.root, "topology", TIMEOUTS, conf.tls.as_ref())
        .await
        .map_err(|e| CniError::NotAvailable(Box::new(CniError::Discover(e))))?;
    let status = pb::topology_client::TopologyClient::new(channel)
        .get_host_status(pb::GetHostStatusRequest {
            host: host.to_string(),
        })
        .await
        .map_err(|status| {
            CniError::NotAvailable(Box::new(CniError::Topology {
                step: format!("reading the status of host {host}"),
                status,
            }))
        })?
        .into_inner();
    let Some(status) = agent_status_from_pb(&status) else {
        return Err(CniError::AgentNotReady(format!(
            "the agent of host {host} has not reported yet: is romana-agent --host {host} running?"
        )));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    status.ready(now).map_err(CniError::AgentNotReady)
}
