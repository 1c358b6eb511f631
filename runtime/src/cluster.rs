//! The cluster layout as services read it on each request (services are stateless; etcd is
//! the only truth).

use romana_core::{ClusterConfig, Layout};
use romana_store::{Store, Versioned};
use tonic::Status;

use crate::status::store_status;

/// The current layout and the stored config (whose `mod_revision` writers compare so that a
/// layout change and a dependent write never interleave). FAILED_PRECONDITION before
/// `romanactl config init`.
pub async fn current_layout(store: &Store) -> Result<(Versioned<ClusterConfig>, Layout), Status> {
    let config = store
        .get(&store.keys().config())
        .await
        .map_err(store_status)?
        .ok_or_else(|| {
            Status::failed_precondition(
                "the cluster layout is not set yet: run `romanactl config init` first",
            )
        })?;
    let layout = config
        .value
        .layout()
        .map_err(|e| Status::internal(format!("the stored cluster layout is invalid: {e}")))?;
    Ok((config, layout))
}
