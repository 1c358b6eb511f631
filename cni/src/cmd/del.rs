//! DEL: remove the endpoint's host link (its peer and routes go with it) and release its
//! address, both at once. Idempotent: a missing link, a missing namespace or an endpoint holding nothing
//! is success. An unreachable ipam-service is an error (code 11) so the runtime retries
//! instead of the address leaking.

use romana_core::datapath::endpoint_ifname;

use crate::config::NetConf;
use crate::env::Env;
use crate::error::CniError;
use crate::ipam::Ipam;
use crate::netlink;

pub async fn run(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let id = env.endpoint_id()?;
    // Deleting a veth waits in the kernel for milliseconds; the release overlaps it.
    let host_ifname = endpoint_ifname(&id);
    let removed = netlink::on_thread(move || async move { netlink::unwire(&host_ifname).await });
    let released = Ipam::first_call(conf, |mut ipam| {
        let id = id.clone();
        async move { ipam.release(&id).await }
    });
    let (removed, released) = tokio::join!(removed, released);
    let (removed, (_, released)) = (removed?, released?);
    tracing::debug!(
        endpoint = %id,
        link_removed = removed,
        released = released.map(|e| e.address).unwrap_or_default(),
        "deleted"
    );
    Ok(())
}
