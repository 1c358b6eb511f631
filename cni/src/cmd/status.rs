//! STATUS (1.1.0): whether ADD can work now, i.e. root answers, knows an ipam-service, and
//! that ipam-service reads its store. Any failure is code 50 with the cause.

use std::time::Duration;

use romana_proto::discover::Timeouts;

use crate::config::NetConf;
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
    let probe = async {
        let mut ipam = Ipam::connect_with(conf, TIMEOUTS).await?;
        ipam.get(PROBE_ID).await.map(drop)
    };
    probe
        .await
        .map_err(|cause| CniError::NotAvailable(Box::new(cause)))
}
